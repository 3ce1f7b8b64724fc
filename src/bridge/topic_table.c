#include "topic_table.h"
#include <stdlib.h>
#include <string.h>

/* Seeded per table: topics chosen by publishers collide differently in
 * every table and every run. */
static uint64_t table_hash(const struct topic_table *t, unsigned line, const char *topic, size_t len)
{
	return hmap_hash_bytes(t->seed ^ (uint64_t)line << 48, topic, len);
}

static uint64_t entry_hash(const void *item, const void *table)
{
	const struct topic_entry *e = item;
	return table_hash(table, e->line, e->topic, e->topic_len);
}

struct entry_key {
	const char *topic;
	size_t len;
	unsigned line;
};

static bool entry_is(const void *item, const void *key)
{
	const struct topic_entry *e = item;
	const struct entry_key *k = key;
	return e->line == k->line && e->topic_len == k->len && !memcmp(e->topic, k->topic, k->len);
}

/* Forgets one entry that may go, going round the slots. */
static bool table_forget_one(struct topic_table *t, topic_forgettable_fn forgettable)
{
	size_t cap = t->map.slot ? (size_t)1 << t->map.shift : 0;
	for (size_t n = 0; n < cap; n++) {
		size_t i = t->hand++ & (cap - 1);
		struct topic_entry *e = t->map.slot[i];
		if (!e || !forgettable(e))
			continue;
		free(hmap_take_at(&t->map, i, entry_hash, t));
		t->forgotten++;
		return true;
	}
	return false;
}

struct topic_entry *topic_table_find(const struct topic_table *t, unsigned line, const char *topic, size_t len)
{
	struct entry_key k = { topic, len, line };
	return hmap_find(&t->map, table_hash(t, line, topic, len), entry_is, &k);
}

struct topic_entry *topic_table_add(struct topic_table *t, size_t size, unsigned line, const char *topic, size_t len,
				    topic_forgettable_fn forgettable)
{
	if (len > UINT16_MAX || (t->map.count >= t->max && !table_forget_one(t, forgettable)))
		return NULL;
	struct topic_entry *e = calloc(1, size + len);
	if (!e)
		return NULL;
	if (!t->seed) /* kept from then on: the table may be moved */
		t->seed = (uint64_t)(uintptr_t)t | 1;
	char *copy = (char *)e + size;
	memcpy(copy, topic, len);
	e->topic = copy;
	e->line = (uint16_t)line;
	e->topic_len = (uint16_t)len;
	if (hmap_add(&t->map, table_hash(t, line, topic, len), e, entry_hash, t)) {
		free(e);
		return NULL;
	}
	return e;
}

struct topic_entry *topic_table_next(const struct topic_table *t, size_t *pos)
{
	return hmap_next(&t->map, pos);
}

void topic_table_free(struct topic_table *t)
{
	size_t pos = 0;
	struct topic_entry *e;
	while ((e = hmap_next(&t->map, &pos)))
		free(e);
	hmap_free(&t->map);
}
