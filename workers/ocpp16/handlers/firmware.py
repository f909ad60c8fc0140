"""UpdateFirmware, GetDiagnostics, SignedUpdateFirmware, GetLog (OCPP 1.6 §5.19, §5.9; Security
Whitepaper L01, N01), answered by `ctx.firmware` (firmware.py) and `ctx.diagnostics`
(diagnostics.py); the work they start follows the answer (@after).

Bad input: a date-time that does not parse is FormationViolation (the library does not check
the schema's `date-time` format); negative retries or retryInterval, or an UpdateFirmware
location the station cannot download from, PropertyConstraintViolation; UpdateFirmware while
the station does signed updates only, NotSupported (L01.FR.20).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ocpp.exceptions import FormatViolationError, NotSupportedError, PropertyConstraintViolationError
from ocpp.routing import after, on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from workers.ocpp16.handlers.base import HandlerBase
from workers.ocpp16.smart_charging.model import WireFormatError, parse_time
from workers.ocpp16.transfer_jobs import InvalidRequest


def _time(field: str, text: str) -> datetime:
    try:
        return parse_time(text)
    except WireFormatError as error:
        raise FormatViolationError(description=f"{field}: {error}") from None


def _optional_time(field: str, text: str | None) -> datetime | None:
    return None if text is None else _time(field, text)


class FirmwareHandlers(HandlerBase):
    @on(Action.get_diagnostics)
    async def on_get_diagnostics(self, location: str, call_unique_id: str, retries: int | None = None,
                                 retry_interval: int | None = None, start_time: str | None = None,
                                 stop_time: str | None = None, **_: Any) -> call_result.GetDiagnostics:
        start, stop = _optional_time("startTime", start_time), _optional_time("stopTime", stop_time)
        try:
            file_name = self.ctx.diagnostics.plan_diagnostics(call_unique_id, location, retries,
                                                              retry_interval, start, stop)
        except InvalidRequest as error:
            raise PropertyConstraintViolationError(description=str(error)) from None
        return call_result.GetDiagnostics(file_name=file_name)

    @after(Action.get_diagnostics)
    async def after_get_diagnostics(self, call_unique_id: str, **_: Any) -> None:
        await self.ctx.diagnostics.start(call_unique_id)

    @on(Action.get_log)
    async def on_get_log(self, log: dict[str, Any], log_type: str, request_id: int, call_unique_id: str,
                         retries: int | None = None, retry_interval: int | None = None,
                         **_: Any) -> call_result.GetLog:
        oldest = _optional_time("oldestTimestamp", log.get("oldest_timestamp"))
        latest = _optional_time("latestTimestamp", log.get("latest_timestamp"))
        try:
            status, file_name = await self.ctx.diagnostics.plan_log(
                call_unique_id, log_type, request_id, log["remote_location"], oldest, latest, retries,
                retry_interval)
        except InvalidRequest as error:
            raise PropertyConstraintViolationError(description=str(error)) from None
        return call_result.GetLog(status=status, filename=file_name)

    @after(Action.get_log)
    async def after_get_log(self, call_unique_id: str, **_: Any) -> None:
        await self.ctx.diagnostics.start(call_unique_id)

    @on(Action.update_firmware)
    async def on_update_firmware(self, location: str, retrieve_date: str, call_unique_id: str,
                                 retries: int | None = None, retry_interval: int | None = None,
                                 **_: Any) -> call_result.UpdateFirmware:
        if await self.ctx.firmware.signed_only():
            raise NotSupportedError(description="this charge point takes signed firmware only "
                                                "(SignedUpdateFirmware)")
        retrieve_at = _time("retrieveDate", retrieve_date)
        try:
            await self.ctx.firmware.plain(call_unique_id, location, retrieve_at, retries, retry_interval)
        except InvalidRequest as error:
            raise PropertyConstraintViolationError(description=str(error)) from None
        return call_result.UpdateFirmware()

    @after(Action.update_firmware)
    async def after_update_firmware(self, call_unique_id: str, **_: Any) -> None:
        await self.ctx.firmware.answered(call_unique_id)

    @on(Action.signed_update_firmware)
    async def on_signed_update_firmware(self, request_id: int, firmware: dict[str, Any], call_unique_id: str,
                                        retries: int | None = None, retry_interval: int | None = None,
                                        **_: Any) -> call_result.SignedUpdateFirmware:
        retrieve_at = _time("retrieveDateTime", firmware["retrieve_date_time"])
        install_at = _optional_time("installDateTime", firmware.get("install_date_time"))
        status = await self.ctx.firmware.signed(
            call_unique_id, request_id, firmware["location"], retrieve_at, install_at,
            firmware["signing_certificate"], firmware["signature"], retries, retry_interval)
        return call_result.SignedUpdateFirmware(status=status)

    @after(Action.signed_update_firmware)
    async def after_signed_update_firmware(self, call_unique_id: str, **_: Any) -> None:
        await self.ctx.firmware.answered(call_unique_id)
