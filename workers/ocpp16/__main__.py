"""`python -m workers.ocpp16`: run the OCPP 1.6-J charge point service."""

import sys

from workers.common.bootstrap import setup

setup("ocpp16")

# Imported after setup(): they need Django's settings and ORM.
from workers.common.station_config import ConfigError  # noqa: E402
from workers.ocpp16.service import Ocpp16Service  # noqa: E402
from workers.ocpp16.settings import Ocpp16Settings, SettingsError  # noqa: E402

CONFIG_ERROR_EXIT = 2  # chargepoint's "configuration error" code: do not restart in a loop

try:
    settings = Ocpp16Settings.from_django()
except (ConfigError, SettingsError) as error:
    print(f"ocpp16: {error}", file=sys.stderr)
    raise SystemExit(CONFIG_ERROR_EXIT) from None

raise SystemExit(Ocpp16Service(settings).main())
