"""station.toml's power sections: `[power_modules]` (DC modules on CAN, their contactor matrix)
and `[allocation]` (how the station's power is shared). Kept apart from station_config.py,
which assembles them, so each file stays about one part of the wiring.

The matrix is physical: a module reaches a DC connector either through a link contactor
(`[[power_modules.links]]`: an IO module coil, optionally its auxiliary contact) that smartw
switches, or hard-wired. A hard-wired module cannot be taken away from a connector, so one
wired to two DC connectors would join their outputs: that wiring is refused.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bus.enums import Standard
from workers.common.io_config import IoPoint


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def link_key(module: str, connector_id: int) -> str:
    """A link contactor's key in IO snapshots and the simulator: "pm3>1" = module pm3 to connector 1."""
    return f"{module}>{connector_id}"


class ModuleLink(_Model):
    """`[[power_modules.links]]`: the contactor that connects module `module` to DC connector
    `connector` when IO module output `coil` is on; `feedback` is its auxiliary contact
    (active = closed), checked like a connector contactor's (welded, not closing)."""

    connector: int = Field(ge=1)
    module: str = Field(description="pm1..pmN")
    coil: int = Field(ge=0, le=0xFFFF, description="IO module output that closes this link")
    feedback: IoPoint | None = None

    @property
    def key(self) -> str:
        return link_key(self.module, self.connector)


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
        "DC connector id -> the modules (pm1..pmN) that reach it; with links it must equal what "
        "the links say, without links the modules are hard-wired to those connectors; "
        "default: what the links say, or (one DC connector) every module"))
    links: tuple[ModuleLink, ...] = Field(default=(), description=(
        "the contactor matrix's link contactors ([[power_modules.links]])"))

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
        self._check_links()
        if self.matrix is not None:
            self._check_reach("matrix", self.matrix)
        return self

    def _check_links(self) -> None:
        if not self.links:
            return
        pairs = [(link.module, link.connector) for link in self.links]
        twice = sorted({link_key(*pair) for pair in pairs if pairs.count(pair) > 1})
        if twice:
            raise ValueError(f"links {twice} are given more than once (one contactor per module and "
                             "connector)")
        linked = self._linked_matrix()
        self._check_reach("links", linked)
        if self.matrix is not None and _as_sets(self.matrix) != _as_sets(linked):
            raise ValueError(f"matrix {self.matrix} differs from what the links connect {linked}; "
                             "give one of them, or both equal")

    def _check_reach(self, where: str, matrix: dict[int, tuple[str, ...]]) -> None:
        names = set(self.module_names())
        listed = {name for modules in matrix.values() for name in modules}
        if listed - names:
            raise ValueError(f"{where} names unknown modules {sorted(listed - names)} "
                             f"(known: pm1..pm{len(names)})")
        if names - listed:
            raise ValueError(f"{where} leaves modules {sorted(names - listed)} unreachable "
                             "from every connector")

    def _linked_matrix(self) -> dict[int, tuple[str, ...]]:
        """DC connector id -> the modules its links connect, in module order."""
        names = self.module_names()
        order = {name: position for position, name in enumerate(names)}
        reach: dict[int, list[str]] = {}
        for link in self.links:
            reach.setdefault(link.connector, []).append(link.module)
        return {connector: tuple(sorted(modules, key=lambda name: order.get(name, len(names))))
                for connector, modules in sorted(reach.items())}

    def reach(self, dc_connectors: Collection[int]) -> dict[int, tuple[str, ...]]:
        """DC connector id -> the modules that can reach it. ValueError (naming the modules)
        for a connector that is not among `dc_connectors`, or for hard-wired modules (no
        links) that would reach two DC connectors at once."""
        where = "links" if self.links else "matrix"
        if self.links:
            matrix = self._linked_matrix()
        elif self.matrix is not None:
            matrix = dict(self.matrix)
        else:
            matrix = dict.fromkeys(sorted(dc_connectors), self.module_names())
        for connector in matrix:
            if connector not in dc_connectors:
                raise ValueError(f"power_modules.{where} names connector {connector}, which is not a DC "
                                 f"connector (DC connectors: {sorted(dc_connectors)})")
        if not self.links:
            _refuse_shared_hard_wiring(matrix)
        return matrix

    def module_addresses(self) -> tuple[int, ...]:
        return self.addresses or tuple(range(self.count or 0))

    def module_names(self) -> tuple[str, ...]:
        """pm1..pmN in address order (the names the driver and the simulator use)."""
        return tuple(f"pm{position + 1}" for position in range(len(self.module_addresses())))


def _as_sets(matrix: dict[int, tuple[str, ...]]) -> dict[int, frozenset[str]]:
    return {connector: frozenset(modules) for connector, modules in matrix.items() if modules}


def _refuse_shared_hard_wiring(matrix: dict[int, tuple[str, ...]]) -> None:
    connectors_of: dict[str, list[int]] = {}
    for connector, modules in matrix.items():
        for module in modules:
            connectors_of.setdefault(module, []).append(connector)
    shared = sorted(module for module, connectors in connectors_of.items() if len(connectors) > 1)
    if shared:
        connectors = sorted({c for module in shared for c in connectors_of[module]})
        raise ValueError(f"modules {shared} reach DC connectors {connectors} with nothing to switch "
                         "them between connectors (hard-wired, they would join the connectors' "
                         "outputs): add their link contactors as [[power_modules.links]]")


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
