"""kill -9 harness: acknowledged QoS 1/2 messages survive SIGKILL.

How to run (from the repository root; Debian's python3 with python3-pytest
and python3-paho-mqtt):

    FERROMQ_BIN=build-test/ferromq KILL_CYCLES=10 \\
        /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/durability

    KILL_CYCLES   kills in total, split between `durability full` and
                  `durability normal` (default 10: 5 + 5)
    KILL_SEED     seed of the random kill moments (default: random; the
                  summary prints the seed used, set it to replay a run)
    FERROMQ_BIN   broker binary (default build/ferromq)

`make test` runs this folder with KILL_CYCLES=10, `make test-durability`
with KILL_CYCLES=100. Add -s or look at the summary line printed for each
durability mode: messages acknowledged, delivered, duplicates, kills.

What it does: four publishers (QoS 1 and QoS 2, MQTT 3.1.1 and 5.0), each
with its own topic and numbered payloads, and two subscribers on dur/#, all
with persistent sessions and fixed client ids. One subscriber stays online
(reconnecting after each kill); the other goes offline for some cycles, so
its messages sit in the broker's queue across kills. The broker is killed
with SIGKILL after a random delay and restarted on the same data directory;
every client reconnects with the same paho Client object, which keeps its
own in-flight messages and resends them (DUP) as MQTT requires. A
publisher counts a message as acknowledged only when its PUBACK / PUBCOMP
arrived. At the end publishing stops, every in-flight message is
acknowledged, the subscribers drain, and the test checks for each
subscriber: every acknowledged QoS 1 message delivered at least once, every
acknowledged QoS 2 message exactly once, and per topic the first deliveries
in increasing order; every reconnect after the first found its session.
"""
import collections
import math
import os
import random
import re
import socket
import threading
import time
import traceback

import paho.mqtt.client as mqtt
import pytest

from fm_harness import props, PacketTypes  # noqa: F401

WINDOW = 10              # publisher messages in flight
PUBLISH_INTERVAL = 0.01  # seconds between two publishes of one publisher
KEEPALIVE = 30
SESSION_EXPIRY = 3600
STEP_TIMEOUT = 60.0      # reconnect / progress deadline after a restart (ASan is slow)
DRAIN_TIMEOUT = 180.0


def kill_cycles(durability):
    total = int(os.environ.get("KILL_CYCLES", "10"))
    return int(math.ceil(total / 2.0)) if durability == "full" else total // 2


class Endpoint:
    """One paho client with a fixed client id and a persistent session,
    driven by its own thread: network loop, reconnects, publishing. The
    Client object is created once and reconnected, so paho keeps its
    in-flight messages (and inbound QoS 2 state) across reconnects."""

    def __init__(self, name, port, protocol, topic=None, qos=None, sub_filter=None):
        self.name = name
        self.port = port
        self.protocol = protocol
        self.topic = topic
        self.qos = qos
        self.sub_filter = sub_filter
        self.lock = threading.Lock()
        self.connected = False
        self.connects = 0
        self.session_lost = []          # connect numbers (>1) with session present = 0
        self.want_online = True
        self.publishing = topic is not None
        self.stopping = threading.Event()
        self.subscribed = threading.Event()
        self.error = None
        self.received = []              # (topic, seq, qos, dup, packet id, connect number)
        self.trace = {}                 # seq -> [packet id, connect number at publish, at ack]
        self.next_seq = 0
        self.pending = []               # [(seq, MQTTMessageInfo)]
        self.acked = []
        kw = dict(client_id=name, reconnect_on_failure=False,
                  protocol=mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311)
        if protocol != 5:
            kw["clean_session"] = False
        c = mqtt.Client(**kw)
        c.max_inflight_messages_set(WINDOW if topic else 0)
        c.max_queued_messages_set(0)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = lambda *a: self.subscribed.set()
        self.client = c
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    # -- paho callbacks (run on this endpoint's thread, inside loop())
    def _on_connect(self, c, u, flags, rc, props_=None):
        rc = rc.value if hasattr(rc, "value") else rc
        with self.lock:
            if rc != 0:
                self.error = "%s: CONNACK rc %s" % (self.name, rc)
                return
            self.connects += 1
            self.connected = True
            if self.connects > 1 and not flags.get("session present"):
                self.session_lost.append(self.connects)

    def _on_disconnect(self, c, u, rc, props_=None):
        with self.lock:
            self.connected = False

    def _on_message(self, c, u, m):
        with self.lock:
            self.received.append((m.topic, int(m.payload), m.qos, bool(m.dup), m.mid,
                                  self.connects))

    # -- the thread
    def start(self):
        self.thread.start()

    def _main(self):
        try:
            self._run()
        except Exception:
            self.error = "%s: %s" % (self.name, traceback.format_exc())

    def _open(self, first):
        c = self.client
        if not first:
            # Connect only once the broker listens: paho's reconnect() resets
            # its in-flight state before it opens the socket, and a second
            # reset turns a QoS 2 message waiting to resend PUBREL into one
            # that resends PUBLISH (paho 1.6 bug): a new message to the broker.
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            keep = [m for m in c._out_messages.values()
                    if m.qos == 2 and m.state == mqtt.mqtt_ms_resend_pubrel]
            try:
                c.reconnect()
            finally:
                for m in keep:
                    m.state = mqtt.mqtt_ms_resend_pubrel
        elif self.protocol == 5:
            c.connect("127.0.0.1", self.port, KEEPALIVE, clean_start=False,
                      properties=props(PacketTypes.CONNECT, SessionExpiryInterval=SESSION_EXPIRY))
        else:
            c.connect("127.0.0.1", self.port, KEEPALIVE)

    def _run(self):
        c = self.client
        first = True
        opened_at = None
        next_pub = 0.0
        disconnect_sent = False
        while not self.stopping.is_set():
            sock = c.socket()
            if sock is None:
                disconnect_sent = False
                if not self.want_online:
                    time.sleep(0.02)
                    continue
                try:
                    self._open(first)
                    first = False
                    opened_at = time.monotonic()
                except OSError:
                    time.sleep(0.05)
                    continue
            elif not self.want_online and self.connected and not disconnect_sent:
                c.disconnect()
                disconnect_sent = True
            if not self.connected and opened_at and time.monotonic() - opened_at > STEP_TIMEOUT:
                raise AssertionError("no CONNACK %.0fs after connecting" % STEP_TIMEOUT)
            rc = c.loop(0.01)
            if rc != mqtt.MQTT_ERR_SUCCESS and c.socket() is not None:
                # paho left the socket open after an error: start over (reconnect
                # closes it first).
                with self.lock:
                    self.connected = False
                try:
                    self._open(False)
                    opened_at = time.monotonic()
                except OSError:
                    pass
                continue
            if self.sub_filter and self.connected and not self.subscribed.is_set() \
                    and not getattr(self, "_sub_sent", False):
                c.subscribe(self.sub_filter, 2)
                self._sub_sent = True
            if self.topic:
                now = time.monotonic()
                if self._publish_step(c, now >= next_pub):
                    next_pub = now + PUBLISH_INTERVAL
        if c.socket() is not None and self.connected:
            c.disconnect()
            deadline = time.monotonic() + 5
            while c.socket() is not None and time.monotonic() < deadline:
                c.loop(0.05)

    def _publish_step(self, c, due):
        """Collects acknowledgements; publishes the next message when due and
        the window allows. Returns True if it published."""
        with self.lock:
            if self.pending:
                done = [s for s, info in self.pending if acked(info)]
                if done:
                    self.acked.extend(done)
                    for seq in done:
                        self.trace[seq][2] = self.connects
                    self.pending = [(s, i) for s, i in self.pending if not acked(i)]
            if not (self.connected and self.publishing and due and len(self.pending) < WINDOW):
                return False
            seq = self.next_seq
            self.next_seq += 1
        # publish() outside our lock: paho calls on_publish under its own locks.
        info = c.publish(self.topic, b"%d" % seq, self.qos)
        with self.lock:
            self.pending.append((seq, info))
            self.trace[seq] = [info.mid, self.connects, None]
        return True

    # -- controller side
    def snapshot(self):
        with self.lock:
            return dict(connected=self.connected, connects=self.connects,
                        acked=len(self.acked), pending=len(self.pending),
                        received=len(self.received), published=self.next_seq)

    def stop(self):
        self.stopping.set()
        self.thread.join(10)


def acked(info):
    """paho's is_published() raises when publish() was called while the
    connection was dropping (rc NO_CONN), although paho keeps the QoS 1/2
    message and sends it after the reconnect; what counts is the ack."""
    try:
        return info.is_published()
    except RuntimeError:
        return info._published


def wait_until(cond, timeout, what, endpoints, broker):
    deadline = time.monotonic() + timeout
    while True:
        for e in endpoints:
            if e.error:
                raise AssertionError("client failed: %s\nbroker log tail:\n%s"
                                     % (e.error, broker.log_text()[-3000:]))
        if cond():
            return
        if time.monotonic() > deadline:
            state = {e.name: e.snapshot() for e in endpoints}
            raise AssertionError("timed out after %.0fs waiting for %s; clients %r\nbroker log tail:\n%s"
                                 % (timeout, what, state, broker.log_text()[-3000:]))
        time.sleep(0.02)


def check_subscriber(sub, pubs):
    """Returns (problems, stats) for one subscriber against the publishers'
    acknowledged messages."""
    problems = []
    stats = collections.Counter()
    by_topic = collections.defaultdict(list)
    with sub.lock:
        received = list(sub.received)
    for topic, seq, qos, dup, pid, conn in received:
        by_topic[topic].append((seq, qos, dup, pid, conn))
    for p in pubs:
        got = by_topic.pop(p.topic, [])
        counts = collections.Counter(g[0] for g in got)
        acked = set(p.acked)
        missing = sorted(s for s in acked if counts[s] == 0)
        dups = sorted(s for s, n in counts.items() if n > 1)
        unknown = sorted(s for s in counts if s >= p.next_seq)
        wrong_qos = [(g[0], g[1]) for g in got if g[1] != p.qos]
        stats["q%d_acked" % p.qos] += len(acked)
        stats["q%d_delivered" % p.qos] += len(got)
        stats["q%d_duplicates" % p.qos] += sum(counts[s] - 1 for s in dups)
        if missing:
            problems.append("%s: %d acknowledged QoS %d messages on %s never delivered, e.g. %s"
                            % (sub.name, len(missing), p.qos, p.topic, missing[:20]))
        if p.qos == 2 and dups:
            problems.append("%s: %d QoS 2 messages on %s delivered more than once, e.g. %s"
                            % (sub.name, len(dups), p.topic,
                               [(s, counts[s]) for s in dups[:20]]))
            for s in dups[:3]:
                problems.append("    seq %d: published as packet id %s on publisher connection %s,"
                                " acknowledged on connection %s; deliveries (packet id, dup,"
                                " subscriber connection): %s"
                                % (s, p.trace[s][0], p.trace[s][1], p.trace[s][2],
                                   [(g[3], g[2], g[4]) for g in got if g[0] == s]))
        if unknown:
            problems.append("%s: messages on %s that were never published: %s"
                            % (sub.name, p.topic, unknown[:20]))
        if wrong_qos:
            problems.append("%s: messages on %s delivered with the wrong QoS: %s"
                            % (sub.name, p.topic, wrong_qos[:10]))
        seen, last, disorder = set(), -1, []
        for i, seq in enumerate(g[0] for g in got):
            if seq in seen:
                continue
            if seq < last:
                disorder.append((i, last, seq))
            seen.add(seq)
            last = max(last, seq)
        if disorder:
            problems.append("%s: %d out-of-order first deliveries on %s (index, previous, this): %s"
                            % (sub.name, len(disorder), p.topic, disorder[:10]))
    for topic, got in by_topic.items():
        problems.append("%s: messages on unexpected topic %s: %d" % (sub.name, topic, len(got)))
    if sub.session_lost:
        problems.append("%s: session present = 0 on reconnects %s" % (sub.name, sub.session_lost))
    return problems, stats


def missing_count(sub, pubs):
    with sub.lock:
        have = collections.defaultdict(set)
        for topic, seq, *_ in sub.received:
            have[topic].add(seq)
    return sum(1 for p in pubs for s in p.acked if s not in have[p.topic])


@pytest.mark.parametrize("durability", ["full", "normal"])
def test_kill9(start_broker, capsys, durability):
    cycles = kill_cycles(durability)
    seed = int(os.environ.get("KILL_SEED") or random.randrange(1 << 30))
    rng = random.Random("%d-%s" % (seed, durability))
    t0 = time.monotonic()
    b = start_broker(durability=durability, max_queued_messages=10000000,
                     max_inflight_messages=20)
    pubs = [Endpoint("dur-p1-v3", b.port, 4, "dur/q1/v3", 1),
            Endpoint("dur-p1-v5", b.port, 5, "dur/q1/v5", 1),
            Endpoint("dur-p2-v3", b.port, 4, "dur/q2/v3", 2),
            Endpoint("dur-p2-v5", b.port, 5, "dur/q2/v5", 2)]
    online = Endpoint("dur-sub-online", b.port, 4, sub_filter="dur/#")
    sometimes = Endpoint("dur-sub-sometimes", b.port, 5, sub_filter="dur/#")
    subs = [online, sometimes]
    everyone = pubs + subs
    kills = 0
    restart_times = []
    try:
        for s in subs:
            s.start()
        wait_until(lambda: all(s.subscribed.is_set() for s in subs), STEP_TIMEOUT,
                   "SUBACKs", everyone, b)
        for p in pubs:
            p.start()
        wait_until(lambda: all(len(p.acked) >= 5 for p in pubs), STEP_TIMEOUT,
                   "first acknowledgements", everyone, b)

        for cycle in range(cycles):
            if cycle % 3 == 0 and sometimes.want_online:
                # Offline across this kill and the next one: its messages
                # wait in the broker's (stored) queue.
                sometimes.want_online = False
                wait_until(lambda: not sometimes.connected and sometimes.client.socket() is None,
                           STEP_TIMEOUT, "offline subscriber to disconnect", everyone, b)
            time.sleep(rng.uniform(0.05, 2.0))
            before = {e.name: e.snapshot() for e in everyone}
            b.kill9()
            kills += 1
            t_restart = time.monotonic()
            b.start(timeout=STEP_TIMEOUT)
            restart_times.append(time.monotonic() - t_restart)
            if cycle % 3 == 1 and not sometimes.want_online:
                sometimes.want_online = True
            live = [e for e in everyone if e.want_online]
            wait_until(lambda: all(e.connected and e.connects > before[e.name]["connects"]
                                   for e in live),
                       STEP_TIMEOUT, "clients to reconnect after kill %d" % kills, everyone, b)
            wait_until(lambda: all(len(p.acked) >= before[p.name]["acked"] + 3 for p in pubs),
                       STEP_TIMEOUT, "publishing to go on after kill %d" % kills, everyone, b)

        # Stop publishing; everything in flight must be acknowledged.
        for p in pubs:
            p.publishing = False
        sometimes.want_online = True
        wait_until(lambda: all(not p.pending for p in pubs), STEP_TIMEOUT,
                   "publishers' in-flight messages to be acknowledged", everyone, b)
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline and any(missing_count(s, pubs) for s in subs):
            assert not any(e.error for e in everyone), [e.error for e in everyone if e.error]
            time.sleep(0.1)
        # Late duplicates: nothing to poll for, give them a moment.
        time.sleep(1.0)
    finally:
        for e in everyone:
            e.stop()

    problems = []
    for e in everyone:
        if e.error:
            problems.append(e.error)
    for p in pubs:
        if p.session_lost:
            problems.append("%s: session present = 0 on reconnects %s" % (p.name, p.session_lost))
        if len(p.acked) != p.next_seq:
            problems.append("%s: %d published, %d acknowledged" % (p.name, p.next_seq, len(p.acked)))
    totals = collections.Counter()
    per_sub = []
    for s in subs:
        probs, stats = check_subscriber(s, pubs)
        problems += probs
        totals.update(stats)
        per_sub.append("%s: q1 %d delivered / %d dup, q2 %d delivered / %d dup" % (
            s.name, stats["q1_delivered"], stats["q1_duplicates"],
            stats["q2_delivered"], stats["q2_duplicates"]))
    log = b.log_text()
    recovered = re.findall(r"store .*: recovered .* in ([0-9.]+) s", log)
    if len(recovered) != kills + 1:
        problems.append("%d 'recovered' log lines for %d starts" % (len(recovered), kills + 1))
    b.stop()
    acked1 = sum(len(p.acked) for p in pubs if p.qos == 1)
    acked2 = sum(len(p.acked) for p in pubs if p.qos == 2)
    summary = ("\nkill9 durability=%s seed=%d: %d kills in %.1fs; acknowledged q1 %d q2 %d; %s; "
               "restart max %.2fs (store recovery max %s s)\n" % (
                   durability, seed, kills, time.monotonic() - t0, acked1, acked2,
                   "; ".join(per_sub), max(restart_times) if restart_times else 0.0,
                   max(recovered, key=float) if recovered else "?"))
    with capsys.disabled():
        print(summary, end="")
    assert not problems, "seed %d (KILL_SEED=%d replays):\n%s" % (seed, seed, "\n".join(problems))
