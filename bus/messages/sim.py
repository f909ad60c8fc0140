"""Commands of the simulator (`manage.py sim ...`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bus.messages.base import Message


class SimAction(Message):
    """A command to the simulator (`manage.py sim ...`)."""

    action: Literal["plug", "unplug", "swipe", "estop", "door", "pause", "resume",
                    "fault", "clear", "offline", "online"]
    connector_id: int | None = None
    device: str | None = Field(default=None, description="fault/clear/offline/online: a `sim list` name")
    kind: str | None = Field(default=None, description="fault: one of the device's fault kinds")
    standard: Literal["ccs", "chademo", "gbt", "type2"] | None = Field(
        default=None, description="plug: the EV's standard; None = the connector's own")
    soc: float | None = Field(default=None, ge=0, le=100)
    target_soc: float | None = Field(default=None, ge=0, le=100)
    capacity_kwh: float | None = Field(default=None, gt=0)
    max_power_kw: float | None = Field(default=None, gt=0)
    uid: str | None = None
    pressed: bool | None = None
    open: bool | None = Field(default=None, description="door: True opens the cabinet door, False closes it")


class SimDeviceInfo(Message):
    """One simulated device as `sim list` shows it."""

    name: str
    online: bool
    fault_kinds: list[str]


class SimDeviceList(Message):
    devices: list[SimDeviceInfo]
