/* The store's in-memory maps: reference counts and early deletes. */
#include "check.h"
#include "store/refmap.h"
#include "store/tombs.h"

static void test_refmap_counts(void)
{
	struct refmap m = { 0 };
	for (uint64_t id = 1; id <= 5000; id++)
		ASSERT_EQ(refmap_put(&m, id, 0), 0);
	for (uint64_t id = 1; id <= 5000; id++)
		ASSERT_EQ(refmap_add(&m, id, 2), 2);
	ASSERT_TRUE(refmap_has(&m, 4999));
	ASSERT_FALSE(refmap_has(&m, 5001));
	ASSERT_EQ(refmap_add(&m, 5001, -1), -1); /* missing keys are not created */
	ASSERT_FALSE(refmap_has(&m, 5001));
	for (uint64_t id = 1; id <= 5000; id += 2)
		refmap_del(&m, id);
	for (uint64_t id = 1; id <= 5000; id++)
		ASSERT_EQ(refmap_has(&m, id), id % 2 == 0);
	/* Churn through deleted slots: the table must not fill with tombstones. */
	for (uint64_t id = 10000; id < 200000; id++) {
		ASSERT_EQ(refmap_put(&m, id, 1), 0);
		refmap_del(&m, id);
	}
	ASSERT_EQ(m.live, 2500);
	ASSERT_TRUE(m.cap <= 16384);
	refmap_free(&m);
}

static void test_tombs_skip_late_insert(void)
{
	struct tombs t = { 0 };
	for (uint64_t seq = 1; seq <= 1000; seq++)
		ASSERT_EQ(tombs_add(&t, 7, seq), 0);
	ASSERT_TRUE(tombs_take(&t, 7, 500));
	ASSERT_FALSE(tombs_take(&t, 7, 500)); /* taken once */
	ASSERT_FALSE(tombs_take(&t, 8, 501)); /* other session */
	for (uint64_t seq = 1; seq <= 1000; seq++)
		ASSERT_EQ(tombs_take(&t, 7, seq), seq != 500);
	ASSERT_EQ(t.cur.n, 0);
	tombs_free(&t);
}

static void test_tombs_age_out(void)
{
	struct tombs t = { 0 };
	tombs_add(&t, 1, 1);
	tombs_age(&t);
	tombs_add(&t, 1, 2);
	ASSERT_TRUE(tombs_take(&t, 1, 1)); /* one generation old: still known */
	tombs_add(&t, 1, 3);
	tombs_age(&t);
	tombs_age(&t);
	ASSERT_FALSE(tombs_take(&t, 1, 2)); /* two generations: forgotten */
	ASSERT_FALSE(tombs_take(&t, 1, 3));
	tombs_free(&t);
}

int main(void)
{
	RUN(test_refmap_counts);
	RUN(test_tombs_skip_late_insert);
	RUN(test_tombs_age_out);
	return CHECK_DONE();
}
