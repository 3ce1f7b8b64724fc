/* A cluster node's snapshots (store/replica.c, store/snapshot.c): when
 * each node takes them (the nodes of a cluster apply the same entries, so
 * equal thresholds made them all copy their databases at once: two
 * followers busy copying left the leader without a majority, and it
 * stepped down), and their layout: an image at index Y and the entries
 * applied after Y while it was copied, or an older build's bare image. */
#include <string.h>

#include "store/store_internal.h"
#include "store/snapshot.h"
#include "base/err.h"
#include "check.h"

static void test_three_nodes_three_thresholds(void)
{
	uint64_t t1 = store__snapshot_threshold(64u << 20, 1);
	uint64_t t2 = store__snapshot_threshold(64u << 20, 2);
	uint64_t t3 = store__snapshot_threshold(64u << 20, 3);
	ASSERT_TRUE(t1 != t2 && t2 != t3 && t1 != t3);
	/* Never above the threshold asked for (a node that restarts replays
	 * the log since its last snapshot), at least half of it. */
	for (uint64_t id = 1; id <= 9; id++) {
		uint64_t t = store__snapshot_threshold(8192, id);
		ASSERT_TRUE(t <= 8192 && t >= 8192 / 2);
	}
	/* A quarter of the threshold apart: apart for as long as a quarter of
	 * the log between two snapshots takes to write. */
	ASSERT_EQ(store__snapshot_threshold(1000, 3), 1000);
	ASSERT_EQ(store__snapshot_threshold(1000, 1), 750);
	ASSERT_EQ(store__snapshot_threshold(1000, 2), 500);
}

/* head + image + trailer, as node.c concatenates the chunks. */
static size_t snapshot_of(uint8_t *out, uint64_t y, const char *image, const struct buf *trailer)
{
	size_t n = strlen(image);
	store__snap_head(out, y, n);
	memcpy(out + STORE_SNAP_HEAD, image, n);
	if (trailer->len)
		memcpy(out + STORE_SNAP_HEAD + n, trailer->p, trailer->len);
	return STORE_SNAP_HEAD + n + trailer->len;
}

static void test_image_and_trailer(void)
{
	struct buf t = { 0 };
	ASSERT_EQ(store__snap_trailer_add(&t, 42, "first", 5), 0);
	ASSERT_EQ(store__snap_trailer_add(&t, 45, "", 0), 0);
	ASSERT_EQ(store__snap_trailer_add(&t, 46, "third!", 6), 0);
	uint8_t snap[256];
	size_t len = snapshot_of(snap, 41, "IMAGE", &t);
	struct store_snap_view v;
	ASSERT_EQ(store__snap_decode(snap, len, &v), 0);
	ASSERT_EQ(v.image_index, 41);
	ASSERT_STRN(v.image, v.image_len, "IMAGE");
	const uint8_t *p = v.trailer, *bytes;
	size_t left = v.trailer_len, n;
	uint64_t last = v.image_index, index;
	ASSERT_EQ(store__snap_trailer_next(&p, &left, &last, &index, &bytes, &n), 1);
	ASSERT_EQ(index, 42);
	ASSERT_STRN(bytes, n, "first");
	ASSERT_EQ(store__snap_trailer_next(&p, &left, &last, &index, &bytes, &n), 1);
	ASSERT_EQ(index, 45);
	ASSERT_EQ(n, 0);
	ASSERT_EQ(store__snap_trailer_next(&p, &left, &last, &index, &bytes, &n), 1);
	ASSERT_STRN(bytes, n, "third!");
	ASSERT_EQ(store__snap_trailer_next(&p, &left, &last, &index, &bytes, &n), 0);
	/* Cut anywhere inside the trailer: the cut is seen, never read past. */
	for (size_t cut = STORE_SNAP_HEAD + 5 + 1; cut < len; cut++) {
		ASSERT_EQ(store__snap_decode(snap, cut, &v), 0);
		p = v.trailer;
		left = v.trailer_len;
		last = v.image_index;
		int rc;
		while ((rc = store__snap_trailer_next(&p, &left, &last, &index, &bytes, &n)) > 0)
			ASSERT_TRUE(bytes + n <= snap + cut);
		ASSERT_EQ(rc, cut == STORE_SNAP_HEAD + 5 + 12 + 5 || cut == STORE_SNAP_HEAD + 5 + 24 + 5 ? 0 : -FM_EINVAL);
	}
	buf_free(&t);
}

static void test_trailer_order(void)
{
	/* An entry at or below the image's index, or not above the previous
	 * one, is refused: applying it would be a second time. */
	struct buf t = { 0 };
	ASSERT_EQ(store__snap_trailer_add(&t, 10, "a", 1), 0);
	uint8_t snap[128];
	struct store_snap_view v;
	const uint8_t *p, *bytes;
	size_t left, n;
	uint64_t last, index;
	ASSERT_EQ(store__snap_decode(snap, snapshot_of(snap, 10, "I", &t), &v), 0);
	p = v.trailer, left = v.trailer_len, last = v.image_index;
	ASSERT_EQ(store__snap_trailer_next(&p, &left, &last, &index, &bytes, &n), -FM_EINVAL);
	ASSERT_EQ(store__snap_trailer_add(&t, 10, "b", 1), 0);
	ASSERT_EQ(store__snap_decode(snap, snapshot_of(snap, 9, "I", &t), &v), 0);
	p = v.trailer, left = v.trailer_len, last = v.image_index;
	ASSERT_EQ(store__snap_trailer_next(&p, &left, &last, &index, &bytes, &n), 1);
	ASSERT_EQ(store__snap_trailer_next(&p, &left, &last, &index, &bytes, &n), -FM_EINVAL);
	buf_free(&t);
}

static void test_bare_image_and_strangers(void)
{
	/* An older build's snapshot: SQLite's image alone. */
	uint8_t image[120] = "SQLite format 3";
	struct store_snap_view v;
	ASSERT_EQ(store__snap_decode(image, sizeof image, &v), 0);
	ASSERT_EQ(v.image_index, 0);
	ASSERT_TRUE(v.image == image && v.image_len == sizeof image && v.trailer_len == 0);
	uint8_t snap[64];
	struct buf none = { 0 };
	size_t len = snapshot_of(snap, 3, "IMG", &none);
	ASSERT_EQ(store__snap_decode(snap, STORE_SNAP_HEAD - 1, &v), -FM_EINVAL);
	ASSERT_EQ(store__snap_decode(snap, STORE_SNAP_HEAD + 2, &v), -FM_EINVAL); /* image cut short */
	snap[4] = 2; /* a version this build does not know */
	ASSERT_EQ(store__snap_decode(snap, len, &v), -FM_EINVAL);
	snap[4] = 1;
	snap[0] = 'X';
	ASSERT_EQ(store__snap_decode(snap, len, &v), -FM_EINVAL);
}

int main(void)
{
	RUN(test_three_nodes_three_thresholds);
	RUN(test_image_and_trailer);
	RUN(test_trailer_order);
	RUN(test_bare_image_and_strangers);
	return CHECK_DONE();
}
