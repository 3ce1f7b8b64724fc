"""QoS 0/1/2 flows and ordering (MQTT 3.1.1 section 4.3, 4.6; 5.0 section 4.3, 4.6)."""
import pytest

import mqttraw as M
from conftest import PROTOCOLS, connect_raw


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_effective_qos_is_min(broker, client, proto):
    """MQTT-3.8.4-6 (3.1.1) / 3.8.4 (5.0): delivered QoS = min(pub QoS, granted QoS)."""
    sub = client(broker, "eq-sub", proto)
    for q in range(3):
        assert sub.subscribe("eq/%d" % q, q) == [q]
    pub = client(broker, "eq-pub", proto)
    for sq in range(3):
        for pq in range(3):
            pub.publish("eq/%d" % sq, ("%d%d" % (pq, sq)).encode(), pq)
    msgs = sub.messages.wait_for(9)
    got = {(m.topic, m.payload): m.qos for m in msgs}
    assert len(msgs) == 9, msgs
    for sq in range(3):
        for pq in range(3):
            assert got[("eq/%d" % sq, ("%d%d" % (pq, sq)).encode())] == min(pq, sq)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_qos1_flow_raw(broker, raw, proto):
    """MQTT-4.3.2: PUBLISH QoS1 -> PUBACK with the same packet id, both directions."""
    sub = connect_raw(raw, broker, "q1-sub", proto)
    assert sub.subscribe([("q1/t", 1)]).codes == [1]
    pub = connect_raw(raw, broker, "q1-pub", proto)
    ack = pub.publish("q1/t", b"hello", qos=1, pid=4242)
    assert ack.pid == 4242 and ack.rc == 0
    p = sub.expect(M.PUBLISH)
    assert (p.topic, p.payload, p.qos, p.dup, p.retain) == ("q1/t", b"hello", 1, False, False)
    assert p.pid != 0
    sub.ack(p)
    assert sub.quiet(0.3) == []


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_qos2_flow_raw(broker, raw, proto):
    """MQTT-4.3.3: PUBREC/PUBREL(flags 0x2)/PUBCOMP, both directions."""
    sub = connect_raw(raw, broker, "q2-sub", proto)
    assert sub.subscribe([("q2/t", 2)]).codes == [2]
    pub = connect_raw(raw, broker, "q2-pub", proto)
    pub.send(M.publish("q2/t", b"once", qos=2, pid=77, version=proto))
    rec = pub.expect(M.PUBREC)
    assert rec.pid == 77 and rec.rc == 0
    pub.send(M.ack(M.PUBREL, 77, version=proto))
    comp = pub.expect(M.PUBCOMP)
    assert comp.pid == 77
    p = sub.expect(M.PUBLISH)
    assert p.qos == 2 and p.payload == b"once" and p.pid
    sub.send(M.ack(M.PUBREC, p.pid, version=proto))
    rel = sub.expect(M.PUBREL)
    assert rel.pid == p.pid and rel.flags == 0x2  # MQTT-3.6.1-1
    sub.send(M.ack(M.PUBCOMP, p.pid, version=proto))
    assert sub.quiet(0.3) == []


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_qos2_duplicate_publish_delivered_once(broker, raw, proto):
    """MQTT-4.3.3-2 (3.1.1 method B): a re-sent QoS2 PUBLISH with the same packet
    id before PUBREL is not delivered again."""
    sub = connect_raw(raw, broker, "dup-sub", proto)
    sub.subscribe([("dup/t", 2)])
    pub = connect_raw(raw, broker, "dup-pub", proto)
    pub.send(M.publish("dup/t", b"x", qos=2, pid=9, version=proto))
    assert pub.expect(M.PUBREC).pid == 9
    pub.send(M.publish("dup/t", b"x", qos=2, pid=9, dup=True, version=proto))
    assert pub.expect(M.PUBREC).pid == 9
    pub.send(M.ack(M.PUBREL, 9, version=proto))
    assert pub.expect(M.PUBCOMP).pid == 9
    # marker after the flow
    pub.publish("dup/t", b"marker", qos=2, pid=10)
    got = []
    while True:
        p = sub.expect(M.PUBLISH)
        sub.ack_fully(p)
        got.append(p.payload)
        if p.payload == b"marker":
            break
    assert got == [b"x", b"marker"]


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_pubrel_for_unknown_id_gets_pubcomp(broker, raw, proto):
    """MQTT 5.0 3.7.2.1: PUBCOMP 0x92 (Packet Identifier not found) or 0x00;
    3.1.1: the receiver answers PUBREL with PUBCOMP."""
    r = connect_raw(raw, broker, "rel", proto)
    r.send(M.ack(M.PUBREL, 555, version=proto))
    comp = r.expect(M.PUBCOMP)
    assert comp.pid == 555
    if proto == 5:
        assert comp.rc in (0x00, 0x92)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_overlapping_subscriptions_deliver_once_at_max_qos(broker, client, raw, proto):
    """MQTT-3.3.5-1 (3.1.1), 3.3.4 (5.0): matching subscriptions -> max QoS;
    ferromq sends one copy; 5.0 carries every Subscription Identifier (MQTT-3.3.4-3)."""
    sub = connect_raw(raw, broker, "ov-sub", proto)
    if proto == 5:
        for i, (f, q) in enumerate([("ov/#", 1), ("ov/+", 2), ("ov/a", 0)], start=1):
            sub.subscribe([(f, q)], pid=i, properties=[(M.P_SUBSCRIPTION_ID, i)])
    else:
        sub.subscribe([("ov/#", 1), ("ov/+", 2), ("ov/a", 0)])
    pub = client(broker, "ov-pub", proto)
    pub.publish("ov/a", b"one", 2)
    pub.publish("ov/b", b"marker", 2)
    got = []
    while True:
        p = sub.expect(M.PUBLISH)
        sub.ack_fully(p)
        got.append(p)
        if p.payload == b"marker":
            break
    assert [p.payload for p in got] == [b"one", b"marker"], got
    assert got[0].qos == 2
    if proto == 5:
        assert sorted(got[0].props.get(M.P_SUBSCRIPTION_ID, [])) == [1, 2, 3], got[0]
        assert sorted(got[1].props.get(M.P_SUBSCRIPTION_ID, [])) == [1, 2], got[1]


@pytest.mark.parametrize("qos", [1, 2])
@pytest.mark.parametrize("proto", PROTOCOLS)
def test_order_kept_per_publisher(broker, client, proto, qos):
    """MQTT-4.6.0-5 (3.1.1), 4.6 (5.0): ordered topic, 500 messages in order."""
    n = 500
    sub = client(broker, "ord-sub", proto)
    sub.subscribe("ord/t", qos)
    pub = client(broker, "ord-pub", proto)
    infos = [pub.publish("ord/t", str(i).encode(), qos, wait=False) for i in range(n)]
    for info in infos:
        info.wait_for_publish(30)
    msgs = sub.messages.wait_for(n, timeout=60)
    assert [int(m.payload) for m in msgs] == list(range(n))
    assert all(m.qos == qos for m in msgs)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_packet_ids_valid_and_distinct(start_broker, raw, client, proto):
    """MQTT-2.3.1-1/2 (3.1.1), 2.2.1 (5.0): non-zero ids, unique while in flight."""
    b = start_broker(max_inflight_messages=10)
    sub = connect_raw(raw, b, "pid-sub", proto)
    sub.subscribe([("pid/t", 1)])
    pub = client(b, "pid-pub", proto)
    for i in range(30):
        pub.publish("pid/t", str(i).encode(), 1, wait=False)
    first = [sub.expect(M.PUBLISH) for _ in range(10)]
    ids = [p.pid for p in first]
    assert all(1 <= i <= 65535 for i in ids), ids
    assert len(set(ids)) == 10, ids
    got = list(first)
    for p in first:
        sub.ack(p)
    while len(got) < 30:
        p = sub.expect(M.PUBLISH)
        assert 1 <= p.pid <= 65535
        got.append(p)
        sub.ack(p)
    assert [int(p.payload) for p in got] == list(range(30))


@pytest.mark.parametrize("size", [0, 1, 120, 121, 16370, 16371, 2097140, 2097160])
def test_payload_size_boundaries(broker, raw, size):
    """Remaining Length varint boundaries (MQTT 2.2.3: 127/16383/2097151)."""
    sub = connect_raw(raw, broker, "big-sub", 5)
    sub.subscribe([("big/t", 1)])
    pub = connect_raw(raw, broker, "big-pub", 4)
    payload = bytes(i % 251 for i in range(size))
    assert pub.publish("big/t", payload, qos=1).pid == 1
    p = sub.expect(M.PUBLISH, 15)
    assert p.payload == payload


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_byte_by_byte_and_pipelined(broker, raw, proto):
    """Packets split into single bytes, and many packets in one write, are
    both parsed correctly."""
    import time
    sub = connect_raw(raw, broker, "frag-sub", proto)
    sub.subscribe([("frag/#", 1)])
    r = raw(broker, proto)
    data = M.connect("frag-pub", version=proto) + M.publish("frag/a", b"slow", qos=1, pid=1,
                                                              version=proto)
    for i in range(len(data)):
        r.send(data[i:i + 1])
        time.sleep(0.002)  # force separate segments
    assert r.expect(M.CONNACK).rc == 0
    assert r.expect(M.PUBACK).pid == 1
    burst = b"".join(M.publish("frag/b", b"%d" % i, qos=1, pid=i + 10, version=proto)
                     for i in range(50)) + M.pingreq()
    r.send(burst)
    acks = [r.expect(M.PUBACK).pid for _ in range(50)]
    assert acks == [i + 10 for i in range(50)]
    r.expect(M.PINGRESP)
    got = []
    for _ in range(51):
        p = sub.expect(M.PUBLISH)
        sub.ack(p)
        got.append(p.payload)
    assert got == [b"slow"] + [b"%d" % i for i in range(50)]


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_takeover_resends_inflight(broker, raw, client, proto):
    """A takeover keeps the session: unacknowledged QoS1 is re-sent on the new
    connection with DUP and the same packet id (MQTT-4.4.0-1)."""
    kw = dict(clean=False)
    if proto == 5:
        kw["properties"] = [(M.P_SESSION_EXPIRY, 60)]
    old = connect_raw(raw, broker, "tk-inflight", proto, **kw)
    old.subscribe([("tk/t", 1)])
    pub = client(broker, "tk-pub", proto)
    pub.publish("tk/t", b"held", 1)
    p1 = old.expect(M.PUBLISH)
    new = raw(broker, proto)
    assert new.connect("tk-inflight", **kw).session_present
    p2 = new.expect(M.PUBLISH)
    assert (p2.payload, p2.pid, p2.dup) == (b"held", p1.pid, True), (p1, p2)
    new.ack(p2)
    pub.publish("tk/t", b"next", 1)
    assert new.expect(M.PUBLISH).payload == b"next"


def test_v5_receive_maximum_counts_qos2_until_pubcomp(broker, raw, client):
    """MQTT-3.3.4-9: a QoS 2 message stays in the client's quota until PUBCOMP."""
    sub = raw(broker, 5)
    assert sub.connect("rm2", version=5, properties=[(M.P_RECEIVE_MAXIMUM, 1)]).rc == 0
    sub.subscribe([("rm2/t", 2)])
    pub = client(broker, "rm2-pub", 5)
    pub.publish("rm2/t", b"a", 2)
    pub.publish("rm2/t", b"b", 2)
    p = sub.expect(M.PUBLISH)
    sub.send(M.ack(M.PUBREC, p.pid, version=5))
    rel = sub.expect(M.PUBREL)
    assert sub.quiet(0.4) == []  # still one unacknowledged (waiting for PUBCOMP)
    sub.send(M.ack(M.PUBCOMP, rel.pid, version=5))
    p2 = sub.expect(M.PUBLISH)
    assert (p.payload, p2.payload) == (b"a", b"b")
