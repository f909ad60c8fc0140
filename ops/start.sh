#!/usr/bin/env bash
# Run chargepoint forever and act on its exit code (workers/chargepoint/exit_codes.py):
#   0 stop | 1 crash: restart after START_CRASH_DELAY_S | 2 configuration error: retry after
#   START_CONFIG_DELAY_S | update codes: install the packages staged for that kind, write a
#   status file per step, start chargepoint again (the previous version if installing failed).
#
# Environment (all optional):
#   CHARGEPOINT_CMD       command to run (default: "<venv python> manage.py chargepoint");
#                         arguments given to this script are appended (e.g. --sim)
#   DPKG                  package installer (default: dpkg); called as `$DPKG -i FILE...`
#   STATION_DATA_DIR      data folder (default: <repo>/var); packages live under packages/
#   START_CRASH_DELAY_S   default 2;  START_CONFIG_DELAY_S  default 60
#
# Packages: packages/staged/<kind>/*.deb -> installed/<kind>/ (or failed/<kind>/), status in
# packages/status/<kind>.json ({kind, stage, result, time, message, packages}), every step also
# appended to packages/status/<kind>.log, dpkg's output in packages/status/<kind>.dpkg.log.
# SIGTERM/SIGINT are passed to chargepoint (which stops every service); then this exits 0.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1
if [[ -x "$REPO/.venv/bin/python" ]]; then PY="$REPO/.venv/bin/python"; else PY="$(command -v python3)"; fi
DATA_DIR="${STATION_DATA_DIR:-$REPO/var}"
PACKAGES="$DATA_DIR/packages"
CRASH_DELAY="${START_CRASH_DELAY_S:-2}"
CONFIG_DELAY="${START_CONFIG_DELAY_S:-60}"
read -r -a CMD <<< "${CHARGEPOINT_CMD:-$PY manage.py chargepoint}"
CMD+=("$@")
read -r -a DPKG_CMD <<< "${DPKG:-dpkg}"

# The codes are defined once, in Python: EXIT_STOP=0 ... UPDATE_KIND_10=software ...
if ! CODES="$("$PY" -m workers.chargepoint.exit_codes)"; then
    echo "start.sh: cannot read chargepoint's exit codes with $PY" >&2
    exit 1
fi
eval "$CODES"

log() { echo "start.sh: $*" >&2; }

stopping=0
child=""
on_signal() {
    stopping=1
    if [[ -n "$child" ]]; then kill -TERM "$child" 2>/dev/null; fi
}
trap on_signal TERM INT

# pause SECONDS: sleep, but wake up at once on SIGTERM/SIGINT.
pause() {
    sleep "$1" &
    child=$!
    wait "$child"
    child=""
}

# write_status KIND STAGE RESULT MESSAGE [PACKAGE...]: atomically, as JSON (python quotes it).
write_status() {
    mkdir -p "$PACKAGES/status"
    "$PY" -c '
import json, os, sys
from datetime import datetime, timezone
folder, kind, stage, result, message, *packages = sys.argv[1:]
record = {"kind": kind, "stage": stage, "result": result,
          "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
          "message": message, "packages": packages}
path = os.path.join(folder, kind + ".json")
with open(path + ".tmp", "w", encoding="utf-8") as handle:
    json.dump(record, handle)
os.replace(path + ".tmp", path)
with open(os.path.join(folder, kind + ".log"), "a", encoding="utf-8") as handle:
    handle.write(json.dumps(record) + "\n")
' "$PACKAGES/status" "$@" || log "cannot write status for $1"
}

# install KIND: dpkg -i every staged package of KIND; moves them to installed/ or failed/.
install() {
    local kind="$1" staged="$PACKAGES/staged/$1" debs=() names=() deb
    shopt -s nullglob
    debs=("$staged"/*.deb)
    shopt -u nullglob
    if ((${#debs[@]} == 0)); then
        log "update '$kind' requested but nothing is staged in $staged"
        write_status "$kind" install failed "nothing staged in $staged"
        return 1
    fi
    for deb in "${debs[@]}"; do names+=("$(basename "$deb")"); done
    log "installing ${names[*]} ($kind)"
    write_status "$kind" install running "installing ${#debs[@]} package(s)" "${names[@]}"
    local output="$PACKAGES/status/$kind.dpkg.log" code
    "${DPKG_CMD[@]}" -i "${debs[@]}" >"$output" 2>&1
    code=$?
    if ((code == 0)); then
        mkdir -p "$PACKAGES/installed/$kind"
        mv -f "${debs[@]}" "$PACKAGES/installed/$kind/"
        write_status "$kind" install ok "installed ${#debs[@]} package(s)" "${names[@]}"
        log "installed ${names[*]} ($kind)"
        return 0
    fi
    mkdir -p "$PACKAGES/failed/$kind"
    mv -f "${debs[@]}" "$PACKAGES/failed/$kind/"
    write_status "$kind" install failed "dpkg exited $code: $(tail -n 5 "$output" | tr '\n' ' ')" "${names[@]}"
    log "installing $kind failed (dpkg exited $code); starting the previous version again"
    return 1
}

while ((!stopping)); do
    "${CMD[@]}" &
    child=$!
    if ((stopping)); then kill -TERM "$child" 2>/dev/null; fi  # a signal before $child was set
    while kill -0 "$child" 2>/dev/null; do wait "$child"; done
    wait "$child"
    code=$?
    child=""
    if ((stopping)); then
        log "stopped (chargepoint exited $code)"
        exit 0
    fi
    kind_var="UPDATE_KIND_$code"
    if [[ -n "${!kind_var:-}" ]]; then
        install "${!kind_var}"
        continue
    fi
    case "$code" in
        "$EXIT_STOP")
            log "chargepoint stopped"
            exit 0 ;;
        "$EXIT_CONFIG_ERROR")
            log "configuration error; retrying in ${CONFIG_DELAY} s"
            pause "$CONFIG_DELAY" ;;
        *)
            log "chargepoint exited $code; restarting in ${CRASH_DELAY} s"
            pause "$CRASH_DELAY" ;;
    esac
done
log "stopped"
exit 0
