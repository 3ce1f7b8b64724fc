"""Fail-over of a three-node broker cluster (issue 14, Must hold 3): kill -9
of the leader under QoS 1 and QoS 2 load with persistent sessions, a hung
leader (SIGSTOP) voted out and refusing clients once resumed, and the
two-brokers-plus-witness variant, a node restarted far behind (the
rolling restart is test_operations'). Each ends with haload's check: every
acknowledged message delivered, QoS 2 exactly once, each publisher's order
kept, every session found after a reconnect. `make test-failover`
(failover_cycles.py) runs the long version."""
import signal
import time

import haload
from halib import CONNACK_SERVER_UNAVAILABLE, CONNACK_USE_ANOTHER_SERVER, wait_for



def test_kill9_leader_under_load(broker_cluster):
    c = broker_cluster(3)
    assert c.wait_leader(), "no broker leads\n" + c.report()
    load = haload.Load(c.addresses())
    load.start()
    try:
        for cycle in range(2):
            r = haload.kill_cycle(c, load)
            print("cycle %d: node %d killed, node %d accepts after %.0f ms; node %d caught up in %.0f ms"
                  % (cycle + 1, r["killed"], r["new"], r["failover_s"] * 1000, r["killed"], r["catch_up_s"] * 1000))
        time.sleep(1.0)
        problems = load.finish()
    finally:
        load.stop()
    print("refused (v5 reason >= 0x80):", load.refused_counts())
    assert not problems, "\n".join(problems)
    assert all(n > 0 for n in load.acked_counts().values())


def test_stopped_leader_is_voted_out_and_refuses_clients_after_sigcont(broker_cluster):
    c = broker_cluster(3)
    assert c.wait_leader(), "no broker leads\n" + c.report()
    load = haload.Load(c.addresses())
    load.start()
    try:
        time.sleep(1.0)
        old, new, took = c.kill_leader(signal.SIGSTOP)
        assert new, "no broker took over from the stopped node %d\n%s" % (old.id, c.report())
        print("SIGSTOP: node %d accepts %.0f ms after node %d stopped" % (new.id, took * 1000, old.id))
        time.sleep(1.0)
        old.sigcont()
        # Resumed, it learns of the newer term and refuses clients: v3.1.1
        # "server unavailable", v5 "use another server" naming the leader.
        v4 = wait_for(lambda: (r := old.probe(4)) and r[0] != 0 and r, 5)
        assert v4 and v4[0] == CONNACK_SERVER_UNAVAILABLE, "v3.1.1 CONNACK of the resumed node: %r" % (v4,)
        v5 = old.probe(5)
        assert v5 and v5[0] == CONNACK_USE_ANOTHER_SERVER, "v5 CONNACK of the resumed node: %r" % (v5,)
        assert v5[1] == new.address, "Server Reference %r, the leader is %s" % (v5[1], new.address)
        assert c.leader() is new
        time.sleep(0.5)
        problems = load.finish()
    finally:
        load.stop()
    print("refused (v5 reason >= 0x80):", load.refused_counts())
    assert not problems, "\n".join(problems)


def test_two_brokers_and_a_witness(broker_cluster):
    c = broker_cluster(3, witness_ids=(3,))
    assert c.wait_leader(), "no broker leads\n" + c.report()
    load = haload.Load(c.addresses())
    load.start()
    try:
        r = haload.kill_cycle(c, load)
        print("witness variant: node %d killed, node %d accepts after %.0f ms"
              % (r["killed"], r["new"], r["failover_s"] * 1000))
        time.sleep(1.0)
        problems = load.finish()
    finally:
        load.stop()
    print("refused (v5 reason >= 0x80):", load.refused_counts())
    assert not problems, "\n".join(problems)


def test_restarted_node_with_a_long_log_behind_catches_up(broker_cluster):
    """A follower stopped while the others commit comes back far behind:
    it catches up (snapshot + log) while the leader goes on acknowledging."""
    c = broker_cluster(3)
    leader = c.wait_leader()
    assert leader, "no broker leads\n" + c.report()
    lagger = next(n for n in c.brokers() if n is not leader)
    assert lagger.stop() == 0
    load = haload.Load(c.addresses())
    load.start()
    try:
        time.sleep(4.0)
        before = load.acked_counts()
        lagger.start()
        took = c.wait_caught_up(lagger)
        after = load.acked_counts()
        print("node %d caught up in %.0f ms; acknowledged meanwhile: %s"
              % (lagger.id, took * 1000, {k: after[k] - before[k] for k in after}))
        assert all(after[k] > before[k] for k in after), "acknowledgements stopped during the catch-up"
        assert c.leader() is leader
        problems = load.finish()
    finally:
        load.stop()
    print("refused (v5 reason >= 0x80):", load.refused_counts())
    assert not problems, "\n".join(problems)

