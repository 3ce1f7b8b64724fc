"""netns: a test network of Linux network namespaces, for real partitions
(`make test-partition`, issue 14; needs root and iproute2's `ip netns`).

TestNet(members) makes one namespace per member (a cluster node, the test's
clients) and one for a bridge. Each member's namespace holds the end of a
veth pair, "eth0", with the member's IPv4 address in SUBNET; the other end
is a port of the bridge, in the bridge's namespace. The bridge has no
address and the root namespace gets nothing: only the namespaces made here
carry the test's traffic, and each member's only way to another is its
veth, so there is no path around a cut.

A cut sets the member's bridge port down: its eth0 loses carrier, and
every packet to or from the member is dropped without a word to either
side (a cable pulled, a switch port failed). Connections inside the
member's own namespace (a client on the same machine as the cut broker)
still work. heal() sets the port up again.

Names: every namespace is "fmnet<pid>-<seq>-<member>", pid the creating
process's. close() (called by the test's finaliser and at exit) stops the
processes this process started in them (its children, by PID) and deletes
them; remove_stale() deletes those a killed run left, only when their name
carries our prefix and that pid is dead.

Processes run in a member's namespace through command() (`ip netns exec`,
killed when the thread that started them ends);
code of this process enters one with entering(): network namespaces belong
to a thread, and a socket keeps the namespace it was made in, so a thread
that makes its sockets inside reaches the network as the member does, and
threads it starts inside stay there.
"""
import atexit
import contextlib
import ctypes
import os
import re
import signal
import subprocess

PREFIX = "fmnet"
SUBNET = "10.77.0"  # /24; exists only inside the namespaces made here
PREFIX_LEN = 24
NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
_NAME = re.compile(r"^%s(\d+)-(\d+)-([a-z0-9]+)$" % PREFIX)
_MEMBER = re.compile(r"^[a-z0-9]{1,12}$")  # the bridge port "v<member>" fits IFNAMSIZ
BRIDGE_MEMBER = "br"
_seq = 0


class NetnsError(RuntimeError):
    """An `ip` command failed: its arguments and what it said."""


def owner_pid(name):
    """Pure: the pid in a namespace name of ours, or None for any other name."""
    m = _NAME.match(name)
    return int(m.group(1)) if m else None


def stale(names, alive):
    """Pure: the names among names that are ours and whose pid alive(pid)
    says is dead."""
    return [n for n in names if (pid := owner_pid(n)) is not None and not alive(pid)]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ip(*args, check=True):
    """Runs `ip ARGS`; its stdout. Raises NetnsError when it fails and check."""
    r = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=30)
    if check and r.returncode != 0:
        raise NetnsError("ip %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r.stdout


def namespaces():
    """The names `ip netns list` shows."""
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def remove_stale():
    """Deletes the namespaces a killed run left (ours, owner dead); their names."""
    gone = stale(namespaces(), pid_alive)
    for name in gone:
        ip("netns", "del", name, check=False)
    return gone


def unavailable():
    """Why a TestNet cannot be made here (not root, no `ip netns`, no veth
    or bridge), or None when it can: makes and deletes a small one."""
    if os.geteuid() != 0:
        return "network namespaces need root (euid %d)" % os.geteuid()
    try:
        ip("-V")
    except (OSError, NetnsError) as e:
        return "iproute2's ip is not usable: %s" % e
    try:
        TestNet(["probe"]).close()
    except (OSError, NetnsError) as e:
        return "cannot make a test network: %s" % e
    return None


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "setns: %s" % os.strerror(err))


class TestNet:
    """Namespaces for members (names of [a-z0-9], at most 12 characters),
    joined by a bridge; member i (from 0) has address SUBNET.(i + 1).
    Made at once; close() undoes it."""

    def __init__(self, members):
        global _seq
        members = list(members)
        for m in members:
            if not _MEMBER.match(m) or m == BRIDGE_MEMBER:
                raise ValueError("member name %r: [a-z0-9]{1,12}, not %r" % (m, BRIDGE_MEMBER))
        if len(set(members)) != len(members) or not 0 < len(members) < 254:
            raise ValueError("members %r: distinct, 1 to 253" % (members,))
        _seq += 1
        self.run = "%s%d-%d" % (PREFIX, os.getpid(), _seq)
        self.members = {m: "%s.%d" % (SUBNET, i + 1) for i, m in enumerate(members)}
        self.made = []   # namespaces made, for close()
        self.cut_members = set()
        self.closed = False
        atexit.register(self.close)
        try:
            self._make()
        except BaseException:
            self.close()
            raise

    def ns(self, member):
        """The namespace of member (or of the bridge, BRIDGE_MEMBER)."""
        if member != BRIDGE_MEMBER and member not in self.members:
            raise KeyError(member)
        return "%s-%s" % (self.run, member)

    def address(self, member):
        return self.members[member]

    @staticmethod
    def port(member):
        """The bridge's port of member, in the bridge's namespace."""
        return "v" + member

    def _add_ns(self, member):
        name = self.ns(member)
        ip("netns", "add", name)
        self.made.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def _make(self):
        br = self._add_ns(BRIDGE_MEMBER)
        # "name" before each name: `ip link add br ...` reads "br" as "broadcast".
        ip("-n", br, "link", "add", "name", "br0", "type", "bridge")
        ip("-n", br, "link", "set", "br0", "up")
        for member, addr in self.members.items():
            ns = self._add_ns(member)
            # Made in the bridge's namespace, the peer moved straight into the
            # member's: neither end ever exists in the root namespace.
            ip("-n", br, "link", "add", "name", self.port(member), "type", "veth",
               "peer", "name", "eth0", "netns", ns)
            ip("-n", br, "link", "set", self.port(member), "master", "br0", "up")
            ip("-n", ns, "addr", "add", "%s/%d" % (addr, PREFIX_LEN), "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")

    def command(self, member, argv):
        """argv run inside member's namespace (`ip netns exec` and setpriv
        exec it: the process started is argv's, with its PID). It gets
        SIGKILL when the thread that started it ends (PR_SET_PDEATHSIG):
        after a kill -9 of the test, nothing of it runs on in a namespace
        nobody can reach."""
        return ["ip", "netns", "exec", self.ns(member), "setpriv", "--pdeathsig", "KILL"] + list(argv)

    def cut(self, member):
        """member's link goes down: nothing reaches it or leaves it."""
        ip("-n", self.ns(BRIDGE_MEMBER), "link", "set", self.port(member), "down")
        self.cut_members.add(member)

    def heal(self, member=None):
        """member's link (every member's cut link when None) goes up again."""
        for m in [member] if member else sorted(self.cut_members):
            ip("-n", self.ns(BRIDGE_MEMBER), "link", "set", self.port(m), "up")
            self.cut_members.discard(m)

    @contextlib.contextmanager
    def entering(self, member):
        """The calling thread inside member's namespace for the block (and
        the threads it starts there, for their lives), back after it."""
        here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            there = os.open(os.path.join(NETNS_DIR, self.ns(member)), os.O_RDONLY)
            try:
                _setns(there)
            finally:
                os.close(there)
            try:
                yield
            finally:
                _setns(here)
        finally:
            os.close(here)

    def pids(self):
        """{namespace: [pid]} of the processes in ours (`ip netns pids`)."""
        out = {}
        for name in self.made:
            text = ip("netns", "pids", name, check=False)
            out[name] = [int(p) for p in text.split() if p.isdigit()]
        return out

    def close(self):
        """Stops this process's children left in our namespaces (SIGKILL:
        the tests stop theirs before; this is for a run that failed on the
        way) and deletes the namespaces. Idempotent; never raises."""
        if self.closed:
            return
        self.closed = True
        me = os.getpid()
        try:
            for pids in self.pids().values():
                for pid in pids:
                    if pid != me and _parent(pid) == me:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
        except (OSError, NetnsError, subprocess.SubprocessError):
            pass
        for name in reversed(self.made):
            try:
                ip("netns", "del", name, check=False)
            except (OSError, subprocess.SubprocessError):
                pass
        self.made = []
        atexit.unregister(self.close)


def _parent(pid):
    """pid's parent, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    return int(stat[stat.rindex(")") + 2:].split()[1])
