"""Cluster operations on a broker that is not in a cluster: /api/cluster
says so ({"cluster":false}), the membership endpoints refuse with 409,
/readyz, /metrics, $SYS, the alerts and the API's status show nothing of a
cluster, and ferromq-ctl cluster says "cluster: off" and refuses changes
(exit 1), with its usage errors (exit 2). The cluster itself is tested by
test_cluster_ops_3nodes.py."""
import json
import time

from conftest import wait_for
from opshttp import api, metrics, ops_broker, request
from test_ctl import ctl


def test_single_node_has_no_cluster(start_broker, tmp_path, client):
    b = ops_broker(start_broker, tmp_path)
    assert api(b, "GET", "/api/cluster") == {"cluster": False}
    status, hdrs, _ = request(b, "HEAD", "/api/cluster", token=b.token)
    assert status == 200 and hdrs["content-type"] == "application/json"
    for method, path, body in (("POST", "/api/cluster/nodes", '{"id":4,"address":"127.0.0.1:7004"}'),
                               ("DELETE", "/api/cluster/nodes/2", None),
                               ("POST", "/api/cluster/transfer", '{"id":0}')):
        st = api(b, method, path, expect=409, body=body, headers={"Content-Type": "application/json"})
        assert st == {"error": "this broker is not in a cluster (no cluster_node_id in its configuration)"}
    # Methods: the status is read, the changes are POST / DELETE.
    assert request(b, "POST", "/api/cluster", token=b.token)[0] == 405
    assert request(b, "GET", "/api/cluster/nodes", token=b.token)[0] == 405
    assert request(b, "GET", "/api/cluster/nodes/2", token=b.token)[0] == 405
    assert request(b, "POST", "/api/clusterx", token=b.token)[0] == 404
    # Credentials as for every endpoint.
    assert request(b, "GET", "/api/cluster")[0] == 401
    assert request(b, "POST", "/api/cluster/transfer")[0] == 401

    assert request(b, "GET", "/readyz", token=b.token)[:1] == (200,)
    m = wait_for(lambda: (lambda m: m if 'ferromq_alert_firing{name="memory"}' in m else None)(metrics(b)),
                 what="a first sample")
    assert not [k for k in m if "cluster" in k], [k for k in m if "cluster" in k]
    status = api(b, "GET", "/api/status")
    assert not [a for a in status["alerts"] if a["name"].startswith("cluster")]

    watcher = client(b, "sys-watch", protocol=5)
    watcher.subscribe("$SYS/broker/#")
    wait_for(lambda: any(m.topic == "$SYS/broker/uptime" for m in watcher.messages.snapshot()),
             what="the retained $SYS tree")
    time.sleep(1.5)  # another sys_interval: nothing of a cluster comes later either
    topics = {m.topic for m in watcher.messages.snapshot()}
    assert "$SYS/broker/alerts/memory" in topics
    assert not [t for t in topics if "cluster" in t], topics


def test_ctl_cluster_off(start_broker, tmp_path):
    b = ops_broker(start_broker, tmp_path)
    b.url = "http://127.0.0.1:%d" % b.http_port
    b.token_file = b.token_path
    r = ctl(b, "cluster")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "cluster: off (this broker is not in a cluster)\n"
    r = ctl(b, "--json", "cluster")
    assert r.returncode == 0 and json.loads(r.stdout) == {"cluster": False}
    for args in (("add", "4", "127.0.0.1:7004"), ("remove", "2"), ("transfer",), ("transfer", "2")):
        r = ctl(b, "cluster", *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "not in a cluster" in r.stderr and "HTTP 409" in r.stderr, r.stderr
        assert r.stdout == ""


def test_ctl_cluster_usage():
    url = "http://127.0.0.1:9"  # nothing is asked: the arguments are refused first
    for args, why in ((("cluster", "frob"), "cluster frob: not add, remove or transfer"),
                      (("cluster", "add", "4"), "usage: cluster add N HOST:PORT"),
                      (("cluster", "add", "0", "h:1"), "the node id is a whole number from 1, not \"0\""),
                      (("cluster", "add", "x", "h:1"), "the node id is a whole number from 1"),
                      (("cluster", "add", "4", "a b:1"), "\"a b:1\" is not HOST:PORT"),
                      (("cluster", "add", "4", "a\"b:1"), "is not HOST:PORT"),
                      (("cluster", "remove"), "usage:"),
                      (("cluster", "remove", "1x"), "the node id is a whole number from 1, not \"1x\""),
                      (("cluster", "remove", "-1"), "unknown option -1"),
                      (("cluster", "transfer", "1", "2"), "usage:"),
                      (("cluster", "transfer", "x"), "the node id is a whole number from 0"),
                      (("cluster", "add", "4", "h:1", "5"), "too many arguments"),
                      (("--wait", "0", "cluster"), "--wait takes seconds from 1 to 3600")):
        r = ctl(url, *args, auth=False)
        assert r.returncode == 2, (args, r.stderr)
        assert why in r.stderr, (args, r.stderr)
    r = ctl(url, "--help", auth=False)
    assert "cluster add N HOST:PORT | cluster remove N | cluster transfer [N]" in r.stdout
    assert "--wait SECONDS" in r.stdout
