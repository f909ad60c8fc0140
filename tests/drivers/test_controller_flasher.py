"""The flasher against simulated controllers on a real Modbus TCP server, through one hub:
two controllers flashed in turn (one recovers from refused packets, one exhausts its
attempts), the version reported after the reboot, and every other way flashing can fail
ends in a typed error with the old firmware still running where the controller allows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from pymodbus.server import ModbusTcpServer

from workers.common.redis_server import free_port
from workers.common.station_config import ConnectorConfig, ModbusTcpBus
from workers.drivers.controller_flasher import FlashError, FlashResult, FlashTiming, flash
from workers.drivers.controllers.bootloader_protocol import Version, build_image
from workers.drivers.modbus_hub import ModbusHub
from workers.sim.controller_bootloader import BootloaderFaults, ControllerBootloader
from workers.sim.devices import controller_device
from workers.sim.ev_controller import FIRMWARE, SimulatedController
from workers.sim.ev_controller_wire import port_of

FIRST, SECOND = 21, 22
MBAP_UNIT_ID = 6
NEW_VERSION = (2, 3, 4)
IMAGE = build_image(NEW_VERSION, bytes(range(256)) * 2)  # 526 bytes: 5 packets
TIMING = FlashTiming(mode_timeout_s=0.3, poll_interval_s=0.02)
OLD = ".".join(map(str, FIRMWARE))


def connector(device_id: int) -> ConnectorConfig:
    return ConnectorConfig.model_validate({
        "id": device_id, "standard": "CCS", "max_power_kw": 150.0, "contactor_coil": 0,
        "meter": {"bus": "b", "device_id": 1, "model": "sdm630"},
        "controller": {"bus": "b", "device_id": device_id, "model": "station_dc"}})


@dataclass
class Bench:
    hub: ModbusHub
    controllers: dict[int, SimulatedController]
    lost_answers: dict[int, int] = field(default_factory=dict)  # answers to drop, by device id

    def trace(self, sending: bool, data: bytes) -> bytes:
        """The server's outgoing frames: a lost answer makes the hub time out."""
        if not sending or len(data) <= MBAP_UNIT_ID:
            return data
        device_id = data[MBAP_UNIT_ID]
        if self.lost_answers.get(device_id, 0) > 0:
            self.lost_answers[device_id] -= 1
            return b""
        return data

    def mode_and_version(self, device_id: int) -> tuple[bool, Version]:
        controller = self.controllers[device_id]
        return controller.in_bootloader, controller.firmware


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    address = ("127.0.0.1", free_port())
    hub = ModbusHub("b", ModbusTcpBus(kind="modbus_tcp", host=address[0], port=address[1], timeout_s=0.2))
    controllers = {device_id: SimulatedController(connector(device_id)) for device_id in (FIRST, SECOND)}
    bench = Bench(hub, controllers)
    devices = []
    for device_id, controller in bench.controllers.items():
        device = controller_device(device_id)
        port = port_of(device)
        assert port is not None
        port.attach(controller)
        devices.append(device)
    server = ModbusTcpServer(devices, address=address, trace_packet=bench.trace)
    await server.serve_forever(background=True)
    try:
        yield bench
    finally:
        await hub.close()
        await server.shutdown()


async def test_two_controllers_flashed_in_turn_one_recovers_one_exhausts_its_attempts(bench: Bench) -> None:
    bench.controllers[FIRST].bootloader = ControllerBootloader(BootloaderFaults(failed_uploads=2))
    bench.controllers[SECOND].bootloader = ControllerBootloader(BootloaderFaults(bad_crc_every=2))
    progress: list[tuple[int, int]] = []

    first = await flash(bench.hub, FIRST, IMAGE, 3, timing=TIMING,
                        progress=lambda sent, total: progress.append((sent, total)))
    second = await flash(bench.hub, SECOND, IMAGE, 3, timing=TIMING)

    assert first == FlashResult(True, 3, "2.3.4")
    assert bench.mode_and_version(FIRST) == (False, NEW_VERSION)
    assert progress[-1] == (len(IMAGE), len(IMAGE))
    assert [sent for sent, _ in progress].count(0) == 3  # each attempt starts from the beginning
    assert (second.ok, second.attempts_used, second.error) == (False, 3, FlashError.UPLOAD_FAILED)
    assert "BAD_CRC" in second.detail
    assert bench.mode_and_version(SECOND) == (False, FIRMWARE)  # back in its old application


async def test_a_lost_acknowledgement_fails_the_packet_and_the_upload_restarts(bench: Bench) -> None:
    lost_once: list[bool] = []

    def lose_the_next_answer(sent: int, _total: int) -> None:
        if sent > 0 and not lost_once:
            lost_once.append(True)
            bench.lost_answers[FIRST] = 1

    result = await flash(bench.hub, FIRST, IMAGE, 2, progress=lose_the_next_answer, timing=TIMING)

    assert result == FlashResult(True, 2, "2.3.4")


async def test_a_controller_that_lies_about_the_final_checksum_is_not_rebooted_into_new_firmware(
        bench: Bench) -> None:
    bench.controllers[FIRST].bootloader = ControllerBootloader(BootloaderFaults(wrong_checksum=True))

    result = await flash(bench.hub, FIRST, IMAGE, 2, timing=TIMING)

    assert (result.error, result.attempts_used) == (FlashError.UPLOAD_FAILED, 2)
    assert "CHECKSUM_ERROR" in result.detail
    assert bench.mode_and_version(FIRST) == (False, FIRMWARE)


@pytest.mark.parametrize("image", [b"XXXX" + IMAGE[4:], IMAGE[:-1], IMAGE[:8]])
async def test_an_image_with_a_wrong_header_is_refused_before_anything_is_sent(bench: Bench,
                                                                               image: bytes) -> None:
    result = await flash(bench.hub, FIRST, image, 3, timing=TIMING)

    assert (result.ok, result.attempts_used, result.error) == (False, 0, FlashError.BAD_IMAGE)
    assert bench.controllers[FIRST].bootloader.uploads == 0
    assert bench.mode_and_version(FIRST) == (False, FIRMWARE)


async def test_a_controller_that_never_comes_back_is_reported_not_back(bench: Bench) -> None:
    bench.controllers[FIRST].bootloader = ControllerBootloader(BootloaderFaults(application_starts=False))

    result = await flash(bench.hub, FIRST, IMAGE, 1, timing=TIMING)

    assert (result.ok, result.error, result.version) == (False, FlashError.NOT_BACK, None)
    assert bench.controllers[FIRST].in_bootloader


class InstallsAnotherVersion(ControllerBootloader):
    def start_application(self, running: Version) -> Version | None:
        super().start_application(running)
        return (9, 9, 9)


async def test_a_controller_reporting_another_version_after_the_reboot_is_an_error(bench: Bench) -> None:
    bench.controllers[FIRST].bootloader = InstallsAnotherVersion()

    result = await flash(bench.hub, FIRST, IMAGE, 1, timing=TIMING)

    assert (result.ok, result.error, result.version) == (False, FlashError.WRONG_VERSION, "9.9.9")


async def test_an_offline_controller_refuses_the_entry(bench: Bench) -> None:
    bench.controllers[FIRST].set_online(False)

    result = await flash(bench.hub, FIRST, IMAGE, 3, timing=TIMING)

    assert (result.ok, result.attempts_used, result.error) == (False, 0, FlashError.ENTRY_REFUSED)


async def test_a_controller_left_in_the_bootloader_is_flashed_without_a_new_entry(bench: Bench) -> None:
    bench.controllers[FIRST].enter_bootloader()

    result = await flash(bench.hub, FIRST, IMAGE, 1, timing=TIMING)

    assert result == FlashResult(True, 1, "2.3.4")


async def test_attempts_below_one_are_a_programming_error(bench: Bench) -> None:
    with pytest.raises(ValueError, match="attempts"):
        await flash(bench.hub, FIRST, IMAGE, 0)
