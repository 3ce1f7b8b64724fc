/* libFuzzer target for src/topic: the input is "FILTER\nNAME". Both are
 * validated; when both are valid, topic_match must agree with a match
 * through a fresh subscription index holding only that filter (ordinary,
 * and as a $share group when the filter is shared) and with a fresh
 * retained index holding only that name. Aborts on any disagreement.
 */
#include "topic/topic.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct fuzz_hits {
	size_t entries, groups;
};

static void fuzz_entry(void *ctx, const struct sub_entry *e)
{
	struct fuzz_hits *h = ctx;
	if (e->subscriber != (void *)h)
		abort();
	h->entries++;
}

static void fuzz_group(void *ctx, struct sub_group *g)
{
	struct fuzz_hits *h = ctx;
	if (g->n_members != 1 || g->members[0].subscriber != (void *)h)
		abort();
	h->groups++;
}

static void fuzz_msg(void *ctx, void *msg)
{
	if (msg != ctx)
		abort();
	(*(size_t *)ctx)++;
}

/* Subscribes to filter (in group when group != NULL) and publishes name. */
static void fuzz_sub_index(const char *filter, size_t flen, const char *group, size_t glen,
			   const char *name, size_t nlen, bool want)
{
	struct sub_index *idx = sub_index_new();
	struct fuzz_hits h = { 0, 0 };
	struct sub_entry e = { .subscriber = &h, .options = 1, .sub_id = 1 };
	if (!idx || sub_index_add(idx, filter, flen, group, glen, &e) != 0 ||
	    sub_index_add(idx, filter, flen, group, glen, &e) != 1 || sub_index_count(idx) != 1)
		abort();
	sub_index_match(idx, name, nlen, fuzz_entry, fuzz_group, &h);
	if ((group ? h.groups : h.entries) != (size_t)want || (group ? h.entries : h.groups))
		abort();
	if (sub_index_remove(idx, filter, flen, group, glen, &h) != 0 || sub_index_count(idx))
		abort();
	h.entries = h.groups = 0;
	sub_index_match(idx, name, nlen, fuzz_entry, fuzz_group, &h);
	if (h.entries || h.groups)
		abort();
	sub_index_free(idx);
}

static void fuzz_retain_index(const char *filter, size_t flen, const char *name, size_t nlen,
			      bool want)
{
	struct retain_index *idx = retain_index_new();
	size_t hits = 0;
	int err;
	if (!idx || retain_index_set(idx, name, nlen, &hits, &err) != NULL || err)
		abort();
	retain_index_match(idx, filter, flen, fuzz_msg, &hits);
	if (hits != (size_t)want)
		abort();
	if (retain_index_set(idx, name, nlen, NULL, &err) != &hits || retain_index_count(idx))
		abort();
	retain_index_free(idx, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	const char *nl = memchr(in, '\n', size);
	size_t flen = nl ? (size_t)(nl - in) : size;
	const char *name = nl ? nl + 1 : in + size;
	size_t nlen = size - flen - (nl != NULL);
	bool fvalid = topic_filter_valid(in, flen);
	bool nvalid = topic_name_valid(name, nlen);
	(void)topic_levels(in, flen);
	if (!fvalid || !nvalid)
		return 0;
	if (topic_levels(name, nlen) == 0)
		abort();

	const char *group, *inner;
	size_t glen, ilen;
	int shared = topic_share_split(in, flen, &group, &glen, &inner, &ilen);
	if (shared < 0)
		return 0;
	/* the part after "$share/GROUP/" of a valid filter is a valid filter */
	if (shared == 1 && !topic_filter_valid(inner, ilen))
		abort();
	bool want = topic_match(inner, ilen, name, nlen);
	fuzz_sub_index(inner, ilen, shared ? group : NULL, glen, name, nlen, want);
	fuzz_retain_index(inner, ilen, name, nlen, want);
	return 0;
}
