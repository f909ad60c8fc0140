"""`manage.py ensure_admin`: one admin user, its password generated once and kept 0600."""

from __future__ import annotations

import dataclasses
import io
import stat
from pathlib import Path

import pytest
from django.conf import LazySettings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = pytest.mark.django_db


@pytest.fixture
def data_dir(settings: LazySettings, tmp_path: Path) -> Path:
    settings.STATION_ENV = dataclasses.replace(settings.STATION_ENV, data_dir=tmp_path)
    return tmp_path


def _ensure_admin() -> str:
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


def test_first_run_creates_admin_with_a_private_password_file(data_dir: Path) -> None:
    printed = _ensure_admin()
    path = data_dir / "admin-password"
    password = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert password in printed
    user = get_user_model().objects.get(username="admin")
    assert user.is_superuser and user.check_password(password)


def test_second_run_keeps_the_same_password(data_dir: Path) -> None:
    _ensure_admin()
    first = (data_dir / "admin-password").read_text()
    printed = _ensure_admin()
    assert (data_dir / "admin-password").read_text() == first
    assert first.strip() in printed
    assert get_user_model().objects.filter(username="admin").count() == 1


def test_password_changed_by_an_operator_is_neither_reset_nor_printed(data_dir: Path) -> None:
    _ensure_admin()
    stale = (data_dir / "admin-password").read_text().strip()
    user = get_user_model().objects.get(username="admin")
    user.set_password("operator-choice")
    user.save()
    printed = _ensure_admin()
    assert stale not in printed and "changed" in printed
    assert get_user_model().objects.get(username="admin").check_password("operator-choice")


def test_empty_password_file_is_a_clear_error_and_creates_nothing(data_dir: Path) -> None:
    (data_dir / "admin-password").write_text("\n")
    with pytest.raises(CommandError, match="admin-password is empty"):
        _ensure_admin()
    assert not get_user_model().objects.filter(username="admin").exists()
