/* CONNECT: protocol checks, client identifier, session take-over or
 * creation, CONNACK, then what the session kept. */
#include "access.h"
#include "admit.h"
#include "client.h"
#include "deliver.h"
#include "handlers.h"
#include "inbox.h"
#include "msg.h"
#include "persist.h"
#include "registry.h"
#include "reply.h"
#include "sessions.h"
#include "standby.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../base/err.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Refuses a CONNECT with the version's code, then closes. */
static struct handled connack_refuse(struct client *c, uint8_t rc5, uint8_t rc3, const char *why)
{
	struct mqtt_connack ack = { .rc = c->version == MQTT_V5 ? rc5 : rc3 };
	if (c->version == MQTT_V5)
		broker__client_reason_string(c, &ack.props, why);
	mqtt_encode_connack(c->b->ports.out(c), c->version, &ack);
	log_client(LVL_NOTICE, WHO(c, c->version == MQTT_V5 ? rc5 : rc3), "client connection from %s (identity %s) refused: %s (0x%02x)",
		   CLIENT_ADDR(c), OR_DASH(c->identity), why, c->version == MQTT_V5 ? rc5 : rc3);
	c->state = CLIENT_CLOSING;
	c->b->ports.close(c);
	return HANDLED_CLOSED;
}

static void assign_client_id(struct broker *b, char *out, size_t outlen)
{
	uint64_t n = atomic_fetch_add(&b->next_client_no, 1);
	snprintf(out, outlen, "fm-%016" PRIx64 "-%06" PRIx64, clock_wall_ms(), n);
}

/* Applies the client's v5 limits and ours to c. Returns the Server Keep Alive
 * to announce, or -1 when the client's own keep-alive stands. */
static int negotiate(struct client *c, const struct mqtt_connect *m)
{
	const struct config *cfg = &c->b->cfg;
	const struct mqtt_props *pr = &m->props;
	int server_ka = -1;
	c->keepalive = m->keepalive;
	if (m->keepalive > cfg->max_keepalive || (m->keepalive == 0 && cfg->max_keepalive < 65535)) {
		c->keepalive = (uint16_t)cfg->max_keepalive;
		server_ka = c->keepalive;
	}
	uint32_t send_max = 65535;
	if (pr->have & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM))
		send_max = pr->receive_maximum;
	c->send_max = (uint16_t)(send_max < cfg->max_inflight_messages ? send_max : cfg->max_inflight_messages);
	c->max_packet_out = pr->have & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE) ? pr->max_packet_size : 0;
	c->alias_max_out = (uint8_t)(pr->topic_alias_maximum < CLIENT_MAX_OUT_ALIASES ? pr->topic_alias_maximum
											  : CLIENT_MAX_OUT_ALIASES);
	c->alias_max_in = (uint16_t)cfg->max_topic_alias;
	c->request_problem_info = !(pr->have & MQTT_PROP_BIT(MQTT_PROP_REQUEST_PROBLEM_INFO)) ||
				  pr->request_problem_info;
	return server_ka;
}

static uint32_t session_expiry_of(const struct broker *b, const struct mqtt_connect *m)
{
	if (m->version == MQTT_V5)
		return m->props.session_expiry; /* 0 when absent [MQTT-3.1.2.11.2] */
	if (m->clean_start)
		return 0;
	return b->cfg.persistent_client_expiration ? b->cfg.persistent_client_expiration : UINT32_MAX;
}

struct takeover {
	struct session *ending; /* the old session, when Clean Start discards it */
	struct msg *will;       /* the previous connection's will, to publish now */
	char *will_user;        /* and the user it was admitted for (owned) */
	struct client *kick;    /* the previous connection, still open elsewhere */
};

/* Detaches whatever holds the session now (registry lock held). */
static void take_over(struct session *s, bool clean_start, struct takeover *t)
{
	struct broker_ports *ports = NULL;
	pthread_mutex_lock(&s->lock);
	if (s->client) {
		t->kick = s->client;
		ports = &t->kick->b->ports;
		ports->conn_ref(t->kick);
		s->client = NULL;
		__atomic_store_n(&s->worker, -1, __ATOMIC_RELAXED);
	}
	/* A will waits out its delay only while the session lives on without a
	 * connection; a new connection to the same session cancels it
	 * [MQTT-3.1.3-9], a discarded session publishes it. */
	if (s->will && (clean_start || (t->kick && s->will_delay == 0)))
		t->will = broker__session_take_will(s, &t->will_user);
	msg_unref(s->will);
	s->will = NULL;
	s->will_at = 0;
	s->expires_at = 0;
	pthread_mutex_unlock(&s->lock);
}

/* The will passes the admission of every message, with the ACL this client
 * was admitted with: a will is a publish that happens later (stored with
 * the session [MQTT-3.1.2-7]; refused with v5 CONNACK 0x87 / 0x90 / 0x9A,
 * §3.2.2.2; v3.1.1 return code 5 or 3, §3.2.2.3). It is checked again when
 * it fires (broker__session_will_publish). */
static struct handled build_will(struct client *c, const struct mqtt_connect *m, struct msg **will, char **will_user)
{
	*will = NULL;
	*will_user = NULL;
	if (!m->will)
		return HANDLED_OPEN;
	struct broker *b = c->b;
	const char *topic = (const char *)m->will_topic.p;
	enum admit admit = broker__admit(b, c->acl, topic, m->will_topic.len, m->will_retain);
	if (admit != ADMIT_OK) {
		log_client(LVL_NOTICE, WHO(c, 0), "client from %s: will on %.*s refused: %s", CLIENT_ADDR(c),
			   (int)m->will_topic.len, topic, broker__admit_why(admit));
		return connack_refuse(c, broker__admit_rc(admit),
				      admit == ADMIT_RETAIN ? MQTT_V3_UNAVAILABLE : MQTT_V3_NOT_AUTHORIZED,
				      broker__admit_why(admit));
	}
	if (c->username && !(*will_user = strdup(c->username)))
		return connack_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, MQTT_V3_UNAVAILABLE, "out of memory");
	*will = broker__msg_build(b, &b->workers[c->worker], m->will_topic, m->will_payload, &m->will_props, m->version,
				  m->will_qos, m->will_retain);
	if (!*will) {
		free(*will_user);
		*will_user = NULL;
		return connack_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, MQTT_V3_UNAVAILABLE, "out of memory");
	}
	return HANDLED_OPEN;
}

static void encode_connack(struct client *c, struct buf *out, const struct mqtt_connect *m, bool present,
			   int server_ka, const char *assigned)
{
	const struct config *cfg = &c->b->cfg;
	struct mqtt_connack ack = { .session_present = present, .rc = 0 };
	struct mqtt_props *pr = &ack.props;
	char response[128];
	if (c->version == MQTT_V5) {
		if (cfg->receive_maximum < 65535) {
			pr->have |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
			pr->receive_maximum = (uint16_t)cfg->receive_maximum;
		}
		pr->have |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
		pr->topic_alias_maximum = (uint16_t)cfg->max_topic_alias;
		if (cfg->max_packet_size) {
			pr->have |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
			pr->max_packet_size = cfg->max_packet_size;
		}
		if (!cfg->retain_available) {
			pr->have |= MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE);
			pr->retain_available = 0;
		}
		if (assigned) {
			pr->have |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID);
			pr->assigned_client_id = (struct mqtt_bin){ (const uint8_t *)assigned, (uint32_t)strlen(assigned) };
		}
		if (server_ka >= 0) {
			pr->have |= MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE);
			pr->server_keep_alive = (uint16_t)server_ka;
		}
		if ((m->props.have & MQTT_PROP_BIT(MQTT_PROP_REQUEST_RESPONSE_INFO)) && m->props.request_response_info) {
			/* A topic prefix this client may use for responses. */
			int n = snprintf(response, sizeof response, "response/%.100s", c->session->client_id);
			pr->have |= MQTT_PROP_BIT(MQTT_PROP_RESPONSE_INFO);
			pr->response_info = (struct mqtt_bin){ (const uint8_t *)response, (uint32_t)n };
		}
	}
	mqtt_encode_connack(out, c->version, &ack);
}

/* The CONNACK, once the session (its will, its expiry) is on disk; then the
 * session's inflight messages again and its queue. */
static void connack_then(struct client *c, struct reply_body *rb)
{
	(void)rb;
	struct session *s = c->session;
	pthread_mutex_lock(&s->lock);
	if (s->client == c) {
		broker__deliver_resend_inflight(s);
		broker__deliver_pump(s);
	}
	pthread_mutex_unlock(&s->lock);
}

static void connack_release(struct reply_body *rb)
{
	buf_free(&rb->bytes);
	free(rb);
}

struct handled broker__handle_connect(struct client *c, const struct mqtt_connect *m)
{
	struct broker *b = c->b;
	struct bworker *w = &b->workers[c->worker];
	if (c->state != CLIENT_NEW) {
		broker__client_disconnect(c, MQTT_RC_PROTOCOL_ERROR, "second CONNECT"); /* [MQTT-3.1.0-2] */
		return HANDLED_CLOSED;
	}
	c->version = m->version;
	if (atomic_load_explicit(&b->standby.on, memory_order_relaxed))
		return broker__standby_refuse(c);
	if (m->version == MQTT_V5 && (m->props.have & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD)))
		return connack_refuse(c, MQTT_RC_BAD_AUTH_METHOD, MQTT_V3_NOT_AUTHORIZED,
				      "enhanced authentication is not supported");
	char assigned[64];
	const char *id = (const char *)m->client_id.p;
	size_t id_len = m->client_id.len;
	bool was_assigned = false;
	if (id_len == 0) {
		/* v3.1.1 allows an empty id only with a clean session [MQTT-3.1.3-8]. */
		if (m->version == MQTT_V31 || (m->version == MQTT_V311 && !m->clean_start))
			return connack_refuse(c, MQTT_RC_CLIENT_ID_NOT_VALID, MQTT_V3_ID_REJECTED,
					      "empty client id without a clean session");
		assign_client_id(b, assigned, sizeof assigned);
		id = assigned;
		id_len = strlen(assigned);
		was_assigned = true;
	}
	if (c->identity_as_username && !c->identity)
		return connack_refuse(c, MQTT_RC_NOT_AUTHORIZED, MQTT_V3_NOT_AUTHORIZED,
				      "use_identity_as_username: no client certificate identity");
	if (!b->cfg.allow_anonymous && !m->username.p && !c->identity_as_username)
		return connack_refuse(c, MQTT_RC_NOT_AUTHORIZED, MQTT_V3_NOT_AUTHORIZED, "anonymous clients not allowed");
	int server_ka = negotiate(c, m);
	if (c->identity_as_username)
		c->username = strdup(c->identity);
	else if (m->username.p)
		c->username = strndup((const char *)m->username.p, m->username.len);
	if ((m->username.p || c->identity_as_username) && !c->username) {
		return connack_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, MQTT_V3_UNAVAILABLE, "out of memory");
	}
	char *id_z = strndup(id, id_len);
	int denied = id_z ? broker__access_admit(c, m, id_z) : -MQTT_RC_SERVER_UNAVAILABLE;
	free(id_z);
	if (denied) {
		if (denied == -MQTT_RC_BAD_USERNAME_PASSWORD)
			return connack_refuse(c, MQTT_RC_BAD_USERNAME_PASSWORD, MQTT_V3_BAD_USERNAME_PASSWORD,
					      "bad user name or password");
		if (denied == -MQTT_RC_CLIENT_ID_NOT_VALID) /* [MQTT-3.1.3-8] */
			return connack_refuse(c, MQTT_RC_CLIENT_ID_NOT_VALID, MQTT_V3_ID_REJECTED,
					      "client id not allowed for this user (client_id_pattern)");
		return connack_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, MQTT_V3_UNAVAILABLE, "out of memory");
	}
	struct msg *will;
	char *will_user;
	if (build_will(c, m, &will, &will_user).closed)
		return HANDLED_CLOSED;

	struct takeover t = { 0 };
	bool present = false;
	pthread_mutex_lock(&b->reg_lock);
	struct session *s = broker__registry_find(b, id, id_len);
	if (s && !s->client && s->expires_at && clock_wall_ms() >= s->expires_at) {
		/* Expired, not swept yet (e.g. while the broker was down). */
		broker__registry_remove(b, s);
		t.ending = s;
		s = NULL;
	}
	if (s) {
		/* A session that ends with its connection (expiry 0) ends with the
		 * take-over too: nothing of it is resumed [MQTT-3.1.2-23]. */
		bool discard = m->clean_start || s->expiry_interval == 0;
		take_over(s, discard, &t);
		if (discard) {
			broker__registry_remove(b, s);
			t.ending = s;
			s = NULL;
		} else {
			present = true;
		}
	}
	if (!s) {
		s = session_new(id, id_len, atomic_fetch_add(&b->next_sid, 1));
		if (!s || broker__registry_insert(b, s)) {
			pthread_mutex_unlock(&b->reg_lock);
			session_unref(s);
			msg_unref(will);
			free(will_user);
			return connack_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, MQTT_V3_UNAVAILABLE, "out of memory");
		}
	}
	pthread_mutex_lock(&s->lock);
	s->client = c;
	s->send_window = c->send_max < SEND_WINDOW_START ? c->send_max : SEND_WINDOW_START;
	__atomic_store_n(&s->worker, c->worker, __ATOMIC_RELAXED);
	s->version = m->version;
	s->expiry_interval = session_expiry_of(b, m);
	s->will = will;
	free(s->will_user);
	s->will_user = will_user;
	s->will_delay = m->will_props.will_delay;
	c->session = session_ref(s);
	broker__persist_session(w, s);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&b->reg_lock);
	/* The connection taken over no longer counts: its end will not find
	 * itself attached to the session. */
	if (t.kick)
		atomic_fetch_sub(&b->stats.clients_connected, 1);

	c->state = CLIENT_CONNECTED;
	long now_connected = atomic_fetch_add(&b->stats.clients_connected, 1) + 1;
	atomic_fetch_add(&b->stats.clients_total, 1);
	long max = atomic_load(&b->stats.clients_maximum);
	while (now_connected > max && !atomic_compare_exchange_weak(&b->stats.clients_maximum, &max, now_connected))
		;
	log_client(LVL_INFO, WHO(c, 0), "client %s connected from %s (v%s, keepalive %u, %s%s; username %s, identity %s) (0x00)",
		   s->client_id, CLIENT_ADDR(c), m->version == MQTT_V5 ? "5" : m->version == MQTT_V311 ? "3.1.1" : "3.1",
		   c->keepalive, m->clean_start ? "clean start" : present ? "resume" : "new session",
		   present ? ", session present" : "", OR_DASH(c->username), OR_DASH(c->identity));
	if (t.ending)
		broker__session_end(w, t.ending);
	if (t.will)
		broker__session_will_publish(w, s->client_id, t.will_user, t.will);
	if (t.kick && broker__inbox_push(w, t.kick->worker, (struct wake_item){ NULL, t.kick, NULL }))
		b->ports.conn_unref(t.kick);
	struct reply_body *rb = calloc(1, sizeof *rb);
	if (!rb) {
		broker__client_disconnect(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
		return HANDLED_CLOSED;
	}
	rb->what = "session";
	rb->instead = "connected with it held in memory";
	rb->then = connack_then;
	rb->release = connack_release;
	encode_connack(c, &rb->bytes, m, present, server_ka, was_assigned ? assigned : NULL);
	/* Nothing goes to the client before its CONNACK. */
	c->connack_pending = true;
	broker__reply_body(w, c, MQTT_CONNACK, rb);
	return HANDLED_OPEN;
}
