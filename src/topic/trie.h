/* The topic-level trie shared by the subscription and retained indexes
 * (internal to src/topic). A node is one level; its label is stored inline
 * in the node's allocation. Children live in a small array while there are
 * few and in a hash map (base/hmap.h) once a node grows wide, so a node
 * with 100,000 device prefixes below it is still one probe away.
 *
 * Nodes know their parent: matching, removal and teardown walk the trie
 * without recursion and without allocating, however deep a topic is.
 */
#ifndef FM_TOPIC_TRIE_H
#define FM_TOPIC_TRIE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum {
	TOPIC_NODE_TABLE = 1, /* kids is a struct hmap *, not an array */
	TOPIC_NODE_PLUS = 2,  /* has a "+" child */
	TOPIC_NODE_HASH = 4,  /* has a "#" child */
};

struct topic_node {
	struct topic_node *parent; /* NULL for the root */
	void *kids;                /* struct topic_node *[n_kids], or a struct hmap * of them */
	void *val;                 /* owned by the index using the trie */
	uint32_t n_kids;
	uint16_t len;              /* of label; a level is at most 65535 bytes */
	uint8_t flags;             /* TOPIC_NODE_* */
	char label[];              /* not NUL-terminated */
};

/* A root node (empty label), or NULL. */
struct topic_node *topic__node_root(void);
/* The child labelled label[0..len), or NULL. */
struct topic_node *topic__node_kid(const struct topic_node *n, const char *label, size_t len);
/* Iterates children: the first when prev is NULL, else the one after prev;
 * NULL at the end. The order is arbitrary and stable while n is unchanged. */
struct topic_node *topic__node_next_kid(const struct topic_node *n,
					const struct topic_node *prev);
/* The node for topic p[0..len) below root. With create, missing levels are
 * added; on allocation failure nothing is left behind, *err is -FM_ENOMEM
 * and NULL is returned. Without create, NULL when absent (*err -FM_ENOENT). */
struct topic_node *topic__node_path(struct topic_node *root, const char *p, size_t len,
				    bool create, int *err);
/* Frees n and each ancestor left without value or children; never the root. */
void topic__node_prune(struct topic_node *n);
/* Frees the whole trie, calling drop(val) for every non-NULL value. */
void topic__node_free_tree(struct topic_node *root, void (*drop)(void *val));

/* Resizes *arr (elem-sized items) when a count change from old_n to new_n
 * changes its capacity, which is the next power of two of the count.
 * Returns 0, or -FM_ENOMEM with *arr unchanged (only when growing). */
int topic__arr_fit(void **arr, size_t elem, size_t old_n, size_t new_n);

static inline bool topic__node_is(const struct topic_node *n, char c)
{
	return n->len == 1 && n->label[0] == c;
}

/* Linear-probing deletion: may the item in slot j, whose home slot is
 * `home`, move back into the hole at `hole` without becoming unreachable? */
static inline bool topic__probe_may_fill(size_t hole, size_t j, size_t home, size_t mask)
{
	return ((j - home) & mask) >= ((j - hole) & mask);
}

/* A cursor over the levels of a topic: `at` is the start of a level, or
 * len + 1 once every level has been consumed. */

/* End of the level starting at `at` (at <= len). */
static inline size_t topic__level_end(const char *p, size_t len, size_t at)
{
	const char *s = memchr(p + at, '/', len - at);
	return s ? (size_t)(s - p) : len;
}

/* Start of the level before the cursor `at` (at > 0). */
static inline size_t topic__level_prev(const char *p, size_t at)
{
	size_t i = at - 1; /* the '/' that ended the previous level, or len */
	while (i > 0 && p[i - 1] != '/')
		i--;
	return i;
}

#endif
