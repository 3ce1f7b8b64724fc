"""The network layer under a hostile or careless peer: running out of file
descriptors, memory held before login, a second broker on the same port or
database (issue 11 #4, #5, #7, #12)."""
import os
import re
import resource
import signal
import socket
import struct
import subprocess
import time

import pytest

import mqttraw
from conftest import Broker, broker_bin, free_port, wait_for
from ws_client import OP_BINARY, OP_PING, WSClient


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_idle(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
    return socks


def pinged(r):
    r.send(mqttraw.pingreq())
    return r.expect(mqttraw.PINGRESP, timeout=5).type == mqttraw.PINGRESP


def test_out_of_descriptors_pauses_accepting(start_broker, raw):
    """EMFILE on accept: the worker stops accepting for a while instead of
    spinning, logs one line per 10 s, keeps serving its clients, accepts
    again once descriptors are back, and stops on SIGTERM."""
    b = start_broker(workers=1, persistence=False)
    pid = b.proc.pid
    old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    r = raw(b)
    assert r.connect("resident").rc == 0
    # No descriptor left for the next accept (the budget taken at start
    # does not know of this lower limit).
    n = fd_count(pid)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (n, old[1]))
    attackers = open_idle(b.port, 200)
    try:
        b.wait_log(r"listener %d: accept: Too many open files" % b.port)
        before = cpu_seconds(pid)
        t0 = time.monotonic()
        assert pinged(r), "the worker does not serve its client"
        time.sleep(1.0)  # measuring idle CPU needs a span of time
        spent = cpu_seconds(pid) - before
        assert spent < 0.5 * (time.monotonic() - t0), "the worker spins: %.2f s of CPU" % spent
        lines = re.findall(r"accept: Too many open files", b.log_text())
        assert len(lines) <= 2, "accept errors are not rate limited: %d lines" % len(lines)
    finally:
        for s in attackers:
            s.close()
    resource.prlimit(pid, resource.RLIMIT_NOFILE, old)
    fresh = raw(b)
    assert fresh.connect("after-attack").rc == 0
    assert pinged(r)
    b.stop(timeout=10)


def start_limited(tmp_path, nofile, **options):
    """A broker started under an open file limit of nofile (soft and hard)."""
    b = Broker(tmp_path, options)

    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    b.logf = open(b.logpath, "ab")
    b.proc = subprocess.Popen([broker_bin(), "-c", b.conf], stdout=b.logf, stderr=subprocess.STDOUT,
                              cwd=b.dir, preexec_fn=lower)
    b.wait_log(r"ready: ", timeout=10)
    return b


def test_connections_capped_below_descriptor_limit(tmp_path, raw):
    """By default the clients of all listeners together stay below the open
    file limit: past it new connections are closed at once (one log line per
    10 s), existing clients are served and nothing runs out of descriptors."""
    b = start_limited(tmp_path, 160, workers=1, persistence=False)
    try:
        m = re.search(r"open file limit 160: at most (\d+) client connections", b.log_text())
        assert m, b.log_text()
        budget = int(m.group(1))
        assert 0 < budget < 160
        r = raw(b)
        assert r.connect("resident").rc == 0
        attackers = open_idle(b.port, 300)
        try:
            b.wait_log(r"listener %d: %d client connections, the most the open file limit allows"
                       % (b.port, budget))
            assert pinged(r)
            wait_for(lambda: fd_count(b.proc.pid) < 160, what="descriptors below the limit")
        finally:
            for s in attackers:
                s.close()
        assert "Too many open files" not in b.log_text()
        assert len(re.findall(r"the most the open file limit allows", b.log_text())) <= 2
        # Served again once they left.
        def connects():
            c = mqttraw.RawClient(b.port)
            try:
                return c.connect("after").rc == 0
            except (mqttraw.ConnectionClosed, OSError):
                return False
            finally:
                c.close()
        wait_for(connects, timeout=10, what="a new client to be served")
        assert b.stop(timeout=10) == 0
    finally:
        if b.proc:
            b.stop(check=False)


def connect_header(remaining):
    """The fixed header of a CONNECT announcing `remaining` bytes."""
    return bytes([0x10]) + mqttraw.varint(remaining)


def test_connect_larger_than_max_connect_packet_size_is_refused(start_broker, raw):
    b = start_broker(persistence=False)
    # 100 MB announced: closed once the header is read, nothing buffered.
    s = socket.create_connection(("127.0.0.1", b.port))
    s.sendall(connect_header(100 << 20) + b"\x00\x04MQTT\x05" + b"x" * 60000)
    s.settimeout(5)
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    s.close()
    b.wait_log(r"first packet \(CONNECT\) of 104857\d+ bytes is larger than max_connect_packet_size 65536")
    # A CONNECT of 90 kB (its will and password): refused by default,
    # accepted when allowed.
    big = mqttraw.connect("big-will", will={"topic": "w/t", "payload": b"x" * 60000, "qos": 1},
                          username="u", password=b"p" * 30000)
    r = raw(b)
    r.send(big)
    assert r.is_closed()
    b2 = start_broker(persistence=False, max_connect_packet_size="256k")
    r2 = raw(b2)
    r2.send(big)
    assert r2.expect(mqttraw.CONNACK).rc == 0
    # After CONNECT the cap is max_packet_size's (0: the protocol's).
    r3 = raw(b)
    assert r3.connect("big-publisher").rc == 0
    r3.send(mqttraw.publish("big/t", b"y" * 300000, qos=1, pid=1))
    assert r3.expect(mqttraw.PUBACK).type == mqttraw.PUBACK


def ws_listener(start_broker, **options):
    port = free_port()
    b = start_broker(extra_lines=["listener %d 127.0.0.1" % port, "protocol websockets"], **options)
    b.ws_port = port
    return b


def small_rcvbuf_ws(port):
    w = WSClient.__new__(WSClient)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.settimeout(5)
    w.sock, w.buf, w.mqtt, w.pongs = s, bytearray(), bytearray(), []
    return w


def flood_pings(w, total):
    ping = WSClient.frame(OP_PING, b"p" * 125)
    chunk = ping * 512
    sent = 0
    try:
        while sent < total:
            w.sock.sendall(chunk)
            sent += len(chunk)
    except OSError:
        return sent, True
    return sent, False


def test_websocket_pings_before_connect_are_capped(start_broker):
    """A WebSocket client that never reads and pings before CONNECT is cut
    off once its pongs pass the pre-login output cap."""
    b = ws_listener(start_broker, persistence=False)
    w = small_rcvbuf_ws(b.ws_port)
    assert w.handshake()[0] == 101
    flood_pings(w, 64 << 20)
    b.wait_log(r"ended before CONNECT: not reading: \d+ bytes of output before CONNECT \(at most 65536\)")
    w.close()


def test_websocket_pings_after_connect_are_capped(start_broker):
    """After CONNECT the pongs count against 4 x max_output_buffer too."""
    b = ws_listener(start_broker, persistence=False, max_output_buffer="64k")
    w = small_rcvbuf_ws(b.ws_port)
    assert w.handshake()[0] == 101
    w.send_frame(OP_BINARY, mqttraw.connect("ws-pinger"))
    assert w.mqtt_recv().type == mqttraw.CONNACK
    flood_pings(w, 64 << 20)
    b.wait_log(r"client ws-pinger .*disconnected: not reading, output above 4 x max_output_buffer")
    w.close()


@pytest.mark.parametrize("stream", [0, 4 << 20], ids=["header-only", "streaming"])
def test_websocket_frame_of_2_62_bytes_gets_1009(start_broker, stream):
    """Answered when its header arrives, and the close code reaches a client
    that keeps streaming the payload."""
    b = ws_listener(start_broker, persistence=False)
    w = WSClient(b.ws_port)
    assert w.handshake()[0] == 101
    w.send_raw(WSClient.frame(OP_BINARY, b"", length=1 << 62)[:10] + os.urandom(4))
    if stream:
        w.sock.sendall(os.urandom(stream))
    assert w.close_code() == 1009
    assert w.wait_closed()
    # An unmasked frame is a protocol error, also before any payload.
    w = WSClient(b.ws_port)
    assert w.handshake()[0] == 101
    w.send_raw(WSClient.frame(OP_BINARY, b"", length=1 << 62, mask=False)[:10])
    assert w.close_code() == 1002
    assert w.wait_closed()


def test_second_broker_on_the_same_port_refuses_to_start(start_broker, tmp_path):
    first = start_broker(persistence=False)
    other = tmp_path / "other"
    other.mkdir()
    conf = other / "ferromq.conf"
    conf.write_text("listener %d 127.0.0.1\npersistence false\n" % first.port)
    p = subprocess.run([broker_bin(), "-c", str(conf)], capture_output=True, text=True, timeout=20)
    assert p.returncode == 1, p.stdout + p.stderr
    assert re.search(r"another ferromq \(pid %d\) already listens on port %d; refusing to start"
                     % (first.proc.pid, first.port), p.stderr), p.stderr
    # The first one still gets every client.
    for i in range(10):
        c = mqttraw.RawClient(first.port)
        assert c.connect("probe-%d" % i).rc == 0
        c.close()
    # Any other program already on the port is found too.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        conf.write_text("listener %d 127.0.0.1\npersistence false\n" % s.getsockname()[1])
        p = subprocess.run([broker_bin(), "-c", str(conf)], capture_output=True, text=True, timeout=20)
        assert p.returncode == 1 and "another program listens there" in p.stderr, p.stderr


def test_brokers_on_other_addresses_of_one_port_both_start(start_broker, tmp_path):
    """The port lock is per address and port: a second broker on another
    address of the same port (a two-network setup) starts and serves."""
    first = start_broker(persistence=False)
    other = tmp_path / "other"
    other.mkdir()
    conf = other / "ferromq.conf"
    conf.write_text("listener %d 127.0.0.2\npersistence false\n" % first.port)
    logf = open(other / "log", "wb")
    p = subprocess.Popen([broker_bin(), "-c", str(conf)], stdout=logf, stderr=subprocess.STDOUT)
    try:
        def up():
            try:
                with socket.create_connection(("127.0.0.2", first.port), timeout=1):
                    return True
            except OSError:
                return p.poll() is not None
        wait_for(up, 15, what="the second broker")
        assert p.poll() is None, (other / "log").read_text()
        c = mqttraw.RawClient(first.port)
        assert c.connect("on-first").rc == 0
        c.close()
    finally:
        p.terminate()
        p.wait(15)
        logf.close()


def test_second_broker_on_the_same_data_directory_refuses_to_start(start_broker, tmp_path):
    first = start_broker()
    other = tmp_path / "other"
    other.mkdir()
    conf = other / "ferromq.conf"
    conf.write_text("listener %d 127.0.0.1\npersistence_location %s\n" % (free_port(), first.data))
    p = subprocess.run([broker_bin(), "-c", str(conf)], capture_output=True, text=True, timeout=20)
    assert p.returncode == 1, p.stdout + p.stderr
    assert ("persistence_location %s is in use by another ferromq (pid %d); refusing to start"
            % (first.data, first.proc.pid)) in p.stderr, p.stderr
    # The lock goes with the process, however it ends.
    first.kill9()
    first.start()
    first.stop()
    first.start()
