"""The HMI websocket through the real ASGI app and the real Redis: kiosk settings, snapshot,
live changes, session summaries, start/stop buttons (with the operator's rule that Stop needs
the session's card), and refusals of anything else."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from bus import Bus, NotReadyError, contract
from bus.enums import AuthorizationStatus, ConnectorStatus, ReplyError, Standard, StartSource, StopReason
from bus.messages import (
    AuthResult,
    ConnectorState,
    HmiSettings,
    OcppLink,
    OcppTransaction,
    QrLink,
    StartRequest,
    StationState,
    StopRequest,
    utcnow,
)
from tests.support.asgi_websocket import WebsocketCommunicator
from tests.support.waiting import async_wait_until
from tests.webapp.conftest import FakeSmartw
from workers.common.redis_server import free_port

RECEIVE_S = 5.0
QUIET_S = 2.5  # over two polls of the keys (consumers.KEYS_POLL_S): long enough to see nothing comes


async def connect_for_kiosk(hmi: WebsocketCommunicator) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open the socket; return the kiosk settings and the snapshot it sends, in that order."""
    connected, _ = await hmi.connect(timeout=RECEIVE_S)
    assert connected
    kiosk = await hmi.receive_json_from(timeout=RECEIVE_S)
    assert kiosk["type"] == "kiosk"
    snapshot = await hmi.receive_json_from(timeout=RECEIVE_S)
    assert snapshot["type"] == "snapshot"
    return kiosk["kiosk"], snapshot


async def connect(hmi: WebsocketCommunicator) -> dict[str, Any]:
    """Open the socket and return its snapshot."""
    return (await connect_for_kiosk(hmi))[1]


def charging(connector_id: int = 1, **changes: Any) -> ConnectorState:
    values: dict[str, Any] = {
        "connector_id": connector_id, "standard": Standard.CCS, "status": ConnectorStatus.CHARGING,
        "plugged": True, "contactor_closed": True, "power_w": 50_000, "session_energy_wh": 12_345,
        "soc": 42, "target_soc": 80, "session_id": "s1", "id_tag": "AABBCCDD",
    }
    values.update(changes)
    return ConnectorState(**values)


async def test_snapshot_shows_the_station_and_every_configured_connector(
        bus: Bus, hmi: WebsocketCommunicator) -> None:
    await bus.set(contract.CONNECTOR, charging(), connector_id=1)
    await bus.set(contract.OCPP_TRANSACTION, OcppTransaction(connector_id=1, session_id="s1",
                                                             transaction_id=42), connector_id=1)
    await bus.set(contract.STATION, StationState(status=ConnectorStatus.AVAILABLE, estop=False,
                                                 io_online=True))
    await bus.set(contract.OCPP_LINK, OcppLink(connected=True, registration="Accepted",
                                               csms_url="wss://cp:secret@csms.example/ocpp"))

    snapshot = await connect(hmi)

    one, two, *others = snapshot["connectors"]
    assert [(c["id"], c["standard"]) for c in others] == [(3, "CHAdeMO"), (4, "GBT")]
    assert (one["id"], one["standard"], one["status"]) == (1, "CCS", "Charging")
    assert (one["power_w"], one["session_energy_wh"]) == (50_000, 12_345)
    assert (one["soc"], one["target_soc"]) == (42, 80)
    assert one["transaction_id"] == 42
    assert "id_tag" not in one  # card numbers are not shown on a public screen
    assert (two["id"], two["standard"], two["status"]) == (2, "Type2", "Unknown")  # never written
    station = snapshot["station"]
    assert (station["status"], station["estop"], station["io_online"]) == ("Available", False, True)
    assert station["ocpp"]["connected"] is True
    assert station["ocpp"]["csms_url"] == "wss://csms.example/ocpp"  # password not sent


async def test_connector_change_published_on_the_bus_reaches_the_socket(
        bus: Bus, hmi: WebsocketCommunicator) -> None:
    await connect(hmi)
    await bus.publish(contract.CONNECTOR_CHANGES, charging(power_w=71_500, soc=55))

    message = await hmi.receive_json_from(timeout=RECEIVE_S)

    assert message["type"] == "connector"
    assert (message["connector"]["id"], message["connector"]["power_w"]) == (1, 71_500)
    assert message["connector"]["soc"] == 55


async def test_every_open_screen_sees_every_change(bus: Bus, hmi: WebsocketCommunicator) -> None:
    from webapp.asgi import application

    second = WebsocketCommunicator(application, "/ws/hmi/")  # from the kiosk's origin, as by default
    try:
        await connect(hmi)
        await connect(second)
        await bus.publish(contract.CONNECTOR_CHANGES, charging(status=ConnectorStatus.SUSPENDED_EV))
        for screen in (hmi, second):
            message = await screen.receive_json_from(timeout=RECEIVE_S)
            assert message["connector"]["status"] == "SuspendedEV"
    finally:
        await second.disconnect()


async def test_card_result_reaches_the_socket_without_the_card_number(
        bus: Bus, hmi: WebsocketCommunicator) -> None:
    await connect(hmi)
    await bus.publish(contract.AUTH_RESULTS, AuthResult(connector_id=2, id_tag="DEADBEEF",
                                                        status=AuthorizationStatus.BLOCKED))

    message = await hmi.receive_json_from(timeout=RECEIVE_S)

    assert message == {"type": "auth", "connector_id": 2, "status": "Blocked"}


async def test_emergency_stop_on_the_station_key_is_pushed_to_the_socket(
        bus: Bus, hmi: WebsocketCommunicator) -> None:
    await bus.set(contract.STATION, StationState(status=ConnectorStatus.AVAILABLE, estop=False,
                                                 io_online=True))
    await connect(hmi)
    await bus.set(contract.STATION, StationState(status=ConnectorStatus.UNAVAILABLE, estop=True,
                                                 io_online=True))

    message = await hmi.receive_json_from(timeout=RECEIVE_S)

    assert message["type"] == "station"
    assert (message["station"]["status"], message["station"]["estop"]) == ("Unavailable", True)


async def test_start_button_asks_smartw_to_start_and_wait_for_a_card(
        fake_smartw: FakeSmartw, hmi: WebsocketCommunicator) -> None:
    await connect(hmi)
    await hmi.send_json_to({"action": "start", "connector_id": 2})

    message = await hmi.receive_json_from(timeout=RECEIVE_S)

    assert fake_smartw.starts == [StartRequest(connector_id=2, id_tag=None, source=StartSource.HMI)]
    assert message == {"type": "action_result", "action": "start", "connector_id": 2,
                       "accepted": True, "reason": "present_card"}


async def test_stop_button_asks_smartw_for_a_local_stop_when_the_operator_allows_it(
        bus: Bus, fake_smartw: FakeSmartw, hmi: WebsocketCommunicator) -> None:
    await bus.set(contract.HMI_SETTINGS, HmiSettings(stop_needs_card=False))
    await bus.set(contract.CONNECTOR, charging(), connector_id=1)
    await connect(hmi)
    await hmi.send_json_to({"action": "stop", "connector_id": 1})

    message = await hmi.receive_json_from(timeout=RECEIVE_S)

    assert fake_smartw.stops == [StopRequest(connector_id=1, reason=StopReason.LOCAL)]
    assert (message["type"], message["accepted"], message["reason"]) == ("action_result", True, "stopping")


@pytest.mark.parametrize("settings", [HmiSettings(stop_needs_card=True), None], ids=["configured", "default"])
async def test_stop_of_a_running_session_is_refused_while_it_needs_the_card(
        bus: Bus, fake_smartw: FakeSmartw, hmi: WebsocketCommunicator, settings: HmiSettings | None) -> None:
    if settings is not None:
        await bus.set(contract.HMI_SETTINGS, settings)
    await bus.set(contract.STATION, StationState(status=ConnectorStatus.AVAILABLE, estop=False,
                                                 io_online=True))
    await bus.set(contract.CONNECTOR, charging(), connector_id=1)
    await connect(hmi)
    await hmi.send_json_to({"action": "stop", "connector_id": 1})

    message = await hmi.receive_json_from(timeout=RECEIVE_S)

    assert message == {"type": "action_result", "action": "stop", "connector_id": 1, "accepted": False,
                       "reason": "present_start_card"}
    assert fake_smartw.stops == []


async def test_stop_is_refused_when_the_connector_state_cannot_be_read(
        fake_smartw: FakeSmartw, hmi: WebsocketCommunicator) -> None:
    await connect(hmi)  # no connector key: a session may run there for all the web service knows
    await hmi.send_json_to({"action": "stop", "connector_id": 2})

    message = await hmi.receive_json_from(timeout=RECEIVE_S)

    assert (message["accepted"], message["reason"]) == (False, "present_start_card")
    assert fake_smartw.stops == []


@pytest.mark.parametrize("case", ["start waiting for a card", "free mode"])
async def test_stop_needs_no_card_to_cancel_a_waiting_start_or_in_free_mode(
        bus: Bus, fake_smartw: FakeSmartw, hmi: WebsocketCommunicator, case: str) -> None:
    await bus.set(contract.HMI_SETTINGS, HmiSettings(stop_needs_card=True))
    free = case == "free mode"
    await bus.set(contract.STATION, StationState(status=ConnectorStatus.AVAILABLE, estop=False,
                                                 io_online=True, free_mode=free))
    state = charging(id_tag="FREEMODE") if free else ConnectorState(
        connector_id=1, standard=Standard.CCS, status=ConnectorStatus.PREPARING, plugged=True,
        awaiting_card=True)
    await bus.set(contract.CONNECTOR, state, connector_id=1)
    await connect(hmi)
    await hmi.send_json_to({"action": "stop", "connector_id": 1})

    message = await hmi.receive_json_from(timeout=RECEIVE_S)

    assert fake_smartw.stops == [StopRequest(connector_id=1, reason=StopReason.LOCAL)]
    assert (message["accepted"], message["reason"]) == (True, "stopping")


async def test_a_setting_changed_after_connect_applies_to_the_next_stop(
        bus: Bus, fake_smartw: FakeSmartw, hmi: WebsocketCommunicator) -> None:
    await bus.set(contract.HMI_SETTINGS, HmiSettings(stop_needs_card=False))
    await bus.set(contract.CONNECTOR, charging(), connector_id=1)
    await connect(hmi)
    await bus.set(contract.HMI_SETTINGS, HmiSettings(stop_needs_card=True))
    await hmi.send_json_to({"action": "stop", "connector_id": 1})

    message = await hmi.receive_json_from(timeout=RECEIVE_S)

    assert (message["accepted"], message["reason"]) == (False, "present_start_card")
    assert fake_smartw.stops == []


async def test_kiosk_settings_come_first_with_the_defaults_when_none_are_on_the_bus(
        hmi: WebsocketCommunicator) -> None:
    kiosk, _ = await connect_for_kiosk(hmi)

    assert kiosk == {"language": "en", "qr_codes": [], "connector_codes": []}


async def test_kiosk_settings_bring_the_language_and_only_the_configured_qr_codes(
        bus: Bus, hmi: WebsocketCommunicator) -> None:
    await bus.set(contract.HMI_SETTINGS, HmiSettings(
        language="ru", qr_links=(QrLink(key="feedback", url="https://feedback.example/s"),),
        connector_link="https://app.example/go/{charge_point_id}/{connector_id}"))

    kiosk, _ = await connect_for_kiosk(hmi)

    assert kiosk["language"] == "ru"
    assert [(code["key"], code["url"]) for code in kiosk["qr_codes"]] == [("feedback", "https://feedback.example/s")]
    links = [(entry["connector_id"], entry["code"]["url"]) for entry in kiosk["connector_codes"]]
    assert links == [(n, f"https://app.example/go/SIM-0001/{n}") for n in (1, 2, 3, 4)]
    images = [kiosk["qr_codes"][0]["image"], *(entry["code"]["image"] for entry in kiosk["connector_codes"])]
    assert all(image.startswith("data:image/svg+xml;base64,") for image in images)
    assert len(set(images)) == len(images)


async def test_changed_kiosk_settings_are_pushed_and_a_mere_refresh_is_not(
        bus: Bus, hmi: WebsocketCommunicator) -> None:
    settings = HmiSettings(qr_links=(QrLink(key="feedback", url="https://feedback.example/a"),))
    await bus.set(contract.HMI_SETTINGS, settings)
    await connect(hmi)

    await bus.set(contract.HMI_SETTINGS, settings.model_copy(update={"at": utcnow()}))  # the 5 s refresh
    assert await hmi.receive_nothing(timeout=QUIET_S)
    await bus.set(contract.HMI_SETTINGS, HmiSettings(
        language="ru", qr_links=(QrLink(key="feedback", url="https://feedback.example/b"),)))

    message = await hmi.receive_json_from(timeout=RECEIVE_S)
    assert message["type"] == "kiosk"
    assert message["kiosk"]["language"] == "ru"
    assert [code["url"] for code in message["kiosk"]["qr_codes"]] == ["https://feedback.example/b"]


async def test_the_end_of_a_session_sends_its_energy_and_duration(
        bus: Bus, hmi: WebsocketCommunicator) -> None:
    started = utcnow() - timedelta(minutes=42)
    await bus.set(contract.CONNECTOR, charging(session_started_at=started,
                                               at=started + timedelta(minutes=41)), connector_id=1)
    await connect(hmi)
    await bus.publish(contract.CONNECTOR_CHANGES, charging(
        session_energy_wh=23_456, session_started_at=started, at=started + timedelta(minutes=41, seconds=50)))
    await bus.publish(contract.CONNECTOR_CHANGES, ConnectorState(
        connector_id=1, standard=Standard.CCS, status=ConnectorStatus.FINISHING, plugged=True,
        info="unplug_ev", at=started + timedelta(minutes=42)))

    messages = [await hmi.receive_json_from(timeout=RECEIVE_S) for _ in range(3)]

    assert [message["type"] for message in messages] == ["connector", "connector", "session_summary"]
    assert messages[2] == {"type": "session_summary", "connector_id": 1, "energy_wh": 23_456,
                           "duration_s": 42 * 60}


async def test_no_summary_without_a_session_or_for_a_state_older_than_the_one_shown(
        bus: Bus, hmi: WebsocketCommunicator) -> None:
    now = utcnow()
    idle = ConnectorState(connector_id=1, standard=Standard.CCS, status=ConnectorStatus.AVAILABLE, at=now)
    await bus.set(contract.CONNECTOR, idle, connector_id=1)
    await connect(hmi)
    await bus.publish(contract.CONNECTOR_CHANGES, charging(at=now - timedelta(seconds=5)))  # late, stale
    await bus.publish(contract.CONNECTOR_CHANGES, idle.model_copy(update={"at": now + timedelta(seconds=1)}))

    messages = [await hmi.receive_json_from(timeout=RECEIVE_S) for _ in range(2)]

    assert [message["type"] for message in messages] == ["connector", "connector"]
    assert await hmi.receive_nothing(timeout=0.5)


async def test_smartw_failure_becomes_an_error_with_the_closed_code(
        fake_smartw: FakeSmartw, hmi: WebsocketCommunicator) -> None:
    fake_smartw.failure = NotReadyError("hardware not polled yet")
    await connect(hmi)
    await hmi.send_json_to({"action": "start", "connector_id": 1})

    message = await hmi.receive_json_from(timeout=RECEIVE_S)

    assert (message["type"], message["code"], message["connector_id"]) == ("error", ReplyError.NOT_READY, 1)


@pytest.mark.parametrize(("frame", "code"), [
    ("not json", "Malformed"),
    ("[1, 2]", "Malformed"),
    ('{"connector_id": 1}', "Malformed"),
    ('{"action": "fly", "connector_id": 1}', "UnknownAction"),
    ('{"action": "start"}', "Malformed"),
    ('{"action": "start", "connector_id": "1"}', "Malformed"),
    ('{"action": "start", "connector_id": 1.5}', "Malformed"),
    ('{"action": "stop", "connector_id": 1, "id_tag": "AA"}', "Malformed"),
    ('{"action": "start", "connector_id": 9}', "UnknownConnector"),
    ('{"action": "start", "connector_id": 0}', "UnknownConnector"),
    (b"\x00\x01", "Malformed"),
])
async def test_bad_input_gets_an_error_and_the_socket_keeps_working(
        fake_smartw: FakeSmartw, hmi: WebsocketCommunicator, frame: str | bytes, code: str) -> None:
    await connect(hmi)
    if isinstance(frame, bytes):
        await hmi.send_to(bytes_data=frame)
    else:
        await hmi.send_to(text_data=frame)

    error = await hmi.receive_json_from(timeout=RECEIVE_S)
    assert (error["type"], error["code"]) == ("error", code)
    assert fake_smartw.starts == [] and fake_smartw.stops == []

    await hmi.send_json_to({"action": "start", "connector_id": 1})
    after = await hmi.receive_json_from(timeout=RECEIVE_S)
    assert (after["type"], after["accepted"]) == ("action_result", True)


async def test_invalid_value_in_a_key_shows_that_connector_as_unknown(
        bus: Bus, hmi: WebsocketCommunicator, redis_client) -> None:
    redis_client.set(bus.names.key(contract.CONNECTOR.format(connector_id=1)), '{"status": "Bogus"}')
    await bus.set(contract.CONNECTOR, charging(connector_id=2, standard=Standard.TYPE2), connector_id=2)

    snapshot = await connect(hmi)

    assert [c["status"] for c in snapshot["connectors"]] == ["Unknown", "Charging", "Unknown", "Unknown"]


async def test_lost_redis_closes_the_socket_so_the_page_reconnects(
        hmi: WebsocketCommunicator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    connected, _ = await hmi.connect(timeout=RECEIVE_S)
    assert connected

    error = await hmi.receive_json_from(timeout=RECEIVE_S)
    closed = await hmi.receive_output(timeout=RECEIVE_S)

    assert (error["type"], error["code"]) == ("error", "BusUnavailable")
    assert closed == {"type": "websocket.close", "code": 1011}


async def test_closing_the_socket_stops_its_background_feeds(hmi: WebsocketCommunicator) -> None:
    await connect(hmi)

    def feeds() -> list[asyncio.Task[Any]]:
        return [task for task in asyncio.all_tasks() if "_guard" in repr(task.get_coro())]

    assert feeds()
    await hmi.disconnect()

    async def none_left() -> bool:
        return not feeds()

    await async_wait_until(none_left, timeout_s=5, what="the feeds to be cancelled")
