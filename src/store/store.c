/* SQLite store: schema and migrations, opening (with the journal's replay),
 * closing, and recovery. Only the writer thread (writer.c) touches the
 * connection once serving starts; recovery runs before that on the main
 * thread. */
#include "store.h"
#include "store_internal.h"
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
#include <unistd.h>

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
	[S_MSG_DROP] = "DELETE FROM msgs WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM queue WHERE msg_id = ?1)"
		       " AND NOT EXISTS (SELECT 1 FROM retained WHERE msg_id = ?1)"
		       " AND NOT EXISTS (SELECT 1 FROM sessions WHERE will_msg = ?1)"
		       " AND NOT EXISTS (SELECT 1 FROM spool WHERE msg_id = ?1)",
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
	return store__advice_code(sqlite3_errcode(db));
}

const char *store__advice_code(int rc)
{
	switch (rc & 0xFF) {
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

/* Collects the journal's batches the database does not have yet. */
static int replay_entry(void *ctx, uint64_t index, const uint8_t *p, uint32_t len)
{
	struct store *st = ctx;
	if (index <= st->applied)
		return 0;
	struct buf bytes = { 0 };
	if (buf_append(&bytes, p, len) || store__pend_add(st, index, &bytes)) {
		buf_free(&bytes);
		return -FM_ENOMEM;
	}
	return 0;
}

static int by_index(const void *a, const void *b)
{
	uint64_t x = ((const struct pending_batch *)a)->index, y = ((const struct pending_batch *)b)->index;
	return x < y ? -1 : x > y;
}

/* Brings the database up to the end of the journal: the batches that were
 * acknowledged but not yet applied when the broker stopped, from both
 * files, in index order. Then both files start over. */
static int replay_journal(struct store *st, char *err, size_t errlen)
{
	uint64_t before = st->applied, t0 = clock_mono_ms();
	int rc = 0;
	for (int i = 0; i < 2 && !rc; i++)
		rc = journal_read(&st->journal[i], replay_entry, st);
	if (!rc) {
		if (st->n_pend > 1)
			qsort(st->pend, st->n_pend, sizeof *st->pend, by_index);
		rc = store__apply_pending(st);
	}
	if (rc) {
		snprintf(err, errlen, "%s: applying the journal %s to the database: %s: %s", st->path,
			 st->journal[0].path, rc == -FM_ENOMEM ? "out of memory" : st->apply_rc ? sqlite3_errstr(st->apply_rc)
			 : strerror(errno), st->apply_rc ? store__advice_code(st->apply_rc) : "check the disk; the journal is kept");
		return -1;
	}
	uint64_t last = st->journal[0].last > st->journal[1].last ? st->journal[0].last : st->journal[1].last;
	st->next_index = (last > st->applied ? last : st->applied) + 1;
	for (int i = 0; i < 2; i++)
		if (journal_reset(&st->journal[i], 0)) {
			snprintf(err, errlen, "%s: %s", st->journal[i].path, strerror(errno));
			return -1;
		}
	if (st->applied > before)
		log_notice("store %s: applied %llu journalled batches in %llu ms", st->path,
			   (unsigned long long)(st->applied - before), (unsigned long long)(clock_mono_ms() - t0));
	return 0;
}

int store__repair(struct store *st, const struct buf *batch, char *err, size_t errlen)
{
	st->apply_rc = 0;
	if (store__apply_local(st, batch->p, batch->len) == 0)
		return 0;
	snprintf(err, errlen, "%s: repairing at start-up: %s: %s", st->path,
		 st->apply_rc ? sqlite3_errstr(st->apply_rc) : "out of memory", store__advice_code(st->apply_rc));
	return -1;
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

int store__reload(struct store *st)
{
	return load_applied(st) || store__load_tombs(st, st->applied) || store__load_refs(st) ? -1 : 0;
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
	st->journal[0].fd = st->journal[1].fd = -1;
	st->durability = durability;
	struct stat sb;
	if (stat(st->path, &sb) == 0 && sb.st_size == 0)
		log_warn("store %s: the database file is empty (0 bytes): starting with an empty store. If it held "
			 "sessions or messages, it was truncated: stop and restore it from a backup", st->path);
	pthread_mutex_init(&st->lock, NULL);
	pthread_mutex_init(&st->cl.db_lock, NULL);
	atomic_init(&st->attached, false);
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
	if (store__reload(st)) {
		snprintf(err, errlen, "%s: reading the store's state: %s: %s", st->path, sqlite3_errmsg(st->db),
			 store__advice(st->db));
		goto fail;
	}
	if (journal_open(&st->journal[0], dir, JOURNAL_FILE_0, err, errlen) ||
	    journal_open(&st->journal[1], dir, JOURNAL_FILE_1, err, errlen) || replay_journal(st, err, errlen))
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
	st->port.submit = store__submit;
	st->port.read = store__read;
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
	pthread_setname_np(pthread_self(), "fm-checkpoint");
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
	store__writer_stop(st);
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
	for (int i = 0; i < 2; i++) {
		if (st->db && st->running && !st->n_pend && st->journal[i].fd >= 0)
			journal_reset(&st->journal[i], 0);
		journal_close(&st->journal[i]);
	}
	for (size_t i = 0; i < st->n_pend; i++)
		buf_free(&st->pend[i].bytes);
	free(st->pend);
	free(st->pend_view);
	refmap_free(&st->refs);
	tombs_free(&st->tombs);
	if (st->dump_fd >= 0)
		close(st->dump_fd);
	store__snap_close(st);
	pthread_mutex_destroy(&st->cl.db_lock);
	pthread_mutex_destroy(&st->lock);
	pthread_mutex_destroy(&st->ckpt_lock);
	pthread_cond_destroy(&st->ckpt_cond);
	free(st);
}

/* The checkpoint thread, then the writer (with its raft node on a cluster). */
static int start_threads(struct store *st, const struct cluster_conf *conf, char *err, size_t errlen)
{
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
	return store__writer_start(st, conf, err, errlen);
}

int store_start(struct store *st, struct broker *b)
{
	char err[512];
	if (store__check_log_kind(st, false, err, sizeof err)) {
		log_err("%s", err);
		return -FM_EINVAL;
	}
	/* The broker's side of the port first: the writer hands back through it. */
	broker_set_store(b, &st->port);
	atomic_store(&st->attached, true);
	if (start_threads(st, NULL, err, sizeof err)) {
		if (*err)
			log_err("%s", err);
		return -FM_EIO;
	}
	return 0;
}

int store_cluster_start(struct store *st, const struct cluster_conf *conf, void (*wake)(void *arg), void *arg,
			char *err, size_t errlen)
{
	*err = 0;
	if (store__check_log_kind(st, true, err, errlen))
		return -1;
	/* The raft log is the durable copy, synced on a majority: the database
	 * is applied from it and needs no sync of its own (a commit lost with
	 * the machine is applied again from the log, or the snapshot that
	 * covers it replaces the database). Measured: the sync of each apply,
	 * on the raft loop, put the PUBACK p999 at 10,000 msg/s at 35-46 ms. */
	if (sqlite3_exec(st->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", st->path, sqlite3_errmsg(st->db));
		return -1;
	}
	st->cl.wake = wake;
	st->cl.wake_arg = arg;
	if (start_threads(st, conf, err, errlen)) {
		if (!*err)
			snprintf(err, errlen, "%s: cannot start the store's threads", st->path);
		return -1;
	}
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
	for (int i = 0; i < 2; i++)
		if (stat(st->journal[i].path, &sb) == 0)
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
