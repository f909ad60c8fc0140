"""The configurator's session pages: login, a read-only list with filters, and the job dashboard link."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client

from webapp.station.models import ChargingSession, OutboxMessage, RuntimeSettings, Transaction

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password"


@pytest.fixture
def operator(django_user_model, settings) -> Client:
    """A client logged in through the real admin login form (fast hasher: tests, not security)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    django_user_model.objects.create_superuser("operator", "op@example.org", PASSWORD)
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "operator", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    return client


def session(connector_id: int, day: int, id_tag: str, energy_wh: float) -> ChargingSession:
    return ChargingSession.objects.create(
        session_id=f"s-{connector_id}-{day}", connector_id=connector_id, standard="CCS", id_tag=id_tag,
        started_at=datetime(2025, 3, day, 10, 0, tzinfo=UTC),
        stopped_at=datetime(2025, 3, day, 11, 0, tzinfo=UTC),
        meter_start_wh=1000, meter_stop_wh=1000 + energy_wh, energy_wh=energy_wh, stop_reason="Local",
    )


def test_sessions_need_a_login() -> None:
    response = Client().get("/admin/station/chargingsession/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_session_list_shows_connector_card_times_energy_and_reason(operator: Client) -> None:
    session(1, 3, "AABBCCDD", 12_345)

    page = operator.get("/admin/station/chargingsession/").content.decode()

    for text in ("AABBCCDD", "12.35", "Local", "March 3, 2025"):
        assert text in page
    assert "/admin/station/chargingsession/add/" not in page  # no Add button


def test_session_list_filters_by_connector_and_by_date(operator: Client) -> None:
    session(1, 3, "CARDONE", 1000)
    session(2, 9, "CARDTWO", 2000)

    by_connector = operator.get("/admin/station/chargingsession/?connector_id=2").content.decode()
    by_date = operator.get("/admin/station/chargingsession/?started_at__year=2025&started_at__month=3"
                           "&started_at__day=3").content.decode()

    assert "CARDTWO" in by_connector and "CARDONE" not in by_connector
    assert "CARDONE" in by_date and "CARDTWO" not in by_date


def test_sessions_cannot_be_added_changed_or_deleted(operator: Client) -> None:
    row = session(1, 3, "AABBCCDD", 1000)
    base = f"/admin/station/chargingsession/{row.pk}"

    assert operator.get("/admin/station/chargingsession/add/").status_code == 403
    assert operator.get(f"{base}/delete/").status_code == 403
    assert operator.post(f"{base}/change/", {"id_tag": "EVIL"}).status_code == 403
    operator.post("/admin/station/chargingsession/", {"action": "delete_selected",
                                                      "_selected_action": [row.pk], "post": "yes"})
    row.refresh_from_db()
    assert row.id_tag == "AABBCCDD"
    assert ChargingSession.objects.count() == 1


def test_session_detail_is_shown_read_only(operator: Client) -> None:
    row = session(1, 3, "AABBCCDD", 1000)

    page = operator.get(f"/admin/station/chargingsession/{row.pk}/change/").content.decode()

    assert "AABBCCDD" in page
    assert 'name="id_tag"' not in page  # shown as text, not as a form field


def test_transactions_and_outbox_are_listed_read_only(operator: Client) -> None:
    Transaction.objects.create(session_id="s1", connector_id=1, id_tag="AABBCCDD", meter_start_wh=0,
                               started_at=datetime(2025, 3, 3, tzinfo=UTC), transaction_id=4711)
    OutboxMessage.objects.create(action="StopTransaction", payload={"transactionId": 4711})

    transactions = operator.get("/admin/station/transaction/")
    outbox = operator.get("/admin/station/outboxmessage/")

    assert transactions.status_code == 200 and "4711" in transactions.content.decode()
    assert outbox.status_code == 200 and "StopTransaction" in outbox.content.decode()
    assert operator.get("/admin/station/outboxmessage/add/").status_code == 403


def test_runtime_settings_are_shown_but_only_smartw_changes_them(operator: Client) -> None:
    row = RuntimeSettings.objects.create(station_operative=False, inoperative_connectors=[2], free_mode=True)

    listing = operator.get("/admin/station/runtimesettings/")
    assert listing.status_code == 200
    assert operator.get("/admin/station/runtimesettings/add/").status_code == 403
    detail = operator.get(f"/admin/station/runtimesettings/{row.pk}/change/").content.decode()
    assert 'name="free_mode"' not in detail  # shown as text, not as a form field
    posted = operator.post(f"/admin/station/runtimesettings/{row.pk}/change/", {"free_mode": ""})
    assert posted.status_code == 403
    assert RuntimeSettings.objects.get(pk=row.pk).free_mode is True


def test_admin_index_links_the_job_dashboard(operator: Client) -> None:
    page = operator.get("/admin/").content.decode()

    assert "/admin/django_rq/dashboard/" in page
