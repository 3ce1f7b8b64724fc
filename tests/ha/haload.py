"""haload: QoS 1 and QoS 2 load on a broker cluster through fail-overs, and
the check that nothing acknowledged was lost.

Clients are paho-mqtt's, each with a persistent session (v3.1.1 clean
session false, or v5 clean start false with a session expiry), run by a
thread of its own that also drives paho's loop (one thread per client: no
callback races with our bookkeeping). When the connection drops they try
every node's address, following a v5 Server Reference first, until one
answers CONNACK 0 (paho then re-sends what was in flight, DUP for QoS 1,
PUBLISH or PUBREL for QoS 2, on the same session).

A publisher counts a message acknowledged when paho reports it complete:
PUBACK for QoS 1, PUBCOMP for QoS 2. The subscriber records every delivery.
check_deliveries says what went wrong: an acknowledged message never
delivered, a QoS 2 message delivered twice, a publisher's messages out of
order, a session not found after a reconnect.
"""
import re
import struct
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

SESSION_EXPIRY_S = 3600
TOPIC = "ha/load"


def check_deliveries(acked, qos_of, deliveries):
    """Pure: the problems in a run, [] if none.

    acked: {publisher: set of acknowledged sequence numbers}
    qos_of: {publisher: 1 or 2}
    deliveries: [(publisher, seq)] in the order the subscriber got them
    Every acknowledged message is delivered; a QoS 2 message at most once;
    each publisher's messages first arrive in the order it sent them (a QoS 1
    re-delivery after a fail-over may repeat an older one: allowed)."""
    problems = []
    seen = {}
    first_order = {}
    for pub, seq in deliveries:
        seen[(pub, seq)] = seen.get((pub, seq), 0) + 1
        if seen[(pub, seq)] == 1:
            first_order.setdefault(pub, []).append(seq)
    for pub, seqs in sorted(acked.items()):
        lost = sorted(s for s in seqs if (pub, s) not in seen)
        if lost:
            problems.append("%s: %d acknowledged message(s) never delivered: %s%s"
                            % (pub, len(lost), lost[:20], " ..." if len(lost) > 20 else ""))
    for (pub, seq), n in sorted(seen.items()):
        if qos_of.get(pub) == 2 and n > 1:
            problems.append("%s: QoS 2 message %d delivered %d times" % (pub, seq, n))
    for pub, order in sorted(first_order.items()):
        back = [(a, b) for a, b in zip(order, order[1:]) if b <= a]
        if back:
            problems.append("%s: order broken, %d time(s), first: %d then %d" % (pub, len(back), *back[0]))
    return problems


class ReasonClient(mqtt.Client):
    """paho's Client, keeping the v5 reason code of each PUBACK, PUBREC and
    PUBCOMP: paho 1.6.1 reads it and drops it, and calls on_publish for a
    refusal (>= 0x80) as for a success."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.ack_reasons = {}  # packet id -> the highest reason code of its acks

    def _keep_reason(self):
        pkt = self._in_packet
        if self._protocol == mqtt.MQTTv5 and pkt["remaining_length"] > 2:
            mid, = struct.unpack("!H", pkt["packet"][:2])
            self.ack_reasons[mid] = max(self.ack_reasons.get(mid, 0), pkt["packet"][2])

    def _handle_pubackcomp(self, cmd):
        self._keep_reason()
        return super()._handle_pubackcomp(cmd)

    def _handle_pubrec(self):
        self._keep_reason()
        return super()._handle_pubrec()


class SessionClient(threading.Thread):
    """One paho client with a persistent session, kept connected to the
    node that leads. Subclasses act in tick() while connected."""

    def __init__(self, client_id, addresses, version=4, keepalive=3):
        """addresses: every broker's (host, port)."""
        super().__init__(daemon=True, name=client_id)
        self.client_id, self.addresses, self.version = client_id, list(addresses), version
        self.keepalive = keepalive
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.connected = False
        self.connects = []        # (monotonic time, (host, port), session present)
        self.refusals = {}        # CONNACK code -> count
        self.problems = []
        self.error = None
        self._connack = None
        kw = dict(client_id=client_id, protocol=mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311)
        if version != 5:
            kw["clean_session"] = False
        c = ReasonClient(**kw)
        c.max_inflight_messages_set(20)
        c.max_queued_messages_set(0)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        self.mqtt = c

    # -- paho callbacks (this thread: paho's loop runs here)
    def _on_connect(self, c, userdata, flags, rc, props=None):
        code = rc.value if hasattr(rc, "value") else rc
        ref = getattr(props, "ServerReference", None) if props is not None else None
        self._connack = (code, bool(flags.get("session present")), ref)

    def _on_disconnect(self, c, userdata, rc, props=None):
        self.connected = False

    # -- connection
    def _try(self, address):
        """One CONNECT to (host, port); (code, session present, server
        reference) or None."""
        host, port = address
        self._connack = None
        # paho 1.6.1's reconnect() maps each in-flight message's state before
        # it connects: a QoS 2 message waiting for PUBCOMP becomes "re-send
        # PUBREL", and the next reconnect() (after an attempt that failed:
        # node down, or refusing as a follower) turns that into "publish",
        # sent anew without DUP after the broker released the packet id: a
        # new message, delivered twice. Undone before every attempt.
        with self.mqtt._out_message_mutex:
            for m in self.mqtt._out_messages.values():
                if m.state == mqtt.mqtt_ms_resend_pubrel:
                    m.state = mqtt.mqtt_ms_wait_for_pubcomp
        try:
            if self.version == 5:
                p = Properties(PacketTypes.CONNECT)
                p.SessionExpiryInterval = SESSION_EXPIRY_S
                self.mqtt.connect(host, port, keepalive=self.keepalive, clean_start=False, properties=p)
            else:
                self.mqtt.connect(host, port, keepalive=self.keepalive)
        except OSError:
            return None
        deadline = time.monotonic() + 1.0
        while self._connack is None and time.monotonic() < deadline and not self.stop_flag.is_set():
            if self.mqtt.loop(0.02) != mqtt.MQTT_ERR_SUCCESS and self._connack is None:
                return None
        return self._connack

    @staticmethod
    def _address_of(reference):
        """(host, port) of a Server Reference "HOST:PORT", or None."""
        try:
            host, port = reference.rsplit(":", 1)
            return host, int(port)
        except (ValueError, AttributeError):
            return None

    def connect_leader(self):
        """Tries every node (a Server Reference first) until one accepts."""
        order, i = list(self.addresses), 0
        while not self.stop_flag.is_set():
            address = order[i % len(order)]
            i += 1
            r = self._try(address)
            if r is None:
                continue
            code, present, ref = r
            if code == 0:
                with self.lock:
                    first = not self.connects
                    self.connects.append((time.monotonic(), address, present))
                    self.connected = True
                if not first and not present:
                    self.problems.append("%s: session not present on reconnect to %s:%d" % (self.client_id, *address))
                self.on_connected(first)
                return True
            self.refusals[code] = self.refusals.get(code, 0) + 1
            referred = self._address_of(ref)
            if referred and referred != address:
                if referred not in self.addresses:  # a node added since: kept for later fail-overs
                    self.addresses.append(referred)
                    order.append(referred)
                order.insert(i % (len(order) + 1), referred)  # tried next
            if i % len(self.addresses) == 0:
                time.sleep(0.02)  # every node refused: an election is running
        return False

    def on_connected(self, first):
        pass

    def tick(self):
        pass

    def run(self):
        try:
            while not self.stop_flag.is_set():
                if not self.connected and not self.connect_leader():
                    break
                if self.mqtt.loop(0.005) != mqtt.MQTT_ERR_SUCCESS:
                    self.connected = False
                    continue
                self.tick()
            if self.connected:
                self.mqtt.disconnect()
                self.mqtt.loop(0.1)
        except Exception as e:  # reported by the test, not lost in a thread
            self.error = "%s: %r" % (self.client_id, e)

    def stop(self, timeout=10):
        self.stop_flag.set()
        self.join(timeout)


class Publisher(SessionClient):
    """Publishes TOPIC payloads "<client id> <seq>" at rate per second,
    at most `window` unacknowledged, while connected."""

    def __init__(self, client_id, addresses, qos, rate=200, window=20, version=4):
        super().__init__(client_id, addresses, version)
        self.qos, self.rate, self.window = qos, rate, window
        self.mqtt.on_publish = self._on_publish
        self.mqtt.on_log = self._on_log
        self.seq = 0
        self.pending = {}   # paho mid -> seq
        self.refused = {}     # seq -> v5 reason code >= 0x80 it was answered with: not acknowledged
        self.mid_of = {}    # seq -> paho mid (the packet id it was sent with)
        self.packets = {}   # packet id -> [(monotonic time, paho's log line)], its last 12
        self.acked = set()
        self.sending = threading.Event()
        self.sending.set()
        self.started = None

    def _on_log(self, c, userdata, level, line):
        """paho's debug lines of the packets it sends and receives, kept per
        packet id, for the timeline of a failing check."""
        m = re.search(r"\(Mid: (\d+)\)|m(\d+)\)", line)
        if m:
            mid = int(m.group(1) or m.group(2))
            lines = self.packets.setdefault(mid, [])
            lines.append((time.monotonic(), line))
            del lines[:-12]

    def _on_publish(self, c, userdata, mid):
        seq = self.pending.pop(mid, None)
        reason = self.mqtt.ack_reasons.pop(mid, 0)
        if seq is not None:
            with self.lock:
                if reason >= 0x80:
                    self.refused[seq] = reason
                else:
                    self.acked.add(seq)

    def tick(self):
        if not self.sending.is_set() or len(self.pending) >= self.window:
            return
        now = time.monotonic()
        if self.started is None:
            self.started = now
        due = int((now - self.started) * self.rate)
        while self.seq < due and len(self.pending) < self.window:
            self.seq += 1
            info = self.mqtt.publish(TOPIC, b"%s %d" % (self.client_id.encode(), self.seq), self.qos)
            self.pending[info.mid] = self.seq
            self.mid_of[self.seq] = info.mid

    def outstanding(self):
        return len(self.pending)

    def acked_copy(self):
        with self.lock:
            return set(self.acked)


class Subscriber(SessionClient):
    """Subscribes TOPIC at QoS 2 on its first session, then relies on the
    session; records (publisher, seq) of every delivery."""

    def __init__(self, client_id, addresses, version=5):
        super().__init__(client_id, addresses, version)
        self.mqtt.on_message = self._on_message
        self.deliveries = []
        self.details = {}  # (publisher, seq) -> [(monotonic time, packet id, dup, qos)]
        self.subscribed = threading.Event()
        self.mqtt.on_subscribe = lambda *a: self.subscribed.set()

    def on_connected(self, first):
        if first:
            self.mqtt.subscribe(TOPIC, 2)

    def _on_message(self, c, userdata, m):
        pub, seq = m.payload.split()
        key = (pub.decode(), int(seq))
        with self.lock:
            self.deliveries.append(key)
            self.details.setdefault(key, []).append((time.monotonic(), m.mid, bool(m.dup), m.qos))

    def delivered(self):
        with self.lock:
            return list(self.deliveries)


class Load:
    """A subscriber and publishers (QoS 1 over v5, QoS 2 over v3.1.1 by
    default) on a cluster's brokers."""

    def __init__(self, addresses, publishers=(("pub-q1", 1, 5), ("pub-q2", 2, 4)), rate=200):
        """addresses: every broker's (host, port)."""
        self.sub = Subscriber("ha-sub", addresses)
        self.pubs = [Publisher(cid, addresses, qos, rate, version=v) for cid, qos, v in publishers]

    def start(self, timeout=15):
        self.sub.start()
        if not self.sub.subscribed.wait(timeout):
            raise AssertionError("the subscriber got no SUBACK within %d s" % timeout)
        for p in self.pubs:
            p.start()

    def acked_counts(self):
        return {p.client_id: len(p.acked_copy()) for p in self.pubs}

    def refused_counts(self):
        """{publisher: {reason: count}} of the messages a v5 publisher was
        told were refused (reason >= 0x80)."""
        out = {}
        for p in self.pubs:
            with p.lock:
                for reason in p.refused.values():
                    counts = out.setdefault(p.client_id, {})
                    counts["0x%02x" % reason] = counts.get("0x%02x" % reason, 0) + 1
        return out

    def finish(self, timeout=30):
        """Stops publishing, waits for every publisher's in-flight messages
        to complete and for the subscriber to have them; returns the
        problems found (check_deliveries, sessions, client errors)."""
        for p in self.pubs:
            p.sending.clear()
        deadline = time.monotonic() + timeout
        while any(p.outstanding() for p in self.pubs) and time.monotonic() < deadline:
            time.sleep(0.05)
        acked = {p.client_id: p.acked_copy() for p in self.pubs}
        qos_of = {p.client_id: p.qos for p in self.pubs}

        def all_there():
            got = set(self.sub.delivered())
            return all((pub, s) in got for pub, seqs in acked.items() for s in seqs)
        while not all_there() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a duplicate that would follow
        for c in self.pubs + [self.sub]:
            c.stop()
        problems = []
        for p in self.pubs:
            if p.outstanding():
                problems.append("%s: %d message(s) never acknowledged" % (p.client_id, p.outstanding()))
        found = check_deliveries(acked, qos_of, self.sub.delivered())
        if found:
            found.append(self.timeline())
        problems += found
        for c in self.pubs + [self.sub]:
            problems += c.problems
            if c.error:
                problems.append(c.error)
        return problems

    def timeline(self):
        """For a failing check: every (re)connection and each repeated
        delivery, in time order (seconds since the subscriber started)."""
        t0 = self.sub.connects[0][0] if self.sub.connects else 0
        events = []
        for c in self.pubs + [self.sub]:
            for t, addr, present in c.connects:
                events.append((t, "%s connected to %s:%d (session present %s)" % (c.client_id, *addr, present)))
        pubs = {p.client_id: p for p in self.pubs}
        for key, ds in self.sub.details.items():
            if len(ds) > 1:
                for t, mid, dup, qos in ds:
                    events.append((t, "delivered %s %d: packet id %d, dup %s, qos %d" % (*key, mid, dup, qos)))
                pub = pubs.get(key[0])
                if pub and key[1] in pub.mid_of:
                    for t, line in pub.packets.get(pub.mid_of[key[1]], []):
                        events.append((t, "%s (seq %d): %s" % (key[0], key[1], line)))
        return "timeline:\n" + "\n".join("%8.3f %s" % (t - t0, e) for t, e in sorted(events))

    def stop(self):
        for c in self.pubs + [self.sub]:
            if c.is_alive():
                c.stop()


def kill_cycle(cluster, load, load_seconds=1.5, sig=None):
    """One fail-over under load: lets the load run, kills the leader with
    kill -9, waits for a new leader, restarts the old node and waits until
    it has caught up. Returns a dict of what was measured; raises
    AssertionError when no broker took over or the load made no progress."""
    import signal
    before = load.acked_counts()
    time.sleep(load_seconds)
    during = load.acked_counts()
    stalled = [k for k in during if during[k] <= before[k]]
    assert not stalled, "no message acknowledged in %.1f s for %s before the kill\n%s" % (
        load_seconds, stalled, cluster.report())
    old, new, took = cluster.kill_leader(sig or signal.SIGKILL)
    assert new, "no broker accepted connections within 30 s of kill -9 of node %d\n%s" % (old.id, cluster.report())
    old.start()
    caught = cluster.wait_caught_up(old)
    return {"killed": old.id, "new": new.id, "failover_s": took, "catch_up_s": caught}
