#!/usr/bin/env bash
# Measures the dashboard's first contentful paint (target: under 1 s on
# loopback): starts ferromq with an HTTP listener, opens
# http://127.0.0.1:PORT/?token=... RUNS times in headless Chromium (a fresh
# browser context each time: empty cache, no cookie, so every load is a
# first visit: token, redirect, page, assets, first /api/status), and prints
# each first-contentful-paint and their median, in ms, as the last line:
#   dashboard first-contentful-paint median: N ms (RUNS loads)
#
# Builds nothing. Environment:
#   FERROMQ_BIN   broker binary                          (default build/ferromq)
#   CHROMIUM      browser                                (default: chromium on PATH)
#   RUNS          loads                                  (default 5)
#   NPM_CACHE     where playwright-core is npm-installed (default npm-cache/ beside the broker)
#
# Only the broker this script started is stopped, by PID; its data dir is a
# temp dir.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERROMQ_BIN=${FERROMQ_BIN:-$ROOT/build/ferromq}
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
RUNS=${RUNS:-5}
PLAYWRIGHT_VERSION=1.61.1 # as tests/integration/test_dashboard.py: runs on nodejs 18 too
NPM_CACHE=${NPM_CACHE:-$(dirname "$FERROMQ_BIN")/npm-cache}

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ -x $FERROMQ_BIN ]] || die "no broker at $FERROMQ_BIN (build it first)"
[[ -n $CHROMIUM && -x $CHROMIUM ]] || die "no chromium (apt-get install chromium, or set CHROMIUM)"
command -v node >/dev/null || die "node is needed (apt-get install nodejs)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number, not '$RUNS'"

modules=$NPM_CACHE/playwright-core-$PLAYWRIGHT_VERSION/node_modules
if [[ ! -f $modules/playwright-core/package.json ]]; then
	command -v npm >/dev/null || die "npm is needed to install playwright-core"
	say "installing playwright-core $PLAYWRIGHT_VERSION into ${modules%/node_modules}"
	npm install --no-audit --no-fund --no-save --prefix "${modules%/node_modules}" \
		"playwright-core@$PLAYWRIGHT_VERSION" >/dev/null || die "npm install playwright-core failed"
fi

tmp=$(mktemp -d /tmp/ferromq-dashboard.XXXXXX) || die "mktemp failed"
BPID=""
cleanup() { stop_pid "$BPID" 50; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

mqtt_port=$(free_port)
http_port=$(free_port)
mkdir -p "$tmp/data"
cat >"$tmp/ferromq.conf" <<CONF
listener $mqtt_port 127.0.0.1
persistence_location $tmp/data
http_listener $http_port 127.0.0.1
http_token_file $tmp/http.token
CONF
"$FERROMQ_BIN" -c "$tmp/ferromq.conf" >"$tmp/broker.log" 2>&1 &
BPID=$!
for _ in $(seq 100); do
	[[ -s $tmp/http.token ]] && python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$http_port/healthz', timeout=1)" 2>/dev/null && break
	kill -0 "$BPID" 2>/dev/null || die "the broker exited: $(tail -5 "$tmp/broker.log")"
	sleep 0.1
done
[[ -s $tmp/http.token ]] || die "the broker wrote no token file; log: $(tail -5 "$tmp/broker.log")"

NODE_PATH=$modules node "$ROOT/bench/dashboard_paint.js" "$CHROMIUM" \
	"http://127.0.0.1:$http_port/?token=$(cat "$tmp/http.token")" "$RUNS" || die "the browser run failed"
