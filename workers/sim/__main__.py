"""`python -m workers.sim`: the simulator service (simulation mode only)."""

from workers.common.bootstrap import setup

setup("sim")

from workers.sim.service import SimService  # noqa: E402

raise SystemExit(SimService().main())
