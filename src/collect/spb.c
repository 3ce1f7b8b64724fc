/* Modbus devices as Sparkplug B devices of the broker's edge node. On the
 * device's thread: every reading goes into the device's snapshot (what a
 * birth reports), the readings report by exception lets through into the
 * poll's one DDATA (by alias), a DBIRTH after the first poll once the
 * device is online, a DDEATH when it goes offline; they are published
 * locally like any reading (admission, store, the edge node's bridge
 * spool). On worker 0, for the edge node's session: the DBIRTHs of a new
 * connection or a rebirth, and DCMD writes. A tag's alias is a hash of its
 * device's and its own name: unique in the edge node
 * [tck-id-payloads-alias-uniqueness], and the same after a restart with
 * tags added or removed, so a DDATA spooled before it still names the tag
 * it was read from once the new session's DBIRTH defines the aliases. */
#include "internal.h"
#include "spb.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/log.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- pure: a tag as a metric ---- */

uint32_t spb_tag_datatype(const struct modbus_tag_conf *t)
{
	if (t->type == MODBUS_BOOL || t->type == MODBUS_BIT)
		return SPB_DT_BOOLEAN;
	if (t->type == MODBUS_STRING)
		return SPB_DT_STRING;
	if (t->scale != 1 || t->offset != 0)
		return SPB_DT_DOUBLE;
	switch (t->type) {
	case MODBUS_INT16: return SPB_DT_INT16;
	case MODBUS_UINT16: return SPB_DT_UINT16;
	case MODBUS_INT32: return SPB_DT_INT32;
	case MODBUS_UINT32: return SPB_DT_UINT32;
	case MODBUS_INT64: return SPB_DT_INT64;
	case MODBUS_UINT64: return SPB_DT_UINT64;
	case MODBUS_FLOAT32: return SPB_DT_FLOAT;
	default: return SPB_DT_DOUBLE;
	}
}

void spb_tag_metric(const struct modbus_tag_conf *t, const struct tag_value *v, struct spb_metric_out *m)
{
	m->datatype = spb_tag_datatype(t);
	m->kind = SPB_V_NULL;
	if (!v)
		return;
	switch (m->datatype) {
	case SPB_DT_BOOLEAN:
		m->kind = SPB_V_BOOL;
		m->b = v->b;
		return;
	case SPB_DT_STRING:
		m->kind = SPB_V_STRING;
		m->s = v->s;
		return;
	case SPB_DT_INT16:
	case SPB_DT_INT32:
	case SPB_DT_INT64:
		m->kind = SPB_V_INT;
		m->i = v->i;
		return;
	case SPB_DT_UINT16:
	case SPB_DT_UINT32:
	case SPB_DT_UINT64:
		m->kind = SPB_V_UINT;
		m->u = v->u;
		return;
	default: {
		double e = tag_engineering(t, v);
		if (isfinite(e)) {
			m->kind = SPB_V_DOUBLE;
			m->d = e;
		}
		return;
	}
	}
}

uint64_t spb_tag_alias(const char *device, const char *tag)
{
	/* FNV-1a, 64 bits, over DEVICE '/' TAG: stable across builds and runs. */
	uint64_t h = 0xcbf29ce484222325ull;
	for (const char *p = device; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	h = (h ^ '/') * 0x100000001b3ull;
	for (const char *p = tag; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	/* Kept below 2^53, so a host holding it in a double (JavaScript) reads it exactly. */
	h &= (1ull << 53) - 1;
	return h ? h : 1;
}

bool spb_tag_write_text(const struct modbus_tag_conf *t, const struct spb_cmd_metric *c, char out[40])
{
	double v;
	if (!spb_cmd_number(c, spb_tag_datatype(t), &v) || !isfinite(v))
		return false;
	if (t->type == MODBUS_BOOL)
		snprintf(out, 40, "%s", v != 0 ? "true" : "false");
	else
		snprintf(out, 40, "%.17g", v);
	return true;
}

/* ---- the device's thread ---- */

struct cspb_tag {
	struct tag_value v; /* the latest reading, when good */
	bool good;
	uint64_t ts_ms;     /* of the latest reading; 0: never read */
};

struct cspb {
	char dbirth[288], ddata[288], ddeath[288]; /* four ids of <= 63 bytes, a type, four slashes */
	struct cspb_tag *snap;  /* every tag's latest reading; written by the device thread under d->lock */
	uint32_t *pending;      /* tags for this poll's DDATA (device thread) */
	uint32_t n_pending;
	uint64_t *alias;        /* of each tag */
	bool born;              /* a DBIRTH went out since the device came online (device thread) */
	bool birth_due;         /* online, its DBIRTH goes after this poll (device thread) */
};

static uint64_t next_seq(struct cdevice *d)
{
	/* The local copies' seq; the edge node's session sets its own as it sends. */
	return atomic_fetch_add(&d->col->spb_seq, 1) & 0xff;
}

void collect__spb_reading(struct cdevice *d, const struct ctag *t, const struct tag_value *v, uint64_t ts_ms)
{
	struct cspb_tag *s = &d->spb->snap[t - d->tags];
	if (!v && d->state == COLLECT_OFFLINE)
		return; /* the device is gone, not the value: a birth for its history tells the last one known */
	pthread_mutex_lock(&d->lock);
	s->good = v != NULL;
	if (v)
		s->v = *v;
	s->ts_ms = ts_ms;
	pthread_mutex_unlock(&d->lock);
}

void collect__spb_changed(struct cdevice *d, const struct ctag *t)
{
	struct cspb *p = d->spb;
	uint32_t i = (uint32_t)(t - d->tags);
	for (uint32_t k = 0; k < p->n_pending; k++)
		if (p->pending[k] == i)
			return;
	p->pending[p->n_pending++] = i;
}

/* The DBIRTH of d from its snapshot (d->lock held, or on the device's
 * thread), with seq when has_seq. */
static int encode_dbirth(struct cdevice *d, struct buf *out, bool has_seq, uint64_t seq)
{
	uint32_t n = d->conf->n_tags;
	struct spb_metric_out *m = calloc(n ? n : 1, sizeof *m);
	if (!m)
		return -FM_ENOMEM;
	uint64_t now = clock_wall_ms();
	for (uint32_t i = 0; i < n; i++) {
		const struct cspb_tag *s = &d->spb->snap[i];
		const struct modbus_tag_conf *tc = d->tags[i].conf;
		m[i].name = tc->name;
		m[i].alias = d->spb->alias[i];
		m[i].has_alias = true;
		m[i].timestamp = s->ts_ms ? s->ts_ms : now;
		m[i].eng_unit = tc->unit;
		spb_tag_metric(tc, s->good ? &s->v : NULL, &m[i]);
	}
	int rc = spb_payload_encode(out, now, has_seq, seq, m, n);
	free(m);
	return rc;
}

const char *collect__spb_due(struct cdevice *d)
{
	struct cspb *p = d->spb;
	if (d->state != COLLECT_ONLINE) {
		p->n_pending = 0; /* after its DDEATH a device sends nothing */
		return NULL;
	}
	if (p->birth_due)
		return p->dbirth;
	return p->n_pending ? p->ddata : NULL;
}

int collect__spb_encode_due(struct cdevice *d, struct buf *out)
{
	struct cspb *p = d->spb;
	if (p->birth_due) {
		/* The birth reports every tag: the readings of this poll are in it. */
		p->birth_due = false;
		p->born = true;
		p->n_pending = 0;
		return encode_dbirth(d, out, true, next_seq(d));
	}
	struct spb_metric_out *m = calloc(p->n_pending, sizeof *m);
	if (!m)
		return -FM_ENOMEM;
	for (uint32_t k = 0; k < p->n_pending; k++) {
		uint32_t i = p->pending[k];
		const struct cspb_tag *s = &p->snap[i];
		/* By alias only [tck-id-payloads-alias-data-cmd-requirement]; no datatype in DATA. */
		m[k].alias = p->alias[i];
		m[k].has_alias = true;
		m[k].timestamp = s->ts_ms;
		spb_tag_metric(d->tags[i].conf, s->good ? &s->v : NULL, &m[k]);
		m[k].datatype = 0;
	}
	uint32_t n = p->n_pending;
	p->n_pending = 0;
	int rc = spb_payload_encode(out, clock_wall_ms(), true, next_seq(d), m, n);
	free(m);
	return rc;
}

const char *collect__spb_state(struct cdevice *d, uint32_t state)
{
	struct cspb *p = d->spb;
	if (state == COLLECT_ONLINE) {
		p->birth_due = true;
		return NULL;
	}
	p->birth_due = false;
	p->n_pending = 0;
	if (!p->born)
		return NULL;
	p->born = false;
	return p->ddeath;
}

int collect__spb_encode_ddeath(struct cdevice *d, struct buf *out)
{
	return spb_payload_encode(out, clock_wall_ms(), true, next_seq(d), NULL, 0);
}

/* ---- worker 0: the edge node's session ---- */

/* The births leave without entering the broker: they pass the admission
 * the device's DBIRTH would (its user's ACL). */
static bool admitted(struct collector *c, struct cdevice *d)
{
	const char *why = broker_collect_admits(c->b, d->conf->username[0] ? d->conf->username : NULL, d->client_id,
						 d->spb->dbirth, strlen(d->spb->dbirth));
	if (why)
		log_notice("sparkplug: no DBIRTH for device %s in the session: %s (client id %s, username %s)",
			   d->conf->name, why, d->client_id, d->conf->username[0] ? d->conf->username : "-");
	return !why;
}

static struct cdevice *by_name(struct collector *c, const char *name, size_t len)
{
	for (unsigned i = 0; i < c->n_devices; i++) {
		struct cdevice *d = &c->devices[i];
		if (d->spb && strlen(d->conf->name) == len && !memcmp(d->conf->name, name, len))
			return d;
	}
	return NULL;
}

static int birth_of(void *ctx, const char *device, size_t dlen, struct buf *out, bool *online)
{
	struct collector *c = ctx;
	struct cdevice *d = by_name(c, device, dlen);
	if (!d)
		return -FM_ENOENT;
	if (out && !admitted(c, d))
		return -FM_EINVAL;
	pthread_mutex_lock(&d->lock);
	*online = d->state == COLLECT_ONLINE;
	int rc = out ? encode_dbirth(d, out, false, 0) : 0;
	pthread_mutex_unlock(&d->lock);
	return rc;
}

static void births(void *ctx, void (*emit)(void *ectx, const char *topic, const uint8_t *p, size_t len), void *ectx)
{
	struct collector *c = ctx;
	struct buf out = { 0 };
	for (unsigned i = 0; i < c->n_devices; i++) {
		struct cdevice *d = &c->devices[i];
		if (!d->spb || !admitted(c, d))
			continue;
		out.len = 0;
		pthread_mutex_lock(&d->lock);
		bool online = d->state == COLLECT_ONLINE;
		int rc = online ? encode_dbirth(d, &out, false, 0) : 0;
		pthread_mutex_unlock(&d->lock);
		if (rc)
			log_err("sparkplug: out of memory: no DBIRTH for device %s", d->conf->name);
		else if (online)
			emit(ectx, d->spb->dbirth, out.p, out.len);
	}
	buf_free(&out);
}

struct dcmd {
	struct cdevice *d;
	uint32_t done;
};

static const struct ctag *find_tag(struct cdevice *d, const struct spb_cmd_metric *m)
{
	for (uint32_t i = 0; i < d->conf->n_tags; i++)
		if (m->has_alias ? d->spb->alias[i] == m->alias : m->name && !strcmp(d->tags[i].conf->name, m->name))
			return &d->tags[i];
	return NULL;
}

static int dcmd_metric(void *ctx, const struct spb_cmd_metric *m)
{
	struct dcmd *x = ctx;
	struct cdevice *d = x->d;
	const struct ctag *t = find_tag(d, m);
	char text[40];
	if (!t) {
		log_notice("sparkplug: DCMD for device %s: no tag %s%s%llu: ignored", d->conf->name,
			   m->name ? m->name : "", m->name ? " / alias " : "alias ", (unsigned long long)m->alias);
		return 0;
	}
	if (!spb_tag_write_text(t->conf, m, text)) {
		log_notice("sparkplug: DCMD for device %s, tag %s: not a number or boolean: ignored", d->conf->name,
			   t->conf->name);
		return 0;
	}
	/* The write path of PREFIX/TAG/set: tag_writable, the range and the log
	 * are checked on the device's thread. */
	if (collect__write_enqueue(d, (uint32_t)(t - d->tags), "sparkplug DCMD", (const uint8_t *)text, strlen(text)))
		return 0;
	x->done++;
	return 0;
}

static void command(void *ctx, const char *device, size_t dlen, const uint8_t *p, size_t len)
{
	struct collector *c = ctx;
	struct cdevice *d = by_name(c, device, dlen);
	if (!d) {
		log_notice("sparkplug: DCMD for device %.*s: no such Sparkplug device: ignored", (int)dlen, device);
		return;
	}
	struct dcmd x = { d, 0 };
	if (spb_cmd_each(p, len, dcmd_metric, &x) < 0)
		log_notice("sparkplug: DCMD for device %s: not a Sparkplug B payload: ignored", d->conf->name);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static bool alias_taken(const uint64_t *sorted, size_t n, uint64_t a)
{
	return bsearch(&a, sorted, n, sizeof a, cmp_u64) != NULL;
}

/* Two tags of the edge node with one hash (about one chance in 10^8 with
 * 10,240 tags): the later one, in configuration order, takes the next free
 * number, which stays the same while both tags do. */
static int unique_aliases(struct collector *c)
{
	size_t n = 0, k = 0;
	for (unsigned i = 0; i < c->n_devices; i++)
		n += c->devices[i].spb ? c->devices[i].conf->n_tags : 0;
	uint64_t *seen = calloc(n ? n : 1, sizeof *seen);
	if (!seen)
		return -FM_ENOMEM;
	for (unsigned i = 0; i < c->n_devices; i++)
		for (uint32_t t = 0; c->devices[i].spb && t < c->devices[i].conf->n_tags; t++)
			seen[k++] = c->devices[i].spb->alias[t];
	qsort(seen, k, sizeof *seen, cmp_u64);
	bool dup = false;
	for (size_t i = 1; i < k && !dup; i++)
		dup = seen[i] == seen[i - 1];
	k = 0;
	for (unsigned i = 0; dup && i < c->n_devices; i++) {
		struct cdevice *d = &c->devices[i];
		for (uint32_t t = 0; d->spb && t < d->conf->n_tags; t++) {
			uint64_t *a = &d->spb->alias[t];
			while (alias_taken(seen, k, *a)) {
				log_warn("sparkplug: device %s, tag %s: its alias %llu is another tag's; it takes the next "
					 "free one", d->conf->name, d->tags[t].conf->name, (unsigned long long)*a);
				uint64_t next = (*a + 1) & ((1ull << 53) - 1);
				*a = next ? next : 1;
			}
			/* Insertion keeps seen sorted (quadratic, in this rare case only). */
			size_t at = k;
			while (at && seen[at - 1] > *a) {
				seen[at] = seen[at - 1];
				at--;
			}
			seen[at] = *a;
			k++;
		}
	}
	free(seen);
	return 0;
}

int collect__spb_init(struct collector *c)
{
	const struct config *cfg = &c->b->cfg;
	bool any = false;
	for (unsigned i = 0; i < c->n_devices; i++) {
		struct cdevice *d = &c->devices[i];
		if (d->conf->format != MODBUS_FORMAT_SPARKPLUG)
			continue;
		struct cspb *p = calloc(1, sizeof *p);
		if (!p)
			return -FM_ENOMEM;
		d->spb = p;
		if (!(p->snap = calloc(d->conf->n_tags, sizeof *p->snap)) ||
		    !(p->pending = calloc(d->conf->n_tags, sizeof *p->pending)) ||
		    !(p->alias = calloc(d->conf->n_tags, sizeof *p->alias)))
			return -FM_ENOMEM;
		for (uint32_t t = 0; t < d->conf->n_tags; t++)
			p->alias[t] = spb_tag_alias(d->conf->name, d->tags[t].conf->name);
		const char *ns = cfg->sparkplug_namespace, *g = cfg->sparkplug_group_id, *e = cfg->sparkplug_edge_node_id;
		if (spb_edge_topic(p->dbirth, sizeof p->dbirth, ns, g, SPB_DBIRTH, e, d->conf->name) < 0 ||
		    spb_edge_topic(p->ddata, sizeof p->ddata, ns, g, SPB_DDATA, e, d->conf->name) < 0 ||
		    spb_edge_topic(p->ddeath, sizeof p->ddeath, ns, g, SPB_DDEATH, e, d->conf->name) < 0)
			return -FM_ENOMEM; /* cannot happen: the ids are bounded in config */
		any = true;
	}
	if (any && unique_aliases(c))
		return -FM_ENOMEM;
	if (any) {
		c->edge = (struct edge_port){ c, births, command, birth_of };
		broker_set_edge(c->b, &c->edge);
	}
	return 0;
}

void collect__spb_free(struct collector *c)
{
	if (c->b && c->b->edge == &c->edge)
		broker_set_edge(c->b, NULL);
	for (unsigned i = 0; c->devices && i < c->n_devices; i++) {
		struct cspb *p = c->devices[i].spb;
		if (!p)
			continue;
		free(p->snap);
		free(p->pending);
		free(p->alias);
		free(p);
	}
}
