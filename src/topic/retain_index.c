/* The retained index: a trie of topic-name levels (trie.h) whose node values
 * are the retained messages, walked with a subscription filter.
 */
#include "topic.h"
#include "trie.h"
#include "../base/err.h"
#include <stdlib.h>

struct retain_index {
	struct topic_node *root;
	size_t count;
};

struct retain_index *retain_index_new(void)
{
	struct retain_index *idx = calloc(1, sizeof(*idx));
	if (idx && !(idx->root = topic__node_root())) {
		free(idx);
		return NULL;
	}
	return idx;
}

void retain_index_free(struct retain_index *idx, void (*drop)(void *msg))
{
	if (!idx)
		return;
	topic__node_free_tree(idx->root, drop);
	free(idx);
}

static void *retain__clear(struct retain_index *idx, const char *name, size_t nlen)
{
	int rc;
	struct topic_node *n = topic__node_path(idx->root, name, nlen, false, &rc);
	if (!n || !n->val)
		return NULL;
	void *old = n->val;
	n->val = NULL;
	idx->count--;
	topic__node_prune(n);
	return old;
}

void *retain_index_set(struct retain_index *idx, const char *name, size_t nlen, void *msg,
		       int *err)
{
	int rc = 0;
	void *old = NULL;
	if (nlen > TOPIC_MAX_LEN) {
		rc = -FM_EINVAL;
	} else if (!msg) {
		old = retain__clear(idx, name, nlen);
	} else {
		struct topic_node *n = topic__node_path(idx->root, name, nlen, true, &rc);
		if (n) {
			old = n->val;
			n->val = msg;
			idx->count += !old;
		}
	}
	if (err)
		*err = rc;
	return old;
}

size_t retain_index_count(const struct retain_index *idx)
{
	return idx->count;
}

/* ---- matching: a depth-first walk without recursion (trie.h) ---- */

struct retain_walk {
	const char *filter;
	size_t flen;
	void (*each)(void *ctx, void *msg);
	void *ctx;
};

static void retain__report(const struct topic_node *n, const struct retain_walk *w)
{
	if (n->val)
		w->each(w->ctx, n->val);
}

/* The child of n after prev (the first when prev is NULL) that a wildcard
 * may reach: not a first-level topic starting with '$' [MQTT-4.7.2-1]. */
static const struct topic_node *retain__kid_after(const struct topic_node *n,
						  const struct topic_node *prev)
{
	const struct topic_node *k = prev;
	do
		k = topic__node_next_kid(n, k);
	while (k && !n->parent && k->len > 0 && k->label[0] == '$');
	return k;
}

/* Reports every message strictly below top, in preorder. */
static void retain__report_below(const struct topic_node *top, const struct retain_walk *w)
{
	const struct topic_node *n = retain__kid_after(top, NULL);
	while (n) {
		retain__report(n, w);
		const struct topic_node *k = topic__node_next_kid(n, NULL);
		while (!k && n != top) {
			k = retain__kid_after(n->parent, n);
			n = n->parent;
		}
		n = k;
	}
}

static bool retain__level_is(const struct retain_walk *w, size_t at, char c)
{
	return at < w->flen && w->filter[at] == c && (at + 1 == w->flen || w->filter[at + 1] == '/');
}

/* Reports what node n matches, n having consumed the filter up to the
 * cursor `at`, and returns the first child to descend into, or NULL. */
static const struct topic_node *retain__down(const struct topic_node *n, size_t at,
					     const struct retain_walk *w)
{
	if (at > w->flen) {
		retain__report(n, w);
		return NULL;
	}
	if (retain__level_is(w, at, '#')) { /* n itself too: "a/#" matches "a" */
		retain__report(n, w);
		retain__report_below(n, w);
		return NULL;
	}
	if (retain__level_is(w, at, '+'))
		return retain__kid_after(n, NULL);
	size_t end = topic__level_end(w->filter, w->flen, at);
	return topic__node_kid(n, w->filter + at, end - at);
}

/* Climbs from a finished n, moving *at back, to the next node to descend
 * into: n's next sibling at a "+" level. NULL when the walk is over. */
static const struct topic_node *retain__up(const struct topic_node *n, size_t *at,
					   const struct retain_walk *w)
{
	for (; n->parent; n = n->parent) {
		*at = topic__level_prev(w->filter, *at);
		const struct topic_node *k =
			retain__level_is(w, *at, '+') ? retain__kid_after(n->parent, n) : NULL;
		if (k)
			return k;
	}
	return NULL;
}

void retain_index_match(const struct retain_index *idx, const char *filter, size_t flen,
			void (*each)(void *ctx, void *msg), void *ctx)
{
	struct retain_walk w = { .filter = filter, .flen = flen, .each = each, .ctx = ctx };
	const struct topic_node *n = idx->root;
	size_t at = 0;
	for (;;) {
		const struct topic_node *k = retain__down(n, at, &w);
		if (!k && !(k = retain__up(n, &at, &w)))
			return;
		at = topic__level_end(filter, flen, at) + 1;
		n = k;
	}
}

void retain_index_each(const struct retain_index *idx, void (*each)(void *ctx, void *msg), void *ctx)
{
	/* Preorder without recursion: down to the first child, else to the next
	 * sibling of the nearest ancestor that has one. */
	const struct topic_node *n = topic__node_next_kid(idx->root, NULL);
	while (n) {
		if (n->val)
			each(ctx, n->val);
		const struct topic_node *k = topic__node_next_kid(n, NULL);
		while (!k && n->parent) {
			k = topic__node_next_kid(n->parent, n);
			n = n->parent;
		}
		n = k;
	}
}
