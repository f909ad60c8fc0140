"""StopTransaction.transactionData: the meter values of a transaction, sent with its stop.

What goes in (OCPP 1.6 §9.1 StopTxnSampledData / StopTxnAlignedData; errata 3.14, 3.89):
- a `Transaction.Begin` value at the start and a `Transaction.End` value at the stop, with the
  measurands of both keys, whenever either key is non-empty (errata 3.14). The energy register
  in them is the session event's own (exactly meterStart/meterStop); other measurands come
  from the bus only when the event is handled as it happens (a replayed event is minutes old:
  the bus no longer shows that moment, so only the register is given);
- every periodic sample (StopTxnSampledData, Sample.Periodic) and clock-aligned sample
  (StopTxnAlignedData, Sample.Clock) taken during the transaction, kept by the samplers;
- at most StopTransactionMaxMeterValues entries: intermediate samples are thinned evenly over
  the transaction, Begin and End are never dropped (errata 3.89).
Both keys empty: no transactionData at all.

Samples are kept in the database (OcppState `stoptxn:<session>`), written in the same database
transaction as the sampler's queued MeterValues and boundary, so a restart of ocpp16 neither
loses nor repeats them. If the Begin value was never kept (a crash right after the start, or
the keys were empty then), it is rebuilt from the Transaction row's meterStart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ocpp.v16.enums import Action, Measurand, ReadingContext

from bus import Bus
from bus.messages import SessionStarted, SessionStopped, utcnow
from webapp.station.models import OcppState, Transaction
from workers.ocpp16 import config_keys as keys
from workers.ocpp16 import measurands, payloads
from workers.ocpp16.config_keys import ConfigurationStore
from workers.ocpp16.measurands import Readings, SkippedValues
from workers.ocpp16.payloads import InvalidPayload, Payload
from workers.ocpp16.txqueue import db

log = logging.getLogger(__name__)

STATE_PREFIX = "stoptxn:"
EVENT_CURRENT_S = 5.0  # an event this old or newer is handled "as it happens": the bus shows its moment
ENERGY_REGISTER = str(Measurand.energy_active_import_register)
STORED_FACTOR = 2  # samples kept before thinning: this many times StopTransactionMaxMeterValues


def _state_name(session_id: str) -> str:
    return STATE_PREFIX + session_id


@dataclass(frozen=True)
class Kept:
    """What the database holds for one running transaction."""

    begin: Payload | None
    samples: list[Payload]

    @classmethod
    def of(cls, value: Any) -> Kept:
        if not isinstance(value, dict):
            return cls(None, [])
        return cls(value.get("begin"), list(value.get("samples") or []))

    def as_json(self) -> dict[str, Any]:
        return {"begin": self.begin, "samples": self.samples}


def thin(samples: list[Payload], room: int) -> list[Payload]:
    """At most `room` samples, spread evenly over the list, first and last kept when room allows."""
    if room <= 0:
        return []
    if len(samples) <= room:
        return list(samples)
    if room == 1:
        return [samples[-1]]
    step = (len(samples) - 1) / (room - 1)
    return [samples[round(index * step)] for index in range(room)]


def assemble(begin: Payload | None, samples: list[Payload], end: Payload | None, cap: int) -> list[Payload]:
    """Begin, the samples in time order, End; at most `cap` entries (Begin and End always stay)."""
    ends = [entry for entry in (begin, end) if entry is not None]
    ordered = sorted(samples, key=lambda entry: entry["timestamp"])  # same format: text order = time order
    middle = thin(ordered, max(cap, len(ends)) - len(ends))
    return ([begin] if begin else []) + middle + ([end] if end else [])


# ---- synchronous ORM code (run through db(), or inside the samplers' database transaction) ----

def _load(session_id: str) -> Kept:
    row = OcppState.objects.filter(name=_state_name(session_id)).first()
    return Kept.of(None if row is None else row.value)


def _save(session_id: str, kept: Kept) -> None:
    OcppState.objects.update_or_create(name=_state_name(session_id), defaults={"value": kept.as_json()})


def keep_sample(session_id: str, entry: Payload, cap: int) -> None:
    """Add one periodic or clock-aligned sample of a running transaction."""
    kept = _load(session_id)
    samples = [*kept.samples, entry]
    if len(samples) > STORED_FACTOR * max(cap, 1):
        samples = thin(samples, max(cap, 1))
    _save(session_id, Kept(kept.begin, samples))


def _keep_begin(session_id: str, entry: Payload) -> None:
    _save(session_id, Kept(entry, _load(session_id).samples))


def _forget(session_id: str) -> None:
    OcppState.objects.filter(name=_state_name(session_id)).delete()


def _meter_start(session_id: str) -> tuple[float, Any] | None:
    tx = Transaction.objects.filter(session_id=session_id).first()
    return None if tx is None else (tx.meter_start_wh, tx.started_at)


class TransactionData:
    """Keeps the Begin value of each transaction and builds transactionData at its stop."""

    def __init__(self, bus: Bus, config: ConfigurationStore) -> None:
        self._bus = bus
        self._config = config
        self._skips = SkippedValues()

    def items(self) -> tuple[str, ...]:
        """The measurands of Begin/End: StopTxnSampledData then StopTxnAlignedData, once each."""
        both = (*self._config.get(keys.STOP_TXN_SAMPLED_DATA), *self._config.get(keys.STOP_TXN_ALIGNED_DATA))
        return tuple(dict.fromkeys(both))

    @property
    def cap(self) -> int:
        return self._config.get(keys.STOP_TRANSACTION_MAX_METER_VALUES)

    async def begin(self, event: SessionStarted) -> None:
        """Keep the Transaction.Begin value of a session just recorded."""
        items = self.items()
        if not items:
            return
        entry = await self._entry(items, event.connector_id, event.meter_start_wh, event.at,
                                  ReadingContext.transaction_begin)
        if entry is not None:
            await db(_keep_begin, event.session_id, entry)

    async def attach(self, event: SessionStopped, payload: Payload) -> Payload:
        """`payload` (StopTransaction) with its transactionData, or unchanged when the keys are
        empty or nothing valid could be built (the stop itself must always go out)."""
        items = self.items()
        if not items:
            return payload
        kept = await db(_load, event.session_id)
        begin = kept.begin or await self._rebuilt_begin(items, event)
        end = await self._entry(items, event.connector_id, event.meter_stop_wh, event.at,
                                ReadingContext.transaction_end)
        data = assemble(begin, kept.samples, end, self.cap)
        if not data:
            return payload
        candidate = {**payload, "transactionData": data}
        try:
            await payloads.check(Action.stop_transaction, candidate)
        except InvalidPayload as error:
            log.error("session %s: transactionData left out of StopTransaction: %s", event.session_id, error)
            return payload
        return candidate

    async def forget(self, session_id: str) -> None:
        """Drop what was kept once the StopTransaction is queued."""
        await db(_forget, session_id)

    async def _rebuilt_begin(self, items: tuple[str, ...], event: SessionStopped) -> Payload | None:
        start = await db(_meter_start, event.session_id)
        if start is None or ENERGY_REGISTER not in items:
            return None
        meter_start_wh, started_at = start
        values = measurands.sampled_values([ENERGY_REGISTER],
                                           Readings(register_wh=meter_start_wh),
                                           ReadingContext.transaction_begin,
                                           where=f"session {event.session_id} Transaction.Begin",
                                           skips=self._skips)
        return payloads.meter_value(started_at, values) if values else None

    async def _entry(self, items: tuple[str, ...], connector_id: int, register_wh: float, at: Any,
                     context: ReadingContext) -> Payload | None:
        where = f"connector {connector_id} {context}"
        if utcnow() - at <= timedelta(seconds=EVENT_CURRENT_S):
            now = await measurands.read(self._bus, connector_id)
            readings = Readings(now.meter, now.soc, now.alternating, register_wh)
        else:
            log.info("%s: the event is from %s, the bus no longer shows that moment: only the energy "
                     "register is given", where, payloads.ocpp_time(at))
            items = tuple(item for item in items if item == ENERGY_REGISTER)
            readings = Readings(register_wh=register_wh)
        values = measurands.sampled_values(items, readings, context, where=where, skips=self._skips)
        return payloads.meter_value(at, values) if values else None
