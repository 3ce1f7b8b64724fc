"""A database written by the previous release opens and keeps its data
(issue 13 #7). data/store_schema3.sql is the database of the release at
commit 3311ba4 (schema 3; data/make_store_schema3.py made it): the current
broker migrates it to schema 5 and serves every session, subscription,
queued message (in order), retained message, will and bridge spool in it."""
import os
import sqlite3
import time

from paho.mqtt.packettypes import PacketTypes

from conftest import Broker, props, wait_for

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "store_schema3.sql")


def build_db(path):
    """The fixture as a database file. Its sessions' expiry times are
    absolute (wall clock): moved to a day from now, as if the upgrade came
    within a day of the old broker's stop."""
    with open(DATA) as f:
        sql = f.read()
    con = sqlite3.connect(path)
    con.executescript(sql)
    con.execute("UPDATE sessions SET expires_at = ? WHERE expires_at != 0",
                (int(time.time() * 1000) + 86400 * 1000,))
    con.commit()
    con.close()


def query(path, sql):
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_schema3_database_opens_and_keeps_its_data(start_broker, client, tmp_path):
    cloud = start_broker()
    out = client(cloud, protocol=5)
    out.subscribe("edge/#", 1)
    d = tmp_path / "edge"
    d.mkdir()
    edge = Broker(d, {}, ["connection cloud", "address 127.0.0.1:%d" % cloud.port,
                          "bridge_protocol_version mqttv50", "restart_timeout 1 2",
                          'topic out/# out 1 "" edge/'])
    db = os.path.join(edge.data, "ferromq.db")
    build_db(db)
    assert query(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [(3,)]
    edge.start()
    try:
        edge.wait_log(r"recovered 3 sessions, 3 subscriptions, 35 queued messages, 2 retained, "
                      r"3 spooled for bridges")
        assert "rows referred to missing" not in edge.log_text()

        # The bridge spool goes up, in order.
        got = out.messages.wait_for(3, timeout=15)
        assert [(m.topic, m.payload) for m in got] == [("edge/out/m", b"o-%d" % i) for i in range(3)]

        # gw-1 counts as disconnected since the start: its will (retained,
        # Will Delay 1 s) goes out.
        health = client(edge, protocol=5)
        health.subscribe("plant/health/#", 1)
        m = health.messages.wait_for(1, timeout=10)[0]
        assert (m.topic, m.payload) == ("plant/health/gw-1", b"offline")

        # Retained messages.
        status = client(edge, protocol=5)
        status.subscribe("plant/+/status", 1)
        got = status.messages.wait_for(2)
        assert sorted((m.topic, m.payload, m.retain) for m in got) == [
            ("plant/1/status", b"online", True), ("plant/2/status", b"online", True)]

        # The v5 session: its 20 queued messages in order, at their QoS, with
        # the subscription identifier of plant/#; then its subscriptions
        # still route (the will may have been queued too, after them).
        expected = ([("plant/1/status", b"online", 1), ("plant/2/status", b"online", 1)]
                    + [("plant/1/temp", b"t1-%d" % i, 1) for i in range(10)]
                    + [("plant/2/temp", b"t2-%d" % i, 2) for i in range(5)]
                    + [("alarms/a", b"a-%d" % i, 1) for i in range(3)])
        hist = client(edge, "hist", 5, clean=False,
                      properties=props(PacketTypes.CONNECT, SessionExpiryInterval=86400))
        assert hist.session_present
        got = wait_for(lambda: (lambda ms: ms if len(ms) >= 20 else None)(
            [m for m in hist.messages.snapshot() if m.topic != "plant/health/gw-1"]), 10, what="20 queued")
        # In order within each QoS (paho reports a QoS 2 message at PUBREL,
        # after QoS 1 messages sent behind it).
        got = [(m.topic, m.payload, m.qos, m) for m in got]
        for qos in (1, 2):
            assert [g[:3] for g in got if g[2] == qos] == [e for e in expected if e[2] == qos]
        got = [g[3] for g in got]
        for m in got:
            if m.topic.startswith("plant/"):
                assert m.properties.SubscriptionIdentifier == [7], m
            else:
                assert not hasattr(m.properties, "SubscriptionIdentifier"), m

        # The v3.1.1 session: 15 queued, in order, at QoS 1.
        h311 = client(edge, "hist311", 4, clean=False)
        assert h311.session_present
        got = h311.messages.wait_for(15, timeout=10)
        assert [(m.topic, m.payload, m.qos) for m in got] == (
            [("plant/1/temp", b"t1-%d" % i, 1) for i in range(10)]
            + [("plant/2/temp", b"t2-%d" % i, 1) for i in range(5)])

        pub = client(edge, protocol=5)
        pub.publish("plant/9/temp", b"new", 1)
        pub.publish("alarms/b", b"new-alarm", 1)
        hist.messages.wait_match(lambda m: m.topic == "alarms/b" and m.payload == b"new-alarm")
        hist.messages.wait_match(lambda m: m.topic == "plant/9/temp" and m.properties.SubscriptionIdentifier == [7])
        h311.messages.wait_match(lambda m: m.topic == "plant/9/temp")
        assert not [m for m in h311.messages.snapshot() if m.topic == "alarms/b"]

        # gw-1's session is still there (it expires in a day).
        gw = client(edge, "gw-1", 5, clean=False,
                    properties=props(PacketTypes.CONNECT, SessionExpiryInterval=86400))
        assert gw.session_present
        # gw-1's will reached hist's queue when it fired (before hist came
        # back): it too is delivered and acknowledged before hist leaves.
        hist.messages.wait_match(lambda m: m.topic == "plant/health/gw-1")
        for c in (hist, h311, gw):
            c.disconnect()
    finally:
        edge.stop()

    assert query(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [(5,)]
    assert query(db, "SELECT client_id FROM sessions ORDER BY client_id") == [("gw-1",), ("hist",), ("hist311",)]
    assert query(db, "SELECT sid, filter, options, sub_id FROM subs ORDER BY sid, filter") == [
        (1, "alarms/+", 1, 0), (1, "plant/#", 2, 7), (2, "plant/+/temp", 1, 0)]
    assert query(db, "SELECT count(*) FROM queue") == [(0,)]  # every message delivered, acknowledged
    assert query(db, "SELECT count(*) FROM spool") == [(0,)]
    assert query(db, "SELECT topic FROM retained WHERE msg_id IS NOT NULL ORDER BY topic") == [
        ("plant/1/status",), ("plant/2/status",), ("plant/health/gw-1",)]
    assert query(db, "SELECT count(*) FROM tombs") == [(0,)]
    assert query(db, "SELECT value > 0 FROM meta WHERE key = 'applied_index'") == [(1,)]
