"""Limits against misbehaving clients: topic length and depth, subscriptions
per client, publish rate, slow readers, TCP keep-alive."""
import os
import re
import select
import shutil
import socket
import subprocess
import threading
import time

import pytest

import mqttraw as M
from conftest import PROTOCOLS, assert_broker_alive, broker_bin, connect_raw, wait_for


# ---- max_topic_length, max_topic_levels ----

@pytest.mark.parametrize("proto", PROTOCOLS)
def test_topic_at_the_limits_is_accepted(start_broker, raw, proto):
    b = start_broker(max_topic_length=20, max_topic_levels=4)
    sub = connect_raw(raw, b, "tl-sub", proto)
    topic = "a/b/c/" + "d" * 14  # 20 bytes, 4 levels
    assert sub.subscribe(topic).codes == [0]
    pub = connect_raw(raw, b, "tl-pub", proto)
    pub.publish(topic, b"x")
    assert sub.expect(M.PUBLISH).payload == b"x"


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("topic", ["a" * 21, "a/b/c/d/e"])
def test_publish_beyond_topic_limits_disconnects(start_broker, raw, proto, topic):
    b = start_broker(max_topic_length=20, max_topic_levels=4)
    r = connect_raw(raw, b, "tl-bad", proto)
    r.send(M.publish(topic, b"x", version=proto))
    if proto == 5:
        d = r.expect(M.DISCONNECT)
        assert d.rc == 0x90
    assert r.is_closed()
    b.wait_log(r"tl-bad.*disconnected: topic longer than max_topic_length")
    assert_broker_alive(b, proto)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_subscribe_beyond_topic_limits_is_refused(start_broker, raw, proto):
    b = start_broker(max_topic_length=20, max_topic_levels=4)
    r = connect_raw(raw, b, "tl-sub", proto)
    a = r.subscribe([("a" * 21, 0), ("a/+/c/#", 1), ("a/b/c/d/#", 0), ("$share/g/a/b/c/d", 0)])
    bad = 0x8F if proto == 5 else 0x80
    assert a.codes == [bad, 1, bad, bad]
    r.send(M.pingreq())
    r.expect(M.PINGRESP)


# ---- max_subscriptions_per_client ----

@pytest.mark.parametrize("proto", PROTOCOLS)
def test_subscriptions_beyond_the_quota_are_refused(start_broker, raw, proto):
    b = start_broker(max_subscriptions_per_client=2)
    r = connect_raw(raw, b, "quota", proto)
    full = 0x97 if proto == 5 else 0x80
    assert r.subscribe([("q/1", 0), ("q/2", 1), ("q/3", 0)]).codes == [0, 1, full]
    # Replacing an existing subscription does not count.
    assert r.subscribe([("q/2", 0)], pid=2).codes == [0]
    assert r.unsubscribe(["q/1"], pid=3)
    assert r.subscribe([("q/3", 1), ("q/4", 0)], pid=4).codes == [1, full]
    # The refused filter really is not subscribed.
    pub = connect_raw(raw, b, "quota-pub", proto)
    pub.publish("q/4", b"no")
    pub.publish("q/3", b"yes")
    p = r.expect(M.PUBLISH)
    assert (p.topic, p.payload) == ("q/3", b"yes")


# ---- max_publish_rate ----

def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def blast(sock, packet, duration):
    """Sends `packet` over and over for `duration` seconds without ever
    blocking (whole packets only: partial sends are resumed). Returns
    (bytes received, whether the broker closed the connection)."""
    sock.setblocking(False)
    chunk = memoryview(packet * max(1, 16384 // len(packet)))
    pending = chunk[:0]
    received = bytearray()
    end = time.monotonic() + duration
    while time.monotonic() < end:
        r, w, _ = select.select([sock], [sock], [], 0.05)
        if r:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                data = None
            except ConnectionResetError:
                data = b""
            if data == b"":
                return bytes(received), True
            if data:
                received += data
        if w:
            if not len(pending):
                pending = chunk
            try:
                n = sock.send(pending)
            except BlockingIOError:
                n = 0
            except (BrokenPipeError, ConnectionResetError):
                return bytes(received), True
            pending = pending[n:]
    return bytes(received), False


class Counter(threading.Thread):
    """Reads a subscriber's socket, noting when each PUBLISH arrives."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.times = []
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                p = self.client.recv(0.2)
            except TimeoutError:
                continue
            except (M.ConnectionClosed, OSError):
                return
            if p.type == M.PUBLISH:
                self.times.append(time.monotonic())


def test_publish_rate_is_held_to_the_limit(start_broker, raw):
    b = start_broker(max_publish_rate=100)
    sub = connect_raw(raw, b, "rate-sub", 4)
    sub.subscribe("rate/t")
    counter = Counter(sub)
    counter.start()
    pub = connect_raw(raw, b, "rate-pub", 4)
    rss0 = rss_kb(b.proc.pid)
    t0 = time.monotonic()
    _, closed = blast(pub.sock, M.publish("rate/t", b"x" * 100), 3.0)
    assert not closed
    rss1 = rss_kb(b.proc.pid)
    counter.stop = True
    counter.join(2)
    got = [t for t in counter.times if t0 + 0.5 <= t < t0 + 2.5]
    assert 160 <= len(got) <= 240, "%d messages in 2 s" % len(got)
    assert rss1 - rss0 < 30 * 1024, "RSS grew from %d to %d kB" % (rss0, rss1)
    pub.close()
    assert_broker_alive(b)


def test_publish_byte_rate_is_held_to_the_limit(start_broker, raw):
    b = start_broker(max_publish_rate="0 10k")
    sub = connect_raw(raw, b, "brate-sub", 4)
    sub.subscribe("rate/t")
    counter = Counter(sub)
    counter.start()
    pub = connect_raw(raw, b, "brate-pub", 4)
    t0 = time.monotonic()
    # ~1 kB packets: about 10 a second.
    _, closed = blast(pub.sock, M.publish("rate/t", b"x" * 1015), 3.0)
    assert not closed
    counter.stop = True
    counter.join(2)
    got = [t for t in counter.times if t0 + 0.5 <= t < t0 + 2.5]
    assert 16 <= len(got) <= 24, "%d messages in 2 s" % len(got)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_staying_over_the_rate_disconnects(start_broker, raw, proto):
    b = start_broker(max_publish_rate=50, publish_rate_timeout=1)
    pub = connect_raw(raw, b, "rate-hog", proto)
    received, closed = blast(pub.sock, M.publish("rate/t", b"x" * 10, version=proto), 8.0)
    assert closed, "not disconnected"
    if proto == 5:
        # The DISCONNECT is the last packet before the close.
        assert received[:1] == b"\xe0" and received[2] == 0x96, received[:8]
    b.wait_log(r"rate-hog.*disconnected: publishing faster than max_publish_rate")
    assert_broker_alive(b, proto)


def test_publishing_at_the_rate_is_not_disconnected(start_broker, raw):
    b = start_broker(max_publish_rate=50, publish_rate_timeout=1)
    pub = connect_raw(raw, b, "rate-ok", 5)
    for i in range(60):
        pub.send(M.publish("rate/t", b"x", version=5))
        time.sleep(0.04)  # 25 a second
    pub.send(M.pingreq())
    pub.expect(M.PINGRESP)


# ---- slow readers: output_stall_timeout, 4 x max_output_buffer ----

def non_reading_client(port, version=4):
    """A RawClient whose socket has a tiny receive buffer; the test then never
    reads from it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    r = M.RawClient.__new__(M.RawClient)
    r.version, r.sock, r.buf, r.closed_seen, r.aliases, r.pending = version, s, bytearray(), False, {}, []
    return r


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_subscriber_that_does_not_read_is_disconnected(start_broker, raw, proto):
    b = start_broker(max_output_buffer="64k", output_stall_timeout=2, max_queued_messages=100)
    slow = non_reading_client(b.port, proto)
    try:
        assert slow.connect("slow", version=proto).rc == 0
        assert slow.subscribe("busy/t").codes == [0]
        good = connect_raw(raw, b, "good", proto)
        good.subscribe("busy/t")
        counter = Counter(good)
        counter.start()
        pub = connect_raw(raw, b, "busy-pub", proto)
        rss0 = rss_kb(b.proc.pid)
        payload = b"p" * 1000
        sent = 0
        deadline = time.monotonic() + 15
        rx = re.compile(r"client slow .*disconnected: not reading")
        while not rx.search(b.log_text()):
            assert time.monotonic() < deadline, "slow subscriber not disconnected"
            pub.send(b"".join(M.publish("busy/t", payload, version=proto) for _ in range(20)))
            sent += 20
            pub.send(M.pingreq())  # keep pace with the broker
            pub.expect(M.PINGRESP)
            time.sleep(0.01)  # about 2 MB/s: the reading subscriber keeps up
        rss1 = rss_kb(b.proc.pid)
        assert rss1 - rss0 < 30 * 1024, "RSS grew from %d to %d kB" % (rss0, rss1)
        assert "output_stall_timeout" in b.log_text()
        # The other subscriber got every message.
        wait_for(lambda: len(counter.times) == sent, 10, what="%d messages" % sent)
        counter.stop = True
        counter.join(2)
        assert not re.search(r"client (good|busy-pub) .*disconnected", b.log_text())
        assert_broker_alive(b, proto)
    finally:
        slow.close()


# ---- tcp_keepalive, tcp_user_timeout ----

def broker_side_socket(port):
    """ss's view of the broker's end of the connections to `port`."""
    return subprocess.run(["ss", "-tinoe", "state", "established", "( sport = :%d )" % port],
                          capture_output=True, text=True).stdout


@pytest.mark.parametrize("keepalive", [30, 0])
def test_tcp_keepalive_is_set_on_accepted_connections(start_broker, raw, keepalive):
    b = start_broker(tcp_keepalive=keepalive, tcp_user_timeout=20000)
    r = connect_raw(raw, b, "tcp-ka", 4)
    r.send(M.pingreq())
    r.expect(M.PINGRESP)
    if not shutil.which("ss"):
        pytest.skip("ss (iproute2) is not installed")
    # Once what the broker sent is acknowledged, the socket's timer is the
    # keep-alive one (or none).
    out = wait_for(lambda: (lambda o: o if "timer:(on" not in o else None)(broker_side_socket(b.port)),
                   what="no retransmission timer")
    assert "127.0.0.1:%d" % b.port in out, out
    if keepalive:
        assert re.search(r"timer:\(keepalive,\d+", out), out
    else:
        assert "keepalive" not in out, out


def test_tcp_options_are_checked(tmp_path):
    conf = tmp_path / "bad.conf"
    for line in ("tcp_keepalive -1", "tcp_user_timeout 3000000000", "tcp_keepalive 86401"):
        conf.write_text(line + "\n")
        r = subprocess.run([broker_bin(), "--check-config", "-c", str(conf)],
                           capture_output=True, text=True)
        assert r.returncode != 0 and "bad.conf:1:" in r.stderr, (line, r.stderr)


def test_output_beyond_four_times_the_cap_disconnects_at_once(start_broker):
    # Replies to a client that never reads are not paused like deliveries:
    # PINGRESPs pile up until the hard cap cuts it off, long before the
    # (disabled) stall timeout.
    b = start_broker(max_output_buffer="4k", output_stall_timeout=0)
    r = non_reading_client(b.port, 4)
    try:
        assert r.connect("pinger").rc == 0
        rss0 = rss_kb(b.proc.pid)
        rx = re.compile(r"client pinger .*disconnected: not reading, output above 4 x max_output_buffer")
        deadline = time.monotonic() + 15
        r.sock.settimeout(0.5)
        while not rx.search(b.log_text()):
            assert time.monotonic() < deadline, "not disconnected"
            try:
                r.send(M.pingreq() * 5000)
            except OSError:
                break  # a send that blocks (or the close): no more whole packets
        b.wait_log(rx.pattern)
        assert rss_kb(b.proc.pid) - rss0 < 30 * 1024
        assert_broker_alive(b)
    finally:
        r.close()
