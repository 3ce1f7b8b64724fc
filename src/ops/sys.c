/* $SYS topics: mosquitto's names where they exist ($SYS/broker/messages/received,
 * .../load/messages/received/1min, ...), ours for queues, drops and the store. */
#include "sys.h"
#include "../base/log.h"
#include <stdio.h>
#include <string.h>

static void publish_if_changed(struct sys_state *st, unsigned slot, struct bworker *w, const char *topic,
			       const char *payload)
{
	if (!strcmp(st->last[slot], payload))
		return;
	if (broker_publish_sys(w, topic, payload, strlen(payload)))
		return; /* out of memory: tried again next time */
	snprintf(st->last[slot], sizeof st->last[slot], "%s", payload);
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
