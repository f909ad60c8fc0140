"""DataTransfer both ways: the CSMS asks the station (answered by workers/ocpp16/data_transfer.py);
the station asks the CSMS through the bus command and `manage.py ocpp data-transfer`."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest
from django.core.management import CommandError, call_command
from ocpp.v16 import call
from ocpp.v16.enums import DataTransferStatus

from bus import Bus, contract
from bus.enums import ConnectorStatus, Standard
from bus.messages import ConnectorState, DataTransferReply, DataTransferRequest
from tests.ocpp16.conftest import CHARGE_POINT_ID
from webapp.env import REPO_ROOT
from workers.ocpp16.data_transfer import CONNECTOR_STATES, VENDOR_ID
from workers.sim.csms import Csms

CLI_TIMEOUT_S = 60.0
CSMS_VENDOR = "com.example.csms"


async def _online(csms: Csms, start_ocpp16) -> None:
    start_ocpp16(csms.url)
    await csms.wait_for_call("StatusNotification", count=3, timeout_s=20)


async def _cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "manage.py", "ocpp", "data-transfer", *args, cwd=REPO_ROOT, env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_csms_hears_unknown_vendor_unknown_message_and_the_connector_states(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    """OCTT TC_062_CS (DataTransfer to a charge point): an unknown vendor -> UnknownVendorId
    without data."""
    await bus.set(contract.CONNECTOR, ConnectorState(connector_id=1, standard=Standard.CCS,
                                                     status=ConnectorStatus.CHARGING, power_w=48_700.4,
                                                     session_energy_wh=5_210.0, soc=63.0), connector_id=1)
    await _online(csms, start_ocpp16)

    unknown_vendor = await csms.send(CHARGE_POINT_ID, call.DataTransfer(
        vendor_id="com.example.other", message_id=CONNECTOR_STATES, data="x"))
    assert (unknown_vendor.status, unknown_vendor.data) == (DataTransferStatus.unknown_vendor_id, None)
    unknown_message = await csms.send(CHARGE_POINT_ID, call.DataTransfer(vendor_id=VENDOR_ID.upper(),
                                                                         message_id="Reboot"))
    assert unknown_message.status == DataTransferStatus.unknown_message_id
    no_message = await csms.send(CHARGE_POINT_ID, call.DataTransfer(vendor_id=VENDOR_ID))
    assert no_message.status == DataTransferStatus.unknown_message_id

    states = await csms.send(CHARGE_POINT_ID, call.DataTransfer(vendor_id=VENDOR_ID,
                                                                message_id=CONNECTOR_STATES))
    assert states.status == DataTransferStatus.accepted
    assert json.loads(states.data) == [
        {"connectorId": 1, "status": "Charging", "errorCode": "NoError", "powerW": 48_700,
         "sessionEnergyWh": 5_210, "soc": 63.0},
        {"connectorId": 2, "status": None},  # smartw has not described it: unknown, not guessed
    ]


async def test_the_station_sends_a_data_transfer_and_returns_the_csms_answer(
        bus: Bus, csms: Csms, start_ocpp16) -> None:
    csms.behaviour.data_transfer_status = DataTransferStatus.accepted
    await _online(csms, start_ocpp16)

    reply = await bus.request(contract.OCPP_DATA_TRANSFER, DataTransferRequest(
        vendor_id="com.example.csms", message_id="Hello", data='{"a": 1}'))
    assert reply == DataTransferReply(status="Accepted")
    sent = await csms.wait_for_call("DataTransfer")
    assert sent.payload == {"vendorId": "com.example.csms", "messageId": "Hello", "data": '{"a": 1}'}

    csms.behaviour.failures["DataTransfer"] = 1
    refused = await bus.request(contract.OCPP_DATA_TRANSFER, DataTransferRequest(vendor_id=CSMS_VENDOR))
    assert refused.status is None and refused.failure == "call_error" and "InternalError" in refused.detail

    code, out, err = await _cli("com.example.csms", "--message-id", "Hello")
    assert (code, out.strip()) == (0, "Accepted"), err
    csms.behaviour.data_transfer_status = DataTransferStatus.unknown_vendor_id
    code, out, err = await _cli("com.example.other")
    assert (code, out.strip()) == (1, "UnknownVendorId")
    assert "the CSMS answered UnknownVendorId" in err


async def test_without_a_csms_the_answer_says_offline(bus: Bus, csms: Csms, start_ocpp16) -> None:
    await _online(csms, start_ocpp16)
    await csms.stop()

    async def offline() -> DataTransferReply:
        return await bus.request(contract.OCPP_DATA_TRANSFER, DataTransferRequest(vendor_id=CSMS_VENDOR))

    reply = await offline()
    for _ in range(50):  # the station notices the closed socket within moments
        if reply.failure == "offline":
            break
        await asyncio.sleep(0.1)
        reply = await offline()
    assert reply.failure == "offline" and reply.status is None
    code, _, err = await _cli("com.example.csms")
    assert code == 1 and "no answer from the CSMS: offline" in err
    await csms.start()  # so ocpp16 can close cleanly


@pytest.mark.parametrize("args, message", [
    (["com.example.csms"], "ocpp16 is not running"),
    (["x" * 256], "1 to 255 characters"),
    (["com.example.csms", "--message-id", "m" * 51], "1 to 50 characters"),
    ([""], "1 to 255 characters"),
])
def test_the_command_says_when_ocpp16_is_not_running_and_refuses_bad_arguments(redis_client, args: list[str],
                                                                          message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("ocpp", "data-transfer", *args)
