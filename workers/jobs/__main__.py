from workers.common.bootstrap import setup

setup("jobs")

from workers.jobs.service import JobsService  # noqa: E402

raise SystemExit(JobsService().main())
