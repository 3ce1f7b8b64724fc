"""Expired messages queued for an offline session leave the disk without the
session coming back (the broker sweeps offline queues every ~10 s)."""
import os
import sqlite3

import mqttraw as M
from conftest import connect_raw, wait_for


def queued_rows(data_dir):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data_dir, "ferromq.db"), uri=True)
    try:
        return db.execute("SELECT count(*) FROM queue").fetchone()[0], \
            db.execute("SELECT count(*) FROM msgs").fetchone()[0]
    finally:
        db.close()


def test_expired_messages_swept_from_offline_queue(broker, raw):
    sub = connect_raw(raw, broker, "sweep-sub", 5, clean=False, properties=[(M.P_SESSION_EXPIRY, 600)])
    sub.subscribe([("sweep/#", 1)])
    sub.disconnect()
    pub = connect_raw(raw, broker, "sweep-pub", 5)
    for i in range(20):
        pub.publish("sweep/short", b"%d" % i, qos=1, properties=[(M.P_MESSAGE_EXPIRY, 1)])
    pub.publish("sweep/long", b"keep", qos=1)
    wait_for(lambda: queued_rows(broker.data) == (21, 21), what="21 queued rows on disk")
    # Expired after 1 s, swept within the next sweep period.
    wait_for(lambda: queued_rows(broker.data) == (1, 1), timeout=15, interval=0.25,
             what="expired rows swept")
    sub = connect_raw(raw, broker, "sweep-sub", 5, clean=False, properties=[(M.P_SESSION_EXPIRY, 600)])
    p = sub.expect(M.PUBLISH)
    assert p.topic == "sweep/long" and p.payload == b"keep"
    sub.quiet(0.3)
