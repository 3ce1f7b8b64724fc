"""Malformed packets and protocol errors (MQTT 3.1.1 section 4.8 / 5.0 section
4.13): v5 gets DISCONNECT (or CONNACK) with the reason code, v3 is closed, and
the broker keeps serving."""
import random

import pytest

import mqttraw as M
from conftest import PROTOCOLS, assert_broker_alive, connect_raw

MALFORMED, PROTOCOL_ERROR, TOPIC_INVALID = 0x81, 0x82, 0x90


def publish_body(topic_bytes, qos=0, pid=None, version=4, payload=b"p"):
    body = M.mbin(topic_bytes)
    if qos:
        body += M.u16(pid if pid is not None else 1)
    if version == 5:
        body += M.props([])
    return body + payload


# (name, packet builder(version), expected v5 reason codes)
CASES = [
    ("remaining-length-5-bytes", lambda v: b"\x30\xff\xff\xff\xff\x01", (MALFORMED,)),
    ("subscribe-flags-0", lambda v: M.packet(M.SUBSCRIBE, 0, M.subscribe(1, [("a", 0)], v)[2:]),
     (MALFORMED,)),
    ("unsubscribe-flags-0", lambda v: M.packet(M.UNSUBSCRIBE, 0, M.unsubscribe(1, ["a"], v)[2:]),
     (MALFORMED,)),
    ("pubrel-flags-0", lambda v: M.packet(M.PUBREL, 0, M.u16(1)), (MALFORMED,)),
    ("pingreq-flags-1", lambda v: b"\xc1\x00", (MALFORMED,)),
    ("disconnect-flags-1", lambda v: b"\xe1\x00", (MALFORMED,)),
    ("publish-qos3", lambda v: M.packet(M.PUBLISH, 0x6, publish_body(b"a", 3, 1, v)), (MALFORMED,)),
    ("publish-bad-utf8", lambda v: M.packet(M.PUBLISH, 0, publish_body(b"a/\xff\xfe", version=v)),
     (MALFORMED,)),
    ("publish-nul-char", lambda v: M.packet(M.PUBLISH, 0, publish_body(b"a/\x00b", version=v)),
     (MALFORMED,)),
    ("publish-surrogate", lambda v: M.packet(M.PUBLISH, 0, publish_body(b"a/\xed\xa0\x80", version=v)),
     (MALFORMED,)),
    ("publish-wildcard-plus", lambda v: M.publish("a/+/b", b"x", version=v), (TOPIC_INVALID,)),
    ("publish-wildcard-hash", lambda v: M.publish("a/#", b"x", version=v), (TOPIC_INVALID,)),
    ("publish-qos1-pid0", lambda v: M.publish("a", b"x", qos=1, pid=0, version=v),
     (MALFORMED, PROTOCOL_ERROR)),
    ("subscribe-no-topics", lambda v: M.subscribe(1, [], v), (PROTOCOL_ERROR, MALFORMED)),
    ("unsubscribe-no-topics", lambda v: M.unsubscribe(1, [], v), (PROTOCOL_ERROR, MALFORMED)),
    ("subscribe-pid0", lambda v: M.subscribe(0, [("a", 0)], v), (MALFORMED, PROTOCOL_ERROR)),
    ("subscribe-qos3", lambda v: M.subscribe(1, [("a", 3)], v), (MALFORMED,)),
    ("subscribe-truncated", lambda v: M.packet(M.SUBSCRIBE, 2, M.u16(1) + (M.props([]) if v == 5 else b"")
                                               + b"\x00\x05ab"), (MALFORMED,)),
    ("publish-topic-longer-than-packet", lambda v: M.packet(M.PUBLISH, 0, b"\x00\x40abc"), (MALFORMED,)),
    ("reserved-type-0", lambda v: b"\x00\x00", (MALFORMED, PROTOCOL_ERROR)),
    ("connect-again", lambda v: M.connect("again", version=v), (PROTOCOL_ERROR,)),
    ("server-only-connack", lambda v: b"\x20\x02\x00\x00", (MALFORMED, PROTOCOL_ERROR)),
    ("server-only-suback", lambda v: b"\x90\x03\x00\x01\x00", (MALFORMED, PROTOCOL_ERROR)),
]

V5_CASES = [
    ("subscribe-reserved-option-bits", lambda v: M.subscribe(1, [("a", 0xC0)], v), (MALFORMED,)),
    ("subscribe-retain-handling-3", lambda v: M.subscribe(1, [("a", 0x30)], v), (MALFORMED, PROTOCOL_ERROR)),
    ("publish-duplicate-property", lambda v: M.publish("a", b"x", version=v, properties=[
        (M.P_PAYLOAD_FORMAT, 0), (M.P_PAYLOAD_FORMAT, 0)]), (PROTOCOL_ERROR, MALFORMED)),
    ("publish-property-wrong-packet", lambda v: M.publish("a", b"x", version=v, properties=[
        (M.P_SESSION_EXPIRY, 5)]), (MALFORMED, PROTOCOL_ERROR)),
    ("publish-property-length-overruns", lambda v: M.packet(M.PUBLISH, 0,
                                                            M.mstr("a") + b"\x10\x01\x00"), (MALFORMED,)),
    ("publish-subscription-id", lambda v: M.publish("a", b"x", version=v, properties=[
        (M.P_SUBSCRIPTION_ID, 3)]), (PROTOCOL_ERROR, MALFORMED)),
    ("publish-payload-format-2", lambda v: M.publish("a", b"x", version=v, properties=[
        (M.P_PAYLOAD_FORMAT, 2)]), (PROTOCOL_ERROR, MALFORMED)),
    ("auth-without-method", lambda v: b"\xf0\x02\x18\x00", (PROTOCOL_ERROR, MALFORMED)),
]


def check_rejected(r, proto, codes):
    seen = r.recv_until_closed()
    if proto == 5:
        assert seen, "closed without DISCONNECT"
        last = seen[-1]
        assert last.type == M.DISCONNECT, seen
        assert last.rc in codes, "DISCONNECT 0x%02x, expected %s" % (
            last.rc, "/".join("0x%02x" % c for c in codes))
    else:
        assert all(p.type not in (M.DISCONNECT,) for p in seen), seen


@pytest.mark.parametrize("name,build,codes", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("proto", PROTOCOLS)
def test_malformed_after_connect(broker, raw, proto, name, build, codes):
    r = connect_raw(raw, broker, "mal-" + name, proto)
    r.send(build(proto))
    check_rejected(r, proto, codes)
    assert_broker_alive(broker, proto)


@pytest.mark.parametrize("name,build,codes", V5_CASES, ids=[c[0] for c in V5_CASES])
def test_v5_malformed_after_connect(broker, raw, name, build, codes):
    r = connect_raw(raw, broker, "mal5-" + name, 5)
    r.send(build(5))
    check_rejected(r, 5, codes)
    assert_broker_alive(broker, 5)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_connect_reserved_flag(broker, raw, proto):
    """MQTT-3.1.2-3: reserved CONNECT flag must be 0 -> close (5.0: CONNACK 0x81 may be sent)."""
    r = raw(broker, proto)
    r.send(M.connect("rsv", version=proto, reserved=True))
    seen = r.recv_until_closed()
    if proto == 5:
        for p in seen:
            assert p.type == M.CONNACK and p.rc == MALFORMED, seen
    else:
        assert seen == [], seen
    assert_broker_alive(broker, proto)


@pytest.mark.parametrize("data", [
    b"\x10\xff\xff\xff\xff\x01",                # bad varint in CONNECT
    b"\x10\x02\x00\x04",                         # protocol name cut off
    b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x05ab",  # client id cut off
    b"\x11" + M.connect("flags", version=4)[1:],  # CONNECT with fixed-header flags 1
], ids=["varint", "short-name", "short-id", "fixed-flags"])
def test_malformed_connect(broker, raw, data):
    r = raw(broker, 4)
    r.send(data)
    seen = r.recv_until_closed()
    assert all(p.type == M.CONNACK and p.rc != 0 for p in seen), seen
    assert_broker_alive(broker)


def test_v5_connect_duplicate_property(broker, raw):
    r = raw(broker, 5)
    r.send(M.connect("dupprop", version=5, properties=[(M.P_SESSION_EXPIRY, 1),
                                                      (M.P_SESSION_EXPIRY, 2)]))
    seen = r.recv_until_closed()
    for p in seen:
        assert p.type == M.CONNACK and p.rc in (PROTOCOL_ERROR, MALFORMED), seen
    assert_broker_alive(broker, 5)


def test_v5_connect_receive_maximum_zero(broker, raw):
    """3.1.2.11.3: Receive Maximum 0 is a Protocol Error."""
    r = raw(broker, 5)
    r.send(M.connect("rm0", version=5, properties=[(M.P_RECEIVE_MAXIMUM, 0)]))
    seen = r.recv_until_closed()
    for p in seen:
        assert p.type == M.CONNACK and p.rc in (PROTOCOL_ERROR, MALFORMED), seen


def test_huge_remaining_length_then_close(broker, raw):
    """A header announcing 256 MB followed by nothing must not make the broker allocate it."""
    for _ in range(20):
        r = connect_raw(raw, broker, "huge", 4)
        r.send(b"\x30\xff\xff\xff\x7f")
        r.close()
    assert_broker_alive(broker)


def test_random_garbage(broker, raw):
    """200 random inputs after a valid CONNECT (and a few before): the broker survives."""
    rng = random.Random(0xFE770)
    valid = [M.publish("g/t", b"x", qos=1, pid=3, version=5), M.subscribe(2, [("g/#", 1)], 5),
             M.unsubscribe(3, ["g/#"], 5), M.ack(M.PUBREL, 4, version=5),
             M.publish("g/t", b"y" * 40, qos=2, pid=9, version=5,
                       properties=[(M.P_USER_PROPERTY, ("k", "v")), (M.P_TOPIC_ALIAS, 1)])]
    for i in range(200):
        version = 5 if i % 2 else 4
        mode = i % 4
        if mode == 0:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
        elif mode == 1:
            # random packet type/flags with a consistent length
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
            data = bytes([rng.getrandbits(8)]) + M.varint(len(body)) + body
        else:
            # mutate a valid packet
            data = bytearray(rng.choice(valid))
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            data = bytes(data)
        r = None
        try:
            r = raw(broker, version, timeout=2)
            if i % 10 != 9:
                r.send(M.connect("garbage-%d" % i, version=version))
            r.send(data)
        except OSError:
            pass
        finally:
            if r is not None:
                r.close()
        if i % 50 == 49:
            assert_broker_alive(broker)
    assert_broker_alive(broker, 4)
    assert_broker_alive(broker, 5)
