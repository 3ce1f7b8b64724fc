"""The durable store across restarts: what a kill -9 (SIGKILL, where a test
says kill) or a normal restart must keep, what persistence false must not
keep, and how start-up treats a damaged database.

MQTT 3.1.1 sections 4.1 (session state), 4.3 (QoS flows), 4.4 (redelivery);
MQTT 5.0 sections 3.1.2.11.2 (session expiry), 3.1.3.2.2 (will delay),
3.3.1.3 (retain), 3.8.3.1 (subscription options), 4.3.3 (QoS 2).
"""
import os
import subprocess
import time

import pytest

import mqttraw as M
from conftest import PROTOCOLS, broker_bin, connect_raw, wait_for


def persist_kw(proto, expiry=300):
    kw = dict(clean=False)
    if proto == 5:
        kw["properties"] = [(M.P_SESSION_EXPIRY, expiry)]
    return kw


def kill_restart(b):
    """SIGKILL the broker and start it again on the same data directory."""
    b.kill9()
    return b.start(timeout=30)


def db_path(b):
    return os.path.join(b.data, "ferromq.db")


def store_bytes(b):
    """Database, its WAL and the journal."""
    total = 0
    for path in (db_path(b), db_path(b) + "-wal", os.path.join(b.data, "ferromq.journal.0"),
                 os.path.join(b.data, "ferromq.journal.1")):
        try:
            total += os.path.getsize(path)
        except FileNotFoundError:
            pass
    return total


class Qos2Receiver:
    """The receiving side of QoS 2 as a real client keeps it: a PUBLISH whose
    packet id is waiting for PUBREL is the same message again. Counts
    application-level deliveries by payload; survives reconnects."""

    def __init__(self):
        self.held = set()
        self.delivered = []

    def handle(self, r, p):
        if p.type == M.PUBLISH:
            if p.qos < 2 or p.pid not in self.held:
                self.delivered.append(p.payload)
            if p.qos == 2:
                self.held.add(p.pid)
            r.ack(p)
        elif p.type == M.PUBREL:
            self.held.discard(p.pid)
            r.send(M.ack(M.PUBCOMP, p.pid, version=r.version))

    def pump(self, r, period=0.5):
        for p in r.quiet(period):
            self.handle(r, p)


# ---------------------------------------------------------------- retained

def test_retained_set_replace_clear_survive_kill(start_broker, raw):
    b = start_broker()
    pub = connect_raw(raw, b, "ret-pub", 5)
    ok = (0x00, 0x10)  # success, no matching subscribers
    assert pub.publish("st/ret/a", b"first", qos=1, retain=True).rc in ok
    assert pub.publish("st/ret/a", b"second", qos=1, retain=True, pid=2).rc in ok  # replace
    assert pub.publish("st/ret/b", b"doomed", qos=2, retain=True, pid=3).rc in ok
    assert pub.publish("st/ret/b", b"", qos=1, retain=True, pid=4).rc in ok        # clear
    assert pub.publish("st/ret/c", b"kept-q2", qos=2, retain=True, pid=5,
                       properties=[(M.P_CONTENT_TYPE, "text/plain")]).rc in ok
    kill_restart(b)
    sub = connect_raw(raw, b, "ret-sub", 5)
    sub.subscribe([("st/ret/#", 2)])
    got = {}
    for p in sub.quiet(1.0):
        assert p.type == M.PUBLISH, p
        assert p.retain, p
        got[p.topic] = p
        if p.qos:
            sub.ack(p)
    assert sorted(got) == ["st/ret/a", "st/ret/c"], got
    assert got["st/ret/a"].payload == b"second"
    assert got["st/ret/c"].payload == b"kept-q2"
    assert got["st/ret/c"].qos == 2
    assert got["st/ret/c"].props.get(M.P_CONTENT_TYPE) == "text/plain"


# ---------------------------------------------------------------- subscriptions

def test_v5_subscription_options_survive_kill(start_broker, raw):
    """QoS, No Local, Retain As Published and the Subscription Identifier of a
    persistent session's subscriptions are all restored."""
    b = start_broker()
    s = connect_raw(raw, b, "opts", 5, **persist_kw(5))
    ack = s.subscribe([("so/q1", M.sub_opts(qos=1)),
                       ("so/nl", M.sub_opts(qos=1, no_local=True)),
                       ("so/rap", M.sub_opts(qos=1, rap=True)),
                       ("so/norap", M.sub_opts(qos=1))], pid=1)
    assert ack.codes == [1, 1, 1, 1]
    assert s.subscribe([("so/id/#", M.sub_opts(qos=2))], pid=2,
                       properties=[(M.P_SUBSCRIPTION_ID, 77)]).codes == [2]
    s.disconnect()
    kill_restart(b)

    s = raw(b, 5)
    assert s.connect("opts", **persist_kw(5)).session_present
    other = connect_raw(raw, b, "opts-pub", 5)
    # QoS: a QoS 2 publish on a QoS 1 subscription arrives at QoS 1.
    other.publish("so/q1", b"downgraded", qos=2)
    p = s.expect(M.PUBLISH)
    assert (p.topic, p.payload, p.qos) == ("so/q1", b"downgraded", 1), p
    s.ack(p)
    # No Local: the session's own publish is not sent back to it.
    s.publish("so/nl", b"own", qos=1, pid=500)
    other.publish("so/nl", b"others", qos=1, pid=2)
    p = s.expect(M.PUBLISH)
    assert p.payload == b"others", "no_local lost: got own message %r" % p
    s.ack(p)
    # Retain As Published: the retain flag of a live publish is kept only there.
    other.publish("so/rap", b"r1", qos=1, retain=True, pid=3)
    p = s.expect(M.PUBLISH)
    assert (p.topic, p.retain) == ("so/rap", True), p
    s.ack(p)
    other.publish("so/norap", b"r2", qos=1, retain=True, pid=4)
    p = s.expect(M.PUBLISH)
    assert (p.topic, p.retain) == ("so/norap", False), p
    s.ack(p)
    # Subscription Identifier.
    other.publish("so/id/x", b"with-id", qos=2, pid=5)
    p = s.expect(M.PUBLISH)
    assert p.topic == "so/id/x" and p.qos == 2, p
    assert p.props.get(M.P_SUBSCRIPTION_ID) == [77], p
    s.ack_fully(p)
    assert s.quiet(0.3) == []


def test_v3_subscription_qos_survives_kill(start_broker, raw):
    b = start_broker()
    s = connect_raw(raw, b, "v3opts", 4, clean=False)
    assert s.subscribe([("s3/zero", 0), ("s3/one", 1), ("s3/two", 2)]).codes == [0, 1, 2]
    kill_restart(b)
    s = raw(b, 4)
    assert s.connect("v3opts", clean=False).session_present
    pub = connect_raw(raw, b, "v3opts-pub", 4)
    for i, t in enumerate(("s3/zero", "s3/one", "s3/two")):
        pub.publish(t, t.encode(), qos=2, pid=10 + i)
        p = s.expect(M.PUBLISH)
        assert (p.topic, p.qos) == (t, i), p
        s.ack_fully(p)


# ---------------------------------------------------------------- queues

@pytest.mark.parametrize("proto", PROTOCOLS)
def test_offline_queue_survives_kill(start_broker, raw, proto):
    """QoS 1 and QoS 2 messages queued for an offline persistent session are
    delivered, in order, after kill -9 and restart."""
    b = start_broker()
    s = connect_raw(raw, b, "q-sub", proto, **persist_kw(proto))
    assert s.subscribe([("sq/t", 2)]).codes == [2]
    s.disconnect()
    pub = connect_raw(raw, b, "q-pub", proto)
    sent = []
    for i in range(10):
        qos = 1 + i % 2
        pub.publish("sq/t", b"m%d" % i, qos=qos, pid=i + 1)
        sent.append((b"m%d" % i, qos))
    kill_restart(b)
    s = raw(b, proto)
    assert s.connect("q-sub", **persist_kw(proto)).session_present
    got = []
    for _ in sent:
        p = s.expect(M.PUBLISH)
        got.append((p.payload, p.qos))
        s.ack_fully(p)
    assert got == sent
    assert s.quiet(0.3) == []


def test_unreferenced_body_removed_at_start_through_apply(start_broker, raw):
    """A stored body no row holds (a database edited by hand, or written by
    an earlier release) is removed at start by a repair batch that apply
    runs like any other: the applied index moves on, the bodies in use
    stay, and the queue is served."""
    import sqlite3
    b = start_broker(max_queued_messages=0)
    sub = connect_raw(raw, b, "rp-sub", 5, **persist_kw(5))
    sub.subscribe([("rp/t", 1)])
    sub.disconnect()
    pub = connect_raw(raw, b, "rp-pub", 5)
    for i in range(3):
        assert pub.publish("rp/t", b"k%d" % i, qos=1, pid=i + 1).rc in (0, None)
    b.stop()
    db = sqlite3.connect(db_path(b), timeout=10)
    with db:
        db.execute("INSERT INTO msgs(id, topic, props, payload, qos, retain, expiry_at, origin)"
                   " VALUES(999999, 'stray', NULL, x'00', 1, 0, 0, 0)")
        applied = db.execute("SELECT value FROM meta WHERE key = 'applied_index'").fetchone()[0]
    db.close()
    b.start(timeout=30)
    b.wait_log(r"removing 1 unreferenced message bodies")
    s = raw(b, 5)
    assert s.connect("rp-sub", **persist_kw(5)).session_present
    got = [s.expect(M.PUBLISH, timeout=10) for _ in range(3)]
    assert [p.payload for p in got] == [b"k0", b"k1", b"k2"]
    db = sqlite3.connect(db_path(b), timeout=10)
    assert db.execute("SELECT count(*) FROM msgs WHERE id = 999999").fetchone()[0] == 0
    assert db.execute("SELECT value FROM meta WHERE key = 'applied_index'").fetchone()[0] > applied
    db.close()


def test_journal_stays_bounded_under_a_steady_flow(start_broker, raw):
    """The journal's two files are used in turn: under a flow that never
    pauses (so some batch always waits for its sync), what they hold stays
    a few windows' worth while many times that goes through; a kill -9 in
    the middle of the flow loses nothing acknowledged."""
    b = start_broker(max_queued_messages=0)
    sub = connect_raw(raw, b, "jb-sub", 5, **persist_kw(5))
    sub.subscribe([("jb/t", 1)])
    pub = connect_raw(raw, b, "jb-pub", 5)
    payload = b"x" * 400
    total, pid, biggest = 60000, 0, 0
    got = 0
    for start in range(0, total, 500):
        for i in range(500):
            pid = pid % 65535 + 1
            pub.send(M.publish("jb/t", payload + b"%06d" % (start + i), 1, False, False, pid, 5))
        for _ in range(500):
            assert pub.expect_skip(M.PUBACK, timeout=30).rc in (0, None)
        for p in sub.quiet(0.01):
            if p.type == M.PUBLISH:
                sub.ack(p)
                got += 1
        biggest = max(biggest, sum(os.path.getsize(os.path.join(b.data, "ferromq.journal.%d" % i))
                                   for i in (0, 1)))
    written = total * (len(payload) + 60)
    print("journal files at most %d bytes while %d went through" % (biggest, written))
    # Two files of one apply's worth (4 MB, or half a second) each, and
    # the batch that crosses it: far below what went through.
    assert biggest < 12 * 1024 * 1024 < written / 2
    # Everything acknowledged is there after a kill -9 in the middle of it.
    b.kill9()
    b.start(timeout=30)
    s = raw(b, 5)
    assert s.connect("jb-sub", **persist_kw(5)).session_present
    rest = 0
    while True:
        ps = s.quiet(1.0)
        if not ps:
            break
        for p in ps:
            if p.type == M.PUBLISH:
                s.ack(p)
                rest += 1
    assert got + rest >= total


def test_journalled_batches_not_yet_applied_survive_kill(start_broker, raw):
    """Acknowledged means in the journal (fdatasync'd); the database gets the
    batches up to half a second later. A kill -9 in between loses nothing:
    at start the journal's batches are applied, then served. Seen from the
    outside: after the kill the database lacks queue rows whose PUBACK went
    out, the restart logs the journalled batches it applied, and every
    message arrives, in order."""
    import sqlite3
    b = start_broker(max_queued_messages=0)
    sub = connect_raw(raw, b, "jr-sub", 5, **persist_kw(5))
    sub.subscribe([("jr/t", 1)])
    sub.disconnect()
    pub = connect_raw(raw, b, "jr-pub", 5)
    payloads = [b"j%03d" % i for i in range(60)]
    for attempt in range(3):
        # The kill has to fall inside the half second: retried if a slow
        # machine let the batches reach the database first.
        for i, payload in enumerate(payloads):
            pub.send(M.publish("jr/t", payload, 1, False, False, i + 1, 5))
        for _ in payloads:
            assert pub.expect_skip(M.PUBACK, timeout=30).rc in (0, None)
        b.kill9()
        journalled = sum(os.path.getsize(os.path.join(b.data, "ferromq.journal.%d" % i)) for i in (0, 1))
        db = sqlite3.connect(db_path(b), timeout=10)
        rows = db.execute("SELECT count(*) FROM queue").fetchone()[0]
        db.close()
        assert journalled > 0
        b.start(timeout=30)
        if rows < len(payloads) * (attempt + 1):
            break
        pub = connect_raw(raw, b, "jr-pub", 5)
    else:
        pytest.fail("every batch was in the database before the kill, three times")
    b.wait_log(r"applied \d+ journalled batches")
    s = raw(b, 5)
    assert s.connect("jr-sub", **persist_kw(5)).session_present
    want = payloads * (attempt + 1)
    got = []
    for _ in want:
        p = s.expect(M.PUBLISH, timeout=10)
        got.append(p.payload)
        s.ack(p)
    assert got == want
    assert s.quiet(0.5) == []


@pytest.mark.parametrize("how", ["kill", "restart"])
@pytest.mark.parametrize("proto", PROTOCOLS)
def test_inflight_resent_with_dup_same_pid_after_kill(start_broker, raw, proto, how):
    """MQTT-4.4.0-1, MQTT-3.3.1-1: an unacknowledged PUBLISH is resent on
    reconnect with the same packet id and DUP set, also after the broker was
    killed (or restarted)."""
    b = start_broker()
    s = connect_raw(raw, b, "inf-sub", proto, **persist_kw(proto))
    s.subscribe([("inf/t", 1)])
    pub = connect_raw(raw, b, "inf-pub", proto)
    pub.publish("inf/t", b"unacked", qos=1)
    first = s.expect(M.PUBLISH)
    assert first.payload == b"unacked" and not first.dup
    # no PUBACK
    if how == "kill":
        kill_restart(b)
    else:
        b.restart()
    s.close()
    s = raw(b, proto)
    assert s.connect("inf-sub", **persist_kw(proto)).session_present
    again = s.expect(M.PUBLISH)
    assert again.payload == b"unacked"
    assert again.pid == first.pid, (first, again)
    assert again.dup, again
    s.ack(again)
    assert s.quiet(0.3) == []


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_qos2_inbound_exactly_once_across_kill(start_broker, raw, proto):
    """MQTT 4.3.3: PUBREC was sent, so the broker owns the message; after
    kill -9 the publisher's resent PUBLISH (DUP, same packet id) is answered
    with PUBREC and not delivered again; PUBREL gets PUBCOMP."""
    b = start_broker()
    online = connect_raw(raw, b, "x2-online", proto, **persist_kw(proto))
    online.subscribe([("x2/t", 2)])
    offline = connect_raw(raw, b, "x2-offline", proto, **persist_kw(proto))
    offline.subscribe([("x2/t", 2)])
    offline.disconnect()
    rx_online, rx_offline = Qos2Receiver(), Qos2Receiver()

    pub = connect_raw(raw, b, "x2-pub", proto, **persist_kw(proto))
    pub.send(M.publish("x2/t", b"once", qos=2, pid=7, version=proto))
    rec = pub.expect(M.PUBREC)
    assert rec.pid == 7 and rec.rc == 0, rec
    rx_online.pump(online, 0.5)
    kill_restart(b)
    for r in (pub, online):
        r.close()

    pub = raw(b, proto)
    assert pub.connect("x2-pub", **persist_kw(proto)).session_present
    pub.send(M.publish("x2/t", b"once", qos=2, dup=True, pid=7, version=proto))
    rec = pub.expect(M.PUBREC)
    assert rec.pid == 7 and rec.rc == 0, rec
    pub.send(M.ack(M.PUBREL, 7, version=proto))
    comp = pub.expect(M.PUBCOMP)
    assert comp.pid == 7 and comp.rc == 0, comp

    online = raw(b, proto)
    assert online.connect("x2-online", **persist_kw(proto)).session_present
    offline = raw(b, proto)
    assert offline.connect("x2-offline", **persist_kw(proto)).session_present
    wait_for(lambda: (rx_online.pump(online, 0.2), rx_online.delivered)[1], 5,
             what="delivery to the online subscriber")
    wait_for(lambda: (rx_offline.pump(offline, 0.2), rx_offline.delivered)[1], 5,
             what="delivery to the offline subscriber")
    rx_online.pump(online, 0.5)
    rx_offline.pump(offline, 0.5)
    assert rx_online.delivered == [b"once"]
    assert rx_offline.delivered == [b"once"]


# ---------------------------------------------------------------- wills

def will_watcher(raw, b):
    w = connect_raw(raw, b, "will-watch", 5)
    w.subscribe([("wd/#", 1)])
    return w


def test_will_delay_survives_kill_of_connected_client(start_broker, raw):
    """A connected client with Will Delay 3 s: kill -9 of the broker counts as
    its disconnection at restart; the will is published 3 s after that."""
    b = start_broker()
    c = connect_raw(raw, b, "wd-client", 5, **persist_kw(5, 60),
                    will=dict(topic="wd/t", payload=b"gone", qos=1,
                              properties=[(M.P_WILL_DELAY, 3)]))
    # CONNACK does not wait for the session to be on disk; a SUBACK does, and
    # commits are in order: after it, the session and its will are stored.
    c.subscribe([("wd/barrier", 1)])
    kill_restart(b)
    t_restart = time.monotonic()
    c.close()
    w = will_watcher(raw, b)
    p = w.expect(M.PUBLISH, timeout=12)
    elapsed = time.monotonic() - t_restart
    assert (p.topic, p.payload) == ("wd/t", b"gone"), p
    assert 2.0 <= elapsed <= 9.0, "will %.1fs after restart, want ~3s" % elapsed


def test_will_delay_timer_running_survives_kill(start_broker, raw):
    """The will-delay timer of a client that already dropped its connection
    keeps its absolute time across kill -9."""
    b = start_broker()
    c = connect_raw(raw, b, "wd-timer", 5, **persist_kw(5, 60),
                    will=dict(topic="wd/timer", payload=b"timer", qos=1,
                              properties=[(M.P_WILL_DELAY, 3)]))
    c.subscribe([("wd/barrier", 1)])  # the session is on disk (see above)
    c.close()
    t_drop = time.monotonic()
    time.sleep(1.0)  # the timer is running
    kill_restart(b)
    w = will_watcher(raw, b)
    p = w.expect(M.PUBLISH, timeout=12)
    elapsed = time.monotonic() - t_drop
    assert (p.topic, p.payload) == ("wd/timer", b"timer"), p
    assert 2.5 <= elapsed <= 9.0, "will %.1fs after the drop, want ~3s" % elapsed


# ---------------------------------------------------------------- session expiry

def test_session_expiry_counts_while_broker_is_down(start_broker, raw):
    """Session expiry is an absolute time: a 2 s session is gone after the
    broker was down 3 s; a 60 s one and a v3 persistent one are not."""
    b = start_broker()
    for cid, expiry in (("exp-short", 2), ("exp-long", 60)):
        r = connect_raw(raw, b, cid, 5, **persist_kw(5, expiry))
        r.subscribe([("exp/t", 1)])
        r.disconnect()
    r = connect_raw(raw, b, "exp-v3", 4, clean=False)
    r.subscribe([("exp/t", 1)])
    r.disconnect()
    b.stop()
    time.sleep(3.0)  # the test is about time passing while the broker is down
    b.start()
    short = raw(b, 5)
    assert short.connect("exp-short", clean=False).session_present is False
    long_ = raw(b, 5)
    assert long_.connect("exp-long", **persist_kw(5, 60)).session_present is True
    v3 = raw(b, 4)
    assert v3.connect("exp-v3", clean=False).session_present is True
    # The surviving sessions kept their subscription, the expired one did not.
    pub = connect_raw(raw, b, "exp-pub", 4)
    pub.publish("exp/t", b"after", qos=1)
    for r in (long_, v3):
        p = r.expect(M.PUBLISH)
        assert p.payload == b"after"
        r.ack(p)
    assert short.quiet(0.3) == []


# ---------------------------------------------------------------- persistence false

def test_persistence_false_keeps_nothing(start_broker, raw):
    b = start_broker(persistence=False)
    s = connect_raw(raw, b, "np-sub", 5, **persist_kw(5))
    s.subscribe([("np/t", 1)])
    s.disconnect()
    pub = connect_raw(raw, b, "np-pub", 5)
    pub.publish("np/t", b"queued", qos=1)
    pub.publish("np/ret", b"retained", qos=1, retain=True, pid=2)
    b.restart()
    assert not os.path.exists(db_path(b)), os.listdir(b.data)
    s = raw(b, 5)
    assert s.connect("np-sub", **persist_kw(5)).session_present is False
    s.subscribe([("np/#", 1)])
    assert s.quiet(0.5) == []


# ---------------------------------------------------------------- damaged database

def fill_store(b, raw, n=300):
    """Enough rows that the database spans many pages (no deletes: no free pages)."""
    pub = connect_raw(raw, b, "fill", 4)
    for i in range(n):
        pub.send(M.publish("fill/%d" % i, os.urandom(500).hex().encode(),
                           qos=1, retain=True, pid=i + 1))
    for i in range(n):
        pub.expect(M.PUBACK)
    pub.disconnect()


def start_expect_failure(b, timeout=15.0):
    """Starts the broker and expects it to exit non-zero by itself. Returns
    (exit code, log text written by this start, seconds)."""
    offset = len(b.log_text())
    t0 = time.monotonic()
    with open(b.logpath, "ab") as logf:
        proc = subprocess.Popen([broker_bin(), "-c", b.conf], stdout=logf,
                                stderr=subprocess.STDOUT, cwd=b.dir)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("broker still running %.0fs after start on a damaged database; log:\n%s"
                        % (timeout, b.log_text()[offset:][-3000:]))
    return rc, b.log_text()[offset:], time.monotonic() - t0


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_database_stops_startup(start_broker, raw, damage):
    b = start_broker()
    fill_store(b, raw)
    b.stop()
    path = db_path(b)
    size = os.path.getsize(path)
    assert size > 64 * 1024, size
    if damage == "garbage":
        with open(path, "r+b") as f:
            f.seek(size // 2 - 8192)
            f.write(os.urandom(16384))
    else:
        os.truncate(path, size // 2)
    rc, log, secs = start_expect_failure(b)
    b.check_log()
    assert rc != 0, "broker exited 0 on a damaged database; log:\n" + log
    assert secs < 10.0, secs
    assert "ferromq.db" in log, "log does not name the file:\n" + log
    low = log.lower()
    assert any(w in low for w in ("backup", "recover", "restore", "move")), \
        "log does not say what to do:\n" + log


def test_empty_database_file_is_reported(start_broker, raw):
    """A database file truncated to 0 bytes reads as a new, empty store:
    the broker says so instead of starting silently without its data."""
    b = start_broker()
    fill_store(b, raw, 20)
    b.stop()
    path = db_path(b)
    os.truncate(path, 0)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    b.start()
    assert "the database file is empty (0 bytes)" in b.log_text()
    assert "restore it from a backup" in b.log_text()


# ---------------------------------------------------------------- disk use under churn

def test_store_size_bounded_under_churn(start_broker, raw):
    """20k QoS 1 messages in 5 rounds through an offline-then-online
    persistent session: database + WAL after the last round is not much
    larger than after the first."""
    rounds, per_round = 5, 4000
    b = start_broker(max_queued_messages=100000)
    sub = connect_raw(raw, b, "churn-sub", 4, clean=False)
    sub.subscribe([("churn/t", 1)])
    sub.disconnect()
    pub = connect_raw(raw, b, "churn-pub", 4)
    payload = b"x" * 200
    sizes = []
    pid = 0
    for rnd in range(rounds):
        for start in range(0, per_round, 500):
            for i in range(500):
                pid = pid % 65535 + 1
                pub.send(M.publish("churn/t", payload, qos=1, pid=pid))
            for i in range(500):
                pub.expect(M.PUBACK, timeout=30)
        sub = raw(b, 4)
        assert sub.connect("churn-sub", clean=False).session_present
        for i in range(per_round):
            p = sub.expect(M.PUBLISH, timeout=30)
            sub.ack(p)
        assert sub.quiet(0.2) == []
        sub.disconnect()
        # The last PUBACK is committed by the time the next SUBSCRIBE's SUBACK
        # comes back (commits are in order): use one as a barrier.
        barrier = connect_raw(raw, b, "churn-barrier", 4)
        barrier.subscribe([("churn/barrier", 1)])
        barrier.disconnect()
        sizes.append(store_bytes(b))
    print("database + WAL bytes after each round: %r" % sizes)
    assert sizes[0] > 0
    # Freed pages are reused and the WAL is checkpointed (every ~1000 pages,
    # 4 MiB) and restarted: after the first round the total moves within one
    # WAL cycle instead of growing by a round's worth (~2.5 MB) each time.
    assert max(sizes[1:]) <= sizes[0] + 8 * 1024 * 1024, \
        "database + WAL bytes per round: %r" % sizes
