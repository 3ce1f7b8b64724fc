"""A hand-written WebSocket client for the hostile-input and framing tests:
it sends the exact frames a test asks for (split packets, several packets in
one frame, text frames, lying lengths) and reads the broker's frames."""
import base64
import hashlib
import os
import socket
import struct
import time

import mqttraw

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_of(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


class WSClient:
    def __init__(self, port, host="127.0.0.1", ssl_ctx=None, timeout=5.0):
        sock = socket.create_connection((host, port), timeout=timeout)
        self.sock = ssl_ctx.wrap_socket(sock, server_hostname="localhost") if ssl_ctx else sock
        self.buf = bytearray()
        self.mqtt = bytearray()  # payload of binary frames, not yet parsed
        self.pongs = []  # payloads of pongs that mqtt_recv skipped

    def send_raw(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("nothing from the broker")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("nothing from the broker")
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            raise mqttraw.ConnectionClosed("broker closed the connection")
        self.buf += chunk

    def http_response(self, timeout=5.0):
        """Reads the HTTP response head; returns (status code, headers dict, lowercased names)."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers

    def handshake(self, protocols=("mqtt",), path="/mqtt", version="13"):
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n" % (path, key, version))
        if protocols:
            req += "Sec-WebSocket-Protocol: %s\r\n" % ", ".join(protocols)
        self.send_raw((req + "\r\n").encode())
        status, headers = self.http_response()
        if status == 101:
            assert headers.get("sec-websocket-accept") == accept_of(key), headers
        return status, headers

    @staticmethod
    def frame(opcode, payload, fin=True, mask=True, length=None):
        n = len(payload) if length is None else length
        head = bytes([(0x80 if fin else 0) | opcode])
        mbit = 0x80 if mask else 0
        if n < 126:
            head += bytes([mbit | n])
        elif n < 65536:
            head += bytes([mbit | 126]) + struct.pack("!H", n)
        else:
            head += bytes([mbit | 127]) + struct.pack("!Q", n)
        if not mask:
            return head + payload
        key = os.urandom(4)
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

    def send_frame(self, opcode, payload, **kw):
        self.send_raw(self.frame(opcode, payload, **kw))

    def recv_frame(self, timeout=5.0):
        """(fin, opcode, payload) of the next frame from the broker (never masked)."""
        deadline = time.monotonic() + timeout
        while True:
            b = self.buf
            if len(b) >= 2:
                assert not b[1] & 0x80, "server frames must not be masked"
                n, i = b[1] & 0x7F, 2
                if n == 126 and len(b) >= 4:
                    n, i = struct.unpack("!H", b[2:4])[0], 4
                elif n == 127 and len(b) >= 10:
                    n, i = struct.unpack("!Q", b[2:10])[0], 10
                if (b[1] & 0x7F) < 126 or i > 2:
                    if len(b) >= i + n:
                        fin, op, payload = bool(b[0] & 0x80), b[0] & 0x0F, bytes(b[i:i + n])
                        del b[:i + n]
                        return fin, op, payload
            self._fill(deadline)

    def mqtt_recv(self, version=4, timeout=5.0):
        """The next MQTT packet from the payload of binary frames."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.mqtt
            if len(m) >= 2:
                mult, length, i, complete = 1, 0, 1, False
                while i < len(m) and i <= 4:
                    length += (m[i] & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not m[i - 1] & 0x80:
                        complete = True
                        break
                if complete and len(m) >= i + length:
                    p = mqttraw.Packet(m[0], m[i:i + length], version)
                    del m[:i + length]
                    return p
            fin, op, payload = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if op == OP_PONG:
                self.pongs.append(payload)
                continue
            assert op in (OP_BINARY, OP_CONT), "expected a binary frame, got opcode %d" % op
            self.mqtt += payload

    def close_code(self, timeout=5.0):
        """Reads frames until a close frame; returns its status code (None if empty)."""
        deadline = time.monotonic() + timeout
        while True:
            fin, op, payload = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if op == OP_CLOSE:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None

    def wait_closed(self, timeout=5.0):
        """True once the broker has closed the TCP connection."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
                self.buf.clear()
        except mqttraw.ConnectionClosed:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
