"""Runs fm-cluster-node processes on loopback for the cluster tests.

Each node has its own port, data directory and stdin pipe (commands); its
status file is read back. Only processes started here are signalled, by PID.
"""
import json
import os
import signal
import subprocess
import sys
import time

BIN = os.environ.get("FM_CLUSTER_NODE", "build-test/fm-cluster-node")
LSAN_SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lsan.supp")

FOLLOWER, CANDIDATE, LEADER = 1, 2, 3


# Ports from the suites' shared pool (below the ephemeral range, held by a
# lock until this process ends), so parallel ctest runs never share one.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from fm_harness import free_port  # noqa: E402


def wait_for(pred, timeout, step=0.01):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = pred()
        if r:
            return r
        time.sleep(step)
    return None


class Node:
    def __init__(self, cluster, nid, witness=False):
        self.cluster, self.id, self.witness = cluster, nid, witness
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.data = os.path.join(cluster.root, f"data{nid}")
        self.proc = None
        self.log = os.path.join(cluster.root, f"node{nid}.log")

    def start(self, voters=None, join=False):
        """First start and restarts alike get the voters, as a broker's
        configuration file would give them (a data directory with a log
        keeps its own configuration)."""
        if voters is None and not join:
            voters = self.cluster.voters
        args = [BIN, "--id", str(self.id), "--address", self.address, "--data", self.data,
                "--out", self.cluster.out] + self.cluster.args
        if self.witness:
            args.append("--witness")
        if join:
            args.append("--join")
        for v in voters or []:
            args += ["--voter", f"{v.id}={v.address}"]
        with open(self.log, "a") as log:
            env = dict(os.environ, LSAN_OPTIONS=f"suppressions={LSAN_SUPP}:print_suppressions=0")
            self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=log, stderr=log, env=env)
        self.started_at = time.time()

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.proc.wait(10)

    def stop(self, timeout=15):
        """Clean stop; returns the exit status."""
        if not self.alive():
            return self.proc.returncode if self.proc else 0
        self.send("stop")
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "timeout"

    def status(self):
        try:
            d = {"w": {}}
            with open(os.path.join(self.cluster.out, f"status-{self.id}")) as f:
                for line in f:
                    k, *v = line.split()
                    if k == "w":
                        d["w"][int(v[0])] = int(v[1])
                    else:
                        d[k] = int(v[0])
            return d if "failed_entries" in d else None
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def fresh_status(self):
        """A status written by this process (not a previous run's file)."""
        s = self.status()
        if s and s["pid"] == self.proc.pid and s["now_ms"] >= self.started_at * 1000 - 50:
            return s
        return None

    def cluster_json(self):
        with open(os.path.join(self.cluster.out, f"cluster-{self.id}.json")) as f:
            return json.load(f)

    def events(self):
        try:
            with open(os.path.join(self.cluster.out, f"events-{self.id}")) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def acks(self):
        """{writer key: highest acknowledged sequence}"""
        acked = {}
        try:
            with open(os.path.join(self.cluster.out, f"acks-{self.id}")) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2:
                        k, v = int(parts[0]), int(parts[1])
                        acked[k] = max(acked.get(k, 0), v)
        except FileNotFoundError:
            pass
        return acked


class Cluster:
    def __init__(self, root, n=3, witness_ids=(), args=()):
        self.root = str(root)
        self.out = os.path.join(self.root, "out")
        os.makedirs(self.out, exist_ok=True)
        self.args = list(args)
        self.nodes = {i: Node(self, i, witness=i in witness_ids) for i in range(1, n + 1)}
        self.voters = list(self.nodes.values())

    def start(self):
        for node in self.nodes.values():
            node.start(self.voters)

    def add_node(self, nid, witness=False):
        node = Node(self, nid, witness)
        self.nodes[nid] = node
        node.start(voters=[], join=True)
        return node

    def running(self):
        return [n for n in self.nodes.values() if n.alive()]

    def leader(self, among=None):
        for node in among or self.running():
            s = node.fresh_status()
            if s and s["state"] == LEADER:
                return node
        return None

    def wait_leader(self, timeout=10, among=None):
        return wait_for(lambda: self.leader(among), timeout)

    def load(self, on):
        for node in self.running():
            if not node.witness:
                node.send("load on" if on else "load off")

    def wait_converged(self, timeout=20):
        """Every running node applied the same index (load is off)."""
        def same():
            st = [n.fresh_status() for n in self.running()]
            if not all(st):
                return None
            # Nothing in flight either: proposals sent before "load off"
            # are still being committed for a moment.
            idx = {(s["applied"], s["commit"], s["last_index"]) for s in st}
            if len(idx) == 1 and len(set(next(iter(idx)))) == 1:
                return {n.id: s for n, s in zip(self.running(), st)}
            return None
        return wait_for(same, timeout, 0.05)

    def check_history(self, acked=None):
        """The checks every test ends with, on converged nodes: no message
        applied twice or skipped, the index done() gave is the applied one,
        the same history everywhere, and every acknowledged message applied."""
        st = self.wait_converged()
        assert st, "nodes did not converge: %s" % [n.status() for n in self.running()]
        brokers = [(n, st[n.id]) for n in self.running() if not n.witness]
        for node, s in brokers:
            assert s["violations"] == 0, f"node {node.id}: {s['violations']} gaps or duplicates"
            assert s["index_errors"] == 0, f"node {node.id}: {s['index_errors']} index errors"
        chains = {s["chain"] for _, s in brokers}
        assert len(chains) == 1, "histories differ: %s" % [(n.id, s["chain"], s["fsm_index"]) for n, s in brokers]
        msgs = {s["msgs"] for _, s in brokers}
        assert len(msgs) == 1, msgs
        acked = acked if acked is not None else self.all_acks()
        for node, s in brokers:
            for key, last in acked.items():
                assert s["w"].get(key, 0) >= last, (
                    f"node {node.id} lost acknowledged messages of writer {key:#x}: "
                    f"applied {s['w'].get(key, 0)}, acknowledged {last}")
        return brokers

    def all_acks(self):
        acked = {}
        for node in self.nodes.values():
            for k, v in node.acks().items():
                acked[k] = max(acked.get(k, 0), v)
        return acked

    def shutdown(self):
        """Stops every node cleanly; returns {id: exit status} of those running."""
        codes = {}
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                try:
                    os.kill(node.proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                codes[node.id] = node.stop()
        return codes
