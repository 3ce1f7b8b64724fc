"""faultproxy: partitions between cluster nodes on loopback, without root.

Every node's peers are configured at proxy ports instead of their cluster
listeners: one proxy port per destination node, forwarding to that node's
real listener. The proxy learns which node a connection comes from from the
first bytes the node sends, raft's TCP handshake (libraft's uv transport,
protocol 1: u64 protocol, u64 server id, u64 length of the address buffer,
the address NUL-padded to a multiple of 8; integers little-endian), so one
port per destination serves every source. It rewrites the handshake's
address to the source's proxy address: raft answers a message at the
address its sender's handshake gave, so without that every reply would go
straight to the sender's real listener.

A link is an ordered pair (src, dst): the bytes src sends to dst, whichever
connection carries them (raft's connections are one-way, but both streams of
a connection are ruled by their own link). Two ways to cut:

- "stall": bytes are no longer forwarded (new connections are accepted and
  held); on heal, what waited is delivered. This is a cable pulled for less
  than TCP's retransmission timeout: nothing is refused, nothing arrives.
- "reset": the pair's connections are closed at once (RST) and new ones are
  closed as soon as they are identified. This is a firewall's REJECT.

Limitation: a node's own entry in the raft configuration is its real
listener (it binds what it advertises). A node that installed a snapshot
from leader L knows L by L's real address and talks to it past the proxy.
bypasses() finds such connections, so a partition test can check that its
cut really separates the nodes before it believes the result.
"""
import socket
import struct
import threading

RAFT_HANDSHAKE_PROTOCOL = 1
HANDSHAKE_HEADER = struct.Struct("<QQQ")  # protocol, server id, address buffer length
HANDSHAKE_MAX_ADDRESS = 1024


def raft_handshake_header(head):
    """(server id, address buffer length) from the first 24 bytes of a raft
    uv TCP connection, or None when they are not a protocol-1 handshake."""
    if len(head) < HANDSHAKE_HEADER.size:
        return None
    protocol, server_id, alen = HANDSHAKE_HEADER.unpack(head[:HANDSHAKE_HEADER.size])
    if protocol != RAFT_HANDSHAKE_PROTOCOL or alen % 8 or not 0 < alen <= HANDSHAKE_MAX_ADDRESS:
        return None
    return server_id, alen


def raft_handshake(server_id, address):
    """The handshake a node with this id and address sends."""
    raw = address.encode() + b"\0"
    raw += b"\0" * (-len(raw) % 8)
    return HANDSHAKE_HEADER.pack(RAFT_HANDSHAKE_PROTOCOL, server_id, len(raw)) + raw


def _recv_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def _hard_close(sock):
    """Close with RST (SO_LINGER 0), waking any thread blocked on it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class _Conn:
    """One proxied connection: src's socket (accepted) and dst's (ours)."""

    def __init__(self, src, dst, down):
        self.src, self.dst, self.down = src, dst, down
        self.up = None
        self.up_port = None
        self.closed = False


class FaultNet:
    """The proxies of one cluster and the state of its links.

    net = FaultNet(); p = net.add_node(2, real_port)  # node 2 is reached at p
    net.cut(1, 2)               # both directions, stall
    net.cut(1, 2, both=False)   # only what 1 sends to 2
    net.isolate(1)              # 1 from every other node, both directions
    net.heal()                  # every link open again
    net.close()
    """

    MODES = ("stall", "reset")

    def __init__(self, host="127.0.0.1"):
        self.host = host      # the default address of nodes and proxies
        self.cond = threading.Condition()
        self.cuts = {}        # (src, dst) -> mode
        self.targets = {}     # node id -> (host, real port)
        self.listeners = {}   # node id -> (socket, (host, proxy port))
        self.conns = set()
        self.bytes = {}       # (src, dst) -> bytes forwarded
        self.unknown_sources = 0
        self.upstream_ports = set()  # local ports of our connections to real listeners
        self.threads = []
        self.closing = False

    # ------------------------------------------------------------ setup

    def add_node(self, node_id, real_port, proxy_port=None, host=None):
        """Listens for node_id's peers on host (the node's own address, whose
        real listener is real_port there); returns the proxy port they must
        be given as node_id's address. proxy_port: a port the caller reserved
        (the test harness's pool), else one the kernel picks."""
        host = host or self.host
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, proxy_port or 0))
        ls.listen(64)
        port = ls.getsockname()[1]
        with self.cond:
            self.targets[node_id] = (host, real_port)
            self.listeners[node_id] = (ls, (host, port))
        self._spawn(self._accept_loop, node_id, ls)
        return port

    def proxy_port(self, node_id):
        return self.listeners[node_id][1][1]

    def proxy_address(self, node_id):
        """HOST:PORT at which the other nodes must be told node_id is."""
        return "%s:%d" % self.listeners[node_id][1]

    def close(self):
        with self.cond:
            self.closing = True
            conns = list(self.conns)
            self.cond.notify_all()
        for ls, _ in self.listeners.values():
            try:
                ls.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            ls.close()
        for c in conns:
            self._drop(c)
        with self.cond:
            threads = list(self.threads)
        for t in threads:
            t.join(5)

    # ------------------------------------------------------------ faults

    def cut(self, a, b, both=True, mode="stall"):
        """Cut what a sends to b (and what b sends to a if both)."""
        if mode not in self.MODES:
            raise ValueError("mode %r: one of %s" % (mode, self.MODES))
        pairs = [(a, b), (b, a)] if both else [(a, b)]
        with self.cond:
            for p in pairs:
                self.cuts[p] = mode
            doomed = [c for c in self.conns if mode == "reset" and self._touches(c, pairs)]
            self.cond.notify_all()
        for c in doomed:
            self._drop(c)

    def isolate(self, node_id, both=True, mode="stall", outgoing=True):
        """Cut node_id from every other node. both=False cuts one way only:
        what it sends (outgoing=True) or what it receives (outgoing=False)."""
        for other in list(self.targets):
            if other == node_id:
                continue
            if both:
                self.cut(node_id, other, True, mode)
            elif outgoing:
                self.cut(node_id, other, False, mode)
            else:
                self.cut(other, node_id, False, mode)

    def heal(self):
        with self.cond:
            self.cuts.clear()
            self.cond.notify_all()

    def is_cut(self, src, dst):
        with self.cond:
            return (src, dst) in self.cuts

    def forwarded(self, src, dst):
        """Bytes forwarded from src to dst so far."""
        with self.cond:
            return self.bytes.get((src, dst), 0)

    def bypasses(self):
        """Established connections to a node's real listener that are not
        the proxy's own: raft traffic that no cut can reach. A list of
        (real port, client's local port)."""
        real = {port for _, port in self.targets.values()}
        with self.cond:
            ours = set(self.upstream_ports)
        found = []
        for path in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(path) as f:
                    rows = f.read().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                fields = row.split()
                if int(fields[3], 16) != 1:  # ESTABLISHED
                    continue
                local = int(fields[1].rsplit(":", 1)[1], 16)
                remote = int(fields[2].rsplit(":", 1)[1], 16)
                if remote in real and local not in ours:
                    found.append((remote, local))
        return found

    # ------------------------------------------------------------ internals

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        with self.cond:
            self.threads = [x for x in self.threads if x.is_alive()] + [t]

    @staticmethod
    def _touches(c, pairs):
        return (c.src, c.dst) in pairs or (c.dst, c.src) in pairs

    def _accept_loop(self, dst, ls):
        while True:
            try:
                down, _ = ls.accept()
            except OSError:
                return  # closed
            self._spawn(self._serve, dst, down)

    def _wait_open(self, src, dst, conn):
        """Blocks while src -> dst is stalled; False once the connection is
        to be dropped (reset, or the net is closing)."""
        with self.cond:
            while True:
                if conn.closed or self.closing:
                    return False
                mode = self.cuts.get((src, dst))
                if mode is None:
                    return True
                if mode == "reset":
                    return False
                self.cond.wait()

    def _serve(self, dst, down):
        down.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            head = _recv_exactly(down, HANDSHAKE_HEADER.size)
            parsed = raft_handshake_header(head)
            if parsed:
                head += _recv_exactly(down, parsed[1])
        except OSError:
            down.close()
            return
        src = parsed[0] if parsed else None
        if src not in self.listeners or len(head) != HANDSHAKE_HEADER.size + parsed[1]:
            # Not raft's handshake, or from a node we do not proxy: the rules
            # cannot be applied. Counted, so a test can fail on it, and refused.
            with self.cond:
                self.unknown_sources += 1
            _hard_close(down)
            return
        head = raft_handshake(src, self.proxy_address(src))
        conn = _Conn(src, dst, down)
        with self.cond:
            self.conns.add(conn)
        if not self._wait_open(src, dst, conn):
            self._drop(conn)
            return
        try:
            up = socket.create_connection(self.targets[dst], timeout=5)
        except OSError:
            self._drop(conn)
            return
        up.settimeout(None)
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.cond:
            dead = conn.closed  # reset (or closing) while we connected
            if not dead:
                conn.up, conn.up_port = up, up.getsockname()[1]
                self.upstream_ports.add(conn.up_port)
        if dead:
            _hard_close(up)
            return
        try:
            up.sendall(head)
        except OSError:
            self._drop(conn)
            return
        with self.cond:
            self.bytes[(src, dst)] = self.bytes.get((src, dst), 0) + len(head)
        self._spawn(self._pump, conn, up, down, dst, src)
        self._pump(conn, down, up, src, dst)

    def _pump(self, conn, frm, to, src, dst):
        """Forwards frm -> to (the bytes src sends dst) until either side
        closes. Bytes read while the link is stalled wait here."""
        try:
            while True:
                data = frm.recv(65536)
                if not data:
                    break
                if not self._wait_open(src, dst, conn):
                    break
                to.sendall(data)
                with self.cond:
                    self.bytes[(src, dst)] = self.bytes.get((src, dst), 0) + len(data)
        except OSError:
            pass
        self._drop(conn)

    def _drop(self, conn):
        with self.cond:
            if conn.closed:
                return
            conn.closed = True
            self.conns.discard(conn)
            self.cond.notify_all()
        _hard_close(conn.down)
        if conn.up is not None:
            _hard_close(conn.up)
            # Only now: until closed, it is one of ours to bypasses().
            with self.cond:
                self.upstream_ports.discard(conn.up_port)
