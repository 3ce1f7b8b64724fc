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
