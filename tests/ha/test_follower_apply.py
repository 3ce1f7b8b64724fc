"""A follower's database follows the committed log as a single broker's
follows its journal (issue 14): each committed entry is applied within
about half a second (APPLY_MS), not kept in memory until the next snapshot
(then tens of MB were applied at once, stalling the follower's raft loop,
and with it its acknowledgements, for over 100 ms)."""
import os
import sqlite3
import threading

import paho.mqtt.client as mqtt

import halib

QUEUED = 50


def queued_in(node):
    """Messages queued in node's database (0 while it has none)."""
    db = sqlite3.connect(os.path.join(node.data, "ferromq.db"), timeout=10)
    try:
        return db.execute("SELECT count(*) FROM queue").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def client(leader, client_id, clean):
    c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=mqtt.MQTTv311)
    c.connect(leader.host, leader.port, keepalive=30)
    c.loop_start()
    return c


def test_follower_database_follows_the_log(broker_cluster):
    c = broker_cluster(3)
    leader = c.wait_leader(30)
    assert leader, c.report()
    sub = client(leader, "historian", False)
    subscribed = threading.Event()
    sub.on_subscribe = lambda *args: subscribed.set()
    assert halib.wait_for(sub.is_connected, 10), c.report()
    sub.subscribe("plant/line1/#", qos=1)
    assert subscribed.wait(10), c.report()
    sub.disconnect()
    sub.loop_stop()
    pub = client(leader, "gateway", True)
    infos = [pub.publish("plant/line1/temp", b"%d" % i, qos=1) for i in range(QUEUED)]
    for info in infos:
        info.wait_for_publish(10)
        assert info.is_published(), c.report()
    pub.disconnect()
    pub.loop_stop()
    # Fifty small messages are far below any snapshot threshold: only the
    # steady apply puts them into the followers' databases.
    followers = [n for n in c.brokers() if n is not leader]
    assert halib.wait_for(lambda: all(queued_in(f) == QUEUED for f in followers), 15, 0.1), \
        "queued in the followers' databases: %s\n%s" % ([queued_in(f) for f in followers], c.report())
