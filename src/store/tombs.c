#include "tombs.h"
#include "../base/err.h"
#include <stdlib.h>

struct tomb {
	uint64_t sid, seq;
	uint8_t val;
};

struct tomb_key {
	uint64_t sid, seq;
};

/* Session ids and sequence numbers are the broker's own (never chosen by a
 * peer): no seed needed. Mixing sid before adding seq keeps the pairs of
 * one session (consecutive seqs) and of neighbouring sessions apart. */
static uint64_t tombs__hash_of(uint64_t sid, uint64_t seq) { return hmap_mix64(hmap_mix64(sid) + seq); }

static uint64_t tombs__hash(const void *item, const void *ctx)
{
	(void)ctx;
	const struct tomb *t = item;
	return tombs__hash_of(t->sid, t->seq);
}

static bool tombs__is(const void *item, const void *key)
{
	const struct tomb *t = item;
	const struct tomb_key *k = key;
	return t->sid == k->sid && t->seq == k->seq;
}

/* The tomb of the pair (whose hash is h) in generation g, or NULL. */
static struct tomb *tombs__find(const struct hmap *g, uint64_t h, uint64_t sid, uint64_t seq)
{
	return g->count ? hmap_find(g, h, tombs__is, &(struct tomb_key){ sid, seq }) : NULL;
}

static int tombs__put(struct hmap *g, uint64_t h, uint64_t sid, uint64_t seq, uint8_t val)
{
	struct tomb *t = tombs__find(g, h, sid, seq);
	if (t) {
		t->val = val;
		return 0;
	}
	if (!(t = malloc(sizeof *t)))
		return -FM_ENOMEM;
	*t = (struct tomb){ .sid = sid, .seq = seq, .val = val };
	if (hmap_add(g, h, t, tombs__hash, NULL)) {
		free(t);
		return -FM_ENOMEM;
	}
	return 0;
}

int tombs_add(struct tombs *t, uint64_t sid, uint64_t seq, uint8_t val)
{
	uint64_t h = tombs__hash_of(sid, seq);
	struct tomb *known = tombs__find(&t->cur, h, sid, seq);
	if (!known && (known = tombs__find(&t->old, h, sid, seq))) {
		/* Remembered again: it moves to the current generation, as
		 * its row takes the current index. */
		hmap_remove(&t->old, h, known, tombs__hash, NULL);
		if (hmap_add(&t->cur, h, known, tombs__hash, NULL)) {
			free(known);
			return -FM_ENOMEM;
		}
	}
	if (!known)
		return tombs__put(&t->cur, h, sid, seq, val);
	if (known->val != TOMB_DELETED)
		known->val = val; /* never let a state overwrite a delete */
	return 0;
}

int tombs_load(struct tombs *t, uint64_t sid, uint64_t seq, uint8_t val, bool current)
{
	return tombs__put(current ? &t->cur : &t->old, tombs__hash_of(sid, seq), sid, seq, val);
}

int tombs_take(struct tombs *t, uint64_t sid, uint64_t seq)
{
	if (!t->cur.count && !t->old.count)
		return -1; /* the common case: apply asks at every queue insert */
	uint64_t h = tombs__hash_of(sid, seq);
	struct hmap *g = &t->cur;
	struct tomb *found = tombs__find(g, h, sid, seq);
	if (!found && (found = tombs__find(g = &t->old, h, sid, seq)) == NULL)
		return -1;
	int val = found->val;
	hmap_remove(g, h, found, tombs__hash, NULL);
	free(found);
	return val;
}

static void tombs__free_gen(struct hmap *g)
{
	size_t pos = 0;
	struct tomb *t;
	while ((t = hmap_next(g, &pos)))
		free(t);
	hmap_free(g);
}

void tombs_age(struct tombs *t)
{
	tombs__free_gen(&t->old);
	t->old = t->cur;
	t->cur = (struct hmap){ 0 };
}

void tombs_free(struct tombs *t)
{
	tombs__free_gen(&t->cur);
	tombs__free_gen(&t->old);
}
