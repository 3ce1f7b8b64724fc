#!/usr/bin/env bash
# packaging/install-libraft.sh: installs libraft-dev 0.22 from Debian's
# bookworm-backports suite (the cluster's consensus, src/cluster/), never 0.15
# from bookworm main: 0.15 commits entries of an older term by counting
# replicas (Raft paper §5.4.2) and votes on entries not yet on disk.
# Idempotent; run by `make deps` and .ci/run. Fails loudly if what ends up
# installed is not 0.22.
set -euo pipefail
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
list=/etc/apt/sources.list.d/bookworm-backports.list
if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee "$list" >/dev/null
	$SUDO apt-get update -qq
fi
have=$(dpkg-query -W -f='${Status} ${Version}\n' libraft-dev 2>/dev/null || true)
case "$have" in
"install ok installed 0.22."*) ;;
*)
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t bookworm-backports libraft-dev >/dev/null
	;;
esac
version=$(dpkg-query -W -f='${Version}' libraft-dev)
case "$version" in
0.22.*) echo "libraft-dev $version (bookworm-backports)" ;;
*)
	echo "install-libraft: libraft-dev $version is installed, the cluster needs 0.22.x from bookworm-backports" >&2
	exit 1
	;;
esac
