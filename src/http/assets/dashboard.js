/* ferromq dashboard: polls /api/status once a second (same origin; the
 * ferromq_token cookie carries the credential) and draws its own charts on
 * <canvas>. No framework and no request to anything but the broker, so the
 * page works on an isolated plant network and under CSP default-src 'self'.
 * Every number element also carries the raw value in data-value. */
'use strict';

(function () {
  const POLL_MS = 1000;
  const TIMEOUT_MS = 2500;
  const WINDOW_MS = 5 * 60 * 1000;
  const COLORS = { in: '#4fc3f7', out: '#ffb74d', clients: '#81c784', grid: '#2c3640', label: '#8b98a5' };

  const $ = (id) => document.getElementById(id);
  // One point a poll: {t: ms, in, out, clients}; a failed poll adds a point of
  // nulls so the lines break where data is missing instead of bridging it.
  const history = [];
  let lostSince = null;

  function formatCount(n) {
    return Math.round(n).toLocaleString('en-US');
  }

  function formatRate(n) {
    return n < 10 && !Number.isInteger(n) ? n.toFixed(1) : formatCount(n);
  }

  function formatBytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + units[i];
  }

  function formatDuration(s) {
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    if (d > 0) return d + 'd ' + h + 'h';
    if (h > 0) return h + 'h ' + String(m).padStart(2, '0') + 'm';
    return m + 'm ' + String(s % 60).padStart(2, '0') + 's';
  }

  function clock(date) {
    return date.toLocaleTimeString('en-GB', { hour12: false });
  }

  function setValue(id, value, format) {
    const el = $(id);
    const ok = typeof value === 'number' && isFinite(value);
    el.dataset.value = ok ? String(value) : '';
    el.textContent = ok ? format(value) : '–';
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function rate(rates, name, period) {
    return rates && rates[name] ? rates[name][period] : undefined;
  }

  function renderNumbers(s) {
    const m = s.metrics || {};
    const r = s.rates || {};
    $('version').textContent = s.version || '–';
    setValue('uptime', s.uptime_seconds, formatDuration);
    setValue('rate-in', rate(r, 'messages_received', 'now'), formatRate);
    setValue('rate-out', rate(r, 'messages_sent', 'now'), formatRate);
    for (const p of ['1m', '5m', '15m']) {
      setValue('rate-in-' + p, rate(r, 'messages_received', p), formatRate);
      setValue('rate-out-' + p, rate(r, 'messages_sent', p), formatRate);
    }
    setValue('bytes-in', rate(r, 'bytes_received', 'now'), formatBytes);
    setValue('bytes-out', rate(r, 'bytes_sent', 'now'), formatBytes);
    setValue('clients-connected', m.clients_connected, formatCount);
    setValue('clients-maximum', m.clients_maximum, formatCount);
    setValue('clients-total', m.clients_total, formatCount);
    setValue('queued-messages', m.queued_messages, formatCount);
    setValue('queued-bytes', m.queued_bytes, formatBytes);
    setValue('inflight-messages', m.inflight_messages, formatCount);
    setValue('store-bytes', m.store_bytes, formatBytes);
    setValue('retained-messages', m.retained_messages, formatCount);
    setValue('subscriptions', m.subscriptions, formatCount);
    setValue('heap-bytes', m.heap_bytes, formatBytes);
    setValue('heap-max-bytes', m.heap_max_bytes, formatBytes);
    const drops = m.drops || {};
    for (const reason of ['queue_full', 'expired', 'too_large', 'not_authorized', 'qos0_offline']) {
      setValue('drops-' + reason, drops[reason], formatCount);
      $('drops-' + reason).classList.toggle('nonzero', drops[reason] > 0);
    }
  }

  function alertDetail(a) {
    let text = 'value ' + a.value + ' (threshold ' + a.threshold + ')';
    if (typeof a.since === 'number') text += ' since ' + clock(new Date(a.since * 1000));
    if (Array.isArray(a.devices) && a.devices.length) text += ': ' + a.devices.map(String).join(', ');
    if (Array.isArray(a.edge_nodes) && a.edge_nodes.length) text += ': ' + a.edge_nodes.map(String).join(', ');
    return text;
  }

  // queue_share names the fullest sessions over the share with how full
  // their queue is, and counts the rest; null for other rules.
  function alertSessions(a) {
    if (!Array.isArray(a.sessions) || a.sessions.length === 0) return null;
    const list = el('ul', 'alert-sessions');
    list.setAttribute('aria-label', 'sessions over the share');
    for (const s of a.sessions) {
      const item = el('li');
      item.dataset.clientId = String(s.client_id);
      item.dataset.share = String(s.share);
      item.append(el('span', 'session-id', String(s.client_id)),
        el('span', 'session-share', typeof s.share === 'number' ? s.share.toFixed(1) + ' %' : '–'));
      list.append(item);
    }
    const more = (typeof a.sessions_over === 'number' ? a.sessions_over : 0) - a.sessions.length;
    if (more > 0) list.append(el('li', 'alert-more', 'and ' + formatCount(more) + ' more'));
    return list;
  }

  function renderAlerts(alerts) {
    const box = $('alerts');
    const firing = alerts.filter((a) => a.state === 'firing');
    const calm = alerts.filter((a) => a.state !== 'firing');
    box.replaceChildren();
    box.dataset.firing = String(firing.length);
    for (const a of firing) {
      const row = el('div', 'alert firing');
      row.dataset.name = a.name;
      row.append(el('span', 'alert-name', 'ALERT ' + a.name), el('span', 'alert-detail', alertDetail(a)));
      const sessions = alertSessions(a);
      if (sessions) row.append(sessions);
      box.append(row);
    }
    if (firing.length === 0) box.append(el('p', 'alerts-none', 'No alerts firing'));
    if (calm.length > 0) {
      const list = el('ul', 'alerts-ok');
      for (const a of calm) {
        const item = el('li', null, a.name + ': ok');
        item.dataset.name = a.name;
        list.append(item);
      }
      box.append(list);
    }
    document.title = firing.length ? '(' + firing.length + ' alert' + (firing.length > 1 ? 's' : '') + ') ferromq' : 'ferromq';
  }

  function renderQueues(queues) {
    const body = $('top-queues');
    body.replaceChildren();
    if (queues.length === 0) {
      const td = el('td', 'empty', 'no messages queued');
      td.colSpan = 4;
      const tr = el('tr');
      tr.append(td);
      body.append(tr);
      return;
    }
    for (const q of queues) {
      const tr = el('tr');
      tr.append(el('td', null, String(q.client_id)), el('td', 'num', formatCount(q.queued)),
        el('td', 'num', formatBytes(q.queued_bytes)), el('td', null, q.connected ? 'yes' : 'no'));
      body.append(tr);
    }
  }

  // The Modbus devices the broker polls, offline ones first; the section
  // stays hidden without any.
  function renderDevices(devices) {
    $('devices-section').hidden = devices.length === 0;
    const body = $('devices');
    body.replaceChildren();
    const order = { offline: 0, connecting: 1, online: 2 };
    const sorted = devices.slice().sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3) ||
      String(a.name).localeCompare(String(b.name)));
    for (const d of sorted) {
      const tr = el('tr', 'device device-' + String(d.state));
      tr.dataset.name = String(d.name);
      tr.dataset.state = String(d.state);
      const when = (t) => typeof t === 'number' ? clock(new Date(t * 1000)) : '–';
      tr.append(el('td', null, String(d.name) + ' (' + String(d.address) + ')'),
        el('td', 'device-state', String(d.state)), el('td', null, when(d.since)), el('td', null, when(d.last_success)),
        el('td', 'num', formatCount(d.polls)), el('td', 'num', formatCount(d.polls_failed)),
        el('td', 'num', formatCount(d.polls_late)), el('td', 'num', formatCount(d.readings_committed)),
        el('td', 'device-error', d.last_error === null || d.last_error === undefined ? '' : String(d.last_error)));
      body.append(tr);
    }
  }

  // The Sparkplug fleet (/api/sparkplug, sparkplug_aware): each group, its
  // edge nodes and under each node its devices, as the broker saw their
  // births and deaths; host applications apart. Hidden when not aware.
  function renderSparkplug(f) {
    $('sparkplug-section').hidden = !f.aware;
    if (!f.aware) return;
    const t = f.totals || {};
    $('sparkplug-summary').textContent = '· ' + formatCount(t.edge_nodes_online) + ' of ' + formatCount(t.edge_nodes) +
      ' edge nodes online, ' + formatCount(t.devices_online) + ' of ' + formatCount(t.devices) + ' devices, ' +
      formatCount(t.seq_gaps) + ' seq gaps';
    const when = (s) => typeof s === 'number' ? new Date(s * 1000).toLocaleString('en-GB', { hour12: false }) : '–';
    const num = (v) => typeof v === 'number' ? formatCount(v) : '–';
    const state = (o) => o.online ? 'online' : (o.births > 0 ? 'offline' : 'unborn');
    const row = (cls, name, o, extra) => {
      const tr = el('tr', cls + ' spb-' + state(o));
      tr.dataset.state = state(o);
      tr.append(el('td', 'spb-name', name), el('td', 'device-state', state(o)), el('td', null, when(o.since)),
        el('td', null, when(o.last_birth)), el('td', 'num', num(o.metrics)), ...extra);
      return tr;
    };
    const devices = new Map();
    for (const d of Array.isArray(f.devices) ? f.devices : []) {
      const key = String(d.group) + '/' + String(d.edge_node);
      if (!devices.has(key)) devices.set(key, []);
      devices.get(key).push(d);
    }
    const body = $('sparkplug');
    body.replaceChildren();
    let group = null;
    for (const n of Array.isArray(f.edge_nodes) ? f.edge_nodes : []) {
      if (n.group !== group) {
        group = n.group;
        const tr = el('tr', 'spb-group');
        tr.dataset.group = String(group);
        tr.append(el('th', null, String(group)));
        tr.firstChild.colSpan = 7;
        body.append(tr);
      }
      const key = String(n.group) + '/' + String(n.edge_node);
      const tr = row('spb-node', String(n.edge_node), n, [el('td', 'num', num(n.bdseq)), el('td', 'num', num(n.seq_gaps))]);
      tr.dataset.node = key;
      body.append(tr);
      for (const d of devices.get(key) || []) {
        const dr = row('spb-device', '└ ' + String(d.device), d, [el('td'), el('td')]);
        dr.dataset.device = key + '/' + String(d.device);
        body.append(dr);
      }
    }
    const hosts = $('sparkplug-hosts');
    hosts.replaceChildren();
    for (const h of Array.isArray(f.host_applications) ? f.host_applications : []) {
      const tr = el('tr', 'spb-host spb-' + state(h));
      tr.dataset.host = String(h.host_id);
      tr.append(el('td', null, String(h.host_id)), el('td', 'device-state', state(h)), el('td', null, when(h.since)));
      hosts.append(tr);
    }
  }

  // The cluster (/api/cluster): this node's state and term, the leader it
  // knows, and every node with its match index and lag (known on the
  // leader only). Hidden on a broker that is not in a cluster.
  const LAG_ALERT = 1000; // ALERT_CLUSTER_LAG_ENTRIES: the cluster_peer_lag alert's threshold
  function renderCluster(c) {
    $('cluster-section').hidden = !c.cluster;
    if (!c.cluster) return;
    const num = (v) => typeof v === 'number' ? formatCount(v) : '–';
    const leader = typeof c.leader_id === 'number'
      ? 'leader: node ' + c.leader_id + ' at ' + String(c.leader_address) : 'no leader known';
    $('cluster-section').classList.toggle('cluster-no-leader', typeof c.leader_id !== 'number');
    $('cluster-summary').textContent = '· node ' + c.node_id + ' is ' + String(c.state) +
      (c.role === 'witness' ? ' (witness)' : '') + ', term ' + num(c.term) + ' · ' + leader +
      ' · commit ' + num(c.commit_index) + ' · applied ' + num(c.applied_index);
    const body = $('cluster-nodes');
    body.replaceChildren();
    const self = el('tr', 'cluster-self' + (c.state === 'leader' ? ' cluster-leader' : ''));
    self.dataset.node = String(c.node_id);
    self.append(el('td', null, c.node_id + ' (this node)'), el('td', null, c.leader_id === c.node_id ? String(c.leader_address) : '–'),
      el('td', 'device-state', String(c.state)), el('td', 'num', num(c.last_index)), el('td', 'num lag', '–'));
    body.append(self);
    for (const p of Array.isArray(c.peers) ? c.peers : []) {
      const lagging = typeof p.lag === 'number' && p.lag > LAG_ALERT;
      const tr = el('tr', 'cluster-peer' + (p.id === c.leader_id ? ' cluster-leader' : '') + (lagging ? ' cluster-lagging' : ''));
      tr.dataset.node = String(p.id);
      tr.dataset.lag = typeof p.lag === 'number' ? String(p.lag) : '';
      tr.append(el('td', null, String(p.id)), el('td', null, String(p.address)),
        el('td', 'device-state', (p.id === c.leader_id ? 'leader' : (p.voter ? 'voter' : 'spare'))),
        el('td', 'num', num(p.match_index)), el('td', 'num lag', num(p.lag)));
      body.append(tr);
    }
  }

  // Asked at every poll while the broker is in a cluster; never again once
  // it says it is not.
  let clustered = true;
  async function pollCluster(signal) {
    if (!clustered) return;
    const r = await fetch('/api/cluster', { cache: 'no-store', credentials: 'same-origin', signal });
    if (!r.ok) return;
    const c = await r.json();
    clustered = c.cluster === true;
    renderCluster(c);
  }

  // Asked for every other poll while the broker says it is aware; never
  // again once it says it is not.
  let sparkplugAware = true;
  let sparkplugTurn = 0;
  async function pollSparkplug(signal) {
    if (!sparkplugAware || sparkplugTurn++ % 2 !== 0) return;
    const r = await fetch('/api/sparkplug', { cache: 'no-store', credentials: 'same-origin', signal });
    if (!r.ok) return;
    const f = await r.json();
    sparkplugAware = f.aware === true;
    renderSparkplug(f);
  }

  // Smallest 1, 2 or 5 x 10^k at or above v, so the axis labels stay round.
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const f of [1, 2, 5, 10]) if (f * p >= v) return f * p;
    return 10 * p;
  }

  // Four grid steps of a round size covering the largest value; whole
  // steps for counts.
  function axisStep(max, whole) {
    const step = niceCeil(max / 4);
    return whole ? Math.max(1, Math.ceil(step)) : step;
  }

  function drawChart(canvas, series, format, whole) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (w === 0 || h === 0) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const fontPx = parseFloat(getComputedStyle(document.documentElement).fontSize) * 0.8;
    ctx.font = fontPx + 'px system-ui, sans-serif';

    const now = Date.now(), start = now - WINDOW_MS;
    let max = 0;
    for (const p of history) for (const s of series) if (p[s.key] > max) max = p[s.key];
    const step = axisStep(max, whole);
    max = step * 4;
    const left = ctx.measureText(format(max)).width + 8, right = w - 4, top = fontPx * 0.7, bottom = h - fontPx * 1.5;
    const x = (t) => left + (t - start) / WINDOW_MS * (right - left);
    const y = (v) => bottom - v / max * (bottom - top);

    ctx.strokeStyle = COLORS.grid;
    ctx.fillStyle = COLORS.label;
    ctx.lineWidth = 1;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    for (let i = 0; i <= 4; i++) {
      const v = step * i, yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, yy);
      ctx.lineTo(right, yy);
      ctx.stroke();
      ctx.fillText(format(v), left - 6, yy);
    }
    ctx.textBaseline = 'top';
    ctx.textAlign = 'center';
    for (let min = 5; min >= 0; min--) {
      const xx = x(now - min * 60000);
      ctx.fillText(min === 0 ? 'now' : '-' + min + 'm', Math.min(Math.max(xx, left + 12), right - 14), bottom + 4);
    }

    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.beginPath();
      let pen = false;
      for (const p of history) {
        const v = p[s.key];
        if (typeof v !== 'number') {
          pen = false;
          continue;
        }
        if (pen) ctx.lineTo(x(p.t), y(v));
        else ctx.moveTo(x(p.t), y(v));
        pen = true;
      }
      ctx.stroke();
    }
  }

  function drawCharts() {
    drawChart($('chart-rates'), [{ key: 'in', color: COLORS.in }, { key: 'out', color: COLORS.out }], formatRate, false);
    drawChart($('chart-clients'), [{ key: 'clients', color: COLORS.clients }], formatCount, true);
  }

  function remember(point) {
    history.push(point);
    while (history.length > 0 && history[0].t < point.t - WINDOW_MS) history.shift();
  }

  function setState(cls, text) {
    const s = $('connection-state');
    s.className = 'state ' + cls;
    s.textContent = text;
    document.body.classList.toggle('offline', cls === 'state-lost');
  }

  function live(s) {
    lostSince = null;
    renderNumbers(s);
    renderAlerts(Array.isArray(s.alerts) ? s.alerts : []);
    renderQueues(Array.isArray(s.top_queues) ? s.top_queues : []);
    renderDevices(Array.isArray(s.devices) ? s.devices : []);
    remember({
      t: Date.now(),
      in: rate(s.rates, 'messages_received', 'now'),
      out: rate(s.rates, 'messages_sent', 'now'),
      clients: s.metrics ? s.metrics.clients_connected : undefined,
    });
    drawCharts();
    $('updated').textContent = clock(new Date());
    setState('state-live', 'live');
  }

  function lost(reason) {
    if (lostSince === null) lostSince = new Date();
    remember({ t: Date.now(), in: null, out: null, clients: null });
    drawCharts();
    setState('state-lost', 'connection lost since ' + clock(lostSince) + ': ' + reason + ' (retrying)');
  }

  async function poll() {
    const started = performance.now();
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
    try {
      const r = await fetch('/api/status', { cache: 'no-store', credentials: 'same-origin', signal: abort.signal });
      if (r.status === 401) {
        lost('not authorized; open the page as /?token=TOKEN (the broker\'s http_token_file)');
      } else if (!r.ok) {
        lost('HTTP ' + r.status);
      } else {
        live(await r.json());
        await pollCluster(abort.signal);
        await pollSparkplug(abort.signal);
      }
    } catch (e) {
      if (e.name === 'AbortError') lost('no answer in ' + TIMEOUT_MS / 1000 + ' s');
      else if (e instanceof SyntaxError) lost('the answer is not JSON');
      else lost('broker unreachable');
    } finally {
      clearTimeout(timer);
      setTimeout(poll, Math.max(0, POLL_MS - (performance.now() - started)));
    }
  }

  const resize = new ResizeObserver(drawCharts);
  resize.observe($('chart-rates'));
  resize.observe($('chart-clients'));
  poll();
})();
