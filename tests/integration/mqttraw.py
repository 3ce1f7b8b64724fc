"""Hand-built MQTT 3.1.1 / 5.0 packets over a plain socket.

Used where a test needs byte-exact control: malformed input, exact reason
codes, packets a library would never send (no PUBACK, wrong flags). Every
encoder is a small function so a test can assemble a broken packet from
correct parts.
"""
import socket
import struct
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT, AUTH = 12, 13, 14, 15

TYPE_NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC",
    6: "PUBREL", 7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE",
    11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH",
}

# Property identifiers (MQTT 5.0 section 2.2.2.2) and their wire types.
P_PAYLOAD_FORMAT = 0x01
P_MESSAGE_EXPIRY = 0x02
P_CONTENT_TYPE = 0x03
P_RESPONSE_TOPIC = 0x08
P_CORRELATION_DATA = 0x09
P_SUBSCRIPTION_ID = 0x0B
P_SESSION_EXPIRY = 0x11
P_ASSIGNED_CLIENT_ID = 0x12
P_SERVER_KEEP_ALIVE = 0x13
P_AUTH_METHOD = 0x15
P_AUTH_DATA = 0x16
P_REQUEST_PROBLEM_INFO = 0x17
P_WILL_DELAY = 0x18
P_REQUEST_RESPONSE_INFO = 0x19
P_RESPONSE_INFO = 0x1A
P_SERVER_REFERENCE = 0x1C
P_REASON_STRING = 0x1F
P_RECEIVE_MAXIMUM = 0x21
P_TOPIC_ALIAS_MAXIMUM = 0x22
P_TOPIC_ALIAS = 0x23
P_MAXIMUM_QOS = 0x24
P_RETAIN_AVAILABLE = 0x25
P_USER_PROPERTY = 0x26
P_MAXIMUM_PACKET_SIZE = 0x27
P_WILDCARD_SUB_AVAILABLE = 0x28
P_SUB_ID_AVAILABLE = 0x29
P_SHARED_SUB_AVAILABLE = 0x2A

_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
PROP_TYPES = {
    0x01: _BYTE, 0x02: _U32, 0x03: _STR, 0x08: _STR, 0x09: _BIN, 0x0B: _VARINT,
    0x11: _U32, 0x12: _STR, 0x13: _U16, 0x15: _STR, 0x16: _BIN, 0x17: _BYTE,
    0x18: _U32, 0x19: _BYTE, 0x1A: _STR, 0x1C: _STR, 0x1F: _STR, 0x21: _U16,
    0x22: _U16, 0x23: _U16, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _U32,
    0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}


class ConnectionClosed(Exception):
    pass


# ---------------------------------------------------------------- encoders

def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def u8(n):
    return struct.pack("!B", n)


def u16(n):
    return struct.pack("!H", n)


def u32(n):
    return struct.pack("!I", n)


def mbin(b):
    return u16(len(b)) + b


def mstr(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return mbin(s)


def props(items):
    """Encode a property list: [(id, value), ...]; value of a user property
    is a (key, value) pair. Returns length-prefixed bytes."""
    body = bytearray()
    for pid, val in items or ():
        body += varint(pid)
        t = PROP_TYPES[pid]
        if t == _BYTE:
            body += u8(val)
        elif t == _U16:
            body += u16(val)
        elif t == _U32:
            body += u32(val)
        elif t == _VARINT:
            body += varint(val)
        elif t == _STR:
            body += mstr(val)
        elif t == _BIN:
            body += mbin(val)
        else:
            body += mstr(val[0]) + mstr(val[1])
    return varint(len(body)) + bytes(body)


def packet(ptype, flags, body):
    """Fixed header + body."""
    return u8((ptype << 4) | flags) + varint(len(body)) + body


def connect(client_id="", version=4, clean=True, keepalive=60, will=None,
            username=None, password=None, properties=None, proto_name="MQTT",
            reserved=False):
    """will: dict(topic, payload, qos=0, retain=False, properties=None)."""
    flags = 0
    if clean:
        flags |= 0x02
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3)
        if will.get("retain"):
            flags |= 0x20
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    if reserved:
        flags |= 0x01
    vh = mstr(proto_name) + u8(version) + u8(flags) + u16(keepalive)
    if version == 5:
        vh += props(properties)
    pl = mstr(client_id)
    if will:
        if version == 5:
            pl += props(will.get("properties"))
        pl += mstr(will["topic"])
        payload = will.get("payload", b"")
        pl += mbin(payload if isinstance(payload, bytes) else payload.encode())
    if username is not None:
        pl += mstr(username)
    if password is not None:
        pl += mbin(password if isinstance(password, bytes) else password.encode())
    return packet(CONNECT, 0, vh + pl)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, pid=None,
            version=4, properties=None):
    if isinstance(payload, str):
        payload = payload.encode()
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    body = mstr(topic)
    if qos > 0 or pid is not None:
        body += u16(pid if pid is not None else 1)
    if version == 5:
        body += props(properties)
    return packet(PUBLISH, flags, body + payload)


def ack(ptype, pid, rc=None, version=4, properties=None):
    """PUBACK/PUBREC/PUBREL/PUBCOMP. PUBREL gets its mandatory flags 0x2."""
    flags = 2 if ptype == PUBREL else 0
    body = u16(pid)
    if version == 5 and (rc is not None or properties):
        body += u8(rc or 0)
        if properties:
            body += props(properties)
    return packet(ptype, flags, body)


def subscribe(pid, filters, version=4, properties=None):
    """filters: [(filter, options_byte)] where options is the QoS for v3 and
    QoS | nl<<2 | rap<<3 | rh<<4 for v5."""
    body = u16(pid)
    if version == 5:
        body += props(properties)
    for f, opts in filters:
        body += mstr(f) + u8(opts)
    return packet(SUBSCRIBE, 2, body)


def sub_opts(qos=0, no_local=False, rap=False, rh=0):
    return qos | (4 if no_local else 0) | (8 if rap else 0) | (rh << 4)


def unsubscribe(pid, filters, version=4, properties=None):
    body = u16(pid)
    if version == 5:
        body += props(properties)
    for f in filters:
        body += mstr(f)
    return packet(UNSUBSCRIBE, 2, body)


def pingreq():
    return b"\xc0\x00"


def disconnect(rc=0, version=4, properties=None):
    if version == 5 and (rc or properties):
        return packet(DISCONNECT, 0, u8(rc) + (props(properties) if properties else b""))
    return b"\xe0\x00"


# ---------------------------------------------------------------- decoders

class Reader:
    def __init__(self, data):
        self.d = data
        self.i = 0

    def left(self):
        return len(self.d) - self.i

    def u8(self):
        v = self.d[self.i]
        self.i += 1
        return v

    def u16(self):
        v = struct.unpack_from("!H", self.d, self.i)[0]
        self.i += 2
        return v

    def u32(self):
        v = struct.unpack_from("!I", self.d, self.i)[0]
        self.i += 4
        return v

    def varint(self):
        mult, val = 1, 0
        for _ in range(4):
            b = self.u8()
            val += (b & 0x7F) * mult
            if not b & 0x80:
                return val
            mult *= 128
        raise ValueError("varint too long")

    def bin(self):
        n = self.u16()
        v = self.d[self.i:self.i + n]
        if len(v) != n:
            raise ValueError("short binary")
        self.i += n
        return bytes(v)

    def str(self):
        return self.bin().decode("utf-8")

    def rest(self):
        v = bytes(self.d[self.i:])
        self.i = len(self.d)
        return v

    def props(self):
        """Returns {id: value}; user properties and subscription ids are
        lists (they may repeat)."""
        n = self.varint()
        end = self.i + n
        out = {}
        while self.i < end:
            pid = self.varint()
            t = PROP_TYPES.get(pid)
            if t is None:
                raise ValueError("unknown property 0x%02x" % pid)
            if t == _BYTE:
                v = self.u8()
            elif t == _U16:
                v = self.u16()
            elif t == _U32:
                v = self.u32()
            elif t == _VARINT:
                v = self.varint()
            elif t == _STR:
                v = self.str()
            elif t == _BIN:
                v = self.bin()
            else:
                v = (self.str(), self.str())
            if pid in (P_USER_PROPERTY, P_SUBSCRIPTION_ID):
                out.setdefault(pid, []).append(v)
            else:
                if pid in out:
                    raise ValueError("duplicate property 0x%02x" % pid)
                out[pid] = v
        if self.i != end:
            raise ValueError("property length mismatch")
        return out


class Packet:
    """A received packet. Fields set depend on the type:
    CONNACK: session_present, rc, props
    PUBLISH: topic, pid, payload, qos, retain, dup, props
    PUBACK..PUBCOMP: pid, rc, props
    SUBACK/UNSUBACK: pid, codes, props
    DISCONNECT/AUTH: rc, props
    """

    def __init__(self, first, body, version):
        self.type = first >> 4
        self.flags = first & 0x0F
        self.raw = bytes(body)
        self.rc = None
        self.props = {}
        self.pid = None
        r = Reader(body)
        t = self.type
        if t == CONNACK:
            self.session_present = bool(r.u8() & 1)
            self.rc = r.u8()
            if version == 5 and r.left():
                self.props = r.props()
        elif t == PUBLISH:
            self.qos = (self.flags >> 1) & 3
            self.retain = bool(self.flags & 1)
            self.dup = bool(self.flags & 8)
            self.topic = r.str()
            if self.qos:
                self.pid = r.u16()
            if version == 5:
                self.props = r.props()
            self.payload = r.rest()
        elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            self.pid = r.u16()
            self.rc = 0
            if version == 5 and r.left():
                self.rc = r.u8()
                if r.left():
                    self.props = r.props()
        elif t in (SUBACK, UNSUBACK):
            self.pid = r.u16()
            if version == 5:
                self.props = r.props()
            self.codes = list(r.rest())
        elif t in (DISCONNECT, AUTH):
            self.rc = 0
            if r.left():
                self.rc = r.u8()
                if r.left():
                    self.props = r.props()

    @property
    def name(self):
        return TYPE_NAMES.get(self.type, str(self.type))

    def __repr__(self):
        extra = ""
        if self.type == PUBLISH:
            extra = " topic=%r qos=%d pid=%s retain=%d dup=%d payload=%r" % (
                self.topic, self.qos, self.pid, self.retain, self.dup, self.payload[:40])
        elif self.rc is not None:
            extra = " rc=0x%02x" % self.rc
        if self.pid is not None and self.type != PUBLISH:
            extra += " pid=%d" % self.pid
        if self.props:
            extra += " props=%r" % self.props
        return "<%s%s>" % (self.name, extra)


class RawClient:
    """One TCP connection speaking hand-built MQTT."""

    def __init__(self, port, version=4, host="127.0.0.1", timeout=5.0):
        self.version = version
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.closed_seen = False
        self.aliases = {}
        self.pending = []  # packets set aside by expect_skip, returned first

    # -- transport
    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no packet from broker")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no packet from broker")
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed_seen = True
            raise ConnectionClosed("broker closed the connection")
        self.buf += chunk

    def recv(self, timeout=5.0):
        """Next packet; TimeoutError if none in time, ConnectionClosed on EOF."""
        if self.pending:
            return self.pending.pop(0)
        return self._recv_wire(timeout)

    def _recv_wire(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                mult, length, i = 1, 0, 1
                complete = False
                while i < len(self.buf) and i <= 4:
                    b = self.buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        complete = True
                        break
                if complete and len(self.buf) >= i + length:
                    first = self.buf[0]
                    body = self.buf[i:i + length]
                    del self.buf[:i + length]
                    return Packet(first, body, self.version)
            self._fill(deadline)

    def expect(self, ptype, timeout=5.0):
        p = self.recv(timeout)
        assert p.type == ptype, "expected %s, got %r" % (TYPE_NAMES[ptype], p)
        return p

    def expect_skip(self, ptype, timeout=5.0):
        """Next packet of ptype; other packets that arrive first are kept
        and returned by later recv() calls in order."""
        for i, p in enumerate(self.pending):
            if p.type == ptype:
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            p = self._recv_wire(max(0.0, deadline - time.monotonic()))
            if p.type == ptype:
                return p
            self.pending.append(p)

    def recv_until_closed(self, timeout=5.0):
        """Read packets until the broker closes the connection. Returns the
        packets seen. TimeoutError if the connection is still open."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                seen.append(self.recv(max(0.0, deadline - time.monotonic())))
            except ConnectionClosed:
                return seen

    def is_closed(self, timeout=5.0):
        try:
            self.recv_until_closed(timeout)
            return True
        except TimeoutError:
            return False

    def quiet(self, period=0.5):
        """Packets that arrive within period (for 'nothing more arrives')."""
        seen = []
        deadline = time.monotonic() + period
        while True:
            try:
                seen.append(self.recv(max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                return seen

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- protocol helpers
    def connect(self, client_id="", **kw):
        """Send CONNECT, return the CONNACK."""
        kw.setdefault("version", self.version)
        self.send(connect(client_id, **kw))
        return self.expect(CONNACK)

    def publish(self, topic, payload=b"", qos=0, retain=False, pid=None,
                properties=None, dup=False):
        """Publish; for QoS 1 returns the PUBACK, for QoS 2 runs the full
        PUBREC/PUBREL/PUBCOMP flow and returns the PUBREC."""
        if qos and pid is None:
            pid = 1
        self.send(publish(topic, payload, qos, retain, dup, pid if qos else None,
                          self.version, properties))
        if qos == 1:
            return self.expect_skip(PUBACK)
        if qos == 2:
            rec = self.expect_skip(PUBREC)
            if rec.rc is not None and rec.rc >= 0x80:
                return rec
            self.send(ack(PUBREL, pid, version=self.version))
            self.expect_skip(PUBCOMP)
            return rec
        return None

    def subscribe(self, filters, pid=1, properties=None):
        """filters: [(filter, options)] or a single filter string (QoS 0)."""
        if isinstance(filters, str):
            filters = [(filters, 0)]
        self.send(subscribe(pid, filters, self.version, properties))
        return self.expect_skip(SUBACK)

    def unsubscribe(self, filters, pid=1, properties=None):
        self.send(unsubscribe(pid, filters, self.version, properties))
        return self.expect_skip(UNSUBACK)

    def ack(self, p):
        """Acknowledge a received PUBLISH (PUBACK or PUBREC)."""
        if p.qos == 1:
            self.send(ack(PUBACK, p.pid, version=self.version))
        elif p.qos == 2:
            self.send(ack(PUBREC, p.pid, version=self.version))

    def ack_fully(self, p, timeout=5.0):
        """Acknowledge a PUBLISH, completing the QoS 2 flow."""
        self.ack(p)
        if p.qos == 2:
            rel = self.expect_skip(PUBREL, timeout)
            self.send(ack(PUBCOMP, rel.pid, version=self.version))

    def resolve_topic(self, p):
        """Topic of a received PUBLISH, applying server topic aliases."""
        alias = p.props.get(P_TOPIC_ALIAS)
        if alias is not None:
            if p.topic:
                self.aliases[alias] = p.topic
            else:
                return self.aliases[alias]
        return p.topic

    def disconnect(self, rc=0, properties=None, wait=True):
        """Send DISCONNECT and close. With wait, first wait until the broker
        has closed its side, so it has processed the DISCONNECT before the
        test goes on (a new connection could otherwise overtake it): the
        session is detached then, and what is published next is queued for
        it (or dropped, for a session that ends) as after the close."""
        try:
            self.send(disconnect(rc, self.version, properties))
            if wait:
                self.close_wait()
        except OSError:
            pass
        self.close()

    def close_wait(self, timeout=5.0):
        """Close our sending side without DISCONNECT and wait until the broker
        has closed the connection (it has seen the close)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            self.recv_until_closed(timeout)
        except (TimeoutError, OSError):
            pass
        self.close()
