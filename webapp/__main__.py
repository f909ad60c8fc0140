"""`python -m webapp`: the station's web service (kiosk HMI, configurator, websockets)."""

from workers.common.bootstrap import setup

setup("web")

from webapp.server import WebService  # noqa: E402  (Django must be set up first)

raise SystemExit(WebService().main())
