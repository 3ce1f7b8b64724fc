/* Session end, session expiry and delayed wills. */
#include "sessions.h"
#include "access.h"
#include "admit.h"
#include "broker.h"
#include "persist.h"
#include "queue_limits.h"
#include "registry.h"
#include "retain.h"
#include "route.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../base/err.h"
#include "../base/hmap.h"
#include "../base/vec.h"
#include <stdlib.h>
#include <string.h>

int broker__session_timed_add(struct broker *b, struct session *s)
{
	if (s->timed)
		return 0;
	if (vec_grow(&b->timed, &b->cap_timed, b->n_timed, sizeof *b->timed, 64))
		return -FM_ENOMEM;
	b->timed[b->n_timed++] = session_ref(s);
	s->timed = true;
	return 0;
}

struct msg *broker__session_take_will(struct session *s, char **user)
{
	struct msg *will = s->will;
	s->will = NULL;
	*user = s->will_user;
	s->will_user = NULL;
	return will;
}

void broker__session_will_publish(struct bworker *w, const char *client_id, char *user, struct msg *will)
{
	struct broker *b = w->b;
	if (!will)
		goto out;
	/* Admitted at CONNECT; the ACL may have been reloaded since. */
	struct access_ref ref;
	enum admit admit = ADMIT_DENIED;
	if (broker__access_acl_now(b, user, client_id, &ref) == 0) {
		admit = broker__admit(b, ref.acl, msg_topic(will), will->topic_len, false);
		broker__access_ref_release(&ref);
	}
	if (admit != ADMIT_OK) {
		w->stats.drops[DROP_NOT_AUTHORIZED]++;
		log_notice("will of %s (user %s) on %.*s not published: %s", client_id, user ? user : "-",
			   (int)will->topic_len, msg_topic(will), broker__admit_why(admit));
		msg_unref(will);
		goto out;
	}
	if (will->retain && b->cfg.retain_available)
		broker__retain_set(w, will);
	log_debug("publishing the will of %s on %.*s", client_id, (int)will->topic_len, msg_topic(will));
	broker__route_publish(w, will);
	msg_unref(will);
out:
	free(user);
}

void broker__session_end(struct bworker *w, struct session *s)
{
	struct broker *b = w->b;
	/* Ended under both locks: a SUBSCRIBE racing with this end (its
	 * connection taken over) either comes first and is removed here, or sees
	 * `ended` and adds nothing. */
	pthread_rwlock_wrlock(&b->subs_lock);
	pthread_mutex_lock(&s->lock);
	s->ended = true;
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
	broker__persist_session_del(w, s);
	char *will_user;
	struct msg *will = broker__session_take_will(s, &will_user); /* a pending delayed will fires at session end */
	s->will_at = 0;
	/* $share messages not yet acknowledged go to another member; routing
	 * needs the body, which one that gave it up to the store no longer
	 * has (its entry holds the body's store id): that one ends here. */
	struct qring shared = { 0 };
	uint32_t shared_on_disk = 0;
	for (struct qring *q = &s->inflight; q; q = q == &s->inflight ? &s->queue : NULL) {
		for (uint32_t i = 0; i < q->count;) {
			struct qentry *e = qring_at(q, i);
			bool on_disk = qentry_on_disk(e);
			if (!(e->flags & QE_SHARED) || e->state == QE_WAIT_PUBCOMP || on_disk) {
				shared_on_disk += (e->flags & QE_SHARED) && e->state != QE_WAIT_PUBCOMP && on_disk;
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
	if (shared_on_disk)
		log_warn("session %s ended with %u $share message%s whose body is only in the store: not handed "
			 "to another member", s->client_id, shared_on_disk, shared_on_disk == 1 ? "" : "s");
	for (uint32_t i = 0; i < shared.count; i++) {
		struct qentry e = *qring_at(&shared, i);
		broker__route_reshare(w, s, &e, 1);
	}
	free(shared.e);
	broker__session_will_publish(w, s->client_id, will_user, will);
	session_unref(s);
}

/* Removes expired messages from the queues of offline sessions (online ones
 * drop them when they reach the head), so they leave the disk too. */
static void sweep_expired(struct bworker *w)
{
	struct broker *b = w->b;
	uint64_t now = clock_wall_ms();
	uint64_t swept = 0;
	pthread_mutex_lock(&b->reg_lock);
	size_t pos = 0;
	for (struct session *s; (s = broker__registry_next(b, &pos));) {
		uint64_t n = 0;
		pthread_mutex_lock(&s->lock);
		for (uint32_t k = 0; !s->client && k < s->queue.count;) {
			struct qentry *e = qring_at(&s->queue, k);
			if (!qentry_expired(e, now)) {
				k++;
				continue;
			}
			struct qentry gone;
			qring_remove(&s->queue, k, &gone);
			s->queued_bytes -= gone.bytes;
			broker__persist_queue_del(w, s, &gone);
			qentry_release(&gone);
			n++;
		}
		broker__queue_note_drops(w, s, DROP_EXPIRED, n);
		swept += n;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&b->reg_lock);
	if (swept)
		log_debug("removed %llu expired messages from offline sessions", (unsigned long long)swept);
}

void broker_housekeeping(struct broker *b)
{
	struct bworker *w = &b->workers[0];
	uint64_t now = clock_wall_ms();
	struct due_will {
		struct session *of; /* reference */
		struct msg *will;
		char *user;
	} *wills = NULL;
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
				struct due_will *d = &wills[n_wills++];
				d->of = session_ref(s);
				d->will = broker__session_take_will(s, &d->user);
				s->will_at = 0;
				broker__persist_session(w, s);
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
			broker__registry_remove(b, s);
			ended[n_ended++] = s; /* the registry's reference moves here */
		}
		session_unref(s); /* the deadline list's reference */
	}
	pthread_mutex_unlock(&b->reg_lock);

	for (uint32_t i = 0; i < n_wills; i++) {
		broker__session_will_publish(w, wills[i].of->client_id, wills[i].user, wills[i].will);
		session_unref(wills[i].of);
	}
	for (uint32_t i = 0; i < n_ended; i++)
		broker__session_end(w, ended[i]);
	free(wills);
	free(ended);
	/* Every second and every ~10 s (housekeeping runs every 250 ms). */
	if (++b->housekeeping_runs % 4 == 0)
		broker__queue_budget_sweep(w);
	if (b->housekeeping_runs % 40 == 0)
		sweep_expired(w);
	broker__persist_commit(w, NULL, NULL, 0, 0, false);
}

struct session *broker_restore_session(struct broker *b, uint64_t sid, const char *client_id,
				       uint32_t expiry_interval, uint64_t expires_at, uint8_t version,
				       struct msg *will, uint32_t will_delay, uint64_t will_at,
				       const char *will_user)
{
	uint64_t now = clock_wall_ms();
	struct session *s = session_new(client_id, strlen(client_id), sid);
	if (!s)
		return NULL;
	s->expiry_interval = expiry_interval;
	s->version = version;
	s->stored = true;
	/* A session that was connected when the broker stopped lost its
	 * connection then: its expiry and its will start now. */
	s->expires_at = expires_at ? expires_at
		      : expiry_interval != UINT32_MAX ? now + (uint64_t)expiry_interval * 1000 : 0;
	if (will && will_user && !(s->will_user = strdup(will_user))) {
		session_unref(s);
		return NULL;
	}
	if (will) {
		s->will = msg_ref(will);
		s->will_delay = will_delay;
		s->will_at = will_at ? will_at : now + (uint64_t)will_delay * 1000;
	}
	pthread_mutex_lock(&b->reg_lock);
	int rc = broker__registry_insert(b, s);
	if (!rc && (s->expires_at || s->will_at))
		rc = broker__session_timed_add(b, s);
	pthread_mutex_unlock(&b->reg_lock);
	if (rc) {
		session_unref(s);
		return NULL;
	}
	return s;
}

int broker_restore_sub(struct broker *b, struct session *s, const char *filter, uint8_t options, uint32_t sub_id)
{
	size_t len = strlen(filter);
	const char *group, *f;
	size_t glen, flen;
	int shared = topic_share_split(filter, len, &group, &glen, &f, &flen);
	if (shared < 0 || !topic_filter_valid(f, flen))
		return -FM_EINVAL;
	struct sub_entry e = { s, options, sub_id };
	pthread_rwlock_wrlock(&b->subs_lock);
	int rc = sub_index_add(b->subs, f, flen, shared == 1 ? group : NULL, shared == 1 ? glen : 0, &e);
	pthread_rwlock_unlock(&b->subs_lock);
	if (rc < 0)
		return rc;
	rc = session_sub_add(s, filter, len, options, sub_id);
	return rc < 0 ? rc : 0;
}

int broker_restore_entry(struct session *s, const struct restored_entry *r)
{
	/* Whether it went out before the restart is not known: send it as a
	 * possible redelivery [MQTT-3.3.1-1]. */
	struct qentry e = { .seq = r->seq, .bytes = r->bytes, .expiry_s = (uint32_t)((r->expiry_at + 999) / 1000),
			    .queued_s = r->queued_s,
			    .qos = r->qos, .flags = (uint8_t)(r->flags | QE_MAYBE_SENT), .state = r->state };
	if (r->msg) {
		e.msg = r->msg;
	} else {
		e.msg_id = r->msg_id;
		e.flags |= QE_ON_DISK;
	}
	e.n_sub_ids = (uint8_t)r->n_sub_ids;
	if (r->n_sub_ids == 1) {
		e.u.sub_id = r->sub_ids[0];
	} else if (r->n_sub_ids > 1) {
		if (!(e.u.sub_ids = malloc(sizeof(uint32_t) * r->n_sub_ids)))
			return -FM_ENOMEM;
		memcpy(e.u.sub_ids, r->sub_ids, sizeof(uint32_t) * r->n_sub_ids);
	}
	struct qring *q = r->state == QE_QUEUED ? &s->queue : &s->inflight;
	if (qring_push(q, &e)) {
		if (r->n_sub_ids > 1)
			free(e.u.sub_ids);
		return -FM_ENOMEM;
	}
	if (r->msg)
		msg_ref(r->msg);
	if (r->state == QE_QUEUED)
		s->queued_bytes += r->bytes;
	if (r->seq >= s->next_seq)
		s->next_seq = r->seq + 1;
	return 0;
}

int broker_restore_retained(struct broker *b, struct msg *m)
{
	int err;
	struct msg *old = retain_index_set(b->retained, msg_topic(m), m->topic_len, msg_ref(m), &err);
	msg_unref(old);
	if (err)
		msg_unref(m);
	return err;
}

void broker_restore_done(struct broker *b, uint64_t next_sid, uint64_t next_msg_id, uint64_t next_retain_version)
{
	b->retain_version = next_retain_version;
	atomic_store(&b->next_sid, next_sid);
	atomic_store(&b->next_msg_id, next_msg_id);
}
