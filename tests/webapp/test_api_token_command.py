"""`manage.py api_token create|list|revoke`: the REST API's bearer tokens from a shell."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from webapp.env import REPO_ROOT
from webapp.station.operator_models import ApiToken, token_digest

pytestmark = pytest.mark.django_db


def api_token(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("api_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def operator(django_user_model):
    user = django_user_model.objects.create_user("ops")
    user.groups.add(Group.objects.get(name="operator"))
    return user


def test_create_prints_only_the_key_once_and_keeps_only_its_digest(operator) -> None:
    out, err = api_token("create", "ops", "fleet dashboard")

    key = out.strip()
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.digest) == (operator, "fleet dashboard", token_digest(key))
    assert key not in err and "role: operator" in err
    listing, _ = api_token("list")
    assert key not in listing and f"{key[:8]}…" in listing and "fleet dashboard" in listing


def test_create_warns_about_a_user_without_a_role(django_user_model) -> None:
    django_user_model.objects.create_user("guest")

    _, err = api_token("create", "guest", "script")

    assert "neither viewer nor operator" in err


@pytest.mark.parametrize(("username", "reason"), [("ghost", "no user 'ghost'"), ("gone", "inactive")])
def test_create_refuses_an_unknown_or_inactive_user(django_user_model, username: str, reason: str) -> None:
    django_user_model.objects.create_user("gone", is_active=False)

    with pytest.raises(CommandError, match=reason) as error:
        api_token("create", username, "script")

    assert error.value.returncode == 1
    assert not ApiToken.objects.exists()


def test_revoke_marks_the_token_and_is_idempotent(operator) -> None:
    token, _ = ApiToken.issue(operator, "old script")

    first, _ = api_token("revoke", str(token.pk))
    again, _ = api_token("revoke", str(token.pk))

    token.refresh_from_db()
    assert token.revoked
    assert "revoked" in first and "already revoked" in again
    assert "revoked" in api_token("list")[0].splitlines()[1]


def test_revoking_an_unknown_token_fails() -> None:
    with pytest.raises(CommandError, match="no token 42") as error:
        api_token("revoke", "42")

    assert error.value.returncode == 1


@pytest.mark.parametrize("args", [[], ["revoke", "abc"], ["create", "ops", "   "], ["create", "ops"]])
def test_bad_usage_exits_2(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "manage.py", "api_token", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 2, done.stderr
    assert "usage:" in done.stderr
