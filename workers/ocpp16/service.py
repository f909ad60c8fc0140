"""The ocpp16 service: the station's OCPP 1.6-J charge point.

Provides: the bus commands contract.AUTHORIZE, OCPP_DATA_TRANSFER, OCPP_CONFIGURE (the
configurator's CSMS URL, charge point id and security keys: operator_config.py) and
OCPP_UPDATE_FIRMWARE (the configurator's "Update from URL", taken as a CSMS UpdateFirmware); keys
contract.OCPP_LINK, OCPP_TRANSACTION, OCPP_LIMIT, RESERVATIONS, SESSION_RULES and OCPP_DEAUTHORIZED.
Requires: streams contract.SESSIONS and CONNECTOR_CHANGES, keys contract.STATION, CONNECTOR,
METER; commands contract.START, STOP and AVAILABILITY (smartw) and RESTART (chargepoint, for
Reset); tables Transaction and OutboxMessage (writer).

Always running, online or not: the session recorder, the status watcher, the meter samplers
(periodic and clock-aligned) and the AUTHORIZE server. Per connection (wsconnect reopens it forever): a fresh
`CsmsConnection`; BootNotification once per process start until Accepted (a reconnect does not
boot again, OCPP-J §5.4; a new CSMS URL or charge point id does), then StatusNotifications, then
the heartbeat, status changes and the transaction queue, all over that connection until it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable
from dataclasses import replace

from ocpp.v16 import call
from ocpp.v16.enums import RegistrationStatus

from bus import Service, contract
from bus.messages import OcppLink, UpdateFirmwareReply, UpdateFirmwareRequest
from bus.tasks import first_done
from workers.ocpp16 import config_keys as keys
from workers.ocpp16.clock_aligned import ClockAlignedSampler
from workers.ocpp16.config_keys import InvalidValue
from workers.ocpp16.context import BackgroundFeature, ChargePointContext, ConnectedFeature
from workers.ocpp16.features import build_features
from workers.ocpp16.frame_log import FrameLog
from workers.ocpp16.meter import MeterSampler
from workers.ocpp16.notices import Notices
from workers.ocpp16.operator_config import LinkAddress, OperatorConfiguration, with_operator_address
from workers.ocpp16.pacing import IntervalPacer
from workers.ocpp16.persisted import change_configuration, load_configuration
from workers.ocpp16.protocol import CallFailure, CsmsCallError, CsmsConnection
from workers.ocpp16.remote import BusRemoteControl
from workers.ocpp16.security.provisioned import take_in_provisioned
from workers.ocpp16.sender import QueueSender
from workers.ocpp16.sessions import SessionRecorder
from workers.ocpp16.settings import Ocpp16Settings
from workers.ocpp16.status import StatusReporter
from workers.ocpp16.transaction_data import TransactionData
from workers.ocpp16.transfer_jobs import InvalidRequest
from workers.ocpp16.txkeys import TransactionKeys
from workers.ocpp16.txqueue import TransactionQueue, db
from workers.ocpp16.wsconnect import Link, OcppSocket, TransportError, TransportSettings, redact

log = logging.getLogger(__name__)

BOOT_RETRY_FIRST_S = 5.0  # BootNotification retry after a failure or an interval of 0, doubling
BOOT_RETRY_MAX_S = 300.0
STOP_DRAIN_S = 3.0  # on a stop, how long persisted messages may take to go out (chargepoint grants 10 s)
DRAIN_CHECK_S = 0.1


class Ocpp16Service(Service):
    name = "ocpp16"

    def __init__(self, settings: Ocpp16Settings | None = None) -> None:
        super().__init__()
        self._given_settings = settings
        self.connection: CsmsConnection | None = None
        self.registration = "None"
        self._registered_at: LinkAddress | None = None  # the address the Accepted BootNotification was for
        self._link_lock = asyncio.Lock()
        self._boot_wanted = asyncio.Event()  # TriggerMessage(BootNotification) while not Accepted
        self._drained = asyncio.Event()  # set once a stop has let the persisted messages out

    @property
    def accepted(self) -> bool:
        return self.connection is not None and self.registration == RegistrationStatus.accepted

    @property
    def address(self) -> LinkAddress:
        return LinkAddress(self.settings.csms_url, self.settings.charge_point_id)

    async def run(self) -> None:
        self._drained = asyncio.Event()
        settings = self.settings = await with_operator_address(
            self._given_settings or Ocpp16Settings.from_django())
        config = self.config = await load_configuration(
            dict(settings.config_defaults), keys.station_keys(cable_locks=bool(settings.lock_connector_ids)))
        self.queue = TransactionQueue(config.get(keys.TRANSACTION_MESSAGE_ATTEMPTS),
                                      config.get(keys.TRANSACTION_MESSAGE_RETRY_INTERVAL))
        config.listen(keys.TRANSACTION_MESSAGE_ATTEMPTS, self._retry_rules_changed)
        config.listen(keys.TRANSACTION_MESSAGE_RETRY_INTERVAL, self._retry_rules_changed)
        self.heartbeat_pacer = IntervalPacer(config, keys.HEARTBEAT_INTERVAL)  # follows a change at once
        tx_keys = TransactionKeys(self.bus)
        self.status = StatusReporter(self.bus, settings.connector_ids)
        self.remote = BusRemoteControl(self.bus, settings.connector_ids, lambda: self.accepted)
        self.notices = Notices(lambda: config.get(keys.TRANSACTION_MESSAGE_ATTEMPTS),
                               lambda: config.get(keys.TRANSACTION_MESSAGE_RETRY_INTERVAL))
        self.ctx = ChargePointContext(self.bus, settings, config, self.notices, self.remote,
                                      is_accepted=lambda: self.accepted,
                                      registration=lambda: self.registration)
        build_features(self.ctx)
        await take_in_provisioned(self.ctx.security)  # before the first connection uses them
        self.ctx.triggers.attach(boot=self.boot_now, status=self.status)
        operator = OperatorConfiguration(config, self.address, self._use_address)
        self.link = self._link()
        self.frame_log = FrameLog()  # every frame in and out, in table OcppFrame
        self.sender = QueueSender(self.queue, tx_keys, self.publish_link, self.ctx.auth)
        recorder = SessionRecorder(self.bus, self.queue, tx_keys, self._queued,
                                   TransactionData(self.bus, config))
        await tx_keys.restore(settings.connector_ids)
        await self.publish_link()
        consumer = self.name  # stable, so entries left unacknowledged by a crash are read again
        jobs: list[Awaitable[object]] = [
            self._stop_when_drained(), recorder.run(consumer), self.status.watch(consumer),
            self.status.watch_station(consumer), self.link.run_forever(),
            self.bus.serve(contract.AUTHORIZE, self.ctx.auth.authorize, stop=self._drained),
            self.bus.serve(contract.OCPP_CONFIGURE, operator.handle, stop=self._drained),
            self.bus.serve(contract.OCPP_UPDATE_FIRMWARE, self._update_firmware, stop=self._drained),
        ]
        jobs += [feature.run() for feature in self.ctx.features if isinstance(feature, BackgroundFeature)]
        jobs.append(self.frame_log.run())
        jobs.append(MeterSampler(self.bus, self.queue, config, self._queued).run())
        jobs.append(ClockAlignedSampler(self.bus, self.queue, config, self.notices, settings.connector_ids,
                                        lambda: self.accepted, self._queued).run())
        await first_done(*jobs)

    async def _stop_when_drained(self) -> None:
        """Return once a stop is asked and, while the CSMS is connected, the persisted messages
        have gone out (up to STOP_DRAIN_S): a status queued just before the stop, such as
        Installing right before the station exits for an update, reaches the CSMS before the
        restart rather than after it. Nothing is lost either way: the rows stay queued."""
        await self.stopping.wait()
        deadline = time.monotonic() + STOP_DRAIN_S
        while self.connection is not None and time.monotonic() < deadline and await self.notices.waiting():
            await asyncio.sleep(DRAIN_CHECK_S)
        self._drained.set()

    async def _update_firmware(self, request: UpdateFirmwareRequest) -> UpdateFirmwareReply:
        """The configurator's "Update from URL" down the path of a CSMS UpdateFirmware (firmware.py):
        the same checks, the same record and job, every step told to the CSMS."""
        firmware = self.ctx.firmware
        if await firmware.signed_only():
            return UpdateFirmwareReply(accepted=False, detail="this station takes signed firmware only "
                                       "(a ManufacturerRootCertificate is installed): ask the CSMS for a "
                                       "SignedUpdateFirmware")
        call_id = f"configurator-{uuid.uuid4().hex}"  # stands for the CALL's unique id
        try:
            await firmware.plain(call_id, request.location, request.retrieve_at, request.attempts,
                                 request.retry_interval_s)
        except InvalidRequest as error:
            return UpdateFirmwareReply(accepted=False, detail=str(error))
        await firmware.answered(call_id)
        return UpdateFirmwareReply(accepted=True,
                                   detail=f"download starts at {request.retrieve_at:%Y-%m-%d %H:%M:%S} UTC")

    def _retry_rules_changed(self, *_: object) -> None:
        """A new TransactionMessageAttempts / RetryInterval counts from the next failed attempt."""
        self.queue.attempts = self.config.get(keys.TRANSACTION_MESSAGE_ATTEMPTS)
        self.queue.retry_interval_s = self.config.get(keys.TRANSACTION_MESSAGE_RETRY_INTERVAL)

    def _link(self) -> Link:
        """The CSMS link; its settings are read again before every attempt, and a change of
        the security keys (ctx.security) or of WebSocketPingInterval reopens it."""
        link = Link(self._transport, self._on_open, observer=self.ctx.security)
        self.ctx.security.use_link(link)
        self.config.listen(keys.WEB_SOCKET_PING_INTERVAL,
                           lambda *_: link.reopen("WebSocketPingInterval changed"))
        return link

    async def _use_address(self, address: LinkAddress) -> None:
        """The configurator changed the CSMS URL or the charge point id (operator_config.py): the
        next connection uses them and sends BootNotification first, since the CSMS there has not
        registered this identity. The reply to the configurator does not wait for it."""
        self.settings = self.ctx.settings = replace(self.settings, csms_url=address.csms_url,
                                                    charge_point_id=address.charge_point_id)
        self.registration = "None"
        self.link.reopen("the configurator changed the CSMS address")
        await self.publish_link()

    async def _transport(self) -> TransportSettings:
        ping_s = self.config.get(keys.WEB_SOCKET_PING_INTERVAL)
        return await self.ctx.security.secured(TransportSettings(
            self.settings.csms_url, self.settings.charge_point_id,
            ping_interval_s=ping_s if ping_s > 0 else None, max_delay_s=self.settings.reconnect_max_s,
            first_delay_s=min(1.0, self.settings.reconnect_max_s)))

    async def _queued(self) -> None:
        self.sender.wake()
        await self.publish_link()

    async def publish_link(self) -> None:
        """Write OCPP_LINK; the lock keeps a slower writer from overwriting a newer count."""
        async with self._link_lock:
            await self.bus.set(contract.OCPP_LINK, OcppLink(
                connected=self.connection is not None, registration=self.registration,  # type: ignore[arg-type]
                csms_url=redact(self.settings.csms_url), charge_point_id=self.settings.charge_point_id,
                queued_messages=await db(self.queue.pending_count)))

    # ---- one connection ------------------------------------------------------------------

    async def _on_open(self, socket: OcppSocket) -> None:
        connection = CsmsConnection(self.frame_log.wrap(socket), self.settings.charge_point_id, self.ctx,
                                    lambda: self.config.get(keys.MESSAGE_TIMEOUT))
        self.connection = connection
        await self.publish_link()
        try:
            await first_done(connection.receive(), self._work(connection, self.address))
        except CsmsCallError as error:
            if error.failure is not CallFailure.OFFLINE:
                raise
            raise TransportError(str(error)) from error
        finally:
            connection.close()
            self.connection = None
            await self.publish_link()

    async def _work(self, connection: CsmsConnection, address: LinkAddress) -> None:
        if self.registration != RegistrationStatus.accepted or self._registered_at != address:
            await self._boot(connection, address)
            self.status.forget_sent()
        else:
            self.status.resync()
        await self.status.flush(connection)
        await first_done(self._heartbeat(connection), self.status.run(connection),
                         self.sender.run(connection), self.notices.run(connection),
                         *[feature.connected(connection) for feature in self.ctx.features
                           if isinstance(feature, ConnectedFeature)])

    async def _boot(self, connection: CsmsConnection, address: LinkAddress) -> None:
        """BootNotification until Accepted; Pending/Rejected wait the interval the CSMS gave."""
        retry_s = BOOT_RETRY_FIRST_S
        request = call.BootNotification(charge_point_model=self.settings.charge_point_model,
                                        charge_point_vendor=self.settings.charge_point_vendor)
        while True:
            self._boot_wanted.clear()
            try:
                result = await connection.call(request)
            except CsmsCallError as error:
                if error.failure is CallFailure.OFFLINE:
                    raise
                log.warning("BootNotification failed (%s); retry in %.0f s", error, retry_s)
                wait_s = retry_s
            else:
                self.registration = str(result.status)
                await self.publish_link()
                if result.status == RegistrationStatus.accepted:
                    self._registered_at = address
                    if result.interval > 0:
                        await self._take_heartbeat_interval(result.interval)
                    log.info("BootNotification Accepted; heartbeat every %.0f s",
                             self.config.get(keys.HEARTBEAT_INTERVAL))
                    return
                wait_s = float(result.interval) if result.interval > 0 else retry_s
                log.warning("BootNotification %s; next one in %.0f s", result.status, wait_s)
            retry_s = min(retry_s * 2, BOOT_RETRY_MAX_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._boot_wanted.wait(), wait_s)

    def boot_now(self) -> None:
        """TriggerMessage(BootNotification) while Pending or Rejected (ocpp16.md §2.1): the next
        BootNotification goes now instead of after the interval the CSMS gave."""
        self._boot_wanted.set()

    async def _take_heartbeat_interval(self, interval_s: int) -> None:
        try:
            await change_configuration(self.config, keys.HEARTBEAT_INTERVAL,
                                       keys.HEARTBEAT_INTERVAL.parse(str(interval_s)))
        except InvalidValue as error:
            log.warning("BootNotification interval %s ignored: HeartbeatInterval %s", interval_s, error)

    async def _heartbeat(self, connection: CsmsConnection) -> None:
        self.heartbeat_pacer.restart()
        while True:
            await self.heartbeat_pacer.wait()
            try:
                await connection.call(call.Heartbeat())
            except CsmsCallError as error:
                if error.failure is CallFailure.OFFLINE:
                    raise
                log.warning("Heartbeat failed: %s", error)
