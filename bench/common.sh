# Shared by the bench scripts (sourced).

die() { echo "bench/${0##*/}: $*" >&2; exit 1; }
say() { echo "bench/${0##*/}: $*" >&2; }

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Raises this shell's open-file limit to min(hard limit, 20000), inherited by
# the brokers and the bench it starts; sets $limit.
raise_fd_limit() {
	local hard
	hard=$(ulimit -Hn)
	[[ $hard == unlimited ]] && hard=1048576
	limit=$(( hard < 20000 ? hard : 20000 ))
	ulimit -n "$limit" || die "cannot set ulimit -n $limit"
}

# stop_pid PID [TENTHS]: SIGTERM, up to TENTHS x 0.1 s (default 300) for it to
# exit, then SIGKILL; reaps it. Only for processes the script started.
stop_pid() {
	local pid=$1 tries=${2:-300}
	[[ -n $pid ]] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq "$tries"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (at most 10 s);
# fails otherwise.
wait_port() {
	for _ in $(seq 100); do
		python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# fanin_figures: a `ferromq-bench fanin --json` line on stdin -> "DELIVERED_PER_S LOST".
fanin_figures() {
	python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(int(d["delivered_per_s"]), d["lost"])'
}

# plant_figures: the last lines of `ferromq-bench plant` on stdin ->
# "CPU_MEAN P99_US LOST DELIVERED_PER_S".
plant_figures() {
	python3 -c '
import re, sys
t = sys.stdin.read()
p99 = re.search(r"p99 (\d+) us", t).group(1)
lost = re.search(r"lost (\d+)", t).group(1)
cpu = re.search(r"CPU mean ([\d.]+) %", t).group(1)
rate = re.search(r"delivered (\d+) msg/s", t).group(1)
print(cpu, p99, lost, rate)'
}
