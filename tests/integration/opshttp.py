"""HTTP helpers for the operations tests: a broker with http_listener, and
requests with the token, Basic or no credentials."""
import base64
import http.client
import json
import os

from conftest import free_port, wait_for


def ops_broker(start_broker, tmp_path, extra_lines=(), **options):
    """A broker with an HTTP listener and a token file; .http_port, .token."""
    port = free_port()
    token_path = str(tmp_path / ("token-%d" % port))
    options.setdefault("sys_interval", 1)
    b = start_broker(extra_lines=["http_listener %d 127.0.0.1" % port,
                                  "http_token_file %s" % token_path] + list(extra_lines), **options)
    b.http_port = port
    b.token_path = token_path
    b.token = wait_for(lambda: os.path.exists(token_path) and open(token_path).read().strip(),
                       what="token file")
    wait_for(lambda: request(b, "GET", "/healthz")[0] == 200, what="HTTP listener")
    return b


def request(b, method, path, token=None, basic=None, headers=None, body=None, conn=None):
    """Returns (status, headers dict (lower-case names), body bytes)."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    if basic:
        h["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % basic).encode()).decode()
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", b.http_port, timeout=10)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        if own:
            c.close()


def api(b, method, path, expect=200, **kw):
    """An authenticated request that must answer `expect`; returns its JSON."""
    status, hdrs, data = request(b, method, path, token=b.token, **kw)
    assert status == expect, "%s %s: %d %r" % (method, path, status, data[:500])
    return json.loads(data) if hdrs.get("content-type", "").startswith("application/json") else data


def metrics(b):
    """The /metrics samples as {'name{labels}': float}."""
    text = api(b, "GET", "/metrics").decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out
