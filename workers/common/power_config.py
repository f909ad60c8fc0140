"""station.toml's power sections: `[power_modules]` (DC modules on CAN, their contactor matrix)
and `[allocation]` (how the station's power is shared). Kept apart from station_config.py,
which assembles them, so each file stays about one part of the wiring."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bus.enums import Standard


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


SlcanBitrate = Literal[10_000, 20_000, 50_000, 83_300, 100_000, 125_000, 250_000, 500_000, 750_000,
                       1_000_000]  # the rates an slcan adapter's S<n> command can set


class PowerModulesConfig(_Model):
    """`[power_modules]`: Infypower-protocol DC modules on one CAN bus behind a USB-CAN adapter.

    Give `addresses` (module CAN addresses) or `count` (addresses 0..count-1); the modules are
    named pm1..pmN in that order. The ratings describe each module (the simulator builds its
    modules from them; the driver reads the real ones over CAN). A module switches off after
    `silence_timeout_s` without a frame, so setpoints are re-sent every `resend_s`: that timeout
    is the modules' lease (a dead smartw leaves them off). The simulator's modules take it from
    here (<= 2 s for smartw's lease); a real Infypower V1.13 module's is fixed at 10 s.
    """

    driver: Literal["infypower"] = "infypower"
    interface: Literal["slcan"] = "slcan"
    channel: str = Field(description="tty of the USB-CAN adapter (slcan), e.g. /dev/serial/by-id/...")
    bitrate: SlcanBitrate = 125_000
    open_delay_s: float = Field(default=2.0, ge=0, description="wait after opening the adapter's tty")
    controller_address: int = Field(default=0xF0, ge=0, le=0xFF)
    addresses: tuple[Annotated[int, Field(ge=0, le=0xFF)], ...] = ()
    count: int | None = Field(default=None, ge=1, le=60)
    rated_kw: float = Field(default=30.0, gt=0, description="rated output power of one module, kW")
    max_voltage_v: float = Field(default=1000.0, gt=0)
    min_voltage_v: float = Field(default=150.0, ge=0)
    max_current_a: float = Field(default=100.0, gt=0)
    poll_s: float = Field(default=0.25, gt=0, description="readback and status poll period")
    answer_timeout_s: float = Field(default=0.2, gt=0)
    resend_s: float = Field(default=1.0, gt=0, description="setpoint re-send period")
    silence_timeout_s: float = Field(default=10.0, gt=0, description=(
        "module switches off after this long without a frame (simulated modules; real Infypower: 10 s)"))
    matrix: dict[int, tuple[str, ...]] | None = Field(default=None, description=(
        "contactor matrix: DC connector id -> the modules (pm1..pmN) its contactors can connect; "
        "default: every module to every DC connector"))

    @model_validator(mode="after")
    def _check(self) -> PowerModulesConfig:
        if bool(self.addresses) == (self.count is not None):
            raise ValueError("give power module addresses or count, exactly one of them")
        addresses = self.module_addresses()
        if len(set(addresses)) != len(addresses) or self.controller_address in addresses:
            raise ValueError(f"module addresses {list(addresses)} must be distinct and differ from "
                             f"the controller address {self.controller_address}")
        if self.resend_s * 3 > self.silence_timeout_s:
            raise ValueError(f"resend_s ({self.resend_s}) must be well under silence_timeout_s "
                             f"({self.silence_timeout_s}): at most a third of it")
        if self.min_voltage_v >= self.max_voltage_v:
            raise ValueError("min_voltage_v must be below max_voltage_v")
        self._check_matrix_names()
        return self

    def _check_matrix_names(self) -> None:
        if self.matrix is None:
            return
        names = set(self.module_names())
        listed = {name for modules in self.matrix.values() for name in modules}
        if listed - names:
            raise ValueError(f"matrix names unknown modules {sorted(listed - names)} "
                             f"(known: pm1..pm{len(names)})")
        if names - listed:
            raise ValueError(f"matrix leaves modules {sorted(names - listed)} unreachable "
                             "from every connector")

    def module_addresses(self) -> tuple[int, ...]:
        return self.addresses or tuple(range(self.count or 0))

    def module_names(self) -> tuple[str, ...]:
        """pm1..pmN in address order (the names the driver and the simulator use)."""
        return tuple(f"pm{position + 1}" for position in range(len(self.module_addresses())))


DEFAULT_DC_MIN_POWER_KW = {Standard.CCS: 5.0, Standard.CHADEMO: 5.0, Standard.GBT: 5.0}


class AllocationConfig(_Model):
    """`[allocation]`: how the station's power is shared (workers/smartw/power_allocation.py)."""

    policy: Literal["equal_share", "first_come"] = "equal_share"
    module_dwell_s: float = Field(default=30.0, ge=0, description="a power module stays at least "
                                  "this long on a connector before it may move (hysteresis)")
    min_power_kw: dict[Standard, float] = Field(default_factory=lambda: dict(DEFAULT_DC_MIN_POWER_KW),
                                                description="DC: an EV's minimum when it gives none")
    ac_min_current_a: float = Field(default=6.0, gt=0, description="AC: the lowest current limit "
                                    "offered (IEC 61851-1 PWM: 6 A)")
    unused_margin_kw: float = Field(default=3.0, ge=0, description="a connector drawing less than "
                                    "given keeps its measured power plus this; the rest goes to others")

    @model_validator(mode="after")
    def _dc_minimums_only(self) -> AllocationConfig:
        if Standard.TYPE2 in self.min_power_kw:
            raise ValueError("min_power_kw is for DC standards; AC's minimum is ac_min_current_a")
        if any(value < 0 for value in self.min_power_kw.values()):
            raise ValueError("min_power_kw values must be >= 0")
        return self

    def dc_min_power_w(self) -> dict[Standard, float]:
        """Every DC standard's default minimum, W (a standard not listed keeps the built-in one)."""
        merged = {**DEFAULT_DC_MIN_POWER_KW, **self.min_power_kw}
        return {standard: kw * 1000 for standard, kw in merged.items()}
