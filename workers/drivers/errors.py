"""The one error every driver raises (STYLE habit 5: library errors become one domain error)."""

from __future__ import annotations


class DeviceError(Exception):
    """A device did not answer, answered with an exception, or sent a value we cannot use.

    `device` names it as `<bus>/<device id>` (or a serial port), so a log line or an HMI
    fault says which box to check; `reason` is one short sentence.
    """

    def __init__(self, device: str, reason: str) -> None:
        super().__init__(f"{device}: {reason}")
        self.device = device
        self.reason = reason
