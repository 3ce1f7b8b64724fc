"""The cluster module (src/cluster) on its own: fm-cluster-node processes on
loopback, each with its own port and data directory. Every test ends with
the same checks (Cluster.check_history): nothing applied twice or skipped,
the same history on every node, every acknowledged proposal applied."""
import signal
import time

from clusterlib import FOLLOWER, LEADER, wait_for


def became_leader_at(node):
    """When the node last became leader (ms, from its events), or None."""
    times = [int(e.split()[-1]) for e in node.events() if e.startswith("state leader leader ")
             and e.split()[3] == str(node.id)]
    return times[-1] if times else None


def run_load(c, seconds):
    c.load(True)
    time.sleep(seconds)
    c.load(False)


def test_proposals_commit_in_order_on_every_node(make_cluster):
    c = make_cluster(3)
    leader = c.wait_leader()
    assert leader, "no leader within 10 s"
    leader.send("bench start")
    run_load(c, 2)
    leader.send("bench report")
    brokers = c.check_history()
    s = leader.fresh_status()
    assert s["acked_entries"] > 50, s
    assert all(st["msgs"] > 50 * 64 for _, st in brokers)
    followers = [n for n in c.running() if n is not leader]
    # A proposal on a follower is refused at once, not lost.
    for f in followers:
        assert f.fresh_status()["acked_entries"] == 0
    # The status (cluster_status_json): the leader knows each peer's match
    # index, and with nothing in flight no peer lags.
    time.sleep(0.1)
    st = leader.cluster_json()
    assert st["state"] == "leader" and st["leader_id"] == leader.id and st["role"] == "broker", st
    assert st["commit_index"] == st["applied_index"] == st["last_index"], st
    assert sorted(p["id"] for p in st["peers"]) == sorted(f.id for f in followers), st
    for p in st["peers"]:
        assert p["voter"] and p["lag"] == 0 and p["match_index"] == st["last_index"], st
        assert p["address"] == c.nodes[p["id"]].address, st
    for f in followers:
        fs = f.cluster_json()
        assert fs["state"] == "follower" and fs["leader_id"] == leader.id, fs
        assert fs["leader_address"] == leader.address, fs
        assert all(p["match_index"] is None and p["lag"] is None for p in fs["peers"]), fs


def test_kill_leader_elects_a_new_one_and_loses_nothing(make_cluster):
    c = make_cluster(3)
    old = c.wait_leader()
    assert old
    c.load(True)
    time.sleep(1.0)
    killed_at = time.time()
    old.kill(signal.SIGKILL)
    survivors = [n for n in c.running()]

    def new_leader():
        n = c.leader(survivors)
        return n if n and n.fresh_status()["leader_since_ms"] >= killed_at * 1000 else None
    new = wait_for(new_leader, 10, 0.002)
    assert new, "no new leader within 10 s"
    failover_ms = new.fresh_status()["leader_since_ms"] - killed_at * 1000
    print(f"fail-over: new leader {new.id} {failover_ms:.0f} ms after kill -9 of {old.id}")
    assert failover_ms < 2000, f"new leader after {failover_ms:.0f} ms"
    # It commits: the new leader's own proposals are acknowledged.
    assert wait_for(lambda: new.fresh_status()["first_commit_ms"], 5), "new leader commits nothing"
    time.sleep(0.5)
    c.load(False)
    acked = c.all_acks()
    assert any(k >> 48 == old.id for k in acked), "the old leader acknowledged nothing before the kill"
    c.check_history(acked)
    # The killed node comes back, catches up, and has the same history.
    old.start()
    c.check_history(acked)


def test_restarted_laggard_catches_up_by_snapshot(make_cluster):
    c = make_cluster(3, args=["--snapshot-threshold", "64", "--snapshot-trailing", "16"])
    leader = c.wait_leader()
    assert leader
    lagger = next(n for n in c.running() if n is not leader)
    assert lagger.stop() == 0
    run_load(c, 2.5)
    st = leader.fresh_status()
    assert st["snapshots"] >= 1, st
    behind = st["applied"]
    t0 = time.time()
    lagger.start()
    brokers = c.check_history()
    caught_up_ms = (time.time() - t0) * 1000
    ls = lagger.fresh_status()
    print(f"laggard: {behind} entries behind, caught up in {caught_up_ms:.0f} ms, "
          f"{ls['restores']} snapshot(s) installed")
    assert ls["restores"] >= 1, "the laggard was not sent a snapshot"
    assert any(e.startswith("restored ") for e in lagger.events())
    assert len(brokers) == 3


def test_stopped_leader_is_voted_out_and_steps_down(make_cluster):
    c = make_cluster(3)
    old = c.wait_leader()
    assert old
    c.load(True)
    time.sleep(0.5)
    old.kill(signal.SIGSTOP)
    stopped_at = time.time()
    others = [n for n in c.running() if n is not old]
    new = wait_for(lambda: c.leader(others), 10, 0.005)
    assert new, "no leader among the others while the old one is stopped"
    print(f"SIGSTOP: node {new.id} leads {(time.time() - stopped_at) * 1000:.0f} ms after node {old.id} stopped")
    time.sleep(0.5)
    old.kill(signal.SIGCONT)
    resumed_at = time.time()
    # It learns of the newer term and steps down (it may not lead again:
    # pre-vote keeps the working leader in place).
    assert wait_for(lambda: (s := old.status()) and s["now_ms"] > resumed_at * 1000 + 20
                    and s["state"] == FOLLOWER and s["leader"] == new.id, 5), old.status()
    print(f"SIGCONT: node {old.id} a follower of {new.id} "
          f"{(time.time() - resumed_at) * 1000:.0f} ms after it resumed")
    time.sleep(0.5)
    c.load(False)
    c.check_history()


def test_two_brokers_and_a_witness(make_cluster):
    c = make_cluster(3, witness_ids=(3,))
    witness = c.nodes[3]
    first = c.wait_leader()
    assert first
    # A witness that wins an election hands leadership to a broker.
    leader = wait_for(lambda: (n := c.leader()) and not n.witness and n, 10)
    assert leader, "no broker leads"
    run_load(c, 1.5)
    c.check_history()
    ws = witness.fresh_status()
    assert ws["entries"] == 0 and ws["applied"] > 0, ws  # it stores the log, applies nothing
    # Made leader on purpose, the witness hands leadership back to a broker.
    # (Status files lag up to 20 ms: the times in the events decide.)
    leader.send(f"transfer {witness.id}")
    led_at = wait_for(lambda: became_leader_at(witness), 5)
    assert led_at, witness.events()

    def broker_took_over():
        for n in c.running():
            t = became_leader_at(n)
            if not n.witness and t and t >= led_at:
                return n
        return None
    back = wait_for(broker_took_over, 5)
    assert back, [(n.id, n.events()) for n in c.running()]
    assert wait_for(lambda: c.leader() is back, 2)
    print(f"witness: led for a moment, handed leadership to broker {back.id}")
    leader = back
    c.load(True)
    time.sleep(0.5)
    killed_at = time.time()
    leader.kill(signal.SIGKILL)
    other = next(n for n in c.running() if not n.witness)
    assert wait_for(lambda: (s := other.fresh_status()) and s["state"] == LEADER
                    and s["leader_since_ms"] >= killed_at * 1000, 10, 0.002), "the other broker does not lead"
    failover_ms = other.fresh_status()["leader_since_ms"] - killed_at * 1000
    print(f"witness variant: broker {other.id} leads {failover_ms:.0f} ms after kill -9 of {leader.id}")
    assert failover_ms < 2000
    assert wait_for(lambda: other.fresh_status()["first_commit_ms"], 5), "no commit with one broker and the witness"
    c.load(False)
    acked = c.all_acks()
    c.check_history(acked)
    leader.start()
    c.check_history(acked)


def test_add_remove_and_transfer(make_cluster):
    c = make_cluster(3)
    leader = c.wait_leader()
    assert leader
    run_load(c, 1)
    new = c.add_node(4)
    leader.send(f"add 4 {new.address}")
    assert wait_for(lambda: any(e.startswith("add ") for e in leader.events()), 20), leader.events()
    assert "add 0 ok" in leader.events(), leader.events()
    c.check_history()
    # Remove a follower; the three left keep committing.
    gone = next(n for n in c.running() if n is not leader and n is not new)
    leader.send(f"remove {gone.id}")
    assert wait_for(lambda: any(e.startswith("remove ") for e in leader.events()), 10)
    assert "remove 0 ok" in leader.events(), leader.events()
    assert gone.stop() == 0
    run_load(c, 1)
    c.check_history()
    # Hand leadership to the added node.
    leader.send("transfer 4")
    assert wait_for(lambda: any(e.startswith("transfer ") for e in leader.events()), 10)
    assert "transfer 0 ok" in leader.events(), leader.events()
    # Status files are rewritten every 20 ms: the old leader's may say
    # "leader" a moment longer.
    assert wait_for(lambda: c.leader() is new and leader.fresh_status()["state"] != LEADER, 5), \
        [(n.id, n.status()["state"]) for n in c.running()]
    run_load(c, 0.5)
    c.check_history()
    # A proposal-side error is clear: a follower cannot change membership.
    follower = next(n for n in c.running() if n is not new)
    follower.send("remove 4")
    assert wait_for(lambda: any(e.startswith("remove 100 ") or e.startswith("remove -") or
                                e == "remove 100 not the leader" for e in follower.events()), 5)
    assert "remove 100 not the leader" in follower.events(), follower.events()


def test_witness_carries_the_log_to_a_broker_that_was_behind(make_cluster):
    """Broker B is stopped while broker A and the witness commit; A dies; B
    comes back. Only the witness has what A acknowledged: it must win, give
    B the log, and hand leadership to B (A is dead). Snapshots are frequent:
    the witness must not have compacted what B lacks."""
    c = make_cluster(3, witness_ids=(3,), args=["--snapshot-threshold", "64", "--snapshot-trailing", "16"])
    witness = c.nodes[3]
    a = wait_for(lambda: (n := c.leader()) and not n.witness and n, 10)
    assert a, "no broker leads"
    b = next(n for n in c.running() if not n.witness and n is not a)
    b.kill(signal.SIGSTOP)
    c.load(True)
    time.sleep(1.0)
    a.kill(signal.SIGKILL)
    acked = c.all_acks()
    assert acked.get(max(acked), 0) > 0, "A acknowledged nothing while B was stopped"
    killed_at = time.time()
    b.kill(signal.SIGCONT)
    assert wait_for(lambda: (t := became_leader_at(witness)) and t >= killed_at * 1000, 10), witness.events()
    assert wait_for(lambda: (t := became_leader_at(b)) and t >= killed_at * 1000, 10), \
        (witness.events(), b.events())
    print(f"witness carried the log: broker {b.id} leads "
          f"{became_leader_at(b) - killed_at * 1000:.0f} ms after A died")
    c.load(False)
    c.check_history(acked)
    # B got entries from the witness, never its empty snapshot (B may have
    # installed one of A's, sent before A died and read after SIGCONT).
    with open(b.log) as f:
        assert "refusing a witness's snapshot" not in f.read()


def test_witness_compacts_what_every_broker_has(make_cluster):
    c = make_cluster(3, witness_ids=(3,), args=["--snapshot-threshold", "64", "--snapshot-trailing", "16"])
    assert wait_for(lambda: (n := c.leader()) and not n.witness and n, 10)
    run_load(c, 1.5)
    c.check_history()
    # The witness compacts once the leader's watermark entry (proposed
    # every WATERMARK_PERIOD_MS) has told it what every broker has: on a
    # busy machine that can come after the load.
    ws = wait_for(lambda: (s := c.nodes[3].fresh_status())["snapshots"] >= 1 and s, 10)
    assert ws, c.nodes[3].fresh_status()
