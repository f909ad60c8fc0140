"""Latest-value payloads of the bus keys: heartbeats, meter readings, connector, station,
device and power-module state."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from bus.enums import (
    ConnectorErrorCode,
    ConnectorStatus,
    Standard,
)
from bus.messages.base import Message, utcnow


class Heartbeat(Message):
    """A service is alive; the key expires when the service stops refreshing it."""

    service: str
    pid: int = Field(description="OS process id, so chargepoint can tell an old child's beat")
    ready: bool = Field(default=True, description="the service serves what it provides "
                        "(the simulator: its devices listen); False while it is still starting")
    at: datetime = Field(default_factory=utcnow)


class MeterReading(Message):
    """Latest reading of one energy meter (counters writes it every poll)."""

    meter: str = Field(description="meter name: 'connector<N>' or 'station'")
    energy_wh: float = Field(ge=0, description="billing register, Wh, monotonic: the meter's import "
                                               "register advanced only by plausible steps")
    power_w: float = Field(description="total active power, W (negative = export)")
    voltage_v: float | None = Field(default=None, description="L1-N or DC voltage, V")
    current_a: float | None = Field(default=None, description="L1 or DC current, A")
    power_l1_w: float | None = Field(default=None, description="AC: active power on L1, W")
    power_l2_w: float | None = Field(default=None, description="AC: active power on L2, W")
    power_l3_w: float | None = Field(default=None, description="AC: active power on L3, W")
    voltage_l2_v: float | None = Field(default=None, description="AC: L2-N voltage, V")
    voltage_l3_v: float | None = Field(default=None, description="AC: L3-N voltage, V")
    current_l2_a: float | None = Field(default=None, description="AC: L2 current, A")
    current_l3_a: float | None = Field(default=None, description="AC: L3 current, A")
    register_wh: float | None = Field(default=None, description="the meter's raw import register, Wh")
    anomaly: str | None = Field(default=None, description="why this reading's energy step was not "
                                                          "billed: 'energy_backwards' or 'energy_jump'")
    at: datetime = Field(default_factory=utcnow)


class ConnectorState(Message):
    """One connector as smartw sees it; the HMI, ocpp16 and `status --json` read it."""

    connector_id: int = Field(ge=1)
    standard: Standard
    status: ConnectorStatus
    error_code: ConnectorErrorCode = ConnectorErrorCode.NO_ERROR
    info: str = Field(default="", description="short UI text key, e.g. 'estop', 'awaiting_card'")
    vendor_error_code: str | None = Field(default=None, description="the faulted device's own error code "
                                          "(OCPP vendorErrorCode), e.g. a charge controller's")
    plugged: bool = False
    contactor_closed: bool = False
    awaiting_card: bool = Field(default=False, description="a start was asked, a card is needed")
    power_w: float = Field(default=0.0, description="present power from the meter, W")
    meter_wh: float = Field(default=0.0, description="meter register, Wh")
    session_energy_wh: float = Field(default=0.0, description="energy of the running session, Wh")
    soc: float | None = Field(default=None, ge=0, le=100, description="EV state of charge, %")
    target_soc: float | None = Field(default=None, ge=0, le=100, description="EV target SoC, %")
    session_id: str | None = Field(default=None, description="smartw's id of the running session")
    id_tag: str | None = None
    session_started_at: datetime | None = None
    operative: bool = Field(default=True, description="False: set Inoperative (its own ChangeAvailability "
                            "or the station's); Unavailable once no session runs on it")
    at: datetime = Field(default_factory=utcnow)


class StationState(Message):
    """Station-wide state written by smartw (connector 0 in OCPP terms)."""

    status: ConnectorStatus
    estop: bool = Field(description="emergency stop pressed")
    io_online: bool = Field(description="the IO module answers")
    operative: bool = Field(default=True, description="False: the station (connector 0) is set "
                            "Inoperative; Unavailable once no session runs anywhere")
    free_mode: bool = Field(default=False, description="plugging in an EV starts charging "
                            "without a card (the configured idTag)")
    at: datetime = Field(default_factory=utcnow)


class DeviceState(Message):
    """Whether one device on the station answers (written by the service that polls it)."""

    device: str = Field(description="device name: 'meter:connector1', 'meter:station', "
                                    "'controller:1', 'io', 'imd', 'pm3' (power module), 'rfid'")
    bus: str = Field(default="", description="bus name from station.toml ('' for a serial device)")
    available: bool = Field(description="False once it missed two polls in a row (or refused)")
    reason: str = Field(default="", description="why it is unavailable or faulted, for logs and UIs")
    fault: str | None = Field(default=None, description="device-reported fault code, if any")
    firmware_version: str | None = Field(default=None, description="the firmware the device reports "
                                         "(charge controllers: major.minor.patch), None = not known")
    at: datetime = Field(default_factory=utcnow)


class PowerModuleReading(Message):
    """One DC power module's measured output and status (smartw polls it over CAN)."""

    module: str = Field(description="'pm1'..'pmN', in station.toml order")
    address: int = Field(ge=0, le=255, description="CAN address of the module")
    voltage_v: float = Field(description="measured output voltage, V")
    current_a: float = Field(description="measured output current, A")
    output_on: bool = Field(description="the module's DC output is on")
    status: list[str] = Field(default_factory=list, description="status flags the module reports")
    fault: str | None = Field(default=None, description="readable fault, None when healthy")
    at: datetime = Field(default_factory=utcnow)
