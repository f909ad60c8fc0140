"""Simulated EV sessions, one model per standard: the phases and timings of the reference
(Type 2: IEC 61851 states and PWM; CCS, CHAdeMO, GB/T: their DC sequences) over the battery
model of workers/sim/ev.py. The simulated controller (workers/sim/ev_controller.py) runs one."""

from __future__ import annotations

from bus.enums import Standard
from workers.sim.ev import SimulatedEv
from workers.sim.ev_sessions.base import SIM_TIME_SCALE, EvFault, EvSession, Offer, SessionView
from workers.sim.ev_sessions.ccs import ccs_session
from workers.sim.ev_sessions.chademo import chademo_session
from workers.sim.ev_sessions.gbt import gbt_session
from workers.sim.ev_sessions.type2 import SUPPLY_PHASES, SUPPLY_VOLTAGE_V, Type2Session

__all__ = ["SIM_TIME_SCALE", "EvFault", "EvSession", "Offer", "SessionView", "new_session"]


def new_session(standard: Standard, ev: SimulatedEv, *, time_scale: float = SIM_TIME_SCALE,
                ac_phases: int = SUPPLY_PHASES, ac_voltage_v: float = SUPPLY_VOLTAGE_V) -> EvSession:
    """`ac_*`: the supply a Type 2 controller offers (phases, phase-to-neutral voltage)."""
    if standard is Standard.TYPE2:
        return Type2Session(ev, time_scale=time_scale, phases=ac_phases, voltage_v=ac_voltage_v)
    dc_sessions = {Standard.CCS: ccs_session, Standard.CHADEMO: chademo_session, Standard.GBT: gbt_session}
    return dc_sessions[standard](ev, time_scale=time_scale)
