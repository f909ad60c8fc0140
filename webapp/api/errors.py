"""How the REST API turns failures into answers: one JSON shape per kind, never an HTML page.

401 and 403 carry `ErrorOut`; bad input (a body, query or path that does not validate, or what
actions.py calls InvalidInput) is 422 `ValidationErrorOut`; a lost Redis is 503. A command the
station did not answer is not an exception: commands.py answers 503 with the Outcome.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, ValidationError

from bus.service import REDIS_ERRORS
from webapp.api.schemas import ErrorOut, FieldErrorOut, ValidationErrorOut
from webapp.station.actions import InvalidInput

HOW_TO_AUTHENTICATE = ("log in to the configurator, or send 'Authorization: Bearer <key>' with a key "
                       "from `manage.py api_token create`")


def install(api: NinjaAPI) -> None:
    """Register the handlers on `api` (the most specific exception class wins)."""

    def unauthenticated(request: HttpRequest, error: AuthenticationError) -> HttpResponse:
        detail = HOW_TO_AUTHENTICATE if error.message == AuthenticationError().message else error.message
        response = api.create_response(request, ErrorOut(detail=detail).model_dump(), status=401)
        response["WWW-Authenticate"] = 'Bearer realm="station"'
        return response

    def forbidden(request: HttpRequest, error: PermissionDenied) -> HttpResponse:
        detail = str(error) or "not allowed"
        return api.create_response(request, ErrorOut(detail=detail).model_dump(), status=403)

    def invalid_request(request: HttpRequest, error: ValidationError) -> HttpResponse:
        fields = [FieldErrorOut(location=_location(item.get("loc", ())), message=str(item.get("msg", "")))
                  for item in error.errors]
        detail = "; ".join(f"{field.location}: {field.message}" for field in fields) or "invalid request"
        body = ValidationErrorOut(detail=detail, errors=fields)
        return api.create_response(request, body.model_dump(), status=422)

    def invalid_input(request: HttpRequest, error: InvalidInput) -> HttpResponse:
        body = ValidationErrorOut(detail=str(error), errors=[])
        return api.create_response(request, body.model_dump(), status=422)

    def bus_unavailable(request: HttpRequest, error: Exception) -> HttpResponse:
        body = ErrorOut(detail=f"the station's bus (Redis) does not answer: {error}")
        return api.create_response(request, body.model_dump(), status=503)

    api.add_exception_handler(AuthenticationError, unauthenticated)
    api.add_exception_handler(PermissionDenied, forbidden)
    api.add_exception_handler(ValidationError, invalid_request)
    api.add_exception_handler(InvalidInput, invalid_input)
    for redis_error in REDIS_ERRORS:
        api.add_exception_handler(redis_error, bus_unavailable)


def _location(loc: Any) -> str:
    """ninja's ('body', 'payload', 'operative') -> 'body.operative'; the parameter's own name
    (the second part for a body) means nothing to a caller."""
    parts = [str(part) for part in loc]
    if len(parts) >= 2 and parts[0] == "body":
        parts = [parts[0], *parts[2:]]
    return ".".join(parts)
