/* Offline queues on disk. A queued entry of a durable session keeps its
 * message body in memory only while it may soon be sent: once its row is
 * committed, an entry of an offline session, or one far down a long queue,
 * keeps just the stored id (QE_ON_DISK). When delivery reaches such entries
 * their bodies are read back through the store's writer thread, in batches,
 * behind every record submitted before (so the rows are there). */
#include "spill.h"
#include "broker.h"
#include "inbox.h"
#include "persist.h"
#include "../base/log.h"
#include "../base/err.h"
#include "../base/vec.h"
#include <stdlib.h>

/* Queued entries kept with their bodies while the session is connected. */
#define QUEUE_RAM_WINDOW 8192
/* Bodies read back per request, and their payload bytes at most (large
 * messages: fewer of them). */
#define LOAD_BATCH 1024
#define LOAD_BATCH_BYTES (8u * 1024 * 1024)

static void spill_entry(struct session *s, uint64_t seq)
{
	pthread_mutex_lock(&s->lock);
	long i = s->ended ? -1 : qring_find(&s->queue, seq);
	if (i >= 0 && (!s->client || i >= QUEUE_RAM_WINDOW)) {
		struct qentry *e = qring_at(&s->queue, (uint32_t)i);
		if (!qentry_on_disk(e) && e->state == QE_QUEUED &&
		    !atomic_load_explicit(&e->msg->held, memory_order_acquire))
			qentry_spill(e);
	}
	pthread_mutex_unlock(&s->lock);
}

void broker__spill_committed(const struct store_txn *t)
{
	for (uint32_t i = 0; i < t->n_ops; i++) {
		const struct store_op *op = &t->ops[i];
		/* A cancelled add was delivered within its group: nothing to spill. */
		if (op->type == ST_QUEUE_ADD && op->session)
			spill_entry(op->session, op->seq);
	}
}

static void dropped_missing(struct bworker *w, struct session *s, long i)
{
	struct qentry gone;
	qring_remove(&s->queue, (uint32_t)i, &gone);
	s->queued_bytes -= gone.bytes;
	log_err("store: the body of a message queued for %s is missing or damaged in the database; it is dropped",
		s->client_id);
	broker__persist_queue_del(w, s, &gone);
	qentry_release(&gone);
}

/* Runs on the worker that asked, after the store has read the bodies. err
 * belongs to the writes of the same group, which the read does not depend
 * on: only ld->failed means the read went wrong (a retry, never a drop). */
static void loaded(void *ctx, uint16_t pid, uint8_t kind, int err)
{
	(void)err;
	struct store_load *ld = ctx;
	struct bworker *w = ld->worker;
	struct session *s = ld->session;
	pthread_mutex_lock(&s->lock);
	s->loading = false;
	for (uint32_t k = 0; k < ld->n && !s->ended; k++) {
		struct store_load_item *it = &ld->items[k];
		long i = qring_find(&s->queue, it->seq);
		if (i < 0)
			continue; /* dropped, expired or taken while it was read */
		struct qentry *e = qring_at(&s->queue, (uint32_t)i);
		if (!qentry_on_disk(e) || e->msg_id != it->id)
			continue;
		if (it->msg) {
			qentry_fill(e, it->msg);
			it->msg = NULL;
		} else if (!ld->failed) {
			dropped_missing(w, s, i);
		}
	}
	int worker = s->worker;
	pthread_mutex_unlock(&s->lock);
	if (!ld->failed) {
		broker__inbox_schedule(w, s, worker);
		return;
	}
	/* Not at once: a failing disk would be asked again and again. */
	log_err("store: reading queued messages of %s back failed; retrying shortly", s->client_id);
	if (vec_grow(&w->load_retry, &w->cap_load_retry, w->n_load_retry, sizeof *w->load_retry, 8))
		broker__inbox_schedule(w, s, worker);
	else
		w->load_retry[w->n_load_retry++] = session_ref(s);
}

void broker__spill_retry(struct bworker *w)
{
	uint32_t n = w->n_load_retry;
	w->n_load_retry = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct session *s = w->load_retry[i];
		pthread_mutex_lock(&s->lock);
		int worker = s->worker;
		pthread_mutex_unlock(&s->lock);
		broker__inbox_schedule(w, s, worker);
		session_unref(s);
	}
}

void broker__spill_prefetch(struct bworker *w, struct session *s)
{
	/* Half a batch of bodies still to send: the next batch is asked for
	 * now, so that delivery does not wait a commit and a read each time. */
	if (!s->loading && s->queue.count > LOAD_BATCH / 2 && qentry_on_disk(qring_at(&s->queue, LOAD_BATCH / 2)))
		broker__spill_load(w, s);
}

void broker__spill_load(struct bworker *w, struct session *s)
{
	if (s->loading || !w->b->store)
		return;
	uint32_t n = 0;
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < s->queue.count && n < LOAD_BATCH && bytes < LOAD_BATCH_BYTES; i++) {
		const struct qentry *e = qring_at(&s->queue, i);
		if (qentry_on_disk(e)) {
			n++;
			bytes += e->bytes;
		}
	}
	struct store_load *ld = calloc(1, sizeof *ld + sizeof ld->items[0] * n);
	if (!ld) {
		log_err("out of memory: messages queued for %s wait in the store", s->client_id);
		return;
	}
	ld->session = session_ref(s);
	ld->worker = w;
	for (uint32_t i = 0; i < s->queue.count && ld->n < n; i++) {
		const struct qentry *e = qring_at(&s->queue, i);
		if (qentry_on_disk(e))
			ld->items[ld->n++] = (struct store_load_item){ e->seq, e->msg_id, NULL };
	}
	if (broker_store_load(w, ld, loaded)) {
		log_err("out of memory: messages queued for %s wait in the store", s->client_id);
		return;
	}
	s->loading = true;
}
