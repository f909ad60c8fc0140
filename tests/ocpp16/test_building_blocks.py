"""The pieces of ocpp16 that need no running service: payloads, settings, back-off, transport."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from websockets.asyncio.server import serve

from bus.enums import StopReason
from bus.messages import SessionStarted, SessionStopped
from workers.ocpp16 import payloads
from workers.ocpp16.settings import Ocpp16Settings, SettingsError
from workers.ocpp16.wsconnect import Backoff, TransportError, TransportSettings, open_connection, redact


def test_times_are_utc_with_milliseconds_and_z() -> None:
    moment = datetime(2024, 1, 1, 14, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2)))
    assert payloads.ocpp_time(moment) == "2024-01-01T12:00:00.123Z"
    assert payloads.ocpp_time(datetime(2024, 1, 1, 12, 0)) == "2024-01-01T12:00:00.000Z"


async def test_transaction_payloads_are_integer_wh_and_valid_ocpp() -> None:
    at = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
    start = payloads.start_transaction(SessionStarted(session_id="s", connector_id=2, id_tag="AB",
                                                      meter_start_wh=1_234_567.5, at=at))
    assert start == {"connectorId": 2, "idTag": "AB", "meterStart": 1_234_568,
                     "timestamp": "2024-05-01T08:30:00.000Z"}
    stop = payloads.stop_transaction(SessionStopped(session_id="s", connector_id=2, meter_stop_wh=99.4,
                                                    reason=StopReason.EMERGENCY_STOP, at=at), 17)
    assert stop == {"meterStop": 99, "timestamp": "2024-05-01T08:30:00.000Z", "reason": "EmergencyStop",
                    "transactionId": 17}
    for action, payload in (("StartTransaction", start), ("StopTransaction", stop)):
        await payloads.check(action, payload)
        assert payloads.to_call(action, payload).__class__.__name__ == action


async def test_invalid_payload_names_the_field() -> None:
    with pytest.raises(payloads.InvalidPayload, match=r"\$\.idTag"):
        await payloads.check("StartTransaction", {"connectorId": 1, "idTag": "X" * 21, "meterStart": 0,
                                                  "timestamp": "2024-01-01T00:00:00.000Z"})


def test_settings_come_from_env_and_ocpp_variables_only_set_key_defaults() -> None:
    settings = Ocpp16Settings.build(csms_url="ws://h:1/ocpp/", charge_point_id="CP", connector_ids=(2, 1),
                                    station_name="A very long station name indeed",
                                    environ={"OCPP_METER_VALUE_SAMPLE_INTERVAL": "2.5",
                                             "OCPP_WEBSOCKET_PING_INTERVAL": " 0 ",
                                             "OCPP_MESSAGE_TIMEOUT": "", "OCPP_RECONNECT_MAX": "0.5"})
    assert settings.csms_url == "ws://h:1/ocpp" and settings.connector_ids == (1, 2)
    assert len(settings.charge_point_model) == 20 and settings.reconnect_max_s == 0.5
    assert settings.config_defaults == {"NumberOfConnectors": "2", "MeterValueSampleInterval": "2.5",
                                        "WebSocketPingInterval": "0"}
    refused = [("OCPP_METER_VALUE_SAMPLE_INTERVAL", "ten", "must be a number, got 'ten'"),
               ("OCPP_METER_VALUE_SAMPLE_INTERVAL", "-1", "must be at least 0"),
               ("OCPP_TRANSACTION_MESSAGE_ATTEMPTS", "2.5", "must be an integer"),
               ("OCPP_RECONNECT_MAX", "0", "must be between 0.1 and 3600")]
    for variable, bad, rule in refused:
        with pytest.raises(SettingsError, match=f"{variable} {rule}"):
            Ocpp16Settings.build(csms_url="ws://h", charge_point_id="CP", connector_ids=(1,),
                                 station_name="s", environ={variable: bad})


def test_backoff_grows_to_the_cap_with_a_random_part_and_resets() -> None:
    backoff = Backoff(1.0, 8.0, rng=lambda: 1.0)
    assert [backoff.next() for _ in range(5)] == [1.5, 3.0, 6.0, 12.0, 12.0]
    backoff.reset()
    assert Backoff(1.0, 8.0, rng=lambda: 0.0).next() == 1.0 and backoff.next() == 1.5


def test_endpoint_percent_encodes_the_id_and_logs_hide_credentials() -> None:
    settings = TransportSettings("ws://user:secret@csms.example:8080/ocpp/", "RDAM 123/A")
    assert settings.endpoint == "ws://user:secret@csms.example:8080/ocpp/RDAM%20123%2FA"
    assert redact(settings.endpoint) == "ws://csms.example:8080/ocpp/RDAM%20123%2FA"


async def test_a_server_that_does_not_select_ocpp16_is_refused() -> None:
    async def handler(ws) -> None:
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:  # offers no subprotocol
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(TransportError, match="subprotocol"):
            await asyncio.wait_for(open_connection(TransportSettings(f"ws://127.0.0.1:{port}", "CP")), 5)
