"""$SYS/broker/...: mosquitto's topic names, retained, right values, published
every sys_interval seconds and only when they changed."""
import re
import time

from conftest import wait_for


def sys_values(c):
    """Latest payload per $SYS topic the client received."""
    out = {}
    for m in c.messages.snapshot():
        out[m.topic] = m.payload.decode()
    return out


def test_sys_topics_retained_and_right(start_broker, client):
    b = start_broker(sys_interval=1)
    pub = client(b, "sys-pub", protocol=4)
    for i in range(25):
        pub.publish("sys/data/%d" % i, b"12345")
    pub.publish("sys/kept", b"r", qos=1, retain=True)
    # A client that subscribes later gets the retained tree at once: later
    # than its first publication, which a probe sees.
    probe = client(b, "sys-probe", protocol=4)
    probe.subscribe("$SYS/broker/uptime")
    probe.messages.wait_for(1, timeout=5)
    probe.stop()
    watcher = client(b, "sys-watch", protocol=5)
    watcher.subscribe("$SYS/#")
    v = wait_for(lambda: (lambda v: v if int(v.get("$SYS/broker/messages/received", 0)) >= 26
                          and v.get("$SYS/broker/clients/connected") == "2"
                          and "$SYS/broker/retained/messages/count" in v else None)(sys_values(watcher)),
                 timeout=6, what="$SYS values with the traffic")
    assert all(m.retain for m in watcher.messages.snapshot()[:5])
    for topic in ("$SYS/broker/messages/sent", "$SYS/broker/bytes/received", "$SYS/broker/bytes/sent",
                  "$SYS/broker/clients/disconnected", "$SYS/broker/clients/maximum",
                  "$SYS/broker/clients/total", "$SYS/broker/subscriptions/count",
                  "$SYS/broker/retained messages/count", "$SYS/broker/heap/current",
                  "$SYS/broker/heap/maximum", "$SYS/broker/messages/queued",
                  "$SYS/broker/messages/inflight", "$SYS/broker/messages/dropped/queue_full",
                  "$SYS/broker/store/bytes",
                  "$SYS/broker/load/messages/received/1min", "$SYS/broker/load/messages/sent/5min",
                  "$SYS/broker/load/bytes/received/15min", "$SYS/broker/load/bytes/sent/1min"):
        assert topic in v, topic
    assert re.fullmatch(r"\d+ seconds", v["$SYS/broker/uptime"])
    assert v["$SYS/broker/version"] == "ferromq version 0.1.0"
    assert int(v["$SYS/broker/bytes/received"]) >= 25 * 5
    assert int(v["$SYS/broker/clients/total"]) >= 2
    assert int(v["$SYS/broker/heap/current"]) > 0
    assert float(v["$SYS/broker/load/messages/received/1min"]) >= 0
    # sys/kept and the $SYS tree itself, under mosquitto's name and the one
    # without a space.
    assert int(v["$SYS/broker/retained messages/count"]) >= 2
    assert v["$SYS/broker/retained/messages/count"] == v["$SYS/broker/retained messages/count"]
    # The alert states are there from the first sample on.
    assert '"state":"ok"' in v["$SYS/broker/alerts/memory"]


def test_sys_interval_and_only_changes(start_broker, client):
    b = start_broker(sys_interval=2)
    watcher = client(b, "sys-interval", protocol=4)
    watcher.subscribe("$SYS/broker/uptime")
    watcher.subscribe("$SYS/broker/version")
    time.sleep(7)
    msgs = watcher.messages.snapshot()
    uptimes = [m for m in msgs if m.topic == "$SYS/broker/uptime"]
    versions = [m for m in msgs if m.topic == "$SYS/broker/version"]
    # Retained version once (it never changes); uptime every 2 s.
    assert len(versions) == 1, versions
    assert 3 <= len(uptimes) <= 5, uptimes
    gaps = [b2.time - a.time for a, b2 in zip(uptimes[1:], uptimes[2:])]
    assert all(1.5 < g < 2.6 for g in gaps), gaps
    values = [int(m.payload.split()[0]) for m in uptimes]
    assert values == sorted(values) and len(set(values)) == len(values)


def test_sys_off_and_read_only(start_broker, client):
    b = start_broker(sys_interval=0)
    watcher = client(b, "sys-off", protocol=5)
    watcher.subscribe("$SYS/broker/uptime")
    watcher.subscribe("$SYS/broker/alerts/#")
    # Alerts are still published (every rule's state at the first sample).
    wait_for(lambda: len(watcher.messages) >= 4, what="alert states")
    time.sleep(1.5)
    assert not [m for m in watcher.messages.snapshot() if m.topic == "$SYS/broker/uptime"]
    # Clients cannot write into $SYS.
    watcher.publish("$SYS/broker/uptime", b"forged", qos=1)
    time.sleep(0.3)
    assert not [m for m in watcher.messages.snapshot() if m.topic == "$SYS/broker/uptime"]


def test_retained_count_alias_follows(start_broker, client):
    """$SYS/broker/retained/messages/count changes with mosquitto's name."""
    b = start_broker(sys_interval=1)
    watcher = client(b, "sys-alias", protocol=4)
    watcher.subscribe("$SYS/broker/retained/messages/count")
    watcher.subscribe("$SYS/broker/retained messages/count")
    before = int(wait_for(lambda: sys_values(watcher).get("$SYS/broker/retained/messages/count"),
                          what="the alias"))
    pub = client(b, "sys-alias-pub", protocol=4)
    for i in range(3):
        pub.publish("alias/kept/%d" % i, b"r", qos=1, retain=True)

    def same_and_grown():
        v = sys_values(watcher)
        alias = v.get("$SYS/broker/retained/messages/count")
        return alias == v.get("$SYS/broker/retained messages/count") and int(alias) >= before + 3

    wait_for(same_and_grown, what="both names with the 3 new retained messages")
