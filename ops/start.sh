#!/usr/bin/env bash
# Run chargepoint forever and act on its exit code (workers/chargepoint/exit_codes.py):
#   0 stop | 1 crash: restart after START_CRASH_DELAY_S | 2 configuration error: retry after
#   START_CONFIG_DELAY_S | update codes: install the packages staged for that kind, write a
#   status file per step, start chargepoint again (the previous version if installing failed).
#
# Environment (all optional):
#   CHARGEPOINT_CMD       command to run (default: "<venv python> manage.py chargepoint");
#                         arguments given to this script are appended (e.g. --sim)
#   DPKG                  package installer (default: dpkg); called as `$DPKG -i FILE...`,
#                         `$DPKG -s PACKAGE` and `$DPKG --purge PACKAGE...` (same flags each time)
#   STATION_DATA_DIR      data folder (default: <repo>/var); packages live under packages/
#   START_CRASH_DELAY_S   default 2;  START_CONFIG_DELAY_S  default 60
#   START_PROBATION_S     default 120; START_PROBATION_CRASHES default 3 (probation, below)
#
# Packages: packages/staged/<kind>/*.deb -> installed/<kind>/ (or failed/<kind>/), status in
# packages/status/<kind>.json ({kind, stage, result, time, message, packages}), every step also
# appended to packages/status/<kind>.log, dpkg's output in packages/status/<kind>.dpkg.log.
# A failed install is rolled back (dpkg itself does not undo a failed postinst): the version
# installed before is installed again from its deb kept in installed/<kind>/, a package that was
# not installed before is purged; the failed record's message says which, and `rolled_back_to`
# ({package: version}) lists what was restored. The state before is noted in <kind>.previous.
# An install cut short (power cut, SIGKILL: its status still says `running`) is finished at
# startup, before chargepoint runs: staged packages are installed again (dpkg -i is idempotent);
# if none are left staged, the record is closed from where they were moved to.
# Probation: dpkg succeeding does not mean the new version runs. After an install the notes of the
# version before move to <kind>.probation; if chargepoint then exits with anything but 0 or an
# update code START_PROBATION_CRASHES times without once running START_PROBATION_S seconds, the
# kind is rolled back as above, the new debs go to failed/<kind>/ and the status says
# {stage: probation, result: failed}. A run of START_PROBATION_S ends it (status stays ok). The file
# keeps the crashes counted so far (`# crashes: <exit codes>`), so a power cut does not reset them.
# SIGTERM/SIGINT are passed to chargepoint (which stops every service); then this exits 0.
set -uo pipefail
shopt -s nullglob
unset ROLLED_BACK_TO  # only ever set for one write_status call

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1
if [[ -x "$REPO/.venv/bin/python" ]]; then PY="$REPO/.venv/bin/python"; else PY="$(command -v python3)"; fi
DATA_DIR="${STATION_DATA_DIR:-$REPO/var}"
PACKAGES="$DATA_DIR/packages"
CRASH_DELAY="${START_CRASH_DELAY_S:-2}"
CONFIG_DELAY="${START_CONFIG_DELAY_S:-60}"
PROBATION_S="${START_PROBATION_S:-120}"
PROBATION_CRASHES="${START_PROBATION_CRASHES:-3}"
if [[ ! "$PROBATION_S" =~ ^[0-9]+(\.[0-9]+)?$ || ! "$PROBATION_CRASHES" =~ ^[1-9][0-9]*$ ]]; then
    echo "start.sh: START_PROBATION_S must be seconds (0: no probation) and START_PROBATION_CRASHES" \
        "a count of 1 or more (got '$PROBATION_S' and '$PROBATION_CRASHES')" >&2
    exit 1
fi
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
# shellcheck disable=SC2329  # called by the trap below
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
if os.environ.get("ROLLED_BACK_TO"):
    record["rolled_back_to"] = dict(line.split("=", 1) for line in os.environ["ROLLED_BACK_TO"].splitlines())
path = os.path.join(folder, kind + ".json")
with open(path + ".tmp", "w", encoding="utf-8") as handle:
    json.dump(record, handle)
os.replace(path + ".tmp", path)
with open(os.path.join(folder, kind + ".log"), "a", encoding="utf-8") as handle:
    handle.write(json.dumps(record) + "\n")
' "$PACKAGES/status" "$@" || log "cannot write status for $1"
}

# package_state PACKAGE: "<dpkg Status><TAB><Version>" as dpkg knows it now ("-<TAB>-": not at all).
package_state() {
    "${DPKG_CMD[@]}" -s "$1" 2>/dev/null | awk -F': ' '
        $1 == "Status" { status = $2 } $1 == "Version" { version = $2 }
        END { printf "%s\t%s\n", (status == "" ? "-" : status), (version == "" ? "-" : version) }'
}

# kept_deb KIND PACKAGE VERSION: the deb of that version kept in installed/KIND/ (nothing if none).
kept_deb() {
    local deb
    for deb in "$PACKAGES/installed/$1"/*.deb; do
        if [[ "$(dpkg-deb -f "$deb" Package Version 2>/dev/null)" == "Package: $2"$'\n'"Version: $3" ]]; then
            echo "$deb"
            return
        fi
    done
}

# note_previous KIND DEB...: what a rollback needs, one line per package, written before dpkg runs:
# "<package><TAB><dpkg Status><TAB><Version><TAB><its deb in installed/KIND/>" ("-": none).
note_previous() {
    local kind="$1" previous="$PACKAGES/status/$1.previous" deb package state version kept
    shift
    for deb in "$@"; do
        package="$(dpkg-deb -f "$deb" Package 2>/dev/null)" || continue
        IFS=$'\t' read -r state version < <(package_state "$package")
        kept=""
        if [[ "$state" == "install ok installed" ]]; then kept="$(kept_deb "$kind" "$package" "$version")"; fi
        printf '%s\t%s\t%s\t%s\n' "$package" "$state" "$version" "${kept:--}"
    done >"$previous.tmp" && mv -f "$previous.tmp" "$previous"
}

# roll_back KIND NOTES_FILE: after a failed dpkg -i (NOTES: <kind>.previous) or a failed probation
# (<kind>.probation), put back what note_previous saw: reinstall the previous version's kept deb,
# purge what was not installed before. Sets ROLLBACK_MESSAGE (for the status) and ROLLED_BACK_TO
# ("<package>=<version>" lines); dpkg's output goes on into the kind's dpkg log.
roll_back() {
    local kind="$1" notes_file="$2" output="$PACKAGES/status/$1.dpkg.log" package state version kept now part
    local reinstall=() restored=() remove=() notes=()
    while IFS=$'\t' read -r package state version kept; do
        now="$(package_state "$package")"
        if [[ "$state" == "install ok installed" ]]; then
            if [[ "$now" != "$state"$'\t'"$version" && "$kept" == - ]]; then
                notes+=("no previous package to roll back to ($package $version is not in installed/$kind/)")
                continue
            fi
            # when dpkg already put the previous version back itself (a failed preinst), nothing to do
            if [[ "$now" != "$state"$'\t'"$version" ]]; then reinstall+=("$kept"); fi
            restored+=("$package $version")
        elif [[ "$state" == - ]]; then
            if [[ "$now" != -$'\t'- ]]; then remove+=("$package"); fi
        elif [[ "$now" != "$state"$'\t'"$version" ]]; then
            notes+=("no previous package to roll back to ($package was '$state' before)")
        fi
    done < <(grep -v '^#' "$notes_file")
    if ((${#reinstall[@]})); then
        echo "start.sh: rolling back: dpkg -i ${reinstall[*]}" >>"$output"
        if ! "${DPKG_CMD[@]}" -i "${reinstall[@]}" >>"$output" 2>&1; then
            notes+=("rollback failed: $(tail -n 3 "$output" | tr '\n' ' ')")
            restored=()
        fi
    fi
    if ((${#remove[@]})); then
        echo "start.sh: removing what was not installed before: dpkg --purge ${remove[*]}" >>"$output"
        if "${DPKG_CMD[@]}" --purge "${remove[@]}" >>"$output" 2>&1; then
            notes+=("removed ${remove[*]}: nothing was installed before")
        else
            notes+=("removing ${remove[*]} failed: $(tail -n 3 "$output" | tr '\n' ' ')")
        fi
    fi
    ROLLED_BACK_TO=""
    if ((${#restored[@]})); then
        ROLLED_BACK_TO="$(printf '%s\n' "${restored[@]}" | tr ' ' '=')"
        part="rolled back to ${restored[0]}"
        for package in "${restored[@]:1}"; do part+=", $package"; done
        notes=("$part" "${notes[@]}")
    fi
    ROLLBACK_MESSAGE=""
    for part in "${notes[@]}"; do ROLLBACK_MESSAGE+="; $part"; done
}

# install KIND [resume]: dpkg -i every staged package of KIND; moves them to installed/ or failed/;
# a failed install is rolled back. `resume` (an install cut short) keeps the state noted before it.
install() {
    local kind="$1" staged="$PACKAGES/staged/$1" debs=() names=() deb
    local previous="$PACKAGES/status/$1.previous"
    rm -f "$PACKAGES/status/$kind.probation"  # a new install of the kind ends the last one's probation
    debs=("$staged"/*.deb)
    if ((${#debs[@]} == 0)); then
        log "update '$kind' requested but nothing is staged in $staged"
        write_status "$kind" install failed "nothing staged in $staged"
        return 1
    fi
    for deb in "${debs[@]}"; do names+=("$(basename "$deb")"); done
    log "installing ${names[*]} ($kind)"
    write_status "$kind" install running "installing ${#debs[@]} package(s)" "${names[@]}"
    if [[ "${2:-}" != resume || ! -f "$previous" ]]; then note_previous "$kind" "${debs[@]}"; fi
    local output="$PACKAGES/status/$kind.dpkg.log" code
    "${DPKG_CMD[@]}" -i "${debs[@]}" >"$output" 2>&1
    code=$?
    if ((code == 0)); then
        mkdir -p "$PACKAGES/installed/$kind"
        mv -f "${debs[@]}" "$PACKAGES/installed/$kind/"
        begin_probation "$kind"
        write_status "$kind" install ok "installed ${#debs[@]} package(s)" "${names[@]}"
        log "installed ${names[*]} ($kind)"
        return 0
    fi
    local failure
    failure="dpkg exited $code: $(tail -n 5 "$output" | tr '\n' ' ')"
    log "installing $kind failed (dpkg exited $code); rolling back"
    roll_back "$kind" "$previous"
    mkdir -p "$PACKAGES/failed/$kind"
    mv -f "${debs[@]}" "$PACKAGES/failed/$kind/"
    ROLLED_BACK_TO="$ROLLED_BACK_TO" write_status "$kind" install failed "install failed: $failure$ROLLBACK_MESSAGE" \
        "${names[@]}"
    rm -f "$previous"
    log "install failed$ROLLBACK_MESSAGE; starting chargepoint again"
    return 1
}

# status_of KIND: the status record's result, then its packages, one a line (nothing if unreadable).
status_of() {
    "$PY" -c '
import json, sys
record = json.load(open(sys.argv[1], encoding="utf-8"))
print(record["result"], *record["packages"], sep="\n")
' "$PACKAGES/status/$1.json" 2>/dev/null
}

# finish_interrupted_installs: every kind whose status says `running` was cut short mid-install.
finish_interrupted_installs() {
    local var kind record=() name
    for var in $(compgen -v UPDATE_KIND_); do
        kind="${!var}"
        mapfile -t record < <(status_of "$kind")
        [[ "${record[0]:-}" == running ]] || continue
        if compgen -G "$PACKAGES/staged/$kind/*.deb" >/dev/null; then
            log "installing $kind was interrupted; installing it again"
            install "$kind" resume
            continue
        fi
        for name in "${record[@]:1}"; do
            if [[ ! -f "$PACKAGES/installed/$kind/$name" ]]; then
                write_status "$kind" install failed "interrupted, and ${name} is no longer staged" "${record[@]:1}"
                rm -f "$PACKAGES/status/$kind.previous"
                continue 2
            fi
        done
        begin_probation "$kind"
        write_status "$kind" install ok "installed $((${#record[@]} - 1)) package(s) (confirmed after a restart)" \
            "${record[@]:1}"
    done
}

# begin_probation KIND: after a successful install, the notes of the version before become
# <kind>.probation (no crashes yet), for a rollback should the new version not run.
begin_probation() {
    local previous="$PACKAGES/status/$1.previous" probation="$PACKAGES/status/$1.probation"
    if [[ -f "$previous" && "$PROBATION_S" =~ [1-9] ]]; then
        { echo "# crashes:"; cat "$previous"; } >"$probation.tmp" && mv -f "$probation.tmp" "$probation"
    fi
    rm -f "$previous"
}

# probation_crashes FILE: the exit codes counted so far in a probation file, space separated.
probation_crashes() {
    local header
    read -r header <"$1"
    echo "${header#\# crashes:}"
}

# end_probations: chargepoint has run START_PROBATION_S seconds in one go: every new version stays.
end_probations() {
    local probation
    for probation in "$PACKAGES/status"/*.probation; do
        log "$(basename "$probation" .probation): chargepoint ran ${PROBATION_S} s after the install; it stays"
        rm -f "$probation"
    done
}

# count_crash CODE: a crash or configuration error during probation counts for every kind on
# probation; a kind with START_PROBATION_CRASHES of them is rolled back. Returns 0 if one was.
count_crash() {
    local probation codes=() rolled=1
    for probation in "$PACKAGES/status"/*.probation; do
        read -r -a codes <<<"$(probation_crashes "$probation")"
        codes+=("$1")
        { echo "# crashes: ${codes[*]}"; grep -v '^#' "$probation"; } >"$probation.tmp" &&
            mv -f "$probation.tmp" "$probation"
        if ((${#codes[@]} >= PROBATION_CRASHES)); then
            fail_probation "$(basename "$probation" .probation)"
            rolled=0
        fi
    done
    return "$rolled"
}

# fail_probation KIND: the new version crashed too often: roll back to the one before (as after a
# failed dpkg -i), move the new debs to failed/ and write the status; the FOTA job reports that.
fail_probation() {
    local kind="$1" probation="$PACKAGES/status/$1.probation" codes=() record=() name message
    read -r -a codes <<<"$(probation_crashes "$probation")"
    mapfile -t record < <(status_of "$kind")
    log "$kind: chargepoint exited ${codes[*]} after the install, each time within ${PROBATION_S} s; rolling back"
    roll_back "$kind" "$probation"
    for name in "${record[@]:1}"; do
        # not a deb the rollback just reinstalled (the same file name: the same version)
        if [[ -f "$PACKAGES/installed/$kind/$name" ]] &&
            ! grep -qF -- $'\t'"$PACKAGES/installed/$kind/$name" "$probation"; then
            mkdir -p "$PACKAGES/failed/$kind"
            mv -f "$PACKAGES/installed/$kind/$name" "$PACKAGES/failed/$kind/"
        fi
    done
    message="chargepoint crashed ${#codes[@]} times after the install"
    message+=" (exit codes ${codes[*]}, each within ${PROBATION_S} s of starting)$ROLLBACK_MESSAGE"
    ROLLED_BACK_TO="$ROLLED_BACK_TO" write_status "$kind" probation failed "$message" "${record[@]:1}"
    rm -f "$probation"
    log "probation failed$ROLLBACK_MESSAGE; starting chargepoint again"
}

# finish_failed_probations: a rollback cut short (its probation file already counts enough crashes).
finish_failed_probations() {
    local probation codes=()
    for probation in "$PACKAGES/status"/*.probation; do
        read -r -a codes <<<"$(probation_crashes "$probation")"
        if ((${#codes[@]} >= PROBATION_CRASHES)); then fail_probation "$(basename "$probation" .probation)"; fi
    done
}

finish_interrupted_installs
finish_failed_probations
while ((!stopping)); do
    "${CMD[@]}" &
    child=$!
    if ((stopping)); then kill -TERM "$child" 2>/dev/null; fi  # a signal before $child was set
    timer=""
    if compgen -G "$PACKAGES/status/*.probation" >/dev/null; then
        sleep "$PROBATION_S" &
        timer=$!
    fi
    while kill -0 "$child" 2>/dev/null; do
        if [[ -z "$timer" ]]; then
            wait "$child"
            continue
        fi
        wait -n -p finished "$child" "$timer"
        if [[ "${finished:-}" == "$timer" ]]; then  # still running after START_PROBATION_S
            timer=""
            end_probations
        fi
    done
    wait "$child"
    code=$?
    child=""
    if [[ -n "$timer" ]]; then
        kill "$timer" 2>/dev/null
        wait "$timer" 2>/dev/null
    fi
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
    esac
    if [[ -n "$timer" ]] && count_crash "$code"; then continue; fi  # rolled back: start it at once
    case "$code" in
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
