"""Writes store_schema3.sql, the database of the release before schema 5
(commit 3311ba4, schema 3) that test_store_migration.py opens with the
current broker. Kept to show how the fixture was made; run it only to make
a new one:

    git worktree add /tmp/old-rel 3311ba4
    cmake -S /tmp/old-rel -B /tmp/old-rel/build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build /tmp/old-rel/build --target ferromq
    FERROMQ_BIN=/tmp/old-rel/build/ferromq python3 tests/integration/data/make_store_schema3.py

What the old broker holds when it is killed (kill -9, gw-1 still connected:
a clean stop would drop its will):
- hist (v5, Session Expiry 86400): plant/# QoS 2 with subscription id 7,
  alarms/+ QoS 1; 20 messages queued (2 retained-topic publishes, 10 QoS 1,
  5 QoS 2, 3 alarms).
- hist311 (v3.1.1, clean session 0): plant/+/temp QoS 1; 15 queued.
- gw-1 (v5, Session Expiry 86400), connected, with a will: retained
  "offline" on plant/health/gw-1, QoS 1, Will Delay 1 s.
- retained plant/1/status and plant/2/status ("online").
- bridge cloud (remote down): out/m 0..2 in its spool.
"""
import os
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import conftest as h  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402


def main():
    tmp = tempfile.mkdtemp(prefix="fm-schema3-")
    dead = h.free_port()  # the bridge's remote: nobody listens there
    b = h.Broker(tmp, {}, ["connection cloud", "address 127.0.0.1:%d" % dead, "restart_timeout 60 60",
                           'topic out/# out 1 "" edge/'])
    b.start()
    hist = h.Client(b.port, "hist", 5, clean=False,
                    properties=h.props(PacketTypes.CONNECT, SessionExpiryInterval=86400))
    hist.subscribe("plant/#", 2, properties=h.props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
    hist.subscribe("alarms/+", 1)
    hist.disconnect()
    h311 = h.Client(b.port, "hist311", 4, clean=False)
    h311.subscribe("plant/+/temp", 1)
    h311.disconnect()
    will = {"topic": "plant/health/gw-1", "payload": b"offline", "qos": 1, "retain": True,
            "properties": h.props(PacketTypes.WILLMESSAGE, WillDelayInterval=1)}
    gw = h.Client(b.port, "gw-1", 5, clean=False, will=will,
                  properties=h.props(PacketTypes.CONNECT, SessionExpiryInterval=86400))
    pub = h.Client(b.port, "pub", 5)
    pub.publish("plant/1/status", b"online", 1, retain=True)
    pub.publish("plant/2/status", b"online", 1, retain=True)
    for i in range(10):
        pub.publish("plant/1/temp", b"t1-%d" % i, 1)
    for i in range(5):
        pub.publish("plant/2/temp", b"t2-%d" % i, 2)
    for i in range(3):
        pub.publish("alarms/a", b"a-%d" % i, 1)
    for i in range(3):
        pub.publish("out/m", b"o-%d" % i, 1)
    pub.disconnect()
    b.kill9()  # every message above was acknowledged: on disk
    gw.client.loop_stop()
    db = os.path.join(b.data, "ferromq.db")
    out = subprocess.run(["sqlite3", db, ".dump"], check=True, capture_output=True, text=True).stdout
    con = sqlite3.connect(db)
    version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    con.close()
    assert version == 3, version
    with open(os.path.join(HERE, "store_schema3.sql"), "w") as f:
        f.write("-- A ferromq database of schema 3, written by the release at commit 3311ba4\n"
                "-- (see make_store_schema3.py). Opened by test_store_migration.py.\n")
        f.write(out)


if __name__ == "__main__":
    main()
