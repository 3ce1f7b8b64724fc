#!/usr/bin/env bash
# What replication costs (issue 14): the same scenarios against one broker
# (`durability full`) and against the leader of a 3-node cluster on this
# machine (every node's log on the same disk), in alternating runs:
#   fanin   8 publishers -> 1 persistent subscriber, QoS 1, 200 bytes, as fast
#           as they go (delivered msg/s); each publisher has at most 64 in
#           flight, so 512 in all: bound by the commit's round trip
#   fanin32 the same with 32 publishers (2,048 in flight): closer to what
#           each can take; "capacity" is the better of the two per broker
#   plant   200 gateways x 200 QoS 1 msg/s -> 1 persistent v5 historian
#           (the leader's CPU, end-to-end p99, loss)
# Nothing is pinned by default: the three nodes and the bench share the two
# cores as the scheduler sees fit (pinning the leader to one core puts both
# followers and the bench on the other, and a commit then waits for a
# follower behind the bench). With PIN=1 the single broker and the leader
# (node 1) are pinned to core BROKER_CPU (default 0), the followers and the
# bench to the other one. Prints one line per run and the medians.
# BACKLOG=N adds one run of the large-queue case: N QoS 1 messages of 200
# bytes queued for one offline session of the cluster (ferromq-bench fill):
# the fill rate, the leader's database size, the snapshots on disk and how
# often node 1 lost its leadership meanwhile (snapshots copy the database).
#   FERROMQ_BIN FERROMQ_BENCH  the binaries (default build/)
#   RUNS (3)  DURATION (8)  PIN (0)  BACKLOG (0: not run)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
BIN=${FERROMQ_BIN:-build/ferromq}
BENCH=${FERROMQ_BENCH:-build/ferromq-bench}
RUNS=${RUNS:-3}
DURATION=${DURATION:-8}
CPU=${BROKER_CPU:-0}
OTHER=$(( CPU == 0 ? 1 : 0 ))
# $(pin CORE) before a command: pins it to CORE when PIN=1 (a command, not
# a function, so that $! is the broker's own PID).
pin() {
	[[ ${PIN:-0} == 1 ]] && echo "taskset -c $1" || true
}
[[ -x $BIN && -x $BENCH ]] || die "build first (make build)"
raise_fd_limit
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do stop_pid "$p"; done; rm -rf "$tmp"' EXIT

# single: one broker; sets pid, port, dir.
single() {
	port=$(free_port)
	dir=$tmp/single
	rm -rf "$dir" && mkdir -p "$dir"
	printf 'listener %s 127.0.0.1\npersistence_location %s\ndurability full\n' "$port" "$dir" >"$tmp/single.conf"
	$(pin "$CPU") "$BIN" -c "$tmp/single.conf" >"$tmp/single.log" 2>&1 &
	pid=$!
	pids=("$pid")
	wait_port "$port" || die "nothing listens on $port: $(tail -3 "$tmp/single.log")"
}

# cluster: three nodes, node 1 made the leader (the others wait longer
# before they stand); sets pid, port, dir of the leader.
cluster() {
	local mqtt=() raft=() i j
	for i in 1 2 3; do mqtt[i]=$(free_port); raft[i]=$(free_port); done
	pids=()
	for i in 1 2 3; do
		rm -rf "$tmp/n$i" && mkdir -p "$tmp/n$i"
		{
			printf 'listener %s 127.0.0.1\npersistence_location %s\ndurability full\n' "${mqtt[i]}" "$tmp/n$i"
			printf 'cluster_node_id %s\ncluster_listener %s 127.0.0.1\n' "$i" "${raft[i]}"
			[[ $i == 1 ]] || printf 'cluster_election_timeout 3000\ncluster_heartbeat 100\n'
			for j in 1 2 3; do [[ $i == "$j" ]] || printf 'cluster_peer %s 127.0.0.1:%s\n' "$j" "${raft[j]}"; done
		} >"$tmp/n$i.conf"
		$(pin "$([[ $i == 1 ]] && echo "$CPU" || echo "$OTHER")") "$BIN" -c "$tmp/n$i.conf" >"$tmp/n$i.log" 2>&1 &
		pids+=("$!")
	done
	pid=${pids[0]}
	port=${mqtt[1]}
	dir=$tmp/n1
	for _ in $(seq 100); do
		grep -q "ready:" "$tmp/n1.log" && return 0
		sleep 0.1
	done
	die "node 1 did not lead: $(tail -3 "$tmp/n1.log")"
}

stop_all() {
	for p in "${pids[@]}"; do stop_pid "$p"; done
	pids=()
}

: >"$tmp/results"
for run in $(seq "$RUNS"); do
	for name in single cluster; do
		"$name"
		rate=$($(pin "$OTHER") "$BENCH" fanin --port "$port" --pubs 8 --subs 1 --qos 1 --persistent \
			--duration "$DURATION" --warmup 2 --size 200 --json | tail -1 | fanin_figures)
		stop_all
		"$name"
		rate32=$($(pin "$OTHER") "$BENCH" fanin --port "$port" --pubs 32 --subs 1 --qos 1 --persistent \
			--duration "$DURATION" --warmup 2 --size 200 --json | tail -1 | fanin_figures)
		stop_all
		"$name"
		$(pin "$OTHER") "$BENCH" plant --port "$port" --profile large --protocol 5 --size 200 \
			--duration "$DURATION" --warmup 3 --drain 5 --pid "$pid" --store-dir "$dir" >"$tmp/plant.out" 2>&1 ||
			die "plant on $name: $(tail -3 "$tmp/plant.out")"
		plant=$(tail -2 "$tmp/plant.out" | plant_figures)
		stop_all
		"$name"
		ack=$($(pin "$OTHER") "$BENCH" latency --port "$port" --rate 10000 --qos 1 --persistent --duration "$DURATION" \
			--warmup 2 --size 200 --json | tail -1 |
			python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d["ack_p99_us"], d["lost"])')
		stop_all
		read -r fanin fanin_lost <<<"$rate"
		read -r fanin32 fanin32_lost <<<"$rate32"
		read -r cpu p99 plant_lost _ <<<"$plant"
		read -r ack_p99 ack_lost <<<"$ack"
		echo "run $run $name: fanin $fanin msg/s (lost $fanin_lost); fanin32 $fanin32 msg/s (lost $fanin32_lost);" \
			"plant CPU $cpu %, p99 $p99 us, lost $plant_lost; PUBACK p99 at 10,000 msg/s $ack_p99 us (lost $ack_lost)"
		echo "$name $fanin $cpu $p99 $ack_p99 $((fanin_lost + fanin32_lost + plant_lost + ack_lost)) $fanin32" \
			>>"$tmp/results"
	done
done
if (( ${BACKLOG:-0} > 0 )); then
	cluster
	fill=$("$BENCH" fill --port "$port" --subs 1 --pubs 8 --qos 1 --messages "$BACKLOG" --size 200 --json |
		tail -1 | python3 -c 'import json,sys; print(int(json.loads(sys.stdin.read())["published_per_s"]))' 2>/dev/null) ||
		fill="failed"
	db_mb=$(( $(stat -c %s "$dir/ferromq.db") >> 20 ))
	snapshots=$(find "$tmp"/n[123]/raft -name 'snapshot-*' ! -name '*.meta' | wc -l)
	lost=$(grep -c "no longer leads" "$tmp/n1.log" || true)
	stop_all
	echo "backlog $BACKLOG messages: fill $fill msg/s, leader's database $db_mb MB, $snapshots snapshots on disk," \
		"node 1 lost its leadership $lost times"
fi
[[ -s $tmp/results ]] || exit 0 # RUNS=0: the backlog run alone
python3 - "$tmp/results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, fanin, cpu, p99, ack, lost, fanin32 = line.split()
    rows.setdefault(name, []).append((int(fanin), float(cpu), int(p99), int(ack), int(fanin32), int(lost)))
med = {n: tuple(statistics.median(r[i] for r in v) for i in range(5)) + (sum(r[5] for r in v),)
       for n, v in rows.items()}
for n, (f, c, p, a, f32, lost) in med.items():
    print("median %-8s fanin %8d msg/s  fanin32 %8d msg/s  plant CPU %5.1f %%  p99 %6d us  "
          "PUBACK p99 at 10k/s %6d us  lost %d" % (n, f, f32, c, p, a, lost))
cap = {n: max(m[0], m[4]) for n, m in med.items()}
print("fanin cluster/single %.2f   fanin32 %.2f   capacity %.2f   plant CPU cluster leader %.1f %% vs single %.1f %%"
      % (med["cluster"][0] / med["single"][0], med["cluster"][4] / med["single"][4], cap["cluster"] / cap["single"],
         med["cluster"][1], med["single"][1]))
EOF
