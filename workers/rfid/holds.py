"""One read per hold: a card held on the reader is published once, again only after it left.

Readers say "the card left" in different ways. A PN532 poll that lists no card says it at once
(`field_empty`); after InRelease a held card is in standby and is not listed, so one read per
hold comes from the reader itself and the tracker only has to notice the empty field. An
EM4100 reader just stops repeating its frame, so a silence longer than `gap_s` (a few repeat
periods) is the only sign. A different card is always a new hold. Pure logic, no I/O.
"""

from __future__ import annotations


class HoldTracker:
    def __init__(self, gap_s: float | None = None) -> None:
        """`gap_s`: a silence that ends a hold (None: only `field_empty` ends one)."""
        self.gap_s = gap_s
        self._uid: str | None = None
        self._last_seen = 0.0

    def seen(self, uid: str, now: float) -> bool:
        """The reader read `uid` at `now` (monotonic s); True if that starts a new hold."""
        silent_too_long = self.gap_s is not None and now - self._last_seen > self.gap_s
        new = uid != self._uid or silent_too_long
        self._uid, self._last_seen = uid, now
        return new

    def field_empty(self) -> None:
        """The reader says no card is in its field: the next read is a new hold."""
        self._uid = None
