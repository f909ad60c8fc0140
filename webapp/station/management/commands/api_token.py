"""`python manage.py api_token ACTION`: the REST API's bearer tokens.

    api_token create USER NAME   make a token acting as USER; prints its key (only this once)
    api_token list               every token: id, user, name, key prefix, created, last used, state
    api_token revoke ID          refuse the token from now on (kept in the list, marked revoked)

Only the key's SHA-256 is stored, so a lost key cannot be shown again: revoke it, make another.
A token has its user's role (viewer: read; operator: also commands). `create` prints the key
alone on stdout (`KEY=$(manage.py api_token create ...)`), everything else on stderr.

Exit codes: 0 done (revoking a revoked token too); 1 unknown or inactive user, unknown token id;
2 bad usage (missing argument, empty NAME, ID not a number).
"""

from __future__ import annotations

import argparse
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.api.auth import role_of
from webapp.station.operator_models import ApiToken

NOT_DONE = 1
NAME_MAX = ApiToken._meta.get_field("name").max_length


def token_name(text: str) -> str:
    name = text.strip()
    if not name or len(name) > NAME_MAX:
        raise argparse.ArgumentTypeError(f"NAME is 1 to {NAME_MAX} characters (what uses the token), "
                                         f"got {text!r}")
    return name


class Command(BaseCommand):
    help = "Create, list and revoke the REST API's bearer tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = actions.add_parser("create", help="make a token for USER; prints its key once")
        create.add_argument("user", metavar="USER", help="username the token acts as (and whose role it has)")
        create.add_argument("name", metavar="NAME", type=token_name,
                            help="what uses it, e.g. 'fleet dashboard'")
        actions.add_parser("list", help="every token (never the keys)")
        revoke = actions.add_parser("revoke", help="refuse a token from now on")
        revoke.add_argument("id", metavar="ID", type=int, help="the token's id (see `list`)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "create":
            self._create(options["user"], options["name"])
        elif options["action"] == "list":
            self._list()
        else:
            self._revoke(options["id"])

    def _create(self, username: str, name: str) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}", returncode=NOT_DONE)
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive: its tokens would be refused",
                               returncode=NOT_DONE)
        token, key = ApiToken.issue(user, name)
        role = role_of(user)
        self.stderr.write(f"token {token.pk} {name!r} for {username} (role: {role or 'none'}); "
                          "the key is shown only now:")
        if role is None:
            self.stderr.write(f"warning: {username} is neither viewer nor operator: every call will be "
                              "refused (403) until the user gets a role")
        self.stdout.write(key)

    def _list(self) -> None:
        tokens = ApiToken.objects.select_related("user").order_by("pk")
        self.stdout.write(_row("id", "user", "name", "key", "created", "last used", "state"))
        for token in tokens:
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            self.stdout.write(_row(str(token.pk), token.user.get_username(), token.name, f"{token.prefix}…",
                                   f"{token.created_at:%Y-%m-%d %H:%M}", used,
                                   "revoked" if token.revoked else "active"))

    def _revoke(self, token_id: int) -> None:
        token = ApiToken.objects.filter(pk=token_id).first()
        if token is None:
            raise CommandError(f"no token {token_id} (see `manage.py api_token list`)", returncode=NOT_DONE)
        if token.revoked:
            self.stdout.write(f"token {token_id} {token.name!r} was already revoked")
            return
        ApiToken.objects.filter(pk=token_id).update(revoked=True)
        self.stdout.write(f"token {token_id} {token.name!r} of {token.user.get_username()} revoked")


def _row(token_id: str, user: str, name: str, key: str, created: str, used: str, state: str) -> str:
    return f"{token_id:>4}  {user:<16} {name:<24} {key:<10} {created:<16} {used:<16} {state}"
