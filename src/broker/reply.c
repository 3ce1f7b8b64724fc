/* Replies that go out after the commit of what they acknowledge (reply.h). */
#include "reply.h"
#include "client.h"
#include "inbox.h"
#include "persist.h"
#include "../base/log.h"
#include "../base/err.h"
#include <stdlib.h>
#include <string.h>

/* Queues r behind this worker's current action, or runs it now (nothing to
 * wait for, or out of memory: then it runs as a failed commit). */
static void reply_queue(struct bworker *w, const struct store_cb *r, bool force)
{
	r->c->b->ports.conn_ref(r->c);
	int rc = broker__persist_commit_cb(w, r, force);
	if (rc <= 0)
		broker__reply_done(r, rc);
}

void broker__reply_ack(struct bworker *w, struct client *c, uint8_t kind, uint16_t pid, uint8_t rc, const char *why,
		       bool force)
{
	struct store_cb r = { .c = c, .pid = pid, .kind = kind, .rc = rc, .why = why };
	reply_queue(w, &r, force);
}

void broker__reply_held(struct bworker *w, struct client *c, uint16_t pid, uint8_t rc, const char *why,
			struct reply_held *held)
{
	struct store_cb r = { .ctx = held, .c = c, .pid = pid, .kind = MQTT_PUBREC, .rc = rc, .why = why };
	reply_queue(w, &r, false);
}

struct reply_held *broker__reply_held_new(struct bworker *w, struct msg *msg)
{
	struct reply_held *h = malloc(sizeof *h + (size_t)w->n_held * sizeof h->sessions[0]);
	if (!h)
		return NULL;
	h->msg = msg;
	h->n = w->n_held;
	if (w->n_held)
		memcpy(h->sessions, w->held, (size_t)w->n_held * sizeof h->sessions[0]);
	w->n_held = 0; /* the references moved to h; the array stays for the next one */
	return h;
}

void broker__reply_body(struct bworker *w, struct client *c, uint8_t kind, struct reply_body *rb)
{
	struct store_cb r = { .ctx = rb, .c = c, .kind = kind };
	reply_queue(w, &r, false);
}

/* Releases (commit) or withdraws (failure) a held QoS 2 message queued for
 * sessions[0..n), dropping those references. */
static void release_held(struct bworker *w, struct msg *msg, struct session **sessions, uint32_t n, bool committed)
{
	atomic_store_explicit(&msg->held, false, memory_order_release);
	for (uint32_t i = 0; i < n; i++) {
		struct session *s = sessions[i];
		pthread_mutex_lock(&s->lock);
		int worker = s->worker;
		for (uint32_t k = 0; !committed && k < s->queue.count;) {
			struct qentry *e = qring_at(&s->queue, k);
			if (qentry_on_disk(e) || e->msg != msg) {
				k++;
				continue;
			}
			struct qentry gone;
			qring_remove(&s->queue, k, &gone);
			s->queued_bytes -= gone.bytes;
			qentry_release(&gone);
		}
		pthread_mutex_unlock(&s->lock);
		broker__inbox_schedule(w, s, worker);
		session_unref(s);
	}
}

void broker__reply_held_withdraw(struct bworker *w, struct msg *msg)
{
	release_held(w, msg, w->held, w->n_held, false);
	w->n_held = 0;
	msg_unref(msg);
}

void broker__reply_now(struct client *c, uint8_t kind, uint16_t pid, uint8_t rc, const char *why)
{
	struct mqtt_ack a = { .pid = pid, .rc = rc };
	if (rc >= 0x80 && why)
		broker__client_reason_string(c, &a.props, why);
	mqtt_encode_ack(c->b->ports.out(c), c->version, kind, &a);
	c->b->ports.flush(c);
}

/* PUBACK or PUBREC of an incoming PUBLISH. */
static void publish_ack_done(struct bworker *w, const struct store_cb *r, int err)
{
	struct client *c = r->c;
	struct reply_held *h = r->kind == MQTT_PUBREC ? r->ctx : NULL;
	if (h) {
		release_held(w, h->msg, h->sessions, h->n, err == 0);
		msg_unref(h->msg);
		free(h);
	}
	if (c->state != CLIENT_CONNECTED)
		return;
	if (!err) {
		broker__reply_now(c, r->kind, r->pid, r->rc, r->why);
		return;
	}
	if (r->kind == MQTT_PUBREC) {
		pthread_mutex_lock(&c->session->lock);
		session_rx_qos2_remove(c->session, r->pid);
		pthread_mutex_unlock(&c->session->lock);
	}
	if (c->version == MQTT_V5)
		broker__reply_now(c, r->kind, r->pid, err == -FM_ELIMIT ? MQTT_RC_QUOTA_EXCEEDED : MQTT_RC_UNSPECIFIED,
				  "the message could not be stored");
	else /* v3 has no negative ack: closing makes the client resend */
		broker__client_disconnect(c, MQTT_RC_UNSPECIFIED, "store write failed");
}

/* CONNACK, SUBACK, UNSUBACK: the change is held in memory even when the
 * store failed, so the reply goes out all the same. */
static void body_done(struct bworker *w, const struct store_cb *r, int err)
{
	struct client *c = r->c;
	struct reply_body *rb = r->ctx;
	if (err)
		log_warn("client %s: %s not stored (%s); %s", c->session ? c->session->client_id : "?", rb->what,
			 fm_strerror(err), rb->instead);
	if (c->state == CLIENT_CONNECTED) {
		if (r->kind == MQTT_CONNACK)
			c->connack_pending = false;
		buf_append(c->b->ports.out(c), rb->bytes.p, rb->bytes.len);
		if (rb->then)
			rb->then(c, rb);
		c->b->ports.flush(c);
		broker__persist_commit(w, NULL, NULL, 0, 0, false);
	}
	rb->release(rb);
}

void broker__reply_done(const struct store_cb *r, int err)
{
	struct client *c = r->c;
	struct bworker *w = &c->b->workers[c->worker];
	/* A cluster node that stopped leading acknowledges nothing, not even
	 * with an error (a v5 client would not send a refused message again):
	 * the client is disconnected, finds the new leader and sends again. */
	if (err == -FM_ENOTLEADER && c->state != CLIENT_CLOSING)
		broker__client_disconnect(c, MQTT_RC_USE_ANOTHER_SERVER, "this node no longer leads its cluster");
	switch (r->kind) {
	case MQTT_PUBACK:
	case MQTT_PUBREC:
		publish_ack_done(w, r, err);
		break;
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		/* Without the commit neither goes out: the client resends the
		 * PUBREC or PUBREL it answers. */
		if (c->state == CLIENT_CONNECTED && !err)
			broker__reply_now(c, r->kind, r->pid, r->rc, r->why);
		break;
	case MQTT_PINGRESP:
		if (c->state == CLIENT_CONNECTED) {
			mqtt_encode_simple(c->b->ports.out(c), MQTT_PINGRESP);
			c->b->ports.flush(c);
		}
		break;
	default: /* MQTT_CONNACK, MQTT_SUBACK, MQTT_UNSUBACK */
		body_done(w, r, err);
		break;
	}
	c->b->ports.conn_unref(c);
}
