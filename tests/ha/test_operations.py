"""Operating a broker cluster under load (issue 14, Must hold 4): a rolling
restart of every node, a dead node replaced by a new one, and a pair whose
other node is lost for good continuing alone (ferromq
--cluster-continue-alone). Every acknowledged message is delivered, QoS 2
exactly once, in each publisher's order (haload.check_deliveries)."""
import json
import shutil
import signal
import subprocess
import urllib.error
import urllib.request

import halib
import haload


def http(node, method, path, body=None):
    """(status, decoded JSON or text) of a request to node's HTTP API."""
    req = urllib.request.Request("http://%s:%d%s" % (node.host, node.http_port, path), method=method,
                                 data=body.encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + node.cluster.token,
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            text = r.read().decode()
            return r.status, json.loads(text) if text.startswith("{") else text
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def change_done(cluster, leader, kind, nid, timeout=60):
    """Waits until the leader's last membership change (kind, nid) is over;
    its error (None when it worked)."""
    def over():
        st = cluster.api(leader, "/api/cluster")
        ch = st and st.get("change")
        return ch if ch and ch["kind"] == kind and ch["id"] == nid and not ch["pending"] else None
    ch = halib.wait_for(over, timeout, 0.05)
    assert ch, "the %s of node %d did not finish in %d s\n%s" % (kind, nid, timeout, cluster.report())
    return ch["error"]


def cluster_under_load(broker_cluster, n=3, **load_options):
    """A started cluster of n brokers, its leader, and haload's QoS 1 and
    QoS 2 load running on it (stopped by the caller)."""
    c = broker_cluster(n)
    leader = c.wait_leader(30)
    assert leader, c.report()
    load = haload.Load(c.addresses(), **load_options)
    try:
        load.start()
    except BaseException:
        load.stop()
        raise
    return c, leader, load


def test_rolling_restart_loses_nothing(broker_cluster):
    """Each node in turn, the leader last, stopped (SIGTERM) and started
    again once the others serve, under QoS 1 and QoS 2 load: clients move
    to whichever node leads, and nothing acknowledged is lost."""
    c, leader, load = cluster_under_load(broker_cluster)
    try:
        order = [n for n in c.brokers() if n is not leader] + [leader]
        for node in order:
            before = sum(load.acked_counts().values())
            assert node.stop() == 0, "node %d did not stop cleanly\n%s" % (node.id, c.report())
            assert c.wait_leader(30), "no broker leads with node %d stopped\n%s" % (node.id, c.report())
            node.start()
            c.wait_caught_up(node)
            assert halib.wait_for(lambda: sum(load.acked_counts().values()) > before + 50, 30, 0.05), (
                "the load made no progress around the restart of node %d\n%s" % (node.id, c.report()))
        # The clients did follow the leader around: each (re)connected at
        # least once more than it started (the leader's restart moves them).
        assert all(len(cl.connects) >= 2 for cl in load.pubs + [load.sub]), load.timeline()
        problems = load.finish()
    finally:
        load.stop()
    assert not problems, "\n".join(problems) + "\n" + c.report()


def test_dead_node_replaced_under_load(broker_cluster):
    """A follower's machine dies for good (kill -9, its data gone): it is
    removed, a new node joins and catches up from the others (a snapshot
    and the log), and then carries a fail-over: the leader killed, the two
    left serve every acknowledged message."""
    c, leader, load = cluster_under_load(broker_cluster)
    try:
        dead = next(n for n in c.brokers() if n is not leader)
        assert halib.wait_for(lambda: min(load.acked_counts().values()) > 100, 30, 0.05), c.report()
        dead.kill9()
        shutil.rmtree(dead.data)

        code, body = http(leader, "DELETE", "/api/cluster/nodes/%d" % dead.id)
        assert code == 202, (code, body)
        assert change_done(c, leader, "remove", dead.id) is None
        del c.nodes[dead.id]

        new = halib.BrokerNode(c, 4)
        c.nodes[4] = new
        c.net.add_node(4, new.cluster_port, halib.free_port(), new.host)
        new.start(join=True)
        code, body = http(leader, "POST", "/api/cluster/nodes",
                          json.dumps({"id": 4, "address": c.net.proxy_address(4)}))
        assert code == 202, (code, body)
        assert change_done(c, leader, "add", 4) is None
        c.wait_caught_up(new)
        # The clients are told of the new node, as a plant's would be (a
        # v3.1.1 client gets no Server Reference to find it by).
        for cl in load.pubs + [load.sub]:
            cl.addresses.append((new.host, new.port))

        # The new node is a voter that holds the state: the leader's death
        # is survived by it and the third node.
        before = load.acked_counts()
        old, took_over, took = c.kill_leader(signal.SIGKILL)
        assert took_over, "no broker took over from node %d\n%s" % (old.id, c.report())
        assert halib.wait_for(lambda: all(load.acked_counts()[k] > before[k] for k in before), 30, 0.05), (
            "no progress after the fail-over to node %d\n%s" % (took_over.id, c.report()))
        problems = load.finish()
    finally:
        load.stop()
    assert not problems, "\n".join(problems) + "\n" + c.report()


def test_pair_continues_alone(broker_cluster):
    """Two brokers: when one dies the other cannot tell a dead peer from a
    cut link, so it stops serving. The operator decides: the survivor,
    stopped, is made a cluster of itself (--cluster-continue-alone) and,
    started, serves everything acknowledged before."""
    c, leader, load = cluster_under_load(broker_cluster, 2, publishers=(("pub-q2", 2, 4),))
    try:
        assert halib.wait_for(lambda: min(load.acked_counts().values()) > 200, 30, 0.05), c.report()
        for p in load.pubs:
            p.sending.clear()
        assert halib.wait_for(lambda: not any(p.outstanding() for p in load.pubs), 30, 0.05), c.report()
        acked = {p.client_id: p.acked_copy() for p in load.pubs}

        survivor = next(n for n in c.brokers() if n is not leader)
        leader.kill9()
        # Alone, it does not serve: one of two is no majority.
        assert halib.wait_for(lambda: (r := survivor.probe()) is not None and r[0] != 0, 10, 0.1), c.report()
        assert survivor.stop() == 0
        r = subprocess.run([halib.broker_bin(), "-c", survivor.conf, "--cluster-continue-alone"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "is now a cluster of itself alone" in r.stdout
        survivor.start()
        assert c.wait_leader(30, among=[survivor]) is survivor, c.report()

        # The subscriber's session comes back on it with every acknowledged
        # message it had not received yet.
        want = {(pub, s) for pub, seqs in acked.items() for s in seqs}
        assert halib.wait_for(lambda: want <= set(load.sub.delivered()), 30, 0.05), (
            "%d acknowledged messages missing after continuing alone\n%s"
            % (len(want - set(load.sub.delivered())), c.report()))
        assert not haload.check_deliveries(acked, {"pub-q2": 2}, load.sub.delivered())
    finally:
        load.stop()


def test_follower_far_behind_installs_a_snapshot_and_leads(broker_cluster, monkeypatch):
    """A follower stopped while the others take thousands of entries gets
    the state as a snapshot (an image of the leader's database), then the
    log; made the leader, it serves every acknowledged message."""
    monkeypatch.setenv("FERROMQ_CLUSTER_SNAPSHOT_BYTES", "65536")
    c, leader, load = cluster_under_load(broker_cluster)
    try:
        behind = next(n for n in c.brokers() if n is not leader)
        assert halib.wait_for(lambda: min(load.acked_counts().values()) > 50, 30, 0.05), c.report()
        assert behind.stop() == 0
        # Enough entries that the leader's log no longer reaches back to
        # where the follower stopped (snapshots every 64 KB of entries,
        # 512 entries kept after each).
        assert halib.wait_for(lambda: (st := c.api(leader, "/api/cluster")) and st["snapshots"] >= 3, 60, 0.1), (
            c.report())
        behind.start()
        c.wait_caught_up(behind)
        with open(behind.log) as f:
            assert "installed the snapshot at index" in f.read(), c.report()

        # Under load the target may not catch up within the transfer's time
        # (libraft gives up; the leader keeps leading, its broker rebuilt
        # meanwhile, HTTP listener included): asked again of whoever leads.
        for _ in range(10):
            if c.leader([behind]) is behind:
                break
            leader = c.wait_leader(30)
            try:
                code, body = http(leader, "POST", "/api/cluster/transfer", json.dumps({"id": behind.id}))
            except urllib.error.URLError:
                continue
            if code == 202:
                change_done(c, leader, "transfer", behind.id)
        assert halib.wait_for(lambda: c.leader([behind]) is behind, 30, 0.05), c.report()
        problems = load.finish()
    finally:
        load.stop()
    assert not problems, "\n".join(problems) + "\n" + c.report()
