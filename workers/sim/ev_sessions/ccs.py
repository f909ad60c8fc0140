"""CCS (IEC 61851-23 with DIN SPEC 70121 / ISO 15118-2), reference/hardware.md §5.3.

Plug-in starts SLAC, SDP and the V2G session at once (handshake); the session then sits in
the authorisation loop ("Ongoing") until the station enables it, exchanges charge
parameters, checks the cable at the IEC 61851-23 test voltage, precharges to the battery
voltage within 7 s, runs current demand, and ends with power delivery stop, welding
detection and session stop.
"""

from __future__ import annotations

from bus.enums import Standard
from workers.drivers.controllers.interface import SessionPhase
from workers.sim.ev import SimulatedEv
from workers.sim.ev_sessions.base import SIM_TIME_SCALE
from workers.sim.ev_sessions.dc import DcProfile, DcSession, DcTimings

TIMINGS = DcTimings(
    handshake_s=3.0,  # SLAC + SDP + SupportedAppProtocol + SessionSetup + service and payment selection
    parameters_s=1.0,  # ChargeParameterDiscovery
    cable_check_s=4.0,  # IMD self-test and insulation measurement at the test voltage
    cable_check_timeout_s=40.0,  # the EV's overall CableCheck limit (josev tables)
    precharge_timeout_s=7.0,  # PreCharge overall limit
    welding_s=1.5,
)


def cable_check_voltage_v(ev_max_v: float, evse_max_v: float) -> float:
    """IEC 61851-23 (2023) CC.4.1.2 formula CC.1, as EVerest's get_cable_check_voltage."""
    if ev_max_v <= 500.0:
        return min(500.0, ev_max_v + 50.0, evse_max_v)
    return min(evse_max_v, 1.1 * ev_max_v)


PROFILE = DcProfile(
    standard=Standard.CCS,
    sequence=(SessionPhase.HANDSHAKE, SessionPhase.PARAMETER_EXCHANGE, SessionPhase.CABLE_CHECK,
              SessionPhase.PRECHARGE),
    starts_on_plug=True, welding_detection=True, timings=TIMINGS, test_voltage_v=cable_check_voltage_v,
)


def ccs_session(ev: SimulatedEv, *, time_scale: float = SIM_TIME_SCALE) -> DcSession:
    return DcSession(ev, PROFILE, time_scale=time_scale)
