#!/usr/bin/env bash
# The cost of the Sparkplug aware broker (issue 17's target: at most 5 % of
# throughput on a Sparkplug-shaped load against sparkplug_aware false, in
# the same run). ferromq-bench plant --sparkplug: NODES edge nodes (each its
# own connection, an NDEATH will, an NBIRTH once connected) send NDATA
# (QoS 1, SIZE bytes, seq 1, 2, ...) every INTERVAL ms to one persistent
# historian on spBv1.0/+/NDATA/+, for DURATION s, against a broker with
# sparkplug_aware false and one with true (durability full, the defaults
# otherwise), RUNS times, the order alternating. Per run: the broker's CPU
# time (utime + stime from /proc/PID/stat, connects and births included)
# per NDATA acknowledged, the delivered rate, loss. Then the median of each
# mode and aware's extra CPU per message in percent. With SAT_INTERVAL set
# (ms, e.g. 10: 1,000 nodes -> 100,000 msg/s offered), also the same at that
# interval, where the delivered rate is what the broker can take.
# Prints the figures and appends nothing anywhere.
#
# Environment: FERROMQ_BIN, FERROMQ_BENCH (default build/...), NODES (1000),
# INTERVAL (1000), DURATION (30), SIZE (256), RUNS (3), SAT_INTERVAL (unset),
# SAT_DURATION (10).
# Only the brokers this script started are stopped, by PID.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERROMQ_BIN=${FERROMQ_BIN:-$ROOT/build/ferromq}
FERROMQ_BENCH=${FERROMQ_BENCH:-$ROOT/build/ferromq-bench}
NODES=${NODES:-1000}
INTERVAL=${INTERVAL:-1000}
DURATION=${DURATION:-30}
SIZE=${SIZE:-256}
RUNS=${RUNS:-3}
SAT_INTERVAL=${SAT_INTERVAL:-}
SAT_DURATION=${SAT_DURATION:-10}

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ -x $FERROMQ_BIN ]] || die "no broker at $FERROMQ_BIN (build it first)"
[[ -x $FERROMQ_BENCH ]] || die "no load generator at $FERROMQ_BENCH (build it first)"

tmp=$(mktemp -d /tmp/ferromq-sparkplug.XXXXXX) || die "mktemp failed"
BROKER_PID=""
cleanup() { stop_pid "$BROKER_PID"; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
raise_fd_limit

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
wait_port() {
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	die "nothing listens on $1"
}
json() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
hz=$(getconf CLK_TCK)

# one MODE INTERVAL DURATION TAG: a broker, a bench run; sets us_TAG, rate_TAG.
one() {
	local mode=$1 interval=$2 duration=$3 tag=$4 port before after acked lost us rate
	port=$(free_port)
	rm -rf "$tmp/b"
	mkdir -p "$tmp/b"
	printf 'listener %s 127.0.0.1\npersistence_location %s/b/data\nlog_type error\nlog_type warning\nsparkplug_aware %s\n' \
		"$port" "$tmp" "$mode" >"$tmp/b/conf"
	"$FERROMQ_BIN" -c "$tmp/b/conf" >"$tmp/b/log" 2>&1 &
	BROKER_PID=$!
	wait_port "$port"
	before=$(cpu_ticks "$BROKER_PID")
	"$FERROMQ_BENCH" plant --port "$port" --protocol 5 --sparkplug spBv1.0 --gateways "$NODES" --tags 1 \
		--interval "$interval" --size "$SIZE" --historians 1 --duration "$duration" --json \
		--pid "$BROKER_PID" >"$tmp/$tag.json" || die "ferromq-bench failed ($tag)"
	after=$(cpu_ticks "$BROKER_PID")
	stop_pid "$BROKER_PID"
	BROKER_PID=""
	grep -E 'ERROR|AddressSanitizer|runtime error' "$tmp/b/log" && die "errors in the broker's log ($tag)"
	acked=$(json "$tmp/$tag.json" acked)
	lost=$(json "$tmp/$tag.json" lost)
	rate=$(json "$tmp/$tag.json" delivered_per_s)
	[[ $lost == 0 ]] || die "$tag: $lost messages lost"
	us=$(awk -v t=$(( after - before )) -v hz="$hz" -v n="$acked" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
	say "$tag: sparkplug_aware $mode: $acked NDATA acknowledged, $rate msg/s delivered, 0 lost," \
		"broker CPU $(( after - before )) ticks: $us us per message"
	printf '%s %s\n' "$us" "$rate" >>"$tmp/$mode-$interval.txt"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

series() {
	local interval=$1 duration=$2
	for run in $(seq "$RUNS"); do
		if (( run % 2 )); then order="false true"; else order="true false"; fi
		for mode in $order; do one "$mode" "$interval" "$duration" "run$run-$mode-$interval"; done
	done
	local off_us on_us off_rate on_rate
	off_us=$(cut -d' ' -f1 "$tmp/false-$interval.txt" | median)
	on_us=$(cut -d' ' -f1 "$tmp/true-$interval.txt" | median)
	off_rate=$(cut -d' ' -f2 "$tmp/false-$interval.txt" | median)
	on_rate=$(cut -d' ' -f2 "$tmp/true-$interval.txt" | median)
	awk -v n="$NODES" -v i="$interval" -v r="$RUNS" -v a="$off_us" -v b="$on_us" -v ra="$off_rate" -v rb="$on_rate" \
		'BEGIN { printf "%d edge nodes, NDATA every %d ms, median of %d runs: aware off %.2f us CPU per message, " \
		         "%.0f msg/s; aware on %.2f us, %.0f msg/s; aware costs %+.1f %% CPU per message, " \
		         "%+.1f %% delivered rate\n", n, i, r, a, ra, b, rb, (b - a) / a * 100, (rb - ra) / ra * 100 }'
}

series "$INTERVAL" "$DURATION"
[[ -n $SAT_INTERVAL ]] && series "$SAT_INTERVAL" "$SAT_DURATION"
exit 0
