"""`python manage.py ensure_admin`: make sure the configurator has an "admin" user.

The password is generated once and kept in STATION_DATA_DIR/admin-password (mode 0600), so
ops/run-sim.sh can print it on every start without ever resetting a password an operator
changed. Nothing here logs the password; it is printed to stdout for the operator only.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

USERNAME = "admin"
PASSWORD_FILE = "admin-password"


class Command(BaseCommand):
    help = "Create the configurator's admin user once (password in STATION_DATA_DIR/admin-password)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quiet", action="store_true", help="do not print the password")

    def handle(self, *args: Any, quiet: bool, **options: Any) -> None:
        path = settings.STATION_ENV.data_dir / PASSWORD_FILE
        users = get_user_model()
        existing = users.objects.filter(username=USERNAME).first()
        if existing is not None:
            self._report_existing(existing, path, quiet)
            return
        password = _read_password(path) or _create_password(path)
        users.objects.create_superuser(USERNAME, email="", password=password)
        self.stdout.write(f"created user {USERNAME!r}" + ("" if quiet else f", password: {password}"))

    def _report_existing(self, user: Any, path: Path, quiet: bool) -> None:
        password = _read_password(path)
        if password is None or not user.check_password(password):
            self.stdout.write(f"user {USERNAME!r} exists; its password is not the one in {path} "
                              "(an operator changed it; `manage.py changepassword admin` resets it)")
        elif not quiet:
            self.stdout.write(f"user {USERNAME!r} exists; password (from {path}): {password}")


def _read_password(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from error
    if not text:
        raise CommandError(f"{path} is empty; delete it to generate a new password")
    return text


def _create_password(path: Path) -> str:
    """Write a new password to a file only its owner can read (created 0600, never widened)."""
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    return password
