"""The asyncio serial port on a real pseudo-terminal: data in, device gone -> DeviceError."""

from __future__ import annotations

import os
import pty
import tty
from pathlib import Path

import pytest

from workers.drivers.errors import DeviceError
from workers.drivers.serial_port import SerialPort


def test_a_missing_port_is_a_device_error_naming_it(tmp_path: Path) -> None:
    path = str(tmp_path / "ttyNOPE")
    with pytest.raises(DeviceError, match="ttyNOPE: cannot open"):
        SerialPort(path, 9600).open()


async def test_bytes_written_by_the_device_are_read_and_a_vanished_device_is_an_error() -> None:
    master, slave = pty.openpty()
    tty.setraw(slave)
    port = SerialPort(os.ttyname(slave), 9600)
    os.write(master, b"queued before the host listened")
    port.open()
    try:
        os.write(master, b"\x020A00B1C2D3AA\x03")
        assert await port.read() == b"\x020A00B1C2D3AA\x03", "what was queued before open is dropped"
        os.close(slave)
        os.close(master)
        with pytest.raises(DeviceError, match=r"read failed|no data"):
            await port.read()
    finally:
        port.close()
