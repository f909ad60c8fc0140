"""Periodic samples survive an ocpp16 restart: no boundary is queued twice, none is skipped."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bus import Bus, contract
from bus.messages import MeterReading, utcnow
from webapp.station.models import OutboxMessage, Transaction
from workers.ocpp16.config_keys import ConfigurationStore
from workers.ocpp16.meter import MeterSampler
from workers.ocpp16.txqueue import TransactionQueue, db

pytestmark = pytest.mark.django_db(transaction=True)


async def _run_sampler_briefly(bus: Bus) -> list[str]:
    """One sampler, as a freshly started ocpp16 has it, for a fraction of the 10 s interval."""
    async def queued() -> None:
        return None

    config = ConfigurationStore({"MeterValueSampleInterval": "10"})
    sampler = MeterSampler(bus, TransactionQueue(attempts=3, retry_interval_s=1), config, queued)
    task = asyncio.create_task(sampler.run())
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rows = await db(lambda: list(OutboxMessage.objects.filter(action="MeterValues").order_by("id")))
    return [row.payload["meterValue"][0]["timestamp"] for row in rows]


async def _transaction(started_ago_s: float) -> Transaction:
    return await db(Transaction.objects.create, session_id="s-1", connector_id=1, id_tag="AA01",
                    meter_start_wh=1_000, started_at=utcnow() - timedelta(seconds=started_ago_s),
                    transaction_id=7)


async def test_a_restart_does_not_repeat_the_boundary_already_sampled(bus: Bus) -> None:
    await bus.set(contract.METER, MeterReading(meter="connector1", energy_wh=1_200, power_w=3_000),
                  meter="connector1")
    tx = await _transaction(started_ago_s=25)
    first = await _run_sampler_briefly(bus)  # boundary 2 (20 s) is due
    assert len(first) == 1
    await db(tx.refresh_from_db)
    assert tx.last_sampled_at == tx.started_at + timedelta(seconds=20)

    again = await _run_sampler_briefly(bus)  # "restarted" within the same interval
    assert again == first


async def test_a_restart_samples_the_boundary_the_previous_process_missed(bus: Bus) -> None:
    await bus.set(contract.METER, MeterReading(meter="connector1", energy_wh=1_200, power_w=3_000),
                  meter="connector1")
    tx = await _transaction(started_ago_s=25)
    tx.last_sampled_at = tx.started_at + timedelta(seconds=10)  # the process died before 20 s
    await db(tx.save)
    stamps = await _run_sampler_briefly(bus)
    assert len(stamps) == 1
    await db(tx.refresh_from_db)
    assert tx.last_sampled_at == tx.started_at + timedelta(seconds=20)
