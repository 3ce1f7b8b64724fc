/* libFuzzer target for the edge node's payload code (src/sparkplug/edge.c):
 * the input is a command payload (NCMD, DCMD) and a spooled message to
 * restamp. spb_cmd_each and spb_ncmd_is_rebirth must not crash and must
 * accept exactly what protoc-c's decoder accepts; a restamped payload must
 * decode with the new seq, every metric historical when asked, and the
 * metric count unchanged, and a refused one must leave nothing behind.
 * Aborts on any disagreement. */
#include "sparkplug/edge.h"
#include "sparkplug/sparkplug_b.pb-c.h"
#include "base/err.h"
#include <stdint.h>
#include <stdlib.h>

static int count(void *ctx, const struct spb_cmd_metric *m)
{
	double v;
	spb_cmd_number(m, m->datatype, &v);
	(*(size_t *)ctx)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	SparkplugB__Payload *pl = sparkplug_b__payload__unpack(NULL, size, data);
	size_t n = 0;
	int rc = spb_cmd_each(data, size, count, &n);
	if ((rc == 0) != (pl != NULL) || (pl && n != pl->n_metrics))
		abort();
	spb_ncmd_is_rebirth(data, size);
	struct buf out = { 0 };
	uint64_t seq = size ? data[0] : 0;
	bool hist = size && (data[size - 1] & 1);
	rc = spb_payload_restamp(data, size, seq, hist, &out);
	/* A payload protobuf-c takes may still be refused: one whose rewrite
	 * would not read back (field numbers it truncates). */
	if ((rc == 0 && !pl) || (rc != 0 && out.len != 0))
		abort();
	if (rc == 0) {
		SparkplugB__Payload *again = sparkplug_b__payload__unpack(NULL, out.len, out.p);
		if (!again || !again->has_seq || again->seq != seq || again->n_metrics != pl->n_metrics)
			abort();
		for (size_t i = 0; hist && i < again->n_metrics; i++)
			if (!again->metrics[i]->is_historical)
				abort();
		sparkplug_b__payload__free_unpacked(again, NULL);
	}
	if (pl)
		sparkplug_b__payload__free_unpacked(pl, NULL);
	buf_free(&out);
	return 0;
}
