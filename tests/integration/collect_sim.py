"""Helpers of the Modbus collection tests: fm-modbus-sim (Modbus TCP test
devices on libmodbus's server API, built beside the broker) driven over its
stdin, and the config lines of a device section."""
import json
import os
import struct
import subprocess
import threading

import pytest

from conftest import broker_bin


def sim_bin():
    path = os.environ.get("FERROMQ_MODBUS_SIM") or os.path.join(os.path.dirname(broker_bin()), "fm-modbus-sim")
    if not os.path.exists(path):
        pytest.fail("test device %s does not exist (build fm-modbus-sim)" % path)
    return path


class Sim:
    """fm-modbus-sim with n devices, each on a free port (.ports)."""

    def __init__(self, devices=1, size=10000):
        self.proc = subprocess.Popen([sim_bin(), "--devices", str(devices), "--size", str(size)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lock = threading.Lock()
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "ports", "fm-modbus-sim did not start: %r" % line
        self.ports = [int(p) for p in line[1:]]
        self.stopped = False

    def cmd(self, line):
        with self.lock:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            out = self.proc.stdout.readline().strip()
        assert not out.startswith("error"), "%s: %s" % (line, out)
        return out

    def set(self, dev, table, addr, *values):
        self.cmd("set %d %s %d %s" % (dev, table, addr, " ".join(str(v) for v in values)))

    def get(self, dev, table, addr, count):
        return [int(v) for v in self.cmd("get %d %s %d %d" % (dev, table, addr, count)).split()]

    def stats(self):
        return json.loads(self.cmd("stats"))["devices"]

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        err = self.proc.stderr.read()
        assert "Sanitizer" not in err and "runtime error" not in err, err


@pytest.fixture
def sim():
    """Factory: sim(devices=1) -> Sim; stopped at teardown."""
    made = []

    def factory(devices=1, size=10000):
        s = Sim(devices, size)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.stop()


def device_lines(name, port, tags, interval=100, extra=()):
    """A modbus_device section: tags are lines after `modbus_tag ` or
    (tag line, [tag option lines])."""
    lines = ["modbus_device %s" % name,
             "modbus_address 127.0.0.1:%d" % port,
             "modbus_poll_interval %d" % interval]
    lines += list(extra)
    for t in tags:
        if isinstance(t, tuple):
            lines.append("modbus_tag " + t[0])
            lines += list(t[1])
        else:
            lines.append("modbus_tag " + t)
    return lines


def regs(fmt, value, order="abcd"):
    """The wire registers of value packed with struct format fmt (big endian)
    in the given byte/word order."""
    b = struct.pack(">" + fmt, value)
    words = [b[i:i + 2] for i in range(0, len(b), 2)]
    if order in ("badc", "dcba"):
        words = [w[::-1] for w in words]
    if order in ("cdab", "dcba"):
        words = words[::-1]
    return [int.from_bytes(w, "big") for w in words]


def reading(msg):
    return json.loads(msg.payload)

