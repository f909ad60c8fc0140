"""DataTransfer from the CSMS (OCPP 1.6 §5.6); the other way is data_transfer_client.py.

A vendorId other than ours is UnknownVendorId, without data; ours (`VENDOR_ID`, the
BootNotification's chargePointVendor, compared without regard to case as a CiString) with a
messageId we do not know is UnknownMessageId. The one message we define:
`ConnectorStates` answers Accepted with a JSON list of every connector's present state from
the bus (connectorId, status, errorCode, powerW, sessionEnergyWh, soc), so a CSMS can read
what the station sees without waiting for StatusNotifications.
"""

from __future__ import annotations

import json
import logging

from ocpp.v16.enums import DataTransferStatus

from bus import Bus, contract
from bus.messages import ConnectorState
from workers.ocpp16.settings import CHARGE_POINT_VENDOR

log = logging.getLogger(__name__)

VENDOR_ID = CHARGE_POINT_VENDOR
CONNECTOR_STATES = "ConnectorStates"


async def answer(bus: Bus, connector_ids: tuple[int, ...], vendor_id: str,
                 message_id: str | None) -> tuple[DataTransferStatus, str | None]:
    """The status and data for a DataTransfer.req from the CSMS."""
    if vendor_id.casefold() != VENDOR_ID.casefold():
        log.info("DataTransfer for vendor %.60r: UnknownVendorId", vendor_id)
        return DataTransferStatus.unknown_vendor_id, None
    if message_id != CONNECTOR_STATES:
        log.info("DataTransfer message %.60r: UnknownMessageId", message_id)
        return DataTransferStatus.unknown_message_id, None
    reads = await bus.get_many([(contract.CONNECTOR, {"connector_id": cid}) for cid in connector_ids])
    states = [_state(cid, read.value) for cid, read in zip(connector_ids, reads, strict=True)]
    return DataTransferStatus.accepted, json.dumps(states, separators=(",", ":"))


def _state(connector_id: int, state: ConnectorState | None) -> dict[str, object]:
    if state is None:  # smartw has not described it (yet): unknown, never a guess
        return {"connectorId": connector_id, "status": None}
    return {"connectorId": connector_id, "status": str(state.status), "errorCode": str(state.error_code),
            "powerW": round(state.power_w), "sessionEnergyWh": round(state.session_energy_wh),
            "soc": state.soc}
