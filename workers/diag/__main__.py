import logging

from workers.common.bootstrap import setup

setup("diag")

from webapp.env import EnvError  # noqa: E402
from workers.common.station_config import ConfigError  # noqa: E402
from workers.diag.service import DiagService  # noqa: E402

try:
    service = DiagService()
except (ConfigError, EnvError) as error:
    logging.getLogger("workers.diag").critical("diag cannot start: %s", error)
    raise SystemExit(2) from None
raise SystemExit(service.main())
