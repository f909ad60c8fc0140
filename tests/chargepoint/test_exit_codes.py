"""The exit-code contract between chargepoint and ops/start.sh."""

from __future__ import annotations

import subprocess
import sys

from bus.enums import UpdateKind
from webapp.env import REPO_ROOT
from workers.chargepoint.exit_codes import ExitCode


def test_every_update_kind_has_its_own_code_distinct_from_stop_crash_and_config() -> None:
    codes = [ExitCode.for_update(kind) for kind in UpdateKind]
    assert len(set(codes)) == len(UpdateKind)
    assert not {ExitCode.STOP, ExitCode.CRASH, ExitCode.CONFIG_ERROR} & set(codes)
    assert [ExitCode.for_update(kind).update_kind() for kind in UpdateKind] == list(UpdateKind)
    assert ExitCode.CRASH.update_kind() is None


def test_shell_reads_the_same_codes_as_python() -> None:
    script = ('eval "$("$PY" -m workers.chargepoint.exit_codes)"; '
              'echo "$EXIT_STOP $EXIT_CRASH $EXIT_CONFIG_ERROR $EXIT_UPDATE_SOFTWARE '
              '$UPDATE_KIND_12"')
    done = subprocess.run(["bash", "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={"PY": sys.executable, "PATH": "/usr/bin:/bin"}, check=True)
    assert done.stdout.split() == ["0", "1", "2", str(int(ExitCode.UPDATE_SOFTWARE)),
                                   ExitCode.UPDATE_CONTROLLER_FIRMWARE.update_kind()]
