"""Disk full: the store's filesystem runs out of space, the broker refuses new
QoS 1/2 messages instead of acknowledging what it cannot keep, QoS 0 goes
on, and once space is free again it recovers by itself without losing what
it had acknowledged.

Needs root (mount): a 4 MB tmpfs, or a loop-mounted ext4 image if tmpfs
cannot be mounted; skipped if neither works. See test_kill9.py for how to
run this folder.
"""
import os
import shutil
import subprocess
import time

import pytest

import mqttraw as M
from fm_harness import connect_raw, wait_for
from opshttp import ops_broker, request

FS_SIZE = 4 * 1024 * 1024
PAYLOAD = 2000
EPISODES = 2


def run(*cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)


def mount_small_fs(tmp_path, size=FS_SIZE):
    """Mounts a small filesystem; returns (mount point, description) or skips."""
    mnt = tmp_path / "smallfs"
    mnt.mkdir()
    if not shutil.which("mount"):
        pytest.skip("no mount command")
    r = run("mount", "-t", "tmpfs", "-o", "size=%d" % size, "tmpfs", str(mnt))
    if r.returncode == 0:
        return str(mnt), "tmpfs"
    why = "tmpfs: %s" % r.stdout.decode(errors="replace").strip()
    image = tmp_path / "smallfs.img"
    steps = [("truncate", "-s", str(2 * size), str(image)),
             ("mkfs.ext4", "-q", "-F", str(image)),
             ("mount", "-o", "loop", str(image), str(mnt))]
    for step in steps:
        try:
            r = run(*step)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip("cannot mount a small filesystem (%s; %s: %s)" % (why, step[0], e))
        if r.returncode != 0:
            pytest.skip("cannot mount a small filesystem (%s; %s: %s)"
                        % (why, step[0], r.stdout.decode(errors="replace").strip()))
    return str(mnt), "loop ext4"


def umount(mnt):
    if run("umount", mnt).returncode != 0:
        run("umount", "-l", mnt)


def fill(path, leave):
    """Appends to the filler file until only about `leave` bytes are free (0:
    until the filesystem is full)."""
    chunk = b"\0" * 65536
    try:
        f = open(path, "ab")
    except OSError:
        return  # ENOSPC: full already (not even room for the file)
    with f:
        try:
            while True:
                st = os.statvfs(os.path.dirname(path))
                free = st.f_bavail * st.f_frsize
                if free <= leave:
                    break
                n = min(len(chunk), free - leave) if leave else len(chunk)
                f.write(chunk[:n])
                f.flush()
        except OSError:
            pass  # ENOSPC: full


def test_disk_full(start_broker, raw, tmp_path):
    mnt, kind = mount_small_fs(tmp_path)
    b = None
    try:
        data = os.path.join(mnt, "data")
        filler = os.path.join(mnt, "filler")
        b = ops_broker(start_broker, tmp_path, persistence_location=data, max_queued_messages=100000)
        off = connect_raw(raw, b, "df-offline", 5, clean=False,
                          properties=[(M.P_SESSION_EXPIRY, 3600)])
        assert off.subscribe([("df/q", 1)]).codes == [1]
        off.disconnect()
        live = connect_raw(raw, b, "df-live", 5)
        assert live.subscribe([("df/zero", 0)]).codes == [0]
        pub = connect_raw(raw, b, "df-pub5", 5)
        pid = 0
        acked = []

        def publish(tag, size=PAYLOAD):
            nonlocal pid
            pid = pid % 65535 + 1
            payload = tag.encode() + b":" + b"p" * size
            ack = pub.publish("df/q", payload, qos=1, pid=pid)
            assert ack.pid == pid, ack
            if ack.rc == 0:
                acked.append(payload)
            return ack

        for ep in range(EPISODES):
            # Leave a little room, then publish until a PUBACK refuses.
            fill(filler, 256 * 1024)
            refused = None
            for i in range(5000):
                ack = publish("e%d-%d" % (ep, i))
                if ack.rc >= 0x80:
                    refused = ack
                    break
                assert ack.rc == 0, ack
            assert refused is not None, "no PUBACK refused with the filesystem full"
            assert refused.rc in (0x97, 0x80), refused
            assert refused.props.get(M.P_REASON_STRING), "no reason string: %r" % refused
            fill(filler, 0)  # take what is left, so a larger message cannot fit either

            # A load balancer sees it: not ready while writes fail.
            status, _, why = request(b, "GET", "/readyz", token=b.token)
            assert status == 503 and b"store" in why, (status, why)

            # v3 has no negative PUBACK: the connection is closed instead.
            v3 = connect_raw(raw, b, "df-pub3-%d" % ep, 4)
            v3.send(M.publish("df/q", b"v3:" + b"x" * (4 * PAYLOAD), qos=1, pid=1))
            try:
                seen = v3.recv_until_closed(10)
            except TimeoutError:
                pytest.fail("v3 publisher not disconnected with the disk full")
            assert not [p for p in seen if p.type == M.PUBACK], seen

            # QoS 0 still flows.
            pub.publish("df/zero", b"zero-%d" % ep, qos=0)
            p = live.expect(M.PUBLISH)
            assert p.payload == b"zero-%d" % ep, p

            # One error line per episode, not one per failed commit: the
            # filesystem is still full, nothing has been written "again".
            n_failed = b.log_text().count("commit failed")
            assert n_failed == ep + 1, "'commit failed' logged %d times in %d episodes:\n%s" % (
                n_failed, ep + 1, "\n".join(l for l in b.log_text().splitlines()
                                             if "commit failed" in l or "writing again" in l))

            # Space again: the broker recovers by itself.
            if os.path.exists(filler):
                os.unlink(filler)
            t0 = time.monotonic()
            while True:
                ack = publish("r%d-%d" % (ep, pid))
                if ack.rc == 0:
                    break
                assert ack.rc in (0x97, 0x80), ack
                if time.monotonic() - t0 > 20:
                    pytest.fail("QoS 1 still refused 20 s after space was freed; log:\n"
                                + b.log_text()[-3000:])
                time.sleep(0.1)
            for i in range(20):
                assert publish("after%d-%d" % (ep, i)).rc == 0
            assert request(b, "GET", "/readyz", token=b.token)[:3:2] == (200, b"ready\n")
            assert b.log_text().count("commit failed") == ep + 1

        # Everything acknowledged is on disk: kill -9, restart, drain.
        b.kill9()
        b.start(timeout=30)
        off = raw(b, 5)
        assert off.connect("df-offline", clean=False,
                           properties=[(M.P_SESSION_EXPIRY, 3600)]).session_present
        want = set(acked)
        got = set()

        def drain():
            try:
                while True:
                    p = off.recv(0.2)
                    if p.type == M.PUBLISH:
                        got.add(p.payload)
                        off.ack(p)
            except TimeoutError:
                return want <= got

        try:
            wait_for(drain, 60, interval=0, what="acknowledged messages to be delivered")
        except AssertionError:
            missing = sorted(x.split(b":")[0] for x in want - got)
            pytest.fail("%d of %d acknowledged messages lost, e.g. %r"
                        % (len(missing), len(want), missing[:20]))
        b.stop()
    finally:
        if b is not None and b.alive():
            b.stop(check=False)
        umount(mnt)


def drain(client, got, quiet=2.0, limit=90):
    """Receives and acknowledges until `quiet` seconds pass without a message."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            p = client.recv(quiet)
        except TimeoutError:
            return
        if p.type == M.PUBLISH:
            got.add(p.payload)
            client.ack(p)
    pytest.fail("still receiving after %d s" % limit)


def test_drain_while_disk_full(start_broker, raw, tmp_path):
    """Issue 11 #1: an offline session's queue, its bodies on disk, drained
    while the disk is full. Reading the bodies back shared a group with the
    deletes of acknowledged deliveries; the failed group skipped the read
    and the broker took every body of the batch for missing, dropping
    acknowledged messages for good."""
    mnt, kind = mount_small_fs(tmp_path, 16 * 1024 * 1024)
    b = None
    try:
        data = os.path.join(mnt, "data")
        filler = os.path.join(mnt, "filler")
        b = start_broker(persistence_location=data, max_queued_messages=100000, max_queued_bytes=0)
        hist_props = [(M.P_SESSION_EXPIRY, 100000)]
        hist = connect_raw(raw, b, "hist", 5, clean=False, properties=hist_props)
        assert hist.subscribe([("big/#", 1)]).codes == [1]
        hist.disconnect()

        pub = connect_raw(raw, b, "big-pub", 5)
        acked = []
        refused = None
        for i in range(1, 5000):
            payload = b"m%05d:" % i + b"x" * 10000
            ack = pub.publish("big/data", payload, qos=1, pid=i)
            if ack.rc >= 0x80:
                refused = ack
                break
            assert ack.rc == 0, ack
            acked.append(payload)
        assert refused is not None, "the %s never refused a message" % kind
        assert len(acked) > 2 * 256, "too few messages fit to need several read-backs: %d" % len(acked)
        fill(filler, 0)  # the deletes of the drain fail too

        got = set()
        hist = raw(b, 5)
        assert hist.connect("hist", clean=False, properties=hist_props).session_present
        drain(hist, got)
        hist.close()

        if os.path.exists(filler):
            os.unlink(filler)
        b.stop()
        b.start(timeout=30)
        hist = raw(b, 5)
        assert hist.connect("hist", clean=False, properties=hist_props).session_present
        drain(hist, got)
        missing = [p[:6] for p in acked if p not in got]
        assert not missing, "%d of %d acknowledged messages never delivered, e.g. %r; log:\n%s" % (
            len(missing), len(acked), missing[:10],
            "\n".join(l for l in b.log_text().splitlines() if "missing" in l)[:2000])
        assert "missing or damaged" not in b.log_text()
        b.stop()
    finally:
        if b is not None and b.alive():
            b.stop(check=False)
        umount(mnt)


def test_read_only_database_is_not_called_damaged(start_broker, raw, tmp_path):
    """Issue 11 #12: a store on a read-only filesystem stops the start with
    the cause, never with the advice for a damaged file (moving it aside
    would lose good data); made writable again, everything is there."""
    mnt, kind = mount_small_fs(tmp_path, 16 * 1024 * 1024)
    b = None
    try:
        data = os.path.join(mnt, "data")
        b = start_broker(persistence_location=data)
        pub = connect_raw(raw, b, "ro-pub", 5)
        assert pub.publish("ro/kept", b"still here", qos=1, retain=True, pid=1).rc in (0, 0x10)
        pub.disconnect()
        b.stop()
        assert run("mount", "-o", "remount,ro", mnt).returncode == 0
        offset = len(b.log_text())
        with open(b.logpath, "ab") as logf:
            proc = subprocess.Popen([os.environ.get("FERROMQ_BIN"), "-c", b.conf], stdout=logf,
                                    stderr=subprocess.STDOUT, cwd=b.dir)
            try:
                rc = proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                pytest.fail("broker started on a read-only store")
        log = b.log_text()[offset:]
        assert rc != 0, log
        assert "damaged" not in log and "aside" not in log, log
        assert "ead-only" in log or "cannot be written" in log, log
        assert run("mount", "-o", "remount,rw", mnt).returncode == 0
        b.start()
        sub = connect_raw(raw, b, "ro-sub", 5)
        sub.subscribe([("ro/#", 1)])
        p = sub.expect(M.PUBLISH)
        assert p.payload == b"still here", p
        b.stop()
    finally:
        if b is not None and b.alive():
            b.stop(check=False)
        umount(mnt)
