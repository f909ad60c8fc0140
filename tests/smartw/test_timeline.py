"""The session timeline recorder against a real database: what smartw's cycle records, and a
writer that keeps order, rides out a database hiccup and drops (and counts) what does not fit."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from bus.enums import StopReason
from tests.support.waiting import async_wait_until
from webapp.station.models import ChargingSession, SessionEvent
from workers.common.station_config import ConnectorConfig
from workers.drivers.controller import ControllerSnapshot, EvState
from workers.drivers.controllers.interface import NO_ERRORS, ControllerError, SessionPhase
from workers.smartw.connector import ActiveSession, ConnectorRuntime
from workers.smartw.status import CONTROLLER_ERROR
from workers.smartw.timeline import SessionTimeline, TimelineEntry, TimelineWriter

pytestmark = pytest.mark.django_db(transaction=True)

Kind = SessionEvent.Kind
FLUSH_S = 5.0


def connector_config() -> ConnectorConfig:
    return ConnectorConfig.model_validate({
        "id": 1, "standard": "CCS", "max_power_kw": 150, "contactor_coil": 0,
        "meter": {"bus": "meters", "device_id": 1, "model": "acudc243"},
        "controller": {"bus": "controllers", "device_id": 21},
    })


def controller(ev_state: EvState = EvState.C, phase: SessionPhase = SessionPhase.CHARGING,
               soc: float | None = 23.0, error_code: int = 0,
               errors: ControllerError = NO_ERRORS) -> ControllerSnapshot:
    return ControllerSnapshot(ev_state=ev_state, soc=soc, target_soc=80.0, ev_max_power_w=150_000,
                              error_code=error_code, phase=phase, errors=errors)


async def new_session(session_id: str = "s1") -> ChargingSession:
    return await ChargingSession.objects.acreate(
        session_id=session_id, connector_id=1, standard="CCS", id_tag="CARD,1", started_at=datetime.now(UTC),
        meter_start_wh=1000.0)


async def stop_session(row: ChargingSession) -> ChargingSession:
    await ChargingSession.objects.filter(pk=row.pk).aupdate(
        stopped_at=datetime.now(UTC), meter_stop_wh=21_000.0, energy_wh=20_000.0,
        peak_power_w=52_600.0, stop_reason=StopReason.LOCAL.value, stop_id_tag="CARD,1")
    return await ChargingSession.objects.aget(pk=row.pk)


async def timeline_of(session_id: str) -> list[SessionEvent]:
    return [event async for event in SessionEvent.objects.filter(session__session_id=session_id)
            .order_by("at", "pk")]


def observe(timeline: SessionTimeline, connector: ConnectorRuntime) -> None:
    timeline.observe(connector, connector.snapshot(None))


async def test_a_session_records_start_status_limit_ev_soc_fault_and_stop_in_order() -> None:
    timeline = SessionTimeline()
    connector = ConnectorRuntime(connector_config(), controller=controller())
    row = await new_session()
    connector.session = ActiveSession(row.session_id, row.id_tag, row.started_at, row.meter_start_wh)
    observe(timeline, connector)  # before `started`: the row may not exist yet, nothing recorded

    timeline.started(row)
    observe(timeline, connector)  # SuspendedEVSE (no power yet), EV state C charging
    for offered_w, soc in ((50_000, 24), (50_500, 25), (52_600, 29.9), (52_600, 30.1)):
        connector.allocated_w = offered_w
        connector.controller = controller(soc=soc)
        observe(timeline, connector)
    connector.controller = controller(ev_state=EvState.F, phase=SessionPhase.FAULT, soc=30.5, error_code=66,
                                      errors=ControllerError.OVERTEMPERATURE)
    connector.controller_fault = CONTROLLER_ERROR  # as the cycle sets it for EV state F
    observe(timeline, connector)
    connector.controller, connector.controller_fault = controller(soc=30.5), None
    observe(timeline, connector)
    timeline.stopped(await stop_session(row))
    observe(timeline, connector)  # after `stopped`: nothing more for this session
    await timeline.aclose(FLUSH_S)

    events = await timeline_of("s1")
    assert [(e.kind, e.detail) for e in events] == [
        (Kind.STARTED, "id tag CARD,1, meter 1000 Wh"),
        (Kind.STATUS, "SuspendedEVSE (waiting_for_power)"),
        (Kind.EV, "EV state C, phase charging"),
        (Kind.STATUS, "Charging (charging)"),
        (Kind.LIMIT, "50.0 kW offered (was 0.0)"),
        (Kind.LIMIT, "52.6 kW offered (was 50.0)"),  # 50.5 kW was within 5 %
        (Kind.EV, "SoC 30 %"),
        (Kind.STATUS, "Faulted (controller_error)"),
        (Kind.FAULT, "raised: OtherError (controller_error), vendor code 66"),
        (Kind.EV, "EV state F, phase fault"),
        (Kind.STATUS, "Charging (charging)"),
        (Kind.FAULT, "cleared: OtherError (controller_error), vendor code 66"),
        (Kind.EV, "EV state C, phase charging"),
        (Kind.STOPPED, "Local, 20000 Wh"),
    ]
    raised = events[8].data
    assert raised == {"raised": True, "error_code": "OtherError", "info": "controller_error",
                      "vendor_error_code": 66, "controller_errors": ["OVERTEMPERATURE"]}
    assert events[-1].data["peak_power_w"] == 52_600.0
    assert events[0].at == row.started_at
    assert [e.at for e in events] == sorted(e.at for e in events)


def entry(session_id: str, number: int) -> TimelineEntry:
    return TimelineEntry(session_id, datetime.now(UTC), Kind.STATUS, f"entry {number}", {"n": number})


@sync_to_async
def rename_table(source: str, target: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {source} RENAME TO {target}")


async def database_hiccup() -> None:
    """The timeline table gone for a while: a real OperationalError on every write."""
    await rename_table("station_sessionevent", "station_sessionevent_away")


async def database_back() -> None:
    await rename_table("station_sessionevent_away", "station_sessionevent")


async def test_the_writer_retries_through_a_database_hiccup_and_keeps_the_order(caplog) -> None:
    caplog.set_level(logging.INFO, logger="workers.smartw.timeline")
    await new_session()
    writer = TimelineWriter(retry_first_s=0.02, retry_max_s=0.05)
    await database_hiccup()
    for number in range(5):
        writer.put(entry("s1", number))

    async def failed_twice() -> bool:
        return "cannot write 5 event(s)" in caplog.text and writer.pending == 5
    await async_wait_until(failed_twice, what="the writer to fail and keep its entries")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # the first failure at ERROR, the repeats at DEBUG
    for number in range(5, 8):
        writer.put(entry("s1", number))
    await database_back()

    async def all_written() -> list[SessionEvent]:
        events = await timeline_of("s1")
        return events if len(events) == 8 else []
    events = await async_wait_until(all_written, what="every entry written")
    assert [e.data["n"] for e in events] == list(range(8))
    assert "session timeline: writing again" in caplog.text
    assert writer.dropped == 0
    await writer.aclose(FLUSH_S)


async def test_a_full_queue_drops_new_entries_counts_and_logs_them(caplog) -> None:
    caplog.set_level(logging.INFO, logger="workers.smartw.timeline")
    await new_session()
    writer = TimelineWriter(capacity=3, retry_first_s=0.02, retry_max_s=0.05)
    await database_hiccup()
    for number in range(5):
        writer.put(entry("s1", number))
    assert (writer.pending, writer.dropped) == (3, 2)
    assert "dropping events: the queue is full" in caplog.text
    await database_back()
    await writer.aclose(FLUSH_S)

    assert [e.data["n"] for e in await timeline_of("s1")] == [0, 1, 2]
    assert "2 event(s) dropped (2 since start)" in caplog.text


async def test_an_entry_whose_session_has_no_row_is_dropped_and_the_rest_written(caplog) -> None:
    await new_session()
    writer = TimelineWriter()
    writer.put(entry("s1", 0))
    writer.put(entry("no-such-session", 1))
    writer.put(entry("s1", 2))
    await writer.aclose(FLUSH_S)

    assert [e.data["n"] for e in await timeline_of("s1")] == [0, 2]
    assert writer.dropped == 1
    assert "their session has no row" in caplog.text


async def test_closing_gives_up_after_its_timeout_while_the_database_stays_away(caplog) -> None:
    await new_session()
    writer = TimelineWriter(retry_first_s=0.02, retry_max_s=0.05)
    await database_hiccup()
    try:
        writer.put(entry("s1", 0))
        await writer.aclose(0.2)
    finally:
        await database_back()
    assert "1 event(s) not written before stopping" in caplog.text
