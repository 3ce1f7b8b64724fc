#include "tombs.h"
#include "../base/err.h"
#include <stdlib.h>

static uint32_t slot(uint64_t sid, uint64_t seq, uint32_t cap)
{
	uint64_t h = sid * 0x9E3779B97F4A7C15ull ^ seq * 0xC2B2AE3D27D4EB4Full;
	return (uint32_t)(h ^ (h >> 31)) & (cap - 1);
}

static int gen_put(struct tomb_gen *g, uint64_t sid, uint64_t seq, uint8_t val)
{
	if ((g->n + 1) * 2 > g->cap) {
		uint32_t cap = g->cap ? g->cap * 2 : 64;
		uint64_t *sids = calloc(cap, sizeof *sids), *seqs = calloc(cap, sizeof *seqs);
		uint8_t *vals = calloc(cap, 1);
		if (!sids || !seqs || !vals) {
			free(sids);
			free(seqs);
			free(vals);
			return -FM_ENOMEM;
		}
		for (uint32_t i = 0; i < g->cap; i++) {
			if (!g->sid[i])
				continue;
			uint32_t j = slot(g->sid[i], g->seq[i], cap);
			while (sids[j])
				j = (j + 1) & (cap - 1);
			sids[j] = g->sid[i];
			seqs[j] = g->seq[i];
			vals[j] = g->val[i];
		}
		free(g->sid);
		free(g->seq);
		free(g->val);
		g->sid = sids;
		g->seq = seqs;
		g->val = vals;
		g->cap = cap;
	}
	uint32_t j = slot(sid, seq, g->cap);
	while (g->sid[j] && (g->sid[j] != sid || g->seq[j] != seq))
		j = (j + 1) & (g->cap - 1);
	if (!g->sid[j])
		g->n++;
	g->sid[j] = sid;
	g->seq[j] = seq;
	g->val[j] = val;
	return 0;
}

/* Removal by backward-shift keeps probe chains intact without tombstones. */
static int gen_take(struct tomb_gen *g, uint64_t sid, uint64_t seq)
{
	if (!g->n)
		return -1;
	uint32_t mask = g->cap - 1, i = slot(sid, seq, g->cap);
	while (g->sid[i] && (g->sid[i] != sid || g->seq[i] != seq))
		i = (i + 1) & mask;
	if (!g->sid[i])
		return -1;
	int val = g->val[i];
	for (uint32_t j = (i + 1) & mask; g->sid[j]; j = (j + 1) & mask) {
		uint32_t home = slot(g->sid[j], g->seq[j], g->cap);
		/* Move j back to i when i lies on j's probe path. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			g->sid[i] = g->sid[j];
			g->seq[i] = g->seq[j];
			g->val[i] = g->val[j];
			i = j;
		}
	}
	g->sid[i] = 0;
	g->n--;
	return val;
}

int tombs_add(struct tombs *t, uint64_t sid, uint64_t seq, uint8_t val)
{
	if (val != TOMB_DELETED) {
		/* Never let a state overwrite a delete. */
		int old = tombs_take(t, sid, seq);
		if (old == TOMB_DELETED)
			val = TOMB_DELETED;
	}
	return gen_put(&t->cur, sid, seq, val);
}

int tombs_load(struct tombs *t, uint64_t sid, uint64_t seq, uint8_t val, bool current)
{
	return gen_put(current ? &t->cur : &t->old, sid, seq, val);
}

int tombs_take(struct tombs *t, uint64_t sid, uint64_t seq)
{
	int v = gen_take(&t->cur, sid, seq);
	return v >= 0 ? v : gen_take(&t->old, sid, seq);
}

static void gen_free(struct tomb_gen *g)
{
	free(g->sid);
	free(g->seq);
	free(g->val);
	g->sid = g->seq = NULL;
	g->val = NULL;
	g->cap = g->n = 0;
}

void tombs_age(struct tombs *t)
{
	gen_free(&t->old);
	t->old = t->cur;
	t->cur = (struct tomb_gen){ 0 };
}

void tombs_free(struct tombs *t)
{
	gen_free(&t->cur);
	gen_free(&t->old);
}
