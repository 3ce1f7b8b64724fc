/* Open-addressing map from a stored message id to the number of rows that
 * reference its body. Owned by the store's writer thread. */
#ifndef FM_REFMAP_H
#define FM_REFMAP_H
#include <stdbool.h>
#include <stdint.h>

struct refmap {
	uint64_t *keys; /* 0 = empty, UINT64_MAX = deleted */
	int32_t *vals;
	uint32_t cap, used, live;
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
