"""halib: clusters on loopback for the high-availability tests (issue 14).

Two kinds of node, driven the same way (start, kill -9, SIGSTOP/SIGCONT,
clean stop, which one leads), each with its own ports from the harness's
pool, data directory and log in the test's directory:

- BrokerCluster: ferromq brokers (cluster_* options), optionally one of
  them a witness. Node N has its own loopback address, 127.0.0.N, and the
  nodes are configured alike (the same MQTT and HTTP ports), as on three
  machines: a follower's Server Reference is the leader's cluster host with
  its own MQTT port. The leader is found the way a client finds it: the
  node whose CONNACK is 0 (followers refuse with v5 0x9C + Server
  Reference, v3.1.1 0x03), or by /readyz.
- RaftCluster: fm-cluster-node processes (the raft module's own test
  program, tests/cluster/clusterlib.py), to prove the fault proxy and the
  partition logic on the raft module alone.

Both put a FaultNet (faultproxy.py) between the nodes: every node is told
its peers' proxy ports, so a test can cut and heal links. A BrokerCluster
can run on a network of namespaces instead (net=NamespaceNet(...), as root:
netns.py), each node in its own at its own address and the test's clients in
another, where a cut takes a node's link down. Only processes started here
are signalled, by PID.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
for _d in (HERE, os.path.join(TESTS, "harness"), os.path.join(TESTS, "integration"),
           os.path.join(TESTS, "cluster")):
    if _d not in sys.path:
        sys.path.insert(0, _d)

import clusterlib  # noqa: E402
import mqttraw  # noqa: E402
import netns  # noqa: E402
from faultproxy import FaultNet  # noqa: E402
from fm_harness import SANITIZER_MARKS, free_port  # noqa: E402

HOST = "127.0.0.1"
CONNACK_SERVER_UNAVAILABLE = 0x03  # v3.1.1
CONNACK_USE_ANOTHER_SERVER = 0x9C  # v5


def wait_for(pred, timeout, step=0.01):
    """pred()'s first true value within timeout seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        r = pred()
        if r:
            return r
        if time.monotonic() >= deadline:
            return None
        time.sleep(step)


def log_tail(path, n=60):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(lines[-n:])


def sanitizer_report(path):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    for mark in SANITIZER_MARKS:
        if mark in text:
            i = text.index(mark)
            return text[max(0, i - 500):i + 6000]
    return None


# ==================================================================== brokers

def broker_bin():
    return os.environ.get("FERROMQ_BIN") or os.path.join(os.path.dirname(TESTS), "build", "ferromq")


def probe_connect(host, port, version=4, timeout=1.0):
    """One clean-session CONNECT to host:port: (CONNACK code, Server
    Reference or None), or None when nothing answers (process dead,
    stopped, or not listening)."""
    try:
        r = mqttraw.RawClient(port, version, host=host, timeout=timeout)
    except OSError:
        return None
    try:
        kw = {"clean": True, "keepalive": 10}
        ca = r.connect("ha-probe-%d-%d" % (os.getpid(), time.monotonic_ns()), **kw)
        ref = ca.props.get(mqttraw.P_SERVER_REFERENCE) if version == 5 else None
        if ca.rc == 0:
            try:
                r.disconnect(wait=False)
            except OSError:
                pass
        return ca.rc, ref
    except (OSError, TimeoutError, mqttraw.ConnectionClosed, AssertionError):
        return None
    finally:
        r.close()


class BrokerNode:
    def __init__(self, cluster, nid, witness=False):
        self.cluster, self.id, self.witness = cluster, nid, witness
        self.dir = os.path.join(cluster.root, "node%d" % nid)
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data, exist_ok=True)
        self.conf = os.path.join(self.dir, "ferromq.conf")
        self.log = os.path.join(self.dir, "broker.log")
        self.host = cluster.net.node_host(nid)
        self.port = None if witness else cluster.mqtt_port
        self.http_port = cluster.http_port
        self.cluster_port = free_port()
        self.proc = None
        self.stopped = False  # SIGSTOPped
        self.exits = []

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port) if self.port else None

    def write_config(self, join=False):
        c = self.cluster
        lines = ["persistence_location %s" % self.data,
                 "log_type all",
                 "cluster_node_id %d" % self.id,
                 "cluster_listener %d %s" % (self.cluster_port, self.host),
                 "cluster_role %s" % ("witness" if self.witness else "broker")]
        # Every node's HTTP listener (a witness's serves the cluster's part);
        # a witness runs no MQTT listener.
        lines[0:0] = ["http_listener %d %s" % (self.http_port, self.host),
                      "http_token_file %s" % c.token_file]
        if self.port:
            lines.insert(0, "listener %d %s" % (self.port, self.host))
        for other in c.nodes.values():
            if other is not self and not join:  # a joining node learns the cluster from the leader
                lines.append("cluster_peer %d %s" % (other.id, c.net.peer_address(other.id)))
        if c.election_timeout_ms:
            lines.append("cluster_election_timeout %d" % c.election_timeout_ms)
        if c.heartbeat_ms:
            lines.append("cluster_heartbeat %d" % c.heartbeat_ms)
        if join:
            lines.append("cluster_join true")
        lines += [line.replace("{host}", self.host) for line in c.extra_lines]  # e.g. a listener's address
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, join=False):
        self.write_config(join)
        with open(self.log, "ab") as log:
            log.write(b"---- start %.3f\n" % time.time())
            log.flush()
            # libraft's own leaks at close (its transport's buffers, after a
            # stalled link or a SIGSTOP) are suppressed as for the raft
            # module's tests: libraft frames only (tests/cluster/lsan.supp).
            env = dict(os.environ, LSAN_OPTIONS="suppressions=%s:print_suppressions=0" % clusterlib.LSAN_SUPP)
            argv = self.cluster.net.command(self.id, [broker_bin(), "-c", self.conf])
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, env=env)
        self.stopped = False
        self.started_at = time.monotonic()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        self.proc.kill()
        self.exits.append(self.proc.wait(10))
        self.stopped = False

    def sigstop(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def stop(self, timeout=20):
        """SIGTERM and wait; the exit status ("timeout" if it hung: then killed)."""
        if not self.alive():
            return self.proc.returncode if self.proc else 0
        if self.stopped:
            self.sigcont()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "timeout"
        self.exits.append(rc)
        return rc

    def probe(self, version=4, timeout=1.0):
        """(CONNACK code, Server Reference) or None; see probe_connect."""
        if not self.port or not self.alive() or self.stopped:
            return None
        return probe_connect(self.host, self.port, version, timeout)

    def http_get(self, path, timeout=1.0):
        """urlopen of GET path on this node's HTTP listener, with the token."""
        req = urllib.request.Request("http://%s:%d%s" % (self.host, self.http_port, path),
                                     headers={"Authorization": "Bearer " + self.cluster.token})
        return urllib.request.urlopen(req, timeout=timeout)

    def readyz(self, timeout=1.0):
        """/readyz's HTTP status, or None when nothing answers."""
        try:
            with self.http_get("/readyz", timeout) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except (OSError, urllib.error.URLError):
            return None


class ProxyNet(FaultNet):
    """A BrokerCluster's network through the fault proxy, on loopback: node
    N at 127.0.0.N, its peers told the proxy's ports."""

    def node_host(self, nid):
        return "127.0.0.%d" % nid

    def attach(self, node):
        self.add_node(node.id, node.cluster_port, free_port(), node.host)

    def peer_address(self, nid):
        return self.proxy_address(nid)

    def command(self, nid, argv):
        return argv

    def where(self, nid):
        return "proxy %s" % self.proxy_address(nid)


class NamespaceNet:
    """A BrokerCluster's network of namespaces (netns.TestNet, made here:
    needs root): node N in namespace "nN" at its address, the test's clients
    in "clients"; peers are told each other's cluster listeners, reachable
    only through the bridge. isolate(N) takes node N's link down, heal()
    restores every link. The test enters the clients' namespace for what it
    does as a client (clients()), a node's to act beside it (inside(N))."""

    def __init__(self, n):
        self.testnet = netns.TestNet(["n%d" % i for i in range(1, n + 1)] + ["clients"])
        self.nodes = {}

    def node_host(self, nid):
        return self.testnet.address("n%d" % nid)

    def attach(self, node):
        self.nodes[node.id] = node

    def peer_address(self, nid):
        node = self.nodes[nid]
        return "%s:%d" % (node.host, node.cluster_port)

    def command(self, nid, argv):
        return self.testnet.command("n%d" % nid, argv)

    def where(self, nid):
        member = "n%d" % nid
        return "netns %s%s" % (self.testnet.ns(member), ", link cut" if member in self.testnet.cut_members else "")

    def isolate(self, nid):
        self.testnet.cut("n%d" % nid)

    def heal(self):
        self.testnet.heal()

    def clients(self):
        return self.testnet.entering("clients")

    def inside(self, nid):
        return self.testnet.entering("n%d" % nid)

    def close(self):
        self.testnet.close()


class BrokerCluster:
    """n nodes (witness_ids among them are witnesses), not started; on
    net (ProxyNet(HOST) when None, or a NamespaceNet for n nodes).
    extra_lines go in every node's configuration, "{host}" replaced by the
    node's address."""

    def __init__(self, root, n=3, witness_ids=(), election_timeout_ms=None, heartbeat_ms=None,
                 extra_lines=(), net=None):
        self.root = str(root)
        self.election_timeout_ms = election_timeout_ms
        self.heartbeat_ms = heartbeat_ms
        self.extra_lines = list(extra_lines)
        self.net = net if net is not None else ProxyNet(HOST)
        self.mqtt_port = free_port()
        self.http_port = free_port()
        os.makedirs(self.root, exist_ok=True)
        self.token = os.urandom(16).hex()
        self.token_file = os.path.join(self.root, "http.token")
        with open(self.token_file, "w") as f:
            f.write(self.token + "\n")
        os.chmod(self.token_file, 0o600)
        self.nodes = {}
        for i in range(1, n + 1):
            node = BrokerNode(self, i, witness=i in witness_ids)
            self.nodes[i] = node
            self.net.attach(node)

    def start(self):
        for node in self.nodes.values():
            node.start()
        return self

    def brokers(self):
        return [n for n in self.nodes.values() if not n.witness]

    def running(self):
        return [n for n in self.nodes.values() if n.alive() and not n.stopped]

    def leader(self, among=None):
        """The broker whose CONNACK is 0, among those running."""
        for node in among or self.running():
            if node.witness:
                continue
            r = node.probe()
            if r and r[0] == 0:
                return node
        return None

    def wait_leader(self, timeout=15, among=None):
        """The leader, or None after timeout (at once when no broker runs)."""
        def found():
            if not any(n.alive() for n in self.brokers()):
                return "none"
            return self.leader(among)
        r = wait_for(found, timeout, 0.02)
        return r if r != "none" else None

    def addresses(self):
        """Every broker's MQTT (host, port), for clients that try each."""
        return [(n.host, n.port) for n in self.brokers()]

    def kill_leader(self, sig=signal.SIGKILL, timeout=30):
        """Kills (or with SIGSTOP, stops) the broker that leads and waits for
        another to answer CONNACK 0. Returns (old, new, seconds from the
        signal to that CONNACK); new is None if none took over in time."""
        old = self.wait_leader()
        assert old, "no broker leads\n" + self.report()
        t0 = time.monotonic()
        if sig == signal.SIGKILL:
            old.kill9()
        elif sig == signal.SIGSTOP:
            old.sigstop()
        else:
            raise ValueError("signal %d: SIGKILL or SIGSTOP" % sig)
        others = [n for n in self.brokers() if n is not old]
        new = wait_for(lambda: self.leader([n for n in others if n.alive()]), timeout, 0.005)
        return old, new, time.monotonic() - t0

    def api(self, node, path, timeout=2.0):
        """GET node's HTTP API path: the decoded JSON, or None."""
        try:
            with node.http_get(path, timeout) as r:
                return json.loads(r.read().decode())
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def wait_caught_up(self, node, timeout=60):
        """Waits until node (restarted) has applied what the leader had
        committed when this was called (/api/cluster: commit_index,
        applied_index). Returns the seconds it took."""
        t0 = time.monotonic()
        leader = self.wait_leader()
        assert leader, "no broker leads\n" + self.report()
        st = self.api(leader, "/api/cluster")
        assert st and "commit_index" in st, "the leader's /api/cluster: %r" % (st,)
        target = st["commit_index"]
        ok = wait_for(lambda: (s := self.api(node, "/api/cluster")) and s.get("applied_index", -1) >= target,
                      timeout, 0.05)
        assert ok, "node %d did not catch up to index %d in %d s: %r\n%s" % (
            node.id, target, timeout, self.api(node, "/api/cluster"), self.report())
        return time.monotonic() - t0

    def report(self):
        """Each node's state and log tail, for a failing test."""
        out = []
        for n in self.nodes.values():
            state = "running" if n.alive() else "exited %s" % (n.proc.returncode if n.proc else "-")
            out.append("==== node %d (%s%s, mqtt %s, cluster %s:%d, %s) %s\n%s" % (
                n.id, "witness" if n.witness else "broker", ", SIGSTOPped" if n.stopped else "",
                n.address, n.host, n.cluster_port, self.net.where(n.id), state, log_tail(n.log)))
        return "\n".join(out)

    def shutdown(self):
        """Stops every node (SIGTERM) and its network; returns a list of
        problems: a node that did not exit 0, a sanitizer report."""
        problems = []
        for n in self.nodes.values():
            if n.proc is not None and n.alive():
                rc = n.stop()
                if rc != 0:
                    problems.append("node %d: exit %s after SIGTERM" % (n.id, rc))
        self.net.close()
        for n in self.nodes.values():
            rep = sanitizer_report(n.log)
            if rep:
                problems.append("node %d: sanitizer report:\n%s" % (n.id, rep))
        return problems


# ==================================================================== raft module

class _Peer(types.SimpleNamespace):
    """What clusterlib.Node.start reads of a voter: id and address."""


class RaftNode(clusterlib.Node):
    """An fm-cluster-node whose peers are at their proxy ports."""

    def start(self, voters=None, join=False):
        if voters is None and not join:
            voters = [v if v is self else _Peer(id=v.id, address=self.cluster.net.proxy_address(v.id))
                      for v in self.cluster.voters]
        super().start(voters, join)


class RaftCluster(clusterlib.Cluster):
    """clusterlib.Cluster with a FaultNet between its nodes."""

    def __init__(self, root, n=3, witness_ids=(), args=()):
        self.root = str(root)
        self.out = os.path.join(self.root, "out")
        os.makedirs(self.out, exist_ok=True)
        self.args = list(args)
        self.net = FaultNet(HOST)
        self.nodes = {}
        for i in range(1, n + 1):
            node = RaftNode(self, i, witness=i in witness_ids)
            self.nodes[i] = node
            self.net.add_node(i, node.port, free_port())
        self.voters = list(self.nodes.values())

    def start(self):
        for node in self.nodes.values():
            node.start()  # voters at their proxy ports (RaftNode.start)

    def report(self):
        out = []
        for n in self.nodes.values():
            out.append("==== node %d (port %d, proxy %d) status %s\n%s" % (
                n.id, n.port, self.net.proxy_port(n.id), n.status(), log_tail(n.log)))
        return "\n".join(out)

    def shutdown(self):
        codes = super().shutdown()
        self.net.close()
        problems = ["node %d: exit %s" % (i, rc) for i, rc in codes.items() if rc != 0]
        for n in self.nodes.values():
            rep = sanitizer_report(n.log)
            if rep:
                problems.append("node %d: sanitizer report:\n%s" % (n.id, rep))
        return problems


def port_open(port):
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False
