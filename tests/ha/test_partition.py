"""Partitions of a three-node broker cluster through the fault proxy
(`make test-partition`; issue 14: on partition the minority stops
acknowledging, consistency over availability). The leader is cut off from
both peers, or one way only, under QoS 1 and QoS 2 load: within about two
election timeouts it refuses CONNECT and acknowledges nothing its clients
publish; the majority elects a new leader that serves; after the heal the
old leader follows and refuses clients; nothing acknowledged is lost
(haload's check). Also with two brokers and a witness, and with only a
follower cut off."""
import threading
import time

import pytest

import haload
import mqttraw
from halib import CONNACK_SERVER_UNAVAILABLE, wait_for

ELECTION_MS = 500  # cluster_election_timeout's default
# About two election timeouts, and slack for two cores shared by the suites.
REFUSE_LIMIT_S = 2 * ELECTION_MS / 1000 + 0.5


def minority_client(node):
    """A v3.1.1 client connected to node, reading in a thread of its own and
    closing its end when the node closes the connection (as a client
    library does; one that never reads holds the node's switch to refusing
    for over a second). Returns (publish, pubacks): publish() sends one
    QoS 1 PUBLISH on the load's topic (the persistent subscriber's queue
    must have it: a PUBACK needs a commit); pubacks() waits up to 5 s for
    the connection to end and returns the PUBACKs received."""
    r = mqttraw.RawClient(node.port, 4, host=node.host)
    assert r.connect("ha-minority-%d" % time.monotonic_ns(), clean=True).rc == 0
    got = []

    def read():
        try:
            while True:
                got.append(r.recv(30.0))
        except (TimeoutError, mqttraw.ConnectionClosed, OSError):
            pass
        r.close()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def publish():
        r.send(mqttraw.publish(haload.TOPIC, b"minority 1", qos=1, pid=7))

    def pubacks():
        reader.join(5)
        return [p for p in got if p.type == mqttraw.PUBACK]
    return publish, pubacks


def partition_leader(c, how, mode):
    assert c.wait_leader(), "no broker leads\n" + c.report()
    load = haload.Load(c.addresses())
    load.start()
    try:
        time.sleep(1.0)
        old = c.wait_leader()
        assert c.net.bypasses() == [], "cluster traffic past the proxy: the cut would not cut it"
        publish, pubacks = minority_client(old)
        cut_at = time.monotonic()
        if how == "both":
            c.net.isolate(old.id, mode=mode)
        else:
            c.net.isolate(old.id, both=False, mode=mode, outgoing=how == "outgoing")
        publish()  # to the leader cut off, which cannot commit it any more
        # Short probes: a CONNECT that reaches the serving stack as it is
        # torn down is never answered, and would hide the refusals after it.
        stopped_s = None

        def refused():
            nonlocal stopped_s
            r = old.probe(4, timeout=0.2)
            if stopped_s is None and (r is None or r[0] != 0):
                stopped_s = time.monotonic() - cut_at
            return r and r[0] != 0 and r
        answer = wait_for(refused, 10, 0.01)
        refused_s = time.monotonic() - cut_at
        assert answer, "the cut-off leader still accepts CONNECT 10 s after the cut\n" + c.report()
        assert answer[0] == CONNACK_SERVER_UNAVAILABLE, answer
        assert pubacks() == [], "the cut-off leader acknowledged a publish"
        others = [n for n in c.brokers() if n is not old]
        new = wait_for(lambda: c.leader(others), 10, 0.01)
        assert new, "the majority elected no leader\n" + c.report()
        elected_s = time.monotonic() - cut_at
        print("%s cut (%s) of leader %d: it stops accepting CONNECT after %.0f ms, refuses it after %.0f ms; "
              "node %d accepts after %.0f ms" % (how, mode, old.id, stopped_s * 1000, refused_s * 1000, new.id,
                                                 elected_s * 1000))
        time.sleep(1.0)
        c.net.heal()
        # Healed: the old leader follows the new one and sends clients there.
        assert wait_for(lambda: (r := old.probe(5)) and r[0] != 0 and r[1] == new.address, 10), \
            "after the heal node %d does not name the leader %s: %r" % (old.id, new.address, old.probe(5))
        assert c.leader() is new
        time.sleep(1.0)
        problems = load.finish()
    finally:
        load.stop()
    assert not problems, "\n".join(problems)
    # Last, so that a slow refusal does not hide what the rest shows.
    assert stopped_s <= REFUSE_LIMIT_S, "the minority accepted clients %.2f s after the cut" % stopped_s
    assert refused_s <= REFUSE_LIMIT_S, (
        "the minority stopped accepting CONNECT %.2f s after the cut but refused it only after %.2f s "
        "(no CONNACK in between)" % (stopped_s, refused_s))


@pytest.mark.parametrize("mode", ["stall", "reset"])
def test_leader_cut_off_from_both_peers(broker_cluster, mode):
    partition_leader(broker_cluster(3), "both", mode)


@pytest.mark.parametrize("how", ["outgoing", "incoming"])
def test_leader_cut_off_one_way(broker_cluster, how):
    partition_leader(broker_cluster(3), how, "stall")


def test_follower_cut_off_does_not_disturb_the_leader(broker_cluster):
    c = broker_cluster(3)
    leader = c.wait_leader()
    assert leader, "no broker leads\n" + c.report()
    load = haload.Load(c.addresses())
    load.start()
    try:
        time.sleep(0.5)
        lone = next(n for n in c.brokers() if n is not leader)
        c.net.isolate(lone.id, mode="reset")
        before = load.acked_counts()
        time.sleep(2 * ELECTION_MS / 1000 + 0.5)
        assert c.leader() is leader, "leadership moved while only a follower was cut off\n" + c.report()
        assert all(n > before[k] for k, n in load.acked_counts().items()), "the majority stopped acknowledging"
        lone_answer = lone.probe(4)
        assert lone_answer and lone_answer[0] == CONNACK_SERVER_UNAVAILABLE, lone_answer
        c.net.heal()
        c.wait_caught_up(lone)
        problems = load.finish()
    finally:
        load.stop()
    assert not problems, "\n".join(problems)


def test_leader_cut_off_in_two_brokers_and_a_witness(broker_cluster):
    """The other broker and the witness are the majority: the broker takes
    over with the witness's vote and log."""
    partition_leader(broker_cluster(3, witness_ids=(3,)), "both", "stall")
