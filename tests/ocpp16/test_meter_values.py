"""Meter values (OCTT module 09 and TC_036): sampled and clock-aligned MeterValues, StopTransaction's
transactionData, live key changes, and TriggerMessage's values.

The first tests run ocpp16 as a process against the test CSMS; the others drive one sampler in
this process on the real database and Redis, where time and keys are easier to steer.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bus import Bus, contract
from bus.enums import ConnectorStatus, Standard, StopReason
from bus.messages import ConnectorState, MeterReading, OcppTransaction, SessionStarted, SessionStopped, utcnow
from tests.support.database import query
from tests.support.waiting import async_wait_until
from webapp.station.models import OcppState, OutboxMessage, Transaction
from workers.ocpp16 import config_keys as keys
from workers.ocpp16 import payloads
from workers.ocpp16.clock_aligned import STATE_NAME, ClockAlignedSampler, latest_boundary, next_boundary
from workers.ocpp16.config_keys import ConfigurationStore
from workers.ocpp16.meter import MeterSampler, triggered_meter_values
from workers.ocpp16.notices import Notices
from workers.ocpp16.transaction_data import TransactionData, keep_sample, thin
from workers.ocpp16.txqueue import TransactionQueue, db
from workers.sim.csms import Csms, ReceivedCall

pytestmark = pytest.mark.django_db(transaction=True)

AC_READING = MeterReading(meter="connector2", energy_wh=5_000.4, power_w=11_040, voltage_v=230.1,
                          current_a=16.0, voltage_l2_v=231.0, voltage_l3_v=229.0, current_l2_a=15.9,
                          current_l3_a=16.1)
DC_READING = MeterReading(meter="connector1", energy_wh=90_000, power_w=48_000, voltage_v=400, current_a=120)
SAMPLED = ("Energy.Active.Import.Register,Power.Active.Import,Current.Import.L1,Current.Import.L2,"
           "Current.Import.L3,Voltage.L1-N,SoC")


def seed_configuration(database: Path, **values: str) -> None:
    """Configuration keys as a CSMS would have set them before this boot (table OcppSetting)."""
    with sqlite3.connect(database) as connection:
        connection.executemany("INSERT INTO station_ocppsetting (key, value, changed_at) VALUES (?, ?, ?)",
                               [(key, value, utcnow().isoformat()) for key, value in values.items()])


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def spacing_ms(stamps: list[str]) -> set[float]:
    return {(when(b) - when(a)) / timedelta(milliseconds=1) for a, b in itertools.pairwise(stamps)}


def sampled(call: ReceivedCall) -> list[dict]:
    return [value for entry in call.payload["meterValue"] for value in entry["sampledValue"]]


def meter_calls(csms: Csms, matching: Callable[[ReceivedCall], bool]) -> list[ReceivedCall]:
    return [c for c in csms.calls("MeterValues") if matching(c)]


async def put_readings(bus: Bus) -> None:
    await bus.set(contract.METER, DC_READING, meter="connector1")
    await bus.set(contract.METER, AC_READING, meter="connector2")
    await bus.set(contract.METER, AC_READING.model_copy(update={"meter": "station"}), meter="station")
    await bus.set(contract.CONNECTOR, ConnectorState(connector_id=1, standard=Standard.CCS,
                                                     status=ConnectorStatus.CHARGING, soc=70), connector_id=1)
    await bus.set(contract.CONNECTOR, ConnectorState(connector_id=2, standard=Standard.TYPE2,
                                                     status=ConnectorStatus.CHARGING, soc=40), connector_id=2)


# ---- ocpp16 as a process ------------------------------------------------------------------

async def test_sampled_values_are_spaced_by_the_interval_with_every_configured_measurand(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """TC_070_CS: Sample.Periodic every MeterValueSampleInterval from the start, format Raw, every
    configured measurand and phase, SoC at location EV; StopTransaction carries Begin/End."""
    await put_readings(bus)
    seed_configuration(service_db, MeterValuesSampledData=SAMPLED,
                       StopTxnSampledData="Energy.Active.Import.Register,SoC")
    start_ocpp16(csms.url, OCPP_METER_VALUE_SAMPLE_INTERVAL="0.5")
    await csms.wait_for_call("BootNotification")
    await bus.publish(contract.SESSIONS, SessionStarted(session_id="s-1", connector_id=2, id_tag="AA01",
                                                        meter_start_wh=5_000.4))
    start = await csms.wait_for_call("StartTransaction")
    await csms.wait_for_call("MeterValues", count=2)
    await bus.publish(contract.SESSIONS, SessionStopped(session_id="s-1", connector_id=2, id_tag="AA01",
                                                        meter_stop_wh=5_100.2, reason=StopReason.LOCAL))
    stop = await csms.wait_for_call("StopTransaction")

    periodic = csms.calls("MeterValues")
    stamps = [start.payload["timestamp"]] + [c.payload["meterValue"][0]["timestamp"] for c in periodic]
    assert spacing_ms(stamps) == {500.0}
    for call in periodic:
        assert call.payload["connectorId"] == 2
        assert call.payload["transactionId"] == stop.payload["transactionId"]
        values = sampled(call)
        assert {(v["measurand"], v.get("phase")) for v in values} == {
            ("Energy.Active.Import.Register", None), ("Power.Active.Import", None), ("Current.Import", "L1"),
            ("Current.Import", "L2"), ("Current.Import", "L3"), ("Voltage", "L1-N"), ("SoC", None)}
        assert {(v["context"], v["format"]) for v in values} == {("Sample.Periodic", "Raw")}
        assert {v["measurand"]: v["location"] for v in values if v["location"] != "Outlet"} == {"SoC": "EV"}
    data = stop.payload["transactionData"]
    contexts = [entry["sampledValue"][0]["context"] for entry in data]
    assert contexts[0] == "Transaction.Begin" and contexts[-1] == "Transaction.End"
    assert set(contexts[1:-1]) == {"Sample.Periodic"} and len(contexts) >= 4
    assert [(v["measurand"], v["value"]) for v in data[0]["sampledValue"]] == [
        ("Energy.Active.Import.Register", "5000"), ("SoC", "40")]
    assert data[-1]["sampledValue"][0]["value"] == "5100"
    assert data[-1]["timestamp"] == stop.payload["timestamp"]
    assert all(c.error_code is None for c in csms.received)


async def test_clock_aligned_values_bear_the_exact_boundary(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """TC_071_CS: Sample.Clock at boundaries counted from midnight UTC, stamped exactly on them;
    the connector in a transaction carries its transactionId, connector 0 and an idle one none."""
    await put_readings(bus)
    seed_configuration(service_db, ClockAlignedDataInterval="1",
                       MeterValuesAlignedData="Energy.Active.Import.Register,Power.Active.Import")
    start_ocpp16(csms.url, OCPP_METER_VALUE_SAMPLE_INTERVAL="0")
    await csms.wait_for_call("BootNotification")
    await bus.publish(contract.SESSIONS, SessionStarted(session_id="s-1", connector_id=1, id_tag="AA01",
                                                        meter_start_wh=90_000))
    start = await csms.wait_for_call("StartTransaction")
    transaction_id = start.response["transactionId"]

    def of(connector_id: int) -> list[ReceivedCall]:
        return meter_calls(csms, lambda c: c.payload["connectorId"] == connector_id
                           and c.payload["meterValue"][0]["timestamp"] > start.payload["timestamp"])

    await async_wait_until(lambda: _all_have(of, 2), what="two clock-aligned values per connector")
    for connector_id in (0, 1, 2):
        calls = of(connector_id)
        stamps = [c.payload["meterValue"][0]["timestamp"] for c in calls]
        assert all(stamp.endswith(".000Z") for stamp in stamps), stamps
        assert spacing_ms(stamps) == {1000.0}
        assert {v["context"] for c in calls for v in sampled(c)} == {"Sample.Clock"}
        assert {v["measurand"] for c in calls for v in sampled(c)} == {
            "Energy.Active.Import.Register", "Power.Active.Import"}
        expected_id = transaction_id if connector_id == 1 else None
        assert {c.payload.get("transactionId") for c in calls} == {expected_id}


async def _all_have(of: Callable[[int], list[ReceivedCall]], count: int) -> bool:
    return all(len(of(connector_id)) >= count for connector_id in (0, 1, 2))


async def test_values_sampled_during_an_outage_arrive_in_order_with_exact_spacing(
        bus: Bus, csms: Csms, start_ocpp16, service_db: Path) -> None:
    """TC_036_CS: the periodic values taken while the CSMS was unreachable are delivered after
    the reconnect, in order, none missing or repeated, before the StopTransaction."""
    await put_readings(bus)
    start_ocpp16(csms.url, OCPP_METER_VALUE_SAMPLE_INTERVAL="0.5")
    await csms.wait_for_call("BootNotification")
    await bus.publish(contract.SESSIONS, SessionStarted(session_id="s-1", connector_id=1, id_tag="AA01",
                                                        meter_start_wh=90_000))
    start = await csms.wait_for_call("StartTransaction")
    await csms.stop()
    await async_wait_until(lambda: _queued_offline(bus, service_db, 3), what="three samples queued offline")
    await csms.start()
    await bus.publish(contract.SESSIONS, SessionStopped(session_id="s-1", connector_id=1, id_tag="AA01",
                                                        meter_stop_wh=90_500, reason=StopReason.LOCAL))
    await csms.wait_for_call("StopTransaction", timeout_s=15)

    actions = [c.action for c in csms.received if c.action in ("MeterValues", "StopTransaction")]
    assert actions[-1] == "StopTransaction" and set(actions[:-1]) == {"MeterValues"}
    stamps = [c.payload["meterValue"][0]["timestamp"] for c in csms.calls("MeterValues")]
    assert len(stamps) >= 3 and spacing_ms([start.payload["timestamp"], *stamps]) == {500.0}


async def _queued_offline(bus: Bus, database: Path, count: int) -> bool:
    link = await bus.get(contract.OCPP_LINK)
    pending = query(database, "SELECT COUNT(*) FROM station_outboxmessage WHERE action = 'MeterValues' "
                              "AND state = 'pending'")[0][0]
    return link is not None and not link.connected and pending >= count


# ---- one sampler in this process ----------------------------------------------------------

async def _nothing() -> None:
    return None


async def _running(session_id: str = "s-1", connector_id: int = 1, started_ago_s: float = 0.0,
                   transaction_id: int | None = 7) -> Transaction:
    return await db(Transaction.objects.create, session_id=session_id, connector_id=connector_id,
                    id_tag="AA01", meter_start_wh=90_000, transaction_id=transaction_id,
                    started_at=utcnow() - timedelta(seconds=started_ago_s))


def _queued(action: str = "MeterValues") -> list[dict]:
    return [row.payload for row in OutboxMessage.objects.filter(action=action).order_by("id")]


async def _stamps() -> list[str]:
    return [p["meterValue"][0]["timestamp"] for p in await db(_queued)]


class Running:
    """A sampler's loop as a task, cancelled at the end."""

    def __init__(self, job) -> None:
        self.task = asyncio.create_task(job)

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


async def test_a_changed_interval_or_measurand_list_applies_without_a_restart(bus: Bus) -> None:
    await bus.set(contract.METER, DC_READING, meter="connector1")
    tx = await _running()
    config = ConfigurationStore({"MeterValueSampleInterval": "60"})
    sampler = Running(MeterSampler(bus, TransactionQueue(3, 1), config, _nothing).run())
    config.apply(keys.METER_VALUE_SAMPLE_INTERVAL, 0.3)
    config.apply(keys.METER_VALUES_SAMPLED_DATA, ("Voltage",))
    await async_wait_until(lambda: _count_at_least(3), what="samples at the new interval")
    config.apply(keys.METER_VALUE_SAMPLE_INTERVAL, 0.0)
    await asyncio.sleep(0.1)  # a sample being taken as the interval changed may still land
    settled = len(await _stamps())
    await asyncio.sleep(0.7)  # 0 = none: nothing may come in two old intervals
    await sampler.stop()

    stamps = await _stamps()
    assert len(stamps) == settled and stamps == sorted(set(stamps))
    step, start = timedelta(milliseconds=300), tx.started_at  # boundaries counted from the start:
    assert stamps == [payloads.ocpp_time(start + round((when(s) - start) / step) * step) for s in stamps]
    measured = {v["measurand"] for p in await db(_queued) for v in p["meterValue"][0]["sampledValue"]}
    assert measured == {"Voltage"}


async def _count_at_least(count: int) -> bool:
    return len(await _stamps()) >= count


async def test_stop_transaction_data_keeps_begin_and_end_and_thins_the_samples_between(bus: Bus) -> None:
    await bus.set(contract.METER, DC_READING, meter="connector1")
    config = ConfigurationStore({"StopTxnSampledData": "Energy.Active.Import.Register",
                                 "StopTxnAlignedData": "Power.Active.Import",
                                 "StopTransactionMaxMeterValues": "5"})
    data = TransactionData(bus, config)
    started = SessionStarted(session_id="s-1", connector_id=1, id_tag="AA01", meter_start_wh=89_999.6)
    queue = TransactionQueue(3, 1)
    await db(queue.record_start, started, payloads.start_transaction(started), None)
    await data.begin(started)
    for minute in range(1, 10):
        entry = payloads.meter_value(started.at + timedelta(minutes=minute), [
            {"value": str(90_000 + minute), "context": "Sample.Periodic"}])
        await db(keep_sample, "s-1", entry, 5)
    stopped = SessionStopped(session_id="s-1", connector_id=1, meter_stop_wh=90_010.4,
                             reason=StopReason.EV_DISCONNECTED)
    payload = await data.attach(stopped, payloads.stop_transaction(stopped, None))

    entries = payload["transactionData"]
    assert len(entries) == 5
    assert [(v["context"], v["measurand"], v["value"]) for v in entries[0]["sampledValue"]] == [
        ("Transaction.Begin", "Energy.Active.Import.Register", "90000"),
        ("Transaction.Begin", "Power.Active.Import", "48000")]
    between = [v["value"] for entry in entries[1:-1] for v in entry["sampledValue"]]
    assert between == ["90001", "90005", "90009"]
    assert [(v["context"], v["value"]) for v in entries[-1]["sampledValue"]] == [
        ("Transaction.End", "90010"), ("Transaction.End", "48000")]
    await payloads.check("StopTransaction", payload)
    await data.forget("s-1")
    assert not await db(OcppState.objects.filter(name__startswith="stoptxn:").exists)


async def test_empty_stop_txn_keys_mean_no_transaction_data(bus: Bus) -> None:
    config = ConfigurationStore({"StopTxnSampledData": "", "StopTxnAlignedData": ""})
    stopped = SessionStopped(session_id="s-1", connector_id=1, meter_stop_wh=1, reason=StopReason.LOCAL)
    payload = await TransactionData(bus, config).attach(stopped, payloads.stop_transaction(stopped, None))
    assert "transactionData" not in payload


async def test_a_lost_begin_is_rebuilt_from_meter_start_and_a_replayed_stop_shows_no_later_bus(
        bus: Bus) -> None:
    await bus.set(contract.METER, DC_READING, meter="connector1")
    await _running(started_ago_s=3600)
    config = ConfigurationStore({"StopTxnSampledData": "Energy.Active.Import.Register,Power.Active.Import"})
    stopped = SessionStopped(session_id="s-1", connector_id=1, meter_stop_wh=95_000,
                             reason=StopReason.POWER_LOSS, at=utcnow() - timedelta(minutes=10))  # replayed
    payload = await TransactionData(bus, config).attach(stopped, payloads.stop_transaction(stopped, None))
    begin, end = payload["transactionData"]
    assert [(v["context"], v["value"]) for v in begin["sampledValue"]] == [("Transaction.Begin", "90000")]
    assert [(v["context"], v["value"]) for v in end["sampledValue"]] == [("Transaction.End", "95000")]


def test_thinning_spreads_what_is_kept_over_the_whole_transaction() -> None:
    samples = [{"timestamp": f"t{index:02d}"} for index in range(10)]
    assert [s["timestamp"] for s in thin(samples, 4)] == ["t00", "t03", "t06", "t09"]
    assert thin(samples, 0) == [] and thin(samples[:3], 5) == samples[:3]


def test_clock_boundaries_count_from_midnight_utc() -> None:
    moment = datetime.fromisoformat("2024-03-01T10:07:31.250Z")
    assert latest_boundary(moment, timedelta(minutes=15)) == datetime.fromisoformat("2024-03-01T10:00:00Z")
    assert next_boundary(moment, timedelta(minutes=15)) == datetime.fromisoformat("2024-03-01T10:15:00Z")
    late = datetime.fromisoformat("2024-03-01T23:59:59Z")  # 7 h does not divide a day: midnight restarts
    assert next_boundary(late, timedelta(hours=7)) == datetime.fromisoformat("2024-03-02T00:00:00Z")


async def test_clock_aligned_values_of_a_transaction_are_queued_once_across_a_restart(bus: Bus) -> None:
    await bus.set(contract.METER, DC_READING, meter="connector1")
    await _running(started_ago_s=60, transaction_id=None)  # StartTransaction not answered yet
    config = ConfigurationStore({"ClockAlignedDataInterval": "0.25",
                                 "StopTxnAlignedData": "Power.Active.Import"})

    def sampler() -> Running:
        return Running(ClockAlignedSampler(bus, TransactionQueue(3, 1), config, Notices(lambda: 3, lambda: 1),
                                           (1,), lambda: False, _nothing).run())

    first = sampler()
    await async_wait_until(lambda: _count_at_least(2), what="two boundaries")
    await first.stop()
    second = sampler()  # a restart: the boundary already done is not queued again
    await async_wait_until(lambda: _count_at_least(4), what="two more boundaries")
    await second.stop()

    stamps = await _stamps()
    assert len(stamps) == len(set(stamps)) and stamps == sorted(stamps)
    assert all(when(s).microsecond % 250_000 == 0 for s in stamps)
    payload = (await db(_queued))[0]
    assert payload["connectorId"] == 1 and "transactionId" not in payload  # the queue fills it in later
    kept = await db(OcppState.objects.get, name="stoptxn:s-1")
    assert {v["context"] for e in kept.value["samples"] for v in e["sampledValue"]} == {"Sample.Clock"}
    assert (await db(OcppState.objects.get, name=STATE_NAME)).value == stamps[-1]


async def test_a_boundary_long_past_at_start_is_not_sampled(bus: Bus) -> None:
    await bus.set(contract.METER, DC_READING, meter="connector1")
    await _running()
    config = ConfigurationStore({"ClockAlignedDataInterval": "86400"})  # the boundary was midnight
    sampler = Running(ClockAlignedSampler(bus, TransactionQueue(3, 1), config, Notices(lambda: 3, lambda: 1),
                                          (1,), lambda: False, _nothing).run())
    await asyncio.sleep(0.2)
    await sampler.stop()
    assert await _stamps() == []


async def test_triggered_values_are_the_sampled_measurands_now_with_context_trigger(bus: Bus) -> None:
    """Errata 3.46 (TC_054_CS): TriggerMessage(MeterValues) returns MeterValuesSampledData values."""
    await put_readings(bus)
    await bus.set(contract.OCPP_TRANSACTION,
                  OcppTransaction(connector_id=2, session_id="s-2", transaction_id=41), connector_id=2)
    config = ConfigurationStore({"MeterValuesSampledData": "Energy.Active.Import.Register,Voltage.L2,SoC"})
    before = utcnow()
    on_two = await triggered_meter_values(bus, config, 2)
    station = await triggered_meter_values(bus, config, 0)
    await bus.delete(contract.METER, meter="connector1")
    await bus.delete(contract.CONNECTOR, connector_id=1)

    assert on_two["transactionId"] == 41
    assert when(on_two["meterValue"][0]["timestamp"]) >= before - timedelta(milliseconds=1)
    values = on_two["meterValue"][0]["sampledValue"]
    assert [(v["measurand"], v.get("phase"), v["context"]) for v in values] == [
        ("Energy.Active.Import.Register", None, "Trigger"), ("Voltage", "L2", "Trigger"),
        ("SoC", None, "Trigger")]
    assert "transactionId" not in station and station["connectorId"] == 0
    assert [v["measurand"] for v in station["meterValue"][0]["sampledValue"]] == [
        "Energy.Active.Import.Register", "Voltage"]
    assert await triggered_meter_values(bus, config, 1) is None  # nothing known: nothing to send
