"""The HMI websocket through the real ASGI app and the real Redis: snapshot, live changes,
start/stop buttons, and refusals of anything else."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bus import Bus, NotReadyError, contract
from bus.enums import AuthorizationStatus, ConnectorStatus, ReplyError, Standard, StartSource, StopReason
from bus.messages import (
    AuthResult,
    ConnectorState,
    OcppLink,
    OcppTransaction,
    StartRequest,
    StationState,
    StopRequest,
)
from tests.support.asgi_websocket import WebsocketCommunicator
from tests.support.waiting import async_wait_until
from tests.webapp.conftest import FakeSmartw
from workers.common.redis_server import free_port

RECEIVE_S = 5.0


async def connect(hmi: WebsocketCommunicator) -> dict[str, Any]:
    """Open the socket and return the snapshot it sends first."""
    connected, _ = await hmi.connect(timeout=RECEIVE_S)
    assert connected
    snapshot = await hmi.receive_json_from(timeout=RECEIVE_S)
    assert snapshot["type"] == "snapshot"
    return snapshot


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

    second = WebsocketCommunicator(application, "/ws/hmi/")
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


async def test_stop_button_asks_smartw_for_a_local_stop(
        fake_smartw: FakeSmartw, hmi: WebsocketCommunicator) -> None:
    await connect(hmi)
    await hmi.send_json_to({"action": "stop", "connector_id": 1})

    message = await hmi.receive_json_from(timeout=RECEIVE_S)

    assert fake_smartw.stops == [StopRequest(connector_id=1, reason=StopReason.LOCAL)]
    assert (message["type"], message["accepted"], message["reason"]) == ("action_result", True, "stopping")


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

    await hmi.send_json_to({"action": "stop", "connector_id": 1})
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
