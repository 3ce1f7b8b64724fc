# Shared by bench/run.sh and bench/sizing.sh (sourced).

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
