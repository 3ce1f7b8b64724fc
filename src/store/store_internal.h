/* Internals shared by the store's files. */
#ifndef FM_STORE_INTERNAL_H
#define FM_STORE_INTERNAL_H
#include "store.h"
#include "journal.h"
#include "refmap.h"
#include "tombs.h"
#include "snapshot.h"
#include "../cluster/cluster.h"
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <uv.h>

enum stmt_id {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_MSG_INS, S_MSG_DEL, S_MSG_GET, S_MSG_DROP,
	S_Q_INS, S_Q_DEL, S_Q_STATE, S_Q_OF_SESSION, S_Q_DEL_SESSION,
	S_RX_INS, S_RX_DEL, S_RX_DEL_SESSION,
	S_SESS_WILL, S_SESS_PUT, S_SESS_DEL,
	S_SUB_PUT, S_SUB_DEL, S_SUB_DEL_SESSION,
	S_RET_GET, S_RET_PUT,
	S_SPOOL_INS, S_SPOOL_DEL,
	S_TOMB_PUT, S_TOMB_DEL, S_TOMB_AGE, S_INDEX_PUT,
	S__COUNT
};

struct store {
	sqlite3 *db;
	char path[600];
	char dir[512];
	sqlite3_stmt *st[S__COUNT];
	/* Stored message id -> rows that reference it, for bodies with two or
	 * more; a stored body that is not in the map has exactly one (most
	 * queued messages: no memory per message). */
	struct refmap refs;
	struct tombs tombs; /* queue entries deleted before their insert arrived (mirrors the table) */
	uint64_t applied;   /* index of the last batch applied (stored with the data) */
	unsigned durability;
	/* Two files used in turn: new batches go to the active one; the other
	 * is written over once the database has all of its batches. */
	struct journal journal[2];
	int active;
	uint64_t next_index; /* of the next batch appended to the journal */
	/* Batches in the journal, not yet applied to the database (writer). */
	struct pending_batch {
		struct buf bytes;
		uint64_t index;
	} *pend;
	size_t n_pend, cap_pend;
	struct store_batch *pend_view;
	size_t pend_bytes;
	uint64_t pend_since_ms; /* when the oldest of them was appended */
	bool apply_failing;     /* applying them failed: logged once, retried */
	uint64_t apply_retry_ms; /* when, after it failed */
	int apply_err;           /* how it failed: -FM_ELIMIT (disk full), ... */
	bool tight;              /* little free space: apply at once (writer.c) */
	uint64_t tomb_gen;  /* generation of the tombs' current one (see apply.c) */
	int apply_rc;       /* SQLite's code for the last batch that failed */
	int dump_fd;        /* FERROMQ_STORE_BATCH_DUMP's file, or -1 (see dump_batch in writer.c) */
	struct store_port port;
	const struct store_log *log;
	/* The writer (writer.c): a thread running `loop`. */
	pthread_t thread;
	bool running, loop_ready;
	uv_loop_t loop;
	uv_async_t wake;
	uv_timer_t apply_timer, retry_timer;
	uv_fs_t sync_req;
	pthread_mutex_t lock;
	struct store_txn *head, *tail; /* submitted, not yet taken by the writer */
	struct store_txn *reads, **reads_tail; /* reads asked, not yet served */
	bool stop;
	/* Writer thread only: */
	struct group *groups, **groups_tail; /* taken, not handed back yet, in order */
	struct group *sync_last; /* the last group the sync in flight covers */
	bool syncing;
	size_t unsynced_bytes;   /* of the batches journalled, not synced yet */
	uint32_t unsynced_in[2]; /* those batches in each journal file */
	struct store_txn *retry, **retry_tail; /* records nobody waits for, to write again */
	bool retry_due;
	bool journal_keep; /* a batch is only in the journal: never start it over */
	bool failing; /* in a failure episode: logged once */
	int wal_pages; /* in the WAL after the last commit */
	bool wal_bound_failing; /* the writer's own checkpoint failed: logged once */
	uint64_t failed_ops; /* records in the group that failed */
	uint64_t giveup_at_ms; /* shutting down with records failing: when to stop retrying them */
	bool gave_up;
	atomic_ulong failures;
	/* A cluster node's (replica.c): the raft node on the writer's loop. */
	struct {
		struct cluster_node *node; /* NULL: a single node, the journal is the log */
		void (*wake)(void *arg);   /* whether to serve may have changed */
		void *wake_arg;
		bool serve;                /* under lock: the leader, with the log applied */
		uint64_t generation;       /* under lock: times serve became true */
		uint64_t leader_id;
		char leader[CLUSTER_ADDRESS_MAX];
		pthread_mutex_t db_lock;   /* held while the writer or the broker's recovery uses db */
		/* The snapshot being taken off the loop (replica.c): an image of
		 * the database at applied index `index`, copied by a thread of
		 * its own through a connection in a read transaction, and the
		 * entries applied meanwhile. Kept until the next one starts:
		 * raft copies them when handed. */
		struct {
			pthread_t thread;
			bool running;        /* started: its thread is to be joined */
			atomic_bool done;    /* the copy is over: rc, image, size */
			bool lost;           /* an entry could not be kept in the trailer */
			int rc;
			sqlite3 *db;
			uint64_t index;
			void *image;         /* sqlite3_malloc'd */
			sqlite3_int64 size;
			struct buf trailer;  /* snapshot.h */
			uint64_t retry_at;   /* loop time before which none starts again */
			uint8_t head[STORE_SNAP_HEAD];
		} snap;
		uint64_t since_snapshot;   /* bytes of entries applied since it */
		uint64_t snapshot_min;     /* since_snapshot before the next one, at least */
		uint64_t entries_since_snapshot;
		uint64_t node_id;          /* staggers its snapshot thresholds */
		uint64_t disk_bytes, disk_bytes_at; /* the database's size, read at loop time disk_bytes_at */
		bool stopped;
	} cl;
	atomic_bool attached; /* a broker is on the port's other side */
	/* Checkpoints run on their own thread and connection, so copying the
	 * WAL into the database never holds up a group commit. */
	pthread_t ckpt_thread;
	bool ckpt_running;
	sqlite3 *ckpt_db;
	pthread_mutex_t ckpt_lock;
	pthread_cond_t ckpt_cond;
	bool ckpt_wanted, ckpt_stop;
};

/* The transactions taken together, and their batch. */
struct group {
	struct store_txn *list;
	struct buf batch;
	uint64_t index;      /* its journal entry's, 0 when it wrote nothing */
	int file;            /* the journal file it is in */
	uint64_t journal_at; /* where that entry starts */
	uint32_t records;
	int err;
	bool proposed;  /* a cluster's: its entry was proposed to raft */
	bool committed; /* and is committed and applied here */
	struct group *next;
};

/* Where a group's batch becomes durable: the local journal (writer.c) or a
 * cluster's raft log (replica.c). The writer encodes and admits a group,
 * appends it, and, once nothing more is waiting to be taken, settles: the
 * log hands back (store__group_done) the groups whose batches are durable,
 * in order. */
enum store_settled {
	STORE_SETTLE_AGAIN,   /* some may have gone back: take what came meanwhile */
	STORE_SETTLE_LATER,   /* a callback settles them and calls store__process */
	STORE_SETTLE_WAITING, /* the rest wait for the log (a raft commit) */
};
struct store_log {
	void (*append)(struct store *st, struct group *g); /* sets g->err on failure */
	enum store_settled (*settle)(struct store *st);
};

/* A record dropped before it was applied (see cancel_delivered). */
#define ST_CANCELLED 0

/* The writer (writer.c). */
/* conf: a cluster node's raft node, run on the writer's loop (NULL: single). */
int store__writer_start(struct store *st, const struct cluster_conf *conf, char *err, size_t errlen);
/* Hands back what is queued, applies what is journalled, stops the thread. */
void store__writer_stop(struct store *st);
void store__submit(void *ctx, struct store_txn *t);
void store__read(void *ctx, struct store_txn *t);
/* Takes, logs and settles everything that arrived (the writer's thread). */
void store__process(struct store *st);
/* A group is settled: its reads are served, its transactions go back. */
void store__group_done(struct store *st, struct group *g);
/* Keeps a journalled batch (taking bytes) until store__apply_pending. 0 or -FM_ENOMEM. */
int store__pend_add(struct store *st, uint64_t index, struct buf *bytes);
/* Batches were added outside a group (a cluster follower's committed
 * entries): applied once enough waits or it has waited long enough, as a
 * group's are, not all at the next snapshot. */
void store__pend_added(struct store *st);
/* Applies every journalled batch that waits, together; a failure keeps them
 * (logged once) for the next try. 0 or a negative fm_err. */
int store__apply_pending(struct store *st);

/* The cluster (replica.c). */
/* Stops a snapshot being taken and frees the last one (store close). */
void store__snap_close(struct store *st);
/* A snapshot threshold (bytes or entries of log since the last one) as
 * node node_id applies it: (4 - node_id % 3) / 4 times (down, so that a
 * node restarting replays no longer a log than before), so that the nodes
 * of a cluster, applying the same entries, do not copy their databases at
 * the same time. Pure. */
uint64_t store__snapshot_threshold(uint64_t threshold, uint64_t node_id);
/* Refuses a database that follows the other kind of log (a raft log or the
 * local journal), marking an empty one as following raft. 0, or -1 with err. */
int store__check_log_kind(struct store *st, bool raft, char *err, size_t errlen);
/* Starts the raft node on the writer's loop (not running yet). */
int store__cluster_begin(struct store *st, const struct cluster_conf *conf, char *err, size_t errlen);
/* The raft log (store->log of a cluster node). */
extern const struct store_log store__raft_log;
/* The database for the writer (a cluster's broker recovery may hold it):
 * waits, or gives up at once (false) when !wait. Always true on a single node. */
bool store__db_take(struct store *st, bool wait);
void store__db_give(struct store *st);
/* Rereads the applied index, tombs and references after the database was
 * replaced. 0 or -1. */
int store__reload(struct store *st);
/* Applies a repair batch found by recovery, outside the log: the applied
 * index stays. Returns as store_apply. */
int store__apply_local(struct store *st, const uint8_t *batch, size_t len);

/* Runs a statement that returns no rows worth reading. SQLITE_OK or a code. */
int store__step_done(struct store *st, enum stmt_id id);
/* The group's transactions as one record batch in out (cancelling the queue
 * entries added and removed within it first). 0 or -FM_ENOMEM. */
int store__encode_group(struct store_txn *list, struct buf *out);
/* Rebuilds the tombs' memory mirror from their table, as of index applied.
 * Returns 0 or -1. */
int store__load_tombs(struct store *st, uint64_t applied);

/* The repairs recovery found (orphan spool rows, unreferenced bodies), as
 * one batch applied under the next index: apply stays the one code that
 * changes the database. 0, or -1 with err set. */
int store__repair(struct store *st, const struct buf *batch, char *err, size_t errlen);

/* Reads stored body id with S_MSG_GET. Returns a new message, or NULL with
 * *rc SQLITE_DONE when there is none, or with another SQLite code (or
 * SQLITE_NOMEM, SQLITE_CORRUPT) on failure. */
struct msg *store__read_msg(struct store *st, uint64_t id, int *rc);
/* Rebuilds the stored bodies' reference counts from the rows. Returns 0 or -1. */
int store__load_refs(struct store *st);
/* What to tell an operator whose database is damaged. */
const char *store__advice(sqlite3 *db);
/* The same for SQLite's result code rc. */
const char *store__advice_code(int rc);

#endif
