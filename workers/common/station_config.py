"""station.toml: the station's wiring (connectors, meters, IO module, RFID reader, buses).

Parsed once at start-up into frozen typed models; an invalid file or a missing field stops
start-up with a message naming the field (STYLE habit 12). `{run_dir}` and `{data_dir}` in
port paths expand to folders under STATION_DATA_DIR (the simulator puts its serial links there).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bus.enums import Standard
from workers.common.io_config import (
    OWEN_INPUT_REGISTER,
    OWEN_OUTPUT_REGISTER,
    IoInputs,
    IoPoint,
    check_distinct,
)
from workers.common.power_config import AllocationConfig, ModuleLink, PowerModulesConfig


class ConfigError(ValueError):
    """station.toml cannot be used; the message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModbusTcpBus(_Model):
    kind: Literal["modbus_tcp"]
    host: str
    port: int = Field(gt=0, lt=65536)
    timeout_s: float = Field(default=1.0, gt=0)


class ModbusRtuBus(_Model):
    """An RS485 line (workers/drivers/modbus_hub.py: one exchange at a time, then a quiet gap)."""

    kind: Literal["modbus_rtu"]
    port: str
    baudrate: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_s: float = Field(default=0.5, gt=0, description="seconds to wait for each answer")
    inter_frame_delay_s: float = Field(default=0.005, ge=0, description="quiet gap after each exchange")
    retries: int = Field(default=1, ge=0, le=5, description="times a request is asked again after an "
                         "unusable answer (CRC error, partial frame, noise); silence is not retried")
    late_answer_window_s: float = Field(default=0.1, ge=0, description="after a failed exchange the line "
                                        "stays quiet this long; what arrives then is discarded")


class MercuryBus(_Model):
    """An RS485 line of Incotex Mercury 230/234 meters, which speak Incotex's own protocol
    (workers/drivers/mercury.py), not Modbus; the meters on it use model mercury230/mercury234."""

    kind: Literal["mercury"]
    port: str
    baudrate: int = Field(default=9600, gt=0)
    timeout_s: float = Field(default=0.15, ge=0.15, description="seconds to wait for an answer "
                             "(Mercury documentation: at least 150 ms at 9600 baud and above)")


BusConfig = Annotated[ModbusTcpBus | ModbusRtuBus | MercuryBus, Field(discriminator="kind")]


class DeviceRef(_Model):
    """A device on a bus: which bus, which Modbus device id."""

    bus: str
    device_id: int = Field(ge=0, le=247)


class MeterConfig(DeviceRef):
    model: str = Field(description="register map name under workers/drivers/meter_maps/, or "
                       "mercury230/mercury234 (then device_id is the meter's address)")
    poll_s: float = Field(default=1.0, gt=0)
    password: str | None = Field(default=None, pattern=r"^(\d{6}|[0-9A-Fa-f]{12})$", description=(
        "Mercury only: level-1 password as 6 digits (\"111111\" = bytes 01..01, the factory default) "
        "or 12 hex digits"))
    ct_ratio: float = Field(default=1.0, gt=0, description=(
        "current-transformer ratio for a CT-connected meter that shows secondary values (e.g. 40 "
        "for 200/5 A CTs on a Mercury 234 ART-03): energy, power and current are multiplied by it"))


ControllerModel = Literal["station_dc", "phoenix_ev_cc"]  # = workers.drivers.controllers.registry.MODELS


class PhoenixOptions(_Model):
    """Phoenix EV-CC-AC1-M3 only: how amps become watts, and where its state letter is."""

    phases: Literal[1, 3] = 3
    voltage_v: float = Field(default=230.0, gt=0, le=400, description="phase-to-neutral voltage, V")
    state_byte: Literal["high", "low"] = Field(default="high", description=(
        "byte of input 24000 holding the IEC 61851 letter: high (serial variant, as evcc reads it) or low"))


class ControllerConfig(DeviceRef):
    model: ControllerModel = "station_dc"
    poll_s: float = Field(default=0.25, gt=0)
    phoenix: PhoenixOptions | None = None

    @model_validator(mode="after")
    def _options_fit_the_model(self) -> ControllerConfig:
        if self.phoenix is not None and self.model != "phoenix_ev_cc":
            raise ValueError(f"phoenix options are for model 'phoenix_ev_cc', not {self.model!r}")
        return self

    @property
    def phoenix_options(self) -> PhoenixOptions:
        return self.phoenix or PhoenixOptions()


class ConnectorConfig(_Model):
    id: int = Field(ge=1)
    standard: Standard
    max_power_kw: float = Field(gt=0)
    contactor_coil: int = Field(ge=0, description="IO module output that closes this connector's contactor")
    contactor_feedback: IoPoint | None = Field(default=None, description="IO module input wired to the "
                                               "contactor's auxiliary contact (active = closed)")
    meter: MeterConfig
    controller: ControllerConfig
    phases: Literal[1, 3] | None = Field(default=None, description="AC only: phases wired (default 3)")
    max_current_a: float | None = Field(default=None, gt=0, description="AC only: current limit per "
                                        "phase, A (default: none beyond max_power_kw)")
    lock_coil: int | None = Field(default=None, ge=0, le=0xFFFF, description="Type 2 socket only: IO "
                                  "module output that drives the cable lock (on = locked); none: a "
                                  "fixed cable")
    lock_feedback: IoPoint | None = Field(default=None, description="Type 2 socket only: IO module input "
                                          "wired to the lock's position switch (active = locked)")

    @model_validator(mode="after")
    def _ac_fields_on_ac_only(self) -> ConnectorConfig:
        if self.is_dc and (self.phases is not None or self.max_current_a is not None):
            raise ValueError(f"phases and max_current_a are for AC connectors, not {self.standard.value}")
        return self

    @model_validator(mode="after")
    def _lock_on_a_type2_socket_only(self) -> ConnectorConfig:
        if (self.lock_coil is None) != (self.lock_feedback is None):
            raise ValueError("a cable lock needs both lock_coil and lock_feedback (a lock without its "
                             "position switch cannot be supervised)")
        if self.has_lock and self.is_dc:
            raise ValueError(f"lock_coil and lock_feedback are for Type 2 sockets; {self.standard.value} "
                             "connectors have fixed cables")
        return self

    @property
    def is_dc(self) -> bool:
        return self.standard is not Standard.TYPE2

    @property
    def has_lock(self) -> bool:
        """A Type 2 socket with a cable lock (else the cable is fixed: nothing to lock or unlock)."""
        return self.lock_coil is not None

    @property
    def ac_phases(self) -> int:
        return self.phases or 3


class IoModuleConfig(DeviceRef):
    """The DI/DO module: named inputs, fan outputs (contactor coil and feedback are per connector,
    as are a Type 2 socket's cable lock coil and position switch).

    layout "bits" (ICP DAS tM/M-7000, Advantech ADAM): outputs are coils (FC01/FC05); inputs are
    discrete inputs (FC02) or, where the module also serves them in the coil table (ICP DAS: DI
    at 32 on FC01 too), coils (`input_function = 1`: one request reads inputs and outputs).
    layout "owen" (Owen MU110 outputs, MV110 inputs): outputs are bits of holding register
    `output_register` (default 50, written whole with FC16), inputs bits of register
    `input_register` (default 51, FC04 or FC03), on `input_device_id` when the inputs are a
    second module; an address is a bit number (0 = channel 1; bit n is in register + n // 16).
    The legacy key `estop_input = N` means `inputs.estop = N` (normally open).
    """

    poll_s: float = Field(default=0.2, gt=0)
    layout: Literal["bits", "owen"] = "bits"
    inputs: IoInputs
    fans: tuple[Annotated[int, Field(ge=0, le=0xFFFF)], ...] = Field(
        default=(), description="outputs that run the cabinet fans")
    input_device_id: int | None = Field(default=None, ge=1, le=247,
                                        description="the inputs' module, when not the outputs' one")
    input_function: Literal[1, 2, 3, 4] | None = Field(
        default=None, description="how inputs are read: bits 2 (default) or 1; owen 4 (default) or 3")
    output_register: int | None = Field(default=None, ge=0, le=0xFFFF, description="owen only")
    input_register: int | None = Field(default=None, ge=0, le=0xFFFF, description="owen only")
    feedback_timeout_s: float = Field(default=0.5, gt=0, description="a contactor's feedback must "
                                      "follow its coil within this time, else it is reported")
    lock_timeout_s: float = Field(default=1.0, gt=0, description="a cable lock's position switch must "
                                  "follow its coil within this time, else the lock has failed")
    watchdog_s: float | None = Field(default=None, gt=0, description="host watchdog set on the module "
                                     "(ICP DAS 40489): outputs drop to off when polling stops this long")

    @model_validator(mode="before")
    @classmethod
    def _legacy_estop_input(cls, data: object) -> object:
        if isinstance(data, dict) and "estop_input" in data:
            data = dict(data)
            if "inputs" in data:
                raise ValueError("give the e-stop as inputs.estop or as estop_input, not both")
            data["inputs"] = {"estop": data.pop("estop_input")}
        return data

    @model_validator(mode="after")
    def _check_layout(self) -> IoModuleConfig:
        allowed = (1, 2) if self.layout == "bits" else (3, 4)
        if self.input_function is not None and self.input_function not in allowed:
            raise ValueError(f"layout {self.layout!r} reads inputs with function {allowed}, "
                             f"not {self.input_function}")
        if self.layout == "bits" and (self.output_register, self.input_register) != (None, None):
            raise ValueError("output_register/input_register belong to layout 'owen'")
        if self.watchdog_s is not None and self.watchdog_s <= self.poll_s:
            raise ValueError(f"watchdog_s ({self.watchdog_s}) must exceed poll_s ({self.poll_s}), "
                             "or the module drops its outputs between polls")
        return self

    def check_addresses(self, connectors: list[ConnectorConfig], links: tuple[ModuleLink, ...] = ()) -> None:
        """No two signals on one input, no two loads on one output (inputs read as coils
        share the coil table with the outputs); module links count like connector contactors."""
        inputs = {signal.value: point.address for signal, point in self.inputs.wired()}
        inputs |= {f"connector {c.id} feedback": c.contactor_feedback.address
                   for c in connectors if c.contactor_feedback is not None}
        inputs |= {f"link {link.key} feedback": link.feedback.address
                   for link in links if link.feedback is not None}
        inputs |= {f"connector {c.id} lock_feedback": c.lock_feedback.address
                   for c in connectors if c.lock_feedback is not None}
        outputs = {f"connector {c.id} coil": c.contactor_coil for c in connectors}
        outputs |= {f"connector {c.id} lock_coil": c.lock_coil for c in connectors if c.lock_coil is not None}
        outputs |= {f"link {link.key} coil": link.coil for link in links}
        outputs |= {f"fans[{index}]": address for index, address in enumerate(self.fans)}
        if self.inputs_function == 1:
            check_distinct("coil", inputs | outputs)
        check_distinct("input", inputs)
        check_distinct("output", outputs)

    @property
    def inputs_device_id(self) -> int:
        return self.device_id if self.input_device_id is None else self.input_device_id

    @property
    def inputs_function(self) -> int:
        return self.input_function or (2 if self.layout == "bits" else 4)

    @property
    def owen_registers(self) -> tuple[int, int]:
        """(output register, input register) of the owen layout."""
        return (OWEN_OUTPUT_REGISTER if self.output_register is None else self.output_register,
                OWEN_INPUT_REGISTER if self.input_register is None else self.input_register)


class ImdConfig(DeviceRef):
    """`[imd]`: the insulation monitor on Modbus (Bender isoCHA425HV register map)."""

    model: Literal["isocha425hv"] = "isocha425hv"
    poll_s: float = Field(default=1.0, gt=0)
    alarm_threshold_kohm: float = Field(default=100.0, gt=0, description="insulation resistance "
                                        "below this is an insulation fault (EVerest CableCheck: 100 kOhm)")


class RfidConfig(_Model):
    """The card reader. `baudrate` defaults to the driver's (EM4100 9600, PN532 HSU 115200);
    the poll period and the beep (a buzzer on a PN532 GPIO) apply to the PN532 only: an EM4100
    reader only transmits and beeps by itself."""

    driver: Literal["em4100", "pn532"] = "em4100"
    port: str
    baudrate: int = Field(gt=0)
    poll_s: float = Field(default=0.2, gt=0, le=5, description="PN532: seconds between card polls")
    beep_pin: Literal[30, 31, 33, 35, 71, 72] = Field(
        default=30, description="PN532 GPIO driving the buzzer: 30 = P30 ... 72 = P72")
    beep_ms: int = Field(default=100, ge=0, le=2000, description="PN532 beep length; 0 = no buzzer")

    @model_validator(mode="before")
    @classmethod
    def _driver_defaults(cls, raw: object) -> object:
        if not isinstance(raw, dict):
            return raw
        if raw.get("driver", "em4100") == "em4100":
            pn532_only = sorted({"poll_s", "beep_pin", "beep_ms"} & raw.keys())
            if pn532_only:
                raise ValueError(f"{', '.join(pn532_only)} apply to driver 'pn532' only")
        baudrates = {"em4100": 9600, "pn532": 115200}
        return {"baudrate": baudrates.get(raw.get("driver", "em4100"), 9600), **raw}


class StationSection(_Model):
    name: str = "station"
    max_power_kw: float = Field(gt=0, description="grid connection limit, kW")
    max_current_a: float | None = Field(default=None, gt=0, description="grid connection limit per "
                                        "phase, A (default: none beyond max_power_kw)")
    meter: MeterConfig | None = Field(default=None, description="optional meter at the grid connection")


class StationConfig(_Model):
    station: StationSection
    buses: dict[str, BusConfig]
    io_module: IoModuleConfig
    imd: ImdConfig | None = None
    rfid: RfidConfig
    power_modules: PowerModulesConfig | None = None
    allocation: AllocationConfig = AllocationConfig()
    connectors: list[ConnectorConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_references(self) -> StationConfig:
        ids = [c.id for c in self.connectors]
        if len(set(ids)) != len(ids):
            raise ValueError(f"connector ids must be unique, got {ids}")
        refs = [("io_module", self.io_module.bus)]
        links = self.power_modules.links if self.power_modules is not None else ()
        self.io_module.check_addresses(self.connectors, links)
        if self.imd is not None:
            refs.append(("imd", self.imd.bus))
        if self.station.meter is not None:
            refs.append(("station.meter", self.station.meter.bus))
        for index, connector in enumerate(self.connectors):
            refs.append((f"connectors[{index}].meter", connector.meter.bus))
            refs.append((f"connectors[{index}].controller", connector.controller.bus))
        for where, bus in refs:
            if bus not in self.buses:
                raise ValueError(f"{where}.bus names unknown bus {bus!r} (known: {sorted(self.buses)})")
        return self

    @model_validator(mode="after")
    def _check_matrix_connectors(self) -> StationConfig:
        self.module_matrix()  # raises naming a connector that is not DC, or shared hard-wiring
        return self

    def module_matrix(self) -> dict[int, tuple[str, ...]]:
        """DC connector id -> the power modules that can reach it (power_config.PowerModulesConfig.reach)."""
        if self.power_modules is None:
            return {}
        return self.power_modules.reach({c.id for c in self.connectors if c.is_dc})

    def connector(self, connector_id: int) -> ConnectorConfig:
        for connector in self.connectors:
            if connector.id == connector_id:
                return connector
        raise KeyError(connector_id)


def load_station_config(path: Path, *, data_dir: Path) -> StationConfig:
    """Read and check station.toml; raise ConfigError naming the file and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read station config: {error.strerror}") from error
    text = text.replace("{run_dir}", str(data_dir / "run")).replace("{data_dir}", str(data_dir))
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from error
    try:
        return StationConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {_describe(error)}") from error


def _describe(error: ValidationError) -> str:
    parts = []
    for problem in error.errors():
        location = ""
        for item in problem["loc"]:
            location += f"[{item}]" if isinstance(item, int) else (f".{item}" if location else str(item))
        parts.append(f"{location or '(top)'}: {problem['msg']}")
    return "; ".join(parts)


def load_from_settings() -> StationConfig:
    """The station config named by STATION_CONFIG (Django settings must be ready)."""
    from django.conf import settings

    env = settings.STATION_ENV
    return load_station_config(env.station_config, data_dir=env.data_dir)
