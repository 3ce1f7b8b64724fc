/* Incoming PUBLISH and the acknowledgements of both directions. */
#include "admit.h"
#include "broker.h"
#include "client.h"
#include "deliver.h"
#include "handlers.h"
#include "msg.h"
#include "persist.h"
#include "reply.h"
#include "retain.h"
#include "route.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../base/err.h"
#include <stdlib.h>
#include <string.h>

/* Resolves the topic of a v5 PUBLISH that may use a topic alias
 * [MQTT-3.3.2-7..12]. Open with *topic set, or closed after disconnecting. */
static struct handled resolve_alias(struct client *c, const struct mqtt_publish *m, struct mqtt_bin *topic)
{
	*topic = m->topic;
	if (!(m->props.have & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS))) {
		if (m->topic.len == 0) {
			broker__client_disconnect(c, MQTT_RC_PROTOCOL_ERROR, "empty topic without a topic alias");
			return HANDLED_CLOSED;
		}
		return HANDLED_OPEN;
	}
	uint16_t alias = m->props.topic_alias;
	if (alias == 0 || alias > c->alias_max_in) {
		broker__client_disconnect(c, MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
		return HANDLED_CLOSED;
	}
	if (!broker__client_aliases(c)) {
		broker__client_disconnect(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
		return HANDLED_CLOSED;
	}
	if (m->topic.len) {
		char *copy = strndup((const char *)m->topic.p, m->topic.len);
		if (!copy) {
			broker__client_disconnect(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
			return HANDLED_CLOSED;
		}
		free(c->aliases[alias]);
		c->aliases[alias] = copy;
		return HANDLED_OPEN;
	}
	if (!c->aliases[alias]) {
		broker__client_disconnect(c, MQTT_RC_PROTOCOL_ERROR, "unknown topic alias");
		return HANDLED_CLOSED;
	}
	topic->p = (const uint8_t *)c->aliases[alias];
	topic->len = (uint32_t)strlen(c->aliases[alias]);
	return HANDLED_OPEN;
}

/* Ends an incoming QoS 2 exchange refused with PUBREC >= 0x80: the packet id
 * is free again, in memory and on disk [MQTT-4.3.3]. */
static void rx2_forget(struct bworker *w, struct client *c, uint16_t pid)
{
	struct session *s = c->session;
	pthread_mutex_lock(&s->lock);
	if (s->client == c && session_rx_qos2_remove(s, pid))
		broker__persist_rx2(w, s, pid, false);
	pthread_mutex_unlock(&s->lock);
}

struct handled broker__handle_publish(struct client *c, const struct mqtt_publish *m)
{
	struct broker *b = c->b;
	struct bworker *w = &b->workers[c->worker];
	struct session *s = c->session;
	uint8_t ack_type = m->qos == 2 ? MQTT_PUBREC : MQTT_PUBACK;
	w->stats.msgs_received++;
	c->msgs_received++;

	if (m->props.have & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)) {
		/* [MQTT-3.3.4-6] */
		broker__client_disconnect(c, MQTT_RC_PROTOCOL_ERROR, "subscription identifier from a client");
		return HANDLED_CLOSED;
	}
	struct mqtt_bin topic = m->topic;
	if (c->version == MQTT_V5 && resolve_alias(c, m, &topic).closed)
		return HANDLED_CLOSED;
	enum admit admit = broker__admit(b, c->acl, (const char *)topic.p, topic.len, m->retain);
	if (admit != ADMIT_OK && admit != ADMIT_SYS && admit != ADMIT_SPARKPLUG && admit != ADMIT_DENIED) {
		/* A topic the server does not accept is a protocol violation, not a
		 * refused message: DISCONNECT 0x90/0x9A (v5), close (v3). */
		broker__client_disconnect(c, broker__admit_rc(admit), broker__admit_why(admit));
		return HANDLED_CLOSED;
	}
	if (m->qos && c->pending_store + s->n_rx_qos2 >= b->cfg.receive_maximum) {
		/* [MQTT-3.3.4-9] */
		broker__client_disconnect(c, MQTT_RC_RECEIVE_MAX_EXCEEDED, "receive maximum exceeded");
		return HANDLED_CLOSED;
	}
	if (m->qos == 2) {
		pthread_mutex_lock(&s->lock);
		int rc = s->client == c ? session_rx_qos2_add(s, m->pid) : -FM_ENOENT;
		/* A new one refused keeps no id: PUBREC >= 0x80 ends the exchange [MQTT-4.3.3]. */
		if (rc == 1 && admit != ADMIT_OK)
			session_rx_qos2_remove(s, m->pid);
		pthread_mutex_unlock(&s->lock);
		if (rc == -FM_ENOENT)
			return HANDLED_OPEN;
		if (rc < 0) {
			broker__client_disconnect(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
			return HANDLED_CLOSED;
		}
		if (rc == 0) {
			/* A resend of one we have (accepted, whatever the rules say now):
			 * acknowledge (after whatever is still being committed for it), do
			 * not deliver again [MQTT-4.3.3]. */
			broker__reply_ack(w, c, MQTT_PUBREC, m->pid, MQTT_RC_SUCCESS, NULL, true);
			return HANDLED_OPEN;
		}
		if (admit == ADMIT_OK)
			broker__persist_rx2(w, s, m->pid, true);
	}
	if (admit != ADMIT_OK) {
		/* Refused: v5 learns why; v3 has no negative acknowledgement. */
		w->stats.drops[DROP_NOT_AUTHORIZED]++;
		log_debug("client %s: publish to %.*s refused: %s", s->client_id, (int)topic.len, topic.p,
			  broker__admit_why(admit));
		if (!m->qos)
			return HANDLED_OPEN;
		uint8_t rc = c->version == MQTT_V5 ? broker__admit_rc(admit) : MQTT_RC_SUCCESS;
		broker__reply_ack(w, c, ack_type, m->pid, rc, broker__admit_why(admit), false);
		return HANDLED_OPEN;
	}
	bool durable = broker__persist_durable(b, s);
	struct msg *msg = broker__msg_build(b, w, topic, m->payload, &m->props, c->version, m->qos, m->retain);
	if (!msg) {
		broker__client_disconnect(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
		return HANDLED_CLOSED;
	}
	msg->origin_sid = s->sid;
	/* Exactly once across a crash: subscribers see a QoS 2 message only
	 * after its PUBREC state is on disk. */
	bool hold = m->qos == 2 && durable;
	if (hold)
		atomic_store(&msg->held, true);
	if (m->retain)
		broker__retain_set(w, msg);
	w->n_held = 0;
	struct route_result r = broker__route_publish(w, msg);
	if (m->qos == 0) {
		msg_unref(msg);
		broker__persist_commit(w, NULL, NULL, 0, 0, false);
		return HANDLED_OPEN;
	}
	uint8_t rc = MQTT_RC_SUCCESS;
	const char *why = NULL;
	if (r.rejected) {
		rc = MQTT_RC_QUOTA_EXCEEDED;
		why = "a subscriber's queue is full";
		if (m->qos == 2)
			rx2_forget(w, c, m->pid); /* PUBREC 0x97 ends the exchange [MQTT-4.3.3] */
	} else if (r.matched == 0) {
		rc = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
	}
	if (!hold) {
		msg_unref(msg);
		broker__reply_ack(w, c, ack_type, m->pid, rc, why, false);
		return HANDLED_OPEN;
	}
	struct reply_held *held = broker__reply_held_new(w, msg); /* takes msg */
	if (!held) {
		broker__reply_held_withdraw(w, msg);
		broker__client_disconnect(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
		return HANDLED_CLOSED;
	}
	broker__reply_held(w, c, m->pid, rc, why, held);
	return HANDLED_OPEN;
}

void broker_publish_bridged(struct bworker *w, struct msg *m, store_done_fn done, void *ctx, uint16_t pid)
{
	struct broker *b = w->b;
	w->stats.msgs_received++;
	/* The remote broker is trusted with topics, not with the broker's own
	 * tree or its limits; a refused message is still acknowledged to it (a
	 * resend would be refused again). Retain where available, as before. */
	enum admit admit = broker__admit(b, NULL, msg_topic(m), m->topic_len, false);
	if (admit != ADMIT_OK) {
		w->stats.drops[DROP_NOT_AUTHORIZED]++;
		/* A line per worker per 10 s: a remote's whole $SYS tree would flood the log. */
		uint64_t now = clock_mono_ms();
		w->bridged_refused++;
		if (!w->bridged_refused_log_ms || now - w->bridged_refused_log_ms >= 10000) {
			log_notice("bridge: %llu message%s from the remote broker dropped, the last to %.*s: %s",
				   (unsigned long long)w->bridged_refused, w->bridged_refused == 1 ? "" : "s",
				   (int)m->topic_len, msg_topic(m), broker__admit_why(admit));
			w->bridged_refused = 0;
			w->bridged_refused_log_ms = now;
		}
	} else {
		if (m->retain && b->cfg.retain_available)
			broker__retain_set(w, m);
		broker__route_publish(w, m);
	}
	msg_unref(m);
	/* Through the store even when nothing was written, so the remote's
	 * acknowledgements keep the order of its messages. */
	broker__persist_commit(w, done, ctx, pid, 0, true);
}

struct handled broker__handle_ack(struct client *c, uint8_t type, const struct mqtt_ack *a)
{
	struct broker *b = c->b;
	struct bworker *w = &b->workers[c->worker];
	struct session *s = c->session;
	pthread_mutex_lock(&s->lock);
	if (s->client != c) {
		pthread_mutex_unlock(&s->lock);
		return HANDLED_OPEN;
	}
	if (type == MQTT_PUBREL) {
		bool found = session_rx_qos2_remove(s, a->pid);
		if (found)
			broker__persist_rx2(w, s, a->pid, false);
		pthread_mutex_unlock(&s->lock);
		/* PUBCOMP even for an unknown id, so the client can finish; after the
		 * commit, so a restart cannot take a new message for a resend. */
		broker__reply_ack(w, c, MQTT_PUBCOMP, a->pid, found ? MQTT_RC_SUCCESS : MQTT_RC_PACKET_ID_NOT_FOUND,
				  found ? NULL : "packet identifier not found", true);
		return HANDLED_OPEN;
	}
	struct qentry done;
	/* A PUBREC with an error code ends the QoS 2 exchange: PUBREL only after one below 0x80 [MQTT-4.3.3-4]. */
	bool rec_error = type == MQTT_PUBREC && a->rc >= 0x80;
	int rc = session_on_ack(s, a->pid, type, &done);
	if (rc == 0 && type != MQTT_PUBCOMP)
		broker__deliver_window_on_ack(s);
	if (rc == 0 && type == MQTT_PUBREC && !rec_error) {
		/* PUBREL only once WAIT_PUBCOMP is on disk: a restart must not send
		 * the PUBLISH again to a client that may have finished with it. */
		broker__persist_queue_state(w, s, &done);
		pthread_mutex_unlock(&s->lock);
		broker__reply_ack(w, c, MQTT_PUBREL, a->pid, MQTT_RC_SUCCESS, NULL, false);
		pthread_mutex_lock(&s->lock);
		if (s->client == c)
			broker__deliver_pump(s);
		pthread_mutex_unlock(&s->lock);
		broker__persist_commit(w, NULL, NULL, 0, 0, false);
		return HANDLED_OPEN;
	} else if (rc == 0 && type == MQTT_PUBREC) {
		struct qentry gone;
		if (session_on_ack(s, a->pid, MQTT_PUBCOMP, &gone) == 0) {
			broker__persist_queue_del(w, s, &gone);
			qentry_release(&gone);
		}
	} else if (rc == 0) {
		broker__persist_queue_del(w, s, &done);
		qentry_release(&done);
	} else if (type == MQTT_PUBREC) {
		broker__reply_now(c, MQTT_PUBREL, a->pid, MQTT_RC_PACKET_ID_NOT_FOUND, "packet identifier not found");
	}
	/* A freed slot in the window lets the next queued message go. */
	broker__deliver_pump(s);
	pthread_mutex_unlock(&s->lock);
	broker__persist_commit(w, NULL, NULL, 0, 0, false);
	return HANDLED_OPEN;
}
