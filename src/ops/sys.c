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

void sys_publish(struct sys_state *st, struct bworker *w, const struct metrics_snapshot *s)
{
	char payload[48], topic[96];
	for (unsigned i = 0; i < M__COUNT; i++) {
		const char *unit = i == M_UPTIME_SECONDS ? " seconds" : "";
		snprintf(payload, sizeof payload, "%llu%s", (unsigned long long)s->v[i], unit);
		publish_if_changed(st, i, w, metric_defs[i].sys, payload);
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
}

void sys_publish_alert(struct bworker *w, enum alert_id id, const struct alert_state *a)
{
	char topic[96], payload[160], since[24] = "null";
	if (a->since_s)
		snprintf(since, sizeof since, "%llu", (unsigned long long)a->since_s);
	snprintf(topic, sizeof topic, "$SYS/broker/alerts/%s", alert_name(id));
	int n = snprintf(payload, sizeof payload, "{\"state\":\"%s\",\"value\":%.2f,\"threshold\":%.2f,\"since\":%s}",
			 a->firing ? "firing" : "ok", a->value, a->threshold, since);
	if (broker_publish_sys(w, topic, payload, (size_t)n))
		log_err("out of memory publishing %s", topic);
}
