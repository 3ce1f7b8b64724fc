#!/usr/bin/env bash
# Benchmarks ferromq against Debian's mosquitto and writes BENCHMARKS.md.
#
# Invoked by `make bench`; builds nothing. Environment:
#   FERROMQ_BIN    broker binary            (default build/ferromq)
#   FERROMQ_BENCH  load generator           (default build/ferromq-bench)
#   MOSQUITTO      reference broker         (default /usr/sbin/mosquitto)
#   RUNS           runs per broker/scenario (default 3)
#   DURATION       measured seconds per run (default 10)
#   WARMUP         unmeasured seconds first (default 2)
#   IDLE_CONNS     idle connections         (default 19000, lowered to fit the fd limit)
#   OUT            report path              (default BENCHMARKS.md at the repo root)
#
# Every load is bounded in time and goes to 127.0.0.1 only. Each broker is
# started once per scenario set (the idle set: once per run, so each RSS
# baseline is a fresh process) on a free port, and only the processes this
# script started are stopped, by PID.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERROMQ_BIN=${FERROMQ_BIN:-$ROOT/build/ferromq}
FERROMQ_BENCH=${FERROMQ_BENCH:-$ROOT/build/ferromq-bench}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
IDLE_CONNS=${IDLE_CONNS:-19000}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
BROKERS=(ferromq mosquitto)

die() { echo "bench/run.sh: $*" >&2; exit 1; }
say() { echo "bench/run.sh: $*" >&2; }

[[ -x $FERROMQ_BENCH ]] || die "no load generator at $FERROMQ_BENCH (build it first)"
[[ -x $MOSQUITTO ]] || die "no mosquitto at $MOSQUITTO (apt-get install mosquitto)"
command -v python3 >/dev/null || die "python3 is needed to write the report"
[[ -x $FERROMQ_BIN ]] || say "warning: no ferromq at $FERROMQ_BIN; its runs will be recorded as failed"

tmp=$(mktemp -d /tmp/ferromq-bench.XXXXXX) || die "mktemp failed"
declare -A PID=() PORT=()
NOTES=()
failures=0

stop_broker() { # name
	local name=$1 pid=${PID[$1]:-}
	[[ -n $pid ]] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	unset "PID[$name]"
}

cleanup() {
	for name in "${!PID[@]}"; do stop_broker "$name"; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Both brokers and the bench need ~IDLE_CONNS descriptors each: raise the
# soft limit for this shell, which they all inherit.
hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=1048576
limit=$(( hard < 20000 ? hard : 20000 ))
ulimit -n "$limit" || die "cannot set ulimit -n $limit"
if (( IDLE_CONNS + 200 > limit )); then
	NOTES+=("The open-file limit is $limit, so the idle scenario uses $((limit - 200)) connections instead of $IDLE_CONNS.")
	say "${NOTES[-1]}"
	IDLE_CONNS=$(( limit - 200 ))
fi

start_broker() { # name set -> 0 when listening
	local name=$1 dir=$tmp/$1-$2 port
	port=$(free_port)
	mkdir -p "$dir"
	if [[ $name == ferromq ]]; then
		printf 'listener %s 127.0.0.1\nmax_queued_messages 0\nmax_inflight_messages 1000\nlog_type error\npersistence_location %s/data\n' \
			"$port" "$dir" >"$dir/broker.conf"
		[[ -x $FERROMQ_BIN ]] || return 1
		"$FERROMQ_BIN" -c "$dir/broker.conf" >"$dir/log" 2>&1 &
	else
		printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 1000\npersistence false\n' \
			"$port" >"$dir/broker.conf"
		"$MOSQUITTO" -c "$dir/broker.conf" >"$dir/log" 2>&1 &
	fi
	PID[$name]=$!
	PORT[$name]=$port
	for _ in $(seq 100); do
		kill -0 "${PID[$name]}" 2>/dev/null || break
		if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
			say "$name started: pid ${PID[$name]}, port $port"
			return 0
		fi
		sleep 0.1
	done
	say "$name did not start; its log says:"
	tail -5 "$dir/log" >&2
	stop_broker "$name"
	return 1
}

# run_one SCENARIO BROKER RUN ARGS... : one bench run, one line in results.tsv
run_one() {
	local sid=$1 name=$2 run=$3
	shift 3
	local pid=${PID[$name]:-} port=${PORT[$name]:-} json="" err="" rc
	local args=("$@")
	if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
		err="broker not running"
		rc=1
	else
		[[ $sid == idle ]] && args+=(--pid "$pid")
		local bound
		bound=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { print int(d + w + 100) }')
		say "$sid / $name (pid $pid) run $run: ferromq-bench ${args[*]}"
		timeout -k 5 "$bound" "$FERROMQ_BENCH" "${args[@]}" --port "$port" --json \
			>"$tmp/out" 2>"$tmp/err"
		rc=$?
		json=$(grep '^{' "$tmp/out" | tail -1)
		err=$(grep -v '^$' "$tmp/err" | tail -1 | tr '\t' ' ')
		(( rc == 124 )) && err="timed out after ${bound}s"
	fi
	(( rc != 0 )) && failures=$((failures + 1)) && say "  failed (exit $rc): $err"
	[[ -n $json ]] && say "  $json"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sid" "$name" "$run" "${pid:--}" "$rc" "${json:-null}" "$err" \
		>>"$tmp/results.tsv"
}

# scenario ID TITLE ARGS... : declared once, then run by run_set
declare -A ARGS=() TITLE=()
ORDER=()
scenario() { ORDER+=("$1"); TITLE[$1]=$2; ARGS[$1]="${*:3}"; }

common="--duration $DURATION --warmup $WARMUP --size 200"
scenario fanin-q0 "Fan-in 8 -> 1 on bench/#, QoS 0" fanin --pubs 8 --subs 1 --qos 0 $common
scenario fanin-q1 "Fan-in 8 -> 1 on bench/#, QoS 1" fanin --pubs 8 --subs 1 --qos 1 $common
scenario fanin-q2 "Fan-in 8 -> 1 on bench/#, QoS 2" fanin --pubs 8 --subs 1 --qos 2 $common
scenario fanout-q0 "Fan-out 1 -> 50, QoS 0" fanout --pubs 1 --subs 50 --qos 0 $common
scenario idle "Idle: $IDLE_CONNS connections, one subscription each" idle --conns "$IDLE_CONNS" --duration "$DURATION"
scenario latency-q0 "Latency at a steady 10,000 msg/s, QoS 0" latency --rate 10000 --qos 0 $common
scenario latency-q1 "Latency at a steady 10,000 msg/s, QoS 1" latency --rate 10000 --qos 1 $common

: >"$tmp/results.tsv"
for sid in "${ORDER[@]}"; do printf '%s\t%s\tferromq-bench %s\n' "$sid" "${TITLE[$sid]}" "${ARGS[$sid]}"; done \
	>"$tmp/scenarios.tsv"

# Runs each scenario of a set RUNS times per broker, alternating brokers
# (and which one goes first) from run to run.
run_set() { # fresh_per_run scenario...
	local fresh=$1 run name sid
	shift
	(( fresh )) || for name in "${BROKERS[@]}"; do start_broker "$name" "$1" || true; done
	for sid in "$@"; do
		for run in $(seq "$RUNS"); do
			local order=("${BROKERS[@]}")
			(( run % 2 == 0 )) && order=("${BROKERS[1]}" "${BROKERS[0]}")
			for name in "${order[@]}"; do
				(( fresh )) && { start_broker "$name" "$sid-$run" || true; }
				# shellcheck disable=SC2086
				run_one "$sid" "$name" "$run" ${ARGS[$sid]}
				(( fresh )) && stop_broker "$name"
			done
		done
	done
	for name in "${BROKERS[@]}"; do stop_broker "$name"; done
}

started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
run_set 0 fanin-q0 fanin-q1 fanin-q2
run_set 0 fanout-q0
run_set 1 idle
run_set 0 latency-q0 latency-q1

machine_cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mosq_version=$( ("$MOSQUITTO" -h 2>&1 || true) | grep -m1 -o 'version [0-9.]*')
mosq_deb=$(dpkg-query -W -f '${Version}' mosquitto 2>/dev/null || true)
mosq_version="${mosq_version:-version unknown}${mosq_deb:+ (Debian package $mosq_deb)}"
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
printf '%s\n' "${NOTES[@]+"${NOTES[@]}"}" >"$tmp/notes.txt"

M_NPROC=$(nproc) M_CPU=$machine_cpu M_KERNEL=$(uname -srm) M_MOSQ=$mosq_version M_DATE=$started \
M_COMMIT=$commit M_RUNS=$RUNS M_DURATION=$DURATION M_WARMUP=$WARMUP M_MOSQ_BIN=$MOSQUITTO \
python3 - "$tmp/results.tsv" "$tmp/scenarios.tsv" "$tmp/notes.txt" "$OUT" <<'PY'

import json, os, statistics, sys
results, scenarios, notes, out = sys.argv[1:5]
machine = {k: os.environ["M_" + k.upper()] for k in
           ("nproc", "cpu", "kernel", "mosq", "date", "commit", "runs", "duration", "warmup", "mosq_bin")}
rows = [l.rstrip("\n").split("\t") for l in open(results) if l.strip()]
scen = [l.rstrip("\n").split("\t") for l in open(scenarios) if l.strip()]
notes = [l.strip() for l in open(notes) if l.strip()]

# (label, getter, unit, higher_is_better) per kind of scenario
def lat(k): return lambda j: j["lat_us"][k]
METRICS = {
    "fanin": [("delivered msg/s", lambda j: j["delivered_per_s"], True),
              ("published msg/s", lambda j: j["published_per_s"], True),
              ("lost", lambda j: j["lost"], False), ("dup", lambda j: j["dup"], False),
              ("p50 us", lat("p50"), False), ("p99 us", lat("p99"), False)],
    "idle": [("established", lambda j: j["established"], True),
             ("RSS bytes/conn", lambda j: j["rss_per_conn_bytes"], False),
             ("RSS after kB", lambda j: j["rss_after_kb"], False),
             ("connect s", lambda j: j["connect_seconds"], False)],
    "latency": [("p50 us", lat("p50"), False), ("p99 us", lat("p99"), False),
                ("p999 us", lat("p999"), False), ("delivered msg/s", lambda j: j["delivered_per_s"], True),
                ("lost", lambda j: j["lost"], False)],
}
METRICS["fanout"] = [("deliveries/s", lambda j: j["delivered_per_s"], True)] + METRICS["fanin"][1:]

def fmt(v):
    if v is None: return "-"
    if isinstance(v, float) and not v.is_integer(): return f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{int(v):,}"

o = []
o.append("# ferromq benchmarks\n")
o.append("Written by `bench/run.sh` (`make bench`); do not edit by hand.\n")
o.append("## Machine\n")
o.append(f"- date: {machine['date']}, commit {machine['commit']}")
o.append(f"- CPU: {machine['cpu']}, nproc {machine['nproc']}")
o.append(f"- kernel: {machine['kernel']}")
o.append(f"- mosquitto: {machine['mosq']} ({machine['mosq_bin']})")
o.append(f"- {machine['runs']} runs per broker and scenario, brokers alternating; "
         f"{machine['duration']} s measured after {machine['warmup']} s warmup; medians below.")
o.append("- Load generator and brokers share the machine over loopback; the generator runs one thread.\n")
for n in notes: o.append(f"**Note:** {n}\n")
o.append("## Broker configurations\n")
o.append("ferromq (`ferromq -c FILE`):\n\n```\nlistener PORT 127.0.0.1\nmax_queued_messages 0\nmax_inflight_messages 1000\nlog_type error\n```\n")
o.append("mosquitto (`mosquitto -c FILE`):\n\n```\nlistener PORT 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 1000\npersistence false\n```\n")
o.append("mosquitto keeps its default `set_tcp_nodelay false`, so its writes go through Nagle's "
         "algorithm: on loopback, where delayed ACKs meet a 64 KiB MSS, a lightly loaded QoS 0 stream "
         "is sent in bursts tens of milliseconds apart, which dominates its QoS 0 latency below. "
         "With `set_tcp_nodelay true` its latency drops to the ferromq range but its fan-in "
         "throughput falls (fewer, smaller writes are coalesced).\n")
o.append("Both run under `ulimit -n` 20000 (or the hard limit). Each is started fresh per scenario set "
         "(fan-in, fan-out, latency) and per run for idle, so the RSS baseline is a fresh process.\n")
o.append("## Commands\n")
o.append("`PORT` is the broker's port; every run adds `--port PORT --json` (and `--pid PID` for idle).\n")
o.append("```")
for sid, title, cmd in scen: o.append(f"{cmd}    # {sid}")
o.append("```\n")
for sid, title, cmd in scen:
    kind = sid.split("-")[0]
    o.append(f"## {title}\n")
    o.append(f"`{cmd}`\n")
    runs = {b: [r for r in rows if r[0] == sid and r[1] == b] for b in ("ferromq", "mosquitto")}
    data = {b: [json.loads(r[5]) for r in runs[b] if r[5] != "null"] for b in runs}
    o.append("| metric | ferromq (median) | mosquitto (median) | ferromq / mosquitto |")
    o.append("| --- | ---: | ---: | ---: |")
    for label, get, _ in METRICS[kind]:
        med = {}
        for b in data:
            vals = [get(j) for j in data[b]]
            med[b] = statistics.median(vals) if vals else None
        ratio = "-"
        if med["ferromq"] is not None and med["mosquitto"]:
            ratio = f"{med['ferromq'] / med['mosquitto']:.2f}"
        o.append(f"| {label} | {fmt(med['ferromq'])} | {fmt(med['mosquitto'])} | {ratio} |")
    o.append("")
    o.append("All runs:\n")
    o.append("| broker | pid | run | exit | " + " | ".join(m[0] for m in METRICS[kind]) + " |")
    o.append("| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in METRICS[kind]) + " |")
    for b in ("ferromq", "mosquitto"):
        for r in runs[b]:
            if r[5] != "null":
                j = json.loads(r[5])
                cells = [fmt(get(j)) for _, get, _ in METRICS[kind]]
            else:
                cells = ["-"] * len(METRICS[kind])
            o.append(f"| {b} | {r[3]} | {r[2]} | {r[4]} | " + " | ".join(cells) + " |")
            if r[4] != "0" and len(r) > 6 and r[6]:
                o.append(f"| | | | | {r[6].replace('|', '/')} |" + " |" * (len(METRICS[kind]) - 1))
    o.append("")
open(out, "w").write("\n".join(o) + "\n")
PY
[[ $? -eq 0 ]] || die "writing $OUT failed"
say "wrote $OUT"
if (( failures )); then
	say "$failures run(s) failed; see $OUT"
	exit 1
fi
