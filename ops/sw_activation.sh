#!/usr/bin/env bash
# Activate the station software on a station (after `dpkg -i station-software_*.deb`, which puts
# the code in /opt/station/app): service user, data folders, keys and certificates, station.toml
# and station.env, the sudoers rule for over-the-air installs, the systemd unit and the kiosk.
#
# usage: ops/sw_activation.sh [--root DIR] [--user NAME] [--data-dir D] [--config-dir C]
#          [--app-dir A] [--update-key FILE] [--manufacturer-root FILE] [--csms-ca FILE]
#          [--station-cert FILE --station-key FILE] [--station-toml FILE] [--web-port PORT]
#          [--kiosk-user NAME] [--no-venv] [--no-systemctl]
#
# Idempotent: run it again and nothing changes. Keys, certificates, station.toml, station.env and
# data that exist are never overwritten (a differing input is reported and left alone); the
# files activation owns (unit drop-in, sudoers rule, autostart entry, activation record) are
# rewritten only when their content would change. Every input is checked before anything is
# written, so a missing or bad file leaves the station as it was.
#
# --root DIR: lay everything out under DIR (an image being built, tests). The service user goes
# into DIR/etc/passwd and group with `useradd --root DIR` when that can work (run as root, DIR
# has etc/passwd and etc/group); otherwise the two lines are written directly (next free system
# id below 1000). Owners are numeric ids from DIR/etc/passwd, so they are right inside DIR.
# With --root or --no-systemctl nothing is started: units are only enabled, with
# `systemctl --root`, when systemctl exists. Without them the units are enabled and started.
#
# What goes where (paths below DIR):
#   D (/var/lib/station)   0750 user: logs run archives db packages/{downloads,staged,installed,
#                          failed,status}; keys/ and certs/ 0700 (key files 0600, certificates 0644)
#   C (/etc/station)       station.toml (given, else the simulation example), station.env (0640)
#   /etc/station/activation.env   what this activation did, read by ops/sw_deactivation.sh
#   /etc/sudoers.d/station-dpkg   the user may run start.sh's dpkg calls as root (-s, -i of
#                          D/packages/{staged,installed}/, --purge station-*; checked with visudo -cf)
#   /etc/systemd/system/station-chargepoint.service(.d/activation.conf)   the unit (when no
#                          package shipped it in /lib/systemd/system) and this station's paths
#   ~kiosk/.config/autostart/station-kiosk.desktop   Chromium in kiosk mode on the HMI
#   A/.venv                requirements.txt installed (again when it changes); not with --no-venv
# Exit codes: 0 done, 1 failure (missing or bad input, a step failed), 2 bad usage.
set -euo pipefail

SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
UNIT=station-chargepoint.service
RECORD=/etc/station/activation.env
SUDOERS=/etc/sudoers.d/station-dpkg
AUTOSTART=.config/autostart/station-kiosk.desktop

say() { echo "sw_activation.sh: $*" >&2; }
fail() { say "$*"; exit 1; }
bad_usage() {
    say "$*"
    sed -n '6,9p' "${BASH_SOURCE[0]}" | sed 's/^# //' >&2
    exit 2
}

ROOT="" SERVICE_USER=station DATA_DIR=/var/lib/station CONFIG_DIR=/etc/station APP_DIR=/opt/station/app
UPDATE_KEY="" MANUFACTURER_ROOT="" CSMS_CA="" STATION_CERT="" STATION_KEY="" STATION_TOML=""
WEB_PORT="" KIOSK_USER="" MAKE_VENV=1 OFFLINE=0

parse_args() {
    while (($#)); do
        case "$1" in
            --root | --user | --data-dir | --config-dir | --app-dir | --update-key | --manufacturer-root | \
                --csms-ca | --station-cert | --station-key | --station-toml | --web-port | --kiosk-user)
                if (($# < 2)) || [[ -z "$2" ]]; then bad_usage "$1 needs a value"; fi
                case "$1" in
                    --root) ROOT="${2%/}" ;;
                    --user) SERVICE_USER="$2" ;;
                    --data-dir) DATA_DIR="$2" ;;
                    --config-dir) CONFIG_DIR="$2" ;;
                    --app-dir) APP_DIR="$2" ;;
                    --update-key) UPDATE_KEY="$2" ;;
                    --manufacturer-root) MANUFACTURER_ROOT="$2" ;;
                    --csms-ca) CSMS_CA="$2" ;;
                    --station-cert) STATION_CERT="$2" ;;
                    --station-key) STATION_KEY="$2" ;;
                    --station-toml) STATION_TOML="$2" ;;
                    --web-port) WEB_PORT="$2" ;;
                    --kiosk-user) KIOSK_USER="$2" ;;
                esac
                shift ;;
            --no-venv) MAKE_VENV=0 ;;
            --no-systemctl) OFFLINE=1 ;;
            -h | --help) sed -n '6,9p' "${BASH_SOURCE[0]}" | sed 's/^# //' >&2; exit 0 ;;
            *) bad_usage "unknown argument: $1" ;;
        esac
        shift
    done
    [[ -z "$ROOT" ]] || OFFLINE=1
    local name path
    for name in "$SERVICE_USER" ${KIOSK_USER:+"$KIOSK_USER"}; do
        [[ "$name" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || bad_usage "$name is not a user name ([a-z_][a-z0-9_-]*)"
    done
    for path in "$DATA_DIR" "$CONFIG_DIR" "$APP_DIR"; do
        [[ "$path" =~ ^/[A-Za-z0-9._/+-]*[A-Za-z0-9._+-]$ && "$path" != *..* ]] ||
            bad_usage "$path must be an absolute folder path (letters, digits, . _ - + /; not /)"
    done
    if [[ -n "$STATION_CERT" && -z "$STATION_KEY" || -z "$STATION_CERT" && -n "$STATION_KEY" ]]; then
        bad_usage "--station-cert and --station-key go together"
    fi
    if [[ -n "$WEB_PORT" ]] && { [[ ! "$WEB_PORT" =~ ^[1-9][0-9]{0,4}$ ]] || ((WEB_PORT > 65535)); }; then
        bad_usage "--web-port $WEB_PORT is not a TCP port number"
    fi
    if [[ -n "$ROOT" && ! -d "$ROOT" ]]; then bad_usage "--root $ROOT is not a folder"; fi
    return 0
}

# ---- checks: everything that can be wrong is found before anything is written -----------------

# readable_file FILE OPTION: FILE exists and can be read.
readable_file() {
    [[ -f "$1" && -r "$1" ]] || fail "$2 $1: no such readable file"
}

# pem_file FILE OPTION WHAT: FILE holds at least one PEM block of WHAT (CERTIFICATE, PRIVATE KEY).
pem_file() {
    readable_file "$1" "$2"
    grep -q -- "-----BEGIN [A-Z ]*$3-----" "$1" || fail "$2 $1: not a PEM $3 file"
}

check_inputs() {
    if [[ -n "$UPDATE_KEY" ]]; then
        readable_file "$UPDATE_KEY" --update-key
        if ! grep -qxE '[0-9a-fA-F]{64}' "$UPDATE_KEY" || (($(wc -l <"$UPDATE_KEY") > 1)); then
            fail "--update-key $UPDATE_KEY: not an update key (one line of 64 hex digits)"
        fi
    fi
    if [[ -n "$MANUFACTURER_ROOT" ]]; then pem_file "$MANUFACTURER_ROOT" --manufacturer-root CERTIFICATE; fi
    if [[ -n "$CSMS_CA" ]]; then pem_file "$CSMS_CA" --csms-ca CERTIFICATE; fi
    if [[ -n "$STATION_CERT" ]]; then
        pem_file "$STATION_CERT" --station-cert CERTIFICATE
        pem_file "$STATION_KEY" --station-key "PRIVATE KEY"
    fi
    STATION_TOML="${STATION_TOML:-$SELF_DIR/station.sim.toml}"
    readable_file "$STATION_TOML" --station-toml
    local template
    for template in "$SELF_DIR/systemd/$UNIT" "$SELF_DIR/kiosk/station-kiosk.desktop"; do
        readable_file "$template" "part of the software:"
    done
    if ((MAKE_VENV)); then
        readable_file "$ROOT$APP_DIR/requirements.txt" "--app-dir (install station-software first):"
        command -v python3 >/dev/null || fail "python3 not found (needed for $APP_DIR/.venv; or --no-venv)"
    fi
    if [[ -n "$KIOSK_USER" ]]; then
        KIOSK_HOME="$(passwd_field "$KIOSK_USER" 6)"
        [[ -n "$KIOSK_HOME" ]] || fail "--kiosk-user $KIOSK_USER: no such user in $ROOT/etc/passwd"
    fi
    if ((!OFFLINE)); then
        [[ "$(id -u)" == 0 ]] || fail "activating this machine needs root (or use --root DIR)"
        command -v systemctl >/dev/null || fail "systemctl not found (use --no-systemctl to only write files)"
        command -v useradd >/dev/null || fail "useradd not found (apt-get install passwd)"
    fi
    return 0
}

# passwd_field NAME N: field N of NAME's line in DIR/etc/passwd (empty when there is none).
passwd_field() {
    [[ -f "$ROOT/etc/passwd" ]] || return 0
    awk -F: -v name="$1" -v field="$2" '$1 == name { print $field; exit }' "$ROOT/etc/passwd"
}

# ---- writing -----------------------------------------------------------------------------------

# owner OWNER PATH...: chown, as root only (a user building an image under --root cannot).
owner() {
    if [[ "$(id -u)" == 0 ]]; then chown "$@"; fi
}

# ensure_dir PATH MODE OWNER: the folder exists with this mode and owner (uid:gid).
ensure_dir() {
    [[ -d "$1" ]] || { mkdir -p "$1" && say "created $1"; }
    chmod "$2" "$1"
    owner "$3" "$1"
}

# install_new SOURCE DEST MODE OWNER: copy SOURCE to DEST unless DEST exists (never overwritten).
install_new() {
    local source="$1" dest="$2"
    if [[ -e "$dest" ]]; then
        cmp -s "$source" "$dest" || say "kept $dest (it exists; differs from $source)"
        return 0
    fi
    install -m "$3" "$source" "$dest.new.$$"
    owner "$4" "$dest.new.$$"
    mv "$dest.new.$$" "$dest"
    say "installed $dest"
}

# write_managed DEST MODE OWNER: DEST gets stdin, rewritten only when the content differs.
write_managed() {
    local dest="$1" temp
    mkdir -p "$(dirname "$dest")"
    temp="$(mktemp "$dest.new.XXXXXX")"
    cat >"$temp"
    chmod "$2" "$temp"
    owner "$3" "$temp"
    if [[ -f "$dest" ]] && cmp -s "$temp" "$dest"; then
        rm -f "$temp"
        chmod "$2" "$dest"
        owner "$3" "$dest"
        return 0
    fi
    mv "$temp" "$dest"
    say "wrote $dest"
}

# next_system_id FILE: the highest free id below 1000 in FILE (passwd or group), as useradd picks.
next_system_id() {
    local id=999
    while [[ -f "$1" ]] && awk -F: -v id="$id" '$3 == id { found = 1 } END { exit !found }' "$1"; do
        id=$((id - 1))
        ((id >= 100)) || fail "no free system id left in $1"
    done
    echo "$id"
}

ensure_service_user() {
    if [[ -n "$(passwd_field "$SERVICE_USER" 1)" ]]; then
        return 0
    fi
    local shell=/usr/sbin/nologin
    if [[ -z "$ROOT" ]]; then
        useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home --shell "$shell" "$SERVICE_USER"
    elif [[ "$(id -u)" == 0 && -f "$ROOT/etc/passwd" && -f "$ROOT/etc/group" ]] && command -v useradd >/dev/null; then
        useradd --root "$ROOT" --system --user-group --home-dir "$DATA_DIR" --no-create-home \
            --shell "$shell" "$SERVICE_USER"
    else
        mkdir -p "$ROOT/etc"
        local gid uid
        touch "$ROOT/etc/passwd" "$ROOT/etc/group"
        gid="$(awk -F: -v name="$SERVICE_USER" '$1 == name { print $3 }' "$ROOT/etc/group")"
        if [[ -z "$gid" ]]; then
            gid="$(next_system_id "$ROOT/etc/group")"
            echo "$SERVICE_USER:x:$gid:" >>"$ROOT/etc/group"
        fi
        uid="$(next_system_id "$ROOT/etc/passwd")"
        echo "$SERVICE_USER:x:$uid:$gid::$DATA_DIR:$shell" >>"$ROOT/etc/passwd"
        chmod 0644 "$ROOT/etc/passwd" "$ROOT/etc/group"
    fi
    [[ -n "$(passwd_field "$SERVICE_USER" 1)" ]] || fail "could not create the service user $SERVICE_USER"
    say "created the service user $SERVICE_USER"
}

lay_out_data() {
    local data="$ROOT$DATA_DIR" folder
    ensure_dir "$data" 0750 "$OWNER"
    for folder in logs run archives db packages packages/downloads packages/staged packages/installed \
        packages/failed packages/status; do
        ensure_dir "$data/$folder" 0750 "$OWNER"
    done
    ensure_dir "$data/keys" 0700 "$OWNER"
    ensure_dir "$data/certs" 0700 "$OWNER"
    if [[ -n "$UPDATE_KEY" ]]; then install_new "$UPDATE_KEY" "$data/keys/update.key" 0600 "$OWNER"; fi
    if [[ -n "$MANUFACTURER_ROOT" ]]; then
        install_new "$MANUFACTURER_ROOT" "$data/keys/manufacturer-root.pem" 0644 "$OWNER"
    fi
    if [[ -n "$CSMS_CA" ]]; then install_new "$CSMS_CA" "$data/certs/csms-ca.pem" 0644 "$OWNER"; fi
    if [[ -n "$STATION_CERT" ]]; then
        install_new "$STATION_CERT" "$data/certs/station.pem" 0644 "$OWNER"
        install_new "$STATION_KEY" "$data/certs/station.key" 0600 "$OWNER"
    fi
}

write_config() {
    local config="$ROOT$CONFIG_DIR" env_file
    ensure_dir "$config" 0755 0:0
    install_new "$STATION_TOML" "$config/station.toml" 0644 0:0
    env_file="$config/station.env"
    if [[ -f "$env_file" ]]; then
        local kept
        kept="$(sed -n 's/^WEB_PORT=//p' "$env_file" | tail -n 1)"
        if [[ -n "$WEB_PORT" && "$kept" != "$WEB_PORT" ]]; then
            say "kept $env_file (it exists; WEB_PORT there is '${kept:-unset}', not $WEB_PORT)"
        fi
        WEB_PORT="${kept:-8000}"
        return 0
    fi
    WEB_PORT="${WEB_PORT:-8000}"
    write_managed "$env_file" 0640 "0:$SERVICE_GID" <<ENV
# The station's environment (variables: webapp/env.py, ARCHITECTURE.md), read by
# $UNIT. Written once by ops/sw_activation.sh; edit it freely: activation keeps it.
STATION_DATA_DIR=$DATA_DIR
STATION_CONFIG=$CONFIG_DIR/station.toml
DATABASE_URL=sqlite:///$DATA_DIR/db/station.sqlite3
REDIS_URL=redis://127.0.0.1:6379/0
WEB_PORT=$WEB_PORT
# OCPP_CSMS_URL=wss://csms.example.com/ocpp
# OCPP_CHARGE_POINT_ID=STATION-0001
ENV
}

# write_sudoers: the four dpkg calls ops/start.sh makes through DPKG="sudo -n /usr/bin/dpkg" (the
# unit's value), and nothing else: `-s PACKAGE` (the version before an install), `-i` of the debs
# staged in D/packages/staged/<kind>/, `-i` of the previous version's deb kept in
# D/packages/installed/<kind>/ (rollback) and `--purge` of a station-* package that was not
# installed before (rollback). The paths are not a security boundary by themselves: the service
# user owns packages/ (it writes any deb there), and sudo's `*` also matches spaces, so further
# debs and dpkg options fit the patterns too. Whoever runs as that user can become root; what
# keeps foreign packages off the station is the signature check before anything is staged
# (workers/fota/package.py). The rule narrows sudo to dpkg and writes down what start.sh needs.
write_sudoers() {
    local rule packages="$DATA_DIR/packages" head="$SERVICE_USER ALL=(root) NOPASSWD: /usr/bin/dpkg"
    rule="$(printf '%s\n' \
        "# ops/sw_activation.sh: the dpkg calls ops/start.sh makes as $SERVICE_USER to install staged" \
        "# updates and roll a failed one back (DPKG=\"sudo -n /usr/bin/dpkg\" in $UNIT)." \
        "# Not a boundary by itself: $SERVICE_USER owns $packages; the signature check before staging is." \
        "$head -s *" \
        "$head -i $packages/staged/*" \
        "$head -i $packages/installed/*" \
        "$head --purge station-*")"
    if command -v visudo >/dev/null; then
        local check
        check="$(mktemp)"
        echo "$rule" >"$check"
        visudo -cqf "$check" >/dev/null || { rm -f "$check"; fail "visudo refuses the sudoers rule for $SERVICE_USER"; }
        rm -f "$check"
    fi
    ensure_dir "$ROOT/etc/sudoers.d" 0755 0:0
    echo "$rule" | write_managed "$ROOT$SUDOERS" 0440 0:0
}

write_unit() {
    local units="$ROOT/etc/systemd/system"
    if [[ ! -f "$ROOT/lib/systemd/system/$UNIT" && ! -f "$ROOT/usr/lib/systemd/system/$UNIT" ]]; then
        write_managed "$units/$UNIT" 0644 0:0 <"$SELF_DIR/systemd/$UNIT"
    fi
    write_managed "$units/$UNIT.d/activation.conf" 0644 0:0 <<UNIT
# ops/sw_activation.sh: this station's user and folders (rewritten by every activation).
[Service]
User=$SERVICE_USER
Group=$SERVICE_USER
WorkingDirectory=$APP_DIR
Environment=STATION_DATA_DIR=$DATA_DIR
Environment=STATION_CONFIG=$CONFIG_DIR/station.toml
EnvironmentFile=-$CONFIG_DIR/station.env
ExecStart=
ExecStart=$APP_DIR/ops/start.sh
UNIT
}

write_kiosk() {
    [[ -n "$KIOSK_USER" ]] || { say "no --kiosk-user: the kiosk is not set up"; return 0; }
    local kiosk_owner home="$ROOT$KIOSK_HOME" url="http://127.0.0.1:$WEB_PORT/hmi/"
    kiosk_owner="$(passwd_field "$KIOSK_USER" 3):$(passwd_field "$KIOSK_USER" 4)"
    local folder
    for folder in "$home" "$home/.config" "$home/.config/autostart"; do
        [[ -d "$folder" ]] || { mkdir -p "$folder" && owner "$kiosk_owner" "$folder"; }
    done
    sed -e "s|@LAUNCHER@|$APP_DIR/ops/kiosk/station-kiosk.sh|" -e "s|@URL@|$url|" \
        "$SELF_DIR/kiosk/station-kiosk.desktop" | write_managed "$home/$AUTOSTART" 0644 "$kiosk_owner"
}

write_record() {
    write_managed "$ROOT$RECORD" 0644 0:0 <<RECORD
# ops/sw_activation.sh: what was activated; ops/sw_deactivation.sh undoes it.
SERVICE_USER=$SERVICE_USER
DATA_DIR=$DATA_DIR
CONFIG_DIR=$CONFIG_DIR
APP_DIR=$APP_DIR
KIOSK_AUTOSTART=${KIOSK_USER:+$KIOSK_HOME/$AUTOSTART}
RECORD
}

make_venv() {
    ((MAKE_VENV)) || return 0
    local venv="$ROOT$APP_DIR/.venv" stamp digest
    if [[ ! -x "$venv/bin/python" ]]; then
        say "creating $venv"
        python3 -m venv "$venv" || fail "cannot create $venv (apt-get install python3-venv)"
    fi
    stamp="$venv/.requirements.sha256"
    digest="$(sha256sum "$ROOT$APP_DIR/requirements.txt" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$digest" ]]; then
        return 0
    fi
    say "installing $APP_DIR/requirements.txt into $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT$APP_DIR/requirements.txt" </dev/null ||
        fail "pip could not install $APP_DIR/requirements.txt"
    echo "$digest" >"$stamp"
}

# unit_known NAME: a unit file NAME exists under DIR.
unit_known() {
    local folder
    for folder in etc/systemd/system lib/systemd/system usr/lib/systemd/system; do
        [[ -f "$ROOT/$folder/$1" ]] && return 0
    done
    return 1
}

enable_units() {
    if ((OFFLINE)); then
        if ! command -v systemctl >/dev/null; then
            say "no systemctl: enable $UNIT and redis-server.service on the station"
            return 0
        fi
        local unit
        for unit in redis-server.service "$UNIT"; do
            if unit_known "$unit"; then
                systemctl --root "${ROOT:-/}" --quiet enable "$unit" || fail "cannot enable $unit"
            else
                say "$unit is not installed under ${ROOT:-/}: not enabled (apt-get install redis-server)"
            fi
        done
        return 0
    fi
    systemctl daemon-reload
    systemctl enable --now redis-server.service || fail "cannot start redis-server.service"
    systemctl enable "$UNIT" || fail "cannot enable $UNIT"
    systemctl start "$UNIT" || fail "cannot start $UNIT (journalctl -u $UNIT)"
}

main() {
    parse_args "$@"
    check_inputs
    umask 022
    [[ "$(id -u)" == 0 ]] || say "not root: every file stays owned by $(id -un) (owners need root)"
    ensure_service_user
    SERVICE_UID="$(passwd_field "$SERVICE_USER" 3)" SERVICE_GID="$(passwd_field "$SERVICE_USER" 4)"
    OWNER="$SERVICE_UID:$SERVICE_GID"
    lay_out_data
    write_config
    write_sudoers
    write_unit
    write_kiosk
    write_record
    make_venv
    enable_units
    say "activated (user $SERVICE_USER, data $DATA_DIR, config $CONFIG_DIR${ROOT:+, under $ROOT})"
}

main "$@"
