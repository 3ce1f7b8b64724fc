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
	ST_MSG_PUT = 1,  /* msg: body, stored once under msg->id */
	ST_QUEUE_ADD,    /* sid, seq, msg, qos, flags, sub_ids */
	ST_QUEUE_DEL,    /* sid, seq: delivered, dropped or expired */
	ST_QUEUE_STATE,  /* sid, seq, state (QoS 2 PUBREC received) */
	ST_RX2_ADD,      /* sid, pid: incoming QoS 2 between PUBREC and PUBREL */
	ST_RX2_DEL,      /* sid, pid */
	ST_SESSION_PUT,  /* sid, text = client id, expiry, expires_at, will msg + delay */
	ST_SESSION_DEL,  /* sid: and everything that belongs to it */
	ST_SUB_PUT,      /* sid, text = filter, options, sub_id */
	ST_SUB_DEL,      /* sid, text = filter */
	ST_RETAIN_PUT,   /* msg (its topic is the key) */
	ST_RETAIN_DEL,   /* text = topic */
};

struct store_op {
	uint8_t type;
	uint8_t qos, flags, state;
	uint16_t pid;
	uint32_t n_sub_ids;
	uint64_t sid, seq;
	uint32_t expiry_interval, will_delay;
	uint64_t expires_at, will_at;
	struct msg *msg;   /* reference owned by the op, or NULL */
	char *text;        /* owned by the op, or NULL */
	uint32_t *sub_ids; /* owned by the op when n_sub_ids > 1, else sub_id */
	uint32_t sub_id;
};

struct store_txn;
typedef void (*store_done_fn)(struct store_txn *t, int err);

struct store_txn {
	struct store_op *ops;
	uint32_t n_ops, cap_ops;
	int worker;          /* where `done` runs */
	store_done_fn done;  /* NULL: nothing to do after the commit */
	void *ctx;           /* for `done` */
	uint16_t pid;
	uint8_t kind, rc;
	int err;             /* set by the store: 0 or a negative fm_err */
	struct store_txn *next;
};

struct store_port {
	void *ctx;
	/* Takes the transaction; `done` later runs on t->worker through
	 * broker_store_done. Thread-safe. */
	void (*submit)(void *ctx, struct store_txn *t);
};

/* Transactions and records (store_txn.c). */
struct store_txn *store_txn_new(int worker);
/* Appends a record; returns it zeroed but for `type`, or NULL when out of memory. */
struct store_op *store_txn_add(struct store_txn *t, uint8_t type);
void store_txn_free(struct store_txn *t);

#endif
