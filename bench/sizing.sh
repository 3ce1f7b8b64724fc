#!/usr/bin/env bash
# Measures what a plant costs ferromq and writes SIZING.md: the plant
# presets (small, medium, large), a historian outage with and without a
# queue bound, and the 100,000-session reference with a kill -9 restart.
#
# Builds nothing. Environment:
#   FERROMQ_BIN    broker binary              (default build/ferromq)
#   FERROMQ_BENCH  load generator             (default build/ferromq-bench)
#   DURATION       measured seconds per preset (default 60)
#   OUTAGE         seconds the historian is away (default 60)
#   BOUND_BYTES    max_queued_bytes of the bounded outage (default 262144: with
#                  100 msg/s of 200 bytes it fills in the first ~15 s, so the
#                  second half of the outage shows whether growth stops)
#   QUEUE_MESSAGES messages queued for one offline session in the queue-memory
#                  run (default 400000, in two halves: the second half's growth
#                  is the per-message cost, after SQLite's page cache is full)
#   SESSIONS       stored sessions            (default 100000, 5 subscriptions each)
#   CONNECTED      of which reconnect         (default 5000)
#   SESS_RATE      msg/s to them              (default 10000)
#   SESS_DURATION  seconds of that traffic    (default 20)
#   PRESETS        which presets              (default "small medium large")
#   OUT            report path                (default SIZING.md at the repo root)
#
# ferromq only, durability full, one fresh data dir per run, a free port per
# broker; only the brokers this script started are stopped, by PID.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERROMQ_BIN=${FERROMQ_BIN:-$ROOT/build/ferromq}
FERROMQ_BENCH=${FERROMQ_BENCH:-$ROOT/build/ferromq-bench}
DURATION=${DURATION:-60}
OUTAGE=${OUTAGE:-60}
BOUND_BYTES=${BOUND_BYTES:-262144}
QUEUE_MESSAGES=${QUEUE_MESSAGES:-400000}
SESSIONS=${SESSIONS:-100000}
CONNECTED=${CONNECTED:-5000}
SESS_RATE=${SESS_RATE:-10000}
SESS_DURATION=${SESS_DURATION:-20}
PRESETS=${PRESETS:-small medium large}
OUT=${OUT:-$ROOT/SIZING.md}

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ -x $FERROMQ_BIN ]] || die "no broker at $FERROMQ_BIN (build it first)"
[[ -x $FERROMQ_BENCH ]] || die "no load generator at $FERROMQ_BENCH (build it first)"
command -v python3 >/dev/null || die "python3 is needed to write the report"

tmp=$(mktemp -d /tmp/ferromq-sizing.XXXXXX) || die "mktemp failed"
BPID="" BPORT="" BDIR=""
failures=0

stop_broker() {
	[[ -n $BPID ]] || return 0
	stop_pid "$BPID" 100
	BPID=""
	[[ -n $BDIR ]] && rm -rf "$BDIR/data"
}
cleanup() { stop_broker; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM


# The sessions run needs a batch of descriptors on each side; 20,000 is plenty.
raise_fd_limit

# conf NAME EXTRA: the config of run NAME (its dir holds the store and log).
conf() {
	printf 'listener %s 127.0.0.1\npersistence true\npersistence_location %s/data\ndurability full\n' "$BPORT" "$BDIR"
	printf 'max_queued_messages 0\nmax_inflight_messages 1000\nlog_type error\nlog_type notice\n'
	[[ -n $2 ]] && printf '%s\n' "$2"
}

# start_broker NAME EXTRA -> 0 when listening; sets BPID BPORT BDIR.
start_broker() {
	BDIR=$tmp/$1
	BPORT=$(free_port)
	mkdir -p "$BDIR"
	conf "$1" "$2" >"$BDIR/broker.conf"
	"$FERROMQ_BIN" -c "$BDIR/broker.conf" >"$BDIR/log" 2>&1 &
	BPID=$!
	for _ in $(seq 200); do
		kill -0 "$BPID" 2>/dev/null || break
		if ss -Hltn "sport = :$BPORT" 2>/dev/null | grep -q .; then
			say "$1: ferromq pid $BPID, port $BPORT"
			return 0
		fi
		sleep 0.05
	done
	say "$1: ferromq did not start:"; tail -5 "$BDIR/log" >&2
	stop_broker
	return 1
}

# bench NAME TIMEOUT ARGS...: runs ferromq-bench with --json into $tmp/NAME.json
# and records the command (port, pid and dirs as placeholders).
bench() {
	local name=$1 limit=$2; shift 2
	local cmd="ferromq-bench $* --port PORT --pid PID --store-dir DIR/data --json"
	printf '%s\t%s\n' "$name" "$cmd" >>"$tmp/commands.tsv"
	printf '%s\t%s\n' "$name" "$(conf x "${EXTRA[$name]:-}" | sed "s|$BDIR|DIR|; s|listener [0-9]*|listener PORT|" | paste -sd';')" >>"$tmp/configs.tsv"
	say "$name: $cmd"
	if ! timeout "$limit" "$FERROMQ_BENCH" "$@" --port "$BPORT" --pid "$BPID" --store-dir "$BDIR/data" --json \
		>"$tmp/$name.json" 2>"$tmp/$name.err"; then
		say "$name failed: $(tail -2 "$tmp/$name.err")"
		failures=$((failures + 1))
	fi
	cat "$tmp/$name.err" >&2
}

declare -A EXTRA=(
	[outage-bounded]=$'max_queued_bytes '"$BOUND_BYTES"$'\nqueue_overflow drop_oldest'
)

for p in $PRESETS; do
	start_broker "$p" "" || { failures=$((failures + 1)); continue; }
	bench "$p" $((DURATION + 120)) plant --profile "$p" --duration "$DURATION" --warmup 2
	stop_broker
done

# One historian away while 100 tags/s x 200 bytes arrive.
for name in outage outage-bounded; do
	start_broker "$name" "${EXTRA[$name]:-}" || { failures=$((failures + 1)); continue; }
	drain=30
	[[ $name == outage-bounded ]] && drain=5 # what was dropped never comes
	bench "$name" $((OUTAGE + 180)) plant --gateways 1 --tags 100 --interval 1000 --duration $((OUTAGE + 10)) \
		--warmup 2 --offline-after 5 --offline-for "$OUTAGE" --drain "$drain"
	stop_broker
done

# rss_kb PID
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# mqtt_ready PORT: one CONNECT answered with a CONNACK, or failure.
mqtt_ready() {
	python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(bytes([0x10, 17, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 5]) + b"probe")
sys.exit(0 if s.recv(4)[:1] == b"\x20" else 1)
EOF
}

# What a long offline queue costs: QUEUE_MESSAGES for one offline session, in
# two halves; RSS and store after each.
if start_broker queue ""; then
	half=$((QUEUE_MESSAGES / 2))
	: >"$tmp/queue.tsv"
	printf 'messages_per_half\t%s\n' "$half" >>"$tmp/queue.tsv"
	printf 'queue\t%s\n' "ferromq-bench fill --subs 1 --messages $half --qos 1 --port PORT (twice)" >>"$tmp/commands.tsv"
	printf 'queue\t%s\n' "$(conf x "" | sed "s|$BDIR|DIR|; s|listener [0-9]*|listener PORT|" | paste -sd';')" >>"$tmp/configs.tsv"
	for i in 0 1 2; do
		if ((i > 0)); then
			say "queue: filling $half more"
			"$FERROMQ_BENCH" fill --port "$BPORT" --subs 1 --messages "$half" --qos 1 >"$tmp/queue.$i.out" 2>&1 ||
				{ say "queue fill failed: $(tail -1 "$tmp/queue.$i.out")"; failures=$((failures + 1)); }
			sleep 2 # the last group commits, the entries give up their bodies
		fi
		printf 'rss_kb_%s\t%s\n' "$i" "$(rss_kb "$BPID")" >>"$tmp/queue.tsv"
		printf 'store_bytes_%s\t%s\n' "$i" "$(du -sb "$BDIR/data" | cut -f1)" >>"$tmp/queue.tsv"
	done
	stop_broker
else
	failures=$((failures + 1))
fi

# The 4 GB reference: SESSIONS stored sessions, then kill -9 and restart.
if start_broker sessions ""; then
	bench sessions $((SESSIONS / 50 + SESS_DURATION + 600)) sessions --protocol 5 --sessions "$SESSIONS" \
		--connected "$CONNECTED" --batch 1000 --pubs 4 --rate "$SESS_RATE" --duration "$SESS_DURATION"
	: >"$tmp/restart.tsv"
	printf 'rss_before_kill_kb\t%s\n' "$(rss_kb "$BPID")" >>"$tmp/restart.tsv"
	say "sessions: kill -KILL $BPID"
	kill -KILL "$BPID" 2>/dev/null
	wait "$BPID" 2>/dev/null
	printf 'store_bytes\t%s\n' "$(du -sb "$BDIR/data" | cut -f1)" >>"$tmp/restart.tsv"
	printf 'store_du_kb\t%s\n' "$(du -sk "$BDIR/data" | cut -f1)" >>"$tmp/restart.tsv"
	cp "$BDIR/log" "$BDIR/log.before-kill"
	t0=$(date +%s%N)
	"$FERROMQ_BIN" -c "$BDIR/broker.conf" >"$BDIR/log" 2>&1 &
	BPID=$!
	t1=""
	for _ in $(seq 30000); do # 20 ms apart: at most ~10 min
		kill -0 "$BPID" 2>/dev/null || break
		if mqtt_ready "$BPORT"; then t1=$(date +%s%N); break; fi
		sleep 0.02
	done
	if [[ -n $t1 ]]; then
		printf 'ready_s\t%s\n' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')" >>"$tmp/restart.tsv"
		printf 'rss_after_restart_kb\t%s\n' "$(rss_kb "$BPID")" >>"$tmp/restart.tsv"
		line=$(grep -m1 'recovered .* in [0-9.]* s' "$BDIR/log")
		line=${line#* notice: }
		printf 'recovered_line\t%s\n' "${line//$BDIR/DIR}" >>"$tmp/restart.tsv"
		printf 'recovered_s\t%s\n' "$(sed -n 's/.*recovered .* in \([0-9.]*\) s.*/\1/p' <<<"$line")" >>"$tmp/restart.tsv"
		say "sessions: ready again after $(grep ready_s "$tmp/restart.tsv" | cut -f2) s; $line"
	else
		printf 'error\t%s\n' "no CONNACK after the restart: $(tail -1 "$BDIR/log")" >>"$tmp/restart.tsv"
		failures=$((failures + 1))
	fi
	stop_broker
else
	failures=$((failures + 1))
fi

python3 - "$tmp" "$OUT" "$DURATION" "$OUTAGE" "$BOUND_BYTES" "$(nproc)" "$(uname -sr)" <<'EOF'
import json, os, sys
tmp, out, duration, outage, bound, ncpu, kernel = sys.argv[1:8]
outage, bound = float(outage), int(bound)
def load(n):
    try:
        with open(os.path.join(tmp, n + ".json")) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except Exception:
        return None
def tsv(n):
    p = os.path.join(tmp, n)
    if not os.path.exists(p):
        return {}
    return dict(l.rstrip("\n").split("\t", 1) for l in open(p) if "\t" in l)
cmds, confs, rs, qs = tsv("commands.tsv"), tsv("configs.tsv"), tsv("restart.tsv"), tsv("queue.tsv")
mb = lambda b: "%.1f MB" % (b / 1e6)
L = []
w = L.append
w("# ferromq sizing\n")
w("Written by `bench/sizing.sh` (%s CPUs, %s). Every run: ferromq alone, `durability full`, a fresh" % (ncpu, kernel))
w("data directory, QoS 1, 200-byte JSON payloads, one historian with a persistent session. RSS and CPU")
w("are sampled from `/proc` once a second, the store with a `du` of the data directory.\n")
w("## Plant presets\n")
o = load("outage")
per_msg = None
if o and o.get("outage", {}).get("messages"):
    per_msg = o["outage"]["store_growth_bytes"] / o["outage"]["messages"]
w("| preset | gateways x tags | target msg/s | delivered msg/s | lost | dup | broker RSS max | CPU mean (% of a core) | store growth while publishing | disk per hour of historian outage | latency p50 | latency p99 |")
w("|---|---|---|---|---|---|---|---|---|---|---|---|")
for p in ("small", "medium", "large"):
    r = load(p)
    if not r:
        if p in cmds:
            w("| %s | failed: see the command below | | | | | | | | | | |" % p)
        continue
    b = r["broker"]
    hour = "%s" % mb(per_msg * r["target_per_s"] * 3600) if per_msg else "n/a"
    w("| %s | %d x %d | %.0f | %.0f | %d | %d | %.1f MB | %.0f | %s/s | %s | %.2f ms | %.2f ms |" % (
        p, r["gateways"], r["tags"], r["target_per_s"], r["delivered_per_s"], r["lost"], r["dup"],
        b["rss_max_kb"] / 1024, b["cpu_mean_pct"], mb(b["store_growth_bytes_per_s"]), hour,
        r["lat_us"]["p50"] / 1000, r["lat_us"]["p99"] / 1000))
w("\nDisk per hour of outage = the store growth per queued message measured in the outage run below")
w("(%s) x the preset's rate x 3600: what one historian's absence costs on disk." %
  ("%.0f bytes" % per_msg if per_msg else "n/a"))
w("\n## Historian outage\n")
w("1 gateway x 100 tags/s, 200-byte payloads; the historian leaves 5 s into the run, stays away %g s," % outage)
w("comes back and drains.\n")
w("| run | queued during the outage | store growth | per message (disk) | RSS growth | per message (RAM) | growth in the 2nd half (store / RSS) | delivered after the return | drain time | lost |")
w("|---|---|---|---|---|---|---|---|---|---|")
for n in ("outage", "outage-bounded"):
    r = load(n)
    if not r or "outage" not in r:
        if n in cmds:
            w("| %s | failed | | | | | | | | |" % n)
        continue
    g = r["outage"]
    m = g["messages"] or 1
    mid = g.get("mid", {})
    half = "%s / %+d kB" % (mb(g["store_after_bytes"] - mid.get("store_bytes", 0)), g["rss_after_kb"] - mid.get("rss_kb", 0)) if mid.get("messages") else "n/a"
    w("| %s | %d | %s | %.0f B | %+d kB | %.0f B | %s | %d | %.2f s | %d |" % (
        n, g["messages"], mb(g["store_growth_bytes"]), g["store_growth_bytes"] / m, g["rss_growth_kb"],
        g["rss_growth_kb"] * 1024 / m, half, g["backlog_delivered"], g["drain_seconds"], r["lost"]))
if o and "outage" in o:
    g = o["outage"]
    rate = o["target_per_s"]
    formula = rate * o["size"] * g["seconds"]
    w("\n**Formula check** (unbounded run): messages/s x average size x outage seconds = %.0f x %d B x %.1f s = %s;"
      % (rate, o["size"], g["seconds"], mb(formula)))
    w("the store grew %s, %.2f x the formula (the rest is the store's per-message overhead: topic, ids, index, WAL)."
      % (mb(g["store_growth_bytes"]), g["store_growth_bytes"] / formula if formula else 0))
ob = load("outage-bounded")
if ob and "outage" in ob:
    g = ob["outage"]
    w("\n**Bound** (`max_queued_bytes %d`, `queue_overflow drop_oldest`): %d of %d queued messages were delivered after"
      % (bound, g["backlog_delivered"], g["messages"]))
    w("the return, %d x 200 B = %d B of payload against the %d B bound; the messages dropped to keep it are counted as lost (%d)."
      % (g["backlog_delivered"], g["backlog_delivered"] * 200, bound, ob["lost"]))
if qs.get("rss_kb_2"):
    half = int(qs["messages_per_half"])
    r0, r1, r2 = (int(qs["rss_kb_%d" % i]) for i in range(3))
    d0, d1, d2 = (int(qs["store_bytes_%d" % i]) for i in range(3))
    w("\n## A long offline queue\n")
    w("%d QoS 1 messages of 200 bytes queued for one offline session, in two halves. A queued message" % (2 * half))
    w("keeps a 40-byte entry in memory; its body is on disk and read back when delivery reaches it.\n")
    w("| | RSS | store | per message in RAM | per message on disk |")
    w("|---|---|---|---|---|")
    w("| empty | %d kB | %s | | |" % (r0, mb(d0)))
    w("| after %d | %d kB | %s | %.0f B (first half) | %.0f B (%.2f x payload) |" % (half, r1, mb(d1),
      (r1 - r0) * 1024 / half, (d1 - d0) / half, (d1 - d0) / half / 200))
    w("| after %d | %d kB | %s | %.0f B (second half) | %.0f B (%.2f x payload) |" % (2 * half, r2, mb(d2),
      (r2 - r1) * 1024 / half, (d2 - d0) / half / 2, (d2 - d0) / half / 2 / 200))
    w("\nRAM: the first half includes fixed costs that stop growing (SQLite's page cache, at most 8 MiB, and")
    w("the allocator's high-water mark of bodies waiting for their commit at full publish rate); the second")
    w("half's growth is what each further queued message costs. Disk: the store (database and WAL) over all")
    w("the messages queued so far; the WAL's size moves with checkpoints.")
w("\n## 100,000 sessions\n")
s = load("sessions")
if s:
    b = s["broker"]
    w("| sessions | subscriptions | time to create | RSS before / after creation / max under traffic | store after creation / at the end | reconnected | msg/s target / delivered | lost | latency p50 / p99 |")
    w("|---|---|---|---|---|---|---|---|---|")
    w("| %d | %d | %.1f s | %.1f / %.1f / %.1f MB | %s / %s | %d | %.0f / %.0f | %d | %.2f / %.2f ms |" % (
        s["sessions"], s["subscriptions"], s["create_seconds"], b["rss_before_kb"] / 1024,
        b["rss_after_create_kb"] / 1024, b["rss_traffic_max_kb"] / 1024, mb(b["store_after_create_bytes"]),
        mb(b["store_end_bytes"]), s["connected"], s["rate"], s["delivered_per_s"], s["lost"],
        s["lat_us"]["p50"] / 1000, s["lat_us"]["p99"] / 1000))
    if s["sessions"]:
        w("\nPer stored session (5 subscriptions): %.0f bytes of RSS, %.0f bytes of store." % (
            (b["rss_after_create_kb"] - b["rss_before_kb"]) * 1024 / s["sessions"],
            (b["store_after_create_bytes"] - b["store_before_bytes"]) / s["sessions"]))
elif "sessions" in cmds:
    w("The sessions run failed; see its command below.")
if rs:
    w("\nAfter `kill -9`: RSS before the kill %s kB; store %s bytes; ready again (CONNECT answered) %s s after exec;"
      % (rs.get("rss_before_kill_kb", "?"), rs.get("store_bytes", "?"), rs.get("ready_s", "?")))
    w("the broker logged `%s` (recovery %s s); RSS after the restart %s kB." % (
        rs.get("recovered_line", "?"), rs.get("recovered_s", "?"), rs.get("rss_after_restart_kb", "?")))
    if "error" in rs:
        w("\nRestart error: %s" % rs["error"])
w("\n## Commands\n")
w("Each row's broker was `ferromq -c broker.conf` with the config shown (`;` = new line), on a free port,")
w("in a fresh directory; PORT, PID and DIR are that run's.\n")
for n, c in cmds.items():
    w("- **%s**: `%s`  \n  config: `%s`" % (n, c, confs.get(n, "")))
if rs:
    w("- **restart**: `kill -KILL PID; ferromq -c broker.conf` (the sessions run's config and store), then one MQTT CONNECT every 20 ms until a CONNACK.")
open(out, "w").write("\n".join(L) + "\n")
EOF
say "wrote $OUT ($failures failures)"
(( failures == 0 ))
