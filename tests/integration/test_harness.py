"""The harness's port pool: ports that cannot race under `ctest -j`."""
import os
import socket
import subprocess
import sys
import textwrap

import pytest

import fm_harness


def test_ports_held_by_another_process_are_never_handed_out():
    # Another test process takes 300 ports and keeps them while this one takes 300.
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys
            sys.path.insert(0, %r)
            import fm_harness
            print(" ".join(str(fm_harness.free_port()) for _ in range(300)), flush=True)
            sys.stdin.read()
        """ % fm_harness.HARNESS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        theirs = set(int(p) for p in child.stdout.readline().split())
        ours = set(fm_harness.free_port() for _ in range(300))
    finally:
        child.stdin.close()
        child.wait(10)
    assert len(theirs) == 300 and len(ours) == 300
    assert not theirs & ours
    # Below the kernel's ephemeral range: no bind to port 0 or outgoing
    # connection is handed one of them.
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        eph_lo = int(f.read().split()[0])
    assert max(theirs | ours) < eph_lo


def test_a_port_someone_listens_on_is_passed_over(monkeypatch):
    port = fm_harness.free_port()
    os.close(fm_harness._held_port_locks.pop())  # let it go, and listen on it
    monkeypatch.setattr(fm_harness, "_port_pool", lambda: (port, port + 1))
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        with pytest.raises(RuntimeError):
            fm_harness.free_port()
    assert fm_harness.free_port() == port
