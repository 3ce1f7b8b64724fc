"""ferromq-ctl against a live broker's HTTP API, with real paho clients:
every command as a table and as --json, kick and delete-session acting on
real sessions, and the errors a person meets (no or wrong credentials, an
unknown client, no broker at the URL) with their exit codes."""
import json
import os
import re
import subprocess
import urllib.request

import pytest

from conftest import REPO, free_port, props, wait_for
from paho.mqtt.packettypes import PacketTypes

CTL = os.environ.get("FERROMQ_CTL") or os.path.join(REPO, "build", "ferromq-ctl")
PASSWD = os.environ.get("FERROMQ_PASSWD") or os.path.join(REPO, "build", "ferromq-passwd")


@pytest.fixture
def api_broker(start_broker, tmp_path):
    """Factory: a broker with an http_listener; .url, .token, .token_file."""
    def make(extra_lines=(), **options):
        http_port = free_port()
        token_file = tmp_path / ("http%d.token" % http_port)
        b = start_broker(extra_lines=["http_listener %d 127.0.0.1" % http_port,
                                      "http_token_file %s" % token_file] + list(extra_lines),
                         **options)
        b.url = "http://127.0.0.1:%d" % http_port
        b.token_file = str(token_file)
        b.token = wait_for(lambda: token_file.exists() and token_file.read_text().strip(),
                           what="the broker to write its token file")
        wait_for(lambda: healthy(b.url), what="GET /healthz")
        return b
    return make


def healthy(url):
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def ctl(b, *args, auth=True, env=None):
    """Runs ferromq-ctl against b (with its token unless auth=False)."""
    if not os.path.exists(CTL):
        pytest.fail("%s does not exist (set FERROMQ_CTL)" % CTL)
    cmd = [CTL, "--url", b.url if hasattr(b, "url") else b]
    if auth:
        cmd += ["--token-file", b.token_file]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FERROMQ_")}
    full_env.update(env or {})
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=30, env=full_env)


def ok_json(b, *args):
    r = ctl(b, "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def table(text):
    """Titles and rows (dicts) of a table printed by ferromq-ctl, checking
    that it lines up: each cell starts where its column's title starts
    (left-aligned) or ends where it ends (right-aligned). Cells are split on
    runs of two or more blanks, so they must not contain such runs."""
    lines = text.rstrip("\n").split("\n")
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+(?: \S+)*", lines[0])]
    titles = [lines[0][a:z] for a, z in spans]
    rows = []
    for line in lines[1:]:
        assert line == line.rstrip(), "trailing blanks in %r" % line
        cells = re.split(r" {2,}", line.strip())
        assert len(cells) == len(titles), "cells %r for titles %r" % (cells, titles)
        for (a, z), title, cell in zip(spans, titles, cells):
            assert line.startswith(cell, a) or line[z - len(cell):z] == cell, \
                "column %s is not aligned:\n%s\n%s" % (title, lines[0], line)
        rows.append(dict(zip(titles, cells)))
    return titles, rows


def test_status(api_broker, client):
    b = api_broker()
    a = client(b, "status-a", protocol=5)
    c = client(b, "status-b")
    c.subscribe("s/#", 1)
    for i in range(5):
        a.publish("s/%d" % i, b"x" * 10, qos=1)
    c.messages.wait_for(5)
    st = wait_for(lambda: (lambda s: s if s["metrics"]["messages_received"] >= 5 else None)(
        ok_json(b, "status")), what="5 messages in the status")
    assert st["metrics"]["clients_connected"] == 2
    assert set(st["rates"]) >= {"messages_received", "messages_sent", "bytes_received", "bytes_sent"}
    assert isinstance(st["alerts"], list) and isinstance(st["top_queues"], list)
    r = ctl(b, "status")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^version\s+%s$" % re.escape(st["version"]), r.stdout, re.M), r.stdout
    assert re.search(r"^clients connected\s+2$", r.stdout, re.M), r.stdout
    assert re.search(r"^store\s+\S+", r.stdout, re.M), r.stdout
    # The rates block is a table of its own: RATE /s, NOW, 1M, 5M, 15M.
    block = r.stdout.split("\n\n")[1]
    titles, rows = table(block)
    assert titles == ["RATE /s", "NOW", "1M", "5M", "15M"]
    assert {row["RATE /s"] for row in rows} >= {"messages_received", "messages_sent"}


def test_clients(api_broker, client):
    b = api_broker()
    client(b, "gw-7", protocol=5, keepalive=30)
    client(b, "historian-with-a-long-client-id", protocol=4, keepalive=45)
    r = ctl(b, "clients")
    assert r.returncode == 0, r.stderr
    titles, rows = table(r.stdout)
    assert titles[:3] == ["CLIENT ID", "ADDRESS", "PROTOCOL"]
    byid = {row["CLIENT ID"]: row for row in rows}
    assert set(byid) == {"gw-7", "historian-with-a-long-client-id"}
    assert byid["gw-7"]["PROTOCOL"] == "mqttv5" and byid["gw-7"]["KEEPALIVE"] == "30"
    assert byid["historian-with-a-long-client-id"]["PROTOCOL"] == "mqttv311"
    assert byid["gw-7"]["ADDRESS"].startswith("127.0.0.1:")
    js = {c["client_id"]: c for c in ok_json(b, "clients")}
    assert js["historian-with-a-long-client-id"]["keepalive"] == 45
    assert js["gw-7"]["protocol"] == "mqttv5"


def test_sessions_subscriptions_retained(api_broker, client):
    b = api_broker()
    hist = client(b, "hist", protocol=5, clean=False,
                  properties=props(PacketTypes.CONNECT, SessionExpiryInterval=3600))
    hist.subscribe("plant/#", 1)
    hist.disconnect()
    pub = client(b, "pub")
    for i in range(3):
        pub.publish("plant/t%d" % i, b"%d" % i, qos=1)
    pub.publish("plant/state", b"running", qos=1, retain=True)

    sess = wait_for(lambda: [s for s in ok_json(b, "sessions") if s["client_id"] == "hist" and s["queued"] == 4],
                    what="4 messages queued for hist")[0]
    assert sess["connected"] is False and sess["subscriptions"] == 1
    assert sess["expiry_interval"] == 3600 and sess["queued_bytes"] > 0
    r = ctl(b, "sessions")
    assert r.returncode == 0, r.stderr
    titles, rows = table(r.stdout)
    row = [x for x in rows if x["CLIENT ID"] == "hist"][0]
    assert row["CONNECTED"] == "no" and row["QUEUED"] == "4" and row["EXPIRY"] == "1h00m"

    subs = ok_json(b, "subscriptions")
    assert {"client_id": "hist", "filter": "plant/#", "qos": 1} in \
        [{k: s[k] for k in ("client_id", "filter", "qos")} for s in subs]
    r = ctl(b, "subscriptions")
    assert r.returncode == 0, r.stderr
    _, rows = table(r.stdout)
    assert any(x["FILTER"] == "plant/#" and x["QOS"] == "1" for x in rows), r.stdout

    # The broker's own $SYS topics are retained too.
    ret = [x for x in ok_json(b, "retained") if not x["topic"].startswith("$SYS/")]
    assert [(x["topic"], x["bytes"], x["qos"]) for x in ret] == [("plant/state", 7, 1)]
    r = ctl(b, "retained")
    assert r.returncode == 0, r.stderr
    assert {"TOPIC": "plant/state", "BYTES": "7", "QOS": "1"} in table(r.stdout)[1], r.stdout


def test_kick(api_broker, client):
    b = api_broker()
    victim = client(b, "line 3/gw%1", protocol=5)  # needs percent-encoding in the path
    other = client(b, "bystander")
    r = ctl(b, "kick", "line 3/gw%1")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "kicked line 3/gw%1\n"
    assert victim.disconnected.wait(5), "the kicked client is still connected"
    assert not other.disconnected.is_set()
    wait_for(lambda: [c["client_id"] for c in ok_json(b, "clients")] == ["bystander"],
             what="only the bystander listed")
    r = ctl(b, "kick", "line 3/gw%1")
    assert r.returncode == 1
    assert 'no connected client "line 3/gw%1"' in r.stderr, r.stderr


def test_delete_session(api_broker, client):
    b = api_broker()
    c = client(b, "old-gw", protocol=5, clean=False,
               properties=props(PacketTypes.CONNECT, SessionExpiryInterval=600))
    c.subscribe("x/#", 1)
    c.disconnect()
    assert "old-gw" in [s["client_id"] for s in ok_json(b, "sessions")]
    r = ctl(b, "delete-session", "old-gw")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "deleted session old-gw\n"
    assert "old-gw" not in [s["client_id"] for s in ok_json(b, "sessions")]
    assert "old-gw" not in [s["client_id"] for s in ok_json(b, "subscriptions")]
    r = ctl(b, "delete-session", "old-gw")
    assert r.returncode == 1 and 'no session "old-gw"' in r.stderr, r.stderr
    # --json passes the broker's error answer through, with the same exit code.
    r = ctl(b, "--json", "delete-session", "old-gw")
    assert r.returncode == 1 and "error" in json.loads(r.stdout)


def test_reload(api_broker):
    b = api_broker()
    r = ctl(b, "reload")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "reloaded\n"
    assert ok_json(b, "reload") == {"reloaded": True, "errors": []}


def test_credentials(api_broker, tmp_path):
    passwd = tmp_path / "passwd"
    subprocess.run([PASSWD, "-c", "-b", str(passwd), "operator", "op-secret"], check=True,
                   capture_output=True, timeout=30)
    subprocess.run([PASSWD, "-b", str(passwd), "gw-17", "gw-secret"], check=True, capture_output=True, timeout=30)
    b = api_broker(password_file=str(passwd), allow_anonymous=True, http_admin_users="operator")
    # A device's login is good for MQTT, not for the API: 403, and why.
    r = ctl(b, "--user", "gw-17", "--password", "gw-secret", "status", auth=False)
    assert r.returncode == 1, r.stderr
    assert 'forbade user "gw-17" (HTTP 403): this user has no HTTP API grant' in r.stderr, r.stderr
    assert "http_admin_users" in r.stderr, r.stderr
    r = ctl(b, "status", auth=False)
    assert r.returncode == 1
    assert "wants a credential (HTTP 401)" in r.stderr and "--token-file" in r.stderr, r.stderr
    r = ctl(b, "--token", "0" * 64, "status", auth=False)
    assert r.returncode == 1 and "refused the token (HTTP 401)" in r.stderr, r.stderr
    r = ctl(b, "--user", "operator", "--password", "wrong", "status", auth=False)
    assert r.returncode == 1 and 'refused user "operator"' in r.stderr, r.stderr
    r = ctl(b, "--user", "operator", "--password", "op-secret", "--json", "status", auth=False)
    assert r.returncode == 0 and "metrics" in json.loads(r.stdout), r.stderr
    r = ctl(b, "--token", b.token, "--json", "status", auth=False)
    assert r.returncode == 0, r.stderr
    # The environment is the fallback for both the URL and the token.
    r = subprocess.run([CTL, "--json", "status"], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, FERROMQ_URL=b.url, FERROMQ_TOKEN=b.token))
    assert r.returncode == 0 and "metrics" in json.loads(r.stdout), r.stderr


def test_no_broker_and_bad_usage():
    url = "http://127.0.0.1:%d" % free_port()
    r = ctl(url, "status", auth=False)
    assert r.returncode == 2
    assert url in r.stderr and "Connection refused" in r.stderr, r.stderr
    r = subprocess.run([CTL, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    for word in ("status", "clients", "sessions", "subscriptions", "retained", "kick",
                 "delete-session", "reload", "--json", "--token-file", "--user", "FERROMQ_URL",
                 "FERROMQ_TOKEN", "Exit codes"):
        assert word in r.stdout, word
    for args, msg in ((["frobnicate"], 'unknown command "frobnicate"'), (["kick"], "kick needs a CLIENT_ID"),
                      (["--url", "https://127.0.0.1:1", "status"], "https is not supported"),
                      (["--user", "u", "status"], "--user and --password go together")):
        r = subprocess.run([CTL] + args, capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)
