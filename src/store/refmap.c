#include "refmap.h"
#include "../base/err.h"
#include <stdlib.h>

#define EMPTY 0
#define GONE UINT64_MAX

static uint32_t slot_of(uint64_t key, uint32_t cap)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdull;
	key ^= key >> 33;
	return (uint32_t)key & (cap - 1);
}

static int32_t *find(const struct refmap *m, uint64_t key)
{
	if (!m->cap)
		return NULL;
	for (uint32_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key)
			return &m->vals[i];
		if (m->keys[i] == EMPTY)
			return NULL;
	}
}

bool refmap_has(const struct refmap *m, uint64_t key) { return find(m, key) != NULL; }

static int grow(struct refmap *m)
{
	uint32_t cap = m->cap ? m->cap * 2 : 1024;
	if (m->live * 4 < m->cap)
		cap = m->cap; /* mostly tombstones: rehash in place size */
	uint64_t *keys = calloc(cap, sizeof *keys);
	int32_t *vals = malloc(sizeof *vals * cap);
	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -FM_ENOMEM;
	}
	for (uint32_t i = 0; i < m->cap; i++) {
		if (m->keys[i] == EMPTY || m->keys[i] == GONE)
			continue;
		uint32_t j = slot_of(m->keys[i], cap);
		while (keys[j] != EMPTY)
			j = (j + 1) & (cap - 1);
		keys[j] = m->keys[i];
		vals[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = keys;
	m->vals = vals;
	m->cap = cap;
	m->used = m->live;
	return 0;
}

int refmap_put(struct refmap *m, uint64_t key, int32_t val)
{
	int32_t *v = find(m, key);
	if (v) {
		*v = val;
		return 0;
	}
	if ((m->used + 1) * 4 >= m->cap * 3 && grow(m))
		return -FM_ENOMEM;
	uint32_t i = slot_of(key, m->cap);
	while (m->keys[i] != EMPTY && m->keys[i] != GONE)
		i = (i + 1) & (m->cap - 1);
	if (m->keys[i] == EMPTY)
		m->used++;
	m->keys[i] = key;
	m->vals[i] = val;
	m->live++;
	return 0;
}

int32_t refmap_add(struct refmap *m, uint64_t key, int32_t delta)
{
	int32_t *v = find(m, key);
	if (!v)
		return delta;
	*v += delta;
	return *v;
}

void refmap_del(struct refmap *m, uint64_t key)
{
	int32_t *v = find(m, key);
	if (!v)
		return;
	m->keys[v - m->vals] = GONE;
	m->live--;
}

void refmap_free(struct refmap *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = NULL;
	m->vals = NULL;
	m->cap = m->used = m->live = 0;
}
