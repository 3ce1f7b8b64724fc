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
		ASSERT_EQ(tombs_add(&t, 7, seq, TOMB_DELETED), 0);
	ASSERT_EQ(tombs_take(&t, 7, 500), TOMB_DELETED);
	ASSERT_EQ(tombs_take(&t, 7, 500), -1); /* taken once */
	ASSERT_EQ(tombs_take(&t, 8, 501), -1); /* other session */
	for (uint64_t seq = 1; seq <= 1000; seq++)
		ASSERT_EQ(tombs_take(&t, 7, seq), seq != 500 ? TOMB_DELETED : -1);
	ASSERT_EQ(t.cur.n, 0);
	tombs_free(&t);
}

static void test_tombs_state_then_delete(void)
{
	struct tombs t = { 0 };
	ASSERT_EQ(tombs_add(&t, 1, 9, 3), 0);   /* a state change arrived first */
	ASSERT_EQ(tombs_add(&t, 1, 9, 3), 0);
	ASSERT_EQ(t.cur.n, 1);                  /* replaced, not duplicated */
	ASSERT_EQ(tombs_take(&t, 1, 9), 3);
	ASSERT_EQ(tombs_add(&t, 1, 10, TOMB_DELETED), 0);
	ASSERT_EQ(tombs_add(&t, 1, 10, 3), 0);  /* a state never revives a delete */
	ASSERT_EQ(tombs_take(&t, 1, 10), TOMB_DELETED);
	tombs_free(&t);
}

static void test_tombs_age_out(void)
{
	struct tombs t = { 0 };
	tombs_add(&t, 1, 1, TOMB_DELETED);
	tombs_age(&t);
	tombs_add(&t, 1, 2, TOMB_DELETED);
	ASSERT_EQ(tombs_take(&t, 1, 1), TOMB_DELETED); /* one generation old: still known */
	tombs_add(&t, 1, 3, TOMB_DELETED);
	tombs_age(&t);
	tombs_age(&t);
	ASSERT_EQ(tombs_take(&t, 1, 2), -1); /* two generations: forgotten */
	ASSERT_EQ(tombs_take(&t, 1, 3), -1);
	tombs_free(&t);
}

int main(void)
{
	RUN(test_refmap_counts);
	RUN(test_tombs_skip_late_insert);
	RUN(test_tombs_state_then_delete);
	RUN(test_tombs_age_out);
	return CHECK_DONE();
}
