"""store_state.py fill|check PORT: what an upgrade must keep.

fill: a persistent v3.1.1 session with QUEUED messages waiting for it, a
persistent v5 session with a subscription and nothing queued, and RETAINED
retained messages; returns once the broker has acknowledged every publish
(acknowledgements follow the disk).
check: the first session is present and gets every queued message, the
retained messages are all there, the v5 session is present and its
subscription still routes. Exit status 0, or 1 with what is missing."""
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

QUEUED = 300
RETAINED = 25


def wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit("store_state: timed out waiting for %s" % what)
        time.sleep(0.02)


class Client:
    def __init__(self, port, client_id, v5=False, clean=True):
        self.got = []
        self.lock = threading.Lock()
        self.connack = None
        self.subacks = 0
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        self.c = mqtt.Client(client_id=client_id, protocol=proto,
                             **({} if v5 else {"clean_session": clean}))
        self.c.on_message = self._message
        self.c.on_subscribe = lambda *a: setattr(self, "subacks", self.subacks + 1)
        if v5:
            self.c.on_connect = lambda c, u, flags, rc, props=None: setattr(self, "connack", (flags, rc))
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0xFFFFFFFF
            self.c.connect("127.0.0.1", port, clean_start=clean, properties=props)
        else:
            self.c.on_connect = lambda c, u, flags, rc: setattr(self, "connack", (flags, rc))
            self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        wait(lambda: self.connack is not None, 10, "CONNACK of " + client_id)
        assert self.connack[1] == 0, self.connack

    def _message(self, c, u, m):
        with self.lock:
            self.got.append((m.topic, bytes(m.payload), m.retain))

    def session_present(self):
        return bool(self.connack[0]["session present"])

    def subscribe(self, topic):
        n = self.subacks
        self.c.subscribe(topic, 1)
        wait(lambda: self.subacks > n, 10, "SUBACK of " + topic)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def fill(port):
    q = Client(port, "pkg-queued", clean=False)
    q.subscribe("plant/q/#")
    q.close()
    s = Client(port, "pkg-session", v5=True, clean=True)
    s.subscribe("plant/s/+")
    s.close()
    pub = Client(port, "pkg-filler")
    infos = [pub.c.publish("plant/q/%d" % i, b"queued-%d" % i, qos=1) for i in range(QUEUED)]
    infos += [pub.c.publish("plant/r/%d" % i, b"retained-%d" % i, qos=1, retain=True) for i in range(RETAINED)]
    for info in infos:
        info.wait_for_publish(20)
        assert info.is_published()
    pub.close()
    print("store_state: %d queued, %d retained, 2 sessions" % (QUEUED, RETAINED))


def check(port):
    problems = []
    q = Client(port, "pkg-queued", clean=False)
    if not q.session_present():
        problems.append("pkg-queued: no session present")
    want = {("plant/q/%d" % i, b"queued-%d" % i) for i in range(QUEUED)}
    try:
        wait(lambda: want <= {(t, p) for t, p, _ in q.got}, 20, "the queued messages")
    except SystemExit:
        missing = want - {(t, p) for t, p, _ in q.got}
        problems.append("pkg-queued: %d of %d queued messages missing" % (len(missing), QUEUED))
    q.close()

    r = Client(port, "pkg-retained-reader")
    r.subscribe("plant/r/#")
    want = {("plant/r/%d" % i, b"retained-%d" % i, True) for i in range(RETAINED)}
    try:
        wait(lambda: want <= set(r.got), 10, "the retained messages")
    except SystemExit:
        problems.append("%d of %d retained messages missing" % (len(want - set(r.got)), RETAINED))
    r.close()

    s = Client(port, "pkg-session", v5=True, clean=False)
    if not s.session_present():
        problems.append("pkg-session: no session present")
    pub = Client(port, "pkg-checker")
    pub.c.publish("plant/s/after", b"after-upgrade", qos=1).wait_for_publish(10)
    pub.close()
    try:
        wait(lambda: ("plant/s/after", b"after-upgrade", False) in s.got, 10, "routing to pkg-session")
    except SystemExit:
        problems.append("pkg-session: its subscription did not survive")
    s.close()
    if problems:
        raise SystemExit("store_state: " + "; ".join(problems))
    print("store_state: all %d queued, %d retained, both sessions kept" % (QUEUED, RETAINED))


if __name__ == "__main__":
    {"fill": fill, "check": check}[sys.argv[1]](int(sys.argv[2]))
