"""Will messages (MQTT 3.1.1 section 3.1.2.5; 5.0 section 3.1.2.5, 3.1.3.2)."""
import socket
import time

import pytest

import mqttraw as M
from conftest import PROTOCOLS, connect_raw


def will(topic="will/t", payload=b"gone", qos=1, retain=False, properties=None):
    return dict(topic=topic, payload=payload, qos=qos, retain=retain, properties=properties)


def watcher(raw, broker, proto, cid="watcher"):
    w = connect_raw(raw, broker, cid, proto)
    w.subscribe([("will/#", 2), ("marker", 2)])
    return w


def wait_will(w, timeout=5.0):
    p = w.expect(M.PUBLISH, timeout)
    w.ack_fully(p)
    return p


def no_will(w, pub):
    """Publish a marker after the event and check nothing came before it."""
    pub.publish("marker", b"m", qos=1, pid=99)
    got = []
    while True:
        p = w.expect(M.PUBLISH)
        w.ack_fully(p)
        if p.topic == "marker":
            break
        got.append(p)
    got += [p for p in w.quiet(0.3) if p.type == M.PUBLISH]
    assert got == [], got


def close_and_wait(r):
    """Close our side and wait until the broker has closed its side too."""
    r.sock.shutdown(socket.SHUT_WR)
    assert r.is_closed(5)
    r.close()


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_will_on_socket_close(broker, raw, proto):
    """MQTT-3.1.2-8 (3.1.1), 3.1.2.5 (5.0): connection closed without DISCONNECT."""
    w = watcher(raw, broker, proto)
    r = connect_raw(raw, broker, "dying", proto, will=will(payload=b"bye", qos=2))
    r.close()
    p = wait_will(w)
    assert (p.topic, p.payload, p.qos, p.retain) == ("will/t", b"bye", 2, False)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_no_will_on_disconnect(broker, raw, proto):
    """MQTT-3.1.2-10 (3.1.1), MQTT-3.1.2-8/3.14.4-3 (5.0): DISCONNECT (0x00) deletes the will."""
    w = watcher(raw, broker, proto)
    r = connect_raw(raw, broker, "polite", proto, will=will())
    r.send(M.disconnect(0, proto))
    close_and_wait(r)
    pub = connect_raw(raw, broker, "marker-pub", proto)
    no_will(w, pub)


def test_v5_disconnect_with_will_message(broker, raw):
    """MQTT 5.0 3.14.2.1: DISCONNECT 0x04 (Disconnect with Will Message) publishes the will."""
    w = watcher(raw, broker, 5)
    r = connect_raw(raw, broker, "dw", 5, will=will(payload=b"asked"))
    r.send(M.disconnect(0x04, 5))
    p = wait_will(w)
    assert p.payload == b"asked"


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_will_on_keepalive_timeout(broker, raw, proto):
    """MQTT-3.1.2-24 + 3.1.2.5: keep-alive expiry closes and fires the will."""
    w = watcher(raw, broker, proto)
    r = connect_raw(raw, broker, "silent", proto, keepalive=1, will=will(payload=b"timeout"))
    t0 = time.monotonic()
    p = wait_will(w, timeout=6)
    elapsed = time.monotonic() - t0
    assert p.payload == b"timeout"
    assert 1.0 <= elapsed <= 5.0, elapsed
    assert r.is_closed(2)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_will_on_protocol_error(broker, raw, proto):
    """MQTT-3.1.2-8: the server closing for a protocol error publishes the will."""
    w = watcher(raw, broker, proto)
    r = connect_raw(raw, broker, "bad", proto, will=will(payload=b"err"))
    r.send(b"\x36\x05\x00\x01a\x00\x01")  # QoS 3 PUBLISH
    p = wait_will(w)
    assert p.payload == b"err"


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_will_on_takeover(broker, raw, proto):
    """Takeover closes the old connection; its will fires (5.0 3.1.4 step 2 +
    3.1.2.5 with Will Delay 0)."""
    w = watcher(raw, broker, proto)
    connect_raw(raw, broker, "taken", proto, will=will(payload=b"taken-over"))
    connect_raw(raw, broker, "taken", proto)
    p = wait_will(w)
    assert p.payload == b"taken-over"


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_will_retain(broker, raw, proto):
    """MQTT-3.1.2-17 (3.1.1): Will Retain 1 -> published as a retained message."""
    r = connect_raw(raw, broker, "wr", proto, will=will(topic="will/ret", payload=b"R", retain=True))
    w = watcher(raw, broker, proto)
    r.close()
    p = wait_will(w)
    assert p.payload == b"R"
    late = connect_raw(raw, broker, "late", proto)
    late.subscribe([("will/ret", 1)])
    p = late.expect(M.PUBLISH)
    assert (p.payload, p.retain) == (b"R", True)


def test_v5_will_delay(broker, raw):
    """MQTT 5.0 3.1.3.2.2: the will is published after the Will Delay Interval."""
    w = watcher(raw, broker, 5)
    r = connect_raw(raw, broker, "delayed", 5, clean=False,
                    properties=[(M.P_SESSION_EXPIRY, 60)],
                    will=will(payload=b"late", properties=[(M.P_WILL_DELAY, 2)]))
    r.close()
    t0 = time.monotonic()
    p = wait_will(w, timeout=8)
    elapsed = time.monotonic() - t0
    assert p.payload == b"late"
    assert 1.5 <= elapsed <= 6.0, elapsed


def test_v5_will_delay_cancelled_by_reconnect(broker, raw):
    """MQTT-3.1.3-9 / 3.1.2.5: a new connection before the delay elapses cancels the will."""
    w = watcher(raw, broker, 5)
    r = connect_raw(raw, broker, "back", 5, clean=False,
                    properties=[(M.P_SESSION_EXPIRY, 60)],
                    will=will(payload=b"should-not", properties=[(M.P_WILL_DELAY, 2)]))
    r.close()
    r2 = raw(broker, 5)
    assert r2.connect("back", clean=False, properties=[(M.P_SESSION_EXPIRY, 60)]).session_present
    time.sleep(3.0)  # past the will delay: the test is about time passing
    pub = connect_raw(raw, broker, "marker-pub", 5)
    no_will(w, pub)


def test_v5_will_at_session_end_before_delay(broker, raw):
    """MQTT 5.0 3.1.3.2.2: the will is sent when the session ends if that is
    before the Will Delay Interval."""
    w = watcher(raw, broker, 5)
    r = connect_raw(raw, broker, "short", 5, clean=False,
                    properties=[(M.P_SESSION_EXPIRY, 1)],
                    will=will(payload=b"session-end", properties=[(M.P_WILL_DELAY, 30)]))
    r.close()
    t0 = time.monotonic()
    p = wait_will(w, timeout=8)
    elapsed = time.monotonic() - t0
    assert p.payload == b"session-end"
    assert 0.5 <= elapsed <= 5.0, elapsed


def test_v5_will_properties_passed(broker, raw):
    """MQTT 5.0 3.1.3.2: will properties are sent with the will message."""
    w = watcher(raw, broker, 5)
    wp = [(M.P_CONTENT_TYPE, "text/plain"), (M.P_RESPONSE_TOPIC, "resp/t"),
          (M.P_CORRELATION_DATA, b"\x01\x02"), (M.P_USER_PROPERTY, ("k", "v")),
          (M.P_PAYLOAD_FORMAT, 1)]
    r = connect_raw(raw, broker, "wprops", 5, will=will(payload=b"p", properties=wp))
    r.close()
    p = wait_will(w)
    assert p.props.get(M.P_CONTENT_TYPE) == "text/plain"
    assert p.props.get(M.P_RESPONSE_TOPIC) == "resp/t"
    assert p.props.get(M.P_CORRELATION_DATA) == b"\x01\x02"
    assert p.props.get(M.P_USER_PROPERTY) == [("k", "v")]
    assert p.props.get(M.P_PAYLOAD_FORMAT) == 1


@pytest.mark.parametrize("on", [True, False], ids=["on", "off"])
def test_will_on_shutdown(start_broker, raw, on):
    b = start_broker(will_on_shutdown=on, workers=1)
    w = watcher(raw, b, 4)
    connect_raw(raw, b, "at-shutdown", 4, will=will(payload=b"shutdown"))
    b.stop()
    seen = [p for p in w.recv_until_closed(10) if p.type == M.PUBLISH]
    if on:
        assert [p.payload for p in seen] == [b"shutdown"], seen
    else:
        assert seen == [], seen


def test_v5_will_delay_with_disconnect_0x04(broker, raw):
    """DISCONNECT 0x04 still honours the Will Delay Interval."""
    w = watcher(raw, broker, 5)
    r = connect_raw(raw, broker, "dw-delay", 5, clean=False,
                    properties=[(M.P_SESSION_EXPIRY, 60)],
                    will=will(payload=b"delayed-04", properties=[(M.P_WILL_DELAY, 1)]))
    r.send(M.disconnect(0x04, 5))
    t0 = time.monotonic()
    p = wait_will(w, timeout=6)
    assert p.payload == b"delayed-04"
    assert time.monotonic() - t0 >= 0.7


def test_v5_will_message_expiry(broker, raw):
    """The will's Message Expiry Interval is forwarded with the will."""
    w = watcher(raw, broker, 5)
    r = connect_raw(raw, broker, "wexp", 5,
                    will=will(payload=b"e", properties=[(M.P_MESSAGE_EXPIRY, 100)]))
    r.close()
    p = wait_will(w)
    assert 95 <= p.props.get(M.P_MESSAGE_EXPIRY, 0) <= 100, p


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_will_qos_downgraded_to_subscription(broker, raw, proto):
    w = connect_raw(raw, broker, "wq-watch", proto)
    w.subscribe([("will/#", 0)])
    r = connect_raw(raw, broker, "wq", proto, will=will(payload=b"q", qos=2))
    r.close()
    p = w.expect(M.PUBLISH)
    assert p.qos == 0 and p.payload == b"q"
