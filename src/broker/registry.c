/* The session registry: client id -> session, under b->reg_lock. */
#include "registry.h"
#include "../base/hmap.h"
#include <string.h>

/* The registry is base's hash map of the sessions by client id, seeded
 * with the broker's address: ids are chosen by peers. */
struct registry_key {
	const char *id;
	size_t len;
};

static uint64_t registry_hash_of(const struct broker *b, const char *id, size_t len)
{
	return hmap_hash_bytes((uint64_t)(uintptr_t)b, id, len);
}

static uint64_t registry_hash(const void *item, const void *ctx)
{
	const struct session *s = item;
	return registry_hash_of(ctx, s->client_id, s->client_id_len);
}

static bool registry_is(const void *item, const void *key)
{
	const struct session *s = item;
	const struct registry_key *k = key;
	return s->client_id_len == k->len && !memcmp(s->client_id, k->id, k->len);
}

struct session *broker__registry_find(struct broker *b, const char *id, size_t len)
{
	return hmap_find(&b->reg, registry_hash_of(b, id, len), registry_is, &(struct registry_key){ id, len });
}

int broker__registry_insert(struct broker *b, struct session *s)
{
	int rc = hmap_add(&b->reg, registry_hash(s, b), s, registry_hash, b);
	if (!rc)
		atomic_fetch_add(&b->stats.sessions, 1);
	return rc;
}

void broker__registry_remove(struct broker *b, struct session *s)
{
	if (hmap_remove(&b->reg, registry_hash(s, b), s, registry_hash, b))
		atomic_fetch_sub(&b->stats.sessions, 1);
}

struct session *broker__registry_next(const struct broker *b, size_t *pos) { return hmap_next(&b->reg, pos); }

void broker__registry_free_all(struct broker *b)
{
	size_t pos = 0;
	for (struct session *s; (s = broker__registry_next(b, &pos));)
		session_unref(s);
	hmap_free(&b->reg);
}
