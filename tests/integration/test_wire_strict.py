"""Encodings the spec forbids although they can be read: a Variable Byte
Integer longer than it needs to be [MQTT-1.5.5-1] and Authentication Data
without an Authentication Method [MQTT-3.1.2.11.10]. Both are refused: v5
gets the reason code (DISCONNECT, or CONNACK for a CONNECT), v3 is closed,
and the broker keeps serving."""
import pytest

import mqttraw as M
from conftest import PROTOCOLS, assert_broker_alive, connect_raw

MALFORMED, PROTOCOL_ERROR = 0x81, 0x82


def expect_refused(r, proto, ptype, rc):
    seen = r.recv_until_closed()
    if proto == 5:
        assert seen and seen[-1].type == ptype and seen[-1].rc == rc, seen
    else:
        assert all(p.type != M.PINGRESP for p in seen), seen


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_non_minimal_remaining_length_is_malformed(broker, raw, proto):
    """PINGREQ whose Remaining Length 0 takes four bytes: no PINGRESP."""
    r = connect_raw(raw, broker, "rl-long", proto)
    r.send(b"\xc0\x80\x80\x80\x00")
    expect_refused(r, proto, M.DISCONNECT, MALFORMED)
    assert_broker_alive(broker, proto)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_non_minimal_remaining_length_in_publish(broker, raw, proto):
    """A PUBLISH whose Remaining Length takes a byte more than it needs is
    not delivered."""
    sub = connect_raw(raw, broker, "rl-sub", proto)
    assert sub.subscribe([("rl/t", 0)]).codes == [0]
    pub = connect_raw(raw, broker, "rl-pub", proto)
    body = M.mstr("rl/t") + (M.props([]) if proto == 5 else b"") + b"x"
    assert len(body) < 128
    pub.send(bytes([0x30, 0x80 | len(body), 0x00]) + body)
    expect_refused(pub, proto, M.DISCONNECT, MALFORMED)
    assert sub.quiet(0.3) == []
    # The same packet in its shortest form goes through.
    pub2 = connect_raw(raw, broker, "rl-pub2", proto)
    pub2.send(bytes([0x30, len(body)]) + body)
    assert sub.expect(M.PUBLISH).payload == b"x"


def test_v5_connect_auth_data_without_method(broker, raw):
    r = raw(broker, 5)
    r.send(M.connect("authdata", version=5, properties=[(M.P_AUTH_DATA, b"token")]))
    seen = r.recv_until_closed()
    assert [(p.type, p.rc) for p in seen] == [(M.CONNACK, PROTOCOL_ERROR)], seen
    assert_broker_alive(broker, 5)

