/* Outgoing messages: from a session's queue into its connection's output,
 * within the client's Receive Maximum, Maximum Packet Size and our output cap. */
#include "deliver.h"
#include "client.h"
#include "persist.h"
#include "queue_limits.h"
#include "sparkplug.h"
#include "spill.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../base/err.h"
#include <stdlib.h>
#include <string.h>

/* Server-to-client topic alias: reuse one the client knows, or assign the next
 * free one while any are left, never above the client's Topic Alias Maximum
 * [MQTT-3.3.2-11] and never 0 [MQTT-3.3.2-8]. Returns the alias
 * and sets *known when the topic may be omitted; 0 when none. */
static uint16_t out_alias(struct client *c, const struct msg *m, bool *known)
{
	*known = false;
	if (!c->alias_max_out)
		return 0;
	char **ours = c->aliases ? c->aliases + c->alias_max_in + 1 : NULL;
	for (uint16_t i = 0; i < c->n_out_aliases; i++) {
		const char *t = ours[i];
		if (strlen(t) == m->topic_len && !memcmp(t, msg_topic(m), m->topic_len)) {
			*known = true;
			return (uint16_t)(i + 1);
		}
	}
	if (c->n_out_aliases >= c->alias_max_out)
		return 0;
	if (!broker__client_aliases(c))
		return 0;
	ours = c->aliases + c->alias_max_in + 1;
	char *copy = strndup(msg_topic(m), m->topic_len);
	if (!copy)
		return 0;
	ours[c->n_out_aliases++] = copy;
	return c->n_out_aliases;
}

/* Encodes e as a PUBLISH for c. Callers drop a message expired at `now`
 * first. Returns 0, -FM_ELIMIT when the packet exceeds the client's Maximum
 * Packet Size, -FM_EPROTO when the client may no longer read its topic, or
 * -FM_ENOMEM. */
static int encode_entry(struct client *c, const struct qentry *e, bool dup, uint64_t now)
{
	struct broker *b = c->b;
	const struct msg *m = e->msg;
	struct mqtt_publish p = { 0 };
	p.qos = e->qos;
	p.dup = dup;
	p.retain = e->flags & QE_RETAIN;
	p.pid = qentry_pid(e);
	p.topic = (struct mqtt_bin){ (const uint8_t *)msg_topic(m), m->topic_len };
	p.payload = (struct mqtt_bin){ msg_payload(m), m->payload_len };
	if (c->version == MQTT_V5) {
		struct mqtt_props *pr = &p.props;
		pr->extra = (struct mqtt_bin){ msg_props(m), m->props_len };
		if (m->expiry_at) {
			/* The interval left, rounded up [MQTT-3.3.2-6]; never a
			 * difference that wraps below zero. */
			uint64_t left = m->expiry_at > now ? m->expiry_at - now : 0;
			pr->have |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
			pr->message_expiry = (uint32_t)((left + 999) / 1000);
		}
		if (e->n_sub_ids) {
			pr->have |= MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID);
			pr->sub_ids = qentry_sub_ids(e);
			pr->n_sub_ids = e->n_sub_ids;
		}
	}
	if (c->max_packet_out && mqtt_publish_size(c->version, &p) > c->max_packet_out)
		return -FM_ELIMIT; /* [MQTT-3.1.2-24] */
	/* A subscription may overlap a deny rule: each delivery is checked. */
	if (c->acl && !broker__spb_acl_can_read(c->acl, msg_topic(m), m->topic_len))
		return -FM_EPROTO;
	if (c->version == MQTT_V5 && c->alias_max_out) {
		bool known;
		uint16_t alias = out_alias(c, m, &known);
		if (alias) {
			p.props.have |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
			p.props.topic_alias = alias;
			if (known)
				p.topic.len = 0;
		}
	}
	struct buf *out = b->ports.out(c);
	size_t before = out->len;
	int rc = mqtt_encode_publish(out, c->version, &p);
	if (rc == 0) {
		struct bworker *w = &b->workers[c->worker];
		w->stats.msgs_sent++;
		w->stats.bytes_sent += out->len - before;
		c->msgs_sent++;
		c->bytes_sent += out->len - before;
	}
	return rc;
}

/* The in-flight window follows the subscriber's pace, within send_max (its
 * Receive Maximum and max_inflight_messages): each acknowledgement that
 * finds messages waiting widens it by one (doubling it each round trip, as
 * long as the subscriber keeps up); output piling up unread halves it. A
 * large window keeps a fast historian busy across the round trip; a small
 * one bounds what a slow subscriber has unacknowledged (resent after a
 * reconnect). Messages beyond the window wait in the session's queue. */
void broker__deliver_window_on_ack(struct session *s)
{
	struct client *c = s->client;
	if (c && s->queue.count && s->send_window < c->send_max)
		s->send_window++;
}

static void window_on_output_full(struct session *s, struct client *c)
{
	if (c->output_full)
		return; /* once per episode */
	c->output_full = true;
	uint16_t half = s->send_window / 2;
	s->send_window = half > SEND_WINDOW_MIN ? half
			 : c->send_max < SEND_WINDOW_MIN ? c->send_max : SEND_WINDOW_MIN;
}

/* Why an entry cannot go to c at all (rc of encode_entry, or expiry). */
static enum drop_reason undeliverable(int rc)
{
	return rc == -FM_ELIMIT ? DROP_TOO_LARGE : rc == -FM_EPROTO ? DROP_NOT_AUTHORIZED : DROP_EXPIRED;
}

/* Sends again, with DUP and their ids, the messages that were in flight
 * before this connection [MQTT-4.4.0-1], oldest first, within the window
 * and the output limit like any delivery. They stay in flight meanwhile:
 * no queue limit can drop them. One that can no longer go to this client
 * at all (its Maximum Packet Size, its read permission, its expiry) is
 * dropped: kept, it would hold a window slot for good. Returns false when
 * the window or the output is full. */
static bool resend_inflight(struct session *s, struct client *c, uint64_t now, bool *wrote)
{
	struct broker *b = c->b;
	struct bworker *w = &b->workers[c->worker];
	for (uint32_t i = 0; s->n_resend && i < s->inflight.count;) {
		struct qentry *e = qring_at(&s->inflight, i);
		if (!(e->flags & QE_RESEND)) {
			i++;
			continue;
		}
		if (s->inflight.count - s->n_resend >= s->send_window || b->ports.out_pending(c) >= b->cfg.max_output_buffer)
			return false;
		int rc = msg_expired(e->msg, now) ? -FM_ENOENT : encode_entry(c, e, true, now);
		if (rc == -FM_ENOMEM)
			return false; /* tried again at the next pump */
		e->flags &= (uint8_t)~QE_RESEND;
		s->n_resend--;
		if (rc == 0) {
			*wrote = true;
			i++;
			continue;
		}
		struct qentry gone;
		qring_remove(&s->inflight, i, &gone);
		broker__queue_note_drops(w, s, undeliverable(rc), 1);
		broker__persist_queue_del(w, s, &gone);
		qentry_release(&gone);
	}
	return true;
}

void broker__deliver_pump(struct session *s)
{
	struct client *c = s->client;
	struct broker *b = c->b;
	struct bworker *w = &b->workers[c->worker];
	uint64_t now = clock_wall_ms();
	bool wrote = false;
	if (c->connack_pending)
		return; /* resumed after the CONNACK */
	if (!resend_inflight(s, c, now, &wrote))
		goto out; /* nothing newer goes before them */
	while (s->queue.count) {
		if (b->ports.out_pending(c) >= b->cfg.max_output_buffer) {
			window_on_output_full(s, c);
			break; /* resumed by broker_on_writable */
		}
		c->output_full = false;
		broker__spill_prefetch(w, s);
		struct qentry *head = qring_at(&s->queue, 0);
		if (qentry_on_disk(head) && !qentry_expired(head, now)) {
			broker__spill_load(w, s);
			break; /* resumed when the bodies are back */
		}
		if (!qentry_on_disk(head) && atomic_load_explicit(&head->msg->held, memory_order_acquire))
			break; /* resumed when the store has it */
		if (head->qos && (s->inflight.count >= s->send_window || session_pid_in_use(s, head->seq)))
			break; /* resumed by an acknowledgement [MQTT-4.9.0-2] */
		struct qentry e;
		qring_remove(&s->queue, 0, &e);
		s->queued_bytes -= e.bytes;
		int rc = -FM_ENOENT;
		if (!qentry_on_disk(&e) && !msg_expired(e.msg, now)) {
			rc = encode_entry(c, &e, e.flags & QE_MAYBE_SENT, now);
			if (rc == -FM_ENOMEM) {
				/* Tried again at the next pump; the entry keeps its place. */
				if (qring_push_front(&s->queue, &e) == 0) {
					s->queued_bytes += e.bytes;
					break;
				}
				log_err("out of memory: message for %s dropped", s->client_id);
			}
		}
		/* One that can no longer go to this client at all is dropped:
		 * kept, it would stop everything behind it for good. */
		if (rc && rc != -FM_ENOMEM)
			broker__queue_note_drops(w, s, undeliverable(rc), 1);
		wrote |= rc == 0;
		if (rc || e.qos == 0) {
			broker__persist_queue_del(w, s, &e);
			qentry_release(&e);
			continue;
		}
		e.state = e.qos == 1 ? QE_WAIT_PUBACK : QE_WAIT_PUBREC;
		if (qring_push(&s->inflight, &e)) {
			log_err("out of memory: message for %s dropped", s->client_id);
			broker__persist_queue_del(w, s, &e);
			qentry_release(&e);
		}
	}
out:
	if (wrote)
		b->ports.flush(c);
}

void broker__deliver_resend_inflight(struct session *s)
{
	struct client *c = s->client;
	struct broker *b = c->b;
	bool wrote = false;
	/* QoS 2 messages delivered: their PUBRELs go again now. The PUBLISH
	 * packets not acknowledged go again from broker__deliver_pump, at the pace of
	 * the link: a large window resent at once could bury a slow one. */
	s->n_resend = 0;
	for (uint32_t i = 0; i < s->inflight.count; i++) {
		struct qentry *e = qring_at(&s->inflight, i);
		if (e->state != QE_WAIT_PUBCOMP) {
			e->flags |= QE_RESEND;
			s->n_resend++;
			continue;
		}
		e->flags &= (uint8_t)~QE_RESEND;
		struct mqtt_ack a = { .pid = qentry_pid(e) };
		mqtt_encode_ack(b->ports.out(c), c->version, MQTT_PUBREL, &a);
		wrote = true;
	}
	if (wrote)
		b->ports.flush(c);
}
