"""`manage.py users`: configurator users with a role, in the database and as the admin sees
them; exit codes from a real process where the exit code is the point."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from tests.support.database import sqlite_url
from webapp.env import REPO_ROOT

PASSWORD = "a-long-test-password"


def users(*args: str, stdin: str | None = None) -> str:
    out = io.StringIO()
    options = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command("users", *args, stdout=out, **options)
    return out.getvalue()


def groups(name: str) -> list[str]:
    return sorted(User.objects.get(username=name).groups.values_list("name", flat=True))


@pytest.mark.django_db
def test_an_added_viewer_logs_in_and_sees_but_cannot_change(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

    said = users("add", "ines", "--role", "viewer", "--password-stdin", stdin=PASSWORD + "\n")

    assert said.strip() == "added 'ines' as viewer"
    user = User.objects.get(username="ines")
    assert user.is_staff and not user.is_superuser and user.check_password(PASSWORD)
    assert groups("ines") == ["viewer"]
    client = Client()
    assert client.post("/admin/login/", {"username": "ines", "password": PASSWORD}).status_code == 302
    assert client.get("/admin/station/chargingsession/").status_code == 200
    assert client.get("/admin/station/jobrecord/archive/").status_code == 403


@pytest.mark.django_db
def test_without_password_stdin_a_password_is_generated_and_printed_once(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    said = users("add", "olga", "--role", "operator")
    password = said.strip().rsplit("password: ", 1)[1]
    assert len(password) >= 16
    assert User.objects.get(username="olga").check_password(password)
    assert User.objects.get(username="olga").has_perm("station.operate_station")


@pytest.mark.django_db
def test_role_moves_a_user_between_the_roles_and_list_shows_everyone() -> None:
    User.objects.create_superuser("admin")
    User.objects.create_user("kiosk")  # no staff status, no role
    users("add", "ines", "--role", "viewer")
    user = User.objects.get(username="ines")
    user.is_staff = False
    user.save()

    assert users("role", "ines", "operator").strip() == "'ines' is now operator"

    assert groups("ines") == ["operator"]
    assert User.objects.get(username="ines").is_staff
    assert users("list").splitlines() == ["admin  superuser", "ines  operator",
                                          "kiosk  -  no configurator access"]
    users("role", "ines", "viewer")
    assert groups("ines") == ["viewer"]


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "stdin", "code", "message"), [
    (("add", "ines", "--role", "viewer"), None, 1, "user 'ines' exists"),
    (("role", "nobody", "viewer"), None, 1, "no user 'nobody'"),
    (("role", "admin", "viewer"), None, 1, "'admin' is a superuser"),
    (("add", "bad name!", "--role", "viewer"), None, 2, "bad user name 'bad name!'"),
    (("add", "new", "--role", "viewer", "--password-stdin"), "", 2, "stdin gave no password"),
    (("add", "new", "--role", "viewer", "--password-stdin"), "short\n", 2,
     "password refused: This password is too short"),
])
def test_what_cannot_be_done_is_said_with_its_exit_code(args: tuple[str, ...], stdin: str | None, code: int,
                                                        message: str, settings) -> None:
    settings.AUTH_PASSWORD_VALIDATORS = [
        {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"}]
    User.objects.create_superuser("admin")
    User.objects.create_user("ines", is_staff=True)

    with pytest.raises(CommandError, match=message) as raised:
        users(*args, stdin=stdin)

    assert raised.value.returncode == code
    assert User.objects.filter(username="new").exists() is False
    assert groups("ines") == []


def run(*args: str, database: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": sqlite_url(database)}
    return subprocess.run([sys.executable, "manage.py", "users", *args], cwd=REPO_ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_exit_codes_of_the_real_command(service_db: Path) -> None:
    """0 and the argparse usage error 2 (1 is CommandError's returncode, tested above)."""
    added = run("add", "ines", "--role", "operator", "--password-stdin", database=service_db,
                stdin=PASSWORD + "\n")
    bad_role = run("role", "ines", "admin", database=service_db)

    assert (added.returncode, added.stdout.strip()) == (0, "added 'ines' as operator"), added.stderr
    assert bad_role.returncode == 2 and "invalid choice: 'admin'" in bad_role.stderr
