"""Modbus TCP collection inside the broker (issue 16), against fm-modbus-sim
on loopback: every type and byte/word order, scale and offset, request
coalescing counted at the device, exception responses, a device that stops
answering, reconnection, report by exception and the deadband."""
import json
import math
import struct
import subprocess
import time

import mqttraw
import pytest

from collect_sim import device_lines, reading, regs, sim  # noqa: F401  (fixture)
from conftest import broker_bin, wait_for

VALUES = [  # (TYPE, struct format, value)
    ("int16", "h", -12345),
    ("uint16", "H", 54321),
    ("int32", "i", -123456789),
    ("uint32", "I", 3456789012),
    ("int64", "q", -1234567890123456789),
    ("uint64", "Q", 12345678901234567890),
    ("float32", "f", 21.5),
    ("float64", "d", -1234.5678901234),
]
ORDERS = ["abcd", "badc", "cdab", "dcba"]


def latest(sub, topic, pred=lambda r: True, timeout=10):
    """The payload of the newest message on topic satisfying pred."""
    def find():
        for m in reversed(sub.messages.snapshot()):
            if m.topic == topic:
                r = reading(m)
                if pred(r):
                    return r
        return None
    return wait_for(find, timeout, what="a reading on %s" % topic)


def test_every_type_and_order_scale_offset(start_broker, client, sim):
    s = sim()
    tags, expect, addr = [], {}, 0
    for typ, fmt, value in VALUES:
        for order in ORDERS:
            words = regs(fmt, value, order)
            s.set(0, "hr", addr, *words)
            name = "%s_%s" % (typ, order)
            tags.append("%s holding_register %d %s %s" % (name, addr, typ, order))
            expect[name] = value
            addr += len(words) + 1
    # Scale and offset, on an input register, and the unit.
    s.set(0, "ir", 0, *regs("h", -400))
    tags.append(("temp input_register 0 int16", ["tag_scale 0.1", "tag_offset 5", "tag_unit degC"]))
    s.set(0, "ir", 1, *regs("H", 0b1010_0000_0000_0101))
    tags += ["bit0 input_register 1 bit:0", "bit1 input_register 1 bit:1", "bit15 input_register 1 bit:15"]
    s.set(0, "hr", 500, *[int.from_bytes(b"Pr", "big"), int.from_bytes(b"es", "big"),
                          int.from_bytes(b"s1", "big"), 0])
    tags.append("label holding_register 500 string:4")
    s.set(0, "hr", 510, int.from_bytes(b"rP", "big"), int.from_bytes(b"se", "big"))
    tags.append("label_swapped holding_register 510 string:2 badc")
    s.set(0, "co", 7, 1)
    s.set(0, "di", 3, 0, 1)
    tags += ["coil7 coil 7 bool", "di3 discrete_input 3 bool", "di4 discrete_input 4 bool"]
    b = start_broker(extra_lines=device_lines("plc1", s.ports[0], tags))
    sub = client(b)
    sub.subscribe("modbus/plc1/#", 1)
    for name, value in expect.items():
        r = latest(sub, "modbus/plc1/" + name)
        assert r["quality"] == "good", (name, r)
        if isinstance(value, float):
            assert math.isclose(r["value"], value, rel_tol=1e-6), (name, r, value)
        else:
            assert r["value"] == value, (name, r, value)
        assert isinstance(r["ts"], int) and r["ts"] > 1_600_000_000_000
    r = latest(sub, "modbus/plc1/temp")
    assert math.isclose(r["value"], -400 * 0.1 + 5) and r["unit"] == "degC", r
    assert latest(sub, "modbus/plc1/bit0")["value"] is True
    assert latest(sub, "modbus/plc1/bit1")["value"] is False
    assert latest(sub, "modbus/plc1/bit15")["value"] is True
    assert latest(sub, "modbus/plc1/label")["value"] == "Press1"
    assert latest(sub, "modbus/plc1/label_swapped")["value"] == "Pres"
    assert latest(sub, "modbus/plc1/coil7")["value"] is True
    assert latest(sub, "modbus/plc1/di3")["value"] is False
    assert latest(sub, "modbus/plc1/di4")["value"] is True
    status = latest(sub, "modbus/plc1/status")
    assert status["state"] == "online" and status["last_error"] is None, status


def test_readings_are_qos1_and_status_retained(start_broker, client, sim):
    s = sim()
    b = start_broker(extra_lines=device_lines("d", s.ports[0], ["v holding_register 0 uint16"],
                                              extra=["modbus_topic_prefix plant/line1/d"]))
    sub = client(b, protocol=5)
    sub.subscribe("plant/line1/d/v", 1)
    wait_for(lambda: any(m.qos == 1 for m in sub.messages.snapshot()), 10, what="a QoS 1 reading")
    late = client(b, protocol=5)
    late.subscribe("plant/line1/d/status", 1)
    m = late.messages.wait_for(1, 10)[0]
    assert m.retain and json.loads(m.payload)["state"] == "online"


def reads_per_poll(s, seq_addr, polls=6, timeout=20):
    """Read requests (by function code) the device served per poll, counted
    over `polls` polls of the group holding the seq register."""
    def sample():
        st = s.stats()[0]
        return s.get(0, "hr", seq_addr, 1)[0], st["fc"]
    seq0, fc0 = sample()
    wait_for(lambda: s.get(0, "hr", seq_addr, 1)[0] >= seq0 + polls, timeout, what="%d polls" % polls)
    seq1, fc1 = sample()
    n = seq1 - seq0
    return n, [fc1[i] - fc0[i] for i in range(len(fc0))]


def test_coalescing_counted_at_the_device(start_broker, sim):
    s = sim()
    s.cmd("seq 0 hr 5")
    tags = ["h%d holding_register %d uint16" % (i, i) for i in range(10)]   # 0..9
    tags += ["big holding_register 20 int32"]                              # gap 10 <= 16: same request
    tags += ["far holding_register 300 float32"]                           # a second request
    tags += ["c%d coil %d bool" % (i, i * 7) for i in range(30)]           # 0..203: one request
    tags += ["w%d input_register %d uint16" % (i, 1000 + i * 124) for i in range(2)]  # 1000, 1124: 125 apart -> 2
    b = start_broker(extra_lines=device_lines("plc", s.ports[0], tags, interval=100))
    polls, fc = reads_per_poll(s, 5)
    # Per poll: FC3 x2 (0..21, 300..301), FC1 x1, FC4 x2. A sample may fall
    # inside a poll: one request either way.
    assert abs(fc[3] - 2 * polls) <= 1, (polls, fc)
    assert abs(fc[1] - polls) <= 1, (polls, fc)
    assert abs(fc[4] - 2 * polls) <= 1, (polls, fc)
    assert fc[2] == 0
    b.stop()


def test_bits_join_up_to_2000_and_registers_up_to_125(start_broker, sim):
    s = sim()
    s.cmd("seq 0 hr 0")
    tags = ["seq holding_register 0 uint16", "r124 holding_register 124 uint16",   # 0..124: one request
            "r125 holding_register 125 uint16"]                                 # 126 registers: a second
    tags += ["c0 coil 0 bool", "c1999 coil 1999 bool", "c2000 coil 2000 bool"]  # 2001 bits: two requests
    start_broker(extra_lines=device_lines("plc", s.ports[0], tags, interval=100,
                                          extra=["modbus_max_gap 120"]))
    polls, fc = reads_per_poll(s, 0)
    assert abs(fc[3] - 2 * polls) <= 1, (polls, fc)
    assert abs(fc[1] - 2 * polls) <= 1, (polls, fc)


def test_exception_per_tag_others_go_on(start_broker, client, sim):
    s = sim()
    s.set(0, "hr", 0, 11, 12, 13, 14)
    s.cmd("illegal 0 hr 2 1")
    s.cmd("busy 0 hr 10 1")
    tags = ["a holding_register 0 uint16", "b holding_register 1 uint16", "bad holding_register 2 uint16",
            "d holding_register 3 uint16", "busy holding_register 10 uint16"]
    b = start_broker(extra_lines=device_lines("plc", s.ports[0], tags, interval=100))
    sub = client(b)
    sub.subscribe("modbus/plc/#", 1)
    for name, value in (("a", 11), ("b", 12), ("d", 14)):
        assert latest(sub, "modbus/plc/" + name)["value"] == value
    bad = latest(sub, "modbus/plc/bad")
    assert bad["quality"] == "bad" and bad["value"] is None and "illegal data address" in bad["error"], bad
    busy = latest(sub, "modbus/plc/busy")
    assert busy["quality"] == "bad" and "busy" in busy["error"], busy
    # Logged once per episode, however many polls.
    n = len(sub.messages)
    wait_for(lambda: len(sub.messages) > n + 20, 10, what="more polls")
    assert b.log_text().count("tag bad (holding register 2): exception 2") == 1, b.log_text()[-3000:]
    assert latest(sub, "modbus/plc/status")["state"] == "online"
    s.cmd("clear 0")
    assert latest(sub, "modbus/plc/bad", lambda r: r["quality"] == "good")["value"] == 13
    b.wait_log("tag bad reads again")


def test_device_stops_answering_then_comes_back(start_broker, client, sim):
    s = sim(devices=2)
    s.set(0, "hr", 0, 7)
    s.set(1, "hr", 0, 8)
    lines = device_lines("dead", s.ports[0], ["v holding_register 0 uint16"], interval=100,
                         extra=["modbus_timeout 200", "modbus_offline_after 2", "modbus_restart_timeout 100 400"])
    lines += device_lines("live", s.ports[1], ["v holding_register 0 uint16"], interval=100)
    b = start_broker(extra_lines=lines)
    sub = client(b)
    sub.subscribe("modbus/#", 1)
    latest(sub, "modbus/dead/v")
    s.cmd("mute 0 1")
    st = latest(sub, "modbus/dead/status", lambda r: r["state"] == "offline")
    assert st["last_error"] and st["since"] > 0, st
    bad = latest(sub, "modbus/dead/v", lambda r: r["quality"] == "bad")
    assert bad["value"] is None, bad
    b.wait_log(r"modbus device dead \(127.0.0.1:%d\) offline after 2 failures in a row" % s.ports[0])
    # The other device goes on at its pace meanwhile.
    n = len([m for m in sub.messages.snapshot() if m.topic == "modbus/live/v"])
    wait_for(lambda: len([m for m in sub.messages.snapshot() if m.topic == "modbus/live/v"]) >= n + 10, 10,
             what="the live device's readings")
    s.cmd("mute 0 0")
    latest(sub, "modbus/dead/status", lambda r: r["state"] == "online", timeout=15)
    assert latest(sub, "modbus/dead/v", lambda r: r["quality"] == "good", timeout=15)["value"] == 7
    b.wait_log("modbus device dead .* online again")


def test_reconnects_after_the_connection_drops(start_broker, client, sim):
    s = sim()
    s.cmd("seq 0 hr 0")
    b = start_broker(extra_lines=device_lines("plc", s.ports[0], ["n holding_register 0 uint16"], interval=100))
    sub = client(b)
    sub.subscribe("modbus/plc/n", 1)
    sub.messages.wait_for(2, 10)
    for _ in range(3):
        accepts = s.stats()[0]["accepts"]
        s.cmd("drop 0")
        wait_for(lambda: s.stats()[0]["accepts"] > accepts, 10, what="a reconnection")
    n = len(sub.messages)
    sub.messages.wait_for(n + 3, 10)
    values = [reading(m)["value"] for m in sub.messages.snapshot() if reading(m)["quality"] == "good"]
    assert values == sorted(values), values


def test_report_by_exception_deadband_and_max_silence(start_broker, client, sim):
    s = sim()
    s.set(0, "hr", 0, 100, 100, 100)
    tags = [("rbe holding_register 0 uint16", ["tag_report_by_exception true"]),
            ("db holding_register 1 uint16", ["tag_deadband 5"]),
            ("quiet holding_register 2 uint16", ["tag_report_by_exception true", "tag_max_silence 1"]),
            "every holding_register 3 uint16"]
    s.cmd("seq 0 hr 3")
    b = start_broker(extra_lines=device_lines("plc", s.ports[0], tags, interval=50))
    sub = client(b)
    sub.subscribe("modbus/plc/+", 1)

    def values(name):
        return [reading(m)["value"] for m in sub.messages.snapshot() if m.topic == "modbus/plc/" + name]
    # The first poll may have gone before the subscription: start from here.
    wait_for(lambda: len(values("every")) >= 3, 10, what="polls")
    sub.messages.clear()
    wait_for(lambda: len(values("every")) >= 10, 10, what="polls")
    assert values("rbe") == [] and values("db") == [], (values("rbe"), values("db"))
    s.set(0, "hr", 0, 101)
    s.set(0, "hr", 1, 103)   # moved 3 < 5: held back
    wait_for(lambda: values("rbe") == [101], 10, what="the change")
    n = len(values("every"))
    wait_for(lambda: len(values("every")) >= n + 5, 10, what="polls")
    assert values("rbe") == [101] and values("db") == [], (values("rbe"), values("db"))
    s.set(0, "hr", 1, 106)   # moved 6 from the last published (100): out
    wait_for(lambda: values("db") == [106], 10, what="the deadband")
    # Unchanged, but 1 s of silence is the most it keeps.
    wait_for(lambda: len(values("quiet")) >= 3, 10, what="max_silence")
    assert set(values("quiet")) == {100}


def test_check_config_names_the_line(tmp_path):
    """Each error names the file and the line at fault: the line itself, or
    for a section's whole, the tag's or the device's line."""
    bad = [  # (text after "listener 18830", the line named, why)
        ("modbus_tag x holding_register 0 int16", 2, "without a `modbus_device NAME` line"),
        ("modbus_device a\nmodbus_address h\nmodbus_tag x coil 0 int16", 4, "coils and discrete inputs"),
        ("modbus_device a\nmodbus_address h\nmodbus_tag x holding_register 65535 int32", 4, "past address 65535"),
        ("modbus_device a\nmodbus_address h\nmodbus_tag x holding_register 0 string:126", 4, "string:N"),
        ("modbus_device a\nmodbus_address h\nmodbus_tag x holding_register 0 float32 abdc", 4, "ORDER"),
        ("modbus_device a\nmodbus_address h\nmodbus_tag x input_register 0 int16\ntag_unit C\ntag_writable true",
         4, "only coils and holding registers"),
        ("modbus_device a\nmodbus_address h\nmodbus_tag y coil 0 bool\nmodbus_tag x holding_register 0 int16\n"
         "tag_scale 0", 5, "tag_scale must not be 0"),
        ("modbus_device a\nmodbus_tag x holding_register 0 int16", 2, "needs a modbus_address"),
        ("modbus_device a\nmodbus_address h\nmodbus_tag x holding_register 0 int16\n"
         "modbus_tag x holding_register 1 int16", 5, "declared twice in this device (first on line 4)"),
        ("modbus_device a\nmodbus_address h\nmodbus_tag_x", 4, "unknown option"),
        ("modbus_device a\nmodbus_address h:99999", 3, "port in 1..65535"),
    ]
    for text, line, why in bad:
        conf = tmp_path / "c.conf"
        conf.write_text("listener 18830\n" + text + "\n")
        r = subprocess.run([broker_bin(), "--check-config", "-c", str(conf)], capture_output=True, text=True)
        assert r.returncode == 1 and why in r.stderr, (text, r.stderr)
        assert r.stderr.startswith("%s:%d: " % (conf, line)), (text, line, r.stderr)
    conf.write_text("listener 18830\nmodbus_device a\nmodbus_address h\nmodbus_tag x holding_register 0 int16\n")
    r = subprocess.run([broker_bin(), "--check-config", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 0 and "configuration OK" in r.stdout, r.stderr


ACL = """user collector
topic write modbus/#

user alice
topic write modbus/plc/+/set
topic write replies/alice
topic read #

user bob
topic read #
"""


def result_on(r, topic, timeout=10):
    """The next PUBLISH on topic a raw client receives (acknowledged)."""
    deadline = time.monotonic() + timeout
    while True:
        p = r.recv(max(0.1, deadline - time.monotonic()))
        if p is None or time.monotonic() > deadline:
            raise AssertionError("no message on %s" % topic)
        if p.type == mqttraw.PUBLISH:
            r.ack(p)
            if p.topic == topic:
                return p


def test_writes_results_and_refusals(start_broker, raw, sim, tmp_path):
    s = sim()
    tags = [("sp holding_register 200 int16", ["tag_scale 0.1", "tag_writable true", "tag_min 0", "tag_max 150"]),
            ("valve coil 5 bool", ["tag_writable true"]),
            ("wide holding_register 210 int32 cdab", ["tag_writable true"]),
            ("raw holding_register 220 int16", ["tag_writable true"]),
            "ro holding_register 230 int16"]
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    b = start_broker(acl_file=str(acl),
                     extra_lines=device_lines("plc", s.ports[0], tags, extra=["modbus_username collector"]))
    alice = raw(b, 5)
    assert alice.connect("writer1", username="alice").rc == 0
    alice.subscribe([("replies/alice", 1)])
    req = [(mqttraw.P_RESPONSE_TOPIC, "replies/alice"), (mqttraw.P_CORRELATION_DATA, b"req-1")]

    def write(tag, payload, pid=1):
        ack = alice.publish("modbus/plc/%s/set" % tag, payload, qos=1, pid=pid, properties=req)
        assert ack.rc == 0, ack.rc
        p = result_on(alice, "replies/alice")
        assert p.props.get(mqttraw.P_CORRELATION_DATA) == b"req-1", p.props
        return json.loads(p.payload)

    res = write("sp", "12.3")
    assert res == {"ok": True, "tag": "sp", "value": 12.3}, res
    assert s.get(0, "hr", 200, 1) == [123]
    res = write("wide", '{"value": -100000}')
    assert res["ok"], res
    assert s.get(0, "hr", 210, 2) == regs("i", -100000, "cdab")
    b.wait_log(r"modbus device plc: write of sp \(holding register 200\) to 12.3 by client writer1 "
               r"\(username alice\): done")
    for tag, payload, why in (("ro", "1", "not writable"), ("sp", "200", "outside tag_min..tag_max"),
                              ("raw", "40000", "outside the range of the register type"),
                              ("sp", "twelve", "the payload must be"), ("valve", "2", "a coil takes")):
        res = write(tag, payload)
        assert not res["ok"] and why in res["error"], (tag, payload, res)
    assert s.get(0, "hr", 200, 1) == [123] and s.get(0, "hr", 230, 1) == [0]
    b.wait_log(r"write of ro \(holding register 230\) .* by client writer1 \(username alice\): the tag is not writable")
    # v3.1.1: no Response Topic, the result goes under the tag.
    v3 = raw(b, 4)
    assert v3.connect("writer2", username="alice").rc == 0
    v3.subscribe([("modbus/plc/valve/set/result", 1)])
    v3.publish("modbus/plc/valve/set", "true", qos=1)
    assert json.loads(result_on(v3, "modbus/plc/valve/set/result").payload)["ok"] is True
    assert s.get(0, "co", 5, 1) == [1]
    # The ACL decides who may write: bob may not.
    bob = raw(b, 5)
    assert bob.connect("bob1", username="bob").rc == 0
    assert bob.publish("modbus/plc/sp/set", "5", qos=1).rc == 0x87
    time.sleep(0.3)  # a refused write must not happen later either
    assert s.get(0, "hr", 200, 1) == [123]
    assert "by client bob1" not in b.log_text()


def test_one_message_per_poll_group(start_broker, client, sim):
    s = sim()
    s.set(0, "hr", 0, 7, 0xFFFF)
    s.set(0, "co", 0, 1)
    tags = ["a holding_register 0 uint16", "b holding_register 1 int16", "c coil 0 bool",
            ("slow holding_register 5 uint16", ["tag_interval 300"])]
    b = start_broker(extra_lines=device_lines("plc", s.ports[0], tags, interval=100,
                                              extra=["modbus_group_messages true"]))
    sub = client(b)
    sub.subscribe("modbus/plc/poll/#", 1)
    fast = sub.messages.wait_match(lambda m: m.topic == "modbus/plc/poll/100", 10)
    body = json.loads(fast.payload)
    assert body["values"] == {"a": 7, "b": -1, "c": True} and body["ts"] > 1_600_000_000_000, body
    slow = sub.messages.wait_match(lambda m: m.topic == "modbus/plc/poll/300", 10)
    assert json.loads(slow.payload)["values"] == {"slow": 0}


def test_readings_reach_the_cloud_through_the_bridge(start_broker, client, sim):
    s = sim()
    s.cmd("seq 0 hr 0")
    cloud = start_broker()
    edge = start_broker(extra_lines=device_lines("plc", s.ports[0], ["n holding_register 0 uint16"], interval=50) +
                        ["connection cloud", "address 127.0.0.1:%d" % cloud.port, "bridge_protocol_version mqttv50",
                         "restart_timeout 1 2", 'topic modbus/# out 1 "" site1/'])
    sub = client(cloud)
    sub.subscribe("site1/modbus/plc/#", 1)
    edge.wait_log(r"bridge cloud: connected to", 10)
    got = sub.messages.wait_for(10, 15)
    values = [reading(m)["value"] for m in got if m.topic == "site1/modbus/plc/n"]
    assert values and values == sorted(values), values
