/* The durable store: a journal of record batches (journal.h) and one SQLite
 * database (WAL) in persistence_location, written by one thread in group
 * commits, read once at start-up. */
#ifndef FM_STORE_H
#define FM_STORE_H
#include "../broker/broker.h"
#include <stddef.h>

struct store;

#define STORE_FILE "ferromq.db"

/* Opens or creates the database in dir and brings its schema up to date.
 * durability: DURABILITY_FULL (fdatasync per group) or DURABILITY_NORMAL.
 * Returns NULL with a message in err. */
struct store *store_open(const char *dir, unsigned durability, char *err, size_t errlen);
/* Loads every session, subscription, queued message, QoS 2 state and retained
 * message into b, and logs what it found. Returns 0, or -1 with err set (a
 * damaged database: start-up must stop). */
int store_recover(struct store *st, struct broker *b, char *err, size_t errlen);
/* Applies one record batch (record.h) under `index`, in one transaction that
 * also stores the index; a batch at or below the applied index is skipped.
 * The one code that changes the database (writer thread, or before it
 * starts). Returns 0, or -FM_ELIMIT (disk full), -FM_EPROTO (malformed
 * batch), -FM_EIO, -FM_ENOMEM; nothing of a failed batch stays. */
int store_apply(struct store *st, const uint8_t *batch, size_t len, uint64_t index);
/* One batch of a run applied together. */
struct store_batch {
	const uint8_t *p;
	size_t len;
	uint64_t index;
};
/* Applies n batches of growing indexes in one transaction, with the same
 * result as applying them one by one (a queue entry added and removed
 * within them never touches the database). Returns as store_apply. */
int store_apply_batches(struct store *st, const struct store_batch *b, size_t n);
/* Starts the writer thread and connects it to b. */
int store_start(struct store *st, struct broker *b);

/* ---- a cluster node (replica.c, src/cluster) ---- */
struct cluster_conf;
struct cluster_node;
/* Instead of store_recover + store_start on a cluster node: the raft log
 * replaces the journal (a batch is one entry, handed back once committed on
 * a majority), the writer's loop runs the raft node, and every committed
 * entry is applied to the database. wake(arg) is called, from the writer's
 * thread, whenever store_cluster_serving may have changed. Returns 0, or -1
 * with err set. */
int store_cluster_start(struct store *st, const struct cluster_conf *conf, void (*wake)(void *arg), void *arg,
			char *err, size_t errlen);
/* The raft node, NULL on a single node. */
struct cluster_node *store_cluster(struct store *st);
/* Whether this node serves now: it leads, and every entry committed before
 * is applied. When it does not, *leader_id and leader (len bytes) name the
 * leader it knows (0 and "" when none). *generation (may be NULL) counts the
 * times it started serving: a new one means a serving broker must be built
 * anew from the database (one that ran meanwhile went out of step). Any
 * thread. */
bool store_cluster_serving(struct store *st, char *leader, size_t len, uint64_t *leader_id, uint64_t *generation);
/* The serving broker of a cluster node: recovers b's state from the
 * database (the writer keeps off it meanwhile) and connects b to the store.
 * 0, or -1 with err set. */
int store_attach(struct store *st, struct broker *b, char *err, size_t errlen);
/* Disconnects the broker (stopped, every transaction handed back). */
void store_detach(struct store *st);
/* Commits what is queued, stops the writer and closes the database. */
void store_close(struct store *st);
/* Bytes on disk (database and WAL). */
uint64_t store_disk_bytes(const struct store *st);

#endif
