"""A witness that can be monitored (issue 14): two brokers and a witness, the
witness with an http_listener. It answers /healthz, /readyz (503, naming the
leader: it never serves MQTT), /metrics (the cluster's gauges, its role) and
/api/cluster (the same view as a broker's, all three nodes) with the same
credentials as a broker; membership changes it cannot make name the leader;
the broker's endpoints answer 404 with the reason. After the leader is
killed, the witness's view shows the new leader. Waits are bounded; nothing
here asserts a duration."""
import base64
import hashlib
import json
import os
import re
import signal
import urllib.error
import urllib.request

from halib import wait_for


def request(node, path, method="GET", body=None, token=True, basic=None, timeout=2.0):
    """(status, body text) of one request to node's HTTP listener: with the
    cluster's token (token=True, or the token given), or basic=(user, password)."""
    headers = {}
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % basic).encode()).decode()
    elif token:
        headers["Authorization"] = "Bearer " + (node.cluster.token if token is True else token)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request("http://%s:%d%s" % (node.host, node.http_port, path), data=data,
                                 headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text, name):
    """The value of the sample `name` (with its labels) in a Prometheus text, or None."""
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def witness_sees_leader(c, witness, leader):
    """Waits until the witness's /api/cluster names leader; returns that view."""
    def seen():
        st = c.api(witness, "/api/cluster")
        return st if st and st.get("leader_id") == leader.id else None
    st = wait_for(seen, 30, 0.05)
    assert st, "the witness never named node %d as leader: %r\n%s" % (
        leader.id, c.api(witness, "/api/cluster"), c.report())
    return st


def password_file(path, users):
    """A password file of users {name: password}, PBKDF2-SHA512 lines ($7$) as ferromq-passwd writes."""
    lines = []
    for user, pw in users.items():
        salt = os.urandom(12)
        digest = hashlib.pbkdf2_hmac("sha512", pw.encode(), salt, 101, 64)
        lines.append("%s:$7$101$%s$%s" % (user, base64.b64encode(salt).decode(), base64.b64encode(digest).decode()))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def test_the_witness_can_be_monitored(broker_cluster, tmp_path):
    users = password_file(str(tmp_path / "passwd"), {"prometheus": "scrape-me", "plc-7": "device"})
    c = broker_cluster(3, witness_ids=(3,),
                       extra_lines=["password_file %s" % users, "http_readonly_users prometheus"])
    witness = c.nodes[3]
    leader = c.wait_leader()
    assert leader, "no broker leads\n" + c.report()
    st = witness_sees_leader(c, witness, leader)

    # /api/cluster: the same view as a broker's, of all three nodes.
    assert st["cluster"] is True and st["node_id"] == 3 and st["role"] == "witness", st
    assert st["serving"] is False and "witness" in st["not_ready"], st
    # this node, and its peers with their addresses
    assert {p["id"] for p in st["peers"]} == {1, 2}, st
    assert all(p["voter"] and p["address"] for p in st["peers"]), st
    broker_view = c.api(leader, "/api/cluster")
    assert set(broker_view) == set(st), (broker_view, st)
    assert broker_view["leader_id"] == st["leader_id"], (broker_view, st)
    # the leader's address as the witness reaches it (through the fault proxy)
    assert st["leader_address"] == c.net.proxy_address(leader.id), st

    # /readyz: 503, a witness, naming the leader.
    status, body = request(witness, "/readyz")
    assert status == 503, (status, body)
    assert body.startswith("witness, follower: a witness never serves MQTT clients; the leader is node %d at "
                           % leader.id), body

    # /metrics: the cluster's gauges, its role and the leader.
    status, text = request(witness, "/metrics")
    assert status == 200, (status, text)
    assert metric(text, 'ferromq_cluster_role{role="witness"}') == 1, text
    assert metric(text, 'ferromq_cluster_role{role="broker"}') == 0, text
    assert metric(text, "ferromq_cluster_node_id") == 3, text
    assert metric(text, 'ferromq_cluster_state{state="follower"}') == 1, text
    assert metric(text, "ferromq_ready") == 0, text
    assert metric(text, "ferromq_cluster_term") >= 1, text
    assert metric(text, "ferromq_cluster_commit_index") is not None, text
    # the sampler runs once a second: it shows the leader from a sample on
    ok = wait_for(lambda: metric(request(witness, "/metrics")[1], "ferromq_cluster_leader_id") == leader.id, 10, 0.2)
    assert ok, request(witness, "/metrics")[1]
    assert "ferromq_messages_received_total" not in text, "a witness runs no broker"

    # The same credentials as a broker: /healthz alone needs none; a user of
    # password_file gets what the grant lists give it.
    assert request(witness, "/healthz", token=False) == (200, "ok\n")
    assert request(witness, "/api/cluster", token=False)[0] == 401
    assert request(witness, "/api/cluster", token="0" * 32)[0] == 401
    assert request(witness, "/metrics", basic=("prometheus", "scrape-me"))[0] == 200
    assert request(witness, "/metrics", basic=("prometheus", "wrong"))[0] == 401
    status, body = request(witness, "/metrics", basic=("plc-7", "device"))
    assert status == 403 and "no HTTP API grant" in body, (status, body)
    status, body = request(witness, "/api/cluster/transfer", method="POST", basic=("prometheus", "scrape-me"))
    assert status == 403 and "may only read" in body, (status, body)

    # What needs a broker: 404 with the reason, naming the leader.
    for path in ("/api/sessions", "/api/clients", "/api/status", "/", "/assets/dashboard.js"):
        status, body = request(witness, path)
        assert status == 404, (path, status, body)
        why = json.loads(body)["error"]
        assert "this node is a witness" in why and ("the leader, node %d" % leader.id) in why, (path, why)
    status, body = request(witness, "/api/sessions/x", method="DELETE")
    assert status == 404 and "witness" in body, (status, body)

    # Membership changes go to the leader: 409 naming it, as a broker follower answers.
    status, body = request(witness, "/api/cluster/nodes", method="POST", body={"id": 4, "address": "127.0.0.4:1"})
    assert status == 409, (status, body)
    refused = json.loads(body)
    assert refused["leader_id"] == leader.id and "ask the leader" in refused["error"], refused
    status, body = request(witness, "/api/cluster/nodes/2", method="DELETE")
    assert status == 409 and json.loads(body)["leader_id"] == leader.id, (status, body)
    status, body = request(witness, "/api/cluster/transfer", method="POST", body={"id": 1})
    assert status == 409 and json.loads(body)["leader_id"] == leader.id, (status, body)

    # A reload (POST /api/reload, SIGHUP) rereads the token file: the old token stops working.
    with open(c.token_file, "w") as f:
        f.write("b" * 32 + "\n")
    status, body = request(witness, "/api/reload", method="POST")
    assert status == 200 and json.loads(body) == {"reloaded": True, "errors": []}, (status, body)
    assert request(witness, "/api/cluster")[0] == 401
    assert request(witness, "/api/cluster", token="b" * 32)[0] == 200
    with open(c.token_file, "w") as f:
        f.write(c.token + "\n")
    witness.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: request(witness, "/api/cluster")[0] == 200, 10, 0.05), "SIGHUP did not reload the token"

    # The leader dies: the witness's view shows the broker that took over.
    old, new, _ = c.kill_leader()
    assert new, "no broker took over from node %d\n%s" % (old.id, c.report())
    st = witness_sees_leader(c, witness, new)
    assert st["state"] == "follower" and st["term"] > broker_view["term"], st
    status, body = request(witness, "/readyz")
    assert status == 503 and ("the leader is node %d" % new.id) in body, (status, body)
