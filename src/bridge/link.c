/* The connection of one bridge to its remote broker: resolve, connect
 * (TLS optional), CONNECT, SUBSCRIBE for the `in` topics, then send the
 * spool at QoS 1 in order within the remote's window; reconnect with
 * exponential back-off and jitter, to the next address of the list. */
#include "internal.h"
#include "remap.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/log.h"
#include "../mqtt/mqtt.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINK_MAX_WINDOW 1000   /* in flight at most, whatever the remote allows */
#define LINK_V3_WINDOW 100     /* v3 remotes announce no Receive Maximum */
#define LINK_CONNECT_TIMEOUT_MS 10000
#define LOAD_BATCH 512         /* bodies read back per request */
#define QUOTA_PAUSE_US 1000000 /* a 0x97 Quota exceeded PUBACK: wait, then resend */

static const char *bname(const struct link *l) { return l->br->conf->name; }

static void closed(struct link *l);
static void on_retry(uv_timer_t *t);
static void on_closed(uv_handle_t *h) { closed(h->data); }

static void link_close(struct link *l, const char *why)
{
	if (l->state == LINK_IDLE || l->state == LINK_CLOSING)
		return;
	if (why)
		log_notice("bridge %s: connection to %s closed: %s", bname(l), l->remote, why);
	l->state = LINK_CLOSING;
	atomic_store(&l->br->connected, false);
	if (l->tcp_open)
		uv_close((uv_handle_t *)&l->tcp, on_closed);
	else
		closed(l);
}

static void schedule_retry(struct link *l)
{
	const struct bridge_conf *c = l->br->conf;
	uint64_t delay = c->restart_timeout.min;
	for (unsigned i = 0; i < l->attempts && delay < c->restart_timeout.max; i++)
		delay *= 2;
	if (delay > c->restart_timeout.max)
		delay = c->restart_timeout.max;
	/* Jitter: between half and all of it, so edges do not reconnect in step. */
	uint64_t ms = delay * 1000;
	ms = ms / 2 + (uint64_t)rand() % (ms / 2 + 1);
	l->attempts++;
	l->addr_index++; /* fail over to the next address */
	uv_timer_start(&l->timer, on_retry, ms, 0);
}

static void closed(struct link *l)
{
	l->tcp_open = false;
	xport_free(&l->x); /* a write in progress was cancelled: on_written freed it */
	l->x.tp = NULL;
	l->in.len = l->out.len = 0;
	struct spool *sp = &l->br->spool;
	pthread_mutex_lock(&sp->lock);
	/* What was sent may have arrived: resent first, with DUP. */
	if (sp->next_send > sp->dup_below)
		sp->dup_below = sp->next_send;
	sp->next_send = sp->head;
	sp->inflight = 0;
	pthread_mutex_unlock(&sp->lock);
	l->state = LINK_IDLE;
	if (!l->stopping)
		schedule_retry(l);
}

/* Writes what waits in out (through TLS when on). */
static void link_flush(struct link *l);

static void on_written(uv_write_t *req, int status)
{
	struct link *l = req->data;
	if (l->wreq == (struct net_write *)req)
		l->wreq = NULL;
	net_write_free((struct net_write *)req);
	if (status < 0) {
		if (status != UV_ECANCELED)
			link_close(l, uv_strerror(status));
		return;
	}
	link_flush(l);
}

static void link_flush(struct link *l)
{
	if (!l->tcp_open || l->wreq || l->state == LINK_CLOSING || !l->x.tp)
		return;
	struct buf *src = &l->out;
	if (l->x.tp->encode) {
		/* TLS: the handshake's bytes go first; what is in out waits for its
		 * end (send_connect follows it), or the encoder would drop it. */
		if (tls_session_established(l->x.tls) && l->x.tp->encode(&l->x, &l->out)) {
			link_close(l, tls_session_error(l->x.tls));
			return;
		}
		src = &l->x.wire;
	}
	if (!src->len)
		return;
	int rc = net_write_start((uv_stream_t *)&l->tcp, src, l, on_written, &l->wreq);
	if (rc < 0) {
		link_close(l, uv_strerror(rc));
		return;
	}
	l->last_tx_ms = clock_mono_ms();
}

static void send_connect(struct link *l)
{
	const struct bridge_conf *c = l->br->conf;
	char host[64] = "ferromq";
	gethostname(host, sizeof host - 1);
	char id[320];
	if (c->remote_clientid[0])
		snprintf(id, sizeof id, "%s", c->remote_clientid);
	else /* mosquitto's default: stable across restarts, so the remote keeps the session */
		snprintf(id, sizeof id, "%s.%s", host, c->name);
	struct mqtt_connect m = {
		.protocol_name = { (const uint8_t *)"MQTT", 4 },
		.version = l->version,
		/* An edge node's session is clean: a command queued while it was away
		 * would be carried out late [tck-id-principles-persistence-clean-session-311, -50]. */
		.clean_start = c->cleansession || l->br->edge,
		.keepalive = (uint16_t)c->keepalive_interval,
		.client_id = { (const uint8_t *)id, (uint32_t)strlen(id) },
	};
	if (c->remote_username[0])
		m.username = (struct mqtt_bin){ (const uint8_t *)c->remote_username, (uint32_t)strlen(c->remote_username) };
	if (c->remote_password[0])
		m.password = (struct mqtt_bin){ (const uint8_t *)c->remote_password, (uint32_t)strlen(c->remote_password) };
	if (l->br->edge && bridge__edge_will(l, &m)) {
		link_close(l, "out of memory");
		return;
	}
	if (l->version == MQTT_V5 && !c->cleansession && !l->br->edge) {
		/* The remote keeps our subscriptions and what they queue while we are away. */
		m.props.have |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
		m.props.session_expiry = UINT32_MAX;
	}
	/* The remote is held to the limits our clients have [MQTT-3.1.2-24, 3.3.4-9]. */
	const struct config *cfg = &l->br->all->b->cfg;
	if (l->version == MQTT_V5 && cfg->max_packet_size) {
		m.props.have |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
		m.props.max_packet_size = cfg->max_packet_size;
	}
	if (l->version == MQTT_V5 && cfg->receive_maximum < 65535) {
		m.props.have |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
		m.props.receive_maximum = (uint16_t)cfg->receive_maximum;
	}
	if (mqtt_encode_connect(&l->out, &m)) {
		link_close(l, "out of memory");
		return;
	}
	l->state = LINK_MQTT;
	link_flush(l);
}

static void send_subscribe(struct link *l)
{
	const struct bridge_conf *c = l->br->conf;
	struct mqtt_sub_entry e[CONFIG_MAX_BRIDGE_TOPICS];
	char filters[CONFIG_MAX_BRIDGE_TOPICS][400];
	uint32_t n = 0;
	for (unsigned i = 0; i < c->n_topics; i++) {
		const struct bridge_topic *t = &c->topics[i];
		int len;
		if (!(t->direction & BRIDGE_IN) || (len = remap_remote_filter(t, filters[n], sizeof filters[n])) < 0)
			continue;
		/* At most QoS 1: what comes in is acknowledged after our commit. No
		 * Local: the remote does not send back what we publish [MQTT-3.8.3-3]. */
		uint8_t opts = t->qos > 1 ? 1 : t->qos;
		if (l->version == MQTT_V5)
			opts |= MQTT_SUBOPT_NO_LOCAL;
		e[n] = (struct mqtt_sub_entry){ { (const uint8_t *)filters[n], (uint32_t)len }, opts };
		n++;
	}
	if (!n)
		return;
	l->sub_pid = 1;
	if (mqtt_encode_subscribe(&l->out, l->version, MQTT_SUBSCRIBE, l->sub_pid, NULL, e, n))
		link_close(l, "out of memory");
}

/* ---- the spool, sent ---- */

/* err is the writes' of the same group: the store reads beside them, so only
 * ld->failed says whether this read worked. */
static void loaded(void *ctx, uint16_t pid, uint8_t kind, int err)
{
	(void)err;
	struct store_load *ld = ctx;
	struct bridge *br = ld->worker;
	struct spool *sp = &br->spool;
	struct bworker *w = bridge_worker(br);
	pthread_mutex_lock(&sp->lock);
	sp->loading = false;
	for (uint32_t k = 0; k < ld->n; k++) {
		struct store_load_item *it = &ld->items[k];
		if (it->seq < sp->head || it->seq >= sp->tail)
			continue; /* acknowledged or dropped meanwhile */
		struct spool_entry *e = spool_at(sp, it->seq);
		if (!(e->bits & SP_ON_DISK) || (e->bits & SP_GONE) || e->msg_id != it->id)
			continue;
		if (it->msg) {
			e->msg = it->msg;
			it->msg = NULL;
			e->bits &= ~SP_ON_DISK;
		} else if (!ld->failed) {
			log_err("bridge %s: the body of spooled message %llu is missing from the database; it is dropped",
				br->conf->name, (unsigned long long)it->seq);
			spool_remove(sp, it->seq);
			broker_spool_del(w, br->conf->name, it->seq);
		}
	}
	pthread_mutex_unlock(&sp->lock);
	if (ld->failed) {
		/* Not at once: a failing disk would be asked again and again; the tick retries. */
		log_err("bridge %s: reading spooled messages back failed; retrying shortly", br->conf->name);
		return;
	}
	link_pump(&br->link);
}

/* Asks for the bodies of the next on-disk entries from `from` (lock held). */
static void request_load(struct bridge *br, uint64_t from)
{
	struct spool *sp = &br->spool;
	if (sp->loading)
		return;
	uint32_t n = 0;
	for (uint64_t s = from; s < sp->tail && n < LOAD_BATCH; s++) {
		const struct spool_entry *e = spool_at(sp, s);
		n += (e->bits & (SP_ON_DISK | SP_GONE)) == SP_ON_DISK;
	}
	struct store_load *ld = calloc(1, sizeof *ld + sizeof ld->items[0] * n);
	if (!ld) {
		log_err("bridge %s: out of memory reading the spool back", br->conf->name);
		return;
	}
	ld->worker = br;
	for (uint64_t s = from; s < sp->tail && ld->n < n; s++) {
		const struct spool_entry *e = spool_at(sp, s);
		if ((e->bits & (SP_ON_DISK | SP_GONE)) == SP_ON_DISK)
			ld->items[ld->n++] = (struct store_load_item){ s, e->msg_id, NULL };
	}
	if (broker_store_load(bridge_worker(br), ld, loaded) == 0)
		sp->loading = true;
}

/* The remote topic of a spooled message: the first out line that takes it,
 * as it is or, for an aggregation summary, without the line's
 * aggregate_suffix (remapped, then the suffix appended). */
static int remote_topic(const struct bridge *br, const struct msg *m, char *out, size_t cap)
{
	const struct bridge_conf *c = br->conf;
	if (br->edge && bridge__edge_takes(br, m)) {
		if (m->topic_len >= cap)
			return -1;
		memcpy(out, msg_topic(m), m->topic_len);
		out[m->topic_len] = 0;
		return (int)m->topic_len;
	}
	for (unsigned i = 0; i < c->n_topics; i++) {
		const struct bridge_topic *t = &c->topics[i];
		int len = remap_out(t, msg_topic(m), m->topic_len, out, cap);
		if (len >= 0)
			return len;
		size_t s = strlen(t->agg_suffix);
		if (!t->agg.window_s || !s || m->topic_len <= s ||
		    memcmp(msg_topic(m) + m->topic_len - s, t->agg_suffix, s))
			continue;
		len = remap_out(t, msg_topic(m), m->topic_len - s, out, cap);
		if (len >= 0 && (size_t)len + s < cap) {
			memcpy(out + len, t->agg_suffix, s + 1);
			return len + (int)s;
		}
	}
	return -1;
}

/* Encodes the entry seq (body in memory) as a PUBLISH. Returns 0, or -1
 * when it cannot be sent (dropped, logged). */
static int send_entry(struct link *l, uint64_t seq, struct spool_entry *e, uint64_t now_wall)
{
	struct bridge *br = l->br;
	const struct msg *m = e->msg;
	if (msg_expired(m, now_wall)) {
		atomic_fetch_add(&br->dropped[BRIDGE_DROP_EXPIRED], 1);
		return -1;
	}
	char topic[65536];
	int tlen = remote_topic(br, m, topic, sizeof topic);
	struct mqtt_bin payload = { msg_payload(m), m->payload_len };
	int spb = br->edge && tlen > 0 ? bridge__edge_payload(l, seq, m, &payload) : 0;
	if (spb == 1)
		return -1; /* superseded by this session's births: not a drop */
	struct mqtt_publish p = {
		.qos = 1,
		.dup = seq < br->spool.dup_below,
		.retain = m->retain && l->retain_ok,
		.topic = { (const uint8_t *)topic, (uint32_t)(tlen > 0 ? tlen : 0) },
		.pid = (uint16_t)(seq % 65535 + 1),
		.payload = payload,
	};
	if (tlen > 0 && l->version == MQTT_V5) {
		p.props.extra = (struct mqtt_bin){ msg_props(m), m->props_len };
		if (m->expiry_at) { /* what is left of it [MQTT-3.3.2-6] */
			p.props.have |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
			p.props.message_expiry = (uint32_t)((m->expiry_at - now_wall + 999) / 1000);
		}
	}
	const char *why = tlen <= 0 ? "its topic is no longer sent by this bridge"
			: spb == -FM_EINVAL ? "not a Sparkplug B payload on a topic of the edge node"
			: spb ? "out of memory"
			: (l->max_packet && mqtt_publish_size(l->version, &p) > l->max_packet)
				? "larger than the remote's Maximum Packet Size" : NULL;
	if (!why && mqtt_encode_publish(&l->out, l->version, &p))
		why = "out of memory";
	if (!why)
		return 0;
	log_warn("bridge %s: message on %.*s dropped: %s", br->conf->name, (int)m->topic_len, msg_topic(m), why);
	atomic_fetch_add(&br->dropped[BRIDGE_DROP_REMOTE_REFUSED], 1);
	return -1;
}

void link_pump(struct link *l)
{
	struct bridge *br = l->br;
	if (l->state != LINK_ONLINE)
		return;
	struct spool *sp = &br->spool;
	struct bworker *w = bridge_worker(br);
	uint64_t now_us = clock_mono_us(), now_wall = clock_wall_ms();
	if (now_us < l->pause_until_us || (br->edge && !bridge__edge_ready(l)))
		return; /* an edge node's data waits for its births */
	pthread_mutex_lock(&sp->lock);
	/* Packet ids are seq % 65535 + 1, unique only within 65,535 of the head:
	 * while the head waits for its PUBACK nothing further goes out, or two
	 * messages would share an id [MQTT-2.2.1-3] and one PUBACK remove the other. */
	while (sp->inflight < l->window && sp->next_send < sp->tail && sp->next_send - sp->head < 65535) {
		uint64_t seq = sp->next_send;
		struct spool_entry *e = spool_at(sp, seq);
		if (e->bits & SP_GONE) {
			sp->next_send++;
			continue;
		}
		if (!(e->bits & SP_COMMITTED))
			break; /* sent once it is on disk: the remote's PUBACK deletes its row */
		if (e->bits & SP_ON_DISK) {
			request_load(br, seq);
			break;
		}
		uint64_t wait = bucket_wait(&br->msgs_bucket, now_us);
		uint64_t wait_bytes = bucket_wait(&br->bytes_bucket, now_us);
		if (wait_bytes > wait)
			wait = wait_bytes;
		if (wait) {
			l->pause_until_us = now_us + wait; /* the tick resumes */
			break;
		}
		if (send_entry(l, seq, e, now_wall)) {
			spool_remove(sp, seq);
			broker_spool_del(w, br->conf->name, seq);
			continue;
		}
		bucket_charge(&br->msgs_bucket, 1);
		bucket_charge(&br->bytes_bucket, spool_entry_bytes(e));
		sp->next_send++;
		sp->inflight++;
		atomic_fetch_add(&br->sent, 1);
	}
	/* Keep the next bodies coming while these are in flight. */
	if (sp->next_send < sp->tail && !sp->loading) {
		uint64_t ahead = sp->next_send + l->window;
		for (uint64_t s = sp->next_send; s < sp->tail && s < ahead; s++) {
			if ((spool_at(sp, s)->bits & (SP_ON_DISK | SP_GONE)) == SP_ON_DISK) {
				request_load(br, s);
				break;
			}
		}
	}
	bool history_sent = br->edge && bridge__edge_history_sent(br->edge, sp->next_send);
	pthread_mutex_unlock(&sp->lock);
	if (br->edge)
		bridge__edge_pumped(l, history_sent);
	link_flush(l);
}

/* Rewinds sending to seq (lock held): it and what follows go again. */
static void rewind_to(struct spool *sp, uint64_t seq)
{
	if (sp->next_send > sp->dup_below)
		sp->dup_below = sp->next_send;
	sp->next_send = seq;
	sp->inflight = 0;
	for (uint64_t s = sp->head; s < seq; s++)
		sp->inflight += !(spool_at(sp, s)->bits & SP_GONE);
}

static void on_puback(struct link *l, const struct mqtt_ack *a)
{
	struct bridge *br = l->br;
	struct spool *sp = &br->spool;
	pthread_mutex_lock(&sp->lock);
	/* The one in flight with this packet id: seq % 65535 + 1 == pid. */
	uint64_t seq = sp->head + (uint64_t)((a->pid - 1 + 65535 - sp->head % 65535) % 65535);
	if (seq >= sp->next_send || a->pid == 0) {
		pthread_mutex_unlock(&sp->lock);
		log_debug("bridge %s: PUBACK for packet id %u, not in flight", br->conf->name, a->pid);
		return;
	}
	if (a->rc == MQTT_RC_QUOTA_EXCEEDED) {
		/* The remote is full for now: this one and what follows go again later. */
		rewind_to(sp, seq);
		pthread_mutex_unlock(&sp->lock);
		l->pause_until_us = clock_mono_us() + QUOTA_PAUSE_US;
		log_warn("bridge %s: %s refused a message with 0x97 Quota exceeded; resending in 1 s", br->conf->name,
			 l->remote);
		return;
	}
	if (a->rc >= 0x80) {
		/* A final refusal (0x87 Not authorized, 0x90, 0x99, 0x80, 0x83): sending
		 * it again cannot help, and keeping it would stop the bridge. */
		atomic_fetch_add(&br->dropped[BRIDGE_DROP_REMOTE_REFUSED], 1);
		log_warn("bridge %s: %s refused spooled message %llu: %s (0x%02x); it is dropped", br->conf->name,
			 l->remote, (unsigned long long)seq, mqtt_rc_name(a->rc), a->rc);
	}
	if (spool_remove(sp, seq)) {
		broker_spool_del(bridge_worker(br), br->conf->name, seq);
		atomic_fetch_add(&br->acked, 1);
	}
	pthread_mutex_unlock(&sp->lock);
}

/* ---- what comes from the remote ---- */

struct inbound_ack {
	struct link *l;
	uint32_t generation;
};

static void inbound_done(void *ctx, uint16_t pid, uint8_t kind, int err)
{
	struct inbound_ack *a = ctx;
	struct link *l = a->l;
	if (l->generation != a->generation || l->state != LINK_ONLINE) {
		free(a);
		return;
	}
	l->rx_pending--;
	/* Not committed: no PUBACK, so the remote sends it again. */
	if (!err) {
		struct mqtt_ack ack = { .pid = pid };
		mqtt_encode_ack(&l->out, l->version, MQTT_PUBACK, &ack);
		link_flush(l);
	}
	free(a);
}

static int on_publish(struct link *l, const struct mqtt_publish *p)
{
	if (p->qos == 2) {
		link_close(l, "QoS 2 PUBLISH on a subscription made at QoS 1");
		return -1;
	}
	struct inbound_ack *a = NULL;
	int edge = l->br->edge ? bridge__edge_inbound(l, p) : 0;
	if (edge) {
		/* Carried out (or refused, logged) at once: nothing to commit. */
		if (p->qos == 1) {
			struct mqtt_ack ack = { .pid = p->pid };
			mqtt_encode_ack(&l->out, l->version, MQTT_PUBACK, &ack);
			link_flush(l);
		}
		if (edge == 2) {
			/* No DISCONNECT: the remote publishes the NDEATH will. */
			link_close(l, "the Sparkplug primary host is offline");
			return -1;
		}
		return 0;
	}
	if (p->qos == 1 && l->version == MQTT_V5 && l->rx_pending >= l->br->all->b->cfg.receive_maximum) {
		link_close(l, "more unacknowledged QoS 1 PUBLISHes than our Receive Maximum [MQTT-3.3.4-9]");
		return -1;
	}
	if (p->qos == 1) {
		if (!(a = malloc(sizeof *a))) {
			link_close(l, "out of memory");
			return -1;
		}
		*a = (struct inbound_ack){ l, l->generation };
		l->rx_pending++;
	}
	bridge_inbound(l->br, p, a ? inbound_done : NULL, a);
	return 0;
}

static int on_connack(struct link *l, const struct mqtt_connack *c)
{
	if (c->rc != 0) {
		char why[96];
		snprintf(why, sizeof why, "the remote refused the connection: %s (0x%02x)",
			 l->version == MQTT_V5 ? mqtt_rc_name(c->rc) : "v3 return code", c->rc);
		link_close(l, why);
		return -1;
	}
	l->state = LINK_ONLINE;
	l->attempts = 0;
	l->generation++;
	l->rx_pending = 0;
	l->window = LINK_V3_WINDOW;
	l->max_packet = 0;
	l->keepalive = (uint16_t)l->br->conf->keepalive_interval;
	l->retain_ok = true;
	if (l->version == MQTT_V5) {
		/* The remote's keep alive replaces ours [MQTT-3.2.2-21]. */
		if (c->props.have & MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE))
			l->keepalive = c->props.server_keep_alive;
		/* A retained PUBLISH to a remote without retain is a protocol error
		 * [MQTT-3.2.2-14]: it would close the link at that message every time. */
		l->retain_ok = !(c->props.have & MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE)) || c->props.retain_available;
		l->window = LINK_MAX_WINDOW;
		if ((c->props.have & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM)) && c->props.receive_maximum < l->window)
			l->window = c->props.receive_maximum;
		if (c->props.have & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE))
			l->max_packet = c->props.max_packet_size;
		/* QoS 0 only: nothing could be acknowledged, and a QoS 1 PUBLISH would
		 * close the link every time [MQTT-3.2.2-11]. The spool waits; what
		 * comes in still comes in. */
		if ((c->props.have & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_QOS)) && c->props.maximum_qos == 0) {
			l->window = 0;
			log_err("bridge %s: %s takes QoS 0 only: nothing is sent to it, the spool waits", bname(l),
				l->remote);
		}
	}
	atomic_store(&l->br->connected, true);
	log_notice("bridge %s: connected to %s (%s, session %s)", bname(l), l->remote,
		   l->version == MQTT_V5 ? "mqttv50" : "mqttv311", c->session_present ? "resumed" : "new");
	send_subscribe(l);
	if (l->br->edge)
		bridge__edge_online(l);
	link_pump(l);
	return 0;
}

static int on_packet(struct link *l, const struct mqtt_packet *pk)
{
	/* Before its CONNACK the remote may send nothing else [MQTT-3.2.0-1]. */
	if (l->state == LINK_MQTT && pk->type != MQTT_CONNACK)
		goto unexpected;
	switch (pk->type) {
	case MQTT_CONNACK:
		if (l->state != LINK_MQTT)
			break;
		return on_connack(l, &pk->u.connack);
	case MQTT_PUBACK:
		on_puback(l, &pk->u.ack);
		link_pump(l);
		return 0;
	case MQTT_PUBLISH:
		return on_publish(l, &pk->u.publish);
	case MQTT_SUBACK:
		for (uint32_t i = 0; i < pk->u.suback.n; i++)
			if (pk->u.suback.rcs[i] >= 0x80)
				log_warn("bridge %s: %s refused subscription %u of %u (0x%02x): nothing comes in on it",
					 bname(l), l->remote, i + 1, pk->u.suback.n, pk->u.suback.rcs[i]);
		return 0;
	case MQTT_PINGRESP:
		return 0;
	case MQTT_DISCONNECT: {
		char why[96];
		snprintf(why, sizeof why, "the remote disconnected: %s (0x%02x)", mqtt_rc_name(pk->u.reason.rc),
			 pk->u.reason.rc);
		link_close(l, why);
		return -1;
	}
	default:
		break;
	}
unexpected:;
	char why[64];
	snprintf(why, sizeof why, "unexpected %s from the remote", mqtt_type_name(pk->type));
	link_close(l, why);
	return -1;
}

/* Plaintext from the remote. Returns 0, or -1 when the link closed. */
static int link_input(void *arg, const uint8_t *p, size_t len)
{
	struct link *l = arg;
	if (buf_append(&l->in, p, len)) {
		link_close(l, "out of memory");
		return -1;
	}
	size_t used = 0;
	while (l->state == LINK_MQTT || l->state == LINK_ONLINE) {
		struct mqtt_packet pk;
		int n = mqtt_decode(l->in.p + used, l->in.len - used, l->version, l->br->all->b->cfg.max_packet_size,
				    &pk);
		if (n == 0)
			break;
		if (n < 0) {
			char why[96];
			snprintf(why, sizeof why, "bad packet from the remote: %s", mqtt_rc_name((uint8_t)-n));
			link_close(l, why);
			return -1;
		}
		used += (size_t)n;
		if (on_packet(l, &pk))
			return -1;
	}
	buf_consume(&l->in, used);
	return 0;
}

/* The link's read buffer, also where TLS puts the plaintext (the
 * transport copies the ciphertext first). */
static _Thread_local uint8_t link_rbuf[64 * 1024];

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)h;
	(void)hint;
	*b = uv_buf_init((char *)link_rbuf, sizeof link_rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct link *l = s->data;
	if (n == 0)
		return;
	if (n < 0) {
		link_close(l, n == UV_EOF ? "the remote closed the connection" : uv_strerror((int)n));
		return;
	}
	l->last_rx_ms = clock_mono_ms();
	bool was = !l->x.tls || tls_session_established(l->x.tls);
	if (l->x.tp->read(&l->x, (const uint8_t *)b->base, (size_t)n, link_rbuf, sizeof link_rbuf) < 0) {
		char why[200];
		snprintf(why, sizeof why, "TLS%s: %s", was ? "" : " handshake",
			 l->x.peer_closed ? "closed by the remote" : l->x.why ? l->x.why : "closed");
		link_flush(l);
		link_close(l, why);
		return;
	}
	link_flush(l);
}

/* ---- what the transport asks of the link ---- */

static int lx_deliver(void *owner, const uint8_t *p, size_t len) { return link_input(owner, p, len); }

static bool lx_closing(void *owner) { return ((struct link *)owner)->state == LINK_CLOSING; }

static void lx_tls_up(void *owner) { send_connect(owner); }

static const struct xport_ops link_xport_ops = {
	.deliver = lx_deliver,
	.closing = lx_closing,
	.tls_up = lx_tls_up,
};

static void handshake(struct link *l, bool ok);

static void on_connected(uv_connect_t *req, int status)
{
	struct link *l = req->data;
	if (l->state != LINK_CONNECTING)
		return;
	if (status < 0) {
		char why[128];
		snprintf(why, sizeof why, "connect: %s", uv_strerror(status));
		link_close(l, why);
		return;
	}
	struct tls_session *tls = NULL;
	if (l->tls_ctx) {
		const struct bridge_address *a = &l->br->conf->addresses[l->addr_index % l->br->conf->n_addresses];
		if (!(tls = tls_client_session_new(l->tls_ctx, a->host))) {
			link_close(l, "out of memory");
			return;
		}
	}
	xport_init(&l->x, tls ? &net_tls : &net_tcp, tls, NULL, &link_xport_ops, l);
	uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
	l->last_rx_ms = l->last_tx_ms = clock_mono_ms();
	if (l->br->edge)
		bridge__edge_before_connect(l, handshake); /* the CONNECT's bdSeq goes to disk first */
	else
		handshake(l, true);
}

/* TCP is up: TLS when configured, then CONNECT. */
static void handshake(struct link *l, bool ok)
{
	if (!ok) {
		link_close(l, "the Sparkplug bdSeq could not be stored");
		return;
	}
	if (!l->x.tls) {
		send_connect(l);
		return;
	}
	l->state = LINK_TLS;
	l->x.tp->read(&l->x, NULL, 0, link_rbuf, sizeof link_rbuf); /* the ClientHello */
	link_flush(l);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct link *l = req->data;
	if (l->stopping || l->state != LINK_RESOLVING) {
		uv_freeaddrinfo(res);
		return;
	}
	if (status < 0) {
		log_notice("bridge %s: %s: %s", bname(l), l->remote, uv_strerror(status));
		l->state = LINK_IDLE;
		schedule_retry(l);
		return;
	}
	uv_tcp_init(l->loop, &l->tcp);
	l->tcp.data = l;
	l->tcp_open = true;
	uv_tcp_nodelay(&l->tcp, 1);
	l->connect.data = l;
	l->state = LINK_CONNECTING;
	int rc = uv_tcp_connect(&l->connect, &l->tcp, res->ai_addr, on_connected);
	uv_freeaddrinfo(res);
	if (rc) {
		char why[128];
		snprintf(why, sizeof why, "connect: %s", uv_strerror(rc));
		link_close(l, why);
	}
}

void link_start(struct link *l)
{
	const struct bridge_conf *c = l->br->conf;
	const struct bridge_address *a = &c->addresses[l->addr_index % c->n_addresses];
	char port[8];
	snprintf(port, sizeof port, "%u", a->port);
	snprintf(l->remote, sizeof l->remote, "%s:%u", a->host, a->port);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	l->resolve.data = l;
	l->state = LINK_RESOLVING;
	l->connect_started_ms = clock_mono_ms();
	int rc = uv_getaddrinfo(l->loop, &l->resolve, on_resolved, a->host, port, &hints);
	if (rc) {
		log_notice("bridge %s: %s: %s", bname(l), l->remote, uv_strerror(rc));
		l->state = LINK_IDLE;
		schedule_retry(l);
	}
}

static void on_retry(uv_timer_t *t) { link_start(t->data); }

static void on_async(uv_async_t *a) { link_pump(a->data); }

int link_init(struct link *l, struct bridge *br, uv_loop_t *loop)
{
	memset(l, 0, sizeof *l);
	l->br = br;
	l->loop = loop;
	l->version = br->conf->protocol_version == BRIDGE_MQTTV50 ? MQTT_V5 : MQTT_V311;
	uv_timer_init(loop, &l->timer);
	uv_async_init(loop, &l->async, on_async);
	l->timer.data = l->async.data = l;
	return 0;
}

void link_tick(struct link *l, uint64_t now_ms)
{
	uint32_t ka = l->keepalive;
	if ((l->state == LINK_RESOLVING || l->state == LINK_CONNECTING || l->state == LINK_TLS ||
	     l->state == LINK_MQTT) && now_ms - l->connect_started_ms > LINK_CONNECT_TIMEOUT_MS) {
		if (l->state == LINK_RESOLVING)
			return; /* the resolver answers in its own time */
		link_close(l, "no CONNACK within 10 s");
		return;
	}
	if (l->state != LINK_ONLINE)
		return;
	if (ka && now_ms - l->last_rx_ms > (uint64_t)ka * 1500) {
		link_close(l, "keep alive timeout: nothing from the remote for 1.5 x keepalive_interval");
		return;
	}
	if (ka && now_ms - l->last_tx_ms >= (uint64_t)ka * 1000) {
		mqtt_encode_simple(&l->out, MQTT_PINGREQ);
		link_flush(l);
	}
	link_pump(l);
}

void link_stop(struct link *l)
{
	l->stopping = true;
	uv_timer_stop(&l->timer);
	if (l->state == LINK_RESOLVING)
		uv_cancel((uv_req_t *)&l->resolve);
	if (l->state == LINK_ONLINE && !l->wreq) {
		/* A clean goodbye, written at once: the loop is ending. */
		/* The edge node's goodbye is its NDEATH [tck-id-operational-behavior-edge-node-termination...]:
		 * v5 asks the remote for the will (0x04), v3 sends it. */
		struct mqtt_reason r = { .rc = l->br->edge ? 0x04 : 0 };
		if (l->br->edge)
			bridge__edge_goodbye(l);
		if (l->version == MQTT_V5)
			mqtt_encode_reason(&l->out, MQTT_V5, MQTT_DISCONNECT, &r);
		else
			mqtt_encode_simple(&l->out, MQTT_DISCONNECT);
		struct buf *src = &l->out;
		if (l->x.tp->encode) {
			if (!l->x.tp->encode(&l->x, &l->out))
				l->x.tp->shutdown(&l->x);
			src = &l->x.wire;
		}
		uv_buf_t b = uv_buf_init((char *)src->p, src->len);
		uv_try_write((uv_stream_t *)&l->tcp, &b, 1);
	}
	l->state = LINK_CLOSING;
	atomic_store(&l->br->connected, false);
	if (l->tcp_open && !uv_is_closing((uv_handle_t *)&l->tcp))
		uv_close((uv_handle_t *)&l->tcp, NULL);
	l->tcp_open = false;
	uv_close((uv_handle_t *)&l->timer, NULL);
	uv_close((uv_handle_t *)&l->async, NULL);
}

void link_free(struct link *l)
{
	xport_free(&l->x);
	SSL_CTX_free(l->tls_ctx);
	buf_free(&l->in);
	buf_free(&l->out);
}
