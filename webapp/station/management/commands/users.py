"""`python manage.py users ACTION ...`: the configurator's users and their role, from a shell.

    users add NAME --role viewer|operator [--password-stdin]
    users role NAME viewer|operator
    users list

A role is one of the groups made by migration 0009: a viewer sees everything, an operator may
also change settings and act on the station (webapp/station/operator_models.py). Both get staff
status (the configurator is the Django admin). `add` reads the password from the first line of
stdin with --password-stdin (so it stays out of the shell history and `ps`), else generates one
and prints it once. Superusers are listed but never given a role: they have every permission.

Exit codes: 0 done; 1 not done (the user exists, no such user, a superuser, the roles are
missing: run `manage.py migrate`); 2 bad usage (unknown role, a name Django refuses, an empty
or refused password).
"""

from __future__ import annotations

import secrets
import sys
from typing import Any, TextIO

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from webapp.station.management.cli import NOT_DONE

USAGE_ERROR = 2
ROLES = ("viewer", "operator")  # group names of migration 0009, least rights first
SUPERUSER = "superuser"


class Command(BaseCommand):
    help = "Add configurator users with a role (viewer or operator), change a role, list users."
    stealth_options = ("stdin",)  # tests pass the password's stream

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = actions.add_parser("add", help="a new user with a role")
        add.add_argument("name")
        add.add_argument("--role", choices=ROLES, required=True)
        add.add_argument("--password-stdin", action="store_true",
                         help="read the password from stdin's first line (else one is generated)")
        role = actions.add_parser("role", help="give a user another role")
        role.add_argument("name")
        role.add_argument("role", choices=ROLES)
        actions.add_parser("list", help="every user with their role")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "add":
            self._add(options["name"], options["role"], options["password_stdin"],
                      options.get("stdin") or sys.stdin)
        elif options["action"] == "role":
            self._set_role(options["name"], options["role"])
        else:
            self._list()

    def _add(self, name: str, role: str, password_stdin: bool, stdin: TextIO) -> None:
        try:
            UnicodeUsernameValidator()(name)
        except ValidationError as error:
            raise CommandError(f"bad user name {name!r}: {' '.join(error.messages)}",
                               returncode=USAGE_ERROR) from None
        users = get_user_model()
        if users.objects.filter(username=name).exists():
            raise CommandError(f"user {name!r} exists; `users role {name} ROLE` changes its role",
                               returncode=NOT_DONE)
        user = users(username=name, is_staff=True)
        password = _read_password(stdin, user) if password_stdin else secrets.token_urlsafe(12)
        user.set_password(password)
        with transaction.atomic():
            user.save()
            user.groups.set([_group(role)])
        self.stdout.write(f"added {name!r} as {role}" + ("" if password_stdin else f", password: {password}"))

    def _set_role(self, name: str, role: str) -> None:
        user = get_user_model().objects.filter(username=name).first()
        if user is None:
            raise CommandError(f"no user {name!r} (`users list` shows them)", returncode=NOT_DONE)
        if user.is_superuser:
            raise CommandError(f"{name!r} is a superuser: every permission, a role would not limit it",
                               returncode=NOT_DONE)
        with transaction.atomic():
            user.groups.remove(*Group.objects.filter(name__in=ROLES))
            user.groups.add(_group(role))
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        self.stdout.write(f"{name!r} is now {role}")

    def _list(self) -> None:
        for user in get_user_model().objects.order_by("username").prefetch_related("groups"):
            notes = [note for flag, note in ((not user.is_active, "inactive"),
                                             (not user.is_staff, "no configurator access")) if flag]
            self.stdout.write("  ".join([user.get_username(), role_of(user), *notes]))


def role_of(user: AbstractUser) -> str:
    """superuser, operator, viewer (the most rights first) or '-' for none."""
    if user.is_superuser:
        return SUPERUSER
    groups = {group.name for group in user.groups.all()}
    return next((role for role in reversed(ROLES) if role in groups), "-")


def _group(role: str) -> Group:
    group = Group.objects.filter(name=role).first()
    if group is None:
        raise CommandError(f"the role {role!r} does not exist: run `manage.py migrate`", returncode=NOT_DONE)
    return group


def _read_password(stdin: TextIO, user: AbstractUser) -> str:
    password = stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandError("--password-stdin: stdin gave no password", returncode=USAGE_ERROR)
    try:
        password_validation.validate_password(password, user)
    except ValidationError as error:
        raise CommandError(f"password refused: {' '.join(error.messages)}", returncode=USAGE_ERROR) from None
    return password
