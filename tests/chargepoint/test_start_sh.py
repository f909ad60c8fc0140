"""ops/start.sh: exit codes, staged package installation, status files, signal forwarding.

chargepoint is replaced by a stand-in script (CHARGEPOINT_CMD) that exits with the codes the
test plans, and dpkg by a script (DPKG) that records its arguments and fails on demand."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.waiting import wait_until
from webapp.env import REPO_ROOT
from workers.chargepoint.exit_codes import ExitCode

START_SH = REPO_ROOT / "ops" / "start.sh"

STAND_IN = """#!/usr/bin/env bash
code="$(head -n 1 "$PLAN")"
sed -i 1d "$PLAN"
if [[ "$code" == wait ]]; then
    trap 'echo TERM >> "$RUNS"; exit 0' TERM  # before the run is recorded: the test waits for it
    echo "$*" >> "$RUNS"
    while true; do sleep 0.05; done
fi
echo "$*" >> "$RUNS"
exit "${code:-0}"
"""

FAKE_DPKG = """#!/usr/bin/env bash
echo "$*" >> "$DPKG_ARGS"
for f in "${@:2}"; do [[ -f "$f" ]] || { echo "missing $f" >&2; exit 3; }; done
if [[ -e "$DPKG_FAIL" ]]; then
    echo "dpkg: error processing archive $2 (--install): \\"broken\\" package" >&2
    exit 1
fi
"""


@dataclass
class Rig:
    folder: Path
    data: Path
    env: dict[str, str]

    def plan(self, *codes: int | str) -> None:
        (self.folder / "plan").write_text("".join(f"{code}\n" for code in codes))

    def stage(self, kind: str, name: str) -> Path:
        staged = self.data / "packages" / "staged" / kind
        staged.mkdir(parents=True, exist_ok=True)
        deb = staged / name
        deb.write_bytes(b"!<arch>\ndebian-binary   \n2.0\n")
        return deb

    def runs(self) -> list[str]:
        path = self.folder / "runs"
        return path.read_text().splitlines() if path.exists() else []

    def dpkg_calls(self) -> list[str]:
        path = self.folder / "dpkg-args"
        return path.read_text().splitlines() if path.exists() else []

    def status(self, kind: str) -> dict[str, object]:
        return json.loads((self.data / "packages" / "status" / f"{kind}.json").read_text())

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(START_SH), *args], env=self.env, capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    stand_in, dpkg = tmp_path / "chargepoint", tmp_path / "dpkg"
    stand_in.write_text(STAND_IN)
    dpkg.write_text(FAKE_DPKG)
    stand_in.chmod(0o755)
    dpkg.chmod(0o755)
    data = tmp_path / "data"
    env = dict(os.environ, CHARGEPOINT_CMD=str(stand_in), DPKG=str(dpkg), STATION_DATA_DIR=str(data),
               RUNS=str(tmp_path / "runs"), PLAN=str(tmp_path / "plan"),
               DPKG_ARGS=str(tmp_path / "dpkg-args"), DPKG_FAIL=str(tmp_path / "dpkg-fails"),
               START_CRASH_DELAY_S="0.05", START_CONFIG_DELAY_S="0.1")
    return Rig(tmp_path, data, env)


def test_exit_0_stops_and_arguments_reach_chargepoint(rig: Rig) -> None:
    rig.plan(0)
    done = rig.run("--sim")
    assert done.returncode == 0
    assert rig.runs() == ["--sim"]


def test_crash_and_config_error_restart_chargepoint(rig: Rig) -> None:
    rig.plan(ExitCode.CRASH, ExitCode.CONFIG_ERROR, 137, 0)
    done = rig.run()
    assert done.returncode == 0
    assert len(rig.runs()) == 4
    assert "configuration error; retrying in 0.1 s" in done.stderr
    assert "chargepoint exited 1; restarting in 0.05 s" in done.stderr


@pytest.mark.parametrize("code", [ExitCode.UPDATE_SOFTWARE, ExitCode.UPDATE_WEB_CONFIGURATOR,
                                  ExitCode.UPDATE_CONTROLLER_FIRMWARE])
def test_update_code_installs_the_staged_package_and_starts_again(rig: Rig, code: ExitCode) -> None:
    kind = code.update_kind()
    assert kind is not None
    deb = rig.stage(kind, "station_1.2.0_all.deb")
    other = rig.stage("software" if kind != "software" else "controller-firmware", "keep_1.0_all.deb")
    rig.plan(code, 0)
    done = rig.run()
    assert done.returncode == 0, done.stderr
    assert rig.dpkg_calls() == [f"-i {deb}"]
    assert len(rig.runs()) == 2
    assert not deb.exists() and other.exists()  # only the kind asked for
    assert (rig.data / "packages" / "installed" / kind / deb.name).exists()
    status = rig.status(kind)
    assert (status["stage"], status["result"], status["packages"]) == ("install", "ok", [deb.name])
    steps = (rig.data / "packages" / "status" / f"{kind}.log").read_text().splitlines()
    assert [json.loads(step)["result"] for step in steps] == ["running", "ok"]


def test_failed_install_keeps_the_previous_version_running_and_says_why(rig: Rig) -> None:
    deb = rig.stage("software", "station_2.0.0_all.deb")
    (rig.folder / "dpkg-fails").touch()
    rig.plan(ExitCode.UPDATE_SOFTWARE, 0)
    done = rig.run()
    assert done.returncode == 0
    assert len(rig.runs()) == 2  # chargepoint (the previous version) started again
    status = rig.status("software")
    assert status["result"] == "failed"
    assert "dpkg exited 1" in str(status["message"]) and '"broken" package' in str(status["message"])
    assert (rig.data / "packages" / "failed" / "software" / deb.name).exists()
    assert not deb.exists()


def test_update_with_nothing_staged_is_reported_and_chargepoint_starts_again(rig: Rig) -> None:
    rig.plan(ExitCode.UPDATE_CONTROLLER_FIRMWARE, 0)
    done = rig.run()
    assert done.returncode == 0
    assert rig.dpkg_calls() == []
    assert len(rig.runs()) == 2
    status = rig.status("controller-firmware")
    assert status["result"] == "failed" and "nothing staged" in str(status["message"])


def test_sigterm_is_passed_to_chargepoint_and_start_sh_exits_0(rig: Rig) -> None:
    rig.plan("wait")
    process = subprocess.Popen(["bash", str(START_SH)], env=rig.env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(rig.runs, timeout_s=10, what="the stand-in chargepoint running")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert rig.runs() == ["", "TERM"]
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()

