"""GB/T 27930 (China DC), reference/hardware.md §5.5.

On the station's start the charger switches on the 12 V auxiliary supply (K3/K4) and
exchanges CHM/BHM (handshake); it tests the insulation at the BHM maximum voltage before any
parameters; then identification (CRM/BRM) and parameters (BCP, CTS/CML, BRO) follow, the
charger checks the battery voltage against BCP and precharges before closing K1/K2 (CRO);
charging tracks BCL. BST/CST end it with a current ramp-down and BSD/CSD; GB/T has no separate
welding-detection step.
"""

from __future__ import annotations

from bus.enums import Standard
from workers.drivers.controllers.interface import SessionPhase
from workers.sim.ev import SimulatedEv
from workers.sim.ev_sessions.base import SIM_TIME_SCALE
from workers.sim.ev_sessions.dc import DcProfile, DcSession, DcTimings

TIMINGS = DcTimings(
    handshake_s=1.5,  # CC1 detected, lock, K3/K4 aux power, CHM <-> BHM (250 ms cycle)
    parameters_s=2.0,  # CRM(0x00) -> BRM -> CRM(0xAA), BCP, CTS + CML, BRO 0x00 -> 0xAA
    cable_check_s=4.0,  # insulation test with K1/K2 closed, then discharge
    cable_check_timeout_s=30.0,  # modelling choice (GB/T receive timeouts are about 5 s per message)
    precharge_timeout_s=7.0,  # modelling choice
    welding_s=0.0,  # not a GB/T step
)


def insulation_test_voltage_v(ev_max_v: float, evse_max_v: float) -> float:
    """The BHM maximum allowed charging voltage, within the charger's range."""
    return min(ev_max_v, evse_max_v)


PROFILE = DcProfile(
    standard=Standard.GBT,
    sequence=(SessionPhase.HANDSHAKE, SessionPhase.CABLE_CHECK, SessionPhase.PARAMETER_EXCHANGE,
              SessionPhase.PRECHARGE),
    starts_on_plug=False, welding_detection=False, timings=TIMINGS, test_voltage_v=insulation_test_voltage_v,
)


def gbt_session(ev: SimulatedEv, *, time_scale: float = SIM_TIME_SCALE) -> DcSession:
    return DcSession(ev, PROFILE, time_scale=time_scale)
