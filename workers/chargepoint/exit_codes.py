"""chargepoint's exit codes: the one contract between it and ops/start.sh.

Defined once here; ops/start.sh reads them by running `python -m workers.chargepoint.exit_codes`
(shell assignments), so the script and the supervisor cannot drift apart.
"""

from __future__ import annotations

import sys
from enum import IntEnum

from bus.enums import UpdateKind


class ExitCode(IntEnum):
    """Why chargepoint exited. ops/start.sh: 0 stops, 1 restarts soon, 2 retries later,
    the UPDATE_* codes install the packages staged for that kind and start again."""

    STOP = 0  # asked to stop (SIGTERM/SIGINT); every service was stopped first
    CRASH = 1  # chargepoint itself failed (bug, database unreachable): restart after a short delay
    CONFIG_ERROR = 2  # station.toml or the installation is unusable: an operator must act
    UPDATE_SOFTWARE = 10  # install the staged station-software deb
    UPDATE_WEB_CONFIGURATOR = 11  # install the staged web-configurator deb
    UPDATE_CONTROLLER_FIRMWARE = 12  # install the staged controller-firmware deb

    @classmethod
    def for_update(cls, kind: UpdateKind) -> ExitCode:
        return _BY_KIND[kind]

    def update_kind(self) -> UpdateKind | None:
        """The update kind this code asks ops/start.sh to install, if any."""
        for kind, code in _BY_KIND.items():
            if code is self:
                return kind
        return None


_BY_KIND: dict[UpdateKind, ExitCode] = {
    UpdateKind.SOFTWARE: ExitCode.UPDATE_SOFTWARE,
    UpdateKind.WEB_CONFIGURATOR: ExitCode.UPDATE_WEB_CONFIGURATOR,
    UpdateKind.CONTROLLER_FIRMWARE: ExitCode.UPDATE_CONTROLLER_FIRMWARE,
}


def shell_assignments() -> str:
    """`EXIT_STOP=0` ... and `UPDATE_KIND_10=software` ... lines for ops/start.sh to `eval`."""
    lines = [f"EXIT_{code.name}={code.value}" for code in ExitCode]
    lines += [f"UPDATE_KIND_{code.value}={kind.value}" for kind, code in _BY_KIND.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(shell_assignments() + "\n")
