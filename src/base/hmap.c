#include "hmap.h"
#include "err.h"
#include <stdlib.h>

uint64_t hmap_hash_bytes(uint64_t seed, const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull ^ seed;
	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return hmap_mix64(h);
}

static size_t hmap__mask(const struct hmap *m)
{
	return m->slot ? ((size_t)1 << m->shift) - 1 : 0;
}

static void hmap__put(void **slot, size_t mask, uint64_t h, void *item)
{
	size_t i = (size_t)h & mask;
	while (slot[i])
		i = (i + 1) & mask;
	slot[i] = item;
}

/* Moves every item into a new array of 1 << shift slots. */
static int hmap__rebuild(struct hmap *m, unsigned shift, hmap_hash_fn hash, const void *ctx)
{
	if (shift >= sizeof(size_t) * 8 - 1)
		return -FM_ENOMEM;
	size_t mask = ((size_t)1 << shift) - 1;
	void **slot = calloc(mask + 1, sizeof *slot);
	if (!slot)
		return -FM_ENOMEM;
	size_t old = m->slot ? hmap__mask(m) + 1 : 0;
	for (size_t i = 0; i < old; i++)
		if (m->slot[i])
			hmap__put(slot, mask, hash(m->slot[i], ctx), m->slot[i]);
	free(m->slot);
	m->slot = slot;
	m->shift = (uint8_t)shift;
	return 0;
}

/* The shift of a table that holds n items at most half full. */
static unsigned hmap__shift_for(uint64_t n)
{
	unsigned shift = HMAP_MIN_SHIFT;
	while (((uint64_t)1 << shift) < n * 2)
		shift++;
	return shift;
}

int hmap_reserve(struct hmap *m, uint32_t n, hmap_hash_fn hash, const void *ctx)
{
	unsigned shift = hmap__shift_for((uint64_t)m->count > n ? m->count : n);
	if (m->slot && shift <= m->shift)
		return 0;
	return hmap__rebuild(m, shift, hash, ctx);
}

int hmap_add(struct hmap *m, uint64_t h, void *item, hmap_hash_fn hash, const void *ctx)
{
	if (!m->slot || ((uint64_t)m->count + 1) * 2 > hmap__mask(m) + 1) {
		int rc = hmap__rebuild(m, hmap__shift_for((uint64_t)m->count + 1), hash, ctx);
		if (rc)
			return rc;
	}
	hmap__put(m->slot, hmap__mask(m), h, item);
	m->count++;
	return 0;
}

/* Empties slot `hole`, moving back each later item of the probe run that
 * would otherwise become unreachable. */
static void hmap__delete(struct hmap *m, size_t hole, hmap_hash_fn hash, const void *ctx)
{
	size_t mask = hmap__mask(m);
	void **t = m->slot;
	t[hole] = NULL;
	for (size_t j = (hole + 1) & mask; t[j]; j = (j + 1) & mask) {
		size_t home = (size_t)hash(t[j], ctx) & mask;
		/* May the item at j, whose probe starts at home, fill the hole? */
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			t[hole] = t[j];
			t[j] = NULL;
			hole = j;
		}
	}
	m->count--;
}

void *hmap_take_at(struct hmap *m, size_t i, hmap_hash_fn hash, const void *ctx)
{
	void *item = m->slot[i];
	hmap__delete(m, i, hash, ctx);
	return item;
}

size_t hmap_slot_of(const struct hmap *m, uint64_t h, const void *item)
{
	size_t mask = hmap__mask(m), i = (size_t)h & mask;
	while (m->slot[i] != item)
		i = (i + 1) & mask;
	return i;
}

bool hmap_remove(struct hmap *m, uint64_t h, const void *item, hmap_hash_fn hash, const void *ctx)
{
	if (!m->slot)
		return false;
	size_t mask = hmap__mask(m), i = (size_t)h & mask;
	while (m->slot[i] && m->slot[i] != item)
		i = (i + 1) & mask;
	if (!m->slot[i])
		return false;
	hmap__delete(m, i, hash, ctx);
	if (!m->count)
		hmap_free(m);
	else if (m->shift > HMAP_MIN_SHIFT && (size_t)m->count * 8 < mask + 1)
		(void)hmap__rebuild(m, m->shift - 1u, hash, ctx); /* best effort */
	return true;
}

void *hmap_next(const struct hmap *m, size_t *pos)
{
	size_t n = m->slot ? hmap__mask(m) + 1 : 0;
	for (size_t i = *pos; i < n; i++) {
		if (m->slot[i]) {
			*pos = i + 1;
			return m->slot[i];
		}
	}
	*pos = n;
	return NULL;
}

void hmap_free(struct hmap *m)
{
	free(m->slot);
	m->slot = NULL;
	m->count = 0;
	m->shift = 0;
}
