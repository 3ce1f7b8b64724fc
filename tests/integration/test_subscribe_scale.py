"""Many filters in one session: SUBSCRIBE, UNSUBSCRIBE and the restore of a
session after a restart cost a constant per filter, not one scan of the
session's list per filter (40,000 filters took 8 s and stalled every client
of the worker), and max_subscriptions_per_client has a default.

Time is bounded generously, because the sanitizer build on a shared machine
is slow: with N = 40,000 the per-filter scan alone costs N^2/2 = 8e8 string
comparisons (tens of seconds under ASan), while the linear path takes about
a second. A second client on the same (single) worker is answered within
the bound too, so the worker was not held for the quadratic time."""
import threading
import time

import pytest

import mqttraw as M
from conftest import wait_for

N = 40000
BOUND_S = 15.0
DEFAULT_LIMIT = 10000


def filters(n, prefix="scale", shared=False):
    """n filters on n topics, or n $share groups on one filter."""
    if shared:
        return [("$share/%s%d/%s/tag" % (prefix, i, prefix), 1) for i in range(n)]
    return [("%s/%d/tag" % (prefix, i), 1) for i in range(n)]


def subscribe(r, fs, pid):
    r.send(M.subscribe(pid, fs, r.version))
    return r.expect_skip(M.SUBACK, timeout=120)


def unsubscribe(r, fs, pid):
    r.send(M.unsubscribe(pid, fs, r.version))
    return r.expect_skip(M.UNSUBACK, timeout=120)


def timed(fn):
    t = time.monotonic()
    v = fn()
    return v, time.monotonic() - t


def ping_while(b, proto, busy):
    """Pings from another client while busy() runs; returns the slowest
    round trip seen."""
    other = M.RawClient(b.port, proto, timeout=60)
    assert other.connect("scale-other").rc == 0
    worst = [0.0]
    done = threading.Event()

    def pinger():
        while not done.is_set():
            t = time.monotonic()
            other.send(M.pingreq())
            other.expect(M.PINGRESP, timeout=60)
            worst[0] = max(worst[0], time.monotonic() - t)
            done.wait(0.05)

    th = threading.Thread(target=pinger)
    th.start()
    try:
        v = busy()
    finally:
        done.set()
        th.join(70)
        other.close()
    return v, worst[0]


@pytest.mark.parametrize("shared", [False, True], ids=["filters", "share-groups"])
def test_one_subscribe_of_many_filters_is_linear(start_broker, raw, shared):
    b = start_broker(workers=1, max_subscriptions_per_client=0, max_packet_size="4M")
    r = raw(b, 5, timeout=60)
    assert r.connect("scale", version=5, clean=False,
                     properties=[(M.P_SESSION_EXPIRY, 3600)]).rc == 0
    fs = filters(N, shared=shared)

    def topic(i):
        return "scale/tag" if shared else "scale/%d/tag" % i

    (ack, took), worst_ping = ping_while(b, 5, lambda: timed(lambda: subscribe(r, fs, 1)))
    assert ack.codes == [1] * N
    assert took < BOUND_S, "SUBSCRIBE of %d filters took %.1f s" % (N, took)
    assert worst_ping < BOUND_S, "another client waited %.1f s for PINGRESP" % worst_ping

    # Subscribing to them all again replaces each: still linear, still QoS 1.
    ack, took = timed(lambda: subscribe(r, fs, 2))
    assert ack.codes == [1] * N
    assert took < BOUND_S, "re-SUBSCRIBE took %.1f s" % took

    # Delivered through one of the middle filters.
    pub = raw(b, 5)
    assert pub.connect("scale-pub", version=5).rc == 0
    pub.publish(topic(N // 2), b"mid", qos=1, pid=1)
    p = r.expect(M.PUBLISH)
    assert (p.topic, p.payload) == (topic(N // 2), b"mid")
    r.ack(p)

    # A restart restores the session's filters (one list insert each).
    r.disconnect()
    b.stop()
    t = time.monotonic()
    b.start(timeout=60)
    r = raw(b, 5, timeout=60)
    ca = r.connect("scale", version=5, clean=False, properties=[(M.P_SESSION_EXPIRY, 3600)])
    restored = time.monotonic() - t
    assert ca.rc == 0 and ca.session_present
    assert restored < BOUND_S + 5, "start and reconnect with %d filters took %.1f s" % (N, restored)
    pub = raw(b, 5)
    assert pub.connect("scale-pub", version=5).rc == 0
    pub.publish(topic(N - 1), b"last", qos=1, pid=1)
    p = r.expect(M.PUBLISH)
    assert p.payload == b"last"
    r.ack(p)

    # UNSUBSCRIBE of them all: linear as well, and each one existed.
    (ack, took), worst_ping = ping_while(
        b, 5, lambda: timed(lambda: unsubscribe(r, [f for f, _ in fs], 3)))
    assert ack.codes == [0] * N
    assert took < BOUND_S, "UNSUBSCRIBE of %d filters took %.1f s" % (N, took)
    assert worst_ping < BOUND_S
    pub.publish(topic(0), b"gone", qos=1, pid=2)
    assert r.quiet(0.3) == []

    # Ending the session takes each filter out of the index: linear too, so
    # the worker answers the next client soon.
    assert subscribe(r, fs, 4).codes == [1] * N
    t = time.monotonic()
    r.disconnect(properties=[(M.P_SESSION_EXPIRY, 0)])
    nxt = M.RawClient(b.port, 5, timeout=60)
    try:
        assert nxt.connect("scale-next").rc == 0
        nxt.send(M.pingreq())
        nxt.expect(M.PINGRESP, timeout=60)
    finally:
        nxt.close()
    took = time.monotonic() - t
    assert took < BOUND_S, "the next client waited %.1f s behind a session end" % took


def test_default_subscription_limit(broker, raw):
    """Without max_subscriptions_per_client in the file, a session still
    holds at most the default: each filter beyond it is refused with 0x97
    (v5) or 0x80 (v3) while the others of the same packet are granted."""
    for proto in (5, 4):
        r = raw(broker, proto, timeout=60)
        assert r.connect("limit-%d" % proto, version=proto).rc == 0
        limit = DEFAULT_LIMIT
        fs = filters(limit + 3, prefix="lim%d" % proto)
        ack = subscribe(r, fs, 1)
        full = 0x97 if proto == 5 else 0x80
        assert ack.codes[:limit] == [1] * limit
        assert ack.codes[limit:] == [full] * 3
        # One in, one out: room for exactly one more.
        assert r.unsubscribe(["lim%d/0/tag" % proto], pid=2).codes in ([0], [])
        assert r.subscribe([("lim%d/x" % proto, 0), ("lim%d/y" % proto, 0)], pid=3).codes == [0, full]
        wait_for(lambda: "max_subscriptions_per_client" in broker.log_text(), what="log line")

