"""The REST API against its own OpenAPI schema (schemathesis, in-process through Django's WSGI
handler): whatever input is generated, valid or not, the answer is documented (status code,
content type, body) and never a server error; and no operation answers without a login.

smartw's side of the commands is played on the real bus (api_station), so a command gets an
answer and a 503 would be a real failure. Examples per operation are limited to keep it short.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.contrib.auth.models import Group
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.webapp.api_station import FakeSmartw, answering_in_thread
from webapp.station.operator_models import ApiToken

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection, ignored_auth]


@pytest.fixture
def operator_key(django_user_model) -> str:
    user = django_user_model.objects.create_user("operator")
    user.groups.add(Group.objects.get(name="operator"))  # the role migration 0009 made
    return ApiToken.issue(user, "schemathesis")[1]


@pytest.fixture
def smartw(redis_client) -> Iterator[FakeSmartw]:
    fake = FakeSmartw()
    with answering_in_thread(fake):
        yield fake


# Loaded at import: the lazy `schemathesis.pytest.from_fixture` does not run under pytest 9
# (it sets `request.node._nodeid`, which pytest 9 no longer has).
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application())


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_any_input_gets_a_documented_answer_and_never_a_server_error(case, operator_key: str,
                                                                      smartw: FakeSmartw) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {operator_key}"}, checks=CHECKS)


def test_every_operation_refuses_unauthenticated_calls(redis_client) -> None:
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:
        response = operation.Case(path_parameters=_example_path(operation.path)).call()
        assert response.status_code == 401, f"{operation.label}: {response.status_code} {response.text[:200]}"


def _example_path(path: str) -> dict[str, str]:
    return {name: "1" for name in ("connector_id", "session_id") if f"{{{name}}}" in path}
