"""Sessions: clean/persistent, expiry, offline queue, in-flight resend
(MQTT 3.1.1 section 3.1.2.4, 4.1, 4.4; 5.0 section 3.1.2.4, 3.1.2.11.2, 4.1, 4.4)."""
import os
import re
import threading
import time

import pytest

import mqttraw as M
from conftest import PROTOCOLS, assert_broker_alive, connect_raw


def persist_kw(proto, expiry=300):
    kw = dict(clean=False)
    if proto == 5:
        kw["properties"] = [(M.P_SESSION_EXPIRY, expiry)]
    return kw


def drain_until(r, marker, ack=True, timeout=5.0):
    got = []
    while True:
        p = r.expect(M.PUBLISH, timeout)
        if ack:
            r.ack_fully(p)
        got.append(p)
        if p.payload == marker:
            return got


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_clean_session_discards(broker, raw, client, proto):
    r = connect_raw(raw, broker, "cs", proto, **persist_kw(proto))
    r.subscribe([("cs/t", 1)])
    r.disconnect()
    # clean session/clean start discards the old session (MQTT-3.1.2-6, 5.0 MQTT-3.1.2-4)
    r = raw(broker, proto)
    ca = r.connect("cs", clean=True)
    assert ca.rc == 0 and not ca.session_present
    pub = client(broker, "cs-pub", proto)
    pub.publish("cs/t", b"nobody", 1)
    r.subscribe([("cs/marker", 1)])
    pub.publish("cs/marker", b"m", 1)
    got = drain_until(r, b"m")
    assert [p.payload for p in got] == [b"m"]


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_clean_session_not_kept_after_disconnect(broker, raw, client, proto):
    """Clean session (3.1.1) / Clean Start with expiry 0 (5.0): nothing survives."""
    r = connect_raw(raw, broker, "cs2", proto, clean=True)
    r.subscribe([("cs2/t", 1)])
    r.disconnect()
    r = raw(broker, proto)
    ca = r.connect("cs2", **persist_kw(proto))
    assert not ca.session_present


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_persistent_session_queues_offline(broker, raw, client, proto):
    """MQTT-3.1.2-5 (3.1.1), 3.1.2.4 (5.0): subscriptions kept, QoS1/2 queued."""
    r = connect_raw(raw, broker, "ps", proto, **persist_kw(proto))
    r.subscribe([("ps/1", 1), ("ps/2", 2)])
    r.disconnect()
    pub = client(broker, "ps-pub", proto)
    for i in range(5):
        pub.publish("ps/1", b"a%d" % i, 1)
        pub.publish("ps/2", b"b%d" % i, 2)
    r = raw(broker, proto)
    ca = r.connect("ps", **persist_kw(proto))
    assert ca.rc == 0 and ca.session_present
    got = []
    for _ in range(10):
        p = r.expect(M.PUBLISH)
        r.ack_fully(p)
        got.append((p.topic, p.payload, p.qos))
    assert [g for g in got if g[0] == "ps/1"] == [("ps/1", b"a%d" % i, 1) for i in range(5)]
    assert [g for g in got if g[0] == "ps/2"] == [("ps/2", b"b%d" % i, 2) for i in range(5)]
    assert r.quiet(0.3) == []
    # still subscribed
    pub.publish("ps/1", b"live", 1)
    p = r.expect(M.PUBLISH)
    assert p.payload == b"live"


def test_v5_session_expires(broker, raw):
    """MQTT 5.0 3.1.2.11.2: the session is discarded once the Session Expiry
    Interval has passed after the connection closed."""
    r = connect_raw(raw, broker, "exp", 5, clean=False, properties=[(M.P_SESSION_EXPIRY, 1)])
    r.subscribe([("exp/t", 1)])
    r.disconnect()
    time.sleep(2.5)  # the test is about time passing
    r = raw(broker, 5)
    ca = r.connect("exp", clean=False, properties=[(M.P_SESSION_EXPIRY, 60)])
    assert ca.rc == 0 and not ca.session_present


def test_v5_session_kept_within_expiry(broker, raw):
    r = connect_raw(raw, broker, "exp2", 5, clean=False, properties=[(M.P_SESSION_EXPIRY, 60)])
    r.subscribe([("exp/t", 1)])
    r.disconnect()
    r = raw(broker, 5)
    ca = r.connect("exp2", clean=False)
    assert ca.session_present


def test_v5_session_expiry_zero_ends_at_disconnect(broker, raw):
    r = connect_raw(raw, broker, "exp0", 5, clean=False)  # no property = 0
    r.subscribe([("exp/t", 1)])
    r.close_wait()  # even without DISCONNECT
    r = raw(broker, 5)
    assert not r.connect("exp0", clean=False).session_present


def test_v5_disconnect_sets_session_expiry_zero(broker, raw):
    """MQTT 5.0 3.14.2.2.2: DISCONNECT can change the Session Expiry Interval."""
    r = connect_raw(raw, broker, "dse", 5, clean=False, properties=[(M.P_SESSION_EXPIRY, 300)])
    r.subscribe([("dse/t", 1)])
    r.disconnect(0, properties=[(M.P_SESSION_EXPIRY, 0)])
    r = raw(broker, 5)
    assert not r.connect("dse", clean=False).session_present


def test_v5_disconnect_extends_session_expiry(broker, raw):
    r = connect_raw(raw, broker, "dse2", 5, clean=False, properties=[(M.P_SESSION_EXPIRY, 1)])
    r.subscribe([("dse/t", 1)])
    r.disconnect(0, properties=[(M.P_SESSION_EXPIRY, 300)])
    time.sleep(2.0)  # longer than the CONNECT's expiry
    r = raw(broker, 5)
    assert r.connect("dse2", clean=False).session_present


def test_v5_disconnect_nonzero_expiry_after_zero_is_protocol_error(broker, raw):
    """MQTT 5.0 3.14.2.2.2 (not a numbered requirement; MQTT-3.14.2-2 is the
    server side): CONNECT expiry 0 then DISCONNECT expiry > 0
    is a Protocol Error; the session (expiry 0) must not survive."""
    r = connect_raw(raw, broker, "dse3", 5, clean=False)
    r.subscribe([("dse/t", 1)])
    r.send(M.disconnect(0, 5, [(M.P_SESSION_EXPIRY, 300)]))
    seen = r.recv_until_closed()
    for p in seen:
        assert p.type == M.DISCONNECT and p.rc == 0x82, seen
    r = raw(broker, 5)
    assert not r.connect("dse3", clean=False).session_present


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_inflight_qos1_resent_with_dup(broker, raw, client, proto):
    """MQTT-4.4.0-1 (3.1.1), 4.4 (5.0): unacknowledged PUBLISH re-sent on
    reconnect with the original packet id and DUP=1 (MQTT-3.3.1-1)."""
    r = connect_raw(raw, broker, "dup", proto, **persist_kw(proto))
    r.subscribe([("dup/t", 1)])
    pub = client(broker, "dup-pub", proto)
    pub.publish("dup/t", b"unacked", 1)
    p1 = r.expect(M.PUBLISH)
    assert p1.payload == b"unacked" and not p1.dup
    r.close_wait()  # no PUBACK
    r = raw(broker, proto)
    ca = r.connect("dup", **persist_kw(proto))
    assert ca.session_present
    p2 = r.expect(M.PUBLISH)
    assert p2.payload == b"unacked"
    assert p2.pid == p1.pid, (p1, p2)
    assert p2.dup, p2
    assert p2.qos == 1
    r.ack(p2)
    assert r.quiet(0.3) == []


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_inflight_qos2_pubrel_resent(broker, raw, client, proto):
    """MQTT-4.4.0-1: after PUBREC, the server re-sends PUBREL (not PUBLISH)."""
    r = connect_raw(raw, broker, "rel", proto, **persist_kw(proto))
    r.subscribe([("rel/t", 2)])
    pub = client(broker, "rel-pub", proto)
    pub.publish("rel/t", b"two", 2)
    p = r.expect(M.PUBLISH)
    r.send(M.ack(M.PUBREC, p.pid, version=proto))
    rel = r.expect(M.PUBREL)
    assert rel.pid == p.pid
    r.close_wait()  # no PUBCOMP
    r = raw(broker, proto)
    assert r.connect("rel", **persist_kw(proto)).session_present
    rel2 = r.expect(M.PUBREL)
    assert rel2.pid == p.pid
    r.send(M.ack(M.PUBCOMP, p.pid, version=proto))
    assert r.quiet(0.3) == []


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_session_and_queue_survive_restart(start_broker, raw, client, proto):
    """Persistent session, subscription and queued QoS1 survive a clean restart."""
    b = start_broker(persistence=True)
    r = connect_raw(raw, b, "rs", proto, **persist_kw(proto))
    r.subscribe([("rs/t", 1)])
    r.disconnect()
    pub = client(b, "rs-pub", proto)
    pub.publish("rs/t", b"kept", 1)
    pub.stop()
    b.restart()
    r = raw(b, proto)
    ca = r.connect("rs", **persist_kw(proto))
    assert ca.session_present
    p = r.expect(M.PUBLISH)
    assert p.payload == b"kept"
    r.ack(p)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_queued_then_live_order(broker, raw, client, proto):
    """MQTT 4.6 ordered topic: messages queued while offline are delivered
    before later messages from the same publisher, even when the publisher
    keeps publishing during the reconnect."""
    import threading
    r = connect_raw(raw, broker, "ord", proto, **persist_kw(proto))
    r.subscribe([("ordq/t", 1)])
    r.disconnect()
    pub = client(broker, "ord-pub", proto)
    for i in range(20):
        pub.publish("ordq/t", b"%d" % i, 1, wait=False)
    pub.publish("ordq/t", b"20", 1)
    done = threading.Event()

    def more():
        for i in range(21, 80):
            pub.publish("ordq/t", b"%d" % i, 1, wait=False)
        done.set()
    r = raw(broker, proto)
    r.send(M.connect("ord", version=proto, **persist_kw(proto)))
    t = threading.Thread(target=more)
    t.start()
    assert r.expect(M.CONNACK).session_present
    got = []
    while len(got) < 80:
        p = r.expect(M.PUBLISH, 10)
        r.ack(p)
        got.append(int(p.payload))
    t.join()
    assert got == list(range(80)), got


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_takeover_storm(broker, raw, proto):
    """Many concurrent connections with one client id: the broker survives and
    exactly one of the last connections owns the session."""
    errors = []

    def worker(n):
        for j in range(10):
            try:
                c = M.RawClient(broker.port, proto, timeout=5)
                c.connect("storm", version=proto, **persist_kw(proto))
                if j % 2:
                    c.subscribe([("storm/%d" % n, 1)])
                c.close()
            except (OSError, TimeoutError, M.ConnectionClosed, AssertionError):
                pass
            except Exception as e:  # noqa: BLE001
                errors.append(e)
    ts = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    assert_broker_alive(broker, proto)
    r = raw(broker, proto)
    assert r.connect("storm", **persist_kw(proto)).rc == 0
    r.send(M.pingreq())
    r.expect(M.PINGRESP)


def test_many_publishers_many_subscribers(broker, client):
    """Cross-worker fan-in/fan-out: 6 publishers x 50 QoS 2 messages to 4 subscribers."""
    subs = []
    for i in range(4):
        s = client(broker, "fan-sub-%d" % i, 5 if i % 2 else 4)
        s.subscribe("fan/#", 2)
        subs.append(s)
    pubs = [client(broker, "fan-pub-%d" % i, 4 if i % 2 else 5) for i in range(6)]
    infos = []
    for j in range(50):
        for i, p in enumerate(pubs):
            infos.append(p.publish("fan/%d" % i, b"%d" % j, 2, wait=False))
    for info in infos:
        info.wait_for_publish(30)
    for s in subs:
        msgs = s.messages.wait_for(300, timeout=30)
        assert len(msgs) == 300
        for i in range(6):
            seq = [int(m.payload) for m in msgs if m.topic == "fan/%d" % i]
            assert seq == list(range(50)), (i, seq[:10])


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("how", ["close", "disconnect"])
def test_session_gone_once_connection_closed(broker, raw, proto, how):
    """MQTT-3.1.2-23 (5.0: expiry 0 -> the session ends when the connection
    closes), MQTT-3.1.2-6 (3.1.1 clean session lasts as long as the connection).
    Once the broker has closed the connection, a new CONNECT without clean
    start must get Session Present 0. Repeated to expose a close/lookup race."""
    for i in range(40):
        r = raw(broker, proto)
        assert r.connect("gone", clean=(proto == 4)).rc == 0  # v5: clean start 0, expiry 0
        r.subscribe([("gone/t", 1)])
        if how == "close":
            r.close_wait()
        else:
            r.disconnect()
        r2 = raw(broker, proto)
        kw = dict(clean=False)
        if proto == 5:
            kw["properties"] = [(M.P_SESSION_EXPIRY, 0)]
        ca = r2.connect("gone", **kw)
        assert not ca.session_present, "iteration %d: %r" % (i, ca)
        r2.disconnect()


def test_takeover_while_the_old_connection_subscribes(start_broker, raw):
    """A connection floods SUBSCRIBE while another takes its client id over
    with a clean start (ending the session it used): what the old connection
    still sends must not leave a subscription of the ended session in the
    index (a later publish on it would reach freed memory). Several tries, as
    the two connections need to land on different workers."""
    b = start_broker()
    pub = connect_raw(raw, b, "race-pub")
    for attempt in range(8):
        cid = "racer-%d" % attempt
        old = connect_raw(raw, b, cid, clean=False)
        stop = threading.Event()
        flood = M.subscribe(1, [("race/%d/#" % attempt, 0)]) * 200

        def send_forever():
            try:
                while not stop.is_set():
                    old.sock.sendall(flood)
            except OSError:
                pass  # closed by the take-over

        t = threading.Thread(target=send_forever)
        t.start()
        time.sleep(0.1)
        new = connect_raw(raw, b, cid, clean=True)
        time.sleep(0.1)
        stop.set()
        t.join()
        old.close()
        new.close()
        time.sleep(0.2)
        pub.send(M.publish("race/%d/x" % attempt, b"after"))
        assert_broker_alive(b)


def test_a_flooding_client_does_not_hold_up_the_others_on_its_worker(start_broker, raw):
    """A client that keeps its socket full of SUBSCRIBEs (and reads none of
    the SUBACKs) shares its worker fairly: a new client on the same worker
    is accepted and gets its CONNACK after a few of the flooder's reads, not
    after the up to 32 buffers libuv would read for one readable event (the
    take-over race test waited seconds for its CONNACK). Measured in
    SUBSCRIBEs the broker handled between the CONNECT being in its socket
    and the new client's "connected" line, so that the machine's load does
    not matter."""
    b = start_broker(workers=1)
    flooder = connect_raw(raw, b, "flooder", clean=False)
    packet = M.subscribe(1, [("flood/#", 0)])
    flood = packet * 200
    stop = threading.Event()

    def send_forever():
        try:
            while not stop.is_set():
                flooder.sock.sendall(flood)
        except OSError:
            pass

    t = threading.Thread(target=send_forever)
    t.start()
    handled = re.compile(rb"client flooder subscribed to flood/#")
    # One read buffer is 64 KiB; with the flooder read once per loop turn
    # the newcomer waits about three of them.
    limit = 8 * 65536 // len(packet)
    try:
        b.wait_log(r"client flooder subscribed to flood/#", timeout=10)
        for i in range(5):
            other = raw(b, timeout=30)
            other.send(M.connect("other-%d" % i))
            mark = os.path.getsize(b.logpath)
            assert other.expect(M.CONNACK, 30).rc == 0
            with open(b.logpath, "rb") as f:
                f.seek(mark)
                text = f.read()
            connected = re.search(rb"client other-%d connected" % i, text)
            assert connected, "no connected line for other-%d" % i
            waited = len(handled.findall(text, 0, connected.start()))
            assert waited < limit, "other-%d waited for %d SUBSCRIBEs of the flooder (at most %d)" % (
                i, waited, limit)
            other.disconnect()
    finally:
        stop.set()
        t.join()
    assert_broker_alive(b)
