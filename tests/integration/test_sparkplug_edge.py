"""The Modbus collector as a Sparkplug B edge node (issue 17 #3): a ferromq
edge with fm-modbus-sim devices (modbus_format sparkplug) whose bridge
(bridge_sparkplug) is the edge node's session to a cloud broker (a second
ferromq, or Debian's mosquitto). A host application on the cloud decodes
every payload with python3-protobuf, from src/sparkplug/sparkplug_b.proto
compiled by protoc at test time. Tests are named by the Sparkplug 3.0
requirement ids they check."""
import importlib
import os
import subprocess
import sys
import time

import pytest

from collect_sim import device_lines, sim  # noqa: F401  (fixture)
from conftest import REPO, broker_bin, wait_for
from test_bridge import Mosquitto, MOSQUITTO

GROUP, NODE = "plant-7", "edge-1"
NS = "spBv1.0"
DT = {"Int16": 2, "Int64": 4, "UInt16": 6, "Float": 9, "Double": 10, "Boolean": 11}


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    """The Payload schema as Python classes, compiled now by protoc."""
    if not os.path.exists("/usr/bin/protoc"):
        pytest.skip("protoc is not installed: apt-get install protobuf-compiler")
    out = tmp_path_factory.mktemp("pb")
    src = os.path.join(REPO, "src", "sparkplug")
    subprocess.run(["/usr/bin/protoc", "-I", src, "--python_out", str(out),
                    os.path.join(src, "sparkplug_b.proto")], check=True)
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("sparkplug_b_pb2")
    finally:
        sys.path.remove(str(out))


def edge_lines(cloud_port, sim_port, version="mqttv50", extra_device=(), interval=100):
    lines = ["sparkplug_group_id %s" % GROUP,
             "sparkplug_edge_node_id %s" % NODE,
             "connection cloud",
             "address 127.0.0.1:%d" % cloud_port,
             "bridge_protocol_version %s" % version,
             "bridge_sparkplug true",
             "restart_timeout 1 2",
             "keepalive_interval 5"]
    lines += device_lines("press", sim_port, [
        ("temp holding_register 0 int16", ["tag_unit degC"]),
        ("flow input_register 0 uint16", ["tag_scale 0.5", "tag_unit l/min"]),
        ("setpoint holding_register 10 int16", ["tag_writable true"]),
        ("run coil 0 bool", ["tag_writable true"]),
        "count holding_register 20 uint16",
    ], interval=interval, extra=["modbus_format sparkplug", "modbus_offline_after 1",
                                 "modbus_restart_timeout 200 400"] + list(extra_device))
    return lines


class Host:
    """A host application on the cloud: every message under NS/GROUP,
    decoded, in arrival order."""

    def __init__(self, client_factory, cloud, pb, client_id="host"):
        self.pb = pb
        self.c = client_factory(cloud, client_id=client_id, protocol=5)
        self.c.subscribe("%s/%s/#" % (NS, GROUP), 1)

    def all(self):
        out = []
        for m in self.c.messages.snapshot():
            p = self.pb.Payload()
            p.ParseFromString(m.payload)
            kind = m.topic.split("/")[2]
            if kind not in ("NCMD", "DCMD"):  # the host's own commands
                out.append((kind, m.topic, p))
        return out

    def wait(self, pred, timeout=15, what="a message"):
        def find():
            got = [x for x in self.all() if pred(x)]
            return got or None
        return wait_for(find, timeout, what=what)

    def after(self, index):
        return self.all()[index:]


def metric(p, name=None, alias=None):
    for m in p.metrics:
        if (name is not None and m.name == name) or (alias is not None and m.HasField("alias") and m.alias == alias):
            return m
    return None


def value(m):
    return getattr(m, m.WhichOneof("value")) if m.WhichOneof("value") else None


def session(msgs):
    """The messages of the last session: from its NBIRTH on."""
    starts = [i for i, x in enumerate(msgs) if x[0] == "NBIRTH"]
    return msgs[starts[-1]:] if starts else []


def assert_seq_runs(msgs):
    """[tck-id-payloads-sequence-num-incrementing]: from the NBIRTH's 0, each
    message's seq is the previous one plus one, modulo 256."""
    seqs = [x[2].seq for x in msgs if x[0] != "NDEATH"]
    assert seqs and seqs[0] == 0, seqs
    assert all(b == (a + 1) % 256 for a, b in zip(seqs, seqs[1:])), seqs


def start_edge(start_broker, cloud_port, s, **kw):
    edge = start_broker(extra_lines=edge_lines(cloud_port, s.ports[0], **kw))
    edge.wait_log(r"bridge cloud: connected to", 15)
    return edge


def test_nbirth_dbirth_ddata_ddeath(start_broker, client, sim, pb):
    """[tck-id-payloads-nbirth-bdseq] [tck-id-payloads-nbirth-seq]
    [tck-id-topics-nbirth-mqtt] [tck-id-payloads-nbirth-rebirth-req]
    [tck-id-payloads-dbirth-seq] [tck-id-payloads-alias-birth-requirement]
    [tck-id-payloads-alias-data-cmd-requirement] [tck-id-topics-ddeath-...]"""
    s = sim()
    s.set(0, "hr", 0, 215)
    s.set(0, "ir", 0, 100)
    s.set(0, "hr", 20, 7)
    cloud = start_broker()
    host = Host(client, cloud, pb)
    start_edge(start_broker, cloud.port, s)
    host.wait(lambda x: x[0] == "DBIRTH", what="DBIRTH")
    msgs = host.all()
    nb = msgs[0]
    assert nb[0] == "NBIRTH" and nb[1] == "%s/%s/NBIRTH/%s" % (NS, GROUP, NODE)
    assert nb[2].seq == 0
    bd = metric(nb[2], "bdSeq")
    assert bd.datatype == DT["Int64"] and value(bd) == 0  # first CONNECT of this edge node
    rb = metric(nb[2], "Node Control/Rebirth")
    assert rb.datatype == DT["Boolean"] and value(rb) is False
    db = [x for x in msgs if x[0] == "DBIRTH"][0]
    assert db[1] == "%s/%s/DBIRTH/%s/press" % (NS, GROUP, NODE)
    assert db[2].seq == 1
    names = {m.name: m for m in db[2].metrics}
    assert set(names) == {"temp", "flow", "setpoint", "run", "count"}
    assert names["temp"].datatype == DT["Int16"] and value(names["temp"]) == 215
    assert names["flow"].datatype == DT["Double"] and value(names["flow"]) == 50.0
    assert names["run"].datatype == DT["Boolean"] and value(names["run"]) is False
    assert names["count"].datatype == DT["UInt16"]
    # The engineering unit is a property.
    props = dict(zip(names["temp"].properties.keys, names["temp"].properties.values))
    assert props["engUnit"].string_value == "degC"
    assert not names["count"].HasField("properties")
    aliases = [m.alias for m in db[2].metrics]
    assert len(set(aliases)) == len(aliases)
    # A change goes as DDATA by alias, without name or datatype.
    mark = len(host.all())
    s.set(0, "hr", 0, (-40) & 0xFFFF)
    dd = host.wait(lambda x: x[0] == "DDATA" and metric(x[2], alias=names["temp"].alias) is not None
                   and value(metric(x[2], alias=names["temp"].alias)) == (-40) & 0xFFFFFFFF, what="DDATA of temp")
    m = metric(dd[-1][2], alias=names["temp"].alias)
    assert m.name == "" and not m.HasField("datatype") and not m.is_historical
    assert dd[-1][1] == "%s/%s/DDATA/%s/press" % (NS, GROUP, NODE)
    assert_seq_runs(session(host.all()))
    # The device stops answering: DDEATH, and no DDATA after it.
    s.cmd("mute 0 1")
    host.wait(lambda x: x[0] == "DDEATH", what="DDEATH")
    time.sleep(0.5)
    tail = host.after(mark)
    i = [k for k, x in enumerate(tail) if x[0] == "DDEATH"][0]
    assert all(x[0] != "DDATA" for x in tail[i + 1:])
    # Back: a new DBIRTH with the values it has now.
    s.set(0, "hr", 0, 99)
    s.cmd("mute 0 0")
    host.wait(lambda x: x[0] == "DBIRTH" and value(metric(x[2], "temp")) == 99, what="DBIRTH after coming back")
    assert_seq_runs(session(host.all()))


def test_cloud_outage_births_first_then_history(start_broker, client, sim, pb):
    """[tck-id-payloads-nbirth-bdseq-increment] [tck-id-operational-behavior-
    edge-node-birth-sequence] [tck-id-payloads-metric-historical]: the cloud
    goes away; readings spooled meanwhile reach the host after the new
    session's NBIRTH and DBIRTH, marked historical, then live ones."""
    s = sim()
    s.set(0, "hr", 20, 0)
    cloud = start_broker()
    host = Host(client, cloud, pb)
    start_edge(start_broker, cloud.port, s)
    db = host.wait(lambda x: x[0] == "DBIRTH", what="DBIRTH")[-1][2]
    count = metric(db, "count").alias
    host.c.stop()
    cloud.stop()
    for v in range(1, 6):  # five readings while the cloud is down
        s.set(0, "hr", 20, v)
        time.sleep(0.3)
    cloud.start()
    host = Host(client, cloud, pb, client_id="host2")
    host.wait(lambda x: x[0] == "DBIRTH", timeout=20, what="DBIRTH after the outage")
    s.set(0, "hr", 20, 6)
    host.wait(lambda x: x[0] == "DDATA" and metric(x[2], alias=count) is not None
              and value(metric(x[2], alias=count)) == 6, what="a live DDATA after the outage")
    msgs = session(host.all())
    assert msgs[0][0] == "NBIRTH" and value(metric(msgs[0][2], "bdSeq")) == 1
    assert msgs[1][0] == "DBIRTH" and value(metric(msgs[1][2], "count")) == 5
    hist = [value(m) for x in msgs if x[0] == "DDATA" for m in x[2].metrics if m.alias == count and m.is_historical]
    live = [value(m) for x in msgs if x[0] == "DDATA" for m in x[2].metrics if m.alias == count and not m.is_historical]
    # By exception: each value once. The first may have reached the cloud
    # before it stopped, when no host was subscribed.
    assert hist == [1, 2, 3, 4, 5][-len(hist):] and len(hist) >= 4, hist
    assert live == [6], live
    # History first, then the live data.
    flags = [m.is_historical for x in msgs if x[0] == "DDATA" for m in x[2].metrics]
    assert flags == sorted(flags, reverse=True), flags
    assert_seq_runs(msgs)


def test_kill9_of_the_edge_broker(start_broker, client, sim, pb):
    """[tck-id-payloads-ndeath-bdseq] [tck-id-payloads-ndeath-will-message-qos]
    [tck-id-payloads-nbirth-bdseq-increment]: the cloud publishes the edge
    node's will, an NDEATH with the bdSeq of its NBIRTH; after a kill -9 and
    a restart the next NBIRTH's bdSeq is one more (it is on disk before the
    CONNECT)."""
    s = sim()
    cloud = start_broker()
    host = Host(client, cloud, pb)
    edge = start_edge(start_broker, cloud.port, s)
    host.wait(lambda x: x[0] == "DBIRTH", what="DBIRTH")
    seen = []
    for round_ in range(3):
        nb = [x for x in host.all() if x[0] == "NBIRTH"][-1]
        bd = value(metric(nb[2], "bdSeq"))
        seen.append(bd)
        edge.kill9()
        death = host.wait(lambda x: x[0] == "NDEATH" and value(metric(x[2], "bdSeq")) == bd, timeout=10,
                          what="NDEATH with bdSeq %d" % bd)
        assert death[-1][2].metrics[0].datatype == DT["Int64"]
        edge.start()
        host.wait(lambda x: x[0] == "NBIRTH" and value(metric(x[2], "bdSeq")) == bd + 1, timeout=15,
                  what="NBIRTH with bdSeq %d" % (bd + 1))
    assert seen == [0, 1, 2]
    # A clean stop sends the NDEATH too (v5: DISCONNECT 0x04).
    edge.stop()
    host.wait(lambda x: x[0] == "NDEATH" and value(metric(x[2], "bdSeq")) == 3, what="NDEATH at a clean stop")


def test_history_of_a_device_offline_at_the_reconnect(start_broker, client, sim, pb):
    """[tck-id-payloads-metric-historical] with a device that went offline
    during the outage: the new session did not bear it, so its history comes
    after a DBIRTH of its last known values and is followed by its DDEATH;
    when it answers again, a DBIRTH of its own."""
    s = sim()
    cloud = start_broker()
    host = Host(client, cloud, pb)
    edge = start_edge(start_broker, cloud.port, s)
    count = metric(host.wait(lambda x: x[0] == "DBIRTH", what="DBIRTH")[-1][2], "count").alias
    host.c.stop()
    cloud.stop()
    for v in range(1, 4):
        s.set(0, "hr", 20, v)
        time.sleep(0.3)
    s.cmd("mute 0 1")
    edge.wait_log(r"modbus device press .* offline", 10)
    cloud.start()
    host = Host(client, cloud, pb, client_id="host2")
    host.wait(lambda x: x[0] == "DDEATH", timeout=20, what="the DDEATH after the history")
    msgs = session(host.all())
    kinds = [x[0] for x in msgs]
    assert kinds[0] == "NBIRTH" and kinds[1] == "DBIRTH" and kinds[-1] == "DDEATH", kinds
    assert set(kinds[2:-1]) == {"DDATA"}, kinds
    assert value(metric(msgs[1][2], "count")) == 3  # its last known value
    hist = [value(m) for x in msgs if x[0] == "DDATA" for m in x[2].metrics if m.alias == count]
    assert hist == [1, 2, 3][-len(hist):] and len(hist) >= 2, hist
    assert all(m.is_historical for x in msgs if x[0] == "DDATA" for m in x[2].metrics)
    assert_seq_runs(msgs)
    mark = len(host.all())
    s.set(0, "hr", 20, 9)
    s.cmd("mute 0 0")
    wait_for(lambda: any(x[0] == "DBIRTH" and value(metric(x[2], "count")) == 9 for x in host.after(mark)), 15,
             what="its own DBIRTH when it answers again")
    assert_seq_runs(session(host.all()))


def test_history_across_a_kill9_and_a_new_tag(start_broker, client, sim, pb):
    """[tck-id-payloads-metric-historical] [tck-id-payloads-alias-uniqueness]:
    the cloud is down, readings wait in the spool, the edge broker is killed
    with -9 and started again with a tag added in front (the other tags'
    places change): the readings reach the host after the new session's
    births, historical, under the alias the new DBIRTH gives the tag they
    were read from, and the NBIRTH's bdSeq is the next one."""
    s = sim()
    cloud = start_broker()
    host = Host(client, cloud, pb)
    edge = start_edge(start_broker, cloud.port, s)
    first = host.wait(lambda x: x[0] == "DBIRTH", what="DBIRTH")[-1][2]
    host.c.stop()
    cloud.stop()
    for v in range(1, 4):
        s.set(0, "hr", 20, v)
        time.sleep(0.3)
    edge.kill9()
    with open(edge.conf) as f:
        text = f.read()
    with open(edge.conf, "w") as f:
        f.write(text.replace("modbus_tag temp ", "modbus_tag added holding_register 30 uint16\nmodbus_tag temp ", 1))
    s.set(0, "hr", 20, 4)
    edge.start()
    cloud.start()
    host = Host(client, cloud, pb, client_id="host2")
    db = host.wait(lambda x: x[0] == "DBIRTH", timeout=20, what="DBIRTH after the restart")[-1][2]
    assert metric(db, "added") is not None
    assert metric(db, "count").alias == metric(first, "count").alias
    count = metric(db, "count").alias
    s.set(0, "hr", 20, 5)
    host.wait(lambda x: x[0] == "DDATA" and metric(x[2], alias=count) is not None
              and value(metric(x[2], alias=count)) == 5, what="the live DDATA")
    msgs = session(host.all())
    assert msgs[0][0] == "NBIRTH" and value(metric(msgs[0][2], "bdSeq")) == 1
    hist = [value(m) for x in msgs if x[0] == "DDATA" for m in x[2].metrics if m.alias == count and m.is_historical]
    assert hist[-3:] == [1, 2, 3] or hist[-4:] == [1, 2, 3, 4], hist
    assert_seq_runs(msgs)


def test_births_and_data_pass_the_acl_of_modbus_username(start_broker, client, sim, pb, tmp_path):
    """One admission path: a device whose user may not publish its Sparkplug
    topics has its DDATA refused (every reading of it counted) and gets no
    DBIRTH in the session either, though the births leave through the
    bridge without entering the broker; the other device's user may."""
    from opshttp import api, ops_broker
    s = sim(devices=2)
    acl = tmp_path / "acl"
    acl.write_text("user collector\ntopic write modbus/#\ntopic write %s/%s/+/%s/good\n" % (NS, GROUP, NODE))
    cloud = start_broker()
    host = Host(client, cloud, pb)
    lines = edge_lines(cloud.port, s.ports[0], extra_device=["modbus_username collector"])
    lines = [l.replace("modbus_device press", "modbus_device good") for l in lines]
    lines += device_lines("nosy", s.ports[1], ["t holding_register 0 uint16", "u holding_register 1 uint16"],
                          interval=100, extra=["modbus_format sparkplug", "modbus_username collector"])
    edge = ops_broker(start_broker, tmp_path, acl_file=str(acl), extra_lines=lines)
    edge.wait_log(r"no DBIRTH for device nosy in the session: not authorized \(client id modbus/nosy, "
                  r"username collector\)", 15)
    host.wait(lambda x: x[0] == "DBIRTH" and x[1].endswith("/good"), what="DBIRTH of good")

    def refused():
        d = {x["name"]: x for x in api(edge, "GET", "/api/devices")}["nosy"]
        return d if d["readings_refused"] >= 2 else None
    d = wait_for(refused, 10, what="nosy's readings refused")
    # Both tags' first readings went in one refused DBIRTH: counted as two
    # readings; nothing changed since (report by exception).
    assert d["readings_committed"] == 0 and d["readings_refused"] == 2, d
    for v in range(1, 4):
        s.set(1, "hr", 0, v)
        s.set(0, "hr", 0, v)
    host.wait(lambda x: x[0] == "DDATA" and x[1].endswith("/good"), what="DDATA of good")
    time.sleep(0.5)
    assert not [x for x in host.all() if x[1].endswith("/nosy")]


def test_dcmd_writes_a_writable_tag(start_broker, client, sim, pb):
    """[tck-id-operational-behavior-device-command-...]: a DCMD by name or
    by alias writes the tag at the device; a tag not marked writable is not
    written."""
    s = sim()
    s.set(0, "hr", 0, 5)
    cloud = start_broker()
    host = Host(client, cloud, pb)
    edge = start_edge(start_broker, cloud.port, s)
    db = host.wait(lambda x: x[0] == "DBIRTH", what="DBIRTH")[-1][2]
    aliases = {m.name: m.alias for m in db.metrics}
    topic = "%s/%s/DCMD/%s/press" % (NS, GROUP, NODE)

    def dcmd(**metrics):
        p = pb.Payload()
        p.timestamp = int(time.time() * 1000)
        for key, (val, kind) in metrics.items():
            m = p.metrics.add()
            if key.startswith("alias_"):
                m.alias = int(key[6:])
            else:
                m.name = key
            if kind == "bool":
                m.boolean_value = val
            else:
                m.int_value = val & 0xFFFFFFFF
        host.c.publish(topic, p.SerializeToString(), qos=1)

    dcmd(setpoint=(-123, "int"))
    wait_for(lambda: s.get(0, "hr", 10, 1) == [(-123) & 0xFFFF], 10, what="setpoint written")
    edge.wait_log(r"write of setpoint \(holding register 10\) to -123 by client sparkplug DCMD \(username -\): done")
    dcmd(**{"alias_%d" % aliases["run"]: (True, "bool")})
    wait_for(lambda: s.get(0, "co", 0, 1) == [1], 10, what="run written by alias")
    # temp is not writable: refused and logged, the device keeps its value.
    dcmd(temp=(77, "int"))
    edge.wait_log(r"write of temp .* not writable", 10)
    assert s.get(0, "hr", 0, 1) == [5]
    # The new values come back as DDATA.
    host.wait(lambda x: x[0] == "DDATA" and metric(x[2], alias=aliases["setpoint"]) is not None
              and value(metric(x[2], alias=aliases["setpoint"])) == (-123) & 0xFFFFFFFF, what="DDATA of setpoint")
    # [tck-id-principles-persistence-clean-session-50]: the session is clean, so
    # a DCMD sent while the edge node is away is not carried out when it is back.
    edge.kill9()
    host.wait(lambda x: x[0] == "NDEATH", what="NDEATH")
    dcmd(setpoint=(42, "int"))
    edge.start()
    host.wait(lambda x: x[0] == "NBIRTH" and value(metric(x[2], "bdSeq")) == 1, timeout=15, what="the next NBIRTH")
    time.sleep(1)
    assert s.get(0, "hr", 10, 1) == [(-123) & 0xFFFF]


def test_births_wait_for_the_primary_host(start_broker, client, sim, pb):
    """[tck-id-operational-behavior-edge-node-birth-sequence-wait] with
    sparkplug_primary_host_id: no birth and no data until the host's STATE
    says online; a newer offline STATE ends the session (the cloud publishes
    the NDEATH will), and the next session waits for online again, with the
    next bdSeq; an older STATE changes nothing."""
    import json as _json
    s = sim()
    cloud = start_broker()
    host = Host(client, cloud, pb)
    edge = start_broker(extra_lines=["sparkplug_primary_host_id scada"] + edge_lines(cloud.port, s.ports[0]))
    edge.wait_log(r"waiting for the STATE of primary host scada", 15)
    s.set(0, "hr", 20, 3)
    time.sleep(1)
    assert host.all() == []
    state_topic = "%s/STATE/scada" % NS
    scada = client(cloud, client_id="scada", protocol=5)

    def state(online, ts):
        scada.publish(state_topic, _json.dumps({"online": online, "timestamp": ts}).encode(), qos=1, retain=True)

    state(True, 1000)
    host.wait(lambda x: x[0] == "DBIRTH", what="the births once the host is online")
    assert [x[0] for x in host.all()][:2] == ["NBIRTH", "DBIRTH"]
    state(False, 900)  # older: ignored
    edge.wait_log(r"an older STATE of the primary host: ignored")
    state(False, 2000)
    host.wait(lambda x: x[0] == "NDEATH" and value(metric(x[2], "bdSeq")) == 0, timeout=10, what="NDEATH")
    wait_for(lambda: edge.log_text().count("waiting for the STATE of primary host scada") >= 2, 15,
             what="the next session waiting for the host")
    mark = len(host.all())
    time.sleep(1)
    assert host.after(mark) == []  # the retained offline STATE: still waiting
    state(True, 3000)
    wait_for(lambda: any(x[0] == "NBIRTH" and value(metric(x[2], "bdSeq")) == 1 for x in host.after(mark)), 15,
             what="the births of the next session")
    assert_seq_runs(session(host.all()))


def test_ncmd_rebirth(start_broker, client, sim, pb):
    """[tck-id-operational-behavior-edge-node-ncmd-rebirth...]: an NCMD with
    Node Control/Rebirth true brings an NBIRTH (same bdSeq, seq 0) and the
    DBIRTHs again."""
    s = sim()
    cloud = start_broker()
    host = Host(client, cloud, pb)
    start_edge(start_broker, cloud.port, s)
    host.wait(lambda x: x[0] == "DBIRTH", what="DBIRTH")
    mark = len(host.all())
    p = pb.Payload()
    m = p.metrics.add()
    m.name = "Node Control/Rebirth"
    m.datatype = DT["Boolean"]
    m.boolean_value = True
    host.c.publish("%s/%s/NCMD/%s" % (NS, GROUP, NODE), p.SerializeToString(), qos=1)
    wait_for(lambda: any(x[0] == "DBIRTH" for x in host.after(mark)), 15, what="a second DBIRTH")
    again = host.after(mark)
    kinds = [x[0] for x in again]
    assert kinds[:2] == ["NBIRTH", "DBIRTH"], kinds
    assert again[0][2].seq == 0 and again[1][2].seq == 1
    assert value(metric(again[0][2], "bdSeq")) == 0
    assert_seq_runs(session(host.all()))


@pytest.mark.parametrize("version", ["mqttv311", "mqttv50"])
def test_mosquitto_as_the_cloud(start_broker, client, sim, pb, tmp_path, version):
    """The same session against Debian's mosquitto: births, the will on a
    kill -9 of the edge broker, the next bdSeq after it, the NDEATH of a
    clean stop."""
    if not os.path.exists(MOSQUITTO):
        pytest.skip("Debian's mosquitto is not installed (%s)" % MOSQUITTO)
    mq = Mosquitto(tmp_path).start()
    try:
        s = sim()
        host = Host(client, mq.port, pb)
        edge = start_edge(start_broker, mq.port, s, version=version)
        host.wait(lambda x: x[0] == "DBIRTH", what="DBIRTH")
        edge.kill9()
        host.wait(lambda x: x[0] == "NDEATH" and value(metric(x[2], "bdSeq")) == 0, timeout=10, what="NDEATH")
        edge.start()
        host.wait(lambda x: x[0] == "NBIRTH" and value(metric(x[2], "bdSeq")) == 1, timeout=15,
                  what="the next NBIRTH")
        host.wait(lambda x: x[0] == "DBIRTH" and len([y for y in host.all() if y[0] == "DBIRTH"]) >= 2,
                  what="the next DBIRTH")
        assert_seq_runs(session(host.all()))
        # A clean stop: v3 sends the NDEATH itself, v5 asks for the will (0x04).
        edge.stop()
        host.wait(lambda x: x[0] == "NDEATH" and value(metric(x[2], "bdSeq")) == 1, timeout=10,
                  what="NDEATH at a clean stop")
    finally:
        mq.stop()
        mq.log.close()


def check_config(tmp_path, lines):
    conf = tmp_path / "bad.conf"
    conf.write_text("\n".join(lines) + "\n")
    r = subprocess.run([broker_bin(), "--check-config", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr
    return r.stderr.strip()


DEVICE = ["modbus_device d", "modbus_address 127.0.0.1:1502", "modbus_tag t holding_register 0 int16"]
IDS = ["sparkplug_group_id g", "sparkplug_edge_node_id e"]
BRIDGE = ["connection c", "address 127.0.0.1:1883", "bridge_sparkplug true"]


@pytest.mark.parametrize("lines,where,what", [
    (["sparkplug_group_id a/b"], 1, "invalid value 'a/b'"),
    (["sparkplug_edge_node_id a+"], 1, "invalid value 'a+'"),
    (["sparkplug_group_id " + "x" * 64], 1, "invalid value"),
    (BRIDGE, 3, "bridge_sparkplug needs sparkplug_group_id and sparkplug_edge_node_id"),
    (IDS + BRIDGE + ["connection d", "address 127.0.0.1:1884", "bridge_sparkplug true"], 8,
     "the edge node has one session"),
    (DEVICE + ["modbus_format sparkplug"], 1, "needs sparkplug_group_id and sparkplug_edge_node_id"),
    (IDS + DEVICE + ["modbus_format sparkplug"], 3, "needs a bridge with bridge_sparkplug true"),
    (IDS + BRIDGE + DEVICE + ["modbus_format sparkplug", "modbus_group_messages true"], 6,
     "modbus_group_messages is for modbus_format json"),
    (DEVICE + ["modbus_format opcua"], 4, "json|sparkplug"),
    (IDS + BRIDGE + ["cleansession false"], 6, "the Sparkplug edge node's session is always clean"),
    (IDS + ["sparkplug_primary_host_id scada"], 3, "sparkplug_primary_host_id needs a bridge with bridge_sparkplug"),
])
def test_check_config_names_the_line(tmp_path, lines, where, what):
    err = check_config(tmp_path, lines)
    assert err.startswith("%s:%d: " % (tmp_path / "bad.conf", where)), err
    assert what in err, err
