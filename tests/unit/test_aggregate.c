/* Unit tests of the bridge's aggregation (pure): each statistic, window
 * alignment, empty windows, payloads without a number, the summary's JSON,
 * and the bounded table. */
#include "bridge/aggregate.h"
#include "check.h"
#include <float.h>
#include <math.h>

#define P(s) (const uint8_t *)(s), strlen(s)
#define MIN_MS 60000ull
/* 2026-12-07 10:00:00 UTC, in ms. */
#define T0 1796637600000ull

static struct agg_conf conf(uint32_t window_s, uint32_t stats)
{
	return (struct agg_conf){ .window_s = window_s, .stats = stats };
}

/* The summaries an emit collects. */
struct sink {
	unsigned n;
	struct agg_window w[128];
};

static void collect(void *ctx, const struct agg_window *w)
{
	struct sink *s = ctx;
	if (s->n < 128)
		s->w[s->n] = *w;
	s->n++;
}

static void test_alignment(void)
{
	ASSERT_EQ(agg_window_start(60, T0), T0);
	ASSERT_EQ(agg_window_start(60, T0 + 59999), T0);
	ASSERT_EQ(agg_window_start(60, T0 + 60000), T0 + MIN_MS);
	ASSERT_EQ(agg_window_start(1, T0 + 1234), T0 + 1000);
	ASSERT_EQ(agg_window_start(3600, T0 + 1799999), T0); /* T0 is on the hour */
	ASSERT_EQ(agg_window_start(7, 20999), 14000);          /* any length: multiples of it since 1970 */
	struct agg_conf c = conf(60, AGG_ALL);
	struct agg_window w;
	agg_window_reset(&c, &w, T0 + 42000);
	ASSERT_EQ(w.start_ms, T0);
	ASSERT_TRUE(agg_window_empty(&w));
}

static void test_each_statistic(void)
{
	struct agg_window w = { .start_ms = T0 };
	const double v[] = { 5, -2, 10, 3 };
	for (int i = 0; i < 4; i++)
		agg_add(&w, v[i]);
	ASSERT_EQ(w.count, 4);
	ASSERT_TRUE(w.min == -2);
	ASSERT_TRUE(w.max == 10);
	ASSERT_TRUE(agg_mean(&w) == 4);
	ASSERT_TRUE(w.first == 5);
	ASSERT_TRUE(w.last == 3);
	/* Extremes of both signs: the mean stays finite and within [min, max]. */
	struct agg_window x = { 0 };
	agg_add(&x, DBL_MAX);
	agg_add(&x, -DBL_MAX);
	agg_add(&x, DBL_MAX);
	ASSERT_TRUE(isfinite(agg_mean(&x)) && agg_mean(&x) >= x.min && agg_mean(&x) <= x.max);
	/* Many small values beside a large one are not swallowed. */
	struct agg_window y = { 0 };
	for (int i = 0; i < 1000; i++)
		agg_add(&y, 0.1);
	ASSERT_TRUE(agg_mean(&y) == 0.1);
	struct agg_window z = { 0 };
	agg_add(&z, 1e16);
	for (int i = 0; i < 1000; i++)
		agg_add(&z, 1);
	agg_add(&z, -1e16);
	ASSERT_TRUE(agg_mean(&z) == 1000.0 / 1002);
}

static void test_read_payloads(void)
{
	struct agg_window w = { 0 };
	ASSERT_TRUE(agg_read(&w, P("21.5"), NULL));
	ASSERT_TRUE(agg_read(&w, P(" -3e1 "), ""));
	ASSERT_FALSE(agg_read(&w, P("running"), NULL));
	ASSERT_FALSE(agg_read(&w, P(""), NULL));
	ASSERT_EQ(w.count, 2);
	ASSERT_EQ(w.non_numeric, 2);
	ASSERT_TRUE(w.min == -30 && w.max == 21.5);
	struct agg_window j = { 0 };
	ASSERT_TRUE(agg_read(&j, P("{\"ts\":1,\"value\":7.25,\"q\":\"good\"}"), "value"));
	ASSERT_FALSE(agg_read(&j, P("{\"ts\":1,\"q\":\"good\"}"), "value"));
	ASSERT_FALSE(agg_read(&j, P("{\"value\":\"7\"}"), "value"));
	ASSERT_FALSE(agg_read(&j, P("7"), "value")); /* a plain number is not the member */
	ASSERT_EQ(j.count, 1);
	ASSERT_EQ(j.non_numeric, 3);
	ASSERT_TRUE(j.first == 7.25);
}

static void test_format(void)
{
	struct agg_conf c = conf(60, AGG_ALL);
	struct agg_window w = { .start_ms = T0 };
	agg_add(&w, 1);
	agg_add(&w, 0.1);
	agg_add(&w, 2.5);
	char out[AGG_SUMMARY_MAX];
	int n = agg_format(&c, &w, out, sizeof out);
	ASSERT_STRN(out, n, "{\"count\":3,\"min\":0.1,\"max\":2.5,\"mean\":1.2,\"first\":1,\"last\":2.5,"
			    "\"start\":1796637600000,\"end\":1796637660000}");
	/* A choice of statistics, in the one fixed order. */
	c.stats = 1u << AGG_MAX | 1u << AGG_COUNT | 1u << AGG_END;
	n = agg_format(&c, &w, out, sizeof out);
	ASSERT_STRN(out, n, "{\"count\":3,\"max\":2.5,\"end\":1796637660000}");
	/* No number: no min..last; the messages without one are counted. */
	struct agg_window e = { .start_ms = T0, .non_numeric = 2 };
	c.stats = AGG_ALL;
	n = agg_format(&c, &e, out, sizeof out);
	ASSERT_STRN(out, n, "{\"count\":0,\"start\":1796637600000,\"end\":1796637660000,\"non_numeric\":2}");
	/* The worst case fits AGG_SUMMARY_MAX; a buffer too small is refused whole. */
	struct agg_window big = { .start_ms = UINT64_MAX - 100000000, .count = UINT32_MAX, .non_numeric = UINT32_MAX,
				  .min = -DBL_MAX, .max = -1.2345678901234567e-300, .sum = -DBL_MAX, .mean = -DBL_MAX,
				  .first = 1.2345678901234567e+300, .last = -4.9406564584124654e-324 };
	n = agg_format(&c, &big, out, sizeof out);
	ASSERT_TRUE(n > 0 && n < AGG_SUMMARY_MAX);
	for (size_t cap = 0; cap < (size_t)n + 1; cap++)
		ASSERT_EQ(agg_format(&c, &big, out, cap), -1);
	ASSERT_EQ(agg_format(&c, &big, out, (size_t)n + 1), n);
}

static void test_roll_windows(void)
{
	struct agg_conf c = conf(1, AGG_ALL);
	struct agg_window w;
	struct sink s = { 0 };
	agg_window_reset(&c, &w, T0 + 300);
	agg_add(&w, 1);
	/* Still the same window: nothing, w unchanged. */
	ASSERT_EQ(agg_roll(&c, &w, T0 + 999, collect, &s), 0);
	ASSERT_EQ(w.count, 1);
	/* Ended: one summary of it, w is the window of now. */
	ASSERT_EQ(agg_roll(&c, &w, T0 + 1000, collect, &s), 1);
	ASSERT_EQ(s.n, 1);
	ASSERT_EQ(s.w[0].start_ms, T0);
	ASSERT_EQ(s.w[0].count, 1);
	ASSERT_EQ(w.start_ms, T0 + 1000);
	ASSERT_TRUE(agg_window_empty(&w));
	/* Empty windows send nothing by default... */
	ASSERT_EQ(agg_roll(&c, &w, T0 + 5500, collect, &s), 0);
	ASSERT_EQ(w.start_ms, T0 + 5000);
	/* ...or a count of 0 each, when configured: the ended one and those between. */
	c.empty = AGG_EMPTY_COUNT;
	s.n = 0;
	agg_add(&w, 2);
	ASSERT_EQ(agg_roll(&c, &w, T0 + 8100, collect, &s), 3);
	ASSERT_EQ(s.w[0].start_ms, T0 + 5000);
	ASSERT_EQ(s.w[0].count, 1);
	ASSERT_EQ(s.w[1].start_ms, T0 + 6000);
	ASSERT_EQ(s.w[1].count, 0);
	ASSERT_EQ(s.w[2].start_ms, T0 + 7000);
	ASSERT_EQ(w.start_ms, T0 + 8000);
	/* A long gap reports at most AGG_CATCH_UP empty windows, the latest ones. */
	s.n = 0;
	ASSERT_EQ(agg_roll(&c, &w, T0 + 8000 + 1000000, collect, &s), 1 + AGG_CATCH_UP);
	ASSERT_EQ(s.w[1].start_ms, T0 + 8000 + 1000000 - AGG_CATCH_UP * 1000);
	ASSERT_EQ(s.w[AGG_CATCH_UP].start_ms, T0 + 8000 + 1000000 - 1000);
	/* The clock stepping back: the open window keeps its messages. */
	s.n = 0;
	agg_add(&w, 3);
	uint64_t start = w.start_ms;
	ASSERT_EQ(agg_roll(&c, &w, T0, collect, &s), 0);
	ASSERT_EQ(w.start_ms, start);
	ASSERT_EQ(w.count, 1);
}

struct table_sink {
	unsigned n;
	char topics[16][32];
	struct agg_window w[16];
};

static void table_collect(void *ctx, const struct agg_entry *e, const struct agg_window *w)
{
	struct table_sink *s = ctx;
	if (s->n < 16) {
		snprintf(s->topics[s->n], sizeof s->topics[0], "%u:%.*s", e->key.line, (int)e->key.topic_len, e->key.topic);
		s->w[s->n] = *w;
	}
	s->n++;
}

#define GET(t, c, line, topic, now) agg_table_get(&(t), &(c), line, topic, strlen(topic), now)

static void test_table_rolls_due_windows(void)
{
	struct agg_conf sec = conf(1, AGG_ALL), min = conf(60, AGG_ALL);
	struct agg_table t = { .t.max = 100 };
	struct table_sink s = { 0 };
	struct agg_entry *a = GET(t, sec, 0, "a", T0 + 10);
	struct agg_entry *b = GET(t, min, 1, "a", T0 + 10); /* same topic, other line: its own window */
	ASSERT_TRUE(a && b && a != b);
	ASSERT_TRUE(GET(t, sec, 0, "a", T0 + 20) == a);
	ASSERT_EQ(t.next_due_ms, T0 + 1000);
	agg_add(&a->w, 1);
	agg_add(&b->w, 2);
	ASSERT_EQ(agg_table_roll(&t, T0 + 999, table_collect, &s), 0);
	ASSERT_EQ(agg_table_roll(&t, T0 + 1000, table_collect, &s), 1);
	ASSERT_STRN(s.topics[0], strlen(s.topics[0]), "0:a");
	ASSERT_EQ(t.next_due_ms, T0 + 2000);
	/* Idle second windows roll without a summary; the minute one ends on the minute. */
	ASSERT_EQ(agg_table_roll(&t, T0 + MIN_MS, table_collect, &s), 1);
	ASSERT_STRN(s.topics[1], strlen(s.topics[1]), "1:a");
	ASSERT_TRUE(s.w[1].first == 2);
	ASSERT_EQ(s.w[1].start_ms, T0);
	agg_table_free(&t);
	ASSERT_EQ(t.t.map.count, 0);
}

static void test_table_is_bounded(void)
{
	struct agg_conf c = conf(1, AGG_ALL);
	struct agg_table t = { .t.max = 4 };
	char name[8];
	struct agg_entry *e[4];
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof name, "t%d", i);
		e[i] = GET(t, c, 0, name, T0);
		ASSERT_TRUE(e[i] != NULL);
	}
	/* Full of windows holding statistics: no room, nothing forgotten. */
	for (int i = 0; i < 4; i++)
		agg_add(&e[i]->w, i);
	ASSERT_TRUE(GET(t, c, 0, "new", T0) == NULL);
	ASSERT_EQ(t.t.map.count, 4);
	ASSERT_EQ(t.t.forgotten, 0);
	/* One window is empty again (rolled): it is forgotten for the new topic. */
	struct table_sink s = { 0 };
	ASSERT_EQ(agg_table_roll(&t, T0 + 1000, table_collect, &s), 4);
	agg_add(&e[0]->w, 1);
	agg_add(&e[1]->w, 1);
	agg_add(&e[3]->w, 1);
	struct agg_entry *n = GET(t, c, 0, "new", T0 + 1000);
	ASSERT_TRUE(n != NULL);
	ASSERT_EQ(t.t.map.count, 4);
	ASSERT_EQ(t.t.forgotten, 1);
	ASSERT_TRUE(GET(t, c, 0, "t0", T0 + 1000) == e[0]); /* the others are still there */
	ASSERT_TRUE(GET(t, c, 0, "t3", T0 + 1000) == e[3]);
	agg_table_free(&t);
}

int main(void)
{
	RUN(test_alignment);
	RUN(test_each_statistic);
	RUN(test_read_payloads);
	RUN(test_format);
	RUN(test_roll_windows);
	RUN(test_table_rolls_due_windows);
	RUN(test_table_is_bounded);
	return CHECK_DONE();
}
