"""Cluster operations on three brokers on loopback (tests/ha/halib.py: each
node its own ports, data directory and log; the raft links go through its
fault proxy): /api/cluster, /readyz, /metrics and $SYS on the leader and on
followers; ferromq-ctl cluster, transfer, remove and add (a fourth node
that joins), a follower naming the leader, bad bodies; cluster_no_leader
firing on a node left alone."""
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ha"))
import halib  # noqa: E402
from conftest import REPO, free_port, wait_for  # noqa: E402

CTL = os.environ.get("FERROMQ_CTL") or os.path.join(REPO, "build", "ferromq-ctl")


@pytest.fixture
def cluster(tmp_path):
    made = []

    def make(n=3, **kw):
        c = halib.BrokerCluster(tmp_path / ("brokers%d" % len(made)), n, **kw)
        made.append(c)
        c.start()
        return c

    yield make
    problems = []
    for c in made:
        problems += c.shutdown()
    assert not problems, "\n".join(problems) + "\n" + "\n".join(c.report() for c in made)


def token(node):
    return node.cluster.token  # halib's http_token_file, the same for every node


def http(node, method, path, body=None):
    """(status, body text) of a request to node's HTTP API, or (None, why)."""
    req = urllib.request.Request("http://%s:%d%s" % (node.host, node.http_port, path), method=method,
                                 data=body.encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + token(node),
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def status(node):
    code, text = http(node, "GET", "/api/cluster")
    return json.loads(text) if code == 200 else None


def ctl(node, *args, wait=None):
    cmd = [CTL, "--url", "http://%s:%d" % (node.host, node.http_port), "--token", token(node)]
    if wait:
        cmd += ["--wait", str(wait)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERROMQ_")}
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=90, env=env)


def metrics(node):
    code, text = http(node, "GET", "/metrics")
    assert code == 200, text
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines()
                                     if line and not line.startswith("#"))}


def settled(c, leader):
    """Waits until every running node knows leader and its /api/cluster
    answers; returns {id: status}."""
    def all_know():
        out = {}
        for n in c.running():
            st = status(n)
            if not st or st.get("leader_id") != leader.id:
                return None
            out[n.id] = st
        lst = out.get(leader.id)
        # The leader knows every peer's match index.
        if not lst or lst["state"] != "leader" or any(p["lag"] is None for p in lst["peers"]):
            return None
        return out
    got = wait_for(all_know, timeout=30, interval=0.1, what="every node to know the leader")
    return got


def sys_cluster(node, want):
    """The retained $SYS/broker/cluster/# payloads on node once every topic
    of want is there: {topic: payload}."""
    import paho.mqtt.client as mqtt
    got = {}
    c = mqtt.Client(client_id="sys-cluster", protocol=mqtt.MQTTv311)
    c.on_message = lambda cl, u, m: got.__setitem__(m.topic, m.payload.decode())
    c.on_connect = lambda cl, u, f, rc: cl.subscribe("$SYS/broker/cluster/#")
    c.connect(node.host, node.port)
    c.loop_start()
    try:
        return wait_for(lambda: dict(got) if want <= set(got) else None, timeout=10, what="$SYS cluster topics")
    finally:
        c.disconnect()
        c.loop_stop()


def test_status_everywhere(cluster):
    c = cluster()
    leader = c.wait_leader(timeout=30)
    assert leader, c.report()
    st = settled(c, leader)
    lst = st[leader.id]
    assert lst["cluster"] is True and lst["role"] == "broker" and lst["serving"] is True
    assert lst["not_ready"] is None and lst["node_id"] == leader.id
    assert lst["term"] >= 1 and lst["commit_index"] >= 1 and lst["applied_index"] <= lst["last_index"]
    assert sorted(p["id"] for p in lst["peers"]) == sorted(n.id for n in c.nodes.values() if n is not leader)
    for p in lst["peers"]:
        assert p["voter"] is True and p["match_index"] is not None and p["lag"] >= 0
    assert lst["leader_address"] == "%s:%d" % (leader.host, leader.cluster_port)
    followers = [n for n in c.nodes.values() if n is not leader]
    for f in followers:
        fst = st[f.id]
        assert fst["state"] == "follower" and fst["serving"] is False
        want = "follower: the leader is node %d at %s" % (leader.id, fst["leader_address"])
        assert fst["not_ready"] == want
        assert all(p["lag"] is None for p in fst["peers"])
        code, text = http(f, "GET", "/readyz")
        assert (code, text) == (503, want + "\n")
    assert http(leader, "GET", "/readyz") == (200, "ready\n")

    # /metrics: the node's state, the leader, each peer's lag on the leader.
    m = wait_for(lambda: (lambda m: m if m.get('ferromq_cluster_state{state="leader"}') == 1 else None)(
        metrics(leader)), timeout=10, what="the leader's cluster metrics")
    assert m["ferromq_cluster_leader_id"] == leader.id
    assert m["ferromq_cluster_term"] == lst["term"] or m["ferromq_cluster_term"] >= lst["term"]
    for f in followers:
        assert 'ferromq_cluster_peer_lag{peer="%d"}' % f.id in m
    assert m['ferromq_alert_firing{name="cluster_peer_lag"}'] == 0
    assert m['ferromq_alert_firing{name="cluster_no_leader"}'] == 0
    # A sample is up to a second old: until it has the leader.
    fm = wait_for(lambda: (lambda m: m if m.get('ferromq_cluster_state{state="follower"}') == 1 and
                           m.get("ferromq_cluster_leader_id") == leader.id else None)(metrics(followers[0])),
                  timeout=10, what="a follower's cluster metrics")
    assert fm["ferromq_ready"] == 0
    assert not [k for k in fm if k.startswith("ferromq_cluster_peer_lag")]

    # $SYS on the leader (followers serve no client).
    want_topics = {"$SYS/broker/cluster/%s" % t for t in (
        "state", "role", "term", "leader", "leader_address", "commit_index", "applied_index", "last_index",
        "snapshots", "restores")} | {"$SYS/broker/cluster/peers/%d/lag" % f.id for f in followers}
    got = sys_cluster(leader, want_topics)
    assert got["$SYS/broker/cluster/state"] == "leader"
    assert got["$SYS/broker/cluster/role"] == "broker"
    assert got["$SYS/broker/cluster/leader"] == str(leader.id)
    assert got["$SYS/broker/cluster/leader_address"] == lst["leader_address"]
    for f in followers:
        assert re.fullmatch(r"\d+", got["$SYS/broker/cluster/peers/%d/lag" % f.id])

    # ferromq-ctl cluster on the leader and on a follower.
    r = ctl(leader, "cluster")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^state +leader$", r.stdout, re.M) and re.search(r"^leader +%d$" % leader.id, r.stdout, re.M)
    assert re.search(r"^PEER +ADDRESS +VOTER +MATCH INDEX +LAG$", r.stdout, re.M)
    r = ctl(followers[0], "cluster")
    assert r.returncode == 0 and re.search(r"^not serving +follower: the leader is node %d at " % leader.id,
                                           r.stdout, re.M), r.stdout


def test_operations(cluster):
    c = cluster(extra_lines=["sys_interval 1"])
    leader = c.wait_leader(timeout=30)
    assert leader, c.report()
    settled(c, leader)
    followers = [n for n in c.nodes.values() if n is not leader]

    # Asked of a follower: refused, naming the leader (at the address the
    # follower knows it by: the fault proxy's).
    lst = status(followers[0])
    for args in (("transfer",), ("remove", str(followers[1].id)), ("add", "9", "127.0.0.1:1")):
        r = ctl(followers[0], "cluster", *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "is not the leader: the leader is node %d at %s" % (leader.id, lst["leader_address"]) in r.stderr
    code, text = http(followers[0], "POST", "/api/cluster/transfer", "{}")
    body = json.loads(text)
    assert code == 409 and body["leader_id"] == leader.id and body["leader_address"] == lst["leader_address"]
    # Bad bodies, on the leader.
    for body, why in (('{"id":4}', "adding a node needs"), ('{"id":4,"address":"h"}', "address:"),
                      ('{"id":4,"adress":"h:1"}', "unknown member"), ("nonsense", "expected a JSON object"),
                      ('{"id":0,"address":"h:1"}', "adding a node needs")):
        code, text = http(leader, "POST", "/api/cluster/nodes", body)
        assert code == 400 and why in json.loads(text)["error"], (body, code, text)
    assert http(leader, "DELETE", "/api/cluster/nodes/0")[0] == 400
    assert http(leader, "DELETE", "/api/cluster/nodes/x")[0] == 400
    assert http(leader, "POST", "/api/cluster/transfer", '{"address":"h:1"}')[0] == 400

    # Transfer to a chosen follower: ctl waits and says who leads now.
    target = followers[0]
    r = ctl(leader, "cluster", "transfer", str(target.id), wait=30)
    assert r.returncode == 0, (r.stdout, r.stderr, c.report())
    assert r.stdout.startswith("leadership transferred: the leader is node %d at " % target.id), r.stdout
    new = c.wait_leader(timeout=30)
    assert new is target, c.report()
    old = leader
    leader = new
    settled(c, leader)
    ost = status(old)
    assert ost["change"] == {"kind": "transfer", "id": target.id, "pending": False, "error": None}

    # Remove the old leader (now a follower), then add a fourth node that joins.
    r = ctl(leader, "cluster", "remove", str(old.id), wait=30)
    assert r.returncode == 0, (r.stdout, r.stderr, c.report())
    assert r.stdout == "node %d removed\n" % old.id
    assert old.id not in [p["id"] for p in status(leader)["peers"]]
    old.stop()
    # Its retained lag on $SYS says it is gone; the other peer's stays a number.
    other = next(n for n in c.nodes.values() if n is not leader and n is not old)
    topics = {"$SYS/broker/cluster/peers/%d/lag" % old.id, "$SYS/broker/cluster/peers/%d/lag" % other.id}
    got = wait_for(lambda: (lambda v: v if v["$SYS/broker/cluster/peers/%d/lag" % old.id] == "removed" else None)(
        sys_cluster(leader, topics)), timeout=10, interval=0.5, what="the removed peer's $SYS lag")
    assert re.fullmatch(r"\d+", got["$SYS/broker/cluster/peers/%d/lag" % other.id]), got

    new4 = halib.BrokerNode(c, 4)
    c.nodes[4] = new4
    c.net.add_node(4, new4.cluster_port, free_port(), new4.host)
    new4.start(join=True)  # no peers: it learns the cluster from the leader
    address = c.net.proxy_address(4)
    r = ctl(leader, "cluster", "add", "4", address, wait=60)
    assert r.returncode == 0, (r.stdout, r.stderr, c.report())
    assert r.stdout == "node 4 at %s added (a voter)\n" % address
    peers = {p["id"]: p for p in status(leader)["peers"]}
    assert peers[4]["voter"] is True and peers[4]["address"] == address
    st4 = wait_for(lambda: (lambda s: s if s and s.get("leader_id") == leader.id else None)(status(new4)),
                   timeout=30, interval=0.1, what="node 4 to know the leader")
    assert st4["state"] == "follower"
    # A second add of the same node: refused by raft, said by ctl (exit 1).
    r = ctl(leader, "cluster", "add", "4", address, wait=30)
    assert r.returncode == 1 and "cluster add of node 4 failed" in r.stderr, (r.stdout, r.stderr)


def test_no_leader_alert(cluster):
    c = cluster()
    leader = c.wait_leader(timeout=30)
    assert leader, c.report()
    settled(c, leader)
    alone = next(n for n in c.nodes.values() if n is not leader)
    for n in c.nodes.values():
        if n is not alone:
            n.kill9()
    # 4 election timeouts (2 s) without a leader, then the next sample.
    def firing():
        code, text = http(alone, "GET", "/api/status")
        if code != 200:
            return None
        a = {x["name"]: x for x in json.loads(text)["alerts"]}
        return a if a["cluster_no_leader"]["state"] == "firing" else None
    a = wait_for(firing, timeout=20, interval=0.2, what="cluster_no_leader firing")
    assert a["cluster_no_leader"]["value"] > 2 and a["cluster_no_leader"]["threshold"] == 2
    assert a["cluster_peer_lag"]["state"] == "ok"
    code, text = http(alone, "GET", "/readyz")
    assert code == 503 and re.fullmatch(r"(candidate|follower): no leader known \(term \d+\)\n", text), text
    log = open(alone.log).read()
    assert re.search(r"warning: alert cluster_no_leader firing: value [\d.]+ above threshold 2.0; node %d is "
                     r"(candidate|follower) in term \d+" % alone.id, log), log[-3000:]


CLUSTER_SCRIPT = r"""
const { chromium } = require('playwright-core');
const [exe, url, shot, n] = process.argv.slice(1);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
(async () => {
  const browser = await chromium.launch({ executablePath: exe,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  await page.goto(url);
  await page.waitForFunction((n) => document.querySelectorAll('#cluster-nodes tr').length === Number(n) &&
    !document.getElementById('cluster-section').hidden, n, { timeout: 20000 });
  const rows = await page.evaluate(() => Array.from(document.querySelectorAll('#cluster-nodes tr')).map((tr) => ({
    cls: tr.className, node: tr.dataset.node, lag: tr.dataset.lag,
    cells: Array.from(tr.children).map((td) => td.textContent) })));
  const summary = await page.textContent('#cluster-summary');
  await page.screenshot({ path: shot, fullPage: true });
  say({ rows, summary, problems });
  await browser.close();
})().catch((e) => { say({ error: String(e && e.stack || e) }); process.exit(1); });
"""


def test_dashboard_shows_the_cluster(cluster, tmp_path):
    """The leader's dashboard in headless Chromium: the cluster panel, this
    node first as leader, then each peer with its match index and lag; a
    follower's shows the same nodes with the leader named and no lag."""
    from browser import chromium_bin, npm_package
    import shutil
    chromium = chromium_bin()
    if not chromium:
        pytest.skip("chromium is not installed (Debian package chromium; `make deps` installs it)")
    if not shutil.which("npm") or not shutil.which("node"):
        pytest.skip("node and npm are needed for playwright-core (Debian packages nodejs and npm)")
    node_path = npm_package("playwright-core", "1.61.1")
    c = cluster()
    leader = c.wait_leader(timeout=30)
    assert leader, c.report()
    settled(c, leader)
    follower = next(n for n in c.nodes.values() if n is not leader)
    seen = {}
    for node in (leader, follower):
        shot = str(tmp_path / ("dashboard-cluster-%d.png" % node.id))
        proc = subprocess.run(["node", "-e", CLUSTER_SCRIPT, chromium,
                               "http://%s:%d/?token=%s" % (node.host, node.http_port, token(node)), shot, "3"],
                              capture_output=True, text=True, timeout=90, env=dict(os.environ, NODE_PATH=node_path))
        said = json.loads(proc.stdout.splitlines()[-1]) if proc.stdout else {"error": proc.stderr[-3000:]}
        assert "error" not in said, said["error"]
        print("dashboard screenshot: %s" % shot)
        assert not said["problems"], said
        seen[node.id] = said
    rows = seen[leader.id]["rows"]
    assert rows[0]["node"] == str(leader.id) and "cluster-self" in rows[0]["cls"]
    assert "cluster-leader" in rows[0]["cls"] and rows[0]["cells"][2] == "leader"
    assert sorted(r["node"] for r in rows[1:]) == sorted(str(n.id) for n in c.nodes.values() if n is not leader)
    for r in rows[1:]:
        assert re.fullmatch(r"\d+", r["lag"]) and r["cells"][2] == "voter" and "cluster-lagging" not in r["cls"]
    assert ("node %d is leader" % leader.id) in seen[leader.id]["summary"]
    assert ("leader: node %d at " % leader.id) in seen[leader.id]["summary"]
    frows = seen[follower.id]["rows"]
    assert frows[0]["node"] == str(follower.id) and frows[0]["cells"][2] == "follower"
    lrow = next(r for r in frows if r["node"] == str(leader.id))
    assert "cluster-leader" in lrow["cls"] and lrow["cells"][2] == "leader" and lrow["lag"] == ""
    assert ("node %d is follower" % follower.id) in seen[follower.id]["summary"]


def test_peer_unreachable_alert(cluster):
    """A follower killed while the leader writes: its match index stops, and
    after 10 s cluster_peer_unreachable fires on the leader naming it; once
    it is back and caught up, the alert clears (alert_clear_after 0)."""
    import paho.mqtt.client as mqtt
    c = cluster(extra_lines=["alert_clear_after 0"])
    leader = c.wait_leader(timeout=30)
    assert leader, c.report()
    settled(c, leader)
    dead = next(n for n in c.nodes.values() if n is not leader)
    dead.kill9()
    pub = mqtt.Client(client_id="writer", protocol=mqtt.MQTTv311)
    pub.connect(leader.host, leader.port)
    pub.loop_start()

    def firing():
        # Retained QoS 1 messages are stored: each write is a raft entry.
        pub.publish("plant/w", str(time.monotonic()), qos=1, retain=True).wait_for_publish(5)
        code, text = http(leader, "GET", "/api/status")
        a = {x["name"]: x for x in json.loads(text)["alerts"]} if code == 200 else {}
        return a if a.get("cluster_peer_unreachable", {}).get("state") == "firing" else None
    try:
        a = wait_for(firing, timeout=40, interval=0.5, what="cluster_peer_unreachable firing")
        assert a["cluster_peer_unreachable"]["threshold"] == 10 and a["cluster_peer_unreachable"]["value"] > 10
        log = open(leader.log).read()
        assert re.search(r"warning: alert cluster_peer_unreachable firing: value [\d.]+ above threshold 10.0; "
                         r"peer %d at %s \(match index \d+, lag \d+\)" % (dead.id, re.escape(
                             c.net.proxy_address(dead.id))), log), log[-3000:]
        m = metrics(leader)
        assert m['ferromq_alert_firing{name="cluster_peer_unreachable"}'] == 1
        dead.start()
        c.wait_caught_up(dead, timeout=60)

        def cleared():
            pub.publish("plant/w", "again", qos=1, retain=True).wait_for_publish(5)
            code, text = http(leader, "GET", "/api/status")
            a = {x["name"]: x for x in json.loads(text)["alerts"]} if code == 200 else {}
            return a.get("cluster_peer_unreachable", {}).get("state") == "ok"
        wait_for(cleared, timeout=30, interval=0.5, what="cluster_peer_unreachable cleared")
    finally:
        pub.disconnect()
        pub.loop_stop()


def test_busy_and_wait_bounded(cluster):
    """A node added at an address where nothing answers never catches up:
    its change stays pending, ctl gives up after --wait (exit 2), and any
    other change meanwhile is refused as busy (409, ctl exit 1). A transfer
    without a node id goes to another node."""
    c = cluster()
    leader = c.wait_leader(timeout=30)
    assert leader, c.report()
    settled(c, leader)
    r = ctl(leader, "cluster", "transfer", wait=30)
    assert r.returncode == 0, (r.stdout, r.stderr, c.report())
    new = c.wait_leader(timeout=30)
    assert new and new is not leader, c.report()
    assert r.stdout.startswith("leadership transferred: the leader is node %d at " % new.id), r.stdout
    leader = new
    settled(c, leader)

    t0 = time.monotonic()
    r = ctl(leader, "cluster", "add", "9", "127.0.0.9:1", wait=3)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "the cluster add of node 9 did not finish within 3 s (last: still running)" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 10
    st = status(leader)
    assert st["change"] == {"kind": "add", "id": 9, "pending": True, "error": None}, st
    code, text = http(leader, "POST", "/api/cluster/transfer", "{}")
    assert code == 409 and json.loads(text) == {"error": "a membership change or transfer is already running"}
    r = ctl(leader, "cluster", "remove", "9")
    assert r.returncode == 1 and "HTTP 409" in r.stderr and "already running" in r.stderr, r.stderr


def test_peer_lag_alert(cluster):
    """A follower stopped (SIGSTOP) while the leader commits more than 1,000
    entries: cluster_peer_lag fires on the leader naming it, with the lag in
    /metrics; resumed, it catches up and the alert clears."""
    import paho.mqtt.client as mqtt
    c = cluster(extra_lines=["alert_clear_after 0"])
    leader = c.wait_leader(timeout=30)
    assert leader, c.report()
    settled(c, leader)
    slow = next(n for n in c.nodes.values() if n is not leader)
    slow.sigstop()
    pub = mqtt.Client(client_id="writer", protocol=mqtt.MQTTv311)
    pub.connect(leader.host, leader.port)
    pub.loop_start()
    try:
        # One at a time: each stored message is a group of its own, one entry.
        for i in range(1200):
            pub.publish("plant/lag", str(i), qos=1, retain=True).wait_for_publish(5)

        def alerts():
            code, text = http(leader, "GET", "/api/status")
            return {x["name"]: x for x in json.loads(text)["alerts"]} if code == 200 else {}
        a = wait_for(lambda: (lambda a: a if a.get("cluster_peer_lag", {}).get("state") == "firing" else None)(
            alerts()), timeout=10, interval=0.2, what="cluster_peer_lag firing")
        assert a["cluster_peer_lag"]["value"] > 1000 and a["cluster_peer_lag"]["threshold"] == 1000
        lag = {p["id"]: p["lag"] for p in status(leader)["peers"]}
        assert lag[slow.id] > 1000, lag
        assert metrics(leader)['ferromq_cluster_peer_lag{peer="%d"}' % slow.id] > 1000
        log = open(leader.log).read()
        assert re.search(r"warning: alert cluster_peer_lag firing: value \d+\.\d above threshold 1000.0; peers "
                         r"%d at %s \(lag \d+\)" % (slow.id, re.escape(c.net.proxy_address(slow.id))), log), \
            log[-3000:]
        slow.sigcont()
        c.wait_caught_up(slow, timeout=60)
        wait_for(lambda: alerts().get("cluster_peer_lag", {}).get("state") == "ok", timeout=10, interval=0.2,
                 what="cluster_peer_lag cleared")
    finally:
        pub.disconnect()
        pub.loop_stop()
