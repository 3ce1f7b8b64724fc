"""The edge-to-cloud bridge: real ferromq (and mosquitto) processes on
loopback. The edge spools what leaves through a bridge in its store until the
cloud's PUBACK; these tests count what arrives where."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

import mqttraw
from conftest import free_port, wait_for

MOSQUITTO = "/usr/sbin/mosquitto"


def bridge_lines(name, cloud_port, topics, version="mqttv50", extra=()):
    lines = ["connection %s" % name,
             "address 127.0.0.1:%d" % cloud_port,
             "bridge_protocol_version %s" % version,
             "restart_timeout 1 2",
             "keepalive_interval 5"]
    lines += ["topic %s" % t for t in topics]
    lines += list(extra)
    return lines


def collect(client_factory, broker, topic, protocol=5, qos=1):
    sub = client_factory(broker, protocol=protocol)
    sub.subscribe(topic, qos)
    return sub


def wait_connected(edge, name="cloud", timeout=10):
    edge.wait_log(r"bridge %s: connected to" % name, timeout)


def wait_subscribed(cloud, remote_filter, name="cloud"):
    """The bridge's SUBSCRIBE for remote_filter is in at a ferromq cloud (its
    client id is <host>.<bridge name>)."""
    cloud.wait_log(r"client \S+\.%s subscribed to %s \(QoS" % (re.escape(name), re.escape(remote_filter)))


def test_out_remaps_and_arrives_in_order(start_broker, client):
    cloud = start_broker()
    edge = start_broker(extra_lines=bridge_lines("cloud", cloud.port, ['machines/# out 1 "" plant-detroit/']))
    sub = collect(client, cloud, "plant-detroit/#")
    wait_connected(edge)
    pub = client(edge, protocol=5)
    for i in range(200):
        pub.publish("machines/chiller-01/temperature", b"%d" % i, qos=1)
    pub.publish("other/topic", b"not bridged", qos=1)
    got = sub.messages.wait_for(200, timeout=15)
    assert [m.topic for m in got] == ["plant-detroit/machines/chiller-01/temperature"] * 200
    assert [int(m.payload) for m in got] == list(range(200))
    time.sleep(0.3)
    assert len(sub.messages) == 200


def test_outage_with_edge_kill9_loses_nothing(start_broker, client):
    """Cloud down, N messages published at a fixed rate at the edge, the edge
    killed with -9 in the middle and restarted, then the cloud back: all N
    arrive once, in order, remapped."""
    n = 300
    cloud = start_broker()
    edge = start_broker(extra_lines=bridge_lines("cloud", cloud.port, ['machines/# out 1 "" plant-detroit/']))
    from conftest import props, PacketTypes
    persist = dict(client_id="collector", protocol=5, clean=False,
                   properties=props(PacketTypes.CONNECT, SessionExpiryInterval=3600))
    sub = client(cloud, **persist)
    sub.subscribe("plant-detroit/#", 1)
    wait_connected(edge)
    sub.stop()
    cloud.stop()
    pub = client(edge, protocol=5)
    t0 = time.monotonic()
    for i in range(n // 2):
        pub.publish("machines/line-%d/count" % (i % 3), b"%d" % i, qos=1)
        time.sleep(max(0, t0 + i * 0.01 - time.monotonic()))  # 100 messages/s
    pub.stop()
    edge.kill9()
    edge.start()
    edge.wait_log(r"recovered .* %d spooled for bridges" % (n // 2))
    pub = client(edge, protocol=5)
    for i in range(n // 2, n):
        pub.publish("machines/line-%d/count" % (i % 3), b"%d" % i, qos=1)
        time.sleep(0.01)
    cloud.start()
    sub = client(cloud, **persist)
    got = sub.messages.wait_for(n, timeout=30)
    time.sleep(0.5)
    got = sub.messages.snapshot()
    assert [int(m.payload) for m in got] == list(range(n))
    assert all(m.topic == "plant-detroit/machines/line-%d/count" % (int(m.payload) % 3) for m in got)


def test_commands_flow_down_and_nothing_loops(start_broker, client):
    cloud = start_broker()
    edge = start_broker(extra_lines=bridge_lines("cloud", cloud.port, [
        'machines/# out 1 "" plant-detroit/',
        'commands/# in 1 "" plant-detroit/',
        'shared/# both 1 "" ""']))
    cloud_sub = collect(client, cloud, "#")
    edge_sub = collect(client, edge, "#")
    wait_connected(edge)
    edge.wait_log(r"bridge cloud: connected")
    wait_subscribed(cloud, "plant-detroit/commands/#")
    wait_subscribed(cloud, "shared/#")
    cloud_pub = client(cloud, protocol=5)
    edge_pub = client(edge, protocol=5)
    cloud_pub.publish("plant-detroit/commands/chiller-01/setpoint", b"7.5", qos=1)
    edge_sub.messages.wait_match(lambda m: m.topic == "commands/chiller-01/setpoint" and m.payload == b"7.5")
    edge_pub.publish("shared/from-edge", b"e", qos=1)
    cloud_pub.publish("shared/from-cloud", b"c", qos=1)
    edge_pub.publish("machines/m1/state", b"running", qos=1)
    cloud_sub.messages.wait_match(lambda m: m.topic == "plant-detroit/machines/m1/state")
    edge_sub.messages.wait_match(lambda m: m.topic == "shared/from-cloud")
    cloud_sub.messages.wait_match(lambda m: m.topic == "shared/from-edge")
    time.sleep(1.5)  # long enough for any echo to come round
    at_cloud = sorted(m.topic for m in cloud_sub.messages.snapshot())
    at_edge = sorted(m.topic for m in edge_sub.messages.snapshot())
    assert at_cloud == ["plant-detroit/commands/chiller-01/setpoint", "plant-detroit/machines/m1/state",
                        "shared/from-cloud", "shared/from-edge"]
    assert at_edge == ["commands/chiller-01/setpoint", "machines/m1/state", "shared/from-cloud",
                       "shared/from-edge"]


def test_rate_limit_within_ten_percent(start_broker, client):
    rate, n = 50, 200
    cloud = start_broker()
    edge = start_broker(extra_lines=bridge_lines("cloud", cloud.port, ['data/# out 1'],
                                                 extra=["bridge_max_msgs_per_sec %d" % rate]))
    sub = collect(client, cloud, "data/#")
    wait_connected(edge)
    pub = client(edge, protocol=5)
    for i in range(n):
        pub.publish("data/x", b"%d" % i, qos=1, wait=False)
    got = sub.messages.wait_for(n, timeout=n / rate + 10)
    assert [int(m.payload) for m in got] == list(range(n))  # nothing dropped for rate
    # Past the first tenth of a second's burst.
    span = got[-1].time - got[10].time
    observed = (n - 11) / span
    assert abs(observed - rate) <= rate * 0.1, "observed %.1f messages/s for a limit of %d" % (observed, rate)


def test_data_reduction_forwards_exactly_as_configured(start_broker, client):
    cloud = start_broker()
    edge = start_broker(extra_lines=bridge_lines("cloud", cloud.port, [], extra=[
        'topic s/rbe/# out 1 "" c/', "report_by_exception true",
        'topic s/db/# out 1 "" c/', "deadband 0.5",
        'topic s/json/# out 1 "" c/', "deadband 1", "deadband_field value",
        'topic s/slow/# out 1 "" c/', "min_interval 1"]))
    sub = collect(client, cloud, "c/#")
    wait_connected(edge)
    pub = client(edge, protocol=5)
    sent = {
        "s/rbe/a": [b"on", b"on", b"off", b"off", b"on"],
        "s/db/t": [b"10", b"10.2", b"10.4", b"10.6", b"10.7", b"9.9", b"n/a"],
        "s/json/t": [b'{"value": 1}', b'{"value": 1.5}', b'{"value": 2.1}', b'{"unit": "C", "value": 2.5}',
                     b'{"value": 3.2}'],
    }
    for topic, payloads in sent.items():
        for p in payloads:
            pub.publish(topic, p, qos=1)
    for i in range(1, 11):
        pub.publish("s/slow/t", b"%d" % i, qos=1)
    expected = {
        "c/s/rbe/a": [b"on", b"off", b"on"],
        "c/s/db/t": [b"10", b"10.6", b"9.9", b"n/a"],
        "c/s/json/t": [b'{"value": 1}', b'{"value": 2.1}', b'{"value": 3.2}'],
        "c/s/slow/t": [b"1", b"10"],
    }
    sub.messages.wait_for(sum(len(v) for v in expected.values()), timeout=10)
    time.sleep(1.5)  # nothing more comes, the held min_interval value included
    got = {}
    for m in sub.messages.snapshot():
        got.setdefault(m.topic, []).append(m.payload)
    assert got == expected


def test_min_interval_never_sends_a_value_the_latest_one_replaced(start_broker, client):
    """A value held for min_interval, then the old value again (dropped by
    report by exception or the deadband as what the cloud already has): the
    held one is stale and must not be sent when the interval ends."""
    cloud = start_broker()
    edge = start_broker(extra_lines=bridge_lines("cloud", cloud.port, [], extra=[
        'topic s/rbe/# out 1 "" c/', "report_by_exception true", "min_interval 1",
        'topic s/db/# out 1 "" c/', "deadband 0.5", "min_interval 1"]))
    sub = collect(client, cloud, "c/#")
    wait_connected(edge)
    pub = client(edge, protocol=5)
    for topic, values in (("s/rbe/valve", [b"open", b"closed", b"open"]), ("s/db/t", [b"10", b"20", b"10.1"])):
        for v in values:
            pub.publish(topic, v, qos=1)
    sub.messages.wait_for(2, timeout=10)
    time.sleep(2)  # past the interval: a held value would have gone by now
    got = sorted((m.topic, m.payload) for m in sub.messages.snapshot())
    assert got == [("c/s/db/t", b"10"), ("c/s/rbe/valve", b"open")]


def check_config(tmp_path, lines):
    conf = tmp_path / "bad.conf"
    conf.write_text("\n".join(lines) + "\n")
    from conftest import broker_bin
    r = subprocess.run([broker_bin(), "--check-config", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 1
    return r.stderr.strip()


@pytest.mark.parametrize("lines,where,what", [
    (["address 127.0.0.1:1883"], 1, "without a `connection NAME` line"),
    (["connection c", "address 127.0.0.1:99999"], 2, "port in 1..65535"),
    (["connection c", "address h:1", "topic a/# sideways"], 3, "out, in or both"),
    (["connection c", "address h:1", "topic a/#/b out"], 3, "topic filter"),
    (["connection c", "address h:1", "topic a/# out 3"], 3, "QOS must be 0, 1 or 2"),
    (["connection c", "address h:1", "deadband 1"], 3, "there is none"),
    (["connection c", "address h:1", "topic a/#", "deadband x"], 4, "invalid value 'x'"),
    (["connection c", "address h:1", "topic a/#", "restart_timeout 10 5"], 4, "MIN <= MAX"),
    (["connection c", "address h:1", "topic a/#", "bridge_protocol_version mqttv4"], 4, "mqttv311|mqttv50"),
    (["", "connection c", "topic a/#"], 2, "needs an address line"),
    (["connection c", "address h", "topic a/# in 1", "report_by_exception true"], 3, "out and both"),
    (["connection c", "address h", "topic a/#", "connection c"], 4, "declared twice"),
])
def test_bad_bridge_lines_name_file_and_line(tmp_path, lines, where, what):
    err = check_config(tmp_path, lines)
    assert err.startswith("%s:%d: " % (tmp_path / "bad.conf", where)), err
    assert what in err, err


class Mosquitto:
    """Debian's mosquitto as the cloud broker, on a free loopback port."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.dir = tmp_path / "mosquitto"
        self.dir.mkdir()
        self.conf = self.dir / "mosquitto.conf"
        # As root, mosquitto would drop to its own user, which cannot write here.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             "persistence_location %s/\nlog_dest stderr\nlog_type all\n%s" % (self.port, self.dir, user))
        self.logpath = self.dir / "mosquitto.log"
        self.log = open(self.dir / "mosquitto.log", "ab")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=self.log, stderr=subprocess.STDOUT)

        def listening():
            import socket
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False
        wait_for(listening, 10, what="mosquitto listening")
        return self

    def wait_log(self, pattern, timeout=5.0):
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.logpath.read_text(errors="replace")), timeout,
                        what="mosquitto log /%s/" % pattern)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def mosquitto(tmp_path):
    if not os.path.exists(MOSQUITTO):
        pytest.skip("Debian's mosquitto is not installed (%s): apt-get install mosquitto" % MOSQUITTO)
    m = Mosquitto(tmp_path)
    yield m.start()
    m.stop()
    m.log.close()


@pytest.mark.parametrize("version", ["mqttv50", "mqttv311"])
def test_mosquitto_as_the_cloud(start_broker, client, mosquitto, version):
    """Out through an outage of mosquitto, commands down, and, for v3 (no No
    Local), nothing that we send comes back as a command."""
    edge = start_broker(extra_lines=bridge_lines("cloud", mosquitto.port, [
        'machines/# out 1 "" plant-detroit/',
        'commands/# in 1 "" plant-detroit/'], version=version))
    from conftest import props, PacketTypes
    persist = dict(client_id="collector", protocol=5, clean=False,
                   properties=props(PacketTypes.CONNECT, SessionExpiryInterval=3600))
    sub = client(mosquitto.port, **persist)
    sub.subscribe("plant-detroit/#", 1)
    edge_sub = collect(client, edge, "#")
    wait_connected(edge)
    mosquitto.wait_log(r"plant-detroit/commands/# \(QoS 1\)")  # the bridge's SUBSCRIBE is in
    pub = client(edge, protocol=5)
    for i in range(100):
        pub.publish("machines/press-7/cycles", b"%d" % i, qos=1)
    sub.messages.wait_for(100, timeout=10)
    sub.stop()
    mosquitto.stop()
    for i in range(100, 200):
        pub.publish("machines/press-7/cycles", b"%d" % i, qos=1)
    mosquitto.start()
    sub = client(mosquitto.port, **persist)
    got = sub.messages.wait_for(100, timeout=20)
    cmd = client(mosquitto.port, protocol=5)
    cmd.publish("plant-detroit/commands/press-7/stop", b"now", qos=1)
    edge_sub.messages.wait_match(lambda m: m.topic == "commands/press-7/stop", timeout=10)
    time.sleep(1)
    got = sub.messages.snapshot()
    cycles = [int(m.payload) for m in got if m.topic == "plant-detroit/machines/press-7/cycles"]
    # The last messages before mosquitto stopped may go again (their PUBACK
    # was lost with it: QoS 1 is at least once), ahead of the rest, in order.
    again = [c for c in cycles if c < 100]
    assert again == list(range(100 - len(again), 100)), cycles[:10]
    assert cycles[len(again):] == list(range(100, 200))
    at_edge = [m.topic for m in edge_sub.messages.snapshot()]
    assert at_edge.count("commands/press-7/stop") == 1
    assert at_edge.count("machines/press-7/cycles") == 200


def test_spool_is_visible_in_metrics_sys_api_and_ctl(start_broker, client, tmp_path):
    import opshttp
    ctl_bin = os.environ.get("FERROMQ_CTL") or os.path.join(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))), "build", "ferromq-ctl")
    cloud_port = free_port()  # nothing listens: a long outage
    edge = opshttp.ops_broker(start_broker, tmp_path, extra_lines=bridge_lines(
        "cloud", cloud_port, ['machines/# out 1 "" plant-detroit/'],
        extra=["bridge_max_spool_bytes 1000", "bridge_spool_overflow drop_oldest"]))
    sys_sub = collect(client, edge, "$SYS/broker/bridges/#")
    pub = client(edge, protocol=5)
    for i in range(120):
        pub.publish("machines/m/v", b"%010d" % i, qos=1)  # 10 bytes each: 100 fit
    m = wait_for(lambda: (lambda v: v if v.get('ferromq_bridge_spool_messages{bridge="cloud"}') == 100 else None)(
        opshttp.metrics(edge)), timeout=5, what="the spool in /metrics")
    assert m['ferromq_bridge_connected{bridge="cloud"}'] == 0
    assert m['ferromq_bridge_spool_bytes{bridge="cloud"}'] == 1000
    assert m['ferromq_bridge_spool_drain_seconds{bridge="cloud"}'] == -1
    assert m['ferromq_bridge_dropped_total{bridge="cloud",reason="spool_full"}'] == 20
    bridges = opshttp.api(edge, "GET", "/api/bridges")
    assert len(bridges) == 1 and bridges[0]["name"] == "cloud" and bridges[0]["connected"] is False
    assert bridges[0]["spool_messages"] == 100 and bridges[0]["drain_seconds"] is None
    assert bridges[0]["remote"] == "127.0.0.1:%d" % cloud_port
    sys_sub.messages.wait_match(lambda x: x.topic == "$SYS/broker/bridges/cloud/spool/messages"
                                and x.payload == b"100", timeout=5)
    r = subprocess.run([ctl_bin, "--url", "http://127.0.0.1:%d" % edge.http_port, "--token-file",
                        edge.token_path, "bridge"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.splitlines()[:2]
    assert header.split()[:4] == ["BRIDGE", "CONNECTED", "REMOTE", "SPOOLED"]
    assert row.split()[:4] == ["cloud", "no", "127.0.0.1:%d" % cloud_port, "100"]
    # The oldest are gone (drop_oldest): the cloud, once up, gets 20..119.
    cloud = start_broker()
    with open(edge.conf) as f:
        conf = f.read().replace("127.0.0.1:%d" % cloud_port, "127.0.0.1:%d" % cloud.port)
    sub = collect(client, cloud, "plant-detroit/#")
    with open(edge.conf, "w") as f:
        f.write(conf)
    edge.restart()
    got = sub.messages.wait_for(100, timeout=15)
    assert [int(x.payload) for x in got] == list(range(20, 120))


def test_tls_with_a_client_certificate(start_broker, client, tmp_path):
    from tls_certs import PKI
    pki = PKI(tmp_path / "pki")
    server_crt, server_key = pki.server()
    edge_crt, edge_key = pki.issue("edge", "plant-detroit-edge", 301)
    tls_port = free_port()
    cloud = start_broker(extra_lines=["listener %d 127.0.0.1" % tls_port, "certfile " + server_crt,
                                      "keyfile " + server_key, "cafile " + pki.ca, "require_certificate true"])
    sub = collect(client, cloud, "plant-detroit/#")
    tls = ["bridge_cafile " + pki.ca, "bridge_certfile " + edge_crt, "bridge_keyfile " + edge_key]
    edge = start_broker(extra_lines=bridge_lines("cloud", tls_port, ['machines/# out 1 "" plant-detroit/'],
                                                 extra=tls))
    wait_connected(edge)
    pub = client(edge, protocol=5)
    pub.publish("machines/m1/state", b"running", qos=1)
    sub.messages.wait_match(lambda m: m.topic == "plant-detroit/machines/m1/state" and m.payload == b"running")
    # A CA that did not sign the cloud's certificate: no connection, the message waits.
    other = PKI(tmp_path / "other")
    bad = start_broker(extra_lines=bridge_lines("cloud", tls_port, ['machines/# out 1 "" plant-detroit/'],
                                                extra=["bridge_cafile " + other.ca]))
    bad.wait_log(r"bridge cloud: connection to 127\.0\.0\.1:%d closed: TLS handshake: " % tls_port)
    client(bad, protocol=5).publish("machines/m2/state", b"stopped", qos=1)
    time.sleep(1)
    assert not any(m.topic.endswith("m2/state") for m in sub.messages.snapshot())
    assert "bridge cloud: connected" not in bad.log_text()


def test_remote_sys_tree_is_not_taken_in(start_broker, client):
    cloud = start_broker(sys_interval=1)
    edge = start_broker(extra_lines=bridge_lines("cloud", cloud.port, ['$SYS/broker/version in 0', 'x/# in 0']))
    edge_x = collect(client, edge, "x/#")
    wait_connected(edge)
    wait_subscribed(cloud, "$SYS/broker/version")
    wait_subscribed(cloud, "x/#")
    client(cloud, protocol=5).publish("x/after", b"1", qos=1)
    edge_x.messages.wait_match(lambda m: m.topic == "x/after")  # the link works, and came after $SYS
    edge.wait_log(r"\$SYS/broker/version from the remote not published: \$SYS is the broker's own tree")


def test_message_expiry_passes_in_the_spool(start_broker, client):
    from conftest import props, PacketTypes
    cloud = start_broker()
    edge = start_broker(extra_lines=bridge_lines("cloud", cloud.port, ['m/# out 1']))
    persist = dict(client_id="collector", protocol=5, clean=False,
                   properties=props(PacketTypes.CONNECT, SessionExpiryInterval=3600))
    sub = client(cloud, **persist)
    sub.subscribe("m/#", 1)
    wait_connected(edge)
    sub.stop()
    cloud.stop()
    pub = client(edge, protocol=5)
    pub.publish("m/short", b"gone", qos=1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish("m/long", b"kept", qos=1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=3600))
    time.sleep(2.2)
    cloud.start()
    sub = client(cloud, **persist)
    msg = sub.messages.wait_match(lambda m: m.topic == "m/long", timeout=10)
    assert 3590 <= msg.properties.MessageExpiryInterval <= 3600
    time.sleep(0.5)
    assert [m.topic for m in sub.messages.snapshot()] == ["m/long"]


def test_remote_refusal_is_dropped_and_counted_and_the_rest_flows(start_broker, client, tmp_path):
    import opshttp
    acl = tmp_path / "cloud.acl"
    acl.write_text("topic readwrite plant/#\n")  # anonymous clients: plant/# only
    cloud = start_broker(acl_file=str(acl))
    sub = collect(client, cloud, "plant/#")
    edge = opshttp.ops_broker(start_broker, tmp_path, extra_lines=bridge_lines(
        "cloud", cloud.port, ['plant/# out 1', 'secret/# out 1']))
    wait_connected(edge)
    pub = client(edge, protocol=5)
    pub.publish("plant/a", b"1", qos=1)
    pub.publish("secret/b", b"2", qos=1)  # the cloud answers 0x87 Not authorized
    pub.publish("plant/c", b"3", qos=1)
    got = sub.messages.wait_for(2, timeout=10)
    assert [m.topic for m in got] == ["plant/a", "plant/c"]
    edge.wait_log(r"bridge cloud: 127\.0\.0\.1:%d refused spooled message \d+: .*\(0x87\); it is dropped" % cloud.port)
    wait_for(lambda: opshttp.metrics(edge).get('ferromq_bridge_dropped_total{bridge="cloud",reason="remote_refused"}')
             == 1 and opshttp.metrics(edge).get('ferromq_bridge_spool_messages{bridge="cloud"}') == 0,
             timeout=5, what="the refusal counted and the spool empty")


def test_quota_exceeded_is_retried_later_in_order(start_broker, client):
    from conftest import props, PacketTypes
    cloud = start_broker(max_queued_messages=2, queue_overflow="reject_new")
    persist = dict(client_id="slow", protocol=5, clean=False,
                   properties=props(PacketTypes.CONNECT, SessionExpiryInterval=3600))
    sub = client(cloud, **persist)
    sub.subscribe("plant/#", 1)
    sub.stop()  # offline: its queue takes 2, then the cloud answers 0x97
    edge = start_broker(extra_lines=bridge_lines("cloud", cloud.port, ['plant/# out 1']))
    wait_connected(edge)
    pub = client(edge, protocol=5)
    for i in range(5):
        pub.publish("plant/x", b"%d" % i, qos=1)
    edge.wait_log(r"bridge cloud: .* refused a message with 0x97 Quota exceeded; resending in 1 s")
    sub = client(cloud, **persist)
    got = sub.messages.wait_for(5, timeout=10)
    assert [int(m.payload) for m in got] == list(range(5))


def test_failover_to_the_next_address(start_broker, client):
    cloud = start_broker()
    dead = free_port()
    lines = bridge_lines("cloud", cloud.port, ['m/# out 1'])
    lines[1] = "address 127.0.0.1:%d 127.0.0.1:%d" % (dead, cloud.port)
    edge = start_broker(extra_lines=lines)
    edge.wait_log(r"bridge cloud: connection to 127\.0\.0\.1:%d closed: connect: connection refused" % dead)
    edge.wait_log(r"bridge cloud: connected to 127\.0\.0\.1:%d" % cloud.port, timeout=10)


def test_commands_sent_while_the_edge_is_down_arrive(start_broker, client):
    """cleansession false: the cloud keeps the bridge's session and queues
    what comes for it while the edge is away."""
    from conftest import props, PacketTypes
    cloud = start_broker()
    edge = start_broker(extra_lines=bridge_lines("cloud", cloud.port, ['cmd/# in 1 "" plant/']))
    persist = dict(client_id="plc", protocol=5, clean=False,
                   properties=props(PacketTypes.CONNECT, SessionExpiryInterval=3600))
    plc = client(edge, **persist)
    plc.subscribe("cmd/#", 1)
    wait_connected(edge)
    wait_subscribed(cloud, "plant/cmd/#")
    plc.stop()
    edge.stop()
    client(cloud, protocol=5).publish("plant/cmd/stop", b"now", qos=1)
    edge.start()
    wait_connected(edge)
    plc = client(edge, **persist)
    plc.messages.wait_match(lambda m: m.topic == "cmd/stop" and m.payload == b"now", timeout=10)


# ---- a remote broker we script, byte by byte ----

class RemoteConn(mqttraw.RawClient):
    """The remote's side of one bridge connection (an accepted socket)."""

    def __init__(self, sock, version):
        self.version = version
        self.sock = sock
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.closed_seen = False
        self.aliases = {}
        self.pending = []

    def expect_connect(self):
        """The bridge's CONNECT: returns its v5 properties as a dict."""
        p = self.expect(mqttraw.CONNECT, timeout=10)
        r = mqttraw.Reader(p.raw)
        assert r.str() == "MQTT"
        level = r.u8()
        assert level == self.version, "CONNECT level %d" % level
        r.u8(), r.u16()
        return r.props() if level == 5 else {}

    def connack(self, rc=0, properties=None):
        body = mqttraw.u8(0) + mqttraw.u8(rc)
        if self.version == 5:
            body += mqttraw.props(properties)
        self.send(mqttraw.packet(mqttraw.CONNACK, 0, body))


class FakeRemote:
    """Listens on a free loopback port; each accept() is one connection of
    the bridge."""

    def __init__(self, version=5):
        self.version = version
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.conns = []

    def accept(self, timeout=10):
        self.srv.settimeout(timeout)
        sock, _ = self.srv.accept()
        c = RemoteConn(sock, self.version)
        self.conns.append(c)
        return c

    def close(self):
        for c in self.conns:
            c.close()
        self.srv.close()


@pytest.fixture
def fake_remote():
    made = []

    def factory(version=5):
        r = FakeRemote(version)
        made.append(r)
        return r
    yield factory
    for r in made:
        r.close()


def test_hostile_remote_is_held_to_our_limits(start_broker, client, fake_remote):
    """The remote gets our max_packet_size and receive_maximum in CONNECT
    (v5) and is disconnected when it ignores them, or sends anything before
    its CONNACK; within them, what it sends comes in."""
    remote = fake_remote(5)
    edge = start_broker(max_packet_size=4096, receive_maximum=5, extra_lines=bridge_lines(
        "cloud", remote.port, ['cmd/# in 1 "" plant/']))
    edge_sub = collect(client, edge, "cmd/#")
    c = remote.accept()
    got = c.expect_connect()
    assert got.get(mqttraw.P_MAXIMUM_PACKET_SIZE) == 4096 and got.get(mqttraw.P_RECEIVE_MAXIMUM) == 5, got
    c.send(mqttraw.publish("plant/cmd/early", b"x", qos=1, pid=1, version=5))
    assert c.is_closed(5)
    edge.wait_log(r"closed: unexpected PUBLISH from the remote")

    c = remote.accept()
    c.expect_connect()
    c.connack()
    # A header announcing 1 MB: refused at once, not buffered while it comes.
    c.send(mqttraw.u8(mqttraw.PUBLISH << 4 | 2) + mqttraw.varint(1 << 20) + mqttraw.mstr("plant/cmd/big"))
    assert c.is_closed(5)
    edge.wait_log(r"closed: bad packet from the remote: .*(large|Large)")

    c = remote.accept()
    c.expect_connect()
    c.connack()
    c.send(b"".join(mqttraw.publish("plant/cmd/flood", b"%d" % i, qos=1, pid=i + 1, version=5) for i in range(6)))
    assert c.is_closed(5)
    edge.wait_log(r"closed: more unacknowledged QoS 1 PUBLISHes than our Receive Maximum")

    c = remote.accept()
    c.expect_connect()
    c.connack()
    c.send(b"".join(mqttraw.publish("plant/cmd/ok", b"%d" % i, qos=1, pid=i + 1, version=5) for i in range(5)))
    acks = sorted(c.expect_skip(mqttraw.PUBACK).pid for _ in range(5))
    assert acks == [1, 2, 3, 4, 5]
    edge_sub.messages.wait_match(lambda m: m.topic == "cmd/ok" and m.payload == b"4")
    got = edge_sub.messages.snapshot()
    assert [m.payload for m in got if m.topic == "cmd/ok"] == [b"%d" % i for i in range(5)]
    assert not [m for m in got if m.topic == "cmd/early"]


def test_packet_ids_never_shared_while_the_head_waits(start_broker, fake_remote, raw):
    """The remote acknowledges everything but the first message (and sends
    PUBACKs for ids never used, and twice): the bridge must not reuse the
    first one's packet id while it waits, so no other PUBACK can take it."""
    remote = fake_remote(5)
    edge = start_broker(extra_lines=bridge_lines("cloud", remote.port, ['m/# out 1']))
    c = remote.accept()
    c.expect_connect()
    c.connack()
    n = 65540
    pub = raw(edge, 4)
    assert pub.connect("flood").rc == 0
    pub.send(b"".join(mqttraw.publish("m/x", b"%d" % i) for i in range(n)))
    pending = None          # pid of message 0, never acknowledged here
    in_flight = {}          # pid -> payload
    seen = []
    c.send(mqttraw.ack(mqttraw.PUBACK, 7777, version=5))  # an id not in use
    while True:
        try:
            p = c.expect_skip(mqttraw.PUBLISH, timeout=3)  # before the bridge's keep alive gives up on us
        except TimeoutError:
            break
        assert p.pid not in in_flight, "packet id %d sent again while %r waits for its PUBACK" % (
            p.pid, in_flight[p.pid])
        seen.append(int(p.payload))
        if pending is None:
            pending = p.pid
            in_flight[p.pid] = p.payload
        else:
            c.send(mqttraw.ack(mqttraw.PUBACK, p.pid, version=5) * 2)  # and a duplicate
    assert seen == list(range(65535)), "sent %d, the last %r" % (len(seen), seen[-3:])
    c.send(mqttraw.ack(mqttraw.PUBACK, pending, version=5))
    while len(seen) < n:
        p = c.expect_skip(mqttraw.PUBLISH, timeout=10)
        seen.append(int(p.payload))
        c.send(mqttraw.ack(mqttraw.PUBACK, p.pid, version=5))
    assert seen == list(range(n))


def test_spool_row_without_its_body_does_not_take_a_new_message(start_broker, client):
    """A damaged database: a spool row whose message body is missing. Its
    sequence number must not swallow the row of the next message spooled."""
    import sqlite3
    dead = free_port()
    edge = start_broker(extra_lines=bridge_lines("cloud", dead, ['m/# out 1']))
    client(edge, protocol=5).publish("m/old", b"old", qos=1)
    edge.stop()
    db = sqlite3.connect(os.path.join(edge.data, "ferromq.db"))
    with db:
        assert db.execute("SELECT seq FROM spool").fetchall() == [(1,)]
        db.execute("DELETE FROM msgs")
    db.close()
    edge.start()
    client(edge, protocol=5).publish("m/new", b"important", qos=1)
    edge.kill9()
    cloud = start_broker()
    sub = collect(client, cloud, "m/#")
    with open(edge.conf) as f:
        conf = f.read().replace("127.0.0.1:%d" % dead, "127.0.0.1:%d" % cloud.port)
    with open(edge.conf, "w") as f:
        f.write(conf)
    edge.start()
    m = sub.messages.wait_match(lambda x: x.topic == "m/new", timeout=15)
    assert m.payload == b"important"
    time.sleep(0.5)
    assert [x.topic for x in sub.messages.snapshot()] == ["m/new"]


def test_remote_keep_alive_and_silence(start_broker, fake_remote):
    """A remote that never answers CONNECT is given up after 10 s; one whose
    CONNACK sets a Server Keep Alive gets its PINGREQs at that pace, and is
    given up when it stops answering them."""
    remote = fake_remote(5)
    edge = start_broker(extra_lines=bridge_lines("cloud", remote.port, ['m/# out 1']))
    c = remote.accept()
    c.expect_connect()
    t0 = time.monotonic()
    assert c.is_closed(15)
    assert 9 <= time.monotonic() - t0 <= 13
    edge.wait_log(r"closed: no CONNACK within 10 s")

    c = remote.accept()
    c.expect_connect()
    c.connack(properties=[(mqttraw.P_SERVER_KEEP_ALIVE, 1)])  # ours is 5 s
    t0 = time.monotonic()
    c.expect(mqttraw.PINGREQ, timeout=2.5)
    assert c.is_closed(5)
    assert time.monotonic() - t0 <= 3.5
    edge.wait_log(r"closed: keep alive timeout")


def test_remote_without_retain_gets_no_retain_flag(start_broker, client, fake_remote):
    """A v5 remote whose CONNACK says Retain Available 0 would close the link
    at a retained PUBLISH, every time: the bridge sends it without the flag."""
    remote = fake_remote(5)
    edge = start_broker(extra_lines=bridge_lines("cloud", remote.port, ['m/# out 1']))
    c = remote.accept()
    c.expect_connect()
    c.connack(properties=[(mqttraw.P_RETAIN_AVAILABLE, 0)])
    client(edge, protocol=5).publish("m/state", b"running", qos=1, retain=True)
    p = c.expect_skip(mqttraw.PUBLISH, timeout=10)
    assert (p.topic, p.payload, p.retain) == ("m/state", b"running", False)


def test_remote_taking_qos0_only_gets_nothing_and_the_spool_waits(start_broker, client, fake_remote):
    """Maximum QoS 0 in the remote's CONNACK: a QoS 1 PUBLISH would close the
    link at once, every time [MQTT-3.2.2-11]; the bridge sends nothing and
    says why, the spool keeps the message, and commands still come in."""
    remote = fake_remote(5)
    edge = start_broker(extra_lines=bridge_lines("cloud", remote.port, ['m/# out 1', 'cmd/# in 1']))
    edge_cmd = collect(client, edge, "cmd/#")
    c = remote.accept()
    c.expect_connect()
    c.connack(properties=[(mqttraw.P_MAXIMUM_QOS, 0)])
    client(edge, protocol=5).publish("m/state", b"running", qos=1)
    c.send(mqttraw.publish("cmd/stop", b"now", qos=0, version=5))
    edge_cmd.messages.wait_match(lambda m: m.topic == "cmd/stop" and m.payload == b"now")
    assert [p for p in c.quiet(1.0) if p.type == mqttraw.PUBLISH] == []
    assert not c.closed_seen
    edge.wait_log(r"bridge cloud: 127\.0\.0\.1:%d takes QoS 0 only: nothing is sent to it" % remote.port)


def test_remote_messages_pass_the_edge_admission(start_broker, client):
    """A message from the remote passes the edge's own admission (its topic
    limits) like any other: one past max_topic_levels is dropped and
    logged, and the link goes on."""
    cloud = start_broker()
    edge = start_broker(max_topic_levels=4, extra_lines=bridge_lines("cloud", cloud.port, ['deep/# in 1']))
    edge_sub = collect(client, edge, "deep/#")
    wait_connected(edge)
    wait_subscribed(cloud, "deep/#")
    cloud_pub = client(cloud, protocol=5)
    cloud_pub.publish("deep/a/b/c/d/e", b"too deep", qos=1)
    cloud_pub.publish("deep/a/b", b"fine", qos=1)
    edge_sub.messages.wait_match(lambda m: m.topic == "deep/a/b" and m.payload == b"fine")
    edge.wait_log(r"bridge: 1 message from the remote broker dropped, the last to deep/a/b/c/d/e: "
                  r"topic longer than max_topic_length or max_topic_levels")
    assert [m.topic for m in edge_sub.messages.snapshot()] == ["deep/a/b"]
