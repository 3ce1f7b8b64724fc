"""SUBSCRIBE / UNSUBSCRIBE and topic matching (MQTT 3.1.1 section 3.8-3.11, 4.7;
5.0 section 3.8-3.11, 4.7)."""
import pytest

import mqttraw as M
from conftest import PROTOCOLS, connect_raw

TOPICS = ["sport", "sport/", "sport/tennis", "sport/tennis/player1",
          "sport/tennis/player1/ranking", "/finance", "finance", "a/b", "a/b/c",
          "a//c"]

FILTERS = {
    "sport/tennis/+": {"sport/tennis/player1"},
    "sport/#": {"sport", "sport/", "sport/tennis", "sport/tennis/player1",
                "sport/tennis/player1/ranking"},
    "sport/+": {"sport/", "sport/tennis"},
    "+/+": {"sport/", "sport/tennis", "/finance", "a/b"},
    "/+": {"/finance"},
    "+": {"sport", "finance"},
    "#": set(TOPICS),
    "a/+/c": {"a/b/c", "a//c"},
    "+/b/#": {"a/b", "a/b/c"},
    "sport/tennis/player1": {"sport/tennis/player1"},
}


def drain_until(r, marker_topic, timeout=5.0):
    got = []
    while True:
        p = r.expect(M.PUBLISH, timeout)
        r.ack_fully(p)
        if p.topic == marker_topic:
            return got
        got.append(p)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_wildcards(broker, raw, proto):
    """MQTT 4.7.1: + matches one level, # any number including the parent."""
    subs = {}
    for i, f in enumerate(FILTERS):
        r = connect_raw(raw, broker, "wc%d" % i, proto)
        sa = r.subscribe([(f, 1), ("marker/end", 1)])
        assert sa.codes == [1, 1], (f, sa)
        subs[f] = r
    pub = connect_raw(raw, broker, "wc-pub", proto)
    for t in TOPICS:
        pub.publish(t, t.encode(), qos=1)
    pub.publish("marker/end", b"", qos=1)
    for f, r in subs.items():
        got = [p.topic for p in drain_until(r, "marker/end")]
        if f == "#":
            got = [t for t in got if t != "marker/end"]
        assert sorted(got) == sorted(FILTERS[f]), (f, got)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_dollar_topics_not_matched_by_leading_wildcard(broker, raw, proto):
    """MQTT-4.7.2-1: filters starting with # or + do not match topics starting with $."""
    hash_sub = connect_raw(raw, broker, "d-hash", proto)
    hash_sub.subscribe([("#", 1)])
    plus_sub = connect_raw(raw, broker, "d-plus", proto)
    plus_sub.subscribe([("+/bar", 1), ("marker", 1)])
    dollar_sub = connect_raw(raw, broker, "d-dollar", proto)
    dollar_sub.subscribe([("$foo/#", 1), ("$foo/+", 1), ("marker", 1)])
    pub = connect_raw(raw, broker, "d-pub", 5)
    ack = pub.publish("$foo/bar", b"dollar", qos=1)
    accepted = ack.rc < 0x80
    pub.publish("marker", b"m", qos=1)
    got_hash = drain_until(hash_sub, "marker")
    assert [p.topic for p in got_hash] == [], got_hash
    got_plus = drain_until(plus_sub, "marker")
    assert got_plus == [], got_plus
    got_dollar = drain_until(dollar_sub, "marker")
    if accepted:
        # one copy for the two overlapping filters
        assert [p.topic for p in got_dollar] == ["$foo/bar"], got_dollar
    else:
        assert got_dollar == []


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_suback_codes(broker, raw, proto):
    """MQTT-3.9.3 (3.1.1: 0x80 failure), 5.0 3.9.3 (0x8F Topic Filter invalid)."""
    r = connect_raw(raw, broker, "sa", proto)
    bad = 0x8F if proto == 5 else 0x80
    sa = r.subscribe([("ok/0", 0), ("a/#/b", 1), ("ok/1", 1), ("a+", 1), ("ok/2", 2),
                      ("#a", 0), ("x/+y", 2)], pid=321)
    assert sa.pid == 321
    assert sa.codes == [0, bad, 1, bad, 2, bad, bad], [hex(c) for c in sa.codes]
    pub = connect_raw(raw, broker, "sa-pub", proto)
    pub.publish("ok/1", b"still works", qos=1)
    p = r.expect(M.PUBLISH)
    assert p.topic == "ok/1"


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_resubscribe_replaces(broker, raw, proto):
    """MQTT-3.8.4-3: a subscription with an identical filter replaces the old one."""
    r = connect_raw(raw, broker, "re", proto)
    r.subscribe([("re/t", 0)])
    assert r.subscribe([("re/t", 2)], pid=2).codes == [2]
    pub = connect_raw(raw, broker, "re-pub", proto)
    pub.publish("re/t", b"x", qos=2)
    pub.publish("re/t", b"end", qos=2, pid=2)
    got = []
    while True:
        p = r.expect(M.PUBLISH)
        r.ack_fully(p)
        got.append((p.payload, p.qos))
        if p.payload == b"end":
            break
    assert got == [(b"x", 2), (b"end", 2)]


def test_unsuback_v5_codes(broker, raw):
    """MQTT 5.0 3.11.3: 0x00 Success, 0x11 No subscription existed."""
    r = connect_raw(raw, broker, "us5", 5)
    r.subscribe([("us/a", 1)])
    ua = r.unsubscribe(["us/a", "us/none"], pid=99)
    assert ua.pid == 99
    assert ua.codes == [0x00, 0x11], ua
    ua = r.unsubscribe(["us/a"], pid=100)
    assert ua.codes == [0x11], ua


def test_unsuback_v311(broker, raw):
    """MQTT-3.11.2: UNSUBACK has only the packet id, even for unknown filters."""
    r = connect_raw(raw, broker, "us3", 4)
    ua = r.unsubscribe(["never/subscribed"], pid=7)
    assert ua.pid == 7 and ua.raw == b"\x00\x07"


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_unsubscribe_stops_delivery(broker, raw, proto):
    r = connect_raw(raw, broker, "unsub", proto)
    r.subscribe([("u/a", 1), ("u/marker", 1)])
    pub = connect_raw(raw, broker, "unsub-pub", proto)
    pub.publish("u/a", b"before", qos=1)
    p = r.expect(M.PUBLISH)
    r.ack(p)
    assert p.payload == b"before"
    r.unsubscribe(["u/a"], pid=5)
    pub.publish("u/a", b"after", qos=1)
    pub.publish("u/marker", b"m", qos=1)
    assert drain_until(r, "u/marker") == []


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_subscribe_many_filters_one_packet(broker, raw, proto):
    r = connect_raw(raw, broker, "many", proto)
    filters = [("m/%d" % i, i % 3) for i in range(50)]
    sa = r.subscribe(filters)
    assert sa.codes == [i % 3 for i in range(50)]
