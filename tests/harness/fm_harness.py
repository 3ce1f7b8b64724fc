"""fm_harness: the test harness of ferromq's Python suites (integration,
durability), imported by name. Each suite's conftest.py re-exports it, so
its fixtures (start_broker, broker, client, raw) are the suite's and
`from conftest import ...` keeps working in test files.

Every test gets its own broker: a temp dir, a generated config and a port
from the pool (free_port). Waits poll a condition with a deadline; nothing
sleeps a fixed time except where the test is about time itself (expiry,
keep-alive, will delay). Every broker log is scanned for sanitizer reports
when the broker stops.
"""
import fcntl
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

HARNESS = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.join(os.path.dirname(HARNESS), "integration")
for _d in (HARNESS, INTEGRATION):  # mqttraw and the other helpers live in integration/
    if _d not in sys.path:
        sys.path.insert(0, _d)

import mqttraw  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer", "ThreadSanitizer")
PROTOCOLS = [pytest.param(4, id="v311"), pytest.param(5, id="v5")]


def broker_bin():
    path = os.environ.get("FERROMQ_BIN") or os.path.join(REPO, "build", "ferromq")
    if not os.path.exists(path):
        pytest.fail("broker binary %s does not exist (set FERROMQ_BIN)" % path)
    return path


# ---------------------------------------------------------------- ports
#
# Binding port 0 and closing the socket races under `ctest -j`: between the
# close and the broker's bind, another test may be handed the same port.
# Ports come from a pool instead: below the kernel's ephemeral range, so no
# bind to port 0 or outgoing connection anywhere is handed one, and each is
# taken by an flock on its file in PORT_LOCK_DIR, held until the process
# ends, so no two tests (in any process) take the same port. A port some
# other program listens on is passed over.

PORT_LOCK_DIR = os.path.join(tempfile.gettempdir(), "ferromq-test-ports")
_held_port_locks = []  # open descriptors: the locks die with the process


def _port_pool():
    """[lo, hi): 10,000 ports just below the ephemeral range."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        eph_lo = 32768
    hi = max(eph_lo, 2048)
    return max(1024, hi - 10000), hi


def _port_listenable(port):
    with socket.socket() as s:
        # As the broker binds: a port with only TIME_WAIT left is usable.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port():
    """A loopback port no other test holds and nothing listens on; this
    process keeps it until it ends."""
    os.makedirs(PORT_LOCK_DIR, exist_ok=True)
    lo, hi = _port_pool()
    start = random.randrange(hi - lo)
    for i in range(hi - lo):
        port = lo + (start + i) % (hi - lo)
        fd = os.open(os.path.join(PORT_LOCK_DIR, str(port)), os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if not _port_listenable(port):
            os.close(fd)  # closing drops the lock
            continue
        _held_port_locks.append(fd)
        return port
    raise RuntimeError("no free port in %d..%d" % (lo, hi - 1))


def tcp_sockets(port):
    """The TCP sockets of this machine whose local port is port, from
    /proc/net/tcp and tcp6: a list of (state, queue). state is the kernel's
    name (ESTABLISHED, LISTEN, CLOSE_WAIT, ...); queue is the bytes waiting
    to be read, or for a LISTEN socket the connections waiting for accept().
    What a broker has done with its connections, seen without asking it."""
    names = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
             6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}
    out = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                out.append((names.get(int(fields[3], 16), fields[3]), int(fields[4].split(":")[1], 16)))
    return out


def wait_for(cond, timeout=5.0, interval=0.02, what="condition"):
    """Poll cond() until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def config_lines(options):
    lines = []
    for key, val in options.items():
        vals = val if isinstance(val, list) else [val]
        for v in vals:
            if isinstance(v, bool):
                v = "true" if v else "false"
            lines.append("%s %s" % (key, v))
    return lines


class Broker:
    def __init__(self, tmpdir, options, extra_lines=()):
        self.dir = str(tmpdir)
        self.port = free_port()
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data, exist_ok=True)
        self.conf = os.path.join(self.dir, "ferromq.conf")
        self.logpath = os.path.join(self.dir, "broker.log")
        lines = ["listener %d 127.0.0.1" % self.port,
                 "persistence_location %s" % self.data,
                 "log_type all"]
        lines += config_lines(options)
        lines += list(extra_lines)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None
        self.exit_codes = []

    def start(self, timeout=10.0):
        self.logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen([broker_bin(), "-c", self.conf],
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     cwd=self.dir)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail("broker exited with %s during start-up; log:\n%s"
                            % (self.proc.returncode, self.log_text()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("broker did not listen on %d; log:\n%s" % (self.port, self.log_text()))
            time.sleep(0.02)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15.0, check=True):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            self.logf.close()
            self.proc = None
            pytest.fail("broker did not exit %.0fs after signal %d; log tail:\n%s"
                        % (timeout, sig, self.log_text()[-4000:]))
        self.logf.close()
        self.proc = None
        self.exit_codes.append(rc)
        if check:
            self.check_log()
            assert rc == 0, "broker exit code %d after signal %d; log tail:\n%s" % (
                rc, sig, self.log_text()[-4000:])
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.logf.close()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def log_text(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def check_log(self):
        text = self.log_text()
        for mark in SANITIZER_MARKS:
            if mark in text:
                i = text.index(mark)
                pytest.fail("sanitizer report in broker log:\n%s" % text[max(0, i - 500):i + 6000])

    def wait_log(self, pattern, timeout=5.0):
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log_text()), timeout, what="log /%s/" % pattern)


@pytest.fixture
def start_broker(tmp_path):
    """Factory: start_broker(**options, extra_lines=[...]) -> Broker.
    Option values: bool -> true/false, list -> repeated lines."""
    brokers = []

    def factory(extra_lines=(), **options):
        d = tmp_path / ("b%d" % len(brokers))
        d.mkdir()
        b = Broker(d, options, extra_lines)
        brokers.append(b)
        return b.start()

    yield factory
    errors = []
    for b in brokers:
        if b.proc is not None:
            alive = b.proc.poll() is None
            rc = b.stop(check=False)
            if not alive:
                errors.append("broker had already exited with code %s" % rc)
            elif rc != 0:
                errors.append("broker exit code %s after SIGTERM" % rc)
        text = b.log_text()
        for mark in SANITIZER_MARKS:
            if mark in text:
                i = text.index(mark)
                errors.append("sanitizer report:\n" + text[max(0, i - 500):i + 6000])
                break
        if errors:
            errors.append("log tail:\n" + text[-3000:])
            break
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def broker(start_broker):
    return start_broker()


# ---------------------------------------------------------------- collector

class Collector:
    """Thread-safe list of received messages."""

    def __init__(self):
        self.items = []
        self.cond = threading.Condition()

    def add(self, item):
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def wait_for(self, count, timeout=5.0):
        """Wait until at least count items; return a copy of the list."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.items) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("got %d of %d messages in %.1fs: %r"
                                         % (len(self.items), count, timeout, self.items[:20]))
                self.cond.wait(left)
            return list(self.items)

    def wait_match(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for it in self.items:
                    if pred(it):
                        return it
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no matching message in %.1fs; have %r"
                                         % (timeout, self.items[:20]))
                self.cond.wait(left)

    def snapshot(self):
        with self.cond:
            return list(self.items)

    def clear(self):
        with self.cond:
            self.items.clear()

    def __len__(self):
        with self.cond:
            return len(self.items)


# ---------------------------------------------------------------- paho

class Msg:
    """Plain copy of a paho message (paho reuses nothing, but copying keeps
    the test independent of paho internals)."""

    def __init__(self, m):
        self.topic = m.topic
        self.payload = m.payload
        self.qos = m.qos
        self.retain = bool(m.retain)
        self.dup = bool(m.dup)
        self.mid = m.mid
        self.properties = getattr(m, "properties", None)
        self.time = time.monotonic()

    def __repr__(self):
        return "<Msg %s %r q%d r%d>" % (self.topic, self.payload[:30], self.qos, self.retain)


class Client:
    """A connected paho client with a message collector."""

    def __init__(self, port, client_id="", protocol=4, clean=True, keepalive=60,
                 properties=None, will=None, max_inflight=20):
        self.protocol = protocol
        self.messages = Collector()
        self.connack = None
        self.disconnected = threading.Event()
        self.disconnect_rc = None
        self.subacks = {}
        self.unsubacks = {}
        self.cond = threading.Condition()
        kw = dict(client_id=client_id, protocol=mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311,
                  reconnect_on_failure=False)
        if protocol != 5:
            kw["clean_session"] = clean
        c = mqtt.Client(**kw)
        c.max_inflight_messages_set(max_inflight)
        c.max_queued_messages_set(0)
        c.on_connect = self._on_connect
        c.on_message = lambda cl, u, m: self.messages.add(Msg(m))
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_disconnect = self._on_disconnect
        if will:
            c.will_set(will["topic"], will.get("payload"), will.get("qos", 0),
                       will.get("retain", False), will.get("properties"))
        self.client = c
        ckw = dict(keepalive=keepalive)
        if protocol == 5:
            ckw["clean_start"] = clean
            ckw["properties"] = properties
        c.connect("127.0.0.1", port, **ckw)
        c.loop_start()
        deadline = time.monotonic() + 10
        with self.cond:
            while self.connack is None and not self.disconnected.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    c.loop_stop()
                    raise AssertionError("no CONNACK for client %r" % client_id)
                self.cond.wait(left)
        if self.connack is None:
            raise AssertionError("connection closed before CONNACK")

    def _on_connect(self, c, u, flags, rc, props=None):
        with self.cond:
            self.connack = dict(session_present=bool(flags.get("session present")),
                                rc=rc.value if hasattr(rc, "value") else rc,
                                props=props)
            self.cond.notify_all()

    def _on_subscribe(self, c, u, mid, codes, props=None):
        with self.cond:
            self.subacks[mid] = [x.value if hasattr(x, "value") else x for x in codes]
            self.cond.notify_all()

    def _on_unsubscribe(self, c, u, mid, props=None, codes=None):
        with self.cond:
            if isinstance(codes, list):
                codes = [x.value if hasattr(x, "value") else x for x in codes]
            elif codes is not None and hasattr(codes, "value"):
                codes = [codes.value]
            self.unsubacks[mid] = codes
            self.cond.notify_all()

    def _on_disconnect(self, c, u, rc, props=None):
        with self.cond:
            self.disconnect_rc = rc.value if hasattr(rc, "value") else rc
            self.disconnected.set()
            self.cond.notify_all()

    @property
    def session_present(self):
        return self.connack["session_present"]

    def _wait_mid(self, table, mid, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while mid not in table:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no ack for mid %d" % mid)
                self.cond.wait(left)
            return table[mid]

    def subscribe(self, topic, qos=0, no_local=False, rap=False, rh=0, properties=None):
        """Subscribe and wait for SUBACK; returns the list of codes."""
        if self.protocol == 5:
            from paho.mqtt.subscribeoptions import SubscribeOptions
            opts = SubscribeOptions(qos=qos, noLocal=no_local, retainAsPublished=rap,
                                    retainHandling=rh)
            rc, mid = self.client.subscribe(topic, options=opts, properties=properties)
        else:
            rc, mid = self.client.subscribe(topic, qos)
        assert rc == 0, "subscribe rc %d" % rc
        return self._wait_mid(self.subacks, mid)

    def unsubscribe(self, topic):
        rc, mid = self.client.unsubscribe(topic)
        assert rc == 0
        return self._wait_mid(self.unsubacks, mid)

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, wait=True):
        info = self.client.publish(topic, payload, qos, retain, properties)
        if wait and qos > 0:
            info.wait_for_publish(10)
            assert info.is_published(), "publish %s not acknowledged" % topic
        return info

    def disconnect(self, reason=None, properties=None):
        if self.protocol == 5 and reason is not None:
            from paho.mqtt.reasoncodes import ReasonCodes
            rc = ReasonCodes(PacketTypes.DISCONNECT, identifier=reason)
            self.client.disconnect(reasoncode=rc, properties=properties)
        else:
            self.client.disconnect(properties=properties) if self.protocol == 5 \
                else self.client.disconnect()
        self.disconnected.wait(5)
        self.client.loop_stop()

    def close(self):
        """Drop the TCP connection without DISCONNECT."""
        try:
            self.client.socket().shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.disconnected.wait(5)
        self.client.loop_stop()

    def stop(self):
        try:
            if not self.disconnected.is_set():
                self.client.disconnect()
                self.disconnected.wait(2)
        finally:
            self.client.loop_stop()


def props(ptype, **kw):
    """paho Properties for a packet type: props(PacketTypes.CONNECT, SessionExpiryInterval=60)."""
    p = Properties(ptype)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


@pytest.fixture
def client(start_broker):
    """Factory: client(broker, client_id="", protocol=4, clean=True, ...) ->
    connected Client. Disconnected at teardown, before the broker stops."""
    made = []

    def factory(b, client_id="", protocol=4, **kw):
        port = b.port if hasattr(b, "port") else b
        c = Client(port, client_id, protocol, **kw)
        made.append(c)
        return c

    yield factory
    for c in made:
        try:
            c.stop()
        except Exception:
            pass


@pytest.fixture
def raw(start_broker):
    """Factory: raw(broker, version=4) -> RawClient (not yet connected)."""
    made = []

    def factory(b, version=4, timeout=5.0):
        port = b.port if hasattr(b, "port") else b
        r = mqttraw.RawClient(port, version, timeout=timeout)
        made.append(r)
        return r

    yield factory
    for r in made:
        r.close()


def connect_raw(raw_factory, b, client_id, version=4, **kw):
    """Open a raw connection, CONNECT, assert success, return the client."""
    r = raw_factory(b, version)
    ca = r.connect(client_id, **kw)
    assert ca.rc == 0, "CONNACK %r" % ca
    return r


def assert_broker_alive(b, version=4):
    """A fresh client can connect, ping and disconnect."""
    assert b.alive(), "broker process exited; log tail:\n" + b.log_text()[-3000:]
    r = mqttraw.RawClient(b.port, version)
    try:
        ca = r.connect("alive-check-%d" % time.monotonic_ns(), version=version)
        assert ca.rc == 0
        r.send(mqttraw.pingreq())
        r.expect(mqttraw.PINGRESP)
        r.disconnect()
    finally:
        r.close()
