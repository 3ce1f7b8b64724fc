"""kill -9 harness for the bridge: what the edge acknowledged reaches the cloud.

How to run (from the repository root):

    FERROMQ_BIN=build-test/ferromq KILL_CYCLES=20 \\
        /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/durability/test_bridge_kill9.py

    KILL_CYCLES   kills of the edge (default 4; `make test-durability` runs 100)
    KILL_SEED     seed of the random moments (default: random; printed, to replay)

Two publishers (MQTT 3.1.1 and 5.0, QoS 1, persistent sessions) publish
numbered messages at the edge, whose bridge sends dur/# to a ferromq cloud; a
collector with a persistent session subscribes to dur/# on the cloud. The
cloud flaps (stopped and started at random, so the edge is killed with the
link up, with it down, and while it reconnects) and the edge is killed with
SIGKILL at random moments and restarted on its data directory. At the end the
cloud is up, publishing stops and the spool drains. Checked: every message
the edge acknowledged reached the cloud, first deliveries in order per
publisher, nothing unknown, and duplicates (QoS 1 resends after a
disruption) no more than the messages that can be in flight at one:
the bridge's window plus the publishers' windows, per disruption.
"""
import os
import random
import re
import time

from test_kill9 import STEP_TIMEOUT, WINDOW, Endpoint, check_subscriber, missing_count, wait_until

LINK_MAX_WINDOW = 1000  # src/bridge/link.c: in flight to the remote at most
DRAIN_TIMEOUT = 60.0    # the spool of a few kills drains in seconds


def bridge_lines(cloud_port):
    return ["connection cloud", "address 127.0.0.1:%d" % cloud_port, "bridge_protocol_version mqttv50",
            "restart_timeout 1 2", "keepalive_interval 5", "topic dur/# out 1"]


def test_bridge_kill9(start_broker, capsys):
    cycles = int(os.environ.get("KILL_CYCLES", "4"))
    seed = int(os.environ.get("KILL_SEED") or random.randrange(1 << 30))
    rng = random.Random("%d-bridge" % seed)
    t0 = time.monotonic()
    # The collector's queue takes a whole spool at once (the default 1,000
    # would drop the oldest at the cloud, not at the edge).
    cloud = start_broker(max_queued_messages=10000000)
    edge = start_broker(durability="full", extra_lines=bridge_lines(cloud.port))
    pubs = [Endpoint("bridge-p1-v3", edge.port, 4, "dur/q1/v3", 1),
            Endpoint("bridge-p1-v5", edge.port, 5, "dur/q1/v5", 1)]
    collector = Endpoint("bridge-collector", cloud.port, 5, sub_filter="dur/#")
    everyone = pubs + [collector]
    kills = cloud_stops = 0
    try:
        collector.start()
        wait_until(lambda: collector.subscribed.is_set(), STEP_TIMEOUT, "the collector's SUBACK", everyone, edge)
        edge.wait_log(r"bridge cloud: connected to", STEP_TIMEOUT)
        for p in pubs:
            p.start()
        wait_until(lambda: all(len(p.acked) >= 5 for p in pubs), STEP_TIMEOUT, "first acknowledgements",
                   everyone, edge)
        for cycle in range(cycles):
            if rng.random() < 0.5:
                if cloud.alive():
                    cloud.stop()
                    cloud_stops += 1
                else:
                    cloud.start(timeout=STEP_TIMEOUT)
            time.sleep(rng.uniform(0.05, 2.0))
            before = {p.name: p.snapshot() for p in pubs}
            edge.kill9()
            kills += 1
            edge.start(timeout=STEP_TIMEOUT)
            wait_until(lambda: all(p.connected and p.connects > before[p.name]["connects"] for p in pubs),
                       STEP_TIMEOUT, "publishers to reconnect after kill %d" % kills, everyone, edge)
            wait_until(lambda: all(len(p.acked) >= before[p.name]["acked"] + 3 for p in pubs),
                       STEP_TIMEOUT, "publishing to go on after kill %d" % kills, everyone, edge)
        if not cloud.alive():
            cloud.start(timeout=STEP_TIMEOUT)
        for p in pubs:
            p.publishing = False
        wait_until(lambda: all(not p.pending for p in pubs), STEP_TIMEOUT,
                   "publishers' in-flight messages to be acknowledged", everyone, edge)
        # The spool drains; what never arrives is listed by the checks below.
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline and missing_count(collector, pubs):
            assert not any(e.error for e in everyone), [e.error for e in everyone if e.error]
            time.sleep(0.1)
        time.sleep(1.0)  # late duplicates
    finally:
        for e in everyone:
            e.stop()

    problems = [e.error for e in everyone if e.error]
    for p in pubs:
        if p.session_lost:
            problems.append("%s: session present = 0 on reconnects %s" % (p.name, p.session_lost))
        if len(p.acked) != p.next_seq:
            problems.append("%s: %d published, %d acknowledged" % (p.name, p.next_seq, len(p.acked)))
    found, stats = check_subscriber(collector, pubs)
    problems += found
    disruptions = kills + cloud_stops
    allowance = disruptions * (LINK_MAX_WINDOW + WINDOW * len(pubs))
    if stats["q1_duplicates"] > allowance:
        problems.append("%d duplicates for %d disruptions (at most %d can be in flight)"
                        % (stats["q1_duplicates"], disruptions, allowance))
    starts = len(re.findall(r"store .*: recovered ", edge.log_text()))
    if starts != kills + 1:
        problems.append("%d 'recovered' log lines at the edge for %d starts" % (starts, kills + 1))
    with capsys.disabled():
        print("\nbridge kill9 seed=%d: %d kills of the edge, %d cloud stops in %.1fs; acknowledged %d, "
              "delivered %d, duplicates %d\n" % (seed, kills, cloud_stops, time.monotonic() - t0,
                                                 stats["q1_acked"], stats["q1_delivered"],
                                                 stats["q1_duplicates"]))
    assert not problems, "seed %d (KILL_SEED=%d replays):\n%s" % (seed, seed, "\n".join(problems))
