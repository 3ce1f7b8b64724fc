"""The large-plant profile at the shipped defaults, short (issue 12 #2, #8).

Many gateways publish QoS 1 to their own tag topics while a persistent
historian on plants/+/devices/+/# keeps up: no acknowledged message may be
lost to a limit. The broker runs with only a listener and its data
directory (plus the log level the fixture sets); the load is ferromq-bench's
plant mode (FERROMQ_BENCH). Only loss is asserted, never speed: the full
profile, its rates and latencies are in `make bench` (bench/run.sh,
plant-default and outage-default). The offline-only outage at defaults is
test_queue_defaults.py's.
"""
import json
import os
import re
import subprocess

import pytest

from conftest import broker_bin


def bench_bin():
    path = os.environ.get("FERROMQ_BENCH") or os.path.join(os.path.dirname(broker_bin()), "ferromq-bench")
    if not os.path.exists(path):
        pytest.fail("load generator %s does not exist (set FERROMQ_BENCH)" % path)
    return path


def plant(b, *args, bound=150):
    """Runs ferromq-bench plant against broker b; returns its JSON report."""
    cmd = [bench_bin(), "plant", "--port", str(b.port), "--pid", str(b.proc.pid),
           "--store-dir", b.data, "--json", "--drain", "20"] + [str(a) for a in args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=bound)
    except subprocess.TimeoutExpired:
        pytest.fail("ferromq-bench did not finish within %d s: %s" % (bound, " ".join(cmd)))
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    assert r.returncode == 0 and lines, "ferromq-bench exited %d: %s\n%s" % (
        r.returncode, r.stderr[-2000:], b.log_text()[-3000:])
    return json.loads(lines[-1])


def assert_nothing_lost(b, rep):
    assert rep["acked"] == rep["sent"] > 0, rep
    assert rep["rejected"] == 0, rep
    assert rep["lost"] == 0, "%d of %d acknowledged messages never reached a historian (%d gateways)" % (
        rep["lost"], rep["acked"], rep["gateways_with_loss"])
    assert rep["foreign"] == 0, rep
    drops = [l for l in b.log_text().splitlines() if re.search(r"\d+ messages? dropped", l)]
    assert not drops, drops[:5]


def test_large_plant_short_loses_nothing(start_broker):
    """20 gateways x 100 tags once a second (2,000 QoS 1 msg/s) for 5 s, one
    connected persistent v5 historian: every acknowledged message arrives."""
    b = start_broker()
    rep = plant(b, "--gateways", 20, "--tags", 100, "--interval", 1000, "--protocol", 5,
                "--duration", 5, "--warmup", 0)
    assert_nothing_lost(b, rep)
    assert rep["received"] >= rep["acked"]
    assert rep["status_msgs"] >= 20  # each gateway's retained "online"


def test_historian_away_and_back_under_traffic_loses_nothing(start_broker):
    """Two v3.1.1 historians (clean session 0); the first leaves for 2 s in
    the middle of the run and comes back while the gateways keep publishing:
    its queued messages and the live ones meet, neither is dropped, and the
    one that stayed gets everything too."""
    b = start_broker()
    rep = plant(b, "--gateways", 20, "--tags", 100, "--interval", 1000, "--protocol", 4,
                "--historians", 2, "--duration", 5, "--warmup", 0,
                "--offline-after", 1.5, "--offline-for", 2)
    assert_nothing_lost(b, rep)
    out = rep["outage"]
    assert out["messages"] > 0 and out["backlog_delivered"] > 0, out
