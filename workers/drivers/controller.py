"""The controller types smartw imports (`ControllerSnapshot`, `EvState`), kept at this path
so its modules need no change; the drivers themselves live in workers/drivers/controllers/
(one module per controller model behind one interface, built by its registry)."""

from workers.drivers.controllers.interface import ControllerSnapshot, EvState

__all__ = ["ControllerSnapshot", "EvState"]
