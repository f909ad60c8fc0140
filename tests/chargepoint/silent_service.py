"""`python -m tests.chargepoint.silent_service`: a process that runs but never beats, like a
service stuck in its start-up; the supervisor must treat it as hung after the grace."""

from __future__ import annotations

import signal

if __name__ == "__main__":
    while True:
        signal.pause()
