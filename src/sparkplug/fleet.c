/* The fleet table: one allocation per entry, found through the hash map
 * (src/base/hmap.h) by kind and key. Entries are never removed: an edge node
 * that died stays, offline, until it is born again. */
#include "fleet.h"
#include "base/err.h"
#include "base/hmap.h"
#include <stdlib.h>
#include <string.h>

struct spb_fleet {
	struct hmap map;   /* of struct spb_fleet_entry, owned */
	uint32_t max;
	uint64_t seed;     /* per table: a peer's ids do not collide the same way twice */
	uint64_t untracked, malformed;
};

/* What a lookup compares: an entry's kind and key. */
struct spb_key {
	uint8_t kind;
	const char *key;
	size_t len;
};

static uint64_t spb__hash(uint64_t seed, uint8_t kind, const char *key, size_t len)
{
	return hmap_hash_bytes(seed ^ kind, key, len);
}

static uint64_t spb__entry_hash(const void *item, const void *ctx)
{
	const struct spb_fleet_entry *e = item;
	const struct spb_fleet *f = ctx;
	return spb__hash(f->seed, e->kind, e->key, strlen(e->key));
}

static bool spb__entry_eq(const void *item, const void *key)
{
	const struct spb_fleet_entry *e = item;
	const struct spb_key *k = key;
	return e->kind == k->kind && strlen(e->key) == k->len && memcmp(e->key, k->key, k->len) == 0;
}

struct spb_fleet *spb_fleet_new(uint32_t max)
{
	struct spb_fleet *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->max = max ? max : 1;
	f->seed = (uint64_t)(uintptr_t)f;
	return f;
}

void spb_fleet_free(struct spb_fleet *f)
{
	if (!f)
		return;
	size_t pos = 0;
	struct spb_fleet_entry *e;
	while ((e = hmap_next(&f->map, &pos)) != NULL)
		free(e);
	hmap_free(&f->map);
	free(f);
}

/* The entry of (kind, key), made when new; NULL when the key is too long,
 * the table full or memory short (counted as untracked). */
static struct spb_fleet_entry *spb__get(struct spb_fleet *f, uint8_t kind, const char *key, size_t len)
{
	if (len > SPB_FLEET_KEY_MAX) {
		f->untracked++;
		return NULL;
	}
	struct spb_key k = { kind, key, len };
	uint64_t h = spb__hash(f->seed, kind, key, len);
	struct spb_fleet_entry *e = hmap_find(&f->map, h, spb__entry_eq, &k);
	if (e)
		return e;
	if (f->map.count >= f->max || !(e = calloc(1, sizeof *e))) {
		f->untracked++;
		return NULL;
	}
	memcpy(e->key, key, len);
	e->kind = kind;
	if (hmap_add(&f->map, h, e, spb__entry_hash, f)) {
		free(e);
		f->untracked++;
		return NULL;
	}
	return e;
}

/* "group/edge" or "group/edge/device" into buf; its length. */
static size_t spb__key(const struct spb_topic *t, bool device, char *buf, size_t cap)
{
	size_t n = t->group_len + 1 + t->edge_len + (device ? 1 + t->device_len : 0);
	if (n >= cap)
		return n; /* too long: spb__get refuses it */
	memcpy(buf, t->group, t->group_len);
	buf[t->group_len] = '/';
	memcpy(buf + t->group_len + 1, t->edge, t->edge_len);
	if (device) {
		buf[t->group_len + 1 + t->edge_len] = '/';
		memcpy(buf + t->group_len + 2 + t->edge_len, t->device, t->device_len);
	}
	return n;
}

static void spb__set_online(struct spb_fleet_entry *e, bool online, uint64_t now_ms)
{
	if (e->online != online || !e->since_ms)
		e->since_ms = now_ms;
	e->online = online;
}

/* A node's NDEATH matched its birth: its devices go offline with it. */
static void spb__devices_offline(struct spb_fleet *f, const char *node, size_t len, uint64_t now_ms)
{
	size_t pos = 0;
	struct spb_fleet_entry *d;
	while ((d = hmap_next(&f->map, &pos)) != NULL) {
		if (d->kind == SPB_FLEET_DEVICE && d->online && strncmp(d->key, node, len) == 0 && d->key[len] == '/') {
			spb__set_online(d, false, now_ms);
			d->deaths++;
		}
	}
}

static enum spb_fleet_event spb__state(struct spb_fleet *f, const struct spb_topic *t, const uint8_t *p,
				       size_t len, uint64_t now_ms)
{
	struct spb_state st;
	if (len == 0)
		return SPB_FLEET_NOTHING; /* a retained STATE being cleared */
	if (spb_state_parse((const char *)p, len, &st)) {
		f->malformed++;
		return SPB_FLEET_MALFORMED;
	}
	struct spb_fleet_entry *h = spb__get(f, SPB_FLEET_HOST, t->host, t->host_len);
	if (!h)
		return SPB_FLEET_FULL;
	h->messages++;
	h->last_message_ms = now_ms;
	if (h->last_birth_ms && st.timestamp < h->state_timestamp) {
		h->stale_deaths++;
		return SPB_FLEET_NOTHING;
	}
	h->state_timestamp = st.timestamp;
	h->last_birth_ms = now_ms;
	if (st.online != h->online || !h->since_ms) {
		if (st.online)
			h->births++;
		else if (h->online)
			h->deaths++;
	}
	spb__set_online(h, st.online, now_ms);
	return SPB_FLEET_NOTHING;
}

/* The seq rule for a message of node n other than its NBIRTH and NDEATH. */
static bool spb__seq_gap(struct spb_fleet_entry *n, const struct spb_payload_info *info)
{
	if (!info->has_seq)
		return false;
	bool gap = n->has_seq && info->seq != (uint64_t)((n->last_seq + 1) & 0xff);
	if (gap)
		n->seq_gaps++;
	n->last_seq = (uint8_t)info->seq;
	n->has_seq = true;
	return gap;
}

enum spb_fleet_event spb_fleet_observe(struct spb_fleet *f, const struct spb_topic *t, const uint8_t *p,
				       size_t len, uint64_t now_ms)
{
	if (t->type == SPB_STATE)
		return spb__state(f, t, p, len, now_ms);
	/* Commands come from host applications: they say nothing of the node. */
	if (t->type == SPB_NCMD || t->type == SPB_DCMD)
		return SPB_FLEET_NOTHING;
	struct spb_payload_info info;
	if (spb_payload_scan(p, len, &info)) {
		f->malformed++;
		return SPB_FLEET_MALFORMED;
	}
	char key[SPB_FLEET_KEY_MAX + 2];
	size_t klen = spb__key(t, false, key, sizeof key);
	struct spb_fleet_entry *n = spb__get(f, SPB_FLEET_NODE, key, klen);
	if (!n)
		return SPB_FLEET_FULL;
	n->last_message_ms = now_ms;
	n->messages++;
	enum spb_fleet_event ev = SPB_FLEET_NOTHING;
	switch (t->type) {
	case SPB_NBIRTH:
		spb__set_online(n, true, now_ms);
		n->births++;
		n->last_birth_ms = now_ms;
		n->metrics = info.metrics;
		n->has_bdseq = info.has_bdseq;
		n->bdseq = info.bdseq;
		n->has_seq = info.has_seq;
		n->last_seq = (uint8_t)info.seq;
		return SPB_FLEET_NODE_BIRTH;
	case SPB_NDEATH:
		/* A birth without bdSeq cannot tell deaths apart: any one counts. */
		if (!n->online || (n->has_bdseq && (!info.has_bdseq || info.bdseq != n->bdseq))) {
			n->stale_deaths++;
			return SPB_FLEET_STALE_DEATH;
		}
		spb__set_online(n, false, now_ms);
		n->deaths++;
		n->has_seq = false;
		spb__devices_offline(f, key, klen, now_ms);
		return SPB_FLEET_NODE_DEATH;
	case SPB_NDATA:
		return spb__seq_gap(n, &info) ? SPB_FLEET_SEQ_GAP : SPB_FLEET_NOTHING;
	default:
		break;
	}
	/* DBIRTH, DDEATH, DDATA: the node's seq, then the device. */
	if (spb__seq_gap(n, &info))
		ev = SPB_FLEET_SEQ_GAP;
	klen = spb__key(t, true, key, sizeof key);
	struct spb_fleet_entry *d = spb__get(f, SPB_FLEET_DEVICE, key, klen);
	if (!d)
		return ev == SPB_FLEET_NOTHING ? SPB_FLEET_FULL : ev;
	d->last_message_ms = now_ms;
	d->messages++;
	if (t->type == SPB_DBIRTH) {
		spb__set_online(d, true, now_ms);
		d->births++;
		d->last_birth_ms = now_ms;
		d->metrics = info.metrics;
	} else if (t->type == SPB_DDEATH && d->online) {
		spb__set_online(d, false, now_ms);
		d->deaths++;
	}
	return ev;
}

void spb_fleet_malformed_topic(struct spb_fleet *f)
{
	f->malformed++;
}

void spb_fleet_totals(const struct spb_fleet *f, struct spb_fleet_totals *out)
{
	memset(out, 0, sizeof *out);
	out->entries = f->map.count;
	out->untracked = f->untracked;
	out->malformed = f->malformed;
	size_t pos = 0;
	const struct spb_fleet_entry *e;
	while ((e = hmap_next(&f->map, &pos)) != NULL) {
		switch (e->kind) {
		case SPB_FLEET_NODE:
			out->nodes++;
			out->nodes_online += e->online;
			out->nodes_offline += !e->online && e->births;
			out->seq_gaps += e->seq_gaps;
			out->stale_deaths += e->stale_deaths;
			out->node_deaths += e->deaths;
			break;
		case SPB_FLEET_DEVICE:
			out->devices++;
			out->devices_online += e->online;
			break;
		default:
			out->hosts++;
			out->hosts_online += e->online;
			break;
		}
	}
}

static int spb__cmp(const void *a, const void *b)
{
	const struct spb_fleet_entry *x = a, *y = b;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return strcmp(x->key, y->key);
}

int spb_fleet_list(const struct spb_fleet *f, struct spb_fleet_entry **out, uint32_t *n)
{
	*out = NULL;
	*n = 0;
	if (!f->map.count)
		return 0;
	struct spb_fleet_entry *copy = malloc((size_t)f->map.count * sizeof *copy);
	if (!copy)
		return -FM_ENOMEM;
	size_t pos = 0;
	uint32_t i = 0;
	const struct spb_fleet_entry *e;
	while ((e = hmap_next(&f->map, &pos)) != NULL)
		copy[i++] = *e;
	qsort(copy, i, sizeof *copy, spb__cmp);
	*out = copy;
	*n = i;
	return 0;
}
