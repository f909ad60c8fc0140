"""The NinjaAPI instance; the routers are added in this module.

/api/docs (Swagger UI) and /api/openapi.json are public: the schema is no secret and a
station's integrator reads it before having a token. Every operation needs a login or a token.
"""

from typing import Any

from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict
from django.views.decorators.http import require_safe
from ninja import NinjaAPI
from ninja.parser import Parser

from webapp.api import commands, errors, sessions, state

DESCRIPTION = """\
The station's REST API: its live state (from the bus), the charging sessions it logged, and the
operator's commands (through the same actions as the configurator, each written to the audit log).

**Authentication**: `Authorization: Bearer <key>` (a key from `manage.py api_token create USER NAME`),
or the configurator's login in the same browser (then POST needs the `X-CSRFToken` header).
**Roles**: a *viewer* may read, an *operator* may also send commands (403 otherwise).

Units are in the field names or descriptions (W, Wh, kW, %, s); times are ISO 8601, UTC.
"""


class OneValuePerQueryParameter(Parser):
    """`?connector=1&connector=2` is refused (422): Django would quietly keep the last value."""

    def parse_querydict(self, data: MultiValueDict, list_fields: list[str],
                        request: HttpRequest) -> dict[str, Any]:
        result = super().parse_querydict(data, list_fields, request)
        for key in data:
            if key not in list_fields and len(data.getlist(key)) > 1:
                result[key] = data.getlist(key)  # a list where one value belongs: fails validation
        return result


api = NinjaAPI(title="Station controller API", version="1", description=DESCRIPTION, urls_namespace="api",
               parser=OneValuePerQueryParameter(), docs_decorator=require_safe)  # docs: GET/HEAD only
errors.install(api)
api.add_router("/", state.router)
api.add_router("/", sessions.router)
api.add_router("/", commands.router)
