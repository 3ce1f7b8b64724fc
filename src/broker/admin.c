/* Administration: jobs on every worker, listings for the HTTP API, kicking a
 * client, deleting a session, and $SYS messages. Locks follow broker.h's
 * order: registry -> subscription index -> retained index -> one session. */
#include "admin.h"
#include "client.h"
#include "persist.h"
#include "queue_limits.h"
#include "registry.h"
#include "route.h"
#include "sessions.h"
#include "../base/log.h"
#include "../base/err.h"
#include "../base/vec.h"
#include <stdlib.h>
#include <string.h>

/* Appends an item to a worker's administrative list and wakes it.
 * Returns 0 or -FM_ENOMEM. Thread-safe. */
static int admin_push(struct broker *b, int worker, struct admin_item item)
{
	struct bworker *to = &b->workers[worker];
	pthread_mutex_lock(&to->wake_lock);
	if (vec_grow(&to->admin, &to->cap_admin, to->n_admin, sizeof *to->admin, 8)) {
		pthread_mutex_unlock(&to->wake_lock);
		return -FM_ENOMEM;
	}
	to->admin[to->n_admin++] = item;
	/* Woken under the lock, as broker__inbox_push_to does. */
	b->ports.wake(b, worker);
	pthread_mutex_unlock(&to->wake_lock);
	return 0;
}

/* One worker has run j (or could not): the last one hands it to `home`. */
static void job_ran(struct broker *b, struct broker_job *j)
{
	if (atomic_fetch_sub(&j->pending, 1) == 1 &&
	    admin_push(b, j->home, (struct admin_item){ .job = j, .finish = true }))
		log_err("out of memory: an administrative job is not finished");
}

int broker_job_start(struct broker *b, struct broker_job *j, int home)
{
	/* Counted before the check: a worker that saw no job in flight after
	 * shutdown began may stop its loop, and then we see shutting_down. */
	atomic_fetch_add(&b->jobs_in_flight, 1);
	if (atomic_load(&b->shutting_down)) {
		atomic_fetch_sub(&b->jobs_in_flight, 1);
		return -FM_EINVAL;
	}
	j->home = home;
	atomic_store(&j->pending, b->n_workers);
	for (unsigned i = 0; i < b->n_workers; i++) {
		if (admin_push(b, (int)i, (struct admin_item){ .job = j })) {
			log_err("out of memory: an administrative job skips worker %u", i);
			job_ran(b, j);
		}
	}
	return 0;
}

void broker__admin_run(struct bworker *w)
{
	struct broker *b = w->b;
	pthread_mutex_lock(&w->wake_lock);
	struct admin_item *items = w->admin;
	uint32_t n = w->n_admin;
	w->admin = NULL;
	w->n_admin = w->cap_admin = 0;
	pthread_mutex_unlock(&w->wake_lock);
	for (uint32_t i = 0; i < n; i++) {
		struct admin_item *it = &items[i];
		if (it->kick) {
			if (it->kick->state == CLIENT_CONNECTED)
				broker__client_disconnect(it->kick, it->kick_rc, "administrative action");
			b->ports.conn_unref(it->kick);
		}
		if (it->job && it->finish) {
			it->job->done(it->job); /* may free the job */
			atomic_fetch_sub(&b->jobs_in_flight, 1);
		} else if (it->job) {
			it->job->run(it->job, w);
			job_ran(b, it->job);
		}
	}
	free(items);
}

static char *dup_or_null(const char *s, bool *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

int broker_worker_list_clients(struct bworker *w, struct client_info **arr, uint32_t *n, uint32_t *cap)
{
	for (struct client *c = w->clients; c; c = c->next) {
		struct session *s = c->session;
		if (c->state != CLIENT_CONNECTED || !s)
			continue;
		if (vec_grow(arr, cap, *n, sizeof **arr, 64))
			return -FM_ENOMEM;
		struct client_info *ci = &(*arr)[*n];
		memset(ci, 0, sizeof *ci);
		bool oom = false;
		ci->client_id = dup_or_null(s->client_id, &oom);
		ci->username = dup_or_null(c->username, &oom);
		ci->identity = dup_or_null(c->identity, &oom);
		if (oom) {
			free(ci->client_id);
			free(ci->username);
			free(ci->identity);
			return -FM_ENOMEM;
		}
		client_addr_text(c, ci->address);
		ci->version = c->version;
		ci->listener_port = c->listener_port;
		ci->keepalive = c->keepalive;
		pthread_mutex_lock(&s->lock);
		if (s->client == c) {
			ci->inflight = s->inflight.count;
			ci->queued = s->queue.count;
		}
		pthread_mutex_unlock(&s->lock);
		ci->msgs_received = c->msgs_received;
		ci->msgs_sent = c->msgs_sent;
		ci->bytes_received = c->bytes_received;
		ci->bytes_sent = c->bytes_sent;
		ci->connected_ms = c->connected_at_ms;
		ci->worker = w->id;
		(*n)++;
	}
	return 0;
}

void client_info_free(struct client_info *a, uint32_t n)
{
	for (uint32_t i = 0; a && i < n; i++) {
		free(a[i].client_id);
		free(a[i].username);
		free(a[i].identity);
	}
	free(a);
}

/* Calls each(ctx, s) for every session, with the registry and s locked.
 * Stops at the first non-zero return and returns it. */
static int each_session(struct broker *b, int (*each)(void *ctx, struct session *s), void *ctx)
{
	int rc = 0;
	pthread_mutex_lock(&b->reg_lock);
	size_t pos = 0;
	for (struct session *s; !rc && (s = broker__registry_next(b, &pos));) {
		pthread_mutex_lock(&s->lock);
		rc = each(ctx, s);
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&b->reg_lock);
	return rc;
}

struct session_list {
	struct session_info *a;
	uint32_t n, cap;
};

static int add_session(void *ctx, struct session *s)
{
	struct session_list *l = ctx;
	if (vec_grow(&l->a, &l->cap, l->n, sizeof *l->a, 64))
		return -FM_ENOMEM;
	struct session_info *si = &l->a[l->n];
	if (!(si->client_id = strdup(s->client_id)))
		return -FM_ENOMEM;
	si->connected = s->client != NULL;
	si->queued = s->queue.count;
	si->inflight = s->inflight.count;
	si->subscriptions = s->n_subs;
	si->expiry_interval = s->expiry_interval;
	si->queued_bytes = s->queued_bytes;
	const struct qentry *head = s->queue.count ? qring_at(&s->queue, 0) : NULL;
	si->oldest_ms = head ? (uint64_t)head->queued_s * 1000 : 0;
	si->expires_at = s->client ? 0 : s->expires_at;
	l->n++;
	return 0;
}

int broker_list_sessions(struct broker *b, struct session_info **out, uint32_t *n)
{
	struct session_list l = { 0 };
	int rc = each_session(b, add_session, &l);
	if (rc) {
		session_info_free(l.a, l.n);
		return rc;
	}
	*out = l.a;
	*n = l.n;
	return 0;
}

void session_info_free(struct session_info *a, uint32_t n)
{
	for (uint32_t i = 0; a && i < n; i++)
		free(a[i].client_id);
	free(a);
}

struct sub_list {
	struct sub_info *a;
	uint32_t n, cap;
};

static int add_subs(void *ctx, struct session *s)
{
	struct sub_list *l = ctx;
	for (uint32_t k = 0; k < s->n_subs; k++) {
		if (vec_grow(&l->a, &l->cap, l->n, sizeof *l->a, 64))
			return -FM_ENOMEM;
		struct sub_info *si = &l->a[l->n];
		si->client_id = strdup(s->client_id);
		si->filter = strndup(s->subs[k].filter, s->subs[k].len);
		si->options = s->subs[k].options;
		si->sub_id = s->subs[k].sub_id;
		if (!si->client_id || !si->filter) {
			free(si->client_id);
			free(si->filter);
			return -FM_ENOMEM;
		}
		l->n++;
	}
	return 0;
}

int broker_list_subscriptions(struct broker *b, struct sub_info **out, uint32_t *n)
{
	struct sub_list l = { 0 };
	int rc = each_session(b, add_subs, &l);
	if (rc) {
		sub_info_free(l.a, l.n);
		return rc;
	}
	*out = l.a;
	*n = l.n;
	return 0;
}

void sub_info_free(struct sub_info *a, uint32_t n)
{
	for (uint32_t i = 0; a && i < n; i++) {
		free(a[i].client_id);
		free(a[i].filter);
	}
	free(a);
}

struct retained_list {
	struct retained_info *a;
	uint32_t n, cap;
	bool oom;
};

static void add_retained(void *ctx, void *msg)
{
	struct retained_list *l = ctx;
	const struct msg *m = msg;
	if (l->oom || vec_grow(&l->a, &l->cap, l->n, sizeof *l->a, 64)) {
		l->oom = true;
		return;
	}
	struct retained_info *ri = &l->a[l->n];
	if (!(ri->topic = strndup(msg_topic(m), m->topic_len))) {
		l->oom = true;
		return;
	}
	ri->bytes = m->payload_len;
	ri->qos = m->qos;
	l->n++;
}

int broker_list_retained(struct broker *b, struct retained_info **out, uint32_t *n)
{
	struct retained_list l = { 0 };
	pthread_rwlock_rdlock(&b->retain_lock);
	retain_index_each(b->retained, add_retained, &l);
	pthread_rwlock_unlock(&b->retain_lock);
	if (l.oom) {
		retained_info_free(l.a, l.n);
		return -FM_ENOMEM;
	}
	*out = l.a;
	*n = l.n;
	return 0;
}

void retained_info_free(struct retained_info *a, uint32_t n)
{
	for (uint32_t i = 0; a && i < n; i++)
		free(a[i].topic);
	free(a);
}

/* The top list holds sessions (alive under the registry lock) until the
 * walk ends; their ids are copied then. */
struct totals_walk {
	struct queue_totals *t;
	struct session *top[QUEUE_TOP_N];
	struct session_limits lim; /* as session_enqueue applies them */
};

/* Percent of the fuller of the two queue limits s's queue uses; 0 without
 * limits (s->lock held). */
static double queue_share(const struct session *s, const struct session_limits *lim)
{
	double share = 0;
	if (lim->max_messages)
		share = (double)s->queue.count * 100.0 / lim->max_messages;
	if (lim->max_bytes) {
		double by_bytes = (double)s->queued_bytes * 100.0 / (double)lim->max_bytes;
		if (by_bytes > share)
			share = by_bytes;
	}
	return share;
}

static int add_totals(void *ctx, struct session *s)
{
	struct totals_walk *tw = ctx;
	struct queue_totals *t = tw->t;
	t->queued += s->queue.count;
	t->queued_bytes += s->queued_bytes;
	t->inflight += s->inflight.count;
	if (!s->queue.count)
		return 0;
	/* Insertion into the sorted top list, largest first. */
	uint32_t i = t->n_top < QUEUE_TOP_N ? t->n_top++ : QUEUE_TOP_N;
	while (i > 0 && t->top[i - 1].queued < s->queue.count) {
		if (i < QUEUE_TOP_N) {
			t->top[i] = t->top[i - 1];
			tw->top[i] = tw->top[i - 1];
		}
		i--;
	}
	if (i < QUEUE_TOP_N) {
		t->top[i] = (struct queue_top){ NULL, s->queue.count, s->queued_bytes, s->client != NULL };
		tw->top[i] = s;
	}
	return 0;
}

void broker_queue_totals(struct broker *b, struct queue_totals *t, const struct queue_watch *watch)
{
	struct totals_walk tw = { .t = t, .lim = broker__queue_limits(b) };
	memset(t, 0, sizeof *t);
	pthread_mutex_lock(&b->reg_lock);
	size_t pos = 0;
	for (struct session *s; (s = broker__registry_next(b, &pos));) {
		pthread_mutex_lock(&s->lock);
		add_totals(&tw, s);
		double share = queue_share(s, &tw.lim);
		pthread_mutex_unlock(&s->lock);
		if (share > t->fullest_share)
			t->fullest_share = share;
		/* client_id is immutable and the session alive under the registry lock. */
		if (watch && share > watch->over_percent)
			watch->fn(watch->ctx, s->client_id, share);
	}
	/* client_id is immutable: no session lock needed to copy it. */
	uint32_t kept = 0;
	for (uint32_t i = 0; i < t->n_top; i++) {
		t->top[kept] = t->top[i];
		if ((t->top[kept].client_id = strdup(tw.top[i]->client_id)))
			kept++;
	}
	t->n_top = kept;
	pthread_mutex_unlock(&b->reg_lock);
}

void queue_totals_free(struct queue_totals *t)
{
	for (uint32_t i = 0; i < t->n_top; i++)
		free(t->top[i].client_id);
	t->n_top = 0;
}

size_t broker_subscription_count(struct broker *b)
{
	pthread_rwlock_rdlock(&b->subs_lock);
	size_t n = sub_index_count(b->subs);
	pthread_rwlock_unlock(&b->subs_lock);
	return n;
}

size_t broker_retained_count(struct broker *b)
{
	pthread_rwlock_rdlock(&b->retain_lock);
	size_t n = retain_index_count(b->retained);
	pthread_rwlock_unlock(&b->retain_lock);
	return n;
}

/* Hands c (a conn reference owned by the caller) to its worker to be
 * disconnected with rc. */
static void kick_to_worker(struct broker *b, struct client *c, uint8_t rc)
{
	if (admin_push(b, c->worker, (struct admin_item){ .kick = c, .kick_rc = rc })) {
		log_err("out of memory: client %s not disconnected", c->session ? c->session->client_id : "?");
		b->ports.conn_unref(c);
	}
}

int broker_kick(struct broker *b, const char *id, size_t len, uint8_t rc)
{
	struct client *c = NULL;
	pthread_mutex_lock(&b->reg_lock);
	struct session *s = broker__registry_find(b, id, len);
	if (s) {
		pthread_mutex_lock(&s->lock);
		if ((c = s->client))
			b->ports.conn_ref(c);
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&b->reg_lock);
	if (!c)
		return -FM_ENOENT;
	log_notice("client %.*s: disconnect requested by an administrator", (int)len, id);
	kick_to_worker(b, c, rc);
	return 0;
}

/* Deleting the session of a connected client. The client can still send
 * until its own worker disconnects it, and a SUBSCRIBE it sends after
 * broker__session_end would leave the subscription index pointing at the freed
 * session (and broker__session_end would read s->subs while that worker grows it).
 * So that worker disconnects the client, then ends the session. */
struct delete_job {
	struct broker_job job;
	struct client *c;  /* conn reference */
	struct session *s; /* the registry's reference */
	int worker;        /* c's, copied: c may be gone when others run the job */
	uint8_t rc;
};

static void delete_run(struct broker_job *j, struct bworker *w)
{
	struct delete_job *d = (struct delete_job *)j;
	if (w->id != d->worker)
		return;
	if (d->c->state == CLIENT_CONNECTED)
		broker__client_disconnect(d->c, d->rc, "administrative action");
	broker__session_end(w, d->s); /* consumes the registry's reference */
	broker__persist_commit(w, NULL, NULL, 0, 0, false);
	w->b->ports.conn_unref(d->c);
}

static void delete_done(struct broker_job *j) { free(j); }

int broker_delete_session(struct bworker *w, const char *id, size_t len, uint8_t rc)
{
	struct broker *b = w->b;
	struct client *c = NULL;
	pthread_mutex_lock(&b->reg_lock);
	struct session *s = broker__registry_find(b, id, len);
	if (!s) {
		pthread_mutex_unlock(&b->reg_lock);
		return -FM_ENOENT;
	}
	broker__registry_remove(b, s);
	pthread_mutex_lock(&s->lock);
	if ((c = s->client)) {
		/* Detached like a take-over: the connection's end leaves the
		 * session alone. */
		b->ports.conn_ref(c);
		s->client = NULL;
		__atomic_store_n(&s->worker, -1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&b->reg_lock);
	log_notice("session %.*s deleted by an administrator", (int)len, id);
	if (c) {
		atomic_fetch_sub(&b->stats.clients_connected, 1);
		struct delete_job *d = calloc(1, sizeof *d);
		if (d) {
			d->job.run = delete_run;
			d->job.done = delete_done;
			d->c = c;
			d->s = s;
			d->worker = c->worker;
			d->rc = rc;
			if (!broker_job_start(b, &d->job, w->id))
				return 0;
			free(d);
		}
		/* No job (out of memory, or shutting down, when no client sends
		 * any more): at once. */
		kick_to_worker(b, c, rc);
	}
	broker__session_end(w, s); /* consumes the registry's reference */
	broker__persist_commit(w, NULL, NULL, 0, 0, false);
	return 0;
}

int broker_publish_sys(struct bworker *w, const char *topic, const char *payload, size_t len)
{
	struct broker *b = w->b;
	struct msg *m = msg_new(topic, (uint16_t)strlen(topic), NULL, 0, (const uint8_t *)payload, (uint32_t)len, 0, true);
	if (!m)
		return -FM_ENOMEM;
	int err;
	pthread_rwlock_wrlock(&b->retain_lock);
	struct msg *old = retain_index_set(b->retained, topic, m->topic_len, msg_ref(m), &err);
	pthread_rwlock_unlock(&b->retain_lock);
	if (err)
		msg_unref(m);
	msg_unref(old);
	broker__route_publish(w, m);
	msg_unref(m);
	broker__persist_commit(w, NULL, NULL, 0, 0, false);
	return err;
}
