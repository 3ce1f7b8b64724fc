/* libFuzzer target for src/sparkplug. The input is used three ways:
 *  - as a Payload: spb_payload_scan must agree with protoc-c's full decoder
 *    on every input both accept (timestamp, seq, metric count, bdSeq; the
 *    scanner refuses field numbers past 2^29 - 1 that protobuf-c truncates
 *    to 32 bits and takes), and spb_payload_set_timestamp's output must scan back with the
 *    new timestamp and everything else unchanged;
 *  - as "NAMESPACE\nTOPIC": spb_topic_parse's pieces must lie inside the
 *    topic and rebuild it exactly;
 *  - as a STATE payload: spb_state_parse must not crash;
 *  - a topic that parses, with the whole input as its payload, goes into a
 *    fleet view kept across inputs (bounded at 64 entries), whose totals
 *    must stay consistent.
 * Aborts on any disagreement.
 */
#include "sparkplug/sparkplug.h"
#include "sparkplug/fleet.h"
#include "sparkplug/sparkplug_b.pb-c.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_payload(const uint8_t *data, size_t size)
{
	struct spb_payload_info info, again;
	int rc = spb_payload_scan(data, size, &info);
	SparkplugB__Payload *pl = sparkplug_b__payload__unpack(NULL, size, data);
	if (pl && rc == 0) {
		/* what protobuf-c decodes, the scanner reads the same way */
		if (info.has_timestamp != (bool)pl->has_timestamp ||
		    info.has_seq != (bool)pl->has_seq || info.metrics != pl->n_metrics ||
		    (pl->has_timestamp && info.timestamp != pl->timestamp) ||
		    (pl->has_seq && info.seq != pl->seq))
			abort();
		/* protobuf-c keeps a name only up to its first NUL: "bdSeq\0x" is
		 * "bdSeq" to it and not to the scanner, so skip those inputs */
		if (!memmem(data, size, "bdSeq\0", 6)) {
			bool has = false;
			uint64_t v = 0;
			for (size_t i = 0; i < pl->n_metrics && !has; i++) {
				SparkplugB__Payload__Metric *m = pl->metrics[i];
				if (!m->name || strcmp(m->name, "bdSeq") != 0)
					continue;
				if (m->value_case == SPARKPLUG_B__PAYLOAD__METRIC__VALUE_INT_VALUE)
					has = true, v = m->int_value;
				else if (m->value_case == SPARKPLUG_B__PAYLOAD__METRIC__VALUE_LONG_VALUE)
					has = true, v = m->long_value;
			}
			if (has != info.has_bdseq || (has && v != info.bdseq))
				abort();
		}
	}
	if (pl)
		sparkplug_b__payload__free_unpacked(pl, NULL);
	size_t cap = SPB_SET_TIMESTAMP_MAX(size);
	uint8_t *out = malloc(cap);
	if (!out)
		return;
	uint64_t ts = size >= 8 ? (uint64_t)data[0] << 56 | data[size - 1] : size;
	long n = spb_payload_set_timestamp(data, size, ts, out, cap);
	if ((n < 0) != (rc != 0) || (size_t)(n < 0 ? 0 : n) > cap)
		abort();
	if (n >= 0) {
		if (spb_payload_scan(out, (size_t)n, &again) != 0 || !again.has_timestamp ||
		    again.timestamp != ts || again.has_seq != info.has_seq || again.seq != info.seq ||
		    again.metrics != info.metrics || again.has_bdseq != info.has_bdseq ||
		    again.bdseq != info.bdseq)
			abort();
		/* a smaller buffer is refused, never overrun */
		if (n > 0 && spb_payload_set_timestamp(data, size, ts, out, (size_t)n - 1) >= 0)
			abort();
	}
	free(out);
}

static void fuzz_topic(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	const char *nl = memchr(in, '\n', size);
	if (!nl)
		return;
	size_t ns_len = (size_t)(nl - in);
	const char *topic = nl + 1;
	size_t len = size - ns_len - 1;
	struct spb_topic t;
	int rc = spb_topic_parse(in, ns_len, topic, len, &t);
	if (rc < 0 || rc == 0)
		return;
	char *rebuilt = malloc(len + 1);
	if (!rebuilt)
		return;
	int n;
	if (t.type == SPB_STATE)
		n = snprintf(rebuilt, len + 1, "%.*s/STATE/%.*s", (int)ns_len, in, (int)t.host_len, t.host);
	else if (t.device)
		n = snprintf(rebuilt, len + 1, "%.*s/%.*s/%s/%.*s/%.*s", (int)ns_len, in,
			     (int)t.group_len, t.group, spb_type_name(t.type), (int)t.edge_len, t.edge,
			     (int)t.device_len, t.device);
	else
		n = snprintf(rebuilt, len + 1, "%.*s/%.*s/%s/%.*s", (int)ns_len, in, (int)t.group_len,
			     t.group, spb_type_name(t.type), (int)t.edge_len, t.edge);
	/* embedded NULs stop %.*s early: compare only what was rebuilt whole */
	if (!memchr(topic, '\0', len) && ((size_t)n != len || memcmp(rebuilt, topic, len) != 0))
		abort();
	if (spb_type_has_device(t.type) != (t.device != NULL))
		abort();
	free(rebuilt);
	static struct spb_fleet *fleet;
	if (!fleet && !(fleet = spb_fleet_new(64)))
		return;
	static uint64_t now;
	spb_fleet_observe(fleet, &t, data, size, ++now);
	struct spb_fleet_totals tot;
	spb_fleet_totals(fleet, &tot);
	if (tot.entries > 64 || tot.nodes_online > tot.nodes || tot.devices_online > tot.devices ||
	    tot.hosts_online > tot.hosts || tot.nodes + tot.devices + tot.hosts != tot.entries)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spb_state st;
	fuzz_payload(data, size);
	fuzz_topic(data, size);
	(void)spb_state_parse((const char *)data, size, &st);
	return 0;
}
