"""Aggregation of Modbus tags (issue 18 #4): a tag polled fast publishes one
summary per window of the wall clock, the bridge's summary, against
fm-modbus-sim on loopback. The device's `seq` register counts its reads, so
the values a tag reads are consecutive numbers: a window that saw every one
of its polls exactly once has count == last - first + 1, and the next window
starts at last + 1. The tests check what the summaries say, never how long
anything took."""
import json
import subprocess
import time

import pytest

from collect_sim import device_lines, sim  # noqa: F401  (fixture)
from conftest import broker_bin, wait_for
from opshttp import api, ops_broker

ALL = {"count", "min", "max", "mean", "first", "last", "start", "end"}


def payloads(sub, topic):
    return [json.loads(m.payload) for m in sub.messages.snapshot() if m.topic == topic]


def summaries(sub, topic, n, timeout=20):
    """Waits for n summaries (objects with "start" or "count") on topic."""
    def got():
        s = [p for p in payloads(sub, topic) if "count" in p]
        return s if len(s) >= n else None
    return wait_for(got, timeout, what="%d summaries on %s" % (n, topic))


def check_chain(got, window_ms=1000):
    """Every summary aligned to the clock and consistent with consecutive
    reads; consecutive windows hold consecutive reads (none lost, none
    counted twice)."""
    for s in got:
        assert set(s) == ALL, s
        assert s["start"] % window_ms == 0 and s["end"] - s["start"] == window_ms, s
        assert s["count"] == s["last"] - s["first"] + 1, s  # every poll of the window, once
        assert (s["min"], s["max"]) == (s["first"], s["last"]), s
        assert s["mean"] == (s["first"] + s["last"]) / 2, s
    for a, b in zip(got, got[1:]):
        assert b["start"] == a["end"], (a, b)  # one summary per window, in order
        assert b["first"] == a["last"] + 1, (a, b)


def test_one_summary_per_window_with_exact_statistics(start_broker, client, sim):
    s = sim()
    s.cmd("seq 0 hr 0")
    tags = [("seq holding_register 0 uint16", ["tag_aggregate 1"])]
    b = start_broker(extra_lines=device_lines("plc", s.ports[0], tags, interval=50))
    sub = client(b, protocol=5)
    sub.subscribe("modbus/plc/#", 1)
    got = summaries(sub, "modbus/plc/seq", 4)
    msgs = [m for m in sub.messages.snapshot() if m.topic == "modbus/plc/seq"]
    assert all(m.qos == 1 and not m.retain for m in msgs)  # as the tag's readings
    assert all("count" in json.loads(m.payload) for m in msgs), msgs  # no reading published alone
    # The first window may have started before the broker did.
    check_chain(got)
    assert all(g["count"] >= 2 for g in got[1:]), got  # 20 polls a second (a busy machine skips some)
    # Published once its window is over: the device had been read past it.
    now_ms = time.time() * 1000
    assert got[-1]["end"] <= now_ms


def test_statistics_chosen_suffix_and_readings_without_a_number(start_broker, client, sim):
    s = sim()
    s.set(0, "hr", 0, 7)
    tags = [("a holding_register 0 uint16", ["tag_aggregate 1", "tag_aggregate_stats count,max,start",
                                             "tag_aggregate_suffix /1s", "tag_aggregate_non_numeric drop"]),
            ("b holding_register 40 uint16", ["tag_aggregate 1"])]
    b = start_broker(extra_lines=device_lines("plc", s.ports[0], tags, interval=100))
    sub = client(b, protocol=5)
    sub.subscribe("modbus/plc/#", 1)
    got = summaries(sub, "modbus/plc/a/1s", 2)
    assert all(set(g) == {"count", "max", "start"} and g["max"] == 7 and g["start"] % 1000 == 0 for g in got), got
    # Tag a answers with an exception from now on: counted as non_numeric,
    # its bad readings dropped; tag b's bad readings pass as they are.
    s.cmd("illegal 0 hr 0 1")
    s.cmd("illegal 0 hr 40 1")
    wait_for(lambda: any(p.get("non_numeric", 0) >= 1 and p["count"] == 0
                         for p in payloads(sub, "modbus/plc/a/1s")), 15, what="a window of exceptions")
    wait_for(lambda: any(p.get("non_numeric", 0) >= 1 and p["count"] == 0 and set(p) == {"start", "end",
                                                                                             "count", "non_numeric"}
                         for p in payloads(sub, "modbus/plc/b")), 15, what="a window of exceptions on b")
    assert not [p for p in payloads(sub, "modbus/plc/a") if "quality" in p]  # drop
    bad = [p for p in payloads(sub, "modbus/plc/b") if "quality" in p]
    assert bad and all(p["quality"] == "bad" and p["value"] is None and "exception 2" in p["error"] for p in bad)
    # Numbers again.
    s.cmd("clear 0")
    wait_for(lambda: payloads(sub, "modbus/plc/a/1s")[-1]["count"] > 0, 15, what="numbers again")


def test_empty_windows_skipped_or_counted(start_broker, client, sim):
    s = sim()
    tags = [("skip holding_register 0 uint16", ["tag_aggregate 1", "tag_aggregate_non_numeric drop"]),
            ("zero holding_register 1 uint16", ["tag_aggregate 1", "tag_aggregate_empty count",
                                                "tag_aggregate_non_numeric drop"])]
    b = start_broker(extra_lines=device_lines("plc", s.ports[0], tags, interval=100, extra=[
        "modbus_timeout 100", "modbus_offline_after 1", "modbus_restart_timeout 60000"]))
    sub = client(b, protocol=5)
    sub.subscribe("modbus/plc/#", 1)
    summaries(sub, "modbus/plc/zero", 2)
    s.cmd("mute 0 1")  # no more answers; offline after the first failure, no retry for a minute
    wait_for(lambda: len([p for p in payloads(sub, "modbus/plc/zero") if set(p) == {"count", "start", "end"}]) >= 3,
             15, what="windows without a reading, counted 0")
    empty = [p for p in payloads(sub, "modbus/plc/zero") if set(p) == {"count", "start", "end"}]
    assert all(p["count"] == 0 and p["end"] - p["start"] == 1000 for p in empty), empty
    starts = [p["start"] for p in payloads(sub, "modbus/plc/zero")]
    assert starts == sorted(set(starts))
    # skip: the windows after the offline one send nothing.
    last_skip = payloads(sub, "modbus/plc/skip")[-1]
    assert last_skip["start"] < empty[-1]["start"] - 1000, (last_skip, empty)
    s.cmd("mute 0 0")


def test_deadband_and_report_by_exception_see_every_poll(start_broker, client, sim):
    """Aggregation comes first: every poll is in the summary; the deadband
    and report by exception then decide which readings go out as well."""
    s = sim()
    s.cmd("seq 0 hr 0")
    s.set(0, "hr", 5, 42)
    tags = [("seq holding_register 0 uint16", ["tag_aggregate 1", "tag_aggregate_suffix /1s", "tag_deadband 5"]),
            ("flat holding_register 5 uint16", ["tag_aggregate 1", "tag_aggregate_suffix /1s",
                                                "tag_report_by_exception true"])]
    b = start_broker(extra_lines=device_lines("plc", s.ports[0], tags, interval=50))
    sub = client(b, protocol=5)
    sub.subscribe("modbus/plc/#", 1)
    got = summaries(sub, "modbus/plc/seq/1s", 4)
    check_chain(got)
    raw = [p["value"] for p in payloads(sub, "modbus/plc/seq")]
    assert len(raw) >= 4 and all(y - x >= 5 for x, y in zip(raw, raw[1:])), raw  # the deadband's moves
    counted = sum(g["count"] for g in got)
    assert len([v for v in raw if got[0]["first"] <= v <= got[-1]["last"]]) < counted / 4, (raw, counted)
    # The flat tag's first reading may have gone out before the subscription:
    # one change after it, published once, while every poll is counted.
    s.set(0, "hr", 5, 43)
    wait_for(lambda: len([g for g in payloads(sub, "modbus/plc/flat/1s") if g["first"] == 43]) >= 3, 15,
             what="three windows of 43")
    flat = [g for g in payloads(sub, "modbus/plc/flat/1s") if g["first"] == 43]
    assert all(g["min"] == g["max"] == g["mean"] == g["last"] == 43 and g["count"] >= 2 for g in flat), flat
    raw = [p["value"] for p in payloads(sub, "modbus/plc/flat")]
    assert raw in ([43], [42, 43]), raw  # by exception: each value once


def test_kill9_loses_at_most_the_open_window(start_broker, client, sim):
    """A persistent session takes the summaries; the broker is killed
    late in a window (its summaries before committed long since) and
    started again. Across the restart the reads missing from the summaries
    are at most one window's polls: the open window, nothing committed."""
    s = sim()
    s.cmd("seq 0 hr 0")
    tags = [("seq holding_register 0 uint16", ["tag_aggregate 1"])]
    b = start_broker(extra_lines=device_lines("plc", s.ports[0], tags, interval=100))
    sub = client(b, "historian", protocol=4, clean=False)
    sub.subscribe("modbus/plc/seq", 1)
    sub.disconnect()
    for cycle in range(2):
        if cycle:
            b.start()
        # Two windows closed (the summary of the last one 800 ms old), then most of the next one.
        t = time.time()
        wait_for(lambda: time.time() >= int(t) + 2.8, 5, what="late in a window")
        b.kill9()
    b.start()
    third_ms = time.time() * 1000
    sub = client(b, "historian", protocol=4, clean=False)
    got = []

    def enough():
        got[:] = [json.loads(m.payload) for m in sub.messages.snapshot()]
        return len(got) >= 4 and got[-1]["start"] >= third_ms
    wait_for(enough, 30, what="the summaries of both runs and the third")
    gaps = 0
    for a, c in zip(got, got[1:]):
        assert c["start"] > a["start"] and c["start"] % 1000 == 0, (a, c)  # no window twice
        assert c["count"] == c["last"] - c["first"] + 1, c
        missing = c["first"] - a["last"] - 1
        if missing:
            gaps += 1
            assert 0 < missing <= 11, (a, c)  # the open window's polls at 10 a second, no more
    assert gaps <= 2, got  # one per kill
    sub.stop()


ACL = """topic read #

user collector
topic write modbus/plc/+
"""


def test_summaries_pass_the_collectors_acl(start_broker, client, sim, tmp_path):
    """A summary enters through the same admission as every reading: here the
    ACL lets the readings through, not the summaries' topic."""
    s = sim()
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    tags = [("ok holding_register 0 uint16", ["tag_aggregate 1"]),
            ("denied holding_register 1 uint16", ["tag_aggregate 1", "tag_aggregate_suffix /1s"])]
    b = ops_broker(start_broker, tmp_path, acl_file=str(acl),
                   extra_lines=device_lines("plc", s.ports[0], tags, interval=100,
                                            extra=["modbus_username collector"]))
    sub = client(b, protocol=5)
    sub.subscribe("modbus/plc/#", 1)
    summaries(sub, "modbus/plc/ok", 2)
    dev = wait_for(lambda: (lambda d: d if d["readings_refused"] >= 2 else None)(api(b, "GET", "/api/devices")[0]),
                   10, what="refused summaries")
    assert dev["readings_committed"] >= 2, dev
    b.wait_log(r"modbus device plc: \d+ of \d+ messages refused .*username collector")
    assert not [m for m in sub.messages.snapshot() if m.topic.startswith("modbus/plc/denied")]


@pytest.mark.parametrize("text,line,why", [
    ("tag_aggregate 0", 5, "'0' is not a number in 1..86400"),
    ("tag_aggregate 1\ntag_aggregate_stats count,avg", 6, "invalid value 'count,avg'"),
    ("tag_aggregate 1\ntag_aggregate_empty none", 6, "expected skip|count"),
    ("tag_aggregate 1\ntag_aggregate_non_numeric keep", 6, "expected pass|drop"),
    ("tag_aggregate 1\ntag_aggregate_suffix 1m", 4, "must start with /"),
    ("tag_aggregate 1\ntag_aggregate_suffix /set", 4, "not /set"),
    ("tag_unit C\ntag_aggregate_stats count", 4, "need tag_aggregate"),
])
def test_check_config_names_the_line(tmp_path, text, line, why):
    conf = tmp_path / "c.conf"
    conf.write_text("listener 18830\nmodbus_device a\nmodbus_address h\n"
                    "modbus_tag x holding_register 0 int16\n" + text + "\n")
    r = subprocess.run([broker_bin(), "--check-config", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 1 and why in r.stderr, r.stderr
    assert r.stderr.startswith("%s:%d: " % (conf, line)), r.stderr
    conf.write_text("listener 18830\nmodbus_device a\nmodbus_address h\nmodbus_tag s holding_register 0 string:2\n"
                    "tag_aggregate 1\n")
    r = subprocess.run([broker_bin(), "--check-config", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith("%s:4: " % conf) and "string tag" in r.stderr, r.stderr
