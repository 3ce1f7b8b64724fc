"""A DISCONNECT detaches the session at once (MQTT 3.1.1 3.14.4, 5.0 3.14.4).

After a DISCONNECT the broker shuts its side of the connection and then
lingers, reading, until the client closes (up to 2 s). What is published
once the broker has processed the DISCONNECT must find the session
offline, exactly as after the close: queued for a persistent session (and
counted against its queue limits), dropped for one that ends. What was in
flight stays in flight and is sent again at the next connection. The close
that follows detaches nothing again: one will, one count.

The clients here wait for the broker to shut its side after their
DISCONNECT (so it has processed it) but keep their own side open, which
is the window in which the session used to stay attached."""
import time

import pytest

import mqttraw as M
from conftest import PROTOCOLS, connect_raw, wait_for
from opshttp import api, metrics, ops_broker


def persist_kw(proto, expiry=300):
    kw = dict(clean=False)
    if proto == 5:
        kw["properties"] = [(M.P_SESSION_EXPIRY, expiry)]
    return kw


def disconnect_keep_open(r, rc=0, properties=None):
    """Send DISCONNECT and wait until the broker has shut its side: it has
    processed the DISCONNECT. Our side stays open until the test closes it."""
    r.send(M.disconnect(rc, r.version, properties))
    assert r.recv_until_closed(5) == []


def sessions(b):
    return {s["client_id"]: s for s in api(b, "GET", "/api/sessions")}


def counts(b):
    """(open MQTT connections, clients counted as connected, clients listed)."""
    m = metrics(b)
    return (int(m['ferromq_listener_connections{listener="%d"}' % b.port]), int(m["ferromq_clients_connected"]),
            len(api(b, "GET", "/api/clients")))


def settled_counts(b, n):
    """Wait until n connections are open and the broker counts and lists n
    clients, then check that a later sample still says so (a count taken
    twice would drop below n once the close has run)."""
    wait_for(lambda: counts(b) == (n, n, n), what="%d connections, %d clients counted and listed" % (n, n))
    time.sleep(1.2)  # a later sample of the metrics (sys_interval 1)
    assert counts(b) == (n, n, n)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_published_right_after_disconnect_is_queued(start_broker, tmp_path, raw, proto):
    b = ops_broker(start_broker, tmp_path, max_queued_messages=2, queue_overflow="reject_new")
    sub = connect_raw(raw, b, "late", proto, **persist_kw(proto))
    sub.subscribe([("late/t", 1)])
    pub = connect_raw(raw, b, "late-pub", 5)
    disconnect_keep_open(sub)
    # Queued, and counted against max_queued_messages: the third is refused.
    codes = [pub.publish("late/t", b"%d" % i, qos=1, pid=i + 1).rc for i in range(3)]
    s = sessions(b)["late"]
    assert (s["connected"], s["queued"], s["inflight"]) == (False, 2, 0), s
    assert codes == [0, 0, 0x97], [hex(c) for c in codes]
    sub.close()
    r = raw(b, proto)
    assert r.connect("late", **persist_kw(proto)).session_present
    got = []
    for _ in range(2):
        p = r.expect(M.PUBLISH)
        r.ack(p)
        got.append((p.payload, p.dup))
    # Sent for the first time, not again from an earlier connection.
    assert got == [(b"0", False), (b"1", False)]
    assert r.quiet(0.3) == []


@pytest.mark.parametrize("proto,connect_expiry,disconnect_props", [
    (4, None, None),                         # v3.1.1 clean session
    (5, 0, None),                            # v5 Session Expiry Interval 0
    (5, 300, [(M.P_SESSION_EXPIRY, 0)]),     # set to 0 by the DISCONNECT (5.0 3.14.2.2.2)
], ids=["v311-clean", "v5-expiry0", "v5-disconnect-expiry0"])
def test_a_session_that_ends_ends_at_the_disconnect(start_broker, tmp_path, raw, proto, connect_expiry,
                                                    disconnect_props):
    b = ops_broker(start_broker, tmp_path)
    kw = dict(clean=True) if proto == 4 else dict(clean=False, properties=[(M.P_SESSION_EXPIRY, connect_expiry)])
    sub = connect_raw(raw, b, "brief", proto, **kw)
    sub.subscribe([("brief/t", 1)])
    pub = connect_raw(raw, b, "brief-pub", 5)
    disconnect_keep_open(sub, 0, disconnect_props)
    assert "brief" not in sessions(b)
    # Nobody gets it: the v5 publisher hears No matching subscribers.
    assert pub.publish("brief/t", b"x", qos=1, pid=1).rc == 0x10
    r = raw(b, proto)
    assert not r.connect("brief", **persist_kw(proto)).session_present
    sub.close()
    settled_counts(b, 2)


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("then", ["reconnect", "kill9"])
def test_inflight_deliveries_are_kept_and_sent_again(start_broker, raw, proto, then):
    """Nothing acknowledged is lost: a QoS 1 message not acknowledged, a QoS 2
    message not acknowledged and one whose PUBREC came (its PUBREL sent) are
    still in flight after the DISCONNECT, in the store too (kill -9), and go
    again at the next connection (MQTT-4.4.0-1): the PUBLISH packets with
    DUP and their packet ids, the PUBREL."""
    b = start_broker()
    sub = connect_raw(raw, b, "infl", proto, **persist_kw(proto))
    sub.subscribe([("infl/1", 1), ("infl/2", 2)])
    pub = connect_raw(raw, b, "infl-pub", proto)
    pub.publish("infl/1", b"one", qos=1, pid=1)
    pub.publish("infl/2", b"two", qos=2, pid=2)
    pub.publish("infl/2", b"three", qos=2, pid=3)
    first = {}
    for _ in range(3):
        p = sub.expect(M.PUBLISH)
        first[p.payload] = p
    sub.send(M.ack(M.PUBREC, first[b"two"].pid, version=proto))
    assert sub.expect(M.PUBREL).pid == first[b"two"].pid
    disconnect_keep_open(sub)
    pub.publish("infl/1", b"after", qos=1, pid=4)
    if then == "kill9":
        b.kill9()
        b.start()
    else:
        sub.close()
    r = raw(b, proto)
    assert r.connect("infl", **persist_kw(proto)).session_present
    seen = [r.recv() for _ in range(4)]
    rels = [p for p in seen if p.type == M.PUBREL]
    pubs = {p.payload: p for p in seen if p.type == M.PUBLISH}
    assert [p.pid for p in rels] == [first[b"two"].pid], seen
    assert sorted(pubs) == [b"after", b"one", b"three"], seen
    for name in (b"one", b"three"):
        assert (pubs[name].pid, pubs[name].qos, pubs[name].dup) == (first[name].pid, first[name].qos, True), pubs
    assert pubs[b"after"].pid not in (first[b"one"].pid, first[b"three"].pid)
    r.send(M.ack(M.PUBCOMP, first[b"two"].pid, version=proto))
    for p in pubs.values():
        r.ack_fully(p)
    assert r.quiet(0.3) == []


@pytest.mark.parametrize("rc,wills", [(0x00, 0), (0x04, 1)], ids=["normal", "with-will"])
def test_one_will_and_one_count_per_disconnect(start_broker, tmp_path, raw, rc, wills):
    """v5 DISCONNECT 0x00 discards the will, 0x04 publishes it
    [MQTT-3.14.4-3]; at the DISCONNECT, and not again when the connection
    closes afterwards. The connected count drops once."""
    b = ops_broker(start_broker, tmp_path)
    watcher = connect_raw(raw, b, "watcher", 5)
    watcher.subscribe([("will/#", 1), ("marker", 1)])
    r = connect_raw(raw, b, "dying", 5, **persist_kw(5),
                    will=dict(topic="will/t", payload=b"bye", qos=1, retain=False, properties=None))
    disconnect_keep_open(r, rc)
    if wills:
        p = watcher.expect(M.PUBLISH)
        watcher.ack(p)
        assert (p.topic, p.payload) == ("will/t", b"bye")
    r.close()
    settled_counts(b, 1)
    # Nothing more than the marker, published after the close.
    pub = connect_raw(raw, b, "marker-pub", 5)
    pub.publish("marker", b"m", qos=1, pid=1)
    got = []
    while True:
        p = watcher.expect(M.PUBLISH)
        watcher.ack(p)
        if p.topic == "marker":
            break
        got.append(p)
    assert got == [], got
    s = sessions(b)["dying"]
    assert s["connected"] is False and s["expiry_interval"] == 300, s


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "clean"])
def test_takeover_right_after_disconnect(start_broker, tmp_path, raw, proto, persistent):
    """The same client id connects again while the connection that sent the
    DISCONNECT still lingers: a persistent session is resumed with what was
    queued in between, a clean one starts anew; the old connection's close
    afterwards leaves the new one alone."""
    b = ops_broker(start_broker, tmp_path)
    kw = persist_kw(proto) if persistent else dict(clean=True)
    old = connect_raw(raw, b, "tk", proto, **kw)
    old.subscribe([("tk/t", 1)])
    pub = connect_raw(raw, b, "tk-pub", proto)
    disconnect_keep_open(old)
    pub.publish("tk/t", b"between", qos=1, pid=1)
    new = raw(b, proto)
    ca = new.connect("tk", **kw)
    assert ca.rc == 0 and ca.session_present == persistent
    if persistent:
        p = new.expect(M.PUBLISH)
        new.ack(p)
        assert (p.payload, p.dup) == (b"between", False)
    else:
        new.subscribe([("tk/t", 1)])
    old.close()
    settled_counts(b, 2)
    pub.publish("tk/t", b"live", qos=1, pid=2)
    p = new.expect(M.PUBLISH)
    new.ack(p)
    assert p.payload == b"live"
    assert new.quiet(0.3) == []
    assert sessions(b)["tk"]["connected"] is True


def test_a_disconnect_that_raises_expiry_from_zero_is_not_one(start_broker, tmp_path, raw):
    """5.0 3.14.2.2.2: after CONNECT with Session Expiry 0, a DISCONNECT with
    a non-zero one is a Protocol Error, not a valid DISCONNECT: the broker
    answers 0x82, the will goes as for any other end, once, and the session
    (expiry 0) ends."""
    b = ops_broker(start_broker, tmp_path)
    watcher = connect_raw(raw, b, "watcher", 5)
    watcher.subscribe([("will/#", 1)])
    r = connect_raw(raw, b, "rude", 5, clean=False,
                    will=dict(topic="will/t", payload=b"bye", qos=1, retain=False, properties=None))
    r.send(M.disconnect(0, 5, [(M.P_SESSION_EXPIRY, 300)]))
    seen = r.recv_until_closed(5)
    assert [(p.type, p.rc) for p in seen] == [(M.DISCONNECT, 0x82)], seen
    p = watcher.expect(M.PUBLISH)
    watcher.ack(p)
    assert (p.topic, p.payload) == ("will/t", b"bye")
    r.close()
    settled_counts(b, 1)
    assert watcher.quiet(0.3) == []
    assert "rude" not in sessions(b)
