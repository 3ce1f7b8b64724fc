"""MQTT 5.0 properties: topic aliases, flow control, packet size, expiry,
subscription ids, no local, pass-through properties, CONNACK properties."""
import time

import pytest

import mqttraw as M
from conftest import PacketTypes, connect_raw, props


# ---------------------------------------------------------------- CONNACK

def test_connack_advertises_limits(start_broker, raw):
    """3.2.2.3: Receive Maximum, Topic Alias Maximum, Maximum Packet Size."""
    b = start_broker(receive_maximum=7, max_topic_alias=4, max_packet_size=5000)
    r = raw(b, 5)
    ca = r.connect("limits", version=5)
    assert ca.props.get(M.P_RECEIVE_MAXIMUM) == 7, ca
    assert ca.props.get(M.P_TOPIC_ALIAS_MAXIMUM) == 4, ca
    assert ca.props.get(M.P_MAXIMUM_PACKET_SIZE) == 5000, ca


@pytest.mark.parametrize("request_info", [1, 0])
def test_response_information(broker, raw, request_info):
    """3.1.2.11.6: Request Response Information 1 -> Response Information in
    CONNACK (ferromq sends it); 0 -> MUST NOT be sent (MQTT-3.1.2-28 text)."""
    r = raw(broker, 5)
    ca = r.connect("rri", version=5, properties=[(M.P_REQUEST_RESPONSE_INFO, request_info)])
    if request_info:
        assert ca.props.get(M.P_RESPONSE_INFO), ca
    else:
        assert M.P_RESPONSE_INFO not in ca.props, ca


@pytest.mark.parametrize("rpi", [None, 1, 0])
def test_reason_string_on_error_ack(start_broker, raw, rpi):
    """3.1.2.11.7: with Request Problem Information 0 the server MUST NOT send a
    Reason String or User Property except in PUBLISH/CONNACK/DISCONNECT
    (MQTT-3.1.2-29); otherwise ferromq explains a failed PUBACK (0x97)."""
    b = start_broker(max_queued_messages=1, queue_overflow="reject_new")
    sub = connect_raw(raw, b, "rpi-sub", 5, clean=False, properties=[(M.P_SESSION_EXPIRY, 60)])
    sub.subscribe([("rpi/t", 1)])
    sub.disconnect()
    r = raw(b, 5)
    p = [] if rpi is None else [(M.P_REQUEST_PROBLEM_INFO, rpi)]
    assert r.connect("rpi", version=5, properties=p).rc == 0
    assert r.publish("rpi/t", b"1", qos=1, pid=1).rc == 0
    ack = r.publish("rpi/t", b"2", qos=1, pid=2)
    assert ack.rc == 0x97, ack
    sa = r.subscribe([("bad/#/filter", 1)])
    assert sa.codes == [0x8F]
    if rpi == 0:
        for pkt in (ack, sa):
            assert M.P_REASON_STRING not in pkt.props and M.P_USER_PROPERTY not in pkt.props, pkt
    else:
        assert ack.props.get(M.P_REASON_STRING), ack


# ---------------------------------------------------------------- topic alias

def test_topic_alias_client_to_server(start_broker, raw):
    """3.3.2.3.4: a PUBLISH with an empty topic and a known alias uses its topic."""
    b = start_broker(max_topic_alias=10)
    sub = connect_raw(raw, b, "ta-sub", 5)
    sub.subscribe([("ta/#", 1)])
    pub = raw(b, 5)
    ca = pub.connect("ta-pub", version=5)
    assert ca.props.get(M.P_TOPIC_ALIAS_MAXIMUM, 0) >= 2, ca
    pub.publish("ta/one", b"1", qos=1, properties=[(M.P_TOPIC_ALIAS, 1)])
    pub.publish("", b"2", qos=1, properties=[(M.P_TOPIC_ALIAS, 1)])
    pub.publish("ta/two", b"3", qos=1, properties=[(M.P_TOPIC_ALIAS, 1)])  # remap
    pub.publish("", b"4", qos=1, properties=[(M.P_TOPIC_ALIAS, 1)])
    got = []
    for _ in range(4):
        p = sub.expect(M.PUBLISH)
        sub.ack(p)
        got.append((p.topic, p.payload))
        assert M.P_TOPIC_ALIAS not in p.props  # subscriber did not allow aliases
    assert got == [("ta/one", b"1"), ("ta/one", b"2"), ("ta/two", b"3"), ("ta/two", b"4")]


@pytest.mark.parametrize("alias,topic,code", [(0, "ta/x", (0x94, 0x82)), (11, "ta/x", (0x94,)),
                                               (None, "", (0x82,))],
                         ids=["zero", "above-max", "empty-topic-no-alias"])
def test_topic_alias_invalid(start_broker, raw, alias, topic, code):
    """MQTT-3.3.2-9 / 4.13: alias above the maximum -> DISCONNECT 0x94
    (Topic Alias invalid); alias 0 is not permitted (MQTT-3.3.2-8; 0x94 or
    Protocol Error 0x82); empty topic without alias is a Protocol Error (0x82)."""
    b = start_broker(max_topic_alias=10)
    r = connect_raw(raw, b, "bad-alias", 5)
    pr = [] if alias is None else [(M.P_TOPIC_ALIAS, alias)]
    r.send(M.publish(topic, b"x", qos=1, pid=1, version=5, properties=pr))
    seen = r.recv_until_closed()
    assert seen and seen[-1].type == M.DISCONNECT and seen[-1].rc in code, seen


def test_topic_alias_unknown(start_broker, raw):
    """Empty topic with an alias that was never set: Protocol Error."""
    b = start_broker(max_topic_alias=10)
    r = connect_raw(raw, b, "unk-alias", 5)
    r.send(M.publish("", b"x", qos=1, pid=1, version=5, properties=[(M.P_TOPIC_ALIAS, 3)]))
    seen = r.recv_until_closed()
    assert seen and seen[-1].type == M.DISCONNECT and seen[-1].rc in (0x82, 0x94), seen


def test_topic_alias_server_to_client(broker, raw):
    """3.3.2.3.4: with Topic Alias Maximum set by the client, the server may use
    aliases <= that maximum; every topic stays resolvable. ferromq uses them."""
    sub = raw(broker, 5)
    assert sub.connect("sa-sub", version=5, properties=[(M.P_TOPIC_ALIAS_MAXIMUM, 2)]).rc == 0
    sub.subscribe([("sa/#", 1)])
    pub = connect_raw(raw, broker, "sa-pub", 5)
    topics = ["sa/x", "sa/y", "sa/x", "sa/z", "sa/x", "sa/y", "sa/x", "sa/x"]
    for i, t in enumerate(topics):
        pub.publish(t, str(i).encode(), qos=1)
    resolved, used_alias = [], False
    for _ in topics:
        p = sub.expect(M.PUBLISH)
        sub.ack(p)
        alias = p.props.get(M.P_TOPIC_ALIAS)
        if alias is not None:
            assert 1 <= alias <= 2, p
            if not p.topic:
                used_alias = True
        else:
            assert p.topic, p  # MQTT-3.3.2-... empty topic needs an alias
        resolved.append((sub.resolve_topic(p), int(p.payload)))
    assert resolved == [(t, i) for i, t in enumerate(topics)]
    assert used_alias, "broker never sent an empty topic with an alias"


def test_no_server_alias_without_maximum(broker, raw):
    """MQTT-3.1.2-26/27: Topic Alias Maximum absent -> the server sends no alias."""
    sub = connect_raw(raw, broker, "na-sub", 5)
    sub.subscribe([("na/#", 0)])
    pub = connect_raw(raw, broker, "na-pub", 5)
    for _ in range(3):
        pub.publish("na/t", b"x", qos=0)
    for _ in range(3):
        p = sub.expect(M.PUBLISH)
        assert p.topic == "na/t" and M.P_TOPIC_ALIAS not in p.props, p


# ---------------------------------------------------------------- flow control

def test_client_receive_maximum_respected(broker, raw):
    """MQTT-3.3.4-9: the server sends no more unacknowledged QoS1/2 PUBLISH than
    the client's Receive Maximum."""
    sub = raw(broker, 5)
    assert sub.connect("rm-sub", version=5, properties=[(M.P_RECEIVE_MAXIMUM, 3)]).rc == 0
    sub.subscribe([("rm/t", 1)])
    pub = connect_raw(raw, broker, "rm-pub", 5)
    for i in range(10):
        pub.publish("rm/t", str(i).encode(), qos=1)
    first = [sub.expect(M.PUBLISH) for _ in range(3)]
    assert sub.quiet(0.5) == []
    got = list(first)
    inflight = list(first)
    while len(got) < 10:
        sub.ack(inflight.pop(0))
        p = sub.expect(M.PUBLISH)
        got.append(p)
        inflight.append(p)
        assert len(inflight) <= 3
    for p in inflight:
        sub.ack(p)
    assert [int(p.payload) for p in got] == list(range(10))


def test_broker_receive_maximum_exceeded(start_broker, raw):
    """MQTT-3.3.4-8 (5.0 3.3.4): more unacknowledged QoS 2 PUBLISH than the
    server's Receive Maximum -> DISCONNECT 0x93."""
    b = start_broker(receive_maximum=3)
    r = raw(b, 5)
    ca = r.connect("rm-over", version=5)
    assert ca.props.get(M.P_RECEIVE_MAXIMUM) == 3
    for pid in (1, 2, 3):
        r.send(M.publish("rmx/t", b"x", qos=2, pid=pid, version=5))
        assert r.expect(M.PUBREC).pid == pid
    r.send(M.publish("rmx/t", b"x", qos=2, pid=4, version=5))
    seen = r.recv_until_closed()
    assert seen and seen[-1].type == M.DISCONNECT and seen[-1].rc == 0x93, seen


def test_broker_receive_maximum_not_exceeded_when_completed(start_broker, raw):
    b = start_broker(receive_maximum=2)
    r = connect_raw(raw, b, "rm-ok", 5)
    for pid in range(1, 10):
        r.publish("rmo/t", b"x", qos=2, pid=pid)  # full flow each time
    r.send(M.pingreq())
    r.expect(M.PINGRESP)


# ---------------------------------------------------------------- packet size

def test_client_maximum_packet_size(broker, raw):
    """MQTT-3.1.2-25: the server MUST NOT send a packet larger than the client's
    Maximum Packet Size; it discards the message (3.1.2.11.4)."""
    sub = raw(broker, 5)
    assert sub.connect("mps-sub", version=5, properties=[(M.P_MAXIMUM_PACKET_SIZE, 200)]).rc == 0
    sub.subscribe([("mps/t", 1)])
    pub = connect_raw(raw, broker, "mps-pub", 5)
    pub.publish("mps/t", b"B" * 1000, qos=1)
    pub.publish("mps/t", b"small", qos=1)
    pub.publish("mps/t", b"b" * 300, qos=0)
    pub.publish("mps/t", b"end", qos=1)
    got = []
    while True:
        p = sub.expect(M.PUBLISH)
        sub.ack(p)
        got.append(p.payload)
        if p.payload == b"end":
            break
    assert got == [b"small", b"end"]


@pytest.mark.parametrize("proto", [4, 5], ids=["v311", "v5"])
def test_broker_max_packet_size(start_broker, raw, proto):
    """3.1.2.11.4 / 4.13: a packet larger than the server's maximum -> DISCONNECT
    0x95 (5.0); 3.1.1: the connection is closed."""
    b = start_broker(max_packet_size=1000)
    r = connect_raw(raw, b, "big", proto)
    r.send(M.publish("big/t", b"x" * 2000, qos=1, pid=1, version=proto))
    seen = r.recv_until_closed()
    if proto == 5:
        assert seen and seen[-1].type == M.DISCONNECT and seen[-1].rc == 0x95, seen
    else:
        assert seen == [], seen


# ---------------------------------------------------------------- expiry

def test_message_expiry_online_passed_through(broker, raw):
    sub = connect_raw(raw, broker, "mex-sub", 5)
    sub.subscribe([("mex/t", 1)])
    pub = connect_raw(raw, broker, "mex-pub", 5)
    pub.publish("mex/t", b"x", qos=1, properties=[(M.P_MESSAGE_EXPIRY, 60)])
    p = sub.expect(M.PUBLISH)
    assert 58 <= p.props.get(M.P_MESSAGE_EXPIRY, 0) <= 60, p


def test_message_expiry_decremented_and_dropped(broker, raw):
    """MQTT-3.3.2-5: expired messages are not delivered; MQTT-3.3.2-6: the
    interval sent is the received value minus the time waited."""
    sub = connect_raw(raw, broker, "mex2", 5, clean=False, properties=[(M.P_SESSION_EXPIRY, 300)])
    sub.subscribe([("mex2/t", 1)])
    sub.disconnect()
    pub = connect_raw(raw, broker, "mex2-pub", 5)
    pub.publish("mex2/t", b"long", qos=1, properties=[(M.P_MESSAGE_EXPIRY, 60)])
    pub.publish("mex2/t", b"short", qos=1, properties=[(M.P_MESSAGE_EXPIRY, 1)], pid=2)
    pub.publish("mex2/t", b"forever", qos=1, pid=3)
    time.sleep(2.5)  # the test is about time passing
    sub = raw(broker, 5)
    assert sub.connect("mex2", clean=False, properties=[(M.P_SESSION_EXPIRY, 300)]).session_present
    got = []
    for _ in range(2):
        p = sub.expect(M.PUBLISH)
        sub.ack(p)
        got.append(p)
    assert [p.payload for p in got] == [b"long", b"forever"]
    assert 50 <= got[0].props.get(M.P_MESSAGE_EXPIRY, 0) <= 58, got[0]
    assert M.P_MESSAGE_EXPIRY not in got[1].props
    assert sub.quiet(0.3) == []


# ---------------------------------------------------------------- subscription options

def test_subscription_identifiers(broker, raw):
    """3.8.2.1.2 / MQTT-3.3.4-3/4: matching Subscription Identifiers are sent."""
    sub = connect_raw(raw, broker, "sid", 5)
    sub.subscribe([("sid/#", 1)], pid=1, properties=[(M.P_SUBSCRIPTION_ID, 42)])
    sub.subscribe([("sid/a", 1)], pid=2, properties=[(M.P_SUBSCRIPTION_ID, 268435455)])
    sub.subscribe([("sid/+", 1)], pid=3)  # no identifier
    pub = connect_raw(raw, broker, "sid-pub", 5)
    pub.publish("sid/a", b"a", qos=1)
    pub.publish("sid/b", b"b", qos=1)
    pub.publish("sid/b/c", b"c", qos=1)
    got = {}
    for _ in range(3):
        p = sub.expect(M.PUBLISH)
        sub.ack(p)
        got[p.payload] = sorted(p.props.get(M.P_SUBSCRIPTION_ID, []))
    assert got == {b"a": [42, 268435455], b"b": [42], b"c": [42]}


def test_subscription_identifier_zero_is_protocol_error(broker, raw):
    """3.8.2.1.2: a Subscription Identifier of 0 is a Protocol Error."""
    r = connect_raw(raw, broker, "sid0", 5)
    r.send(M.subscribe(1, [("x", 0)], 5, [(M.P_SUBSCRIPTION_ID, 0)]))
    seen = r.recv_until_closed()
    assert seen and seen[-1].type == M.DISCONNECT and seen[-1].rc in (0x81, 0x82), seen


def test_no_local(broker, raw):
    """MQTT-3.8.3-3: No Local -> own publications are not sent back."""
    me = connect_raw(raw, broker, "nl", 5)
    me.subscribe([("nl/t", M.sub_opts(1, no_local=True))])
    other = connect_raw(raw, broker, "nl-other", 5)
    me.publish("nl/t", b"mine", qos=1)
    other.publish("nl/t", b"theirs", qos=1)
    p = me.expect(M.PUBLISH)
    me.ack(p)
    assert p.payload == b"theirs"
    assert me.quiet(0.3) == []


def test_without_no_local_gets_own(broker, raw):
    me = connect_raw(raw, broker, "nl2", 5)
    me.subscribe([("nl2/t", 1)])
    me.send(M.publish("nl2/t", b"mine", qos=1, pid=1, version=5))
    kinds = sorted(me.recv().type for _ in range(2))
    assert kinds == [M.PUBLISH, M.PUBACK]


# ---------------------------------------------------------------- pass-through

def test_properties_passed_through(broker, client):
    """MQTT-3.3.2-4 (payload format), 3.3.2.3.5-9 (response topic, correlation,
    user properties in order MQTT-3.3.2-18, content type) are forwarded unaltered."""
    sub = client(broker, "pt-sub", 5)
    sub.subscribe("pt/t", 1)
    pub = client(broker, "pt-pub", 5)
    pp = props(PacketTypes.PUBLISH, PayloadFormatIndicator=1, ContentType="application/json",
               ResponseTopic="pt/reply", CorrelationData=b"\x00corr\xff",
               UserProperty=[("b", "2"), ("a", "1"), ("a", "0")])
    pub.publish("pt/t", b'{"k": 1}', 1, properties=pp)
    m = sub.messages.wait_for(1)[0]
    p = m.properties
    assert p.PayloadFormatIndicator == 1
    assert p.ContentType == "application/json"
    assert p.ResponseTopic == "pt/reply"
    assert p.CorrelationData == b"\x00corr\xff"
    assert p.UserProperty == [("b", "2"), ("a", "1"), ("a", "0")]


def test_request_response_round_trip(broker, client):
    """Response Topic + Correlation Data make a request/response exchange."""
    responder = client(broker, "resp", 5)
    requester = client(broker, "req", 5)
    requester.subscribe("rr/reply", 1)
    responder.subscribe("rr/request", 1)
    requester.publish("rr/request", b"ping", 1,
                      properties=props(PacketTypes.PUBLISH, ResponseTopic="rr/reply",
                                       CorrelationData=b"id-7"))
    req = responder.messages.wait_for(1)[0]
    responder.publish(req.properties.ResponseTopic, b"pong", 1,
                      properties=props(PacketTypes.PUBLISH,
                                       CorrelationData=req.properties.CorrelationData))
    rep = requester.messages.wait_for(1)[0]
    assert rep.payload == b"pong" and rep.properties.CorrelationData == b"id-7"


def test_server_aliases_reset_on_reconnect(broker, raw):
    """3.3.2.3.4: Topic Alias mappings exist only within one Network Connection;
    after a reconnect the server must send the topic name again (MQTT-3.3.2-7)."""
    kw = dict(clean=False, properties=[(M.P_SESSION_EXPIRY, 60), (M.P_TOPIC_ALIAS_MAXIMUM, 5)])
    sub = raw(broker, 5)
    assert sub.connect("alias-rc", **kw).rc == 0
    sub.subscribe([("ar/#", 1)])
    pub = connect_raw(raw, broker, "alias-rc-pub", 5)
    for i in range(3):
        pub.publish("ar/t", b"%d" % i, qos=1, pid=i + 1)
    for _ in range(3):
        p = sub.expect(M.PUBLISH)
        sub.ack(p)
        sub.resolve_topic(p)
    sub.disconnect()
    sub = raw(broker, 5)
    assert sub.connect("alias-rc", **kw).session_present
    pub.publish("ar/t", b"after", qos=1, pid=9)
    p = sub.expect(M.PUBLISH)
    assert p.topic == "ar/t", "first PUBLISH on a new connection must carry the topic: %r" % p


def test_client_aliases_reset_on_reconnect(start_broker, raw):
    b = start_broker(max_topic_alias=10)
    r = connect_raw(raw, b, "calias", 5)
    r.publish("ca/t", b"1", qos=1, properties=[(M.P_TOPIC_ALIAS, 1)])
    r.disconnect()
    r = connect_raw(raw, b, "calias", 5)
    r.send(M.publish("", b"2", qos=1, pid=2, version=5, properties=[(M.P_TOPIC_ALIAS, 1)]))
    seen = r.recv_until_closed()
    assert seen and seen[-1].type == M.DISCONNECT and seen[-1].rc in (0x82, 0x94), seen


def test_subscription_id_on_retained(broker, raw):
    """MQTT-3.3.4-3: retained messages sent on subscribe carry the Subscription Identifier."""
    pub = connect_raw(raw, broker, "sidr-pub", 5)
    pub.publish("sidr/t", b"r", qos=1, retain=True)
    sub = connect_raw(raw, broker, "sidr", 5)
    sub.subscribe([("sidr/#", 1)], properties=[(M.P_SUBSCRIPTION_ID, 77)])
    p = sub.expect(M.PUBLISH)
    assert p.retain and p.props.get(M.P_SUBSCRIPTION_ID) == [77], p


def test_subscription_id_on_queued_message(broker, raw):
    """Subscription Identifiers survive the offline queue."""
    kw = dict(clean=False, properties=[(M.P_SESSION_EXPIRY, 60)])
    sub = connect_raw(raw, broker, "sidq", 5, **kw)
    sub.subscribe([("sidq/#", 1)], properties=[(M.P_SUBSCRIPTION_ID, 5)])
    sub.disconnect()
    pub = connect_raw(raw, broker, "sidq-pub", 5)
    pub.publish("sidq/t", b"q", qos=1)
    sub = raw(broker, 5)
    assert sub.connect("sidq", **kw).session_present
    p = sub.expect(M.PUBLISH)
    assert p.props.get(M.P_SUBSCRIPTION_ID) == [5], p


def test_user_properties_on_queued_message(broker, raw):
    kw = dict(clean=False, properties=[(M.P_SESSION_EXPIRY, 60)])
    sub = connect_raw(raw, broker, "upq", 5, **kw)
    sub.subscribe([("upq/#", 1)])
    sub.disconnect()
    pub = connect_raw(raw, broker, "upq-pub", 5)
    up = [(M.P_USER_PROPERTY, ("z", "1")), (M.P_USER_PROPERTY, ("a", "2")),
          (M.P_CONTENT_TYPE, "ct"), (M.P_CORRELATION_DATA, b"\x00\x01")]
    pub.publish("upq/t", b"q", qos=1, properties=up)
    sub = raw(broker, 5)
    assert sub.connect("upq", **kw).session_present
    p = sub.expect(M.PUBLISH)
    assert p.props.get(M.P_USER_PROPERTY) == [("z", "1"), ("a", "2")], p
    assert p.props.get(M.P_CONTENT_TYPE) == "ct" and p.props.get(M.P_CORRELATION_DATA) == b"\x00\x01"


def test_connect_packet_too_large(start_broker, raw):
    """A CONNECT larger than max_packet_size: CONNACK 0x95 may be sent, then close."""
    b = start_broker(max_packet_size=200)
    r = raw(b, 5)
    r.send(M.connect("big-connect", version=5, properties=[(M.P_USER_PROPERTY, ("k", "v" * 500))]))
    seen = r.recv_until_closed()
    for p in seen:
        assert p.type == M.CONNACK and p.rc == 0x95, seen
