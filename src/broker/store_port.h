/* The broker's interface to the durable store.
 *
 * The broker describes each state change as a record (struct store_op) and
 * collects the records of one client action (a PUBLISH, a SUBSCRIBE, ...) in
 * a transaction. The store commits transactions in groups on its own thread
 * and hands each one back to the worker that submitted it; only then does the
 * broker send the acknowledgement that promises durability (PUBACK, PUBREC,
 * PUBCOMP, SUBACK). Records of one transaction commit together or not at all.
 */
#ifndef FM_STORE_PORT_H
#define FM_STORE_PORT_H
#include "../session/msg.h"
#include <stdbool.h>
#include <stdint.h>

enum store_op_type {
	ST_QUEUE_ADD = 1, /* sid, seq, msg, qos, flags, sub_ids */
	ST_QUEUE_DEL,    /* sid, seq: delivered, dropped or expired */
	ST_QUEUE_STATE,  /* sid, seq, state (QoS 2 PUBREC received) */
	ST_RX2_ADD,      /* sid, pid: incoming QoS 2 between PUBREC and PUBREL */
	ST_RX2_DEL,      /* sid, pid */
	ST_SESSION_PUT,  /* sid, text = client id, expiry, expires_at, will msg + delay + user */
	ST_SESSION_DEL,  /* sid: and everything that belongs to it */
	ST_SUB_PUT,      /* sid, text = filter, options, sub_id */
	ST_SUB_DEL,      /* sid, text = filter */
	ST_RETAIN_PUT,   /* msg (its topic is the key) */
	ST_RETAIN_DEL,   /* text = topic */
	ST_SPOOL_ADD,    /* bridge, seq, msg, queued_s: a message leaving through a bridge */
	ST_SPOOL_DEL,    /* bridge, seq: acknowledged by the remote broker, or dropped */
};

struct session;

/* Bodies to read back from the store for entries that gave theirs up. The
 * store fills `msg` (a new reference, or NULL when there is no such body)
 * and sets `failed` when reading went wrong; the broker takes the bodies in
 * the completion callback. Reads are not records: they go through the
 * port's `read`, never with records, and the store serves them once the
 * database has every batch settled before them. Owned by its transaction. */
struct store_load {
	struct session *session; /* reference owned; NULL for a bridge */
	void *worker;            /* the broker worker that asked */
	bool failed;
	uint32_t n;
	struct store_load_item {
		uint64_t seq, id;
		struct msg *msg;
	} items[];
};

struct store_op {
	uint8_t type;
	uint8_t qos, flags, state;
	uint16_t pid;
	uint32_t n_sub_ids;
	uint64_t sid, seq;
	uint32_t expiry_interval, will_delay;
	uint32_t queued_s; /* ST_QUEUE_ADD: when it was queued */
	uint64_t expires_at, will_at;
	struct msg *msg;   /* reference owned by the op, or NULL */
	/* ST_QUEUE_ADD: the session, so the entry can give up its body once the
	 * row is committed. Reference owned. */
	struct session *session;
	char *text;        /* owned by the op, or NULL */
	char *will_user;   /* ST_SESSION_PUT: owned, NULL when none */
	const char *bridge; /* ST_SPOOL_*: the bridge's name, borrowed from the configuration */
	uint32_t *sub_ids; /* owned by the op when n_sub_ids > 1, else sub_id */
	uint32_t sub_id;
};

struct client;
/* Runs on the worker after the commit; err is 0 or a negative fm_err. */
typedef void (*store_done_fn)(void *ctx, uint16_t pid, uint8_t kind, int err);

/* What to do once the transaction is on disk: done(ctx, pid, kind, err), or,
 * when c is set, a reply to that client described by value (broker/reply.h). */
struct store_cb {
	store_done_fn done;
	void *ctx;
	struct client *c; /* a reply's client (reference owned), or NULL */
	uint16_t pid;
	uint8_t kind;
	uint8_t rc;       /* a reply's reason code */
	const char *why;  /* a reply's static reason string, or NULL */
};

/* The records and acknowledgements of one worker's loop turn. */
struct store_txn {
	struct store_op *ops;
	uint32_t n_ops, cap_ops;
	struct store_cb *cbs;
	uint32_t n_cbs, cap_cbs;
	struct store_load **loads; /* a read's loads (owned); none with records */
	uint32_t n_loads, cap_loads;
	int worker;          /* where the callbacks run */
	int err;             /* set by the store: 0 or a negative fm_err */
	struct store_txn *next;
};

struct store_port {
	void *ctx;
	/* Takes the transaction and later hands it back through `complete`.
	 * Thread-safe. */
	void (*submit)(void *ctx, struct store_txn *t);
	/* Reads: a transaction of loads and their callbacks only, served on
	 * its own and handed back through `complete`. Thread-safe. */
	void (*read)(void *ctx, struct store_txn *t);
	/* The broker's side, set by broker_set_store; called from the store's
	 * thread. */
	void *owner;
	void (*complete)(void *owner, struct store_txn *t); /* t->err says how it went */
	void (*failing)(void *owner, bool failing); /* writes fail / work again */
	bool (*stopping)(void *owner);              /* the broker is shutting down */
	/* A cluster node's: a transaction did not commit, the broker's memory
	 * no longer matches the replicated state; it refuses new connections
	 * until it is rebuilt from the database. */
	void (*out_of_step)(void *owner);
};

#endif
