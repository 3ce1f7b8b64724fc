"""Shared subscriptions $share/{group}/{filter} (MQTT 5.0 section 4.8.2; ferromq
accepts them from 3.1.1 clients too)."""
import pytest

import mqttraw as M
from conftest import PROTOCOLS, connect_raw


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_round_robin_between_members(broker, client, proto):
    a = client(broker, "sh-a", proto)
    bm = client(broker, "sh-b", proto)
    assert a.subscribe("$share/g/sh/#", 1) == [1]
    assert bm.subscribe("$share/g/sh/#", 1) == [1]
    normal = client(broker, "sh-normal", proto)
    normal.subscribe("sh/#", 1)
    other_group = client(broker, "sh-other", proto)
    other_group.subscribe("$share/h/sh/+", 1)
    pub = client(broker, "sh-pub", proto)
    n = 100
    for i in range(n):
        pub.publish("sh/x", str(i).encode(), 1, wait=False)
    normal.messages.wait_for(n, timeout=20)
    other_group.messages.wait_for(n, timeout=20)

    def total():
        return len(a.messages) + len(bm.messages)
    import time
    deadline = time.monotonic() + 10
    while total() < n and time.monotonic() < deadline:
        time.sleep(0.02)
    got_a = [int(m.payload) for m in a.messages.snapshot()]
    got_b = [int(m.payload) for m in bm.messages.snapshot()]
    assert sorted(got_a + got_b) == list(range(n)), (got_a, got_b)
    assert 30 <= len(got_a) <= 70, (len(got_a), len(got_b))
    # each member sees its share in publish order
    assert got_a == sorted(got_a) and got_b == sorted(got_b)
    # delivered topic is the real topic, not the $share filter
    assert {m.topic for m in a.messages.snapshot()} == {"sh/x"}


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_unacked_message_goes_to_other_member(broker, raw, client, proto):
    """5.0 4.8.2: if a member's session ends before it acknowledges a QoS 1
    message, the server SHOULD send it to another member."""
    bad = connect_raw(raw, broker, "sh-bad", proto)  # clean session, expiry 0
    bad.subscribe([("$share/g/rr/t", 1)])
    good = client(broker, "sh-good", proto)
    good.subscribe("$share/g/rr/t", 1)
    pub = client(broker, "sh-pub2", proto)
    # publish until the raw member has received one (round robin gives it one soon)
    held = None
    for i in range(10):
        pub.publish("rr/t", str(i).encode(), 1)
        got = [p for p in bad.quiet(0.2) if p.type == M.PUBLISH]
        if got:
            held = got
            break
    assert held, "the raw member never got a message"
    sent = i + 1
    bad.close()  # never acked
    msgs = good.messages.wait_for(sent, timeout=8)
    assert sorted(int(m.payload) for m in msgs) == list(range(sent)), msgs


def test_v5_shared_no_local_is_protocol_error(broker, raw):
    """MQTT-3.8.3-4: No Local on a Shared Subscription is a Protocol Error."""
    r = connect_raw(raw, broker, "sh-nl", 5)
    r.send(M.subscribe(1, [("$share/g/x", M.sub_opts(1, no_local=True))], 5))
    seen = r.recv_until_closed()
    assert seen and seen[-1].type == M.DISCONNECT and seen[-1].rc == 0x82, seen


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_shared_no_retained_on_subscribe(broker, raw, proto):
    """5.0 3.3.1.3: retained messages are sent for new Non-shared Subscriptions
    only (MQTT-3.8.4-... shared subscriptions get none)."""
    pub = connect_raw(raw, broker, "shr-pub", proto)
    pub.publish("shr/t", b"retained", qos=1, retain=True)
    r = connect_raw(raw, broker, "shr-sub", proto)
    r.subscribe([("$share/g/shr/t", 1)])
    pub.publish("shr/t", b"live", qos=1, pid=2)
    p = r.expect(M.PUBLISH)
    assert p.payload == b"live", p


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_shared_unsubscribe(broker, raw, client, proto):
    a = connect_raw(raw, broker, "shu-a", proto)
    a.subscribe([("$share/g/shu/t", 1)])
    bm = client(broker, "shu-b", proto)
    bm.subscribe("$share/g/shu/t", 1)
    ua = a.unsubscribe(["$share/g/shu/t"])
    if proto == 5:
        assert ua.codes == [0]
    pub = client(broker, "shu-pub", proto)
    for i in range(10):
        pub.publish("shu/t", str(i).encode(), 1)
    assert len(bm.messages.wait_for(10)) == 10
    assert a.quiet(0.2) == []
