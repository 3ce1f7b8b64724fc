#!/usr/bin/env bash
# The durable path's cost (issue 13): the same broker with `durability full`
# and with `persistence false`, and optionally an earlier build (BASE_BIN,
# durability full), in alternating runs:
#   fanin   8 publishers -> 1 persistent subscriber, QoS 1, 200 bytes, as fast
#           as they go (delivered msg/s)
#   plant   200 gateways x 200 QoS 1 msg/s -> 1 persistent v5 historian
#           (broker CPU, end-to-end p99, loss, delivered msg/s: below 40,000
#           the bench was starved, and the run's CPU figure means little)
# Each broker is pinned to core BROKER_CPU (default 0), the bench to the
# other one. Prints one line per run and the medians.
#   FERROMQ_BIN FERROMQ_BENCH  the binaries (default build/)
#   BASE_BIN                   an earlier ferromq to compare with (optional)
#   MOSQUITTO                  Debian's mosquitto, as bench/run.sh configures it (optional:
#                              /usr/sbin/mosquitto)
#   RUNS (3)  DURATION (8)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
BIN=${FERROMQ_BIN:-build/ferromq}
BENCH=${FERROMQ_BENCH:-build/ferromq-bench}
RUNS=${RUNS:-3}
DURATION=${DURATION:-8}
CPU=${BROKER_CPU:-0}
OTHER=$(( CPU == 0 ? 1 : 0 ))
[[ -x $BIN && -x $BENCH ]] || die "build first (make build)"
raise_fd_limit
tmp=$(mktemp -d)
pid=""
trap 'stop_pid "$pid"; rm -rf "$tmp"' EXIT

# start NAME BIN PERSISTENCE: a broker with its own data directory; sets pid, port.
start() {
	port=$(free_port)
	rm -rf "$tmp/$1" && mkdir -p "$tmp/$1"
	if [[ $1 == mosquitto ]]; then
		# bench/run.sh's mosquitto: it writes nothing per message.
		printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 1000\npersistence false\n' \
			"$port" >"$tmp/$1.conf"
	else
		printf 'listener %s 127.0.0.1\npersistence %s\npersistence_location %s\ndurability full\n' \
			"$port" "$3" "$tmp/$1" >"$tmp/$1.conf"
	fi
	taskset -c "$CPU" "$2" -c "$tmp/$1.conf" >"$tmp/$1.log" 2>&1 &
	pid=$!
	wait_port "$port" || die "$1 did not start: $(tail -3 "$tmp/$1.log")"
}

brokers=("full $BIN true" "nopersist $BIN false")
[[ -n ${BASE_BIN:-} ]] && brokers+=("base-full $BASE_BIN true")
[[ -n ${MOSQUITTO:-} ]] && brokers+=("mosquitto $MOSQUITTO -")
: >"$tmp/results"
for run in $(seq "$RUNS"); do
	for b in "${brokers[@]}"; do
		read -r name bin persist <<<"$b"
		start "$name" "$bin" "$persist"
		rate=$(taskset -c "$OTHER" "$BENCH" fanin --port "$port" --pubs 8 --subs 1 --qos 1 --persistent \
			--duration "$DURATION" --warmup 2 --size 200 --json | tail -1 | fanin_figures)
		stop_pid "$pid"
		start "$name" "$bin" "$persist"
		plant=$(taskset -c "$OTHER" "$BENCH" plant --port "$port" --profile large --protocol 5 --size 200 \
			--duration "$DURATION" --warmup 3 --drain 5 --pid "$pid" --store-dir "$tmp/$name" 2>&1 | tail -2 |
			plant_figures)
		stop_pid "$pid"
		pid=""
		read -r fanin fanin_lost <<<"$rate"
		read -r cpu p99 plant_lost plant_rate <<<"$plant"
		# A plant run that did not reach its 40,000 msg/s measured a bench
		# starved of its core (a busy machine), not the broker's cost.
		echo "run $run $name: fanin $fanin msg/s (lost $fanin_lost); plant CPU $cpu %, p99 $p99 us, lost $plant_lost, delivered $plant_rate msg/s"
		echo "$name $fanin $cpu $p99 $fanin_lost $plant_lost $plant_rate" >>"$tmp/results"
	done
done
python3 - "$tmp/results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, fanin, cpu, p99, l1, l2, rate = line.split()
    rows.setdefault(name, []).append((int(fanin), float(cpu), int(p99), int(l1) + int(l2), int(rate)))
med = {n: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v),
           statistics.median(r[2] for r in v), sum(r[3] for r in v), statistics.median(r[4] for r in v))
       for n, v in rows.items()}
for n, (f, c, p, lost, rate) in med.items():
    print("median %-10s fanin %8d msg/s   plant CPU %5.1f %%  p99 %6d us  lost %d  plant delivered %d msg/s" % (
        n, f, c, p, lost, rate))
print("fanin full/nopersist %.2f" % (med["full"][0] / med["nopersist"][0]))
if "mosquitto" in med:
    print("fanin full/mosquitto %.2f   plant CPU full %.1f %% vs mosquitto %.1f %%" % (
        med["full"][0] / med["mosquitto"][0], med["full"][1], med["mosquitto"][1]))
if "base-full" in med:
    print("fanin full/base-full %.2f   plant CPU full %.1f %% vs base-full %.1f %%" % (
        med["full"][0] / med["base-full"][0], med["full"][1], med["base-full"][1]))
EOF
