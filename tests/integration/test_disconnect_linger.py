"""After the broker's goodbye (a DISCONNECT with a reason code, a refused
CONNACK) a client that is still sending reads the reason instead of a reset,
on every transport (issue 12 #4); and every end of a connection is logged
once, with its cause (issue 12 #5)."""
import os
import re
import socket
import struct
import time

import pytest

import mqttraw
from conftest import free_port
from test_tls import client_ctx, pki, tls_listener  # noqa: F401 (pki is a fixture)
from ws_client import OP_BINARY, OP_CLOSE, WSClient

FLOOD = 8 << 20  # more than the kernel's buffers on both sides hold


def flood_bytes():
    p = mqttraw.publish("flood/t", b"z" * 8000)
    return p * (FLOOD // len(p))


class Tcp:
    def __init__(self, port, **_):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)

    def send(self, data):
        self.sock.sendall(data)

    def mqtt_bytes(self):
        """Everything the broker sends until it closes."""
        data = bytearray()
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk


class Tls(Tcp):
    def __init__(self, port, pki, **_):  # noqa: F811
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = client_ctx(pki).wrap_socket(raw, server_hostname="localhost")


class Ws:
    def __init__(self, port, **_):
        self.w = WSClient(port, timeout=10)
        assert self.w.handshake()[0] == 101
        self.sock = self.w.sock

    def send(self, data):
        self.sock.sendall(WSClient.frame(OP_BINARY, data))

    def mqtt_bytes(self):
        """The payload of every binary frame until the close frame."""
        data = bytearray()
        while True:
            fin, op, payload = self.w.recv_frame(timeout=10)
            if op == OP_CLOSE:
                return data
            data += payload


def make_broker(start_broker, pki, transport, **options):  # noqa: F811
    port = free_port()
    lines = ["listener %d 127.0.0.1" % port]
    if transport == "tls":
        lines = tls_listener(pki, port)
    elif transport == "ws":
        lines.append("protocol websockets")
    b = start_broker(extra_lines=lines, persistence=False, **options)
    return b, port


def read_packets(conn):
    """Every MQTT packet until the broker closes."""
    data = conn.mqtt_bytes()
    got = []
    while data:
        n, mult, i = 0, 1, 1
        while True:
            n += (data[i] & 0x7F) * mult
            mult *= 128
            i += 1
            if not data[i - 1] & 0x80:
                break
        got.append(mqttraw.Packet(data[0], bytes(data[i:i + n]), 5))
        del data[:i + n]
    return got


TRANSPORTS = ["tcp", "tls", "ws"]
CLASSES = {"tcp": Tcp, "tls": Tls, "ws": Ws}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_disconnect_reason_reaches_a_client_still_sending(start_broker, pki, transport):  # noqa: F811
    b, port = make_broker(start_broker, pki, transport, receive_maximum=2)
    c = CLASSES[transport](port, pki=pki)
    c.send(mqttraw.connect("busy", version=5))
    # Three QoS 2 publishes never released: the third exceeds Receive
    # Maximum (0x93); megabytes follow before the client reads anything.
    burst = b"".join(mqttraw.publish("rm/t", b"x", qos=2, pid=i, version=5) for i in (1, 2, 3))
    c.send(burst + flood_bytes())
    got = read_packets(c)
    assert got[0].type == mqttraw.CONNACK and got[0].rc == 0, got
    assert (got[-1].type, got[-1].rc) == (mqttraw.DISCONNECT, 0x93), got
    b.wait_log(r"client busy .*disconnected: receive maximum exceeded \(0x93\)")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refused_connack_reaches_a_client_still_sending(start_broker, pki, transport):  # noqa: F811
    b, port = make_broker(start_broker, pki, transport, allow_anonymous=False)
    c = CLASSES[transport](port, pki=pki)
    c.send(mqttraw.connect("anon", version=5) + flood_bytes())
    got = read_packets(c)
    assert [(p.type, p.rc) for p in got] == [(mqttraw.CONNACK, 0x87)], got


def ends_of(b, client_id):
    return [line for line in b.log_text().splitlines()
            if re.search(r"client %s\b.*disconnected" % re.escape(client_id), line)]


def test_every_end_is_logged_once_with_its_cause(start_broker, raw):
    b = start_broker(persistence=False)
    # EOF without DISCONNECT.
    r = raw(b)
    assert r.connect("eof-client").rc == 0
    r.sock.close()
    b.wait_log(r"client eof-client \(127\.0\.0\.1:\d+, identity -\) disconnected: closed by the client "
               r"without DISCONNECT")
    # A reset.
    r = raw(b)
    assert r.connect("rst-client").rc == 0
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    r.sock.close()
    b.wait_log(r"client rst-client .*disconnected: connection reset by the client")
    # A clean DISCONNECT.
    r = raw(b)
    assert r.connect("clean-client").rc == 0
    r.disconnect()
    b.wait_log(r"client clean-client disconnected \(0x00\)")
    # A take-over.
    old, new = raw(b), raw(b)
    assert old.connect("twin").rc == 0
    assert new.connect("twin").rc == 0
    b.wait_log(r"client twin .*disconnected: session taken over")
    # Keep-alive.
    r = raw(b)
    assert r.connect("sleepy", keepalive=1).rc == 0
    b.wait_log(r"client sleepy .*disconnected: keep alive timeout", timeout=10)
    # Before CONNECT.
    s = socket.create_connection(("127.0.0.1", b.port))
    s.close()
    b.wait_log(r"connection from 127\.0\.0\.1:\d+ on listener %d ended before CONNECT: closed by the client"
               % b.port)
    time.sleep(0.5)  # a second line would come within a loop turn; leave room for it
    for cid in ("eof-client", "rst-client", "clean-client", "sleepy"):
        assert len(ends_of(b, cid)) == 1, (cid, ends_of(b, cid))
    # The old twin's end, and nothing for the new one that is still connected.
    assert len(ends_of(b, "twin")) == 1, ends_of(b, "twin")
