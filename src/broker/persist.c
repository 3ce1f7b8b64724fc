/* What the broker writes to the durable store, and when it acknowledges.
 * Only sessions that outlive their connection (expiry interval > 0) are
 * written: a clean session has nothing to recover. */
#include "persist.h"
#include "broker.h"
#include "inbox.h"
#include "store_txn.h"
#include "../base/log.h"
#include "../base/err.h"
#include <stdlib.h>
#include <string.h>

static void store_completed(void *owner, struct store_txn *t) { broker_store_complete(owner, t); }

static void store_failing(void *owner, bool failing)
{
	struct broker *b = owner;
	atomic_store_explicit(&b->stats.store_failing, failing, memory_order_relaxed);
}

static bool store_stopping(void *owner)
{
	struct broker *b = owner;
	return atomic_load(&b->shutting_down);
}

/* The store's state went out of step with what this broker holds (a
 * cluster node's transaction did not commit): no client is served from
 * memory any more (a PUBREL sent again from it could deliver a QoS 2
 * message twice); the broker is about to be rebuilt. */
static void store_out_of_step(void *owner)
{
	broker_set_standby(owner, "");
}

void broker_set_store(struct broker *b, struct store_port *store)
{
	store->owner = b;
	store->complete = store_completed;
	store->failing = store_failing;
	store->stopping = store_stopping;
	store->out_of_step = store_out_of_step;
	b->store = store;
}

void broker_set_bridges(struct broker *b, const struct bridge_port *p) { b->bridges = p; }

int broker_restore_spool(struct broker *b, const char *bridge, const struct restored_spool_entry *e)
{
	return b->bridges ? b->bridges->restore(b->bridges->ctx, bridge, e) : -FM_ENOENT;
}

bool broker__persist_durable(const struct broker *b, const struct session *s)
{
	return b->store && s->expiry_interval != 0;
}

static uint64_t msg_store_id(struct broker *b, struct msg *m)
{
	uint64_t id = atomic_load(&m->id);
	if (id)
		return id;
	uint64_t fresh = atomic_fetch_add(&b->next_msg_id, 1);
	/* Another worker may have stored it first: keep its id. */
	return atomic_compare_exchange_strong(&m->id, &id, fresh) ? fresh : id;
}

/* Adds a record to the current action's transaction. NULL without a store
 * or when out of memory (logged: the change then lives in memory only). */
struct store_op *broker__persist_op(struct bworker *w, uint8_t type)
{
	if (!w->b->store)
		return NULL;
	if (!w->txn && !(w->txn = broker__txn_new(w->id)))
		goto oom;
	struct store_op *op = broker__txn_add(w->txn, type);
	if (op)
		return op;
oom:
	log_err("out of memory: a store record was not written");
	return NULL;
}

static void op_entry(struct store_op *op, struct broker *b, const struct session *s, const struct qentry *e)
{
	op->sid = s->sid;
	op->seq = e->seq;
	op->qos = e->qos;
	op->flags = e->flags;
	op->state = e->state;
	if (qentry_on_disk(e))
		return; /* deletes and state changes need only the key */
	msg_store_id(b, e->msg);
	op->msg = msg_ref(e->msg);
}

void broker__persist_queue_add(struct bworker *w, const struct session *s, const struct qentry *e)
{
	if (!broker__persist_durable(w->b, s) || !e->qos)
		return;
	struct store_op *op = broker__persist_op(w, ST_QUEUE_ADD);
	if (!op)
		return;
	op_entry(op, w->b, s, e);
	op->session = session_ref((struct session *)s);
	op->queued_s = e->queued_s;
	op->n_sub_ids = e->n_sub_ids;
	if (e->n_sub_ids == 1) {
		op->sub_id = e->u.sub_id;
	} else if (e->n_sub_ids > 1) {
		op->sub_ids = malloc(sizeof(uint32_t) * e->n_sub_ids);
		if (op->sub_ids)
			memcpy(op->sub_ids, e->u.sub_ids, sizeof(uint32_t) * e->n_sub_ids);
		else
			op->n_sub_ids = 0;
	}
}

void broker__persist_queue_del(struct bworker *w, const struct session *s, const struct qentry *e)
{
	if (!broker__persist_durable(w->b, s) || !e->qos)
		return;
	struct store_op *op = broker__persist_op(w, ST_QUEUE_DEL);
	if (op)
		op_entry(op, w->b, s, e);
}

void broker__persist_queue_state(struct bworker *w, const struct session *s, const struct qentry *e)
{
	if (!broker__persist_durable(w->b, s))
		return;
	struct store_op *op = broker__persist_op(w, ST_QUEUE_STATE);
	if (op)
		op_entry(op, w->b, s, e);
}

void broker__persist_rx2(struct bworker *w, const struct session *s, uint16_t pid, bool add)
{
	if (!broker__persist_durable(w->b, s))
		return;
	struct store_op *op = broker__persist_op(w, add ? ST_RX2_ADD : ST_RX2_DEL);
	if (op) {
		op->sid = s->sid;
		op->pid = pid;
	}
}

void broker__persist_session(struct bworker *w, struct session *s)
{
	if (!broker__persist_durable(w->b, s))
		return;
	struct store_op *op = broker__persist_op(w, ST_SESSION_PUT);
	if (!op)
		return;
	s->stored = true;
	op->sid = s->sid;
	op->text = strdup(s->client_id);
	op->expiry_interval = s->expiry_interval;
	op->expires_at = s->expires_at;
	op->qos = s->version;
	if (s->will) {
		msg_store_id(w->b, s->will);
		op->msg = msg_ref(s->will);
		op->will_delay = s->will_delay;
		op->will_at = s->will_at;
		if (s->will_user && !(op->will_user = strdup(s->will_user)))
			log_err("out of memory: the will of %s is stored without its user", s->client_id);
	}
}

void broker__persist_session_del(struct bworker *w, struct session *s)
{
	if (!w->b->store || !s->stored)
		return;
	struct store_op *op = broker__persist_op(w, ST_SESSION_DEL);
	if (op)
		op->sid = s->sid;
	s->stored = false;
}

void broker__persist_sub(struct bworker *w, const struct session *s, const char *filter, size_t len, uint8_t options,
			 uint32_t sub_id, bool add)
{
	if (!broker__persist_durable(w->b, s))
		return;
	struct store_op *op = broker__persist_op(w, add ? ST_SUB_PUT : ST_SUB_DEL);
	if (!op)
		return;
	op->sid = s->sid;
	op->text = strndup(filter, len);
	op->flags = options;
	op->sub_id = sub_id;
}

void broker__persist_retain(struct bworker *w, struct msg *m, uint64_t version)
{
	struct store_op *op = broker__persist_op(w, m->payload_len ? ST_RETAIN_PUT : ST_RETAIN_DEL);
	if (!op)
		return;
	op->seq = version;
	if (m->payload_len) {
		msg_store_id(w->b, m);
		op->msg = msg_ref(m);
	} else {
		op->text = strndup(msg_topic(m), m->topic_len);
	}
}

void broker_spool_add(struct bworker *w, const char *bridge, uint64_t seq, struct msg *m, uint32_t queued_s)
{
	struct store_op *op = broker__persist_op(w, ST_SPOOL_ADD);
	if (!op)
		return;
	op->bridge = bridge;
	op->seq = seq;
	op->queued_s = queued_s;
	msg_store_id(w->b, m);
	op->msg = msg_ref(m);
}

void broker_spool_del(struct bworker *w, const char *bridge, uint64_t seq)
{
	struct store_op *op = broker__persist_op(w, ST_SPOOL_DEL);
	if (!op)
		return;
	op->bridge = bridge;
	op->seq = seq;
}

int broker_store_load(struct bworker *w, struct store_load *ld, store_done_fn done)
{
	struct store_cb cb = { .done = done, .ctx = ld };
	struct store_txn *t = w->b->store ? broker__txn_new(w->id) : NULL;
	if (!t || broker__txn_add_load(t, ld)) {
		broker__txn_free(t);
		session_unref(ld->session);
		free(ld);
		return -FM_ENOMEM;
	}
	/* The load is the transaction's now: freed with it, unread, when its
	 * callback finds no room (asked for again at the next delivery). */
	if (broker__txn_add_cb(t, &cb)) {
		broker__txn_free(t);
		return -FM_ENOMEM;
	}
	/* On the store's read port, never with the worker's records. */
	atomic_fetch_add(&w->pending_txns, 1);
	w->b->store->read(w->b->store->ctx, t);
	return 0;
}

int broker__persist_commit_cb(struct bworker *w, const struct store_cb *cb, bool force)
{
	struct store_txn *t = w->txn;
	bool wrote = t && t->n_ops > w->ops_mark;
	/* Acknowledgements of one client go out in order [MQTT-4.6.0-2]: behind
	 * one that waits for the disk, the next waits too. */
	bool defer = w->b->store && cb && (force || wrote || (cb->c && cb->c->pending_store));
	w->ops_mark = t ? t->n_ops : 0;
	if (!defer)
		return 0;
	if ((!t && !(t = w->txn = broker__txn_new(w->id))) || broker__txn_add_cb(t, cb)) {
		log_err("out of memory: an acknowledgement is withheld");
		return -FM_ENOMEM;
	}
	if (cb->c)
		cb->c->pending_store++;
	return 1;
}

void broker__persist_commit(struct bworker *w, store_done_fn done, void *ctx, uint16_t pid, uint8_t kind, bool force)
{
	struct store_cb cb = { .done = done, .ctx = ctx, .pid = pid, .kind = kind };
	int rc = broker__persist_commit_cb(w, done ? &cb : NULL, force);
	if (done && rc <= 0)
		done(ctx, pid, kind, rc);
}

void broker_worker_flush_store(struct bworker *w)
{
	struct store_txn *t = w->txn;
	if (!t)
		return;
	w->txn = NULL;
	w->ops_mark = 0;
	if (!t->n_ops && !t->n_cbs) {
		broker__txn_free(t);
		return;
	}
	atomic_fetch_add(&w->pending_txns, 1);
	w->b->store->submit(w->b->store->ctx, t);
}

void broker_store_complete(struct broker *b, struct store_txn *t)
{
	if (broker__inbox_push_to(b, t->worker, (struct wake_item){ NULL, NULL, t }, true)) {
		/* Cannot hand it back: run nothing, but do not leak. */
		log_err("out of memory returning a store commit");
		broker__txn_free(t);
	}
}
