/* The broker harness (broker_harness.h): fake ports around a real broker. */
#include "broker_harness.h"
#include "base/err.h"
#include "base/vec.h"
#include "config/config.h"
#include "session/session.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A turn that keeps finding work after this many rounds is a livelock. */
#define HARNESS_MAX_ROUNDS 10000

/* The client is the connection's first member, as the ports assume. */
static struct fake_conn *conn_of(struct client *c) { return (struct fake_conn *)c; }

static struct buf *port_out(struct client *c) { return &conn_of(c)->out; }

static size_t port_out_pending(struct client *c) { return harness_unread(conn_of(c)); }

/* The test reads the output whenever it likes: nothing to schedule. */
static void port_flush(struct client *c) { (void)c; }

/* The connection ends at the end of the turn (harness_turn), after the
 * output the broker wrote, as net/conn.c closes it after the write. */
static void port_close(struct client *c) { conn_of(c)->close_requested = true; }

/* As net/conn.c: the connection closes now and its pending output is dropped. */
static void port_abort(struct client *c)
{
	struct fake_conn *fc = conn_of(c);
	fc->close_requested = true;
	fc->aborted = true;
	harness_skip(fc);
}

static void port_wake(struct broker *b, int worker)
{
	struct harness *h = b->ports.ctx;
	(void)worker;
	h->wakes++;
}

static void port_conn_ref(struct client *c) { conn_of(c)->refs++; }

static void port_conn_unref(struct client *c)
{
	struct fake_conn *fc = conn_of(c);
	if (--fc->refs < 1) {
		/* The harness's own reference can never be the one dropped. */
		fprintf(stderr, "broker_harness: connection reference dropped twice\n");
		abort();
	}
}

static struct msg *body_find(const struct harness *h, uint64_t id)
{
	for (uint32_t i = 0; i < h->n_bodies; i++)
		if (atomic_load(&h->bodies[i]->id) == id)
			return h->bodies[i];
	return NULL;
}

/* The records of a committed transaction now "on disk": their bodies can
 * be read back. */
static void bodies_keep(struct harness *h, const struct store_txn *t)
{
	for (uint32_t i = 0; i < t->n_ops; i++) {
		struct msg *m = t->ops[i].msg;
		uint64_t id = m ? atomic_load(&m->id) : 0;
		if (!id || body_find(h, id))
			continue;
		if (vec_grow(&h->bodies, &h->cap_bodies, h->n_bodies, sizeof *h->bodies, 16)) {
			fprintf(stderr, "broker_harness: out of memory\n");
			abort();
		}
		h->bodies[h->n_bodies++] = msg_ref(m);
	}
}

static void store_submit(void *ctx, struct store_txn *t)
{
	struct harness *h = ctx;
	for (uint32_t i = 0; i < t->n_ops; i++)
		if (t->ops[i].type < HARNESS_OP_TYPES)
			h->ops_by_type[t->ops[i].type]++;
	h->n_submitted++;
	if (vec_grow(&h->pending, &h->cap_pending, h->n_pending, sizeof *h->pending, 8)) {
		fprintf(stderr, "broker_harness: out of memory\n");
		abort();
	}
	h->pending[h->n_pending++] = t;
}

/* Completes the first n pending transactions with err, as the store's
 * writer does: records, then the reads beside them, then the hand-back. */
static void store_complete_n(struct harness *h, uint32_t n, int err)
{
	struct store_txn **done = malloc(sizeof *done * n);
	if (!done) {
		fprintf(stderr, "broker_harness: out of memory\n");
		abort();
	}
	memcpy(done, h->pending, sizeof *done * n);
	h->n_pending -= n;
	memmove(h->pending, h->pending + n, sizeof *h->pending * h->n_pending);
	for (uint32_t i = 0; i < n; i++) {
		struct store_txn *t = done[i];
		t->err = err;
		if (!err)
			bodies_keep(h, t);
		for (uint32_t k = 0; k < t->n_loads; k++) {
			struct store_load *ld = t->loads[k];
			for (uint32_t j = 0; j < ld->n; j++) {
				struct msg *m = body_find(h, ld->items[j].id);
				ld->items[j].msg = m ? msg_ref(m) : NULL;
			}
		}
		h->store.complete(h->store.owner, t);
	}
	free(done);
}

struct harness *harness_new(const char *const *lines, unsigned n_workers, enum harness_store store, char *err,
			    size_t errlen)
{
	struct config cfg;
	config_defaults(&cfg);
	for (size_t i = 0; lines && lines[i]; i++)
		if (config_apply_line(&cfg, lines[i], err, errlen))
			return NULL;
	if (config_finish(&cfg, err, errlen))
		return NULL;
	struct harness *h = calloc(1, sizeof *h);
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	struct broker_ports ports = {
		.out = port_out,
		.out_pending = port_out_pending,
		.flush = port_flush,
		.close = port_close,
		.abort = port_abort,
		.wake = port_wake,
		.ctx = h,
		.conn_ref = port_conn_ref,
		.conn_unref = port_conn_unref,
	};
	h->b = broker_new(&cfg, n_workers ? n_workers : 1, &ports);
	if (!h->b) {
		free(h);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (broker_auth_load(h->b, cfg.password_file, cfg.acl_file, err, errlen)) {
		broker_free(h->b);
		free(h);
		return NULL;
	}
	h->store_mode = store;
	h->next_port = 40000;
	if (store != HARNESS_NO_STORE) {
		h->store.ctx = h;
		h->store.submit = store_submit;
		h->store.read = store_submit; /* reads complete like commits */
		broker_set_store(h->b, &h->store);
		/* What recovering an empty store hands over. */
		broker_restore_done(h->b, 1, 1, 1);
	}
	return h;
}

struct fake_conn *harness_connect(struct harness *h, int worker)
{
	struct fake_conn *fc = calloc(1, sizeof *fc);
	if (!fc || vec_grow(&h->conns, &h->cap_conns, h->n_conns, sizeof *h->conns, 8)) {
		free(fc);
		return NULL;
	}
	h->conns[h->n_conns++] = fc;
	fc->h = h;
	fc->refs = 1;
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(h->next_port++) };
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	broker_client_init(h->b, &fc->client, worker, (const struct sockaddr *)&peer);
	return fc;
}

/* The connection's end, as net/conn.c's on_closed reports it. */
static void conn_end(struct fake_conn *fc)
{
	if (fc->gone)
		return;
	fc->gone = true;
	fc->close_requested = true;
	broker_on_close(&fc->client);
}

static bool worker_has_work(struct bworker *w)
{
	pthread_mutex_lock(&w->wake_lock);
	bool work = w->n_wake || w->n_admin;
	pthread_mutex_unlock(&w->wake_lock);
	return work || (w->txn && (w->txn->n_ops || w->txn->n_cbs));
}

void harness_turn(struct harness *h)
{
	struct broker *b = h->b;
	for (unsigned round = 0;; round++) {
		if (round == HARNESS_MAX_ROUNDS) {
			fprintf(stderr, "broker_harness: the broker still has work after %u rounds\n", round);
			abort();
		}
		bool progress = false;
		for (unsigned i = 0; i < b->n_workers; i++) {
			struct bworker *w = &b->workers[i];
			if (!worker_has_work(w))
				continue;
			progress = true;
			/* net/worker.c's on_check, in its order. */
			broker_worker_wake(w);
			broker_worker_flush_store(w);
		}
		for (uint32_t i = 0; i < h->n_conns; i++) {
			struct fake_conn *fc = h->conns[i];
			if (fc->close_requested && !fc->gone && !fc->linger) {
				conn_end(fc);
				progress = true;
			} else if (!fc->gone && fc->client.output_full &&
				   harness_unread(fc) < b->cfg.max_output_buffer) {
				/* The test read enough of the output: as net/conn.c
				 * after a write, the deliveries that paused go on. */
				size_t before = harness_unread(fc);
				broker_on_writable(&fc->client);
				progress |= harness_unread(fc) != before || !fc->client.output_full;
			}
		}
		if (h->store_mode == HARNESS_STORE_AUTO && h->n_pending) {
			store_complete_n(h, h->n_pending, h->store_err);
			progress = true;
		}
		if (!progress)
			return;
	}
}

int harness_send(struct harness *h, struct fake_conn *fc, const void *p, size_t len)
{
	if (fc->close_requested || fc->gone)
		return -1;
	if (buf_append(&fc->in, p, len)) {
		fprintf(stderr, "broker_harness: out of memory\n");
		abort();
	}
	/* An exact-size copy: a read past the bytes given is ASan's to catch. */
	size_t n = fc->in.len;
	uint8_t *copy = malloc(n ? n : 1);
	if (!copy) {
		fprintf(stderr, "broker_harness: out of memory\n");
		abort();
	}
	if (n)
		memcpy(copy, fc->in.p, n);
	long used = broker_on_data(&fc->client, copy, n);
	free(copy);
	int rc = 0;
	if (used < 0) {
		buf_free(&fc->in);
		rc = -1;
	} else {
		buf_consume(&fc->in, (size_t)used);
	}
	harness_turn(h);
	return rc;
}

void harness_drop(struct harness *h, struct fake_conn *fc)
{
	conn_end(fc);
	harness_turn(h);
}

uint32_t harness_store_complete(struct harness *h, int err)
{
	uint32_t n = h->n_pending;
	if (n)
		store_complete_n(h, n, err);
	harness_turn(h);
	return n;
}

void harness_tick(struct harness *h, uint64_t now_ms)
{
	for (unsigned i = 0; i < h->b->n_workers; i++)
		broker_worker_tick(&h->b->workers[i], now_ms);
	broker_housekeeping(h->b);
	harness_turn(h);
}

void harness_shutdown(struct harness *h)
{
	struct broker *b = h->b;
	atomic_store(&b->shutting_down, true);
	/* net_stop's stages: every worker's wills first, then the goodbyes. */
	if (b->cfg.will_on_shutdown)
		for (unsigned i = 0; i < b->n_workers; i++)
			broker_worker_publish_wills(&b->workers[i]);
	for (unsigned i = 0; i < b->n_workers; i++)
		broker_worker_shutdown(&b->workers[i]);
	harness_turn(h);
}

int harness_free(struct harness *h)
{
	if (!h)
		return 0;
	for (uint32_t i = 0; i < h->n_conns; i++)
		conn_end(h->conns[i]);
	harness_turn(h);
	/* The store hands back everything before it closes (main.c's order). */
	while (h->n_pending)
		harness_store_complete(h, h->store_err);
	broker_free(h->b);
	int unbalanced = 0;
	for (uint32_t i = 0; i < h->n_conns; i++) {
		struct fake_conn *fc = h->conns[i];
		if (fc->refs != 1)
			unbalanced += fc->refs > 1 ? fc->refs - 1 : 1;
		buf_free(&fc->out);
		buf_free(&fc->in);
		free(fc);
	}
	free(h->conns);
	for (uint32_t i = 0; i < h->n_bodies; i++)
		msg_unref(h->bodies[i]);
	free(h->bodies);
	free(h->pending);
	free(h);
	return unbalanced;
}

size_t harness_unread(const struct fake_conn *fc) { return fc->out.len - fc->read_off; }

void harness_skip(struct fake_conn *fc)
{
	fc->out.len = 0;
	fc->read_off = 0;
}

int harness_read(struct fake_conn *fc, struct mqtt_packet *pk)
{
	size_t left = harness_unread(fc);
	if (!left)
		return 0;
	uint8_t version = fc->version ? fc->version : fc->client.version;
	int n = mqtt_decode(fc->out.p + fc->read_off, left, version, 0, pk);
	if (n <= 0)
		return n;
	fc->read_off += (size_t)n;
	if (fc->read_off == fc->out.len) {
		/* The bytes stay where they are until the next append. */
		fc->out.len = 0;
		fc->read_off = 0;
	}
	return 1;
}

uint32_t harness_pending_ops(const struct harness *h, uint8_t type)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < h->n_pending; i++)
		for (uint32_t k = 0; k < h->pending[i]->n_ops; k++)
			n += h->pending[i]->ops[k].type == type;
	return n;
}

/* ---- client packets ---- */

static struct mqtt_bin bin_of(const char *s)
{
	return s ? (struct mqtt_bin){ (const uint8_t *)s, (uint32_t)strlen(s) } : (struct mqtt_bin){ 0 };
}

static void enc_check(int rc)
{
	if (rc) {
		fprintf(stderr, "broker_harness: encoding a client packet failed (%d)\n", rc);
		abort();
	}
}

void harness_enc_connect(struct buf *b, const struct harness_connect_opts *o)
{
	struct mqtt_connect c = {
		.protocol_name = o->version == MQTT_V31 ? bin_of("MQIsdp") : bin_of("MQTT"),
		.version = o->version,
		.clean_start = o->clean,
		.keepalive = o->keepalive,
		.client_id = { (const uint8_t *)(o->id ? o->id : ""), o->id ? (uint32_t)strlen(o->id) : 0 },
		.username = bin_of(o->username),
		.password = bin_of(o->password),
	};
	if (o->will_topic) {
		c.will = true;
		c.will_qos = o->will_qos;
		c.will_retain = o->will_retain;
		c.will_topic = bin_of(o->will_topic);
		c.will_payload = bin_of(o->will_payload ? o->will_payload : "");
	}
	if (o->version == MQTT_V5 && o->session_expiry) {
		c.props.have |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
		c.props.session_expiry = o->session_expiry;
	}
	if (o->version == MQTT_V5 && o->auth_method) {
		c.props.have |= MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD);
		c.props.auth_method = bin_of(o->auth_method);
	}
	enc_check(mqtt_encode_connect(b, &c));
}

void harness_enc_publish(struct buf *b, uint8_t version, const char *topic, const char *payload, uint8_t qos,
			 uint16_t pid, bool retain)
{
	struct mqtt_publish m = { .qos = qos, .retain = retain, .topic = bin_of(topic), .pid = qos ? pid : 0,
				  .payload = bin_of(payload) };
	enc_check(mqtt_encode_publish(b, version, &m));
}

void harness_enc_subscribe(struct buf *b, uint8_t version, uint16_t pid, const char *const *filters,
			   const uint8_t *options, uint32_t n)
{
	struct mqtt_sub_entry e[16];
	struct mqtt_props none = { 0 };
	if (n > 16)
		enc_check(-FM_EINVAL);
	for (uint32_t i = 0; i < n; i++)
		e[i] = (struct mqtt_sub_entry){ bin_of(filters[i]), options[i] };
	enc_check(mqtt_encode_subscribe(b, version, MQTT_SUBSCRIBE, pid, &none, e, n));
}

void harness_enc_ack(struct buf *b, uint8_t version, uint8_t type, uint16_t pid, uint8_t rc)
{
	struct mqtt_ack a = { .pid = pid, .rc = rc };
	enc_check(mqtt_encode_ack(b, version, type, &a));
}

void harness_enc_disconnect(struct buf *b, uint8_t version, uint8_t rc)
{
	if (version != MQTT_V5) {
		enc_check(mqtt_encode_simple(b, MQTT_DISCONNECT));
		return;
	}
	struct mqtt_reason r = { .rc = rc };
	enc_check(mqtt_encode_reason(b, MQTT_V5, MQTT_DISCONNECT, &r));
}
