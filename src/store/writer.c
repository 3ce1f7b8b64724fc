/* The store's writer: one thread running a libuv loop (the loop a
 * replicated log will run on too). Workers submit transactions; the writer
 * takes whatever arrived as groups, appends each group's records to the
 * journal as one batch, and syncs the journal; while more is waiting, the
 * sync runs in libuv's thread pool and the writer goes on appending the
 * next groups: several batches are in flight, and one sync covers every
 * batch appended before it started. A group is
 * handed back (acknowledgements go out) once its batch is synced, in the
 * order the groups were taken. The database gets the synced batches later,
 * applied together (apply.c), and serves the groups' reads. */
#include "store_internal.h"
#include "record.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/log.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

/* Transactions per group, and their messages' bytes: bound the time one
 * group holds acknowledgements and the size of one batch. */
#define GROUP_MAX_TXNS 4096
#define GROUP_MAX_BYTES (8u * 1024 * 1024)
/* Batches wait until this many bytes or this long, then are applied to the
 * database together: a queue entry delivered meanwhile never reaches it. */
#define APPLY_BYTES (4u * 1024 * 1024)
#define APPLY_MS 500
/* How soon an apply that failed is tried again. */
#define APPLY_RETRY_MS 1000
/* How soon records nobody waits for are written again after they failed. */
#define RETRY_MS 100
/* Past this size the active journal file hands over to the other one (once
 * the database has every batch of that one), written over while it is at
 * most JOURNAL_KEEP_BYTES (cut otherwise). */
#define JOURNAL_RESET_BYTES (1024 * 1024)
#define JOURNAL_KEEP_BYTES (64u * 1024 * 1024)
/* Free space that ends a disk-full episode. */
#define ROOM_AGAIN (1024 * 1024)
/* Free space kept beyond what applying the journal needs. */
#define ROOM_RESERVE (256 * 1024)
/* Below this much free space batches are applied as soon as they are
 * synced, and the journal starts over after each apply: near a full disk a
 * message must not take its room three times (journal, WAL, database). */
#define TIGHT_FREE (64u * 1024 * 1024)
/* WAL pages above which the writer checkpoints itself (64 MiB of 4 KiB pages). */
#define WAL_MAX_PAGES 16384
/* How long a shutdown waits for failing writes nobody waits for. */
#define SHUTDOWN_RETRY_MS 5000


/* ---- reads ---- */

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

/* ---- failure episodes ---- */

/* Near a full disk small groups keep fitting between failures (pages freed
 * by deletes, WAL space kept after a rollback): the episode, and its log
 * line, ends only when the filesystem has room again, or, where that cannot
 * be read, with a group as large as the one that failed. */
static bool episode_over(const struct store *st, uint64_t records)
{
	struct statvfs sv;
	if (statvfs(st->dir, &sv) == 0)
		return (uint64_t)sv.f_bavail * sv.f_frsize >= ROOM_AGAIN;
	return records >= st->failed_ops;
}

/* Starts a failure episode (logged once): while writes fail, the broker
 * refuses new QoS 1/2 messages. */
static void failing_starts(struct store *st, const char *what, int err, uint64_t records)
{
	if (!st->failing)
		log_err("store %s: commit failed (%s): %s; new QoS 1/2 messages are refused until it works again",
			st->path, what,
			err == -FM_ENOMEM ? "out of memory"
			: st->apply_rc ? sqlite3_errstr(st->apply_rc)
			: err == -FM_ELIMIT ? "the disk is full" : "an I/O error");
	st->failing = true;
	if (atomic_load(&st->attached))
		st->port.failing(st->port.owner, true);
	st->failed_ops = records;
	atomic_fetch_add(&st->failures, 1);
}

static void failing_ends(struct store *st, uint64_t records)
{
	if (!st->failing || st->apply_failing || !episode_over(st, records))
		return;
	log_notice("store %s: writing again", st->path);
	st->failing = false;
	if (atomic_load(&st->attached))
		st->port.failing(st->port.owner, false);
}

/* ---- batches waiting to be applied ---- */

int store__pend_add(struct store *st, uint64_t index, struct buf *bytes)
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
	if (!st->n_pend)
		st->pend_since_ms = clock_mono_ms();
	st->pend[st->n_pend].bytes = *bytes;
	st->pend[st->n_pend].index = index;
	st->n_pend++;
	st->pend_bytes += bytes->len;
	memset(bytes, 0, sizeof *bytes);
	return 0;
}

/* Whether applying what waits is worth a try now (not while one that
 * failed is waiting to be tried again). */
static bool apply_due(const struct store *st)
{
	return st->n_pend && (!st->apply_failing || clock_mono_ms() >= st->apply_retry_ms);
}

/* Hands the active journal file over to the other one when it has grown
 * and the database has every batch of the other one (none of them waits
 * for its sync either): new batches are written over the other's. */
static void journal_turn(struct store *st)
{
	int other = !st->active;
	struct journal *j = &st->journal[st->active], *o = &st->journal[other];
	if (st->journal_keep || (j->end < JOURNAL_RESET_BYTES && !(st->tight && j->end)) ||
	    o->last > st->applied || st->unsynced_in[other])
		return;
	if (journal_reset(o, st->tight ? JOURNAL_RESET_BYTES : JOURNAL_KEEP_BYTES)) {
		log_warn("store %s: cannot truncate the journal %s: %s (tried again later)", st->path, o->path,
			 strerror(errno));
		return;
	}
	st->active = other;
}

int store__apply_pending(struct store *st)
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
		st->apply_err = err;
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
	journal_turn(st);
	return 0;
}

/* The checkpoint thread's passive checkpoints never catch up with a writer
 * that never pauses (a flood of QoS 1 messages for offline sessions or a
 * bridge spool): the WAL would grow for as long as the flood lasts. Past
 * WAL_MAX_PAGES the writer checkpoints everything itself, truncating the
 * WAL: the flood waits for that, the disk stays bounded. */
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

static void on_apply(uv_timer_t *h);

/* Wakes the loop when what waits is due to be applied. */
static void arm_apply(struct store *st)
{
	uint64_t due = st->apply_failing ? st->apply_retry_ms : st->pend_since_ms + APPLY_MS;
	uint64_t now = clock_mono_ms();
	uv_timer_start(&st->apply_timer, on_apply, due > now ? due - now : 0, 0);
}

/* Applies what waits, if it is time (or `now`: reads need it). */
static void apply_if_due(struct store *st, bool now)
{
	if (!apply_due(st))
		return;
	if (!now && st->pend_bytes < APPLY_BYTES && clock_mono_ms() - st->pend_since_ms < APPLY_MS)
		return;
	if (!store__db_take(st, false))
		return; /* a cluster's broker recovers from it: the timer comes back */
	if (store__apply_pending(st))
		failing_starts(st, "applying the journal", -FM_EIO, 0);
	bound_wal(st);
	store__db_give(st);
}

/* ---- appending ---- */

/* Admission before the append: whether the filesystem has room for a batch
 * of `bytes` in the journal and, later, in the database, with everything
 * journalled before it (the database takes up to about twice what it
 * applies, in its WAL and then its file). A batch the journal took must
 * never be one the database cannot. */
static bool room_for(struct store *st, size_t bytes)
{
	struct statvfs sv;
	if (statvfs(st->dir, &sv) != 0)
		return true; /* unknown: the writes will tell */
	uint64_t free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
	st->tight = free_bytes < TIGHT_FREE;
	uint64_t need = (uint64_t)st->pend_bytes + st->unsynced_bytes + bytes;
	return free_bytes >= 2 * need + ROOM_RESERVE;
}

/* A debugging and test aid, off unless FERROMQ_STORE_BATCH_DUMP names a
 * file (README, "Durability"): every batch journalled is appended to it as
 * u64 index, u32 length (little-endian), then the batch's bytes, so that a
 * run can be applied again to an empty store and the two databases
 * compared (tests/tools/store_replay.c). A write that fails ends the dump,
 * logged (fm-store-replay reports the batch it cut short). */
static void dump_batch(struct store *st, const struct group *g)
{
	uint8_t head[12];
	for (int i = 0; i < 8; i++)
		head[i] = (uint8_t)(g->index >> (8 * i));
	for (int i = 0; i < 4; i++)
		head[8 + i] = (uint8_t)(g->batch.len >> (8 * i));
	struct iovec iov[2] = { { head, sizeof head }, { g->batch.p, g->batch.len } };
	if (writev(st->dump_fd, iov, 2) == (ssize_t)(sizeof head + g->batch.len))
		return;
	log_err("store %s: FERROMQ_STORE_BATCH_DUMP: %s; the dump stops at batch %llu", st->path, strerror(errno),
		(unsigned long long)g->index);
	close(st->dump_fd);
	st->dump_fd = -1;
}

/* The local journal's append: the group's batch under the next index
 * (not synced yet). Sets g->err. */
static void journal_append_group(struct store *st, struct group *g)
{
	g->file = st->active;
	g->journal_at = st->journal[g->file].end;
	g->err = journal_append(&st->journal[g->file], st->next_index, g->batch.p, (uint32_t)g->batch.len);
	if (g->err) {
		st->apply_rc = 0;
		failing_starts(st, "journal write", g->err, g->records);
		buf_free(&g->batch);
		return;
	}
	g->index = st->next_index++;
	st->unsynced_bytes += g->batch.len;
	st->unsynced_in[g->file]++;
	if (st->dump_fd >= 0)
		dump_batch(st, g);
}

/* Encodes a group's records as one batch, admits it (room on the disk for
 * the database to take it too) and appends it to the log. Sets g->err. */
static void log_group(struct store *st, struct group *g)
{
	g->err = store__encode_group(g->list, &g->batch);
	g->records = rec_batch_count(&g->batch);
	if (!g->err && !g->records) {
		buf_free(&g->batch);
		return; /* nothing to write (reads only, or cancelled pairs) */
	}
	if (!g->err && (st->apply_failing || !room_for(st, g->batch.len))) {
		/* Applying what waits frees its share of the need, or fails. */
		if ((apply_due(st) ? store__apply_pending(st) : st->apply_failing) || !room_for(st, g->batch.len))
			g->err = st->apply_failing && st->apply_err != -FM_ELIMIT ? -FM_EIO : -FM_ELIMIT;
	}
	if (g->err) {
		st->apply_rc = 0;
		failing_starts(st, "journal write", g->err, g->records);
		buf_free(&g->batch);
		return;
	}
	st->log->append(st, g);
}

/* ---- handing groups back ---- */

/* Whether records nobody waits for (deliveries, expiry) stop being retried
 * after a failed group: the broker is stopping and they kept failing for
 * SHUTDOWN_RETRY_MS (a full disk would hold the shutdown for good). */
static bool gives_up(struct store *st)
{
	if (st->stop)
		return true;
	if (!atomic_load(&st->attached) || !st->port.stopping(st->port.owner))
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

/* A journalled group is synced, or its sync failed: it no longer counts
 * among the batches waiting for one. */
static void sync_settled(struct store *st, const struct group *g)
{
	st->unsynced_bytes -= g->batch.len;
	st->unsynced_in[g->file]--;
}

/* A group is done: its batch (synced) waits to be applied, its
 * transactions go back to their workers; records nobody waits for that
 * failed are kept to be written again. */
void store__group_done(struct store *st, struct group *g)
{
	if (!g->err && g->index && g->proposed) {
		failing_ends(st, g->records); /* applied already, by raft's apply */
	} else if (!g->err && g->index) {
		sync_settled(st, g);
		if (store__pend_add(st, g->index, &g->batch)) {
			/* No room to keep it waiting: into the database now. */
			struct store_batch b = { g->batch.p, g->batch.len, g->index };
			if (store__apply_pending(st) || store_apply_batches(st, &b, 1))
				log_err("store %s: batch %llu could not be applied now; it is applied from the journal "
					"at the next start", st->path, (unsigned long long)g->index);
			st->journal_keep = true;
		}
		failing_ends(st, g->records);
	}
	/* A cluster node that lost leadership writes nothing more: what it
	 * holds is the next leader's to redo. */
	bool give_up = g->err && (gives_up(st) || (st->cl.node && !cluster_is_leader(st->cl.node)));
	for (struct store_txn *t = g->list, *next; t; t = next) {
		next = t->next;
		t->next = NULL;
		if (g->err && !t->n_cbs && !give_up) {
			/* Records nobody waits for (deliveries, expiry) are retried. */
			*st->retry_tail = t;
			st->retry_tail = &t->next;
			continue;
		}
		t->err = g->err;
		st->port.complete(st->port.owner, t);
	}
	/* The acknowledgements go out before any time is spent applying. */
	apply_if_due(st, st->tight);
	buf_free(&g->batch);
	free(g);
}

/* Hands back the groups up to and including `last` (all when NULL), in
 * order. */
static void groups_done(struct store *st, struct group *last)
{
	while (st->groups) {
		struct group *g = st->groups;
		st->groups = g->next;
		if (!st->groups)
			st->groups_tail = &st->groups;
		store__group_done(st, g);
		if (g == last)
			break;
	}
}

/* ---- the loop ---- */


static void on_retry(uv_timer_t *h);
static void cluster_stopped(void *arg);

/* The sync covering every group up to st->sync_last is over (res: 0 or a
 * negative libuv error): those groups are handed back. */
static void synced(struct store *st, ssize_t res)
{
	st->syncing = false;
	if (res < 0) {
		/* Unknown what reached the disk: every group journalled so far
		 * fails, and the next append writes over their entries (their
		 * indexes are not used again, so what survived of them ends the
		 * journal should it survive a crash: none was acknowledged). */
		int err = res == UV_ENOSPC ? -FM_ELIMIT : -FM_EIO;
		bool rewound[2] = { false, false };
		for (struct group *g = st->groups; g; g = g->next) {
			if (g->err || !g->index)
				continue;
			if (!rewound[g->file]) {
				st->journal[g->file].end = g->journal_at;
				rewound[g->file] = true;
			}
			sync_settled(st, g);
			g->err = err;
			g->index = 0;
		}
		st->apply_rc = 0;
		failing_starts(st, "journal sync", err, 0);
		groups_done(st, NULL);
	} else {
		groups_done(st, st->sync_last);
	}
}

static void on_synced(uv_fs_t *req)
{
	struct store *st = req->data;
	ssize_t res = req->result;
	uv_fs_req_cleanup(req);
	synced(st, res);
	store__process(st);
}

/* Syncs the journal file of the first group waiting for a sync, covering
 * every group up to the first one journalled in the other file: in the
 * pool (true: on_synced goes on from there), or here (false: done). */
static bool start_sync(struct store *st)
{
	int file = -1;
	st->sync_last = NULL;
	for (struct group *g = st->groups; g; g = g->next) {
		if (!g->err && g->index) {
			if (file >= 0 && g->file != file)
				break;
			file = g->file;
		}
		st->sync_last = g;
	}
	struct journal *j = &st->journal[file];
	st->sync_req.data = st;
	/* In the pool only while more is waiting to be journalled meanwhile: a
	 * sync handed to another thread costs two wake-ups, which at a steady
	 * rate of small groups cost more than it overlaps. */
	pthread_mutex_lock(&st->lock);
	bool more = st->head != NULL;
	pthread_mutex_unlock(&st->lock);
	if (more && uv_fs_fdatasync(&st->loop, &st->sync_req, j->fd, on_synced) == 0) {
		st->syncing = true;
		return true;
	}
	int rc = journal_sync(j);
	synced(st, rc ? (rc == -FM_ELIMIT ? UV_ENOSPC : UV_EIO) : 0);
	return false;
}

/* The local journal's settle: with durability full, a sync covers the
 * groups journalled (here, or in the pool while more is waiting); then they
 * are handed back. */
static enum store_settled journal_settle(struct store *st)
{
	if (st->durability == DURABILITY_FULL && st->unsynced_in[0] + st->unsynced_in[1])
		return start_sync(st) ? STORE_SETTLE_LATER : STORE_SETTLE_AGAIN;
	groups_done(st, NULL);
	return STORE_SETTLE_AGAIN;
}

static const struct store_log journal_log = { journal_append_group, journal_settle };

/* Serves the reads that arrived (store__read): once the database has
 * every batch settled before them (applying what waits), so a body whose
 * entry gave it up is there to read. A write that failed cannot keep them
 * from running: they never travel with the records. */
static void serve_reads(struct store *st)
{
	pthread_mutex_lock(&st->lock);
	struct store_txn *t = st->reads;
	st->reads = NULL;
	st->reads_tail = &st->reads;
	pthread_mutex_unlock(&st->lock);
	if (!t)
		return;
	apply_if_due(st, true);
	store__db_take(st, true);
	for (struct store_txn *next; t; t = next) {
		next = t->next;
		t->next = NULL;
		for (uint32_t i = 0; i < t->n_loads; i++)
			read_load(st, t->loads[i], st->n_pend == 0);
		t->err = 0;
		st->port.complete(st->port.owner, t);
	}
	store__db_give(st);
}

/* Takes the next group: records to write again first, then what was
 * submitted, bounded in transactions and bytes. NULL when there is none. */
static struct group *take_group(struct store *st)
{
	pthread_mutex_lock(&st->lock);
	bool stopping = st->stop, any = st->head || (st->retry && (st->retry_due || stopping));
	pthread_mutex_unlock(&st->lock);
	if (!any)
		return NULL;
	struct group *g = calloc(1, sizeof *g);
	if (!g)
		return NULL; /* tried again at the next wake-up or retry */
	struct store_txn **tail = &g->list;
	unsigned n = 0;
	size_t bytes = 0;
	if (st->retry && (st->retry_due || stopping)) {
		g->list = st->retry;
		for (; *tail; tail = &(*tail)->next)
			n++;
		st->retry = NULL;
		st->retry_tail = &st->retry;
		st->retry_due = false;
	}
	pthread_mutex_lock(&st->lock);
	while (st->head && n < GROUP_MAX_TXNS && bytes < GROUP_MAX_BYTES) {
		struct store_txn *t = st->head;
		st->head = t->next;
		t->next = NULL;
		*tail = t;
		tail = &t->next;
		n++;
		bytes += 64 * (size_t)t->n_ops;
		for (uint32_t i = 0; i < t->n_ops; i++)
			if (t->ops[i].msg)
				bytes += t->ops[i].msg->topic_len + t->ops[i].msg->props_len + t->ops[i].msg->payload_len;
	}
	if (!st->head)
		st->tail = NULL;
	pthread_mutex_unlock(&st->lock);
	if (!g->list) {
		free(g);
		return NULL;
	}
	return g;
}

static void close_handle(uv_handle_t *h)
{
	(void)h;
}

/* Closes the loop's handles: the loop ends once they are closed. */
static void close_handles(struct store *st)
{
	uv_close((uv_handle_t *)&st->wake, close_handle);
	uv_close((uv_handle_t *)&st->apply_timer, close_handle);
	uv_close((uv_handle_t *)&st->retry_timer, close_handle);
}

/* Takes, journals and (through a sync) hands back everything that
 * arrived; stops the loop once stopping and nothing is left. */
void store__process(struct store *st)
{
	if (uv_is_closing((uv_handle_t *)&st->wake))
		return;
	for (;;) {
		struct group *g;
		while ((g = take_group(st))) {
			log_group(st, g);
			*st->groups_tail = g;
			st->groups_tail = &g->next;
		}
		if (!st->groups || st->syncing)
			break;
		enum store_settled how = st->log->settle(st);
		if (how == STORE_SETTLE_LATER)
			return; /* its callback goes on */
		if (how == STORE_SETTLE_WAITING)
			break;
	}
	serve_reads(st);
	if (st->retry && !st->retry_due && !uv_is_active((uv_handle_t *)&st->retry_timer))
		uv_timer_start(&st->retry_timer, on_retry, RETRY_MS, 0);
	pthread_mutex_lock(&st->lock);
	bool done = st->stop && !st->head && !st->reads;
	pthread_mutex_unlock(&st->lock);
	if (done && !st->syncing && !st->groups && !st->retry) {
		if (st->cl.node) {
			/* Raft first: what it committed is applied below. */
			if (!st->cl.stopped) {
				st->cl.stopped = true;
				cluster_stop(st->cl.node, cluster_stopped, st);
			}
			return;
		}
		/* Stopping: whatever is journalled goes into the database now (if
		 * that fails, it stays in the journal for the next start). */
		store__apply_pending(st);
		close_handles(st);
		return;
	}
	/* Batches wait to be applied: wake for them. */
	if (st->n_pend)
		arm_apply(st);
}

void store__pend_added(struct store *st)
{
	apply_if_due(st, false);
	if (st->n_pend && !uv_is_active((uv_handle_t *)&st->apply_timer))
		arm_apply(st);
}

static void cluster_stopped(void *arg)
{
	struct store *st = arg;
	st->cl.node = NULL;
	store__process(st);
}

static void on_wake(uv_async_t *h)
{
	store__process(h->data);
}

static void on_retry(uv_timer_t *h)
{
	struct store *st = h->data;
	st->retry_due = true;
	store__process(st);
}

static void on_apply(uv_timer_t *h)
{
	struct store *st = h->data;
	apply_if_due(st, false);
	store__process(st);
}

static void *writer_main(void *arg)
{
	struct store *st = arg;
	pthread_setname_np(pthread_self(), "fm-store");
	uv_run(&st->loop, UV_RUN_DEFAULT);
	return NULL;
}

int store__writer_start(struct store *st, const struct cluster_conf *conf, char *err, size_t errlen)
{
	st->groups_tail = &st->groups;
	st->retry_tail = &st->retry;
	st->reads_tail = &st->reads;
	if (uv_loop_init(&st->loop))
		return -FM_EIO;
	st->loop_ready = true;
	uv_async_init(&st->loop, &st->wake, on_wake);
	uv_timer_init(&st->loop, &st->apply_timer);
	uv_timer_init(&st->loop, &st->retry_timer);
	st->wake.data = st->apply_timer.data = st->retry_timer.data = st;
	st->log = &journal_log;
	if (conf && store__cluster_begin(st, conf, err, errlen))
		return -FM_EINVAL;
	if (pthread_create(&st->thread, NULL, writer_main, st))
		return -FM_EIO;
	st->running = true;
	return 0;
}

void store__writer_stop(struct store *st)
{
	if (st->running) {
		pthread_mutex_lock(&st->lock);
		st->stop = true;
		pthread_mutex_unlock(&st->lock);
		uv_async_send(&st->wake);
		pthread_join(st->thread, NULL);
	}
	if (st->loop_ready) {
		/* Closes what a failed start left open. */
		if (!st->running)
			close_handles(st);
		uv_run(&st->loop, UV_RUN_DEFAULT);
		uv_loop_close(&st->loop);
		st->loop_ready = false;
	}
}

void store__read(void *ctx, struct store_txn *t)
{
	struct store *st = ctx;
	t->next = NULL;
	pthread_mutex_lock(&st->lock);
	*st->reads_tail = t;
	st->reads_tail = &t->next;
	pthread_mutex_unlock(&st->lock);
	uv_async_send(&st->wake);
}

void store__submit(void *ctx, struct store_txn *t)
{
	struct store *st = ctx;
	t->next = NULL;
	pthread_mutex_lock(&st->lock);
	if (st->tail)
		st->tail->next = t;
	else
		st->head = t;
	st->tail = t;
	pthread_mutex_unlock(&st->lock);
	uv_async_send(&st->wake);
}
