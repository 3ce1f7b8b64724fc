"""Real partitions of a broker cluster, on a network of namespaces
(`make test-partition`, issue 14; needs root: skipped otherwise, and not
part of `make test`). Each node runs in a namespace of its own and the
test's clients (haload's load, the probes) in another, all joined by a
bridge in a namespace of its own (netns.py); a cut takes a node's link
down, so nothing reaches it or leaves it, peers and clients alike.

Under QoS 1 and QoS 2 load: the leader cut off stops acknowledging and
refuses CONNECT to a client on its own side of the cut (one in its
namespace, as on its machine); the majority elects a leader that serves
the clients; after the heal the old leader follows and refuses clients;
nothing acknowledged is lost and no QoS 2 message is delivered twice
(haload's check). Also with two brokers and a witness, and with a follower
cut off (nothing changes for the clients; it catches up after the heal).
The first tests prove the network itself: a cut cuts, nothing of it is in
the root namespace, and everything goes at the end.

The figures (time until the cut-off leader refuses, until another node
accepts) are printed (pytest -s shows them); the bounds here are generous,
speed is measured elsewhere (make test-failover, the proxy partitions).
"""
import os
import socket
import subprocess
import threading
import time

import pytest

import halib
import haload
import netns
from halib import CONNACK_SERVER_UNAVAILABLE, wait_for
# A client of the cut-off leader that reads until the leader closes it: the
# same as the proxy partitions'.
from test_partition import minority_client

ELECTION_MS = 500  # cluster_election_timeout's default
LIMIT_S = 15       # generous bound for each step (refusal, election, catch-up)


# ==================================================================== pure

def test_owner_pid_reads_only_our_names():
    assert netns.owner_pid("fmnet123-4-n1") == 123
    assert netns.owner_pid("fmnet123-4-br") == 123
    for other in ("fmnet123", "fmnet-4-n1", "fmnetx-1-n1", "xfmnet1-1-n1", "fmnet1-1-N1", "docker0", ""):
        assert netns.owner_pid(other) is None, other


def test_stale_is_ours_with_a_dead_owner():
    names = ["fmnet10-1-n1", "fmnet10-1-br", "fmnet20-1-n1", "other-30", "fmnet30"]
    assert netns.stale(names, lambda pid: pid == 20) == ["fmnet10-1-n1", "fmnet10-1-br"]
    assert netns.stale(names, lambda pid: True) == []


# ==================================================================== the network

@pytest.fixture(scope="session")
def root_required():
    why = netns.unavailable()
    if why:
        pytest.skip("real partitions need network namespaces: " + why)
    netns.remove_stale()


def _root_view():
    """The root namespace's link names and addresses."""
    links = {line.split(": ")[1].split("@")[0] for line in netns.ip("-o", "link", "show").splitlines()}
    addrs = {line.split()[3] for line in netns.ip("-o", "addr", "show").splitlines()}
    return links, addrs


def _root_problems(net, before):
    """What of net is in the root namespace: a link of its names (new
    since before: "eth0" may be the root's own), an address in its subnet."""
    links, addrs = _root_view()
    ours = {"br0"} | {net.port(m) for m in net.members} | {"eth0"}
    return sorted((links - before[0]) & ours) + sorted(a for a in addrs if a.startswith(netns.SUBNET + "."))


def _listen(net, member):
    with net.entering(member):
        s = socket.socket()
        s.bind((net.address(member), 0))
    s.listen(8)
    return s


def _reaches(net, member, address, timeout=1.0):
    """Whether a TCP connect from member's namespace to address succeeds."""
    with net.entering(member):
        s = socket.socket()
    try:
        s.settimeout(timeout)
        s.connect(address)
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_a_cut_cuts_and_nothing_is_left(root_required):
    before = _root_view()
    net = netns.TestNet(["n1", "n2", "clients"])
    try:
        assert _root_problems(net, before) == [], "the test network is in the root namespace"
        srv = _listen(net, "n1")
        try:
            at = srv.getsockname()
            assert _reaches(net, "clients", at) and _reaches(net, "n2", at)
            net.cut("n1")
            assert not _reaches(net, "clients", at) and not _reaches(net, "n2", at)
            assert _reaches(net, "n1", at), "a connection inside the cut namespace failed"
            net.heal()
            assert wait_for(lambda: _reaches(net, "clients", at) and _reaches(net, "n2", at), 10, 0.1)
        finally:
            srv.close()
        # A child left in a namespace is stopped by close(), the namespaces go.
        child = subprocess.Popen(net.command("n2", ["sleep", "600"]))
        assert wait_for(lambda: child.pid in net.pids()[net.ns("n2")], 5)
        names = list(net.made)
    finally:
        net.close()
    assert child.wait(10) == -9
    assert not set(names) & set(netns.namespaces())
    assert _root_problems(net, before) == []


def test_remove_stale_takes_only_ours_of_dead_runs(root_required):
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine = "%s%d-0-n1" % (netns.PREFIX, dead.pid)
    alive = "%s%d-0-n1" % (netns.PREFIX, os.getpid())
    netns.ip("netns", "add", mine)
    netns.ip("netns", "add", alive)
    try:
        assert mine in netns.remove_stale()
        left = netns.namespaces()
        assert mine not in left and alive in left
    finally:
        for name in (mine, alive):
            netns.ip("netns", "del", name, check=False)


# ==================================================================== the cluster

@pytest.fixture
def netns_cluster(root_required, broker_cluster):
    """netns_cluster(n=3, witness_ids=()) -> a started BrokerCluster on a
    NamespaceNet (conftest's broker_cluster: stopped, its network deleted
    and its logs checked at the end). This thread, the test's, is in the
    clients' namespace until then, and so are the threads it starts."""
    entered = []

    def make(n=3, witness_ids=()):
        c = broker_cluster(n, witness_ids, net=halib.NamespaceNet(n))
        inside = c.net.clients()
        inside.__enter__()
        entered.append(inside)
        return c

    yield make
    for inside in reversed(entered):
        inside.__exit__(None, None, None)


def watch(pred, timeout):
    """Polls pred() every 10 ms in a thread of its own (in the calling
    thread's namespace), from now on, so that its time is measured apart
    from what this thread waits for. Returns a function that waits for the
    first true value and returns (value, monotonic time), or None."""
    got = []

    def run():
        r = wait_for(pred, timeout, 0.01)
        if r:
            got.append((r, time.monotonic()))
    t = threading.Thread(target=run, daemon=True)
    t.start()

    def result():
        t.join(timeout + 5)
        return got[0] if got else None
    return result


def isolate_leader(c):
    """Cuts the leader's link under load and follows what happens; prints
    the times measured."""
    assert c.wait_leader(), "no broker leads\n" + c.report()
    load = haload.Load(c.addresses())
    load.start()
    try:
        time.sleep(1.0)
        old = c.wait_leader()
        assert old, "no broker leads\n" + c.report()
        with c.net.inside(old.id):  # a client on the leader's side of the cut
            publish, pubacks = minority_client(old)
        others = [n for n in c.brokers() if n is not old]
        elected = watch(lambda: c.leader(others), LIMIT_S)
        cut_at = time.monotonic()
        c.net.isolate(old.id)
        publish()  # to the leader cut off, which cannot commit it

        # Short probes: a CONNECT that reaches the serving stack as it is
        # torn down is never answered, and would hide the refusals after it.
        stopped_s = None

        def refused():
            nonlocal stopped_s
            with c.net.inside(old.id):
                r = old.probe(4, timeout=0.2)
            if stopped_s is None and (r is None or r[0] != 0):
                stopped_s = time.monotonic() - cut_at
            return r and r[0] != 0 and r
        answer = wait_for(refused, LIMIT_S, 0.01)
        refused_s = time.monotonic() - cut_at
        assert answer, "the cut-off leader still accepts CONNECT %d s after the cut\n%s" % (LIMIT_S, c.report())
        assert answer[0] == CONNACK_SERVER_UNAVAILABLE, answer
        with c.net.inside(old.id):
            assert old.readyz() == 503, "the cut-off leader's /readyz"
        assert pubacks() == [], "the cut-off leader acknowledged a publish"
        r = elected()
        assert r, "the majority elected no leader\n" + c.report()
        new, elected_s = r[0], r[1] - cut_at
        # The clients find the new leader (the old one is out of their
        # reach, they see it only when their keep-alive runs out): every
        # publisher gets acknowledgements again, every client is its.
        before = load.acked_counts()
        resumed = wait_for(lambda: all(n > before[k] for k, n in load.acked_counts().items()), 30, 0.05)
        assert resumed, "the load did not resume on node %d: %r\n%s" % (new.id, load.acked_counts(), c.report())
        resumed_s = time.monotonic() - cut_at

        def where():
            return {cl.client_id: cl.connected and cl.connects[-1][1] for cl in load.pubs + [load.sub]}
        assert wait_for(lambda: all(a == (new.host, new.port) for a in where().values()), 30, 0.05), \
            "clients not all on node %d: %r" % (new.id, where())
        print("\nnetns cut of leader %d: it stops accepting CONNECT after %.0f ms, refuses it after %.0f ms; "
              "node %d accepts after %.0f ms; every publisher acknowledged again after %.0f ms" % (
                  old.id, stopped_s * 1000, refused_s * 1000, new.id, elected_s * 1000, resumed_s * 1000))
        c.net.heal()
        # Healed: the old leader follows the new one and sends clients there.
        assert wait_for(lambda: (r := old.probe(5)) and r[0] != 0 and r[1] == new.address, LIMIT_S), \
            "after the heal node %d does not name the leader %s: %r" % (old.id, new.address, old.probe(5))
        assert c.leader() is new
        time.sleep(1.0)
        problems = load.finish()
    finally:
        load.stop()
    assert not problems, "\n".join(problems)


def test_leader_cut_off(netns_cluster):
    isolate_leader(netns_cluster(3))


def test_leader_cut_off_in_two_brokers_and_a_witness(netns_cluster):
    """The other broker and the witness are the majority."""
    isolate_leader(netns_cluster(3, witness_ids=(3,)))


def test_follower_cut_off_changes_nothing_for_clients(netns_cluster):
    c = netns_cluster(3)
    leader = c.wait_leader()
    assert leader, "no broker leads\n" + c.report()
    load = haload.Load(c.addresses())
    load.start()
    try:
        time.sleep(0.5)
        lone = next(n for n in c.brokers() if n is not leader)
        connects = {cl.client_id: len(cl.connects) for cl in load.pubs + [load.sub]}
        c.net.isolate(lone.id)
        before = load.acked_counts()
        time.sleep(2 * ELECTION_MS / 1000 + 0.5)
        assert wait_for(lambda: all(n > before[k] for k, n in load.acked_counts().items()), LIMIT_S, 0.05), \
            "the majority stopped acknowledging"
        assert c.leader() is leader, "leadership moved while only a follower was cut off\n" + c.report()
        with c.net.inside(lone.id):
            lone_answer = lone.probe(4)
        assert lone_answer and lone_answer[0] == CONNACK_SERVER_UNAVAILABLE, lone_answer
        c.net.heal()
        caught_s = c.wait_caught_up(lone)
        print("\nnetns cut of follower %d healed: caught up in %.0f ms" % (lone.id, caught_s * 1000))
        assert {cl.client_id: len(cl.connects) for cl in load.pubs + [load.sub]} == connects, \
            "a client had to reconnect while only a follower was cut off"
        problems = load.finish()
    finally:
        load.stop()
    assert not problems, "\n".join(problems)
