"""A cluster node that changes role answers CONNECT at once (issue 14): the
stack it switches to takes the listening sockets over while the old one's
connections still close. Before, the new stack bound its listeners only once
the old one had stopped, after its connections had lingered (up to a second
when their clients do not read), and CONNECTs went unanswered meanwhile.

Ordering, not timing: each test holds connections that do not read (nor
close) on the node, waits until the node's old stack has begun to close one
(its write side shut: it lingers, held by the broker process), and then
proves that the node's answer of its new role (a refusal, CONNACK 0, /readyz)
comes while the broker still holds that connection. Cases: the leader cut
off from its peers (fault proxy), leadership handed over (old leader to
standby, and a follower to serving, while its standby stack still holds a
connection), repeated flips (ASan checks each node's log at the end), TLS
and WebSocket listeners, and a serving broker gone out of step (a
transaction that did not commit), rebuilt while the node refuses."""
import json
import os
import socket
import ssl
import time

import mqttraw
from fm_harness import free_port
from halib import CONNACK_SERVER_UNAVAILABLE, CONNACK_USE_ANOTHER_SERVER, wait_for
from test_operations import change_done, http
from tls_certs import PKI
from ws_client import OP_BINARY, WSClient

TCP_FIN_WAIT2 = 5  # /proc/net/tcp's st: our FIN sent and acknowledged
LIMIT_S = 15       # generous bound for each step


# ==================================================================== the broker's sockets

def _ipv4_hex(addr):
    """/proc/net/tcp's form of an IPv4 address (host byte order, x86)."""
    return "%08X" % int.from_bytes(socket.inet_aton(addr), "little")


def held_state(node, client_port, port=None):
    """The TCP state of node's side of the connection from client_port (to
    its listener on port, by default the MQTT one) while the broker process
    holds it (a descriptor of its own refers to the socket), else None:
    closed, or orphaned to the kernel."""
    pid = node.proc.pid
    local = "%s:%04X" % (_ipv4_hex(node.host), port or node.port)
    try:
        with open("/proc/%d/net/tcp" % pid) as f:
            rows = f.read().splitlines()[1:]
        fds = set()
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                fds.add(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
            except OSError:
                pass  # closed meanwhile
    except OSError:
        return None  # the process is gone
    for row in rows:
        f = row.split()
        if f[1] == local and int(f[2].split(":")[1], 16) == client_port and f[9] != "0":
            if "socket:[%s]" % f[9] in fds:
                return int(f[3], 16)
    return None


class Silent:
    """A connection that never reads and never closes (until the test ends):
    its broker side lingers the longest when the broker says goodbye."""

    def __init__(self, node, version=4, connect=True, port=None, tls=None):
        self.node, self.listen_port = node, port or node.port
        self.raw = mqttraw.RawClient(self.listen_port, version, host=node.host)
        if tls:
            self.raw.sock = tls.wrap_socket(self.raw.sock, server_hostname="localhost")
        if connect:
            # The one read: the CONNACK, so that it is a connected client.
            assert self.raw.connect("ha-silent-%d" % time.monotonic_ns(), clean=True).rc == 0
        self.port = self.raw.sock.getsockname()[1]

    def state(self):
        return held_state(self.node, self.port, self.listen_port)

    def lingering(self):
        """The broker has shut its side (said goodbye) and holds the socket."""
        return self.state() == TCP_FIN_WAIT2

    def close(self):
        self.raw.close()


def silent_clients(node, n=4):
    """n connected clients of node, v3.1.1 and v5, that stop reading."""
    return [Silent(node, version=4 if i % 2 == 0 else 5) for i in range(n)]


def refusal_while_lingering(node, silent):
    """Waits until one of silent (node's old connections) lingers, then
    probes node: the refusal (v3.1.1 and v5) and /readyz 503 must come while
    that connection is still held. Returns the v5 answer."""
    lingerer = wait_for(lambda: next((s for s in silent if s.lingering()), None), LIMIT_S, 0.005)
    assert lingerer, "no old connection of node %d lingers: %r" % (node.id, [s.state() for s in silent])
    v3 = node.probe(4, timeout=0.5)
    still = lingerer.state()  # right after the one answer whose order counts
    v5 = node.probe(5, timeout=0.5)
    ready = node.readyz(timeout=0.5)
    assert v3 and v3[0] == CONNACK_SERVER_UNAVAILABLE, "node %d's v3.1.1 answer: %r" % (node.id, v3)
    assert still == TCP_FIN_WAIT2, (
        "node %d answered, but only after its old connection (client port %d) was closed (state %r): the "
        "new stack waited for the old one" % (node.id, lingerer.port, still))
    assert v5 and v5[0] == CONNACK_USE_ANOTHER_SERVER, "node %d's v5 answer: %r" % (node.id, v5)
    assert ready == 503, "node %d's /readyz: %r" % (node.id, ready)
    return v5


# ==================================================================== the tests

def test_cut_off_leader_refuses_while_its_connections_linger(broker_cluster):
    c = broker_cluster(3)
    old = c.wait_leader()
    assert old, "no broker leads\n" + c.report()
    silent = silent_clients(old)
    try:
        c.net.isolate(old.id)
        refusal_while_lingering(old, silent)
        others = [n for n in c.brokers() if n is not old]
        new = wait_for(lambda: c.leader(others), LIMIT_S, 0.02)
        assert new, "the majority elected no leader\n" + c.report()
        c.net.heal()
        assert wait_for(lambda: (r := old.probe(5)) and r[0] == CONNACK_USE_ANOTHER_SERVER and
                        r[1] == new.address, LIMIT_S), "node %d does not name the leader after the heal" % old.id
    finally:
        for s in silent:
            s.close()


def transfer(c, leader, target):
    """Hands leadership from leader to target (asked again of whoever leads
    if libraft gives the transfer up) and waits until target serves."""
    for _ in range(5):
        code, body = http(leader, "POST", "/api/cluster/transfer", json.dumps({"id": target.id}))
        if code == 202:
            change_done(c, leader, "transfer", target.id)
        if wait_for(lambda: c.leader([target]) is target, 5, 0.01):
            return
        leader = c.wait_leader()
        assert leader, "no broker leads\n" + c.report()
    raise AssertionError("node %d does not lead after 5 transfers\n%s" % (target.id, c.report()))


def test_transfer_both_ways_answers_while_the_old_stack_lingers(broker_cluster):
    """Leadership goes back and forth between two nodes, three times each
    way. Each time the old leader refuses while its old connections linger,
    and the new one serves while its standby stack still holds a connection
    (one that never sent CONNECT: the standby's stop says goodbye to it)."""
    c = broker_cluster(3)
    leader = c.wait_leader()
    assert leader, "no broker leads\n" + c.report()
    follower = next(n for n in c.brokers() if n is not leader)
    held = []
    try:
        for _ in range(6):
            silent = silent_clients(leader, 2)
            idle = Silent(follower, connect=False)  # before its CONNECT: the standby keeps it open
            held += silent + [idle]
            # Accepted (ESTABLISHED, held by the broker) before the transfer.
            assert wait_for(lambda: idle.state() == 1, LIMIT_S, 0.005), "the follower's idle connection: %r" % (
                idle.state(),)
            code, body = http(leader, "POST", "/api/cluster/transfer", json.dumps({"id": follower.id}))
            assert code == 202, (code, body)
            ref = refusal_while_lingering(leader, silent)
            assert ref[1] in (None, "", follower.address), "node %d's Server Reference: %r" % (leader.id, ref)
            # The follower serves; its standby stack's connection still
            # lingers when its first CONNACK 0 comes.
            served = wait_for(lambda: idle.lingering() and (r := follower.probe(4, timeout=0.5)) and r[0] == 0,
                              LIMIT_S, 0.005)
            still = idle.state()
            if not served:
                # libraft may give a transfer up: the leader keeps leading,
                # its broker rebuilt (it refused meanwhile, as checked).
                # Then it is asked again; only that it ends up serving.
                assert c.wait_leader() is leader, "node %d does not serve after the transfer\n%s" % (
                    follower.id, c.report())
                transfer(c, leader, follower)
            else:
                assert still == TCP_FIN_WAIT2, (
                    "node %d served only after its standby's connection closed (state %r)" % (follower.id, still))
                assert follower.readyz(timeout=0.5) == 200
            leader, follower = follower, leader
            for s in held:
                s.close()
            held = []
    finally:
        for s in held:
            s.close()


def ws_connack(node, port, version):
    """The CONNACK code of a CONNECT over WebSocket to node's port."""
    w = WSClient(port, host=node.host, timeout=1.0)
    try:
        status, _ = w.handshake()
        assert status == 101, status
        w.send_frame(OP_BINARY, mqttraw.connect("ha-ws-%d" % time.monotonic_ns(), version=version))
        p = w.mqtt_recv(version=version, timeout=1.0)
        assert p.type == mqttraw.CONNACK, p
        return p.rc
    finally:
        w.sock.close()


def tls_connack(node, port, tls, version):
    """The CONNACK code of a CONNECT over TLS to node's port."""
    r = mqttraw.RawClient(port, version, host=node.host, timeout=1.0)
    try:
        r.sock = tls.wrap_socket(r.sock, server_hostname="localhost")
        return r.connect("ha-tls-%d" % time.monotonic_ns(), clean=True).rc
    finally:
        r.close()


def test_tls_and_websocket_listeners_go_over_too(broker_cluster, tmp_path):
    """Each node also listens with TLS and with WebSocket: after a transfer
    both answer in the new role, the old leader's while one of its TLS
    connections that does not read still lingers."""
    pki = PKI(tmp_path / "pki")
    crt, key = pki.server()
    tls_port, ws_port = free_port(), free_port()
    c = broker_cluster(3, extra_lines=["listener %d {host}" % tls_port, "certfile " + crt, "keyfile " + key,
                                       "listener %d {host}" % ws_port, "protocol websockets"])
    tls = ssl.create_default_context(cafile=pki.ca)
    leader = c.wait_leader()
    assert leader, "no broker leads\n" + c.report()
    follower = next(n for n in c.brokers() if n is not leader)
    assert tls_connack(leader, tls_port, tls, 4) == 0 and ws_connack(leader, ws_port, 4) == 0
    assert tls_connack(follower, tls_port, tls, 4) == CONNACK_SERVER_UNAVAILABLE
    assert ws_connack(follower, ws_port, 5) == CONNACK_USE_ANOTHER_SERVER
    silent = [Silent(leader, version=4, port=tls_port, tls=tls) for _ in range(2)]
    try:
        code, body = http(leader, "POST", "/api/cluster/transfer", json.dumps({"id": follower.id}))
        assert code == 202, (code, body)
        lingerer = wait_for(lambda: next((s for s in silent if s.lingering()), None), LIMIT_S, 0.005)
        assert lingerer, "no TLS connection of node %d lingers: %r" % (leader.id, [s.state() for s in silent])
        first = ws_connack(leader, ws_port, 4)
        still = lingerer.state()  # right after the one answer whose order counts
        answers = (first, tls_connack(leader, tls_port, tls, 4), ws_connack(leader, ws_port, 5),
                   tls_connack(leader, tls_port, tls, 5))
        assert answers == (CONNACK_SERVER_UNAVAILABLE,) * 2 + (CONNACK_USE_ANOTHER_SERVER,) * 2, answers
        assert still == TCP_FIN_WAIT2, "node %d answered only after its TLS connection closed (%r)" % (
            leader.id, still)
    finally:
        for s in silent:
            s.close()
    if not wait_for(lambda: c.leader([follower]) is follower, LIMIT_S, 0.01):
        transfer(c, c.wait_leader(), follower)  # libraft gave the transfer up: asked again
    assert tls_connack(follower, tls_port, tls, 5) == 0 and ws_connack(follower, ws_port, 5) == 0


def test_out_of_step_broker_refuses_while_its_connections_linger_then_serves(broker_cluster):
    """A transaction that does not commit while the node goes on leading
    (a transfer to a node cut off, which libraft gives up; meanwhile it
    takes no entry): the serving broker goes out of step, the node refuses
    while its old connections linger, and serves again from the database."""
    c = broker_cluster(3)
    leader = c.wait_leader()
    assert leader, "no broker leads\n" + c.report()
    target = next(n for n in c.brokers() if n is not leader)
    silent = silent_clients(leader)
    try:
        c.net.isolate(target.id)
        code, body = http(leader, "POST", "/api/cluster/transfer", json.dumps({"id": target.id}))
        assert code == 202, (code, body)
        # A persistent session's CONNECT is a transaction, refused while
        # the transfer runs: the broker goes out of step.
        r = mqttraw.RawClient(leader.port, 4, host=leader.host, timeout=1.0)
        try:
            r.connect("ha-out-of-step", clean=False)
        except (TimeoutError, mqttraw.ConnectionClosed, OSError):
            pass
        finally:
            r.close()
        refusal_while_lingering(leader, silent)
        with open(leader.log) as f:
            assert "a transaction did not commit" in f.read(), c.report()
        assert wait_for(lambda: c.leader([leader]) is leader, LIMIT_S, 0.02), (
            "node %d does not serve again\n%s" % (leader.id, c.report()))
    finally:
        for s in silent:
            s.close()
        c.net.heal()
