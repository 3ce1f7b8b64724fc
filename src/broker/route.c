/* Routing: from a published message to the sessions that must get it.
 * Matching happens under the subscription index's read lock, so workers
 * route in parallel; each target session is locked only to queue. */
#include "route.h"
#include "inbox.h"
#include "persist.h"
#include "queue_limits.h"
#include "retain.h"
#include "sparkplug.h"
#include "../base/err.h"
#include "../base/vec.h"
#include <stdlib.h>
#include <string.h>

/* Hands m to the collectors (b->collect set); true when taken. */
static bool to_collectors(struct bworker *w, const struct msg *m)
{
	const struct collect_port *p = w->b->collect;
	return p->route(p->ctx, w, m);
}

static int add_target(struct bworker *w, const struct route_target *t)
{
	if (vec_grow(&w->targets, &w->cap_targets, w->n_targets, sizeof *w->targets, 64))
		return -FM_ENOMEM;
	w->targets[w->n_targets++] = *t;
	return 0;
}

struct match_ctx {
	struct bworker *w;
	struct msg *m;
};

static uint8_t entry_flags(uint8_t options, const struct msg *m)
{
	/* Retain As Published keeps the flag; otherwise it is cleared [MQTT-3.3.1-12]. */
	return (options & MQTT_SUBOPT_RAP) && m->retain ? QE_RETAIN : 0;
}

static void on_entry(void *ctx, const struct sub_entry *e)
{
	struct match_ctx *mc = ctx;
	struct session *s = e->subscriber;
	if ((e->options & MQTT_SUBOPT_NO_LOCAL) && s->sid == mc->m->origin_sid)
		return; /* [MQTT-3.8.3-3] */
	struct route_target t = { s, e->sub_id, min_u8(e->options & MQTT_SUBOPT_QOS_MASK, mc->m->qos),
				  entry_flags(e->options, mc->m) };
	add_target(mc->w, &t);
}

static bool session_online(struct session *s)
{
	return __atomic_load_n(&s->worker, __ATOMIC_RELAXED) >= 0;
}

/* One member per group: round-robin over online members, else any member so
 * the message waits in a persistent member's queue. */
static void on_group(void *ctx, struct sub_group *g)
{
	struct match_ctx *mc = ctx;
	if (!g->n_members)
		return;
	uint32_t start = atomic_fetch_add_explicit(&g->next, 1, memory_order_relaxed);
	const struct sub_entry *pick = &g->members[start % g->n_members];
	for (uint32_t i = 0; i < g->n_members; i++) {
		const struct sub_entry *e = &g->members[(start + i) % g->n_members];
		if (session_online(e->subscriber)) {
			pick = e;
			break;
		}
	}
	struct route_target t = { pick->subscriber, pick->sub_id,
				  min_u8(pick->options & MQTT_SUBOPT_QOS_MASK, mc->m->qos),
				  (uint8_t)(entry_flags(pick->options, mc->m) | QE_SHARED) };
	add_target(mc->w, &t);
}

static int cmp_target(const void *a, const void *b)
{
	const struct route_target *x = a, *y = b;
	return x->s < y->s ? -1 : x->s > y->s;
}

static int remember_held(struct bworker *w, struct session *s)
{
	if (vec_grow(&w->held, &w->cap_held, w->n_held, sizeof *w->held, 16))
		return -FM_ENOMEM;
	w->held[w->n_held++] = session_ref(s);
	return 0;
}

int broker__route_to_session(struct bworker *w, struct session *s, struct msg *m, uint8_t qos, uint8_t flags,
			     const uint32_t *sub_ids, uint16_t n_sub_ids)
{
	struct qring dropped = { 0 };
	pthread_mutex_lock(&s->lock);
	int worker = s->worker;
	int rc;
	if (s->ended) {
		rc = -FM_ENOENT;
	} else if (!s->client && qos == 0) {
		/* QoS 0 is not kept for offline sessions. */
		broker__queue_note_drops(w, s, DROP_QOS0_OFFLINE, 1);
		rc = -FM_ENOENT;
	} else {
		uint64_t seq;
		struct session_limits lim = broker__queue_session_limits(w->b, s);
		rc = session_enqueue(s, m, qos, flags, sub_ids, n_sub_ids, &lim, &dropped, &seq);
		if (rc == 1 || rc == -FM_ELIMIT)
			broker__queue_note_drops(w, s, DROP_QUEUE_FULL, rc == 1 ? dropped.count : 1);
		for (uint32_t i = 0; i < dropped.count; i++)
			broker__persist_queue_del(w, s, qring_at(&dropped, i));
		if (rc >= 0)
			broker__persist_queue_add(w, s, qring_at(&s->queue, s->queue.count - 1));
	}
	pthread_mutex_unlock(&s->lock);
	qring_free(&dropped);
	if (rc >= 0 && atomic_load(&m->held))
		remember_held(w, s); /* scheduled when the store has it */
	else if (rc >= 0)
		broker__inbox_schedule(w, s, worker);
	return rc;
}

/* Delivers to the sorted targets, merging overlapping subscriptions of one
 * session into one message at the highest QoS with every identifier
 * [MQTT-3.3.4-2, 3.3.4-3]. */
static struct route_result deliver_targets(struct bworker *w, struct msg *m)
{
	struct route_result r = { 0, 0 };
	uint32_t ids[64];
	for (uint32_t i = 0; i < w->n_targets;) {
		struct route_target t = w->targets[i];
		uint16_t n_ids = 0;
		uint32_t j = i;
		for (; j < w->n_targets && w->targets[j].s == t.s; j++) {
			const struct route_target *o = &w->targets[j];
			if (o->qos > t.qos)
				t.qos = o->qos;
			t.flags |= o->flags;
			if (o->sub_id && n_ids < sizeof ids / sizeof ids[0])
				ids[n_ids++] = o->sub_id;
		}
		/* Shared only when every path to this session was shared. */
		for (uint32_t k = i; k < j; k++)
			if (!(w->targets[k].flags & QE_SHARED))
				t.flags &= (uint8_t)~QE_SHARED;
		int rc = broker__route_to_session(w, t.s, m, t.qos, t.flags, ids, n_ids);
		if (rc >= 0)
			r.matched++;
		else if (rc == -FM_ELIMIT)
			r.rejected++;
		i = j;
	}
	return r;
}

struct route_result broker__route_publish(struct bworker *w, struct msg *m)
{
	struct broker *b = w->b;
	struct msg *cert = NULL, *own = NULL;
	if (b->spb && (own = broker__spb_route(w, m, &cert)) != NULL)
		m = own;
	struct match_ctx mc = { w, m };
	w->n_targets = 0;
	pthread_rwlock_rdlock(&b->subs_lock);
	sub_index_match(b->subs, msg_topic(m), m->topic_len, on_entry, on_group, &mc);
	if (w->n_targets > 1)
		qsort(w->targets, w->n_targets, sizeof *w->targets, cmp_target);
	/* Delivered under the read lock: sessions leave the index before they are freed. */
	struct route_result r = deliver_targets(w, m);
	pthread_rwlock_unlock(&b->subs_lock);
	w->n_targets = 0;
	if (b->bridges) {
		uint32_t refused = 0;
		r.matched += b->bridges->route(b->bridges->ctx, w, m, &refused);
		r.rejected += refused;
	}
	if (b->collect && to_collectors(w, m))
		r.matched++;
	/* A birth's copy after the birth: retained and stored, then routed (its
	 * topic is not under the namespace, so it comes back no further). */
	if (cert) {
		broker__retain_set(w, cert);
		broker__route_publish(w, cert);
		msg_unref(cert);
	}
	if (own)
		msg_unref(own);
	return r;
}

struct reshare_ctx {
	struct bworker *w;
	struct session *from;
	struct route_target pick;
	bool found;
};

static void reshare_entry(void *ctx, const struct sub_entry *e)
{
	(void)ctx;
	(void)e;
}

static void reshare_group(void *ctx, struct sub_group *g)
{
	struct reshare_ctx *rc = ctx;
	bool member = false;
	for (uint32_t i = 0; i < g->n_members && !member; i++)
		member = g->members[i].subscriber == rc->from;
	if (!member || rc->found)
		return;
	uint32_t start = atomic_fetch_add_explicit(&g->next, 1, memory_order_relaxed);
	for (uint32_t i = 0; i < g->n_members; i++) {
		const struct sub_entry *e = &g->members[(start + i) % g->n_members];
		if (e->subscriber != rc->from && session_online(e->subscriber)) {
			rc->pick = (struct route_target){ e->subscriber, e->sub_id,
							  e->options & MQTT_SUBOPT_QOS_MASK, QE_SHARED };
			rc->found = true;
			return;
		}
	}
}

/* No other member is online: the message stays with the session that had it
 * (to be sent when it returns), unless that session has ended. */
static bool keep_with(struct bworker *w, struct session *s, struct qentry *e)
{
	bool kept = false;
	pthread_mutex_lock(&s->lock);
	if (!s->ended) {
		/* A new entry at the end, under a new sequence number (order and
		 * packet ids follow sequence numbers). */
		e->state = QE_QUEUED;
		e->seq = s->next_seq;
		kept = qring_push(&s->queue, e) == 0;
		if (kept) {
			s->next_seq++;
			s->queued_bytes += e->bytes;
			broker__persist_queue_add(w, s, e);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return kept;
}

void broker__route_reshare(struct bworker *w, struct session *from, struct qentry *entries, uint32_t n)
{
	struct broker *b = w->b;
	for (uint32_t i = 0; i < n; i++) {
		struct qentry *e = &entries[i];
		struct reshare_ctx rc = { w, from, { 0 }, false };
		pthread_rwlock_rdlock(&b->subs_lock);
		sub_index_match(b->subs, msg_topic(e->msg), e->msg->topic_len, reshare_entry, reshare_group, &rc);
		if (rc.found) {
			uint32_t id = rc.pick.sub_id;
			broker__route_to_session(w, rc.pick.s, e->msg, min_u8(rc.pick.qos, e->msg->qos),
						 (uint8_t)((e->flags & QE_RETAIN) | QE_SHARED), &id, id ? 1 : 0);
		}
		pthread_rwlock_unlock(&b->subs_lock);
		if (!rc.found && keep_with(w, from, e))
			continue;
		qentry_release(e);
	}
}
