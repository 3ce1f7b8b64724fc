"""One admission path: a will passes the same checks as a PUBLISH (ACL,
$SYS guard, topic limits) when its CONNECT is accepted and again when it
fires; a bridge-less broker's QoS 2 exchanges refused with PUBREC >= 0x80
free their packet id (issue 11 #2, #3)."""
import signal

import mqttraw as M
import pytest
from conftest import PROTOCOLS, connect_raw, wait_for
from test_access import make_passwd

ACL = """# anonymous clients write only public/#
pattern write public/#
pattern read public/#

user alice
topic read alice/#
topic write alice/#

# a gateway announces its own status only
pattern write plant/%u/#
user watcher
topic read plant/#
"""


@pytest.fixture
def guarded(start_broker, tmp_path):
    pw = tmp_path / "passwd"
    make_passwd(pw, {"alice": "a", "gw1": "g1", "watcher": "w"})
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    b = start_broker(allow_anonymous="true", password_file=str(pw), acl_file=str(acl))
    b.acl_path = acl
    return b


def refused_rc(proto, v5):
    return v5 if proto == 5 else 5  # v3: not authorized


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_will_outside_the_acl_is_refused_at_connect(guarded, raw, proto):
    alice = connect_raw(raw, guarded, "alice", 5, username="alice", password="a")
    assert alice.subscribe([("alice/#", 1)]).codes == [1]
    # The direct PUBLISH is refused ...
    anon = connect_raw(raw, guarded, "anon-direct", 5)
    assert anon.publish("alice/inbox", b"x", qos=1, pid=1).rc == 0x87
    anon.close()
    # ... and so is the same message as a will.
    r = raw(guarded, proto)
    ca = r.connect("anon-will", will=dict(topic="alice/inbox", payload=b"forged", qos=1, retain=True))
    assert ca.rc == refused_rc(proto, 0x87), ca
    assert r.is_closed(5)
    assert not [p for p in alice.quiet(0.5) if p.type == M.PUBLISH]
    # Nothing was retained either.
    late = connect_raw(raw, guarded, "alice-late", 5, username="alice", password="a")
    late.subscribe([("alice/#", 1)])
    assert not [p for p in late.quiet(0.5) if p.type == M.PUBLISH]
    assert "will on alice/inbox refused: not authorized" in guarded.log_text()


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_will_into_sys_is_refused(start_broker, raw, proto):
    b = start_broker()
    r = raw(b, proto)
    ca = r.connect("sys-will", will=dict(topic="$SYS/broker/version", payload=b"pwned", retain=True))
    assert ca.rc == refused_rc(proto, 0x87), ca
    watcher = connect_raw(raw, b, "w", 5)
    watcher.subscribe([("$SYS/broker/version", 0)])
    p = watcher.expect(M.PUBLISH, 10)
    assert p.payload != b"pwned" and p.payload.startswith(b"ferromq"), p


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_will_topic_over_the_limits_is_refused(start_broker, raw, proto):
    b = start_broker(max_topic_length=32, max_topic_levels=4)
    for topic in ("a/" + "x" * 40, "a/b/c/d/e"):
        r = raw(b, proto)
        ca = r.connect("long-will", will=dict(topic=topic, payload=b"w"))
        assert ca.rc == refused_rc(proto, 0x90), (topic, ca)
    r = raw(b, proto)
    assert r.connect("ok-will", will=dict(topic="a/b/c/d", payload=b"w")).rc == 0


def test_will_checked_again_when_it_fires(guarded, raw):
    """Admitted at CONNECT, then the ACL is reloaded without the rule: the
    will is not published when its client drops."""
    watcher = connect_raw(raw, guarded, "watcher", 5, username="watcher", password="w")
    assert watcher.subscribe([("plant/#", 1)]).codes == [1]
    gw = connect_raw(raw, guarded, "gw1", 5, username="gw1", password="g1",
                     will=dict(topic="plant/gw1/status", payload=b"offline", qos=1))
    gw.close()  # no DISCONNECT: the will fires
    p = watcher.expect(M.PUBLISH, 10)
    assert p.payload == b"offline", p
    watcher.ack(p)

    gw = connect_raw(raw, guarded, "gw1", 5, username="gw1", password="g1",
                     will=dict(topic="plant/gw1/status", payload=b"offline-2", qos=1))
    guarded.acl_path.write_text(ACL.replace("pattern write plant/%u/#", ""))
    guarded.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: guarded.log_text().count("ACL file") >= 2, what="ACL reloaded")
    gw.close()
    wait_for(lambda: "will of gw1 (user gw1) on plant/gw1/status not published: not authorized"
             in guarded.log_text(), 10, what="the refused will's log line")
    assert not [p for p in watcher.quiet(0.5) if p.type == M.PUBLISH]


def test_will_user_survives_a_restart(start_broker, raw, tmp_path):
    """The user a will was admitted for is stored with it: a persistent
    session's will that fires after a restart is checked as that user
    (checked as anonymous, the pattern rule would refuse it)."""
    pw = tmp_path / "passwd"
    make_passwd(pw, {"gw1": "g1", "watcher": "w"})
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    b = start_broker(allow_anonymous="false", password_file=str(pw), acl_file=str(acl))
    watcher = connect_raw(raw, b, "watcher", 5, clean=False, username="watcher", password="w",
                          properties=[(M.P_SESSION_EXPIRY, 3600)])
    assert watcher.subscribe([("plant/#", 1)]).codes == [1]
    watcher.disconnect()
    connect_raw(raw, b, "gw1", 5, clean=False, username="gw1", password="g1",
                properties=[(M.P_SESSION_EXPIRY, 3600)],
                will=dict(topic="plant/gw1/status", payload=b"gone", qos=1,
                          properties=[(M.P_WILL_DELAY, 1)]))
    b.kill9()
    b.start()
    watcher = raw(b, 5)
    assert watcher.connect("watcher", clean=False, username="watcher", password="w",
                           properties=[(M.P_SESSION_EXPIRY, 3600)]).session_present
    p = watcher.expect(M.PUBLISH, 15)
    assert p.topic == "plant/gw1/status" and p.payload == b"gone", p
    assert "not published" not in b.log_text()


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_qos2_packet_id_free_after_refused_pubrec(start_broker, raw, proto):
    """PUBREC >= 0x80 ends the exchange [MQTT-4.3.3]: the packet id carries
    a new message right after, which is delivered."""
    b = start_broker()
    sub = connect_raw(raw, b, "sub", 5)
    sub.subscribe([("t/#", 2)])
    pub = connect_raw(raw, b, "pub", proto)
    pub.send(M.publish("$SYS/x", b"no", qos=2, pid=7, version=proto))
    rec = pub.expect(M.PUBREC)
    if proto == 5:
        assert rec.rc == 0x87, rec
    else:
        # v3 has no reason code: the exchange is completed as usual.
        pub.send(M.ack(M.PUBREL, 7, version=proto))
        pub.expect(M.PUBCOMP)
    rec = pub.publish("t/1", b"second", qos=2, pid=7)
    assert rec.rc in (None, 0), rec
    p = sub.expect(M.PUBLISH, 5)
    assert p.payload == b"second", p


def test_qos2_packet_id_free_after_quota_exceeded(start_broker, raw):
    b = start_broker(max_queued_messages=1, queue_overflow="reject_new")
    off = connect_raw(raw, b, "off", 5, clean=False, properties=[(M.P_SESSION_EXPIRY, 600)])
    off.subscribe([("q", 2)])
    off.disconnect()
    pub = connect_raw(raw, b, "pub", 5)
    assert pub.publish("q", b"one", qos=2, pid=9).rc == 0
    assert pub.publish("q", b"two", qos=2, pid=9).rc == 0x97
    live = connect_raw(raw, b, "live", 5)
    live.subscribe([("other", 2)])
    rec = pub.publish("other", b"three", qos=2, pid=9)
    assert rec.rc == 0, rec
    assert live.expect(M.PUBLISH, 5).payload == b"three"


def test_denied_qos2_packet_id_free_after_restart(guarded, raw):
    """An ACL-denied QoS 2 publish leaves no packet id in the store: after a
    restart the next message with that id is delivered."""
    alice = connect_raw(raw, guarded, "alice", 5, username="alice", password="a")
    alice.subscribe([("public/#", 2)])
    pub = connect_raw(raw, guarded, "anon", 5, clean=False, properties=[(M.P_SESSION_EXPIRY, 600)])
    pub.send(M.publish("alice/secret", b"no", qos=2, pid=11, version=5))
    assert pub.expect(M.PUBREC).rc == 0x87
    pub.close()
    guarded.stop()
    guarded.start()
    alice = connect_raw(raw, guarded, "alice", 5, username="alice", password="a")
    alice.subscribe([("public/#", 2)])
    pub = raw(guarded, 5)
    assert pub.connect("anon", clean=False, properties=[(M.P_SESSION_EXPIRY, 600)]).session_present
    rec = pub.publish("public/x", b"after", qos=2, pid=11)
    assert rec.rc == 0, rec
    assert alice.expect(M.PUBLISH, 5).payload == b"after"


def test_qos2_resend_after_an_acl_reload_is_still_acknowledged(guarded, raw):
    """A QoS 2 message accepted before the ACL changed is a resend when it
    comes again on the next connection (DUP, same id): PUBREC 0x00,
    delivered once, not refused with 0x87."""
    watcher = connect_raw(raw, guarded, "watcher", 5, username="watcher", password="w")
    watcher.subscribe([("plant/#", 2)])
    props = [(M.P_SESSION_EXPIRY, 600)]
    gw = connect_raw(raw, guarded, "gw1", 5, clean=False, properties=props, username="gw1", password="g1")
    gw.send(M.publish("plant/gw1/state", b"once", qos=2, pid=21, version=5))
    assert gw.expect(M.PUBREC).rc in (None, 0)
    gw.close()  # no PUBREL yet
    guarded.acl_path.write_text(ACL.replace("pattern write plant/%u/#", ""))
    guarded.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: guarded.log_text().count("ACL file") >= 2, what="ACL reloaded")
    gw = raw(guarded, 5)
    assert gw.connect("gw1", clean=False, properties=props, username="gw1", password="g1").session_present
    gw.send(M.publish("plant/gw1/state", b"once", qos=2, pid=21, dup=True, version=5))
    rec = gw.expect(M.PUBREC)
    assert rec.rc in (None, 0), rec
    gw.send(M.ack(M.PUBREL, 21, version=5))
    assert gw.expect(M.PUBCOMP).rc in (None, 0)
    got = [p for p in watcher.quiet(1.0) if p.type == M.PUBLISH]
    assert [p.payload for p in got] == [b"once"], got
