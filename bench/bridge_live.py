#!/usr/bin/python3
"""Live traffic for bench/bridge.sh: publishes QoS 1 messages of SIZE bytes
at RATE/s to TOPIC on 127.0.0.1:PORT until the file STOP exists, then prints
one JSON line: messages published and acknowledged, the achieved rate, and
the PUBACK latency (p50, p99, max in ms).

usage: bridge_live.py PORT TOPIC RATE SIZE STOP"""
import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt

port, topic, rate, size, stop = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sent_at = {}
acked_early = {}  # PUBACKs that came before publish() returned
latencies = []
# Never held while calling paho: its callbacks run under paho's own locks.
lock = threading.Lock()


def on_publish(client, userdata, mid, *rest):
    now = time.monotonic()
    with lock:
        t = sent_at.pop(mid, None)
        if t is None:
            acked_early[mid] = now
        else:
            latencies.append((now - t) * 1000)


c = mqtt.Client(client_id="bench-bridge-live", protocol=mqtt.MQTTv311)
c.max_inflight_messages_set(1000)
c.on_publish = on_publish
c.connect("127.0.0.1", port)
c.loop_start()
payload = b"x" * size
n = 0
t0 = time.monotonic()
while not os.path.exists(stop):
    due = t0 + n / rate
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    before = time.monotonic()
    info = c.publish(topic, payload, qos=1)
    with lock:
        t = acked_early.pop(info.mid, None)
        if t is None:
            sent_at[info.mid] = before
        else:
            latencies.append((t - before) * 1000)
    n += 1
elapsed = time.monotonic() - t0
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    with lock:
        if not sent_at:
            break
    time.sleep(0.05)
c.loop_stop()
with lock:
    lat = sorted(latencies)
pick = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else None
print(json.dumps({"published": n, "acked": len(lat), "seconds": round(elapsed, 1),
                  "rate": round(n / elapsed, 1) if elapsed else 0,
                  "puback_ms": {"p50": pick(0.5), "p99": pick(0.99), "max": round(lat[-1], 2) if lat else None}}))
