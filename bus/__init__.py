"""The station bus: the one contract between services (see bus.contract)."""

from bus.client import Bus, Delivery, NotReadyError
from bus.envelope import BusRequestError
from bus.service import Service

__all__ = ["Bus", "BusRequestError", "Delivery", "NotReadyError", "Service"]
