#!/usr/bin/python3
"""Kill cycles on a three-node broker cluster (`make test-failover`): QoS 1
and QoS 2 publishers and a subscriber with persistent sessions run
throughout; each cycle kills the leader with kill -9 under that load, times
the first CONNACK 0 on the new leader, restarts the killed node and waits
until it has caught up. At the end every acknowledged message must have
been delivered, QoS 2 exactly once, each publisher's order kept.

usage: FERROMQ_BIN=build-test/ferromq /usr/bin/python3 tests/ha/failover_cycles.py [CYCLES]
  CYCLES (default 50); WITNESS=1: two brokers and a witness;
  FAILOVER_DEADLINE_S (default 1200): the whole run fails past it;
  KEEP=1 keeps the cluster's directory (logs, data) even when it passes.
Exit status 0 only if every cycle failed over and nothing was lost.
"""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import haload  # noqa: E402
import halib  # noqa: E402


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main():
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    deadline = time.monotonic() + float(os.environ.get("FAILOVER_DEADLINE_S", "1200"))
    root = tempfile.mkdtemp(prefix="fm-ha-failover-")
    witness = os.environ.get("WITNESS") == "1"
    c = halib.BrokerCluster(root, 3, witness_ids=(3,) if witness else ())
    c.start()
    load = None
    failover, catch_up, failed = [], [], []
    try:
        assert c.wait_leader(), "no broker leads\n" + c.report()
        load = haload.Load(c.addresses())
        load.start()
        for i in range(cycles):
            if time.monotonic() > deadline:
                failed.append("deadline passed after %d cycles" % i)
                break
            r = haload.kill_cycle(c, load)
            failover.append(r["failover_s"] * 1000)
            catch_up.append(r["catch_up_s"] * 1000)
            print("cycle %d: node %d killed, node %d accepts after %.0f ms, node %d caught up in %.0f ms, acked %s"
                  % (i + 1, r["killed"], r["new"], failover[-1], r["killed"], catch_up[-1], load.acked_counts()),
                  flush=True)
        problems = load.finish(60)
        failed += problems
        print("acknowledged:", load.acked_counts(), "refused (v5 reason >= 0x80):", load.refused_counts(),
              "delivered:", len(load.sub.delivered()))
        for name, xs in (("fail-over (kill -9 to CONNACK 0)", failover), ("catch-up of the restarted node", catch_up)):
            if xs:
                print("%s: n=%d min %.0f median %.0f p90 %.0f p99 %.0f max %.0f ms"
                      % (name, len(xs), min(xs), pct(xs, 0.5), pct(xs, 0.9), pct(xs, 0.99), max(xs)))
    except AssertionError as e:
        failed.append(str(e))
    finally:
        if load:
            load.stop()
        failed += c.shutdown()
        if failed or os.environ.get("KEEP") == "1":
            print("cluster directory kept:", root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    for f in failed:
        print("FAILED:", f)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
