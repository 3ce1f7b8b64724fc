/* Broker lifecycle, the packet dispatch and connection ends. */
#include "broker.h"
#include "access.h"
#include "admin.h"
#include "client.h"
#include "deliver.h"
#include "handlers.h"
#include "persist.h"
#include "rate.h"
#include "registry.h"
#include "reply.h"
#include "route.h"
#include "sessions.h"
#include "sparkplug.h"
#include "spill.h"
#include "store_txn.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../base/err.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct broker *broker_new(const struct config *cfg, unsigned n_workers, const struct broker_ports *ports)
{
	struct broker *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->cfg = *cfg;
	pthread_mutex_init(&b->standby.lock, NULL); /* before any failure: broker_free destroys it */
	b->ports = *ports;
	b->n_workers = n_workers;
	b->workers = calloc(n_workers, sizeof *b->workers);
	b->subs = sub_index_new();
	b->retained = retain_index_new();
	if (!b->workers || !b->subs || !b->retained || broker__spb_init(b)) {
		broker_free(b);
		return NULL;
	}
	for (unsigned i = 0; i < n_workers; i++) {
		b->workers[i].id = (int)i;
		b->workers[i].b = b;
		pthread_mutex_init(&b->workers[i].wake_lock, NULL);
	}
	pthread_rwlock_init(&b->subs_lock, NULL);
	pthread_rwlock_init(&b->retain_lock, NULL);
	pthread_mutex_init(&b->reg_lock, NULL);
	pthread_mutex_init(&b->auth_lock, NULL);
	atomic_init(&b->next_sid, 1);
	atomic_init(&b->next_client_no, 1);
	b->started_wall_ms = clock_wall_ms();
	return b;
}

static void drop_retained(void *msg) { msg_unref(msg); }

void broker_free(struct broker *b)
{
	if (!b)
		return;
	/* Sessions: drop the index first (it holds no references), then each. */
	sub_index_free(b->subs);
	for (uint32_t i = 0; i < b->n_timed; i++)
		session_unref(b->timed[i]);
	free(b->timed);
	broker__registry_free_all(b);
	broker__access_free(b);
	broker__spb_free(b);
	if (b->retained)
		retain_index_free(b->retained, drop_retained);
	for (unsigned i = 0; b->workers && i < b->n_workers; i++) {
		struct bworker *w = &b->workers[i];
		for (uint32_t k = 0; k < w->n_wake; k++) {
			session_unref(w->wake[k].session);
			if (w->wake[k].kick)
				b->ports.conn_unref(w->wake[k].kick);
			broker__txn_free(w->wake[k].txn);
		}
		for (uint32_t k = 0; k < w->n_admin; k++)
			if (w->admin[k].kick)
				b->ports.conn_unref(w->admin[k].kick);
		free(w->admin);
		broker__txn_free(w->txn);
		free(w->held);
		for (uint32_t k = 0; k < w->n_load_retry; k++)
			session_unref(w->load_retry[k]);
		free(w->load_retry);
		free(w->wake);
		free(w->wake_spare);
		free(w->targets);
		pthread_mutex_destroy(&w->wake_lock);
	}
	free(b->workers);
	free(b->standby.reference);
	pthread_mutex_destroy(&b->standby.lock);
	free(b);
}

void broker_client_init(struct broker *b, struct client *c, int worker, const struct sockaddr *peer)
{
	memset(c, 0, sizeof *c);
	c->b = b;
	c->worker = worker;
	c->state = CLIENT_NEW;
	c->version = MQTT_V311; /* until CONNECT says otherwise */
	c->connected_at_ms = c->last_rx_ms = clock_mono_ms();
	broker__rate_init(c, c->connected_at_ms);
	if (peer && peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)peer;
		memcpy(c->addr_ip, &a->sin6_addr, 16);
		c->addr_port = ntohs(a->sin6_port);
		c->addr_family = AF_INET6;
	} else if (peer && peer->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)peer;
		memcpy(c->addr_ip, &a->sin_addr, 4);
		c->addr_port = ntohs(a->sin_port);
		c->addr_family = AF_INET;
	}
	struct bworker *w = &b->workers[worker];
	c->next = w->clients;
	if (w->clients)
		w->clients->prev = c;
	w->clients = c;
}

static void end_session(struct client *c);

/* A valid DISCONNECT detaches the session at once, not when the connection
 * closes: the peer may hold it open for the linger (up to LINGER_MS), and
 * whatever is published meanwhile must go to the offline queue (or be
 * dropped, for a session that ends) as after the close, not in flight to a
 * connection that is going away. The close then finds no session. */
static struct handled handle_disconnect(struct client *c, const struct mqtt_reason *m)
{
	struct session *s = c->session;
	if (c->version == MQTT_V5 && (m->props.have & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY))) {
		pthread_mutex_lock(&s->lock);
		bool was_zero = s->expiry_interval == 0;
		if (!was_zero && s->client == c)
			s->expiry_interval = m->props.session_expiry;
		pthread_mutex_unlock(&s->lock);
		if (was_zero && m->props.session_expiry) { /* 5.0 §3.14.2.2.2: not a valid DISCONNECT */
			broker__client_disconnect(c, MQTT_RC_PROTOCOL_ERROR,
						  "session expiry set after connecting with 0");
			return HANDLED_CLOSED;
		}
	}
	/* Normal disconnect discards the will, except 0x04 [MQTT-3.14.4-3]. */
	c->will_on_close = m->rc == MQTT_RC_DISCONNECT_WITH_WILL;
	log_client(LVL_INFO, WHO(c, m->rc), "client %s disconnected (0x%02x) from %s, identity %s", s->client_id, m->rc,
		   CLIENT_ADDR(c), OR_DASH(c->identity));
	c->state = CLIENT_CLOSING;
	end_session(c);
	c->b->ports.close(c);
	return HANDLED_CLOSED;
}

static struct handled dispatch(struct client *c, const struct mqtt_packet *pk)
{
	if (c->state == CLIENT_NEW && pk->type != MQTT_CONNECT) {
		/* [MQTT-3.1.0-1]: the first packet must be CONNECT. */
		log_notice("client from %s sent %s before CONNECT", CLIENT_ADDR(c), mqtt_type_name(pk->type));
		c->state = CLIENT_CLOSING;
		c->b->ports.close(c);
		return HANDLED_CLOSED;
	}
	switch (pk->type) {
	case MQTT_CONNECT: return broker__handle_connect(c, &pk->u.connect);
	case MQTT_PUBLISH: return broker__handle_publish(c, &pk->u.publish);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP: return broker__handle_ack(c, pk->type, &pk->u.ack);
	case MQTT_SUBSCRIBE: return broker__handle_subscribe(c, &pk->u.subscribe);
	case MQTT_UNSUBSCRIBE: return broker__handle_unsubscribe(c, &pk->u.subscribe);
	case MQTT_PINGREQ:
		/* Behind an acknowledgement that waits for the disk, if any. */
		broker__reply_ack(&c->b->workers[c->worker], c, MQTT_PINGRESP, 0, 0, NULL, false);
		return HANDLED_OPEN;
	case MQTT_DISCONNECT: return handle_disconnect(c, &pk->u.reason);
	case MQTT_AUTH:
		broker__client_disconnect(c, MQTT_RC_PROTOCOL_ERROR, "AUTH without an authentication method");
		return HANDLED_CLOSED;
	default: /* CONNACK, SUBACK, UNSUBACK, PINGRESP come only from servers */
		broker__client_disconnect(c, MQTT_RC_PROTOCOL_ERROR, "packet type not sent by clients");
		return HANDLED_CLOSED;
	}
}

long broker_on_data(struct client *c, const uint8_t *p, size_t len)
{
	struct broker *b = c->b;
	struct bworker *w = &b->workers[c->worker];
	size_t used = 0;
	c->last_rx_ms = clock_mono_ms();
	w->stats.bytes_received += len;
	c->bytes_received += len;
	/* A held client's packets wait (in the connection's input) for tokens. */
	while (used < len && c->state != CLIENT_CLOSING && !c->rate_held) {
		struct mqtt_packet pk;
		uint8_t version = c->state == CLIENT_NEW ? 0 : c->version;
		/* Bounded before trusted: until its CONNECT is accepted a peer
		 * cannot make us buffer more than max_connect_packet_size. */
		uint32_t max = b->cfg.max_packet_size;
		if (c->state == CLIENT_NEW && (!max || max > b->cfg.max_connect_packet_size))
			max = b->cfg.max_connect_packet_size;
		int n = mqtt_decode(p + used, len - used, version, max, &pk);
		if (n == 0)
			break;
		if (n == -MQTT_RC_PACKET_TOO_LARGE && c->state == CLIENT_NEW) {
			/* Its protocol version is in the part not read: no CONNACK. */
			log_notice("client from %s: first packet (%s) of %u bytes is larger than %s %u; closed",
				   CLIENT_ADDR(c), mqtt_type_name(pk.type), pk.size,
				   max == b->cfg.max_packet_size ? "max_packet_size" : "max_connect_packet_size", max);
			c->state = CLIENT_CLOSING;
			b->ports.close(c);
			return BROKER_CLOSED;
		}
		if (n < 0) {
			uint8_t rc = (uint8_t)-n;
			if (c->state == CLIENT_NEW && pk.type == MQTT_CONNECT) {
				c->version = pk.u.connect.version == MQTT_V5 ? MQTT_V5 : MQTT_V311;
				if (rc == MQTT_RC_UNSUPPORTED_PROTOCOL) {
					/* v3 code 1 for an unknown level [MQTT-3.1.2-2]. */
					struct mqtt_connack ack = { .rc = c->version == MQTT_V5 ? rc : MQTT_V3_BAD_PROTOCOL };
					mqtt_encode_connack(b->ports.out(c), c->version, &ack);
					log_notice("client from %s: unsupported protocol version %u", CLIENT_ADDR(c),
						   pk.u.connect.version);
					c->state = CLIENT_CLOSING;
					b->ports.close(c);
					return BROKER_CLOSED;
				}
			}
			broker__client_disconnect(c, rc, mqtt_rc_name(rc));
			return BROKER_CLOSED;
		}
		used += (size_t)n;
		if (pk.type == MQTT_PUBLISH)
			broker__rate_charge(c, (size_t)n, c->last_rx_ms);
		if (dispatch(c, &pk).closed)
			return BROKER_CLOSED;
	}
	return (long)used;
}

void broker_on_writable(struct client *c)
{
	struct session *s = c->session;
	if (c->state != CLIENT_CONNECTED || !s)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->client == c)
		broker__deliver_pump(s);
	pthread_mutex_unlock(&s->lock);
}

/* Detaches c from its session at connection end; returns what must happen
 * after the lock is released. */
static void detach(struct client *c, struct session *s, struct msg **will_now, char **will_user,
		   bool *end_now, struct qring *shared)
{
	struct broker *b = c->b;
	struct bworker *w = &b->workers[c->worker];
	uint64_t now = clock_wall_ms();
	s->client = NULL;
	__atomic_store_n(&s->worker, -1, __ATOMIC_RELAXED);
	if (s->will && c->will_on_close) {
		if (s->will_delay == 0 || s->expiry_interval == 0) {
			*will_now = broker__session_take_will(s, will_user);
		} else {
			s->will_at = now + (uint64_t)s->will_delay * 1000;
		}
	} else {
		char *user;
		msg_unref(broker__session_take_will(s, &user));
		free(user);
	}
	*end_now = s->expiry_interval == 0;
	if (!*end_now && s->expiry_interval != UINT32_MAX)
		s->expires_at = now + (uint64_t)s->expiry_interval * 1000;
	/* Offline sessions keep only QoS 1/2; $share messages move to another member. */
	for (struct qring *q = &s->inflight; q; q = q == &s->inflight ? &s->queue : NULL) {
		for (uint32_t i = 0; i < q->count;) {
			struct qentry *e = qring_at(q, i);
			/* One whose body is on disk stays: it waits for this session's return. */
			bool share = (e->flags & QE_SHARED) && e->state != QE_WAIT_PUBCOMP && !qentry_on_disk(e);
			if (e->qos && !share) {
				i++;
				continue;
			}
			struct qentry taken;
			qring_remove(q, i, &taken);
			if (q == &s->queue)
				s->queued_bytes -= taken.bytes;
			broker__persist_queue_del(w, s, &taken);
			if (!share || qring_push(shared, &taken))
				qentry_release(&taken);
		}
	}
	/* The offline deadlines and the will must survive a restart. */
	if (!*end_now)
		broker__persist_session(w, s);
}

/* Ends c's hold on its session (c->session set): at a valid DISCONNECT, or
 * when a connection that sent none closes. When c is still the session's
 * connection (not taken over, not deleted), detaches it: the will per
 * c->will_on_close, the expiry deadline, the offline queue; a session that
 * ends with its connection ends. Drops c's reference and leaves c->session
 * NULL: the close that follows a DISCONNECT detaches nothing again (one
 * will, one count). Records go to the worker's transaction. */
static void end_session(struct client *c)
{
	struct broker *b = c->b;
	struct bworker *w = &b->workers[c->worker];
	struct session *s = c->session;
	struct msg *will_now = NULL;
	char *will_user = NULL;
	bool end_now = false, ours = false;
	struct qring shared = { 0 };
	/* Read once: shutdown may begin while this runs. */
	bool stopping = atomic_load(&b->shutting_down);
	if (stopping && !b->cfg.will_on_shutdown)
		c->will_on_close = false;
	pthread_mutex_lock(&b->reg_lock);
	pthread_mutex_lock(&s->lock);
	if (s->client == c) {
		ours = true;
		detach(c, s, &will_now, &will_user, &end_now, &shared);
	}
	pthread_mutex_unlock(&s->lock);
	if (ours && end_now && !stopping)
		broker__registry_remove(b, s);
	else if (ours && (s->will_at || s->expires_at))
		broker__session_timed_add(b, s);
	pthread_mutex_unlock(&b->reg_lock);
	if (ours)
		atomic_fetch_sub(&b->stats.clients_connected, 1);
	for (uint32_t i = 0; i < shared.count; i++)
		broker__route_reshare(w, s, qring_at(&shared, i), 1);
	free(shared.e);
	broker__session_will_publish(w, s->client_id, will_user, will_now);
	if (ours && end_now && !stopping)
		broker__session_end(w, s); /* consumes the registry's reference */
	session_unref(s);
	c->session = NULL;
	broker__persist_commit(w, NULL, NULL, 0, 0, false);
}

void broker_on_close(struct client *c)
{
	struct broker *b = c->b;
	struct bworker *w = &b->workers[c->worker];
	if (c->prev)
		c->prev->next = c->next;
	else
		w->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	if (c->session) {
		if (c->state != CLIENT_CLOSING)
			c->will_on_close = true; /* closed without DISCONNECT [MQTT-3.1.2-8] */
		end_session(c);
		/* Close callbacks run after the loop's end-of-turn flush: wake it so
		 * these records reach the store now, not at the next tick. (A
		 * session deleted on another worker meanwhile must not come back
		 * by a late record of this one.) */
		if (w->txn && w->txn->n_ops)
			b->ports.wake(b, c->worker);
	}
	if (c->aliases) {
		for (uint32_t i = 0; i <= (uint32_t)c->alias_max_in + CLIENT_MAX_OUT_ALIASES; i++)
			free(c->aliases[i]);
		free(c->aliases);
	}
	broker__access_release(c);
	broker__rate_free(c);
	free(c->username);
	free(c->identity);
	c->aliases = NULL;
	c->username = NULL;
	c->identity = NULL;
	c->state = CLIENT_CLOSING;
}

void broker_worker_wake(struct bworker *w)
{
	struct broker *b = w->b;
	pthread_mutex_lock(&w->wake_lock);
	struct wake_item *items = w->wake;
	uint32_t n = w->n_wake, cap = w->cap_wake;
	w->wake = w->wake_spare;
	w->cap_wake = w->cap_spare;
	w->n_wake = 0;
	w->wake_spare = NULL;
	w->cap_spare = 0;
	pthread_mutex_unlock(&w->wake_lock);
	for (uint32_t i = 0; i < n; i++) {
		struct wake_item *it = &items[i];
		if (it->txn) {
			struct store_txn *t = it->txn;
			for (uint32_t k = 0; k < t->n_cbs; k++) {
				const struct store_cb *cb = &t->cbs[k];
				if (cb->c) {
					cb->c->pending_store--;
					broker__reply_done(cb, t->err);
				} else {
					cb->done(cb->ctx, cb->pid, cb->kind, t->err);
				}
			}
			if (!t->err)
				broker__spill_committed(t);
			if (b->bridges)
				b->bridges->committed(b->bridges->ctx, t);
			broker__txn_free(t);
			atomic_fetch_sub(&w->pending_txns, 1);
		}
		if (it->kick) {
			struct client *old = it->kick;
			if (old->state == CLIENT_CONNECTED) {
				old->kicked = true;
				broker__client_disconnect(old, MQTT_RC_SESSION_TAKEN_OVER, "session taken over");
			}
			b->ports.conn_unref(old);
		}
		if (it->session) {
			struct session *s = it->session;
			atomic_store(&s->flush_pending, false);
			pthread_mutex_lock(&s->lock);
			if (s->client && s->worker == w->id)
				broker__deliver_pump(s);
			pthread_mutex_unlock(&s->lock);
			session_unref(s);
		}
	}
	broker__admin_run(w);
	broker__persist_commit(w, NULL, NULL, 0, 0, false);
	/* Keep the larger array as the spare to avoid reallocating every turn. */
	pthread_mutex_lock(&w->wake_lock);
	if (!w->wake_spare) {
		w->wake_spare = items;
		w->cap_spare = cap;
	} else {
		free(items);
	}
	pthread_mutex_unlock(&w->wake_lock);
}

/* Cuts off a client that does not read: its output is over 4 x max_output_buffer
 * (deliveries pause at 1 x, but control packets and resends do not), or
 * has stayed over max_output_buffer for output_stall_timeout. It is cut off
 * at once: a goodbye would only wait behind the output it does not read. */
void broker_client_check_output(struct client *c, uint64_t now)
{
	struct broker *b = c->b;
	if (c->state == CLIENT_CLOSING)
		return;
	uint64_t cap = b->cfg.max_output_buffer, pending = b->ports.out_pending(c);
	uint32_t stall = b->cfg.output_stall_timeout;
	const char *why = NULL;
	if (pending < cap) {
		c->out_full_since_ms = 0;
		return;
	}
	if (!c->out_full_since_ms)
		c->out_full_since_ms = now;
	if (pending / 4 > cap)
		why = "output above 4 x max_output_buffer";
	else if (stall && now - c->out_full_since_ms >= (uint64_t)stall * 1000)
		why = "output above max_output_buffer for output_stall_timeout";
	if (!why)
		return;
	log_client(LVL_NOTICE, WHO(c, -1), "client %s (%s, identity %s) disconnected: not reading, %s (%llu bytes pending)",
		   broker__client_name(c), CLIENT_ADDR(c), OR_DASH(c->identity), why, (unsigned long long)pending);
	c->will_on_close = true; /* not a normal DISCONNECT [MQTT-3.1.2-8] */
	c->state = CLIENT_CLOSING;
	b->ports.abort(c);
}

void broker_worker_publish_stats(struct bworker *w)
{
	const struct stats_local *l = &w->stats;
	struct stats_published *p = &w->stats_pub;
	atomic_store_explicit(&p->msgs_received, l->msgs_received, memory_order_relaxed);
	atomic_store_explicit(&p->msgs_sent, l->msgs_sent, memory_order_relaxed);
	atomic_store_explicit(&p->bytes_received, l->bytes_received, memory_order_relaxed);
	atomic_store_explicit(&p->bytes_sent, l->bytes_sent, memory_order_relaxed);
	for (int r = 0; r < DROP__COUNT; r++)
		atomic_store_explicit(&p->drops[r], l->drops[r], memory_order_relaxed);
}

void broker_stats_sum(const struct broker *b, struct stats_local *out)
{
	memset(out, 0, sizeof *out);
	for (unsigned i = 0; i < b->n_workers; i++) {
		const struct stats_published *p = &b->workers[i].stats_pub;
		out->msgs_received += atomic_load_explicit(&p->msgs_received, memory_order_relaxed);
		out->msgs_sent += atomic_load_explicit(&p->msgs_sent, memory_order_relaxed);
		out->bytes_received += atomic_load_explicit(&p->bytes_received, memory_order_relaxed);
		out->bytes_sent += atomic_load_explicit(&p->bytes_sent, memory_order_relaxed);
		for (int r = 0; r < DROP__COUNT; r++)
			out->drops[r] += atomic_load_explicit(&p->drops[r], memory_order_relaxed);
	}
}

/* A client cut off for keep-alive: its will (without a Will Delay) goes at
 * once, not when the connection closes after the DISCONNECT's linger (up to
 * 2 s more): a Sparkplug host must see an edge node's NDEATH within 1.5 x
 * its keep-alive. The close then finds no will. */
static void keepalive_will_now(struct bworker *w, struct client *c)
{
	struct session *s = c->session;
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	char *user = NULL;
	struct msg *will = NULL;
	if (s->client == c && s->will && (s->will_delay == 0 || s->expiry_interval == 0)) {
		will = broker__session_take_will(s, &user);
		broker__persist_session(w, s);
	}
	pthread_mutex_unlock(&s->lock);
	if (!will)
		return;
	broker__session_will_publish(w, s->client_id, user, will);
	broker__persist_commit(w, NULL, NULL, 0, 0, false);
}

void broker_worker_tick(struct bworker *w, uint64_t now)
{
	struct broker *b = w->b;
	broker_worker_publish_stats(w);
	broker__spill_retry(w);
	for (struct client *c = w->clients, *next; c; c = next) {
		next = c->next;
		if (c->state == CLIENT_NEW && now - c->connected_at_ms > (uint64_t)b->cfg.connect_timeout * 1000) {
			log_notice("client from %s sent no CONNECT within %u s", CLIENT_ADDR(c), b->cfg.connect_timeout);
			c->state = CLIENT_CLOSING;
			b->ports.close(c);
		} else if (c->state == CLIENT_CONNECTED && c->keepalive &&
			   now - c->last_rx_ms > (uint64_t)c->keepalive * 1500) { /* [MQTT-3.1.2-22] */
			broker__client_disconnect(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keep alive timeout");
			keepalive_will_now(w, c);
		} else if (c->state == CLIENT_CONNECTED) {
			broker_client_check_output(c, now);
		}
	}
}

void broker_worker_publish_wills(struct bworker *w)
{
	for (struct client *c = w->clients; c; c = c->next) {
		struct session *s = c->session;
		if (c->state != CLIENT_CONNECTED || !s)
			continue;
		pthread_mutex_lock(&s->lock);
		char *user = NULL;
		struct msg *will = s->client == c ? broker__session_take_will(s, &user) : NULL;
		if (will)
			broker__persist_session(w, s);
		pthread_mutex_unlock(&s->lock);
		broker__session_will_publish(w, s->client_id, user, will);
	}
	broker__persist_commit(w, NULL, NULL, 0, 0, false);
}

void broker_worker_shutdown(struct bworker *w)
{
	/* Deliveries already routed here go out before the DISCONNECTs. */
	broker_worker_wake(w);
	struct broker *b = w->b;
	for (struct client *c = w->clients, *next; c; c = next) {
		next = c->next;
		if (c->state == CLIENT_CONNECTED) {
			broker__client_disconnect(c, MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down");
			c->will_on_close = b->cfg.will_on_shutdown;
		} else if (c->state == CLIENT_NEW) {
			log_info("connection from %s ended before CONNECT: server shutting down", CLIENT_ADDR(c));
			c->state = CLIENT_CLOSING;
			b->ports.close(c);
		}
	}
}

void broker_client_set_identity(struct client *c, const char *identity)
{
	free(c->identity);
	c->identity = identity ? strdup(identity) : NULL;
}
