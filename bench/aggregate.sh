#!/usr/bin/env bash
# CPU per aggregated reading: an edge ferromq bridged to a cloud ferromq
# takes RATE readings/s (ferromq-bench plant: GATEWAYS x TAGS JSON tags,
# QoS 1, one historian on the edge) for DURATION s, twice:
#   base  the bridge's only topic line matches none of the readings;
#   agg   `topic plants/# out` with `aggregate WINDOW` and deadband_field value:
#         every reading goes through the aggregation, one summary per tag per
#         window goes to the cloud.
# The edge's CPU time (utime + stime from /proc/PID/stat) over each run is
# divided by the readings it acknowledged; agg - base is the aggregation's
# cost per reading. Prints the figures and appends nothing anywhere.
#
# Environment: FERROMQ_BIN, FERROMQ_BENCH (default build/...), GATEWAYS (100),
# TAGS (100), INTERVAL ms (100: 100 x 100 tags every 100 ms = 100,000/s),
# DURATION (20), WINDOW (1).
# Only the brokers this script started are stopped, by PID.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERROMQ_BIN=${FERROMQ_BIN:-$ROOT/build/ferromq}
FERROMQ_BENCH=${FERROMQ_BENCH:-$ROOT/build/ferromq-bench}
GATEWAYS=${GATEWAYS:-100}
TAGS=${TAGS:-100}
INTERVAL=${INTERVAL:-100}
DURATION=${DURATION:-20}
WINDOW=${WINDOW:-1}

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ -x $FERROMQ_BIN ]] || die "no broker at $FERROMQ_BIN (build it first)"
[[ -x $FERROMQ_BENCH ]] || die "no load generator at $FERROMQ_BENCH (build it first)"

tmp=$(mktemp -d /tmp/ferromq-aggregate.XXXXXX) || die "mktemp failed"
EDGE_PID="" CLOUD_PID=""
cleanup() { stop_pid "$EDGE_PID"; stop_pid "$CLOUD_PID"; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
raise_fd_limit

# utime + stime of PID, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
wait_port() {
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	die "nothing listens on $1"
}

cloud_port=$(free_port)
mkdir -p "$tmp/cloud"
printf 'listener %s 127.0.0.1\npersistence_location %s/cloud/data\nlog_type error\n' "$cloud_port" "$tmp" \
	>"$tmp/cloud/conf"
"$FERROMQ_BIN" -c "$tmp/cloud/conf" >"$tmp/cloud/log" 2>&1 &
CLOUD_PID=$!
wait_port "$cloud_port"

hz=$(getconf CLK_TCK)
rate=$(( GATEWAYS * TAGS * 1000 / INTERVAL ))
for run in base agg; do
	edge_port=$(free_port)
	rm -rf "$tmp/edge"
	mkdir -p "$tmp/edge"
	{
		printf 'listener %s 127.0.0.1\npersistence_location %s/edge/data\n' "$edge_port" "$tmp"
		printf 'log_type error\nlog_type warning\nmax_inflight_messages 1000\n'
		printf 'connection cloud\naddress 127.0.0.1:%s\nbridge_protocol_version mqttv50\n' "$cloud_port"
		if [[ $run == agg ]]; then
			printf 'topic plants/# out 1 "" site/\naggregate %s\ndeadband_field value\n' "$WINDOW"
		else
			printf 'topic nothing/# out 1 "" site/\n'
		fi
	} >"$tmp/edge/conf"
	"$FERROMQ_BIN" -c "$tmp/edge/conf" >"$tmp/edge/log" 2>&1 &
	EDGE_PID=$!
	wait_port "$edge_port"
	before=$(cpu_ticks "$EDGE_PID")
	"$FERROMQ_BENCH" plant --port "$edge_port" --protocol 5 --gateways "$GATEWAYS" --tags "$TAGS" \
		--interval "$INTERVAL" --historians 1 --duration "$DURATION" --json >"$tmp/$run.json" \
		|| die "ferromq-bench failed ($run)"
	after=$(cpu_ticks "$EDGE_PID")
	acked=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["acked"])' "$tmp/$run.json")
	lost=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lost"])' "$tmp/$run.json")
	stop_pid "$EDGE_PID"
	EDGE_PID=""
	grep -E 'ERROR|AddressSanitizer|runtime error' "$tmp/edge/log" && die "errors in the edge's log ($run)"
	us=$(awk -v t=$(( after - before )) -v hz="$hz" -v n="$acked" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
	eval "us_$run=$us"
	say "$run: $acked readings acknowledged (target $rate/s for ${DURATION} s), $lost lost at the historian," \
		"edge CPU $(( after - before )) ticks: $us us per reading"
done
awk -v a="$us_agg" -v b="$us_base" -v r="$rate" 'BEGIN {
	printf "edge CPU per reading: %.2f us without aggregation, %.2f us with; aggregation: %.2f us per reading " \
	       "(%.1f %% of a core at %d readings/s)\n", b, a, a - b, (a - b) * r / 1e4, r }'
