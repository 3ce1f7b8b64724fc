#!/usr/bin/python3
"""Kill cycles on a 3-node fm-cluster-node cluster (not part of ctest: a
measurement). Each cycle: load, kill -9 the leader, time the new leader and
its first commit, restart the killed node, check the history (nothing
acknowledged lost, nothing applied twice). Prints one line per cycle and
the distribution.

usage: FM_CLUSTER_NODE=build/fm-cluster-node /usr/bin/python3 tests/cluster/failover_cycles.py CYCLES [NODE ARGS...]
With WITNESS=1, node 3 is a witness (two brokers and a witness).
"""
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clusterlib import Cluster, wait_for  # noqa: E402


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main():
    cycles = int(sys.argv[1])
    root = tempfile.mkdtemp(prefix="fm-failover-")
    witness = os.environ.get("WITNESS") == "1"
    c = Cluster(root, 3, witness_ids=(3,) if witness else (), args=sys.argv[2:])
    c.start()
    to_leader, to_commit = [], []
    try:
        for i in range(cycles):
            old = wait_for(lambda: (n := c.leader()) and not n.witness and n, 10)
            assert old, "no broker leads"
            c.load(True)
            time.sleep(0.7)
            t = time.time()
            old.kill(signal.SIGKILL)
            others = c.running()

            def new_leader():
                n = c.leader(others)
                return n if n and not n.witness and n.fresh_status()["leader_since_ms"] >= t * 1000 else None
            new = wait_for(new_leader, 15, 0.002)
            assert new, f"cycle {i}: no new leader"
            s = wait_for(lambda: (st := new.fresh_status())["first_commit_ms"] and st, 10)
            lead_ms = s["leader_since_ms"] - t * 1000
            commit_ms = s["first_commit_ms"] - t * 1000
            to_leader.append(lead_ms)
            to_commit.append(commit_ms)
            c.load(False)
            old.start()
            c.check_history()
            print(f"cycle {i + 1}: node {old.id} killed, node {new.id} leads after {lead_ms:.0f} ms, "
                  f"first commit after {commit_ms:.0f} ms", flush=True)
        for name, xs in (("new leader", to_leader), ("first commit", to_commit)):
            print(f"{name}: n={len(xs)} min {min(xs):.0f} median {pct(xs, 0.5):.0f} "
                  f"p90 {pct(xs, 0.9):.0f} max {max(xs):.0f} ms")
    finally:
        codes = c.shutdown()
        print("clean stops:", codes)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
