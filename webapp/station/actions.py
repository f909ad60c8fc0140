"""What an operator can do to the station, in one place for the configurator and the REST API.

Why one module: each action checks the role (a viewer is refused here even if a view forgot to
check), asks the service that owns the thing over the bus, and writes one AuditEntry with who,
what and the station's answer, accepted or not. Views and API endpoints only translate.

Every action is async (web runs under ASGI). An answer the station gives (Rejected, Scheduled,
no session) is an `Outcome`, not an exception; a service that does not answer or a lost Redis
is an Outcome with `done=False` and status "NotAnswered" / "BusUnavailable". Bad input raises
`InvalidInput` before anything is asked or recorded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from pydantic import BaseModel

from bus import Bus, BusRequestError, contract
from bus.contract import CommandSpec, Rep, Req
from bus.enums import ReplyError, StartSource, StopReason
from bus.messages import (
    ChangeAvailabilityRequest,
    DiagReport,
    FreeModeRequest,
    OcppConfigureRequest,
    RestartRequest,
    SelfTestRequest,
    ShutdownRequest,
    StartRequest,
    StopRequest,
    UpdateFirmwareRequest,
)
from bus.service import REDIS_ERRORS
from webapp.station import operator_settings
from webapp.station.operator_models import AuditEntry, StationSetting

log = logging.getLogger(__name__)

OPERATE_PERMISSION = "station.operate_station"
REPLY_TIMEOUT_S = 5.0
SET_CLOCK_ENV = "STATION_SET_CLOCK_COMMAND"  # e.g. "sudo date -u -s"; the new time is appended
SET_CLOCK_TIMEOUT_S = 10.0
ID_TAG_MAX = 20


class InvalidInput(ValueError):
    """The request itself is wrong (unknown setting, value of the wrong type, bad connector)."""


@dataclass(frozen=True)
class Actor:
    """Who acts, and through what (recorded in the audit log)."""

    username: str
    source: AuditEntry.Source

    @classmethod
    def operator(cls, user: Any, source: AuditEntry.Source) -> Actor:
        """The acting operator; PermissionDenied for anyone without the operator role."""
        if not (user.is_authenticated and user.is_active and user.has_perm(OPERATE_PERMISSION)):
            raise PermissionDenied("only an operator may change the station")
        return cls(username=user.get_username(), source=source)


class Outcome(BaseModel):
    """The station's answer to an action: `done` says whether it took effect (Accepted,
    Scheduled ...); `status` is the answer's word; `detail` says why, for people."""

    done: bool
    status: str
    detail: str = ""


async def _ask(command: CommandSpec[Req, Rep], request: Req) -> Rep | Outcome:
    bus = Bus("web")
    try:
        return await bus.request(command, request, timeout_s=REPLY_TIMEOUT_S)
    except BusRequestError as error:
        status = "NotAnswered" if error.code is ReplyError.TIMEOUT else error.code.value
        return Outcome(done=False, status=status, detail=str(error))  # it names the command
    except REDIS_ERRORS as error:
        return Outcome(done=False, status="BusUnavailable", detail=f"Redis: {error}")
    finally:
        await bus.close()


@sync_to_async
def _audit(actor: Actor, action: str, target: str, outcome: Outcome, *,
           before: Any = None, after: Any = None) -> None:
    said = f"{outcome.status}: {outcome.detail}" if outcome.detail else outcome.status
    AuditEntry.objects.create(username=actor.username, source=actor.source, action=action, target=target,
                              before=before, after=after, outcome=said[:200])


def _where(connector_id: int) -> str:
    return "station" if connector_id == 0 else f"connector {connector_id}"


def _known_connector(connector_id: int, *, station_allowed: bool) -> None:
    from webapp.station.bus_state import station_config
    known = {connector.id for connector in station_config().connectors}
    if connector_id in known or (station_allowed and connector_id == 0):
        return
    raise InvalidInput(f"no connector {connector_id} (this station has {sorted(known)})")


def _id_tag(id_tag: str) -> str:
    if not 1 <= len(id_tag) <= ID_TAG_MAX or not id_tag.isprintable() or any(c.isspace() for c in id_tag):
        raise InvalidInput(f"an idTag is 1 to {ID_TAG_MAX} printable characters without spaces")
    return id_tag


# ---- settings web owns ----------------------------------------------------------------------

async def change_setting(actor: Actor, name: str, value: Any) -> Outcome:
    """Store one operator setting (declared in operator_settings) and publish it at once."""
    if name not in operator_settings.BY_NAME:
        raise InvalidInput(f"unknown setting {name!r}")
    try:
        cleaned = operator_settings.clean(name, value)
    except ValidationError as error:
        raise InvalidInput(f"{name}: {' '.join(error.messages)}") from None
    before = await _store_setting(name, cleaned, actor.username)
    from webapp.station.settings_publisher import publish_now
    published = await publish_now()
    outcome = Outcome(done=True, status="Saved" if published else "SavedNotPublished",
                      detail="" if published else "the bus is unreachable: applied when it is back")
    await _audit(actor, "setting", name, outcome, before=before, after=cleaned)
    return outcome


@sync_to_async
def _store_setting(name: str, value: Any, username: str) -> Any:
    """Save the value; returns the previous one (the default if it was never changed)."""
    default = operator_settings.BY_NAME[name].default
    with transaction.atomic():
        row = StationSetting.objects.select_for_update().filter(name=name).first()
        before = row.value if row is not None else default
        if value == default:  # back to the default: no row (the audit log keeps who did it)
            StationSetting.objects.filter(name=name).delete()
        else:
            StationSetting.objects.update_or_create(name=name,
                                                    defaults={"value": value, "changed_by": username})
    return before


# ---- smartw -----------------------------------------------------------------------------------

async def set_availability(actor: Actor, connector_id: int, operative: bool) -> Outcome:
    await sync_to_async(_known_connector)(connector_id, station_allowed=True)
    reply = await _ask(contract.AVAILABILITY, ChangeAvailabilityRequest(connector_id=connector_id,
                                                                        operative=operative))
    outcome = reply if isinstance(reply, Outcome) else Outcome(done=reply.status != "Rejected",
                                                                status=reply.status)
    await _audit(actor, "availability", _where(connector_id), outcome,
                 after="operative" if operative else "inoperative")
    return outcome


async def set_free_mode(actor: Actor, enabled: bool, id_tag: str | None = None) -> Outcome:
    if id_tag is not None:
        _id_tag(id_tag)
    reply = await _ask(contract.FREE_MODE, FreeModeRequest(enabled=enabled, id_tag=id_tag))
    outcome = _result(reply)
    await _audit(actor, "free_mode", "station", outcome, after={"enabled": enabled, "id_tag": id_tag})
    return outcome


async def start_charging(actor: Actor, connector_id: int, id_tag: str | None = None) -> Outcome:
    """Start on a connector: with an idTag, authorised like a card; without, smartw waits for a
    card at the connector (or starts at once in free mode)."""
    await sync_to_async(_known_connector)(connector_id, station_allowed=False)
    if id_tag is not None:
        _id_tag(id_tag)
    reply = await _ask(contract.START, StartRequest(connector_id=connector_id, id_tag=id_tag,
                                                    source=StartSource.REMOTE if id_tag else StartSource.HMI))
    outcome = _result(reply)
    await _audit(actor, "start", _where(connector_id), outcome, after={"id_tag": id_tag})
    return outcome


async def stop_charging(actor: Actor, connector_id: int) -> Outcome:
    await sync_to_async(_known_connector)(connector_id, station_allowed=False)
    reply = await _ask(contract.STOP, StopRequest(connector_id=connector_id, reason=StopReason.REMOTE))
    outcome = _result(reply)
    await _audit(actor, "stop", _where(connector_id), outcome)
    return outcome


def _result(reply: Any) -> Outcome:
    if isinstance(reply, Outcome):
        return reply
    return Outcome(done=reply.accepted, status="Accepted" if reply.accepted else "Rejected",
                   detail=reply.reason)


# ---- ocpp16, chargepoint, diag --------------------------------------------------------------

async def configure_ocpp(actor: Actor, key: str, value: str) -> Outcome:
    """CsmsUrl, ChargePointId, SecurityProfile or AuthorizationKey, applied by ocpp16 (it
    reconnects). The AuthorizationKey is never written to the audit log."""
    try:
        request = OcppConfigureRequest(key=key, value=value)  # type: ignore[arg-type]
    except ValueError as error:
        raise InvalidInput(f"{key}: {error}") from None
    reply = await _ask(contract.OCPP_CONFIGURE, request)
    outcome = reply if isinstance(reply, Outcome) else Outcome(
        done=reply.status in ("Accepted", "RebootRequired"), status=reply.status, detail=reply.reason)
    shown = "(hidden)" if key == "AuthorizationKey" else value
    await _audit(actor, "ocpp_setting", key, outcome, after=shown)
    return outcome


async def restart_software(actor: Actor) -> Outcome:
    request = RestartRequest(kind="soft", reason=f"{actor.source}: {actor.username}")
    reply = await _ask(contract.RESTART, request)
    outcome = _result(reply)
    await _audit(actor, "restart", "station software", outcome)
    return outcome


async def shutdown_software(actor: Actor) -> Outcome:
    reply = await _ask(contract.SHUTDOWN, ShutdownRequest(reason=f"{actor.source}: {actor.username}"))
    outcome = _result(reply)
    await _audit(actor, "shutdown", "station software", outcome)
    return outcome


async def run_self_test(actor: Actor, subject: str | None = None) -> tuple[Outcome, DiagReport | None]:
    reply = await _ask(contract.SELF_TEST, SelfTestRequest(subject=subject))
    if isinstance(reply, Outcome):
        await _audit(actor, "self_test", subject or "station", reply)
        return reply, None
    failed = ", ".join(check.name for check in reply.checks if check.state != "ok")
    if not reply.checks:  # diag's answer to a subject it has no check for
        failed = f"no check has the subject {subject!r}"
    outcome = Outcome(done=True, status="Passed" if reply.ok else "Failed", detail=failed)
    await _audit(actor, "self_test", subject or "station", outcome)
    return outcome, reply


async def set_clock(actor: Actor, when: datetime) -> Outcome:
    """Set the station's clock with STATION_SET_CLOCK_COMMAND (the new UTC time, ISO 8601, is
    appended). Unset (the default, and in simulation), the clock is not touched: "NotConfigured"."""
    if when.tzinfo is None:
        raise InvalidInput("the new time needs a time zone (or UTC)")
    command = os.environ.get(SET_CLOCK_ENV, "").strip()
    if not command:
        outcome = Outcome(done=False, status="NotConfigured",
                          detail=f"{SET_CLOCK_ENV} is not set on this station")
    else:
        outcome = await _run_clock_command([*shlex.split(command), when.isoformat()])
    await _audit(actor, "clock", "station", outcome, after=when.isoformat())
    return outcome


async def _run_clock_command(argv: list[str]) -> Outcome:
    try:
        process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                       stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.STDOUT)
    except OSError as error:
        return Outcome(done=False, status="Failed", detail=f"cannot run {argv[0]}: {error.strerror}")
    try:
        output, _ = await asyncio.wait_for(process.communicate(), SET_CLOCK_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        return Outcome(done=False, status="Failed", detail=f"still running after {SET_CLOCK_TIMEOUT_S:.0f} s")
    if process.returncode != 0:
        text = output.decode(errors="replace").strip()[-150:]
        return Outcome(done=False, status="Failed", detail=f"exit code {process.returncode}: {text}")
    log.warning("station clock set by the configurator: %s", shlex.join(argv))
    return Outcome(done=True, status="Accepted")


# ---- over-the-air updates -------------------------------------------------------------------

async def update_firmware(actor: Actor, location: str, attempts: int, retry_interval_s: int) -> Outcome:
    """"Update from URL": ocpp16 takes it as a CSMS UpdateFirmware (the CSMS hears every step).
    The location's password never reaches the audit log."""
    from workers.jobs.upload import UploadError, parse_location
    try:
        shown = parse_location(location).describe()
        request = UpdateFirmwareRequest(location=location.strip(), attempts=attempts,
                                        retry_interval_s=retry_interval_s)
    except UploadError as error:
        raise InvalidInput(f"location: {error}") from None
    except ValueError as error:
        raise InvalidInput(str(error)) from None
    reply = await _ask(contract.OCPP_UPDATE_FIRMWARE, request)
    outcome = reply if isinstance(reply, Outcome) else Outcome(
        done=reply.accepted, status="Accepted" if reply.accepted else "Rejected", detail=reply.detail)
    await _audit(actor, "firmware_update", shown, outcome,
                 after={"attempts": attempts, "retry_interval_s": retry_interval_s})
    return outcome


async def flash_controllers(actor: Actor, bundle_version: str) -> Outcome:
    """Flash the charge controllers again from an installed firmware bundle (a version folder
    under STATION_FIRMWARE_DIR): an UPDATE_CONTROLLERS job; its row says how it went."""
    from webapp.station.configurator.updates_data import bundle_folder
    folder = bundle_folder(bundle_version)  # InvalidInput: not an installed bundle
    outcome = await sync_to_async(_submit_flash)(folder)
    await _audit(actor, "flash_controllers", f"bundle {bundle_version}", outcome,
                 after={"bundle_dir": str(folder)})
    return outcome


def _submit_flash(folder: Path) -> Outcome:
    from webapp.station.models import JobRecord
    from workers.fota.update import FLASH_WAIT_S
    from workers.jobs.base import JobKind
    from workers.jobs.runner import submit
    from workers.jobs.update_controllers import ControllerUpdateRequest
    with transaction.atomic():
        busy = (JobRecord.objects.select_for_update()
                .filter(kind=JobKind.UPDATE_CONTROLLERS,
                        status__in=(JobRecord.Status.QUEUED, JobRecord.Status.RUNNING)).first())
        if busy is not None:
            return Outcome(done=False, status="Busy",
                           detail=f"job #{busy.pk} is flashing the controllers already")
        params = ControllerUpdateRequest(bundle_dir=str(folder)).model_dump()
        record = submit(JobKind.UPDATE_CONTROLLERS, params, timeout_s=int(FLASH_WAIT_S))
    return Outcome(done=True, status="Queued", detail=f"job #{record.pk}")
