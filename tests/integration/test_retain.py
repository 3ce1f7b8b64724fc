"""Retained messages (MQTT 3.1.1 section 3.3.1.3; 5.0 section 3.3.1.3, 3.8.3.1)."""
import pytest

import mqttraw as M
from conftest import PROTOCOLS, connect_raw


def retained_on_subscribe(raw, broker, proto, flt, cid, qos=1, live_topic=None, opts=None):
    """Subscribe a fresh client to flt, then publish a live non-retained
    marker on live_topic (matching flt) and return what arrived before it."""
    r = connect_raw(raw, broker, cid, proto)
    r.subscribe([(flt, opts if opts is not None else qos)])
    pub = connect_raw(raw, broker, cid + "-pub", proto)
    pub.publish(live_topic, b"live-marker", qos=1)
    got = []
    while True:
        p = r.expect(M.PUBLISH)
        r.ack_fully(p)
        if p.payload == b"live-marker":
            assert not p.retain  # MQTT-3.3.1-9 (3.1.1), MQTT-3.3.1-12 (5.0)
            return r, got
        got.append(p)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_retained_set_replace_clear(broker, raw, proto):
    pub = connect_raw(raw, broker, "rt-pub", proto)
    pub.publish("rt/a", b"v1", qos=1, retain=True)
    _, got = retained_on_subscribe(raw, broker, proto, "rt/a", "s1", live_topic="rt/a")
    assert [(p.payload, p.retain) for p in got] == [(b"v1", True)]  # MQTT-3.3.1-8

    pub.publish("rt/a", b"v2", qos=1, retain=True)  # MQTT-3.3.1-5: replaces
    _, got = retained_on_subscribe(raw, broker, proto, "rt/a", "s2", live_topic="rt/a")
    assert [(p.payload, p.retain) for p in got] == [(b"v2", True)]

    pub.publish("rt/a", b"", qos=1, retain=True)  # MQTT-3.3.1-10/11: clears
    _, got = retained_on_subscribe(raw, broker, proto, "rt/a", "s3", live_topic="rt/a")
    assert got == []


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_retained_wildcard_and_qos(broker, raw, proto):
    pub = connect_raw(raw, broker, "rw-pub", proto)
    pub.publish("rw/a", b"a", qos=0, retain=True)
    pub.publish("rw/b", b"b", qos=1, retain=True)
    pub.publish("rw/c/d", b"cd", qos=2, retain=True)
    _, got = retained_on_subscribe(raw, broker, proto, "rw/#", "rws", qos=1, live_topic="rw/x")
    got = {p.topic: (p.payload, p.qos, p.retain) for p in got}
    assert got == {"rw/a": (b"a", 0, True), "rw/b": (b"b", 1, True), "rw/c/d": (b"cd", 1, True)}


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_live_delivery_retain_flag_cleared(broker, raw, proto):
    """MQTT-3.3.1-9: a retained message sent to an existing subscription has RETAIN 0
    (5.0: unless Retain As Published)."""
    r = connect_raw(raw, broker, "lv", proto)
    r.subscribe([("lv/t", 1)])
    pub = connect_raw(raw, broker, "lv-pub", proto)
    pub.publish("lv/t", b"x", qos=1, retain=True)
    p = r.expect(M.PUBLISH)
    assert p.payload == b"x" and not p.retain


def test_v5_retain_as_published(broker, raw):
    """MQTT-3.3.1-13: Retain As Published keeps the RETAIN flag."""
    r = connect_raw(raw, broker, "rap", 5)
    r.subscribe([("rap/t", M.sub_opts(1, rap=True))])
    pub = connect_raw(raw, broker, "rap-pub", 5)
    pub.publish("rap/t", b"ret", qos=1, retain=True)
    pub.publish("rap/t", b"plain", qos=1, retain=False)
    a = r.expect(M.PUBLISH)
    b = r.expect(M.PUBLISH)
    assert (a.payload, a.retain) == (b"ret", True)
    assert (b.payload, b.retain) == (b"plain", False)


@pytest.mark.parametrize("rh,first,again", [(0, 1, 1), (1, 1, 0), (2, 0, 0)])
def test_v5_retain_handling(broker, raw, rh, first, again):
    """MQTT-3.3.1-9/10/11 (5.0): Retain Handling 0 always, 1 if new, 2 never."""
    pub = connect_raw(raw, broker, "rh-pub", 5)
    pub.publish("rh/t", b"kept", qos=1, retain=True)
    r = connect_raw(raw, broker, "rh-sub", 5)

    def count_after_subscribe(pid):
        r.subscribe([("rh/t", M.sub_opts(1, rh=rh))], pid=pid)
        pub.publish("rh/t", b"live-marker", qos=1, pid=pid)
        n = 0
        while True:
            p = r.expect(M.PUBLISH)
            r.ack(p)
            if p.payload == b"live-marker":
                return n
            assert p.retain and p.payload == b"kept"
            n += 1

    assert count_after_subscribe(1) == first
    assert count_after_subscribe(2) == again


def test_v5_retain_unavailable(start_broker, raw):
    """MQTT 5.0 3.2.2.3.5: Retain Available 0 in CONNACK; a retained PUBLISH then
    gets DISCONNECT 0x9A (MQTT-3.3.1-... 'Retain not supported')."""
    b = start_broker(retain_available=False)
    r = raw(b, 5)
    ca = r.connect("noret", version=5)
    assert ca.props.get(M.P_RETAIN_AVAILABLE) == 0, ca
    r.send(M.publish("nr/t", b"x", qos=1, retain=True, pid=1, version=5))
    seen = r.recv_until_closed()
    assert seen and seen[-1].type == M.DISCONNECT and seen[-1].rc == 0x9A, seen


def test_v5_retained_message_expiry(broker, raw):
    """MQTT 5.0 3.3.2.3.3: an expired retained message is no longer sent."""
    import time
    pub = connect_raw(raw, broker, "rex-pub", 5)
    pub.publish("rex/short", b"s", qos=1, retain=True, properties=[(M.P_MESSAGE_EXPIRY, 1)])
    pub.publish("rex/long", b"l", qos=1, retain=True, properties=[(M.P_MESSAGE_EXPIRY, 100)])
    time.sleep(2.2)  # the test is about time passing
    _, got = retained_on_subscribe(raw, broker, 5, "rex/#", "rex-sub", live_topic="rex/x")
    assert [p.topic for p in got] == ["rex/long"], got
    assert 90 <= got[0].props.get(M.P_MESSAGE_EXPIRY, 0) <= 98, got[0]
