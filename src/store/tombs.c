#include "tombs.h"
#include "../base/err.h"
#include <stdlib.h>

static uint32_t slot(uint64_t sid, uint64_t seq, uint32_t cap)
{
	uint64_t h = sid * 0x9E3779B97F4A7C15ull ^ seq * 0xC2B2AE3D27D4EB4Full;
	return (uint32_t)(h ^ (h >> 31)) & (cap - 1);
}

static int gen_put(struct tomb_gen *g, uint64_t sid, uint64_t seq)
{
	if ((g->n + 1) * 2 > g->cap) {
		uint32_t cap = g->cap ? g->cap * 2 : 64;
		uint64_t *sids = calloc(cap, sizeof *sids), *seqs = calloc(cap, sizeof *seqs);
		if (!sids || !seqs) {
			free(sids);
			free(seqs);
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
		}
		free(g->sid);
		free(g->seq);
		g->sid = sids;
		g->seq = seqs;
		g->cap = cap;
	}
	uint32_t j = slot(sid, seq, g->cap);
	while (g->sid[j])
		j = (j + 1) & (g->cap - 1);
	g->sid[j] = sid;
	g->seq[j] = seq;
	g->n++;
	return 0;
}

/* Removal by backward-shift keeps probe chains intact without tombstones. */
static bool gen_take(struct tomb_gen *g, uint64_t sid, uint64_t seq)
{
	if (!g->n)
		return false;
	uint32_t mask = g->cap - 1, i = slot(sid, seq, g->cap);
	while (g->sid[i] && (g->sid[i] != sid || g->seq[i] != seq))
		i = (i + 1) & mask;
	if (!g->sid[i])
		return false;
	for (uint32_t j = (i + 1) & mask; g->sid[j]; j = (j + 1) & mask) {
		uint32_t home = slot(g->sid[j], g->seq[j], g->cap);
		/* Move j back to i when i lies on j's probe path. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			g->sid[i] = g->sid[j];
			g->seq[i] = g->seq[j];
			i = j;
		}
	}
	g->sid[i] = 0;
	g->n--;
	return true;
}

int tombs_add(struct tombs *t, uint64_t sid, uint64_t seq) { return gen_put(&t->cur, sid, seq); }

bool tombs_take(struct tombs *t, uint64_t sid, uint64_t seq)
{
	return gen_take(&t->cur, sid, seq) || gen_take(&t->old, sid, seq);
}

static void gen_free(struct tomb_gen *g)
{
	free(g->sid);
	free(g->seq);
	g->sid = g->seq = NULL;
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
