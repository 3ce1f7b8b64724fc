#include "trie.h"
#include "../base/err.h"
#include <stdlib.h>

/* Children are scanned linearly up to this many; above, a hash table. */
#define TOPIC_KIDS_LINEAR 8
/* A new table has 32 slots, so 9..16 children keep the load at most 1/2. */
#define TOPIC_TABLE_MIN_SHIFT 5

uint64_t topic__mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

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

/* The table of node n is seeded with n's address, so labels that collide
 * under one node (chosen by a client publishing retained topics, say) do not
 * collide under another, and the layout differs from run to run. */
static size_t topic__label_hash(const struct topic_node *n, const char *label, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)(uintptr_t)n;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)label[i];
		h *= 0x100000001b3ull;
	}
	return (size_t)topic__mix(h);
}

static bool topic__label_eq(const struct topic_node *k, const char *label, size_t len)
{
	return k->len == len && memcmp(k->label, label, len) == 0;
}

static size_t topic__table_mask(const struct topic_node *n)
{
	return ((size_t)1 << n->kid_shift) - 1;
}

/* The child slots and how many there are (a table's slots may be NULL). */
static struct topic_node **topic__kid_slots(const struct topic_node *n, size_t *count)
{
	*count = n->flags & TOPIC_NODE_TABLE ? topic__table_mask(n) + 1 : n->n_kids;
	return n->kids;
}

static size_t topic__kid_slot(const struct topic_node *n, const struct topic_node *kid)
{
	struct topic_node **k = n->kids;
	size_t i = 0;
	if (!(n->flags & TOPIC_NODE_TABLE)) {
		while (k[i] != kid)
			i++;
		return i;
	}
	size_t mask = topic__table_mask(n);
	for (i = topic__label_hash(n, kid->label, kid->len) & mask; k[i] != kid; i = (i + 1) & mask)
		;
	return i;
}

struct topic_node *topic__node_kid(const struct topic_node *n, const char *label, size_t len)
{
	struct topic_node **k = n->kids;
	if (!(n->flags & TOPIC_NODE_TABLE)) {
		for (uint32_t i = 0; i < n->n_kids; i++)
			if (topic__label_eq(k[i], label, len))
				return k[i];
		return NULL;
	}
	size_t mask = topic__table_mask(n);
	for (size_t i = topic__label_hash(n, label, len) & mask; k[i]; i = (i + 1) & mask)
		if (topic__label_eq(k[i], label, len))
			return k[i];
	return NULL;
}

struct topic_node *topic__node_next_kid(const struct topic_node *n,
					const struct topic_node *prev)
{
	size_t count;
	struct topic_node **k = topic__kid_slots(n, &count);
	for (size_t i = prev ? topic__kid_slot(n, prev) + 1 : 0; i < count; i++)
		if (k[i])
			return k[i];
	return NULL;
}

static void topic__table_put(struct topic_node **t, size_t mask, const struct topic_node *n,
			     struct topic_node *kid)
{
	size_t i = topic__label_hash(n, kid->label, kid->len) & mask;
	while (t[i])
		i = (i + 1) & mask;
	t[i] = kid;
}

/* Moves n's children into a new table of 1 << shift slots. */
static int topic__table_rebuild(struct topic_node *n, unsigned shift)
{
	size_t count, mask = ((size_t)1 << shift) - 1;
	struct topic_node **t = calloc(mask + 1, sizeof(*t));
	if (!t)
		return -FM_ENOMEM;
	struct topic_node **old = topic__kid_slots(n, &count);
	for (size_t i = 0; i < count; i++)
		if (old[i])
			topic__table_put(t, mask, n, old[i]);
	free(old);
	n->kids = t;
	n->kid_shift = (uint8_t)shift;
	n->flags |= TOPIC_NODE_TABLE;
	return 0;
}

static int topic__table_to_array(struct topic_node *n)
{
	size_t count, m = 0, cap = topic__pow2(n->n_kids);
	struct topic_node **a = NULL;
	if (cap && !(a = malloc(cap * sizeof(*a))))
		return -FM_ENOMEM;
	struct topic_node **t = topic__kid_slots(n, &count);
	for (size_t i = 0; i < count; i++)
		if (t[i])
			a[m++] = t[i];
	free(t);
	n->kids = a;
	n->flags &= (uint8_t)~TOPIC_NODE_TABLE;
	return 0;
}

/* Empties slot `hole` of n's table, shifting later items of its probe run
 * back so that lookups need no tombstones. */
static void topic__table_del(struct topic_node *n, size_t hole)
{
	struct topic_node **t = n->kids;
	size_t mask = topic__table_mask(n);
	t[hole] = NULL;
	for (size_t j = (hole + 1) & mask; t[j]; j = (j + 1) & mask) {
		size_t home = topic__label_hash(n, t[j]->label, t[j]->len) & mask;
		if (topic__probe_may_fill(hole, j, home, mask)) {
			t[hole] = t[j];
			t[j] = NULL;
			hole = j;
		}
	}
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
		bool table = n->flags & TOPIC_NODE_TABLE;
		size_t cap = table ? topic__table_mask(n) + 1 : 0;
		if (((size_t)n->n_kids + 1) * 2 > cap &&
		    topic__table_rebuild(n, table ? n->kid_shift + 1u : TOPIC_TABLE_MIN_SHIFT))
			return -FM_ENOMEM;
		topic__table_put(n->kids, topic__table_mask(n), n, kid);
	}
	n->n_kids++;
	n->flags |= topic__wild_flag(kid);
	return 0;
}

/* Removes kid from n's children. Shrinking is best effort: on allocation
 * failure the larger container stays, which is still correct. */
static void topic__node_unlink(struct topic_node *n, struct topic_node *kid)
{
	size_t i = topic__kid_slot(n, kid);
	if (!(n->flags & TOPIC_NODE_TABLE)) {
		struct topic_node **k = n->kids;
		k[i] = k[n->n_kids - 1];
		(void)topic__arr_fit(&n->kids, sizeof(kid), n->n_kids, n->n_kids - 1u);
		n->n_kids--;
	} else {
		topic__table_del(n, i);
		n->n_kids--;
		if (n->n_kids <= TOPIC_KIDS_LINEAR / 2)
			(void)topic__table_to_array(n);
		else if (n->kid_shift > TOPIC_TABLE_MIN_SHIFT &&
			 (size_t)n->n_kids * 8 < topic__table_mask(n) + 1)
			(void)topic__table_rebuild(n, n->kid_shift - 1u);
	}
	n->flags &= (uint8_t)~topic__wild_flag(kid);
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
		free(n->kids); /* a table whose shrink failed may remain */
		free(n);
		n = p;
	}
}

/* Takes one child away from n, ignoring the table layout: n is being freed. */
static struct topic_node *topic__node_pop_kid(struct topic_node *n)
{
	size_t count, m = 0;
	struct topic_node **k = topic__kid_slots(n, &count);
	if (n->flags & TOPIC_NODE_TABLE) {
		for (size_t i = 0; i < count; i++)
			if (k[i])
				k[m++] = k[i];
		n->flags &= (uint8_t)~TOPIC_NODE_TABLE;
	}
	return n->n_kids ? k[--n->n_kids] : NULL;
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
		free(n->kids);
		free(n);
		n = p;
	}
}
