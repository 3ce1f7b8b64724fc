/* One device's thread: keeps to its poll schedule, reads with libmodbus
 * (blocking, with the device's own timeout), decodes, applies report by
 * exception, and hands one batch per poll to a worker; carries out writes;
 * tracks the device's health and publishes its retained status. Nothing
 * here is shared with another device's thread. */
#include "internal.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/log.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- batches: what one poll (or a status change, or a write) publishes ---- */

struct centry {
	uint32_t topic_off, pay_off, pay_len;
	uint16_t topic_len;
	bool retain;
};

struct cbatch {
	struct collect_batch bt;  /* first: the broker hands it back */
	struct cdevice *d;
	uint64_t poll_start_ns;   /* 0: not a poll */
	uint32_t n_readings;      /* tag readings among the messages */
	struct buf data;          /* topics and payloads */
	struct centry *ents;
	uint32_t n, cap;
	const char *user, *client_id; /* whose ACL the messages pass */
	char *own_user, *own_client_id; /* owned copies, for a write's result */
	uint8_t *own_corr;
	struct mqtt_bin corr;
	bool has_corr;
	bool oom;
};

static struct cbatch *batch_new(struct cdevice *d, uint64_t poll_start_ns)
{
	struct cbatch *cb = calloc(1, sizeof *cb);
	if (!cb)
		return NULL;
	cb->d = d;
	cb->poll_start_ns = poll_start_ns;
	cb->user = d->conf->username[0] ? d->conf->username : NULL;
	cb->client_id = d->client_id;
	return cb;
}

static void batch_free(struct cbatch *cb)
{
	if (!cb)
		return;
	buf_free(&cb->data);
	free(cb->own_user);
	free(cb->own_client_id);
	free(cb->own_corr);
	free(cb->ents);
	free(cb->bt.msgs);
	free(cb);
}

/* Starts a message on topic; its payload is what is appended to cb->data
 * until batch_end. */
static void batch_begin(struct cbatch *cb, const char *topic, bool retain)
{
	if (cb->oom)
		return;
	if (cb->n == cb->cap) {
		uint32_t cap = cb->cap ? cb->cap * 2 : 16;
		struct centry *e = realloc(cb->ents, cap * sizeof *e);
		if (!e) {
			cb->oom = true;
			return;
		}
		cb->ents = e;
		cb->cap = cap;
	}
	size_t len = strlen(topic);
	struct centry *e = &cb->ents[cb->n];
	e->topic_off = cb->data.len;
	e->topic_len = (uint16_t)len;
	e->retain = retain;
	if (buf_append(&cb->data, topic, len))
		cb->oom = true;
	e->pay_off = cb->data.len;
}

static void batch_end(struct cbatch *cb, int rc)
{
	if (cb->oom || rc) {
		cb->oom = true;
		return;
	}
	cb->ents[cb->n].pay_len = cb->data.len - cb->ents[cb->n].pay_off;
	cb->n++;
}

/* On the worker, after the commit. */
static void batch_done(struct collect_batch *bt, int err)
{
	struct cbatch *cb = (struct cbatch *)bt;
	struct cdevice *d = cb->d;
	if (cb->poll_start_ns)
		hist_add(&d->poll_commit, (collect__now_ns() - cb->poll_start_ns) / 1000);
	/* Refused and lost messages may be statuses or a group message: bounded. */
	uint32_t refused = bt->refused < cb->n_readings ? bt->refused : cb->n_readings;
	uint32_t lost = bt->lost < cb->n_readings - refused ? bt->lost : cb->n_readings - refused;
	if (d->spb && cb->n_readings) {
		/* One DDATA (or DBIRTH) carries every reading of the poll. */
		refused = bt->refused ? cb->n_readings : 0;
		lost = !refused && bt->lost ? cb->n_readings : 0;
	}
	if (lost) {
		atomic_fetch_add(&d->readings_lost, lost);
		atomic_store(&d->resend, true);
	}
	if (err) {
		atomic_fetch_add(&d->readings_lost, cb->n_readings - refused - lost);
		/* What report by exception held back must go out again. */
		atomic_store(&d->resend, true);
		log_err("modbus device %s: %u message%s not stored: %s", d->conf->name, cb->n, cb->n == 1 ? "" : "s",
			fm_strerror(-err));
	} else {
		atomic_fetch_add(&d->readings_committed, cb->n_readings - refused - lost);
	}
	if (bt->refused) {
		atomic_fetch_add(&d->readings_refused, d->spb ? refused : bt->refused);
		if (!atomic_exchange(&d->refused_logged, true))
			log_notice("modbus device %s: %u of %u messages refused (client id %s, username %s): %s "
				   "(logged once until one passes again)", d->conf->name, bt->refused, cb->n,
				   cb->client_id, cb->user ? cb->user : "-", bt->refused_why);
	} else if (cb->n) {
		atomic_store(&d->refused_logged, false);
	}
	atomic_fetch_sub(&d->inflight, 1);
	batch_free(cb);
}

/* Hands cb to the broker (or frees it when empty). */
static void batch_submit(struct cbatch *cb)
{
	struct cdevice *d = cb->d;
	if (cb->oom) {
		log_err("modbus device %s: out of memory: a poll's readings are not published", d->conf->name);
		atomic_fetch_add(&d->readings_lost, cb->n_readings);
		batch_free(cb);
		return;
	}
	if (!cb->n) {
		batch_free(cb);
		return;
	}
	if (!(cb->bt.msgs = calloc(cb->n, sizeof *cb->bt.msgs))) {
		atomic_fetch_add(&d->readings_lost, cb->n_readings);
		batch_free(cb);
		return;
	}
	for (uint32_t i = 0; i < cb->n; i++) {
		const struct centry *e = &cb->ents[i];
		cb->bt.msgs[i] = (struct collect_msg){
			.topic = (const char *)cb->data.p + e->topic_off, .topic_len = e->topic_len,
			.payload = cb->data.p + e->pay_off, .payload_len = e->pay_len, .retain = e->retain,
			.correlation = cb->has_corr ? &cb->corr : NULL, .user = cb->user, .client_id = cb->client_id,
		};
	}
	cb->bt.n = cb->n;
	cb->bt.worker = (int)(d->index % d->col->b->n_workers);
	cb->bt.done = batch_done;
	atomic_fetch_add(&d->inflight, 1);
	atomic_fetch_add(&d->readings, cb->n_readings);
	int rc = broker_collect_publish(d->col->b, &cb->bt);
	if (rc) {
		atomic_fetch_sub(&d->inflight, 1);
		atomic_fetch_add(&d->readings_lost, cb->n_readings);
		batch_free(cb);
	}
}

/* ---- status ---- */

static int put(struct buf *b, const char *s) { return buf_append(b, s, strlen(s)); }

/* Appends s as a JSON string (s is ours: log text, no control characters
 * but for safety escaped anyway). */
static int put_str(struct buf *b, const char *s)
{
	int rc = put(b, "\"");
	for (; !rc && *s; s++) {
		char esc[8];
		if (*s == '"' || *s == '\\')
			snprintf(esc, sizeof esc, "\\%c", *s);
		else if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7F)
			snprintf(esc, sizeof esc, "\\u%04x", (unsigned char)*s);
		else
			snprintf(esc, sizeof esc, "%c", *s);
		rc = put(b, esc);
	}
	return rc ? rc : put(b, "\"");
}

void collect__set_state(struct cdevice *d, uint32_t state, const char *error)
{
	uint64_t now = clock_wall_ms();
	pthread_mutex_lock(&d->lock);
	bool changed = d->state != state || !d->since_ms;
	if (changed) {
		d->state = state;
		d->since_ms = now;
	}
	if (error)
		snprintf(d->last_error, sizeof d->last_error, "%s", error);
	char last_error[sizeof d->last_error];
	memcpy(last_error, d->last_error, sizeof last_error);
	uint64_t since = d->since_ms;
	pthread_mutex_unlock(&d->lock);
	if (!changed)
		return;
	struct cbatch *cb = batch_new(d, 0);
	if (!cb)
		return;
	char head[96];
	snprintf(head, sizeof head, "{\"state\":\"%s\",\"since\":%" PRIu64 ",\"last_error\":", collect_state_name(state),
		 since);
	batch_begin(cb, d->status_topic, true);
	int rc = put(&cb->data, head);
	if (!rc)
		rc = last_error[0] ? put_str(&cb->data, last_error) : put(&cb->data, "null");
	if (!rc)
		rc = put(&cb->data, "}");
	batch_end(cb, rc);
	const char *ddeath = d->spb ? collect__spb_state(d, state) : NULL;
	if (ddeath) {
		batch_begin(cb, ddeath, false);
		batch_end(cb, collect__spb_encode_ddeath(d, &cb->data));
	}
	batch_submit(cb);
}

/* A Sparkplug device's message of this poll: its DBIRTH or a DDATA. */
static void spb_poll_end(struct cdevice *d, struct cbatch *cb)
{
	const char *topic = d->spb ? collect__spb_due(d) : NULL;
	if (!topic)
		return;
	batch_begin(cb, topic, false);
	batch_end(cb, collect__spb_encode_due(d, &cb->data));
}

/* ---- the connection ---- */

static void set_sock(struct cdevice *d, int s)
{
	pthread_mutex_lock(&d->lock);
	d->sock = s;
	pthread_mutex_unlock(&d->lock);
}

static void disconnect(struct cdevice *d)
{
	if (d->sock < 0)
		return;
	set_sock(d, -1);
	modbus_close(d->mb);
}

static bool stopping(struct cdevice *d)
{
	pthread_mutex_lock(&d->lock);
	bool s = d->stop;
	pthread_mutex_unlock(&d->lock);
	return s;
}

static const char *exception_name(int code)
{
	static const char *const names[] = {
		[1] = "illegal function", [2] = "illegal data address", [3] = "illegal data value",
		[4] = "server device failure", [5] = "acknowledge", [6] = "server device busy",
		[7] = "negative acknowledge", [8] = "memory parity error",
		[10] = "gateway path unavailable", [11] = "gateway target device failed to respond",
	};
	return code > 0 && code < 12 && names[code] ? names[code] : "exception";
}

/* The Modbus exception code of errno after a failed call, or 0 when the
 * request got no valid answer at all. */
static int exception_code(int e)
{
	int code = e - MODBUS_ENOBASE;
	return code >= 1 && code <= 11 ? code : 0;
}

static void publish_all_bad(struct cdevice *d, const char *why);

/* A request or connection attempt failed without an answer: the connection
 * is closed; after offline_after in a row the device is offline and retried
 * with back-off. */
static void note_failure(struct cdevice *d, const char *what, int e)
{
	char why[160];
	disconnect(d);
	if (stopping(d))
		return; /* collect_stop cut the request short: not the device's failure */
	snprintf(why, sizeof why, "%s: %s", what, modbus_strerror(e));
	d->fail_streak++;
	pthread_mutex_lock(&d->lock);
	snprintf(d->last_error, sizeof d->last_error, "%s", why);
	pthread_mutex_unlock(&d->lock);
	if (d->fail_streak < d->conf->offline_after)
		return; /* tried again at the next poll */
	if (d->state != COLLECT_OFFLINE) {
		log_warn("modbus device %s (%s:%u) offline after %u failure%s in a row: %s", d->conf->name,
			 d->conf->host, d->conf->port, d->fail_streak, d->fail_streak == 1 ? "" : "s", why);
		atomic_fetch_add(&d->offline_episodes, 1);
		collect__set_state(d, COLLECT_OFFLINE, why);
		publish_all_bad(d, why);
	}
	uint32_t min = d->conf->restart_timeout.min, max = d->conf->restart_timeout.max;
	d->backoff_ms = d->backoff_ms ? (d->backoff_ms > max / 2 ? max : d->backoff_ms * 2) : min;
	d->retry_ns = collect__now_ns() + (uint64_t)d->backoff_ms * 1000000;
}

/* An answer came (data or an exception): the device is alive. */
static void note_answer(struct cdevice *d)
{
	atomic_store_explicit(&d->last_success_ms, clock_wall_ms(), memory_order_relaxed);
	d->fail_streak = 0;
	d->backoff_ms = 0;
	d->retry_ns = 0;
	if (d->state != COLLECT_ONLINE) {
		if (d->state == COLLECT_OFFLINE)
			log_notice("modbus device %s (%s:%u) online again", d->conf->name, d->conf->host, d->conf->port);
		collect__set_state(d, COLLECT_ONLINE, NULL);
	}
}

/* Connects when not connected and the back-off allows. Returns true when connected. */
static bool ensure_connected(struct cdevice *d, bool ignore_backoff)
{
	if (d->sock >= 0)
		return true;
	if (!ignore_backoff && d->retry_ns && collect__now_ns() < d->retry_ns)
		return false;
	if (!d->mb) {
		char port[8];
		snprintf(port, sizeof port, "%u", d->conf->port);
		d->mb = modbus_new_tcp_pi(d->conf->host, port);
		if (!d->mb) {
			note_failure(d, "cannot create the Modbus context", errno);
			return false;
		}
		uint32_t to = d->conf->timeout_ms;
		modbus_set_slave(d->mb, (int)d->conf->unit_id);
		modbus_set_response_timeout(d->mb, to / 1000, (to % 1000) * 1000);
		modbus_set_byte_timeout(d->mb, to / 1000, (to % 1000) * 1000);
	}
	if (modbus_connect(d->mb) == -1) {
		int e = errno;
		modbus_close(d->mb);
		note_failure(d, "connect", e);
		return false;
	}
	atomic_fetch_add(&d->connects, 1);
	set_sock(d, modbus_get_socket(d->mb));
	if (stopping(d))
		shutdown(d->sock, SHUT_RDWR); /* collect_stop may have looked before the socket was set */
	return true;
}

/* One read request. Returns 0, the Modbus exception code (> 0), or -1 when
 * no valid answer came (the connection is then closed). */
static int read_area(struct cdevice *d, uint8_t area, uint16_t start, uint16_t count, uint16_t *regs, uint8_t *bits)
{
	uint64_t t0 = collect__now_ns();
	int rc;
	atomic_fetch_add_explicit(&d->requests, 1, memory_order_relaxed);
	switch (area) {
	case MODBUS_COIL: rc = modbus_read_bits(d->mb, start, count, bits); break;
	case MODBUS_DISCRETE_INPUT: rc = modbus_read_input_bits(d->mb, start, count, bits); break;
	case MODBUS_INPUT_REGISTER: rc = modbus_read_input_registers(d->mb, start, count, regs); break;
	default: rc = modbus_read_registers(d->mb, start, count, regs); break;
	}
	int e = errno;
	if (rc == count) {
		hist_add(&d->request_latency, (collect__now_ns() - t0) / 1000);
		note_answer(d);
		return 0;
	}
	atomic_fetch_add_explicit(&d->requests_failed, 1, memory_order_relaxed);
	int code = rc < 0 ? exception_code(e) : 0;
	if (code) {
		hist_add(&d->request_latency, (collect__now_ns() - t0) / 1000);
		atomic_fetch_add_explicit(&d->exceptions, 1, memory_order_relaxed);
		note_answer(d);
		return code;
	}
	note_failure(d, "read", rc < 0 ? e : EMBBADDATA);
	return -1;
}

/* ---- aggregation: one summary per window of an aggregated tag ---- */

struct agg_out {
	struct cbatch *cb;
	const struct ctag *t;
};

/* Adds the summary of window w to the batch: a reading of its tag, on the
 * tag's summary topic, QoS 1 and not retained like the tag's readings. */
static void add_summary(void *ctx, const struct agg_window *w)
{
	struct agg_out *o = ctx;
	char payload[AGG_SUMMARY_MAX];
	int n = agg_format(&o->t->conf->agg, w, payload, sizeof payload);
	batch_begin(o->cb, o->t->agg_topic, false);
	batch_end(o->cb, n < 0 ? -FM_ENOMEM : buf_append(&o->cb->data, payload, (size_t)n));
	o->cb->n_readings++;
}

/* The end (wall ms) of aggregated tag t's open window. */
static uint64_t window_end(const struct ctag *t)
{
	return t->agg->start_ms + (uint64_t)t->conf->agg.window_s * 1000;
}

/* Opens the windows holding now (the thread's start); a window's partial
 * statistics are not kept across a stop. */
static void open_windows(struct cdevice *d, uint64_t wall_ms)
{
	d->agg_due_ms = 0;
	for (uint32_t i = 0; i < d->conf->n_tags; i++) {
		struct ctag *t = &d->tags[i];
		if (!t->agg)
			continue;
		agg_window_reset(&t->conf->agg, t->agg, wall_ms);
		if (!d->agg_due_ms || window_end(t) < d->agg_due_ms)
			d->agg_due_ms = window_end(t);
	}
}

/* Publishes the summaries of the windows that ended by the wall clock's
 * now, in one batch, whether or not a poll came since (a slow poll, the
 * device offline). */
static void close_windows(struct cdevice *d)
{
	uint64_t now = clock_wall_ms();
	if (!d->agg_due_ms || now < d->agg_due_ms)
		return;
	struct cbatch *cb = batch_new(d, 0);
	if (!cb) {
		d->agg_due_ms = now + 100; /* out of memory: tried again shortly, the windows kept */
		return;
	}
	uint64_t due = 0;
	for (uint32_t i = 0; i < d->conf->n_tags; i++) {
		struct ctag *t = &d->tags[i];
		if (!t->agg)
			continue;
		agg_roll(&t->conf->agg, t->agg, now, add_summary, &(struct agg_out){ cb, t });
		if (!due || window_end(t) < due)
			due = window_end(t);
	}
	d->agg_due_ms = due;
	batch_submit(cb);
}

/* ---- readings ---- */

/* Takes tag t's reading (v NULL: bad quality with err): to its window first
 * when aggregated, then published when tag_publish_reading lets it through;
 * adds it to the group message g (may be NULL). */
static void tag_reading(struct cdevice *d, struct cbatch *cb, struct buf *g, struct ctag *t,
			const struct tag_value *v, const char *err, uint64_t ts_ms)
{
	const struct modbus_tag_conf *tc = t->conf;
	enum tag_quality q = v ? TAG_GOOD : TAG_BAD;
	double value = v ? tag_engineering(tc, v) : NAN;
	if (v && v->kind != TAG_V_STRING && !isfinite(value)) {
		q = TAG_BAD;
		err = "the value read is not a finite number";
	}
	uint64_t hash = v ? tag_value_hash(tc, v) : 0;
	uint64_t now_ms = collect__now_ns() / 1000000;
	if (d->spb)
		collect__spb_reading(d, t, q == TAG_GOOD ? v : NULL, ts_ms);
	if (g && !cb->oom) {
		int rc = put(g, g->len > 1 ? "," : "");
		if (!rc)
			rc = put_str(g, tc->name);
		if (!rc)
			rc = put(g, ":");
		if (!rc)
			rc = tag_json_value(g, tc, q == TAG_GOOD ? v : NULL);
		if (rc)
			cb->oom = true;
	}
	if (t->agg) {
		/* Every poll counts, before report by exception or the deadband
		 * hold a reading back; the window that ended goes first. */
		agg_roll(&tc->agg, t->agg, ts_ms, add_summary, &(struct agg_out){ cb, t });
		if (q == TAG_GOOD && isfinite(value))
			agg_add(t->agg, value);
		else
			t->agg->non_numeric++;
	}
	/* A Sparkplug device reports by exception: its DDATA carries what changed. */
	const struct modbus_tag_conf *rule = tc;
	struct modbus_tag_conf by_exception;
	if (d->spb && !tc->report_by_exception) {
		by_exception = *tc;
		by_exception.report_by_exception = true;
		rule = &by_exception;
	}
	if (!tag_publish_reading(rule, &t->last, q, value, hash, now_ms))
		return;
	if (d->spb) {
		collect__spb_changed(d, t); /* in the poll's DDATA */
	} else {
		batch_begin(cb, t->topic, false);
		batch_end(cb, tag_payload(&cb->data, tc, v, ts_ms, q, err));
	}
	cb->n_readings++;
	t->last = (struct tag_last){ .any = true, .quality = (uint8_t)q, .value = value, .hash = hash, .at_ms = now_ms };
}

static void publish_all_bad(struct cdevice *d, const char *why)
{
	struct cbatch *cb = d->cur_batch ? d->cur_batch : batch_new(d, 0);
	if (!cb)
		return;
	uint64_t ts = clock_wall_ms();
	for (uint32_t i = 0; i < d->conf->n_tags; i++)
		tag_reading(d, cb, NULL, &d->tags[i], NULL, why, ts);
	if (cb != d->cur_batch) {
		spb_poll_end(d, cb);
		batch_submit(cb);
	}
}

/* A tag answered with an exception: logged once per episode, bad quality. */
static void tag_exception(struct cdevice *d, struct cbatch *cb, struct buf *g, struct ctag *t, int code,
			  uint64_t ts_ms)
{
	char why[64];
	snprintf(why, sizeof why, "exception %d: %s", code, exception_name(code));
	if (t->exception != code)
		log_notice("modbus device %s: tag %s (%s %u): %s (logged once until it reads again)", d->conf->name,
			   t->conf->name, t->conf->area == MODBUS_HOLDING_REGISTER ? "holding register" :
			   t->conf->area == MODBUS_INPUT_REGISTER ? "input register" :
			   t->conf->area == MODBUS_COIL ? "coil" : "discrete input", t->conf->address, why);
	t->exception = code;
	tag_reading(d, cb, g, t, NULL, why, ts_ms);
}

static void tag_ok(struct cdevice *d, struct cbatch *cb, struct buf *g, struct ctag *t, const uint16_t *regs,
		   uint8_t bit, uint64_t ts_ms)
{
	struct tag_value v;
	if (t->exception)
		log_notice("modbus device %s: tag %s reads again", d->conf->name, t->conf->name);
	t->exception = 0;
	tag_decode(t->conf, regs, bit, &v);
	tag_reading(d, cb, g, t, &v, NULL, ts_ms);
}

/* Reads one tag alone. Returns false when the connection failed. */
static bool read_tag_alone(struct cdevice *d, struct cbatch *cb, struct buf *g, struct ctag *t, uint16_t *regs,
			   uint8_t *bits)
{
	const struct modbus_tag_conf *tc = t->conf;
	int rc = read_area(d, tc->area, tc->address, (uint16_t)tag_width(tc), regs, bits);
	uint64_t ts = clock_wall_ms();
	if (rc < 0)
		return false;
	if (rc > 0)
		tag_exception(d, cb, g, t, rc, ts);
	else
		tag_ok(d, cb, g, t, regs, tag_area_bits(tc->area) ? bits[0] : 0, ts);
	return true;
}

/* Polls group gr once. Returns false when the connection failed. */
static bool poll_group(struct cdevice *d, struct cgroup *gr, uint64_t start_ns)
{
	uint16_t regs[TAG_MAX_READ_REGISTERS];
	uint8_t bits[TAG_MAX_READ_BITS];
	struct cbatch *cb = batch_new(d, start_ns);
	struct buf group = { 0 }, *g = d->conf->group_messages ? &group : NULL;
	if (!cb)
		return true;
	if (atomic_exchange(&d->resend, false))
		for (uint32_t i = 0; i < d->conf->n_tags; i++)
			d->tags[i].last.any = false;
	if (g && put(g, "{"))
		cb->oom = true;
	/* Should the device go offline during this poll, its bad readings
	 * follow the good ones of this batch. */
	d->cur_batch = cb;
	bool ok = true;
	for (uint32_t r = 0; ok && r < gr->n_req; r++) {
		const struct tag_request *rq = &gr->req[r];
		if (gr->split[r]) {
			for (uint32_t k = 0; ok && k < rq->n; k++)
				ok = read_tag_alone(d, cb, g, &d->tags[gr->idx[rq->first + k]], regs, bits);
			continue;
		}
		int rc = read_area(d, rq->area, rq->start, rq->count, regs, bits);
		uint64_t ts = clock_wall_ms();
		if (rc < 0) {
			ok = false;
		} else if (rc > 0 && rq->n > 1) {
			/* One tag (or a gap read over) is refused: from now on each
			 * tag of this request is read alone, so the others go on. */
			log_info("modbus device %s: a read of %u at %u answered %s; its %u tags are read one by one "
				 "from now on", d->conf->name, rq->count, rq->start, exception_name(rc), rq->n);
			gr->split[r] = true;
			for (uint32_t k = 0; ok && k < rq->n; k++)
				ok = read_tag_alone(d, cb, g, &d->tags[gr->idx[rq->first + k]], regs, bits);
		} else if (rc > 0) {
			tag_exception(d, cb, g, &d->tags[gr->idx[rq->first]], rc, ts);
		} else {
			for (uint32_t k = 0; k < rq->n; k++) {
				struct ctag *t = &d->tags[gr->idx[rq->first + k]];
				uint32_t off = t->conf->address - rq->start;
				if (tag_area_bits(rq->area))
					tag_ok(d, cb, g, t, NULL, bits[off], ts);
				else
					tag_ok(d, cb, g, t, regs + off, 0, ts);
			}
		}
	}
	if (ok && g && !cb->oom) {
		char topic[200], tail[64];
		snprintf(topic, sizeof topic, "%s/poll/%u", d->conf->topic_prefix, gr->interval_ms);
		snprintf(tail, sizeof tail, "},\"ts\":%" PRIu64 "}", clock_wall_ms());
		batch_begin(cb, topic, false);
		int rc = put(&cb->data, "{\"values\":");
		if (!rc)
			rc = buf_append(&cb->data, group.p, group.len);
		if (!rc)
			rc = put(&cb->data, tail);
		batch_end(cb, rc);
	}
	buf_free(&group);
	spb_poll_end(d, cb);
	d->cur_batch = NULL;
	batch_submit(cb);
	return ok;
}

/* ---- writes ---- */

/* v as the shortest text that reads back as v. */
static const char *num_text(char out[32], double v)
{
	snprintf(out, 32, "%.15g", v);
	if (strtod(out, NULL) != v)
		snprintf(out, 32, "%.17g", v);
	return out;
}

static void write_result(struct cdevice *d, const struct cwrite *w, const char *why, double value)
{
	const struct ctag *t = &d->tags[w->tag];
	struct cbatch *cb = batch_new(d, 0);
	if (!cb)
		return;
	/* A result sent where the requester asked passes the requester's ACL;
	 * under the device's prefix, the collector's. */
	if (w->response_topic) {
		cb->own_client_id = strdup(w->client_id);
		cb->own_user = w->username ? strdup(w->username) : NULL;
		cb->oom |= !cb->own_client_id || (w->username && !cb->own_user);
		cb->user = cb->own_user;
		cb->client_id = cb->own_client_id;
	}
	if (w->correlation && (cb->own_corr = malloc(w->correlation_len ? w->correlation_len : 1))) {
		memcpy(cb->own_corr, w->correlation, w->correlation_len);
		cb->corr = (struct mqtt_bin){ cb->own_corr, w->correlation_len };
		cb->has_corr = true;
	} else if (w->correlation) {
		cb->oom = true;
	}
	char topic[256];
	if (w->response_topic)
		snprintf(topic, sizeof topic, "%s", w->response_topic);
	else
		snprintf(topic, sizeof topic, "%s/set/result", t->topic);
	batch_begin(cb, topic, false);
	int rc = put(&cb->data, why ? "{\"ok\":false,\"tag\":" : "{\"ok\":true,\"tag\":");
	if (!rc)
		rc = put_str(&cb->data, t->conf->name);
	if (!rc && why) {
		rc = put(&cb->data, ",\"error\":");
		if (!rc)
			rc = put_str(&cb->data, why);
	} else if (!rc) {
		char num[32];
		rc = put(&cb->data, ",\"value\":");
		if (!rc)
			rc = put(&cb->data, num_text(num, value));
	}
	if (!rc)
		rc = put(&cb->data, "}");
	batch_end(cb, rc);
	batch_submit(cb);
}

static void do_write(struct cdevice *d, const struct cwrite *w)
{
	const struct ctag *t = &d->tags[w->tag];
	const struct modbus_tag_conf *tc = t->conf;
	const char *why = NULL;
	char errbuf[160];
	double value = NAN;
	uint16_t regs[4];
	unsigned n = 0;
	uint8_t bit = 0;
	if (!tc->writable)
		why = "the tag is not writable (tag_writable false)";
	else if (!tag_parse_write(w->payload, w->payload_len, &value, &why) && !tag_encode(tc, value, regs, &n, &bit, &why)) {
		if (!ensure_connected(d, true)) {
			why = "the device is not connected";
		} else {
			int rc;
			if (tc->type == MODBUS_BOOL)
				rc = modbus_write_bit(d->mb, tc->address, bit);
			else if (n == 1)
				rc = modbus_write_register(d->mb, tc->address, regs[0]);
			else
				rc = modbus_write_registers(d->mb, tc->address, (int)n, regs);
			int e = errno;
			if (rc == -1) {
				int code = exception_code(e);
				snprintf(errbuf, sizeof errbuf, "the device answered: %s", code ? exception_name(code) :
					 modbus_strerror(e));
				why = errbuf;
				if (code)
					note_answer(d);
				else
					note_failure(d, "write", e);
			} else {
				note_answer(d);
			}
		}
	}
	if (why)
		atomic_fetch_add(&d->writes_failed, 1);
	else
		atomic_fetch_add(&d->writes_done, 1);
	char num[32];
	log_notice("modbus device %s: write of %s (%s %u) to %s by client %s (username %s): %s", d->conf->name,
		   tc->name, tc->area == MODBUS_COIL ? "coil" : tc->area == MODBUS_HOLDING_REGISTER ? "holding register" :
		   "read-only area", tc->address, isnan(value) ? "(no value)" : num_text(num, value), w->client_id,
		   w->username ? w->username : "-", why ? why : "done");
	write_result(d, w, why, value);
}

static void run_writes(struct cdevice *d)
{
	struct cwrite *w = collect__take_writes(d);
	while (w) {
		struct cwrite *next = w->next;
		do_write(d, w);
		collect__write_free(w);
		w = next;
	}
}

/* ---- the thread ---- */

/* Waits until `until_ns` (monotonic), a write, or stop. Returns false on stop. */
static bool wait_until(struct cdevice *d, uint64_t until_ns)
{
	struct timespec ts = { .tv_sec = (time_t)(until_ns / 1000000000ull), .tv_nsec = (long)(until_ns % 1000000000ull) };
	pthread_mutex_lock(&d->lock);
	while (!d->stop && !d->writes && collect__now_ns() < until_ns)
		pthread_cond_timedwait(&d->cond, &d->lock, &ts);
	bool go = !d->stop;
	pthread_mutex_unlock(&d->lock);
	return go;
}

/* The calling thread's CPU time in ns. */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Runs the group's poll due at gr->next_ns, then moves its schedule on by
 * whole intervals: a slot already past is counted late and skipped. */
static void run_group(struct cdevice *d, struct cgroup *gr)
{
	uint64_t start = collect__now_ns(), iv = (uint64_t)gr->interval_ms * 1000000;
	hist_add(&d->poll_jitter, (start - gr->next_ns) / 1000);
	atomic_fetch_add_explicit(&d->polls, 1, memory_order_relaxed);
	if (atomic_load(&d->inflight) >= COLLECT_MAX_INFLIGHT) {
		atomic_fetch_add_explicit(&d->polls_late, 1, memory_order_relaxed); /* the store is behind */
	} else if (!ensure_connected(d, false) || !poll_group(d, gr, start)) {
		atomic_fetch_add_explicit(&d->polls_failed, 1, memory_order_relaxed);
	}
	gr->next_ns += iv;
	uint64_t now = collect__now_ns();
	if (gr->next_ns <= now) {
		uint64_t missed = (now - gr->next_ns) / iv + 1;
		atomic_fetch_add_explicit(&d->polls_late, missed, memory_order_relaxed);
		gr->next_ns += missed * iv;
	}
}

void *collect__device_main(void *arg)
{
	struct cdevice *d = arg;
	char name[16];
	snprintf(name, sizeof name, "fm-modbus-%u", d->index % 10000);
	pthread_setname_np(pthread_self(), name);
	/* Polls keep to the clock; devices are spread over the interval so
	 * their batches do not all reach the store at once. */
	uint64_t now = collect__now_ns();
	unsigned n_dev = d->col->n_devices;
	for (uint32_t g = 0; g < d->n_groups; g++) {
		uint64_t iv = (uint64_t)d->groups[g].interval_ms * 1000000;
		uint64_t phase = iv / n_dev * d->index;
		uint64_t next = (now / iv) * iv + phase;
		while (next <= now)
			next += iv;
		d->groups[g].next_ns = next;
	}
	log_info("modbus device %s: polling %s:%u unit %u, %u tags in %u group%s", d->conf->name, d->conf->host,
		 d->conf->port, d->conf->unit_id, d->conf->n_tags, d->n_groups, d->n_groups == 1 ? "" : "s");
	open_windows(d, clock_wall_ms());
	for (;;) {
		uint64_t next = UINT64_MAX;
		for (uint32_t g = 0; g < d->n_groups; g++)
			if (d->groups[g].next_ns < next)
				next = d->groups[g].next_ns;
		if (d->agg_due_ms) {
			/* The windows end by the wall clock; the wait is monotonic. One
			 * ms late rather than early, when the clocks drift apart. */
			uint64_t wall = clock_wall_ms(), mono = collect__now_ns();
			uint64_t due = mono + (d->agg_due_ms > wall ? d->agg_due_ms - wall : 0) * 1000000 + 1000000;
			if (due < next)
				next = due;
		}
		if (!wait_until(d, next))
			break;
		run_writes(d);
		close_windows(d);
		now = collect__now_ns();
		for (uint32_t g = 0; g < d->n_groups && !stopping(d); g++)
			if (d->groups[g].next_ns <= now)
				run_group(d, &d->groups[g]);
		atomic_store_explicit(&d->cpu_ns, thread_cpu_ns(), memory_order_relaxed);
	}
	/* The health map says the broker stopped collecting; wait (bounded)
	 * until what was handed over is committed. */
	disconnect(d);
	collect__set_state(d, COLLECT_OFFLINE, "the broker stopped");
	for (int i = 0; i < 400 && atomic_load(&d->inflight); i++)
		usleep(5000);
	return NULL;
}
