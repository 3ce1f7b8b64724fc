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
#   RESTART_MESSAGES  messages queued before the kill -9 restart (default 1000000)
#   OUT            report path              (default BENCHMARKS.md at the repo root)
#   ONLY           scenario ids to run, space-separated (default: all; "restart" for the restart one,
#                  "dashboard" for the dashboard's first paint, bench/dashboard.sh; issue 12's
#                  targets at the default configuration: "plant-default outage-default")
#   BROKER_CPU     core the brokers of the *-default scenarios are pinned to (default 0)
#   BENCH_CPU      core their load generator is pinned to (default 1; none on a 1-core machine)
#
# Every load is bounded in time and goes to 127.0.0.1 only. Each broker is
# started once per scenario set (the idle set and the durable sets: once per
# run, so each RSS baseline is a fresh process and each persistent subscriber
# meets an empty store) on a free port, and only the processes this script
# started are stopped, by PID. ferromq's store lives in the temp dir.
#
# The *-default scenarios (issue 12's targets) run both brokers with the
# configuration they ship with: a listener, anonymous access and (ferromq)
# the data directory, nothing else; the broker is pinned to one core
# (BROKER_CPU) and the load generator to another (BENCH_CPU).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERROMQ_BIN=${FERROMQ_BIN:-$ROOT/build/ferromq}
FERROMQ_BENCH=${FERROMQ_BENCH:-$ROOT/build/ferromq-bench}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
IDLE_CONNS=${IDLE_CONNS:-19000}
RESTART_MESSAGES=${RESTART_MESSAGES:-1000000}
BROKER_CPU=${BROKER_CPU:-0}
BENCH_CPU=${BENCH_CPU-$( (( $(nproc) > 1 )) && echo 1)}
OUT=${OUT:-$ROOT/BENCHMARKS.md}

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

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
	stop_pid "$pid" 50
	unset "PID[$name]"
	if [[ -n ${SCRAPER[$name]:-} ]]; then
		kill -TERM "${SCRAPER[$name]}" 2>/dev/null
		wait "${SCRAPER[$name]}" 2>/dev/null
		unset "SCRAPER[$name]"
	fi
	# The store of a finished run is not needed; its log is (see the end).
	[[ -n ${DIR[$name]:-} ]] && rm -rf "${DIR[$name]}/data"
}

cleanup() {
	for name in "${!PID[@]}"; do stop_broker "$name"; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# Both brokers and the bench need ~IDLE_CONNS descriptors each: raise the
# soft limit for this shell, which they all inherit.
raise_fd_limit
if (( IDLE_CONNS + 200 > limit )); then
	NOTES+=("The open-file limit is $limit, so the idle scenario uses $((limit - 200)) connections instead of $IDLE_CONNS.")
	say "${NOTES[-1]}"
	IDLE_CONNS=$(( limit - 200 ))
fi

# The extra lines of each ferromq variant; each variant is a column of its
# own in the report. `ferromq` is the default configuration (the store
# is on, durability full, but the classic scenarios' clean sessions never
# reach it).
declare -A FERROMQ_EXTRA=(
	[ferromq]=""
	[ferromq-full]=$'persistence true\ndurability full'
	[ferromq-normal]=$'persistence true\ndurability normal'
	[ferromq-nopersist]='persistence false'
	[ferromq-restart]=$'persistence true\ndurability full\nlog_type warning\nlog_type notice'
	[ferromq-scraped]=$'http_listener HTTP_PORT 127.0.0.1\nhttp_token_file DIR/http.token'
)
# The ferromq-scraped variant's scraper: GET /metrics once a second, as
# Prometheus would, for as long as the broker runs.
declare -A SCRAPER=()
start_scraper() { # name http_port token_file
	python3 - "$2" "$3" >"${DIR[$1]}/scraper.log" 2>&1 <<'PY' &
import http.client, os, sys, time
port, token_file = int(sys.argv[1]), sys.argv[2]
while not os.path.exists(token_file):
    time.sleep(0.05)
token = open(token_file).read().strip()
scrapes = 0
while True:
    t = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/metrics", headers={"Authorization": "Bearer " + token})
        r = c.getresponse()
        body = r.read()
        c.close()
        scrapes += 1
        print("scrape %d: %d, %d bytes" % (scrapes, r.status, len(body)), flush=True)
    except OSError as e:
        print("scrape failed: %s" % e, flush=True)
    time.sleep(max(0.0, 1.0 - (time.monotonic() - t)))
PY
	SCRAPER[$1]=$!
}

ferromq_conf() { # name port dir [http_port]
	printf 'listener %s 127.0.0.1\nmax_queued_messages 0\nmax_inflight_messages 1000\nlog_type error\npersistence_location %s/data\n' \
		"$2" "$3"
	local extra=${FERROMQ_EXTRA[$1]//HTTP_PORT/${4:-HTTP_PORT}}
	[[ -n $extra ]] && printf '%s\n' "${extra//DIR/$3}"
}

# The *-default brokers: what a new user writes, nothing more.
default_conf() { # name port dir
	if [[ $1 == ferromq* ]]; then
		printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence_location %s/data\n' "$2" "$3"
	else
		printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$2"
	fi
}

# pinned NAME: the command prefix that pins broker NAME (the *-default ones) to BROKER_CPU.
pinned() {
	[[ $1 == *-default ]] && command -v taskset >/dev/null && printf 'taskset\n-c\n%s\n' "$BROKER_CPU"
}

declare -A DIR=()
start_broker() { # name set -> 0 when listening
	local name=$1 dir=$tmp/$1-$2 port
	port=$(free_port)
	mkdir -p "$dir"
	DIR[$name]=$dir
	if [[ $name == ferromq* ]]; then
		local http_port
		http_port=$(free_port)
		if [[ $name == *-default ]]; then
			default_conf "$name" "$port" "$dir" >"$dir/broker.conf"
		else
			ferromq_conf "$name" "$port" "$dir" "$http_port" >"$dir/broker.conf"
		fi
		[[ -x $FERROMQ_BIN ]] || return 1
		local pin
		mapfile -t pin < <(pinned "$name")
		"${pin[@]}" "$FERROMQ_BIN" -c "$dir/broker.conf" >"$dir/log" 2>&1 &
	else
		if [[ $name == *-default ]]; then
			default_conf "$name" "$port" "$dir" >"$dir/broker.conf"
		else
			printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 1000\npersistence false\n' \
				"$port" >"$dir/broker.conf"
		fi
		local pin
		mapfile -t pin < <(pinned "$name")
		"${pin[@]}" "$MOSQUITTO" -c "$dir/broker.conf" >"$dir/log" 2>&1 &
	fi
	PID[$name]=$!
	PORT[$name]=$port
	for _ in $(seq 100); do
		kill -0 "${PID[$name]}" 2>/dev/null || break
		if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
			say "$name started: pid ${PID[$name]}, port $port"
			[[ $name == ferromq-scraped ]] && start_scraper "$name" "$http_port" "$dir/http.token"
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
		local bound pin=()
		bound=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { print int(d + w + 100) }')
		if [[ ${KIND[$sid]} == plant || ${KIND[$sid]} == outage ]]; then
			# The broker is sampled (RSS, CPU, store) once a second; the
			# run is bounded by its duration plus --drain without progress.
			args+=(--pid "$pid")
			[[ $name == ferromq* ]] && args+=(--store-dir "${DIR[$name]}/data")
			bound=300
			[[ -n $BENCH_CPU ]] && command -v taskset >/dev/null && pin=(taskset -c "$BENCH_CPU")
		fi
		say "$sid / $name (pid $pid) run $run: ${pin[*]:+${pin[*]} }ferromq-bench ${args[*]}"
		timeout -k 5 "$bound" "${pin[@]}" "$FERROMQ_BENCH" "${args[@]}" --port "$port" --json \
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

# scenario ID TITLE ARGS... : declared once, then run by run_set. Its
# brokers, the ratios its table shows (A/B pairs) and the kind of table are
# SBROKERS, RATIOS and KIND, set by with_brokers for the scenarios after it.
declare -A ARGS=() TITLE=() SBROKERS=() RATIOS=() KIND=()
ORDER=()
cur_brokers="ferromq mosquitto" cur_ratios="ferromq/mosquitto"
with_brokers() { cur_brokers=$1; cur_ratios=$2; }
scenario() {
	ORDER+=("$1"); TITLE[$1]=$2; ARGS[$1]="${*:3}"
	SBROKERS[$1]=$cur_brokers; RATIOS[$1]=$cur_ratios; KIND[$1]=${1%%-*}
}

common="--duration $DURATION --warmup $WARMUP --size 200"
scenario fanin-q0 "Fan-in 8 -> 1 on bench/#, QoS 0" fanin --pubs 8 --subs 1 --qos 0 $common
scenario fanin-q1 "Fan-in 8 -> 1 on bench/#, QoS 1" fanin --pubs 8 --subs 1 --qos 1 $common
scenario fanin-q2 "Fan-in 8 -> 1 on bench/#, QoS 2" fanin --pubs 8 --subs 1 --qos 2 $common
scenario fanout-q0 "Fan-out 1 -> 50, QoS 0" fanout --pubs 1 --subs 50 --qos 0 $common
scenario idle "Idle: $IDLE_CONNS connections, one subscription each" idle --conns "$IDLE_CONNS" --duration "$DURATION"
scenario latency-q0 "Latency at a steady 10,000 msg/s, QoS 0" latency --rate 10000 --qos 0 $common
scenario latency-q1 "Latency at a steady 10,000 msg/s, QoS 1" latency --rate 10000 --qos 1 $common
with_brokers "ferromq-full ferromq-normal ferromq-nopersist mosquitto" \
	"ferromq-full/mosquitto ferromq-full/ferromq-nopersist ferromq-normal/mosquitto"
scenario durable-q1 "Durable fan-in 8 -> 1 persistent subscriber, QoS 1" \
	fanin --pubs 8 --subs 1 --qos 1 --persistent $common
with_brokers "ferromq-full mosquitto" "ferromq-full/mosquitto"
scenario acklat-q1 "Publish-to-PUBACK latency at a steady 10,000 msg/s, QoS 1, persistent subscriber" \
	latency --rate 10000 --qos 1 --persistent $common
# The cost of metrics: the same fan-in with Prometheus scraping /metrics every second (target: <= 3 %).
with_brokers "ferromq ferromq-scraped" "ferromq-scraped/ferromq"
scenario fanin-q0-scraped "Fan-in 8 -> 1 on bench/#, QoS 0, with and without a /metrics scraper (1/s)" \
	fanin --pubs 8 --subs 1 --qos 0 $common
# Issue 12's targets, both brokers at the configuration they ship with.
# The large plant: 200 gateways x 200 tags once a second (40,000 QoS 1
# msg/s of 200 bytes) to plants/P/devices/D/tags/T, one persistent v5
# historian (clean start 0, session expiry) on plants/+/devices/+/#.
with_brokers "ferromq-default mosquitto-default" "ferromq-default/mosquitto-default"
scenario plant-default "Large plant at the default configuration: 200 gateways x 200 QoS 1 msg/s -> 1 persistent historian" \
	plant --profile large --protocol 5 --size 200 --duration "$DURATION" --warmup "$WARMUP" --drain 10
# The historian outage: the historian subscribes and leaves; 200 gateways x
# 90 msg/s send 360,000 QoS 1 messages of 200 bytes (18,000 msg/s, 20 s);
# the outage outlasts the run, so the historian comes back once the
# gateways have stopped, and drains.
scenario outage-default "Historian outage at the default configuration: 360,000 QoS 1 messages at 18,000 msg/s, then the drain" \
	plant --gateways 200 --tags 90 --protocol 5 --size 200 --messages 360000 --duration 21 --warmup 0 \
	--offline-after 0 --offline-for 21 --drain 10

: >"$tmp/results.tsv"
for sid in "${ORDER[@]}"; do
	printf '%s\t%s\tferromq-bench %s\t%s\t%s\t%s\n' "$sid" "${TITLE[$sid]}" "${ARGS[$sid]}" \
		"${SBROKERS[$sid]}" "${RATIOS[$sid]}" "${KIND[$sid]}"
done >"$tmp/scenarios.tsv"

# Runs each scenario of a set RUNS times per broker, alternating brokers
# (and which one goes first: the order rotates) from run to run. The
# scenarios of one set share their brokers.
run_set() { # fresh_per_run scenario...
	local fresh=$1 run name sid i
	shift
	if [[ -n ${ONLY:-} ]]; then
		local keep=()
		for sid in "$@"; do [[ " $ONLY " == *" $sid "* ]] && keep+=("$sid"); done
		(( ${#keep[@]} )) || return 0
		set -- "${keep[@]}"
	fi
	local brokers
	read -ra brokers <<<"${SBROKERS[$1]}"
	(( fresh )) || for name in "${brokers[@]}"; do start_broker "$name" "$1" || true; done
	for sid in "$@"; do
		for run in $(seq "$RUNS"); do
			local order=()
			for (( i = 0; i < ${#brokers[@]}; i++ )); do
				order+=("${brokers[(i + run - 1) % ${#brokers[@]}]}")
			done
			for name in "${order[@]}"; do
				(( fresh )) && { start_broker "$name" "$sid-$run" || true; }
				# shellcheck disable=SC2086
				run_one "$sid" "$name" "$run" ${ARGS[$sid]}
				(( fresh )) && stop_broker "$name"
			done
		done
	done
	for name in "${brokers[@]}"; do stop_broker "$name"; done
}

# kv KEY VALUE: one line of the restart scenario's record
kv() { printf '%s\t%s\n' "$1" "$2" >>"$tmp/restart.tsv"; }

# bench_json NAME BOUND ARGS...: runs ferromq-bench, records its JSON line
# and exit code as NAME_json / NAME_rc / NAME_err. Returns its exit code.
bench_json() {
	local key=$1 bound=$2 rc json err
	shift 2
	say "restart: ferromq-bench $*"
	timeout -k 5 "$bound" "$FERROMQ_BENCH" "$@" --json >"$tmp/out" 2>"$tmp/err"
	rc=$?
	json=$(grep '^{' "$tmp/out" | tail -1)
	err=$(grep -v '^$' "$tmp/err" | tail -1 | tr '\t' ' ')
	(( rc == 124 )) && err="timed out after ${bound}s"
	[[ -n $json ]] && say "  $json"
	(( rc != 0 )) && say "  failed (exit $rc): $err"
	kv "${key}_json" "${json:-null}"; kv "${key}_rc" "$rc"; kv "${key}_err" "$err"
	return "$rc"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# Restart with RESTART_MESSAGES queued: fill one offline session, kill -9,
# time the restart from exec to the first accepted connection, then drain.
# ferromq only: mosquitto with `persistence false` keeps nothing over a restart.
run_restart() {
	local name=ferromq-restart n=$RESTART_MESSAGES dir port pid bound t0 t1 line
	: >"$tmp/restart.tsv"
	kv messages "$n"
	start_broker "$name" once || { kv error "ferromq did not start"; failures=$((failures + 1)); return; }
	dir=${DIR[$name]} port=${PORT[$name]} pid=${PID[$name]}
	bound=$(( n / 1000 + 300 ))
	if ! bench_json fill "$bound" fill --subs 1 --messages "$n" --qos 1 --size 200 --port "$port"; then
		failures=$((failures + 1)); stop_broker "$name"; return
	fi
	kv rss_before_kill_kb "$(rss_kb "$pid")"
	say "restart: kill -KILL $pid"
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	unset "PID[$name]"
	kv store_kb "$(du -sk "$dir/data" | cut -f1)"
	kv store_files "$(cd "$dir/data" && ls -l | awk 'NR > 1 { printf "%s %s B; ", $9, $5 }')"
	cp "$dir/log" "$dir/log.before-kill"
	t0=$(date +%s%N)
	"$FERROMQ_BIN" -c "$dir/broker.conf" >"$dir/log" 2>&1 &
	pid=$!
	PID[$name]=$pid
	t1=""
	for _ in $(seq 60000); do # 10 ms apart: at most ~10 min
		kill -0 "$pid" 2>/dev/null || break
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then t1=$(date +%s%N); break; fi
		sleep 0.01
	done
	kv restart_pid "$pid"
	if [[ -z $t1 ]]; then
		kv error "ferromq did not accept connections after the restart: $(tail -1 "$dir/log")"
		failures=$((failures + 1)); stop_broker "$name"; return
	fi
	kv restart_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
	kv rss_after_restart_kb "$(rss_kb "$pid")"
	line=$(grep -m1 'recovered .* in [0-9.]* s' "$dir/log")
	line=${line#* notice: }
	kv recovered_line "${line//$dir/DIR}"
	kv recovered_s "$(sed -n 's/.*recovered .* in \([0-9.]*\) s.*/\1/p' <<<"$line")"
	say "restart: listening after $(grep restart_s "$tmp/restart.tsv" | cut -f2) s; $line"
	bench_json drain "$bound" drain --subs 1 --messages "$n" --port "$port" || failures=$((failures + 1))
	kv rss_after_drain_kb "$(rss_kb "$pid")"
	stop_broker "$name"
}

# What one small write + fdatasync costs where the stores live: the floor
# under every acknowledgement ferromq sends with `durability full`.
fsync_us=$(python3 - "$tmp" <<'PY'
import os, statistics, sys, time
fd = os.open(os.path.join(sys.argv[1], "fsync-probe"), os.O_WRONLY | os.O_CREAT, 0o600)
t = []
for i in range(200):
    os.pwrite(fd, b"x" * 4096, (i % 16) * 4096)
    a = time.perf_counter(); os.fdatasync(fd); t.append((time.perf_counter() - a) * 1e6)
os.close(fd)
t.sort()
print(f"p50 {statistics.median(t):.0f} us, p99 {t[int(len(t) * 0.99) - 1]:.0f} us")
PY
)
rm -f "$tmp/fsync-probe"
say "fdatasync of a 4 KiB write in $tmp: $fsync_us"

# The commit is taken before the runs: the tree may move while they go. It is
# the commit of the tree the ferromq binary was built in (a build directory
# inside a work tree, e.g. a `git worktree` of main), else of this script's.
src_root=$(git -C "$(dirname "$FERROMQ_BIN")" rev-parse --show-toplevel 2>/dev/null || echo "$ROOT")
commit=$(git -C "$src_root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ $src_root != "$ROOT" ]] && commit="$commit (the tree of $FERROMQ_BIN)"
# Read-only check (no index refresh): were the sources edited since the commit?
dirty=$(git -C "$src_root" diff-index --name-only HEAD -- src tools CMakeLists.txt 2>/dev/null | cut -d/ -f1 | sort -u | paste -sd, -)
[[ -n $dirty ]] && commit="$commit (with uncommitted changes in: $dirty)"
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
run_set 0 fanin-q0 fanin-q1 fanin-q2
run_set 0 fanout-q0
run_set 1 idle
run_set 0 latency-q0 latency-q1
run_set 1 durable-q1
run_set 1 acklat-q1
run_set 0 fanin-q0-scraped
run_set 1 plant-default
run_set 1 outage-default
[[ -z ${ONLY:-} || " $ONLY " == *" restart "* ]] && run_restart
if [[ -z ${ONLY:-} || " $ONLY " == *" dashboard "* ]]; then
	say "dashboard: bench/dashboard.sh"
	FERROMQ_BIN=$FERROMQ_BIN bash "$ROOT/bench/dashboard.sh" >"$tmp/dashboard.txt" 2>&1 ||
		{ say "dashboard failed: $(tail -1 "$tmp/dashboard.txt")"; failures=$((failures + 1)); }
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
# Anything ferromq logged at error or warning level, over every run.
grep -h -E '^[^ ]+ (error|warning): ' "$tmp"/ferromq*/log "$tmp"/ferromq*/log.before-kill 2>/dev/null \
	| cut -d' ' -f2- | sort | uniq -c | sort -rn | head -20 >"$tmp/broker-warnings.txt"

machine_cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mosq_version=$( ("$MOSQUITTO" -h 2>&1 || true) | grep -m1 -o 'version [0-9.]*')
mosq_deb=$(dpkg-query -W -f '${Version}' mosquitto 2>/dev/null || true)
mosq_version="${mosq_version:-version unknown}${mosq_deb:+ (Debian package $mosq_deb)}"
printf '%s\n' "${NOTES[@]+"${NOTES[@]}"}" >"$tmp/notes.txt"

M_NPROC=$(nproc) M_CPU=$machine_cpu M_KERNEL=$(uname -srm) M_MOSQ=$mosq_version M_DATE=$started \
M_COMMIT=$commit M_RUNS=$RUNS M_DURATION=$DURATION M_WARMUP=$WARMUP M_MOSQ_BIN=$MOSQUITTO \
M_LOAD_BEFORE=$load_before M_LOAD_AFTER=$load_after M_FSYNC=$fsync_us M_FERROMQ_BASE="$(ferromq_conf ferromq PORT DIR)" \
M_ONLY=${ONLY:-} M_BROKER_CPU=$BROKER_CPU M_BENCH_CPU=${BENCH_CPU:-none} \
M_FERROMQ_DEFAULT="$(default_conf ferromq-default PORT DIR)" M_MOSQ_DEFAULT="$(default_conf mosquitto-default PORT DIR)" \
M_FERROMQ_VARIANTS="$(for v in ferromq-full ferromq-normal ferromq-nopersist ferromq-restart ferromq-scraped; do
	printf '%s\t%s\n' "$v" "${FERROMQ_EXTRA[$v]//$'\n'/\\n}"; done)" \
python3 - "$tmp/results.tsv" "$tmp/scenarios.tsv" "$tmp/notes.txt" "$OUT" "$tmp/restart.tsv" \
	"$tmp/broker-warnings.txt" "$tmp/dashboard.txt" <<'PY'

import json, os, statistics, sys
results, scenarios, notes, out, restart, warnings, dashboard = sys.argv[1:8]
machine = {k: os.environ["M_" + k.upper()] for k in
           ("nproc", "cpu", "kernel", "mosq", "date", "commit", "runs", "duration", "warmup", "mosq_bin",
            "load_before", "load_after", "fsync", "ferromq_base", "ferromq_variants", "only",
            "broker_cpu", "bench_cpu", "ferromq_default", "mosq_default")}
rows = [l.rstrip("\n").split("\t") for l in open(results) if l.strip()]
scen = [l.rstrip("\n").split("\t") for l in open(scenarios) if l.strip()]
only = machine["only"].split()
if only:  # a partial run reports only what it ran
    scen = [sc for sc in scen if sc[0] in only]
notes = [l.strip() for l in open(notes) if l.strip()]
rs = dict(l.rstrip("\n").split("\t", 1) for l in open(restart) if "\t" in l) if os.path.exists(restart) else {}
ran_restart = not only or "restart" in only
warn = [l.rstrip() for l in open(warnings) if l.strip()] if os.path.exists(warnings) else []
variants = dict(l.split("\t", 1) for l in machine["ferromq_variants"].splitlines() if "\t" in l)

LABEL = {"ferromq": "ferromq", "mosquitto": "mosquitto", "ferromq-full": "ferromq full",
         "ferromq-normal": "ferromq normal", "ferromq-nopersist": "ferromq persistence false",
         "ferromq-scraped": "ferromq, /metrics scraped 1/s",
         "ferromq-default": "ferromq defaults", "mosquitto-default": "mosquitto defaults"}

# (label, getter, higher_is_better) per kind of scenario
def lat(k): return lambda j: j["lat_us"][k]
def ack(k): return lambda j: j.get(f"ack_{k}_us") if j.get("ack_n") else None
METRICS = {
    "fanin": [("delivered msg/s", lambda j: j["delivered_per_s"], True),
              ("published msg/s", lambda j: j["published_per_s"], True),
              ("lost", lambda j: j["lost"], False), ("dup", lambda j: j["dup"], False),
              ("p50 us", lat("p50"), False), ("p99 us", lat("p99"), False),
              ("ack p50 us", ack("p50"), False), ("ack p99 us", ack("p99"), False)],
    "idle": [("established", lambda j: j["established"], True),
             ("RSS bytes/conn", lambda j: j["rss_per_conn_bytes"], False),
             ("RSS after kB", lambda j: j["rss_after_kb"], False),
             ("connect s", lambda j: j["connect_seconds"], False)],
    "latency": [("p50 us", lat("p50"), False), ("p99 us", lat("p99"), False),
                ("p999 us", lat("p999"), False), ("ack p50 us", ack("p50"), False),
                ("ack p99 us", ack("p99"), False), ("delivered msg/s", lambda j: j["delivered_per_s"], True),
                ("lost", lambda j: j["lost"], False)],
    "durable": [("delivered msg/s", lambda j: j["delivered_per_s"], True),
                ("published msg/s", lambda j: j["published_per_s"], True),
                ("ack p50 us", ack("p50"), False), ("ack p99 us", ack("p99"), False),
                ("ack p999 us", ack("p999"), False),
                ("p50 us", lat("p50"), False), ("p99 us", lat("p99"), False),
                ("lost", lambda j: j["lost"], False), ("dup", lambda j: j["dup"], False)],
    "acklat": [("ack p50 us", ack("p50"), False), ("ack p99 us", ack("p99"), False),
               ("ack p999 us", ack("p999"), False), ("ack max us", ack("max"), False),
               ("p50 us", lat("p50"), False), ("p99 us", lat("p99"), False),
               ("p999 us", lat("p999"), False), ("delivered msg/s", lambda j: j["delivered_per_s"], True),
               ("lost", lambda j: j["lost"], False)],
}
METRICS["fanout"] = [("deliveries/s", lambda j: j["delivered_per_s"], True)] + METRICS["fanin"][1:6]
def brk(k, div=1): return lambda j: j["broker"][k] / div if j.get("broker", {}).get("pid") else None
def outg(k, div=1): return lambda j: j["outage"][k] / div if "outage" in j else None
def store_mb(f): return lambda j: (lambda v: v / 1e6 if v else None)(f(j))
METRICS["plant"] = [
    ("acknowledged", lambda j: j["acked"], True),
    ("lost", lambda j: j["lost"], False),
    ("delivered msg/s", lambda j: j["delivered_per_s"], True),
    ("delivered % of target", lambda j: 100.0 * j["delivered_per_s"] / j["target_per_s"], True),
    ("p50 us", lambda j: j["lat_us"]["p50"], False), ("p99 us", lambda j: j["lat_us"]["p99"], False),
    ("ack p99 us", lambda j: j["ack_us"]["p99"], False),
    ("RSS max MB", lambda j: j["broker"]["rss_max_kb"] / 1024, False),
    ("broker CPU %", brk("cpu_mean_pct"), False),
    ("store max MB", store_mb(lambda j: j["broker"]["store_max_bytes"]), False),
]
METRICS["outage"] = [
    ("acknowledged", lambda j: j["acked"], True),
    ("lost", lambda j: j["lost"], False),
    ("queued in the outage", outg("messages"), True),
    ("drained after the return", outg("backlog_delivered"), True),
    ("drain msg/s", outg("drain_per_s"), True),
    ("drain s", outg("drain_seconds"), False),
    ("ack p99 us", lambda j: j["ack_us"]["p99"], False),
    ("RSS at reconnect MB", outg("rss_after_kb", 1024), False),
    ("RSS max MB", lambda j: j["broker"]["rss_max_kb"] / 1024, False),
    ("store at reconnect MB", store_mb(outg("store_after_bytes")), False),
]
EXPLAIN = {
    "plant": "acknowledged: PUBACKs the gateways got; lost: acknowledged messages the historian never "
             "received (counted per gateway sequence number after a drain of up to 10 s without progress); "
             "delivered msg/s: received by the historian within the measured window, and its share of the "
             "40,000 msg/s target; p50/p99: publish to delivery at the historian; RSS and CPU: the broker, "
             "sampled once a second; store: `du` of its persistence_location.",
    "outage": "The historian subscribes, leaves (its session kept), and comes back once the gateways have "
              "sent and had acknowledged their 360,000 messages. acknowledged: PUBACKs; lost: acknowledged "
              "and never received by the historian; queued in the outage: acknowledged while it was away; "
              "drain: messages sent before its return / seconds from its reconnect to the last of them; "
              "RSS and store at the reconnect, i.e. with the whole backlog queued. The drain ratio is n/c "
              "(not comparable) when the two brokers did not keep the same backlog.",
}
# Issue 12's targets (this 2-core machine, default configuration), per metric.
TARGETS = {
    "plant": {"lost": ("0", lambda v: v == 0), "delivered % of target": (">= 97", lambda v: v >= 97),
              "p99 us": ("<= 10,000", lambda v: v <= 10000), "RSS max MB": ("<= 64", lambda v: v <= 64)},
    "outage": {"lost": ("0", lambda v: v == 0), "drain msg/s": (">= 100,000", lambda v: v >= 100000)},
}

def fmt(v):
    if v is None: return "-"
    if isinstance(v, float) and not v.is_integer(): return f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{int(v):,}"

def conf(name):
    base = machine["ferromq_base"].rstrip("\n")
    extra = variants.get(name, "").replace("\\n", "\n")
    return base + ("\n" + extra if extra else "")

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
o.append(f"- load average (1, 5, 15 min) before the runs: {machine['load_before']}; after: {machine['load_after']}.")
o.append(f"- disk under the stores (the run's temp dir): a 4 KiB write + fdatasync takes {machine['fsync']} "
         "(200 tries before the runs).")
o.append("- Load generator and brokers share the machine over loopback; the generator runs one thread.\n")
for n in notes: o.append(f"**Note:** {n}\n")
o.append("## Broker configurations\n")
o.append("ferromq (`ferromq -c FILE`; `DIR` is a fresh directory under the run's temp dir):\n\n```\n"
         + conf("ferromq") + "\n```\n")
o.append("Without `persistence` and `durability` lines ferromq runs with its defaults, `persistence true` "
         "and `durability full`; the clean sessions of the classic scenarios never reach the store. "
         "The durable scenarios add one of:\n")
for v, what in (("ferromq-full", "ferromq full"), ("ferromq-normal", "ferromq normal"),
                ("ferromq-nopersist", "ferromq persistence false"), ("ferromq-restart", "restart scenario"),
                ("ferromq-scraped", "ferromq, /metrics scraped 1/s (HTTP_PORT: a free port)")):
    o.append(f"- {what}: `" + variants.get(v, "").replace("\\n", "`, `") + "`")
o.append("")
o.append("mosquitto (`mosquitto -c FILE`):\n\n```\nlistener PORT 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 1000\npersistence false\n```\n")
o.append("mosquitto keeps its default `set_tcp_nodelay false`, so its writes go through Nagle's "
         "algorithm: on loopback, where delayed ACKs meet a 64 KiB MSS, a lightly loaded QoS 0 stream "
         "is sent in bursts tens of milliseconds apart, which dominates its QoS 0 latency below. "
         "With `set_tcp_nodelay true` its latency drops to the ferromq range but its fan-in "
         "throughput falls (fewer, smaller writes are coalesced).\n")
o.append("mosquitto's `persistence false` means it writes nothing per message: its persistent sessions "
         "and their queues live in memory only and are lost on any restart. So in the durable "
         "scenarios it is the reference for the cost of the protocol work, not of durability.\n")
o.append("Both run under `ulimit -n` 20000 (or the hard limit). Each is started fresh per scenario set "
         "(fan-in, fan-out, latency) and per run for idle and the durable scenarios, so the RSS "
         "baseline is a fresh process and each persistent subscriber meets an empty store.\n")
if any(sc[5] in ("plant", "outage") for sc in scen):
    o.append("The `*-default` scenarios (issue 12's targets) run each broker at the configuration it ships "
             "with, pinned to one core (`taskset -c " + machine["broker_cpu"] + "`; the load generator: "
             + ("`taskset -c " + machine["bench_cpu"] + "`" if machine["bench_cpu"] != "none" else "not pinned")
             + "), started fresh for every run. ferromq defaults:\n\n```\n" + machine["ferromq_default"].rstrip("\n")
             + "\n```\n\nmosquitto defaults (its `max_queued_messages 1000`, `max_inflight_messages 20`, "
             "`persistence false`):\n\n```\n" + machine["mosq_default"].rstrip("\n") + "\n```\n")
o.append("## Commands\n")
o.append("`PORT` is the broker's port; every run adds `--port PORT --json` (and `--pid PID` for idle, "
         "`--pid PID` and, for ferromq, `--store-dir DIR/data` for the plant and outage scenarios).\n")
o.append("```")
for sc in scen: o.append(f"{sc[2]}    # {sc[0]}")
o.append("```\n")
o.append("`ack` figures are publish-to-acknowledgement latency at the publisher: from writing a PUBLISH "
         "to reading its PUBACK (QoS 1) or PUBREC (QoS 2). With a persistent subscriber this includes "
         "ferromq's commit to disk (and its fsync under `durability full`); the plain `p50`/`p99` "
         "figures are publish-to-delivery at the subscriber.\n")

def same_backlog(da, dc):
    ba = median_of(da, outg("backlog_delivered"))
    bc = median_of(dc, outg("backlog_delivered"))
    return bool(ba and bc) and abs(ba - bc) <= 0.01 * max(ba, bc)

def median_of(data, get):
    vals = [v for v in (get(j) for j in data) if v is not None]
    return statistics.median(vals) if vals else None

for sid, title, cmd, brokers, ratios, kind in scen:
    brokers = brokers.split()
    ratios = [r.split("/") for r in ratios.split()]
    o.append(f"## {title}\n")
    o.append(f"`{cmd}`\n")
    if kind in EXPLAIN:
        o.append(EXPLAIN[kind] + "\n")
    runs = {b: [r for r in rows if r[0] == sid and r[1] == b] for b in brokers}
    data = {b: [json.loads(r[5]) for r in runs[b] if r[5] != "null"] for b in brokers}
    head = [f"{LABEL.get(b, b)} (median)" for b in brokers] + \
           [f"{LABEL.get(a, a)} / {LABEL.get(c, c)}" for a, c in ratios]
    targets = TARGETS.get(kind, {})
    if targets:
        head.append(f"issue 12 target ({LABEL.get(brokers[0], brokers[0])})")
    o.append("| metric | " + " | ".join(head) + " |")
    o.append("| --- |" + " ---: |" * len(head))
    for label, get, _ in METRICS[kind]:
        med = {b: median_of(data[b], get) for b in brokers}
        cells = [fmt(med[b]) for b in brokers]
        for a, c in ratios:
            if kind == "outage" and label.startswith("drain") and not same_backlog(data[a], data[c]):
                cells.append("n/c")  # a drain of 1,000 is no yardstick for one of 360,000
                continue
            cells.append(f"{med[a] / med[c]:.2f}" if med.get(a) is not None and med.get(c) else "-")
        if targets:
            t = targets.get(label)
            v = med[brokers[0]]
            cells.append("" if not t else f"{t[0]}: " + ("-" if v is None else "met" if t[1](v) else "**missed**"))
        o.append(f"| {label} | " + " | ".join(cells) + " |")
    o.append("")
    o.append("All runs:\n")
    o.append("| broker | pid | run | exit | " + " | ".join(m[0] for m in METRICS[kind]) + " |")
    o.append("| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in METRICS[kind]) + " |")
    for b in brokers:
        for r in runs[b]:
            if r[5] != "null":
                j = json.loads(r[5])
                cells = [fmt(get(j)) for _, get, _ in METRICS[kind]]
            else:
                cells = ["-"] * len(METRICS[kind])
            o.append(f"| {LABEL.get(b, b)} | {r[3]} | {r[2]} | {r[4]} | " + " | ".join(cells) + " |")
            if r[4] != "0" and len(r) > 6 and r[6]:
                o.append(f"| | | | | {r[6].replace('|', '/')} |" + " |" * (len(METRICS[kind]) - 1))
    o.append("")

def jget(key):
    try: return json.loads(rs.get(key, "null"))
    except ValueError: return None
n = int(rs.get("messages", "0") or 0)
restart_at = len(o)  # the restart section, dropped below when it did not run
o.append(f"## Restart with {n:,} queued 200-byte messages (ferromq, durability full)\n")
o.append("One offline persistent session gets the messages (QoS 1, every PUBACK waited for), the broker "
         "is killed with SIGKILL, started again on the same store, and the session drains. Run once. "
         "mosquitto is not measured: with `persistence false` it keeps nothing over a restart (with "
         "`persistence true` it would save only at its autosave interval or on a clean shutdown, "
         "so a SIGKILL loses the messages since the last save).\n")
o.append("```")
o.append(f"ferromq -c FILE                      # the restart configuration above, on an empty DIR")
o.append(f"ferromq-bench fill --subs 1 --messages {n} --qos 1 --size 200 --port PORT --json")
o.append("kill -KILL PID")
o.append("ferromq -c FILE                      # timed from exec until a TCP connect to PORT succeeds (polled every 10 ms)")
o.append(f"ferromq-bench drain --subs 1 --messages {n} --port PORT --json")
o.append("```\n")
fill, drain = jget("fill_json"), jget("drain_json")
def num(k):
    v = rs.get(k)
    try: return float(v)
    except (TypeError, ValueError): return None
if "error" in rs:
    o.append(f"**Failed:** {rs['error']}\n")
o.append("| metric | value |")
o.append("| --- | ---: |")
o.append(f"| fill: messages acknowledged | {fmt(fill['sent_total'] - fill['rejected']) if fill else '-'} |")
o.append(f"| fill: msg/s | {fmt(fill['published_per_s']) if fill else '-'} |")
o.append(f"| fill: seconds | {fill['seconds']:.2f} |" if fill else "| fill: seconds | - |")
o.append(f"| fill: ack p50 / p99 / p999 us | {fill['ack_p50_us']:,} / {fill['ack_p99_us']:,} / {fill['ack_p999_us']:,} |"
         if fill else "| fill: ack p50 / p99 / p999 us | - |")
o.append(f"| broker RSS before the kill, kB | {fmt(num('rss_before_kill_kb'))} |")
o.append(f"| store on disk after the kill (du -sk DIR/data), kB | {fmt(num('store_kb'))} |")
o.append(f"| restart: exec to accepting connections, s | {rs.get('restart_s', '-')} |")
o.append(f"| restart: recovery as logged, s | {rs.get('recovered_s') or '-'} |")
o.append(f"| broker RSS after the restart (VmRSS), kB | {fmt(num('rss_after_restart_kb'))} |")
o.append(f"| drain: messages received (distinct) | {fmt(drain['unique_total']) if drain else '-'} of {n:,} |")
o.append(f"| drain: lost / dup | {fmt(drain['lost'])} / {fmt(drain['dup'])} |" if drain else "| drain: lost / dup | - |")
o.append(f"| drain: msg/s (first connect to last message) | {fmt(drain['delivered_per_s']) if drain else '-'} |")
o.append(f"| drain: seconds | {drain['seconds']:.2f} |" if drain else "| drain: seconds | - |")
o.append(f"| broker RSS after the drain, kB | {fmt(num('rss_after_drain_kb'))} |")
o.append("")
if rs.get("recovered_line"): o.append(f"Broker log after the restart: `{rs['recovered_line']}`\n")
if rs.get("store_files"): o.append(f"Store files after the kill: {rs['store_files'].strip().rstrip(';')}.\n")
for k in ("fill", "drain"):
    if rs.get(f"{k}_rc", "0") != "0":
        o.append(f"**{k} exited {rs[f'{k}_rc']}:** {rs.get(f'{k}_err', '')}\n")
if not ran_restart:
    del o[restart_at:]
if os.path.exists(dashboard):
    loads = [l.strip() for l in open(dashboard) if "first-contentful-paint" in l]
    o.append("## Dashboard first paint\n")
    o.append("`bash bench/dashboard.sh`: ferromq with an HTTP listener; each load a fresh headless Chromium "
             "context (no cache, no cookie): `/?token=...`, the redirect, the page, its assets and the first "
             "`/api/status`. Target: under 1 s on loopback.\n\n```")
    o += loads or ["no result: " + (open(dashboard).read().strip().splitlines() or ["(empty)"])[-1]]
    o.append("```\n")
o.append("## ferromq log: errors and warnings\n")
if warn:
    o.append("Over every ferromq run above (count, then message):\n\n```")
    o += warn
    o.append("```\n")
else:
    o.append("None.\n")
open(out, "w").write("\n".join(o) + "\n")
PY
[[ $? -eq 0 ]] || die "writing $OUT failed"
say "wrote $OUT"
if (( failures )); then
	say "$failures run(s) failed; see $OUT"
	exit 1
fi
