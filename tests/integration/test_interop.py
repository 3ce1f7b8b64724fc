"""Interoperability with other clients: mosquitto_pub/sub and node-mqtt."""
import json
import os
import shutil
import subprocess
import threading

import pytest

from conftest import wait_for

NODE_PATH = "/usr/share/nodejs"


class Proc:
    """A subprocess whose stdout lines are collected by a thread."""

    def __init__(self, args, env=None):
        self.lines = []
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env=env)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait(self, timeout=10):
        rc = self.p.wait(timeout)
        self.t.join(2)
        return rc

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def procs():
    made = []

    def factory(args, env=None):
        p = Proc(args, env)
        made.append(p)
        return p
    yield factory
    for p in made:
        p.kill()


def need(tool):
    if not shutil.which(tool):
        pytest.skip("%s not installed" % tool)


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mosquitto_pub_sub(broker, procs, version, qos):
    need("mosquitto_sub")
    port = str(broker.port)
    sub = procs(["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-V", version, "-d",
                 "-i", "mosq-sub", "-t", "io/#", "-q", str(qos), "-C", "3",
                 "-F", "MSG %t %q %p"])
    wait_for(lambda: any("SUBACK" in line for line in sub.lines), 10, what="mosquitto_sub SUBACK")
    for i in range(3):
        rc = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", version,
                             "-t", "io/%d" % i, "-m", "hello-%d" % i, "-q", str(qos)],
                            capture_output=True, text=True, timeout=10)
        assert rc.returncode == 0, rc
    assert sub.wait(10) == 0, sub.lines
    msgs = [line for line in sub.lines if line.startswith("MSG ")]
    assert msgs == ["MSG io/%d %d hello-%d" % (i, qos, i) for i in range(3)], sub.lines


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_retained(broker, version):
    need("mosquitto_sub")
    port = str(broker.port)
    rc = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", version,
                         "-t", "io/ret", "-m", "kept", "-r", "-q", "1"],
                        capture_output=True, text=True, timeout=10)
    assert rc.returncode == 0, rc
    out = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-V", version,
                          "-t", "io/ret", "-C", "1", "-W", "5", "-F", "%r %p"],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out
    assert out.stdout.strip() == "1 kept", out


NODE_SCRIPT = r"""
const mqtt = require('mqtt');
const [port, version] = process.argv.slice(2).map(Number);
const opts = {protocolVersion: version, clientId: 'node-' + version, clean: true,
              reconnectPeriod: 0, connectTimeout: 5000};
const c = mqtt.connect('mqtt://127.0.0.1:' + port, opts);
const got = [];
let done = false;
const timer = setTimeout(() => { console.log(JSON.stringify({error: 'timeout', got})); process.exit(2); }, 8000);
c.on('error', (e) => { if (done) return; console.log(JSON.stringify({error: String(e)})); process.exit(3); });
c.on('connect', () => {
  c.subscribe({'nd/#': {qos: 2}}, (err, granted) => {
    if (err) { console.log(JSON.stringify({error: String(err)})); process.exit(4); }
    c.publish('nd/q1', 'one', {qos: 1});
    c.publish('nd/q2', 'two', {qos: 2});
  });
});
c.on('message', (topic, payload, packet) => {
  got.push({topic, payload: payload.toString(), qos: packet.qos});
  if (got.length === 2) {
    clearTimeout(timer);
    done = true;
    console.log(JSON.stringify({got}));
    c.end(false, {}, () => process.exit(0));
  }
});
"""


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_node_mqtt_round_trip(broker, tmp_path, version):
    need("node")
    if not os.path.isdir(os.path.join(NODE_PATH, "mqtt")):
        pytest.skip("node-mqtt not installed")
    script = tmp_path / "rt.js"
    script.write_text(NODE_SCRIPT)
    env = dict(os.environ, NODE_PATH=NODE_PATH)
    r = subprocess.run(["node", str(script), str(broker.port), str(version)],
                       capture_output=True, text=True, timeout=20, env=env)
    assert r.returncode == 0, (r.stdout, r.stderr)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    got = sorted((m["topic"], m["payload"], m["qos"]) for m in out["got"])
    assert got == [("nd/q1", "one", 1), ("nd/q2", "two", 2)]


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_node_to_paho(broker, client, tmp_path, version):
    need("node")
    sub = client(broker, "paho-from-node", version)
    sub.subscribe("nd/#", 2)
    script = tmp_path / "pub.js"
    script.write_text(r"""
const mqtt = require('mqtt');
const [port, version] = process.argv.slice(2).map(Number);
const c = mqtt.connect('mqtt://127.0.0.1:' + port, {protocolVersion: version, reconnectPeriod: 0});
c.on('error', (e) => { console.error(String(e)); process.exit(3); });
c.on('connect', () => {
  c.publish('nd/a', 'A', {qos: 1}, () => c.publish('nd/b', 'B', {qos: 2}, () => c.end(false, {}, () => process.exit(0))));
});
""")
    env = dict(os.environ, NODE_PATH=NODE_PATH)
    r = subprocess.run(["node", str(script), str(broker.port), str(version)],
                       capture_output=True, text=True, timeout=20, env=env)
    assert r.returncode == 0, (r.stdout, r.stderr)
    msgs = sub.messages.wait_for(2)
    assert [(m.topic, m.payload, m.qos) for m in msgs] == [("nd/a", b"A", 1), ("nd/b", b"B", 2)]
