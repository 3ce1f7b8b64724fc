"""CONNECT / CONNACK (MQTT 3.1.1 section 3.1-3.2, MQTT 5.0 section 3.1-3.2)."""

import pytest

import mqttraw as M
from conftest import PROTOCOLS, assert_broker_alive, connect_raw


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_connect_paho(broker, client, proto):
    c = client(broker, "paho-%d" % proto, proto)
    assert c.connack["rc"] == 0
    assert not c.session_present


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_connack_bytes(broker, raw, proto):
    r = raw(broker, proto)
    ca = r.connect("bytes", version=proto)
    assert ca.rc == 0
    assert ca.flags == 0
    assert not ca.session_present
    if proto == 4:
        assert ca.raw == b"\x00\x00"  # MQTT-3.2.2: remaining length 2


def test_v5_empty_client_id_assigned(broker, raw):
    """MQTT-3.1.3-7 / 3.2.2.3.7: an empty id gets an Assigned Client Identifier."""
    r = raw(broker, 5)
    ca = r.connect("", version=5)
    assert ca.rc == 0
    assigned = ca.props.get(M.P_ASSIGNED_CLIENT_ID)
    assert assigned, "no Assigned Client Identifier in %r" % ca
    r2 = raw(broker, 5)
    ca2 = r2.connect("", version=5)
    assert ca2.props.get(M.P_ASSIGNED_CLIENT_ID) not in (None, assigned)
    # The assigned id is really this session's id: a takeover with it works.
    r3 = raw(broker, 5)
    assert r3.connect(assigned, version=5).rc == 0
    d = r.recv_until_closed()
    assert d and d[-1].type == M.DISCONNECT and d[-1].rc == 0x8E, d


def test_v311_empty_client_id_clean(broker, raw):
    """MQTT-3.1.3-6: zero-byte ClientId with CleanSession=1 is accepted."""
    r = raw(broker, 4)
    assert r.connect("", version=4, clean=True).rc == 0
    r.send(M.pingreq())
    r.expect(M.PINGRESP)


def test_v311_empty_client_id_persistent_rejected(broker, raw):
    """MQTT-3.1.3-8: zero-byte ClientId with CleanSession=0 -> CONNACK 0x02, close."""
    r = raw(broker, 4)
    ca = r.connect("", version=4, clean=False)
    assert ca.rc == 0x02
    assert not ca.session_present
    assert r.is_closed()


@pytest.mark.parametrize("body_version", [4, 5], ids=["v3-body", "v5-body"])
def test_unsupported_protocol_level(broker, raw, body_version):
    """MQTT-3.1.2-2 (3.1.1): unsupported level -> CONNACK 0x01 and close.
    MQTT 5.0 3.1.2.2: MAY send CONNACK 0x84, MUST close."""
    r = raw(broker, 4)
    data = M.connect("badlevel", version=body_version)
    # patch the protocol level byte (after 2-byte len + "MQTT")
    hdr = 1 + len(M.varint(len(data) - 2))
    data = data[:hdr + 6] + bytes([6]) + data[hdr + 7:]
    r.send(data)
    seen = r.recv_until_closed()
    assert len(seen) == 1 and seen[0].type == M.CONNACK, seen
    raw_body = seen[0].raw
    assert raw_body in (b"\x00\x01", b"\x00\x84\x00", b"\x00\x84"), raw_body
    assert_broker_alive(broker)


def test_bad_protocol_name(broker, raw):
    """MQTT-3.1.2-1: wrong protocol name -> MAY send CONNACK 0x01/0x84, close."""
    r = raw(broker, 4)
    r.send(M.connect("badname", version=4, proto_name="MQTX"))
    seen = r.recv_until_closed()
    for p in seen:
        assert p.type == M.CONNACK and p.rc in (0x01, 0x84), seen
    assert_broker_alive(broker)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_session_present_flag(broker, raw, proto):
    """MQTT-3.2.2-1..3 (3.1.1), 3.2.2.1.1 (5.0)."""
    persist = dict(clean=False)
    if proto == 5:
        persist["properties"] = [(M.P_SESSION_EXPIRY, 300)]
    r = raw(broker, proto)
    ca = r.connect("sp", **persist)
    assert ca.rc == 0 and not ca.session_present
    r.subscribe([("sp/t", 1)])
    r.disconnect()

    r = raw(broker, proto)
    ca = r.connect("sp", **persist)
    assert ca.rc == 0 and ca.session_present
    r.disconnect()

    r = raw(broker, proto)
    clean = dict(clean=True)
    if proto == 5:
        clean["properties"] = [(M.P_SESSION_EXPIRY, 300)]
    ca = r.connect("sp", **clean)
    assert ca.rc == 0 and not ca.session_present  # MQTT-3.2.2-1 / 3.2.2-2
    r.disconnect()

    # the clean connect discarded the subscription as well
    r = raw(broker, proto)
    ca = r.connect("sp", **persist)
    assert ca.session_present == (proto == 5)  # v5 clean start kept expiry 300
    r.disconnect()


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_session_takeover(broker, raw, proto):
    """MQTT-3.1.4-3 (5.0: old connection gets DISCONNECT 0x8E), MQTT-3.1.4-2 (3.1.1)."""
    old = connect_raw(raw, broker, "takeover", proto)
    new = connect_raw(raw, broker, "takeover", proto)
    seen = old.recv_until_closed()
    if proto == 5:
        assert len(seen) == 1 and seen[0].type == M.DISCONNECT and seen[0].rc == 0x8E, seen
    else:
        assert seen == [], seen
    new.send(M.pingreq())
    new.expect(M.PINGRESP)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_takeover_moves_subscriptions(broker, raw, client, proto):
    kw = dict(clean=False)
    if proto == 5:
        kw["properties"] = [(M.P_SESSION_EXPIRY, 60)]
    old = connect_raw(raw, broker, "mover", proto, **kw)
    old.subscribe([("mv/t", 1)])
    new = raw(broker, proto)
    ca = new.connect("mover", **kw)
    assert ca.rc == 0 and ca.session_present
    pub = client(broker, "mv-pub", proto)
    pub.publish("mv/t", b"after", 1)
    p = new.expect(M.PUBLISH)
    assert p.payload == b"after"


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_second_connect_is_protocol_error(broker, raw, proto):
    """MQTT-3.1.0-2: a second CONNECT is a protocol violation -> close
    (5.0: MAY send DISCONNECT 0x82 first)."""
    r = connect_raw(raw, broker, "twice", proto)
    r.send(M.connect("twice", version=proto))
    seen = r.recv_until_closed()
    for p in seen:
        assert p.type == M.DISCONNECT and p.rc == 0x82, seen
    assert_broker_alive(broker)


@pytest.mark.parametrize("first", [M.pingreq(), M.subscribe(1, [("a", 0)]),
                                   M.publish("a", b"x"), b"\xe0\x00"],
                         ids=["pingreq", "subscribe", "publish", "disconnect"])
def test_first_packet_not_connect(broker, raw, first):
    """MQTT-3.1.0-1: the first packet must be CONNECT; otherwise close."""
    r = raw(broker, 4)
    r.send(first)
    seen = r.recv_until_closed()
    assert all(p.type != M.CONNACK and p.type != M.PINGRESP and p.type != M.SUBACK
               for p in seen), seen
    assert_broker_alive(broker)


def test_connect_timeout(start_broker, raw):
    """A connection that never sends CONNECT is closed after connect_timeout."""
    b = start_broker(connect_timeout=1)
    r = raw(b, 4)
    assert r.is_closed(6)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_log_lines_name_client_and_reason(broker, raw, proto):
    old = connect_raw(raw, broker, "log-client-xyz", proto)
    broker.wait_log(r"log-client-xyz")
    connect_raw(raw, broker, "log-client-xyz", proto)
    old.recv_until_closed()
    # The takeover disconnect line names the client and reason 0x8e.
    broker.wait_log(r"(?im)^.*log-client-xyz.*0x8e.*$|^.*0x8e.*log-client-xyz.*$")


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_will_flags_invalid(broker, raw, proto):
    """MQTT-3.1.2-11/13 (3.1.1), 3.1.2.6 (5.0): Will QoS != 0 with Will Flag 0 is
    malformed; 5.0 MAY answer CONNACK 0x81."""
    r = raw(broker, proto)
    data = bytearray(M.connect("wf", version=proto))
    hdr = 1 + len(M.varint(len(data) - 2))
    data[hdr + 7] |= 0x08  # will QoS 1, no will flag
    r.send(bytes(data))
    seen = r.recv_until_closed()
    if proto == 5:
        for p in seen:
            assert p.type == M.CONNACK and p.rc == 0x81, seen
    else:
        assert seen == [], seen  # MQTT-3.1.4-1: close without CONNACK
    assert_broker_alive(broker)
