"""`python -m tests.chargepoint.lingering_service`: a service whose process goes on for a while
after its run ended and its heartbeat stopped, as a real one does while the interpreter winds
down its threads, so a test can tell a service that is stopping from one that is hung."""

from __future__ import annotations

import logging
import time

from tests.chargepoint.toy_service import ToyService

LINGER_S = 4.0  # > the heartbeat TTL (2 s) + the supervisor's MISSING_CONFIRM_S (1 s)


class LingeringService(ToyService):
    name = "lingering"


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s lingering %(levelname)s %(message)s")
    code = LingeringService().main()
    time.sleep(LINGER_S)
    raise SystemExit(code)
