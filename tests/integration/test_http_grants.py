"""HTTP API grants (issue 11 #11): a user of password_file may use the API
only when http_admin_users (everything) or http_readonly_users (GET and
HEAD) names it; device logins get 403. The token stays an admin. Real MQTT
clients are kicked or left alone; ferromq-ctl says why it was refused.
SIGHUP and POST /api/reload reread both lists."""
import http.client
import json
import os
import signal
import subprocess

import mqttraw as M
from conftest import REPO, connect_raw
from opshttp import api, ops_broker, request

PASSWD = os.environ.get("FERROMQ_PASSWD") or os.path.join(REPO, "build", "ferromq-passwd")
CTL = os.environ.get("FERROMQ_CTL") or os.path.join(REPO, "build", "ferromq-ctl")
USERS = {"operator": "op-pw", "viewer": "view-pw", "gw-17": "gw-pw", "both": "both-pw"}


def passwd_file(tmp_path):
    pw = tmp_path / "passwd"
    for i, (user, secret) in enumerate(USERS.items()):
        subprocess.run([PASSWD] + (["-c"] if i == 0 else []) + ["-b", str(pw), user, secret],
                       check=True, capture_output=True, timeout=30)
    return str(pw)


def as_user(b, user, method, path):
    return request(b, method, path, basic=(user, USERS[user]))


def ctl(b, user, *args):
    return subprocess.run([CTL, "--url", "http://127.0.0.1:%d" % b.http_port, "--user", user,
                           "--password", USERS[user]] + list(args), capture_output=True, text=True, timeout=30)


def test_grants(start_broker, tmp_path, raw):
    b = ops_broker(start_broker, tmp_path, password_file=passwd_file(tmp_path),
                   http_admin_users="operator, both", http_readonly_users="viewer both")
    gw = connect_raw(raw, b, "gw-17", 5, username="gw-17", password=USERS["gw-17"])
    # A device's login: good for MQTT, nothing in the API, reads included.
    for method, path in (("GET", "/api/status"), ("GET", "/api/clients"), ("GET", "/metrics"), ("GET", "/"),
                         ("HEAD", "/api/sessions"), ("POST", "/api/clients/gw-17/kick"),
                         ("DELETE", "/api/sessions/gw-17"), ("POST", "/api/reload")):
        status, _, body = as_user(b, "gw-17", method, path)
        assert status == 403, (method, path, status)
        assert method == "HEAD" or b"no HTTP API grant" in body, body
    b.wait_log(r"http 127\.0\.0\.1: user gw-17 of password_file has no HTTP API grant \(http_admin_users, "
               r"http_readonly_users\): POST /api/clients/gw-17/kick refused \(403\)")
    assert request(b, "GET", "/api/status", basic=("gw-17", "wrong"))[0] == 401
    # Read-only: every read, no change.
    for path in ("/api/status", "/api/clients", "/api/sessions", "/api/subscriptions", "/metrics", "/"):
        assert as_user(b, "viewer", "GET", path)[0] == 200, path
    assert as_user(b, "viewer", "HEAD", "/api/clients")[0] == 200
    for method, path in (("POST", "/api/clients/gw-17/kick"), ("DELETE", "/api/sessions/gw-17"),
                         ("POST", "/api/reload")):
        status, _, body = as_user(b, "viewer", method, path)
        assert status == 403 and b"may only read" in body, (method, path, status, body)
    b.wait_log(r"user viewer is read-only \(http_readonly_users\): DELETE /api/sessions/gw-17 refused \(403\)")
    assert "reload done" not in b.log_text()
    gw.send(M.pingreq())
    gw.expect(M.PINGRESP)  # neither kicked nor deleted
    r = ctl(b, "viewer", "clients")
    assert r.returncode == 0 and "gw-17" in r.stdout, r.stderr
    r = ctl(b, "viewer", "kick", "gw-17")
    assert r.returncode == 1 and 'forbade user "viewer" (HTTP 403): this user may only read' in r.stderr, r.stderr
    # Admin (in both lists: admin wins): changes work, on a real client.
    assert as_user(b, "both", "POST", "/api/reload")[0] == 200
    r = ctl(b, "operator", "kick", "gw-17")
    assert r.returncode == 0 and r.stdout == "kicked gw-17\n", r.stderr
    d = gw.expect(M.DISCONNECT)
    assert d.rc == 0x98
    # The token may still do everything.
    assert api(b, "POST", "/api/reload") == {"reloaded": True, "errors": []}


def test_upgrade_without_grants(start_broker, tmp_path):
    """A configuration from before the grants (password_file users were all
    admins): the broker starts, says at start-up that nobody of the password
    file may use the API, answers 403 with the reason, and the token works."""
    b = ops_broker(start_broker, tmp_path, password_file=passwd_file(tmp_path))
    b.wait_log(r"http_listener: no user of password_file may use the HTTP API \(they get 403\), since devices "
               r"log in with the same file; grant people with http_admin_users or http_readonly_users; the "
               r"http_token_file token works")
    status, _, body = as_user(b, "operator", "GET", "/api/status")
    assert status == 403 and b"add it to http_admin_users or http_readonly_users" in body, body
    r = ctl(b, "operator", "status")
    assert r.returncode == 1 and "no HTTP API grant" in r.stderr, r.stderr
    assert api(b, "POST", "/api/reload") == {"reloaded": True, "errors": []}


def test_grants_without_password_file(start_broker, tmp_path):
    b = ops_broker(start_broker, tmp_path, http_admin_users="operator")
    b.wait_log(r"http_listener: http_admin_users and http_readonly_users name users of password_file, and "
               r"there is none")
    assert as_user(b, "operator", "GET", "/api/status")[0] == 401


def set_grants(b, admin=None, readonly=None, extra=()):
    """Rewrites the broker's configuration file as it was at start, with these
    grant lists (None: the line is left out) and extra lines."""
    if not hasattr(b, "start_conf"):
        with open(b.conf) as f:
            b.start_conf = f.read().splitlines()
    lines = [line for line in b.start_conf if not line.startswith(("http_admin_users ", "http_readonly_users "))]
    if admin is not None:
        lines.append("http_admin_users " + admin)
    if readonly is not None:
        lines.append("http_readonly_users " + readonly)
    with open(b.conf, "w") as f:
        f.write("\n".join(lines + list(extra)) + "\n")


def test_grants_reload(start_broker, tmp_path):
    """SIGHUP and POST /api/reload reread both lists, log what changed, and a
    keep-alive connection gets the new grants at its next request; a file
    that does not load keeps the old ones."""
    b = ops_broker(start_broker, tmp_path, password_file=passwd_file(tmp_path),
                   http_admin_users="operator", http_readonly_users="viewer")
    keep = http.client.HTTPConnection("127.0.0.1", b.http_port, timeout=10)
    try:
        assert request(b, "GET", "/api/status", basic=("viewer", USERS["viewer"]), conn=keep)[0] == 200
        assert as_user(b, "viewer", "POST", "/api/reload")[0] == 403
        assert as_user(b, "operator", "POST", "/api/reload")[0] == 200
        assert as_user(b, "both", "GET", "/api/status")[0] == 403

        # SIGHUP: viewer becomes an admin, operator loses the API, both may read.
        set_grants(b, admin="viewer", readonly="both")
        b.proc.send_signal(signal.SIGHUP)
        b.wait_log(r'notice: SIGHUP: http_admin_users changed from "operator" to "viewer" \(HTTP API grants, '
                   r'from the next request\)')
        b.wait_log(r'notice: SIGHUP: http_readonly_users changed from "viewer" to "both"')
        b.wait_log(r"SIGHUP: reload done \(0 errors\)")
        status, _, body = request(b, "POST", "/api/reload", basic=("viewer", USERS["viewer"]), conn=keep)
        assert status == 200 and json.loads(body) == {"reloaded": True, "errors": []}, body
        status, _, body = as_user(b, "operator", "GET", "/api/status")
        assert status == 403 and b"no HTTP API grant" in body, body
        assert as_user(b, "both", "GET", "/api/status")[0] == 200
        status, _, body = as_user(b, "both", "POST", "/api/reload")
        assert status == 403 and b"may only read" in body, body
        # The reload viewer made changed nothing, so it logged no change.
        assert b.log_text().count("http_admin_users changed") == 1

        # A file that does not load: the grants stay as they were.
        set_grants(b, admin="operator", extra=["no_such_option 1"])
        r = api(b, "POST", "/api/reload")
        assert r["reloaded"] is False and any("no_such_option" in e for e in r["errors"]), r
        b.wait_log(r"HTTP reload: .*no_such_option.*; the alert thresholds and HTTP API grants stay")
        assert request(b, "GET", "/api/status", basic=("viewer", USERS["viewer"]), conn=keep)[0] == 200
        assert as_user(b, "operator", "GET", "/api/status")[0] == 403
        assert as_user(b, "both", "GET", "/api/status")[0] == 200

        # POST /api/reload (the token) takes every grant away: said, and 403.
        set_grants(b)
        assert api(b, "POST", "/api/reload") == {"reloaded": True, "errors": []}
        b.wait_log(r'notice: HTTP reload: http_admin_users changed from "viewer" to ""')
        b.wait_log(r'notice: HTTP reload: http_readonly_users changed from "both" to ""')
        b.wait_log(r"warning: HTTP reload: no user of password_file may use the HTTP API now \(they get 403\)")
        status, _, body = request(b, "GET", "/api/status", basic=("viewer", USERS["viewer"]), conn=keep)
        assert status == 403 and b"no HTTP API grant" in body, body
        assert as_user(b, "both", "GET", "/api/status")[0] == 403
    finally:
        keep.close()
