#!/usr/bin/env bash
# The kiosk: Chromium full screen on the station's HMI, started by the kiosk user's desktop
# session (XDG autostart, written by ops/sw_activation.sh).
#
# Waits until the web service listens before opening the page (a browser started first would
# show its own error page, which no one can dismiss on a kiosk) and starts Chromium again
# whenever it exits, so a crash or a stray key combination never leaves the screen empty.
#
# usage: ops/kiosk/station-kiosk.sh URL        e.g. http://127.0.0.1:8000/hmi/
# Environment: CHROMIUM_PATH (default: chromium, then chromium-browser from PATH).
set -uo pipefail

if (($# != 1)) || [[ ! "$1" =~ ^http://([^/:]+):([0-9]+)/ ]]; then
    echo "usage: station-kiosk.sh http://HOST:PORT/PATH" >&2
    exit 2
fi
URL="$1" HOST="${BASH_REMATCH[1]}" PORT="${BASH_REMATCH[2]}"

BROWSER="${CHROMIUM_PATH:-$(command -v chromium || command -v chromium-browser)}"
if [[ -z "$BROWSER" ]]; then
    echo "station-kiosk.sh: no chromium found (apt-get install chromium, or set CHROMIUM_PATH)" >&2
    exit 1
fi

# web_listens: something accepts TCP connections on HOST:PORT.
web_listens() {
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

while true; do
    until web_listens; do sleep 1; done
    "$BROWSER" --kiosk --no-first-run --noerrdialogs --disable-infobars --disable-translate \
        --disable-session-crashed-bubble --disable-features=TranslateUI --overscroll-history-navigation=0 \
        --check-for-update-interval=31536000 "$URL"
    sleep 2
done
