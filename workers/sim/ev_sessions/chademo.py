"""CHAdeMO (IEEE 2030.1.1), reference/hardware.md §5.4.

Nothing happens on plug-in until the station starts the session (d1 energised, CAN wakes
up: handshake); EV and charger exchange 100/101/102 and 108/109 (a battery above the
charger's voltage is incompatible); the charger locks and runs the insulation test with the
stop-control flag set, checks the output fell to 10 V, energises d2 and the EV closes its
contactors onto the output (precharge); the EV then ramps its current request. A stop ramps
to 5 A and below, the EV runs welding detection and opens its contactors.
"""

from __future__ import annotations

from bus.enums import Standard
from workers.drivers.controllers.interface import SessionPhase
from workers.sim.ev import SimulatedEv
from workers.sim.ev_sessions.base import SIM_TIME_SCALE
from workers.sim.ev_sessions.dc import DcProfile, DcSession, DcTimings

TIMINGS = DcTimings(
    handshake_s=1.0,  # CP d1, CAN frames start (100 ms cycle)
    parameters_s=2.0,  # 100/101/102 <-> 108/109, EV sets "charging enabled" and pulls CP3
    cable_check_s=3.0,  # lock, insulation test, output below 10 V
    cable_check_timeout_s=20.0,  # modelling choice
    precharge_timeout_s=7.0,  # d2 energised until the EV's contactors are closed (modelling choice)
    welding_s=1.0,
    voltage_rate_v_per_s=400.0,
    ev_current_rate_a_per_s=50.0,  # CHAdeMO EVs raise 102 b3 gradually
)


def insulation_test_voltage_v(ev_max_v: float, evse_max_v: float) -> float:
    """The threshold voltage of frame 108 b4-5: min(EV maximum battery voltage, charger maximum)."""
    return min(ev_max_v, evse_max_v)


PROFILE = DcProfile(
    standard=Standard.CHADEMO,
    sequence=(SessionPhase.HANDSHAKE, SessionPhase.PARAMETER_EXCHANGE, SessionPhase.CABLE_CHECK,
              SessionPhase.PRECHARGE),
    starts_on_plug=False, welding_detection=True, timings=TIMINGS, test_voltage_v=insulation_test_voltage_v,
)


def chademo_session(ev: SimulatedEv, *, time_scale: float = SIM_TIME_SCALE) -> DcSession:
    return DcSession(ev, PROFILE, time_scale=time_scale)
