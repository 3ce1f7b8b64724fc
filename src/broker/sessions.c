/* The session registry (client id -> session), session end, session expiry
 * and delayed wills. */
#include "internal.h"
#include "../base/err.h"
#include <stdlib.h>
#include <string.h>

struct registry_entry {
	struct registry_entry *next;
	struct session *s; /* the registry's reference */
	uint32_t hash;
};

static uint32_t id_hash(const char *p, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	return h;
}

struct session *registry_find(struct broker *b, const char *id, size_t len)
{
	if (!b->reg_cap)
		return NULL;
	uint32_t h = id_hash(id, len);
	for (struct registry_entry *e = b->reg[h & (b->reg_cap - 1)]; e; e = e->next)
		if (e->hash == h && e->s->client_id_len == len && !memcmp(e->s->client_id, id, len))
			return e->s;
	return NULL;
}

static int registry_grow(struct broker *b)
{
	uint32_t cap = b->reg_cap ? b->reg_cap * 2 : 1024;
	struct registry_entry **n = calloc(cap, sizeof *n);
	if (!n)
		return -FM_ENOMEM;
	for (uint32_t i = 0; i < b->reg_cap; i++) {
		struct registry_entry *e = b->reg[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = n[e->hash & (cap - 1)];
			n[e->hash & (cap - 1)] = e;
		}
	}
	free(b->reg);
	b->reg = n;
	b->reg_cap = cap;
	return 0;
}

int registry_insert(struct broker *b, struct session *s)
{
	if (b->reg_count * 4 >= b->reg_cap * 3 && registry_grow(b))
		return -FM_ENOMEM;
	struct registry_entry *e = malloc(sizeof *e);
	if (!e)
		return -FM_ENOMEM;
	e->s = s;
	e->hash = id_hash(s->client_id, s->client_id_len);
	e->next = b->reg[e->hash & (b->reg_cap - 1)];
	b->reg[e->hash & (b->reg_cap - 1)] = e;
	b->reg_count++;
	atomic_fetch_add(&b->stats.sessions, 1);
	return 0;
}

void registry_remove(struct broker *b, struct session *s)
{
	uint32_t h = id_hash(s->client_id, s->client_id_len);
	for (struct registry_entry **pp = &b->reg[h & (b->reg_cap - 1)]; *pp; pp = &(*pp)->next) {
		if ((*pp)->s == s) {
			struct registry_entry *e = *pp;
			*pp = e->next;
			free(e);
			b->reg_count--;
			atomic_fetch_sub(&b->stats.sessions, 1);
			return;
		}
	}
}

void registry_free_all(struct broker *b)
{
	for (uint32_t i = 0; i < b->reg_cap; i++) {
		for (struct registry_entry *e = b->reg[i], *next; e; e = next) {
			next = e->next;
			session_unref(e->s);
			free(e);
		}
	}
	free(b->reg);
	b->reg = NULL;
	b->reg_cap = b->reg_count = 0;
}

int timed_add(struct broker *b, struct session *s)
{
	if (s->timed)
		return 0;
	if (b->n_timed == b->cap_timed) {
		uint32_t cap = b->cap_timed ? b->cap_timed * 2 : 64;
		struct session **n = realloc(b->timed, sizeof *n * cap);
		if (!n)
			return -FM_ENOMEM;
		b->timed = n;
		b->cap_timed = cap;
	}
	b->timed[b->n_timed++] = session_ref(s);
	s->timed = true;
	return 0;
}

void will_publish(struct bworker *w, struct msg *will)
{
	if (!will)
		return;
	struct broker *b = w->b;
	if (will->retain && b->cfg.retain_available) {
		int err;
		pthread_rwlock_wrlock(&b->retain_lock);
		struct msg *old = retain_index_set(b->retained, msg_topic(will), will->topic_len,
						   will->payload_len ? msg_ref(will) : NULL, &err);
		pthread_rwlock_unlock(&b->retain_lock);
		if (err && will->payload_len)
			msg_unref(will);
		msg_unref(old);
	}
	log_debug("publishing will on %.*s", (int)will->topic_len, msg_topic(will));
	route_publish(w, will);
	msg_unref(will);
}

void session_end(struct bworker *w, struct session *s)
{
	struct broker *b = w->b;
	pthread_rwlock_wrlock(&b->subs_lock);
	for (uint32_t i = 0; i < s->n_subs; i++) {
		const struct session_sub *sub = &s->subs[i];
		const char *group, *filter;
		size_t glen, flen;
		if (topic_share_split(sub->filter, sub->len, &group, &glen, &filter, &flen) == 1)
			sub_index_remove(b->subs, filter, flen, group, glen, s);
		else
			sub_index_remove(b->subs, sub->filter, sub->len, NULL, 0, s);
	}
	pthread_rwlock_unlock(&b->subs_lock);

	pthread_mutex_lock(&s->lock);
	s->ended = true;
	struct msg *will = s->will; /* a pending delayed will fires at session end */
	s->will = NULL;
	s->will_at = 0;
	/* $share messages not yet acknowledged go to another member. */
	struct qring shared = { 0 };
	for (struct qring *q = &s->inflight; q; q = q == &s->inflight ? &s->queue : NULL) {
		for (uint32_t i = 0; i < q->count;) {
			struct qentry *e = qring_at(q, i);
			if (!(e->flags & QE_SHARED) || e->state == QE_WAIT_PUBCOMP) {
				i++;
				continue;
			}
			struct qentry taken;
			qring_remove(q, i, &taken);
			if (qring_push(&shared, &taken))
				qentry_release(&taken);
		}
	}
	qring_free(&s->queue);
	qring_free(&s->inflight);
	s->queued_bytes = 0;
	pthread_mutex_unlock(&s->lock);

	log_debug("session %s ended", s->client_id);
	for (uint32_t i = 0; i < shared.count; i++) {
		struct qentry e = *qring_at(&shared, i);
		route_reshare(w, s, &e, 1);
	}
	free(shared.e);
	will_publish(w, will);
	session_unref(s);
}

void broker_housekeeping(struct broker *b)
{
	struct bworker *w = &b->workers[0];
	uint64_t now = clock_wall_ms();
	struct msg **wills = NULL;
	struct session **ended = NULL;
	uint32_t n_wills = 0, n_ended = 0;

	pthread_mutex_lock(&b->reg_lock);
	if (b->n_timed) {
		wills = malloc(sizeof *wills * b->n_timed);
		ended = malloc(sizeof *ended * b->n_timed);
	}
	for (uint32_t i = 0; wills && ended && i < b->n_timed;) {
		struct session *s = b->timed[i];
		bool end = false, keep = false;
		pthread_mutex_lock(&s->lock);
		if (!s->client && !s->ended) {
			if (s->will && s->will_at && now >= s->will_at) {
				wills[n_wills++] = s->will;
				s->will = NULL;
				s->will_at = 0;
			}
			end = s->expires_at && now >= s->expires_at;
			keep = !end && (s->will_at || s->expires_at);
		}
		pthread_mutex_unlock(&s->lock);
		if (keep) {
			i++;
			continue;
		}
		b->timed[i] = b->timed[--b->n_timed];
		s->timed = false;
		if (end) {
			log_info("session %s expired", s->client_id);
			registry_remove(b, s);
			ended[n_ended++] = s; /* the registry's reference moves here */
		}
		session_unref(s); /* the deadline list's reference */
	}
	pthread_mutex_unlock(&b->reg_lock);

	for (uint32_t i = 0; i < n_wills; i++)
		will_publish(w, wills[i]);
	for (uint32_t i = 0; i < n_ended; i++)
		session_end(w, ended[i]);
	free(wills);
	free(ended);
}
