/* The bridges as the broker sees them: which messages go to which spool
 * (after data reduction), spool commits and recovery, inbound messages, and
 * what the operations pages show. */
#include "internal.h"
#include "remap.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/log.h"
#include "../topic/topic.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const bridge_drop_names[BRIDGE_DROP__COUNT] = { "spool_full", "remote_refused", "echo", "expired" };

/* Committed bodies kept in memory this far beyond the next one to send;
 * further ones wait on disk and are read back in batches. */
#define SPOOL_RAM_WINDOW 2048
/* origin_sid of messages that came in over bridge i (sessions count from 1). */
#define BRIDGE_ORIGIN(i) ((1ull << 62) + (i))
#define TICK_MS 100
/* Topics with reduction state, and topics with aggregation windows, per
 * bridge (~100 bytes each): a plant's tags fit; topics that never repeat
 * cannot take the edge's memory. */
#define REDUCE_MAX_TOPICS (1u << 17)

/* The first out line of br that sends a message on topic. */
static int out_line(const struct bridge_conf *c, const struct msg *m)
{
	for (unsigned i = 0; i < c->n_topics; i++) {
		const struct bridge_topic *t = &c->topics[i];
		size_t p = strlen(t->local_prefix);
		if ((t->direction & BRIDGE_OUT) && m->topic_len > p && !memcmp(msg_topic(m), t->local_prefix, p) &&
		    topic_match(t->pattern, strlen(t->pattern), msg_topic(m) + p, m->topic_len - p))
			return (int)i;
	}
	return -1;
}

int bridge_spool_append(struct bridge *br, struct bworker *w, struct msg *m)
{
	struct broker *b = br->all->b;
	struct spool *sp = &br->spool;
	const struct bridge_conf *c = br->conf;
	uint32_t bytes = m->payload_len;
	uint32_t now_s = (uint32_t)(clock_wall_ms() / 1000);
	pthread_mutex_lock(&sp->lock);
	if (c->max_spool_bytes && sp->bytes + bytes > c->max_spool_bytes) {
		if (c->spool_overflow == QUEUE_REJECT_NEW) {
			pthread_mutex_unlock(&sp->lock);
			atomic_fetch_add(&br->dropped[BRIDGE_DROP_SPOOL_FULL], 1);
			return -FM_ELIMIT;
		}
		/* Only rows already on disk are deleted (their insert is behind us). */
		while (sp->count && sp->bytes + bytes > c->max_spool_bytes &&
		       (spool_at(sp, sp->head)->bits & SP_COMMITTED)) {
			uint64_t seq = sp->head;
			spool_remove(sp, seq);
			broker_spool_del(w, c->name, seq);
			atomic_fetch_add(&br->dropped[BRIDGE_DROP_SPOOL_FULL], 1);
		}
	}
	uint64_t seq = sp->tail;
	int rc = spool_push(sp, m, 0, bytes, now_s, b->store ? 0 : SP_COMMITTED);
	pthread_mutex_unlock(&sp->lock);
	if (rc) {
		log_err("bridge %s: out of memory: a message on %.*s is not forwarded", c->name, (int)m->topic_len,
			msg_topic(m));
		return rc;
	}
	if (b->store)
		broker_spool_add(w, c->name, seq, m, now_s);
	return 0;
}

/* ---- data reduction ---- */

/* Spools m through the reduction of line `line`. Returns 1 when spooled, 0
 * when reduced away or held, -FM_ELIMIT when the spool refused it. */
static int reduce_and_append(struct bridge *br, struct bworker *w, struct msg *m, unsigned line)
{
	const struct bridge_topic *t = &br->conf->topics[line];
	uint64_t now = clock_mono_ms();
	pthread_mutex_lock(&br->reduce_lock);
	uint64_t forgotten = br->reduce.forgotten;
	struct reduce_entry *e = reduce_table_get(&br->reduce, line, msg_topic(m), m->topic_len);
	if (!forgotten && br->reduce.forgotten)
		log_warn("bridge %s: reduction state for more than %u topics: others are forgotten (their next "
			 "message is forwarded)", br->conf->name, br->reduce.max);
	int rc = 1;
	enum reduce_verdict v = e ? reduce_check(t, &e->st, msg_payload(m), m->payload_len, now) : REDUCE_SEND;
	if (v == REDUCE_DROP) {
		/* Back to what the remote has: a held value would now be stale. */
		if (e->pending) {
			msg_unref(e->pending);
			e->pending = NULL;
			br->n_pending--;
			atomic_fetch_add(&br->reduced, 1);
		}
		atomic_fetch_add(&br->reduced, 1);
		rc = 0;
	} else if (v == REDUCE_HOLD) {
		/* The latest value waits for min_interval; an older held one is replaced. */
		if (e->pending)
			atomic_fetch_add(&br->reduced, 1);
		else
			br->n_pending++;
		msg_unref(e->pending);
		e->pending = msg_ref(m);
		rc = 0;
	} else {
		int err = bridge_spool_append(br, w, m);
		if (!err && e)
			reduce_sent(t, &e->st, msg_payload(m), m->payload_len, now);
		if (!err && e && e->pending) {
			msg_unref(e->pending); /* superseded */
			e->pending = NULL;
			br->n_pending--;
			atomic_fetch_add(&br->reduced, 1);
		}
		rc = err == -FM_ELIMIT ? err : !err;
	}
	pthread_mutex_unlock(&br->reduce_lock);
	return rc;
}

/* ---- aggregation ---- */

struct agg_out {
	struct bridge *br;
	struct bworker *w;
	const struct agg_entry *e; /* whose window agg_roll closes */
};

/* Spools the summary of window win of entry e (reduce_lock held) on its
 * topic, followed by the line's aggregate_suffix. */
static void spool_summary(void *ctx, const struct agg_entry *e, const struct agg_window *win)
{
	struct agg_out *o = ctx;
	struct bridge *br = o->br;
	char payload[AGG_SUMMARY_MAX], topic[65536];
	const char *suffix = br->conf->topics[e->key.line].agg_suffix;
	size_t slen = strlen(suffix);
	int plen = agg_format(e->conf, win, payload, sizeof payload);
	if (plen < 0 || e->key.topic_len + slen > 65535) {
		log_warn("bridge %s: the summary of %.*s is not sent: its topic is longer than 65,535 bytes",
			 br->conf->name, (int)e->key.topic_len, e->key.topic);
		return;
	}
	memcpy(topic, e->key.topic, e->key.topic_len);
	memcpy(topic + e->key.topic_len, suffix, slen);
	struct msg *m = broker_msg_new(br->all->b,
				       (struct mqtt_bin){ (const uint8_t *)topic, (uint32_t)(e->key.topic_len + slen) },
				       (struct mqtt_bin){ (const uint8_t *)payload, (uint32_t)plen }, NULL, 1, false);
	if (!m) {
		log_err("bridge %s: out of memory: the summary of %.*s is not sent", br->conf->name,
			(int)e->key.topic_len, e->key.topic);
		return;
	}
	bridge_spool_append(br, o->w, m);
	msg_unref(m);
}

static void spool_entry_summary(void *ctx, const struct agg_window *win)
{
	struct agg_out *o = ctx;
	spool_summary(o, o->e, win);
}

/* Adds m to the open window of its topic on line `line`, closing the window
 * that ended first. Returns 1 when taken (aggregated, or forwarded as the
 * line says), -FM_ELIMIT when the spool refused what was to be forwarded. */
static int aggregate(struct bridge *br, struct bworker *w, struct msg *m, unsigned line)
{
	const struct bridge_topic *t = &br->conf->topics[line];
	uint64_t now = clock_wall_ms();
	struct agg_out out = { br, w, NULL };
	bool forward = false;
	pthread_mutex_lock(&br->reduce_lock);
	uint64_t forgotten = br->agg.t.forgotten;
	struct agg_entry *e = agg_table_get(&br->agg, &t->agg, line, msg_topic(m), m->topic_len, now);
	if (!forgotten && br->agg.t.forgotten)
		log_warn("bridge %s: aggregation windows for more than %u topics: idle ones are forgotten",
			 br->conf->name, br->agg.t.max);
	if (!e) {
		if (!br->agg_full_logged)
			log_warn("bridge %s: aggregation windows of %u topics hold readings: messages of other topics "
				 "are forwarded unaggregated", br->conf->name, br->agg.t.map.count);
		br->agg_full_logged = true;
		forward = true;
	} else {
		out.e = e;
		agg_roll(&t->agg, &e->w, now, spool_entry_summary, &out);
		forward = !agg_read(&e->w, msg_payload(m), m->payload_len, t->deadband_field) &&
			  t->agg.non_numeric == AGG_NN_PASS;
		if (!forward)
			atomic_fetch_add(&br->reduced, 1);
	}
	int rc = forward && bridge_spool_append(br, w, m) ? -FM_ELIMIT : 1;
	pthread_mutex_unlock(&br->reduce_lock);
	return rc;
}

/* Closes the windows that ended (worker 0's tick). */
static void aggregate_tick(struct bridge *br)
{
	struct agg_out out = { br, bridge_worker(br), NULL };
	pthread_mutex_lock(&br->reduce_lock);
	agg_table_roll(&br->agg, clock_wall_ms(), spool_summary, &out);
	pthread_mutex_unlock(&br->reduce_lock);
}

uint64_t bridge_flush_held(struct bridge *br, uint64_t now)
{
	uint64_t next = 0;
	pthread_mutex_lock(&br->reduce_lock);
	size_t pos = 0;
	for (struct topic_entry *k; br->n_pending && (k = topic_table_next(&br->reduce, &pos));) {
		struct reduce_entry *e = (struct reduce_entry *)k;
		if (!e->pending)
			continue;
		const struct bridge_topic *t = &br->conf->topics[k->line];
		uint64_t due = e->st.last_ms + (uint64_t)t->min_interval * 1000;
		if (now < due) {
			if (!next || due - now < next)
				next = due - now;
			continue;
		}
		struct msg *m = e->pending;
		e->pending = NULL;
		br->n_pending--;
		if (!bridge_spool_append(br, bridge_worker(br), m))
			reduce_sent(t, &e->st, msg_payload(m), m->payload_len, now);
		msg_unref(m);
	}
	pthread_mutex_unlock(&br->reduce_lock);
	return next;
}

/* ---- the broker's port ---- */

static uint32_t route(void *ctx, struct bworker *w, struct msg *m, uint32_t *refused)
{
	struct bridges *all = ctx;
	uint32_t taken = 0;
	for (unsigned i = 0; i < all->n; i++) {
		struct bridge *br = &all->v[i];
		if (m->origin_sid == br->origin)
			continue; /* it came in over this bridge: never back out */
		if (br->edge && bridge__edge_takes(br, m)) {
			if (bridge_spool_append(br, w, m) == -FM_ELIMIT)
				(*refused)++;
			else
				taken++;
			continue;
		}
		int line = out_line(br->conf, m);
		if (line < 0)
			continue;
		const struct bridge_topic *t = &br->conf->topics[line];
		int rc = t->agg.window_s ? aggregate(br, w, m, (unsigned)line)
			 : reduce_enabled(t) ? reduce_and_append(br, w, m, (unsigned)line)
			 : bridge_spool_append(br, w, m) ? -FM_ELIMIT : 1;
		if (rc == -FM_ELIMIT)
			(*refused)++;
		else
			taken++; /* reduced away counts as taken: it was handled as configured */
	}
	return taken;
}

static struct bridge *by_name_ptr(struct bridges *all, const char *name)
{
	for (unsigned i = 0; i < all->n; i++)
		if (all->v[i].conf->name == name)
			return &all->v[i];
	return NULL;
}

static void wake_link(struct bridges *all, struct bridge *br)
{
	pthread_mutex_lock(&all->wake_lock);
	if (all->awake)
		uv_async_send(&br->link.async);
	pthread_mutex_unlock(&all->wake_lock);
}

static void committed(void *ctx, const struct store_txn *t)
{
	struct bridges *all = ctx;
	uint32_t woken = 0;
	for (uint32_t i = 0; i < t->n_ops; i++) {
		const struct store_op *op = &t->ops[i];
		struct bridge *br;
		if (op->type != ST_SPOOL_ADD || !(br = by_name_ptr(all, op->bridge)))
			continue;
		struct spool *sp = &br->spool;
		pthread_mutex_lock(&sp->lock);
		if (op->seq >= sp->head && op->seq < sp->tail) {
			struct spool_entry *e = spool_at(sp, op->seq);
			if (e->bits & SP_GONE) {
			} else if (t->err) {
				spool_remove(sp, op->seq); /* not on disk: the publisher was told so */
			} else {
				e->bits |= SP_COMMITTED;
				if (op->seq >= sp->next_send + SPOOL_RAM_WINDOW && !(e->bits & SP_ON_DISK))
					spool_spill(e);
			}
		}
		pthread_mutex_unlock(&sp->lock);
		if (!(woken & (1u << br->index))) {
			woken |= 1u << br->index;
			wake_link(all, br);
		}
	}
}

static int restore(void *ctx, const char *name, const struct restored_spool_entry *e)
{
	struct bridges *all = ctx;
	for (unsigned i = 0; i < all->n; i++) {
		struct bridge *br = &all->v[i];
		if (strcmp(br->conf->name, name))
			continue;
		struct spool *sp = &br->spool;
		if (sp->head == sp->tail && !sp->count)
			sp->head = sp->tail = sp->base = sp->next_send = e->seq;
		if (e->seq < sp->tail)
			return 0;
		/* Acknowledged out of order before the restart: gaps are gone. */
		while (sp->tail < e->seq)
			if (spool_push(sp, NULL, 0, 0, 0, SP_GONE | SP_COMMITTED))
				return -FM_ENOMEM;
		if (spool_push(sp, NULL, e->msg_id, e->bytes, e->queued_s, SP_COMMITTED))
			return -FM_ENOMEM;
		sp->dup_below = sp->tail; /* it may have been sent before the restart */
		return 0;
	}
	return -FM_ENOENT;
}

/* ---- inbound ---- */

void bridge_inbound(struct bridge *br, const struct mqtt_publish *p, store_done_fn done, void *ctx)
{
	const struct bridge_conf *c = br->conf;
	struct bworker *w = bridge_worker(br);
	char topic[65536];
	int len = -1;
	atomic_fetch_add(&br->received, 1);
	for (unsigned i = 0; i < c->n_topics && len < 0; i++)
		len = remap_in(&c->topics[i], (const char *)p->topic.p, p->topic.len, topic, sizeof topic);
	bool echo = false;
	if (br->link.version != MQTT_V5)
		for (unsigned i = 0; i < c->n_topics && !echo; i++)
			echo = remap_is_echo(&c->topics[i], (const char *)p->topic.p, p->topic.len);
	const char *why = len <= 0 || len > 65535 ? "no `in` topic line takes it"
			: echo ? "it is one of ours coming back (a v3 remote has no No Local)"
			: !topic_name_valid(topic, (size_t)len) ? "its local topic is not valid"
			: !strncmp(topic, "$SYS", 4) ? "$SYS is the broker's own tree" : NULL;
	if (why) {
		if (echo)
			atomic_fetch_add(&br->dropped[BRIDGE_DROP_ECHO], 1);
		log_debug("bridge %s: message on %.*s from the remote not published: %s", c->name, (int)p->topic.len,
			  p->topic.p, why);
		if (done)
			done(ctx, p->pid, 0, 0);
		return;
	}
	struct msg *m = broker_msg_new(br->all->b, (struct mqtt_bin){ (const uint8_t *)topic, (uint32_t)len },
				       p->payload, br->link.version == MQTT_V5 ? &p->props : NULL, p->qos, p->retain);
	if (!m) {
		log_err("bridge %s: out of memory: a message from the remote is not published", c->name);
		if (done)
			done(ctx, p->pid, 0, -FM_ENOMEM);
		return;
	}
	m->origin_sid = br->origin;
	if (done)
		broker_publish_bridged(w, m, done, ctx, p->pid);
	else
		broker_publish_bridged(w, m, NULL, NULL, 0);
}

/* ---- lifecycle ---- */

struct bridges *bridges_new(struct broker *b, int *err)
{
	const struct config *cfg = &b->cfg;
	*err = 0;
	if (!cfg->n_bridges)
		return NULL;
	struct bridges *all = calloc(1, sizeof *all);
	if (!all || !(all->v = calloc(cfg->n_bridges, sizeof *all->v))) {
		free(all);
		*err = -FM_ENOMEM;
		return NULL;
	}
	all->b = b;
	pthread_mutex_init(&all->wake_lock, NULL);
	/* The reconnection jitter (rand(), worker 0 only) differs from edge to edge. */
	srand((unsigned)(clock_wall_ms() ^ ((uint64_t)getpid() << 16)));
	uint64_t now_us = clock_mono_us();
	for (unsigned i = 0; i < cfg->n_bridges; i++) {
		struct bridge *br = &all->v[i];
		br->all = all;
		br->conf = &b->cfg.bridges[i];
		br->index = i;
		br->origin = BRIDGE_ORIGIN(i);
		spool_init(&br->spool);
		pthread_mutex_init(&br->reduce_lock, NULL);
		br->reduce.max = REDUCE_MAX_TOPICS;
		br->agg.t.max = REDUCE_MAX_TOPICS;
		for (unsigned k = 0; k < br->conf->n_topics; k++)
			br->aggregates |= br->conf->topics[k].agg.window_s != 0;
		bucket_init(&br->msgs_bucket, br->conf->max_msgs_per_sec, now_us);
		bucket_init(&br->bytes_bucket, (double)br->conf->max_bytes_per_sec, now_us);
		atomic_store(&br->drain_s, -1);
		all->n++;
		if (br->conf->sparkplug && !(br->edge = bridge__edge_new(br))) {
			bridges_free(all);
			*err = -FM_ENOMEM;
			return NULL;
		}
	}
	all->port = (struct bridge_port){ all, route, committed, restore };
	broker_set_bridges(b, &all->port);
	return all;
}

/* Acknowledged per second, averaged over ~10 s, and the drain estimate. */
static void update_rates(struct bridge *br, uint64_t now)
{
	if (now - br->rate_mark_ms < 1000)
		return;
	uint64_t acked = atomic_load(&br->acked);
	double inst = (double)(acked - br->rate_mark) * 1000.0 / (double)(now - br->rate_mark_ms);
	br->ack_rate = br->rate_mark_ms ? br->ack_rate * 0.9 + inst * 0.1 : inst;
	br->rate_mark = acked;
	br->rate_mark_ms = now;
	pthread_mutex_lock(&br->spool.lock);
	uint64_t count = br->spool.count;
	pthread_mutex_unlock(&br->spool.lock);
	double rate = br->ack_rate;
	if (br->conf->max_msgs_per_sec && (rate < 1 || rate > br->conf->max_msgs_per_sec))
		rate = br->conf->max_msgs_per_sec;
	int64_t drain = !count ? 0 : atomic_load(&br->connected) && rate >= 1 ? (int64_t)((double)count / rate + 0.5) : -1;
	atomic_store(&br->drain_s, drain);
}

static void on_tick(uv_timer_t *t)
{
	struct bridges *all = t->data;
	uint64_t now = clock_mono_ms();
	for (unsigned i = 0; i < all->n; i++) {
		struct bridge *br = &all->v[i];
		if (br->n_pending)
			bridge_flush_held(br, now);
		if (br->aggregates)
			aggregate_tick(br);
		link_tick(&br->link, now);
		update_rates(br, now);
	}
}

int bridges_start(struct bridges *all, uv_loop_t *loop)
{
	const struct config *cfg = &all->b->cfg;
	for (unsigned i = 0; i < all->n; i++) {
		struct bridge *br = &all->v[i];
		const struct bridge_conf *c = br->conf;
		link_init(&br->link, br, loop);
		if (c->cafile.line) {
			char err[1024];
			if (!(br->link.tls_ctx = tls_client_ctx_build(c->name, &c->cafile, &c->certfile, &c->keyfile,
								      cfg->source, err, sizeof err))) {
				log_err("%s", err);
				for (unsigned k = 0; k <= i; k++)
					link_stop(&all->v[k].link);
				return -1;
			}
		}
	}
	uv_timer_init(loop, &all->tick);
	all->tick.data = all;
	uv_timer_start(&all->tick, on_tick, TICK_MS, TICK_MS);
	pthread_mutex_lock(&all->wake_lock);
	all->awake = true;
	pthread_mutex_unlock(&all->wake_lock);
	for (unsigned i = 0; i < all->n; i++) {
		log_info("bridge %s: %llu messages spooled", all->v[i].conf->name,
			 (unsigned long long)all->v[i].spool.count);
		link_start(&all->v[i].link);
		link_pump(&all->v[i].link);
	}
	return 0;
}

void bridges_stop(struct bridges *all)
{
	pthread_mutex_lock(&all->wake_lock);
	all->awake = false;
	pthread_mutex_unlock(&all->wake_lock);
	uv_close((uv_handle_t *)&all->tick, NULL);
	for (unsigned i = 0; i < all->n; i++)
		link_stop(&all->v[i].link);
}

void bridges_free(struct bridges *all)
{
	if (!all)
		return;
	for (unsigned i = 0; i < all->n; i++) {
		struct bridge *br = &all->v[i];
		link_free(&br->link);
		spool_free(&br->spool);
		size_t pos = 0;
		for (struct topic_entry *e; (e = topic_table_next(&br->reduce, &pos));)
			msg_unref(((struct reduce_entry *)e)->pending);
		topic_table_free(&br->reduce);
		agg_table_free(&br->agg); /* the open windows are lost, as in a crash */
		bridge__edge_free(br->edge);
		pthread_mutex_destroy(&br->reduce_lock);
	}
	pthread_mutex_destroy(&all->wake_lock);
	free(all->v);
	free(all);
}

unsigned bridges_count(const struct bridges *all) { return all ? all->n : 0; }

void bridges_status(struct bridges *all, unsigned i, struct bridge_status *out)
{
	struct bridge *br = &all->v[i];
	memset(out, 0, sizeof *out);
	out->name = br->conf->name;
	out->connected = atomic_load(&br->connected);
	snprintf(out->remote, sizeof out->remote, "%s", br->link.remote);
	pthread_mutex_lock(&br->spool.lock);
	out->spool_messages = br->spool.count;
	out->spool_bytes = br->spool.bytes;
	if (br->spool.head < br->spool.tail) {
		uint64_t now_s = clock_wall_ms() / 1000, q = spool_at(&br->spool, br->spool.head)->queued_s;
		out->oldest_age_s = now_s > q ? now_s - q : 0;
	}
	pthread_mutex_unlock(&br->spool.lock);
	out->drain_s = atomic_load(&br->drain_s);
	out->sent = atomic_load(&br->sent);
	out->received = atomic_load(&br->received);
	out->reduced = atomic_load(&br->reduced);
	for (int r = 0; r < BRIDGE_DROP__COUNT; r++)
		out->dropped[r] = atomic_load(&br->dropped[r]);
}
