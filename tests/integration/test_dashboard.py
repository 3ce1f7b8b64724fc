"""The live dashboard in headless Chromium (Debian's chromium driven by
playwright-core from npm), served by the broker itself: opened the way a
person opens it (/?token=..., which sets the cookie and redirects to /), its
numbers move while a paho publisher runs, it asks nothing of any host but
the broker, breaks no rule of the broker's Content-Security-Policy, and
shows "connection lost" when the broker goes away. Screenshots are saved in
the test's tmp dir."""
import json
import os
import shutil
import subprocess
import threading
import urllib.request

import pytest

from browser import chromium_bin, npm_package
from conftest import connect_raw, free_port, wait_for

# The newest playwright-core whose engines field still admits Debian 12's
# nodejs 18; it drives the system's chromium, it downloads no browser.
PLAYWRIGHT_VERSION = "1.61.1"

BROWSER_SCRIPT = r"""
const { chromium } = require('playwright-core');
const [exe, url, shot] = process.argv.slice(1);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const lines = require('readline').createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));
(async () => {
  const browser = await chromium.launch({ executablePath: exe,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const requests = [], problems = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  await page.goto(url);
  await page.waitForSelector('#connection-state.state-live', { timeout: 15000 });
  const read = () => page.evaluate(() => {
    const v = (id) => document.getElementById(id).dataset.value;
    return { rateIn: v('rate-in'), rateOut: v('rate-out'), clients: v('clients-connected'),
             store: v('store-bytes'), firing: document.getElementById('alerts').dataset.firing,
             clusterHidden: document.getElementById('cluster-section').hidden };
  });
  // Until the rate has been seen non-zero and with two different values.
  const samples = [];
  for (let i = 0; i < 30; i++) {
    samples.push(await read());
    const rates = new Set(samples.map((s) => s.rateIn));
    if (samples.some((s) => Number(s.rateIn) > 0 && Number(s.rateOut) > 0) && rates.size >= 2) break;
    await page.waitForTimeout(500);
  }
  const paint = await page.evaluate(() =>
    performance.getEntriesByType('paint').map((e) => ({ name: e.name, ms: e.startTime })));
  await page.screenshot({ path: shot, fullPage: true });
  say({ samples, paint, requests: requests.slice(), problems: problems.slice(), url: page.url() });
  await nextLine(); // the broker is stopped now
  await page.waitForSelector('#connection-state.state-lost', { timeout: 15000 });
  const lost = await page.textContent('#connection-state');
  await page.screenshot({ path: shot.replace(/\.png$/, '-lost.png'), fullPage: true });
  say({ lost, requests });
  await browser.close();
  lines.close();
})().catch((e) => { say({ error: String(e && e.stack || e) }); process.exit(1); });
"""


def healthy(origin):
    try:
        with urllib.request.urlopen(origin + "/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def browser_says(proc):
    """The next JSON line from the browser script; fails with its stderr
    when it reports an error or ends."""
    line = proc.stdout.readline()
    said = json.loads(line) if line else {"error": "the browser script ended"}
    if "error" in said:
        proc.kill()
        pytest.fail("browser script: %s\n%s" % (said["error"], proc.stderr.read()[-3000:]))
    return said


def test_dashboard_in_headless_chromium(start_broker, client, tmp_path):
    browser = chromium_bin()
    if not browser:
        pytest.skip("chromium is not installed (Debian package chromium; `make deps` installs it)")
    if not shutil.which("npm") or not shutil.which("node"):
        pytest.skip("node and npm are needed for playwright-core (Debian packages nodejs and npm)")
    node_path = npm_package("playwright-core", PLAYWRIGHT_VERSION)

    http_port = free_port()
    token_file = tmp_path / "http.token"
    b = start_broker(extra_lines=["http_listener %d 127.0.0.1" % http_port, "http_token_file %s" % token_file])
    origin = "http://127.0.0.1:%d" % http_port
    token = wait_for(lambda: token_file.exists() and token_file.read_text().strip(), what="token file")
    wait_for(lambda: healthy(origin), what="GET /healthz")

    sub = client(b, "dash-sub")
    sub.subscribe("line/#", 0)
    pub = client(b, "dash-pub")
    stop = threading.Event()

    def publish():
        # A rate that changes every second, so the numbers must move.
        n = 0
        while not stop.wait(0.02 if (n // 50) % 2 else 0.05):
            pub.publish("line/%d" % (n % 7), b"%d" % n)
            n += 1
    t = threading.Thread(target=publish, daemon=True)
    t.start()

    shot = str(tmp_path / "dashboard.png")
    proc = subprocess.Popen(["node", "-e", BROWSER_SCRIPT, browser, "%s/?token=%s" % (origin, token), shot],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, NODE_PATH=node_path))
    try:
        live = browser_says(proc)
        stop.set()
        t.join(5)
        print("dashboard screenshot: %s" % shot)
        fcp = [p["ms"] for p in live["paint"] if p["name"] == "first-contentful-paint"]
        print("first-contentful-paint: %s ms" % (round(fcp[0]) if fcp else "none"))

        # The token left the address bar; the cookie carried the API calls.
        assert live["url"] == origin + "/", live["url"]
        strangers = [u for u in live["requests"] if not u.startswith(origin + "/")]
        assert not strangers, "requests to other hosts: %r" % strangers
        assert any(u == origin + "/api/status" for u in live["requests"]), live["requests"]
        assert not live["problems"], "console errors (CSP violations show here): %r" % live["problems"]
        assert fcp, "no first-contentful-paint entry: %r" % live["paint"]

        samples = live["samples"]
        assert max(float(s["rateIn"] or 0) for s in samples) > 0, samples
        assert max(float(s["rateOut"] or 0) for s in samples) > 0, samples
        assert len({s["rateIn"] for s in samples}) >= 2, "the rate never changed: %r" % samples
        assert samples[-1]["clients"] == "2", samples
        assert samples[-1]["store"] != "" and samples[-1]["firing"] == "0", samples
        # A single broker: no cluster panel (/api/cluster says {"cluster":false}).
        assert all(s["clusterHidden"] for s in samples), samples

        sub.stop()
        pub.stop()
        b.stop()
        proc.stdin.write("stopped\n")
        proc.stdin.flush()
        lost = browser_says(proc)
        assert lost["lost"].startswith("connection lost"), lost["lost"]
        strangers = [u for u in lost["requests"] if not u.startswith(origin + "/")]
        assert not strangers, "requests to other hosts: %r" % strangers
        assert proc.wait(30) == 0, proc.stderr.read()[-3000:]
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


QUEUE_SHARE_SCRIPT = r"""
const { chromium } = require('playwright-core');
const [exe, url, shot] = process.argv.slice(1);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const lines = require('readline').createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));
const ROW = '.alert.firing[data-name="queue_share"]';
(async () => {
  const browser = await chromium.launch({ executablePath: exe,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  await page.goto(url);
  const read = () => page.evaluate((sel) => {
    const row = document.querySelector(sel);
    if (!row) return null;
    const list = row.querySelector('.alert-sessions');
    const more = row.querySelector('.alert-sessions .alert-more');
    return {
      sessions: Array.from(row.querySelectorAll('.alert-sessions li[data-client-id]')).map((li) => ({
        client_id: li.dataset.clientId, share: li.dataset.share,
        shown: li.querySelector('.session-id').textContent,
        share_text: li.querySelector('.session-share').textContent })),
      more: more ? more.textContent : null,
      elements: row.querySelectorAll('b').length,
      height: list ? list.getBoundingClientRect().height : 0,
    };
  }, ROW);
  await page.waitForSelector(ROW + ' .alert-sessions .alert-more', { timeout: 15000 });
  const firing = await read();
  await page.screenshot({ path: shot, fullPage: true });
  say({ firing, problems: problems.slice() });
  await nextLine(); // two sessions have drained their queues
  await page.waitForFunction((sel) => document.querySelector(sel) &&
    !document.querySelector(sel + ' .alert-more'), ROW, { timeout: 15000 });
  say({ drained: await read(), problems });
  await browser.close();
  lines.close();
})().catch((e) => { say({ error: String(e && e.stack || e) }); process.exit(1); });
"""


def test_dashboard_names_queue_share_sessions(start_broker, client, raw, tmp_path):
    """The firing queue_share row lists the sessions over the share with their
    fill, the fullest first, counts the ones not named, shows an id as text
    (not markup), and follows a session draining its queue."""
    browser = chromium_bin()
    if not browser:
        pytest.skip("chromium is not installed (Debian package chromium; `make deps` installs it)")
    if not shutil.which("npm") or not shutil.which("node"):
        pytest.skip("node and npm are needed for playwright-core (Debian packages nodejs and npm)")
    node_path = npm_package("playwright-core", PLAYWRIGHT_VERSION)

    http_port = free_port()
    token_file = tmp_path / "http.token"
    b = start_broker(extra_lines=["http_listener %d 127.0.0.1" % http_port, "http_token_file %s" % token_file],
                     max_queued_messages=10, max_queued_bytes=0, alert_queue_share_percent=80,
                     alert_clear_after=0)
    origin = "http://127.0.0.1:%d" % http_port
    token = wait_for(lambda: token_file.exists() and token_file.read_text().strip(), what="token file")
    wait_for(lambda: healthy(origin), what="GET /healthz")

    # Nine offline sessions at 90 % of their queue and one (an id that looks
    # like markup) at 100 %: ten over the share, the dashboard names eight.
    odd = '<b>odd</b> "id"'
    ids = ["historian-%d" % i for i in range(9)]
    for cid in ids + [odd]:
        h = connect_raw(raw, b, cid, 4, clean=False)
        h.subscribe([("plant/#", 1)] + ([("extra/#", 1)] if cid == odd else []))
        # Returns once the broker has processed the DISCONNECT, which
        # detaches the session: what is published next is queued for it.
        # (paho's disconnect() returns before the broker has read it.)
        h.disconnect()
    pub = client(b, "gw-1", protocol=4)
    for i in range(9):
        pub.publish("plant/a/t", b"x", qos=1)
    pub.publish("extra/t", b"x", qos=1)

    shot = str(tmp_path / "dashboard-queue-share.png")
    proc = subprocess.Popen(["node", "-e", QUEUE_SHARE_SCRIPT, browser, "%s/?token=%s" % (origin, token), shot],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, NODE_PATH=node_path))
    try:
        firing = browser_says(proc)
        print("dashboard screenshot: %s" % shot)
        assert not firing["problems"], firing["problems"]
        row = firing["firing"]
        sessions = row["sessions"]
        assert len(sessions) == 8 and row["more"] == "and 2 more", row
        assert sessions[0] == {"client_id": odd, "share": "100", "shown": odd, "share_text": "100.0 %"}, row
        assert all(s["client_id"] in ids and s["shown"] == s["client_id"] and s["share"] == "90" and
                   s["share_text"] == "90.0 %" for s in sessions[1:]), row
        assert row["elements"] == 0 and row["height"] > 0, row

        # The fullest and one more drain: eight left, all named.
        client(b, odd, protocol=4, clean=False).messages.wait_for(10)
        client(b, ids[8], protocol=4, clean=False).messages.wait_for(9)
        proc.stdin.write("drained\n")
        proc.stdin.flush()
        drained = browser_says(proc)
        assert not drained["problems"], drained["problems"]
        row = drained["drained"]
        assert sorted(s["client_id"] for s in row["sessions"]) == ids[:8] and row["more"] is None, row
        assert proc.wait(30) == 0, proc.stderr.read()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
