"""StatusNotification for connector 0 and every connector (OCPP 1.6 §4.9; errata 3.19, 3.22).

The latest state of each connector is kept from smartw's keys and its change stream (consumed
with a consumer group, whether or not the CSMS is reachable); connector 0 comes from the
station key, polled because no stream carries it. After a BootNotification is Accepted every
connector is reported; after a reconnect only the connectors whose status or error code differs
from what the CSMS was last told; while connected, every transition of status or error code,
in order. A connector smartw has not described yet is reported Unavailable until it is.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from ocpp.v16 import call
from ocpp.v16.enums import ChargePointErrorCode, ChargePointStatus

from bus import Bus, contract
from bus.enums import ConnectorStatus
from bus.messages import ConnectorState, StationState
from workers.ocpp16.payloads import ocpp_time
from workers.ocpp16.protocol import CallFailure, CsmsCallError, CsmsConnection

log = logging.getLogger(__name__)

GROUP = "ocpp16"
RETRY_S = 10.0  # a StatusNotification the CSMS refused is tried again after this
MAX_PENDING = 500  # transitions kept while they cannot be sent
MAX_INFO_CHARS = 50  # StatusNotification.info and vendorErrorCode limit
CONNECTOR_0_STATUSES = {ConnectorStatus.AVAILABLE, ConnectorStatus.UNAVAILABLE, ConnectorStatus.FAULTED}
UNKNOWN_AT = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Reported:
    """What a StatusNotification says about one connector."""

    status: str
    error_code: str
    info: str | None
    at: datetime
    vendor_error_code: str | None = None  # the device's own code (e.g. a controller's)

    @property
    def key(self) -> tuple[str, str]:
        return self.status, self.error_code


UNKNOWN = Reported(ChargePointStatus.unavailable, ChargePointErrorCode.no_error, None, UNKNOWN_AT)


def from_connector(state: ConnectorState) -> Reported:
    vendor_code = state.vendor_error_code[:MAX_INFO_CHARS] if state.vendor_error_code else None
    return Reported(str(state.status), str(state.error_code), state.info[:MAX_INFO_CHARS] or None, state.at,
                    vendor_code)


def from_station(state: StationState) -> Reported:
    """Connector 0 knows only Available / Unavailable / Faulted."""
    status = state.status if state.status in CONNECTOR_0_STATUSES else ConnectorStatus.AVAILABLE
    faulted = status is ConnectorStatus.FAULTED
    error = ChargePointErrorCode.other_error if faulted else ChargePointErrorCode.no_error
    return Reported(str(status), str(error), "estop" if state.estop else None, state.at)


class StatusReporter:
    def __init__(self, bus: Bus, connector_ids: tuple[int, ...]) -> None:
        self._bus = bus
        self._ids = (0, *connector_ids)
        self._current: dict[int, Reported] = dict.fromkeys(self._ids, UNKNOWN)
        self._sent: dict[int, tuple[str, str]] = {}  # what the CSMS was last told
        self._queued: dict[int, tuple[str, str]] = {}  # the last transition waiting or sent
        self._pending: list[tuple[int, Reported]] = []  # transitions not yet sent, in order
        self._changed = asyncio.Event()

    def apply(self, connector_id: int, reported: Reported) -> None:
        """Take a newer state (a replayed older one is ignored); queue it if it is a transition."""
        if connector_id not in self._current:
            log.warning("state of connector %s, which station.toml does not have, ignored", connector_id)
            return
        if reported.at < self._current[connector_id].at:
            return
        self._current[connector_id] = reported
        if self._queued.get(connector_id) != reported.key:
            self._queued[connector_id] = reported.key
            self._pending.append((connector_id, reported))
            self._changed.set()
            if len(self._pending) > MAX_PENDING:  # long offline: only the present state matters
                self.resync()

    def resync(self) -> None:
        """Keep only the current state of each connector the CSMS has not heard (after a
        reconnect or a failure: no historic states, OCPP 1.6 §4.9)."""
        self._pending = [(cid, now) for cid, now in self._current.items() if self._sent.get(cid) != now.key]
        self._queued = {cid: now.key for cid, now in self._current.items()}
        self._changed.set()

    def queue_current(self, connector_id: int | None = None) -> bool:
        """Queue the current state of connector N (None: connector 0 and every connector) even
        if the CSMS has heard it (TriggerMessage asks for current information); sent after the
        transitions already waiting, so the CSMS ends with the present state. False for a
        connector station.toml does not have (nothing queued)."""
        ids = self._ids if connector_id is None else (connector_id,)
        if any(cid not in self._current for cid in ids):
            return False
        for cid in ids:
            self._pending.append((cid, self._current[cid]))
            self._queued[cid] = self._current[cid].key
        self._changed.set()
        return True

    def forget_sent(self) -> None:
        """After a BootNotification the CSMS must hear about every connector again."""
        self._sent.clear()
        self.resync()

    async def load_keys(self) -> None:
        station = await self._bus.get(contract.STATION)
        if station is not None:
            self.apply(0, from_station(station))
        for connector_id in self._ids[1:]:
            state = await self._bus.get(contract.CONNECTOR, connector_id=connector_id)
            if state is not None:
                self.apply(connector_id, from_connector(state))

    async def watch(self, consumer: str) -> None:
        """Follow smartw's connector changes (always running)."""
        await self.load_keys()
        async for delivery in self._bus.consume(contract.CONNECTOR_CHANGES, GROUP, consumer):
            if delivery is not None:
                state: ConnectorState = delivery.message
                self.apply(state.connector_id, from_connector(state))
                await delivery.ack()

    async def watch_station(self, consumer: str) -> None:
        """Follow smartw's station changes (connector 0), every one of them: an e-stop
        pressed and released within a second is still reported."""
        async for delivery in self._bus.consume(contract.STATION_CHANGES, GROUP, consumer):
            if delivery is not None:
                self.apply(0, from_station(delivery.message))
                await delivery.ack()

    async def run(self, connection: CsmsConnection) -> None:
        """Report transitions over this connection, in order, until it closes."""
        while True:
            self._changed.clear()
            if not await self.flush(connection):
                await asyncio.sleep(RETRY_S)
                self.resync()
                continue
            await self._changed.wait()

    async def flush(self, connection: CsmsConnection) -> bool:
        """Send the pending transitions; False if the CSMS refused one."""
        while self._pending:
            connector_id, reported = self._pending[0]
            try:
                await connection.call(call.StatusNotification(
                    connector_id=connector_id, error_code=reported.error_code, status=reported.status,
                    timestamp=ocpp_time(reported.at) if reported.at > UNKNOWN_AT else None,
                    info=reported.info, vendor_error_code=reported.vendor_error_code))
            except CsmsCallError as error:
                if error.failure is CallFailure.OFFLINE:
                    raise
                log.warning("StatusNotification for connector %s failed: %s", connector_id, error)
                return False
            self._pending.pop(0)
            self._sent[connector_id] = reported.key
        return True
