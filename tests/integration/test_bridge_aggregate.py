"""Edge aggregation through a bridge: a real edge ferromq bridged to a real
cloud ferromq on loopback. Windows of 1 s; the tests count what the
summaries say, never how long anything took."""
import json
import time

from conftest import wait_for
from test_bridge import bridge_lines, check_config, collect, wait_connected


def lines(port, *spec):
    """A bridge `cloud` to port: "topic ..." lines and the options after each."""
    return bridge_lines("cloud", port, [], extra=spec)


def summaries(sub, topic):
    """The summaries on topic (a message passed through as it is is not one)."""
    return [json.loads(m.payload) for m in sub.messages.snapshot() if m.topic == topic and m.payload[:1] == b"{"]


def wait_counted(sub, topic, n, timeout=15):
    """Waits until the summaries on topic have counted n numbers."""
    wait_for(lambda: sum(s.get("count", 0) for s in summaries(sub, topic)) >= n, timeout,
             what="summaries counting %d numbers on %s" % (n, topic))
    return summaries(sub, topic)


def wait_window_over(last_ms, window_ms=1000):
    """Waits (by polling the clock) until the window holding last_ms has
    ended and the edge's 100 ms tick has had time to close it."""
    end = (last_ms // window_ms + 1) * window_ms
    wait_for(lambda: time.time() * 1000 > end + 300, timeout=window_ms / 1000 + 2, what="the window's end")


def test_each_statistic_on_aligned_windows(start_broker, client):
    n = 300
    cloud = start_broker()
    edge = start_broker(extra_lines=bridge_lines("cloud", cloud.port, ['plant/# out 1 "" site/'],
                                                 extra=["aggregate 1"]))
    sub = collect(client, cloud, "site/#")
    wait_connected(edge)
    pub = client(edge, protocol=5)
    values = [(i * 37) % 101 - 50 + 0.25 for i in range(n)]
    for i, v in enumerate(values):
        pub.publish("plant/press-1/vibration", b"%r" % v, qos=1, wait=(i % 50 == 49))
        if i % 100 == 99:
            time.sleep(0.4)  # spread over more than one window
    got = wait_counted(sub, "site/plant/press-1/vibration", n)
    time.sleep(0.3)
    assert [m.topic for m in sub.messages.snapshot()] == ["site/plant/press-1/vibration"] * len(got)
    assert sum(s["count"] for s in got) == n  # no reading forwarded raw, none counted twice
    for s in got:
        assert set(s) == {"count", "min", "max", "mean", "first", "last", "start", "end"}, s
        assert s["start"] % 1000 == 0 and s["end"] - s["start"] == 1000, s
        assert s["min"] <= s["mean"] <= s["max"], s
    starts = [s["start"] for s in got]
    assert starts == sorted(set(starts))  # one summary per window, in order
    assert min(s["min"] for s in got) == min(values)
    assert max(s["max"] for s in got) == max(values)
    assert got[0]["first"] == values[0] and got[-1]["last"] == values[-1]
    assert abs(sum(s["mean"] * s["count"] for s in got) - sum(values)) < 1e-6
    # Window by window: the readings of a window are a run of the sequence.
    at = 0
    for s in got:
        run = values[at:at + s["count"]]
        assert (s["first"], s["last"], s["min"], s["max"]) == (run[0], run[-1], min(run), max(run))
        at += s["count"]


def test_json_member_chosen_statistics_and_suffix(start_broker, client):
    cloud = start_broker()
    edge = start_broker(extra_lines=bridge_lines("cloud", cloud.port, ['tags/# out 1 "" site/'], extra=[
        "aggregate 1", "deadband_field value", "aggregate_stats count,max,start", "aggregate_suffix /1s"]))
    sub = collect(client, cloud, "site/#")
    wait_connected(edge)
    pub = client(edge, protocol=5)
    for i in range(50):
        pub.publish("tags/pump/power", json.dumps({"ts": i, "value": i * 1.5, "quality": "good"}).encode(), qos=1)
    got = wait_counted(sub, "site/tags/pump/power/1s", 50)
    assert all(set(s) == {"count", "max", "start"} for s in got), got
    assert max(s["max"] for s in got) == 49 * 1.5
    assert all(m.topic == "site/tags/pump/power/1s" for m in sub.messages.snapshot())


def test_non_numeric_counted_then_passed_or_dropped(start_broker, client):
    cloud = start_broker()
    edge = start_broker(extra_lines=lines(
        cloud.port, 'topic pass/# out 1 "" site/', "aggregate 1",
        'topic drop/# out 1 "" site/', "aggregate 1", "aggregate_non_numeric drop"))
    sub = collect(client, cloud, "site/#")
    wait_connected(edge)
    pub = client(edge, protocol=5)
    for line in ("pass", "drop"):
        for p in (b"1", b"n/a", b"3", b"fault"):
            pub.publish("%s/t" % line, p, qos=1)
    sub.messages.wait_match(lambda m: m.topic == "site/pass/t" and m.payload == b"fault")
    for line in ("pass", "drop"):
        wait_for(lambda: sum(s.get("non_numeric", 0) for s in summaries(sub, "site/%s/t" % line)) == 2, 10,
                 what="non_numeric counted on %s" % line)
        assert sum(s["count"] for s in wait_counted(sub, "site/%s/t" % line, 2)) == 2
    raw = [m.payload for m in sub.messages.snapshot() if m.payload in (b"n/a", b"fault")]
    assert sorted(raw) == [b"fault", b"n/a"]  # passed on `pass` only
    assert all(m.topic == "site/pass/t" for m in sub.messages.snapshot() if m.payload in (b"n/a", b"fault"))


def test_empty_windows_send_nothing_or_a_count_of_zero(start_broker, client):
    cloud = start_broker()
    edge = start_broker(extra_lines=lines(
        cloud.port, 'topic skip/# out 1 "" site/', "aggregate 1",
        'topic zero/# out 1 "" site/', "aggregate 1", "aggregate_empty count", "aggregate_stats count,start"))
    sub = collect(client, cloud, "site/#")
    wait_connected(edge)
    pub = client(edge, protocol=5)
    pub.publish("skip/t", b"1", qos=1)
    pub.publish("zero/t", b"1", qos=1)
    # Two windows of count 0 after the reading's.
    wait_for(lambda: len([s for s in summaries(sub, "site/zero/t") if s["count"] == 0]) >= 2, 10,
             what="two summaries of count 0")
    zero = summaries(sub, "site/zero/t")
    assert zero[0]["count"] == 1 and all(s["count"] == 0 for s in zero[1:])
    starts = [s["start"] for s in zero]
    assert all(b - a == 1000 for a, b in zip(starts, starts[1:])), starts  # every window, none twice
    assert [s["count"] for s in summaries(sub, "site/skip/t")] == [1]


def test_beside_deadband_and_report_by_exception(start_broker, client, tmp_path):
    """Each topic line reduces as it says: the deadband and report-by-exception
    lines forward raw values, the aggregate line summaries, and a topic goes
    to the first line that matches it."""
    cloud = start_broker()
    edge = start_broker(extra_lines=lines(
        cloud.port, 'topic slow/temp out 1 "" site/', "deadband 1",
        'topic slow/state out 1 "" site/', "report_by_exception true",
        'topic slow/# out 1 "" site/', "aggregate 1",
        'topic fast/# out 1 "" site/', "aggregate 1", "aggregate_stats count,min,max"))
    sub = collect(client, cloud, "site/#")
    wait_connected(edge)
    pub = client(edge, protocol=5)
    for v in (b"20", b"20.5", b"21", b"21.2", b"25"):
        pub.publish("slow/temp", v, qos=1)
    for v in (b"on", b"on", b"off", b"off", b"on"):
        pub.publish("slow/state", v, qos=1)
    for i in range(100):
        pub.publish("fast/vib", b"%d" % i, qos=1, wait=False)
        pub.publish("slow/flow", b"%d" % (i % 7), qos=1, wait=False)
    fast = wait_counted(sub, "site/fast/vib", 100)
    flow = wait_counted(sub, "site/slow/flow", 100)
    sub.messages.wait_match(lambda m: m.topic == "site/slow/state" and m.payload == b"on" and
                            len([x for x in sub.messages.snapshot() if x.topic == "site/slow/state"]) == 3)
    time.sleep(0.5)
    snap = sub.messages.snapshot()
    assert [m.payload for m in snap if m.topic == "site/slow/temp"] == [b"20", b"21", b"25"]
    assert [m.payload for m in snap if m.topic == "site/slow/state"] == [b"on", b"off", b"on"]
    assert min(s["min"] for s in fast) == 0 and max(s["max"] for s in fast) == 99
    assert all(set(s) == {"count", "min", "max"} for s in fast)
    assert min(s["min"] for s in flow) == 0 and max(s["max"] for s in flow) == 6
    # The same line cannot both filter readings and summarise them.
    err = check_config(tmp_path, ["connection c", "address h", "topic a/#", "aggregate 1", "deadband 1"])
    assert err.startswith("%s:3: " % (tmp_path / "bad.conf")) and "not with report_by_exception" in err, err
    err = check_config(tmp_path, ["connection c", "address h", "topic a/#", "aggregate_stats count,median"])
    assert err.startswith("%s:4: " % (tmp_path / "bad.conf")) and "invalid value" in err, err
    err = check_config(tmp_path, ["connection c", "address h", "topic a/#", "aggregate_suffix /1s"])
    assert "need aggregate" in err, err


def last_spooled(sys_sub):
    got = [m.payload for m in sys_sub.messages.snapshot() if m.topic.endswith("/spool/messages")]
    return int(got[-1]) if got else -1


def test_restart_keeps_spooled_summaries_and_loses_only_the_open_window(start_broker, client):
    """The cloud down: closed windows' summaries wait in the spool through
    restarts; the window open at a kill -9 is lost (its statistics are in
    memory only; the readings were committed), as documented."""
    from conftest import props, PacketTypes
    persist = dict(client_id="historian", protocol=5, clean=False,
                   properties=props(PacketTypes.CONNECT, SessionExpiryInterval=3600))
    cloud = start_broker()
    sub = client(cloud, **persist)
    sub.subscribe("site/#", 1)
    sub.stop()
    cloud.stop()
    edge = start_broker(sys_interval=1, extra_lines=bridge_lines(
        "cloud", cloud.port, ['plant/# out 1 "" site/'], extra=["aggregate 1", "aggregate_stats count,first,last,start"]))
    spooled = 0
    for first, last in ((0, 20), (20, 50)):
        pub = client(edge, protocol=5)
        for i in range(first, last):
            pub.publish("plant/m/v", b"%d" % i, qos=1)
        wait_window_over(time.time() * 1000)
        sys_sub = collect(client, edge, "$SYS/broker/bridges/cloud/spool/messages")
        wait_for(lambda: last_spooled(sys_sub) > spooled, 10, what="summaries spooled")
        spooled = last_spooled(sys_sub)
        sys_sub.stop()
        pub.stop()
        edge.restart()  # a clean stop: the spooled summaries are on disk
        edge.wait_log(r"recovered .* %d spooled for bridges" % spooled)
    # Readings in a window, the edge killed before that window ends.
    wait_for(lambda: 50 < time.time() * 1000 % 1000 < 200, 2, interval=0.005, what="a window's start")
    window = int(time.time())
    pub = client(edge, protocol=5)
    for i in range(50, 60):
        pub.publish("plant/m/v", b"%d" % i, qos=1)
    edge.kill9()
    lost = int(time.time()) == window  # else (a very slow machine) the window closed before the kill
    edge.start()
    cloud.start()
    sub = client(cloud, **persist)
    wait_counted(sub, "site/plant/m/v", 50, timeout=20)
    time.sleep(1.5)  # a window more: nothing else comes
    got = summaries(sub, "site/plant/m/v")
    assert sum(s["count"] for s in got) == (50 if lost else 60), got
    assert got[0]["first"] == 0 and got[-1]["last"] == (49 if lost else 59), got
    starts = [s["start"] for s in got]
    assert starts == sorted(set(starts))
