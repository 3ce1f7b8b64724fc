"""haload, the load and the check of the fail-over and partition suites,
proven without a cluster: its check on made-up runs, and its clients on
one durable broker killed with kill -9 and restarted at the same address
(reconnect, the session found again, in-flight messages re-sent)."""
import os
import signal

import haload
from halib import wait_for


def test_checker_finds_loss_duplicates_and_disorder():
    acked = {"a": {1, 2, 3}, "b": {1, 2}}
    qos = {"a": 1, "b": 2}
    assert haload.check_deliveries(acked, qos, [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2)]) == []
    # QoS 1 may repeat an older message after a fail-over.
    assert haload.check_deliveries(acked, qos, [("a", 1), ("a", 2), ("a", 1), ("a", 3), ("b", 1), ("b", 2)]) == []
    p = haload.check_deliveries(acked, qos, [("a", 1), ("a", 3), ("b", 1), ("b", 1)])
    assert any("a: 1 acknowledged message(s) never delivered: [2]" in x for x in p), p
    assert any("b: 1 acknowledged" in x for x in p), p
    assert any("QoS 2 message 1 delivered 2 times" in x for x in p), p
    p = haload.check_deliveries(acked, qos, [("a", 2), ("a", 1), ("a", 3), ("b", 1), ("b", 2)])
    assert p == ["a: order broken, 1 time(s), first: 2 then 1"], p


def test_load_survives_kill9_of_a_durable_broker(start_broker):
    b = start_broker(durability="full")
    load = haload.Load([("127.0.0.1", b.port)])
    load.start()
    try:
        for _ in range(2):
            before = load.acked_counts()
            assert wait_for(lambda: all(n > before[k] + 50 for k, n in load.acked_counts().items()), 10), \
                load.acked_counts()
            os.kill(b.proc.pid, signal.SIGKILL)
            b.proc.wait()
            b.logf.close()
            b.start()
        assert wait_for(lambda: all(len(p.connects) == 3 for p in load.pubs + [load.sub]), 15), \
            [(c.client_id, c.connects) for c in load.pubs + [load.sub]]
        problems = load.finish()
    finally:
        load.stop()
    assert not problems, "\n".join(problems)
    # Sessions were found after each restart (else a problem above), and
    # the publishers' messages made it through both kills.
    assert all(n > 100 for n in load.acked_counts().values()), load.acked_counts()
