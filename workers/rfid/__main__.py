"""`python -m workers.rfid`: the card reader service."""

from workers.common.bootstrap import setup

setup("rfid")

from workers.rfid.service import RfidService  # noqa: E402

raise SystemExit(RfidService().main())
