/* $SYS topics: mosquitto's names where they exist ($SYS/broker/messages/received,
 * .../load/messages/received/1min, ...), ours for queues, drops and the store. */
#include "sys.h"
#include "../base/log.h"
#include <stdio.h>
#include <string.h>

static void publish_into(char *last, size_t last_size, struct bworker *w, const char *topic, const char *payload)
{
	if (!strcmp(last, payload))
		return;
	if (broker_publish_sys(w, topic, payload, strlen(payload)))
		return; /* out of memory: tried again next time */
	snprintf(last, last_size, "%s", payload);
}

static void publish_if_changed(struct sys_state *st, unsigned slot, struct bworker *w, const char *topic,
			       const char *payload)
{
	publish_into(st->last[slot], sizeof st->last[slot], w, topic, payload);
}

/* A metric's topic and its alias, if any, carry the same value. */
static void publish_metric(struct sys_state *st, unsigned slot, struct bworker *w, const struct metric_def *d,
			   const char *payload)
{
	char *last = st->last[slot];
	if (!strcmp(last, payload))
		return;
	size_t len = strlen(payload);
	/* Out of memory: both are tried again next time. */
	if (broker_publish_sys(w, d->sys, payload, len) || (d->sys_alias && broker_publish_sys(w, d->sys_alias, payload, len)))
		return;
	snprintf(last, sizeof st->last[slot], "%s", payload);
}

/* $SYS/broker/bridges/NAME/...: connected, spool/{messages,bytes,oldest_age,drain_seconds},
 * messages/{sent,received,reduced}, dropped/REASON. */
static void sys_publish_bridges(struct sys_state *st, struct bworker *w, const struct metrics_snapshot *s)
{
	static const char *const names[8] = { "connected", "spool/messages", "spool/bytes", "spool/oldest_age",
					      "spool/drain_seconds", "messages/sent", "messages/received",
					      "messages/reduced" };
	for (unsigned i = 0; i < s->n_bridges; i++) {
		const struct bridge_status *b = &s->bridges[i];
		const int64_t v[8] = { b->connected, (int64_t)b->spool_messages, (int64_t)b->spool_bytes,
				       (int64_t)b->oldest_age_s, b->drain_s, (int64_t)b->sent, (int64_t)b->received,
				       (int64_t)b->reduced };
		char topic[160], payload[24];
		for (unsigned k = 0; k < SYS_BRIDGE_SLOTS; k++) {
			if (k < 8) {
				snprintf(topic, sizeof topic, "$SYS/broker/bridges/%s/%s", b->name, names[k]);
				snprintf(payload, sizeof payload, "%lld", (long long)v[k]);
			} else {
				snprintf(topic, sizeof topic, "$SYS/broker/bridges/%s/dropped/%s", b->name,
					 bridge_drop_names[k - 8]);
				snprintf(payload, sizeof payload, "%llu", (unsigned long long)b->dropped[k - 8]);
			}
			publish_into(st->bridge_last[i][k], sizeof st->bridge_last[i][k], w, topic, payload);
		}
	}
}

/* $SYS/broker/cluster/...: this node's state and indexes, and each peer's
 * lag as the leader knows it ("unknown" on the other nodes). Nothing
 * without a cluster. */
static void sys_publish_cluster(struct sys_state *st, struct bworker *w, const struct metrics_snapshot *s)
{
	const struct cluster_status *c = &s->cluster_st;
	static const char *const names[SYS_CLUSTER_SLOTS] = { "state", "role", "term", "leader", "leader_address",
							     "commit_index", "applied_index", "last_index",
							     "snapshots", "restores" };
	char v[SYS_CLUSTER_SLOTS][CLUSTER_ADDRESS_MAX], topic[96];
	snprintf(v[0], sizeof v[0], "%s", cluster_state_name(c->state));
	snprintf(v[1], sizeof v[1], "%s", cluster_role_name(c->role));
	const uint64_t n[] = { c->term, c->leader_id, 0, c->commit_index, c->applied_index, c->last_index,
			       c->snapshots, c->restores };
	for (unsigned k = 2; k < SYS_CLUSTER_SLOTS; k++)
		snprintf(v[k], sizeof v[k], "%llu", (unsigned long long)n[k - 2]);
	/* No leader known: 0 and "none". */
	snprintf(v[4], sizeof v[4], "%s", c->leader_id ? c->leader_address : "none");
	for (unsigned k = 0; k < SYS_CLUSTER_SLOTS; k++) {
		snprintf(topic, sizeof topic, "$SYS/broker/cluster/%s", names[k]);
		publish_into(st->cluster_last[k], sizeof st->cluster_last[k], w, topic, v[k]);
	}
	/* A peer no longer in the configuration: its retained lag says so once. */
	struct sys_peer_last now[CLUSTER_MAX_NODES] = { 0 };
	unsigned np = c->n_peers < CLUSTER_MAX_NODES ? c->n_peers : CLUSTER_MAX_NODES;
	for (unsigned k = 0; k < CLUSTER_MAX_NODES && st->peer_last[k].id; k++) {
		const struct sys_peer_last *was = &st->peer_last[k];
		bool kept = false;
		for (unsigned i = 0; i < np && !kept; i++)
			kept = c->peers[i].id == was->id;
		if (kept) {
			for (unsigned i = 0; i < np; i++)
				if (c->peers[i].id == was->id)
					now[i] = *was;
		} else {
			char gone[24] = "";
			snprintf(topic, sizeof topic, "$SYS/broker/cluster/peers/%llu/lag", (unsigned long long)was->id);
			publish_into(gone, sizeof gone, w, topic, "removed");
		}
	}
	for (unsigned i = 0; i < np; i++) {
		const struct cluster_peer_status *p = &c->peers[i];
		struct sys_peer_last *pl = &now[i];
		char lag[24];
		pl->id = p->id;
		if (p->has_match)
			snprintf(lag, sizeof lag, "%llu", (unsigned long long)p->lag);
		else
			snprintf(lag, sizeof lag, "unknown");
		snprintf(topic, sizeof topic, "$SYS/broker/cluster/peers/%llu/lag", (unsigned long long)p->id);
		publish_into(pl->last, sizeof pl->last, w, topic, lag);
	}
	memcpy(st->peer_last, now, sizeof now);
}

void sys_publish(struct sys_state *st, struct bworker *w, const struct metrics_snapshot *s)
{
	char payload[48], topic[96];
	for (unsigned i = 0; i < M__COUNT; i++) {
		const char *unit = i == M_UPTIME_SECONDS ? " seconds" : "";
		snprintf(payload, sizeof payload, "%llu%s", (unsigned long long)s->v[i], unit);
		publish_metric(st, i, w, &metric_defs[i], payload);
	}
	static const char *const minutes[RATE__WINDOWS] = { "1min", "5min", "15min" };
	for (unsigned r = 0; r < R__COUNT; r++) {
		for (unsigned k = 0; k < RATE__WINDOWS; k++) {
			snprintf(topic, sizeof topic, "%s/%s", rate_defs[r].sys, minutes[k]);
			snprintf(payload, sizeof payload, "%.2f", s->rates[r].ewma[k]);
			publish_if_changed(st, M__COUNT + r * RATE__WINDOWS + k, w, topic, payload);
		}
	}
	publish_if_changed(st, SYS_SLOTS - 1, w, "$SYS/broker/version", "ferromq version " FM_VERSION);
	sys_publish_bridges(st, w, s);
	if (s->cluster)
		sys_publish_cluster(st, w, s);
}

/* Appends s as a JSON string. Client ids are UTF-8 without U+0000
 * [MQTT-1.5.4-2]: quotes, backslashes and control characters are escaped. */
static int json_str(struct buf *b, const char *s)
{
	int rc = buf_append(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
		if (*p == '"' || *p == '\\')
			rc = buf_printf(b, "\\%c", *p);
		else if (*p < 0x20)
			rc = buf_printf(b, "\\u%04x", *p);
		else
			rc = buf_append(b, p, 1);
	}
	return rc ? rc : buf_append(b, "\"", 1);
}

/* queue_share names the fullest sessions over the share and counts them all. */
static int queue_sessions_json(struct buf *b, const struct metrics_snapshot *s)
{
	int rc = buf_printf(b, ",\"sessions\":[");
	for (uint32_t i = 0; i < s->n_queue_named && !rc; i++) {
		if (i)
			rc = buf_append(b, ",", 1);
		if (!rc)
			rc = json_str(b, s->queue_over[i].client_id);
	}
	return rc ? rc : buf_printf(b, "],\"sessions_over\":%u", s->n_queue_over);
}

void sys_publish_alert(struct bworker *w, const struct metrics_snapshot *s, enum alert_id id)
{
	const struct alert_state *a = &s->alerts[id];
	char topic[96], since[24] = "null";
	struct buf payload = { 0 };
	if (a->since_s)
		snprintf(since, sizeof since, "%llu", (unsigned long long)a->since_s);
	snprintf(topic, sizeof topic, "$SYS/broker/alerts/%s", alert_name(id));
	int rc = buf_printf(&payload, "{\"state\":\"%s\",\"value\":%.2f,\"threshold\":%.2f,\"since\":%s",
			    a->firing ? "firing" : "ok", a->value, a->threshold, since);
	if (!rc && id == ALERT_QUEUE_SHARE)
		rc = queue_sessions_json(&payload, s);
	if (!rc)
		rc = buf_append(&payload, "}", 1);
	if (rc || broker_publish_sys(w, topic, (const char *)payload.p, payload.len))
		log_err("out of memory publishing %s", topic);
	buf_free(&payload);
}
