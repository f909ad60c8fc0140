"""The pty every simulated serial device sits on: its link, the bytes both ways, and close."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from tests.support.waiting import async_wait_until
from workers.sim.pty_link import PtyLink, PtyLinkError


class DeviceLinkError(PtyLinkError):
    """What a device module raises for an occupied path (as MercuryLinkError does)."""


@pytest.fixture
def line(tmp_path: Path) -> Iterator[PtyLink]:
    link = PtyLink(tmp_path / "ports" / "ttySIM0")
    link.open()
    yield link
    link.close()


def test_the_link_points_at_the_slave_a_driver_opens(line: PtyLink) -> None:
    assert line.link.is_symlink()
    assert os.readlink(line.link) == line.slave_path
    assert line.slave_path.startswith("/dev/pts/")


def test_a_stale_symlink_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ttySIM0"
    path.symlink_to("/dev/pts/nonexistent")
    link = PtyLink(path)
    link.open()
    try:
        assert os.readlink(path) == link.slave_path
    finally:
        link.close()


def test_an_existing_file_is_refused_with_the_devices_own_error(tmp_path: Path) -> None:
    path = tmp_path / "ttySIM0"
    path.write_text("not a link")
    link = PtyLink(path, refused=DeviceLinkError)
    with pytest.raises(DeviceLinkError, match="not a symlink"):
        link.open()
    assert path.read_text() == "not a link"
    with pytest.raises(RuntimeError, match="not open"):
        link.write(b"x")


def test_close_removes_our_link_but_leaves_a_newer_one(tmp_path: Path) -> None:
    path = tmp_path / "ttySIM0"
    first, second = PtyLink(path), PtyLink(path)
    first.open()
    second.open()  # a newer simulator took the path over
    first.close()
    assert os.readlink(path) == second.slave_path
    second.close()
    assert not path.is_symlink()


async def test_bytes_go_both_ways_between_device_and_driver(line: PtyLink) -> None:
    received = bytearray()
    line.watch(received.extend)
    port = serial.Serial(str(line.link), timeout=1.0)
    try:
        port.write(b"\x01\x03\x00\x00")
        await async_wait_until(lambda: _settled(received, 4), what="the driver's bytes")
        assert bytes(received) == b"\x01\x03\x00\x00"
        assert line.write(b"\xaa\x55")
        assert port.read(2) == b"\xaa\x55"
    finally:
        port.close()


def test_a_full_line_drops_the_bytes_and_says_so(line: PtyLink) -> None:
    chunk = bytes(1024)
    assert any(not line.write(chunk) for _ in range(1024)), "a pty nobody reads never filled up"


async def _settled(received: bytearray, length: int) -> bool:
    return len(received) >= length
