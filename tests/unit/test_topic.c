/* Unit tests for src/topic: validation, matching, $share split, the
 * subscription index and the retained index. */
#include "topic/topic.h"
#include "base/err.h"
#include "check.h"
#include <stdint.h>

#define S(s) s, strlen(s)
#define SUB(i) ((void *)(uintptr_t)(i))

/* ---- helpers ---- */

#define COLLECT_MAX 4096

struct collect {
	uintptr_t subs[COLLECT_MAX];   /* subscriber of each ordinary match */
	uint8_t options[COLLECT_MAX];
	uint32_t sub_ids[COLLECT_MAX];
	size_t n;
	const char *groups[64];
	struct sub_group *group_ptrs[64];
	size_t n_groups;
};

static void collect_entry(void *ctx, const struct sub_entry *e)
{
	struct collect *c = ctx;
	if (c->n == COLLECT_MAX)
		return;
	c->options[c->n] = e->options;
	c->sub_ids[c->n] = e->sub_id;
	c->subs[c->n++] = (uintptr_t)e->subscriber;
}

static void collect_group(void *ctx, struct sub_group *g)
{
	struct collect *c = ctx;
	if (c->n_groups == 64)
		return;
	c->group_ptrs[c->n_groups] = g;
	c->groups[c->n_groups++] = g->name;
}

static int cmp_uptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

/* Matches name and returns the sorted subscribers in c. */
static void match(const struct sub_index *idx, const char *name, struct collect *c)
{
	memset(c, 0, sizeof(*c));
	sub_index_match(idx, name, strlen(name), collect_entry, collect_group, c);
	qsort(c->subs, c->n, sizeof(c->subs[0]), cmp_uptr);
}

static bool has_sub(const struct collect *c, uintptr_t s)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->subs[i] == s)
			return true;
	return false;
}

static int add(struct sub_index *idx, const char *filter, uintptr_t sub)
{
	struct sub_entry e = { .subscriber = SUB(sub), .options = 1, .sub_id = 0 };
	return sub_index_add(idx, S(filter), NULL, 0, &e);
}

static int add_shared(struct sub_index *idx, const char *group, const char *filter,
		      uintptr_t sub)
{
	struct sub_entry e = { .subscriber = SUB(sub), .options = 0, .sub_id = 0 };
	return sub_index_add(idx, S(filter), S(group), &e);
}

static int del(struct sub_index *idx, const char *filter, uintptr_t sub)
{
	return sub_index_remove(idx, S(filter), NULL, 0, SUB(sub));
}

static void count_msg(void *ctx, void *msg)
{
	(void)msg;
	(*(size_t *)ctx)++;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

/* ---- validation ---- */

static void test_name_valid(void)
{
	ASSERT_TRUE(topic_name_valid(S("sport/tennis/player1")));
	ASSERT_TRUE(topic_name_valid(S("sport/")));
	ASSERT_TRUE(topic_name_valid(S("/")));
	ASSERT_TRUE(topic_name_valid(S("/finance")));
	ASSERT_TRUE(topic_name_valid(S("a//b")));
	ASSERT_TRUE(topic_name_valid(S("$SYS/broker")));
	ASSERT_TRUE(topic_name_valid(S(" ")));
	ASSERT_FALSE(topic_name_valid(S("")));
	ASSERT_FALSE(topic_name_valid(S("sport/+")));
	ASSERT_FALSE(topic_name_valid(S("sport/#")));
	ASSERT_FALSE(topic_name_valid(S("a+b")));
	ASSERT_FALSE(topic_name_valid(S("#")));
	ASSERT_FALSE(topic_name_valid("a\0b", 3));

	static char big[TOPIC_MAX_LEN + 1];
	memset(big, 'a', sizeof(big));
	ASSERT_TRUE(topic_name_valid(big, TOPIC_MAX_LEN));
	ASSERT_FALSE(topic_name_valid(big, TOPIC_MAX_LEN + 1));
}

static void test_filter_valid(void)
{
	static const char *const good[] = {
		"#", "+", "sport/#", "sport/tennis/#", "sport/+", "+/tennis/#", "+/+", "/+",
		"sport/+/player1", "sport/", "/", "//", "a//b", "$SYS/#", "$share/g/x", "+/",
		"/#", "+/#",
	};
	static const char *const bad[] = {
		"", "sport/tennis#", "sport/tennis/#/ranking", "#/", "a#", "#a", "##", "sport+",
		"+sport", "sport/+tennis", "a/++/b", "++", "a/b+", "a/#/", "+#",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!topic_filter_valid(S(good[i])))
			CHECK_FAIL("should be a valid filter: \"%s\"", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (topic_filter_valid(S(bad[i])))
			CHECK_FAIL("should be an invalid filter: \"%s\"", bad[i]);
	ASSERT_FALSE(topic_filter_valid("a/\0", 3));

	static char big[TOPIC_MAX_LEN + 1];
	memset(big, '/', sizeof(big));
	ASSERT_TRUE(topic_filter_valid(big, TOPIC_MAX_LEN));
	ASSERT_FALSE(topic_filter_valid(big, TOPIC_MAX_LEN + 1));
}

static void test_levels(void)
{
	ASSERT_EQ(topic_levels(S("a")), 1);
	ASSERT_EQ(topic_levels(S("a/b/c")), 3);
	ASSERT_EQ(topic_levels(S("/")), 2);
	ASSERT_EQ(topic_levels(S("sport/")), 2);
	ASSERT_EQ(topic_levels(S("//")), 3);
	ASSERT_EQ(topic_levels(S("")), 0);
}

/* ---- matching ---- */

struct match_case {
	const char *filter, *name;
	bool match;
};

static void test_match_spec(void)
{
	static const struct match_case cases[] = {
		/* 4.7.1.2 multi-level wildcard */
		{ "sport/tennis/player1/#", "sport/tennis/player1", true },
		{ "sport/tennis/player1/#", "sport/tennis/player1/ranking", true },
		{ "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true },
		{ "sport/#", "sport", true },
		{ "#", "sport/tennis", true },
		{ "#", "/", true },
		/* 4.7.1.3 single-level wildcard */
		{ "sport/tennis/+", "sport/tennis/player1", true },
		{ "sport/tennis/+", "sport/tennis/player2", true },
		{ "sport/tennis/+", "sport/tennis/player1/ranking", false },
		{ "sport/+", "sport", false },
		{ "sport/+", "sport/", true },
		{ "+/+", "/finance", true },
		{ "/+", "/finance", true },
		{ "+", "/finance", false },
		{ "+", "sport", true },
		{ "+/tennis/#", "sport/tennis", true },
		{ "+/tennis/#", "sport/tennis/x/y", true },
		{ "+/tennis/#", "sport/golf", false },
		/* 4.7.2 '$' topics */
		{ "#", "$SYS/broker", false },
		{ "+/monitor/Clients", "$SYS/monitor/Clients", false },
		{ "$SYS/#", "$SYS/monitor/Clients", true },
		{ "$SYS/monitor/+", "$SYS/monitor/Clients", true },
		{ "$SYS/#", "$SYS", true },
		{ "+", "$SYS", false },
		{ "a/+", "a/$b", true },
		{ "a/#", "a/$b", true },
		/* 4.7.3 case and empty levels */
		{ "ACCOUNTS", "Accounts", false },
		{ "sport/", "sport/", true },
		{ "sport/", "sport", false },
		{ "sport", "sport/", false },
		{ "/", "/", true },
		{ "+/", "/", true },
		{ "+/+", "/", true },
		{ "//", "//", true },
		{ "a//b", "a//b", true },
		{ "a/+/b", "a//b", true },
		{ "a/b", "a/bc", false },
		{ "a/bc", "a/b", false },
		{ "a/b", "a", false },
		{ "a", "a/b", false },
		{ "a/#", "a", true },
		{ "a/#", "a/", true },
		{ "a/+/#", "a", false },
		{ "a/+/#", "a/b", true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct match_case *c = &cases[i];
		if (topic_match(S(c->filter), S(c->name)) != c->match)
			CHECK_FAIL("topic_match(\"%s\", \"%s\") should be %d", c->filter, c->name,
				   c->match);
	}
}

static void test_share_split(void)
{
	const char *g, *f;
	size_t gl, fl;
	ASSERT_EQ(topic_share_split(S("$share/grp/a/b"), &g, &gl, &f, &fl), 1);
	ASSERT_STRN(g, gl, "grp");
	ASSERT_STRN(f, fl, "a/b");
	ASSERT_EQ(topic_share_split(S("$share/g/#"), &g, &gl, &f, &fl), 1);
	ASSERT_STRN(g, gl, "g");
	ASSERT_STRN(f, fl, "#");
	ASSERT_EQ(topic_share_split(S("$share/g//"), &g, &gl, &f, &fl), 1);
	ASSERT_STRN(f, fl, "/");

	ASSERT_EQ(topic_share_split(S("a/b"), &g, &gl, &f, &fl), 0);
	ASSERT_TRUE(g == NULL);
	ASSERT_EQ(gl, 0);
	ASSERT_STRN(f, fl, "a/b");
	ASSERT_EQ(topic_share_split(S("$share"), &g, &gl, &f, &fl), 0);
	ASSERT_EQ(topic_share_split(S("$SHARE/g/x"), &g, &gl, &f, &fl), 0);
	ASSERT_EQ(topic_share_split(S("$shared/g/x"), &g, &gl, &f, &fl), 0);
	ASSERT_EQ(topic_share_split(S("$SYS/#"), &g, &gl, &f, &fl), 0);

	ASSERT_EQ(topic_share_split(S("$share/"), &g, &gl, &f, &fl), -1);
	ASSERT_EQ(topic_share_split(S("$share/g"), &g, &gl, &f, &fl), -1);
	ASSERT_EQ(topic_share_split(S("$share/g/"), &g, &gl, &f, &fl), -1);
	ASSERT_EQ(topic_share_split(S("$share//x"), &g, &gl, &f, &fl), -1);
	ASSERT_EQ(topic_share_split(S("$share/+/x"), &g, &gl, &f, &fl), -1);
	ASSERT_EQ(topic_share_split(S("$share/#/x"), &g, &gl, &f, &fl), -1);
	ASSERT_EQ(topic_share_split(S("$share/a+b/x"), &g, &gl, &f, &fl), -1);
	ASSERT_EQ(topic_share_split(S("$share/a#/x"), &g, &gl, &f, &fl), -1);
	ASSERT_EQ(topic_share_split("$share/a\0b/x", 12, &g, &gl, &f, &fl), -1);
}

/* ---- subscription index ---- */

static void test_index_add_replace_remove(void)
{
	struct sub_index *idx = sub_index_new();
	struct collect c;
	ASSERT_TRUE(idx != NULL);
	struct sub_entry e = { .subscriber = SUB(1), .options = 1, .sub_id = 7 };
	ASSERT_EQ(sub_index_add(idx, S("a/b"), NULL, 0, &e), 0);
	ASSERT_EQ(sub_index_count(idx), 1);
	e.options = 2;
	e.sub_id = 9;
	ASSERT_EQ(sub_index_add(idx, S("a/b"), NULL, 0, &e), 1); /* replaces */
	ASSERT_EQ(sub_index_count(idx), 1);
	match(idx, "a/b", &c);
	ASSERT_EQ(c.n, 1);
	ASSERT_EQ(c.options[0], 2);
	ASSERT_EQ(c.sub_ids[0], 9);

	ASSERT_EQ(add(idx, "a/b", 2), 0);
	ASSERT_EQ(add(idx, "a", 1), 0); /* same subscriber, other filter */
	ASSERT_EQ(sub_index_count(idx), 3);
	match(idx, "a/b", &c);
	ASSERT_EQ(c.n, 2);
	match(idx, "a", &c);
	ASSERT_EQ(c.n, 1);
	match(idx, "a/b/c", &c);
	ASSERT_EQ(c.n, 0);

	ASSERT_EQ(del(idx, "a/b", 3), -FM_ENOENT);
	ASSERT_EQ(del(idx, "a/c", 1), -FM_ENOENT);
	ASSERT_EQ(del(idx, "a/b/c", 1), -FM_ENOENT);
	ASSERT_EQ(sub_index_remove(idx, S("a/b"), S("g"), SUB(1)), -FM_ENOENT);
	ASSERT_EQ(del(idx, "a/b", 1), 0);
	ASSERT_EQ(del(idx, "a/b", 1), -FM_ENOENT);
	match(idx, "a/b", &c);
	ASSERT_EQ(c.n, 1);
	ASSERT_EQ(c.subs[0], 2);
	ASSERT_EQ(del(idx, "a/b", 2), 0);
	ASSERT_EQ(del(idx, "a", 1), 0);
	ASSERT_EQ(sub_index_count(idx), 0);
	match(idx, "a/b", &c);
	ASSERT_EQ(c.n, 0);

	static char big[TOPIC_MAX_LEN + 1];
	memset(big, 'a', sizeof(big));
	ASSERT_EQ(sub_index_add(idx, big, sizeof(big), NULL, 0, &e), -FM_EINVAL);
	ASSERT_EQ(sub_index_add(idx, big, TOPIC_MAX_LEN, NULL, 0, &e), 0); /* one 65535-byte level */
	ASSERT_EQ(sub_index_remove(idx, big, TOPIC_MAX_LEN, NULL, 0, SUB(1)), 0);
	ASSERT_EQ(sub_index_remove(idx, big, sizeof(big), NULL, 0, SUB(1)), -FM_ENOENT);
	ASSERT_EQ(sub_index_count(idx), 0);
	sub_index_free(idx);
	sub_index_free(NULL);
}

static void test_index_overlap(void)
{
	static const char *const filters[] = {
		"sport/tennis/player1", "sport/tennis/+", "sport/#", "#", "+/tennis/#", "+/+/+",
		"sport/+/player1", "sport/tennis/player1/#", "+/#", "sport/golf/+",
	};
	struct sub_index *idx = sub_index_new();
	struct collect c;
	for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
		ASSERT_EQ(add(idx, filters[i], i + 1), 0);
	static const char *const names[] = {
		"sport/tennis/player1", "sport/tennis", "sport", "sport/golf/x", "x/tennis/y",
		"a/b/c", "sport/tennis/player1/x",
	};
	for (size_t j = 0; j < sizeof(names) / sizeof(names[0]); j++) {
		match(idx, names[j], &c);
		for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
			if (has_sub(&c, i + 1) != topic_match(S(filters[i]), S(names[j])))
				CHECK_FAIL("\"%s\" vs \"%s\": index and topic_match disagree",
					   filters[i], names[j]);
	}
	match(idx, "sport/tennis/player1", &c);
	ASSERT_EQ(c.n, 9); /* all but sport/golf/+ */
	sub_index_free(idx);
}

static void test_index_hash_parent(void)
{
	struct sub_index *idx = sub_index_new();
	struct collect c;
	ASSERT_EQ(add(idx, "a/#", 1), 0);
	ASSERT_EQ(add(idx, "a/+/#", 2), 0);
	ASSERT_EQ(add(idx, "#", 3), 0);
	match(idx, "a", &c);
	ASSERT_EQ(c.n, 2);
	ASSERT_TRUE(has_sub(&c, 1) && has_sub(&c, 3));
	match(idx, "a/b", &c);
	ASSERT_EQ(c.n, 3);
	match(idx, "a/", &c);
	ASSERT_EQ(c.n, 3);
	match(idx, "b", &c);
	ASSERT_EQ(c.n, 1);
	sub_index_free(idx);
}

static void test_index_dollar(void)
{
	struct sub_index *idx = sub_index_new();
	struct collect c;
	ASSERT_EQ(add(idx, "#", 1), 0);
	ASSERT_EQ(add(idx, "+/monitor/Clients", 2), 0);
	ASSERT_EQ(add(idx, "$SYS/#", 3), 0);
	ASSERT_EQ(add(idx, "$SYS/monitor/+", 4), 0);
	ASSERT_EQ(add(idx, "+", 5), 0);
	ASSERT_EQ(add_shared(idx, "g", "#", 6), 0);
	match(idx, "$SYS/monitor/Clients", &c);
	ASSERT_EQ(c.n, 2);
	ASSERT_TRUE(has_sub(&c, 3) && has_sub(&c, 4));
	ASSERT_EQ(c.n_groups, 0);
	match(idx, "$SYS", &c);
	ASSERT_EQ(c.n, 1);
	ASSERT_TRUE(has_sub(&c, 3));
	match(idx, "x/monitor/Clients", &c);
	ASSERT_EQ(c.n, 2);
	ASSERT_EQ(c.n_groups, 1);
	sub_index_free(idx);
}

static void test_index_groups(void)
{
	struct sub_index *idx = sub_index_new();
	struct collect c;
	ASSERT_EQ(add_shared(idx, "g1", "a/+", 1), 0);
	ASSERT_EQ(add_shared(idx, "g1", "a/+", 2), 0);
	ASSERT_EQ(add_shared(idx, "g1", "a/+", 2), 1);
	ASSERT_EQ(add_shared(idx, "g2", "a/+", 1), 0);
	ASSERT_EQ(add_shared(idx, "g1", "a/#", 3), 0);
	ASSERT_EQ(add(idx, "a/+", 1), 0); /* ordinary beside shared: independent */
	ASSERT_EQ(sub_index_count(idx), 5);

	match(idx, "a/b", &c);
	ASSERT_EQ(c.n, 1);
	ASSERT_EQ(c.n_groups, 3);
	size_t members = 0;
	for (size_t i = 0; i < c.n_groups; i++) {
		struct sub_group *g = c.group_ptrs[i];
		members += g->n_members;
		ASSERT_EQ(atomic_load(&g->next), 0);
		if (strcmp(g->name, "g1") == 0 && g->n_members == 2)
			ASSERT_TRUE(g->members[0].subscriber != g->members[1].subscriber);
	}
	ASSERT_EQ(members, 4);

	struct sub_entry e = { .subscriber = SUB(9) };
	ASSERT_EQ(sub_index_add(idx, S("a/+"), "g\0x", 3, &e), -FM_EINVAL);

	/* a group name is matched exactly, not by prefix */
	ASSERT_EQ(sub_index_remove(idx, S("a/+"), S("g"), SUB(1)), -FM_ENOENT);
	ASSERT_EQ(sub_index_remove(idx, S("a/+"), S("g1x"), SUB(1)), -FM_ENOENT);
	ASSERT_EQ(sub_index_remove(idx, S("a/+"), S("g2"), SUB(2)), -FM_ENOENT);
	ASSERT_EQ(sub_index_remove(idx, S("a/+"), S("g2"), SUB(1)), 0); /* g2 now empty */
	match(idx, "a/b", &c);
	ASSERT_EQ(c.n_groups, 2);
	ASSERT_EQ(sub_index_remove(idx, S("a/+"), S("g1"), SUB(1)), 0);
	ASSERT_EQ(sub_index_remove(idx, S("a/+"), S("g1"), SUB(2)), 0);
	ASSERT_EQ(sub_index_remove(idx, S("a/+"), S("g1"), SUB(2)), -FM_ENOENT);
	match(idx, "a/b", &c);
	ASSERT_EQ(c.n_groups, 1);
	ASSERT_EQ(c.n, 1);
	ASSERT_TRUE(strcmp(c.groups[0], "g1") == 0);
	ASSERT_EQ(del(idx, "a/+", 1), 0);
	ASSERT_EQ(sub_index_remove(idx, S("a/#"), S("g1"), SUB(3)), 0);
	ASSERT_EQ(sub_index_count(idx), 0);
	match(idx, "a/b", &c);
	ASSERT_EQ(c.n + c.n_groups, 0);

	/* many groups on one filter, removed out of order */
	for (int i = 0; i < 40; i++) {
		char g[16];
		snprintf(g, sizeof(g), "grp%d", i);
		ASSERT_EQ(add_shared(idx, g, "x", 100 + i), 0);
	}
	match(idx, "x", &c);
	ASSERT_EQ(c.n_groups, 40);
	for (int i = 0; i < 40; i += 2) {
		char g[16];
		snprintf(g, sizeof(g), "grp%d", i);
		ASSERT_EQ(sub_index_remove(idx, S("x"), S(g), SUB(100 + i)), 0);
	}
	match(idx, "x", &c);
	ASSERT_EQ(c.n_groups, 20);
	for (size_t i = 0; i < c.n_groups; i++)
		ASSERT_EQ((atoi(c.groups[i] + 3) & 1), 1);
	sub_index_free(idx); /* frees the remaining groups */
}

static void count_group(void *ctx, struct sub_group *g)
{
	size_t *n = ctx;
	*n += g->n_members;
}

static size_t count_group_members(const struct sub_index *idx, const char *name)
{
	size_t n = 0;
	sub_index_match(idx, S(name), NULL, count_group, &n);
	return n;
}

/* Past the scan limit a filter's groups are found by a name table, which
 * must agree with the groups through adds, joins and removals in any order
 * (and compare names exactly: "g1" is not "g10"). */
static void test_index_many_groups(void)
{
	enum { N = 20000 };
	static bool present[N];
	struct sub_index *idx = sub_index_new();
	char g[32];
	memset(present, 0, sizeof(present));
	for (int i = 0; i < N; i++) {
		snprintf(g, sizeof(g), "g%d", i);
		ASSERT_EQ(add_shared(idx, g, "x/y", 1), 0);
		present[i] = true;
	}
	ASSERT_EQ(add_shared(idx, "g7", "x/y", 1), 1);    /* the same member again */
	ASSERT_EQ(add_shared(idx, "g7", "x/y", 2), 0);    /* a second member */
	ASSERT_EQ(count_group_members(idx, "x/y"), N + 1);
	ASSERT_EQ(sub_index_remove(idx, S("x/y"), S("g"), SUB(1)), -FM_ENOENT);
	ASSERT_EQ(sub_index_remove(idx, S("x/y"), S("g200000"), SUB(1)), -FM_ENOENT);
	ASSERT_EQ(sub_index_remove(idx, S("x/y"), S("g7"), SUB(2)), 0);
	size_t left = N;
	for (uint32_t k = 0; k < N; k++) {
		uint32_t i = (k * 7919u) % N;
		if (i % 3 == 0)
			continue;
		snprintf(g, sizeof(g), "g%u", i);
		ASSERT_EQ(sub_index_remove(idx, S("x/y"), S(g), SUB(1)), 0);
		ASSERT_EQ(sub_index_remove(idx, S("x/y"), S(g), SUB(1)), -FM_ENOENT);
		present[i] = false;
		left--;
	}
	ASSERT_EQ(count_group_members(idx, "x/y"), left);
	ASSERT_EQ(sub_index_count(idx), left);
	for (uint32_t i = 0; i < N; i++) {
		snprintf(g, sizeof(g), "g%u", i);
		ASSERT_EQ(add_shared(idx, g, "x/y", 1), present[i] ? 1 : 0); /* 1: already a member */
		if (!present[i])
			ASSERT_EQ(sub_index_remove(idx, S("x/y"), S(g), SUB(1)), 0);
	}
	for (uint32_t i = 0; i < N; i += 3) {
		snprintf(g, sizeof(g), "g%u", i);
		ASSERT_EQ(sub_index_remove(idx, S("x/y"), S(g), SUB(1)), 0);
	}
	ASSERT_EQ(sub_index_count(idx), 0);
	ASSERT_EQ(count_group_members(idx, "x/y"), 0);
	sub_index_free(idx);
}

static void test_index_wide(void)
{
	enum { N = 20000 };
	struct sub_index *idx = sub_index_new();
	struct collect c;
	char f[64];
	for (int i = 0; i < N; i++) {
		snprintf(f, sizeof(f), "dev/%d/cmd", i);
		ASSERT_EQ(add(idx, f, i + 1), 0);
	}
	ASSERT_EQ(add(idx, "dev/+/cmd", N + 1), 0);
	ASSERT_EQ(sub_index_count(idx), N + 1);
	for (int i = 0; i < N; i += 997) {
		snprintf(f, sizeof(f), "dev/%d/cmd", i);
		match(idx, f, &c);
		ASSERT_EQ(c.n, 2);
		ASSERT_TRUE(has_sub(&c, i + 1) && has_sub(&c, N + 1));
	}
	match(idx, "dev/x/cmd", &c);
	ASSERT_EQ(c.n, 1);
	for (int i = 0; i < N; i++) { /* an order unrelated to insertion */
		int j = (int)(((long)i * 7919) % N);
		snprintf(f, sizeof(f), "dev/%d/cmd", j);
		if (del(idx, f, j + 1) != 0)
			CHECK_FAIL("remove %s failed", f);
		if (i % 4999 == 0) {
			match(idx, "dev/7/cmd", &c);
			ASSERT_TRUE(c.n >= 1);
		}
	}
	ASSERT_EQ(sub_index_count(idx), 1);
	ASSERT_EQ(del(idx, "dev/+/cmd", N + 1), 0);
	ASSERT_EQ(sub_index_count(idx), 0);
	match(idx, "dev/1/cmd", &c);
	ASSERT_EQ(c.n, 0);
	sub_index_free(idx);
}

/* Many subscribers on one filter: the position table path. */
static void test_index_many_subscribers(void)
{
	enum { N = 3000 };
	struct sub_index *idx = sub_index_new();
	struct collect c;
	for (int i = 0; i < N; i++)
		ASSERT_EQ(add(idx, "broadcast", i + 1), 0);
	for (int i = 0; i < N; i += 7)
		ASSERT_EQ(add(idx, "broadcast", i + 1), 1);
	ASSERT_EQ(sub_index_count(idx), N);
	match(idx, "broadcast", &c);
	ASSERT_EQ(c.n, N);
	for (int i = 0; i < N; i++)
		if (c.subs[i] != (uintptr_t)i + 1) {
			CHECK_FAIL("subscriber %d missing", i + 1);
			break;
		}
	for (int i = 0; i < N; i++) {
		int j = (int)(((long)i * 1237) % N);
		if (del(idx, "broadcast", j + 1) != 0)
			CHECK_FAIL("remove subscriber %d failed", j + 1);
		if (i == N / 2) {
			match(idx, "broadcast", &c);
			ASSERT_EQ(c.n, N - N / 2 - 1);
		}
	}
	ASSERT_EQ(sub_index_count(idx), 0);
	ASSERT_EQ(del(idx, "broadcast", 1), -FM_ENOENT);
	sub_index_free(idx);
}

/* A filter of 30,000 levels: the walk must not recurse per level. */
static void test_index_deep(void)
{
	enum { L = 30000 };
	static char f[2 * L], n[2 * L];
	for (int i = 0; i < L; i++) {
		f[2 * i] = '+';
		f[2 * i + 1] = '/';
		n[2 * i] = 'x';
		n[2 * i + 1] = '/';
	}
	size_t flen = 2 * L - 1, nlen = 2 * L - 1;
	struct sub_index *idx = sub_index_new();
	struct sub_entry e = { .subscriber = SUB(1) };
	struct collect c;
	memset(&c, 0, sizeof(c));
	ASSERT_TRUE(topic_filter_valid(f, flen));
	ASSERT_EQ(sub_index_add(idx, f, flen, NULL, 0, &e), 0);
	ASSERT_EQ(sub_index_add(idx, n, nlen, NULL, 0, &e), 0);
	sub_index_match(idx, n, nlen, collect_entry, collect_group, &c);
	ASSERT_EQ(c.n, 2);
	ASSERT_TRUE(topic_match(f, flen, n, nlen));
	ASSERT_EQ(sub_index_remove(idx, f, flen, NULL, 0, SUB(1)), 0);
	sub_index_free(idx);

	struct retain_index *r = retain_index_new();
	int err;
	ASSERT_TRUE(retain_index_set(r, n, nlen, SUB(5), &err) == NULL);
	ASSERT_EQ(err, 0);
	size_t got = 0;
	retain_index_match(r, S("#"), count_msg, &got);
	ASSERT_EQ(got, 1);
	got = 0;
	retain_index_match(r, f, flen, count_msg, &got);
	ASSERT_EQ(got, 1);
	retain_index_free(r, NULL);
}

static void test_index_random_crosscheck(void)
{
	static const char *const levels[] = { "a", "b", "", "$x", "ab" };
	enum { FILTERS = 400, NAMES = 600 };
	static char filters[FILTERS][48];
	static bool shared[FILTERS], live[FILTERS];
	struct sub_index *idx = sub_index_new();
	struct collect c;

	for (int i = 0; i < FILTERS; i++) {
		char *p = filters[i];
		int depth = 1 + (int)rnd(4);
		p[0] = '\0';
		for (int l = 0; l < depth; l++) {
			uint32_t r = rnd(10);
			const char *lv = r < 2 ? "+" : (r == 2 && l == depth - 1) ? "#" : levels[rnd(5)];
			if (l)
				strcat(p, "/");
			strcat(p, lv);
		}
		if (p[0] == '\0') /* a lone empty level is no filter at all */
			strcpy(p, "a");
		shared[i] = rnd(5) == 0;
		live[i] = true;
		int rc = shared[i] ? add_shared(idx, "g", p, i + 1) : add(idx, p, i + 1);
		ASSERT_EQ(rc, 0);
		ASSERT_TRUE(topic_filter_valid(S(p)));
	}
	for (int round = 0; round < 2; round++) {
		for (int j = 0; j < NAMES; j++) {
			char name[48] = "";
			int depth = 1 + (int)rnd(5);
			for (int l = 0; l < depth; l++) {
				if (l)
					strcat(name, "/");
				strcat(name, levels[rnd(5)]);
			}
			if (name[0] == '\0')
				strcpy(name, "b");
			match(idx, name, &c);
			size_t want = 0, members = 0;
			for (int i = 0; i < FILTERS; i++) {
				if (!live[i] || !topic_match(S(filters[i]), S(name)))
					continue;
				if (shared[i])
					members++;
				else if (++want, !has_sub(&c, i + 1))
					CHECK_FAIL("\"%s\" should match \"%s\"", filters[i], name);
			}
			ASSERT_EQ(c.n, want);
			for (size_t g = 0; g < c.n_groups; g++)
				members -= c.group_ptrs[g]->n_members;
			ASSERT_EQ(members, 0);
		}
		/* remove about half, then check again */
		for (int i = 0; i < FILTERS; i++) {
			if (!live[i] || rnd(2))
				continue;
			int rc = shared[i] ? sub_index_remove(idx, S(filters[i]), S("g"), SUB(i + 1))
					   : del(idx, filters[i], i + 1);
			ASSERT_EQ(rc, 0);
			live[i] = false;
		}
	}
	size_t n_live = 0;
	for (int i = 0; i < FILTERS; i++)
		n_live += live[i];
	ASSERT_EQ(sub_index_count(idx), n_live);
	sub_index_free(idx);
}

/* ---- retained index ---- */

struct msgs {
	const char *got[64];
	size_t n;
};

static void collect_msg(void *ctx, void *msg)
{
	struct msgs *m = ctx;
	if (m->n < 64)
		m->got[m->n++] = msg;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Matches filter and returns the retained topics (each message is its own
 * topic string) sorted and joined by spaces. */
static const char *retained(const struct retain_index *r, const char *filter)
{
	static char out[1024];
	struct msgs m = { .n = 0 };
	retain_index_match(r, S(filter), collect_msg, &m);
	qsort(m.got, m.n, sizeof(m.got[0]), cmp_str);
	out[0] = '\0';
	for (size_t i = 0; i < m.n; i++) {
		if (i)
			strcat(out, " ");
		strcat(out, m.got[i]);
	}
	return out;
}

static void retain_put(struct retain_index *r, const char *topic)
{
	int err = 1;
	void *old = retain_index_set(r, S(topic), (void *)topic, &err);
	ASSERT_EQ(err, 0);
	ASSERT_TRUE(old == NULL);
}

static int drops;

static void count_drop(void *msg)
{
	(void)msg;
	drops++;
}

static void test_retain_set_replace_clear(void)
{
	struct retain_index *r = retain_index_new();
	int err = 1, a = 1, b = 2;
	ASSERT_TRUE(retain_index_set(r, S("x/y"), &a, &err) == NULL);
	ASSERT_EQ(err, 0);
	ASSERT_EQ(retain_index_count(r), 1);
	ASSERT_TRUE(retain_index_set(r, S("x/y"), &b, &err) == &a); /* replaced */
	ASSERT_EQ(retain_index_count(r), 1);
	ASSERT_TRUE(retain_index_set(r, S("x"), &a, &err) == NULL);
	ASSERT_EQ(retain_index_count(r), 2);
	ASSERT_TRUE(retain_index_set(r, S("x/y"), NULL, &err) == &b); /* cleared */
	ASSERT_EQ(retain_index_count(r), 1);
	ASSERT_TRUE(retain_index_set(r, S("x/y"), NULL, &err) == NULL);
	ASSERT_TRUE(retain_index_set(r, S("x/y/z"), NULL, NULL) == NULL);
	ASSERT_TRUE(retain_index_set(r, S("q"), NULL, &err) == NULL);
	ASSERT_EQ(err, 0);
	ASSERT_EQ(retain_index_count(r), 1);
	ASSERT_TRUE(retain_index_set(r, S("x"), NULL, &err) == &a);
	ASSERT_EQ(retain_index_count(r), 0);
	static char big[TOPIC_MAX_LEN + 1];
	memset(big, 'a', sizeof(big));
	ASSERT_TRUE(retain_index_set(r, big, sizeof(big), &a, &err) == NULL);
	ASSERT_EQ(err, -FM_EINVAL);
	ASSERT_EQ(retain_index_count(r), 0);

	ASSERT_TRUE(retain_index_set(r, S("k/1"), &a, &err) == NULL);
	ASSERT_TRUE(retain_index_set(r, S("k/2"), &b, &err) == NULL);
	drops = 0;
	retain_index_free(r, count_drop);
	ASSERT_EQ(drops, 2);
	retain_index_free(NULL, count_drop);
}

static void test_retain_match(void)
{
	struct retain_index *r = retain_index_new();
	static const char *const topics[] = {
		"sport", "sport/tennis", "sport/tennis/player1", "sport/golf", "sport/",
		"/finance", "$SYS/broker", "$SYS", "a/$b", "x//y",
	};
	for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
		retain_put(r, topics[i]);
	ASSERT_EQ(retain_index_count(r), 10);

	const char *got = retained(r, "#");
	ASSERT_STRN(got, strlen(got),
		    "/finance a/$b sport sport/ sport/golf sport/tennis sport/tennis/player1 x//y");
	got = retained(r, "sport/#");
	ASSERT_STRN(got, strlen(got), "sport sport/ sport/golf sport/tennis sport/tennis/player1");
	got = retained(r, "sport/+");
	ASSERT_STRN(got, strlen(got), "sport/ sport/golf sport/tennis");
	got = retained(r, "sport/tennis/+");
	ASSERT_STRN(got, strlen(got), "sport/tennis/player1");
	got = retained(r, "+");
	ASSERT_STRN(got, strlen(got), "sport");
	got = retained(r, "+/+");
	ASSERT_STRN(got, strlen(got), "/finance a/$b sport/ sport/golf sport/tennis");
	got = retained(r, "+/#");
	ASSERT_STRN(got, strlen(got),
		    "/finance a/$b sport sport/ sport/golf sport/tennis sport/tennis/player1 x//y");
	got = retained(r, "$SYS/#");
	ASSERT_STRN(got, strlen(got), "$SYS $SYS/broker");
	got = retained(r, "$SYS/+");
	ASSERT_STRN(got, strlen(got), "$SYS/broker");
	got = retained(r, "+/broker");
	ASSERT_STRN(got, strlen(got), "");
	got = retained(r, "a/+");
	ASSERT_STRN(got, strlen(got), "a/$b");
	got = retained(r, "x/+/y");
	ASSERT_STRN(got, strlen(got), "x//y");
	got = retained(r, "sport/tennis/player1/#");
	ASSERT_STRN(got, strlen(got), "sport/tennis/player1");
	got = retained(r, "nothing/#");
	ASSERT_STRN(got, strlen(got), "");

	/* clearing removes empty nodes but keeps the rest reachable */
	ASSERT_TRUE(retain_index_set(r, S("sport/tennis"), NULL, NULL) == topics[1]);
	got = retained(r, "sport/#");
	ASSERT_STRN(got, strlen(got), "sport sport/ sport/golf sport/tennis/player1");
	for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
		if (i != 1)
			ASSERT_TRUE(retain_index_set(r, S(topics[i]), NULL, NULL) == topics[i]);
	ASSERT_EQ(retain_index_count(r), 0);
	got = retained(r, "#");
	ASSERT_STRN(got, strlen(got), "");
	retain_index_free(r, NULL);
}

static void test_retain_wide(void)
{
	enum { N = 20000 };
	struct retain_index *r = retain_index_new();
	char t[64];
	int err;
	for (int i = 0; i < N; i++) {
		snprintf(t, sizeof(t), "dev/%d/state", i);
		retain_index_set(r, S(t), SUB(i + 1), &err);
		ASSERT_EQ(err, 0);
	}
	snprintf(t, sizeof(t), "$dev/%d/state", 1);
	retain_index_set(r, S(t), SUB(N + 1), &err);
	size_t n = 0;
	retain_index_match(r, S("dev/+/state"), count_msg, &n);
	ASSERT_EQ(n, N);
	n = 0;
	retain_index_match(r, S("#"), count_msg, &n);
	ASSERT_EQ(n, N);
	n = 0;
	retain_index_match(r, S("+/+/state"), count_msg, &n);
	ASSERT_EQ(n, N);
	n = 0;
	retain_index_match(r, S("dev/123/#"), count_msg, &n);
	ASSERT_EQ(n, 1);
	for (int i = 0; i < N; i += 2) {
		snprintf(t, sizeof(t), "dev/%d/state", i);
		ASSERT_TRUE(retain_index_set(r, S(t), NULL, &err) == SUB(i + 1));
	}
	n = 0;
	retain_index_match(r, S("dev/#"), count_msg, &n);
	ASSERT_EQ(n, N / 2);
	ASSERT_EQ(retain_index_count(r), N / 2 + 1);
	drops = 0;
	retain_index_free(r, count_drop);
	ASSERT_EQ(drops, N / 2 + 1);
}

/* Retained matching agrees with topic_match on random topics and filters. */
static void test_retain_random_crosscheck(void)
{
	static const char *const levels[] = { "a", "b", "", "$x" };
	enum { TOPICS = 300 };
	static char topics[TOPICS][40];
	struct retain_index *r = retain_index_new();
	for (int i = 0; i < TOPICS; i++) {
		int depth = 1 + (int)rnd(4);
		topics[i][0] = '\0';
		for (int l = 0; l < depth; l++) {
			if (l)
				strcat(topics[i], "/");
			strcat(topics[i], levels[rnd(4)]);
		}
		if (topics[i][0] == '\0')
			strcpy(topics[i], "a");
		retain_index_set(r, S(topics[i]), topics[i], NULL);
	}
	for (int j = 0; j < 500; j++) {
		char f[40] = "";
		int depth = 1 + (int)rnd(4);
		for (int l = 0; l < depth; l++) {
			uint32_t x = rnd(8);
			if (l)
				strcat(f, "/");
			strcat(f, x < 2 ? "+" : (x == 2 && l == depth - 1) ? "#" : levels[rnd(4)]);
		}
		if (f[0] == '\0')
			strcpy(f, "b");
		size_t want = 0, got = 0;
		/* topics may repeat: count distinct ones that match */
		for (int i = 0; i < TOPICS; i++) {
			bool dup = false;
			for (int k = 0; k < i && !dup; k++)
				dup = strcmp(topics[k], topics[i]) == 0;
			want += !dup && topic_match(S(f), S(topics[i]));
		}
		retain_index_match(r, S(f), count_msg, &got);
		if (got != want)
			CHECK_FAIL("filter \"%s\": %zu retained, want %zu", f, got, want);
	}
	retain_index_free(r, NULL);
}

int main(void)
{
	RUN(test_name_valid);
	RUN(test_filter_valid);
	RUN(test_levels);
	RUN(test_match_spec);
	RUN(test_share_split);
	RUN(test_index_add_replace_remove);
	RUN(test_index_overlap);
	RUN(test_index_hash_parent);
	RUN(test_index_dollar);
	RUN(test_index_groups);
	RUN(test_index_many_groups);
	RUN(test_index_wide);
	RUN(test_index_many_subscribers);
	RUN(test_index_deep);
	RUN(test_index_random_crosscheck);
	RUN(test_retain_set_replace_clear);
	RUN(test_retain_match);
	RUN(test_retain_wide);
	RUN(test_retain_random_crosscheck);
	return CHECK_DONE();
}
