"""Flash one charge controller over its bootloader (docs/controller-protocol.md, "Bootloader
and flashing"); update_fw calls it for each controller its bundle's manifest lists.

The flasher speaks through the bus's `ModbusHub`, so its transactions take turns with the
pollers of the other devices on the same RS485 line. Every packet is acknowledged before the
next is sent; a refused packet, a wrong echo or a silent controller fails the attempt, and the
next attempt starts the upload again from `begin` (a controller cannot be trusted to have kept
half an image). When every attempt fails the flasher restarts the application anyway, so the
connector comes back with its old firmware, and returns a typed error for the job's record.
Nothing here raises for a controller's failure: the caller gets a `FlashResult`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from workers.drivers.controllers.bootloader_protocol import (
    BEGIN_START,
    FINISH,
    FINISH_CHECK,
    MAX_PACKET_BYTES,
    PACKET_START,
    STATUS_COUNT,
    STATUS_START,
    BootStatus,
    FirmwareImage,
    ImageError,
    Status,
    crc16,
    crc32,
    decode_status,
    encode_begin,
    encode_packet,
    parse_image,
)
from workers.drivers.controllers.station_dc import (
    BOOTLOADER_LEAVE,
    BOOTLOADER_MAGIC,
    IDENTITY_COUNT,
    IDENTITY_START,
    HoldingRegister,
    Identity,
    decode_identity,
)
from workers.drivers.errors import DeviceError
from workers.drivers.modbus_hub import ModbusHub
from workers.drivers.registers import FunctionCode

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (bytes acknowledged, image bytes)


class FlashError(StrEnum):
    """Why a controller was not flashed (the wire value goes into the job's record)."""

    BAD_IMAGE = "bad_image"  # the image's header or size is wrong: nothing was sent
    ENTRY_REFUSED = "entry_refused"  # the controller refused or did not answer the bootloader entry
    NO_BOOTLOADER = "no_bootloader"  # it never reported mode 1 (bootloader)
    UPLOAD_FAILED = "upload_failed"  # every attempt failed (packets or the whole-image check)
    NOT_BACK = "not_back"  # the application did not come back (mode 0) after the reboot
    WRONG_VERSION = "wrong_version"  # it came back with another version than the image's


@dataclass(frozen=True)
class FlashResult:
    ok: bool
    attempts_used: int
    version: str | None  # the version the controller reports afterwards (None: unknown)
    error: FlashError | None = None
    detail: str = ""  # the last failure, for the log and the job's record


@dataclass(frozen=True)
class FlashTiming:
    mode_timeout_s: float = 10.0  # how long a reboot into or out of the bootloader may take
    poll_interval_s: float = 0.2  # identity reads while waiting for the mode


class _AttemptFailed(Exception):
    """One upload attempt failed; the message says which step and why."""


async def flash(hub: ModbusHub, device_id: int, image: bytes, attempts: int, *,
                progress: Progress | None = None, timing: FlashTiming | None = None) -> FlashResult:
    """Install `image` on the controller `device_id`, trying the upload up to `attempts` times."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    try:
        firmware = parse_image(image)
    except ImageError as error:
        return FlashResult(False, 0, None, FlashError.BAD_IMAGE, str(error))
    flasher = _Flasher(hub, device_id, timing or FlashTiming(), progress or _no_progress)
    return await flasher.run(firmware, image, attempts)


def _no_progress(_sent: int, _total: int) -> None:
    """The default progress callback: nobody watches."""


class _Flasher:
    def __init__(self, hub: ModbusHub, device_id: int, timing: FlashTiming, progress: Progress) -> None:
        self.hub = hub
        self.device_id = device_id
        self.timing = timing
        self.progress = progress
        self.name = hub.device_name(device_id)

    async def run(self, firmware: FirmwareImage, image: bytes, attempts: int) -> FlashResult:
        entry_failure = await self._enter_bootloader()
        if entry_failure is not None:
            return entry_failure
        reason = ""
        for attempt in range(1, attempts + 1):
            try:
                await self._upload(image)
            except _AttemptFailed as failure:
                reason = str(failure)
                log.warning("%s: flashing attempt %d of %d failed: %s", self.name, attempt, attempts, reason)
                continue
            return await self._restart_application(firmware, attempt)
        await self._reboot()
        return FlashResult(False, attempts, None, FlashError.UPLOAD_FAILED, reason)

    async def _enter_bootloader(self) -> FlashResult | None:
        """None once the controller reports mode 1; a failed result otherwise."""
        try:
            identity = await self._identity()
            if not identity.in_bootloader:
                await self.hub.write_registers(self.device_id, HoldingRegister.BOOTLOADER, [BOOTLOADER_MAGIC])
        except DeviceError as error:
            return FlashResult(False, 0, None, FlashError.ENTRY_REFUSED, error.reason)
        if await self._wait_for_mode(in_bootloader=True) is None:
            return FlashResult(False, 0, None, FlashError.NO_BOOTLOADER,
                               f"no bootloader within {self.timing.mode_timeout_s:g} s")
        return None

    async def _upload(self, image: bytes) -> None:
        await self._write("begin", BEGIN_START, encode_begin(len(image), crc32(image)))
        await self._expect("begin", BootStatus.READY, echoed_crc=0, received=0)
        self.progress(0, len(image))
        for offset in range(0, len(image), MAX_PACKET_BYTES):
            chunk = image[offset:offset + MAX_PACKET_BYTES]
            step = f"packet at {offset}"
            await self._write(step, PACKET_START, encode_packet(offset, chunk))
            await self._expect(step, BootStatus.PACKET_OK, echoed_crc=crc16(chunk),
                               received=offset + len(chunk))
            self.progress(offset + len(chunk), len(image))
        await self._write("finish", FINISH, [FINISH_CHECK])
        await self._expect("finish", BootStatus.IMAGE_OK, echoed_crc=0, received=len(image))

    async def _restart_application(self, firmware: FirmwareImage, attempts_used: int) -> FlashResult:
        await self._reboot()
        identity = await self._wait_for_mode(in_bootloader=False)
        if identity is None:
            return FlashResult(False, attempts_used, None, FlashError.NOT_BACK,
                               f"no application within {self.timing.mode_timeout_s:g} s of the reboot")
        version = identity.firmware_version
        if version != firmware.version_text:
            return FlashResult(False, attempts_used, version, FlashError.WRONG_VERSION,
                               f"reports {version} after flashing {firmware.version_text}")
        log.info("%s: flashed firmware %s (attempt %d)", self.name, version, attempts_used)
        return FlashResult(True, attempts_used, version)

    async def _reboot(self) -> None:
        """Restart the application; a controller may reboot before it answers, so the identity
        read that follows, not this write's answer, tells whether it came back."""
        try:
            await self.hub.write_registers(self.device_id, HoldingRegister.BOOTLOADER, [BOOTLOADER_LEAVE])
        except DeviceError as error:
            log.debug("%s: reboot request unanswered: %s", self.name, error.reason)

    async def _wait_for_mode(self, *, in_bootloader: bool) -> Identity | None:
        """The identity once it reports the mode, None when it has not within the timeout.
        Silence and refusals are expected on the way (the controller is rebooting)."""
        deadline = time.monotonic() + self.timing.mode_timeout_s
        while True:
            try:
                identity = await self._identity()
                if identity.in_bootloader == in_bootloader:
                    return identity
            except DeviceError as error:
                log.debug("%s: waiting for the reboot: %s", self.name, error.reason)
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(self.timing.poll_interval_s)

    async def _identity(self) -> Identity:
        words = await self.hub.read_registers(self.device_id, FunctionCode.READ_INPUT_REGISTERS,
                                              IDENTITY_START, IDENTITY_COUNT)
        try:
            return decode_identity(words)
        except ValueError as error:
            raise DeviceError(self.name, f"bad identity: {error}") from error

    async def _write(self, step: str, address: int, words: list[int]) -> None:
        try:
            await self.hub.write_registers(self.device_id, address, words)
        except DeviceError as error:
            raise _AttemptFailed(f"{step}: {error.reason}") from error

    async def _expect(self, step: str, code: BootStatus, *, echoed_crc: int, received: int) -> None:
        """The acknowledgement of `step`: the status code, the packet's CRC echoed, and the
        count of bytes received, all as sent; anything else (or no answer) fails the attempt."""
        status = await self._status(step)
        if status != Status(code, echoed_crc, received):
            raise _AttemptFailed(f"{step}: controller answered {status.code.name} "
                                 f"(echo {status.echoed_crc:#06x}, {status.received_bytes} bytes received)")

    async def _status(self, step: str) -> Status:
        try:
            words = await self.hub.read_registers(self.device_id, FunctionCode.READ_INPUT_REGISTERS,
                                                  STATUS_START, STATUS_COUNT)
            return decode_status(words)
        except DeviceError as error:
            raise _AttemptFailed(f"{step}: no acknowledgement: {error.reason}") from error
        except ValueError as error:
            raise _AttemptFailed(f"{step}: {error}") from error
