/* The metric table and its Prometheus rendering. */
#include "metrics.h"
#include "devices.h"
#include "sparkplug.h"
#include "../base/err.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DROP_ROW(reason)                                                                            \
	{ #reason, "$SYS/broker/messages/dropped/" #reason, "ferromq_dropped_messages_total",       \
	  "reason=\"" #reason "\"", true, "Messages dropped, by reason.", NULL }

const struct metric_def metric_defs[M__COUNT] = {
	[M_MESSAGES_RECEIVED] = { "messages_received", "$SYS/broker/messages/received",
				  "ferromq_messages_received_total", NULL, true, "PUBLISH packets received.", NULL },
	[M_MESSAGES_SENT] = { "messages_sent", "$SYS/broker/messages/sent", "ferromq_messages_sent_total", NULL,
			      true, "PUBLISH packets sent.", NULL },
	[M_BYTES_RECEIVED] = { "bytes_received", "$SYS/broker/bytes/received", "ferromq_bytes_received_total",
			       NULL, true, "Bytes received from clients.", NULL },
	[M_BYTES_SENT] = { "bytes_sent", "$SYS/broker/bytes/sent", "ferromq_bytes_sent_total", NULL, true,
			   "Bytes of PUBLISH packets sent to clients.", NULL },
	[M_CLIENTS_CONNECTED] = { "clients_connected", "$SYS/broker/clients/connected", "ferromq_clients_connected",
				  NULL, false, "Clients connected now.", NULL },
	[M_CLIENTS_DISCONNECTED] = { "clients_disconnected", "$SYS/broker/clients/disconnected",
				     "ferromq_clients_disconnected", NULL, false,
				     "Sessions kept for clients that are offline.", NULL },
	[M_CLIENTS_MAXIMUM] = { "clients_maximum", "$SYS/broker/clients/maximum", "ferromq_clients_maximum", NULL,
				false, "Most clients connected at once since start.", NULL },
	[M_CLIENTS_TOTAL] = { "clients_total", "$SYS/broker/clients/total", "ferromq_clients_total", NULL, true,
			      "Client connections accepted (CONNACK success) since start.", NULL },
	[M_SUBSCRIPTIONS] = { "subscriptions", "$SYS/broker/subscriptions/count", "ferromq_subscriptions", NULL,
			      false, "Subscriptions, shared ones included.", NULL },
	/* Mosquitto's name, and the one without a space that articles and tools
	 * quote (a space in a topic is legal but awkward in shells). */
	[M_RETAINED_MESSAGES] = { "retained_messages", "$SYS/broker/retained messages/count",
				  "ferromq_retained_messages", NULL, false, "Retained messages, $SYS included.",
				  "$SYS/broker/retained/messages/count" },
	[M_QUEUED_MESSAGES] = { "queued_messages", "$SYS/broker/messages/queued", "ferromq_queued_messages", NULL,
				false, "Messages waiting in session queues.", NULL },
	[M_QUEUED_BYTES] = { "queued_bytes", "$SYS/broker/bytes/queued", "ferromq_queued_bytes", NULL, false,
			     "Payload bytes waiting in session queues.", NULL },
	[M_INFLIGHT_MESSAGES] = { "inflight_messages", "$SYS/broker/messages/inflight", "ferromq_inflight_messages",
				  NULL, false, "QoS 1/2 messages sent and not yet acknowledged.", NULL },
	[M_HEAP_BYTES] = { "heap_bytes", "$SYS/broker/heap/current", "ferromq_heap_bytes", NULL, false,
			   "Heap bytes allocated now.", NULL },
	[M_HEAP_MAX_BYTES] = { "heap_max_bytes", "$SYS/broker/heap/maximum", "ferromq_heap_max_bytes", NULL, false,
			       "Most heap bytes allocated at a sample since start.", NULL },
	[M_STORE_BYTES] = { "store_bytes", "$SYS/broker/store/bytes", "ferromq_store_bytes", NULL, false,
			    "Size of the durable store on disk (database and WAL).", NULL },
	[M_UPTIME_SECONDS] = { "uptime_seconds", "$SYS/broker/uptime", "ferromq_uptime_seconds", NULL, false,
			       "Seconds since the broker started.", NULL },
	[M_DROPS + DROP_QUEUE_FULL] = DROP_ROW(queue_full),
	[M_DROPS + DROP_EXPIRED] = DROP_ROW(expired),
	[M_DROPS + DROP_TOO_LARGE] = DROP_ROW(too_large),
	[M_DROPS + DROP_NOT_AUTHORIZED] = DROP_ROW(not_authorized),
	[M_DROPS + DROP_QOS0_OFFLINE] = DROP_ROW(qos0_offline),
};

const struct rate_def rate_defs[R__COUNT] = {
	[R_MESSAGES_RECEIVED] = { M_MESSAGES_RECEIVED, "messages_received", "$SYS/broker/load/messages/received",
				  "ferromq_messages_received_per_second" },
	[R_MESSAGES_SENT] = { M_MESSAGES_SENT, "messages_sent", "$SYS/broker/load/messages/sent",
			      "ferromq_messages_sent_per_second" },
	[R_BYTES_RECEIVED] = { M_BYTES_RECEIVED, "bytes_received", "$SYS/broker/load/bytes/received",
			       "ferromq_bytes_received_per_second" },
	[R_BYTES_SENT] = { M_BYTES_SENT, "bytes_sent", "$SYS/broker/load/bytes/sent",
			   "ferromq_bytes_sent_per_second" },
};

const char *const rate_window_names[RATE__WINDOWS] = { "1m", "5m", "15m" };

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, (size_t)n + 1))
		return -FM_ENOMEM;
	va_start(ap, fmt);
	vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (uint32_t)n;
	return 0;
}

static int family(struct buf *out, const char *name, const char *type, const char *help)
{
	return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *const worker_families[][3] = {
	{ "ferromq_worker_messages_received_total", "PUBLISH packets received, per worker." },
	{ "ferromq_worker_messages_sent_total", "PUBLISH packets sent, per worker." },
	{ "ferromq_worker_bytes_received_total", "Bytes received, per worker." },
	{ "ferromq_worker_bytes_sent_total", "Bytes of PUBLISH packets sent, per worker." },
};

static uint64_t worker_value(const struct stats_local *w, int i)
{
	const uint64_t v[] = { w->msgs_received, w->msgs_sent, w->bytes_received, w->bytes_sent };
	return v[i];
}

/* The per-bridge values of a status, in bridge_families' order. */
static int64_t bridge_value(const struct bridge_status *b, int f)
{
	const int64_t v[] = { b->connected, (int64_t)b->spool_messages, (int64_t)b->spool_bytes,
			      (int64_t)b->oldest_age_s, b->drain_s, (int64_t)b->sent, (int64_t)b->received,
			      (int64_t)b->reduced };
	return v[f];
}

static const char *const bridge_families[][3] = {
	{ "ferromq_bridge_connected", "gauge", "1 while the bridge is connected to its remote broker." },
	{ "ferromq_bridge_spool_messages", "gauge", "Messages in the bridge's spool, waiting for the remote's PUBACK." },
	{ "ferromq_bridge_spool_bytes", "gauge", "Payload bytes in the bridge's spool." },
	{ "ferromq_bridge_spool_oldest_age_seconds", "gauge", "Age of the oldest message in the spool." },
	{ "ferromq_bridge_spool_drain_seconds", "gauge",
	  "Estimated seconds to empty the spool at the recent acknowledgement rate; -1 while not sending." },
	{ "ferromq_bridge_messages_sent_total", "counter", "PUBLISH packets sent to the remote (resends included)." },
	{ "ferromq_bridge_messages_received_total", "counter", "PUBLISH packets received from the remote." },
	{ "ferromq_bridge_messages_reduced_total", "counter",
	  "Messages not forwarded by data reduction (report_by_exception, deadband, min_interval)." },
};

static int bridges_prometheus(const struct metrics_snapshot *s, struct buf *out)
{
	int rc = 0;
	if (!s->n_bridges)
		return 0;
	for (int f = 0; f < (int)(sizeof bridge_families / sizeof bridge_families[0]) && !rc; f++) {
		rc = family(out, bridge_families[f][0], bridge_families[f][1], bridge_families[f][2]);
		for (unsigned i = 0; i < s->n_bridges && !rc; i++)
			rc = buf_printf(out, "%s{bridge=\"%s\"} %lld\n", bridge_families[f][0], s->bridges[i].name,
					(long long)bridge_value(&s->bridges[i], f));
	}
	if (!rc)
		rc = family(out, "ferromq_bridge_dropped_total", "counter",
			    "Messages a bridge did not forward, by reason (spool_full, remote_refused, echo, expired).");
	for (unsigned i = 0; i < s->n_bridges && !rc; i++)
		for (int r = 0; r < BRIDGE_DROP__COUNT && !rc; r++)
			rc = buf_printf(out, "ferromq_bridge_dropped_total{bridge=\"%s\",reason=\"%s\"} %llu\n",
					s->bridges[i].name, bridge_drop_names[r],
					(unsigned long long)s->bridges[i].dropped[r]);
	return rc;
}

/* A label value: backslash, double quote and line feed escaped (format 0.0.4). */
static int label_value(struct buf *out, const char *v)
{
	int rc = 0;
	for (const char *p = v; *p && !rc; p++) {
		if (*p == '\\' || *p == '"')
			rc = buf_printf(out, "\\%c", *p);
		else if (*p == '\n')
			rc = buf_append(out, "\\n", 2);
		else
			rc = buf_append(out, p, 1);
	}
	return rc;
}

/* The sessions the queue_share alert names, and how many are over the share. */
static int queue_share_prometheus(const struct metrics_snapshot *s, struct buf *out)
{
	int rc = family(out, "ferromq_queue_share_sessions", "gauge",
			"Sessions whose queue is over alert_queue_share_percent of its limit.");
	if (!rc)
		rc = buf_printf(out, "ferromq_queue_share_sessions %u\n", s->n_queue_over);
	if (!rc)
		rc = family(out, "ferromq_queue_share_percent", "gauge",
			    "Share of its queue limit a session over alert_queue_share_percent uses (the fullest "
			    "8 sessions).");
	for (uint32_t i = 0; i < s->n_queue_named && !rc; i++) {
		rc = buf_printf(out, "ferromq_queue_share_percent{client_id=\"");
		if (!rc)
			rc = label_value(out, s->queue_over[i].client_id);
		if (!rc)
			rc = buf_printf(out, "\"} %.2f\n", s->queue_over[i].share);
	}
	return rc;
}

int metrics_cluster_prometheus(const struct cluster_status *st, double no_leader_s, struct buf *out)
{
	/* The state, term, leader, indexes, snapshots and lag: 16 peers' lines
	 * and the fixed families fit well within this. */
	char text[8192];
	int n = cluster_status_prometheus(st, text, sizeof text);
	int rc = n < 0 ? -FM_ENOMEM : buf_append(out, text, (size_t)n);
	if (!rc)
		rc = family(out, "ferromq_cluster_role", "gauge", "This node's cluster role (1 for its own).");
	for (int r = CLUSTER_ROLE_BROKER; r <= CLUSTER_ROLE_WITNESS && !rc; r++)
		rc = buf_printf(out, "ferromq_cluster_role{role=\"%s\"} %d\n", cluster_role_name((enum cluster_role)r),
				st->role == (enum cluster_role)r);
	if (!rc)
		rc = family(out, "ferromq_cluster_node_id", "gauge", "This node's id (cluster_node_id).");
	if (!rc)
		rc = buf_printf(out, "ferromq_cluster_node_id %llu\n", (unsigned long long)st->node_id);
	if (!rc)
		rc = family(out, "ferromq_cluster_last_index", "gauge", "Index of the last entry of this node's log.");
	if (!rc)
		rc = buf_printf(out, "ferromq_cluster_last_index %llu\n", (unsigned long long)st->last_index);
	if (!rc)
		rc = family(out, "ferromq_cluster_restores_total", "counter",
			    "Snapshots installed on this node (sent by a leader) since it started.");
	if (!rc)
		rc = buf_printf(out, "ferromq_cluster_restores_total %llu\n", (unsigned long long)st->restores);
	if (!rc)
		rc = family(out, "ferromq_cluster_peer_match_index", "gauge",
			    "Highest index a peer's log is known to hold (leader only).");
	for (unsigned i = 0; i < st->n_peers && i < CLUSTER_MAX_NODES && !rc; i++)
		if (st->peers[i].has_match)
			rc = buf_printf(out, "ferromq_cluster_peer_match_index{peer=\"%llu\"} %llu\n",
					(unsigned long long)st->peers[i].id, (unsigned long long)st->peers[i].match_index);
	if (!rc)
		rc = family(out, "ferromq_cluster_no_leader_seconds", "gauge",
			    "Seconds this node has known no leader (0 while it knows one).");
	if (!rc)
		rc = buf_printf(out, "ferromq_cluster_no_leader_seconds %.3f\n", no_leader_s);
	return rc;
}

void metrics_queue_over_free(struct metrics_snapshot *s)
{
	for (uint32_t i = 0; i < s->n_queue_named; i++)
		free(s->queue_over[i].client_id);
	s->n_queue_named = s->n_queue_over = 0;
}

/* The last families of every node's /metrics. */
static int ready_and_build(bool ready, struct buf *out)
{
	int rc = family(out, "ferromq_ready", "gauge", "1 when /readyz answers 200.");
	if (!rc)
		rc = buf_printf(out, "ferromq_ready %d\n", ready);
	if (!rc)
		rc = family(out, "ferromq_build_info", "gauge", "The broker's version, as a label.");
	if (!rc)
		rc = buf_printf(out, "ferromq_build_info{version=\"%s\"} 1\n", FM_VERSION);
	return rc;
}

int metrics_prometheus(const struct metrics_snapshot *s, bool ready, struct buf *out)
{
	int rc = 0;
	for (int i = 0; i < M__COUNT && !rc; i++) {
		const struct metric_def *d = &metric_defs[i];
		/* Rows of one family are adjacent in the table: HELP and TYPE once. */
		if (i == 0 || strcmp(metric_defs[i - 1].prom, d->prom))
			rc = family(out, d->prom, d->counter ? "counter" : "gauge", d->help);
		if (!rc)
			rc = d->label ? buf_printf(out, "%s{%s} %llu\n", d->prom, d->label, (unsigned long long)s->v[i])
				      : buf_printf(out, "%s %llu\n", d->prom, (unsigned long long)s->v[i]);
	}
	for (int r = 0; r < R__COUNT && !rc; r++) {
		const struct rate *rt = &s->rates[r];
		rc = family(out, rate_defs[r].prom, "gauge",
			    "Per second: over the last sample (now) and averaged over 1, 5 and 15 minutes.");
		if (!rc)
			rc = buf_printf(out, "%s{window=\"now\"} %.3f\n", rate_defs[r].prom, rt->now);
		for (int w = 0; w < RATE__WINDOWS && !rc; w++)
			rc = buf_printf(out, "%s{window=\"%s\"} %.3f\n", rate_defs[r].prom, rate_window_names[w],
					rt->ewma[w]);
	}
	for (int f = 0; f < 4 && !rc; f++) {
		rc = family(out, worker_families[f][0], "counter", worker_families[f][1]);
		for (unsigned w = 0; w < s->n_workers && !rc; w++)
			rc = buf_printf(out, "%s{worker=\"%u\"} %llu\n", worker_families[f][0], w,
					(unsigned long long)worker_value(&s->workers[w], f));
	}
	if (!rc)
		rc = family(out, "ferromq_listener_connections", "gauge", "Open connections, per MQTT listener port.");
	for (unsigned l = 0; l < s->n_listeners && !rc; l++)
		rc = buf_printf(out, "ferromq_listener_connections{listener=\"%u\"} %u\n", s->listener_port[l],
				s->listener_open[l]);
	static const char *const alert_families[][2] = {
		{ "ferromq_alert_firing", "1 while the alert rule fires, else 0." },
		{ "ferromq_alert_value", "The value the alert rule compares with its threshold (percent)." },
		{ "ferromq_alert_threshold", "The alert rule's threshold (percent)." },
	};
	for (int f = 0; f < 3 && !rc; f++) {
		rc = family(out, alert_families[f][0], "gauge", alert_families[f][1]);
		for (int a = 0; a < ALERT__COUNT && !rc; a++) {
			const struct alert_state *st = &s->alerts[a];
			if (!alert_applies((enum alert_id)a, s->cluster))
				continue;
			double v = f == 0 ? st->firing : f == 1 ? st->value : st->threshold;
			rc = buf_printf(out, "%s{name=\"%s\"} %.6g\n", alert_families[f][0], alert_name((enum alert_id)a), v);
		}
	}
	if (!rc)
		rc = queue_share_prometheus(s, out);
	if (!rc)
		rc = bridges_prometheus(s, out);
	if (!rc)
		rc = devices_prometheus(s->devices, s->n_devices, out);
	if (!rc && s->sparkplug)
		rc = sparkplug_prometheus(&s->spb, out);
	if (!rc && s->cluster)
		rc = metrics_cluster_prometheus(&s->cluster_st, s->no_leader_s, out);
	return rc ? rc : ready_and_build(ready, out);
}

int metrics_node_prometheus(const struct cluster_status *st, double no_leader_s, bool ready, struct buf *out)
{
	int rc = st ? metrics_cluster_prometheus(st, no_leader_s, out) : 0;
	return rc ? rc : ready_and_build(ready, out);
}
