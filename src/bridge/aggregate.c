#include "aggregate.h"
#include "reduce.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t window_ms(const struct agg_conf *c) { return (uint64_t)c->window_s * 1000; }

uint64_t agg_window_start(uint32_t window_s, uint64_t wall_ms)
{
	uint64_t w = (uint64_t)window_s * 1000;
	return w ? wall_ms - wall_ms % w : wall_ms;
}

void agg_window_reset(const struct agg_conf *c, struct agg_window *w, uint64_t now_ms)
{
	*w = (struct agg_window){ .start_ms = agg_window_start(c->window_s, now_ms) };
}

void agg_add(struct agg_window *w, double v)
{
	if (!w->count) {
		w->min = w->max = w->mean = w->first = w->sum = v;
		w->carry = 0;
	} else {
		if (v < w->min)
			w->min = v;
		if (v > w->max)
			w->max = v;
		/* Neumaier: the low bits a large sum would swallow go to carry. */
		double t = w->sum + v;
		w->carry += fabs(w->sum) >= fabs(v) ? (w->sum - t) + v : (v - t) + w->sum;
		w->sum = t;
		/* Each term divided first, so numbers near DBL_MAX of both signs stay finite. */
		double n = (double)w->count + 1;
		w->mean += v / n - w->mean / n;
	}
	w->last = v;
	w->count++;
}

double agg_mean(const struct agg_window *w)
{
	double s = w->sum + w->carry;
	double m = isfinite(s) ? s / w->count : w->mean;
	/* Rounding never leaves [min, max]. */
	return m < w->min ? w->min : m > w->max ? w->max : m;
}

bool agg_read(struct agg_window *w, const uint8_t *p, size_t len, const char *field)
{
	double v;
	if (reduce_number(p, len, field, &v)) {
		agg_add(w, v);
		return true;
	}
	w->non_numeric++;
	return false;
}

unsigned agg_roll(const struct agg_conf *c, struct agg_window *w, uint64_t now_ms, agg_emit_fn emit, void *ctx)
{
	uint64_t len = window_ms(c);
	if (!len || now_ms < w->start_ms + len)
		return 0;
	unsigned n = 0;
	if (!agg_window_empty(w) || c->empty == AGG_EMPTY_COUNT) {
		emit(ctx, w);
		n++;
	}
	uint64_t now_start = agg_window_start(c->window_s, now_ms);
	if (c->empty == AGG_EMPTY_COUNT) {
		/* The windows between, each with a count of 0: the last AGG_CATCH_UP. */
		uint64_t next = w->start_ms + len;
		if (now_start - next > (uint64_t)AGG_CATCH_UP * len)
			next = now_start - (uint64_t)AGG_CATCH_UP * len;
		for (; next < now_start; next += len, n++)
			emit(ctx, &(struct agg_window){ .start_ms = next });
	}
	*w = (struct agg_window){ .start_ms = now_start };
	return n;
}

/* The shortest of %.15g..%.17g that reads back as v. */
static int put_number(char *out, size_t cap, double v)
{
	int n = 0;
	for (int prec = 15; prec <= 17; prec++) {
		n = snprintf(out, cap, "%.*g", prec, v);
		if (n < 0 || (size_t)n >= cap || strtod(out, NULL) == v)
			break;
	}
	return n;
}

int agg_format(const struct agg_conf *c, const struct agg_window *w, char *out, size_t cap)
{
	static const char *const names[AGG__COUNT] = { "count", "min", "max", "mean", "first", "last", "start", "end" };
	const double nums[AGG__COUNT] = { 0, w->min, w->max, w->count ? agg_mean(w) : 0, w->first, w->last, 0, 0 };
	size_t at = 0;
	int n;
	if (cap < 3)
		return -1;
	out[at++] = '{';
	for (int s = 0; s < AGG__COUNT; s++) {
		if (!(c->stats & (1u << s)) || (w->count == 0 && s >= AGG_MIN && s <= AGG_LAST))
			continue;
		n = snprintf(out + at, cap - at, "%s\"%s\":", at > 1 ? "," : "", names[s]);
		if (n < 0 || (size_t)n >= cap - at)
			return -1;
		at += (size_t)n;
		if (s == AGG_COUNT)
			n = snprintf(out + at, cap - at, "%" PRIu32, w->count);
		else if (s == AGG_START || s == AGG_END)
			n = snprintf(out + at, cap - at, "%" PRIu64,
				     w->start_ms + (s == AGG_END ? window_ms(c) : 0));
		else
			n = put_number(out + at, cap - at, nums[s]);
		if (n < 0 || (size_t)n >= cap - at)
			return -1;
		at += (size_t)n;
	}
	if (w->non_numeric) {
		n = snprintf(out + at, cap - at, "%s\"non_numeric\":%" PRIu32, at > 1 ? "," : "", w->non_numeric);
		if (n < 0 || (size_t)n >= cap - at)
			return -1;
		at += (size_t)n;
	}
	if (cap - at < 2)
		return -1;
	out[at++] = '}';
	out[at] = 0;
	return (int)at;
}

/* ---- the table ---- */

static bool window_empty(const struct topic_entry *k)
{
	return agg_window_empty(&((const struct agg_entry *)k)->w);
}

struct agg_entry *agg_table_get(struct agg_table *t, const struct agg_conf *c, unsigned line, const char *topic,
				size_t len, uint64_t now_ms)
{
	struct topic_entry *k = topic_table_find(&t->t, line, topic, len);
	if (k)
		return (struct agg_entry *)k;
	struct agg_entry *e = (struct agg_entry *)topic_table_add(&t->t, sizeof *e, line, topic, len, window_empty);
	if (!e)
		return NULL;
	e->conf = c;
	agg_window_reset(c, &e->w, now_ms);
	uint64_t end = e->w.start_ms + window_ms(c);
	if (!t->next_due_ms || end < t->next_due_ms)
		t->next_due_ms = end;
	return e;
}

struct roll_ctx {
	agg_table_emit_fn emit;
	void *ctx;
	const struct agg_entry *e;
};

static void roll_emit(void *ctx, const struct agg_window *w)
{
	struct roll_ctx *r = ctx;
	r->emit(r->ctx, r->e, w);
}

unsigned agg_table_roll(struct agg_table *t, uint64_t now_ms, agg_table_emit_fn emit, void *ctx)
{
	if (!t->t.map.count || now_ms < t->next_due_ms)
		return 0;
	unsigned n = 0;
	uint64_t next = 0;
	size_t pos = 0;
	for (struct topic_entry *k; (k = topic_table_next(&t->t, &pos));) {
		struct agg_entry *e = (struct agg_entry *)k;
		struct roll_ctx r = { emit, ctx, e };
		n += agg_roll(e->conf, &e->w, now_ms, roll_emit, &r);
		uint64_t end = e->w.start_ms + window_ms(e->conf);
		if (!next || end < next)
			next = end;
	}
	t->next_due_ms = next;
	return n;
}

void agg_table_free(struct agg_table *t)
{
	topic_table_free(&t->t);
	t->next_due_ms = 0;
}
