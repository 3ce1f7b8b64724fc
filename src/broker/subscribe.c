/* SUBSCRIBE and UNSUBSCRIBE, and retained messages sent on subscribe. */
#include "admit.h"
#include "client.h"
#include "handlers.h"
#include "persist.h"
#include "reply.h"
#include "route.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../auth/auth.h"
#include "../base/err.h"
#include "../base/vec.h"
#include "../sparkplug/sparkplug.h"
#include <stdlib.h>
#include <string.h>

struct retained_list {
	struct msg **m;
	uint32_t n, cap;
};

static void collect_retained(void *ctx, void *msg)
{
	struct retained_list *l = ctx;
	if (vec_grow(&l->m, &l->cap, l->n, sizeof *l->m, 16))
		return;
	l->m[l->n++] = msg_ref(msg);
}

/* Queues the retained messages matching filter for s [MQTT-3.3.1-9]. */
static void send_retained(struct client *c, const char *filter, size_t flen, uint8_t qos, uint32_t sub_id)
{
	struct broker *b = c->b;
	struct bworker *w = &b->workers[c->worker];
	struct retained_list l = { 0 };
	pthread_rwlock_rdlock(&b->retain_lock);
	retain_index_match(b->retained, filter, flen, collect_retained, &l);
	pthread_rwlock_unlock(&b->retain_lock);
	uint64_t now = clock_wall_ms();
	for (uint32_t i = 0; i < l.n; i++) {
		if (!msg_expired(l.m[i], now))
			broker__route_to_session(w, c->session, l.m[i], min_u8(qos, l.m[i]->qos), QE_RETAIN, &sub_id,
						 sub_id ? 1 : 0);
		msg_unref(l.m[i]);
	}
	free(l.m);
}

/* Adds one subscription; quota_full: it would be one more than
 * max_subscriptions_per_client. Returns the SUBACK code. */
static uint8_t subscribe_one(struct client *c, const struct mqtt_sub_entry *e, uint32_t sub_id, bool quota_full,
			     bool *fatal)
{
	struct broker *b = c->b;
	struct session *s = c->session;
	const char *f = (const char *)e->filter.p;
	size_t flen = e->filter.len;
	const char *group = NULL, *filter = f;
	size_t glen = 0, plen = flen;
	uint8_t qos = e->options & MQTT_SUBOPT_QOS_MASK;
	int shared = topic_share_split(f, flen, &group, &glen, &filter, &plen);
	if (shared < 0 || !topic_filter_valid(filter, plen))
		return c->version == MQTT_V5 ? MQTT_RC_TOPIC_FILTER_INVALID : MQTT_V3_SUBACK_FAILURE;
	if (!broker__admit_topic_limits(&b->cfg, f, flen)) {
		log_info("client %s: filter refused: longer than max_topic_length or max_topic_levels", s->client_id);
		return c->version == MQTT_V5 ? MQTT_RC_TOPIC_FILTER_INVALID : MQTT_V3_SUBACK_FAILURE;
	}
	if (shared == 1 && (e->options & MQTT_SUBOPT_NO_LOCAL)) {
		/* [MQTT-3.8.3-4] */
		broker__client_disconnect(c, MQTT_RC_PROTOCOL_ERROR, "No Local on a shared subscription");
		*fatal = true;
		return MQTT_RC_PROTOCOL_ERROR;
	}
	if (c->acl) {
		uint8_t verdict = auth_acl_client_can_subscribe(c->acl, filter, plen);
		/* Copies of births are read where the births are (broker__spb_acl_can_read):
		 * $sparkplug/certificates/F is granted where F would be. */
		const char *orig;
		size_t olen;
		if (verdict == AUTH_SUB_NOT_AUTHORIZED && spb_certificate_original(filter, plen, &orig, &olen) &&
		    topic_filter_valid(orig, olen))
			verdict = auth_acl_client_can_subscribe(c->acl, orig, olen);
		if (verdict) {
			log_debug("client %s: subscription to %.*s denied by the ACL", s->client_id, (int)flen, f);
			return c->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : MQTT_V3_SUBACK_FAILURE;
		}
	}
	if (quota_full) {
		log_info("client %s: subscription to %.*s refused: max_subscriptions_per_client %u reached",
			 s->client_id, (int)flen, f, b->cfg.max_subscriptions_per_client);
		return c->version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : MQTT_V3_SUBACK_FAILURE;
	}
	/* Index and session list change together, and only while the session is
	 * still this connection's: one taken over (or ended, which empties the
	 * index of it under these locks) must not get a subscription that would
	 * outlive it in the index. */
	struct sub_entry entry = { s, e->options, sub_id };
	pthread_rwlock_wrlock(&b->subs_lock);
	pthread_mutex_lock(&s->lock);
	int rc = -FM_ENOENT;
	if (!s->ended && s->client == c &&
	    (rc = sub_index_add(b->subs, filter, plen, shared == 1 ? group : NULL, glen, &entry)) >= 0) {
		rc = session_sub_add(s, f, flen, e->options, sub_id);
		if (rc >= 0)
			broker__persist_sub(&b->workers[c->worker], s, f, flen, e->options, sub_id, true);
		else
			sub_index_remove(b->subs, filter, plen, shared == 1 ? group : NULL, glen, s);
	}
	pthread_mutex_unlock(&s->lock);
	pthread_rwlock_unlock(&b->subs_lock);
	if (rc < 0)
		return c->version == MQTT_V5 ? MQTT_RC_UNSPECIFIED : MQTT_V3_SUBACK_FAILURE;
	log_debug("client %s subscribed to %.*s (QoS %u)", s->client_id, (int)flen, f, qos);
	return qos;
}

/* A SUBACK or UNSUBACK that waits for the store, and the retained messages
 * to send after it. */
struct suback_body {
	struct reply_body rb;
	uint32_t n_retained;
	struct retained_req {
		char *filter;
		uint16_t len;
		uint8_t qos;
		uint32_t sub_id;
	} retained[];
};

static void suback_then(struct client *c, struct reply_body *rb)
{
	struct suback_body *x = (struct suback_body *)rb;
	for (uint32_t i = 0; i < x->n_retained; i++)
		send_retained(c, x->retained[i].filter, x->retained[i].len, x->retained[i].qos, x->retained[i].sub_id);
}

static void suback_release(struct reply_body *rb)
{
	struct suback_body *x = (struct suback_body *)rb;
	for (uint32_t i = 0; i < x->n_retained; i++)
		free(x->retained[i].filter);
	buf_free(&x->rb.bytes);
	free(x);
}

/* Room for n retained requests; NULL when out of memory. */
static struct suback_body *suback_body_new(uint32_t n)
{
	struct suback_body *x = calloc(1, sizeof *x + (size_t)n * sizeof x->retained[0]);
	if (!x)
		return NULL;
	x->rb.what = "subscription change";
	x->rb.instead = "acknowledged anyway, held in memory";
	x->rb.then = suback_then;
	x->rb.release = suback_release;
	return x;
}

struct handled broker__handle_subscribe(struct client *c, const struct mqtt_subscribe *m)
{
	struct broker *b = c->b;
	uint32_t sub_id = m->props.have & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID) ? m->props.sub_id : 0;
	uint8_t *rcs = malloc(m->n);
	struct suback_body *x = suback_body_new(m->n);
	if (!rcs || !x) {
		free(rcs);
		free(x);
		broker__client_disconnect(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
		return HANDLED_CLOSED;
	}
	uint32_t off = 0, i = 0;
	struct mqtt_sub_entry e;
	bool fatal = false;
	while (!fatal && mqtt_topics_next(m, true, &off, &e)) {
		pthread_mutex_lock(&c->session->lock);
		bool existed = session_sub_find(c->session, (const char *)e.filter.p, e.filter.len) >= 0;
		uint32_t max = b->cfg.max_subscriptions_per_client;
		bool quota_full = !existed && max && c->session->n_subs >= max;
		pthread_mutex_unlock(&c->session->lock);
		rcs[i] = subscribe_one(c, &e, sub_id, quota_full, &fatal);
		uint8_t rh = (e.options & MQTT_SUBOPT_RH_MASK) >> MQTT_SUBOPT_RH_SHIFT;
		bool shared = e.filter.len > 7 && !memcmp(e.filter.p, "$share/", 7);
		/* Retain Handling: 0 always, 1 only for a new subscription, 2 never;
		 * shared subscriptions get none [MQTT-3.3.1-9..11]. */
		if (rcs[i] < 0x80 && !shared && (rh == 0 || (rh == 1 && !existed))) {
			struct retained_req *r = &x->retained[x->n_retained];
			if ((r->filter = strndup((const char *)e.filter.p, e.filter.len))) {
				r->len = (uint16_t)e.filter.len;
				r->qos = rcs[i];
				r->sub_id = sub_id;
				x->n_retained++;
			}
		}
		i++;
	}
	struct mqtt_suback ack = { .pid = m->pid, .rcs = rcs, .n = m->n };
	if (!fatal)
		mqtt_encode_suback(&x->rb.bytes, c->version, MQTT_SUBACK, &ack);
	free(rcs);
	/* The SUBACK promises the subscription survives a restart. */
	broker__reply_body(&b->workers[c->worker], c, MQTT_SUBACK, &x->rb);
	return fatal ? HANDLED_CLOSED : HANDLED_OPEN;
}

struct handled broker__handle_unsubscribe(struct client *c, const struct mqtt_subscribe *m)
{
	struct broker *b = c->b;
	struct bworker *w = &b->workers[c->worker];
	struct session *s = c->session;
	uint8_t *rcs = malloc(m->n);
	struct suback_body *x = suback_body_new(0);
	if (!rcs || !x) {
		free(rcs);
		free(x);
		broker__client_disconnect(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
		return HANDLED_CLOSED;
	}
	uint32_t off = 0, i = 0;
	struct mqtt_sub_entry e;
	while (mqtt_topics_next(m, false, &off, &e)) {
		const char *f = (const char *)e.filter.p, *group = NULL, *filter = f;
		size_t glen = 0, plen = e.filter.len;
		int shared = topic_share_split(f, e.filter.len, &group, &glen, &filter, &plen);
		if (shared < 0 || !topic_filter_valid(filter, plen)) {
			rcs[i++] = MQTT_RC_TOPIC_FILTER_INVALID;
			continue;
		}
		pthread_rwlock_wrlock(&b->subs_lock);
		pthread_mutex_lock(&s->lock);
		int rc = -FM_ENOENT;
		if (!s->ended && s->client == c) { /* a session taken over is no longer this connection's */
			rc = sub_index_remove(b->subs, filter, plen, shared == 1 ? group : NULL, glen, s);
			if (session_sub_remove(s, f, e.filter.len))
				broker__persist_sub(w, s, f, e.filter.len, 0, 0, false);
		}
		pthread_mutex_unlock(&s->lock);
		pthread_rwlock_unlock(&b->subs_lock);
		rcs[i++] = rc == 0 ? MQTT_RC_SUCCESS : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
	}
	struct mqtt_suback ack = { .pid = m->pid, .rcs = rcs, .n = i };
	mqtt_encode_suback(&x->rb.bytes, c->version, MQTT_UNSUBACK, &ack);
	free(rcs);
	broker__reply_body(w, c, MQTT_UNSUBACK, &x->rb);
	return HANDLED_OPEN;
}
