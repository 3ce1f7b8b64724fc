/* Latency histogram and sequence bitmaps: the bench's only bookkeeping. */
#include "bench.h"
#include "base/err.h"
#include <stdlib.h>
#include <string.h>

static unsigned hist_index(uint64_t v)
{
	if (v < HIST_LINEAR)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 7 */
	unsigned idx = HIST_LINEAR + (e - 7u) * HIST_SUB + (unsigned)((v >> (e - 6u)) & (HIST_SUB - 1));
	return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* Midpoint of bucket i. */
static uint64_t hist_value(unsigned i)
{
	if (i < HIST_LINEAR)
		return i;
	unsigned e = (i - HIST_LINEAR) / HIST_SUB + 7u;
	uint64_t sub = (i - HIST_LINEAR) % HIST_SUB;
	uint64_t width = 1ull << (e - 6u);
	return (1ull << e) + sub * width + width / 2;
}

void hist_add(struct hist *h, uint64_t v)
{
	if (h->n == 0 || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->n++;
	h->sum += v;
	h->b[hist_index(v)]++;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	if (!src->n)
		return;
	if (dst->n == 0 || src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->n += src->n;
	dst->sum += src->sum;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	if (!h->n)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)h->n + 0.999999);
	if (rank < 1)
		rank = 1;
	uint64_t acc = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		acc += h->b[i];
		if (acc >= rank) {
			uint64_t v = hist_value(i);
			if (v < h->min)
				v = h->min;
			if (v > h->max)
				v = h->max;
			return v;
		}
	}
	return h->max;
}

int seqmap_set(struct seqmap *m, uint64_t seq)
{
	uint64_t word = seq >> 6;
	if (word >= m->nwords) {
		uint64_t n = m->nwords ? m->nwords : 1024;
		while (n <= word)
			n *= 2;
		uint64_t *w = realloc(m->w, n * sizeof(*w));
		if (!w)
			return -FM_ENOMEM;
		memset(w + m->nwords, 0, (n - m->nwords) * sizeof(*w));
		m->w = w;
		m->nwords = n;
	}
	uint64_t bit = 1ull << (seq & 63);
	if (m->w[word] & bit)
		return 1;
	m->w[word] |= bit;
	return 0;
}

uint64_t seqmap_missing(const struct seqmap *m, const struct seqmap *have, uint64_t limit)
{
	uint64_t missing = 0;
	uint64_t words = (limit + 63) >> 6;
	for (uint64_t i = 0; i < words; i++) {
		uint64_t want = ~0ull;
		if (i == words - 1 && (limit & 63))
			want = (1ull << (limit & 63)) - 1;
		if (have)
			want &= i < have->nwords ? have->w[i] : 0;
		uint64_t got = i < m->nwords ? m->w[i] : 0;
		missing += (uint64_t)__builtin_popcountll(want & ~got);
	}
	return missing;
}

void seqmap_free(struct seqmap *m)
{
	free(m->w);
	m->w = NULL;
	m->nwords = 0;
}
