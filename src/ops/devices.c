/* Modbus devices' series in the Prometheus text and the alert's detail. */
#include "devices.h"
#include "metrics.h"
#include "../base/err.h"
#include <stdio.h>
#include <string.h>

/* Counter families: name, help, and the field. Labels: device="NAME"
 * (letters, digits, - _ . only: config.c checks, so nothing to escape). */
struct counter_family {
	const char *name, *help;
	size_t off;
};
#define CF(name, field, help) { name, help, offsetof(struct collect_device_info, field) }
static const struct counter_family counters[] = {
	CF("ferromq_device_polls_total", polls, "Polls of the device's tag groups that were due."),
	CF("ferromq_device_polls_failed_total", polls_failed,
	   "Polls that got no answer (device offline, timeout, connection lost)."),
	CF("ferromq_device_polls_late_total", polls_late,
	   "Polls skipped because they could not start on time (counted, not queued up)."),
	CF("ferromq_device_requests_total", requests, "Modbus read requests sent."),
	CF("ferromq_device_requests_failed_total", requests_failed,
	   "Read requests without data: no answer, or an exception response."),
	CF("ferromq_device_exceptions_total", exceptions, "Modbus exception responses."),
	CF("ferromq_device_readings_total", readings,
	   "Readings handed to the broker (after report by exception; an aggregated tag's summary is one)."),
	CF("ferromq_device_readings_committed_total", readings_committed,
	   "Readings published and committed to the store."),
	CF("ferromq_device_readings_refused_total", readings_refused,
	   "Readings refused by admission (ACL, topic limits)."),
	CF("ferromq_device_readings_lost_total", readings_lost,
	   "Readings not committed (a store failure, out of memory, shutdown)."),
	CF("ferromq_device_writes_total", writes, "Writes carried out."),
	CF("ferromq_device_writes_failed_total", writes_failed, "Writes refused or failed."),
	CF("ferromq_device_connects_total", connects, "TCP connections made to the device."),
	CF("ferromq_device_offline_total", offline_episodes, "Times the device went offline."),
};

static int family(struct buf *out, const char *name, const char *type, const char *help)
{
	return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int histogram(struct buf *out, const char *name, const char *help, const struct collect_device_info *d,
		     uint32_t n, size_t off)
{
	int rc = family(out, name, "histogram", help);
	for (uint32_t i = 0; i < n && !rc; i++) {
		const struct collect_hist *h = (const struct collect_hist *)((const char *)&d[i] + off);
		for (unsigned b = 0; b < COLLECT_HIST_BUCKETS && !rc; b++)
			rc = buf_printf(out, "%s_bucket{device=\"%s\",le=\"%g\"} %llu\n", name, d[i].name,
					collect_hist_bounds_ms[b] / 1000, (unsigned long long)h->buckets[b]);
		if (!rc)
			rc = buf_printf(out, "%s_bucket{device=\"%s\",le=\"+Inf\"} %llu\n", name, d[i].name,
					(unsigned long long)h->buckets[COLLECT_HIST_BUCKETS]);
		if (!rc)
			rc = buf_printf(out, "%s_sum{device=\"%s\"} %.6f\n%s_count{device=\"%s\"} %llu\n", name, d[i].name,
					(double)h->sum_us / 1e6, name, d[i].name, (unsigned long long)h->count);
	}
	return rc;
}

int devices_prometheus(const struct collect_device_info *d, uint32_t n, struct buf *out)
{
	if (!n)
		return 0;
	int rc = family(out, "ferromq_device_up", "gauge", "1 while the Modbus device answers, 0 while offline or connecting.");
	for (uint32_t i = 0; i < n && !rc; i++)
		rc = buf_printf(out, "ferromq_device_up{device=\"%s\"} %d\n", d[i].name, d[i].state == COLLECT_ONLINE);
	for (size_t f = 0; f < sizeof counters / sizeof counters[0] && !rc; f++) {
		rc = family(out, counters[f].name, "counter", counters[f].help);
		for (uint32_t i = 0; i < n && !rc; i++)
			rc = buf_printf(out, "%s{device=\"%s\"} %llu\n", counters[f].name, d[i].name,
					(unsigned long long)*(const uint64_t *)((const char *)&d[i] + counters[f].off));
	}
	if (!rc)
		rc = family(out, "ferromq_device_thread_cpu_seconds_total", "counter",
			    "CPU time of the device's collector thread (polls, decoding, writes).");
	for (uint32_t i = 0; i < n && !rc; i++)
		rc = buf_printf(out, "ferromq_device_thread_cpu_seconds_total{device=\"%s\"} %.6f\n", d[i].name,
				(double)d[i].cpu_ns / 1e9);
	if (!rc)
		rc = family(out, "ferromq_device_last_success_timestamp_seconds", "gauge",
			    "Unix time of the device's last answer; 0: never.");
	for (uint32_t i = 0; i < n && !rc; i++)
		rc = buf_printf(out, "ferromq_device_last_success_timestamp_seconds{device=\"%s\"} %.3f\n", d[i].name,
				(double)d[i].last_success_ms / 1000);
	if (!rc)
		rc = histogram(out, "ferromq_device_request_duration_seconds", "Modbus requests, sent to answered.", d, n,
			       offsetof(struct collect_device_info, request_latency));
	if (!rc)
		rc = histogram(out, "ferromq_device_poll_jitter_seconds",
			       "How late polls started against their place on the clock.", d, n,
			       offsetof(struct collect_device_info, poll_jitter));
	if (!rc)
		rc = histogram(out, "ferromq_device_poll_to_commit_seconds",
			       "A poll's start to the store commit of its readings.", d, n,
			       offsetof(struct collect_device_info, poll_commit));
	return rc;
}

uint32_t devices_offline(const struct collect_device_info *d, uint32_t n)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < n; i++)
		k += d[i].state == COLLECT_OFFLINE;
	return k;
}

void devices_offline_text(const struct collect_device_info *d, uint32_t n, char *out, size_t size)
{
	size_t len = 0;
	out[0] = 0;
	for (uint32_t i = 0; i < n && len < size; i++) {
		if (d[i].state != COLLECT_OFFLINE)
			continue;
		len += (size_t)snprintf(out + len, size - len, "%s%s (%s)", len ? ", " : "; devices ", d[i].name,
					d[i].last_error[0] ? d[i].last_error : "no answer");
	}
}

double devices_hist_quantile_ms(const struct collect_hist *h, double q)
{
	if (!h->count)
		return -1;
	uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
	if (rank < 1)
		rank = 1;
	for (unsigned b = 0; b < COLLECT_HIST_BUCKETS; b++)
		if (h->buckets[b] >= rank)
			return collect_hist_bounds_ms[b];
	return collect_hist_bounds_ms[COLLECT_HIST_BUCKETS - 1];
}
