#include "topic_table.h"
#include <stdlib.h>
#include <string.h>

static uint32_t table_hash(unsigned line, const char *topic, size_t len)
{
	uint32_t h = 2166136261u ^ line; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)topic[i]) * 16777619u;
	return h;
}

static int table_grow(struct topic_table *t)
{
	uint32_t cap = t->cap ? t->cap * 2 : 64;
	struct topic_entry **v = calloc(cap, sizeof *v);
	if (!v)
		return -1;
	for (uint32_t i = 0; i < t->cap; i++) {
		for (struct topic_entry *e = t->v[i], *next; e; e = next) {
			next = e->next;
			uint32_t k = table_hash(e->line, e->topic, e->topic_len) & (cap - 1);
			e->next = v[k];
			v[k] = e;
		}
	}
	free(t->v);
	t->v = v;
	t->cap = cap;
	return 0;
}

/* Forgets one entry that may go, going round the buckets. */
static bool table_forget_one(struct topic_table *t, topic_forgettable_fn forgettable)
{
	for (uint32_t n = 0; n < t->cap; n++) {
		uint32_t k = t->hand++ & (t->cap - 1);
		for (struct topic_entry **pe = &t->v[k]; *pe; pe = &(*pe)->next) {
			if (!forgettable(*pe))
				continue;
			struct topic_entry *e = *pe;
			*pe = e->next;
			free(e);
			t->count--;
			t->forgotten++;
			return true;
		}
	}
	return false;
}

struct topic_entry *topic_table_find(const struct topic_table *t, unsigned line, const char *topic, size_t len)
{
	if (!t->cap)
		return NULL;
	for (struct topic_entry *e = t->v[table_hash(line, topic, len) & (t->cap - 1)]; e; e = e->next)
		if (e->line == line && e->topic_len == len && !memcmp(e->topic, topic, len))
			return e;
	return NULL;
}

struct topic_entry *topic_table_add(struct topic_table *t, size_t size, unsigned line, const char *topic, size_t len,
				    topic_forgettable_fn forgettable)
{
	if (len > UINT16_MAX || (t->count >= t->max && !table_forget_one(t, forgettable)))
		return NULL;
	if (t->count >= t->cap / 2 && table_grow(t))
		return NULL;
	struct topic_entry *e = calloc(1, size + len);
	if (!e)
		return NULL;
	char *copy = (char *)e + size;
	memcpy(copy, topic, len);
	e->topic = copy;
	e->line = (uint16_t)line;
	e->topic_len = (uint16_t)len;
	uint32_t k = table_hash(line, topic, len) & (t->cap - 1);
	e->next = t->v[k];
	t->v[k] = e;
	t->count++;
	return e;
}

void topic_table_free(struct topic_table *t)
{
	for (uint32_t k = 0; k < t->cap; k++) {
		for (struct topic_entry *e = t->v[k], *next; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(t->v);
	t->v = NULL;
	t->cap = t->count = 0;
}
