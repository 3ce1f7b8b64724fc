/* Store records of the current action (persist.c): no-ops without a store
 * or for sessions that end with their connection. */
#ifndef FM_BROKER_PERSIST_H
#define FM_BROKER_PERSIST_H
#include "types.h"

bool broker__persist_durable(const struct broker *b, const struct session *s);
/* Appends a record to the worker's transaction; NULL without a store or
 * when out of memory (logged). */
struct store_op *broker__persist_op(struct bworker *w, uint8_t type);
void broker__persist_queue_add(struct bworker *w, const struct session *s, const struct qentry *e);
void broker__persist_queue_del(struct bworker *w, const struct session *s, const struct qentry *e);
void broker__persist_queue_state(struct bworker *w, const struct session *s, const struct qentry *e);
void broker__persist_rx2(struct bworker *w, const struct session *s, uint16_t pid, bool add);
void broker__persist_session(struct bworker *w, struct session *s);
void broker__persist_session_del(struct bworker *w, struct session *s);
void broker__persist_sub(struct bworker *w, const struct session *s, const char *filter, size_t len, uint8_t options,
			 uint32_t sub_id, bool add);
void broker__persist_retain(struct bworker *w, struct msg *m, uint64_t version);
/* Ends the current action. done(ctx) runs after the commit of what the action
 * wrote (the records go to the writer at the end of the loop turn), or at once
 * when nothing durable changed. force: wait for the store even without
 * records (to order an ack after earlier commits). Replies to a client go
 * through reply.h instead. */
void broker__persist_commit(struct bworker *w, store_done_fn done, void *ctx, uint16_t pid, uint8_t kind, bool force);
/* Ends the current action like broker__persist_commit and queues cb (NULL: none)
 * behind its records when it must wait: the action wrote records, force, or
 * an earlier callback of the same client (cb->c) still waits. Returns 1 when
 * queued (cb->c's pending_store counts it), 0 when cb must run now, or
 * -FM_ENOMEM (cb must run now as a failed commit). */
int broker__persist_commit_cb(struct bworker *w, const struct store_cb *cb, bool force);

#endif
