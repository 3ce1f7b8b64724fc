/* Map from a stored message id to the number of rows that reference its
 * body, for bodies with two or more (a body with one is not in the map: its
 * one reference is implicit). An hmap of small entries, one allocation
 * each; entries freed are kept for reuse, up to REFMAP_SPARE, since a
 * fan-out body is added and removed once per message (a malloc and a free
 * each cost more than the map's own work). Owned by the store's writer
 * thread. */
#ifndef FM_REFMAP_H
#define FM_REFMAP_H
#include "../base/hmap.h"
#include <stdbool.h>
#include <stdint.h>

#define REFMAP_SPARE 256

/* An empty map is all zeroes. */
struct refmap {
	struct hmap map; /* of struct refmap_entry (refmap.c); map.count: ids held */
	struct refmap_entry *spare; /* entries freed, for reuse */
	uint32_t n_spare;           /* at most REFMAP_SPARE */
};

bool refmap_has(const struct refmap *m, uint64_t key);
/* Sets key's count; returns 0 or -FM_ENOMEM. */
int refmap_put(struct refmap *m, uint64_t key, int32_t val);
/* Adds delta to key's count (a missing key counts 0 and is not created);
 * returns the new count. */
int32_t refmap_add(struct refmap *m, uint64_t key, int32_t delta);
void refmap_del(struct refmap *m, uint64_t key);
void refmap_free(struct refmap *m);

#endif
