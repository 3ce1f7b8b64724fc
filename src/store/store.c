/* SQLite store: schema and migrations, the group-commit writer thread, and
 * recovery. Only the writer thread touches the connection once serving
 * starts; recovery runs before that on the main thread. */
#include "store.h"
#include "store_internal.h"
#include "record.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/log.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

/* Transactions per group, and their messages' bytes: bound the time one
 * commit holds acknowledgements and the size of one batch. */
#define GROUP_MAX_TXNS 4096
#define GROUP_MAX_BYTES (8u * 1024 * 1024)
/* Batches wait in the journal until this many bytes or this long, then are
 * applied to the database together: a queue entry delivered meanwhile is
 * never written to the database at all. */
#define APPLY_BYTES (16u * 1024 * 1024)
#define APPLY_MS 500
/* How soon an apply that failed is tried again. */
#define APPLY_RETRY_MS 1000
/* A journal whose every batch is applied starts over past this size,
 * written over while it is at most JOURNAL_KEEP_BYTES (cut otherwise). */
#define JOURNAL_RESET_BYTES (1024 * 1024)
#define JOURNAL_KEEP_BYTES (64u * 1024 * 1024)
#define SCHEMA_VERSION 5

/* Forward migrations: migrations[v] brings version v to v + 1. */
static const char *const migrations[SCHEMA_VERSION] = {
	/* 0 -> 1: the first schema. */
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER) WITHOUT ROWID;"
	"CREATE TABLE msgs(id INTEGER PRIMARY KEY, topic TEXT NOT NULL, props BLOB, payload BLOB,"
	"  qos INTEGER NOT NULL, retain INTEGER NOT NULL, expiry_at INTEGER NOT NULL, origin INTEGER NOT NULL);"
	"CREATE TABLE sessions(sid INTEGER PRIMARY KEY, client_id TEXT NOT NULL, expiry_interval INTEGER NOT NULL,"
	"  expires_at INTEGER NOT NULL, version INTEGER NOT NULL, will_msg INTEGER, will_delay INTEGER NOT NULL,"
	"  will_at INTEGER NOT NULL);"
	"CREATE TABLE subs(sid INTEGER NOT NULL, filter TEXT NOT NULL, options INTEGER NOT NULL,"
	"  sub_id INTEGER NOT NULL, PRIMARY KEY(sid, filter)) WITHOUT ROWID;"
	"CREATE TABLE queue(sid INTEGER NOT NULL, seq INTEGER NOT NULL, msg_id INTEGER NOT NULL,"
	"  qos INTEGER NOT NULL, flags INTEGER NOT NULL, state INTEGER NOT NULL, sub_ids BLOB,"
	"  PRIMARY KEY(sid, seq)) WITHOUT ROWID;"
	"CREATE TABLE rx_qos2(sid INTEGER NOT NULL, pid INTEGER NOT NULL, PRIMARY KEY(sid, pid)) WITHOUT ROWID;"
	"CREATE TABLE retained(topic TEXT PRIMARY KEY, msg_id INTEGER, version INTEGER NOT NULL) WITHOUT ROWID;",
	/* 1 -> 2: when each entry was queued (a queue's oldest age survives a restart). */
	"ALTER TABLE queue ADD COLUMN queued_at INTEGER NOT NULL DEFAULT 0;",
	/* 2 -> 3: bridge spools, messages waiting for the remote broker's PUBACK. */
	("CREATE TABLE spool(bridge TEXT NOT NULL, seq INTEGER NOT NULL, msg_id INTEGER NOT NULL,"
	 "  queued_at INTEGER NOT NULL, PRIMARY KEY(bridge, seq)) WITHOUT ROWID;"),
	/* 3 -> 4: the user a will was admitted for, to check it again when it fires. */
	"ALTER TABLE sessions ADD COLUMN will_user TEXT;",
	/* 4 -> 5: the applied index of the record batches, and the tombs that
	 * were memory only (apply is deterministic across restarts). */
	("CREATE TABLE tombs(sid INTEGER NOT NULL, seq INTEGER NOT NULL, val INTEGER NOT NULL,"
	 "  at INTEGER NOT NULL, PRIMARY KEY(sid, seq)) WITHOUT ROWID;"
	 "INSERT OR IGNORE INTO meta VALUES('applied_index', 0);"),
};

static const char *const stmt_sql[S__COUNT] = {
	[S_BEGIN] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_MSG_INS] = "INSERT OR IGNORE INTO msgs(id, topic, props, payload, qos, retain, expiry_at, origin)"
		      " VALUES(?,?,?,?,?,?,?,?)",
	[S_MSG_DEL] = "DELETE FROM msgs WHERE id = ?",
	[S_MSG_GET] = "SELECT topic, props, payload, qos, retain, expiry_at, origin FROM msgs WHERE id = ?",
	[S_Q_INS] = "INSERT OR IGNORE INTO queue(sid, seq, msg_id, qos, flags, state, sub_ids, queued_at)"
		    " VALUES(?,?,?,?,?,?,?,?)",
	[S_Q_DEL] = "DELETE FROM queue WHERE sid = ? AND seq = ? RETURNING msg_id",
	[S_Q_STATE] = "UPDATE queue SET state = ? WHERE sid = ? AND seq = ?",
	[S_Q_OF_SESSION] = "SELECT msg_id FROM queue WHERE sid = ?",
	[S_Q_DEL_SESSION] = "DELETE FROM queue WHERE sid = ?",
	[S_RX_INS] = "INSERT OR IGNORE INTO rx_qos2(sid, pid) VALUES(?,?)",
	[S_RX_DEL] = "DELETE FROM rx_qos2 WHERE sid = ? AND pid = ?",
	[S_RX_DEL_SESSION] = "DELETE FROM rx_qos2 WHERE sid = ?",
	[S_SESS_WILL] = "SELECT will_msg FROM sessions WHERE sid = ?",
	[S_SESS_PUT] = "INSERT OR REPLACE INTO sessions(sid, client_id, expiry_interval, expires_at, version,"
		       " will_msg, will_delay, will_at, will_user) VALUES(?,?,?,?,?,?,?,?,?)",
	[S_SESS_DEL] = "DELETE FROM sessions WHERE sid = ?",
	[S_SUB_PUT] = "INSERT OR REPLACE INTO subs(sid, filter, options, sub_id) VALUES(?,?,?,?)",
	[S_SUB_DEL] = "DELETE FROM subs WHERE sid = ? AND filter = ?",
	[S_SUB_DEL_SESSION] = "DELETE FROM subs WHERE sid = ?",
	[S_RET_GET] = "SELECT msg_id, version FROM retained WHERE topic = ?",
	[S_RET_PUT] = "INSERT OR REPLACE INTO retained(topic, msg_id, version) VALUES(?,?,?)",
	[S_SPOOL_INS] = "INSERT OR IGNORE INTO spool(bridge, seq, msg_id, queued_at) VALUES(?,?,?,?)",
	[S_SPOOL_DEL] = "DELETE FROM spool WHERE bridge = ? AND seq = ? RETURNING msg_id",
	[S_TOMB_PUT] = "INSERT OR REPLACE INTO tombs(sid, seq, val, at) VALUES(?,?,?,?)",
	[S_TOMB_DEL] = "DELETE FROM tombs WHERE sid = ? AND seq = ?",
	[S_TOMB_AGE] = "DELETE FROM tombs WHERE at < ?",
	[S_INDEX_PUT] = "UPDATE meta SET value = ? WHERE key = 'applied_index'",
};

/* ---- reads ---- */

struct msg *store__read_msg(struct store *st, uint64_t id, int *rc)
{
	sqlite3_stmt *s = st->st[S_MSG_GET];
	struct msg *m = NULL;
	sqlite3_bind_int64(s, 1, (int64_t)id);
	*rc = sqlite3_step(s);
	if (*rc == SQLITE_ROW) {
		const char *topic = (const char *)sqlite3_column_text(s, 0);
		int tlen = sqlite3_column_bytes(s, 0);
		const uint8_t *props = sqlite3_column_blob(s, 1);
		int plen = sqlite3_column_bytes(s, 1);
		const uint8_t *payload = sqlite3_column_blob(s, 2);
		int len = sqlite3_column_bytes(s, 2);
		*rc = SQLITE_CORRUPT;
		if (topic && tlen <= 65535 && (m = msg_new(topic, (uint16_t)tlen, props, (uint32_t)plen, payload,
							   (uint32_t)len, (uint8_t)sqlite3_column_int(s, 3),
							   sqlite3_column_int(s, 4) != 0))) {
			m->expiry_at = (uint64_t)sqlite3_column_int64(s, 5);
			m->origin_sid = (uint64_t)sqlite3_column_int64(s, 6);
			atomic_store(&m->id, id);
			*rc = SQLITE_ROW;
		} else if (topic && tlen <= 65535) {
			*rc = SQLITE_NOMEM;
		}
	}
	sqlite3_reset(s);
	return m;
}

/* Reads bodies back for on-disk entries. A failure is the load's own (the
 * broker retries it), never the group's; a damaged row is logged and counts
 * as missing (the entry is dropped, not retried forever). A body not in the
 * database is missing only when every journalled batch is applied (else it
 * may be in one that waits: the broker asks again). */
static void read_load(struct store *st, struct store_load *ld, bool applied)
{
	for (uint32_t i = 0; ld && i < ld->n; i++) {
		int rc;
		ld->items[i].msg = store__read_msg(st, ld->items[i].id, &rc);
		if (rc == SQLITE_DONE && !applied)
			ld->failed = true;
		else if (rc == SQLITE_CORRUPT)
			log_err("store %s: stored message %llu is damaged", st->path,
				(unsigned long long)ld->items[i].id);
		else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			ld->failed = true;
	}
}

/* ---- the writer ---- */

/* Free space that ends a disk-full episode. */
#define ROOM_AGAIN (1024 * 1024)

/* Near a full disk small groups keep fitting between failures (pages freed
 * by deletes, WAL space kept after a rollback): the episode, and its log
 * line, ends only when the filesystem has room again, or, where that cannot
 * be read, with a group as large as the one that failed. */
static bool episode_over(const struct store *st, uint64_t ops)
{
	struct statvfs sv;
	if (statvfs(st->dir, &sv) == 0)
		return (uint64_t)sv.f_bavail * sv.f_frsize >= ROOM_AGAIN;
	return ops >= st->failed_ops;
}

/* A debugging and test aid, off unless FERROMQ_STORE_BATCH_DUMP names a
 * file (README, "Durability"): every batch the writer applied is appended
 * to it as u64 index, u32 length (little-endian), then the batch's bytes,
 * so that a run can be applied again to an empty store and the two
 * databases compared (tests/tools/store_replay.c). A write that fails ends
 * the dump, logged (fm-store-replay reports the batch it cut short). */
static void dump_batch(struct store *st, uint64_t index)
{
	uint8_t head[12];
	for (int i = 0; i < 8; i++)
		head[i] = (uint8_t)(index >> (8 * i));
	for (int i = 0; i < 4; i++)
		head[8 + i] = (uint8_t)(st->batch.len >> (8 * i));
	struct iovec iov[2] = { { head, sizeof head }, { st->batch.p, st->batch.len } };
	if (writev(st->dump_fd, iov, 2) == (ssize_t)(sizeof head + st->batch.len))
		return;
	log_err("store %s: FERROMQ_STORE_BATCH_DUMP: %s; the dump stops at batch %llu", st->path, strerror(errno),
		(unsigned long long)index);
	close(st->dump_fd);
	st->dump_fd = -1;
}

/* Starts or ends a failure episode (logged once each): while writes fail,
 * the broker refuses new QoS 1/2 messages. */
static void set_failing(struct store *st, bool failing, const char *what, int err, uint64_t records)
{
	if (failing) {
		if (!st->failing)
			log_err("store %s: commit failed (%s): %s; new QoS 1/2 messages are refused until it works "
				"again", st->path, what,
				err == -FM_ENOMEM ? "out of memory"
				: st->apply_rc ? sqlite3_errstr(st->apply_rc)
				: err == -FM_ELIMIT ? "the disk is full" : "an I/O error");
		st->failing = true;
		st->port.failing(st->port.owner, true);
		st->failed_ops = records;
		atomic_fetch_add(&st->failures, 1);
	} else if (st->failing && !st->apply_failing && episode_over(st, records)) {
		log_notice("store %s: writing again", st->path);
		st->failing = false;
		st->port.failing(st->port.owner, false);
	}
}

/* Room for one more pending batch. 0 or -FM_ENOMEM. */
static int pend_reserve(struct store *st)
{
	if (st->n_pend == st->cap_pend) {
		size_t cap = st->cap_pend ? st->cap_pend * 2 : 64;
		struct pending_batch *p = realloc(st->pend, cap * sizeof *p);
		struct store_batch *v = p ? realloc(st->pend_view, cap * sizeof *v) : NULL;
		if (p)
			st->pend = p;
		if (!v)
			return -FM_ENOMEM;
		st->pend_view = v;
		st->cap_pend = cap;
	}
	return 0;
}

/* Keeps the batch just appended (st->batch's bytes) until it is applied;
 * pend_reserve made room. */
static void pend_take(struct store *st, uint64_t index)
{
	if (!st->n_pend)
		st->pend_since_ms = clock_mono_ms();
	st->pend[st->n_pend].bytes = st->batch;
	st->pend[st->n_pend].index = index;
	st->n_pend++;
	st->pend_bytes += st->batch.len;
	memset(&st->batch, 0, sizeof st->batch);
}

/* Whether applying what waits is worth a try now (not while one that
 * failed is waiting to be tried again). */
static bool apply_due(const struct store *st)
{
	return st->n_pend && (!st->apply_failing || clock_mono_ms() >= st->apply_retry_ms);
}

/* Applies the journal's pending batches to the database, together; then
 * the journal starts over when it has grown. A failure keeps them (they
 * are on disk in the journal) for the next try. 0 or a negative fm_err. */
static int apply_pending(struct store *st)
{
	if (!st->n_pend)
		return 0;
	for (size_t i = 0; i < st->n_pend; i++)
		st->pend_view[i] = (struct store_batch){ st->pend[i].bytes.p, st->pend[i].bytes.len, st->pend[i].index };
	st->apply_rc = 0;
	int err = store_apply_batches(st, st->pend_view, st->n_pend);
	if (err) {
		if (!st->apply_failing)
			log_err("store %s: applying %zu journalled batches to the database failed (%s); they stay in "
				"the journal and are applied again", st->path, st->n_pend,
				err == -FM_ENOMEM ? "out of memory" : sqlite3_errstr(st->apply_rc));
		st->apply_failing = true;
		st->apply_retry_ms = clock_mono_ms() + APPLY_RETRY_MS;
		return err;
	}
	for (size_t i = 0; i < st->n_pend; i++)
		buf_free(&st->pend[i].bytes);
	st->n_pend = 0;
	st->pend_bytes = 0;
	if (st->apply_failing) {
		st->apply_failing = false;
		log_notice("store %s: the journal is applied again", st->path);
	}
	if (st->journal.end >= JOURNAL_RESET_BYTES && journal_reset(&st->journal, JOURNAL_KEEP_BYTES))
		log_warn("store %s: cannot truncate the journal %s: %s (tried again later)", st->path,
			 st->journal.path, strerror(errno));
	return 0;
}

/* Free space kept beyond what applying the journal needs. */
#define ROOM_RESERVE (256 * 1024)

/* Admission before the append: whether the filesystem has room for a batch
 * of `bytes` in the journal and, later, in the database, with everything
 * journalled before it (the database takes up to about twice what it
 * applies, in its WAL and then its file). A batch the journal took must
 * never be one the database cannot. */
static bool room_for(const struct store *st, size_t bytes)
{
	struct statvfs sv;
	if (statvfs(st->dir, &sv) != 0)
		return true; /* unknown: the writes will tell */
	uint64_t free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
	return free_bytes >= 2 * ((uint64_t)st->pend_bytes + bytes) + ROOM_RESERVE;
}

/* Appends a group's writes to the journal as one batch under the next index
 * (synced with durability full): from then on they are on disk. Returns 0
 * or a negative fm_err. */
static int write_group(struct store *st, struct store_txn *list)
{
	int err = store__encode_group(list, &st->batch);
	uint32_t records = rec_batch_count(&st->batch);
	if (!err && !records)
		return 0; /* nothing to write (reads only, or cancelled pairs) */
	uint64_t index = st->next_index, end = st->journal.end;
	if (!err && (st->apply_failing || !room_for(st, st->batch.len))) {
		/* Applying what waits frees its share of the need, or fails. */
		if ((apply_due(st) ? apply_pending(st) : st->apply_failing) || !room_for(st, st->batch.len))
			err = st->apply_failing && (st->apply_rc & 0xFF) != SQLITE_FULL ? -FM_EIO : -FM_ELIMIT;
	}
	if (!err)
		err = pend_reserve(st);
	if (!err)
		err = journal_append(&st->journal, index, st->batch.p, (uint32_t)st->batch.len);
	if (!err && st->durability == DURABILITY_FULL && (err = journal_sync(&st->journal))) {
		/* Unknown whether it reached the disk: the next append writes
		 * over it. (Should it survive a crash first, its records come
		 * back; none of them was acknowledged.) */
		st->journal.end = end;
	}
	if (!err && st->dump_fd >= 0)
		dump_batch(st, index);
	if (!err) {
		st->next_index++;
		pend_take(st, index);
	}
	/* A large batch's buffer is not kept between groups. */
	if (st->batch.cap > 4 * 1024 * 1024)
		buf_free(&st->batch);
	st->apply_rc = 0;
	if (!err) {
		set_failing(st, false, NULL, 0, records);
		return 0;
	}
	set_failing(st, true, "journal write", err, records);
	return err;
}

/* Reads travel beside the group's writes, never inside them: run after the
 * group is journalled or failed, a write that failed cannot keep them
 * from running (a body not read would count as missing, and its entry be
 * dropped although acknowledged). The bodies they read were journalled by
 * earlier groups (an entry gives up its body only once its row is on
 * disk), and are read from the database once every journalled batch is
 * applied; until then a read fails and the broker asks again. */
static void read_loads(struct store *st, struct store_txn *list)
{
	for (struct store_txn *t = list; t; t = t->next)
		for (uint32_t i = 0; i < t->n_loads; i++)
			read_load(st, t->loads[i], st->n_pend == 0);
}

static bool has_loads(const struct store_txn *list)
{
	for (const struct store_txn *t = list; t; t = t->next)
		if (t->n_loads)
			return true;
	return false;
}

/* Journals a group, applies what is due, then serves its reads. Returns 0
 * or a negative fm_err (of the writes). */
static int commit_group(struct store *st, struct store_txn *list)
{
	int err = write_group(st, list);
	if (apply_due(st) && (has_loads(list) || st->pend_bytes >= APPLY_BYTES ||
			      clock_mono_ms() - st->pend_since_ms >= APPLY_MS) && apply_pending(st))
		set_failing(st, true, "applying the journal", -FM_EIO, 0);
	read_loads(st, list);
	return err;
}

/* WAL pages above which the writer checkpoints itself (64 MiB of 4 KiB pages). */
#define WAL_MAX_PAGES 16384

/* The checkpoint thread's passive checkpoints never catch up with a writer
 * that never pauses (a flood of QoS 1 messages for offline sessions or a
 * bridge spool): the WAL would grow for as long as the flood lasts (580 MB
 * in a 1.8 M message fill). Past WAL_MAX_PAGES the writer stops between two
 * groups and checkpoints everything, truncating the WAL: the flood waits for
 * that, the disk stays bounded. */
static void bound_wal(struct store *st)
{
	if (st->wal_pages < WAL_MAX_PAGES)
		return;
	int rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	bool failed = rc != SQLITE_OK && rc != SQLITE_BUSY;
	if (rc == SQLITE_OK)
		st->wal_pages = 0;
	if (failed && !st->wal_bound_failing)
		log_warn("store %s: checkpoint of a WAL of %d pages: %s (retried after each commit)", st->path,
			 st->wal_pages, sqlite3_errmsg(st->db));
	st->wal_bound_failing = failed;
}

/* How long a shutdown waits for failing writes nobody waits for. */
#define SHUTDOWN_RETRY_MS 5000

/* Whether records nobody waits for (deliveries, expiry) stop being retried
 * after a failed group: the broker is stopping and they kept failing for
 * SHUTDOWN_RETRY_MS (a full disk would hold the shutdown for good). */
static bool gives_up(struct store *st)
{
	if (st->stop)
		return true;
	if (!st->port.stopping(st->port.owner))
		return false;
	uint64_t now = clock_mono_ms();
	if (!st->giveup_at_ms) {
		st->giveup_at_ms = now + SHUTDOWN_RETRY_MS;
		return false;
	}
	if (now < st->giveup_at_ms)
		return false;
	if (!st->gave_up)
			log_err("store %s: shutting down with records that cannot be written (%s): deliveries already "
			"acknowledged may be sent again after the restart, expired messages and sessions swept again",
			st->path, st->failing ? "the disk is full or failing" : "a write error");
	st->gave_up = true;
	return true;
}

/* About what a transaction's records take in a batch. */
static size_t txn_bytes(const struct store_txn *t)
{
	size_t n = 64 * (size_t)t->n_ops;
	for (uint32_t i = 0; i < t->n_ops; i++)
		if (t->ops[i].msg)
			n += t->ops[i].msg->topic_len + t->ops[i].msg->props_len + t->ops[i].msg->payload_len;
	return n;
}

static void *writer_main(void *arg)
{
	struct store *st = arg;
	struct store_txn *retry = NULL;
	for (;;) {
		pthread_mutex_lock(&st->lock);
		while (!st->head && !retry && !st->stop) {
			if (!st->n_pend) {
				pthread_cond_wait(&st->cond, &st->lock);
				continue;
			}
			/* Batches wait to be applied: wake for them. */
			uint64_t due = st->apply_failing ? st->apply_retry_ms : st->pend_since_ms + APPLY_MS;
			uint64_t now = clock_mono_ms();
			if (now >= due)
				break;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t ns = (uint64_t)ts.tv_nsec + (due - now) * 1000000u;
			ts.tv_sec += (time_t)(ns / 1000000000u);
			ts.tv_nsec = (long)(ns % 1000000000u);
			pthread_cond_timedwait(&st->cond, &st->lock, &ts);
		}
		if (!st->head && !retry && st->stop) {
			pthread_mutex_unlock(&st->lock);
			break;
		}
		/* Take a group: whatever arrived while the last one was committing. */
		struct store_txn *list = retry, **tail = &list;
		unsigned n = 0;
		while (*tail) {
			tail = &(*tail)->next;
			n++;
		}
		size_t bytes = 0;
		while (st->head && n < GROUP_MAX_TXNS && bytes < GROUP_MAX_BYTES) {
			struct store_txn *t = st->head;
			bytes += txn_bytes(t);
			st->head = t->next;
			t->next = NULL;
			*tail = t;
			tail = &t->next;
			n++;
		}
		if (!st->head)
			st->tail = NULL;
		pthread_mutex_unlock(&st->lock);
		retry = NULL;

		int err = commit_group(st, list);
		bool give_up = err && gives_up(st);
		struct store_txn **rtail = &retry;
		for (struct store_txn *t = list, *next; t; t = next) {
			next = t->next;
			t->next = NULL;
			if (err && !t->n_cbs && !give_up) {
				/* Records nobody waits for (deliveries, expiry) are retried. */
				*rtail = t;
				rtail = &t->next;
				continue;
			}
			t->err = err;
			st->port.complete(st->port.owner, t);
		}
		if (retry) {
			struct timespec ts = { 0, 100 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		bound_wal(st);
	}
	/* Stopping: whatever is journalled goes into the database now (if that
	 * fails, it stays in the journal for the next start). */
	apply_pending(st);
	return NULL;
}

static void store_submit(void *ctx, struct store_txn *t)
{
	struct store *st = ctx;
	t->next = NULL;
	pthread_mutex_lock(&st->lock);
	if (st->tail)
		st->tail->next = t;
	else
		st->head = t;
	st->tail = t;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

/* ---- opening and schema ---- */

static int exec(struct store *st, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	snprintf(err, errlen, "%s: %s: %s", st->path, msg ? msg : sqlite3_errmsg(st->db), store__advice(st->db));
	sqlite3_free(msg);
	return -1;
}

/* What a user should do about the error db has just reported. Only a
 * damaged file is one to recover or move aside: advice for any other cause
 * would lose good data. */
const char *store__advice(sqlite3 *db)
{
	switch (sqlite3_errcode(db) & 0xFF) {
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return "the database is damaged. Stop here to lose nothing: keep a copy of the file, then either "
		       "restore it from a backup, or try `sqlite3 FILE .recover | sqlite3 NEW` and move NEW in "
		       "its place, or move the file aside to start with an empty store (its sessions and queued "
		       "messages are then not served)";
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return "the database, its -wal/-shm files or their directory cannot be written (a read-only "
		       "filesystem, permissions or owner). The data is not known to be damaged: do not move or "
		       "delete it; make it writable for the broker's user and start again";
	case SQLITE_FULL:
		return "the disk is full: free space on it and start again (the data is intact)";
	case SQLITE_IOERR:
		return "the disk reported an I/O error: check the disk and the system log before anything else; "
		       "keep a copy of the file (the data is not known to be damaged)";
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return "another process holds the database: stop it first";
	default:
		return "keep a copy of the file before changing anything";
	}
}

static int schema_version(struct store *st, int *version, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	*version = 0;
	int rc = sqlite3_prepare_v2(st->db, "SELECT count(*) FROM sqlite_master WHERE name = 'meta'", -1, &s, NULL);
	if (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 1) {
		sqlite3_finalize(s);
		rc = sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &s, NULL);
		if (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
			*version = sqlite3_column_int(s, 0);
	}
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s: %s", st->path, sqlite3_errmsg(st->db), store__advice(st->db));
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return 0;
}

static int migrate(struct store *st, char *err, size_t errlen)
{
	int version;
	if (schema_version(st, &version, err, errlen))
		return -1;
	if (version > SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %d is newer than this ferromq (%d): use a newer ferromq",
			 st->path, version, SCHEMA_VERSION);
		return -1;
	}
	for (int v = version; v < SCHEMA_VERSION; v++) {
		char sql[96];
		snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO meta VALUES('schema_version', %d)", v + 1);
		if (exec(st, "BEGIN", err, errlen) || exec(st, migrations[v], err, errlen) ||
		    exec(st, sql, err, errlen) || exec(st, "COMMIT", err, errlen)) {
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		log_notice("store %s: schema version %d", st->path, v + 1);
	}
	return 0;
}

/* Collects the journal's batches the database does not have yet, applying
 * them APPLY_BYTES at a time. */
static int replay_entry(void *ctx, uint64_t index, const uint8_t *p, uint32_t len)
{
	struct store *st = ctx;
	if (index <= st->applied)
		return 0;
	if (pend_reserve(st) || buf_append(&st->batch, p, len))
		return -FM_ENOMEM;
	pend_take(st, index);
	return st->pend_bytes >= APPLY_BYTES ? apply_pending(st) : 0;
}

/* Brings the database up to the end of the journal: the batches that were
 * acknowledged but not yet applied when the broker stopped. */
static int replay_journal(struct store *st, char *err, size_t errlen)
{
	uint64_t before = st->applied;
	uint64_t t0 = clock_mono_ms();
	int rc = journal_read(&st->journal, replay_entry, st);
	if (!rc)
		rc = apply_pending(st);
	if (rc) {
		snprintf(err, errlen, "%s: applying the journal %s to the database: %s: %s", st->path,
			 st->journal.path, rc == -FM_ENOMEM ? "out of memory" : st->apply_rc ? sqlite3_errstr(st->apply_rc)
			 : strerror(errno), st->apply_rc ? store__advice(st->db) : "check the disk; the journal is kept");
		return -1;
	}
	st->next_index = (st->journal.last > st->applied ? st->journal.last : st->applied) + 1;
	if (st->applied > before)
		log_notice("store %s: applied %llu journalled batches in %llu ms", st->path,
			   (unsigned long long)(st->applied - before), (unsigned long long)(clock_mono_ms() - t0));
	return 0;
}

static int load_applied(struct store *st)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = 'applied_index'", -1, &s, NULL))
		return -1;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		st->applied = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

struct store *store_open(const char *dir, unsigned durability, char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof *st);
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(st->path, sizeof st->path, "%s/%s", dir, STORE_FILE);
	snprintf(st->dir, sizeof st->dir, "%s", dir);
	st->dump_fd = -1;
	st->journal.fd = -1;
	st->durability = durability;
	struct stat sb;
	if (stat(st->path, &sb) == 0 && sb.st_size == 0)
		log_warn("store %s: the database file is empty (0 bytes): starting with an empty store. If it held "
			 "sessions or messages, it was truncated: stop and restore it from a backup", st->path);
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, NULL);
	pthread_mutex_init(&st->ckpt_lock, NULL);
	pthread_cond_init(&st->ckpt_cond, NULL);
	if (sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		if (st->db)
			snprintf(err, errlen, "%s: %s: %s", st->path, sqlite3_errmsg(st->db), store__advice(st->db));
		else
			snprintf(err, errlen, "%s: cannot open (out of memory)", st->path);
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 1);
	/* WAL: one writer, commits append to the log. synchronous FULL syncs the
	 * WAL at every commit; NORMAL only at checkpoints. */
	char pragmas[256];
	snprintf(pragmas, sizeof pragmas,
		 "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s; PRAGMA journal_size_limit = 67108864;"
		 "PRAGMA wal_autocheckpoint = 0;"
		 "PRAGMA cache_size = -8192; PRAGMA temp_store = MEMORY;",
		 durability == DURABILITY_FULL ? "FULL" : "NORMAL");
	if (exec(st, pragmas, err, errlen))
		goto fail;
	if (migrate(st, err, errlen))
		goto fail;
	for (int i = 0; i < S__COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->st[i], NULL)) {
			snprintf(err, errlen, "%s: %s: %s", st->path, sqlite3_errmsg(st->db), store__advice(st->db));
			goto fail;
		}
	}
	if (load_applied(st) || store__load_tombs(st, st->applied) || store__load_refs(st)) {
		snprintf(err, errlen, "%s: reading the store's state: %s: %s", st->path, sqlite3_errmsg(st->db),
			 store__advice(st->db));
		goto fail;
	}
	if (journal_open(&st->journal, dir, err, errlen) || replay_journal(st, err, errlen))
		goto fail;
	const char *dump = getenv("FERROMQ_STORE_BATCH_DUMP");
	if (dump && *dump) {
		st->dump_fd = open(dump, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (st->dump_fd < 0) {
			snprintf(err, errlen, "FERROMQ_STORE_BATCH_DUMP %s: %s", dump, strerror(errno));
			goto fail;
		}
		log_notice("store %s: appending every batch applied to %s (FERROMQ_STORE_BATCH_DUMP)", st->path, dump);
	}
	st->port.ctx = st;
	st->port.submit = store_submit;
	return st;
fail:
	store_close(st);
	return NULL;
}

/* WAL pages after a commit above which a checkpoint is asked for. */
#define CKPT_PAGES 1000

static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct store *st = arg;
	(void)db;
	(void)name;
	st->wal_pages = pages;
	if (pages >= CKPT_PAGES) {
		pthread_mutex_lock(&st->ckpt_lock);
		st->ckpt_wanted = true;
		pthread_cond_signal(&st->ckpt_cond);
		pthread_mutex_unlock(&st->ckpt_lock);
	}
	return SQLITE_OK;
}

static void *checkpoint_main(void *arg)
{
	struct store *st = arg;
	bool ckpt_failing = false;
	pthread_mutex_lock(&st->ckpt_lock);
	while (!st->ckpt_stop) {
		if (!st->ckpt_wanted) {
			pthread_cond_wait(&st->ckpt_cond, &st->ckpt_lock);
			continue;
		}
		st->ckpt_wanted = false;
		pthread_mutex_unlock(&st->ckpt_lock);
		/* PASSIVE: copies what it can without blocking the writer; the
		 * writer starts the WAL over once it has all been copied. */
		int log_pages, done_pages;
		int rc = sqlite3_wal_checkpoint_v2(st->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_pages,
						   &done_pages);
		bool failed = rc != SQLITE_OK && rc != SQLITE_BUSY;
		if (failed && !ckpt_failing)
			log_warn("store %s: checkpoint: %s (retried while the WAL grows)", st->path,
				 sqlite3_errmsg(st->ckpt_db));
		else if (!failed && ckpt_failing)
			log_notice("store %s: checkpoints work again", st->path);
		ckpt_failing = failed;
		pthread_mutex_lock(&st->ckpt_lock);
	}
	pthread_mutex_unlock(&st->ckpt_lock);
	return NULL;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->running) {
		pthread_mutex_lock(&st->lock);
		st->stop = true;
		pthread_cond_signal(&st->cond);
		pthread_mutex_unlock(&st->lock);
		pthread_join(st->thread, NULL);
	}
	if (st->ckpt_running) {
		pthread_mutex_lock(&st->ckpt_lock);
		st->ckpt_stop = true;
		pthread_cond_signal(&st->ckpt_cond);
		pthread_mutex_unlock(&st->ckpt_lock);
		pthread_join(st->ckpt_thread, NULL);
	}
	if (st->ckpt_db)
		sqlite3_close(st->ckpt_db);
	/* A clean stop leaves an empty WAL behind. */
	if (st->db && st->running)
		sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	for (int i = 0; i < S__COUNT; i++)
		sqlite3_finalize(st->st[i]);
	if (st->db)
		sqlite3_close(st->db);
	/* Everything journalled is in the database: the journal starts over. */
	if (st->db && st->running && !st->n_pend && st->journal.fd >= 0)
		journal_reset(&st->journal, 0);
	journal_close(&st->journal);
	for (size_t i = 0; i < st->n_pend; i++)
		buf_free(&st->pend[i].bytes);
	free(st->pend);
	free(st->pend_view);
	refmap_free(&st->refs);
	tombs_free(&st->tombs);
	buf_free(&st->batch);
	if (st->dump_fd >= 0)
		close(st->dump_fd);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	pthread_mutex_destroy(&st->ckpt_lock);
	pthread_cond_destroy(&st->ckpt_cond);
	free(st);
}

int store_start(struct store *st, struct broker *b)
{
	/* The broker's side of the port first: the writer hands back through it. */
	broker_set_store(b, &st->port);
	if (sqlite3_open_v2(st->path, &st->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		log_err("store %s: %s", st->path, st->ckpt_db ? sqlite3_errmsg(st->ckpt_db) : "cannot open");
		return -FM_EIO;
	}
	/* A first read opens the WAL on this connection; without it a checkpoint
	 * finds no log to copy. */
	sqlite3_exec(st->ckpt_db, "PRAGMA journal_mode", NULL, NULL, NULL);
	if (pthread_create(&st->ckpt_thread, NULL, checkpoint_main, st))
		return -FM_EIO;
	st->ckpt_running = true;
	sqlite3_wal_hook(st->db, on_wal_commit, st);
	if (pthread_create(&st->thread, NULL, writer_main, st))
		return -FM_EIO;
	st->running = true;
	return 0;
}

uint64_t store_disk_bytes(const struct store *st)
{
	struct stat sb;
	uint64_t total = 0;
	char wal[620];
	if (stat(st->path, &sb) == 0)
		total += (uint64_t)sb.st_size;
	snprintf(wal, sizeof wal, "%s-wal", st->path);
	if (stat(wal, &sb) == 0)
		total += (uint64_t)sb.st_size;
	if (stat(st->journal.path, &sb) == 0)
		total += (uint64_t)sb.st_size;
	return total;
}

/* ---- recovery ---- */

/* Rebuilds the reference counts of stored bodies from the rows that use them. */
int store__load_refs(struct store *st)
{
	static const char *const sql =
		"SELECT msg_id, count(*) FROM (SELECT msg_id FROM queue UNION ALL SELECT msg_id FROM retained"
		" UNION ALL SELECT will_msg AS msg_id FROM sessions WHERE will_msg IS NOT NULL"
		" UNION ALL SELECT msg_id FROM spool) GROUP BY msg_id"
		" HAVING count(*) > 1";
	sqlite3_stmt *s;
	refmap_free(&st->refs);
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		refmap_put(&st->refs, (uint64_t)sqlite3_column_int64(s, 0), (int32_t)sqlite3_column_int(s, 1));
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}
