"""The OCPP records in the configurator: every table lists read-only, the frame log can be
searched, and the AuthorizationKey never shows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client

from tests.webapp.test_admin import operator  # noqa: F401  (fixture: a logged-in superuser)
from webapp.station.models import OcppFrame, OcppSetting, SecurityEvent

pytestmark = pytest.mark.django_db

SECRET = "0001020304050607FFFFFFFFFFFFFFFFFFFFFFFF"
PAGES = ("ocppframe", "ocppsetting", "chargingprofilerecord", "localauthentry", "authcacheentry",
         "reservation", "installedcertificate", "securityevent")


def test_every_ocpp_table_lists_and_offers_no_change(operator: Client) -> None:  # noqa: F811
    for page in PAGES:
        response = operator.get(f"/admin/station/{page}/")
        assert response.status_code == 200, page
        assert f"/admin/station/{page}/add/".encode() not in response.content, f"{page} offers to add rows"
        assert operator.get(f"/admin/station/{page}/add/").status_code == 403


def test_the_frame_log_is_searchable_by_message_id(operator: Client) -> None:  # noqa: F811
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    OcppFrame.objects.create(at=at, direction="out", message_type=2, unique_id="id-find-me",
                             action="Heartbeat", frame='[2,"id-find-me","Heartbeat",{}]')
    OcppFrame.objects.create(at=at, direction="in", message_type=3, unique_id="id-other",
                             action="Heartbeat", frame='[3,"id-other",{}]')
    response = operator.get("/admin/station/ocppframe/", {"q": "find-me"})
    assert b"id-find-me" in response.content and b"id-other" not in response.content


def test_the_authorization_key_is_never_shown(operator: Client) -> None:  # noqa: F811
    OcppSetting.objects.create(key="AuthorizationKey", value=SECRET)
    OcppSetting.objects.create(key="HeartbeatInterval", value="120")
    listing = operator.get("/admin/station/ocppsetting/")
    assert b"HeartbeatInterval" in listing.content and SECRET.encode() not in listing.content
    assert operator.get("/admin/station/ocppsetting/AuthorizationKey/change/").status_code in (302, 404)
    SecurityEvent.objects.create(at=datetime(2026, 1, 2, tzinfo=UTC), type="StartupOfTheDevice",
                                 critical=True)
    assert b"StartupOfTheDevice" in operator.get("/admin/station/securityevent/").content


def test_the_frame_log_filters_by_direction_action_and_days_and_searches_the_text(
        operator: Client) -> None:  # noqa: F811
    def frame(day: int, direction: str, action: str, unique_id: str, payload: str) -> None:
        OcppFrame.objects.create(at=datetime(2026, 1, day, 12, tzinfo=UTC), direction=direction,
                                 message_type=2, unique_id=unique_id, action=action,
                                 frame=f'[2,"{unique_id}","{action}",{payload}]')

    frame(1, "out", "BootNotification", "boot-1", '{"chargePointModel":"SIM"}')
    frame(2, "in", "RemoteStartTransaction", "remote-2", '{"idTag":"CARD77"}')
    frame(3, "out", "StatusNotification", "status-3", '{"status":"Charging"}')
    page = "/admin/station/ocppframe/"

    def ids(**query: str) -> list[str]:
        content = operator.get(page, query).content.decode()
        return [unique_id for unique_id in ("boot-1", "remote-2", "status-3") if unique_id in content]

    assert ids(direction="in") == ["remote-2"]
    assert ids(action="StatusNotification") == ["status-3"]
    assert ids(at_from="2026-01-02", at_to="2026-01-03") == ["remote-2", "status-3"]
    assert ids(q="CARD77") == ["remote-2"]
    assert ids(at_from="2026-01-04") == []
