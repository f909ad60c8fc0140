"""`python -m tests.chargepoint.toy_service`: the smallest real service (real `Service` base,
real heartbeat on the test Redis). It stands in for "any service" where a test needs one
whose only behaviour is to beat, e.g. to measure the supervisor's restart times."""

from __future__ import annotations

import logging

from bus.service import Service


class ToyService(Service):
    name = "toy"

    async def run(self) -> None:
        while await self.sleep(1.0):
            pass


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s toy %(levelname)s %(message)s")
    raise SystemExit(ToyService().main())
