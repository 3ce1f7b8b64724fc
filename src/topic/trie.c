#include "trie.h"
#include "../base/err.h"
#include "../base/hmap.h"
#include <stdlib.h>

/* Children are scanned linearly up to this many; above, a hash map. */
#define TOPIC_KIDS_LINEAR 8

static size_t topic__pow2(size_t n)
{
	size_t c = 1;
	if (n == 0)
		return 0;
	while (c < n)
		c <<= 1;
	return c;
}

int topic__arr_fit(void **arr, size_t elem, size_t old_n, size_t new_n)
{
	size_t old_cap = topic__pow2(old_n), cap = topic__pow2(new_n);
	if (cap == old_cap)
		return 0;
	if (cap == 0) {
		free(*arr);
		*arr = NULL;
		return 0;
	}
	if (cap > SIZE_MAX / elem)
		return -FM_ENOMEM;
	void *p = realloc(*arr, cap * elem);
	if (!p) /* a failed shrink keeps the larger block, which still fits */
		return cap < old_cap ? 0 : -FM_ENOMEM;
	*arr = p;
	return 0;
}

/* The map of node n is seeded with n's address, so labels that collide
 * under one node (chosen by a client publishing retained topics, say) do not
 * collide under another, and the layout differs from run to run. */
static uint64_t topic__label_hash(const struct topic_node *n, const char *label, size_t len)
{
	return hmap_hash_bytes((uint64_t)(uintptr_t)n, label, len);
}

/* hmap's hash of a child; ctx is the parent. */
static uint64_t topic__kid_hash(const void *kid, const void *parent)
{
	const struct topic_node *k = kid;
	return topic__label_hash(parent, k->label, k->len);
}

struct topic__label {
	const char *p;
	size_t len;
};

static bool topic__kid_is(const void *kid, const void *key)
{
	const struct topic_node *k = kid;
	const struct topic__label *l = key;
	return k->len == l->len && memcmp(k->label, l->p, l->len) == 0;
}

static struct hmap *topic__kid_map(const struct topic_node *n)
{
	return n->flags & TOPIC_NODE_TABLE ? n->kids : NULL;
}

struct topic_node *topic__node_kid(const struct topic_node *n, const char *label, size_t len)
{
	struct topic__label key = { label, len };
	const struct hmap *map = topic__kid_map(n);
	if (map)
		return hmap_find(map, topic__label_hash(n, label, len), topic__kid_is, &key);
	struct topic_node **k = n->kids;
	for (uint32_t i = 0; i < n->n_kids; i++)
		if (topic__kid_is(k[i], &key))
			return k[i];
	return NULL;
}

struct topic_node *topic__node_next_kid(const struct topic_node *n, const struct topic_node *prev)
{
	const struct hmap *map = topic__kid_map(n);
	if (map) {
		size_t pos = prev ? hmap_slot_of(map, topic__kid_hash(prev, n), prev) + 1 : 0;
		return hmap_next(map, &pos);
	}
	struct topic_node **k = n->kids;
	uint32_t i = 0;
	if (prev) {
		while (k[i] != prev)
			i++;
		i++;
	}
	return i < n->n_kids ? k[i] : NULL;
}

/* Moves n's children from the array into a map. */
static int topic__kids_to_map(struct topic_node *n)
{
	struct hmap *map = calloc(1, sizeof *map);
	if (!map || hmap_reserve(map, n->n_kids + 1, topic__kid_hash, n)) {
		free(map);
		return -FM_ENOMEM;
	}
	struct topic_node **k = n->kids;
	for (uint32_t i = 0; i < n->n_kids; i++)
		(void)hmap_add(map, topic__kid_hash(k[i], n), k[i], topic__kid_hash, n); /* reserved: cannot fail */
	free(k);
	n->kids = map;
	n->flags |= TOPIC_NODE_TABLE;
	return 0;
}

/* Moves n's children from the map back into an array; best effort. */
static void topic__kids_to_array(struct topic_node *n)
{
	struct hmap *map = n->kids;
	size_t cap = topic__pow2(n->n_kids), pos = 0, m = 0;
	struct topic_node **a = NULL, *k;
	if (cap && !(a = malloc(cap * sizeof(*a))))
		return;
	while ((k = hmap_next(map, &pos)))
		a[m++] = k;
	hmap_free(map);
	free(map);
	n->kids = a;
	n->flags &= (uint8_t)~TOPIC_NODE_TABLE;
}

static uint8_t topic__wild_flag(const struct topic_node *kid)
{
	if (topic__node_is(kid, '+'))
		return TOPIC_NODE_PLUS;
	return topic__node_is(kid, '#') ? TOPIC_NODE_HASH : 0;
}

static int topic__node_link(struct topic_node *n, struct topic_node *kid)
{
	if (!(n->flags & TOPIC_NODE_TABLE) && n->n_kids < TOPIC_KIDS_LINEAR) {
		if (topic__arr_fit(&n->kids, sizeof(kid), n->n_kids, n->n_kids + 1))
			return -FM_ENOMEM;
		((struct topic_node **)n->kids)[n->n_kids] = kid;
	} else {
		if (!(n->flags & TOPIC_NODE_TABLE) && topic__kids_to_map(n))
			return -FM_ENOMEM;
		if (hmap_add(n->kids, topic__kid_hash(kid, n), kid, topic__kid_hash, n))
			return -FM_ENOMEM;
	}
	n->n_kids++;
	n->flags |= topic__wild_flag(kid);
	return 0;
}

/* Removes kid from n's children. Shrinking is best effort: on allocation
 * failure the larger container stays, which is still correct. */
static void topic__node_unlink(struct topic_node *n, struct topic_node *kid)
{
	if (!(n->flags & TOPIC_NODE_TABLE)) {
		struct topic_node **k = n->kids;
		uint32_t i = 0;
		while (k[i] != kid)
			i++;
		k[i] = k[n->n_kids - 1];
		(void)topic__arr_fit(&n->kids, sizeof(kid), n->n_kids, n->n_kids - 1u);
		n->n_kids--;
	} else {
		hmap_remove(n->kids, topic__kid_hash(kid, n), kid, topic__kid_hash, n);
		n->n_kids--;
		if (n->n_kids <= TOPIC_KIDS_LINEAR / 2)
			topic__kids_to_array(n);
	}
	n->flags &= (uint8_t)~topic__wild_flag(kid);
}

/* Frees n's container of children (empty, or its children freed). */
static void topic__kids_free(struct topic_node *n)
{
	struct hmap *map = topic__kid_map(n);
	if (map)
		hmap_free(map);
	free(n->kids);
	n->kids = NULL;
}

struct topic_node *topic__node_root(void)
{
	return calloc(1, sizeof(struct topic_node));
}

static struct topic_node *topic__node_add(struct topic_node *n, const char *label, size_t len)
{
	if (len > UINT16_MAX)
		return NULL;
	struct topic_node *k = calloc(1, sizeof(*k) + len);
	if (!k)
		return NULL;
	k->parent = n;
	k->len = (uint16_t)len;
	memcpy(k->label, label, len);
	if (topic__node_link(n, k)) {
		free(k);
		return NULL;
	}
	return k;
}

struct topic_node *topic__node_path(struct topic_node *root, const char *p, size_t len,
				    bool create, int *err)
{
	struct topic_node *n = root;
	for (size_t at = 0;;) {
		size_t end = topic__level_end(p, len, at);
		struct topic_node *k = topic__node_kid(n, p + at, end - at);
		if (!k && !create) {
			*err = -FM_ENOENT;
			return NULL;
		}
		if (!k && !(k = topic__node_add(n, p + at, end - at))) {
			topic__node_prune(n); /* the levels this call added */
			*err = -FM_ENOMEM;
			return NULL;
		}
		n = k;
		if (end == len)
			return n;
		at = end + 1;
	}
}

void topic__node_prune(struct topic_node *n)
{
	while (n->parent && !n->val && !n->n_kids) {
		struct topic_node *p = n->parent;
		topic__node_unlink(p, n);
		topic__kids_free(n); /* an array or map whose shrink failed may remain */
		free(n);
		n = p;
	}
}

/* Takes one child away from n, ignoring the map's layout: n is being
 * freed. The first call turns a map into an array in place (its slots,
 * compacted), so that freeing a wide node is linear in its slots. */
static struct topic_node *topic__node_pop_kid(struct topic_node *n)
{
	struct hmap *map = topic__kid_map(n);
	if (map) {
		size_t cap = map->slot ? (size_t)1 << map->shift : 0, m = 0;
		void **slot = map->slot;
		for (size_t i = 0; i < cap; i++)
			if (slot[i])
				slot[m++] = slot[i];
		free(map);
		n->kids = slot;
		n->flags &= (uint8_t)~TOPIC_NODE_TABLE;
	}
	return n->n_kids ? ((struct topic_node **)n->kids)[--n->n_kids] : NULL;
}

void topic__node_free_tree(struct topic_node *root, void (*drop)(void *val))
{
	struct topic_node *n = root;
	while (n) {
		struct topic_node *k = topic__node_pop_kid(n);
		if (k) {
			n = k;
			continue;
		}
		struct topic_node *p = n->parent;
		if (n->val && drop)
			drop(n->val);
		topic__kids_free(n);
		free(n);
		n = p;
	}
}
