/* The hash map: an open-addressing table of pointers to the caller's items,
 * linear probing, at most half full, deletion by moving items back (no
 * tombstones, so lookups never slow down with churn). The map owns only its
 * slot array; the items, and their keys, stay the caller's. A key is
 * hashed by the caller; the map asks for an item's hash (with the caller's
 * ctx) only when it moves items: growing, shrinking and deleting. Pure; not
 * thread-safe. */
#ifndef FM_BASE_HMAP_H
#define FM_BASE_HMAP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HMAP_MIN_SHIFT 4 /* 16 slots */

/* An empty map is all zeroes (no slot array). The fields are read by
 * iteration (hmap_next) and by owners that walk the slots themselves; only
 * the functions below change them. */
struct hmap {
	void **slot;    /* 1 << shift slots, NULL: free */
	uint32_t count; /* items */
	uint8_t shift;  /* 0 while there is no slot array */
};

/* The hash of an item, the same as the one its key was added with. */
typedef uint64_t (*hmap_hash_fn)(const void *item, const void *ctx);
/* Whether item has the key the lookup is for. */
typedef bool (*hmap_eq_fn)(const void *item, const void *key);

/* The item with hash h for which eq(item, key) holds, or NULL. Inline, so
 * that a caller's eq is inlined into its probe loop. */
static inline void *hmap_find(const struct hmap *m, uint64_t h, hmap_eq_fn eq, const void *key)
{
	if (!m->slot)
		return NULL;
	size_t mask = ((size_t)1 << m->shift) - 1;
	for (size_t i = (size_t)h & mask; m->slot[i]; i = (i + 1) & mask)
		if (eq(m->slot[i], key))
			return m->slot[i];
	return NULL;
}
/* Adds item (not NULL, not in the map) with hash h, growing the table to
 * keep it at most half full. Returns 0, or -FM_ENOMEM with m unchanged. */
int hmap_add(struct hmap *m, uint64_t h, void *item, hmap_hash_fn hash, const void *ctx);
/* Removes item (the pointer, added with hash h). Shrinking when the map is
 * less than 1/8 full is best effort: on allocation failure the larger
 * table stays. Returns false when item was not in the map. */
bool hmap_remove(struct hmap *m, uint64_t h, const void *item, hmap_hash_fn hash, const void *ctx);
/* Makes room for n items without growing again. Returns 0 or -FM_ENOMEM. */
int hmap_reserve(struct hmap *m, uint32_t n, hmap_hash_fn hash, const void *ctx);
/* Iterates: *pos starts at 0; returns the item in the first used slot at
 * or after *pos and moves *pos past it, or NULL at the end. The order is
 * arbitrary and stable while the map is unchanged; a change ends the walk. */
void *hmap_next(const struct hmap *m, size_t *pos);
/* The slot of item (added with hash h), which must be in the map: with
 * hmap_next from the slot after it, a walk resumes after a given item. */
size_t hmap_slot_of(const struct hmap *m, uint64_t h, const void *item);
/* Removes and returns the item in slot i (which must hold one), without
 * shrinking: for owners that pick what to remove by walking the slots. */
void *hmap_take_at(struct hmap *m, size_t i, hmap_hash_fn hash, const void *ctx);
/* Frees the slot array (not the items) and empties m. */
void hmap_free(struct hmap *m);

/* The mixing every table hashes with: MurmurHash3's 64-bit finaliser. */
static inline uint64_t hmap_mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}
/* FNV-1a over p[0..len) from seed, then hmap_mix64. Seeding with an
 * address or a random number keeps keys chosen by a peer from colliding
 * the same way in every table and every run. */
uint64_t hmap_hash_bytes(uint64_t seed, const void *p, size_t len);

#endif
