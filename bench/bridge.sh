#!/usr/bin/env bash
# The bridge's spool under a one-hour outage, filled faster than real time:
#   1. edge (durability full) bridged to a cloud that is down; MESSAGES
#      messages of SIZE bytes published to it as fast as it takes them;
#   2. the edge's RSS (now and peak) and its store on disk (database + WAL)
#      against the payload spooled;
#   3. the cloud (ferromq, durability full) comes up while live traffic of
#      LIVE_RATE msg/s keeps arriving at the edge: the time until the spool is
#      empty gives the drain rate; the live publisher's PUBACK latency shows
#      the edge kept taking traffic meanwhile.
# Prints the figures and appends nothing anywhere: copy them into the docs.
#
# Environment: FERROMQ_BIN, FERROMQ_BENCH (default build/...), MESSAGES
# (1800000 = 1 h at 500 msg/s), SIZE (200), LIVE_RATE (500), PUBS (4),
# FILL_RATE (msg/s of the fill; 0 = as fast as the edge takes them: the WAL
# then outruns its checkpoints and reaches journal_size_limit, 64 MB).
# Needs curl and /usr/bin/python3 with Debian's paho-mqtt (the live publisher).
# Only the brokers and publishers this script started are stopped, by PID.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERROMQ_BIN=${FERROMQ_BIN:-$ROOT/build/ferromq}
FERROMQ_BENCH=${FERROMQ_BENCH:-$ROOT/build/ferromq-bench}
MESSAGES=${MESSAGES:-1800000}
SIZE=${SIZE:-200}
LIVE_RATE=${LIVE_RATE:-500}
PUBS=${PUBS:-4}
FILL_RATE=${FILL_RATE:-0}

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ -x $FERROMQ_BIN ]] || die "no broker at $FERROMQ_BIN (build it first)"
[[ -x $FERROMQ_BENCH ]] || die "no load generator at $FERROMQ_BENCH (build it first)"

tmp=$(mktemp -d /tmp/ferromq-bridge.XXXXXX) || die "mktemp failed"
EDGE_PID="" CLOUD_PID="" LIVE_PID=""
cleanup() { stop_pid "$LIVE_PID"; stop_pid "$EDGE_PID"; stop_pid "$CLOUD_PID"; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
raise_fd_limit

edge_port=$(free_port) cloud_port=$(free_port) http_port=$(free_port)
mkdir -p "$tmp/edge" "$tmp/cloud"
cat >"$tmp/edge/conf" <<CONF
listener $edge_port 127.0.0.1
persistence_location $tmp/edge/data
durability full
max_inflight_messages 1000
log_type error
log_type warning
log_type notice
http_listener $http_port 127.0.0.1
http_token_file $tmp/edge/token
connection cloud
address 127.0.0.1:$cloud_port
bridge_protocol_version mqttv50
restart_timeout 1 1
topic bench/# out 1 "" plant-detroit/
CONF
cat >"$tmp/cloud/conf" <<CONF
listener $cloud_port 127.0.0.1
persistence_location $tmp/cloud/data
durability full
log_type error
log_type warning
log_type notice
CONF

listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
start() { # start NAME PORT -> pid in $started
	"$FERROMQ_BIN" -c "$tmp/$1/conf" >"$tmp/$1/log" 2>&1 &
	started=$!
	for _ in $(seq 200); do
		listening "$2" && return 0
		kill -0 "$started" 2>/dev/null || break
		sleep 0.05
	done
	tail -5 "$tmp/$1/log" >&2
	die "$1 did not start"
}
kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
spooled() {
	curl -s -H "Authorization: Bearer $(cat "$tmp/edge/token")" "http://127.0.0.1:$http_port/api/bridges" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["spool_messages"])'
}

start edge "$edge_port"; EDGE_PID=$started
say "edge pid $EDGE_PID port $edge_port; cloud (down) port $cloud_port"
rss0=$(kb "$EDGE_PID" VmRSS)
fill_cmd="ferromq-bench fill --port EDGE --pubs $PUBS --subs 1 --filter none/# --messages $MESSAGES --size $SIZE --qos 1 --inflight 256 --rate $FILL_RATE"
say "fill: $fill_cmd"
"$FERROMQ_BENCH" fill --port "$edge_port" --pubs "$PUBS" --subs 1 --filter 'none/#' --messages "$MESSAGES" \
	--size "$SIZE" --qos 1 --inflight 256 --rate "$FILL_RATE" >"$tmp/fill.out" 2>&1 || { cat "$tmp/fill.out" >&2; die "fill failed"; }
cat "$tmp/fill.out" >&2
sleep 2 # the last commits and a checkpoint
for _ in $(seq 60); do [[ $(spooled) -ge $MESSAGES ]] && break; sleep 1; done
n=$(spooled)
rss=$(kb "$EDGE_PID" VmRSS) hwm=$(kb "$EDGE_PID" VmHWM)
db=$(stat -c %s "$tmp/edge/data/ferromq.db") wal=$(stat -c %s "$tmp/edge/data/ferromq.db-wal" 2>/dev/null || echo 0)
payload=$((MESSAGES * SIZE))

start cloud "$cloud_port"; CLOUD_PID=$started
t0=$(date +%s.%N)
/usr/bin/python3 "$ROOT/bench/bridge_live.py" "$edge_port" bench/live "$LIVE_RATE" "$SIZE" "$tmp/stop" >"$tmp/live.json" 2>"$tmp/live.err" &
LIVE_PID=$!
# Empty once only the live traffic's last second or so is in flight.
while :; do
	left=$(spooled)
	[[ $left -le $LIVE_RATE ]] && break
	kill -0 "$EDGE_PID" 2>/dev/null || die "the edge died"
	sleep 0.5
done
t1=$(date +%s.%N)
touch "$tmp/stop"
wait "$LIVE_PID"; LIVE_PID=""
live=$(cat "$tmp/live.json")
grep -E "error|warning" "$tmp/edge/log" | head -5 >&2

python3 - "$n" "$rss0" "$rss" "$hwm" "$db" "$wal" "$payload" "$t0" "$t1" "$live" "$MESSAGES" "$SIZE" <<'PY'
import json, sys
n, rss0, rss, hwm, db, wal, payload = (int(x) for x in sys.argv[1:8])
t0, t1 = float(sys.argv[8]), float(sys.argv[9])
live = json.loads(sys.argv[10])
messages, size = int(sys.argv[11]), int(sys.argv[12])
drained = n + live["published"]
print("spooled %d messages of %d bytes (%.1f MB of payload) with the cloud down" % (n, size, payload / 1e6))
print("edge RSS: %.1f MB before, %.1f MB with the spool full (peak %.1f MB)" % (rss0 / 1024, rss / 1024, hwm / 1024))
print("edge store: %.1f MB database + %.1f MB WAL = %.2f x the payload" % (db / 1e6, wal / 1e6, (db + wal) / payload))
print("drain: %d messages (spool + live) in %.1f s from the cloud's start = %.0f msg/s" % (drained, t1 - t0, drained / (t1 - t0)))
print("live traffic meanwhile: %s" % json.dumps(live))
PY
