"""The Sparkplug B aware broker (issue 17 #1, sparkplug_aware): birth
certificates under $sparkplug/certificates/, kept in the store; the
$sparkplug/ tree closed to clients; the copies behind the ACL of the
births' own topics; the NDEATH timestamp; and what a Sparkplug compliant
server must do with wills and retained STATE. Each test names the
Sparkplug 3.0 requirement (tck-id-...) it checks. Payloads are built and
read with python3-protobuf from the broker's own schema (sparkplug_pb)."""
import subprocess

import pytest

import mqttraw as M
import sparkplug_pb as S
from conftest import connect_raw, wait_for

def aware(start_broker, **kw):
    return start_broker(sparkplug_aware=True, **kw)


def expect_publish(r, topic, timeout=5.0):
    """The next PUBLISH on topic (others that come first are acknowledged and skipped)."""
    while True:
        p = r.expect(M.PUBLISH, timeout)
        r.ack_fully(p)
        if p.topic == topic:
            return p


def no_publish(r, period=0.5):
    got = [p for p in r.quiet(period) if p.type == M.PUBLISH]
    assert got == [], got


@pytest.mark.parametrize("proto", [4, 5])
def test_tck_conformance_mqtt_aware_nbirth_mqtt_topic_and_retain(start_broker, raw, proto):
    """tck-id-conformance-mqtt-aware-nbirth-mqtt-topic, -nbirth-mqtt-retain,
    tck-id-conformance-mqtt-aware-store: an NBIRTH is made available, retained,
    on $sparkplug/certificates/<namespace>/<group>/NBIRTH/<edge>; only the latest."""
    b = aware(start_broker)
    t = S.topic("plant1", "NBIRTH", "edge-1")
    live = connect_raw(raw, b, "host-live", proto)
    live.subscribe([("$sparkplug/certificates/#", 1)])
    edge = connect_raw(raw, b, "edge-1", proto)
    first = S.nbirth(bdseq=0)
    edge.publish(t, first, qos=0)
    p = expect_publish(live, S.cert(t))
    assert p.payload == first
    # A subscriber that comes later gets it retained, QoS 1.
    later = connect_raw(raw, b, "host-later", proto)
    later.subscribe([("$sparkplug/certificates/" + S.NS + "/+/NBIRTH/+", 1)])
    p = expect_publish(later, S.cert(t))
    assert (p.payload, p.retain, p.qos) == (first, True, 1)
    # The next birth replaces it.
    second = S.nbirth(bdseq=1, n_metrics=5)
    edge.publish(t, second, qos=1)
    expect_publish(later, S.cert(t))
    third = connect_raw(raw, b, "host-third", proto)
    third.subscribe([("$sparkplug/certificates/#", 1)])
    p = expect_publish(third, S.cert(t))
    assert p.payload == second and p.retain
    no_publish(third)
    # The original goes to its own subscribers unchanged, not retained.
    orig = connect_raw(raw, b, "orig-sub", proto)
    orig.subscribe([(S.NS + "/#", 1)])
    edge.publish(t, first, qos=1)
    p = expect_publish(orig, t)
    assert p.payload == first and not p.retain


def test_tck_conformance_mqtt_aware_dbirth_mqtt_topic_and_retain(start_broker, raw):
    """tck-id-conformance-mqtt-aware-dbirth-mqtt-topic, -dbirth-mqtt-retain:
    a DBIRTH is available, retained, on .../DBIRTH/<edge>/<device>."""
    b = aware(start_broker)
    edge = connect_raw(raw, b, "edge-2", 5)
    edge.publish(S.topic("g", "NBIRTH", "edge-2"), S.nbirth(bdseq=3), qos=1)
    t = S.topic("g", "DBIRTH", "edge-2", "plc-7")
    body = S.payload(seq=1, metrics=[("temp", 1, S.pb().Double, 20.5)])
    edge.publish(t, body, qos=1)
    host = connect_raw(raw, b, "host", 5)
    host.subscribe([("$sparkplug/certificates/" + S.NS + "/g/DBIRTH/#", 1)])
    p = expect_publish(host, S.cert(t))
    assert (p.payload, p.retain) == (body, True)
    assert S.decode(p.payload).metrics[0].name == "temp"


def test_tck_conformance_mqtt_aware_store_survives_restart_and_kill9(start_broker, raw):
    """tck-id-conformance-mqtt-aware-store: the copies are in the durable store,
    through a clean restart and a kill -9 after the birth was acknowledged."""
    b = aware(start_broker)
    t1 = S.topic("g", "NBIRTH", "e1")
    t2 = S.topic("g", "DBIRTH", "e1", "d1")
    edge = connect_raw(raw, b, "e1", 4)
    edge.publish(t1, S.nbirth(bdseq=9), qos=1)
    edge.publish(t2, S.payload(seq=1), qos=1, pid=2)
    edge.close()
    b.restart()
    host = connect_raw(raw, b, "host", 4)
    host.subscribe([("$sparkplug/certificates/#", 1)])
    got = set()
    for _ in range(2):
        p = host.expect(M.PUBLISH)
        host.ack_fully(p)
        assert p.retain
        got.add(p.topic)
    assert got == {S.cert(t1), S.cert(t2)}
    host.close()
    # A newer birth, acknowledged, then kill -9: the newer one is kept.
    edge = connect_raw(raw, b, "e1", 4)
    newer = S.nbirth(bdseq=10, n_metrics=4)
    edge.publish(t1, newer, qos=1)
    b.kill9()
    b.start()
    host = connect_raw(raw, b, "host2", 4)
    host.subscribe([("$sparkplug/certificates/" + S.NS + "/g/NBIRTH/+", 1)])
    p = expect_publish(host, S.cert(t1))
    assert p.payload == newer
    assert S.bdseq_of(S.decode(p.payload)) == 10


def test_clients_cannot_publish_under_sparkplug_tree(start_broker, raw):
    """Only the aware broker writes $sparkplug/: a v5 PUBLISH gets PUBACK 0x87,
    a v3 one is dropped, a will there is refused at CONNECT (0x87 / 5)."""
    b = aware(start_broker)
    host = connect_raw(raw, b, "host", 5)
    host.subscribe([("$sparkplug/#", 1)])
    forger = connect_raw(raw, b, "forger", 5)
    ack = forger.publish(S.cert(S.topic("g", "NBIRTH", "e")), S.nbirth(bdseq=1), qos=1)
    assert ack.rc == 0x87
    v3 = connect_raw(raw, b, "forger3", 4)
    v3.publish("$sparkplug/x", b"x", qos=1, retain=True)
    no_publish(host)
    r = raw(b, 5)
    assert r.connect("willer", will=dict(topic="$sparkplug/certificates/x", payload=b"x", qos=1)).rc == 0x87
    r = raw(b, 4)
    assert r.connect("willer3", will=dict(topic="$sparkplug", payload=b"x", qos=1)).rc == 5
    assert "$sparkplug is the Sparkplug aware broker's" in b.log_text()


def test_sparkplug_tree_open_when_not_aware(start_broker, raw):
    """Without sparkplug_aware the broker claims nothing: $sparkplug/ is an
    ordinary topic and births are not copied."""
    b = start_broker()
    host = connect_raw(raw, b, "host", 5)
    host.subscribe([("$sparkplug/#", 1)])
    edge = connect_raw(raw, b, "edge", 5)
    assert edge.publish(S.topic("g", "NBIRTH", "e"), S.nbirth(bdseq=0), qos=1).rc == 0x10
    assert edge.publish("$sparkplug/own", b"x", qos=1).rc == 0
    assert expect_publish(host, "$sparkplug/own").payload == b"x"
    no_publish(host)


ACL = """
user hostA
topic read spBv1.0/plantA/#

user hostAll
topic read $sparkplug/#
topic read spBv1.0/plantA/#

user edge
topic write spBv1.0/#
"""


@pytest.fixture
def acl_broker(start_broker, tmp_path):
    import os
    pw = tmp_path / "passwd"
    passwd = os.environ.get("FERROMQ_PASSWD") or os.path.join(S.REPO, "build", "ferromq-passwd")
    first = True
    for user in ("hostA", "hostAll", "edge"):
        subprocess.run([passwd] + (["-c"] if first else []) + ["-b", str(pw), user, "pw"], check=True,
                       capture_output=True)
        first = False
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    return aware(start_broker, allow_anonymous="false", password_file=str(pw), acl_file=str(acl))


def test_tck_aware_copies_follow_the_acl_of_the_birth_topic(acl_broker, raw):
    """A subscriber gets a copy only when the ACL lets it read the birth's own
    topic: $sparkplug/certificates/F is granted where F would be, and a grant
    on $sparkplug/# itself does not open other plants' births."""
    b = acl_broker
    ta = S.topic("plantA", "NBIRTH", "e1")
    tb = S.topic("plantB", "NBIRTH", "e2")
    edge = connect_raw(raw, b, "edge", 5, username="edge", password=b"pw")
    edge.publish(ta, S.nbirth(bdseq=1), qos=1)
    edge.publish(tb, S.nbirth(bdseq=2), qos=1, pid=2)
    host_a = connect_raw(raw, b, "hostA", 5, username="hostA", password=b"pw")
    # Not covered by plantA's rule: refused.
    assert host_a.subscribe([("$sparkplug/certificates/#", 1)]).codes == [0x87]
    assert host_a.subscribe([("$sparkplug/certificates/" + S.NS + "/plantB/#", 1)], pid=2).codes == [0x87]
    assert host_a.subscribe([("$sparkplug/certificates/" + S.NS + "/plantA/#", 1)], pid=3).codes == [1]
    assert expect_publish(host_a, S.cert(ta)).retain
    no_publish(host_a)
    host_all = connect_raw(raw, b, "hostAll", 5, username="hostAll", password=b"pw")
    assert host_all.subscribe([("$sparkplug/certificates/#", 1)]).codes == [1]
    assert expect_publish(host_all, S.cert(ta)).retain
    no_publish(host_all)  # plantB's copy is held back: its birth topic is not readable
    # Live copies follow the same rule.
    edge.publish(tb, S.nbirth(bdseq=3), qos=1, pid=3)
    edge.publish(ta, S.nbirth(bdseq=4), qos=1, pid=4)
    for h in (host_a, host_all):
        p = expect_publish(h, S.cert(ta))
        assert S.bdseq_of(S.decode(p.payload)) == 4
        no_publish(h)


def test_tck_conformance_mqtt_aware_ndeath_timestamp(start_broker, raw):
    """tck-id-conformance-mqtt-aware-ndeath-timestamp: with
    sparkplug_ndeath_timestamp the NDEATH (a will written at CONNECT) carries
    the time the broker delivers it; bdSeq and the rest stay."""
    b = aware(start_broker, sparkplug_ndeath_timestamp=True)
    host = connect_raw(raw, b, "host", 5)
    host.subscribe([(S.NS + "/+/NDEATH/+", 1)])
    t = S.topic("g", "NDEATH", "e")
    edge = connect_raw(raw, b, "e", 5, will=dict(topic=t, payload=S.ndeath(7, timestamp=1000), qos=1))
    edge.publish(S.topic("g", "NBIRTH", "e"), S.nbirth(bdseq=7), qos=1)
    before = S.now_ms()
    edge.close()
    p = S.decode(expect_publish(host, t).payload)
    assert before <= p.timestamp <= S.now_ms() + 1000, p.timestamp
    assert S.bdseq_of(p) == 7 and not p.HasField("seq")


def test_ndeath_timestamp_untouched_by_default(start_broker, raw):
    """Without the option the NDEATH is delivered as the edge node wrote it."""
    b = aware(start_broker)
    host = connect_raw(raw, b, "host", 5)
    host.subscribe([(S.NS + "/+/NDEATH/+", 1)])
    t = S.topic("g", "NDEATH", "e")
    will_body = S.ndeath(7, timestamp=1000)
    edge = connect_raw(raw, b, "e", 5, will=dict(topic=t, payload=will_body, qos=1))
    edge.close()
    assert expect_publish(host, t).payload == will_body


def test_tck_disconnect_with_will_message_publishes_ndeath(start_broker, raw):
    """tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath,
    tck-id-conformance-mqtt-will-messages: a v5 edge node ending with
    DISCONNECT 0x04 (Disconnect with Will Message) gets its NDEATH published,
    QoS 1, not retained."""
    b = aware(start_broker)
    host = connect_raw(raw, b, "host", 5)
    host.subscribe([(S.NS + "/#", 1)])
    t = S.topic("g", "NDEATH", "e")
    edge = connect_raw(raw, b, "e", 5, will=dict(topic=t, payload=S.ndeath(2), qos=1))
    edge.send(M.disconnect(0x04, 5))
    p = expect_publish(host, t)
    assert (p.qos, p.retain) == (1, False)
    assert S.bdseq_of(S.decode(p.payload)) == 2


@pytest.mark.parametrize("proto", [4, 5])
def test_tck_host_application_state_will_and_birth(start_broker, raw, proto):
    """tck-id-operational-behavior-host-application-connect-will-qos, -will-retained,
    -connect-birth-qos, -connect-birth-retained, tck-id-conformance-mqtt-retained:
    a host application's STATE is a retained QoS 1 will and birth; after it
    dies, a newcomer reads the retained death."""
    b = aware(start_broker)
    t = S.NS + "/STATE/scada-1"
    ts = S.now_ms()
    host = connect_raw(raw, b, "scada-1", proto,
                       will=dict(topic=t, payload=S.state(False, ts), qos=1, retain=True))
    host.publish(t, S.state(True, ts), qos=1, retain=True)
    edge = connect_raw(raw, b, "edge", proto)
    edge.subscribe([(t, 1)])
    p = expect_publish(edge, t)
    assert (p.qos, p.retain, p.payload) == (1, True, S.state(True, ts))
    host.close()
    p = expect_publish(edge, t)
    assert p.qos == 1 and p.payload == S.state(False, ts)
    late = connect_raw(raw, b, "late", proto)
    late.subscribe([(t, 1)])
    p = expect_publish(late, t)
    assert (p.qos, p.retain, p.payload) == (1, True, S.state(False, ts))


@pytest.mark.parametrize("lines,error", [
    (["sparkplug_namespace spB/v1"], ":2: sparkplug_namespace: 'spB/v1' is not one topic level"),
    (["sparkplug_namespace $sp"], ":2: sparkplug_namespace: '$sp' is not one topic level"),
    (["sparkplug_namespace sp#"], ":2: sparkplug_namespace: 'sp#' is not one topic level"),
    (["sparkplug_ndeath_timestamp true"], ":2: sparkplug_ndeath_timestamp true and sparkplug_fleet_max "
                                          "need sparkplug_aware true"),
    (["sparkplug_fleet_max 50"], ":2: sparkplug_ndeath_timestamp true and sparkplug_fleet_max need"),
])
def test_sparkplug_config_errors(tmp_path, lines, error):
    """Bad Sparkplug options are refused with the file and line at fault; an
    option that would do nothing without sparkplug_aware is refused too."""
    from conftest import broker_bin
    conf = tmp_path / "f.conf"
    conf.write_text("listener 1883\n" + "\n".join(lines) + "\n")
    r = subprocess.run([broker_bin(), "--check-config", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode != 0
    assert str(conf) + error in r.stderr, r.stderr
    conf.write_text("listener 1883\nsparkplug_aware true\nsparkplug_namespace spCv1.0\n"
                    "sparkplug_ndeath_timestamp true\nsparkplug_fleet_max 50\n")
    r = subprocess.run([broker_bin(), "--check-config", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_other_namespace(start_broker, raw):
    """The namespace is configured, not spBv1.0 everywhere: with spCv1.0 the
    spCv1.0 births are copied and spBv1.0 ones are ordinary messages."""
    b = aware(start_broker, sparkplug_namespace="spCv1.0")
    host = connect_raw(raw, b, "host", 5)
    host.subscribe([("$sparkplug/certificates/#", 1)])
    edge = connect_raw(raw, b, "edge", 5)
    edge.publish(S.topic("g", "NBIRTH", "e", ns="spBv1.0"), S.nbirth(bdseq=0), qos=1)
    tc = S.topic("g", "NBIRTH", "e", ns="spCv1.0")
    edge.publish(tc, S.nbirth(bdseq=5), qos=1, pid=2)
    assert S.bdseq_of(S.decode(expect_publish(host, S.cert(tc)).payload)) == 5
    no_publish(host)


def test_host_sees_ndeath_within_one_and_a_half_keepalive(start_broker, raw):
    """The issue's target: a host application sees an edge node's NDEATH
    within 1.5 x its keep-alive after the node's link goes silent (MQTT
    3.1.2.10: the broker closes after 1.5 x keep-alive and publishes the will)."""
    import time
    b = aware(start_broker)
    host = connect_raw(raw, b, "host", 5)
    host.subscribe([(S.NS + "/+/NDEATH/+", 1)])
    t = S.topic("g", "NDEATH", "quiet")
    edge = connect_raw(raw, b, "quiet", 5, keepalive=2, will=dict(topic=t, payload=S.ndeath(1), qos=1))
    edge.publish(S.topic("g", "NBIRTH", "quiet"), S.nbirth(bdseq=1), qos=1)
    silent_since = time.monotonic()  # from here the edge sends nothing, the socket stays open
    p = expect_publish(host, t, timeout=8)
    waited = time.monotonic() - silent_since
    assert S.bdseq_of(S.decode(p.payload)) == 1
    # 1.5 x 2 s, plus the broker's 250 ms keep-alive tick and a loaded machine's delay.
    assert 2.9 <= waited <= 3.6, waited


def test_copy_beyond_topic_limits_is_not_made(start_broker, raw):
    """The copy's topic is two levels and 24 bytes longer than the birth's:
    beyond max_topic_levels it is not made (nobody could subscribe to it),
    and the log says why; the birth itself goes through."""
    b = aware(start_broker, max_topic_levels=5)
    host = connect_raw(raw, b, "host", 5)
    host.subscribe([(S.NS + "/#", 1)])
    edge = connect_raw(raw, b, "edge", 5)
    t = S.topic("g", "NBIRTH", "e")
    assert edge.publish(t, S.nbirth(bdseq=0), qos=1).rc == 0
    assert S.bdseq_of(S.decode(expect_publish(host, t).payload)) == 0
    b.wait_log(r"sparkplug: the birth on spBv1.0/g/NBIRTH/e is not copied: \$sparkplug/certificates/ \+ its "
               r"topic is beyond max_topic_length or max_topic_levels")
