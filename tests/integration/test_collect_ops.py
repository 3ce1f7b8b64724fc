"""Modbus devices in operations (issue 16 #6) and the durability of their
readings (#7): per-device series in /metrics, GET /api/devices, ferromq-ctl
devices, the device_offline alert, and kill -9 of the broker while collecting
losing no reading that was committed (the test device numbers its readings)."""
import json
import os
import random
import subprocess
import time

import pytest

from collect_sim import device_lines, reading, sim  # noqa: F401  (fixture)
from conftest import REPO, Client, wait_for
from opshttp import api, metrics, ops_broker

CTL = os.environ.get("FERROMQ_CTL") or os.path.join(REPO, "build", "ferromq-ctl")


def devices(b):
    return {d["name"]: d for d in api(b, "GET", "/api/devices")}


def test_metrics_api_ctl_and_the_offline_alert(start_broker, client, sim, tmp_path):
    s = sim(devices=2)
    s.set(0, "hr", 0, 5)
    lines = device_lines("press-1", s.ports[0], ["t holding_register 0 uint16"], interval=100)
    lines += device_lines("press-2", s.ports[1], ["t holding_register 0 uint16", "bad holding_register 9999 int32"],
                          interval=100, extra=["modbus_timeout 200", "modbus_offline_after 2",
                                               "modbus_restart_timeout 100 200"])
    b = ops_broker(start_broker, tmp_path, extra_lines=lines, alert_clear_after=0)
    watch = client(b, "alert-watch")
    watch.subscribe("$SYS/broker/alerts/device_offline", 0)
    wait_for(lambda: all(d["state"] == "online" and d["readings_committed"] > 3 for d in devices(b).values()), 15,
             what="both devices online with readings")
    d = devices(b)["press-2"]
    assert d["address"] == "127.0.0.1:%d" % s.ports[1] and d["unit_id"] == 1 and d["tags"] == 2
    assert d["topic_prefix"] == "modbus/press-2" and d["requests_per_round"] == 2
    assert d["exceptions"] > 0 and d["request_ms"]["p99"] is not None and d["last_success"] > 1_600_000_000
    m = metrics(b)
    assert m['ferromq_device_up{device="press-1"}'] == 1
    assert m['ferromq_device_polls_total{device="press-1"}'] > 0
    assert m['ferromq_device_readings_committed_total{device="press-1"}'] > 0
    assert m['ferromq_device_exceptions_total{device="press-2"}'] > 0
    assert m['ferromq_device_request_duration_seconds_count{device="press-1"}'] > 0
    assert m['ferromq_device_poll_to_commit_seconds_bucket{device="press-1",le="+Inf"}'] > 0
    assert m['ferromq_device_poll_jitter_seconds_bucket{device="press-1",le="+Inf"}'] > 0
    assert m['ferromq_device_last_success_timestamp_seconds{device="press-1"}'] > 1_600_000_000
    assert m['ferromq_alert_firing{name="device_offline"}'] == 0
    # The broker's own counts move with the readings.
    assert m["ferromq_messages_received_total"] >= m['ferromq_device_readings_total{device="press-1"}']

    r = subprocess.run([CTL, "--url", "http://127.0.0.1:%d" % b.http_port, "--token-file", b.token_path,
                        "devices"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    head, *rows = r.stdout.splitlines()
    assert head.split()[:3] == ["DEVICE", "STATE", "ADDRESS"], r.stdout
    assert any(row.startswith("press-1") and " online " in row for row in rows), r.stdout

    s.cmd("mute 1 1")
    msg = watch.messages.wait_match(lambda m: json.loads(m.payload)["state"] == "firing", timeout=15)
    assert json.loads(msg.payload)["value"] == 1
    b.wait_log(r"warning: alert device_offline firing: value 1.0 above threshold 0.0; devices press-2 \(read: ")
    st = next(a for a in api(b, "GET", "/api/status")["alerts"] if a["name"] == "device_offline")
    assert st["state"] == "firing" and st["devices"] == ["press-2"], st
    wait_for(lambda: metrics(b)['ferromq_device_up{device="press-2"}'] == 0, 10, what="press-2 down in /metrics")
    d = devices(b)["press-2"]
    assert d["state"] == "offline" and d["offline_episodes"] == 1 and d["polls_failed"] > 0 and d["last_error"]
    assert devices(b)["press-1"]["state"] == "online"
    r = subprocess.run([CTL, "--url", "http://127.0.0.1:%d" % b.http_port, "--token-file", b.token_path,
                        "--json", "devices"], capture_output=True, text=True, timeout=30)
    assert {x["name"]: x["state"] for x in json.loads(r.stdout)} == {"press-1": "online", "press-2": "offline"}

    s.cmd("mute 1 0")
    watch.messages.wait_match(lambda m: json.loads(m.payload)["state"] == "ok", timeout=15)
    b.wait_log("notice: alert device_offline cleared")
    assert devices(b)["press-2"]["state"] == "online"


def test_kill9_while_collecting_loses_no_committed_reading(start_broker, client, sim, tmp_path):
    """The device numbers its readings (the register counts its reads); a
    persistent session takes them while offline. Before each kill -9 the test
    reads how many readings the broker had committed: each of them must reach
    the session after the restarts."""
    s = sim()
    s.set(0, "hr", 0, 1000)
    tag = ("seq holding_register 0 uint32 cdab", ["tag_report_by_exception true"])
    s.set(0, "hr", 0, 1000, 0)  # 1000 in cdab: low word first
    b = ops_broker(start_broker, tmp_path, extra_lines=device_lines("plc", s.ports[0], [tag], interval=10))
    sub = client(b, "historian", protocol=4, clean=False)
    sub.subscribe("modbus/plc/seq", 1)
    sub.disconnect()
    s.cmd("seq 0 hr 0")  # from now on every read counts up (values < 65536: the low word)
    must = set()
    rng = random.Random(16)
    for cycle in range(3):
        start = s.get(0, "hr", 0, 1)[0]
        if cycle:
            b.start()
            wait_for(lambda: api(b, "GET", "/api/devices")[0]["state"] == "online", 15, what="collecting")
        deadline = time.monotonic() + 0.5 + rng.random() * 1.5
        committed = 0
        while time.monotonic() < deadline:
            committed = max(committed, api(b, "GET", "/api/devices")[0]["readings_committed"])
        assert committed > 0
        b.kill9()
        # Cycle 0: the first reading (1000) may predate the seq; after that
        # every reading is one more than the one before.
        first = start if cycle else 1000
        must |= set(range(first + (0 if cycle else 1), first + committed))
    b.start()
    sub = client(b, "historian", protocol=4, clean=False)
    got = set()

    def drained():
        got.update(reading(m)["value"] for m in sub.messages.snapshot() if reading(m)["quality"] == "good")
        return must <= got
    wait_for(drained, 30, what="every committed reading")
    print("committed readings checked: %d, received: %d" % (len(must), len(got)))
    assert len(must) > 10, must


DEVICES_SCRIPT = r"""
const { chromium } = require('playwright-core');
const [exe, url, shot] = process.argv.slice(1);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
(async () => {
  const browser = await chromium.launch({ executablePath: exe,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  await page.goto(url);
  await page.waitForSelector('#devices tr.device-offline[data-name="dead"]', { timeout: 20000 });
  await page.waitForSelector('#devices tr.device-online[data-name="live"]', { timeout: 20000 });
  await page.waitForSelector('.alert.firing[data-name="device_offline"]', { timeout: 20000 });
  const rows = await page.evaluate(() => Array.from(document.querySelectorAll('#devices tr')).map((tr) => ({
    name: tr.dataset.name, state: tr.dataset.state,
    cells: Array.from(tr.children).map((td) => td.textContent) })));
  const hidden = await page.evaluate(() => document.getElementById('devices-section').hidden);
  const alert = await page.textContent('.alert.firing[data-name="device_offline"]');
  await page.screenshot({ path: shot, fullPage: true });
  say({ rows, hidden, alert, problems });
  await browser.close();
})().catch((e) => { say({ error: String(e && e.stack || e) }); process.exit(1); });
"""


def test_dashboard_shows_devices_and_their_state(start_broker, sim, tmp_path):
    from browser import chromium_bin, npm_package
    import shutil
    browser = chromium_bin()
    if not browser:
        pytest.skip("chromium is not installed (Debian package chromium; `make deps` installs it)")
    if not shutil.which("npm") or not shutil.which("node"):
        pytest.skip("node and npm are needed for playwright-core (Debian packages nodejs and npm)")
    node_path = npm_package("playwright-core", "1.61.1")
    s = sim(devices=2)
    s.cmd("mute 1 1")
    lines = device_lines("live", s.ports[0], ["t holding_register 0 uint16"], interval=200)
    lines += device_lines("dead", s.ports[1], ["t holding_register 0 uint16"], interval=200,
                          extra=["modbus_timeout 100", "modbus_offline_after 1"])
    b = ops_broker(start_broker, tmp_path, extra_lines=lines)
    shot = str(tmp_path / "dashboard-devices.png")
    proc = subprocess.run(["node", "-e", DEVICES_SCRIPT, browser,
                           "http://127.0.0.1:%d/?token=%s" % (b.http_port, b.token), shot],
                          capture_output=True, text=True, timeout=90, env=dict(os.environ, NODE_PATH=node_path))
    said = json.loads(proc.stdout.splitlines()[-1]) if proc.stdout else {"error": proc.stderr[-3000:]}
    assert "error" not in said, said["error"]
    print("dashboard screenshot: %s" % shot)
    assert not said["problems"] and not said["hidden"], said
    rows = said["rows"]
    assert [(r["name"], r["state"]) for r in rows] == [("dead", "offline"), ("live", "online")], rows
    assert rows[0]["cells"][0] == "dead (127.0.0.1:%d)" % s.ports[1] and rows[0]["cells"][1] == "offline"
    assert rows[0]["cells"][-1].startswith("read: "), rows[0]
    assert "dead" in said["alert"], said["alert"]


def test_readings_pass_the_acl_of_modbus_username(start_broker, client, sim, tmp_path):
    """One admission path: a device whose user may not publish under its
    prefix has its readings refused (counted, logged once), like a client's;
    the other device's user may."""
    s = sim(devices=2)
    acl = tmp_path / "acl"
    acl.write_text("user good\ntopic write plant/good/#\n\nuser reader\ntopic read #\n")
    lines = device_lines("good", s.ports[0], ["t holding_register 0 uint16"], interval=100,
                         extra=["modbus_username good", "modbus_topic_prefix plant/good"])
    lines += device_lines("nosy", s.ports[1], ["t holding_register 0 uint16"], interval=100,
                          extra=["modbus_username good", "modbus_topic_prefix plant/other"])
    b = ops_broker(start_broker, tmp_path, acl_file=str(acl), extra_lines=lines)
    wait_for(lambda: devices(b)["nosy"]["readings_refused"] > 5 and devices(b)["good"]["readings_committed"] > 5,
             15, what="readings of both")
    d = devices(b)["nosy"]
    assert d["readings_committed"] == 0 and d["state"] == "online", d
    assert b.log_text().count("modbus device nosy: ") >= 1
    assert len([l for l in b.log_text().splitlines() if "modbus device nosy:" in l and "refused" in l]) == 1
    assert "client id modbus/nosy, username good): not authorized" in b.log_text()
    # Counted as every refused message is (the workers' counts reach the sampler a moment later).
    wait_for(lambda: metrics(b)['ferromq_dropped_messages_total{reason="not_authorized"}'] >= d["readings_refused"],
             10, what="the refusals in ferromq_dropped_messages_total")


def test_polls_keep_to_the_clock_and_late_ones_are_counted_not_queued(start_broker, sim, tmp_path):
    """A device that answers in 250 ms, polled every 100 ms: a poll that cannot
    start on time is counted late and skipped; once it answers at once again
    the polls go on at their pace, with no burst of the missed ones."""
    s = sim()
    s.cmd("seq 0 hr 0")
    b = ops_broker(start_broker, tmp_path,
                   extra_lines=device_lines("slow", s.ports[0], ["n holding_register 0 uint16"], interval=100))
    wait_for(lambda: devices(b)["slow"]["polls"] >= 5, 15, what="polls")
    s.cmd("delay 0 250")
    reads0, t0 = s.get(0, "hr", 0, 1)[0], time.monotonic()
    wait_for(lambda: devices(b)["slow"]["polls_late"] >= 10, 20, what="late polls")
    reads1, t1 = s.get(0, "hr", 0, 1)[0], time.monotonic()
    # One read per 250 ms at most: the late ones were not sent afterwards.
    assert reads1 - reads0 <= (t1 - t0) / 0.25 + 2, (reads1 - reads0, t1 - t0)
    s.cmd("delay 0 0")
    d0 = devices(b)["slow"]
    reads2, t2 = s.get(0, "hr", 0, 1)[0], time.monotonic()
    time.sleep(1.5)  # the pace itself is what is measured here
    reads3, t3 = s.get(0, "hr", 0, 1)[0], time.monotonic()
    assert reads3 - reads2 <= (t3 - t2) / 0.1 + 2, (reads3 - reads2, t3 - t2)
    d1 = devices(b)["slow"]
    assert d1["polls_late"] >= d0["polls_late"] and d1["state"] == "online"
