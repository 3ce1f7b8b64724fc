"""Keep alive (MQTT 3.1.1 section 3.1.2.10; 5.0 section 3.1.2.10, 3.2.2.3.14)."""
import time

import pytest

import mqttraw as M
from conftest import PROTOCOLS, connect_raw


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_silent_client_closed(broker, raw, proto):
    """MQTT-3.1.2-24: no packet within 1.5 x Keep Alive -> the server closes
    (5.0 may send DISCONNECT 0x8D first)."""
    r = connect_raw(raw, broker, "silent", proto, keepalive=1)
    t0 = time.monotonic()
    seen = r.recv_until_closed(6)
    elapsed = time.monotonic() - t0
    for p in seen:
        assert p.type == M.DISCONNECT and p.rc == 0x8D, seen
    assert 1.0 <= elapsed <= 4.0, elapsed


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_pinging_client_kept(broker, raw, proto):
    r = connect_raw(raw, broker, "pinger", proto, keepalive=1)
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        r.send(M.pingreq())
        p = r.expect(M.PINGRESP, 2)
        assert p.raw == b"" and p.flags == 0  # MQTT-3.13
        time.sleep(0.5)  # pacing the client's own pings


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_publishing_client_kept(broker, raw, proto):
    """Any control packet resets the keep-alive timer, not only PINGREQ."""
    r = connect_raw(raw, broker, "talker", proto, keepalive=1)
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        r.publish("ka/t", b"x", qos=1)
        time.sleep(0.5)
    r.send(M.pingreq())
    r.expect(M.PINGRESP)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_keepalive_zero_not_closed(broker, raw, proto):
    r = connect_raw(raw, broker, "zero", proto, keepalive=0)
    assert r.quiet(2.0) == []
    r.send(M.pingreq())
    r.expect(M.PINGRESP)


@pytest.mark.parametrize("client_ka", [60, 0])
def test_v5_max_keepalive_server_keep_alive(start_broker, raw, client_ka):
    """MQTT 5.0 3.2.2.3.14: Server Keep Alive overrides the client's value
    (MQTT-3.2.2-21), and the server enforces it."""
    b = start_broker(max_keepalive=1)
    r = raw(b, 5)
    ca = r.connect("capped", version=5, keepalive=client_ka)
    assert ca.rc == 0
    assert ca.props.get(M.P_SERVER_KEEP_ALIVE) == 1, ca
    t0 = time.monotonic()
    assert r.is_closed(6)
    assert time.monotonic() - t0 <= 4.0


def test_v5_keepalive_below_max_not_overridden(start_broker, raw):
    b = start_broker(max_keepalive=100)
    r = raw(b, 5)
    ca = r.connect("under", version=5, keepalive=30)
    assert ca.props.get(M.P_SERVER_KEEP_ALIVE, 30) == 30, ca


def test_v311_max_keepalive(start_broker, raw):
    """3.1.1 has no Server Keep Alive: the server either refuses (CONNACK 0x02, as
    Mosquitto does) or enforces its maximum."""
    b = start_broker(max_keepalive=1)
    r = raw(b, 4)
    ca = r.connect("capped3", version=4, keepalive=60)
    if ca.rc == 0:
        t0 = time.monotonic()
        assert r.is_closed(6)
        assert time.monotonic() - t0 <= 4.0
    else:
        assert ca.rc == 0x02, ca
        assert r.is_closed()
