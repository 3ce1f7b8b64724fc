/* The subscription index: a trie of filter levels (trie.h) whose nodes hold
 * a struct sub_slot with the ordinary subscriptions and $share groups on
 * that exact filter.
 */
#include "topic.h"
#include "trie.h"
#include "../base/err.h"
#include "../base/hmap.h"
#include <stdlib.h>
#include <string.h>

/* Entries are searched linearly up to this many; above, by a position table,
 * so that 100,000 devices subscribing to one filter is not quadratic. */
#define SUB_SCAN_MAX 16
#define SUB_POS_MIN_SHIFT 6

/* Groups are searched linearly up to this many; above, by a name table,
 * so that one client subscribing to 40,000 groups on one filter (or many
 * clients to a group each) is not quadratic. */
#define SUB_GROUP_SCAN_MAX 16

struct sub_groups {
	uint32_t n, cap;
	uint32_t *pos;     /* NULL, or 1 << pos_shift slots of group index + 1 (0: free) */
	uint64_t seed;     /* of the name hash; fixed for the array's life, which realloc moves */
	uint8_t pos_shift;
	struct sub_group g[];
};

struct sub_slot {
	struct sub_groups *groups; /* NULL when none; no group is ever empty */
	uint32_t *pos;             /* NULL, or 1 << pos_shift slots of entry index + 1 (0: free) */
	uint32_t n;                /* entries in e[] */
	uint8_t shift;             /* e[] has room for 1 << shift */
	uint8_t pos_shift;
	struct sub_entry e[];
};

struct sub_index {
	struct topic_node *root;
	size_t count;
};

/* ---- position tables: an index into an array, found by hash ----
 * 1 << shift slots of index + 1 (0: free), linear probing, at most half
 * full; home(ctx, idx) is the hash of the item at idx. */

typedef size_t (*sub_home_fn)(const void *ctx, uint32_t idx);

static void sub__tab_put(uint32_t *t, size_t mask, sub_home_fn home, const void *ctx, uint32_t idx)
{
	size_t i = home(ctx, idx) & mask;
	while (t[i])
		i = (i + 1) & mask;
	t[i] = idx + 1;
}

/* The slot that holds idx. */
static size_t sub__tab_slot(const uint32_t *t, size_t mask, sub_home_fn home, const void *ctx, uint32_t idx)
{
	size_t i = home(ctx, idx) & mask;
	while (t[i] != idx + 1)
		i = (i + 1) & mask;
	return i;
}

/* Empties slot `hole`, moving back what would become unreachable (linear
 * probing has no tombstones). */
static void sub__tab_del(uint32_t *t, size_t mask, sub_home_fn home, const void *ctx, size_t hole)
{
	t[hole] = 0;
	for (size_t j = (hole + 1) & mask; t[j]; j = (j + 1) & mask) {
		if (topic__probe_may_fill(hole, j, home(ctx, t[j] - 1) & mask, mask)) {
			t[hole] = t[j];
			t[j] = 0;
			hole = j;
		}
	}
}

/* A table of 1 << shift slots indexing items 0..n, or NULL. */
static uint32_t *sub__tab_build(unsigned shift, sub_home_fn home, const void *ctx, uint32_t n)
{
	uint32_t *t = calloc((size_t)1 << shift, sizeof(*t));
	for (uint32_t i = 0; t && i < n; i++)
		sub__tab_put(t, ((size_t)1 << shift) - 1, home, ctx, i);
	return t;
}

/* The shift of a table for n items, at most half full. */
static unsigned sub__tab_shift(size_t n)
{
	unsigned shift = SUB_POS_MIN_SHIFT;
	while (((size_t)1 << shift) < n * 2)
		shift++;
	return shift;
}

/* ---- the entries' table: subscriber -> index in e[] ---- */

static size_t sub__entry_home(const void *ctx, uint32_t idx)
{
	const struct sub_slot *s = ctx;
	return (size_t)hmap_mix64((uint64_t)(uintptr_t)s->e[idx].subscriber);
}

static size_t sub__pos_mask(const struct sub_slot *s)
{
	return ((size_t)1 << s->pos_shift) - 1;
}

static void sub__pos_put(struct sub_slot *s, uint32_t idx)
{
	sub__tab_put(s->pos, sub__pos_mask(s), sub__entry_home, s, idx);
}

static size_t sub__pos_slot(const struct sub_slot *s, uint32_t idx)
{
	return sub__tab_slot(s->pos, sub__pos_mask(s), sub__entry_home, s, idx);
}

static void sub__pos_del(struct sub_slot *s, size_t hole)
{
	sub__tab_del(s->pos, sub__pos_mask(s), sub__entry_home, s, hole);
}

/* Indexes the s->n entries in a new table of 1 << shift slots. */
static int sub__pos_build(struct sub_slot *s, unsigned shift)
{
	uint32_t *t = sub__tab_build(shift, sub__entry_home, s, s->n);
	if (!t)
		return -FM_ENOMEM;
	free(s->pos);
	s->pos = t;
	s->pos_shift = (uint8_t)shift;
	return 0;
}

/* ---- ordinary entries ---- */

static bool sub__entry_find(const struct sub_slot *s, const void *who, uint32_t *at)
{
	if (!s->pos) {
		for (uint32_t i = 0; i < s->n; i++)
			if (s->e[i].subscriber == who) {
				*at = i;
				return true;
			}
		return false;
	}
	size_t mask = sub__pos_mask(s);
	size_t i = (size_t)hmap_mix64((uint64_t)(uintptr_t)who) & mask;
	for (; s->pos[i]; i = (i + 1) & mask)
		if (s->e[s->pos[i] - 1].subscriber == who) {
			*at = s->pos[i] - 1;
			return true;
		}
	return false;
}

/* The slot of node, created empty (room for one entry) when missing. */
static struct sub_slot *sub__slot_get(struct topic_node *node)
{
	if (!node->val)
		node->val = calloc(1, sizeof(struct sub_slot) + sizeof(struct sub_entry));
	return node->val;
}

static int sub__slot_resize(struct topic_node *node, unsigned shift)
{
	struct sub_slot *s = realloc(node->val, sizeof(*s) + ((size_t)1 << shift) * sizeof(s->e[0]));
	if (!s)
		return -FM_ENOMEM;
	s->shift = (uint8_t)shift;
	node->val = s;
	return 0;
}

/* Makes room for one more entry in node's slot (and in its position table). */
static int sub__slot_reserve(struct topic_node *node)
{
	struct sub_slot *s = sub__slot_get(node);
	if (!s)
		return -FM_ENOMEM;
	if (s->n == (1u << s->shift) && sub__slot_resize(node, s->shift + 1u))
		return -FM_ENOMEM;
	s = node->val;
	size_t want = ((size_t)s->n + 1) * 2; /* keeps the table at most half full */
	if (s->n + 1 <= SUB_SCAN_MAX || (s->pos && want <= sub__pos_mask(s) + 1))
		return 0;
	return sub__pos_build(s, sub__tab_shift((size_t)s->n + 1));
}

static int sub__entry_add(struct topic_node *node, const struct sub_entry *e)
{
	struct sub_slot *s = node->val;
	uint32_t i;
	if (s && sub__entry_find(s, e->subscriber, &i)) {
		s->e[i] = *e;
		return 1;
	}
	int rc = sub__slot_reserve(node);
	if (rc)
		return rc;
	s = node->val;
	s->e[s->n] = *e;
	if (s->pos)
		sub__pos_put(s, s->n);
	s->n++;
	return 0;
}

/* Gives memory back after removals; best effort, a failure keeps more room. */
static void sub__slot_shrink(struct topic_node *node)
{
	struct sub_slot *s = node->val;
	if (s->pos && s->n <= SUB_SCAN_MAX / 2) {
		free(s->pos);
		s->pos = NULL;
	} else if (s->pos && s->pos_shift > SUB_POS_MIN_SHIFT &&
		   (size_t)s->n * 8 < sub__pos_mask(s) + 1) {
		(void)sub__pos_build(s, s->pos_shift - 1u);
	}
	if (s->shift > 0 && s->n <= (1u << s->shift) / 4)
		(void)sub__slot_resize(node, s->shift - 1u);
}

static int sub__entry_remove(struct topic_node *node, const void *who)
{
	struct sub_slot *s = node->val;
	uint32_t i;
	if (!sub__entry_find(s, who, &i))
		return -FM_ENOENT;
	uint32_t last = s->n - 1;
	if (s->pos) {
		sub__pos_del(s, sub__pos_slot(s, i));
		if (i != last)
			s->pos[sub__pos_slot(s, last)] = i + 1;
	}
	s->e[i] = s->e[last]; /* delivery order is not part of the contract */
	s->n--;
	sub__slot_shrink(node);
	return 0;
}

/* ---- $share groups ---- */

static size_t sub__group_hash(const struct sub_groups *gs, const char *name, size_t len)
{
	return (size_t)hmap_hash_bytes(gs->seed, name, len);
}

static size_t sub__group_home(const void *ctx, uint32_t idx)
{
	const struct sub_groups *gs = ctx;
	return sub__group_hash(gs, gs->g[idx].name, strlen(gs->g[idx].name));
}

static size_t sub__group_mask(const struct sub_groups *gs)
{
	return ((size_t)1 << gs->pos_shift) - 1;
}

static bool sub__group_is(const struct sub_group *g, const char *name, size_t len)
{
	return strncmp(g->name, name, len) == 0 && g->name[len] == '\0';
}

static bool sub__group_find(const struct sub_slot *s, const char *name, size_t len, uint32_t *at)
{
	const struct sub_groups *gs = s->groups;
	if (!gs)
		return false;
	if (!gs->pos) {
		for (uint32_t i = 0; i < gs->n; i++)
			if (sub__group_is(&gs->g[i], name, len)) {
				*at = i;
				return true;
			}
		return false;
	}
	size_t mask = sub__group_mask(gs);
	for (size_t i = sub__group_hash(gs, name, len) & mask; gs->pos[i]; i = (i + 1) & mask)
		if (sub__group_is(&gs->g[gs->pos[i] - 1], name, len)) {
			*at = gs->pos[i] - 1;
			return true;
		}
	return false;
}

/* Indexes the groups in a new name table of 1 << shift slots. */
static int sub__group_pos_build(struct sub_groups *gs, unsigned shift)
{
	uint32_t *t = sub__tab_build(shift, sub__group_home, gs, gs->n);
	if (!t)
		return -FM_ENOMEM;
	free(gs->pos);
	gs->pos = t;
	gs->pos_shift = (uint8_t)shift;
	return 0;
}

/* Makes room for one more group in s (array and name table). */
static int sub__group_reserve(struct sub_slot *s)
{
	struct sub_groups *gs = s->groups;
	uint32_t n = gs ? gs->n : 0, cap = gs ? gs->cap : 0;
	if (n == cap) {
		uint32_t ncap = cap ? cap * 2 : 1; /* doubling: appends stay linear */
		struct sub_groups *bigger = realloc(gs, sizeof(*gs) + (size_t)ncap * sizeof(gs->g[0]));
		if (!bigger)
			return -FM_ENOMEM;
		if (!gs)
			*bigger = (struct sub_groups){ .seed = (uint64_t)(uintptr_t)bigger };
		bigger->cap = ncap;
		s->groups = gs = bigger;
	}
	if (n + 1 <= SUB_GROUP_SCAN_MAX || (gs->pos && ((size_t)n + 1) * 2 <= sub__group_mask(gs) + 1))
		return 0;
	return sub__group_pos_build(gs, sub__tab_shift((size_t)n + 1));
}

/* Appends an empty group named name[0..len) and sets *at to its index. */
static int sub__group_new(struct sub_slot *s, const char *name, size_t len, uint32_t *at)
{
	char *copy = malloc(len + 1);
	if (!copy)
		return -FM_ENOMEM;
	if (sub__group_reserve(s)) {
		free(copy);
		/* a new, still empty array is not kept: no group is ever empty */
		if (s->groups && s->groups->n == 0) {
			free(s->groups);
			s->groups = NULL;
		}
		return -FM_ENOMEM;
	}
	memcpy(copy, name, len);
	copy[len] = '\0';
	struct sub_groups *gs = s->groups;
	uint32_t n = gs->n;
	struct sub_group *g = &gs->g[n];
	g->name = copy;
	g->members = NULL;
	g->n_members = 0;
	atomic_init(&g->next, 0);
	gs->n = n + 1;
	if (gs->pos)
		sub__tab_put(gs->pos, sub__group_mask(gs), sub__group_home, gs, n);
	*at = n;
	return 0;
}

/* Gives memory back after a group is dropped; best effort. */
static void sub__groups_shrink(struct sub_slot *s)
{
	struct sub_groups *gs = s->groups;
	if (gs->pos && gs->n <= SUB_GROUP_SCAN_MAX / 2) {
		free(gs->pos);
		gs->pos = NULL;
	} else if (gs->pos && gs->pos_shift > SUB_POS_MIN_SHIFT && (size_t)gs->n * 8 < sub__group_mask(gs) + 1) {
		(void)sub__group_pos_build(gs, gs->pos_shift - 1u);
	}
	if (gs->n <= gs->cap / 4) {
		struct sub_groups *smaller = realloc(gs, sizeof(*gs) + (size_t)(gs->cap / 2) * sizeof(gs->g[0]));
		if (smaller) {
			smaller->cap /= 2;
			s->groups = smaller;
		}
	}
}

static void sub__group_drop(struct sub_slot *s, uint32_t i)
{
	struct sub_groups *gs = s->groups;
	uint32_t last = gs->n - 1;
	if (gs->pos) {
		size_t mask = sub__group_mask(gs);
		sub__tab_del(gs->pos, mask, sub__group_home, gs, sub__tab_slot(gs->pos, mask, sub__group_home, gs, i));
		if (i != last)
			gs->pos[sub__tab_slot(gs->pos, mask, sub__group_home, gs, last)] = i + 1;
	}
	free((void *)gs->g[i].name);
	free(gs->g[i].members);
	/* memcpy: a plain copy of the atomic cursor, writers being serialised */
	if (i != last)
		memcpy(&gs->g[i], &gs->g[last], sizeof(gs->g[0]));
	gs->n = last;
	if (last == 0) {
		free(gs->pos);
		free(gs);
		s->groups = NULL;
		return;
	}
	sub__groups_shrink(s);
}

static int sub__member_put(struct sub_group *g, const struct sub_entry *e)
{
	for (uint32_t i = 0; i < g->n_members; i++)
		if (g->members[i].subscriber == e->subscriber) {
			g->members[i] = *e;
			return 1;
		}
	void *m = g->members;
	if (topic__arr_fit(&m, sizeof(*e), g->n_members, g->n_members + 1u))
		return -FM_ENOMEM;
	g->members = m;
	g->members[g->n_members++] = *e;
	return 0;
}

static int sub__group_add(struct topic_node *node, const char *name, size_t len,
			  const struct sub_entry *e)
{
	struct sub_slot *s = sub__slot_get(node);
	uint32_t gi;
	if (!s)
		return -FM_ENOMEM;
	if (!sub__group_find(s, name, len, &gi) && sub__group_new(s, name, len, &gi))
		return -FM_ENOMEM;
	int rc = sub__member_put(&s->groups->g[gi], e);
	if (rc < 0 && s->groups->g[gi].n_members == 0)
		sub__group_drop(s, gi);
	return rc;
}

static int sub__group_remove(struct sub_slot *s, const char *name, size_t len, const void *who)
{
	uint32_t gi;
	if (!sub__group_find(s, name, len, &gi))
		return -FM_ENOENT;
	struct sub_group *g = &s->groups->g[gi];
	for (uint32_t i = 0; i < g->n_members; i++) {
		if (g->members[i].subscriber != who)
			continue;
		g->members[i] = g->members[--g->n_members];
		void *m = g->members;
		(void)topic__arr_fit(&m, sizeof(g->members[0]), g->n_members + 1u, g->n_members);
		g->members = m;
		if (g->n_members == 0)
			sub__group_drop(s, gi);
		return 0;
	}
	return -FM_ENOENT;
}

/* ---- the index ---- */

static void sub__slot_free(void *val)
{
	struct sub_slot *s = val;
	for (uint32_t i = 0; s->groups && i < s->groups->n; i++) {
		free((void *)s->groups->g[i].name);
		free(s->groups->g[i].members);
	}
	if (s->groups)
		free(s->groups->pos);
	free(s->groups);
	free(s->pos);
	free(s);
}

/* Frees node's slot once it holds nothing, then the node if it is unused. */
static void sub__node_tidy(struct topic_node *node)
{
	struct sub_slot *s = node->val;
	if (s && (s->n || s->groups))
		return;
	if (s) {
		sub__slot_free(s);
		node->val = NULL;
	}
	topic__node_prune(node);
}

struct sub_index *sub_index_new(void)
{
	struct sub_index *idx = calloc(1, sizeof(*idx));
	if (idx && !(idx->root = topic__node_root())) {
		free(idx);
		return NULL;
	}
	return idx;
}

void sub_index_free(struct sub_index *idx)
{
	if (!idx)
		return;
	topic__node_free_tree(idx->root, sub__slot_free);
	free(idx);
}

int sub_index_add(struct sub_index *idx, const char *filter, size_t flen,
		  const char *group, size_t glen, const struct sub_entry *e)
{
	int rc;
	/* a group name is kept as a C string (struct sub_group.name) */
	if (flen > TOPIC_MAX_LEN || glen > TOPIC_MAX_LEN || (group && memchr(group, '\0', glen)))
		return -FM_EINVAL;
	struct topic_node *node = topic__node_path(idx->root, filter, flen, true, &rc);
	if (!node)
		return rc;
	rc = group ? sub__group_add(node, group, glen, e) : sub__entry_add(node, e);
	if (rc == 0)
		idx->count++;
	else if (rc < 0)
		sub__node_tidy(node);
	return rc;
}

int sub_index_remove(struct sub_index *idx, const char *filter, size_t flen,
		     const char *group, size_t glen, const void *subscriber)
{
	int rc;
	if (flen > TOPIC_MAX_LEN)
		return -FM_ENOENT;
	struct topic_node *node = topic__node_path(idx->root, filter, flen, false, &rc);
	if (!node || !node->val)
		return -FM_ENOENT;
	rc = group ? sub__group_remove(node->val, group, glen, subscriber)
		   : sub__entry_remove(node, subscriber);
	if (rc)
		return rc;
	idx->count--;
	sub__node_tidy(node);
	return 0;
}

size_t sub_index_count(const struct sub_index *idx)
{
	return idx->count;
}

/* ---- matching: a depth-first walk without recursion (trie.h) ---- */

struct sub_walk {
	const char *name;
	size_t nlen;
	bool dollar; /* name starts with '$': no wildcard at the first level [MQTT-4.7.2-1] */
	sub_each_fn each;
	sub_group_fn each_group;
	void *ctx;
};

static void sub__report(const struct topic_node *n, const struct sub_walk *w)
{
	const struct sub_slot *s = n->val;
	if (!s)
		return;
	for (uint32_t i = 0; w->each && i < s->n; i++)
		w->each(w->ctx, &s->e[i]);
	for (uint32_t i = 0; w->each_group && s->groups && i < s->groups->n; i++)
		w->each_group(w->ctx, &s->groups->g[i]);
}

/* n's "+" or "#" child, if any may match here. */
static const struct topic_node *sub__wild(const struct topic_node *n, char c,
					  const struct sub_walk *w)
{
	uint8_t flag = c == '+' ? TOPIC_NODE_PLUS : TOPIC_NODE_HASH;
	if (!(n->flags & flag) || (!n->parent && w->dollar))
		return NULL;
	return topic__node_kid(n, &c, 1);
}

/* Reports the filters ending at n, which has consumed the name up to the
 * cursor `at`, and returns the first child to descend into, or NULL. */
static const struct topic_node *sub__down(const struct topic_node *n, size_t at,
					  const struct sub_walk *w)
{
	const struct topic_node *k = sub__wild(n, '#', w);
	if (k) /* "a/#" matches "a" too [MQTT-4.7.1-1] */
		sub__report(k, w);
	if (at > w->nlen) {
		sub__report(n, w);
		return NULL;
	}
	size_t end = topic__level_end(w->name, w->nlen, at);
	k = topic__node_kid(n, w->name + at, end - at);
	return k ? k : sub__wild(n, '+', w);
}

/* Climbs from a finished n, moving *at back, to the next node to descend
 * into: the "+" sibling of an exact level. NULL when the walk is over. */
static const struct topic_node *sub__up(const struct topic_node *n, size_t *at,
					const struct sub_walk *w)
{
	for (; n->parent; n = n->parent) {
		*at = topic__level_prev(w->name, *at);
		const struct topic_node *k = topic__node_is(n, '+') ? NULL : sub__wild(n->parent, '+', w);
		if (k)
			return k;
	}
	return NULL;
}

void sub_index_match(const struct sub_index *idx, const char *name, size_t nlen,
		     sub_each_fn each, sub_group_fn each_group, void *ctx)
{
	struct sub_walk w = {
		.name = name, .nlen = nlen, .dollar = nlen > 0 && name[0] == '$',
		.each = each, .each_group = each_group, .ctx = ctx,
	};
	const struct topic_node *n = idx->root;
	size_t at = 0;
	for (;;) {
		const struct topic_node *k = sub__down(n, at, &w);
		if (!k && !(k = sub__up(n, &at, &w)))
			return;
		at = topic__level_end(name, nlen, at) + 1;
		n = k;
	}
}
