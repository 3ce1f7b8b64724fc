/* libFuzzer target for the bridge's aggregation: the input is one byte of
 * configuration (window 1..4 s, empty windows counted or not), one byte of
 * statistics, "FIELD\n", then readings, each a byte of time step (x 37 ms,
 * so windows end between readings), a byte of length and that many payload
 * bytes. Every number read is counted once in the summaries or the open
 * window; every summary fits AGG_SUMMARY_MAX, is one JSON object without
 * inf or nan, has min <= mean <= max and an aligned window later than the
 * one before.
 */
#include "bridge/aggregate.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct seen {
	const struct agg_conf *c;
	uint64_t counted, last_start;
	bool any;
};

static void check(void *ctx, const struct agg_window *w)
{
	struct seen *s = ctx;
	char out[AGG_SUMMARY_MAX];
	int n = agg_format(s->c, w, out, sizeof out);
	if (n <= 1 || n >= AGG_SUMMARY_MAX || out[0] != '{' || out[n - 1] != '}' || strlen(out) != (size_t)n ||
	    strstr(out, "inf") || strstr(out, "nan"))
		abort();
	if (agg_format(s->c, w, out, (size_t)n) != -1)
		abort(); /* one byte short: refused */
	if (w->count && !(w->min <= agg_mean(w) && agg_mean(w) <= w->max && isfinite(agg_mean(w))))
		abort();
	if (w->start_ms % ((uint64_t)s->c->window_s * 1000) || (s->any && w->start_ms <= s->last_start))
		abort();
	s->any = true;
	s->last_start = w->start_ms;
	s->counted += w->count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	struct agg_conf c = { .window_s = 1 + (data[0] & 3), .stats = data[1] ? data[1] : AGG_ALL,
			      .empty = (data[0] >> 2) & 1 };
	data += 2;
	size -= 2;
	const uint8_t *nl = memchr(data, '\n', size);
	char field[32] = "";
	if (nl && (size_t)(nl - data) < sizeof field) {
		memcpy(field, data, (size_t)(nl - data));
		field[nl - data] = 0;
		size -= (size_t)(nl - data) + 1;
		data = nl + 1;
	}
	struct seen s = { .c = &c };
	uint64_t now = 1796637600000ull, numbers = 0;
	struct agg_window w;
	agg_window_reset(&c, &w, now);
	while (size >= 2) {
		now += (uint64_t)data[0] * 37;
		size_t len = data[1] < size - 2 ? data[1] : size - 2;
		/* An exact-size copy, so ASan sees any read past the payload. */
		uint8_t *p = malloc(len ? len : 1);
		memcpy(p, data + 2, len);
		agg_roll(&c, &w, now, check, &s);
		numbers += agg_read(&w, p, len, field);
		free(p);
		data += 2 + len;
		size -= 2 + len;
	}
	agg_roll(&c, &w, now + 5000, check, &s);
	if (s.counted != numbers || !agg_window_empty(&w))
		abort();
	return 0;
}
