"""`python -m workers.counters`: the energy meter poller."""

from workers.common.bootstrap import setup

setup("counters")

from workers.counters.service import CountersService  # noqa: E402

raise SystemExit(CountersService().main())
