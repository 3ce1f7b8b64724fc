"""/metrics: valid Prometheus text format 0.0.4 (checked line by line against
its grammar, since promtool is not packaged), and counters that follow real
traffic."""
import re

from conftest import wait_for
from opshttp import api, metrics, ops_broker, request

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
VALUE = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+)|[+-]?Inf|NaN)"
SAMPLE = re.compile(r"^(%s)(\{(?:%s(?:,%s)*,?)?\})? (%s)(?: -?[0-9]+)?$" % (NAME, LABEL, LABEL, VALUE))
HELP = re.compile(r"^# HELP (%s) (.*)$" % NAME)
TYPE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % NAME)


def check_exposition(text):
    """Asserts the text follows the 0.0.4 grammar and the naming rules:
    one HELP and TYPE per family, before its samples, samples of a family
    together, counters named *_total, no series twice, ferromq_ prefix."""
    assert text.endswith("\n")
    types, helps, seen_series, finished = {}, set(), set(), set()
    current = None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (n, line)
        if line.startswith("# HELP "):
            m = HELP.match(line)
            assert m, where
            assert m.group(1) not in helps, "second HELP, " + where
            helps.add(m.group(1))
            continue
        if line.startswith("# TYPE "):
            m = TYPE.match(line)
            assert m, where
            name = m.group(1)
            assert name not in types, "second TYPE, " + where
            types[name] = m.group(2)
            if current:
                finished.add(current)
            current = name
            continue
        assert not line.startswith("#") and line.strip(), where
        m = SAMPLE.match(line)
        assert m, "not a sample, " + where
        name = m.group(1)
        assert name == current, "sample outside its family's block, " + where
        assert name not in finished, where
        series = name + (m.group(2) or "")
        assert series not in seen_series, "series twice, " + where
        seen_series.add(series)
    for name, kind in types.items():
        assert name.startswith("ferromq_"), name
        assert (kind == "counter") == name.endswith("_total"), "%s is a %s" % (name, kind)
        assert name in helps, "no HELP for " + name
    return types


def test_exposition_is_valid(start_broker, tmp_path, client):
    b = ops_broker(start_broker, tmp_path)
    c = client(b, "metrics-valid", protocol=5)
    c.subscribe("m/#", qos=1)
    c.publish("m/x", b"v", qos=1)
    status, hdrs, body = request(b, "GET", "/metrics", token=b.token)
    assert status == 200
    assert hdrs["content-type"].startswith("text/plain; version=0.0.4")
    types = check_exposition(body.decode())
    for family in ("ferromq_messages_received_total", "ferromq_dropped_messages_total",
                   "ferromq_messages_received_per_second", "ferromq_alert_firing",
                   "ferromq_listener_connections", "ferromq_worker_messages_sent_total",
                   "ferromq_heap_bytes", "ferromq_store_bytes", "ferromq_uptime_seconds"):
        assert family in types, family
    key = 'ferromq_listener_connections{listener="%d"}' % b.port
    m = wait_for(lambda: (lambda m: m if m[key] >= 1 else None)(metrics(b)), what="a sample with the client")
    assert 'ferromq_dropped_messages_total{reason="queue_full"}' in m
    assert m['ferromq_build_info{version="0.1.0"}'] == 1


def test_validator_rejects_bad_text():
    bad = ["ferromq_x 1\n",  # no TYPE
           "# TYPE ferromq_x counter\n# HELP ferromq_x h\nferromq_x 1\n",  # counter without _total
           "# HELP ferromq_y_total h\n# TYPE ferromq_y_total counter\nferromq_y_total{a=\"1\" 2\n",
           "# HELP ferromq_z h\n# TYPE ferromq_z gauge\nferromq_z one\n",
           "# HELP ferromq_z h\n# TYPE ferromq_z gauge\nferromq_z 1\nferromq_z 2\n"]
    for text in bad:
        try:
            check_exposition(text)
        except AssertionError:
            continue
        raise AssertionError("accepted: %r" % text)


def test_counters_follow_traffic(start_broker, tmp_path, client):
    b = ops_broker(start_broker, tmp_path)
    sub = client(b, "metrics-sub", protocol=4)
    sub.subscribe("count/#", qos=0)
    before = metrics(b)
    pub = client(b, "metrics-pub", protocol=4)
    n = 40
    for i in range(n):
        pub.publish("count/%d" % i, b"x" * 10)
    sub.messages.wait_for(n)
    key_rx, key_tx = "ferromq_messages_received_total", "ferromq_messages_sent_total"
    after = wait_for(lambda: (lambda m: m if m[key_rx] - before[key_rx] >= n
                              and m[key_tx] - before[key_tx] >= n else None)(metrics(b)),
                     timeout=5, what="counters to move")
    assert after[key_rx] - before[key_rx] == n
    assert after[key_tx] - before[key_tx] == n
    assert after["ferromq_bytes_received_total"] - before["ferromq_bytes_received_total"] >= n * 10
    assert after["ferromq_clients_connected"] == 2
    assert after["ferromq_clients_total"] >= 2
    status = api(b, "GET", "/api/status")
    assert status["metrics"]["messages_received"] >= n
    wait_for(lambda: api(b, "GET", "/api/status")["rates"]["messages_received"]["1m"] > 0,
             what="the 1-minute rate to move")


def test_takeover_and_offline_sessions_counted(start_broker, tmp_path, client):
    b = ops_broker(start_broker, tmp_path)
    first = client(b, "metrics-twice", protocol=4, clean=False)
    first.subscribe("t/#", qos=1)
    client(b, "metrics-twice", protocol=4, clean=False)  # takes the session over
    first.disconnected.wait(5)
    gone = client(b, "metrics-offline", protocol=4, clean=False)
    gone.disconnect()
    m = wait_for(lambda: (lambda m: m if m["ferromq_clients_connected"] == 1
                          and m["ferromq_clients_disconnected"] == 1 else None)(metrics(b)),
                 what="one connected, one offline session")
    assert m["ferromq_clients_maximum"] >= 2
    assert m["ferromq_subscriptions"] == 1
