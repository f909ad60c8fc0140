#!/usr/bin/env bash
# THE test command (CI runs it through .ci/run): set-up, `ruff check .`, then `pytest` over
# tests/ (benchmarks excluded by pyproject.toml). Arguments go to pytest. Exits non-zero if
# either step fails. Works unattended (CI=true, no stdin, root, registries only).
#
# Set-up: .venv and requirements.txt (re-installed when it changed); as root, apt-get installs
# what is missing: python3-venv, redis-server, chromium, a font. Tests start their own
# redis-server, Modbus servers, CSMS and headless Chromium.
set -uo pipefail
# shellcheck source=ops/setup-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"

setup_python_env
ensure_redis_binary
ensure_chromium

say "ruff check ."
"$VPY" -m ruff check . </dev/null
RUFF=$?

say "pytest $*"
"$VPY" -m pytest "$@" </dev/null
PYTEST=$?

word() { if (($1 == 0)); then echo "passed"; else echo "FAILED (exit $1)"; fi; }
echo
echo "==================== summary ===================="
echo "  ruff check .   $(word "$RUFF")"
echo "  pytest         $(word "$PYTEST")"
echo "================================================="
if ((RUFF != 0 || PYTEST != 0)); then
    exit 1
fi
