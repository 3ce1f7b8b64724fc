"""Running as a Type=notify service: READY=1 (sd_notify to NOTIFY_SOCKET)
comes after recovery with the listeners up, never when start-up fails; a
reload is framed by RELOADING=1 and READY=1; a stop says STOPPING=1.
systemd is played by the test: a Unix datagram socket of its own."""
import os
import re
import signal
import socket
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest

from conftest import Broker, broker_bin, wait_for

needs_systemd = pytest.mark.skipif(os.environ.get("FERROMQ_SYSTEMD", "1") != "1",
                                   reason="ferromq built without libsystemd (FM_SYSTEMD=OFF)")


class NotifySocket:
    """What systemd listens on for a Type=notify service."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.got = []

    def next(self, timeout=10.0):
        """The next datagram as a dict of its KEY=VALUE lines."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        msg = dict(line.split("=", 1) for line in data.split("\n") if line)
        self.got.append(msg)
        return msg

    def until(self, key, timeout=10.0):
        """Datagrams up to and including the first with key; returns them."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            seen.append(self.next(max(0.1, deadline - time.monotonic())))
            if key in seen[-1]:
                return seen

    def close(self):
        self.sock.close()


def connect(port, client_id, clean, on_message=None):
    c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=mqtt.MQTTv311)
    flags = {}
    c.on_connect = lambda cl, ud, fl, rc: flags.update(fl, rc=rc)
    if on_message:
        c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.loop_start()
    wait_for(lambda: "rc" in flags, what="CONNACK")
    assert flags["rc"] == 0
    return c, flags


@needs_systemd
def test_ready_after_recovery_and_listeners(tmp_path, monkeypatch):
    b = Broker(tmp_path, {})
    b.start()
    # A queued message for a persistent session, for recovery to bring back.
    sub, _ = connect(b.port, "notify-sub", clean=False)
    subacks = []
    sub.on_subscribe = lambda c, u, mid, qos: subacks.append(qos)
    sub.subscribe("n/t", 1)
    wait_for(lambda: subacks, what="SUBACK")
    sub.disconnect()
    sub.loop_stop()
    pub, _ = connect(b.port, "notify-pub", clean=True)
    pub.publish("n/t", b"kept", qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()
    b.stop()

    ns = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
    # Started by hand: Broker.start would connect before READY=1.
    b.logf = open(b.logpath, "ab")
    b.proc = subprocess.Popen([broker_bin(), "-c", b.conf], stdout=b.logf,
                              stderr=subprocess.STDOUT, cwd=b.dir)
    try:
        msgs = ns.until("READY", timeout=20)
        # Recovery was announced before, and is logged before, READY=1.
        assert any(m.get("STATUS") == "recovering the store" for m in msgs[:-1]), msgs
        log = b.log_text()
        assert re.search(r"store .*recovered 1 sessions", log), log
        assert "ready:" in log
        assert msgs[-1]["STATUS"].startswith("ready: ")
        # At READY=1 the listener accepts and the session is back, message and all.
        got = []
        sub, flags = connect(b.port, "notify-sub", clean=False,
                             on_message=lambda c, u, m: got.append(m.payload))
        assert flags["session present"] == 1
        wait_for(lambda: got == [b"kept"], what="the recovered message")
        sub.disconnect()
        sub.loop_stop()

        # systemctl reload: SIGHUP, RELOADING=1, then READY=1 once done.
        b.proc.send_signal(signal.SIGHUP)
        msgs = ns.until("READY")
        assert "RELOADING" in msgs[0], msgs
        b.stop()
        assert "STOPPING" in ns.until("STOPPING")[-1]
    finally:
        if b.proc:
            b.stop(check=False)
        ns.close()


@needs_systemd
def test_no_ready_when_start_fails(tmp_path, monkeypatch):
    ns = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
    b = Broker(tmp_path, {})
    # Port taken: the listener cannot bind, so the broker must not say READY.
    busy = socket.socket()
    busy.bind(("127.0.0.1", b.port))
    busy.listen()
    try:
        with open(b.logpath, "ab") as logf:
            rc = subprocess.run([broker_bin(), "-c", b.conf], stdout=logf, stderr=subprocess.STDOUT,
                                cwd=b.dir, timeout=20).returncode
        assert rc != 0
        ns.sock.setblocking(False)
        got = []
        while True:
            try:
                got.append(ns.sock.recv(4096).decode())
            except BlockingIOError:
                break
        assert not any("READY=1" in g for g in got), got
    finally:
        busy.close()
        ns.close()
