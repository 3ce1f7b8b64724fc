"""The HTTP API: authentication (token, Basic, cookie), every endpoint with
real clients, kick and delete with a v5 client seeing 0x98, reload,
malformed requests, keep-alive."""
import http.client
import os
import socket
import stat
import subprocess
import threading
import time

import mqttraw
from conftest import assert_broker_alive, broker_bin, connect_raw, free_port, props, tcp_sockets, wait_for
from opshttp import api, ops_broker, request
from paho.mqtt.packettypes import PacketTypes

PASSWD = os.environ.get("FERROMQ_PASSWD") or os.path.join(
    os.path.dirname(broker_bin()), "ferromq-passwd")


def test_auth_paths(start_broker, tmp_path):
    pw = tmp_path / "passwd"
    subprocess.run([PASSWD, "-c", "-b", str(pw), "operator", "s3cret"], check=True)
    b = ops_broker(start_broker, tmp_path, password_file=str(pw), allow_anonymous=True,
                   http_admin_users="operator")
    # The token file was created with a random token, readable by us only.
    assert stat.S_IMODE(os.stat(b.token_path).st_mode) == 0o600
    assert len(b.token) == 64 and int(b.token, 16) >= 0
    assert "http_token_file %s: created" % b.token_path in b.log_text()
    # /healthz needs nothing; everything else needs credentials.
    assert request(b, "GET", "/healthz")[2] == b"ok\n"
    for path in ("/readyz", "/metrics", "/api/status", "/", "/assets/dashboard.js"):
        status, hdrs, body = request(b, "GET", path)
        assert status == 401, path
        assert hdrs["www-authenticate"] == 'Basic realm="ferromq"'
    assert request(b, "GET", "/api/status", token="0" * 64)[0] == 401
    assert request(b, "GET", "/api/status", basic=("operator", "wrong"))[0] == 401
    assert request(b, "GET", "/api/status", basic=("nobody", "s3cret"))[0] == 401
    assert request(b, "GET", "/api/status", basic=("operator", "s3cret"))[0] == 200
    status, hdrs, _ = request(b, "GET", "/api/status", token=b.token)
    assert status == 200 and hdrs["cache-control"] == "no-store"
    assert hdrs["content-security-policy"] == "default-src 'self'"
    assert request(b, "GET", "/readyz", token=b.token)[2] == b"ready\n"
    # Cookie login: the right token sets the cookie and sends us to /.
    assert request(b, "GET", "/?token=nope")[0] == 401
    status, hdrs, _ = request(b, "GET", "/?token=" + b.token)
    assert status == 303 and hdrs["location"] == "/"
    cookie = hdrs["set-cookie"]
    assert cookie.startswith("ferromq_token=%s;" % b.token)
    for attr in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert attr in cookie
    status, hdrs, body = request(b, "GET", "/", headers={"Cookie": "x=1; ferromq_token=" + b.token})
    assert status == 200 and hdrs["content-type"].startswith("text/html") and len(body) > 0
    assert request(b, "GET", "/", headers={"Cookie": "ferromq_token=bad"})[0] == 401
    # A reload reads the token file again.
    with open(b.token_path, "w") as f:
        f.write("the-new-token\n")
    assert api(b, "POST", "/api/reload") == {"reloaded": True, "errors": []}
    assert request(b, "GET", "/api/status", token="the-new-token")[0] == 200
    assert request(b, "GET", "/api/status", token=b.token)[0] == 401


def test_http_listener_needs_credentials_config(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("listener %d 127.0.0.1\npersistence false\nhttp_listener %d\n" % (free_port(), free_port()))
    r = subprocess.run([broker_bin(), "--check-config", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "%s:3: http_listener needs http_token_file or password_file" % conf in r.stderr


def test_endpoints_with_clients(start_broker, tmp_path, client):
    b = ops_broker(start_broker, tmp_path)
    v5 = client(b, "api-v5", protocol=5, keepalive=30,
                properties=props(PacketTypes.CONNECT, SessionExpiryInterval=300))
    v5.subscribe("plant/+/temp", qos=1, no_local=True, rap=True, rh=1,
                 properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
    v3 = client(b, "api-v311", protocol=4, keepalive=20)
    v3.publish("plant/a/temp", b"21.5", qos=1, retain=True)
    v5.messages.wait_for(1)
    offline = client(b, "api-offline", protocol=4, clean=False)
    offline.subscribe("queue/#", qos=1)
    offline.disconnect()
    # The broker must have seen it go: a message routed before that is in
    # flight to it, not queued.
    wait_for(lambda: any(s["client_id"] == "api-offline" and not s["connected"]
                         for s in api(b, "GET", "/api/sessions")), what="api-offline disconnected")
    for i in range(3):
        v3.publish("queue/%d" % i, b"x" * 100, qos=1)

    clients = {c["client_id"]: c for c in wait_for(
        lambda: (lambda cs: cs if len(cs) == 2 else None)(api(b, "GET", "/api/clients")),
        what="two clients listed")}
    c5, c3 = clients["api-v5"], clients["api-v311"]
    assert c5["protocol"] == "mqttv5" and c3["protocol"] == "mqttv311"
    assert c5["address"].startswith("127.0.0.1:") and c5["listener"] == b.port
    assert c5["keepalive"] == 30 and c3["keepalive"] == 20
    assert c5["username"] is None and c5["identity"] is None
    assert c3["msgs_received"] == 4 and c5["msgs_sent"] >= 1 and c5["bytes_sent"] > 0
    assert c3["bytes_received"] > 0 and c5["connected_seconds"] >= 0
    assert c5["worker"] in (0, 1) and c5["inflight"] >= 0 and c5["queued"] == 0

    # Queued on its worker, which may be another than the publisher's.
    sessions = wait_for(lambda: (lambda ss: ss if ss["api-offline"]["queued"] == 3 else None)(
        {s["client_id"]: s for s in api(b, "GET", "/api/sessions")}), what="3 queued for api-offline")
    off = sessions["api-offline"]
    assert off["connected"] is False and off["queued"] == 3 and off["queued_bytes"] == 300
    # Known also when the queue's bodies are on disk (each entry keeps its time).
    assert isinstance(off["oldest_age_seconds"], int) and 0 <= off["oldest_age_seconds"] <= 5, off
    assert off["subscriptions"] == 1
    assert sessions["api-v5"]["connected"] is True and sessions["api-v5"]["expiry_interval"] == 300
    assert sessions["api-v5"]["expires_in_seconds"] is None
    assert sessions["api-v311"]["oldest_age_seconds"] is None
    time.sleep(2.2)
    aged = {s["client_id"]: s for s in api(b, "GET", "/api/sessions")}["api-offline"]["oldest_age_seconds"]
    assert 2 <= aged <= 8, aged

    subs = {(s["client_id"], s["filter"]): s for s in api(b, "GET", "/api/subscriptions")}
    s5 = subs[("api-v5", "plant/+/temp")]
    assert s5 == {"client_id": "api-v5", "filter": "plant/+/temp", "qos": 1, "no_local": True,
                  "retain_as_published": True, "retain_handling": 1, "subscription_id": 7}
    assert subs[("api-offline", "queue/#")]["subscription_id"] is None

    retained = {r["topic"]: r for r in api(b, "GET", "/api/retained")}
    assert retained["plant/a/temp"] == {"topic": "plant/a/temp", "bytes": 4, "qos": 1}

    status = wait_for(lambda: (lambda s: s if s["top_queues"] else None)(api(b, "GET", "/api/status")),
                      what="top queues")
    assert status["version"] == "0.1.0"
    assert status["top_queues"][0] == {"client_id": "api-offline", "queued": 3, "queued_bytes": 300,
                                       "connected": False}
    assert {a["name"] for a in status["alerts"]} == {"clients_drop", "message_rate_drop", "memory",
                                                     "subscription_leak", "queue_share", "device_offline",
                                                     "sparkplug_node_offline"}
    assert set(status["metrics"]["drops"]) == {"queue_full", "expired", "too_large", "not_authorized",
                                               "qos0_offline"}
    for key in ("messages_received", "messages_sent", "bytes_received", "bytes_sent"):
        assert set(status["rates"][key]) == {"now", "1m", "5m", "15m"}
    # Methods and unknown paths.
    assert request(b, "POST", "/api/status", token=b.token)[0] == 405
    assert request(b, "GET", "/api/clients/api-v5/kick", token=b.token)[0] == 405
    assert request(b, "GET", "/api/nothing", token=b.token)[0] == 404
    assert request(b, "GET", "/assets/none.js", token=b.token)[0] == 404


def test_kick_and_delete(start_broker, tmp_path, client):
    b = ops_broker(start_broker, tmp_path)
    v5 = client(b, "kick me/1", protocol=5, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=600))
    assert api(b, "POST", "/api/clients/kick%20me%2F1/kick") == {"kicked": True}
    assert v5.disconnected.wait(5) and v5.disconnect_rc == 0x98
    assert "error" in api(b, "POST", "/api/clients/kick%20me%2F1/kick", expect=404)
    assert "error" in api(b, "POST", "/api/clients/nobody/kick", expect=404)
    # The kicked client's session stays; deleting it removes it.
    assert any(s["client_id"] == "kick me/1" for s in api(b, "GET", "/api/sessions"))

    doomed = client(b, "doomed", protocol=5, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=600))
    doomed.subscribe("d/#", qos=1)
    assert api(b, "DELETE", "/api/sessions/doomed") == {"deleted": True}
    assert doomed.disconnected.wait(5) and doomed.disconnect_rc == 0x98
    assert api(b, "DELETE", "/api/sessions/kick%20me%2F1") == {"deleted": True}
    assert "error" in api(b, "DELETE", "/api/sessions/doomed", expect=404)
    assert not any(s["client_id"] in ("doomed", "kick me/1") for s in api(b, "GET", "/api/sessions"))
    assert not api(b, "GET", "/api/subscriptions")
    m = wait_for(lambda: (lambda s: s if s["metrics"]["clients_connected"] == 0 else None)(
        api(b, "GET", "/api/status")), what="no clients counted")
    assert m["metrics"]["clients_disconnected"] == 0
    # Gone from the store too.
    b.restart()
    wait_for(lambda: request(b, "GET", "/healthz")[0] == 200, what="HTTP after restart")
    assert api(b, "GET", "/api/sessions") == []
    back = client(b, "doomed", protocol=5, clean=False)
    assert not back.session_present


def test_reload_reports_errors(start_broker, tmp_path):
    pw = tmp_path / "passwd"
    subprocess.run([PASSWD, "-c", "-b", str(pw), "u", "p"], check=True)
    b = ops_broker(start_broker, tmp_path, password_file=str(pw))
    assert api(b, "POST", "/api/reload") == {"reloaded": True, "errors": []}
    pw.write_text("this is not a password line\n")
    out = api(b, "POST", "/api/reload")
    assert out["reloaded"] is False and len(out["errors"]) == 1 and str(pw) in out["errors"][0]
    assert request(b, "GET", "/api/reload", token=b.token)[0] == 405
    b.wait_log("HTTP reload: reload done \\(1 error\\)")


def raw_http(b, data, read_all=True):
    s = socket.create_connection(("127.0.0.1", b.http_port), timeout=5)
    try:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


def test_malformed_requests(start_broker, tmp_path):
    b = ops_broker(start_broker, tmp_path)
    cases = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: x\n\n", 400),
        (b"GET / HTTP/9.9\r\n\r\n", 400),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(60)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nX: " + b"v" * 20000 + b"\r\n\r\n", 431),
        (b"POST /api/reload HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", 413),
        (b"POST /api/reload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"\x00\xff\x16\x03\x01\r\n\r\n", 400),
    ]
    for data, want in cases:
        out = raw_http(b, data)
        assert out.startswith(b"HTTP/1.1 %d " % want), (data[:40], out[:80])
        assert b"Connection: close" in out and b'{"error":' in out
    # A client that goes away mid-request, and one that sends nothing.
    s = socket.create_connection(("127.0.0.1", b.http_port))
    s.sendall(b"GET /api/sta")
    s.close()
    assert request(b, "GET", "/healthz")[0] == 200
    assert b.alive()


def test_keep_alive_and_pipelining(start_broker, tmp_path, client):
    b = ops_broker(start_broker, tmp_path)
    client(b, "ka", protocol=4)
    conn = http.client.HTTPConnection("127.0.0.1", b.http_port, timeout=10)
    for path in ("/api/status", "/api/clients", "/metrics", "/api/sessions"):
        status, hdrs, _ = request(b, "GET", path, token=b.token, conn=conn)
        assert status == 200 and hdrs["connection"] == "keep-alive"
    sock = conn.sock
    status, _, _ = request(b, "GET", "/readyz", token=b.token, conn=conn)
    assert status == 200 and conn.sock is sock  # the same connection throughout
    conn.close()
    # Two requests in one write (the second an async one): two answers, in order.
    auth = b"Authorization: Bearer " + b.token.encode() + b"\r\n"
    out = raw_http(b, b"GET /api/clients HTTP/1.1\r\n" + auth + b"\r\n" +
                   b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 OK") == 2
    assert out.index(b'"client_id":"ka"') < out.index(b"ok\n")
    # HTTP/1.0 closes by default.
    out = raw_http(b, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in out
    time.sleep(0.1)
    assert b.alive()


def closed_by_server(s, timeout):
    """Whether the broker closes s within timeout seconds (EOF or reset)."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def test_slowloris_request_cut_off(start_broker, tmp_path):
    b = ops_broker(start_broker, tmp_path)
    # A head trickled a byte a second never ends: the idle timeout alone
    # (30 s without a byte) would keep it forever.
    s = socket.create_connection(("127.0.0.1", b.http_port))
    s.sendall(b"GET /healthz HTTP/1.1\r\n")
    start = time.monotonic()
    s.settimeout(1)
    cut = False
    while time.monotonic() - start < 20 and not cut:
        try:
            s.sendall(b"X")
            cut = s.recv(1) == b""
        except socket.timeout:
            pass
        except (ConnectionResetError, BrokenPipeError):
            cut = True
    s.close()
    assert cut and 9 <= time.monotonic() - start <= 15
    assert request(b, "GET", "/healthz")[0] == 200


def test_connections_capped(start_broker, tmp_path):
    b = ops_broker(start_broker, tmp_path)
    wait_for(lambda: all(state == "LISTEN" for state, _ in tcp_sockets(b.http_port)),
             what="the helper's connections gone at the broker")
    socks = []
    for _ in range(200):
        socks.append(socket.create_connection(("127.0.0.1", b.http_port)))
        time.sleep(0.002)  # so "least recently active" has an order
    # At 128 open, each new one closes the oldest idle one: as it accepts it.
    wait_for(lambda: [q for state, q in tcp_sockets(b.http_port) if state == "LISTEN"] == [0],
             what="every connection accepted")
    closed = [i for i, s in enumerate(socks) if closed_by_server(s, 0.01)]
    assert closed == list(range(72)), closed
    assert request(b, "GET", "/healthz")[0] == 200
    b.wait_log("http_listener: 128 connections open")
    for s in socks:
        s.close()
    wait_for(lambda: request(b, "GET", "/healthz")[0] == 200, what="HTTP after the flood")


def test_pipelined_answers_not_read(start_broker, tmp_path):
    b = ops_broker(start_broker, tmp_path)
    heap = lambda: api(b, "GET", "/api/status")["metrics"]["heap_bytes"]
    before = wait_for(lambda: heap(), what="a sample")
    # 200,000 requests in a row, no answer read: each answer is ~8 times its
    # request. Only one answer at a time may wait, the rest stays unread.
    s = socket.create_connection(("127.0.0.1", b.http_port))
    s.setblocking(False)
    data = b"GET /healthz HTTP/1.1\r\n\r\n" * 200000
    sent, start = 0, time.monotonic()
    while sent < len(data) and time.monotonic() - start < 5:
        try:
            sent += s.send(data[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.05)
    time.sleep(2.5)  # two samples
    grown = heap() - before
    assert grown < 8 * 1024 * 1024, (sent, grown)
    assert request(b, "GET", "/healthz")[0] == 200
    s.close()
    assert b.alive()


def test_head_requests(start_broker, tmp_path):
    b = ops_broker(start_broker, tmp_path)
    status, hdrs, body = request(b, "HEAD", "/healthz")
    assert status == 200 and hdrs["content-length"] == "3" and body == b""
    conn = http.client.HTTPConnection("127.0.0.1", b.http_port, timeout=10)
    status, hdrs, body = request(b, "HEAD", "/api/status", token=b.token, conn=conn)
    assert status == 200 and int(hdrs["content-length"]) > 100 and body == b""
    # The connection carries on: no stray body bytes before the next answer.
    status, _, body = request(b, "GET", "/healthz", conn=conn)
    assert status == 200 and body == b"ok\n"
    conn.close()
    status, hdrs, _ = request(b, "PUT", "/healthz")
    assert status == 405 and hdrs["allow"] == "GET, HEAD"


def test_refusal_readable_while_client_sends(start_broker, tmp_path):
    b = ops_broker(start_broker, tmp_path)
    # A body refused at once (413) while the client is still sending it: the
    # broker must not reset the connection under it, or the client sees
    # "connection reset" instead of the answer.
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", b.http_port), timeout=10)
        s.sendall(b"POST /api/reload HTTP/1.1\r\nContent-Length: 999999\r\n\r\n" + b"x" * 4000000)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        assert out.startswith(b"HTTP/1.1 413 "), out[:80]


def test_request_a_byte_at_a_time(start_broker, tmp_path):
    b = ops_broker(start_broker, tmp_path)
    s = socket.create_connection(("127.0.0.1", b.http_port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = (b"POST /api/reload HTTP/1.1\r\nAuthorization: Bearer " + b.token.encode() +
           b"\r\nContent-Length: 5\r\n\r\nhello" + b"GET /healthz HTTP/1.1\r\n\r\n")
    for i in range(len(req)):
        s.sendall(req[i:i + 1])
        time.sleep(0.001)
    out = b""
    while out.count(b"HTTP/1.1 200 OK") < 2 or not out.endswith(b"ok\n"):
        chunk = s.recv(65536)
        assert chunk, out
        out += chunk
    s.close()
    assert b'{"reloaded":true' in out


def test_cross_site_changes_refused(start_broker, tmp_path):
    pw = tmp_path / "passwd"
    subprocess.run([PASSWD, "-c", "-b", str(pw), "operator", "s3cret"], check=True)
    b = ops_broker(start_broker, tmp_path, password_file=str(pw), http_admin_users="operator")
    host = "127.0.0.1:%d" % b.http_port
    # A page elsewhere posting to us with the browser's cached Basic
    # password or our cookie changes nothing.
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
        for auth in ({"basic": ("operator", "s3cret")},
                     {"headers": {"Cookie": "ferromq_token=" + b.token}}):
            kw = dict(auth)
            kw["headers"] = dict(kw.get("headers", {}), **headers)
            status, _, body = request(b, "POST", "/api/reload", **kw)
            assert status == 403 and b"cross-site" in body, (headers, auth)
            assert request(b, "DELETE", "/api/sessions/x", **kw)[0] == 403
    assert "reload done" not in b.log_text()
    # Our own page, tools without a page, and reads are fine.
    for headers in ({"Origin": "http://" + host, "Sec-Fetch-Site": "same-origin"}, {}, {"Sec-Fetch-Site": "none"}):
        assert request(b, "POST", "/api/reload", basic=("operator", "s3cret"), headers=headers)[0] == 200
    assert request(b, "GET", "/api/status", basic=("operator", "s3cret"),
                   headers={"Origin": "http://evil.example"})[0] == 200


def test_delete_session_while_it_subscribes(start_broker, tmp_path, raw):
    b = ops_broker(start_broker, tmp_path)
    pub = connect_raw(raw, b, "race-pub")
    raced = 0
    for attempt in range(60):
        if raced == 4:
            break
        cid = "racer-%d" % attempt
        r = connect_raw(raw, b, cid, clean=False)
        # Only a client on another worker than the HTTP server's can race it.
        if {c["client_id"]: c["worker"] for c in api(b, "GET", "/api/clients")}[cid] == 0:
            r.close()
            continue
        raced += 1
        stop, flooding = threading.Event(), threading.Event()
        flood = mqttraw.subscribe(1, [("race/%d/#" % attempt, 0)]) * 200

        def subscribe_nonstop():
            try:
                while not stop.is_set():
                    r.sock.sendall(flood)
                    flooding.set()
            except OSError:
                pass
            flooding.set()
        t = threading.Thread(target=subscribe_nonstop)
        t.start()
        flooding.wait(5)
        # SUBSCRIBEs the client sent after the deletion must not outlive the
        # session in the subscription index (then routing reads freed memory).
        assert api(b, "DELETE", "/api/sessions/" + cid) == {"deleted": True}
        time.sleep(0.1)
        stop.set()
        t.join()
        r.close()
        wait_for(lambda: cid not in {c["client_id"] for c in api(b, "GET", "/api/clients")},
                 what="the deleted session's client gone")
        pub.send(mqttraw.publish("race/%d/x" % attempt, b"after"))
        assert_broker_alive(b)
    assert raced == 4
    wait_for(lambda: api(b, "GET", "/api/status")["metrics"]["subscriptions"] == 0, what="no subscription left")
