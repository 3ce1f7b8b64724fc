#!/usr/bin/python3
"""Commit throughput and latency of a 3-node fm-cluster-node cluster on
loopback (a measurement, not part of ctest). The leader's producer keeps
WINDOW proposals of BATCH messages of ESIZE bytes in flight; latency is
propose-to-done (committed on a majority and applied on the leader).

usage: FM_CLUSTER_NODE=build/fm-cluster-node /usr/bin/python3 tests/cluster/bench.py SECONDS [NODE ARGS...]
"""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clusterlib import Cluster, wait_for  # noqa: E402


def main():
    seconds = float(sys.argv[1])
    c = Cluster(tempfile.mkdtemp(prefix="fm-cluster-bench-"), 3, args=sys.argv[2:])
    c.start()
    try:
        leader = c.wait_leader(10)
        assert leader, "no leader"
        c.load(True)
        time.sleep(1.0)  # warm-up: segments created, connections up
        leader.send("bench start")
        time.sleep(seconds)
        leader.send("bench report")
        path = os.path.join(c.out, f"bench-{leader.id}")
        assert wait_for(lambda: os.path.exists(path), 5)
        c.load(False)
        r = dict(line.split() for line in open(path))
        print(" ".join(f"{k} {v}" for k, v in r.items()), "args", " ".join(sys.argv[2:]))
        c.check_history()
    finally:
        c.shutdown()
        shutil.rmtree(c.root, ignore_errors=True)


if __name__ == "__main__":
    main()
