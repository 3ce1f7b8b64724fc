"""Offline queues on disk: a queued message of a persistent session keeps
only a small entry in memory once it is committed, and its body is read back
from the store when delivery reaches it. What a client sees must not change:
every message, in order, with its payload, subscription identifier and
remaining expiry; expired ones never; all of it across a kill -9.

MQTT 5.0 sections 3.3.2.3.3 (message expiry), 3.3.4 (subscription
identifiers), 4.6 (message ordering).
"""
import os
import sqlite3
import time

import pytest

import mqttraw as M
from conftest import PROTOCOLS, connect_raw, wait_for

V5 = 5


def persist_kw(proto, expiry=600, receive_max=None):
    kw = dict(clean=False)
    if proto == V5:
        kw["properties"] = [(M.P_SESSION_EXPIRY, expiry)]
        if receive_max:
            kw["properties"].append((M.P_RECEIVE_MAXIMUM, receive_max))
    return kw


def publish_many(pub, topic, payloads, qos=1, props_of=None):
    """Pipelines QoS 1 publishes and waits for every PUBACK."""
    for i, payload in enumerate(payloads):
        props = props_of(i) if props_of else None
        pub.send(M.publish(topic, payload, qos, False, False, i % 65535 + 1, pub.version, props))
    for _ in payloads:
        assert pub.expect_skip(M.PUBACK, timeout=30).rc in (0, None)


def receive(s, n, ack=True, timeout=10):
    got = []
    for _ in range(n):
        p = s.expect(M.PUBLISH, timeout=timeout)
        got.append(p)
        if ack:
            s.ack(p)
    return got


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_long_offline_queue_comes_back_from_disk(start_broker, raw, proto):
    """3,000 messages queued while the subscriber is away (bodies on disk, more
    than ten read-back batches) arrive in order with
    their payloads; v5: with the subscription identifier, without the ones
    that expired while queued."""
    b = start_broker(max_queued_messages=0)
    s = connect_raw(raw, b, "spill-sub", proto, **persist_kw(proto))
    props = [(M.P_SUBSCRIPTION_ID, 7)] if proto == V5 else None
    assert s.subscribe([("spill/#", 1)], properties=props).codes == [1]
    s.disconnect()
    pub = connect_raw(raw, b, "spill-pub", proto)
    n = 3000
    payloads = [b"m%05d-" % i + bytes([i % 251]) * (i % 300) for i in range(n)]
    short = set(range(50, n, 100)) if proto == V5 else set()
    publish_many(pub, "spill/t", payloads,
                 props_of=lambda i: [(M.P_MESSAGE_EXPIRY, 1)] if i in short else None)
    if short:
        time.sleep(2.2)  # let the short-lived ones expire while they sit on disk
    s = raw(b, proto)
    assert s.connect("spill-sub", **persist_kw(proto)).session_present
    want = [p for i, p in enumerate(payloads) if i not in short]
    got = receive(s, len(want))
    assert [p.payload for p in got] == want
    if proto == V5:
        assert all(p.props.get(M.P_SUBSCRIPTION_ID) in (7, [7]) for p in got), got[0].props
    assert s.quiet(0.5) == []
    assert "missing or damaged" not in b.log_text()


def test_backlog_of_a_connected_slow_client(start_broker, raw):
    """A connected client that takes 10 messages at a time (Receive Maximum)
    while 10,000 arrive: what is beyond the 8,192 kept in memory waits on
    disk and still comes in order, none twice."""
    b = start_broker(max_queued_messages=0)
    s = connect_raw(raw, b, "slow-sub", V5, **persist_kw(V5, receive_max=10))
    assert s.subscribe([("slow/t", 1)]).codes == [1]
    pub = connect_raw(raw, b, "slow-pub", V5)
    n = 10000
    payloads = [b"s%05d" % i for i in range(n)]
    publish_many(pub, "slow/t", payloads)
    got = receive(s, n)
    assert [p.payload for p in got] == payloads
    assert s.quiet(0.5) == []


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_queue_on_disk_survives_kill_and_second_offline_period(start_broker, raw, proto):
    """Bodies left on disk across a kill -9 are read back; a client that
    leaves again halfway through leaves the rest on disk, and it arrives
    after the next return."""
    b = start_broker(max_queued_messages=0)
    s = connect_raw(raw, b, "kq-sub", proto, **persist_kw(proto))
    s.subscribe([("kq/t", 1)])
    s.disconnect()
    pub = connect_raw(raw, b, "kq-pub", proto)
    payloads = [b"k%05d" % i for i in range(1500)]
    publish_many(pub, "kq/t", payloads)
    b.kill9()
    b.start(timeout=30)
    s = raw(b, proto)
    assert s.connect("kq-sub", **persist_kw(proto)).session_present
    first = receive(s, 700)
    assert [p.payload for p in first] == payloads[:700]
    s.disconnect()
    s = raw(b, proto)
    assert s.connect("kq-sub", **persist_kw(proto)).session_present
    rest = receive(s, 800)
    assert [p.payload for p in rest] == payloads[700:]
    assert s.quiet(0.5) == []


def test_body_gone_from_the_database_is_dropped_with_a_log_line(start_broker, raw):
    """A queued message whose stored body has vanished (a damaged or
    hand-edited database) is dropped with an error naming the session; the
    rest of the queue is delivered and the broker goes on."""
    b = start_broker(max_queued_messages=0)
    s = connect_raw(raw, b, "gone-sub", V5, **persist_kw(V5))
    s.subscribe([("gone/t", 1)])
    s.disconnect()
    pub = connect_raw(raw, b, "gone-pub", V5)
    payloads = [b"g%02d" % i for i in range(10)]
    publish_many(pub, "gone/t", payloads)
    db = sqlite3.connect(os.path.join(b.data, "ferromq.db"), timeout=10)

    def delete_body():
        # The journalled batches reach the database within half a second.
        with db:
            return db.execute("DELETE FROM msgs WHERE payload = ?", (payloads[4],)).rowcount

    assert wait_for(delete_body, what="the body in the database") == 1
    db.close()
    s = raw(b, V5)
    assert s.connect("gone-sub", **persist_kw(V5)).session_present
    got = receive(s, 9)
    assert [p.payload for p in got] == payloads[:4] + payloads[5:]
    assert s.quiet(0.5) == []
    assert "gone-sub is missing or damaged in the database" in b.log_text()
