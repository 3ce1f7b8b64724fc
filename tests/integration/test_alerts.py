"""Alert rules: each one driven into alarm and back out, seen on
$SYS/broker/alerts/<name>, in /metrics, in /api/status and in the log."""
import json
import time

from conftest import wait_for
from opshttp import api, metrics, ops_broker


def alert_watcher(client, b, name):
    w = client(b, "alert-watch-" + name, protocol=4)
    w.subscribe("$SYS/broker/alerts/" + name)
    return w


def wait_alert(b, watcher, name, state, timeout=15, change=True):
    """Waits for the $SYS message, then checks /metrics and /api/status agree
    and, for a change of state, the log."""
    msg = watcher.messages.wait_match(
        lambda m: json.loads(m.payload)["state"] == state, timeout=timeout)
    body = json.loads(msg.payload)
    assert set(body) == {"state", "value", "threshold", "since"}
    firing = 1.0 if state == "firing" else 0.0
    wait_for(lambda: metrics(b)['ferromq_alert_firing{name="%s"}' % name] == firing,
             what="/metrics for %s" % name)
    status = {a["name"]: a for a in api(b, "GET", "/api/status")["alerts"]}
    assert status[name]["state"] == state
    if state == "firing":
        assert body["since"] is not None and body["value"] > body["threshold"]
        b.wait_log(r"warning: alert %s firing: value [\d.]+ above threshold" % name)
    elif change:
        assert body["since"] is not None
        b.wait_log(r"notice: alert %s cleared" % name)
    else:
        assert body["since"] is None
    watcher.messages.clear()
    return body


def test_clients_drop(start_broker, tmp_path, client):
    b = ops_broker(start_broker, tmp_path, alert_clients_drop_percent=20, alert_clients_drop_window=3)
    w = alert_watcher(client, b, "clients_drop")
    wait_alert(b, w, "clients_drop", "ok", change=False)
    devices = [client(b, "dev-%d" % i, protocol=4) for i in range(5)]
    time.sleep(1.5)  # a sample with all six connected
    for d in devices[:3]:
        d.disconnect()
    body = wait_alert(b, w, "clients_drop", "firing")
    assert body["threshold"] == 20 and body["value"] >= 49
    # The peak leaves the window: the lower count is normal now.
    wait_alert(b, w, "clients_drop", "ok", timeout=10)


def test_message_rate_drop(start_broker, tmp_path, client):
    b = ops_broker(start_broker, tmp_path, alert_rate_window=2, alert_rate_baseline=8,
                   alert_rate_drop_percent=50)
    w = alert_watcher(client, b, "message_rate_drop")
    wait_alert(b, w, "message_rate_drop", "ok", change=False)
    pub = client(b, "rate-pub", protocol=4)

    def publish_for(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pub.publish("rate/x", b"1")
            time.sleep(0.01)

    publish_for(6)
    body = wait_alert(b, w, "message_rate_drop", "firing", timeout=8)
    assert body["threshold"] == 50
    publish_for(4)
    wait_alert(b, w, "message_rate_drop", "ok", timeout=1)


def test_memory(start_broker, tmp_path, client):
    b = ops_broker(start_broker, tmp_path, memory_limit="1k")
    w = alert_watcher(client, b, "memory")
    body = wait_alert(b, w, "memory", "firing")
    assert body["threshold"] == 80 and body["value"] > 80
    # Raise the limit in the file and reload.
    with open(b.conf) as f:
        conf = f.read().replace("memory_limit 1k", "memory_limit 64G")
    with open(b.conf, "w") as f:
        f.write(conf)
    assert api(b, "POST", "/api/reload") == {"reloaded": True, "errors": []}
    body = wait_alert(b, w, "memory", "ok")
    assert body["value"] < 1


def test_subscription_leak(start_broker, tmp_path, client):
    b = ops_broker(start_broker, tmp_path, alert_subscriptions_window=3,
                   alert_subscriptions_growth_percent=50)
    w = alert_watcher(client, b, "subscription_leak")
    wait_alert(b, w, "subscription_leak", "ok", change=False)
    leaky = client(b, "leaky", protocol=4)
    time.sleep(2)
    for i in range(20):
        leaky.subscribe("leak/%d/#" % i)
    body = wait_alert(b, w, "subscription_leak", "firing")
    assert body["value"] > 50
    wait_alert(b, w, "subscription_leak", "ok", timeout=10)
