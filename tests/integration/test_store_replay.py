"""Replay equivalence through the real broker (issue 13 #6): every record
batch the broker applies during a run of real clients is recorded
(FERROMQ_STORE_BATCH_DUMP), applied again to an empty store by
fm-store-replay, and the two databases are compared table by table. Apply
is the only code that may change the database, and it is deterministic: any
write outside it (at recovery, say) or any state it keeps only in memory
shows up as a difference."""
import os
import sqlite3
import subprocess

from paho.mqtt.packettypes import PacketTypes

from conftest import broker_bin, props, wait_for


def replay_tool():
    path = os.environ.get("FERROMQ_STORE_REPLAY") or os.path.join(os.path.dirname(broker_bin()),
                                                                  "fm-store-replay")
    assert os.path.exists(path), "%s does not exist (build fm-store-replay)" % path
    return path


def logical_dump(path):
    """Every table but SQLite's own: {table: rows ordered by every column}."""
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        out = {}
        for t in tables:
            cols = len(con.execute('SELECT * FROM "%s" LIMIT 0' % t).description)
            order = ", ".join(str(i + 1) for i in range(cols))
            out[t] = con.execute('SELECT * FROM "%s" ORDER BY %s' % (t, order)).fetchall()
        return out
    finally:
        con.close()


def count(path, sql):
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def v5(**kw):
    return props(PacketTypes.CONNECT, **kw)


def test_replayed_batches_rebuild_the_live_database(start_broker, client, tmp_path, monkeypatch):
    cloud = start_broker()  # the bridge's remote; no dump of its own
    up = client(cloud, protocol=5)
    up.subscribe("edge/#", 1)
    dump = str(tmp_path / "batches.bin")
    monkeypatch.setenv("FERROMQ_STORE_BATCH_DUMP", dump)
    b = start_broker(extra_lines=["connection cloud", "address 127.0.0.1:%d" % cloud.port,
                                  "bridge_protocol_version mqttv50", "restart_timeout 1 2",
                                  'topic up/# out 1 "" edge/'])
    db = os.path.join(b.data, "ferromq.db")
    b.wait_log("FERROMQ_STORE_BATCH_DUMP")

    # Persistent sessions: a connected v5 historian, an offline v3.1.1 one,
    # one that will expire, gateways with wills.
    hist = client(b, "hist", 5, clean=False, properties=v5(SessionExpiryInterval=3600))
    hist.subscribe("plant/#", 2, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=3))
    hist.subscribe("alarms/+", 1)
    off = client(b, "off311", 4, clean=False)
    off.subscribe("plant/#", 1)
    off.subscribe("alarms/#", 2)
    off.disconnect()
    brief = client(b, "brief", 5, clean=False, properties=v5(SessionExpiryInterval=1))
    brief.subscribe("plant/#", 1)
    brief.disconnect()
    will = {"topic": "plant/health/gw-1", "payload": b"offline", "qos": 1, "retain": True}
    gw1 = client(b, "gw-1", 5, clean=False, will=will, properties=v5(SessionExpiryInterval=600))
    will2 = dict(will, topic="plant/health/gw-2",
                 properties=props(PacketTypes.WILLMESSAGE, WillDelayInterval=300))
    client(b, "gw-2", 5, clean=False, will=will2, properties=v5(SessionExpiryInterval=600))

    # Retained: set, replace, clear; QoS 1 and 2 (rx2 on the way in); the
    # bridge spool filled and emptied.
    pub = client(b, "pub", 5)
    pub.publish("plant/1/status", b"online", 1, retain=True)
    pub.publish("plant/2/status", b"online", 2, retain=True)
    pub.publish("plant/1/status", b"maintenance", 1, retain=True)
    pub.publish("plant/2/status", b"", 1, retain=True)
    for i in range(30):
        pub.publish("plant/%d/temp" % (i % 3), b"%d" % i, 1 + i % 2)
    for i in range(5):
        pub.publish("alarms/a", b"a%d" % i, 2)
    for i in range(10):
        pub.publish("up/m", b"u%d" % i, 1)
    assert [m.payload for m in up.messages.wait_for(10, timeout=15)] == [b"u%d" % i for i in range(10)]
    hist.messages.wait_for(4 + 30 + 5)  # every status update (the clear too), temperatures, alarms

    # The expiring session goes (a session delete releasing its queue).
    wait_for(lambda: count(db, "SELECT count(*) FROM sessions WHERE client_id = 'brief'") == 0, 15,
             what="session 'brief' expired")
    # A will fires (retained), the offline session queues it.
    gw1.close()
    wait_for(lambda: count(db, "SELECT count(*) FROM retained WHERE topic = 'plant/health/gw-1'"
                               " AND msg_id IS NOT NULL") == 1, 10, what="gw-1's will retained")
    hist.unsubscribe("alarms/+")
    hist.disconnect()

    # A restart in the middle: recovery must write nothing apply did not.
    b.restart()
    b.wait_log("FERROMQ_STORE_BATCH_DUMP")
    pub = client(b, "pub2", 5)
    for i in range(10):
        pub.publish("plant/1/temp", b"after-%d" % i, 2)
        pub.publish("alarms/b", b"b%d" % i, 1)
    # Bodies held by the retained index and a queue row across the restart
    # lose their holders: a new retained value, the queue drained.
    pub.publish("plant/1/status", b"online", 1, retain=True)
    off = client(b, "off311", 4, clean=False)
    assert off.session_present
    sid = count(db, "SELECT sid FROM sessions WHERE client_id = 'off311'")
    wait_for(lambda: count(db, "SELECT count(*) FROM queue WHERE sid = %d" % sid) == 0, 10,
             what="off311's queue drained")
    off.disconnect()
    for i in range(3):
        pub.publish("plant/3/temp", b"left-%d" % i, 1 + i % 2)  # left queued
    hist = client(b, "hist", 5, clean=False, properties=v5(SessionExpiryInterval=3600))
    assert hist.session_present
    hist.messages.wait_for(10, timeout=10)  # after-*
    hist.unsubscribe("plant/#")
    hist.disconnect()
    b.stop()

    # The live database is not trivial: every kind of row is there.
    live = logical_dump(db)
    assert live["sessions"] and live["subs"] and live["queue"] and live["retained"] and live["msgs"]

    replayed = tmp_path / "replayed"
    replayed.mkdir()
    r = subprocess.run([replay_tool(), dump, str(replayed)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    again = logical_dump(str(replayed / "ferromq.db"))
    assert again.keys() == live.keys()
    for table in live:
        assert again[table] == live[table], "table %s differs" % table
    applied = dict(live["meta"])["applied_index"]
    assert applied > 20 and r.stdout.strip() == "applied %d batches, last index %d" % (applied, applied)
