"""Command line: --help, --version, --check-config, signals."""
import re
import signal
import subprocess

import pytest

from conftest import broker_bin, free_port


def run(*args, timeout=20):
    return subprocess.run([broker_bin(), *args], capture_output=True, text=True,
                          timeout=timeout)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_help():
    r = run("--help")
    assert r.returncode == 0, r
    out = r.stdout + r.stderr
    assert "ferromq" in out
    assert "-c" in out


def test_version():
    r = run("--version")
    assert r.returncode == 0, r
    assert re.match(r"^ferromq \d+\.\d+\.\d+", r.stdout.strip() or r.stderr.strip()), r


def test_check_config_good(tmp_path):
    conf = write(tmp_path, "good.conf", """# a comment
listener %d 127.0.0.1
listener %d
allow_anonymous true
workers 2
max_keepalive 120
max_packet_size 65536

max_queued_messages 100
max_queued_bytes 0
queue_overflow reject_new
max_inflight_messages 10
receive_maximum 20
max_topic_alias 10
message_expiry_default 3600
persistent_client_expiration 86400
will_on_shutdown false
connect_timeout 10
retain_available true
persistence true
persistence_location %s
log_dest stderr
log_type all
""" % (free_port(), free_port(), tmp_path / "data"))
    r = run("--check-config", "-c", conf)
    assert r.returncode == 0, r


@pytest.mark.parametrize("text,line", [
    ("listener 1883\nno_such_option 1\n", 2),
    ("# comment\n\nlistener 1883\nbogus\n", 4),
])
def test_check_config_unknown_option(tmp_path, text, line):
    conf = write(tmp_path, "bad.conf", text)
    r = run("--check-config", "-c", conf)
    assert r.returncode == 1, r
    assert "%s:%d:" % (conf, line) in r.stderr, r.stderr


@pytest.mark.parametrize("text,line", [
    ("listener 1883\nmax_keepalive banana\n", 2),
    ("allow_anonymous maybe\n", 1),
    ("listener 1883\n# c\nqueue_overflow sometimes\n", 3),
    ("listener 99999999\n", 1),
    ("workers -3\n", 1),
    ("log_dest carrier_pigeon\n", 1),
])
def test_check_config_bad_value(tmp_path, text, line):
    conf = write(tmp_path, "bad.conf", text)
    r = run("--check-config", "-c", conf)
    assert r.returncode == 1, r
    assert "%s:%d:" % (conf, line) in r.stderr, r.stderr


def test_bad_config_refuses_to_start(tmp_path):
    conf = write(tmp_path, "bad.conf", "listener %d 127.0.0.1\nfrobnicate yes\n" % free_port())
    r = run("-c", conf)
    assert r.returncode != 0, r
    assert "%s:2:" % conf in r.stderr, r.stderr


def test_missing_config_file(tmp_path):
    r = run("--check-config", "-c", str(tmp_path / "nope.conf"))
    assert r.returncode != 0, r


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_clean_exit(start_broker, client, sig):
    b = start_broker()
    c = client(b, "sig-client")
    c.subscribe("x/#", 1)
    rc = b.stop(sig=sig, check=False)
    assert rc == 0, "exit code %d; log:\n%s" % (rc, b.log_text()[-3000:])
    b.check_log()


@pytest.mark.parametrize("n", [1, 2, 40])
def test_shutdown_while_clients_disconnect(start_broker, n):
    """SIGTERM while many clients close their sockets: exit 0, nothing leaked."""
    for round_ in range(10 if n < 40 else 3):
        shutdown_round(start_broker, n, round_)


def shutdown_round(start_broker, n, round_):
    import socket
    import mqttraw as M
    b = start_broker()
    clients = []
    for i in range(n):
        r = M.RawClient(b.port, 5 if i % 2 else 4)
        kw = {"clean": i % 3 != 0}
        if i % 2 and i % 3 == 0:
            kw["properties"] = [(M.P_SESSION_EXPIRY, 60)]
        assert r.connect("sd-%d" % i, **kw).rc == 0
        if round_ % 2:
            r.subscribe([("sd/%d" % i, 1)])
        clients.append(r)
    for r in clients:
        r.sock.shutdown(socket.SHUT_RDWR)
        r.close()
    rc = b.stop(check=False)
    b.check_log()
    assert rc == 0, "exit code %d; log tail:\n%s" % (rc, b.log_text()[-3000:])
