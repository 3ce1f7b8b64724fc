"""The Sparkplug fleet view (issue 17 #2, sparkplug_aware): groups, edge
nodes, devices and host applications from the births, deaths, bdSeq, seq
and STATE the broker routes; GET /api/sparkplug, ferromq-ctl sparkplug, the
dashboard's fleet table (Chromium), /metrics, and the sparkplug_node_offline
alert. Tests name the Sparkplug 3.0 requirement (tck-id-...) they lean on."""
import json
import os
import subprocess

import pytest

import mqttraw as M
import sparkplug_pb as S
from conftest import connect_raw, wait_for
from opshttp import api, metrics, ops_broker

CTL = os.environ.get("FERROMQ_CTL") or os.path.join(S.REPO, "build", "ferromq-ctl")


def fleet(b):
    return api(b, "GET", "/api/sparkplug")


def node(f, group, edge):
    return next((n for n in f["edge_nodes"] if (n["group"], n["edge_node"]) == (group, edge)), None)


def device(f, group, edge, dev):
    return next((d for d in f["devices"] if (d["group"], d["edge_node"], d["device"]) == (group, edge, dev)),
                None)


def ctl(b, *args):
    r = subprocess.run([CTL, "--url", "http://127.0.0.1:%d" % b.http_port, "--token-file", b.token_path]
                       + list(args), capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if not k.startswith("FERROMQ_")})
    assert r.returncode == 0, r.stderr
    return r.stdout


def birth(edge_raw, group, edge, bdseq, devices=(), pid=1):
    edge_raw.publish(S.topic(group, "NBIRTH", edge), S.nbirth(bdseq=bdseq, n_metrics=3), qos=1, pid=pid)
    for i, d in enumerate(devices):
        edge_raw.publish(S.topic(group, "DBIRTH", edge, d),
                         S.payload(seq=i + 1, metrics=[("temp", 1, S.pb().Double, 1.0)]), qos=1, pid=pid + 1 + i)


def test_tck_bdseq_matching_stale_ndeath_changes_nothing(start_broker, raw, tmp_path):
    """tck-id-message-flow-edge-node-birth-publish-will-message-payload-bdSeq,
    tck-id-operational-behavior-edge-node-termination-host-action-ndeath-node-offline,
    -ndeath-devices-offline: an NDEATH whose bdSeq is not the current NBIRTH's
    (the will of an earlier session, late) changes nothing; the matching one
    takes the node and its devices offline, over HTTP and in ferromq-ctl."""
    b = ops_broker(start_broker, tmp_path, sparkplug_aware=True)
    edge = connect_raw(raw, b, "edge-1", 5)
    birth(edge, "plant1", "edge-1", bdseq=5, devices=["plc-1", "plc-2"])
    f = fleet(b)
    assert f["aware"] and f["namespace"] == S.NS
    n = node(f, "plant1", "edge-1")
    assert n["online"] and n["bdseq"] == 5 and n["metrics"] == 4 and n["births"] == 1  # with bdSeq
    assert n["since"] is not None and n["last_birth"] is not None
    assert device(f, "plant1", "edge-1", "plc-1")["online"]
    assert device(f, "plant1", "edge-1", "plc-2")["metrics"] == 1
    # The previous session's will (bdSeq 4) arrives after the new birth.
    other = connect_raw(raw, b, "late-will", 5)
    other.publish(S.topic("plant1", "NDEATH", "edge-1"), S.ndeath(4), qos=1)
    f = fleet(b)
    n = node(f, "plant1", "edge-1")
    assert n["online"] and n["stale_deaths"] == 1 and n["deaths"] == 0
    assert device(f, "plant1", "edge-1", "plc-1")["online"]
    b.wait_log(r"edge node plant1/edge-1: NDEATH of bdSeq 4 ignored")
    out = ctl(b, "sparkplug")
    assert "1 of 1 edge nodes online, 2 of 2 devices" in out, out
    # Its own death.
    other.publish(S.topic("plant1", "NDEATH", "edge-1"), S.ndeath(5), qos=1, pid=2)
    f = fleet(b)
    n = node(f, "plant1", "edge-1")
    assert not n["online"] and n["deaths"] == 1
    assert not device(f, "plant1", "edge-1", "plc-1")["online"]
    assert not device(f, "plant1", "edge-1", "plc-2")["online"]
    assert f["totals"]["edge_nodes_offline"] == 1 and f["totals"]["edge_node_deaths"] == 1
    b.wait_log(r"notice: sparkplug: edge node plant1/edge-1 died \(NDEATH, bdSeq 5\)")
    out = ctl(b, "sparkplug")
    assert "0 of 1 edge nodes online, 0 of 2 devices" in out, out
    lines = [l for l in out.splitlines() if l.startswith("plant1")]
    assert any("edge-1" in l and " no " in l for l in lines), out
    assert sum("plc-" in l for l in lines) == 2, out
    # A new session: online again.
    birth(edge, "plant1", "edge-1", bdseq=6, pid=10)
    n = node(fleet(b), "plant1", "edge-1")
    assert n["online"] and n["bdseq"] == 6 and n["births"] == 2


def test_tck_will_ndeath_fires_the_alert(start_broker, raw, tmp_path):
    """tck-id-operational-behavior-edge-node-termination-host-action-ndeath-node-offline:
    an edge node whose link dies has its NDEATH will published; the fleet
    marks it offline and sparkplug_node_offline fires (log, /api/status,
    $SYS, /metrics), clearing after the node is born again."""
    b = ops_broker(start_broker, tmp_path, sparkplug_aware=True, alert_clear_after=1)
    watch = connect_raw(raw, b, "watch", 4)
    watch.subscribe([("$SYS/broker/alerts/sparkplug_node_offline", 0)])
    t = S.topic("g", "NDEATH", "e1")
    edge = connect_raw(raw, b, "e1", 4, will=dict(topic=t, payload=S.ndeath(7), qos=1))
    birth(edge, "g", "e1", bdseq=7, devices=["d"])
    wait_for(lambda: metrics(b).get('ferromq_sparkplug_edge_nodes{state="online"}') == 1, 5, what="metric")
    edge.close()
    b.wait_log(r"warning: alert sparkplug_node_offline firing: value 1.0 above threshold 0.0; edge nodes g/e1 "
               r"\(since \d{4}-", timeout=10)
    st = next(a for a in api(b, "GET", "/api/status")["alerts"] if a["name"] == "sparkplug_node_offline")
    assert st["state"] == "firing" and st["edge_nodes"] == ["g/e1"], st
    m = metrics(b)
    assert m['ferromq_alert_firing{name="sparkplug_node_offline"}'] == 1
    assert m['ferromq_sparkplug_edge_nodes{state="offline"}'] == 1
    assert m['ferromq_sparkplug_devices{state="offline"}'] == 1
    assert m["ferromq_sparkplug_edge_node_deaths_total"] == 1
    wait_for(lambda: any(b'"firing"' in p.payload for p in watch.quiet(0.3) if p.type == M.PUBLISH), 10,
             what="$SYS alert")
    edge = connect_raw(raw, b, "e1", 4)
    birth(edge, "g", "e1", bdseq=8)
    b.wait_log("notice: alert sparkplug_node_offline cleared", timeout=10)


def test_seq_gaps_counted_per_edge_node(start_broker, raw, tmp_path):
    """tck-id-payloads-sequence-num-incrementing: every message of an edge
    node after its NBIRTH carries the next seq (mod 256); a jump is a gap,
    counted on that node only."""
    b = ops_broker(start_broker, tmp_path, sparkplug_aware=True)
    edge = connect_raw(raw, b, "e", 4)
    edge.publish(S.topic("g", "NBIRTH", "a"), S.nbirth(bdseq=0, seq=0), qos=1)
    edge.publish(S.topic("g", "NBIRTH", "b"), S.nbirth(bdseq=0, seq=0), qos=1)
    for seq in (1, 2, 4, 5, 9):  # 3 and 6..8 lost: two gaps
        edge.publish(S.topic("g", "NDATA", "a"), S.payload(seq=seq), qos=1)
    for seq in (1, 2, 3):
        edge.publish(S.topic("g", "DDATA", "b", "d"), S.payload(seq=seq), qos=1)
    f = fleet(b)
    assert node(f, "g", "a")["seq_gaps"] == 2
    assert node(f, "g", "b")["seq_gaps"] == 0
    assert f["totals"]["seq_gaps"] == 2
    wait_for(lambda: metrics(b).get("ferromq_sparkplug_seq_gaps_total") == 2, 5, what="the sample")
    assert "SEQ GAPS" in ctl(b, "sparkplug")


def test_tck_host_applications_from_state(start_broker, raw, tmp_path):
    """tck-id-operational-behavior-host-application-connect-birth-payload,
    -death-payload: host applications are known from their STATE, online
    and offline; an older STATE than the last is ignored."""
    b = ops_broker(start_broker, tmp_path, sparkplug_aware=True)
    t = S.NS + "/STATE/scada"
    ts = S.now_ms()
    host = connect_raw(raw, b, "scada", 5, will=dict(topic=t, payload=S.state(False, ts), qos=1, retain=True))
    host.publish(t, S.state(True, ts), qos=1, retain=True)
    h = fleet(b)["host_applications"]
    assert [(x["host_id"], x["online"]) for x in h] == [("scada", True)]
    other = connect_raw(raw, b, "other", 5)
    other.publish(t, S.state(False, ts - 1000), qos=1)  # older: ignored
    assert fleet(b)["host_applications"][0]["online"]
    host.close()
    wait_for(lambda: not fleet(b)["host_applications"][0]["online"], 5, what="host offline")
    assert "scada" in ctl(b, "sparkplug")
    wait_for(lambda: metrics(b).get('ferromq_sparkplug_host_applications{state="offline"}') == 1, 5,
             what="the sample")


def test_fleet_is_bounded(start_broker, raw, tmp_path):
    """sparkplug_fleet_max: past it new nodes are routed but not tracked,
    counted (untracked) and logged; the ones tracked stay."""
    b = ops_broker(start_broker, tmp_path, sparkplug_aware=True, sparkplug_fleet_max=2)
    host = connect_raw(raw, b, "host", 4)
    host.subscribe([(S.NS + "/#", 1)])
    edge = connect_raw(raw, b, "e", 4)
    for i, e in enumerate(("a", "b", "c")):
        edge.publish(S.topic("g", "NBIRTH", e), S.nbirth(bdseq=i), qos=1, pid=i + 1)
    got = {host.expect(M.PUBLISH).topic for _ in range(3)}
    assert S.topic("g", "NBIRTH", "c") in got
    f = fleet(b)
    assert [n["edge_node"] for n in f["edge_nodes"]] == ["a", "b"]
    assert f["totals"]["untracked"] == 1 and f["totals"]["max"] == 2
    b.wait_log(r"warning: sparkplug: the fleet view is full \(sparkplug_fleet_max 2 entries\)")
    wait_for(lambda: metrics(b).get("ferromq_sparkplug_untracked_total") == 1, 5, what="the sample")


def test_malformed_sparkplug_messages_are_routed_and_counted(start_broker, raw, tmp_path):
    """Bad input under the namespace never stops the broker: a payload that is
    not protobuf or a topic that is not Sparkplug's is routed as it is, not
    copied, and counted."""
    b = ops_broker(start_broker, tmp_path, sparkplug_aware=True)
    host = connect_raw(raw, b, "host", 4)
    host.subscribe([(S.NS + "/#", 1), ("$sparkplug/#", 1)])
    edge = connect_raw(raw, b, "e", 4)
    edge.publish(S.topic("g", "NBIRTH", "e"), b"\x12\x09garbage", qos=1)
    edge.publish(S.NS + "/g/NOTATYPE/e", b"x", qos=1, pid=2)
    edge.publish(S.NS + "/g/NDATA", b"x", qos=1, pid=3)
    got = [host.expect(M.PUBLISH).topic for _ in range(3)]
    assert not any(t.startswith("$sparkplug") for t in got), got
    assert [p for p in host.quiet(0.3) if p.type == M.PUBLISH] == []
    f = fleet(b)
    assert f["totals"]["malformed"] == 3 and f["edge_nodes"] == []


def test_fleet_api_without_aware(start_broker, tmp_path):
    """Not aware: the endpoint says so, empty; ferromq-ctl shows it; no
    sparkplug series in /metrics."""
    b = ops_broker(start_broker, tmp_path)
    f = fleet(b)
    assert f["aware"] is False and f["edge_nodes"] == [] and f["host_applications"] == []
    assert "not Sparkplug aware (sparkplug_aware false)" in ctl(b, "sparkplug")
    assert not any(k.startswith("ferromq_sparkplug_") for k in metrics(b))
    r = subprocess.run([CTL, "--help"], capture_output=True, text=True)
    assert "sparkplug" in r.stdout + r.stderr


FLEET_SCRIPT = r"""
const { chromium } = require('playwright-core');
const [exe, url, shot] = process.argv.slice(1);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
(async () => {
  const browser = await chromium.launch({ executablePath: exe,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  await page.goto(url);
  await page.waitForSelector('#sparkplug tr.spb-node.spb-offline[data-node="plantA/dead"]', { timeout: 20000 });
  await page.waitForSelector('#sparkplug tr.spb-node.spb-online[data-node="plantA/live"]', { timeout: 20000 });
  await page.waitForSelector('.alert.firing[data-name="sparkplug_node_offline"]', { timeout: 20000 });
  const rows = await page.evaluate(() => Array.from(document.querySelectorAll('#sparkplug tr')).map((tr) => ({
    cls: tr.className, group: tr.dataset.group, node: tr.dataset.node, device: tr.dataset.device,
    state: tr.dataset.state, cells: Array.from(tr.children).map((td) => td.textContent) })));
  const hosts = await page.evaluate(() => Array.from(document.querySelectorAll('#sparkplug-hosts tr'))
    .map((tr) => [tr.dataset.host, tr.className]));
  const summary = await page.textContent('#sparkplug-summary');
  const hidden = await page.evaluate(() => document.getElementById('sparkplug-section').hidden);
  const alert = await page.textContent('.alert.firing[data-name="sparkplug_node_offline"]');
  await page.screenshot({ path: shot, fullPage: true });
  say({ rows, hosts, summary, hidden, alert, problems });
  await browser.close();
})().catch((e) => { say({ error: String(e && e.stack || e) }); process.exit(1); });
"""


def test_dashboard_shows_the_fleet(start_broker, raw, tmp_path):
    """The dashboard's fleet table in headless Chromium: groups, then their
    edge nodes with their devices under them, offline ones marked, the host
    applications, and the alert naming the dead node."""
    from browser import chromium_bin, npm_package
    import shutil
    chromium = chromium_bin()
    if not chromium:
        pytest.skip("chromium is not installed (Debian package chromium; `make deps` installs it)")
    if not shutil.which("npm") or not shutil.which("node"):
        pytest.skip("node and npm are needed for playwright-core (Debian packages nodejs and npm)")
    node_path = npm_package("playwright-core", "1.61.1")
    b = ops_broker(start_broker, tmp_path, sparkplug_aware=True)
    edge = connect_raw(raw, b, "edges", 5)
    birth(edge, "plantA", "live", bdseq=1, devices=["plc-1"])
    birth(edge, "plantA", "dead", bdseq=2, devices=["plc-9"], pid=20)
    birth(edge, "plantB", "other", bdseq=3, pid=30)
    edge.publish(S.topic("plantA", "NDEATH", "dead"), S.ndeath(2), qos=1, pid=40)
    edge.publish(S.NS + "/STATE/scada", S.state(True), qos=1, retain=True, pid=41)
    shot = str(tmp_path / "dashboard-sparkplug.png")
    proc = subprocess.run(["node", "-e", FLEET_SCRIPT, chromium,
                           "http://127.0.0.1:%d/?token=%s" % (b.http_port, b.token), shot],
                          capture_output=True, text=True, timeout=90, env=dict(os.environ, NODE_PATH=node_path))
    said = json.loads(proc.stdout.splitlines()[-1]) if proc.stdout else {"error": proc.stderr[-3000:]}
    assert "error" not in said, said["error"]
    print("dashboard screenshot: %s" % shot)
    assert not said["problems"] and not said["hidden"], said
    shape = [(r.get("group") or r.get("node") or r.get("device"), r.get("state")) for r in said["rows"]]
    assert shape == [("plantA", None), ("plantA/dead", "offline"), ("plantA/dead/plc-9", "offline"),
                     ("plantA/live", "online"), ("plantA/live/plc-1", "online"),
                     ("plantB", None), ("plantB/other", "online")], shape
    dead = next(r for r in said["rows"] if r.get("node") == "plantA/dead")
    assert dead["cells"][0] == "dead" and dead["cells"][1] == "offline" and dead["cells"][5] == "2", dead
    assert said["hosts"] == [["scada", "spb-host spb-online"]], said["hosts"]
    assert "2 of 3 edge nodes online" in said["summary"], said["summary"]
    assert "plantA/dead" in said["alert"], said["alert"]
