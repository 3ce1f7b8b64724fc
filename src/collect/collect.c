/* The collectors' lifecycle, their listing for the operations layer, and
 * the intake of write requests from the workers. */
#include "internal.h"
#include "../base/err.h"
#include "../base/log.h"
#include "../base/vec.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

const double collect_hist_bounds_ms[COLLECT_HIST_BUCKETS] = { 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50,
							       100, 250, 500, 1000, 2500, 10000 };

uint64_t collect__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void hist_add(struct atomic_hist *h, uint64_t us)
{
	unsigned i = 0;
	while (i < COLLECT_HIST_BUCKETS && (double)us > collect_hist_bounds_ms[i] * 1000)
		i++;
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void hist_copy(const struct atomic_hist *h, struct collect_hist *out)
{
	uint64_t cum = 0;
	for (unsigned i = 0; i <= COLLECT_HIST_BUCKETS; i++) {
		cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
		out->buckets[i] = cum;
	}
	out->count = cum; /* consistent with the buckets, whatever raced */
	out->sum_us = atomic_load_explicit(&h->sum_us, memory_order_relaxed);
}

const char *collect_state_name(uint32_t state)
{
	static const char *const names[] = { "connecting", "online", "offline" };
	return state < 3 ? names[state] : "unknown";
}

static char *join(const char *a, const char *b, const char *c)
{
	size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s%s%s", a, b, c);
	return s;
}

/* Groups the device's tags by interval and plans each group's requests.
 * Returns 0 or -FM_ENOMEM. */
static int plan_device(struct cdevice *d)
{
	const struct modbus_device_conf *dc = d->conf;
	for (uint32_t i = 0; i < dc->n_tags; i++) {
		uint32_t iv = d->tag_confs[i].interval_ms ? d->tag_confs[i].interval_ms : dc->poll_interval_ms;
		uint32_t g = 0;
		while (g < d->n_groups && d->groups[g].interval_ms != iv)
			g++;
		if (g == d->n_groups) {
			struct cgroup *ng = realloc(d->groups, (d->n_groups + 1) * sizeof *ng);
			if (!ng)
				return -FM_ENOMEM;
			d->groups = ng;
			memset(&ng[g], 0, sizeof ng[g]);
			ng[g].interval_ms = iv;
			if (!(ng[g].idx = calloc(dc->n_tags, sizeof *ng[g].idx)))
				return -FM_ENOMEM;
			d->n_groups++;
		}
		d->groups[g].idx[d->groups[g].n++] = i;
	}
	for (uint32_t g = 0; g < d->n_groups; g++) {
		struct cgroup *gr = &d->groups[g];
		if (!(gr->req = calloc(gr->n, sizeof *gr->req)) || !(gr->split = calloc(gr->n, sizeof *gr->split)))
			return -FM_ENOMEM;
		gr->n_req = tag_plan(d->tag_confs, gr->idx, gr->n, dc->max_gap, gr->req);
	}
	return 0;
}

static int cmp_set(const void *a, const void *b)
{
	const struct set_entry *x = a, *y = b;
	uint32_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->topic, y->topic, n);
	return c ? c : x->len < y->len ? -1 : x->len > y->len;
}

static bool collect_route(void *ctx, struct bworker *w, const struct msg *m);

struct collector *collect_new(struct broker *b, int *err)
{
	const struct config *cfg = &b->cfg;
	*err = 0;
	if (!cfg->n_devices)
		return NULL;
	struct collector *c = calloc(1, sizeof *c);
	if (!c || !(c->devices = calloc(cfg->n_devices, sizeof *c->devices)) ||
	    !(c->sets = calloc(cfg->n_tags ? cfg->n_tags : 1, sizeof *c->sets)))
		goto oom;
	c->b = b;
	c->n_devices = cfg->n_devices;
	for (unsigned i = 0; i < cfg->n_devices; i++) {
		struct cdevice *d = &c->devices[i];
		d->col = c;
		d->conf = &cfg->devices[i];
		d->tag_confs = &cfg->tags[d->conf->first_tag];
		d->index = i;
		d->sock = -1;
		d->writes_tail = &d->writes;
		pthread_mutex_init(&d->lock, NULL);
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&d->cond, &ca);
		pthread_condattr_destroy(&ca);
		snprintf(d->client_id, sizeof d->client_id, "modbus/%s", d->conf->name);
		const char *prefix = d->conf->topic_prefix;
		if (!(d->status_topic = join(prefix, "/status", "")) ||
		    !(d->tags = calloc(d->conf->n_tags, sizeof *d->tags)))
			goto oom;
		for (uint32_t t = 0; t < d->conf->n_tags; t++) {
			d->tags[t].conf = &d->tag_confs[t];
			if (!(d->tags[t].topic = join(prefix, "/", d->tag_confs[t].name)))
				goto oom;
			if (d->tag_confs[t].agg.window_s &&
			    (!(d->tags[t].agg = calloc(1, sizeof *d->tags[t].agg)) ||
			     !(d->tags[t].agg_topic = join(d->tags[t].topic, d->tag_confs[t].agg_suffix, ""))))
				goto oom;
			struct set_entry *e = &c->sets[c->n_sets];
			if (!(e->topic = join(d->tags[t].topic, "/set", "")))
				goto oom;
			e->len = (uint32_t)strlen(e->topic);
			e->device = i;
			e->tag = t;
			c->n_sets++;
		}
		if (plan_device(d))
			goto oom;
	}
	qsort(c->sets, c->n_sets, sizeof *c->sets, cmp_set);
	if (collect__spb_init(c))
		goto oom;
	c->port.ctx = c;
	c->port.route = collect_route;
	broker_set_collect(b, &c->port);
	return c;
oom:
	collect_free(c);
	*err = -FM_ENOMEM;
	return NULL;
}

int collect_start(struct collector *c)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 512 * 1024);
	int rc = 0;
	for (unsigned i = 0; i < c->n_devices; i++) {
		struct cdevice *d = &c->devices[i];
		int e = pthread_create(&d->thread, &attr, collect__device_main, d);
		if (e) {
			log_err("modbus device %s: cannot start its thread: %s", d->conf->name, strerror(e));
			rc = -FM_EIO;
			break;
		}
		d->started = true;
	}
	pthread_attr_destroy(&attr);
	if (rc)
		collect_stop(c);
	else
		log_notice("collecting from %u Modbus device%s", c->n_devices, c->n_devices == 1 ? "" : "s");
	return rc;
}

void collect_stop(struct collector *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->n_devices; i++) {
		struct cdevice *d = &c->devices[i];
		pthread_mutex_lock(&d->lock);
		d->stop = true;
		/* A request blocked on a silent device returns at once. */
		if (d->sock >= 0)
			shutdown(d->sock, SHUT_RDWR);
		pthread_cond_signal(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
	for (unsigned i = 0; i < c->n_devices; i++) {
		struct cdevice *d = &c->devices[i];
		if (d->started)
			pthread_join(d->thread, NULL);
		d->started = false;
	}
}

static void write_free(struct cwrite *w)
{
	free(w->client_id);
	free(w->username);
	free(w->response_topic);
	free(w->correlation);
	free(w);
}

void collect_free(struct collector *c)
{
	if (!c)
		return;
	if (c->b && c->b->collect == &c->port)
		broker_set_collect(c->b, NULL);
	collect__spb_free(c);
	for (unsigned i = 0; c->devices && i < c->n_devices; i++) {
		struct cdevice *d = &c->devices[i];
		for (uint32_t t = 0; d->tags && t < d->conf->n_tags; t++) {
			free(d->tags[t].topic);
			free(d->tags[t].agg); /* the open window is lost, as in a crash */
			free(d->tags[t].agg_topic);
		}
		free(d->tags);
		for (uint32_t g = 0; g < d->n_groups; g++) {
			free(d->groups[g].idx);
			free(d->groups[g].req);
			free(d->groups[g].split);
		}
		free(d->groups);
		free(d->status_topic);
		while (d->writes) {
			struct cwrite *w = d->writes;
			d->writes = w->next;
			write_free(w);
		}
		if (d->mb) {
			modbus_close(d->mb);
			modbus_free(d->mb);
		}
		pthread_mutex_destroy(&d->lock);
		pthread_cond_destroy(&d->cond);
	}
	for (uint32_t i = 0; c->sets && i < c->n_sets; i++)
		free((char *)c->sets[i].topic);
	free(c->sets);
	free(c->devices);
	free(c);
}

int collect_list(struct collector *c, struct collect_device_info **out, uint32_t *n)
{
	*out = NULL;
	*n = 0;
	if (!c)
		return 0;
	struct collect_device_info *a = calloc(c->n_devices ? c->n_devices : 1, sizeof *a);
	if (!a)
		return -FM_ENOMEM;
	for (unsigned i = 0; i < c->n_devices; i++) {
		struct cdevice *d = &c->devices[i];
		struct collect_device_info *o = &a[i];
		snprintf(o->name, sizeof o->name, "%s", d->conf->name);
		snprintf(o->host, sizeof o->host, "%s", d->conf->host);
		snprintf(o->prefix, sizeof o->prefix, "%s", d->conf->topic_prefix);
		o->port = d->conf->port;
		o->unit_id = d->conf->unit_id;
		o->n_tags = d->conf->n_tags;
		for (uint32_t g = 0; g < d->n_groups; g++)
			o->n_requests += d->groups[g].n_req;
		pthread_mutex_lock(&d->lock);
		o->state = d->state;
		o->since_ms = d->since_ms;
		snprintf(o->last_error, sizeof o->last_error, "%s", d->last_error);
		pthread_mutex_unlock(&d->lock);
#define LOAD(f) atomic_load_explicit(&d->f, memory_order_relaxed)
		o->last_success_ms = LOAD(last_success_ms);
		o->polls = LOAD(polls);
		o->polls_failed = LOAD(polls_failed);
		o->polls_late = LOAD(polls_late);
		o->requests = LOAD(requests);
		o->requests_failed = LOAD(requests_failed);
		o->exceptions = LOAD(exceptions);
		o->readings = LOAD(readings);
		o->readings_committed = LOAD(readings_committed);
		o->readings_refused = LOAD(readings_refused);
		o->readings_lost = LOAD(readings_lost);
		o->writes = LOAD(writes_done);
		o->writes_failed = LOAD(writes_failed);
		o->connects = LOAD(connects);
		o->offline_episodes = LOAD(offline_episodes);
		o->cpu_ns = LOAD(cpu_ns);
#undef LOAD
		hist_copy(&d->request_latency, &o->request_latency);
		hist_copy(&d->poll_jitter, &o->poll_jitter);
		hist_copy(&d->poll_commit, &o->poll_commit);
	}
	*out = a;
	*n = c->n_devices;
	return 0;
}

/* ---- write requests, on the worker that routed them ---- */

static const struct set_entry *find_set(const struct collector *c, const char *topic, uint32_t len)
{
	struct set_entry key = { .topic = topic, .len = len };
	return bsearch(&key, c->sets, c->n_sets, sizeof *c->sets, cmp_set);
}

static char *dup_bin(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = 0;
	}
	return s;
}

/* Copies what a write needs out of m (which the worker frees later). */
static struct cwrite *write_new(const struct msg *m, uint32_t tag, const char *client_id, const char *username)
{
	struct cwrite *w = calloc(1, sizeof *w + m->payload_len);
	if (!w)
		return NULL;
	w->tag = tag;
	w->payload_len = m->payload_len;
	memcpy(w->payload, msg_payload(m), m->payload_len);
	bool oom = !(w->client_id = strdup(client_id)) || (username && !(w->username = strdup(username)));
	struct mqtt_props pr = { .raw = msg_props(m), .raw_len = m->props_len };
	struct mqtt_prop_item it;
	for (uint32_t off = 0; !oom && m->props_len && mqtt_props_next(&pr, &off, &it);) {
		if (it.id == MQTT_PROP_RESPONSE_TOPIC && !w->response_topic)
			oom = !(w->response_topic = dup_bin(it.str.p, it.str.len));
		else if (it.id == MQTT_PROP_CORRELATION_DATA && !w->correlation) {
			oom = !(w->correlation = (uint8_t *)dup_bin(it.str.p, it.str.len));
			w->correlation_len = it.str.len;
		}
	}
	if (oom) {
		write_free(w);
		return NULL;
	}
	return w;
}

/* Hands w to d's thread (owns w). Returns 0, or -FM_ELIMIT when too many
 * writes wait (w is freed, logged). */
static int enqueue(struct cdevice *d, struct cwrite *wr)
{
	pthread_mutex_lock(&d->lock);
	bool full = d->n_writes >= COLLECT_MAX_WRITES;
	if (!full) {
		*d->writes_tail = wr;
		d->writes_tail = &wr->next;
		d->n_writes++;
		pthread_cond_signal(&d->cond);
	}
	pthread_mutex_unlock(&d->lock);
	if (!full)
		return 0;
	log_notice("modbus device %s: write to %s by client %s (username %s) refused: %d writes are already waiting",
		   d->conf->name, d->tags[wr->tag].conf->name, wr->client_id, wr->username ? wr->username : "-",
		   COLLECT_MAX_WRITES);
	atomic_fetch_add(&d->writes_failed, 1);
	write_free(wr);
	return -FM_ELIMIT;
}

static bool collect_route(void *ctx, struct bworker *w, const struct msg *m)
{
	struct collector *c = ctx;
	const char *topic = msg_topic(m);
	uint32_t len = m->topic_len;
	if (len < 5 || memcmp(topic + len - 4, "/set", 4))
		return false;
	const struct set_entry *e = find_set(c, topic, len);
	if (!e)
		return false;
	struct cdevice *d = &c->devices[e->device];
	const char *cid = NULL, *user = NULL;
	if (!broker_msg_publisher(w, m, &cid, &user)) {
		log_notice("modbus device %s: write to %.*s refused: it does not come from a connected client "
			   "(a will, a bridged or a collector's message)", d->conf->name, (int)len, topic);
		return true;
	}
	struct cwrite *wr = write_new(m, e->tag, cid, user);
	if (!wr) {
		log_err("modbus device %s: out of memory: write to %.*s by client %s dropped", d->conf->name,
			(int)len, topic, cid);
		return true;
	}
	enqueue(d, wr);
	return true;
}

int collect__write_enqueue(struct cdevice *d, uint32_t tag, const char *client_id, const uint8_t *payload,
			   uint32_t len)
{
	struct cwrite *w = calloc(1, sizeof *w + len);
	if (!w || !(w->client_id = strdup(client_id))) {
		free(w);
		log_err("modbus device %s: out of memory: a write by %s dropped", d->conf->name, client_id);
		return -FM_ENOMEM;
	}
	w->tag = tag;
	w->payload_len = len;
	memcpy(w->payload, payload, len);
	return enqueue(d, w);
}

/* For device.c: takes the waiting writes (the caller frees each with
 * collect__write_free). */
struct cwrite *collect__take_writes(struct cdevice *d)
{
	pthread_mutex_lock(&d->lock);
	struct cwrite *w = d->writes;
	d->writes = NULL;
	d->writes_tail = &d->writes;
	d->n_writes = 0;
	pthread_mutex_unlock(&d->lock);
	return w;
}

void collect__write_free(struct cwrite *w) { write_free(w); }
