"""One read per hold: the tracker's decisions, driven by time and by an empty field."""

from __future__ import annotations

from workers.rfid.holds import HoldTracker


def test_an_em4100_card_repeating_its_frame_is_one_hold_until_it_goes_silent() -> None:
    holds = HoldTracker(gap_s=0.5)
    assert holds.seen("AA", 0.0)
    repeats = [holds.seen("AA", tenth / 10) for tenth in range(1, 31)]
    assert not any(repeats), "a frame every 0.1 s for 3 s is still one read"
    assert not holds.seen("AA", 3.5)  # a silence of exactly the gap: still the same hold
    assert holds.seen("AA", 4.01)  # silent for more than 0.5 s: it left and came back


def test_another_card_is_a_new_hold_at_once() -> None:
    holds = HoldTracker(gap_s=0.5)
    assert holds.seen("AA", 0.0)
    assert holds.seen("BB", 0.1)
    assert holds.seen("AA", 0.2)


def test_without_a_gap_only_an_empty_field_ends_a_hold() -> None:
    holds = HoldTracker(gap_s=None)
    assert holds.seen("AA", 0.0)
    assert not holds.seen("AA", 1000.0)  # a PN532 listing the card on every poll: one hold
    holds.field_empty()
    assert holds.seen("AA", 1000.2)
    assert not holds.seen("AA", 1000.4)
