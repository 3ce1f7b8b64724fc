/* src/base/hmap.c: the one hash map. Items are ints in an array; the map
 * holds pointers to them. */
#include "check.h"
#include "base/hmap.h"
#include <stdint.h>

/* A hash with few values makes long probe runs that wrap around the end
 * of the table: the case deletion must get right. */
static int weak_hash;

static uint64_t int_hash(const void *item, const void *ctx)
{
	(void)ctx;
	int v = *(const int *)item;
	return weak_hash ? (uint64_t)(v % 3) * 0x5555555555555555ull + (uint64_t)-1 : hmap_mix64((uint64_t)v);
}

static uint64_t key_hash(int v) { return int_hash(&v, NULL); }

static bool int_is(const void *item, const void *key) { return *(const int *)item == *(const int *)key; }

static int *find(const struct hmap *m, int v) { return hmap_find(m, key_hash(v), int_is, &v); }

static void test_add_find_remove(void)
{
	struct hmap m = { 0 };
	int v[100];
	ASSERT_TRUE(find(&m, 1) == NULL); /* an empty map has no slots */
	for (int i = 0; i < 100; i++) {
		v[i] = i * 7;
		ASSERT_EQ(hmap_add(&m, key_hash(v[i]), &v[i], int_hash, NULL), 0);
	}
	ASSERT_EQ(m.count, 100);
	ASSERT_TRUE(((size_t)1 << m.shift) >= 200); /* at most half full */
	for (int i = 0; i < 100; i++)
		ASSERT_TRUE(find(&m, i * 7) == &v[i]);
	ASSERT_TRUE(find(&m, 3) == NULL);
	for (int i = 0; i < 100; i += 2)
		ASSERT_TRUE(hmap_remove(&m, key_hash(v[i]), &v[i], int_hash, NULL));
	ASSERT_FALSE(hmap_remove(&m, key_hash(v[0]), &v[0], int_hash, NULL));
	ASSERT_EQ(m.count, 50);
	for (int i = 0; i < 100; i++)
		ASSERT_TRUE(find(&m, i * 7) == (i % 2 ? &v[i] : NULL));
	/* Shrinks as it empties, and lets the slot array go at the end. */
	for (int i = 1; i < 100; i += 2)
		ASSERT_TRUE(hmap_remove(&m, key_hash(v[i]), &v[i], int_hash, NULL));
	ASSERT_EQ(m.count, 0);
	ASSERT_TRUE(m.slot == NULL);
	hmap_free(&m);
}

/* Against a plain array, under a hash that collides on purpose: every item
 * stays reachable through adds and removes in any order. */
static void test_model_with_collisions(void)
{
	for (weak_hash = 0; weak_hash < 2; weak_hash++) {
		struct hmap m = { 0 };
		enum { N = 300 };
		int v[N];
		bool in[N] = { false };
		unsigned seed = 12345;
		for (int i = 0; i < N; i++)
			v[i] = i;
		for (int step = 0; step < 20000; step++) {
			seed = seed * 1103515245u + 12345u;
			int i = (int)((seed >> 8) % N);
			if (in[i])
				ASSERT_TRUE(hmap_remove(&m, key_hash(i), &v[i], int_hash, NULL));
			else
				ASSERT_EQ(hmap_add(&m, key_hash(i), &v[i], int_hash, NULL), 0);
			in[i] = !in[i];
			if (step % 997)
				continue;
			uint32_t n = 0;
			for (int k = 0; k < N; k++) {
				n += in[k];
				if (find(&m, k) != (in[k] ? &v[k] : NULL))
					CHECK_FAIL("step %d weak %d: item %d %s", step, weak_hash, k,
						   in[k] ? "lost" : "still found");
			}
			ASSERT_EQ(m.count, n);
		}
		hmap_free(&m);
	}
	weak_hash = 0;
}

static void test_walks(void)
{
	struct hmap m = { 0 };
	int v[40];
	size_t pos = 0;
	ASSERT_TRUE(hmap_next(&m, &pos) == NULL);
	for (int i = 0; i < 40; i++) {
		v[i] = i;
		hmap_add(&m, key_hash(i), &v[i], int_hash, NULL);
	}
	/* Each item once; resuming after a given item goes on from there. */
	int seen[40] = { 0 }, *p, n = 0;
	pos = 0;
	while ((p = hmap_next(&m, &pos))) {
		seen[*p]++;
		size_t after = hmap_slot_of(&m, key_hash(*p), p) + 1;
		ASSERT_EQ(after, pos);
		n++;
	}
	ASSERT_EQ(n, 40);
	for (int i = 0; i < 40; i++)
		ASSERT_EQ(seen[i], 1);
	/* Taking items by slot leaves the others reachable. */
	pos = 0;
	for (int k = 0; k < 30; k++) {
		pos = 0;
		p = hmap_next(&m, &pos);
		ASSERT_TRUE(hmap_take_at(&m, pos - 1, int_hash, NULL) == p);
		ASSERT_TRUE(find(&m, *p) == NULL);
	}
	ASSERT_EQ(m.count, 10);
	n = 0;
	for (int i = 0; i < 40; i++)
		n += find(&m, i) != NULL;
	ASSERT_EQ(n, 10);
	hmap_free(&m);
	ASSERT_EQ(m.count, 0);
}

static void test_reserve(void)
{
	struct hmap m = { 0 };
	int v[1000];
	ASSERT_EQ(hmap_reserve(&m, 1000, int_hash, NULL), 0);
	void **slot = m.slot;
	for (int i = 0; i < 1000; i++) {
		v[i] = i;
		ASSERT_EQ(hmap_add(&m, key_hash(i), &v[i], int_hash, NULL), 0);
	}
	ASSERT_TRUE(m.slot == slot); /* no growth after the reservation */
	hmap_free(&m);
}

static void test_hash_bytes_seeded(void)
{
	ASSERT_TRUE(hmap_hash_bytes(1, "abc", 3) == hmap_hash_bytes(1, "abc", 3));
	ASSERT_TRUE(hmap_hash_bytes(1, "abc", 3) != hmap_hash_bytes(2, "abc", 3));
	ASSERT_TRUE(hmap_hash_bytes(1, "abc", 3) != hmap_hash_bytes(1, "abd", 3));
	ASSERT_TRUE(hmap_mix64(1) != hmap_mix64(2));
}

int main(void)
{
	RUN(test_add_find_remove);
	RUN(test_model_with_collisions);
	RUN(test_walks);
	RUN(test_reserve);
	RUN(test_hash_bytes_seeded);
	return CHECK_DONE();
}
