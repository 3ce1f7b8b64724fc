/* The store of a cluster node: the raft log (src/cluster) is the journal.
 * The writer's loop runs the raft node; a group's batch is one entry,
 * handed back once it is committed on a majority and applied here. Every
 * node, the leader included, changes its database only from the committed
 * entries (the same apply as a single node: pending, then applied
 * together), and snapshots are images of the database.
 *
 * Serving: the node that leads serves once every entry committed before its
 * term is applied here (a barrier); the broker then recovers its state from
 * the database (store_attach) while the writer keeps off the database. A
 * node that stops leading hands its broker back (store_detach) and follows. */
#include "store_internal.h"
#include "snapshot.h"
#include "../base/err.h"
#include "../base/log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* What the database's index counts: batches of the local journal or entries
 * of a raft log. One database follows one kind of log for good: a raft
 * index below the journal's would be taken for applied already. */
#define LOG_LOCAL 0
#define LOG_RAFT 1

static int log_kind(struct store *st, int *kind)
{
	sqlite3_stmt *s;
	*kind = LOG_LOCAL;
	if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = 'log_kind'", -1, &s, NULL))
		return -1;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*kind = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int store__check_log_kind(struct store *st, bool raft, char *err, size_t errlen)
{
	int kind;
	if (log_kind(st, &kind)) {
		snprintf(err, errlen, "%s: reading which log the database follows: %s", st->path, sqlite3_errmsg(st->db));
		return -1;
	}
	if (raft && kind != LOG_RAFT) {
		if (st->applied) {
			snprintf(err, errlen, "%s: this database was written by a single broker (its journal reached batch "
				 "%llu); a cluster node starts from an empty persistence_location (it receives the state "
				 "from the cluster) or from one of the same cluster", st->path,
				 (unsigned long long)st->applied);
			return -1;
		}
		if (sqlite3_exec(st->db, "INSERT OR REPLACE INTO meta VALUES('log_kind', 1)", NULL, NULL, NULL)) {
			snprintf(err, errlen, "%s: %s", st->path, sqlite3_errmsg(st->db));
			return -1;
		}
	} else if (!raft && kind == LOG_RAFT) {
		snprintf(err, errlen, "%s: this database belongs to a cluster node (it follows a raft log); start it "
			 "with its cluster_ options (README, \"High availability\")", st->path);
		return -1;
	}
	return 0;
}

/* ---- serving ---- */

static void tell(struct store *st)
{
	if (st->cl.wake)
		st->cl.wake(st->cl.wake_arg);
}

static void set_serving(struct store *st, bool serve, uint64_t leader_id, const char *leader)
{
	pthread_mutex_lock(&st->lock);
	bool changed = st->cl.serve != serve || st->cl.leader_id != leader_id ||
		       strcmp(st->cl.leader, leader ? leader : "") != 0;
	if (serve && !st->cl.serve)
		st->cl.generation++;
	st->cl.serve = serve;
	st->cl.leader_id = leader_id;
	snprintf(st->cl.leader, sizeof st->cl.leader, "%s", leader ? leader : "");
	pthread_mutex_unlock(&st->lock);
	if (changed)
		tell(st);
}

bool store_cluster_serving(struct store *st, char *leader, size_t len, uint64_t *leader_id, uint64_t *generation)
{
	pthread_mutex_lock(&st->lock);
	bool serve = st->cl.serve;
	if (generation)
		*generation = st->cl.generation;
	if (leader_id)
		*leader_id = st->cl.leader_id;
	if (len)
		snprintf(leader, len, "%s", st->cl.leader);
	pthread_mutex_unlock(&st->lock);
	return serve;
}

struct cluster_node *store_cluster(struct store *st)
{
	return st ? st->cl.node : NULL;
}

static void on_barrier(void *arg, int err)
{
	struct store *st = arg;
	if (err || !cluster_is_leader(st->cl.node))
		return; /* role_changed tells what we are now */
	/* Everything committed is applied before the broker reads the state. */
	store__db_take(st, true);
	int rc = store__apply_pending(st);
	store__db_give(st);
	if (rc) {
		log_err("store %s: cannot apply the committed log before serving; this node does not serve "
			"(leadership handed over)", st->path);
		cluster_request(st->cl.node, CLUSTER_CHANGE_TRANSFER, 0, NULL);
		return;
	}
	struct cluster_status cs;
	cluster_status(st->cl.node, &cs);
	log_notice("store %s: every committed entry is applied (index %llu): this node serves", st->path,
		   (unsigned long long)st->applied);
	set_serving(st, true, cs.node_id, "");
}

/* The leader serves once a barrier shows every committed entry applied
 * (on_barrier). */
static void serve_after_barrier(struct store *st)
{
	int rc = cluster_barrier(st->cl.node, on_barrier, st);
	if (rc && rc != CLUSTER_EBUSY)
		log_warn("store %s: cannot start serving: %s", st->path, cluster_strerror(rc));
}

/* A transaction the serving broker applied in memory did not commit (the
 * leadership was lost, or is being handed over): its memory no longer
 * matches the replicated state, e.g. a delivery's PUBREC taken that the
 * next leader does not have, whose PUBREL would make a second delivery of a
 * QoS 2 message after a fail-over. The broker is rebuilt from the database:
 * it stops serving now and, if this node still leads, serves again once the
 * log is applied (a new generation). */
static void diverged(struct store *st)
{
	if (!store_cluster_serving(st, NULL, 0, NULL, NULL))
		return;
	log_notice("store %s: a transaction did not commit: the broker stops serving and, while this node "
		   "leads, recovers the replicated state again", st->path);
	if (atomic_load(&st->attached))
		st->port.out_of_step(st->port.owner);
	set_serving(st, false, 0, "");
	if (cluster_is_leader(st->cl.node))
		serve_after_barrier(st);
}

static void on_role(void *owner, enum cluster_state state, uint64_t leader_id, const char *leader_address)
{
	struct store *st = owner;
	if (state == CLUSTER_LEADER) {
		serve_after_barrier(st);
		return;
	}
	set_serving(st, false, leader_id, leader_address);
}

/* ---- the state machine ---- */

static void on_apply(void *owner, uint64_t index, const void *bytes, size_t len)
{
	struct store *st = owner;
	struct buf copy = { 0 };
	st->cl.since_snapshot += len;
	st->cl.entries_since_snapshot++;
	/* A snapshot's image is being copied: it carries this entry after it. */
	if (st->cl.snap.running && !st->cl.snap.lost &&
	    store__snap_trailer_add(&st->cl.snap.trailer, index, bytes, len))
		st->cl.snap.lost = true;
	if (buf_append(&copy, bytes, len) || store__pend_add(st, index, &copy)) {
		/* No memory to keep it waiting: into the database now. */
		buf_free(&copy);
		struct store_batch b = { bytes, len, index };
		store__db_take(st, true);
		int rc = store__apply_pending(st);
		if (!rc)
			rc = store_apply_batches(st, &b, 1);
		store__db_give(st);
		if (rc) {
			/* A committed entry cannot be refused: this node stops and
			 * applies it again from the log at its next start. */
			log_err("store %s: cannot apply committed entry %llu (%s); stopping: the node applies it "
				 "again from its log when started", st->path, (unsigned long long)index, fm_strerror(rc));
			abort();
		}
	} else if (!st->cl.node || !cluster_is_leader(st->cl.node)) {
		/* A leader applies after its groups' acknowledgements went out
		 * (store__group_done); a follower, or a node loading its log at
		 * start (no node yet), has no groups. Left to the next snapshot,
		 * tens of MB were applied at once, stalling the loop (and the
		 * follower's acknowledgements) for over 100 ms. */
		store__pend_added(st);
	}
}

/* ---- the log ---- */

/* A batch is one raft entry; its group waits for the commit. Not the
 * leader: the group fails (its clients are about to be disconnected, and
 * nothing was acknowledged). */
static void raft_append(struct store *st, struct group *g)
{
	int rc = cluster_propose(st->cl.node, g->batch.p, g->batch.len, g);
	if (rc) {
		bool led = rc == CLUSTER_ENOTLEADER || rc == CLUSTER_ESHUTDOWN;
		if (!led)
			log_warn("store %s: proposing a batch of %u records: %s", st->path, g->records,
				 cluster_strerror(rc));
		g->err = led ? -FM_ENOTLEADER : -FM_EIO;
		buf_free(&g->batch);
		diverged(st);
		return;
	}
	g->proposed = true;
	st->unsynced_bytes += g->batch.len;
}

/* Groups go back in order, each once its entry is committed or failed. */
static enum store_settled raft_settle(struct store *st)
{
	while (st->groups && (!st->groups->proposed || st->groups->committed)) {
		struct group *g = st->groups;
		st->groups = g->next;
		if (!st->groups)
			st->groups_tail = &st->groups;
		store__group_done(st, g);
	}
	return STORE_SETTLE_WAITING;
}

const struct store_log store__raft_log = { raft_append, raft_settle };

/* The entry is committed and applied here (err 0), or its fate is lost. */
static void on_done(void *owner, void *token, uint64_t index, int err)
{
	struct store *st = owner;
	struct group *g = token;
	st->unsynced_bytes -= g->batch.len;
	g->committed = true;
	g->index = err ? 0 : index;
	if (err) {
		/* Not committed, or not known to be: not acknowledged (the
		 * broker disconnects the clients, who send again to the next
		 * leader). An entry whose fate is unknown may still commit under
		 * the next leader, whose broker then has it. */
		g->err = -FM_ENOTLEADER;
		buf_free(&g->batch);
		diverged(st);
	}
	store__process(st);
}

/* Log bytes between snapshots, at least (on_snapshot). */
#define SNAPSHOT_MIN_BYTES (64u << 20)

/* Entries after which a snapshot is taken even below SNAPSHOT_MIN_BYTES:
 * a node that restarts reads and applies its log since the last one
 * (measured, sanitizer build: with 68,000 entries of small batches behind,
 * a restart took 29 s). */
#define SNAPSHOT_MAX_ENTRIES 8192

/* How old the database's size may be when a snapshot is decided: libraft
 * asks after every event once its own threshold is passed (thousands of
 * times a second under load), and reading the size is a system call. */
#define DISK_BYTES_PERIOD_MS 100

/* The nodes apply the same entries, so with equal thresholds they all
 * copied their databases at once, and two followers busy copying (570 ms
 * each for 119 MB, measured) left the leader without a majority for longer
 * than an election timeout: it stepped down. The copies have threads of
 * their own now, but three at once still compete for the disk and the
 * cores. Each node's thresholds are scaled by (4 - node id % 3) / 4
 * (store__snapshot_threshold), down so that a restarting node replays no
 * longer a log, so that no two of three copy together under a steady
 * flow. */
uint64_t store__snapshot_threshold(uint64_t threshold, uint64_t node_id)
{
	return threshold / 4 * (4 - node_id % 3);
}

static uint64_t staggered(const struct store *st, uint64_t threshold)
{
	return store__snapshot_threshold(threshold, st->cl.node_id);
}

/* ---- snapshots, copied off the loop ---- */

/* After a copy that failed, none starts again before (ms). */
#define SNAP_RETRY_MS 1000

static void snap_release(struct store *st)
{
	sqlite3_free(st->cl.snap.image);
	st->cl.snap.image = NULL;
	buf_free(&st->cl.snap.trailer);
}

static void *snap_main(void *arg)
{
	struct store *st = arg;
	pthread_setname_np(pthread_self(), "fm-snapshot");
	sqlite3_int64 size = 0;
	void *image = sqlite3_serialize(st->cl.snap.db, "main", &size, 0);
	st->cl.snap.rc = image ? 0 : -FM_EIO;
	st->cl.snap.image = image;
	st->cl.snap.size = size;
	sqlite3_exec(st->cl.snap.db, "COMMIT", NULL, NULL, NULL);
	atomic_store(&st->cl.snap.done, true);
	return NULL;
}

/* Starts copying the database as it is now (every committed entry applied,
 * the writer's lock held): a connection of its own opens a read
 * transaction here, on the loop, so that the copy is the state at
 * st->applied whatever the writer applies meanwhile (WAL), and a thread
 * copies it. */
static int snap_start(struct store *st)
{
	snap_release(st);
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	uint64_t at = 0;
	int rc = sqlite3_open_v2(st->path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'applied_index'", -1, &q, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(q);
		if (rc == SQLITE_ROW)
			at = (uint64_t)sqlite3_column_int64(q, 0);
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(q);
	if (rc == SQLITE_OK && at != st->applied) {
		log_err("store %s: a snapshot's read of the database is at index %llu, not %llu", st->path,
			(unsigned long long)at, (unsigned long long)st->applied);
		rc = SQLITE_ERROR;
	}
	st->cl.snap.db = db;
	st->cl.snap.index = at;
	st->cl.snap.rc = 0;
	st->cl.snap.lost = false;
	atomic_store(&st->cl.snap.done, false);
	if (rc == SQLITE_OK && pthread_create(&st->cl.snap.thread, NULL, snap_main, st) != 0)
		rc = SQLITE_ERROR;
	if (rc != SQLITE_OK) {
		sqlite3_close(db); /* ends its read transaction */
		st->cl.snap.db = NULL;
		return -FM_EIO;
	}
	st->cl.snap.running = true;
	return 0;
}

/* The copy is over: its thread joined, its connection closed. */
static int snap_join(struct store *st)
{
	pthread_join(st->cl.snap.thread, NULL);
	st->cl.snap.running = false;
	sqlite3_close(st->cl.snap.db);
	st->cl.snap.db = NULL;
	return st->cl.snap.rc ? st->cl.snap.rc : st->cl.snap.lost ? -FM_ENOMEM : 0;
}

void store__snap_close(struct store *st)
{
	if (st->cl.snap.running)
		snap_join(st);
	snap_release(st);
}

/* A snapshot is the database's image at some index Y (taken by a thread
 * while the loop goes on) and the entries applied after Y (snapshot.h),
 * handed to raft at the index it asks at, once the image is ready:
 * libraft 0.22 takes snapshots on the loop, where copying a database of
 * hundreds of MB (570 ms for 119 MB measured) made the node miss its
 * election timeout. Taken only once the log has grown by half the database
 * since the last one, so that copying costs at most twice what was written
 * however large the state (a historian offline with a million queued
 * messages), and by SNAPSHOT_MIN_BYTES or SNAPSHOT_MAX_ENTRIES at least, so
 * that a small state is not copied every few milliseconds under a steady
 * flow (measured: a snapshot every 1,024 entries put the PUBACK p99 at
 * 10,000 msg/s at 33 ms, 6 ms without). The log in memory stays bounded by
 * about as much. */
static int on_snapshot(void *owner, uint64_t index, struct cluster_chunk *chunks)
{
	struct store *st = owner;
	uint64_t now = uv_now(&st->loop);
	if (st->cl.snap.running) {
		if (!atomic_load(&st->cl.snap.done))
			return CLUSTER_EBUSY;
		int rc = snap_join(st);
		if (rc) {
			log_warn("store %s: no snapshot at index %llu: copying the database: %s (tried again)", st->path,
				 (unsigned long long)index, fm_strerror(rc));
			snap_release(st);
			st->cl.snap.retry_at = now + SNAP_RETRY_MS;
			return CLUSTER_EBUSY;
		}
		store__snap_head(st->cl.snap.head, st->cl.snap.index, (uint64_t)st->cl.snap.size);
		chunks[0] = (struct cluster_chunk){ st->cl.snap.head, STORE_SNAP_HEAD };
		chunks[1] = (struct cluster_chunk){ st->cl.snap.image, (size_t)st->cl.snap.size };
		chunks[2] = (struct cluster_chunk){ st->cl.snap.trailer.p, st->cl.snap.trailer.len };
		st->cl.since_snapshot = 0;
		st->cl.entries_since_snapshot = 0;
		return st->cl.snap.trailer.len ? 3 : 2;
	}
	if (st->cl.since_snapshot < staggered(st, st->cl.snapshot_min) &&
	    st->cl.entries_since_snapshot < staggered(st, SNAPSHOT_MAX_ENTRIES))
		return CLUSTER_EBUSY;
	if (!st->cl.disk_bytes_at || now - st->cl.disk_bytes_at >= DISK_BYTES_PERIOD_MS) {
		/* The database file alone: its WAL keeps the size it once
		 * reached (4 MB under a steady flow, against a 64 KB database in
		 * the fail-over cycles), and counting it put 36,000 small entries
		 * between snapshots, each replayed by a node that restarts. */
		struct stat sb;
		st->cl.disk_bytes = stat(st->path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
		st->cl.disk_bytes_at = now ? now : 1;
	}
	if (st->cl.since_snapshot < staggered(st, st->cl.disk_bytes / 2) || now < st->cl.snap.retry_at)
		return CLUSTER_EBUSY;
	if (!store__db_take(st, false))
		return CLUSTER_EBUSY; /* the broker is reading it */
	int rc = store__apply_pending(st);
	if (!rc)
		rc = snap_start(st);
	store__db_give(st);
	if (rc) {
		log_warn("store %s: no snapshot at index %llu: %s (tried again)", st->path, (unsigned long long)index,
			 fm_strerror(rc));
		st->cl.snap.retry_at = now + SNAP_RETRY_MS;
	}
	return CLUSTER_EBUSY;
}

/* Replaces the database with a snapshot's image (the backup API, from a
 * copy deserialized in memory). An SQLite result code. */
static int install_image(struct store *st, const uint8_t *image, size_t len)
{
	sqlite3 *mem = NULL;
	unsigned char *copy = sqlite3_malloc64(len ? len : 1);
	int rc = copy ? sqlite3_open(":memory:", &mem) : SQLITE_NOMEM;
	if (rc == SQLITE_OK) {
		memcpy(copy, image, len);
		/* The image says WAL (bytes 18-19 of the header), which a database
		 * in memory cannot open: read it as a rollback-journal one. */
		if (len >= 100 && copy[18] == 2 && copy[19] == 2)
			copy[18] = copy[19] = 1;
		rc = sqlite3_deserialize(mem, "main", copy, (sqlite3_int64)len, (sqlite3_int64)len,
					 SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_READONLY);
		copy = NULL;
	}
	sqlite3_free(copy);
	if (rc == SQLITE_OK) {
		sqlite3_backup *bk = sqlite3_backup_init(st->db, "main", mem, "main");
		rc = bk ? sqlite3_backup_step(bk, -1) : sqlite3_errcode(st->db);
		if (bk)
			rc = sqlite3_backup_finish(bk) == SQLITE_OK && rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_close(mem);
	return rc;
}

/* The entries a snapshot carries after its image, applied as the log's
 * are. 0 or a negative fm_err. */
static int apply_trailer(struct store *st, const struct store_snap_view *v)
{
	const uint8_t *p = v->trailer;
	size_t left = v->trailer_len;
	uint64_t last = v->image_index;
	struct store_batch b;
	int more;
	while ((more = store__snap_trailer_next(&p, &left, &last, &b.index, &b.p, &b.len)) > 0) {
		int rc = store_apply_batches(st, &b, 1);
		if (rc)
			return rc;
	}
	return more;
}

/* A snapshot replaces the database, unless the database has it already (a
 * restart loads the last snapshot, older than what the database applied). */
static int on_restore(void *owner, uint64_t index, const void *bytes, size_t len)
{
	struct store *st = owner;
	if (st->cl.snap.running) {
		snap_join(st); /* a copy of what is about to be replaced */
		snap_release(st);
	}
	if (index <= st->applied)
		return 0;
	struct store_snap_view v;
	if (store__snap_decode(bytes, len, &v)) {
		log_err("store %s: the snapshot at index %llu (%zu bytes) is not one of ours", st->path,
			(unsigned long long)index, len);
		return -FM_EIO;
	}
	store__db_take(st, true);
	int rc = install_image(st, v.image, v.image_len);
	const char *what = sqlite3_errstr(rc);
	if (rc == SQLITE_OK) {
		for (size_t i = 0; i < st->n_pend; i++)
			buf_free(&st->pend[i].bytes);
		st->n_pend = 0;
		st->pend_bytes = 0;
		rc = store__reload(st) ? SQLITE_ERROR : SQLITE_OK;
	}
	if (rc == SQLITE_OK && v.image_index && st->applied != v.image_index) {
		what = "its image is not at the index it names";
		rc = SQLITE_CORRUPT;
	}
	if (rc == SQLITE_OK && apply_trailer(st, &v)) {
		what = "applying the entries after its image";
		rc = SQLITE_ERROR;
	}
	store__db_give(st);
	if (rc != SQLITE_OK) {
		log_err("store %s: installing the snapshot at index %llu: %s", st->path, (unsigned long long)index,
			what);
		return -FM_EIO;
	}
	log_notice("store %s: installed the snapshot at index %llu (%zu bytes, image at %llu)", st->path,
		   (unsigned long long)index, len, (unsigned long long)v.image_index);
	return 0;
}

int store__cluster_begin(struct store *st, const struct cluster_conf *conf, char *err, size_t errlen)
{
	struct cluster_callbacks cb = {
		.owner = st,
		.apply = on_apply,
		.done = on_done,
		.snapshot = on_snapshot,
		.restore = on_restore,
		.role_changed = on_role,
	};
	/* A test aid (README, "Testing and debugging"): snapshots after fewer
	 * bytes, so that a test sees a follower install one. */
	const char *min = getenv("FERROMQ_CLUSTER_SNAPSHOT_BYTES");
	st->cl.snapshot_min = min && *min ? strtoull(min, NULL, 10) : SNAPSHOT_MIN_BYTES;
	st->cl.node_id = conf->node_id;
	int rc = cluster_start(&st->loop, conf, &cb, &st->cl.node, err, errlen);
	if (rc)
		st->cl.node = NULL;
	else
		st->log = &store__raft_log;
	return rc;
}

/* ---- the database, lent to the broker's recovery ---- */

bool store__db_take(struct store *st, bool wait)
{
	if (!st->cl.node)
		return true;
	if (wait) {
		pthread_mutex_lock(&st->cl.db_lock);
		return true;
	}
	return pthread_mutex_trylock(&st->cl.db_lock) == 0;
}

void store__db_give(struct store *st)
{
	if (st->cl.node)
		pthread_mutex_unlock(&st->cl.db_lock);
}

int store_attach(struct store *st, struct broker *b, char *err, size_t errlen)
{
	/* The writer applies nothing meanwhile (its batches wait in memory). */
	pthread_mutex_lock(&st->cl.db_lock);
	int rc = store_recover(st, b, err, errlen);
	pthread_mutex_unlock(&st->cl.db_lock);
	if (rc)
		return rc;
	broker_set_store(b, &st->port);
	atomic_store(&st->attached, true);
	return 0;
}

void store_detach(struct store *st)
{
	atomic_store(&st->attached, false);
}
