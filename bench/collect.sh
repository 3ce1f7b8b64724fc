#!/usr/bin/env bash
# Modbus TCP collection (issue 16's targets): DEVICES devices of TAGS tags
# each, polled every INTERVAL ms from fm-modbus-sim on loopback, into the
# durable store (`durability full`; a persistent QoS 1 session,
# mosquitto_sub -c, takes every reading). Three scenarios:
#   idle         the same broker and session without any device: the base
#   all-answer   every device answers
#   one-dead     device 0 accepts connections and never answers (muted in
#                fm-modbus-sim: requests are read and dropped); the figures
#                are those of the other DEVICES-1
#   acl          as all-answer, with an acl_file: the readings pass the rules
#                of their modbus_username (not run unless named in ONLY)
#   aggregate    as all-answer, every tag with `tag_aggregate AGGREGATE`:
#                polled as often, one summary per tag per window published
#                (not run unless named in ONLY); compare with all-answer at
#                the same INTERVAL for the CPU per aggregated reading
# Over MEASURE seconds after WARMUP, from /proc and the broker's own /metrics:
#   - CPU of the broker process (utime + stime of /proc/PID/stat), and of its
#     collector threads (ferromq_device_thread_cpu_seconds_total: each
#     thread's CLOCK_THREAD_CPUTIME_ID; /proc's per-thread times come in
#     10 ms ticks, more than such a thread uses in the window), in % of one
#     core
#   - poll start jitter and poll-to-commit, p50 and p99: the upper bounds of
#     the histogram buckets (ferromq_device_poll_jitter_seconds,
#     ferromq_device_poll_to_commit_seconds) the quantile falls in, over the
#     window (differences of the cumulative buckets), every live device
#   - readings committed per second, late and failed polls of live devices
#   - readings polled per second ((polls - failed polls) x TAGS; a poll
#     skipped for the store, counted late, would count too) and the CPU
#     of the broker and of its collector threads per reading polled, in us
#
# Builds nothing: FERROMQ_BIN (default build/ferromq, `make build`) and
# FM_MODBUS_SIM (default beside it). Environment: DEVICES (100), TAGS (100,
# at most 100), INTERVAL (1000), WARMUP (10), MEASURE (30), ONLY (scenario
# names, default all three), RUNS (each scenario this many times, 1),
# AGGREGATE (the aggregate scenario's window in seconds, 1). The
# machine's load average is recorded beside each run: others' work on a
# shared machine moves the latencies. Loopback only; stops only the processes it started,
# by PID. Prints a Markdown section for BENCHMARKS.md.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERROMQ_BIN=${FERROMQ_BIN:-$ROOT/build/ferromq}
FM_MODBUS_SIM=${FM_MODBUS_SIM:-$(dirname "$FERROMQ_BIN")/fm-modbus-sim}
DEVICES=${DEVICES:-100}
TAGS=${TAGS:-100}
INTERVAL=${INTERVAL:-1000}
WARMUP=${WARMUP:-10}
MEASURE=${MEASURE:-30}
ONLY=${ONLY:-idle all-answer one-dead}
RUNS=${RUNS:-1}
AGGREGATE=${AGGREGATE:-1}

die() { echo "bench/collect.sh: $*" >&2; exit 1; }
[[ -x $FERROMQ_BIN ]] || die "$FERROMQ_BIN is missing (make build)"
[[ -x $FM_MODBUS_SIM ]] || die "$FM_MODBUS_SIM is missing (make build)"
command -v mosquitto_sub >/dev/null || die "mosquitto_sub is missing (mosquitto-clients)"
(( TAGS >= 1 && TAGS <= 100 )) || die "TAGS must be 1..100"

tmp=$(mktemp -d /tmp/fm-collect-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One scenario: prints a JSON line of its figures.
run() {
	local name=$1 dir=$tmp/$1 n=$DEVICES
	[[ $name == idle ]] && n=0
	mkdir -p "$dir/data"
	# The device: holding registers 0..139 (60 uint16, 20 float32 cdab, 20 int32).
	coproc SIM { exec "$FM_MODBUS_SIM" --devices "$DEVICES" --size 200; }
	local sim_pid=$SIM_PID
	pids+=("$sim_pid")
	local ports
	read -r -u "${SIM[0]}" ports || die "fm-modbus-sim did not start"
	ports=(${ports#ports })
	for ((d = 0; d < DEVICES; d++)); do
		echo "set $d hr 0 $(seq -s ' ' $((d + 1)) $((d + 140)))" >&"${SIM[1]}"
		read -r -u "${SIM[0]}" _
	done
	if [[ $name == one-dead ]]; then
		echo "mute 0 1" >&"${SIM[1]}"
		read -r -u "${SIM[0]}" _
	fi
	local port http
	port=$(free_port)
	http=$(free_port)
	{
		echo "listener $port 127.0.0.1"
		echo "persistence_location $dir/data"
		echo "durability full"
		echo "http_listener $http 127.0.0.1"
		echo "http_token_file $dir/token"
		if [[ $name == acl ]]; then
			printf 'user collector\ntopic write modbus/#\n\nuser ops\ntopic read #\n' >"$dir/acl"
			echo "acl_file $dir/acl"
		fi
		for ((d = 0; d < n; d++)); do
			echo "modbus_device d$d"
			[[ $name == acl ]] && echo "modbus_username collector"
			echo "modbus_address 127.0.0.1:${ports[$d]}"
			echo "modbus_poll_interval $INTERVAL"
			for ((t = 0; t < TAGS; t++)); do
				if ((t < 60)); then echo "modbus_tag t$t holding_register $t uint16"
				elif ((t < 80)); then echo "modbus_tag t$t holding_register $((60 + (t - 60) * 2)) float32 cdab"
				else echo "modbus_tag t$t holding_register $((100 + (t - 80) * 2)) int32"; fi
				[[ $name == aggregate ]] && echo "tag_aggregate $AGGREGATE"
			done
		done
	} >"$dir/ferromq.conf"
	"$FERROMQ_BIN" -c "$dir/ferromq.conf" >"$dir/log" 2>&1 &
	local broker=$!
	pids+=("$broker")
	for _ in $(seq 100); do [[ -s $dir/token ]] && break; sleep 0.1; done
	[[ -s $dir/token ]] || die "the broker did not start: $(tail -3 "$dir/log")"
	local user=()
	[[ $name == acl ]] && user=(-u ops)
	mosquitto_sub -h 127.0.0.1 -p "$port" "${user[@]}" -i bench-historian -c -q 1 -t 'modbus/#' >/dev/null &
	local sub=$!
	pids+=("$sub")
	sleep "$WARMUP"
	local token
	token=$(cat "$dir/token")
	snap() { # $1: file prefix
		curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$http/metrics" >"$1.metrics"
		cat /proc/"$broker"/stat >"$1.stat"
		date +%s.%N >"$1.time"
		cut -d' ' -f1 /proc/loadavg >"$1.load"
	}
	snap "$dir/a"
	sleep "$MEASURE"
	snap "$dir/b"
	python3 - "$dir" "$name" "$n" "$TAGS" "$INTERVAL" <<'PY'
import json, os, re, sys
d, name, devices, tags, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def load(p):
    m = {}
    for line in open(f"{d}/{p}.metrics"):
        if line.startswith("#") or not line.strip():
            continue
        k, v = line.rsplit(" ", 1)
        m[k] = float(v)
    stat = open(f"{d}/{p}.stat").read().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    coll = sum(v for k, v in m.items() if k.startswith("ferromq_device_thread_cpu_seconds_total{"))
    return m, cpu, coll, float(open(f"{d}/{p}.time").read())
(ma, ca, ka, ta), (mb, cb, kb, tb) = load("a"), load("b")
dt = tb - ta
live = [f"d{i}" for i in range(1 if name == "one-dead" else 0, devices)]
def delta(key):
    return mb.get(key, 0) - ma.get(key, 0)
def quantiles(family):
    les = sorted({re.search(r'le="([^"]+)"', k).group(1) for k in mb if k.startswith(family + "_bucket")},
                 key=lambda x: float("inf") if x == "+Inf" else float(x))
    cum = {le: sum(delta(f'{family}_bucket{{device="{dev}",le="{le}"}}') for dev in live) for le in les}
    total = cum.get("+Inf", 0)
    out = {}
    for q in (0.5, 0.99):
        le = next(le for le in les if cum[le] >= q * total) if total else None
        out["p%d" % round(q * 100)] = None if le is None else ("> 10000" if le == "+Inf" else float(le) * 1000)
    out["count"] = int(total)
    return out
res = {
    "load1": [float(open(f"{d}/{p}.load").read()) for p in ("a", "b")],
    "scenario": name, "devices": devices, "tags": tags, "interval_ms": interval, "seconds": round(dt, 1),
    "cpu_process_pct": round((cb - ca) / dt * 100, 1), "cpu_collector_threads_pct": round((kb - ka) / dt * 100, 1),
    "readings_committed_per_s": round(sum(delta(f'ferromq_device_readings_committed_total{{device="{x}"}}') for x in live) / dt),
    "messages_received_per_s": round(delta("ferromq_messages_received_total") / dt),
    "polls_late": int(sum(delta(f'ferromq_device_polls_late_total{{device="{x}"}}') for x in live)),
    "polls_failed": int(sum(delta(f'ferromq_device_polls_failed_total{{device="{x}"}}') for x in live)),
    "readings_polled_per_s": round(sum(delta(f'ferromq_device_polls_total{{device="{x}"}}') -
                                       delta(f'ferromq_device_polls_failed_total{{device="{x}"}}') for x in live)
                                   * tags / dt),
    "jitter_ms": quantiles("ferromq_device_poll_jitter_seconds"),
    "poll_to_commit_ms": quantiles("ferromq_device_poll_to_commit_seconds"),
    "request_ms": quantiles("ferromq_device_request_duration_seconds"),
}
if name == "one-dead":
    res["dead_device_up"] = mb.get('ferromq_device_up{device="d0"}')
polled = res["readings_polled_per_s"]
res["cpu_us_per_polled_reading"] = round((cb - ca) / dt / polled * 1e6, 2) if polled else None
res["collector_us_per_polled_reading"] = round((kb - ka) / dt / polled * 1e6, 2) if polled else None
print(json.dumps(res))
PY
	kill "$sub" "$broker" 2>/dev/null
	wait "$sub" "$broker" 2>/dev/null
	grep -E "error|warning" "$dir/log" | grep -v "modbus device d0" | head -5 >&2
	exec {SIM[1]}>&-
	wait "$sim_pid" 2>/dev/null
}

results=()
for ((r = 0; r < RUNS; r++)); do
	for s in $ONLY; do
		run "$s" >"$tmp/$s.json" || die "scenario $s failed"
		rm -rf "${tmp:?}/$s"
		results+=("$(cat "$tmp/$s.json")")
	done
done
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
python3 - "$commit" "${results[@]}" <<'PY'
import json, sys
commit, rows = sys.argv[1], [json.loads(r) for r in sys.argv[2:] if r.strip()]
def q(v):
    return "-" if v is None else (v if isinstance(v, str) else f"<= {v:g}")
def q2(v):
    return "-" if v is None else f"{v:g}"
print("| scenario | devices x tags @ interval | readings committed/s | broker CPU (% of a core) | collector threads CPU | poll jitter p50 / p99 (ms) | poll-to-commit p50 / p99 (ms) | request p99 (ms) | late / failed polls | load average | readings polled/s | broker / collector threads CPU per polled reading (us) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    live = r["devices"] - (1 if r["scenario"] == "one-dead" else 0)
    shape = f'{r["devices"]} x {r["tags"]} @ {r["interval_ms"]} ms ({live} answer)' if r["devices"] else "no device"
    print(f'| {r["scenario"]} | {shape} | '
          f'{r["readings_committed_per_s"]:,} | {r["cpu_process_pct"]} | {r["cpu_collector_threads_pct"]} | '
          f'{q(r["jitter_ms"]["p50"])} / {q(r["jitter_ms"]["p99"])} | '
          f'{q(r["poll_to_commit_ms"]["p50"])} / {q(r["poll_to_commit_ms"]["p99"])} | {q(r["request_ms"]["p99"])} | '
          f'{r["polls_late"]} / {r["polls_failed"]} | {r["load1"][0]:g} - {r["load1"][1]:g} | '
          f'{r["readings_polled_per_s"]:,} | {q2(r["cpu_us_per_polled_reading"])} / {q2(r["collector_us_per_polled_reading"])} |')
print()
print(f"`bash bench/collect.sh` at {commit}; raw figures:")
print()
print("```")
for r in rows:
    print(json.dumps(r))
print("```")
PY
