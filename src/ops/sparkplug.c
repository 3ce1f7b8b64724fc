/* The Sparkplug fleet view's series in the Prometheus text and the alert's
 * detail. */
#include "sparkplug.h"
#include "metrics.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int sparkplug_prometheus(const struct spb_fleet_totals *t, struct buf *out)
{
	static const struct { const char *name, *help; } gauges[] = {
		{ "ferromq_sparkplug_edge_nodes", "Sparkplug edge nodes the fleet view tracks, by state (online: "
						  "born and not dead; offline: its NDEATH came; unborn: heard of "
						  "without an NBIRTH since the broker started)." },
		{ "ferromq_sparkplug_devices", "Sparkplug devices the fleet view tracks, by state." },
		{ "ferromq_sparkplug_host_applications", "Sparkplug host applications known from their STATE, by state." },
	};
	const uint32_t on[3] = { t->nodes_online, t->devices_online, t->hosts_online };
	const uint32_t all[3] = { t->nodes, t->devices, t->hosts };
	int rc = 0;
	for (int g = 0; g < 3 && !rc; g++) {
		rc = buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s{state=\"online\"} %u\n", gauges[g].name,
				gauges[g].help, gauges[g].name, gauges[g].name, on[g]);
		if (!rc && g == 0)
			rc = buf_printf(out, "%s{state=\"offline\"} %u\n%s{state=\"unborn\"} %u\n", gauges[g].name,
					t->nodes_offline, gauges[g].name, all[g] - on[g] - t->nodes_offline);
		else if (!rc)
			rc = buf_printf(out, "%s{state=\"offline\"} %u\n", gauges[g].name, all[g] - on[g]);
	}
	static const struct { const char *name, *help; size_t off; } counters[] = {
		{ "ferromq_sparkplug_seq_gaps_total", "Messages of an edge node whose seq was not the one after the last.",
		  offsetof(struct spb_fleet_totals, seq_gaps) },
		{ "ferromq_sparkplug_edge_node_deaths_total", "NDEATHs that took an edge node offline (bdSeq of its birth).",
		  offsetof(struct spb_fleet_totals, node_deaths) },
		{ "ferromq_sparkplug_stale_deaths_total",
		  "NDEATHs of another bdSeq than the node's birth (ignored), and STATEs older than the host's last.",
		  offsetof(struct spb_fleet_totals, stale_deaths) },
		{ "ferromq_sparkplug_untracked_total",
		  "Messages of nodes, devices or hosts the fleet view had no room for (sparkplug_fleet_max).",
		  offsetof(struct spb_fleet_totals, untracked) },
		{ "ferromq_sparkplug_malformed_total",
		  "Messages under the namespace whose topic or payload is not Sparkplug's (routed all the same).",
		  offsetof(struct spb_fleet_totals, malformed) },
	};
	for (size_t c = 0; c < sizeof counters / sizeof counters[0] && !rc; c++)
		rc = buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counters[c].name, counters[c].help,
				counters[c].name, counters[c].name,
				(unsigned long long)*(const uint64_t *)((const char *)t + counters[c].off));
	return rc;
}

void sparkplug_offline_text(struct broker *b, char *out, size_t size)
{
	struct spb_fleet_entry *e;
	struct spb_fleet_totals tot;
	uint32_t n;
	out[0] = 0;
	if (broker_spb_list(b, &e, &n, &tot))
		return;
	size_t len = 0;
	uint32_t named = 0;
	for (uint32_t i = 0; i < n && len + 1 < size; i++) {
		if (e[i].kind != SPB_FLEET_NODE || e[i].online || !e[i].births)
			continue;
		char when[32] = "";
		time_t t = (time_t)(e[i].since_ms / 1000);
		struct tm tm;
		if (gmtime_r(&t, &tm))
			strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
		int w = snprintf(out + len, size - len, "%s%s (since %s)", named ? ", " : "; edge nodes ", e[i].key, when);
		if (w < 0 || (size_t)w >= size - len) {
			out[len] = 0;
			break;
		}
		len += (size_t)w;
		named++;
	}
	if (named < tot.nodes_offline && len + 1 < size)
		snprintf(out + len, size - len, " and %u more", tot.nodes_offline - named);
	free(e);
}
