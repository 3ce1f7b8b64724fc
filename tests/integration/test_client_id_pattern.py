"""client_id_pattern (issue 11 #10): on a listener that has one, a client id
is bound to the username or certificate identity, so an authenticated gw-b
cannot connect as gw-a and take over gw-a's session. Real clients: mqttraw,
mosquitto_pub over TCP, mqttraw over TLS with client certificates."""
import os
import subprocess

import mqttraw as M
import pytest
from conftest import PROTOCOLS, REPO, broker_bin, free_port
from tls_certs import PKI

PASSWD_BIN = os.environ.get("FERROMQ_PASSWD") or os.path.join(REPO, "build", "ferromq-passwd")
USERS = {"gw-a": "pa", "gw-b": "pb", "gw7": "p7", "gw8": "p8"}


def make_passwd(path, users):
    for i, (user, pw) in enumerate(users.items()):
        subprocess.run([PASSWD_BIN] + (["-c"] if i == 0 else []) + ["-b", str(path), user, pw],
                       check=True, capture_output=True, timeout=30)


def bound_broker(start_broker, tmp_path, pattern, **options):
    pw = tmp_path / "passwd"
    make_passwd(pw, USERS)
    return start_broker(password_file=str(pw), client_id_pattern=pattern, **options)


def connack(raw, b, proto, cid, user=None, clean=True):
    r = raw(b, proto)
    kw = {"username": user, "password": USERS[user]} if user else {}
    return r, r.connect(cid, clean=clean, **kw)


def refused_rc(proto):
    return 0x85 if proto == 5 else 2


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_other_user_cannot_take_over_a_session(start_broker, tmp_path, raw, proto):
    b = bound_broker(start_broker, tmp_path, "%u")
    gw_a, ca = connack(raw, b, proto, "gw-a", "gw-a", clean=False)
    assert ca.rc == 0
    assert gw_a.subscribe([("cmd/gw-a", 1)]).codes == [1]
    # gw-b, with a good password, asks for gw-a's id: refused, and gw-a
    # keeps its connection and its session.
    _, ca = connack(raw, b, proto, "gw-a", "gw-b", clean=False)
    assert ca.rc == refused_rc(proto), ca
    b.wait_log(r"client gw-a \(username gw-b\) refused on listener %d: its client id does not match "
               r"client_id_pattern %%u" % b.port)
    pub, ca = connack(raw, b, proto, "gw-b", "gw-b")
    assert ca.rc == 0
    pub.publish("cmd/gw-a", b"open valve", qos=1)
    p = gw_a.expect(M.PUBLISH)
    assert p.payload == b"open valve"
    gw_a.ack(p)
    # Anonymous clients have no identity to bind the id to.
    _, ca = connack(raw, b, proto, "gw-a")
    assert ca.rc == refused_rc(proto), ca
    b.wait_log(r"client gw-a \(username -\) refused on listener %d: no username for client_id_pattern"
               % b.port)
    assert "taken over" not in b.log_text()


def mosquitto_pub(b, cid, user, version="mqttv311"):
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-V", version, "-i", cid,
                           "-u", user, "-P", USERS[user], "-t", "t/" + cid, "-m", "x", "-q", "1"],
                          capture_output=True, text=True, timeout=30)


def test_prefix_pattern_with_mosquitto_pub(start_broker, tmp_path):
    b = bound_broker(start_broker, tmp_path, "%u-*")
    for cid, user in (("gw7-main", "gw7"), ("gw7-", "gw7"), ("gw8-backup-2", "gw8")):
        r = mosquitto_pub(b, cid, user)
        assert r.returncode == 0, (cid, r.stderr)
    # Another user's prefix, the bare username (the '-' is part of the
    # pattern), and a username that contains the separator: with it, user
    # "gw" could not be told from "gw-a", so it matches nothing.
    for cid, user in (("gw8-main", "gw7"), ("gw7", "gw7"), ("gw-a-1", "gw-a"), ("gw-b-1", "gw-a")):
        for version, words in (("mqttv311", "identifier rejected"), ("mqttv5", "Client identifier not valid")):
            r = mosquitto_pub(b, cid, user, version)
            assert r.returncode != 0, (cid, user, version)
            assert words.lower() in r.stderr.lower(), (cid, user, version, r.stderr)
    b.wait_log(r"client gw-a-1 \(username gw-a\) refused")


def test_pattern_applies_to_its_listener_only(start_broker, tmp_path, raw):
    port = free_port()
    b = bound_broker(start_broker, tmp_path, "plant1/%u", extra_lines=["listener %d 127.0.0.1" % port])
    assert connack(raw, b, 4, "plant1/gw7", "gw7")[1].rc == 0
    assert connack(raw, b, 4, "gw7", "gw7")[1].rc == 2
    assert connack(raw, b, 4, "plant1/gw7/x", "gw7")[1].rc == 2
    # The second listener has no pattern: any id (as before the option).
    assert connack(raw, port, 4, "whatever", "gw7")[1].rc == 0


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = PKI(tmp_path_factory.mktemp("pki"))
    p.server_crt, p.server_key = p.server()
    p.alice = p.issue("alice", "alice", 301)
    p.bob = p.issue("bob", "bob", 302)
    return p


def tls_connack(pki, port, cert, cid, proto):
    import ssl
    import socket
    ctx = ssl.create_default_context(cafile=pki.ca)
    ctx.load_cert_chain(*cert)
    c = M.RawClient.__new__(M.RawClient)
    c.version = proto
    c.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost")
    c.buf, c.closed_seen, c.aliases, c.pending = bytearray(), False, {}, []
    try:
        return c.connect(cid).rc
    finally:
        c.sock.close()


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_certificate_identity(start_broker, pki, proto):
    port = free_port()
    b = start_broker(allow_anonymous=False, extra_lines=[
        "listener %d 127.0.0.1" % port, "certfile " + pki.server_crt, "keyfile " + pki.server_key,
        "cafile " + pki.ca, "require_certificate true", "use_identity_as_username true",
        "client_id_pattern %u"])
    assert tls_connack(pki, port, pki.alice, "alice", proto) == 0
    assert tls_connack(pki, port, pki.bob, "alice", proto) == refused_rc(proto)
    b.wait_log(r"client alice \(username bob\) refused on listener %d" % port)


def check_config(tmp_path, lines):
    conf = tmp_path / "c.conf"
    conf.write_text("\n".join(["persistence false"] + lines) + "\n")
    return conf, subprocess.run([broker_bin(), "--check-config", "-c", str(conf)],
                                capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("pattern,why", [
    ("%u*", "put a separator between them"),
    ("gw-*", "needs %u"),
    ("%u-*-x", "'*' may only end the pattern"),
    ("%c", "only %u may follow %"),
])
def test_bad_patterns_name_file_and_line(tmp_path, pattern, why):
    port = free_port()
    conf, r = check_config(tmp_path, ["listener %d 127.0.0.1" % port, "client_id_pattern " + pattern])
    assert r.returncode == 1
    assert r.stderr.startswith("%s:2: listener %d: client_id_pattern %s: " % (conf, port, pattern)), r.stderr
    assert why in r.stderr, r.stderr
    # The broker does not start with it either.
    r = subprocess.run([broker_bin(), "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "client_id_pattern" in r.stderr + r.stdout


def test_listeners_sharing_a_port_agree(tmp_path):
    port = free_port()
    conf, r = check_config(tmp_path, ["listener %d 127.0.0.1" % port, "client_id_pattern %u",
                                      "listener %d ::1" % port])
    assert r.returncode == 1
    assert "%s:4: listener %d: client_id_pattern differs from the other listener on port %d (line 2)" % (
        conf, port, port) in r.stderr, r.stderr
    conf, r = check_config(tmp_path, ["listener %d 127.0.0.1" % port, "client_id_pattern %u",
                                      "listener %d ::1" % port, "client_id_pattern %u"])
    assert r.returncode == 0, r.stderr
