/* The router: authentication, then one handler per endpoint. Everything
 * but /healthz needs a bearer token, the ferromq_token cookie (both may do
 * everything), or a user of the password file (Basic) whom http_admin_users
 * or http_readonly_users (GET and HEAD only) grants the API. */
#include "internal.h"
#include "cluster_body.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/log.h"
#include "../mqtt/mqtt.h"
#include "../ops/devices.h"
#include "../ops/sparkplug.h"
#include "../ops/token.h"
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JSON_TYPE "application/json"
#define TEXT_TYPE "text/plain; charset=utf-8"

static void text(struct http_response *res, int status, const char *body)
{
	res->status = status;
	res->type = TEXT_TYPE;
	buf_append(&res->body, body, strlen(body));
}

void api_error(struct http_response *res, int status, const char *why)
{
	struct jw j = { 0 };
	jw_obj(&j);
	jw_key(&j, "error");
	jw_str(&j, why);
	jw_obj_end(&j);
	buf_free(&res->body);
	res->body = j.out;
	res->status = status;
	res->type = JSON_TYPE;
	res->api = true;
}

/* Takes the finished JSON document (a 500 when it ran out of memory). */
static void device_json(struct jw *j, const struct collect_device_info *d);

static void json_done(struct http_response *res, struct jw *j)
{
	if (j->oom) {
		buf_free(&j->out);
		api_error(res, 500, "out of memory");
		return;
	}
	res->status = 200;
	res->type = JSON_TYPE;
	res->api = true;
	res->body = j->out;
}

/* ---- authentication ---- */

static bool cookie_token(const struct http_request *req, const char **tok, size_t *len)
{
	const struct http_header *h = http_header_find(req, "Cookie");
	if (!h)
		return false;
	static const char name[] = "ferromq_token=";
	for (size_t i = 0; i + sizeof name - 1 <= h->value_len; i++) {
		if ((i == 0 || h->value[i - 1] == ' ' || h->value[i - 1] == ';') &&
		    !memcmp(h->value + i, name, sizeof name - 1)) {
			size_t s = i + sizeof name - 1, e = s;
			while (e < h->value_len && h->value[e] != ';')
				e++;
			*tok = h->value + s;
			*len = e - s;
			return true;
		}
	}
	return false;
}

/* What a request's credential may do. */
enum api_grant {
	GRANT_NONE,      /* no valid credential: 401 */
	GRANT_FORBIDDEN, /* a user of password_file without an HTTP API grant: 403 */
	GRANT_READ,      /* http_readonly_users: GET and HEAD only */
	GRANT_ADMIN,     /* the token, or http_admin_users */
};

/* A Basic login "user:password": GRANT_NONE unless the password is the
 * user's in password_file, then what the grant lists give that user. Sets
 * user[] (NUL-terminated) for the log lines. */
static enum api_grant basic_grant(struct http_server *s, const char *b64, size_t n, char *user, size_t ucap)
{
	unsigned char dec[768];
	if (n == 0 || n % 4 || n / 4 * 3 >= sizeof dec)
		return GRANT_NONE;
	int len = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)n);
	if (len < 0)
		return GRANT_NONE;
	len -= (b64[n - 1] == '=') + (n > 1 && b64[n - 2] == '=');
	const unsigned char *colon = memchr(dec, ':', (size_t)len);
	if (!colon)
		return GRANT_NONE;
	size_t ulen = (size_t)(colon - dec);
	if (!ops_node_check_user(s->node, (const char *)dec, ulen, colon + 1, (size_t)len - ulen - 1))
		return GRANT_NONE;
	snprintf(user, ucap, "%.*s", (int)ulen, (const char *)dec);
	/* Devices log in with the same password file: being in it grants
	 * nothing here, the lists do (as last reloaded). */
	switch (ops_node_grant(s->node, (const char *)dec, ulen)) {
	case OPS_GRANT_ADMIN: return GRANT_ADMIN;
	case OPS_GRANT_READ: return GRANT_READ;
	default: return GRANT_FORBIDDEN;
	}
}

static enum api_grant grant_of(struct http_server *s, const struct http_request *req, char *user, size_t ucap)
{
	const struct http_header *h = http_header_find(req, "Authorization");
	const char *tok;
	size_t len;
	if (h && h->value_len > 7 && !strncasecmp(h->value, "Bearer ", 7))
		return ops_node_token_matches(s->node, h->value + 7, h->value_len - 7) ? GRANT_ADMIN : GRANT_NONE;
	if (h && h->value_len > 6 && !strncasecmp(h->value, "Basic ", 6))
		return basic_grant(s, h->value + 6, h->value_len - 6, user, ucap);
	return cookie_token(req, &tok, &len) && ops_node_token_matches(s->node, tok, len) ? GRANT_ADMIN : GRANT_NONE;
}

static bool header_is(const struct http_header *h, const char *v)
{
	return h->value_len == strlen(v) && !strncasecmp(h->value, v, h->value_len);
}

/* A browser sends a cached Basic password or the cookie with every request
 * to us, also one that a hostile page makes (a form posted to /api/reload).
 * What changes something must come from our own page or from no page at
 * all: a Sec-Fetch-Site other than same-origin or none, or an Origin other
 * than http://HOST, is cross-site. */
static bool cross_site(const struct http_request *req)
{
	const struct http_header *site = http_header_find(req, "Sec-Fetch-Site");
	if (site && !header_is(site, "same-origin") && !header_is(site, "none"))
		return true;
	const struct http_header *origin = http_header_find(req, "Origin"), *host = http_header_find(req, "Host");
	if (!origin)
		return false;
	return !host || origin->value_len != 7 + host->value_len || strncasecmp(origin->value, "http://", 7) ||
	       strncasecmp(origin->value + 7, host->value, host->value_len);
}

static void unauthorized(struct http_response *res)
{
	api_error(res, 401, "authentication required: a bearer token, a user of the password file, or the "
			    "ferromq_token cookie");
	snprintf(res->headers, sizeof res->headers, "WWW-Authenticate: Basic realm=\"ferromq\"\r\n");
}

/* ---- endpoints ---- */

static void rate_obj(struct jw *j, const struct rate *r)
{
	jw_obj(j);
	jw_key(j, "now");
	jw_num(j, r->now);
	for (int w = 0; w < RATE__WINDOWS; w++) {
		jw_key(j, rate_window_names[w]);
		jw_num(j, r->ewma[w]);
	}
	jw_obj_end(j);
}

/* queue_share's sessions: the fullest over the share with their shares,
 * fullest first, and how many are over it in all. */
static void queue_sessions(struct jw *j, const struct metrics_snapshot *m)
{
	jw_key(j, "sessions");
	jw_arr(j);
	for (uint32_t i = 0; i < m->n_queue_named; i++) {
		jw_obj(j);
		jw_key(j, "client_id");
		jw_str(j, m->queue_over[i].client_id);
		jw_key(j, "share");
		jw_num(j, m->queue_over[i].share);
		jw_obj_end(j);
	}
	jw_arr_end(j);
	jw_key(j, "sessions_over");
	jw_u64(j, m->n_queue_over);
}

/* "edge_nodes": the Sparkplug edge nodes that died, "group/edge" (at most
 * 100: the alert's value counts them all); none when b is NULL. */
static void offline_nodes_json(struct jw *j, struct broker *b)
{
	struct spb_fleet_entry *e;
	struct spb_fleet_totals t;
	uint32_t n, named = 0;
	jw_key(j, "edge_nodes");
	jw_arr(j);
	if (b && broker_spb_list(b, &e, &n, &t) == 0) {
		for (uint32_t i = 0; i < n && named < 100; i++)
			if (e[i].kind == SPB_FLEET_NODE && !e[i].online && e[i].births) {
				jw_str(j, e[i].key);
				named++;
			}
		free(e);
	}
	jw_arr_end(j);
}

static void get_status(struct http_server *s, struct http_response *res)
{
	const struct metrics_snapshot *m = ops_snapshot(s->ops);
	struct jw j = { 0 };
	jw_obj(&j);
	jw_key(&j, "version");
	jw_str(&j, FM_VERSION);
	jw_key(&j, "uptime_seconds");
	jw_u64(&j, m->v[M_UPTIME_SECONDS]);
	jw_key(&j, "metrics");
	jw_obj(&j);
	for (int i = 0; i < M_DROPS; i++) {
		jw_key(&j, metric_defs[i].key);
		jw_u64(&j, m->v[i]);
	}
	jw_key(&j, "drops");
	jw_obj(&j);
	for (int r = 0; r < DROP__COUNT; r++) {
		jw_key(&j, metric_defs[M_DROPS + r].key);
		jw_u64(&j, m->v[M_DROPS + r]);
	}
	jw_obj_end(&j);
	jw_obj_end(&j);
	jw_key(&j, "rates");
	jw_obj(&j);
	for (int r = 0; r < R__COUNT; r++) {
		jw_key(&j, rate_defs[r].key);
		rate_obj(&j, &m->rates[r]);
	}
	jw_obj_end(&j);
	jw_key(&j, "top_queues");
	jw_arr(&j);
	for (uint32_t i = 0; i < m->queues.n_top; i++) {
		const struct queue_top *q = &m->queues.top[i];
		jw_obj(&j);
		jw_key(&j, "client_id");
		jw_str(&j, q->client_id);
		jw_key(&j, "queued");
		jw_u64(&j, q->queued);
		jw_key(&j, "queued_bytes");
		jw_u64(&j, q->queued_bytes);
		jw_key(&j, "connected");
		jw_bool(&j, q->connected);
		jw_obj_end(&j);
	}
	jw_arr_end(&j);
	jw_key(&j, "alerts");
	jw_arr(&j);
	for (int a = 0; a < ALERT__COUNT; a++) {
		const struct alert_state *st = &m->alerts[a];
		if (!alert_applies((enum alert_id)a, m->cluster))
			continue;
		jw_obj(&j);
		jw_key(&j, "name");
		jw_str(&j, alert_name((enum alert_id)a));
		jw_key(&j, "state");
		jw_str(&j, st->firing ? "firing" : "ok");
		jw_key(&j, "value");
		jw_num(&j, st->value);
		jw_key(&j, "threshold");
		jw_num(&j, st->threshold);
		jw_key(&j, "since");
		if (st->since_s)
			jw_u64(&j, st->since_s);
		else
			jw_null(&j);
		if (a == ALERT_QUEUE_SHARE)
			queue_sessions(&j, m);
		if (a == ALERT_SPARKPLUG_NODE_OFFLINE) /* the fleet is copied only then */
			offline_nodes_json(&j, st->firing ? ops_broker(s->ops) : NULL);
		if (a == ALERT_DEVICE_OFFLINE) {
			jw_key(&j, "devices");
			jw_arr(&j);
			for (uint32_t i = 0; i < m->n_devices; i++)
				if (m->devices[i].state == COLLECT_OFFLINE)
					jw_str(&j, m->devices[i].name);
			jw_arr_end(&j);
		}
		jw_obj_end(&j);
	}
	jw_arr_end(&j);
	/* For the dashboard, which reads this endpoint only. */
	jw_key(&j, "devices");
	jw_arr(&j);
	for (uint32_t i = 0; i < m->n_devices; i++)
		device_json(&j, &m->devices[i]);
	jw_arr_end(&j);
	jw_obj_end(&j);
	json_done(res, &j);
}

/* /api/bridges: each bridge's link and spool, from the last sample. */
static void get_bridges(struct http_server *s, struct http_response *res)
{
	const struct metrics_snapshot *snap = ops_snapshot(s->ops);
	struct jw j = { 0 };
	jw_arr(&j);
	for (unsigned i = 0; i < snap->n_bridges; i++) {
		const struct bridge_status *b = &snap->bridges[i];
		jw_obj(&j);
		jw_key(&j, "name");
		jw_str(&j, b->name);
		jw_key(&j, "connected");
		jw_bool(&j, b->connected);
		jw_key(&j, "remote");
		jw_str(&j, b->remote);
		jw_key(&j, "spool_messages");
		jw_u64(&j, b->spool_messages);
		jw_key(&j, "spool_bytes");
		jw_u64(&j, b->spool_bytes);
		jw_key(&j, "oldest_age_seconds");
		jw_u64(&j, b->oldest_age_s);
		jw_key(&j, "drain_seconds");
		if (b->drain_s >= 0)
			jw_u64(&j, (uint64_t)b->drain_s);
		else
			jw_null(&j); /* not sending: unknown */
		jw_key(&j, "sent");
		jw_u64(&j, b->sent);
		jw_key(&j, "received");
		jw_u64(&j, b->received);
		jw_key(&j, "reduced");
		jw_u64(&j, b->reduced);
		jw_key(&j, "dropped");
		jw_obj(&j);
		for (int r = 0; r < BRIDGE_DROP__COUNT; r++) {
			jw_key(&j, bridge_drop_names[r]);
			jw_u64(&j, b->dropped[r]);
		}
		jw_obj_end(&j);
		jw_obj_end(&j);
	}
	jw_arr_end(&j);
	json_done(res, &j);
}

/* One Modbus device's state, counters and latencies. Times are unix
 * seconds; latencies the upper bounds of their histogram buckets (null
 * before the first). */
static void device_json(struct jw *j, const struct collect_device_info *d)
{
	char address[160];
	snprintf(address, sizeof address, strchr(d->host, ':') ? "[%s]:%u" : "%s:%u", d->host, d->port);
	jw_obj(j);
	jw_key(j, "name");
	jw_str(j, d->name);
	jw_key(j, "address");
	jw_str(j, address);
	jw_key(j, "unit_id");
	jw_u64(j, d->unit_id);
	jw_key(j, "topic_prefix");
	jw_str(j, d->prefix);
	jw_key(j, "state");
	jw_str(j, collect_state_name(d->state));
	jw_key(j, "since");
	if (d->since_ms)
		jw_u64(j, d->since_ms / 1000);
	else
		jw_null(j);
	jw_key(j, "last_success");
	if (d->last_success_ms)
		jw_u64(j, d->last_success_ms / 1000);
	else
		jw_null(j);
	jw_key(j, "last_error");
	jw_str(j, d->last_error[0] ? d->last_error : NULL);
	jw_key(j, "tags");
	jw_u64(j, d->n_tags);
	jw_key(j, "requests_per_round");
	jw_u64(j, d->n_requests);
	static const struct { const char *key; size_t off; } counters[] = {
		{ "polls", offsetof(struct collect_device_info, polls) },
		{ "polls_failed", offsetof(struct collect_device_info, polls_failed) },
		{ "polls_late", offsetof(struct collect_device_info, polls_late) },
		{ "requests", offsetof(struct collect_device_info, requests) },
		{ "requests_failed", offsetof(struct collect_device_info, requests_failed) },
		{ "exceptions", offsetof(struct collect_device_info, exceptions) },
		{ "readings", offsetof(struct collect_device_info, readings) },
		{ "readings_committed", offsetof(struct collect_device_info, readings_committed) },
		{ "readings_refused", offsetof(struct collect_device_info, readings_refused) },
		{ "readings_lost", offsetof(struct collect_device_info, readings_lost) },
		{ "writes", offsetof(struct collect_device_info, writes) },
		{ "writes_failed", offsetof(struct collect_device_info, writes_failed) },
		{ "connects", offsetof(struct collect_device_info, connects) },
		{ "offline_episodes", offsetof(struct collect_device_info, offline_episodes) },
	};
	for (size_t k = 0; k < sizeof counters / sizeof counters[0]; k++) {
		jw_key(j, counters[k].key);
		jw_u64(j, *(const uint64_t *)((const char *)d + counters[k].off));
	}
	static const struct { const char *key; size_t off; } hists[] = {
		{ "request_ms", offsetof(struct collect_device_info, request_latency) },
		{ "poll_jitter_ms", offsetof(struct collect_device_info, poll_jitter) },
		{ "poll_to_commit_ms", offsetof(struct collect_device_info, poll_commit) },
	};
	for (size_t k = 0; k < sizeof hists / sizeof hists[0]; k++) {
		const struct collect_hist *h = (const struct collect_hist *)((const char *)d + hists[k].off);
		jw_key(j, hists[k].key);
		jw_obj(j);
		static const struct { const char *key; double q; } qs[] = { { "p50", 0.5 }, { "p99", 0.99 } };
		for (size_t q = 0; q < 2; q++) {
			double v = devices_hist_quantile_ms(h, qs[q].q);
			jw_key(j, qs[q].key);
			if (v < 0)
				jw_null(j);
			else
				jw_num(j, v);
		}
		jw_obj_end(j);
	}
	jw_obj_end(j);
}

/* Unix seconds of wall ms, null for 0 (never). */
static void jw_time(struct jw *j, const char *key, uint64_t ms)
{
	jw_key(j, key);
	if (ms)
		jw_u64(j, ms / 1000);
	else
		jw_null(j);
}

/* The pieces of a fleet key "a/b[/c]": n of them into part/len. */
static unsigned key_split(const char *key, const char *part[3], size_t len[3])
{
	unsigned n = 0;
	for (const char *p = key; n < 3;) {
		const char *slash = strchr(p, '/');
		part[n] = p;
		len[n++] = slash ? (size_t)(slash - p) : strlen(p);
		if (!slash)
			break;
		p = slash + 1;
	}
	return n;
}

static void fleet_entry_json(struct jw *j, const struct spb_fleet_entry *e)
{
	const char *part[3];
	size_t len[3];
	unsigned n = key_split(e->key, part, len);
	jw_obj(j);
	if (e->kind == SPB_FLEET_HOST) {
		jw_key(j, "host_id");
		jw_str(j, e->key);
	} else {
		jw_key(j, "group");
		jw_strn(j, part[0], len[0]);
		jw_key(j, "edge_node");
		jw_strn(j, n > 1 ? part[1] : "", n > 1 ? len[1] : 0);
		if (e->kind == SPB_FLEET_DEVICE) {
			jw_key(j, "device");
			jw_strn(j, n > 2 ? part[2] : "", n > 2 ? len[2] : 0);
		}
	}
	jw_key(j, "online");
	jw_bool(j, e->online);
	jw_time(j, "since", e->since_ms);
	if (e->kind == SPB_FLEET_HOST) {
		jw_time(j, "last_state", e->last_birth_ms);
		jw_key(j, "state_timestamp");
		jw_u64(j, e->state_timestamp);
		jw_key(j, "stale_states");
		jw_u64(j, e->stale_deaths);
	} else {
		jw_time(j, "last_birth", e->last_birth_ms);
		jw_key(j, "metrics");
		jw_u64(j, e->metrics);
	}
	jw_time(j, "last_message", e->last_message_ms);
	if (e->kind == SPB_FLEET_NODE) {
		jw_key(j, "bdseq");
		if (e->has_bdseq)
			jw_u64(j, e->bdseq);
		else
			jw_null(j);
		jw_key(j, "seq_gaps");
		jw_u64(j, e->seq_gaps);
		jw_key(j, "stale_deaths");
		jw_u64(j, e->stale_deaths);
	}
	jw_key(j, "births");
	jw_u64(j, e->births);
	jw_key(j, "deaths");
	jw_u64(j, e->deaths);
	jw_key(j, "messages");
	jw_u64(j, e->messages);
	jw_obj_end(j);
}

/* /api/sparkplug: the fleet view now (not the last sample): totals, then
 * edge nodes, devices and host applications, each sorted by id. */
static void get_sparkplug(struct http_server *s, struct http_response *res)
{
	struct broker *b = ops_broker(s->ops);
	struct spb_fleet_entry *e;
	struct spb_fleet_totals t;
	uint32_t n;
	if (broker_spb_list(b, &e, &n, &t)) {
		api_error(res, 500, "out of memory");
		return;
	}
	struct jw j = { 0 };
	jw_obj(&j);
	jw_key(&j, "aware");
	jw_bool(&j, b->cfg.sparkplug_aware);
	jw_key(&j, "namespace");
	jw_str(&j, b->cfg.sparkplug_namespace);
	jw_key(&j, "totals");
	jw_obj(&j);
	static const struct { const char *key; size_t off; } counts[] = {
		{ "edge_nodes", offsetof(struct spb_fleet_totals, nodes) },
		{ "edge_nodes_online", offsetof(struct spb_fleet_totals, nodes_online) },
		{ "edge_nodes_offline", offsetof(struct spb_fleet_totals, nodes_offline) },
		{ "devices", offsetof(struct spb_fleet_totals, devices) },
		{ "devices_online", offsetof(struct spb_fleet_totals, devices_online) },
		{ "host_applications", offsetof(struct spb_fleet_totals, hosts) },
		{ "host_applications_online", offsetof(struct spb_fleet_totals, hosts_online) },
	};
	for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
		jw_key(&j, counts[k].key);
		jw_u64(&j, *(const uint32_t *)((const char *)&t + counts[k].off));
	}
	static const struct { const char *key; size_t off; } totals[] = {
		{ "seq_gaps", offsetof(struct spb_fleet_totals, seq_gaps) },
		{ "edge_node_deaths", offsetof(struct spb_fleet_totals, node_deaths) },
		{ "stale_deaths", offsetof(struct spb_fleet_totals, stale_deaths) },
		{ "untracked", offsetof(struct spb_fleet_totals, untracked) },
		{ "malformed", offsetof(struct spb_fleet_totals, malformed) },
	};
	for (size_t k = 0; k < sizeof totals / sizeof totals[0]; k++) {
		jw_key(&j, totals[k].key);
		jw_u64(&j, *(const uint64_t *)((const char *)&t + totals[k].off));
	}
	jw_key(&j, "max");
	jw_u64(&j, b->cfg.sparkplug_fleet_max);
	jw_obj_end(&j);
	static const char *const lists[] = { [SPB_FLEET_NODE] = "edge_nodes", [SPB_FLEET_DEVICE] = "devices",
					     [SPB_FLEET_HOST] = "host_applications" };
	/* e is sorted by kind, then key. */
	uint32_t i = 0;
	for (uint8_t kind = SPB_FLEET_NODE; kind <= SPB_FLEET_HOST; kind++) {
		jw_key(&j, lists[kind]);
		jw_arr(&j);
		for (; i < n && e[i].kind == kind; i++)
			fleet_entry_json(&j, &e[i]);
		jw_arr_end(&j);
	}
	jw_obj_end(&j);
	free(e);
	json_done(res, &j);
}

/* /api/devices: every Modbus device, from the last sample. */
static void get_devices(struct http_server *s, struct http_response *res)
{
	const struct metrics_snapshot *snap = ops_snapshot(s->ops);
	struct jw j = { 0 };
	jw_arr(&j);
	for (uint32_t i = 0; i < snap->n_devices; i++)
		device_json(&j, &snap->devices[i]);
	jw_arr_end(&j);
	json_done(res, &j);
}

/* NULL when this node serves, else why not (/readyz's body). */
static const char *not_ready(struct http_server *s)
{
	return s->ops ? ops_not_ready(s->ops) : ops_node_not_ready(s->node);
}

/* A witness's: its cluster view (sampled on this loop) and never ready. */
static int node_metrics(struct http_server *s, struct buf *out)
{
	const struct ops_cluster_view *v = &s->node->view;
	return metrics_node_prometheus(v->cluster ? &v->st : NULL, v->no_leader_s, false, out);
}

static void get_metrics(struct http_server *s, struct http_response *res)
{
	if (s->ops ? metrics_prometheus(ops_snapshot(s->ops), ops_not_ready(s->ops) == NULL, &res->body)
		   : node_metrics(s, &res->body)) {
		api_error(res, 500, "out of memory");
		return;
	}
	res->status = 200;
	res->type = "text/plain; version=0.0.4; charset=utf-8";
	res->api = true;
}

/* /api/clients: every worker lists its own clients on its own thread. */
struct clients_job {
	struct broker_job job;
	struct hconn *c;
	unsigned n_workers;
	struct client_list {
		struct client_info *a;
		uint32_t n, cap;
		bool oom;
	} lists[];
};

static void clients_run(struct broker_job *job, struct bworker *w)
{
	struct clients_job *cj = (struct clients_job *)job;
	struct client_list *l = &cj->lists[w->id];
	l->oom = broker_worker_list_clients(w, &l->a, &l->n, &l->cap) != 0;
}

static void clients_done(struct broker_job *job)
{
	struct clients_job *cj = (struct clients_job *)job;
	struct http_response res = { 0 };
	struct jw j = { 0 };
	uint64_t now = clock_mono_ms();
	jw_arr(&j);
	for (unsigned w = 0; w < cj->n_workers; w++) {
		const struct client_list *l = &cj->lists[w];
		j.oom |= l->oom;
		for (uint32_t i = 0; i < l->n; i++) {
			const struct client_info *ci = &l->a[i];
			jw_obj(&j);
			jw_key(&j, "client_id");
			jw_str(&j, ci->client_id);
			jw_key(&j, "address");
			jw_str(&j, ci->address);
			jw_key(&j, "protocol");
			jw_str(&j, client_protocol_name(ci->version));
			jw_key(&j, "listener");
			jw_u64(&j, ci->listener_port);
			jw_key(&j, "username");
			jw_str(&j, ci->username);
			jw_key(&j, "identity");
			jw_str(&j, ci->identity);
			jw_key(&j, "keepalive");
			jw_u64(&j, ci->keepalive);
			jw_key(&j, "inflight");
			jw_u64(&j, ci->inflight);
			jw_key(&j, "queued");
			jw_u64(&j, ci->queued);
			jw_key(&j, "msgs_received");
			jw_u64(&j, ci->msgs_received);
			jw_key(&j, "msgs_sent");
			jw_u64(&j, ci->msgs_sent);
			jw_key(&j, "bytes_received");
			jw_u64(&j, ci->bytes_received);
			jw_key(&j, "bytes_sent");
			jw_u64(&j, ci->bytes_sent);
			jw_key(&j, "connected_seconds");
			jw_u64(&j, (now - ci->connected_ms) / 1000);
			jw_key(&j, "worker");
			jw_u64(&j, (uint64_t)ci->worker);
			jw_obj_end(&j);
		}
		client_info_free(l->a, l->n);
	}
	jw_arr_end(&j);
	json_done(&res, &j);
	http_reply(cj->c, &res);
	free(cj);
}

static int get_clients(struct http_server *s, struct hconn *c, struct http_response *res)
{
	struct broker *b = ops_broker(s->ops);
	struct clients_job *cj = calloc(1, sizeof *cj + b->n_workers * sizeof cj->lists[0]);
	if (!cj) {
		api_error(res, 500, "out of memory");
		return 0;
	}
	cj->job.run = clients_run;
	cj->job.done = clients_done;
	cj->c = c;
	cj->n_workers = b->n_workers;
	if (broker_job_start(b, &cj->job, 0)) {
		free(cj);
		api_error(res, 503, "shutting down");
		return 0;
	}
	return 1;
}

static void get_sessions(struct http_server *s, struct http_response *res)
{
	struct session_info *a;
	uint32_t n;
	if (broker_list_sessions(ops_broker(s->ops), &a, &n)) {
		api_error(res, 500, "out of memory");
		return;
	}
	uint64_t now = clock_wall_ms();
	struct jw j = { 0 };
	jw_arr(&j);
	for (uint32_t i = 0; i < n; i++) {
		const struct session_info *si = &a[i];
		jw_obj(&j);
		jw_key(&j, "client_id");
		jw_str(&j, si->client_id);
		jw_key(&j, "connected");
		jw_bool(&j, si->connected);
		jw_key(&j, "queued");
		jw_u64(&j, si->queued);
		jw_key(&j, "queued_bytes");
		jw_u64(&j, si->queued_bytes);
		jw_key(&j, "oldest_age_seconds");
		if (si->oldest_ms)
			jw_u64(&j, now > si->oldest_ms ? (now - si->oldest_ms) / 1000 : 0);
		else
			jw_null(&j);
		jw_key(&j, "inflight");
		jw_u64(&j, si->inflight);
		jw_key(&j, "subscriptions");
		jw_u64(&j, si->subscriptions);
		jw_key(&j, "expiry_interval");
		jw_u64(&j, si->expiry_interval);
		jw_key(&j, "expires_in_seconds");
		if (si->expires_at)
			jw_u64(&j, si->expires_at > now ? (si->expires_at - now) / 1000 : 0);
		else
			jw_null(&j);
		jw_obj_end(&j);
	}
	jw_arr_end(&j);
	session_info_free(a, n);
	json_done(res, &j);
}

static void get_subscriptions(struct http_server *s, struct http_response *res)
{
	struct sub_info *a;
	uint32_t n;
	if (broker_list_subscriptions(ops_broker(s->ops), &a, &n)) {
		api_error(res, 500, "out of memory");
		return;
	}
	struct jw j = { 0 };
	jw_arr(&j);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t o = a[i].options;
		jw_obj(&j);
		jw_key(&j, "client_id");
		jw_str(&j, a[i].client_id);
		jw_key(&j, "filter");
		jw_str(&j, a[i].filter);
		jw_key(&j, "qos");
		jw_u64(&j, o & MQTT_SUBOPT_QOS_MASK);
		jw_key(&j, "no_local");
		jw_bool(&j, o & MQTT_SUBOPT_NO_LOCAL);
		jw_key(&j, "retain_as_published");
		jw_bool(&j, o & MQTT_SUBOPT_RAP);
		jw_key(&j, "retain_handling");
		jw_u64(&j, (o >> 4) & 3);
		jw_key(&j, "subscription_id");
		if (a[i].sub_id)
			jw_u64(&j, a[i].sub_id);
		else
			jw_null(&j);
		jw_obj_end(&j);
	}
	jw_arr_end(&j);
	sub_info_free(a, n);
	json_done(res, &j);
}

static void get_retained(struct http_server *s, struct http_response *res)
{
	struct retained_info *a;
	uint32_t n;
	if (broker_list_retained(ops_broker(s->ops), &a, &n)) {
		api_error(res, 500, "out of memory");
		return;
	}
	struct jw j = { 0 };
	jw_arr(&j);
	for (uint32_t i = 0; i < n; i++) {
		jw_obj(&j);
		jw_key(&j, "topic");
		jw_str(&j, a[i].topic);
		jw_key(&j, "bytes");
		jw_u64(&j, a[i].bytes);
		jw_key(&j, "qos");
		jw_u64(&j, a[i].qos);
		jw_obj_end(&j);
	}
	jw_arr_end(&j);
	retained_info_free(a, n);
	json_done(res, &j);
}

static void bool_answer(struct http_response *res, const char *key)
{
	struct jw j = { 0 };
	jw_obj(&j);
	jw_key(&j, key);
	jw_bool(&j, true);
	jw_obj_end(&j);
	json_done(res, &j);
}

static void post_kick(struct http_server *s, const char *id, size_t len, struct http_response *res)
{
	if (broker_kick(ops_broker(s->ops), id, len, MQTT_RC_ADMIN_ACTION))
		api_error(res, 404, "no connected client with that id");
	else
		bool_answer(res, "kicked");
}

static void delete_session(struct http_server *s, const char *id, size_t len, struct http_response *res)
{
	struct broker *b = ops_broker(s->ops);
	if (broker_delete_session(&b->workers[0], id, len, MQTT_RC_ADMIN_ACTION))
		api_error(res, 404, "no session with that id");
	else
		bool_answer(res, "deleted");
}

static void post_reload(struct http_server *s, struct http_response *res)
{
	struct reload_result *r = malloc(sizeof *r);
	if (!r) {
		api_error(res, 500, "out of memory");
		return;
	}
	if (s->ops)
		ops_reload(s->ops, "HTTP reload", r);
	else
		ops_node_reload(s->node, "HTTP reload", r);
	struct jw j = { 0 };
	jw_obj(&j);
	jw_key(&j, "reloaded");
	jw_bool(&j, r->n == 0);
	jw_key(&j, "errors");
	jw_arr(&j);
	for (unsigned i = 0; i < r->n; i++)
		jw_str(&j, r->errors[i]);
	jw_arr_end(&j);
	jw_obj_end(&j);
	free(r);
	json_done(res, &j);
}

/* ---- cluster ---- */

static const char *change_name(int kind)
{
	switch (kind) {
	case CLUSTER_CHANGE_ADD: return "add";
	case CLUSTER_CHANGE_REMOVE: return "remove";
	case CLUSTER_CHANGE_TRANSFER: return "transfer";
	}
	return "none";
}

static void leader_json(struct jw *j, const struct cluster_status *st)
{
	jw_key(j, "leader_id");
	if (st->leader_id)
		jw_u64(j, st->leader_id);
	else
		jw_null(j);
	jw_key(j, "leader_address");
	jw_str(j, st->leader_id ? st->leader_address : NULL);
}

/* This node's view of the cluster: state, term, leader, indexes, peers
 * (match index and lag are known on the leader only: null elsewhere) and
 * the last membership change asked here. */
static void cluster_json(struct jw *j, const struct cluster_status *st, const char *not_ready)
{
	static const struct { const char *key; size_t off; } indexes[] = {
		{ "term", offsetof(struct cluster_status, term) },
		{ "commit_index", offsetof(struct cluster_status, commit_index) },
		{ "applied_index", offsetof(struct cluster_status, applied_index) },
		{ "last_index", offsetof(struct cluster_status, last_index) },
		{ "snapshots", offsetof(struct cluster_status, snapshots) },
		{ "restores", offsetof(struct cluster_status, restores) },
	};
	jw_key(j, "node_id");
	jw_u64(j, st->node_id);
	jw_key(j, "role");
	jw_str(j, cluster_role_name(st->role));
	jw_key(j, "state");
	jw_str(j, cluster_state_name(st->state));
	jw_key(j, "serving");
	jw_bool(j, not_ready == NULL);
	jw_key(j, "not_ready");
	jw_str(j, not_ready);
	leader_json(j, st);
	for (size_t k = 0; k < sizeof indexes / sizeof indexes[0]; k++) {
		jw_key(j, indexes[k].key);
		jw_u64(j, *(const uint64_t *)((const char *)st + indexes[k].off));
	}
	jw_key(j, "peers");
	jw_arr(j);
	for (unsigned i = 0; i < st->n_peers && i < CLUSTER_MAX_NODES; i++) {
		const struct cluster_peer_status *p = &st->peers[i];
		jw_obj(j);
		jw_key(j, "id");
		jw_u64(j, p->id);
		jw_key(j, "address");
		jw_str(j, p->address);
		jw_key(j, "voter");
		jw_bool(j, p->voter);
		jw_key(j, "match_index");
		if (p->has_match)
			jw_u64(j, p->match_index);
		else
			jw_null(j);
		jw_key(j, "lag");
		if (p->has_match)
			jw_u64(j, p->lag);
		else
			jw_null(j);
		jw_obj_end(j);
	}
	jw_arr_end(j);
	jw_key(j, "change");
	if (!st->change_kind) {
		jw_null(j);
		return;
	}
	jw_obj(j);
	jw_key(j, "kind");
	jw_str(j, change_name(st->change_kind));
	jw_key(j, "id");
	jw_u64(j, st->change_id);
	jw_key(j, "pending");
	jw_bool(j, st->change_pending);
	jw_key(j, "error");
	jw_str(j, st->change_pending || !st->change_err ? NULL : cluster_strerror(st->change_err));
	jw_obj_end(j);
}

/* /api/cluster: {"cluster":false} on a single broker. */
static void get_cluster(struct http_server *s, struct http_response *res)
{
	struct cluster_node *n = s->node->cluster;
	struct jw j = { 0 };
	jw_obj(&j);
	jw_key(&j, "cluster");
	jw_bool(&j, n != NULL);
	if (n) {
		struct cluster_status st;
		cluster_status(n, &st);
		cluster_json(&j, &st, not_ready(s));
	}
	jw_obj_end(&j);
	json_done(res, &j);
}

/* The answer to a membership request cluster_request refused (rc). */
static void cluster_refused(struct http_response *res, struct cluster_node *n, int rc)
{
	int e = rc < 0 ? -rc : rc;
	if (e == CLUSTER_ENOTLEADER) {
		/* Where to ask instead. */
		struct cluster_status st;
		cluster_status(n, &st);
		struct jw j = { 0 };
		jw_obj(&j);
		jw_key(&j, "error");
		jw_str(&j, st.leader_id ? "this node is not the leader: ask the leader"
				       : "this node is not the leader, and no leader is known now");
		leader_json(&j, &st);
		jw_obj_end(&j);
		json_done(res, &j);
		res->status = res->status == 200 ? 409 : res->status;
		return;
	}
	int status = e == CLUSTER_EBUSY ? 409 : e == FM_EINVAL ? 400 : e == CLUSTER_ESHUTDOWN ? 503 : 500;
	api_error(res, status, cluster_strerror(rc));
}

/* Queues kind for id (and address) and answers 202, or says why not. */
static void cluster_change(struct http_server *s, enum cluster_change kind, uint64_t id, const char *address,
			   struct http_response *res)
{
	struct cluster_node *n = s->node->cluster;
	int rc = cluster_request(n, kind, id, address);
	if (rc) {
		cluster_refused(res, n, rc);
		return;
	}
	log_notice("http: cluster %s of node %llu%s%s asked", change_name(kind), (unsigned long long)id,
		   address ? " at " : "", address ? address : "");
	struct jw j = { 0 };
	jw_obj(&j);
	jw_key(&j, "queued");
	jw_bool(&j, true);
	jw_key(&j, "kind");
	jw_str(&j, change_name(kind));
	jw_key(&j, "id");
	jw_u64(&j, id);
	jw_obj_end(&j);
	json_done(res, &j);
	res->status = res->status == 200 ? 202 : res->status;
}

/* POST /api/cluster/nodes {"id":N,"address":"HOST:PORT"} and POST
 * /api/cluster/transfer {"id":N} (0 or no body: the best other node). */
static void post_cluster(struct http_server *s, const struct http_request *req, enum cluster_change kind,
			 struct http_response *res)
{
	struct cluster_body body = { 0 };
	char why[320];
	if (!(kind == CLUSTER_CHANGE_TRANSFER && req->body_len == 0) &&
	    cluster_body_parse(req->body, req->body_len, &body, why, sizeof why)) {
		api_error(res, 400, why);
		return;
	}
	if (kind == CLUSTER_CHANGE_TRANSFER) {
		if (body.has_address)
			api_error(res, 400, "a transfer takes only \"id\" (0 or none: the best other node)");
		else
			cluster_change(s, kind, body.id, NULL, res);
		return;
	}
	if (!body.has_id || !body.id || !body.has_address) {
		api_error(res, 400, "adding a node needs {\"id\": N (1 or more), \"address\": \"HOST:PORT\"}");
		return;
	}
	char aerr[256];
	if (cluster_address_check(body.address, aerr, sizeof aerr)) {
		snprintf(why, sizeof why, "address: %s", aerr);
		api_error(res, 400, why);
		return;
	}
	cluster_change(s, kind, body.id, body.address, res);
}

/* DELETE /api/cluster/nodes/N. */
static void delete_cluster_node(struct http_server *s, const char *id, size_t len, struct http_response *res)
{
	uint64_t v = 0;
	size_t i = 0;
	for (; i < len && id[i] >= '0' && id[i] <= '9' && v <= (UINT64_MAX - 9) / 10; i++)
		v = v * 10 + (uint64_t)(id[i] - '0');
	if (!len || i != len || !v || (id[0] == '0')) {
		api_error(res, 400, "the node id in /api/cluster/nodes/ID is a whole number of 1 or more");
		return;
	}
	cluster_change(s, CLUSTER_CHANGE_REMOVE, v, NULL, res);
}

static bool serve_asset(const char *name, size_t len, struct http_response *res)
{
	for (unsigned i = 0; i < http_n_assets; i++) {
		if (strlen(http_assets[i].name) == len && !memcmp(http_assets[i].name, name, len)) {
			res->status = 200;
			res->type = http_assets[i].type;
			res->fixed = http_assets[i].data;
			res->fixed_len = http_assets[i].len;
			return true;
		}
	}
	return false;
}

/* What a witness does not serve (it runs no broker: no clients, sessions,
 * retained messages or dashboard): 404, saying where they are. */
static void witness_not_found(struct http_server *s, struct http_response *res)
{
	char why[256 + CLUSTER_ADDRESS_MAX];
	struct cluster_status st = { 0 };
	if (s->node->cluster)
		cluster_status(s->node->cluster, &st);
	if (st.leader_id && st.leader_id != st.node_id)
		snprintf(why, sizeof why, "not found: this node is a witness (cluster_role witness): it runs no broker, "
			 "so no clients, sessions, retained messages or dashboard; the broker that serves is the "
			 "leader, node %llu at %s (its cluster address)", (unsigned long long)st.leader_id,
			 st.leader_address);
	else
		snprintf(why, sizeof why, "not found: this node is a witness (cluster_role witness): it runs no broker, "
			 "so no clients, sessions, retained messages or dashboard; it serves /healthz, /readyz, "
			 "/metrics and /api/cluster");
	api_error(res, 404, why);
}

/* ---- routing ---- */

static bool is(const char *path, size_t len, const char *want)
{
	return strlen(want) == len && !memcmp(path, want, len);
}

static bool method(const struct http_request *req, const char *m)
{
	return strlen(m) == req->method_len && !memcmp(req->method, m, req->method_len);
}

static void not_allowed(struct http_response *res, const char *allow)
{
	api_error(res, 405, "method not allowed");
	snprintf(res->headers, sizeof res->headers, "Allow: %s\r\n", allow);
}

/* "/api/clients/<id>/kick" and "/api/sessions/<id>": decodes the id into
 * out. Returns its length, or -1 when path is not prefix + id + suffix. */
static long path_id(const char *path, size_t len, const char *prefix, const char *suffix, char *out, size_t cap)
{
	size_t pl = strlen(prefix), sl = strlen(suffix);
	if (len <= pl + sl || memcmp(path, prefix, pl) || memcmp(path + len - sl, suffix, sl))
		return -1;
	if (memchr(path + pl, '/', len - pl - sl))
		return -1;
	return http_pct_decode(path + pl, len - pl - sl, out, cap);
}

/* The cookie login: GET /?token=T with the right token sets the cookie. */
static bool token_login(struct http_server *s, const char *q, size_t qlen, struct http_response *res)
{
	char tok[TOKEN_MAX];
	long n = http_query_get(q, qlen, "token", tok, sizeof tok);
	if (n < 0)
		return false;
	if (!ops_node_token_matches(s->node, tok, (size_t)n)) {
		unauthorized(res);
		return true;
	}
	res->status = 303;
	res->type = TEXT_TYPE;
	res->api = true;
	/* The token was checked: it is safe to echo into the header. */
	snprintf(res->headers, sizeof res->headers,
		 "Location: /\r\nSet-Cookie: ferromq_token=%s; HttpOnly; SameSite=Strict; Path=/\r\n", tok);
	return true;
}

int api_dispatch(struct http_server *s, struct hconn *c, const struct http_request *req, struct http_response *res)
{
	const char *path = req->target;
	const char *q = memchr(path, '?', req->target_len);
	size_t plen = q ? (size_t)(q - path) : req->target_len;
	size_t qlen = q ? req->target_len - plen - 1 : 0;
	q = q ? q + 1 : "";
	/* HEAD is answered as GET; the server sends no body [RFC 9110 9.3.2]. */
	bool get = method(req, "GET") || method(req, "HEAD");
	char id[HTTP_MAX_TARGET + 1];
	long idlen;

	if (is(path, plen, "/healthz")) {
		if (!get)
			not_allowed(res, "GET, HEAD");
		else
			text(res, 200, "ok\n");
		return 0;
	}
	if (s->ops && is(path, plen, "/") && get && token_login(s, q, qlen, res))
		return 0;
	char user[256] = "";
	enum api_grant grant = grant_of(s, req, user, sizeof user);
	if (grant == GRANT_NONE) {
		unauthorized(res);
		return 0;
	}
	if (grant == GRANT_FORBIDDEN) {
		log_notice("http %s: user %s of password_file has no HTTP API grant (http_admin_users, "
			   "http_readonly_users): %.*s %.*s refused (403)", hconn_peer(c), user, (int)req->method_len,
			   req->method, (int)plen, path);
		api_error(res, 403, "this user has no HTTP API grant: add it to http_admin_users or "
				    "http_readonly_users in the broker's configuration");
		return 0;
	}
	if (!get && cross_site(req)) {
		api_error(res, 403, "cross-site request refused");
		return 0;
	}
	if (!get && grant == GRANT_READ) {
		log_notice("http %s: user %s is read-only (http_readonly_users): %.*s %.*s refused (403)",
			   hconn_peer(c), user, (int)req->method_len, req->method, (int)plen, path);
		api_error(res, 403, "this user may only read (http_readonly_users); changes need http_admin_users");
		return 0;
	}
	if (is(path, plen, "/readyz")) {
		const char *why = not_ready(s);
		if (!get) {
			not_allowed(res, "GET, HEAD");
		} else if (why) {
			text(res, 503, why);
			buf_append(&res->body, "\n", 1);
		} else {
			text(res, 200, "ready\n");
		}
	} else if (is(path, plen, "/metrics")) {
		if (get)
			get_metrics(s, res);
		else
			not_allowed(res, "GET, HEAD");
	} else if (is(path, plen, "/api/cluster")) {
		if (get)
			get_cluster(s, res);
		else
			not_allowed(res, "GET, HEAD");
	} else if (!get && plen > 13 && !memcmp(path, "/api/cluster/", 13) && !s->node->cluster) {
		api_error(res, 409, "this broker is not in a cluster (no cluster_node_id in its configuration)");
	} else if (is(path, plen, "/api/cluster/nodes") || is(path, plen, "/api/cluster/transfer")) {
		if (method(req, "POST"))
			post_cluster(s, req,
				     is(path, plen, "/api/cluster/nodes") ? CLUSTER_CHANGE_ADD : CLUSTER_CHANGE_TRANSFER, res);
		else
			not_allowed(res, "POST");
	} else if ((idlen = path_id(path, plen, "/api/cluster/nodes/", "", id, sizeof id)) >= 0) {
		if (method(req, "DELETE"))
			delete_cluster_node(s, id, (size_t)idlen, res);
		else
			not_allowed(res, "DELETE");
	} else if (is(path, plen, "/api/reload")) {
		if (method(req, "POST"))
			post_reload(s, res);
		else
			not_allowed(res, "POST");
	} else if (!s->ops) {
		witness_not_found(s, res);
	} else if (is(path, plen, "/api/status") || is(path, plen, "/api/clients") || is(path, plen, "/api/sessions") ||
		   is(path, plen, "/api/subscriptions") || is(path, plen, "/api/retained") || is(path, plen, "/api/bridges") ||
		   is(path, plen, "/api/devices") || is(path, plen, "/api/sparkplug")) {
		if (!get)
			not_allowed(res, "GET, HEAD");
		else if (is(path, plen, "/api/status"))
			get_status(s, res);
		else if (is(path, plen, "/api/clients"))
			return get_clients(s, c, res);
		else if (is(path, plen, "/api/sessions"))
			get_sessions(s, res);
		else if (is(path, plen, "/api/subscriptions"))
			get_subscriptions(s, res);
		else if (is(path, plen, "/api/bridges"))
			get_bridges(s, res);
		else if (is(path, plen, "/api/devices"))
			get_devices(s, res);
		else if (is(path, plen, "/api/sparkplug"))
			get_sparkplug(s, res);
		else
			get_retained(s, res);
	} else if ((idlen = path_id(path, plen, "/api/clients/", "/kick", id, sizeof id)) >= 0) {
		if (method(req, "POST"))
			post_kick(s, id, (size_t)idlen, res);
		else
			not_allowed(res, "POST");
	} else if ((idlen = path_id(path, plen, "/api/sessions/", "", id, sizeof id)) >= 0) {
		if (method(req, "DELETE"))
			delete_session(s, id, (size_t)idlen, res);
		else
			not_allowed(res, "DELETE");
	} else if (is(path, plen, "/") || (plen > 8 && !memcmp(path, "/assets/", 8))) {
		if (!get)
			not_allowed(res, "GET, HEAD");
		else if (!(is(path, plen, "/") ? serve_asset("index.html", 10, res)
					       : serve_asset(path + 8, plen - 8, res)))
			api_error(res, 404, "no such file");
	} else if (plen >= 5 && (!memcmp(path, "/api/", 5))) {
		api_error(res, 404, "no such endpoint");
	} else {
		api_error(res, 404, "not found");
	}
	return 0;
}
