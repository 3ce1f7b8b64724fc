"""TLS listeners with real clients: mosquitto_pub/sub and paho over TLS 1.2
and 1.3, client certificates (required, revoked, identity as username from
the CN or a SAN), SIGHUP reload of certificates and CRLs, configuration
errors, connection limits and hostile input. The PKI is made at test time
with the openssl CLI (tls_certs.py)."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

import mqttraw
import paho.mqtt.client as mqtt
from conftest import broker_bin, free_port, wait_for
from tls_certs import PKI


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = PKI(tmp_path_factory.mktemp("pki"))
    p.server_crt, p.server_key = p.server()
    p.alice = p.issue("alice", "alice", 201)
    p.dev = p.issue("dev", "device-cn", 202, san="DNS:dev.example,URI:urn:dev:42,email:bob@example.com")
    p.mallory = p.issue("mallory", "mallory", 203)
    p.crl = p.revoke(p.mallory[0])
    return p


def tls_listener(pki, port, **opts):
    """Config lines of a TLS listener on port; options as in start_broker."""
    lines = ["listener %d 127.0.0.1" % port, "certfile " + pki.server_crt, "keyfile " + pki.server_key]
    opts.setdefault("cafile", pki.ca)
    for k, v in opts.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        lines.append("%s %s" % (k.replace("tls13", "tls1.3"), v))
    return lines


def client_ctx(pki, cert=None, maxv=None, minv=None):
    ctx = ssl.create_default_context(cafile=pki.ca)
    if cert:
        ctx.load_cert_chain(*cert)
    if maxv:
        ctx.maximum_version = maxv
    if minv:
        ctx.minimum_version = minv
    return ctx


def handshake(pki, port, cert=None, maxv=None):
    """Completes a TLS handshake; returns (version, DER of the server certificate)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with client_ctx(pki, cert, maxv).wrap_socket(s, server_hostname="localhost") as t:
            return t.version(), t.getpeercert(binary_form=True)


def mqtt_over_tls(pki, port, cert=None, maxv=None, version=4):
    """A raw MQTT client over TLS: CONNECT sent, CONNACK returned."""
    c = mqttraw.RawClient.__new__(mqttraw.RawClient)
    c.version = version
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sock = client_ctx(pki, cert, maxv).wrap_socket(sock, server_hostname="localhost")
    c.buf, c.closed_seen, c.aliases, c.pending = bytearray(), False, {}, []
    return c


def paho_tls(pki, port, client_id, cert=None, username=None, tls_version=None, protocol=mqtt.MQTTv311):
    c = mqtt.Client(client_id, protocol=protocol)
    if tls_version:
        c.tls_set_context(client_ctx(pki, cert, maxv=tls_version))
    else:
        kw = {"certfile": cert[0], "keyfile": cert[1]} if cert else {}
        c.tls_set(ca_certs=pki.ca, **kw)
    if username:
        c.username_pw_set(username, "x")
    result = {}
    c.on_connect = lambda cl, u, f, rc, *a: result.setdefault("rc", rc)
    c.connect("localhost", port)
    c.loop_start()
    wait_for(lambda: "rc" in result, what="CONNACK")
    return c, result["rc"]


def der(path):
    return ssl.PEM_cert_to_DER_cert(open(path).read())


def roundtrip(pub, sub, topic, payload, timeout=5.0):
    got = []
    sub.on_message = lambda c, u, m: got.append(m.payload)
    sub.subscribe(topic, 1)
    time.sleep(0.2)
    pub.publish(topic, payload, qos=1)
    wait_for(lambda: got, timeout, what="message on " + topic)
    return got[0]


def test_mosquitto_clients_with_client_certificates(start_broker, pki, tmp_path):
    port = free_port()
    b = start_broker(extra_lines=tls_listener(pki, port, require_certificate=True))
    ca, (crt, key) = pki.ca, pki.alice
    sub = subprocess.Popen(["mosquitto_sub", "-h", "localhost", "-p", str(port), "--cafile", ca, "--cert", crt,
                            "--key", key, "-t", "tls/#", "-C", "1", "-W", "10", "-v"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b.wait_log(r"certificate identity 'alice'")
    wait_for(lambda: "subscribed to tls/#" in b.log_text(), what="subscription")
    subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(port), "--cafile", ca, "--cert", crt,
                    "--key", key, "-t", "tls/x", "-m", "over tls", "-q", "1"], check=True, timeout=10)
    out, err = sub.communicate(timeout=15)
    assert out.strip() == "tls/x over tls", err


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["v311", "v5"])
def test_paho_tls_set(start_broker, pki, protocol):
    port = free_port()
    start_broker(extra_lines=tls_listener(pki, port))
    sub, rc1 = paho_tls(pki, port, "tls-sub", cert=pki.alice, protocol=protocol)
    pub, rc2 = paho_tls(pki, port, "tls-pub", protocol=protocol)  # optional certificate: none
    assert rc1 == 0 and rc2 == 0
    big = os.urandom(300 * 1024)  # many TLS records each way
    assert roundtrip(pub, sub, "tls/big", big) == big
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()


def test_tls_versions(start_broker, pki):
    p12, p13 = free_port(), free_port()
    b = start_broker(extra_lines=tls_listener(pki, p12, tls_version="tlsv1.2") +
                     tls_listener(pki, p13, tls_version="tlsv1.3"))
    assert handshake(pki, p12, maxv=ssl.TLSVersion.TLSv1_2)[0] == "TLSv1.2"
    assert handshake(pki, p12)[0] == "TLSv1.3"
    assert handshake(pki, p13)[0] == "TLSv1.3"
    with pytest.raises(ssl.SSLError):
        handshake(pki, p13, maxv=ssl.TLSVersion.TLSv1_2)
    b.wait_log(r"TLS handshake with 127\.0\.0\.1:\d+ on listener %d failed: \S" % p13)
    # MQTT over TLS 1.2 end to end.
    sub, rc1 = paho_tls(pki, p12, "v12-sub", tls_version=ssl.TLSVersion.TLSv1_2)
    pub, rc2 = paho_tls(pki, p12, "v12-pub", tls_version=ssl.TLSVersion.TLSv1_2)
    assert (rc1, rc2) == (0, 0)
    assert roundtrip(pub, sub, "v12", b"tls 1.2") == b"tls 1.2"
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()


def test_require_certificate_refuses_clients_without_one(start_broker, pki):
    port = free_port()
    b = start_broker(extra_lines=tls_listener(pki, port, require_certificate=True))
    r = subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(port), "--cafile", pki.ca, "-t", "t",
                        "-m", "x"], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    b.wait_log(r"TLS handshake with 127\.0\.0\.1:\d+ on listener %d failed: peer did not return a certificate"
               % port)
    c = mqtt_over_tls(pki, port, cert=pki.alice)
    c.send(mqttraw.connect("with-cert"))
    assert c.expect(mqttraw.CONNACK).rc == 0


def test_revoked_certificate_is_refused(start_broker, pki):
    port = free_port()
    b = start_broker(extra_lines=tls_listener(pki, port, require_certificate=True, crlfile=pki.crl))
    with pytest.raises((ssl.SSLError, ConnectionError, mqttraw.ConnectionClosed)):
        # TLS 1.3: the client learns of the refusal on its first read.
        c = mqtt_over_tls(pki, port, cert=pki.mallory)
        c.send(mqttraw.connect("revoked"))
        c.recv()
    b.wait_log(r"failed: certificate revoked")
    c = mqtt_over_tls(pki, port, cert=pki.alice)
    c.send(mqttraw.connect("not-revoked"))
    assert c.expect(mqttraw.CONNACK).rc == 0


@pytest.mark.parametrize("source,cert,identity", [
    ("cn", "alice", "alice"),
    ("san_dns", "dev", "dev.example"),
    ("san_uri", "dev", "urn:dev:42"),
    ("san_email", "dev", "bob@example.com"),
])
def test_identity_as_username(start_broker, pki, source, cert, identity):
    port = free_port()
    b = start_broker(allow_anonymous=False,
                     extra_lines=tls_listener(pki, port, require_certificate=True, use_identity_as_username=True,
                                              identity_source=source))
    # No username: on the plain listener refused, with the certificate accepted.
    plain = mqttraw.RawClient(b.port)
    plain.send(mqttraw.connect("plain"))
    assert plain.expect(mqttraw.CONNACK).rc == 5
    c = mqtt_over_tls(pki, port, cert=getattr(pki, cert))
    c.send(mqttraw.connect("by-cert"))
    assert c.expect(mqttraw.CONNACK).rc == 0
    b.wait_log(r"certificate identity '%s'" % identity)
    # A certificate without that kind of identity gives no username: refused.
    if source != "cn":
        c2 = mqtt_over_tls(pki, port, cert=pki.alice)
        c2.send(mqttraw.connect("no-san"))
        assert c2.expect(mqttraw.CONNACK).rc == 5
        b.wait_log(r"use_identity_as_username: no client certificate identity")


def test_sighup_reloads_certificates_and_crl(start_broker, tmp_path):
    # A PKI of its own: this test revokes alice. The listener's files are
    # copies that the test replaces.
    pki = PKI(tmp_path / "pki")
    pki.server_crt, pki.server_key = pki.server()
    pki.alice = pki.issue("alice", "alice", 201)
    pki.dev = pki.issue("dev", "device-cn", 202, san="DNS:dev.example")
    pki.crl = pki.empty_crl()
    files = {n: str(tmp_path / n) for n in ("server.crt", "server.key", "crl.pem")}
    shutil.copy(pki.server_crt, files["server.crt"])
    shutil.copy(pki.server_key, files["server.key"])
    shutil.copy(pki.crl, files["crl.pem"])
    port = free_port()
    lines = ["listener %d 127.0.0.1" % port, "certfile " + files["server.crt"], "keyfile " + files["server.key"],
             "cafile " + pki.ca, "crlfile " + files["crl.pem"]]
    b = start_broker(extra_lines=lines)
    assert handshake(pki, port)[1] == der(pki.server_crt)
    sub, rc1 = paho_tls(pki, port, "old-sub", cert=pki.alice)
    pub, rc2 = paho_tls(pki, port, "old-pub", cert=pki.alice)
    assert (rc1, rc2) == (0, 0)

    # New certificate (new serial) and a CRL that also revokes alice.
    new_crt, new_key = pki.issue("server2", "localhost", 101, san="DNS:localhost,IP:127.0.0.1", server=True)
    new_crl = pki.revoke(pki.alice[0])
    shutil.copy(new_crt, files["server.crt"])
    shutil.copy(new_key, files["server.key"])
    shutil.copy(new_crl, files["crl.pem"])
    b.proc.send_signal(signal.SIGHUP)
    b.wait_log(r"SIGHUP: listener %d: certificate, key, CA and CRL files reloaded" % port)
    wait_for(lambda: handshake(pki, port)[1] == der(new_crt), what="the new certificate on new connections")
    # Established connections keep working (alice's included).
    assert roundtrip(pub, sub, "reload/a", b"after reload") == b"after reload"
    # A new connection with alice's certificate is now refused.
    with pytest.raises((ssl.SSLError, ConnectionError, mqttraw.ConnectionClosed)):
        c = mqtt_over_tls(pki, port, cert=pki.alice)
        c.send(mqttraw.connect("alice-again"))
        c.recv()
    ok = mqtt_over_tls(pki, port, cert=pki.dev)
    ok.send(mqttraw.connect("dev"))
    assert ok.expect(mqttraw.CONNACK).rc == 0

    # A broken certificate file: the old context stays, the error is logged.
    with open(files["server.crt"], "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    b.proc.send_signal(signal.SIGHUP)
    b.wait_log(r"SIGHUP: .*:\d+: listener %d: certfile %s: .*; listener %d keeps its previous certificates"
               % (port, files["server.crt"], port))
    assert handshake(pki, port)[1] == der(new_crt)
    assert roundtrip(pub, sub, "reload/b", b"still here") == b"still here"
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()


def test_config_errors(pki, tmp_path):
    def check(lines, start=False):
        conf = tmp_path / "bad.conf"
        conf.write_text("\n".join(["persistence false"] + lines) + "\n")
        args = [broker_bin(), "-c", str(conf)] + ([] if start else ["--check-config"])
        r = subprocess.run(args, capture_output=True, text=True, timeout=10)
        assert r.returncode != 0
        return r.stderr + r.stdout

    port = free_port()
    out = check(["listener %d" % port, "certfile " + pki.server_crt])
    assert "bad.conf:3: listener %d: certfile without keyfile" % port in out
    out = check(["listener %d" % port, "require_certificate true"])
    assert "bad.conf:2: listener %d: TLS options need certfile and keyfile" % port in out
    out = check(["listener %d" % port, "tls_version tlsv1.1"])
    assert "bad.conf:3: tls_version: invalid value 'tlsv1.1'" in out
    out = check(["cafile " + pki.ca, "listener %d" % port])
    assert "bad.conf:3: listener: the per-listener options above" in out
    # Files are read at start-up: the error names the line and the path.
    missing = str(tmp_path / "missing.key")
    out = check(["listener %d" % port, "certfile " + pki.server_crt, "keyfile " + missing], start=True)
    assert "bad.conf:4: listener %d: keyfile %s: No such file or directory" % (port, missing) in out
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("hello\n")
    out = check(["listener %d" % port, "certfile %s" % garbage, "keyfile " + pki.server_key], start=True)
    assert "bad.conf:3: listener %d: certfile %s:" % (port, garbage) in out


def test_max_connections(start_broker, pki):
    port = free_port()
    b = start_broker(extra_lines=tls_listener(pki, port, max_connections=2))
    clients = []
    for i in range(2):
        c = mqtt_over_tls(pki, port)
        c.send(mqttraw.connect("c%d" % i))
        assert c.expect(mqttraw.CONNACK).rc == 0
        clients.append(c)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        handshake(pki, port)
    b.wait_log(r"listener %d: max_connections 2 reached" % port)
    clients.pop().sock.close()
    wait_for(lambda: _handshake_ok(pki, port), what="a free slot after a close")


def _handshake_ok(pki, port):
    try:
        handshake(pki, port)
        return True
    except (ssl.SSLError, OSError):
        return False


def test_hostile_tls_input(start_broker, pki):
    port = free_port()
    b = start_broker(connect_timeout=1, extra_lines=tls_listener(pki, port))
    # Garbage instead of a ClientHello: closed, logged.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(os.urandom(4096))
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    b.wait_log(r"TLS handshake with 127\.0\.0\.1:\d+ on listener %d failed" % port)
    # Plain MQTT on the TLS port.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(mqttraw.connect("plain-on-tls"))
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    # A handshake that never finishes is closed by connect_timeout.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x00")  # the start of a record, then silence
        s.settimeout(5)
        t0 = time.monotonic()
        assert s.recv(4096) == b""
        assert time.monotonic() - t0 < 4
    # Garbage after a good handshake: a bad record closes the connection.
    c = mqtt_over_tls(pki, port)
    c.send(mqttraw.connect("ok"))
    assert c.expect(mqttraw.CONNACK).rc == 0
    under = socket.socket(fileno=os.dup(c.sock.fileno()))
    under.sendall(b"\x17\x03\x03\x00\x20" + os.urandom(32))
    under.close()
    b.wait_log(r"client ok \(127\.0\.0\.1:\d+, identity -\) disconnected: tls: \S")
    with pytest.raises((mqttraw.ConnectionClosed, ssl.SSLError, OSError)):
        c.recv()
    # The broker still serves.
    c2 = mqtt_over_tls(pki, port)
    c2.send(mqttraw.connect("after"))
    assert c2.expect(mqttraw.CONNACK).rc == 0
    assert b.alive()
