/* Incoming PUBLISH and the acknowledgements of both directions. */
#include "internal.h"
#include "../base/err.h"
#include <stdlib.h>
#include <string.h>

/* v5 properties a PUBLISH carries on to subscribers [MQTT-3.3.2-... forwarding]. */
#define FORWARDED_PROPS (MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) | \
			 MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC) | MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA))

struct msg *msg_build(struct broker *b, struct bworker *w, struct mqtt_bin topic, struct mqtt_bin payload,
		      const struct mqtt_props *pr, uint8_t version, uint8_t qos, bool retain)
{
	struct buf props = { 0 };
	uint32_t expiry = b->cfg.message_expiry_default;
	if (version == MQTT_V5) {
		struct mqtt_props fwd = *pr;
		fwd.have &= FORWARDED_PROPS;
		fwd.extra = (struct mqtt_bin){ 0 };
		fwd.n_sub_ids = 0;
		if (mqtt_props_encode(&fwd, &props) || (pr->n_user && mqtt_props_copy_user(pr, &props))) {
			buf_free(&props);
			return NULL;
		}
		if (pr->have & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY))
			expiry = pr->message_expiry;
	}
	struct msg *m = msg_new((const char *)topic.p, (uint16_t)topic.len, props.p, (uint32_t)props.len,
				payload.p, payload.len, qos, retain);
	buf_free(&props);
	if (m && expiry)
		m->expiry_at = clock_wall_ms() + (uint64_t)expiry * 1000;
	(void)w;
	return m;
}

/* Resolves the topic of a v5 PUBLISH that may use a topic alias
 * [MQTT-3.3.2-7..12]. Returns 0 with *topic set, or -1 after disconnecting. */
static int resolve_alias(struct client *c, const struct mqtt_publish *m, struct mqtt_bin *topic)
{
	*topic = m->topic;
	if (!(m->props.have & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS))) {
		if (m->topic.len == 0) {
			client_disconnect(c, MQTT_RC_PROTOCOL_ERROR, "empty topic without a topic alias");
			return -1;
		}
		return 0;
	}
	uint16_t alias = m->props.topic_alias;
	if (alias == 0 || alias > c->alias_max_in) {
		client_disconnect(c, MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
		return -1;
	}
	if (!c->in_aliases && !(c->in_aliases = calloc((size_t)c->alias_max_in + 1, sizeof *c->in_aliases))) {
		client_disconnect(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
		return -1;
	}
	if (m->topic.len) {
		char *copy = strndup((const char *)m->topic.p, m->topic.len);
		if (!copy) {
			client_disconnect(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
			return -1;
		}
		free(c->in_aliases[alias]);
		c->in_aliases[alias] = copy;
		return 0;
	}
	if (!c->in_aliases[alias]) {
		client_disconnect(c, MQTT_RC_PROTOCOL_ERROR, "unknown topic alias");
		return -1;
	}
	topic->p = (const uint8_t *)c->in_aliases[alias];
	topic->len = (uint32_t)strlen(c->in_aliases[alias]);
	return 0;
}

static void send_ack(struct client *c, uint8_t type, uint16_t pid, uint8_t rc, const char *why)
{
	struct mqtt_ack a = { .pid = pid, .rc = rc };
	if (rc >= 0x80 && why)
		client_reason_string(c, &a.props, why);
	mqtt_encode_ack(c->b->ports.out(c), c->version, type, &a);
	c->b->ports.flush(c);
}

/* Updates the retained index with m (an empty payload clears) [MQTT-3.3.1-5..7]. */
static void retain_update(struct broker *b, struct msg *m)
{
	int err;
	pthread_rwlock_wrlock(&b->retain_lock);
	struct msg *old = retain_index_set(b->retained, msg_topic(m), m->topic_len,
					   m->payload_len ? msg_ref(m) : NULL, &err);
	pthread_rwlock_unlock(&b->retain_lock);
	if (err && m->payload_len) {
		msg_unref(m);
		log_err("out of memory storing the retained message on %.*s", (int)m->topic_len, msg_topic(m));
	}
	msg_unref(old);
}

int handle_publish(struct client *c, const struct mqtt_publish *m)
{
	struct broker *b = c->b;
	struct bworker *w = &b->workers[c->worker];
	struct session *s = c->session;
	uint8_t ack_type = m->qos == 2 ? MQTT_PUBREC : MQTT_PUBACK;
	w->stats.msgs_received++;

	struct mqtt_bin topic = m->topic;
	if (c->version == MQTT_V5 && resolve_alias(c, m, &topic))
		return -1;
	if (!topic_name_valid((const char *)topic.p, topic.len)) {
		client_disconnect(c, MQTT_RC_TOPIC_NAME_INVALID, "invalid topic name"); /* [MQTT-3.3.2-2] */
		return -1;
	}
	if (m->retain && !b->cfg.retain_available) {
		client_disconnect(c, MQTT_RC_RETAIN_NOT_SUPPORTED, "retain not available"); /* [MQTT-3.3.1-... ] */
		return -1;
	}
	if (m->qos == 2) {
		pthread_mutex_lock(&s->lock);
		int rc = s->client == c ? session_rx_qos2_add(s, m->pid) : -FM_ENOENT;
		uint32_t held = s->n_rx_qos2;
		pthread_mutex_unlock(&s->lock);
		if (rc == 0) { /* a resend of one we have: acknowledge, do not deliver again */
			send_ack(c, MQTT_PUBREC, m->pid, MQTT_RC_SUCCESS, NULL);
			return 0;
		}
		if (rc < 0)
			return rc == -FM_ENOENT ? 0 : -1;
		if (held > b->cfg.receive_maximum) { /* [MQTT-3.3.4-9] */
			client_disconnect(c, MQTT_RC_RECEIVE_MAX_EXCEEDED, "receive maximum exceeded");
			return -1;
		}
	}
	if (topic.len >= 4 && !memcmp(topic.p, "$SYS", 4)) {
		/* Clients do not write into the broker's own tree. */
		w->stats.drops[DROP_NOT_AUTHORIZED]++;
		if (m->qos)
			send_ack(c, ack_type, m->pid, MQTT_RC_NOT_AUTHORIZED, "$SYS is read-only");
		return 0;
	}
	struct msg *msg = msg_build(b, w, topic, m->payload, &m->props, c->version, m->qos, m->retain);
	if (!msg) {
		client_disconnect(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
		return -1;
	}
	msg->origin_sid = s->sid;
	if (m->retain)
		retain_update(b, msg);
	struct route_result r = route_publish(w, msg);
	msg_unref(msg);
	if (m->qos == 0)
		return 0;
	uint8_t rc = MQTT_RC_SUCCESS;
	const char *why = NULL;
	if (r.rejected) {
		rc = MQTT_RC_QUOTA_EXCEEDED;
		why = "a subscriber's queue is full";
	} else if (r.matched == 0) {
		rc = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
	}
	send_ack(c, ack_type, m->pid, rc, why);
	return 0;
}

int handle_ack(struct client *c, uint8_t type, const struct mqtt_ack *a)
{
	struct session *s = c->session;
	bool found;
	pthread_mutex_lock(&s->lock);
	if (s->client != c) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	if (type == MQTT_PUBREL) {
		found = session_rx_qos2_remove(s, a->pid);
		pthread_mutex_unlock(&s->lock);
		/* PUBCOMP even for an unknown id, so the client can finish [MQTT-4.3.3-... ]. */
		send_ack(c, MQTT_PUBCOMP, a->pid, found ? MQTT_RC_SUCCESS : MQTT_RC_PACKET_ID_NOT_FOUND,
			 found ? NULL : "packet identifier not found");
		return 0;
	}
	/* An error reason on PUBREC ends the QoS 2 exchange [MQTT-4.3.3-... ]. */
	uint8_t as = type == MQTT_PUBREC && a->rc >= 0x80 ? MQTT_PUBCOMP : type;
	if (as == MQTT_PUBCOMP && type == MQTT_PUBREC)
		session_on_ack(s, a->pid, MQTT_PUBREC);
	found = session_on_ack(s, a->pid, as) == 0;
	if (found && type == MQTT_PUBREC && as == MQTT_PUBREC) {
		struct mqtt_ack rel = { .pid = a->pid };
		mqtt_encode_ack(c->b->ports.out(c), c->version, MQTT_PUBREL, &rel);
		c->b->ports.flush(c);
	} else if (!found && type == MQTT_PUBREC) {
		send_ack(c, MQTT_PUBREL, a->pid, MQTT_RC_PACKET_ID_NOT_FOUND, "packet identifier not found");
	}
	/* A freed slot in the window lets the next queued message go. */
	session_pump(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}
