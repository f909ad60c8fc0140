#!/usr/bin/env bash
# Undo ops/sw_activation.sh: stop and disable station-chargepoint.service, remove the unit files
# activation wrote, the kiosk's autostart entry and the sudoers rule. Data, keys, certificates
# and configuration stay (a later activation finds them) unless --purge, which also removes the
# data folder, the configuration folder, the app's .venv and the service user.
#
# usage: ops/sw_deactivation.sh [--root DIR] [--purge] [--no-systemctl]
#
# What to undo comes from /etc/station/activation.env (written by activation); without it the
# defaults are assumed (user station, /var/lib/station, /etc/station, /opt/station/app).
# redis-server.service is left as it is: it is Debian's, and other software may use it.
# With --root DIR or --no-systemctl nothing is stopped: the unit is only disabled, with
# `systemctl --root`, when systemctl exists. Idempotent: a second run succeeds and changes nothing.
# Exit codes: 0 done, 1 a step failed, 2 bad usage.
set -euo pipefail

UNIT=station-chargepoint.service
RECORD=/etc/station/activation.env
SUDOERS=/etc/sudoers.d/station-dpkg

say() { echo "sw_deactivation.sh: $*" >&2; }
fail() { say "$*"; exit 1; }
bad_usage() {
    say "$*"
    echo "usage: ops/sw_deactivation.sh [--root DIR] [--purge] [--no-systemctl]" >&2
    exit 2
}

ROOT="" PURGE=0 OFFLINE=0
SERVICE_USER=station DATA_DIR=/var/lib/station CONFIG_DIR=/etc/station APP_DIR=/opt/station/app
KIOSK_AUTOSTART=""

parse_args() {
    while (($#)); do
        case "$1" in
            --root)
                if (($# < 2)) || [[ -z "$2" ]]; then bad_usage "--root needs a value"; fi
                ROOT="${2%/}"
                shift ;;
            --purge) PURGE=1 ;;
            --no-systemctl) OFFLINE=1 ;;
            -h | --help) echo "usage: ops/sw_deactivation.sh [--root DIR] [--purge] [--no-systemctl]" >&2; exit 0 ;;
            *) bad_usage "unknown argument: $1" ;;
        esac
        shift
    done
    [[ -z "$ROOT" ]] || OFFLINE=1
    if [[ -n "$ROOT" && ! -d "$ROOT" ]]; then bad_usage "--root $ROOT is not a folder"; fi
    if ((!OFFLINE)) && [[ "$(id -u)" != 0 ]]; then fail "deactivating this machine needs root (or use --root DIR)"; fi
    return 0
}

# read_record: the values activation recorded (KEY=VALUE lines; never run as shell code).
read_record() {
    [[ -f "$ROOT$RECORD" ]] || { say "no $RECORD: assuming the default user and folders"; return 0; }
    local key value
    while IFS='=' read -r key value; do
        case "$key" in
            SERVICE_USER) SERVICE_USER="$value" ;;
            DATA_DIR) DATA_DIR="$value" ;;
            CONFIG_DIR) CONFIG_DIR="$value" ;;
            APP_DIR) APP_DIR="$value" ;;
            KIOSK_AUTOSTART) KIOSK_AUTOSTART="$value" ;;
        esac
    done <"$ROOT$RECORD"
    [[ "$SERVICE_USER" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || fail "$RECORD names the user '$SERVICE_USER', not a user name"
    local path
    for path in "$DATA_DIR" "$CONFIG_DIR" "$APP_DIR"; do
        [[ "$path" =~ ^/[A-Za-z0-9._/+-]*[A-Za-z0-9._+-]$ && "$path" != *..* ]] ||
            fail "$RECORD names the folder '$path', which is not one activation could have made"
    done
}

# remove PATH...: remove files or folders that exist, saying so.
remove() {
    local path
    for path in "$@"; do
        if [[ -e "$path" || -L "$path" ]]; then
            rm -rf -- "$path"
            say "removed $path"
        fi
    done
}

stop_and_disable() {
    local wants="$ROOT/etc/systemd/system/multi-user.target.wants/$UNIT"
    if ((!OFFLINE)); then
        if systemctl cat "$UNIT" >/dev/null 2>&1; then
            systemctl disable --now "$UNIT" || fail "cannot stop and disable $UNIT"
        fi
    elif [[ -L "$wants" ]] && command -v systemctl >/dev/null; then
        systemctl --root "${ROOT:-/}" --quiet disable "$UNIT" || fail "cannot disable $UNIT"
    fi
    remove "$wants"  # without systemctl: the link enabling does
}

remove_service_user() {
    grep -q "^$SERVICE_USER:" "$ROOT/etc/passwd" 2>/dev/null || return 0
    if [[ -z "$ROOT" ]]; then
        userdel "$SERVICE_USER" || fail "cannot remove the user $SERVICE_USER"
    elif [[ "$(id -u)" == 0 ]] && command -v userdel >/dev/null && userdel --root "$ROOT" "$SERVICE_USER"; then
        :
    else
        sed -i "/^$SERVICE_USER:/d" "$ROOT/etc/passwd"
    fi
    if grep -q "^$SERVICE_USER:" "$ROOT/etc/group" 2>/dev/null; then
        if [[ -n "$ROOT" ]] || ! groupdel "$SERVICE_USER"; then
            sed -i "/^$SERVICE_USER:/d" "$ROOT/etc/group"
        fi
    fi
    say "removed the service user $SERVICE_USER"
}

main() {
    parse_args "$@"
    read_record
    stop_and_disable
    remove "$ROOT/etc/systemd/system/$UNIT" "$ROOT/etc/systemd/system/$UNIT.d" "$ROOT$SUDOERS"
    if [[ -n "$KIOSK_AUTOSTART" ]]; then remove "$ROOT$KIOSK_AUTOSTART"; fi
    if ((!OFFLINE)); then systemctl daemon-reload; fi
    if ((PURGE)); then
        remove "$ROOT$DATA_DIR" "$ROOT$CONFIG_DIR" "$ROOT$APP_DIR/.venv" "$ROOT$RECORD"
        remove_service_user
        say "deactivated and purged${ROOT:+ (under $ROOT)}"
    else
        say "deactivated; kept data $DATA_DIR, config $CONFIG_DIR and the user $SERVICE_USER${ROOT:+ (under $ROOT)}"
    fi
}

main "$@"
