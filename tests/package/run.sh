#!/usr/bin/env bash
# tests/package/run.sh [WORKDIR]: the package test (`make test-package`).
#  1. builds this tree's Debian package (packaging/build-deb.sh);
#  2. builds the previous release's broker (PREV_COMMIT: store schema 3) and
#     packs it with the same packaging as PREV_VERSION, the package an
#     upgrade starts from;
#  3. makes a scratch Debian 12 root with mmdebstrap (kept as WORKDIR/root-HASH.tar
#     for the next run): the maintainer scripts (adduser, chown, systemd
#     enablement) run as they would on a plant's machine, inside a chroot,
#     never on this machine's /;
#  4. installs the previous package there: user, directories, conffile, and
#     `systemd-analyze verify --root` on the unit;
#  5. runs that broker as the unit would (user ferromq, the conffile, which
#     the "administrator" edited) and fills its store with queued messages,
#     retained messages and sessions;
#  6. installs the new package over the running broker, restarts it as
#     systemd would (SIGTERM, start) and checks the store was migrated and
#     nothing was lost, and the administrator's edit is still there;
#  7. remove keeps the data; purge deletes it.
# Needs root (chroot; exits 77, skipped, without), mmdebstrap, strace, debhelper, systemd (systemd-analyze),
# python3-paho-mqtt and a Debian mirror (MIRROR).
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
	echo "test-package: skipped: needs root (chroot into a scratch root)"
	exit 77
fi
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mkdir -p "${1:-$repo/build-pkg}" && cd "${1:-$repo/build-pkg}" && pwd)
PREV_COMMIT=${PREV_COMMIT:-3311ba4}
PYTHON=${PYTHON:-/usr/bin/python3}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
root="$work/root"
broker_pid=""
step() { printf '== %s (%ds)\n' "$*" "$SECONDS"; }
fail() { echo "test-package: FAILED: $*" >&2; exit 1; }

cleanup() {
	if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
		kill -TERM "$broker_pid"; wait "$broker_pid" || true
	fi
}
trap cleanup EXIT

# The upgrade starts from the previous release: a shallow clone (CI's may be
# one) fetches that commit, and skips the test when it cannot.
if ! git -C "$repo" cat-file -e "$PREV_COMMIT^{commit}" 2>/dev/null; then
	timeout 120 git -C "$repo" fetch -q origin "$PREV_COMMIT" 2>/dev/null || true
	if ! git -C "$repo" cat-file -e "$PREV_COMMIT^{commit}" 2>/dev/null; then
		echo "test-package: skipped: commit $PREV_COMMIT (the release the upgrade starts from) is not in this clone and could not be fetched (git fetch --unshallow)"
		exit 77
	fi
fi

step "1. this tree's package"
new_deb=$(JOBS=${JOBS:-$(nproc)} bash "$repo/packaging/build-deb.sh" "$work/deb")
new_version=$(dpkg-deb -f "$new_deb" Version)

step "2. the previous release ($PREV_COMMIT) packed as the package before"
prev_version="${new_version%%-*}~git$PREV_COMMIT"
prev_bin="$work/prev-build"
if [ "$(cat "$prev_bin/.commit" 2>/dev/null)" != "$PREV_COMMIT" ]; then
	rm -rf "$work/prev-src" "$prev_bin"
	mkdir -p "$work/prev-src"
	git -C "$repo" archive "$PREV_COMMIT" | tar -xf - -C "$work/prev-src"
	cmake -S "$work/prev-src" -B "$prev_bin" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$work/prev-build.log" 2>&1
	cmake --build "$prev_bin" -j "${JOBS:-$(nproc)}" --target ferromq ferromq-ctl ferromq-passwd \
		>>"$work/prev-build.log" 2>&1 || { tail -30 "$work/prev-build.log"; fail "building $PREV_COMMIT"; }
	echo "$PREV_COMMIT" >"$prev_bin/.commit"
fi
rm -rf "$work/prev-pkg"
dpkg-deb -R "$new_deb" "$work/prev-pkg"
install -m 0755 "$prev_bin/ferromq" "$work/prev-pkg/usr/sbin/ferromq"
install -m 0755 "$prev_bin/ferromq-ctl" "$prev_bin/ferromq-passwd" "$work/prev-pkg/usr/bin/"
sed -i "s/^Version: .*/Version: $prev_version/" "$work/prev-pkg/DEBIAN/control"
# That broker never calls sd_notify.
sed -i 's/^Type=notify$/Type=simple/' "$work/prev-pkg/lib/systemd/system/ferromq.service"
(cd "$work/prev-pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
prev_deb="$work/ferromq_${prev_version}_amd64.deb"
dpkg-deb --root-owner-group -b "$work/prev-pkg" "$prev_deb" >/dev/null

step "3. a scratch Debian 12 root"
# The package's run-time libraries; the kept root is named after the list,
# so a package that gains a dependency gets a root that has it.
root_pkgs=adduser,init-system-helpers,procps,systemd,libuv1,libsqlite3-0,libssl3,libwslay1,libmodbus5,libsystemd0,libprotobuf-c1,liblz4-1
root_tar="$work/root-$(printf '%s' "$root_pkgs" | md5sum | cut -c1-12).tar"
if [ ! -f "$root_tar" ]; then
	rm -rf "$work"/root*.tar
	mmdebstrap --quiet --variant=essential --include="$root_pkgs" \
		bookworm "$work/root-new.tar" "$MIRROR" >"$work/mmdebstrap.log" 2>&1 ||
		{ tail -20 "$work/mmdebstrap.log"; fail "mmdebstrap"; }
	mv "$work/root-new.tar" "$root_tar"
fi
rm -rf "$root"
mkdir -p "$root"
tar -xf "$root_tar" -C "$root"
cp "$prev_deb" "$new_deb" "$root/tmp/"
in_root() { chroot "$root" "$@" </dev/null; }

step "4. install $prev_version"
in_root dpkg -i "/tmp/$(basename "$prev_deb")" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i $prev_version"; }
in_root getent passwd ferromq | grep -q ':/var/lib/ferromq:/usr/sbin/nologin$' || fail "no ferromq system user"
uid=$(in_root id -u ferromq)
gid=$(in_root id -g ferromq)
[ "$(stat -c '%u:%g %a' "$root/var/lib/ferromq")" = "$uid:$gid 750" ] || fail "/var/lib/ferromq: $(stat -c '%u:%g %a' "$root/var/lib/ferromq")"
in_root dpkg-query -W -f='${Conffiles}\n' ferromq | grep -q '^ /etc/ferromq/ferromq.conf ' || fail "ferromq.conf is not a conffile"
grep -q '^persistence_location /var/lib/ferromq$' "$root/etc/ferromq/ferromq.conf" || fail "ferromq.conf: persistence_location"
[ -L "$root/etc/systemd/system/multi-user.target.wants/ferromq.service" ] || fail "the unit is not enabled"
for f in usr/sbin/ferromq usr/bin/ferromq-ctl usr/bin/ferromq-passwd usr/share/man/man8/ferromq.8.gz \
	usr/share/man/man1/ferromq-ctl.1.gz usr/share/man/man1/ferromq-passwd.1.gz \
	usr/share/doc/ferromq/ferromq.conf.example lib/systemd/system/ferromq.service; do
	[ -e "$root/$f" ] || fail "/$f is not installed"
done
MANPATH="$root/usr/share/man" systemd-analyze verify --root="$root" /lib/systemd/system/ferromq.service ||
	fail "systemd-analyze verify"
# The sandbox: systemd's own exposure score (0 best, 10 worst) stays at 2.0 or below.
systemd-analyze security --offline=yes --threshold=20 --root="$root" ferromq.service >"$work/security.txt" 2>&1 ||
	{ cat "$work/security.txt"; fail "systemd-analyze security: exposure above 2.0"; }

step "5. the previous broker runs and fills its store"
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The administrator's edit: a port of the test's (1883 may be taken here).
sed -i "s/^#listener 1883 127.0.0.1$/# edited by the administrator\nlistener $port 127.0.0.1/" "$root/etc/ferromq/ferromq.conf"
grep -q "^listener $port 127.0.0.1$" "$root/etc/ferromq/ferromq.conf" || fail "could not edit ferromq.conf"
start_broker() { # LOG [TRACE]: the unit's ExecStart, as the unit's user (under strace -o TRACE)
	: >"$1" # now, not in the background: the wait below must not read a previous run's log
	local trace=()
	[ -z "${2:-}" ] || trace=(strace -f -qq -o "$2")
	"${trace[@]}" chroot --userspec="$uid:$gid" "$root" /usr/sbin/ferromq -c /etc/ferromq/ferromq.conf \
		</dev/null >>"$1" 2>&1 &
	broker_pid=$!
	local deadline=$((SECONDS + 60))
	until grep -q 'ready:' "$1"; do
		kill -0 "$broker_pid" 2>/dev/null || { cat "$1"; fail "the broker exited during start-up"; }
		[ "$SECONDS" -lt "$deadline" ] || { cat "$1"; fail "the broker was not ready in 60 s"; }
		sleep 0.1
	done
}
stop_broker() { # what systemd does to stop it: SIGTERM, then the exit status
	# Under strace the broker is strace's child; strace exits with its status.
	kill -TERM "$(pgrep -P "$broker_pid" -x ferromq || echo "$broker_pid")"
	local rc=0
	wait "$broker_pid" || rc=$?
	broker_pid=""
	[ "$rc" = 0 ] || { cat "$1"; fail "the broker exited with $rc after SIGTERM"; }
}
start_broker "$work/prev.log"
"$PYTHON" "$repo/tests/package/store_state.py" fill "$port" || { cat "$work/prev.log"; fail "filling the store"; }

step "6. install $new_version over the running broker, restart it"
in_root dpkg -i "/tmp/$(basename "$new_deb")" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i $new_version"; }
[ "$(in_root dpkg-query -W -f='${Version}' ferromq)" = "$new_version" ] || fail "$new_version is not installed"
grep -q "^listener $port 127.0.0.1$" "$root/etc/ferromq/ferromq.conf" || fail "the upgrade overwrote ferromq.conf"
! ls "$root/etc/ferromq/" | grep -q 'dpkg-' || fail "conffile left-overs: $(ls "$root/etc/ferromq")"
stop_broker "$work/prev.log"
start_broker "$work/new.log" "$work/new.strace"
grep -q 'schema version 5' "$work/new.log" || { cat "$work/new.log"; fail "the store was not migrated"; }
"$PYTHON" "$repo/tests/package/store_state.py" check "$port" || { cat "$work/new.log"; fail "the upgrade lost data"; }
stop_broker "$work/new.log"
# The unit's SystemCallFilter=@system-service allows every system call the
# broker made (a call outside it would fail with EPERM under systemd only).
"$PYTHON" - "$work/new.strace" <<'PY' || fail "system calls outside the unit's filter"
import re, subprocess, sys
allowed, seen = set(), set()
def expand(group):
    seen.add(group)
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines()[1:]:
        t = line.strip()
        if t.startswith("@") and t not in seen:
            expand(t)
        elif t and not t.startswith(("#", "@")):
            allowed.add(t)
expand("@system-service")
text = open(sys.argv[1]).read()
text = text[text.index('execve("/usr/sbin/ferromq"'):]  # not chroot's own calls
used = set(re.findall(r"^\d+ +([a-z0-9_]+)\(", text, re.M))
outside = sorted(used - allowed)
print("system calls: %d used, all in @system-service" % len(used) if not outside
      else "system calls outside @system-service: %s" % " ".join(outside))
sys.exit(1 if outside else 0)
PY

step "7. remove keeps the data, purge deletes it"
in_root dpkg -r ferromq >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -r"; }
[ -e "$root/var/lib/ferromq/ferromq.db" ] || [ -n "$(ls "$root/var/lib/ferromq")" ] || fail "remove deleted the data"
[ -e "$root/etc/ferromq/ferromq.conf" ] || fail "remove deleted the conffile"
in_root dpkg -P ferromq >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -P"; }
[ ! -e "$root/var/lib/ferromq" ] && [ ! -e "$root/etc/ferromq/ferromq.conf" ] || fail "purge left data or configuration"
rm -rf "$root"
echo "test-package: passed ($SECONDS s): $new_version installs, verifies, and upgrades $prev_version without loss"
