from workers.common.bootstrap import setup

setup("smartw")

from workers.smartw.service import SmartwService  # noqa: E402

raise SystemExit(SmartwService().main())
