#include "refmap.h"
#include "../base/err.h"
#include <stdlib.h>

struct refmap_entry {
	uint64_t id;
	int32_t refs;
	struct refmap_entry *next_spare; /* while in m->spare */
};

/* Ids are the broker's own (never chosen by a peer): no seed needed. */
static uint64_t refmap__hash_of(uint64_t id) { return hmap_mix64(id); }

static uint64_t refmap__hash(const void *item, const void *ctx)
{
	(void)ctx;
	return refmap__hash_of(((const struct refmap_entry *)item)->id);
}

static bool refmap__is(const void *item, const void *key)
{
	return ((const struct refmap_entry *)item)->id == *(const uint64_t *)key;
}

/* The entry of key, or NULL. Most bodies have one reference, so the map is
 * often empty: that case is answered without hashing. */
static struct refmap_entry *refmap__find(const struct refmap *m, uint64_t h, uint64_t key)
{
	return hmap_find(&m->map, h, refmap__is, &key);
}

bool refmap_has(const struct refmap *m, uint64_t key)
{
	return m->map.count && refmap__find(m, refmap__hash_of(key), key);
}

int refmap_put(struct refmap *m, uint64_t key, int32_t val)
{
	uint64_t h = refmap__hash_of(key);
	struct refmap_entry *e = m->map.count ? refmap__find(m, h, key) : NULL;
	if (e) {
		e->refs = val;
		return 0;
	}
	if ((e = m->spare)) {
		m->spare = e->next_spare;
		m->n_spare--;
	} else if (!(e = malloc(sizeof *e))) {
		return -FM_ENOMEM;
	}
	*e = (struct refmap_entry){ .id = key, .refs = val };
	if (hmap_add(&m->map, h, e, refmap__hash, NULL)) {
		free(e);
		return -FM_ENOMEM;
	}
	return 0;
}

int32_t refmap_add(struct refmap *m, uint64_t key, int32_t delta)
{
	struct refmap_entry *e = m->map.count ? refmap__find(m, refmap__hash_of(key), key) : NULL;
	if (!e)
		return delta;
	e->refs += delta;
	return e->refs;
}

void refmap_del(struct refmap *m, uint64_t key)
{
	if (!m->map.count)
		return;
	uint64_t h = refmap__hash_of(key);
	struct refmap_entry *e = refmap__find(m, h, key);
	if (!e)
		return;
	hmap_remove(&m->map, h, e, refmap__hash, NULL);
	if (m->n_spare >= REFMAP_SPARE) {
		free(e);
		return;
	}
	e->next_spare = m->spare;
	m->spare = e;
	m->n_spare++;
}

void refmap_free(struct refmap *m)
{
	size_t pos = 0;
	struct refmap_entry *e;
	while ((e = hmap_next(&m->map, &pos)))
		free(e);
	hmap_free(&m->map);
	while ((e = m->spare)) {
		m->spare = e->next_spare;
		free(e);
	}
	m->n_spare = 0;
}
