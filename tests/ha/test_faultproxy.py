"""The fault proxy (faultproxy.py) proven on the raft module alone:
fm-cluster-node processes whose peers are at proxy ports. A leader cut off
from both peers stops leading within about two election timeouts and
acknowledges nothing more, the majority elects a new leader, and after the
heal the old leader follows it; one-way cuts likewise. Each ends with
clusterlib's checks: nothing applied twice or skipped, the same history
everywhere, every acknowledged proposal applied."""
import time

import pytest

from halib import wait_for
from clusterlib import LEADER

ELECTION_MS = 500  # fm-cluster-node's default (src/cluster/node.c)
# The minority's leader steps down once it has not heard from a majority for
# an election timeout (libraft checks on its ticks): at most about two. The
# slack is for a machine whose two cores the other suites share.
STEP_DOWN_LIMIT_S = 2 * ELECTION_MS / 1000 + 0.5


def leads(node):
    s = node.fresh_status()
    return bool(s) and s["state"] == LEADER


def first_leader(c):
    leader = c.wait_leader(15)
    assert leader, "no leader within 15 s\n" + c.report()
    return leader


def test_proxy_carries_every_link_and_knows_the_source(raft_cluster):
    c = raft_cluster(3)
    leader = first_leader(c)
    c.load(True)
    time.sleep(1.0)
    c.load(False)
    c.check_history()
    # Followers of a leader elected at once never talk to each other: the
    # leader's links are those that must have carried its entries and acks.
    for f in c.running():
        if f is not leader:
            for a, b in ((leader, f), (f, leader)):
                assert c.net.forwarded(a.id, b.id) > 0, "nothing went from %d to %d through the proxy" % (a.id, b.id)
    assert c.net.unknown_sources == 0
    assert c.net.bypasses() == [], "raft traffic past the proxy"


def isolate_leader(c, mode, how):
    """Cuts the leader off under load (how: "both", "outgoing" = what it
    sends, "incoming" = what it receives); returns (old leader, new leader,
    seconds until the old one stopped leading)."""
    old = first_leader(c)
    c.load(True)
    time.sleep(0.5)
    assert c.net.bypasses() == [], "raft traffic past the proxy: a cut would not cut it"
    cut_at = time.monotonic()
    if how == "both":
        c.net.isolate(old.id, mode=mode)
    else:
        c.net.isolate(old.id, both=False, mode=mode, outgoing=how == "outgoing")
    others = [n for n in c.running() if n is not old]
    assert wait_for(lambda: not leads(old), 10, 0.005), "the cut-off leader still leads\n" + c.report()
    stepped_down = time.monotonic() - cut_at
    new = wait_for(lambda: c.leader(others), 10, 0.005)
    assert new, "the majority elected no leader\n" + c.report()
    elected = time.monotonic() - cut_at
    print("%s cut (%s) of leader %d: it stopped leading after %.0f ms; node %d leads after %.0f ms"
          % (how, mode, old.id, stepped_down * 1000, new.id, elected * 1000))
    assert stepped_down <= STEP_DOWN_LIMIT_S, "the minority led %.2f s after the cut" % stepped_down
    return old, new


@pytest.mark.parametrize("mode", ["stall", "reset"])
def test_isolated_leader_stops_and_follows_after_heal(raft_cluster, mode):
    c = raft_cluster(3)
    old, new = isolate_leader(c, mode, "both")
    # The minority acknowledges nothing while cut off; the majority commits.
    old_acked = old.fresh_status()["acked_entries"]
    new_acked = wait_for(lambda: (s := new.fresh_status()) and s["first_commit_ms"] and s["acked_entries"], 5)
    assert new_acked, "the new leader commits nothing"
    time.sleep(1.0)
    assert old.fresh_status()["acked_entries"] == old_acked, "the cut-off node acknowledged proposals"
    assert new.fresh_status()["acked_entries"] > new_acked
    c.net.heal()
    assert wait_for(lambda: (s := old.fresh_status()) and s["state"] != LEADER and s["leader"] == new.id, 10), \
        "after the heal the old leader does not follow %d\n%s" % (new.id, c.report())
    c.load(False)
    c.check_history()


@pytest.mark.parametrize("how", ["outgoing", "incoming"])
def test_one_way_cut_of_the_leader(raft_cluster, how):
    """outgoing: what it sends is lost, what the others send reaches it.
    incoming: its heartbeats arrive, no answer comes back (the others elect
    only once it has stepped down and its heartbeats stop). Either way it
    hears from no majority and steps down within about two election
    timeouts."""
    c = raft_cluster(3)
    old, new = isolate_leader(c, "stall", how)
    time.sleep(0.5)
    c.net.heal()
    assert wait_for(lambda: (s := old.fresh_status()) and s["state"] != LEADER and s["leader"] == new.id, 10), \
        "after the heal the old leader does not follow %d\n%s" % (new.id, c.report())
    c.load(False)
    c.check_history()


def test_follower_cut_off_catches_up_after_heal(raft_cluster):
    """The majority side keeps the leader: it goes on acknowledging with one
    follower; the cut-off follower cannot depose it (pre-vote), and catches
    up after the heal."""
    c = raft_cluster(3)
    leader = first_leader(c)
    lone = next(n for n in c.running() if n is not leader)
    c.load(True)
    time.sleep(0.3)
    c.net.isolate(lone.id, mode="reset")
    acked = leader.fresh_status()["acked_entries"]
    time.sleep(2 * ELECTION_MS / 1000 + 0.5)
    assert leads(leader), "the leader lost leadership to a cut-off follower\n" + c.report()
    assert leader.fresh_status()["acked_entries"] > acked, "the leader stopped acknowledging"
    c.net.heal()
    time.sleep(0.3)
    c.load(False)
    c.check_history()
    assert c.leader() is leader
