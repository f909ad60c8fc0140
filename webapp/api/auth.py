"""Who may call the REST API: a bearer token (ApiToken) or a configurator login, and with which role.

Two ways in, tried in this order:
- `Authorization: Bearer <key>`: the key's SHA-256 must match a token that is not revoked and
  whose user is active. A key that is given but wrong is refused at once (401), so a script
  with a revoked key learns it instead of falling through to a cookie it may not have.
- The configurator's Django session (a logged-in user in the same browser). The cookie is sent
  by the browser on its own, so unsafe methods need Django's CSRF token (X-CSRFToken header).

The role is checked here, per router (`viewer_auth`, `operator_auth`), so no endpoint can forget
it: known but without the role is 403, unknown is 401. actions.py checks the operator role again.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from ninja.errors import AuthenticationError, AuthorizationError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from webapp.station.actions import OPERATE_PERMISSION
from webapp.station.operator_models import ApiToken, token_digest

LAST_USED_RESOLUTION = timedelta(minutes=1)
"""last_used_at is written at most this often per token (not one database write per request)."""
KEY_MAX_CHARS = 200  # issued keys are 43 characters; anything much longer is not ours
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
VIEW_PERMISSION = "station.view_chargingsession"  # every role (viewer, operator) has all view_* perms


class Role(StrEnum):
    """What a caller may do: look (viewer or operator role), or also act (operator role)."""

    VIEWER = "viewer"
    OPERATOR = "operator"

    @property
    def permission(self) -> str:
        return OPERATE_PERMISSION if self is Role.OPERATOR else VIEW_PERMISSION


def role_of(user: Any) -> Role | None:
    """The most the user may do through the API; None: nothing (every call is 403)."""
    for role in (Role.OPERATOR, Role.VIEWER):
        if user.has_perm(role.permission):
            return role
    return None


def require_role(user: Any, role: Role) -> Any:
    """`user` if it has `role`; AuthorizationError (403) otherwise."""
    if not user.has_perm(role.permission):
        raise AuthorizationError(message=f"user {user.get_username()!r} lacks the {role} role")
    return user


def token_user(key: str) -> Any | None:
    """The active user of a valid, unrevoked token; None otherwise. Notes the use (at most once a
    minute)."""
    if not key or len(key) > KEY_MAX_CHARS:
        return None
    token = (ApiToken.objects.select_related("user")
             .filter(digest=token_digest(key), revoked=False, user__is_active=True).first())
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


class BearerToken(HttpBearer):
    """`Authorization: Bearer <key>` with a key from `manage.py api_token create`."""

    def __init__(self, role: Role) -> None:
        self.role = role
        super().__init__()

    def authenticate(self, request: HttpRequest, token: str) -> Any | None:
        user = token_user(token)
        if user is None:
            raise AuthenticationError(message="unknown or revoked API token, or its user is inactive")
        return require_role(user, self.role)


class ConfiguratorSession(APIKeyCookie):
    """A user logged in to the configurator; unsafe methods also need the CSRF token."""

    param_name = settings.SESSION_COOKIE_NAME

    def __init__(self, role: Role) -> None:
        self.role = role
        super().__init__(csrf=False)  # checked below, only once a logged-in user is known

    def authenticate(self, request: HttpRequest, key: str | None) -> Any | None:
        user = request.user
        if not (user.is_authenticated and user.is_active):
            return None
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            raise AuthorizationError(message="CSRF check failed: send the page's CSRF token in the "
                                             "X-CSRFToken header (or use a bearer token)")
        return require_role(user, self.role)


def auth_for(role: Role) -> list[BearerToken | ConfiguratorSession]:
    return [BearerToken(role), ConfiguratorSession(role)]


viewer_auth = auth_for(Role.VIEWER)
operator_auth = auth_for(Role.OPERATOR)
