#!/usr/bin/env bash
# The Sparkplug B edge node's cost (issue 17 #3): DEVICES simulated Modbus
# TCP devices of 100 tags (60 uint16, 20 float32 cdab, 20 int32), every tag
# changing at every poll (fm-modbus-sim `seq D hr 0 140`: each register
# counts up after each read of it), polled every INTERVAL ms by an edge ferromq whose bridge
# carries everything to a cloud ferromq on loopback. Two scenarios, the same
# readings:
#   json       modbus_format json: one message per reading, bridged as
#              modbus/# (QoS 1, spooled)
#   sparkplug  modbus_format sparkplug, bridge_sparkplug: one DDATA per poll
#              (100 metrics by alias), restamped with seq as it is sent
# Over MEASURE seconds after WARMUP: the edge broker's CPU (utime + stime of
# /proc/PID/stat) in % of one core, the readings it committed per second
# (ferromq_device_readings_committed_total of every device: in a DDATA each
# metric is one) and the messages the cloud received per second
# (ferromq_messages_received_total), from the brokers' /metrics.
#
# Builds nothing: FERROMQ_BIN (default build/ferromq) and FM_MODBUS_SIM
# (beside it). Environment: DEVICES (100), INTERVAL (1000), WARMUP (10),
# MEASURE (30), ONLY (json sparkplug), RUNS (1). Loopback only; stops only
# the processes it started, by PID. Prints a Markdown table.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERROMQ_BIN=${FERROMQ_BIN:-$ROOT/build/ferromq}
FM_MODBUS_SIM=${FM_MODBUS_SIM:-$(dirname "$FERROMQ_BIN")/fm-modbus-sim}
DEVICES=${DEVICES:-100}
INTERVAL=${INTERVAL:-1000}
WARMUP=${WARMUP:-10}
MEASURE=${MEASURE:-30}
ONLY=${ONLY:-json sparkplug}
RUNS=${RUNS:-1}

die() { echo "bench/sparkplug_edge.sh: $*" >&2; exit 1; }
[[ -x $FERROMQ_BIN ]] || die "$FERROMQ_BIN is missing (make build)"
[[ -x $FM_MODBUS_SIM ]] || die "$FM_MODBUS_SIM is missing (make build)"
command -v curl >/dev/null || die "curl is missing"

tmp=$(mktemp -d /tmp/fm-spb-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts a broker on config $1 (log $2); waits for its token file $3.
start() {
	"$FERROMQ_BIN" -c "$1" >"$2" 2>&1 &
	local pid=$!
	pids+=("$pid")
	for _ in $(seq 100); do [[ -s $3 ]] && break; sleep 0.1; done
	[[ -s $3 ]] || die "a broker did not start: $(tail -3 "$2")"
	echo "$pid"
}

received() { # $1 http port, $2 token: the cloud's messages received so far
	curl -s -H "Authorization: Bearer $2" "http://127.0.0.1:$1/metrics" |
		awk '$1 == "ferromq_messages_received_total" { print $2 }'
}

committed() { # $1 http port, $2 token: the edge's readings committed so far
	curl -s -H "Authorization: Bearer $2" "http://127.0.0.1:$1/metrics" |
		awk '$1 ~ /^ferromq_device_readings_committed_total\{/ { n += $2 } END { print n + 0 }'
}

run() {
	local name=$1 dir=$tmp/$1
	mkdir -p "$dir/edge" "$dir/cloud"
	coproc SIM { exec "$FM_MODBUS_SIM" --devices "$DEVICES" --size 200; }
	local sim_pid=$SIM_PID
	pids+=("$sim_pid")
	local ports
	read -r -u "${SIM[0]}" ports || die "fm-modbus-sim did not start"
	ports=(${ports#ports })
	for ((d = 0; d < DEVICES; d++)); do
		# Every register of every tag counts up after each read of it.
		echo "seq $d hr 0 140" >&"${SIM[1]}"
		read -r -u "${SIM[0]}" _
	done
	local cport chttp eport ehttp
	cport=$(free_port)
	chttp=$(free_port)
	eport=$(free_port)
	ehttp=$(free_port)
	printf 'listener %s 127.0.0.1\npersistence_location %s/data\nhttp_listener %s 127.0.0.1\nhttp_token_file %s/token\n' \
		"$cport" "$dir/cloud" "$chttp" "$dir/cloud" >"$dir/cloud/ferromq.conf"
	{
		echo "listener $eport 127.0.0.1"
		echo "persistence_location $dir/edge/data"
		echo "http_listener $ehttp 127.0.0.1"
		echo "http_token_file $dir/edge/token"
		[[ $name == sparkplug ]] && printf 'sparkplug_group_id bench\nsparkplug_edge_node_id edge\n'
		echo "connection cloud"
		echo "address 127.0.0.1:$cport"
		echo "bridge_protocol_version mqttv50"
		if [[ $name == sparkplug ]]; then echo "bridge_sparkplug true"; else echo "topic modbus/# out 1"; fi
		for ((d = 0; d < DEVICES; d++)); do
			echo "modbus_device d$d"
			echo "modbus_address 127.0.0.1:${ports[$d]}"
			echo "modbus_poll_interval $INTERVAL"
			echo "modbus_format $name"
			for ((t = 0; t < 100; t++)); do
				if ((t < 60)); then echo "modbus_tag t$t holding_register $t uint16"
				elif ((t < 80)); then echo "modbus_tag t$t holding_register $((60 + (t - 60) * 2)) float32 cdab"
				else echo "modbus_tag t$t holding_register $((100 + (t - 80) * 2)) int32"; fi
			done
		done
	} >"$dir/edge/ferromq.conf"
	local cloud edge ctoken etoken
	cloud=$(start "$dir/cloud/ferromq.conf" "$dir/cloud/log" "$dir/cloud/token")
	edge=$(start "$dir/edge/ferromq.conf" "$dir/edge/log" "$dir/edge/token")
	ctoken=$(cat "$dir/cloud/token")
	etoken=$(cat "$dir/edge/token")
	sleep "$WARMUP"
	local r0 c0 s0 t0 r1 c1 s1 t1
	r0=$(received "$chttp" "$ctoken"); c0=$(committed "$ehttp" "$etoken")
	s0=$(cut -d' ' -f14,15 /proc/"$edge"/stat); t0=$(date +%s.%N)
	local load0; load0=$(cut -d' ' -f1 /proc/loadavg)
	sleep "$MEASURE"
	r1=$(received "$chttp" "$ctoken"); c1=$(committed "$ehttp" "$etoken")
	s1=$(cut -d' ' -f14,15 /proc/"$edge"/stat); t1=$(date +%s.%N)
	local load1; load1=$(cut -d' ' -f1 /proc/loadavg)
	python3 - "$name" "$DEVICES" "$INTERVAL" "$r0" "$r1" "$s0" "$s1" "$t0" "$t1" "$load0" "$load1" "$c0" "$c1" <<'PY'
import json, os, sys
name, devices, interval, r0, r1, s0, s1, t0, t1, l0, l1, c0, c1 = sys.argv[1:]
tck = os.sysconf("SC_CLK_TCK")
cpu = lambda s: sum(int(x) for x in s.split()) / tck
dt = float(t1) - float(t0)
print(json.dumps({"scenario": name, "devices": int(devices), "interval_ms": int(interval), "seconds": round(dt, 1),
                  "edge_cpu_pct": round((cpu(s1) - cpu(s0)) / dt * 100, 1),
                  "cloud_msgs_per_s": round((float(r1) - float(r0)) / dt),
                  "readings_per_s": round((float(c1) - float(c0)) / dt),
                  "load1": [float(l0), float(l1)]}))
PY
	kill "$edge" "$cloud" 2>/dev/null
	wait "$edge" "$cloud" 2>/dev/null
	grep -E "error|warning" "$dir/edge/log" | head -5 >&2
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
print("| scenario | devices x 100 tags @ interval | readings committed/s | messages/s at the cloud | edge CPU (% of a core) | load average |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f'| {r["scenario"]} | {r["devices"]} x 100 @ {r["interval_ms"]} ms | {r["readings_per_s"]} | '
          f'{r["cloud_msgs_per_s"]} | {r["edge_cpu_pct"]} | {r["load1"][0]} -> {r["load1"][1]} |')
print(f"\n(at {commit})")
PY
