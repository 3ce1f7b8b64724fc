/* The store's in-memory maps: reference counts and early deletes, both
 * hmaps of their own entries. Besides the cases apply relies on, each is
 * checked against a plain model through random churn (growth, shrinking,
 * removal from the middle of probe runs), and refmap with ids chosen to
 * share their home slot. */
#include "check.h"
#include "base/hmap.h"
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
	/* Churn one id in, one out: a delete leaves nothing behind, so the table
	 * does not grow. */
	uint8_t shift = m.map.shift;
	for (uint64_t id = 10000; id < 200000; id++) {
		ASSERT_EQ(refmap_put(&m, id, 1), 0);
		refmap_del(&m, id);
	}
	ASSERT_EQ(m.map.count, 2500);
	ASSERT_EQ(m.map.shift, shift);
	for (uint64_t id = 2; id <= 5000; id += 2)
		ASSERT_EQ(refmap_add(&m, id, 0), 2);
	/* Entries freed are kept for reuse, a bounded number of them. */
	ASSERT_EQ(m.n_spare, REFMAP_SPARE);
	for (uint64_t id = 2; id <= 5000; id += 2)
		refmap_del(&m, id);
	ASSERT_EQ(m.map.count, 0);
	ASSERT_EQ(m.n_spare, REFMAP_SPARE);
	ASSERT_EQ(refmap_put(&m, 7, 3), 0);
	ASSERT_EQ(m.n_spare, REFMAP_SPARE - 1);
	ASSERT_EQ(refmap_add(&m, 7, 0), 3);
	refmap_free(&m);
	ASSERT_EQ(m.n_spare, 0);
	ASSERT_TRUE(m.spare == NULL);
	ASSERT_EQ(refmap_put(&m, 9, 2), 0);
	refmap_del(&m, 9);
	ASSERT_EQ(m.n_spare, 1);
	ASSERT_EQ(refmap_put(&m, 10, 4), 0); /* the spare one, with its new id and count */
	ASSERT_EQ(m.n_spare, 0);
	ASSERT_FALSE(refmap_has(&m, 9));
	ASSERT_EQ(refmap_add(&m, 10, 0), 4);
	refmap_free(&m);
}

/* A small deterministic generator (xorshift64*) for the model checks. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 33) % n;
}

/* Ids whose hashes agree in their low 16 bits start their probe at the
 * same slot in every table up to 65536 slots: one long run, here placed so
 * that it wraps around the end of the table. Removing from its middle must
 * leave every later id reachable. */
static void test_refmap_shared_home(void)
{
	enum { N = 60 };
	uint64_t id[N];
	int n = 0;
	for (uint64_t k = 1; n < N; k++)
		if ((hmap_mix64(k) & 0xffff) == 0xfff0)
			id[n++] = k;
	struct refmap m = { 0 };
	for (int i = 0; i < N; i++)
		ASSERT_EQ(refmap_put(&m, id[i], i + 2), 0);
	ASSERT_EQ(m.map.count, N);
	for (int i = 0; i < N; i += 3)
		refmap_del(&m, id[i]);
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(refmap_has(&m, id[i]), i % 3 != 0);
		ASSERT_EQ(refmap_add(&m, id[i], 0), i % 3 ? i + 2 : 0);
	}
	for (int i = 0; i < N; i += 3)
		ASSERT_EQ(refmap_put(&m, id[i], -i), 0);
	for (int i = 0; i < N; i++)
		ASSERT_EQ(refmap_add(&m, id[i], 1), (i % 3 ? i + 2 : -i) + 1);
	ASSERT_EQ(m.map.count, N);
	refmap_free(&m);
	ASSERT_TRUE(m.map.slot == NULL);
}

/* Against an array: puts, adds, deletes at random, growing to a few
 * thousand ids and emptying again, with every id checked after each phase. */
static void test_refmap_model(void)
{
	enum { IDS = 4000 };
	static int32_t model[IDS + 1]; /* 0: not in the map */
	struct refmap m = { 0 };
	for (int phase = 0; phase < 6; phase++) {
		uint32_t put_pct = phase % 2 ? 20 : 80; /* grow, then shrink */
		for (int op = 0; op < 40000; op++) {
			uint64_t id = 1 + rnd(IDS);
			uint32_t r = rnd(100);
			if (r < put_pct) {
				int32_t v = 2 + (int32_t)rnd(50);
				ASSERT_EQ(refmap_put(&m, id, v), 0);
				model[id] = v;
			} else if (r < 90) {
				int32_t want = model[id] ? model[id] + 1 : 1;
				ASSERT_EQ(refmap_add(&m, id, 1), want);
				if (model[id])
					model[id] = want;
			} else {
				refmap_del(&m, id);
				model[id] = 0;
			}
		}
		uint32_t live = 0;
		for (uint64_t id = 1; id <= IDS; id++) {
			live += model[id] != 0;
			ASSERT_EQ(refmap_has(&m, id), model[id] != 0);
			ASSERT_EQ(refmap_add(&m, id, 0), model[id]);
		}
		ASSERT_EQ(m.map.count, live);
	}
	for (uint64_t id = 1; id <= IDS; id++) {
		refmap_del(&m, id);
		model[id] = 0;
	}
	ASSERT_EQ(m.map.count, 0);
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
	ASSERT_EQ(t.cur.count, 0);
	tombs_free(&t);
}

static void test_tombs_state_then_delete(void)
{
	struct tombs t = { 0 };
	ASSERT_EQ(tombs_add(&t, 1, 9, 3), 0);   /* a state change arrived first */
	ASSERT_EQ(tombs_add(&t, 1, 9, 3), 0);
	ASSERT_EQ(t.cur.count, 1);                 /* replaced, not duplicated */
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

/* A pair remembered again moves to the current generation, once: like its
 * row, which INSERT OR REPLACE gives the new index (a second copy left in
 * the older generation would come back after the first is taken). */
static void test_tombs_remembered_again(void)
{
	struct tombs t = { 0 };
	ASSERT_EQ(tombs_add(&t, 2, 5, 3), 0);
	tombs_age(&t);
	ASSERT_EQ(tombs_add(&t, 2, 5, TOMB_DELETED), 0);
	ASSERT_EQ(t.cur.count, 1);
	ASSERT_EQ(t.old.count, 0);
	tombs_age(&t); /* one generation since it was remembered again: kept */
	ASSERT_EQ(tombs_take(&t, 2, 5), TOMB_DELETED);
	ASSERT_EQ(tombs_take(&t, 2, 5), -1);
	ASSERT_EQ(tombs_add(&t, 2, 6, TOMB_DELETED), 0);
	tombs_age(&t);
	ASSERT_EQ(tombs_add(&t, 2, 6, 3), 0); /* from the older generation, still a delete */
	ASSERT_EQ(t.old.count, 0);
	ASSERT_EQ(tombs_take(&t, 2, 6), TOMB_DELETED);
	tombs_free(&t);
}

/* Against two arrays (the generations): adds, loads, takes and ageing at
 * random over a few sessions' sequences, every pair checked at the end of
 * each round. */
static void test_tombs_model(void)
{
	enum { SIDS = 6, SEQS = 700 };
	static int cur[SIDS][SEQS], old[SIDS][SEQS]; /* -1: not remembered */
	for (int i = 0; i < SIDS; i++)
		for (int j = 0; j < SEQS; j++)
			cur[i][j] = old[i][j] = -1;
	struct tombs t = { 0 };
	for (int round = 0; round < 12; round++) {
		for (int op = 0; op < 20000; op++) {
			int i = (int)rnd(SIDS), j = (int)rnd(SEQS);
			uint64_t sid = (uint64_t)i * 1000003 + 1, seq = (uint64_t)j + 1;
			uint32_t r = rnd(100);
			if (r < 45) {
				uint8_t val = rnd(2) ? TOMB_DELETED : (uint8_t)rnd(4);
				ASSERT_EQ(tombs_add(&t, sid, seq, val), 0);
				int was = cur[i][j] >= 0 ? cur[i][j] : old[i][j];
				old[i][j] = -1;
				cur[i][j] = was == TOMB_DELETED ? TOMB_DELETED : val;
			} else if (r < 50) {
				if (cur[i][j] >= 0 || old[i][j] >= 0)
					continue; /* start-up loads each stored pair once */
				bool current = rnd(2);
				uint8_t val = rnd(2) ? TOMB_DELETED : (uint8_t)rnd(4);
				ASSERT_EQ(tombs_load(&t, sid, seq, val, current), 0);
				(current ? cur : old)[i][j] = val;
			} else if (r < 99) {
				int want = cur[i][j] >= 0 ? cur[i][j] : old[i][j];
				ASSERT_EQ(tombs_take(&t, sid, seq), want);
				if (cur[i][j] >= 0)
					cur[i][j] = -1;
				else
					old[i][j] = -1;
			} else {
				tombs_age(&t);
				memcpy(old, cur, sizeof old);
				for (int a = 0; a < SIDS; a++)
					for (int b = 0; b < SEQS; b++)
						cur[a][b] = -1;
			}
		}
		uint32_t n_cur = 0, n_old = 0;
		for (int i = 0; i < SIDS; i++)
			for (int j = 0; j < SEQS; j++) {
				n_cur += cur[i][j] >= 0;
				n_old += old[i][j] >= 0;
			}
		ASSERT_EQ(t.cur.count, n_cur);
		ASSERT_EQ(t.old.count, n_old);
		/* Taking every pair empties both generations, value by value. */
		if (round % 4 == 3) {
			for (int i = 0; i < SIDS; i++)
				for (int j = 0; j < SEQS; j++) {
					uint64_t sid = (uint64_t)i * 1000003 + 1, seq = (uint64_t)j + 1;
					ASSERT_EQ(tombs_take(&t, sid, seq), cur[i][j] >= 0 ? cur[i][j] : old[i][j]);
					if (cur[i][j] >= 0)
						cur[i][j] = -1;
					else
						old[i][j] = -1;
					ASSERT_EQ(tombs_take(&t, sid, seq), cur[i][j] >= 0 ? cur[i][j] : old[i][j]);
					cur[i][j] = old[i][j] = -1;
				}
			ASSERT_EQ(t.cur.count, 0);
			ASSERT_EQ(t.old.count, 0);
		}
	}
	tombs_free(&t);
}

int main(void)
{
	RUN(test_refmap_counts);
	RUN(test_refmap_shared_home);
	RUN(test_refmap_model);
	RUN(test_tombs_skip_late_insert);
	RUN(test_tombs_state_then_delete);
	RUN(test_tombs_age_out);
	RUN(test_tombs_remembered_again);
	RUN(test_tombs_model);
	return CHECK_DONE();
}
