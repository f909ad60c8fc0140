"""The update hold's rules (workers/smartw/update_hold.py), on a clock the test drives."""

from __future__ import annotations

import pytest

from bus.messages import UpdateHoldRequest
from workers.smartw.update_hold import UpdateHold


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hold(clock: Clock) -> UpdateHold:
    return UpdateHold(clock)


def ask(seconds: float = 60.0) -> UpdateHoldRequest:
    return UpdateHoldRequest(hold=True, reason="software 2.1.0", hold_s=seconds)


def test_a_hold_is_granted_while_nothing_charges(hold: UpdateHold) -> None:
    reply = hold.request(ask(), charging=[])
    assert reply.granted and reply.charging == []
    assert hold.active and hold.reason == "software 2.1.0"


def test_a_hold_is_refused_while_connectors_charge_and_names_them(hold: UpdateHold) -> None:
    reply = hold.request(ask(), charging=[3, 1])
    assert not reply.granted
    assert reply.charging == [1, 3]
    assert "1, 3" in reply.detail
    assert not hold.active


def test_a_hold_expires_after_its_time_without_a_renewal(hold: UpdateHold, clock: Clock) -> None:
    hold.request(ask(60.0), charging=[])
    clock.now += 59.9
    assert hold.active
    clock.now += 0.2
    assert not hold.active
    assert hold.lapse() is True
    assert hold.lapse() is False  # said once
    assert hold.reason == ""


def test_a_renewal_extends_the_hold_from_now(hold: UpdateHold, clock: Clock) -> None:
    hold.request(ask(60.0), charging=[])
    clock.now += 50.0
    assert hold.request(ask(60.0), charging=[]).granted
    clock.now += 50.0
    assert hold.active
    assert hold.lapse() is False


def test_a_release_ends_the_hold_at_once_and_is_always_granted(hold: UpdateHold) -> None:
    hold.request(ask(), charging=[])
    reply = hold.request(UpdateHoldRequest(hold=False), charging=[2])
    assert reply.granted and reply.detail == "released"
    assert not hold.active
    assert hold.request(UpdateHoldRequest(hold=False), charging=[]).detail == "no hold stood"


def test_a_refused_renewal_leaves_the_standing_hold_to_expire(hold: UpdateHold, clock: Clock) -> None:
    hold.request(ask(60.0), charging=[])
    assert not hold.request(ask(600.0), charging=[2]).granted
    clock.now += 61.0
    assert not hold.active
