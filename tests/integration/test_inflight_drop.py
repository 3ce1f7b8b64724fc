"""A message in flight that can no longer be sent when its client comes back
(larger than the Maximum Packet Size it now announces, or expired meanwhile)
is dropped: counted, logged with the client id and the reason, its queue row
deleted, and the Receive Maximum slot it held goes to the next message. Kept,
it stalled the session for good; an expired one was resent with a Message
Expiry Interval of 1,271,310,318 s (an unsigned wrap)."""
import signal
import time

import mqttraw as M
from conftest import wait_for

SESSION = [(M.P_SESSION_EXPIRY, 3600), (M.P_RECEIVE_MAXIMUM, 1)]


def subscriber(raw, b, extra=()):
    r = raw(b, 5)
    ca = r.connect("hist", version=5, clean=False, properties=SESSION + list(extra))
    assert ca.rc == 0
    return r, ca


def sys_counter(raw, b, name, at_least):
    mon = raw(b, 5)
    assert mon.connect("mon-%d" % time.monotonic_ns(), version=5).rc == 0
    mon.subscribe([("$SYS/broker/messages/dropped/" + name, 0)])
    wait_for(lambda: any(p.type == M.PUBLISH and int(p.payload) >= at_least for p in mon.quiet(1.2)),
             10, what="$SYS dropped/%s >= %d" % (name, at_least))
    mon.close()


def hold_in_flight(raw, b, payload, properties=None):
    """hist subscribes, receives one QoS 1 message, does not acknowledge it
    and drops its connection; another message then waits behind it."""
    r, _ = subscriber(raw, b)
    assert r.subscribe([("plant/#", 1)]).codes == [1]
    pub = raw(b, 5)
    assert pub.connect("gw", version=5).rc == 0
    assert pub.publish("plant/big", payload, qos=1, pid=1, properties=properties).rc == 0
    p = r.expect(M.PUBLISH)
    assert p.payload == payload  # in flight now, never acknowledged
    r.close()
    # Queued behind it whether or not the broker has seen hist go yet.
    assert pub.publish("plant/next", b"next", qos=1, pid=2).rc == 0
    return pub


def test_too_large_in_flight_is_dropped(start_broker, raw):
    b = start_broker(sys_interval=1)
    hold_in_flight(raw, b, b"x" * 2000)
    r, ca = subscriber(raw, b, [(M.P_MAXIMUM_PACKET_SIZE, 500)])
    assert ca.session_present
    p = r.expect(M.PUBLISH, timeout=10)
    assert (p.topic, p.payload) == ("plant/next", b"next")
    r.ack(p)
    wait_for(lambda: "client hist: 1 message dropped: larger than the client's "
                     "Maximum Packet Size" in b.log_text(), 5, what="the drop logged")
    sys_counter(raw, b, "too_large", 1)
    r.disconnect()

    # The row went with it: after a restart, with room for it, it is not back.
    b.stop()
    b.start()
    r, ca = subscriber(raw, b)
    assert ca.session_present
    assert r.quiet(1.0) == []


def test_expired_in_flight_is_dropped(start_broker, raw):
    b = start_broker(sys_interval=1)
    hold_in_flight(raw, b, b"soon stale", properties=[(M.P_MESSAGE_EXPIRY, 1)])
    time.sleep(1.5)  # the test is about the message's lifetime passing
    r, ca = subscriber(raw, b)
    assert ca.session_present
    p = r.expect(M.PUBLISH, timeout=10)
    assert (p.topic, p.payload) == ("plant/next", b"next"), p.props
    r.ack(p)
    assert r.quiet(0.5) == []
    wait_for(lambda: "client hist: 1 message dropped: its Message Expiry Interval "
                     "has passed" in b.log_text(), 5, what="the drop logged")
    sys_counter(raw, b, "expired", 1)


def test_in_flight_still_sendable_is_resent(start_broker, raw):
    """The drop is only for what cannot go: a message that fits and has not
    expired is resent with DUP and the interval it has left."""
    b = start_broker()
    hold_in_flight(raw, b, b"y" * 200, properties=[(M.P_MESSAGE_EXPIRY, 3600)])
    r, ca = subscriber(raw, b, [(M.P_MAXIMUM_PACKET_SIZE, 500)])
    p = r.expect(M.PUBLISH, timeout=10)
    assert (p.topic, p.dup) == ("plant/big", True)
    assert 3590 <= p.props[M.P_MESSAGE_EXPIRY] <= 3600, p.props
    r.ack(p)
    p = r.expect(M.PUBLISH, timeout=10)
    assert p.payload == b"next"
    r.ack(p)


def test_unreadable_in_flight_is_dropped(start_broker, raw, tmp_path):
    """The client lost read permission on the topic while away (ACL reloaded)."""
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite plant/#\ntopic read $SYS/#\n")
    b = start_broker(acl_file=str(acl), sys_interval=1)
    hold_in_flight(raw, b, b"secret")
    acl.write_text("topic readwrite plant/#\ntopic read $SYS/#\ntopic deny plant/big\n")
    b.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: b.log_text().count("ACL file %s loaded" % acl) >= 2, 5, what="the ACL reloaded")
    r, ca = subscriber(raw, b)
    assert ca.session_present
    p = r.expect(M.PUBLISH, timeout=10)
    assert (p.topic, p.payload) == ("plant/next", b"next")
    r.ack(p)
    wait_for(lambda: "client hist: 1 message dropped: the client may no longer "
                     "read its topic" in b.log_text(), 5, what="the drop logged")
    sys_counter(raw, b, "not_authorized", 1)
