"""Offline queue limits and flow control from the configuration."""
import time

import pytest

import mqttraw as M
from conftest import PROTOCOLS, connect_raw


def persist_kw(proto):
    kw = dict(clean=False)
    if proto == 5:
        kw["properties"] = [(M.P_SESSION_EXPIRY, 300)]
    return kw


def offline_subscriber(raw, b, proto, cid, topic="ql/t", qos=1):
    r = connect_raw(raw, b, cid, proto, **persist_kw(proto))
    r.subscribe([(topic, qos)])
    r.disconnect()


def reconnect_and_drain(raw, b, proto, cid, marker=b"marker", topic="ql/t"):
    """Reconnect, publish a marker after the queue, return payloads before it."""
    r = raw(b, proto)
    assert r.connect(cid, **persist_kw(proto)).session_present
    pub = connect_raw(raw, b, cid + "-marker", proto)
    got = []
    marker_sent = False
    while True:
        try:
            p = r.expect(M.PUBLISH, 1.0 if not marker_sent else 5.0)
        except TimeoutError:
            assert not marker_sent, "marker not received"
            pub.publish(topic, marker, qos=1, pid=999)
            marker_sent = True
            continue
        r.ack_fully(p)
        if p.payload == marker:
            return got
        got.append(p.payload)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_drop_oldest_keeps_newest(start_broker, raw, proto):
    b = start_broker(max_queued_messages=5, queue_overflow="drop_oldest")
    offline_subscriber(raw, b, proto, "do")
    pub = connect_raw(raw, b, "do-pub", 5)
    for i in range(10):
        ack = pub.publish("ql/t", b"%d" % i, qos=1, pid=i + 1)
        assert ack.rc == 0, ack
    got = reconnect_and_drain(raw, b, proto, "do")
    assert got == [b"%d" % i for i in range(5, 10)]


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_reject_new_keeps_oldest_and_v5_gets_0x97(start_broker, raw, proto):
    b = start_broker(max_queued_messages=5, queue_overflow="reject_new")
    offline_subscriber(raw, b, proto, "rn")
    pub = connect_raw(raw, b, "rn-pub", 5)
    codes = [pub.publish("ql/t", b"%d" % i, qos=1, pid=i + 1).rc for i in range(10)]
    assert codes == [0] * 5 + [0x97] * 5, [hex(c) for c in codes]
    got = reconnect_and_drain(raw, b, proto, "rn")
    assert got == [b"%d" % i for i in range(5)]


def test_reject_new_v311_publisher_still_acked(start_broker, raw):
    b = start_broker(max_queued_messages=2, queue_overflow="reject_new")
    offline_subscriber(raw, b, 4, "rn3")
    pub = connect_raw(raw, b, "rn3-pub", 4)
    for i in range(4):
        ack = pub.publish("ql/t", b"%d" % i, qos=1, pid=i + 1)
        assert ack.type == M.PUBACK and ack.pid == i + 1
    assert reconnect_and_drain(raw, b, 4, "rn3") == [b"0", b"1"]


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_max_queued_bytes(start_broker, raw, proto):
    b = start_broker(max_queued_messages=0, max_queued_bytes=1000, queue_overflow="drop_oldest")
    offline_subscriber(raw, b, proto, "qb")
    pub = connect_raw(raw, b, "qb-pub", proto)
    for i in range(10):
        pub.publish("ql/t", (b"%d" % i) * 300, qos=1, pid=i + 1)
    got = reconnect_and_drain(raw, b, proto, "qb")
    assert 2 <= len(got) <= 3, [g[:1] for g in got]
    assert got == [(b"%d" % i) * 300 for i in range(10 - len(got), 10)]


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_message_expiry_default(start_broker, raw, proto):
    """message_expiry_default applies to messages without expiry, v3 included."""
    b = start_broker(message_expiry_default=1)
    offline_subscriber(raw, b, proto, "med")
    pub = connect_raw(raw, b, "med-pub", proto)
    pub.publish("ql/t", b"old", qos=1)
    if proto == 5:
        pub.publish("ql/t", b"explicit", qos=1, pid=2, properties=[(M.P_MESSAGE_EXPIRY, 100)])
    time.sleep(2.2)  # the test is about time passing
    got = reconnect_and_drain(raw, b, proto, "med")
    assert got == ([b"explicit"] if proto == 5 else []), got


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_max_inflight_messages(start_broker, raw, proto):
    b = start_broker(max_inflight_messages=2)
    sub = connect_raw(raw, b, "mi", proto)
    sub.subscribe([("mi/t", 1)])
    pub = connect_raw(raw, b, "mi-pub", proto)
    for i in range(6):
        pub.publish("mi/t", b"%d" % i, qos=1, pid=i + 1)
    window = [sub.expect(M.PUBLISH), sub.expect(M.PUBLISH)]
    assert sub.quiet(0.5) == []
    got = list(window)
    while len(got) < 6:
        sub.ack(window.pop(0))
        p = sub.expect(M.PUBLISH)
        got.append(p)
        window.append(p)
        assert sub.quiet(0.1) == []
    assert [p.payload for p in got] == [b"%d" % i for i in range(6)]
