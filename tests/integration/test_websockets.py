"""MQTT over WebSocket (ws://) and secure WebSocket (wss://) with real
clients: paho (transport="websockets"), node-mqtt, and MQTT.js in headless
Chromium; hand-made frames for packets split across frames and batched in
one frame; hostile input (text frames, oversized frames, plain HTTP, broken
framing), each closed cleanly while the broker keeps serving."""
import http.server
import os
import shutil
import ssl
import struct
import subprocess
import threading
import time

import pytest

import mqttraw
import paho.mqtt.client as mqtt
from browser import chromium_bin, npm_package
from conftest import REPO, free_port, wait_for
from tls_certs import PKI
from ws_client import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, WSClient

NODE_PATH = "/usr/share/nodejs:/usr/lib/nodejs"
MQTTJS_VERSION = "5.16.0"  # browser bundle from the npm registry (Debian ships none)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = PKI(tmp_path_factory.mktemp("pki"))
    p.server_crt, p.server_key = p.server()
    return p


@pytest.fixture
def ws_broker(start_broker, pki):
    """A broker with a ws listener (.ws_port) and a wss listener (.wss_port)."""
    ws_port, wss_port = free_port(), free_port()

    def make(**options):
        b = start_broker(extra_lines=["listener %d 127.0.0.1" % ws_port, "protocol websockets",
                                      "listener %d 127.0.0.1" % wss_port, "protocol websockets",
                                      "certfile " + pki.server_crt, "keyfile " + pki.server_key],
                         **options)
        b.ws_port, b.wss_port = ws_port, wss_port
        return b
    return make


def paho_ws(port, client_id, pki=None, protocol=mqtt.MQTTv311):
    c = mqtt.Client(client_id, protocol=protocol, transport="websockets")
    if pki:
        c.tls_set(ca_certs=pki.ca)
    result = {}
    c.on_connect = lambda cl, u, f, rc, *a: result.setdefault("rc", rc)
    c.connect("localhost", port)
    c.loop_start()
    wait_for(lambda: "rc" in result, what="CONNACK over WebSocket")
    assert result["rc"] == 0
    return c


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["v311", "v5"])
def test_paho_websockets(ws_broker, pki, secure, protocol):
    b = ws_broker()
    port = b.wss_port if secure else b.ws_port
    sub = paho_ws(port, "ws-sub", pki if secure else None, protocol)
    pub = paho_ws(port, "ws-pub", pki if secure else None, protocol)
    got = []
    sub.on_message = lambda c, u, m: got.append((m.topic, m.payload))
    sub.subscribe("ws/#", 1)
    time.sleep(0.2)
    big = os.urandom(200 * 1024)
    pub.publish("ws/big", big, qos=1)
    for i in range(20):
        pub.publish("ws/n", b"%d" % i, qos=1)
    wait_for(lambda: len(got) == 21, what="21 messages")
    assert got[0] == ("ws/big", big)
    assert [p for _, p in got[1:]] == [b"%d" % i for i in range(20)]
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()


NODE_SCRIPT = r"""
const mqtt = require('mqtt'); const fs = require('fs');
const [url, ca] = [process.argv[1], process.argv[2]];
const opts = ca ? {ca: fs.readFileSync(ca)} : {};
const c = mqtt.connect(url, Object.assign({clientId: 'node-' + Date.now()}, opts));
const timer = setTimeout(() => { console.log('TIMEOUT'); process.exit(2); }, 10000);
c.on('connect', () => c.subscribe('node/t', {qos: 1}, () => c.publish('node/t', 'hello from node', {qos: 1})));
c.on('message', (t, m) => { console.log('GOT ' + t + ' ' + m.toString()); clearTimeout(timer); c.end(); });
c.on('error', e => { console.log('ERROR ' + e.message); process.exit(1); });
"""


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_node_mqtt(ws_broker, pki, secure):
    if not shutil.which("node"):
        pytest.skip("node is not installed (Debian nodejs)")
    b = ws_broker()
    url = "%s://localhost:%d/mqtt" % ("wss" if secure else "ws", b.wss_port if secure else b.ws_port)
    r = subprocess.run(["node", "-e", NODE_SCRIPT, url, pki.ca if secure else ""], capture_output=True,
                       text=True, timeout=30, env=dict(os.environ, NODE_PATH=NODE_PATH))
    assert r.stdout.strip() == "GOT node/t hello from node", r.stdout + r.stderr


def ws_connect(port, client_id="raw", ssl_ctx=None, protocols=("mqtt",)):
    w = WSClient(port, ssl_ctx=ssl_ctx)
    status, headers = w.handshake(protocols)
    assert status == 101
    return w, headers


def test_packets_split_across_frames_and_batched_in_one(ws_broker):
    b = ws_broker()
    w, headers = ws_connect(b.ws_port)
    assert headers.get("sec-websocket-protocol") == "mqtt"
    # CONNECT in three frames of one fragmented message, cut inside the header.
    pkt = mqttraw.connect("split-client")
    w.send_frame(OP_BINARY, pkt[:1], fin=False)
    w.send_frame(OP_CONT, pkt[1:5], fin=False)
    w.send_raw(w.frame(OP_PING, b"hi"))  # a control frame between fragments
    w.send_frame(OP_CONT, pkt[5:], fin=True)
    assert w.mqtt_recv().type == mqttraw.CONNACK
    # SUBSCRIBE, two PUBLISHes and a PINGREQ in one frame, and half of a third PUBLISH.
    third = mqttraw.publish("split/t", b"three", qos=1, pid=3)
    w.send_frame(OP_BINARY, mqttraw.subscribe(1, [("split/#", 1)]) + mqttraw.publish("split/t", b"one") +
                 mqttraw.publish("split/t", b"two", qos=1, pid=2) + mqttraw.pingreq() + third[:7])
    w.send_frame(OP_BINARY, third[7:])
    seen = []
    while len(seen) < 7:
        p = w.mqtt_recv()
        seen.append((p.type, getattr(p, "payload", None)))
    assert (mqttraw.SUBACK, None) in seen and (mqttraw.PINGRESP, None) in seen
    assert [pl for t, pl in seen if t == mqttraw.PUBLISH] == [b"one", b"two", b"three"]
    assert sum(1 for t, _ in seen if t == mqttraw.PUBACK) == 2
    # Pings are answered with their payload.
    assert w.pongs == [b"hi"]
    w.send_frame(OP_PING, b"ping?")
    fin, op, payload = w.recv_frame()
    assert (op, payload) == (OP_PONG, b"ping?")
    # Close handshake: our close is answered with a close, then the socket ends.
    w.send_frame(OP_CLOSE, struct.pack("!H", 1000))
    assert w.close_code() == 1000
    assert w.wait_closed()
    b.wait_log(r"client split-client \(127\.0\.0\.1:\d+, identity -\) disconnected: websocket: closed by the client")


def test_subprotocols(ws_broker):
    b = ws_broker()
    w, headers = ws_connect(b.ws_port, protocols=("mqttv3.1",))
    assert headers.get("sec-websocket-protocol") == "mqttv3.1"
    w.send_frame(OP_BINARY, mqttraw.connect("v31", version=3))
    assert w.mqtt_recv().type == mqttraw.CONNACK
    w2 = WSClient(b.ws_port)
    status, _ = w2.handshake(protocols=("chat", "superchat"))
    assert status == 400 and w2.wait_closed()
    w3, headers = ws_connect(b.ws_port, protocols=())
    assert "sec-websocket-protocol" not in headers
    w3.send_frame(OP_BINARY, mqttraw.connect("noproto"))
    assert w3.mqtt_recv().type == mqttraw.CONNACK


def test_hostile_websocket_input(ws_broker, pki):
    b = ws_broker(max_packet_size=4096, connect_timeout=2)
    # A text frame: close 1003.
    w, _ = ws_connect(b.ws_port)
    w.send_frame(OP_TEXT, b"hello")
    assert w.close_code() == 1003 and w.wait_closed()
    # A text frame after CONNECT, in the middle of a session.
    w, _ = ws_connect(b.ws_port)
    w.send_frame(OP_BINARY, mqttraw.connect("text-later"))
    assert w.mqtt_recv().type == mqttraw.CONNACK
    w.send_frame(OP_TEXT, b"{}")
    assert w.close_code() == 1003 and w.wait_closed()
    # An oversized frame (the header and a little of its 1 TB payload): close 1009.
    w, _ = ws_connect(b.ws_port)
    w.send_raw(w.frame(OP_BINARY, b"", length=1 << 40)[:10] + os.urandom(4 + 64))
    assert w.close_code() == 1009 and w.wait_closed()
    w, _ = ws_connect(b.ws_port)
    w.send_frame(OP_BINARY, b"\x30" + b"\x00" * 9999)
    assert w.close_code() == 1009 and w.wait_closed()
    # An unmasked client frame breaks RFC 6455: close 1002.
    w, _ = ws_connect(b.ws_port)
    w.send_frame(OP_BINARY, mqttraw.connect("unmasked"), mask=False)
    assert w.close_code() == 1002 and w.wait_closed()
    # Plain HTTP without Upgrade: 426 and closed.
    w = WSClient(b.ws_port)
    w.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert w.http_response()[0] == 426 and w.wait_closed()
    # Not HTTP at all (MQTT on the WebSocket port): 400 and closed.
    w = WSClient(b.ws_port)
    w.send_raw(mqttraw.connect("raw-mqtt") + b"\r\n\r\n")
    assert w.http_response()[0] == 400 and w.wait_closed()
    # Endless headers: refused, closed.
    w = WSClient(b.ws_port)
    try:
        w.send_raw(b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 9000 + b"\r\n")
    except OSError:
        pass
    assert w.http_response()[0] == 431 and w.wait_closed()
    # An Upgrade that never comes is closed by connect_timeout.
    w = WSClient(b.ws_port)
    w.send_raw(b"GET / HTTP/1.1\r\n")
    assert w.wait_closed(timeout=6)
    # Malformed MQTT inside good frames: the broker closes (with a close frame).
    w, _ = ws_connect(b.ws_port)
    w.send_frame(OP_BINARY, b"\xf0\x00")
    assert w.wait_closed()
    # Text frame over wss.
    ctx = ssl.create_default_context(cafile=pki.ca)
    w, _ = ws_connect(b.wss_port, ssl_ctx=ctx)
    w.send_frame(OP_TEXT, b"hello")
    assert w.close_code() == 1003
    # Still serving, on every listener.
    for port, ctx_ in ((b.ws_port, None), (b.wss_port, ctx)):
        w, _ = ws_connect(port, ssl_ctx=ctx_)
        w.send_frame(OP_BINARY, mqttraw.connect("still-here"))
        assert w.mqtt_recv().type == mqttraw.CONNACK
    c = mqttraw.RawClient(b.port)
    c.send(mqttraw.connect("tcp-still-here"))
    assert c.expect(mqttraw.CONNACK).rc == 0


# ---- MQTT.js in headless Chromium ----

def mqttjs_bundle():
    """The browser build of MQTT.js."""
    bundle = os.path.join(npm_package("mqtt", MQTTJS_VERSION), "mqtt", "dist", "mqtt.min.js")
    assert os.path.exists(bundle), "no browser build in the npm package: " + bundle
    return bundle


PAGE = """<!DOCTYPE html><html><body><pre id="out">waiting</pre>
<script src="/mqtt.min.js"></script>
<script>
const out = document.getElementById('out');
const c = mqtt.connect('ws://127.0.0.1:%(port)d/mqtt', {clientId: 'chromium', reconnectPeriod: 0});
c.on('connect', () => c.subscribe('browser/in', {qos: 1}));
c.on('message', (t, m) => {
  out.textContent = 'GOT:' + m.toString();
  c.publish('browser/echo', 'echo:' + m.toString(), {qos: 1});
});
c.on('error', e => { out.textContent = 'ERROR:' + e; });
</script>
<img src="/hold" alt="">
</body></html>
"""


def test_mqttjs_in_headless_chromium(ws_broker, tmp_path):
    browser = chromium_bin()
    if not browser:
        pytest.skip("chromium is not installed (Debian package chromium; `make deps` installs it)")
    bundle = mqttjs_bundle()
    b = ws_broker()
    release = threading.Event()
    page = (PAGE % {"port": b.ws_port}).encode()
    js = open(bundle, "rb").read()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/hold":
                release.wait(30)  # the load event, and so the DOM dump, waits for the echo
                body, ctype = b"", "image/gif"
            elif self.path == "/mqtt.min.js":
                body, ctype = js, "application/javascript"
            else:
                body, ctype = page, "text/html"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    echo = []
    watcher = mqtt.Client("watcher")
    watcher.on_message = lambda c, u, m: (echo.append(m.payload), release.set())
    watcher.connect("127.0.0.1", b.port)
    watcher.loop_start()
    watcher.subscribe("browser/echo", 1)
    # Retained: the page gets it whenever it subscribes.
    watcher.publish("browser/in", "hello browser", qos=1, retain=True)
    try:
        r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", "--disable-dev-shm-usage", "--user-data-dir=" + str(tmp_path / "chr"),
                            "--dump-dom", "http://127.0.0.1:%d/" % httpd.server_address[1]],
                           capture_output=True, text=True, timeout=90)
    finally:
        release.set()
        httpd.shutdown()
        watcher.loop_stop()
    assert echo == [b"echo:hello browser"], "no echo from the page; chromium stderr:\n" + r.stderr[-3000:]
    assert "GOT:hello browser" in r.stdout, r.stdout[-2000:]
    b.wait_log(r"client chromium connected")
