"""The central system's side of one connected charge point: how the test CSMS answers each
CALL a charge point sends (workers/sim/csms.py owns the server and the record)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import InternalError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    DataTransferStatus,
    GenericStatus,
    RegistrationStatus,
)

if TYPE_CHECKING:
    from workers.sim.csms import Csms, RecordingConnection

log = logging.getLogger(__name__)
_library_log = logging.getLogger(f"{__name__}.library")
_library_log.setLevel(logging.WARNING)  # the library logs every frame at INFO; we log them ourselves


def ocpp_time(moment: datetime | None = None) -> str:
    """UTC time as OCPP wants it: ISO 8601 with milliseconds and `Z`."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class CsmsBehaviour:
    """How the CSMS answers; tests may change it while it runs."""

    heartbeat_interval_s: int = 300
    registration: RegistrationStatus = RegistrationStatus.accepted
    rejected_id_tags: set[str] = field(default_factory=set)
    parent_id_tags: dict[str, str] = field(default_factory=dict)  # idTag -> parentIdTag of its answers
    known_charge_points: set[str] | None = None  # None = accept any id; else others get HTTP 404
    # charge point id -> the Basic password (bytes) it must present, else HTTP 401; others: no check
    basic_auth_passwords: dict[str, bytes] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)  # action -> CALLERRORs still to inject
    unanswered: dict[str, int] = field(default_factory=dict)  # action -> CALLs still to leave unanswered
    data_transfer_status: DataTransferStatus = DataTransferStatus.unknown_vendor_id
    sign_certificate_status: GenericStatus = GenericStatus.accepted

    def take_failure(self, action: str) -> bool:
        return _take(self.failures, action)

    def take_unanswered(self, action: str) -> bool:
        return _take(self.unanswered, action)


def _take(counts: dict[str, int], action: str) -> bool:
    left = counts.get(action, 0)
    if left > 0:
        counts[action] = left - 1
    return left > 0


class CentralSystemChargePoint(ChargePoint):
    """One connected charge point, seen from the central system."""

    def __init__(self, charge_point_id: str, connection: RecordingConnection, csms: Csms) -> None:
        super().__init__(charge_point_id, connection, response_timeout=10, logger=_library_log)
        self._csms = csms

    def _id_tag_info(self, id_tag: str) -> dict[str, str]:
        behaviour = self._csms.behaviour
        rejected = {tag.upper() for tag in behaviour.rejected_id_tags}
        status = AuthorizationStatus.invalid if id_tag.upper() in rejected else AuthorizationStatus.accepted
        parents = {tag.upper(): parent for tag, parent in behaviour.parent_id_tags.items()}
        parent = parents.get(id_tag.upper())
        return {"status": status} | ({"parent_id_tag": parent} if parent else {})

    def _maybe_fail(self, action: Action) -> None:
        if self._csms.behaviour.take_failure(action):
            raise InternalError(description=f"failure injected by the test CSMS for {action}")

    @on(Action.boot_notification)
    def on_boot_notification(self, **_: Any) -> call_result.BootNotification:
        self._maybe_fail(Action.boot_notification)
        behaviour = self._csms.behaviour
        return call_result.BootNotification(current_time=ocpp_time(),
                                            interval=behaviour.heartbeat_interval_s,
                                            status=behaviour.registration)

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=ocpp_time())

    @on(Action.status_notification)
    def on_status_notification(self, **_: Any) -> call_result.StatusNotification:
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **_: Any) -> call_result.Authorize:
        self._maybe_fail(Action.authorize)
        return call_result.Authorize(id_tag_info=self._id_tag_info(id_tag))

    @on(Action.start_transaction)
    def on_start_transaction(self, id_tag: str, **_: Any) -> call_result.StartTransaction:
        self._maybe_fail(Action.start_transaction)
        return call_result.StartTransaction(transaction_id=self._csms.next_transaction_id(),
                                            id_tag_info=self._id_tag_info(id_tag))

    @on(Action.meter_values)
    def on_meter_values(self, **_: Any) -> call_result.MeterValues:
        self._maybe_fail(Action.meter_values)
        return call_result.MeterValues()

    @on(Action.stop_transaction)
    def on_stop_transaction(self, id_tag: str | None = None, **_: Any) -> call_result.StopTransaction:
        self._maybe_fail(Action.stop_transaction)
        return call_result.StopTransaction(id_tag_info=self._id_tag_info(id_tag) if id_tag else None)

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_: Any) -> call_result.DataTransfer:
        self._maybe_fail(Action.data_transfer)
        return call_result.DataTransfer(status=self._csms.behaviour.data_transfer_status)

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status_notification(self, **_: Any) -> call_result.DiagnosticsStatusNotification:
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status_notification(self, **_: Any) -> call_result.FirmwareStatusNotification:
        return call_result.FirmwareStatusNotification()

    @on(Action.security_event_notification)
    def on_security_event_notification(self, **_: Any) -> call_result.SecurityEventNotification:
        self._maybe_fail(Action.security_event_notification)
        return call_result.SecurityEventNotification()

    @on(Action.log_status_notification)
    def on_log_status_notification(self, **_: Any) -> call_result.LogStatusNotification:
        return call_result.LogStatusNotification()

    @on(Action.signed_firmware_status_notification)
    def on_signed_firmware_status_notification(
            self, **_: Any) -> call_result.SignedFirmwareStatusNotification:
        return call_result.SignedFirmwareStatusNotification()

    @on(Action.sign_certificate)
    def on_sign_certificate(self, csr: str, **_: Any) -> call_result.SignCertificate:
        return call_result.SignCertificate(status=self._csms.behaviour.sign_certificate_status)
