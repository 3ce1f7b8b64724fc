"""Flow control towards subscribers (issue 12 #2): the in-flight window
adapts to the subscriber's pace within its Receive Maximum, what waits
behind it waits in the queue, and the window in flight at a reconnect is
resent at the pace of the link instead of all at once."""
import mqttraw as M
from conftest import connect_raw, wait_for


def publishes(client, period=0.7):
    return [p for p in client.quiet(period) if p.type == M.PUBLISH]


def publish_many(pub, topic, n, size=100):
    for i in range(n):
        pub.send(M.publish(topic, b"%06d" % i + b"x" * (size - 6), qos=1, pid=i % 65000 + 1,
                           version=pub.version))
    for _ in range(n):
        pub.expect_skip(M.PUBACK, 30)


def test_window_starts_small_and_doubles_while_the_subscriber_keeps_up(start_broker, raw):
    b = start_broker()
    sub = connect_raw(raw, b, "hist", 5, clean=False,
                      properties=[(M.P_SESSION_EXPIRY, 600), (M.P_RECEIVE_MAXIMUM, 100)])
    assert sub.subscribe([("w/#", 1)]).codes == [1]
    pub = connect_raw(raw, b, "gw", 5)
    publish_many(pub, "w/x", 400)
    got = []
    # 32 to start with; each acknowledgement that finds messages waiting
    # widens the window by one: 64, then 100 (the Receive Maximum).
    for want in (32, 64, 100, 100):
        batch = publishes(sub)
        assert len(batch) == want, (want, len(batch))
        got += batch
        for p in batch:
            sub.ack(p)
    rest = []
    wait_for(lambda: rest.extend(p for p in publishes(sub, 0.3) if not sub.ack(p)) or len(got) + len(rest) >= 400,
             10, what="the rest")
    payloads = [p.payload[:6] for p in got + rest]
    assert payloads == [b"%06d" % i for i in range(400)]


def test_window_capped_by_max_inflight_messages(start_broker, raw):
    b = start_broker(max_inflight_messages=10)
    sub = connect_raw(raw, b, "s", 5)
    sub.subscribe([("c/#", 1)])
    pub = connect_raw(raw, b, "gw", 5)
    publish_many(pub, "c/x", 50)
    assert len(publishes(sub)) == 10


def test_inflight_resent_at_the_link_pace_after_reconnect(start_broker, raw):
    """Messages of 20 KB in flight, max_output_buffer 64 KB: the window
    resent all at once at the reconnect (20 x 20 KB before) went past 4 x
    the limit, and the subscriber was cut off at every reconnect. Output
    piling up also halves the window (32 -> 16) while nothing is read."""
    b = start_broker(max_output_buffer=65536)
    props = [(M.P_SESSION_EXPIRY, 600)]
    sub = connect_raw(raw, b, "slow", 5, clean=False, properties=props)
    sub.subscribe([("big/#", 1)])
    pub = connect_raw(raw, b, "gw", 5)
    publish_many(pub, "big/x", 40, size=20000)
    first = publishes(sub, 1.5)
    assert 16 <= len(first) < 40, len(first)
    sub.close()  # nothing acknowledged
    sub = raw(b, 5)
    assert sub.connect("slow", clean=False, properties=props).session_present
    got = []

    def take():
        for p in publishes(sub, 0.3):
            got.append(p)
            sub.ack(p)
        return len(got) >= 40
    wait_for(take, 20, what="every message after the reconnect")
    assert [p.payload[:6] for p in got] == [b"%06d" % i for i in range(40)]
    n = len(first)
    assert all(p.dup for p in got[:n]) and not any(p.dup for p in got[n:]), [p.dup for p in got]
    assert "max_output_buffer" not in b.log_text()


def test_inflight_at_reconnect_is_not_dropped_by_the_queue_limit(start_broker, raw):
    """25 messages in flight, unacknowledged, max_queued_messages 20: back
    with Receive Maximum 2, they wait to go again while one new message
    arrives. Put back in the queue they counted against its limit and the
    new message dropped four of them (acknowledged to the publisher)."""
    b = start_broker(max_queued_messages=20)
    props = [(M.P_SESSION_EXPIRY, 600)]
    sub = connect_raw(raw, b, "hist", 5, clean=False, properties=props)
    sub.subscribe([("q/#", 1)])
    pub = connect_raw(raw, b, "gw", 5)
    for k in range(5):
        publish_many(pub, "q/x", 5)
    assert len(publishes(sub, 1.0)) == 25  # the window grew past 20 with nothing dropped
    sub.close()
    sub = raw(b, 5)
    assert sub.connect("hist", clean=False, properties=props + [(M.P_RECEIVE_MAXIMUM, 2)]).session_present
    pub.send(M.publish("q/x", b"new", qos=1, pid=60000, version=5))
    pub.expect_skip(M.PUBACK)
    got = []

    def take():
        batch = publishes(sub, 0.3)
        assert len(batch) <= 2, len(batch)  # Receive Maximum 2, resends included
        for p in batch:
            got.append(p)
            sub.ack(p)
        return len(got) >= 26
    wait_for(take, 20, what="the 25 resent and the new one")
    assert [p.dup for p in got] == [True] * 25 + [False]
    assert got[-1].payload == b"new"
    assert "dropped" not in b.log_text()
