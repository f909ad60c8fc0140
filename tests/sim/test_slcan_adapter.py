"""The simulated USB-CAN adapter: LAWICEL slcan lines, over a real pty, against python-can's slcan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import can
import pytest
import serial

from tests.support.waiting import async_wait_until
from workers.sim.slcan_adapter import (
    CanFrame,
    SimulatedSlcanAdapter,
    SlcanLinkError,
    SlcanProtocol,
    format_frame,
    parse_frame,
)

BEL, CR = b"\a", b"\r"


@dataclass
class EchoNode:
    """A CAN node that answers every frame with the same id + 1 and the data reversed."""

    bitrate: int = 125_000
    heard: list[CanFrame] = field(default_factory=list)

    def receive(self, frame: CanFrame) -> list[CanFrame]:
        self.heard.append(frame)
        return [CanFrame(frame.arbitration_id + 1, frame.data[::-1], frame.extended)]


def opened(node: EchoNode | None = None) -> tuple[SlcanProtocol, EchoNode]:
    node = node or EchoNode()
    protocol = SlcanProtocol(node)
    assert protocol.feed(b"S4\rO\r") == CR + CR
    return protocol, node


def test_frames_go_to_the_node_and_its_answers_come_back_as_lines() -> None:
    protocol, node = opened()
    assert protocol.feed(b"T0283F0018AABBCCDD00112233\r") == CR + b"T0283F002833221100DDCCBBAA\r"
    assert protocol.feed(b"t1232BEEF\r") == CR + b"t1242EFBE\r"
    assert node.heard == [CanFrame(0x0283F001, bytes.fromhex("AABBCCDD00112233")),
                          CanFrame(0x123, bytes.fromhex("BEEF"), extended=False)]


def test_a_line_split_across_reads_is_one_command() -> None:
    protocol, node = opened()
    assert protocol.feed(b"T0283F0") == b""
    assert protocol.feed(b"010\r") == CR + b"T0283F0020\r"
    assert node.heard == [CanFrame(0x0283F001, b"")]


def test_info_commands() -> None:
    protocol = SlcanProtocol(EchoNode())
    assert protocol.feed(b"V\r") == b"V1013\r"
    assert protocol.feed(b"N\r") == b"NSIM1\r"
    assert protocol.feed(b"F\r") == b"F00\r"
    assert protocol.feed(b"\r") == CR  # python-can sends an empty line after S<n>


def test_state_errors_are_refused_with_bel() -> None:
    protocol = SlcanProtocol(EchoNode())
    assert protocol.feed(b"O\r") == BEL  # no bitrate yet
    assert protocol.feed(b"T000000010\r") == BEL  # channel closed
    assert protocol.feed(b"C\r") == BEL  # not open
    assert protocol.feed(b"S6\rO\r") == CR + CR
    assert protocol.feed(b"O\r") == BEL  # already open
    assert protocol.feed(b"S4\r") == BEL  # bitrate only while closed
    assert protocol.feed(b"C\rS4\rO\r") == CR + CR + CR


@pytest.mark.parametrize("line", [
    b"\xff\xfe\x00",  # garbage bytes
    b"hello",  # unknown command
    b"T0283F001",  # no DLC
    b"T0283F0019" + b"00" * 9,  # DLC 9
    b"T0283F0012AB",  # data shorter than the DLC
    b"T0283F0011ABCD",  # data longer than the DLC
    b"TG283F0010",  # not hex
    b"T2283F0010",  # id above 29 bits
    b"t8001AB",  # id above 11 bits
    b"S",  # no digit
    b"SX",
    b"O1",
    b"s011C",  # BTR registers: not simulated
    b"T0283\tF00",  # a control character
])
def test_malformed_lines_get_bel_and_a_warning(line: bytes, caplog: pytest.LogCaptureFixture) -> None:
    protocol, node = opened()
    with caplog.at_level(logging.WARNING):
        assert protocol.feed(line + b"\r") == BEL
    assert "refused line" in caplog.text
    assert node.heard == []
    assert protocol.feed(b"T000000010\r") == CR + b"T000000020\r"  # and it goes on working


def test_bytes_without_a_line_end_are_dropped_as_noise(caplog: pytest.LogCaptureFixture) -> None:
    protocol, _ = opened()
    with caplog.at_level(logging.WARNING):
        assert protocol.feed(b"x" * 100) == BEL
    assert "without a line end" in caplog.text
    assert protocol.feed(b"V\r") == b"V1013\r"


def test_at_the_wrong_bitrate_no_frame_gets_through(caplog: pytest.LogCaptureFixture) -> None:
    node = EchoNode(bitrate=250_000)
    protocol = SlcanProtocol(node)
    with caplog.at_level(logging.WARNING):
        assert protocol.feed(b"S4\rO\r") == CR + CR
    assert "no frame gets through" in caplog.text
    assert protocol.feed(b"T000000010\r") == CR
    assert node.heard == []
    assert protocol.feed(b"F\r") == b"F80\r"  # bus error, read and cleared
    assert protocol.feed(b"F\r") == b"F00\r"


def test_frame_lines_round_trip() -> None:
    for frame in (CanFrame(0x1FFFFFFF, bytes(range(8))), CanFrame(0x7FF, b"", extended=False)):
        assert parse_frame(format_frame(frame)) == frame


# --- over a real pty ------------------------------------------------------------------------

@pytest.fixture
async def adapter(tmp_path: Path) -> AsyncIterator[tuple[SimulatedSlcanAdapter, EchoNode]]:
    node = EchoNode()
    simulated = SimulatedSlcanAdapter(tmp_path / "run" / "ttyCAN0", node)
    simulated.open()
    try:
        yield simulated, node
    finally:
        simulated.close()


async def test_python_can_slcan_talks_to_the_adapter_through_the_pty(
        adapter: tuple[SimulatedSlcanAdapter, EchoNode]) -> None:
    simulated, node = adapter
    bus = await asyncio.to_thread(can.Bus, interface="slcan", channel=str(simulated.link),
                                  bitrate=125_000, sleep_after_open=0)
    try:
        assert await asyncio.to_thread(bus.get_version, 1.0) == (10, 13)
        assert await asyncio.to_thread(bus.get_serial_number, 1.0) == "SIM1"
        bus.send(can.Message(arbitration_id=0x0283F001, data=bytes.fromhex("0102")))
        answer = await asyncio.to_thread(_next_frame, bus)
        assert answer.is_extended_id
        assert (answer.arbitration_id, bytes(answer.data)) == (0x0283F002, b"\2\1")
        assert node.heard == [CanFrame(0x0283F001, b"\1\2")]
        assert simulated.protocol.open and simulated.protocol.bitrate == 125_000
    finally:
        bus.shutdown()
    await async_wait_until(lambda: _closed(simulated), what="python-can's C on shutdown")


async def test_garbage_on_the_pty_is_answered_with_bel(
        adapter: tuple[SimulatedSlcanAdapter, EchoNode]) -> None:
    simulated, _ = adapter
    port = serial.Serial(str(simulated.link), timeout=1.0)
    try:
        port.write(b"\x00\x01garbage\r")
        assert await asyncio.to_thread(port.read, 1) == BEL
        port.write(b"V\r")
        assert await asyncio.to_thread(port.read_until, CR) == b"V1013\r"
    finally:
        port.close()


def test_an_existing_file_at_the_link_path_is_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ttyCAN0"
    path.write_text("not a link")
    with pytest.raises(SlcanLinkError, match="not a symlink"):
        SimulatedSlcanAdapter(path, EchoNode()).open()
    assert path.read_text() == "not a link"


def _next_frame(bus: can.BusABC) -> can.Message:
    message = bus.recv(2.0)
    assert message is not None, "no frame from the adapter within 2 s"
    return message


async def _closed(simulated: SimulatedSlcanAdapter) -> bool:
    return not simulated.protocol.open

