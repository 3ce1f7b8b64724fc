/* The one apply (src/store/apply.c), against a real store in a temp
 * directory: idempotent under its index, deterministic (the same batches
 * give the same database, whether or not the store was closed and reopened
 * between them: the reference counts and tombs it mirrors in memory are
 * rebuilt right), the tombs of a delete that came before its insert survive
 * a restart, bodies live exactly as long as their last holder, and a batch
 * it cannot apply leaves nothing behind. The database is read with SQLite
 * directly, as a logical dump of every table. */
#include "check.h"
#include "base/buf.h"
#include "base/err.h"
#include "config/config.h"
#include "session/session.h"
#include "store/record.h"
#include "store/journal.h"
#include "store/store.h"
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a store in a temp directory ---- */

struct tdir {
	char path[64];
};

static void tdir_make(struct tdir *d)
{
	snprintf(d->path, sizeof d->path, "/tmp/fm-apply-XXXXXX");
	if (!mkdtemp(d->path)) {
		perror("mkdtemp");
		exit(2);
	}
}

static void tdir_remove(struct tdir *d)
{
	static const char *const files[] = { STORE_FILE, STORE_FILE "-wal", STORE_FILE "-shm", JOURNAL_FILE_0,
					      JOURNAL_FILE_1 };
	char p[128];
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", d->path, files[i]);
		unlink(p);
	}
	if (rmdir(d->path))
		perror(d->path);
}

static struct store *open_store(const struct tdir *d)
{
	char err[512];
	struct store *st = store_open(d->path, DURABILITY_NORMAL, err, sizeof err);
	if (!st) {
		fprintf(stderr, "store_open %s: %s\n", d->path, err);
		exit(2);
	}
	return st;
}

static void reopen(struct store **st, const struct tdir *d)
{
	store_close(*st);
	*st = open_store(d);
}

/* ---- reading the database on a connection of its own ---- */

static sqlite3 *db_open(const struct tdir *d)
{
	char p[128];
	sqlite3 *db;
	snprintf(p, sizeof p, "%s/%s", d->path, STORE_FILE);
	if (sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", p, sqlite3_errmsg(db));
		exit(2);
	}
	return db;
}

/* The first column of the first row of sql (printf-style), or -1 without a
 * row (or for NULL). */
static long long q_int(const struct tdir *d, const char *fmt, ...)
{
	char sql[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	sqlite3 *db = db_open(d);
	sqlite3_stmt *s;
	long long v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
		exit(2);
	}
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void dump_value(FILE *f, sqlite3_stmt *s, int col)
{
	const unsigned char *p;
	int n;
	switch (sqlite3_column_type(s, col)) {
	case SQLITE_INTEGER:
		fprintf(f, " i%lld", (long long)sqlite3_column_int64(s, col));
		break;
	case SQLITE_FLOAT:
		fprintf(f, " f%.17g", sqlite3_column_double(s, col));
		break;
	case SQLITE_NULL:
		fputs(" null", f);
		break;
	default: /* text and blobs alike, as hex, with their storage class */
		fputs(sqlite3_column_type(s, col) == SQLITE_TEXT ? " t" : " b", f);
		p = sqlite3_column_blob(s, col);
		n = sqlite3_column_bytes(s, col);
		for (int i = 0; i < n; i++)
			fprintf(f, "%02x", p[i]);
		break;
	}
}

/* Every table but SQLite's own, in name order, every row ordered by all
 * its columns, one line a row. Returns a string to free. */
static char *dump(const struct tdir *d)
{
	sqlite3 *db = db_open(d);
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	sqlite3_stmt *t;
	sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
			   " ORDER BY name", -1, &t, NULL);
	while (sqlite3_step(t) == SQLITE_ROW) {
		char sql[256];
		const char *name = (const char *)sqlite3_column_text(t, 0);
		snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", name);
		sqlite3_stmt *s;
		sqlite3_prepare_v2(db, sql, -1, &s, NULL);
		int cols = sqlite3_column_count(s);
		sqlite3_finalize(s);
		int at = snprintf(sql, sizeof sql, "SELECT * FROM \"%s\" ORDER BY 1", name);
		for (int i = 2; i <= cols; i++)
			at += snprintf(sql + at, sizeof sql - (size_t)at, ", %d", i);
		if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
			fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
			exit(2);
		}
		fprintf(f, "[%s]\n", name);
		while (sqlite3_step(s) == SQLITE_ROW) {
			for (int i = 0; i < cols; i++)
				dump_value(f, s, i);
			fputc('\n', f);
		}
		sqlite3_finalize(s);
	}
	sqlite3_finalize(t);
	sqlite3_close(db);
	fclose(f);
	return out;
}

/* Equal dumps, or a failure that shows the first line where they differ. */
#define ASSERT_DUMP_EQ(a, b, step) do { \
	if (strcmp((a), (b))) dump_differs(__FILE__, __LINE__, (a), (b), (step)); } while (0)

static void dump_differs(const char *file, int line, const char *a, const char *b, long step)
{
	size_t i = 0, bol = 0;
	while (a[i] && a[i] == b[i])
		if (a[i++] == '\n')
			bol = i;
	fprintf(stderr, "%s:%d: dumps differ (step %ld) at\n  < %.*s\n  > %.*s\n", file, line, step,
		(int)strcspn(a + bol, "\n"), a + bol, (int)strcspn(b + bol, "\n"), b + bol);
	check_failures++;
}

/* ---- records and batches ---- */

static struct rec_bytes B(const char *s)
{
	return (struct rec_bytes){ (const uint8_t *)s, s ? (uint32_t)strlen(s) : 0 };
}

static const uint32_t two_ids[] = { 3, 70000 };

static struct record body(uint64_t id, const char *topic, const char *payload)
{
	return (struct record){ .type = REC_BODY, .id = id, .qos = 1, .retain = 0, .expiry_at = 0, .origin = 1,
				.topic = B(topic), .props = B("\x23\x00\x05"), .payload = B(payload) };
}

static struct record q_add(uint64_t sid, uint64_t seq, uint64_t id, uint8_t qos, uint8_t state)
{
	return (struct record){ .type = REC_QUEUE_ADD, .sid = sid, .seq = seq, .id = id, .qos = qos,
				.flags = seq % 2 ? QE_RETAIN : 0, .state = state, .queued_s = 1700000000u + (uint32_t)seq,
				.sub_ids = { seq % 3 ? (const uint8_t *)two_ids : NULL, seq % 3 ? sizeof two_ids : 0 } };
}

static struct record q_del(uint64_t sid, uint64_t seq)
{
	return (struct record){ .type = REC_QUEUE_DEL, .sid = sid, .seq = seq };
}

static struct record q_state(uint64_t sid, uint64_t seq, uint8_t state)
{
	return (struct record){ .type = REC_QUEUE_STATE, .sid = sid, .seq = seq, .state = state };
}

static struct record sess(uint64_t sid, const char *client_id, uint64_t will, const char *user)
{
	return (struct record){ .type = REC_SESSION_PUT, .sid = sid, .text = B(client_id), .expiry_interval = 3600,
				.expires_at = 0, .version = 5, .id = will, .will_delay = will ? 30 : 0,
				.will_at = 0, .has_user = user != NULL, .user = B(user) };
}

static struct record sess_del(uint64_t sid)
{
	return (struct record){ .type = REC_SESSION_DEL, .sid = sid };
}

static struct record sub(uint64_t sid, const char *filter, uint8_t options, uint32_t sub_id)
{
	return (struct record){ .type = REC_SUB_PUT, .sid = sid, .text = B(filter), .flags = options,
				.sub_id = sub_id };
}

static struct record unsub(uint64_t sid, const char *filter)
{
	return (struct record){ .type = REC_SUB_DEL, .sid = sid, .text = B(filter) };
}

static struct record rx2(uint8_t type, uint64_t sid, uint16_t pid)
{
	return (struct record){ .type = type, .sid = sid, .pid = pid };
}

static struct record ret_put(uint64_t version, uint64_t id, const char *topic)
{
	return (struct record){ .type = REC_RETAIN_PUT, .seq = version, .id = id, .text = B(topic) };
}

static struct record ret_del(uint64_t version, const char *topic)
{
	return (struct record){ .type = REC_RETAIN_DEL, .seq = version, .text = B(topic) };
}

static struct record spool_add(const char *bridge, uint64_t seq, uint64_t id)
{
	return (struct record){ .type = REC_SPOOL_ADD, .text = B(bridge), .seq = seq, .id = id,
				.queued_s = 1700000100u };
}

static struct record spool_del(const char *bridge, uint64_t seq)
{
	return (struct record){ .type = REC_SPOOL_DEL, .text = B(bridge), .seq = seq };
}

/* One batch of the n records. */
static struct buf batch_of(const struct record *r, size_t n)
{
	struct buf b = { 0 };
	if (rec_batch_start(&b))
		exit(2);
	for (size_t i = 0; i < n; i++)
		if (rec_append(&b, &r[i])) {
			fprintf(stderr, "rec_append: record %zu (type %u)\n", i, r[i].type);
			exit(2);
		}
	return b;
}

#define RECS(...) ((const struct record[]){ __VA_ARGS__ })
#define BATCH(...) batch_of(RECS(__VA_ARGS__), sizeof RECS(__VA_ARGS__) / sizeof(struct record))

/* Applies a batch built in place and frees it; returns store_apply's result. */
#define APPLY(st, index, ...) apply_free((st), BATCH(__VA_ARGS__), (index))

static int apply_free(struct store *st, struct buf b, uint64_t index)
{
	int rc = store_apply(st, b.p, b.len, index);
	buf_free(&b);
	return rc;
}

static long long applied_index(const struct tdir *d)
{
	return q_int(d, "SELECT value FROM meta WHERE key = 'applied_index'");
}

static long long rows(const struct tdir *d, const char *table)
{
	return q_int(d, "SELECT count(*) FROM %s", table);
}

static bool has_msg(const struct tdir *d, uint64_t id)
{
	return q_int(d, "SELECT count(*) FROM msgs WHERE id = %llu", (unsigned long long)id) == 1;
}

/* ---- idempotence ---- */

/* The same batch under the same index (and any batch under an older one)
 * changes nothing: not the rows, and not the bodies' reference counts,
 * which only show when the holders go (a second hold would keep the body). */
static void test_idempotent(void)
{
	struct tdir d;
	tdir_make(&d);
	struct store *st = open_store(&d);
	ASSERT_EQ(applied_index(&d), 0);
	struct buf b1 = BATCH(body(1, "a/b", "one"), sess(1, "c1", 0, NULL), sub(1, "a/#", 1, 0),
			      q_add(1, 1, 1, 1, QE_QUEUED), q_add(1, 2, 1, 1, QE_QUEUED), ret_put(1, 1, "a/b"),
			      spool_add("cloud", 1, 1), rx2(REC_RX2_ADD, 1, 10));
	ASSERT_EQ(store_apply(st, b1.p, b1.len, 1), 0);
	ASSERT_EQ(applied_index(&d), 1);
	char *once = dump(&d);
	ASSERT_EQ(store_apply(st, b1.p, b1.len, 1), 0);
	char *twice = dump(&d);
	ASSERT_DUMP_EQ(once, twice, 1);
	/* Under an older index after a newer one, and after a restart (the
	 * index is read back from meta). */
	ASSERT_EQ(APPLY(st, 2, rx2(REC_RX2_DEL, 1, 10)), 0);
	ASSERT_EQ(applied_index(&d), 2);
	char *at2 = dump(&d);
	ASSERT_EQ(store_apply(st, b1.p, b1.len, 1), 0);
	ASSERT_EQ(APPLY(st, 2, sess_del(1)), 0);
	reopen(&st, &d);
	ASSERT_EQ(store_apply(st, b1.p, b1.len, 2), 0);
	ASSERT_EQ(APPLY(st, 1, sess_del(1), ret_del(9, "a/b")), 0);
	char *after = dump(&d);
	ASSERT_DUMP_EQ(at2, after, 2);
	ASSERT_EQ(rows(&d, "queue"), 2);
	ASSERT_EQ(rows(&d, "sessions"), 1);
	/* The four holders go one by one: the body goes with the last. */
	ASSERT_EQ(APPLY(st, 3, q_del(1, 1), q_del(1, 2)), 0);
	ASSERT_TRUE(has_msg(&d, 1));
	ASSERT_EQ(APPLY(st, 4, ret_del(2, "a/b")), 0);
	ASSERT_TRUE(has_msg(&d, 1));
	ASSERT_EQ(APPLY(st, 5, spool_del("cloud", 1)), 0);
	ASSERT_FALSE(has_msg(&d, 1));
	ASSERT_EQ(applied_index(&d), 5);
	free(once);
	free(twice);
	free(at2);
	free(after);
	buf_free(&b1);
	store_close(st);
	tdir_remove(&d);
}

/* ---- replay equivalence ---- */

#define STATE_DELIVERED QE_WAIT_PUBCOMP

/* The scenario's batches, in order, each for the next index; covers every
 * record type. */
struct scenario {
	struct buf b[64];
	size_t n;
};

static void add(struct scenario *s, struct buf b)
{
	s->b[s->n++] = b;
}

static void scenario_build(struct scenario *s)
{
	s->n = 0;
	/* Sessions with wills and users; a body shared by queue rows of two
	 * sessions, the retained index, a will and a bridge spool. */
	add(s, BATCH(body(10, "plant/1/t", "21.5"), sess(1, "hist", 0, NULL), sess(2, "gw-1", 10, "gw-user"),
		     sub(1, "plant/#", 2, 7), sub(2, "cmd/gw-1", 1, 0), q_add(1, 1, 10, 2, QE_QUEUED),
		     ret_put(3, 10, "plant/1/t"), spool_add("cloud", 1, 10)));
	add(s, BATCH(body(10, "plant/1/t", "21.5"), body(11, "plant/1/u", "22"), q_add(3, 1, 10, 1, QE_QUEUED),
		     sess(3, "hist2", 0, NULL), q_add(1, 2, 11, 1, QE_QUEUED), q_add(3, 2, 11, 1, QE_QUEUED)));
	/* Retained versions out of order: 2 is older than 3 (ignored, its body
	 * not written), 5 replaces, then a clear at 4 comes late (ignored), a
	 * clear at 6 keeps the row as a mark, and 7 sets it again. */
	add(s, BATCH(body(12, "plant/1/t", "old"), ret_put(2, 12, "plant/1/t"), body(13, "plant/1/t", "new"),
		     ret_put(5, 13, "plant/1/t"), ret_del(4, "plant/1/t")));
	add(s, BATCH(ret_del(6, "plant/1/t"), body(14, "plant/2/t", "x"), ret_put(1, 14, "plant/2/t")));
	add(s, BATCH(body(13, "plant/1/t", "new"), ret_put(7, 13, "plant/1/t"), q_add(2, 1, 13, 1, QE_QUEUED),
		     body(19, "plant/5/t", "v9"), ret_put(9, 19, "plant/5/t")));
	/* Older updates of plant/5/t arriving last: ignored. */
	add(s, BATCH(body(21, "plant/5/t", "v8"), ret_put(8, 21, "plant/5/t"), ret_del(7, "plant/5/t")));
	/* QoS 2 both ways: rx2, a state change, a delivery acknowledged. */
	add(s, BATCH(rx2(REC_RX2_ADD, 2, 100), rx2(REC_RX2_ADD, 2, 101), q_state(1, 1, QE_WAIT_PUBREC)));
	add(s, BATCH(rx2(REC_RX2_DEL, 2, 100), q_state(1, 1, STATE_DELIVERED), q_del(1, 2)));
	/* A delete and a state change before their inserts (two workers), the
	 * inserts in the next batch; a state change before an insert and a
	 * delete after the state (never brought back by a state). */
	add(s, BATCH(q_del(1, 3), q_state(1, 4, QE_WAIT_PUBREC), q_state(3, 5, QE_WAIT_PUBACK), q_del(3, 5)));
	add(s, BATCH(body(15, "plant/3/t", "y"), q_add(1, 3, 15, 2, QE_QUEUED), q_add(1, 4, 15, 2, QE_QUEUED),
		     q_add(3, 5, 15, 1, QE_QUEUED)));
	/* Subscriptions replaced and removed; the will replaced by another,
	 * then by the same one, then dropped; a user without a will. */
	add(s, BATCH(sub(1, "plant/#", 1, 8), unsub(2, "cmd/gw-1"), sub(2, "cmd/#", 0, 0), body(16, "gw/1", "bye"),
		     sess(2, "gw-1", 16, "gw-user")));
	add(s, BATCH(body(16, "gw/1", "bye"), sess(2, "gw-1", 16, "other-user"), sess(3, "hist2", 16, "u3")));
	/* The bridge spool: a second add of a row that is there (kept once),
	 * a delete. */
	add(s, BATCH(body(17, "out/1", "s"), spool_add("cloud", 2, 17), spool_add("edge", 1, 17),
		     spool_add("cloud", 2, 17), spool_del("cloud", 1)));
	/* Session deletes release every body they held: queue rows and will
	 * (16 is also the will of sid 2, until it drops it). */
	add(s, BATCH(sess_del(3), sess(2, "gw-1", 0, NULL)));
	add(s, BATCH(sess_del(2), q_del(1, 1), spool_del("edge", 1), ret_del(8, "plant/2/t")));
	/* A will and a queue row share a body; the row goes in a later batch. */
	add(s, BATCH(body(18, "plant/4/t", "z"), sess(4, "late", 18, NULL), q_add(4, 1, 18, 1, QE_QUEUED)));
	add(s, BATCH(q_del(4, 1), rx2(REC_RX2_ADD, 4, 1)));
}

static void scenario_free(struct scenario *s)
{
	for (size_t i = 0; i < s->n; i++)
		buf_free(&s->b[i]);
}

/* Filler batches that move the index on (rx2 of a session of its own). */
static struct buf filler(uint64_t index)
{
	return BATCH(rx2(index % 2 ? REC_RX2_ADD : REC_RX2_DEL, 99, (uint16_t)(index / 2 % 50 + 1)));
}

/* Batches held back and applied together with store_apply_batches, as the
 * writer applies what waited in its journal. */
struct window {
	struct buf b[64];
	uint64_t index[64];
	size_t n;
};

static void window_add(struct window *w, const struct buf *src, uint64_t index)
{
	memset(&w->b[w->n], 0, sizeof w->b[w->n]);
	if (buf_append(&w->b[w->n], src->p, src->len)) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	w->index[w->n++] = index;
}

static void window_apply(struct store *st, struct window *w)
{
	struct store_batch v[64];
	for (size_t i = 0; i < w->n; i++)
		v[i] = (struct store_batch){ w->b[i].p, w->b[i].len, w->index[i] };
	ASSERT_EQ(store_apply_batches(st, v, w->n), 0);
	for (size_t i = 0; i < w->n; i++)
		buf_free(&w->b[i]);
	w->n = 0;
}

/* Fresh stores, one applying straight through, one closed and reopened
 * before every batch, one applying them five at a time together (queue
 * entries added and removed within five batches never touch its
 * database): the same dump after every batch (after every fifth for the
 * last). Then on
 * past two tomb generations (TOMB_GENERATION, 256 indexes) with tombs left
 * from the scenario and inserts that come in late, still the same. */
static void test_replay_equivalence(void)
{
	struct tdir da, db;
	tdir_make(&da);
	tdir_make(&db);
	struct tdir dc, de;
	tdir_make(&dc);
	tdir_make(&de);
	struct store *a = open_store(&da), *b = open_store(&db), *c = open_store(&dc), *e = open_store(&de);
	struct window w = { .n = 0 };
	struct scenario s;
	scenario_build(&s);
	uint64_t index = 0;
	for (size_t i = 0; i < s.n; i++) {
		index++;
		ASSERT_EQ(store_apply(a, s.b[i].p, s.b[i].len, index), 0);
		reopen(&b, &db);
		ASSERT_EQ(store_apply(b, s.b[i].p, s.b[i].len, index), 0);
		if (index % 4 == 0)
			reopen(&c, &dc);
		ASSERT_EQ(store_apply(c, s.b[i].p, s.b[i].len, index), 0);
		window_add(&w, &s.b[i], index);
		if (index % 5 == 0 || i + 1 == s.n)
			window_apply(e, &w);
		char *x = dump(&da), *y = dump(&db), *z = dump(&dc);
		ASSERT_DUMP_EQ(x, y, (long)index);
		ASSERT_DUMP_EQ(x, z, (long)index);
		if (!w.n) {
			char *v = dump(&de);
			ASSERT_DUMP_EQ(x, v, (long)index);
			free(v);
		}
		free(x);
		free(y);
		free(z);
	}
	/* What the scenario must have left, so that equal means right too. */
	ASSERT_EQ(rows(&da, "queue"), 1); /* (1,4); (1,3) came after its delete; the rest went */
	ASSERT_EQ(q_int(&da, "SELECT state FROM queue WHERE sid = 1 AND seq = 4"), QE_WAIT_PUBREC);
	/* Bodies left: 13 (retained plant/1/t), 15 (queue (1,4)), 17 (spool
	 * cloud 2), 18 (will of sid 4), 19 (retained plant/5/t); 12 and 21,
	 * older retained versions, were never written. */
	ASSERT_EQ(rows(&da, "msgs"), 5);
	ASSERT_TRUE(has_msg(&da, 13) && has_msg(&da, 15) && has_msg(&da, 17) && has_msg(&da, 18));
	ASSERT_EQ(q_int(&da, "SELECT msg_id FROM retained WHERE topic = 'plant/5/t'"), 19);
	ASSERT_EQ(q_int(&da, "SELECT version FROM retained WHERE topic = 'plant/5/t'"), 9);
	ASSERT_EQ(q_int(&da, "SELECT msg_id FROM retained WHERE topic = 'plant/2/t'"), -1); /* the clear's mark */
	ASSERT_EQ(q_int(&da, "SELECT version FROM retained WHERE topic = 'plant/1/t'"), 7);
	ASSERT_EQ(rows(&da, "spool"), 1);
	ASSERT_EQ(rows(&da, "rx_qos2"), 1); /* (4,1); (2,101) went with its session */
	ASSERT_EQ(rows(&da, "sessions"), 2);
	ASSERT_EQ(rows(&da, "subs"), 1);

	/* On past two tomb generations (b reopened before every batch, c
	 * before every 128th: it runs through the turns on what it loaded):
	 * tombs put now, just before the first turn and after it; inserts that
	 * come late, within their tombs' lifetime; then every holder goes. */
	for (uint64_t end = 2 * 256 + 20; index < end;) {
		index++;
		struct buf f;
		if (index == s.n + 1)
			f = BATCH(q_del(5, 100), q_state(5, 200, QE_WAIT_PUBREC), q_del(5, 110));
		else if (index == 255)
			f = BATCH(q_del(5, 101), q_state(5, 201, QE_WAIT_PUBREC));
		else if (index == 300)
			f = BATCH(q_del(5, 102), q_state(5, 202, QE_WAIT_PUBREC));
		else if (index == 280)
			f = BATCH(body(20, "late", "l"), q_add(5, 100, 20, 2, QE_QUEUED), q_add(5, 200, 20, 2, QE_QUEUED),
				  q_add(5, 101, 20, 2, QE_QUEUED), q_add(5, 201, 20, 2, QE_QUEUED));
		else if (index == 520)
			f = BATCH(body(20, "late", "l"), q_add(5, 102, 20, 2, QE_QUEUED), q_add(5, 202, 20, 2, QE_QUEUED),
				  q_add(5, 110, 20, 2, QE_QUEUED));
		else if (index == end)
			f = BATCH(q_del(1, 4), spool_del("cloud", 2), ret_del(9, "plant/1/t"), ret_del(10, "plant/5/t"),
				  sess_del(4), sess_del(5));
		else
			f = filler(index);
		ASSERT_EQ(store_apply(a, f.p, f.len, index), 0);
		reopen(&b, &db);
		ASSERT_EQ(store_apply(b, f.p, f.len, index), 0);
		if (index % 128 == 0)
			reopen(&c, &dc);
		ASSERT_EQ(store_apply(c, f.p, f.len, index), 0);
		window_add(&w, &f, index);
		if (index % 16 == 0 || index == 280 || index == 520 || index == end) {
			window_apply(e, &w);
			char *x = dump(&da), *y = dump(&db), *z = dump(&dc), *v = dump(&de);
			ASSERT_DUMP_EQ(x, y, (long)index);
			ASSERT_DUMP_EQ(x, z, (long)index);
			ASSERT_DUMP_EQ(x, v, (long)index);
			free(v);
			free(x);
			free(y);
			free(z);
		}
		if (index == 520) {
			ASSERT_EQ(q_int(&da, "SELECT count(*) FROM queue WHERE sid = 5 AND seq IN (100, 101, 102)"), 0);
			ASSERT_EQ(q_int(&da, "SELECT count(*) FROM queue WHERE sid = 5 AND seq IN (200, 201, 202)"
					     " AND state = %d", QE_WAIT_PUBREC), 3);
		}
		buf_free(&f);
	}
	/* Every holder gone, every body gone, whichever way it was held. */
	ASSERT_EQ(rows(&da, "msgs"), 0);
	ASSERT_EQ(rows(&da, "queue"), 0);
	reopen(&b, &db);
	char *x = dump(&da), *y = dump(&db);
	ASSERT_DUMP_EQ(x, y, (long)index);
	free(x);
	free(y);
	ASSERT_EQ(applied_index(&db), (long long)index);
	scenario_free(&s);
	store_close(a);
	store_close(b);
	store_close(c);
	store_close(e);
	tdir_remove(&da);
	tdir_remove(&db);
	tdir_remove(&dc);
	tdir_remove(&de);
}

/* A queue entry added, moved to a state and removed within the batches
 * applied together never reaches the database, its body neither; one
 * removed before its insert goes through the tombs as it would alone; and
 * the database is the one a store applying them one by one has. */
static void test_settled_within_batches(void)
{
	struct tdir da, db;
	tdir_make(&da);
	tdir_make(&db);
	struct store *a = open_store(&da), *b = open_store(&db);
	/* (9,5): its state change came before its insert, leaving a tomb
	 * that the insert takes: applied, not skipped (skipped, the tomb
	 * would stay). */
	struct buf v[4] = {
		BATCH(body(30, "t/1", "x"), q_add(9, 1, 30, 2, QE_QUEUED), q_del(9, 2), q_state(9, 5, QE_WAIT_PUBREC)),
		BATCH(q_state(9, 1, QE_WAIT_PUBREC), body(31, "t/2", "y"), q_add(9, 3, 31, 1, QE_QUEUED),
		      body(33, "t/5", "w"), q_add(9, 5, 33, 2, QE_QUEUED)),
		BATCH(q_del(9, 1), body(32, "t/3", "z"), q_add(9, 2, 32, 1, QE_QUEUED), q_del(9, 5)),
		BATCH(rx2(REC_RX2_ADD, 9, 7)),
	};
	struct store_batch together[4];
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(store_apply(a, v[i].p, v[i].len, (uint64_t)i + 1), 0);
		together[i] = (struct store_batch){ v[i].p, v[i].len, (uint64_t)i + 1 };
	}
	ASSERT_EQ(store_apply_batches(b, together, 4), 0);
	char *x = dump(&da), *y = dump(&db);
	ASSERT_DUMP_EQ(x, y, 4L);
	free(x);
	free(y);
	ASSERT_EQ(rows(&db, "queue"), 1); /* (9,3) */
	ASSERT_EQ(rows(&db, "msgs"), 1);  /* 31 */
	ASSERT_TRUE(has_msg(&db, 31));
	ASSERT_EQ(rows(&db, "tombs"), 0); /* (9,2): deleted first, its insert took the tomb */
	ASSERT_EQ(applied_index(&db), 4);
	/* Applied already, together or alone: skipped. */
	ASSERT_EQ(store_apply_batches(b, together, 4), 0);
	ASSERT_EQ(store_apply(b, v[1].p, v[1].len, 2), 0);
	ASSERT_EQ(rows(&db, "queue"), 1);
	for (int i = 0; i < 4; i++)
		buf_free(&v[i]);
	store_close(a);
	store_close(b);
	tdir_remove(&da);
	tdir_remove(&db);
}

/* ---- tombs across a restart ---- */

/* The QoS 2 "delivered twice after fail-over" case: the subscriber's worker
 * committed the delete (PUBCOMP) in batch N, the publisher's worker the
 * insert in batch N + 1, and the node restarted in between. The insert
 * must not bring the entry back. A state change before its insert likewise
 * gives the row that state; a delete then a state keeps it deleted. */
static void test_tomb_survives_restart(void)
{
	struct tdir d;
	tdir_make(&d);
	struct store *st = open_store(&d);
	ASSERT_EQ(APPLY(st, 1, sess(7, "sub", 0, NULL)), 0);
	ASSERT_EQ(APPLY(st, 2, q_del(7, 5), q_state(7, 6, QE_WAIT_PUBCOMP), q_del(7, 8), q_state(7, 8, QE_WAIT_PUBREC)),
		  0);
	ASSERT_EQ(rows(&d, "tombs"), 3);
	reopen(&st, &d);
	ASSERT_EQ(APPLY(st, 3, body(9, "t", "p"), q_add(7, 5, 9, 2, QE_QUEUED), q_add(7, 6, 9, 2, QE_QUEUED),
			q_add(7, 8, 9, 2, QE_QUEUED), q_add(7, 7, 9, 2, QE_QUEUED)),
		  0);
	ASSERT_EQ(q_int(&d, "SELECT count(*) FROM queue WHERE sid = 7 AND seq = 5"), 0);
	ASSERT_EQ(q_int(&d, "SELECT count(*) FROM queue WHERE sid = 7 AND seq = 8"), 0);
	ASSERT_EQ(q_int(&d, "SELECT state FROM queue WHERE sid = 7 AND seq = 6"), QE_WAIT_PUBCOMP);
	ASSERT_EQ(q_int(&d, "SELECT state FROM queue WHERE sid = 7 AND seq = 7"), QE_QUEUED);
	ASSERT_EQ(rows(&d, "tombs"), 0); /* each taken by its insert */
	/* The skipped inserts took no hold on the body: two rows, two holds
	 * (no restart here: one would count the holds again from the rows). */
	ASSERT_EQ(APPLY(st, 4, q_del(7, 6)), 0);
	ASSERT_TRUE(has_msg(&d, 9));
	ASSERT_EQ(APPLY(st, 5, q_del(7, 7)), 0);
	ASSERT_FALSE(has_msg(&d, 9));
	ASSERT_EQ(rows(&d, "tombs"), 0);
	store_close(st);
	tdir_remove(&d);
}

/* Indexes with gaps (a replicated log's no-op entries): tombs still age by
 * generation, the same whether the store ran straight through or was
 * reopened on the way. */
static void test_tombs_age_across_gaps(void)
{
	struct tdir a, b;
	tdir_make(&a);
	tdir_make(&b);
	struct store *sa = open_store(&a), *sb = open_store(&b);
	for (int pass = 0; pass < 2; pass++) {
		struct store **st = pass ? &sb : &sa;
		const struct tdir *d = pass ? &b : &a;
		ASSERT_EQ(APPLY(*st, 10, sess(7, "sub", 0, NULL), q_del(7, 5)), 0);
		ASSERT_EQ(APPLY(*st, 300, sess(8, "other", 0, NULL)), 0);
		if (pass)
			reopen(st, d);
		ASSERT_EQ(APPLY(*st, 512, sess(9, "third", 0, NULL)), 0);
		if (pass)
			reopen(st, d);
		/* Two generations on, the tomb is gone: the late insert is kept. */
		ASSERT_EQ(APPLY(*st, 513, body(9, "t", "p"), q_add(7, 5, 9, 1, QE_QUEUED)), 0);
		ASSERT_EQ(q_int(d, "SELECT count(*) FROM queue WHERE sid = 7 AND seq = 5"), 1);
		ASSERT_EQ(rows(d, "tombs"), 0);
	}
	char *da = dump(&a), *db = dump(&b);
	ASSERT_TRUE(strcmp(da, db) == 0);
	free(da);
	free(db);
	store_close(sa);
	store_close(sb);
	tdir_remove(&a);
	tdir_remove(&b);
}

/* The same queue record again (a re-proposed entry) takes no second hold:
 * the body goes with the last row that holds it. */
static void test_repeated_queue_add_holds_once(void)
{
	struct tdir d;
	tdir_make(&d);
	struct store *st = open_store(&d);
	ASSERT_EQ(APPLY(st, 1, sess(1, "a", 0, NULL), sess(2, "b", 0, NULL), body(5, "t", "p"),
			q_add(1, 1, 5, 1, QE_QUEUED), q_add(2, 1, 5, 1, QE_QUEUED)),
		  0);
	ASSERT_EQ(APPLY(st, 2, body(5, "t", "p"), q_add(1, 1, 5, 1, QE_QUEUED)), 0);
	ASSERT_EQ(APPLY(st, 3, q_del(1, 1), q_del(2, 1)), 0);
	ASSERT_FALSE(has_msg(&d, 5));
	store_close(st);
	tdir_remove(&d);
}

/* ---- bodies ---- */

static void test_shared_body_lifetime(void)
{
	struct tdir d;
	tdir_make(&d);
	struct store *st = open_store(&d);
	ASSERT_EQ(APPLY(st, 1, body(1, "t", "p"), q_add(1, 1, 1, 1, QE_QUEUED), q_add(2, 1, 1, 1, QE_QUEUED)), 0);
	ASSERT_EQ(q_int(&d, "SELECT count(*) FROM msgs"), 1); /* stored once */
	ASSERT_EQ(APPLY(st, 2, q_del(1, 1)), 0);
	ASSERT_TRUE(has_msg(&d, 1));
	ASSERT_EQ(APPLY(st, 3, q_del(2, 1)), 0);
	ASSERT_FALSE(has_msg(&d, 1));
	/* The same across a restart, with the second holder in a later batch. */
	ASSERT_EQ(APPLY(st, 4, body(2, "t", "p2"), q_add(1, 2, 2, 1, QE_QUEUED)), 0);
	ASSERT_EQ(APPLY(st, 5, body(2, "t", "p2"), q_add(2, 2, 2, 1, QE_QUEUED)), 0);
	reopen(&st, &d);
	ASSERT_EQ(APPLY(st, 6, q_del(2, 2)), 0);
	ASSERT_TRUE(has_msg(&d, 2));
	reopen(&st, &d);
	ASSERT_EQ(APPLY(st, 7, q_del(1, 2)), 0);
	ASSERT_FALSE(has_msg(&d, 2));
	ASSERT_EQ(rows(&d, "queue"), 0);
	store_close(st);
	tdir_remove(&d);
}

/* A batch apply cannot take is refused whole: no row, no index, and no
 * trace in the memory mirrors (a hold taken, a tomb put, before the record
 * that failed). The next batch then applies under that same index. */
static void check_refused(struct store *st, const struct tdir *d, struct buf bad)
{
	char *before = dump(d);
	long long index = applied_index(d);
	ASSERT_EQ(store_apply(st, bad.p, bad.len, (uint64_t)index + 1), -FM_EPROTO);
	char *after = dump(d);
	ASSERT_DUMP_EQ(before, after, index + 1);
	ASSERT_EQ(applied_index(d), index);
	free(before);
	free(after);
	buf_free(&bad);
}

static void test_refused_batches(void)
{
	struct tdir d;
	tdir_make(&d);
	struct store *st = open_store(&d);
	ASSERT_EQ(APPLY(st, 1, body(1, "t", "p"), sess(1, "c", 0, NULL), q_add(1, 1, 1, 1, QE_QUEUED)), 0);
	/* Names a body it does not carry and that is not stored. */
	check_refused(st, &d, BATCH(body(1, "t", "p"), q_add(1, 2, 1, 1, QE_QUEUED), q_del(1, 9),
				    sess(2, "d", 0, NULL), q_add(1, 3, 77, 1, QE_QUEUED)));
	check_refused(st, &d, BATCH(sess(3, "e", 78, NULL)));
	check_refused(st, &d, BATCH(ret_put(1, 79, "r")));
	check_refused(st, &d, BATCH(spool_add("cloud", 1, 80)));
	/* A body after the record that names it counts as not carried. */
	check_refused(st, &d, BATCH(q_add(1, 4, 81, 1, QE_QUEUED), body(81, "t", "p")));
	/* Malformed: cut short, a record type unknown, a count too high, a
	 * version this code does not read, bytes after the last record. */
	struct buf mal = BATCH(body(1, "t", "p"), q_add(1, 2, 1, 1, QE_QUEUED), q_del(1, 9), sess(2, "d", 0, NULL),
			       q_del(1, 1));
	struct buf bad = { 0 };
	buf_append(&bad, mal.p, mal.len - 1);
	check_refused(st, &d, bad);
	bad = (struct buf){ 0 };
	buf_append(&bad, mal.p, mal.len);
	bad.p[bad.len - 21] = 0xEE; /* the last record's type (a delete: 5 + 16 bytes) */
	check_refused(st, &d, bad);
	bad = (struct buf){ 0 };
	buf_append(&bad, mal.p, mal.len);
	bad.p[8]++; /* one record more than there are: found missing after the last */
	check_refused(st, &d, bad);
	bad = (struct buf){ 0 };
	buf_append(&bad, mal.p, mal.len);
	bad.p[4] = REC_BATCH_VERSION + 1;
	check_refused(st, &d, bad);
	bad = (struct buf){ 0 };
	buf_append(&bad, mal.p, mal.len);
	buf_append(&bad, "\0", 1);
	check_refused(st, &d, bad);
	check_refused(st, &d, (struct buf){ 0 });
	/* Nothing of them stayed in memory either: the holds on body 1 and the
	 * tomb of (1, 9) they took are gone. The good batch applies under the
	 * next index; (1, 9) inserted is kept; body 1 goes with its last
	 * holder. */
	struct buf good = BATCH(body(1, "t", "p"), q_add(1, 2, 1, 1, QE_QUEUED), sess(2, "d", 0, NULL), q_del(1, 1));
	ASSERT_EQ(store_apply(st, good.p, good.len, 2), 0);
	ASSERT_EQ(applied_index(&d), 2);
	ASSERT_EQ(rows(&d, "sessions"), 2);
	ASSERT_EQ(APPLY(st, 3, body(1, "t", "p"), q_add(1, 9, 1, 1, QE_QUEUED)), 0);
	ASSERT_EQ(q_int(&d, "SELECT count(*) FROM queue WHERE sid = 1 AND seq = 9"), 1);
	ASSERT_EQ(APPLY(st, 4, q_del(1, 2)), 0);
	ASSERT_TRUE(has_msg(&d, 1));
	ASSERT_EQ(APPLY(st, 5, q_del(1, 9)), 0);
	ASSERT_FALSE(has_msg(&d, 1));
	buf_free(&good);
	buf_free(&mal);
	store_close(st);
	tdir_remove(&d);
}

int main(void)
{
	RUN(test_tombs_age_across_gaps);
	RUN(test_repeated_queue_add_holds_once);
	RUN(test_idempotent);
	RUN(test_replay_equivalence);
	RUN(test_settled_within_batches);
	RUN(test_tomb_survives_restart);
	RUN(test_shared_body_lifetime);
	RUN(test_refused_batches);
	return CHECK_DONE();
}
