/* The writer's side of the seam: the transactions of one group, as the
 * broker submitted them (records with pointers), become one record batch of
 * values (record.h), which store_apply applies. */
#include "store_internal.h"
#include "record.h"
#include "../base/err.h"
#include "../base/hmap.h"
#include "../session/session.h"
#include <stdlib.h>
#include <string.h>

/* The queue entry (sid, seq) an addition is for, as a key of base's hash map. */
struct entry_key {
	uint64_t sid, seq;
};

static uint64_t entry_hash_of(uint64_t sid, uint64_t seq) { return hmap_mix64(hmap_mix64(sid) + seq); }

static uint64_t entry_hash(const void *item, const void *ctx)
{
	const struct store_op *op = item;
	(void)ctx;
	return entry_hash_of(op->sid, op->seq);
}

static bool entry_is(const void *item, const void *key)
{
	const struct store_op *op = item;
	const struct entry_key *k = key;
	return op->sid == k->sid && op->seq == k->seq;
}

/* A queue entry added and removed within one group (delivered and
 * acknowledged while the previous group was being committed) never needs to
 * reach the disk: both records are dropped, and the body is not written
 * unless something else holds it. At high rates this removes most writes.
 * The group's additions are found by entry in a map of their records. */
static void cancel_delivered(struct store_txn *list)
{
	uint32_t adds = 0;
	for (struct store_txn *t = list; t; t = t->next)
		for (uint32_t i = 0; i < t->n_ops; i++)
			adds += t->ops[i].type == ST_QUEUE_ADD;
	if (!adds)
		return;
	struct hmap added = { 0 };
	if (hmap_reserve(&added, adds, entry_hash, NULL))
		return; /* an optimisation only */
	for (struct store_txn *t = list; t; t = t->next) {
		for (uint32_t i = 0; i < t->n_ops; i++) {
			struct store_op *op = &t->ops[i];
			if (op->type != ST_QUEUE_ADD && op->type != ST_QUEUE_DEL && op->type != ST_QUEUE_STATE)
				continue;
			uint64_t h = entry_hash_of(op->sid, op->seq);
			struct store_op *add = hmap_find(&added, h, entry_is, &(struct entry_key){ op->sid, op->seq });
			if (op->type == ST_QUEUE_ADD) {
				/* The latest addition of the entry is the one a removal cancels. */
				if (add)
					hmap_remove(&added, h, add, entry_hash, NULL);
				/* Out of memory (a removal may have shrunk the table), the
				 * entry is only not cancelled. */
				hmap_add(&added, h, op, entry_hash, NULL);
			} else if (add && add->type == ST_QUEUE_ADD) {
				if (op->type == ST_QUEUE_DEL)
					add->type = ST_CANCELLED;
				else
					add->state = op->state; /* inserted in its latest state */
				op->type = ST_CANCELLED;
			}
		}
	}
	hmap_free(&added);
}

/* Ids of the bodies already in the batch. */
struct body_set {
	uint64_t *id; /* 0: empty */
	uint32_t mask;
};

/* Whether id was in the set; puts it there. */
static bool body_seen(struct body_set *b, uint64_t id)
{
	uint64_t h = id * 0x9E3779B97F4A7C15ull;
	uint32_t i = (uint32_t)(h >> 32) & b->mask;
	while (b->id[i] && b->id[i] != id)
		i = (i + 1) & b->mask;
	bool seen = b->id[i] == id;
	b->id[i] = id;
	return seen;
}

/* The body of m, once per batch, before the first record naming it. */
static int add_body(struct buf *out, struct body_set *bodies, const struct msg *m)
{
	uint64_t id = atomic_load(&m->id);
	if (body_seen(bodies, id))
		return 0;
	struct record r = {
		.type = REC_BODY, .id = id, .qos = m->qos, .retain = m->retain, .expiry_at = m->expiry_at,
		.origin = m->origin_sid,
		.topic = { (const uint8_t *)msg_topic(m), m->topic_len },
		.props = { msg_props(m), m->props_len },
		.payload = { msg_payload(m), m->payload_len },
	};
	return rec_append(out, &r);
}

static struct rec_bytes text_of(const char *s)
{
	return (struct rec_bytes){ (const uint8_t *)s, s ? (uint32_t)strlen(s) : 0 };
}

/* The record of one operation; 0 when it has none (cancelled, or a read). */
static int to_record(const struct store_op *op, struct record *r)
{
	memset(r, 0, sizeof *r);
	r->sid = op->sid;
	r->seq = op->seq;
	r->id = op->msg ? atomic_load(&op->msg->id) : 0;
	switch (op->type) {
	case ST_QUEUE_ADD:
		r->type = REC_QUEUE_ADD;
		r->qos = op->qos;
		r->flags = op->flags & QE_RETAIN;
		r->state = op->state;
		r->queued_s = op->queued_s;
		r->sub_ids = (struct rec_bytes){ (const uint8_t *)(op->n_sub_ids > 1 ? op->sub_ids : &op->sub_id),
						 op->n_sub_ids * (uint32_t)sizeof(uint32_t) };
		return 1;
	case ST_QUEUE_DEL:
		r->type = REC_QUEUE_DEL;
		return 1;
	case ST_QUEUE_STATE:
		r->type = REC_QUEUE_STATE;
		r->state = op->state;
		return 1;
	case ST_RX2_ADD:
	case ST_RX2_DEL:
		r->type = op->type == ST_RX2_ADD ? REC_RX2_ADD : REC_RX2_DEL;
		r->pid = op->pid;
		return 1;
	case ST_SESSION_PUT:
		r->type = REC_SESSION_PUT;
		r->text = text_of(op->text);
		r->expiry_interval = op->expiry_interval;
		r->expires_at = op->expires_at;
		r->version = op->qos;
		r->will_delay = op->will_delay;
		r->will_at = op->will_at;
		r->has_user = op->will_user != NULL;
		r->user = text_of(op->will_user);
		return 1;
	case ST_SESSION_DEL:
		r->type = REC_SESSION_DEL;
		return 1;
	case ST_SUB_PUT:
		r->type = REC_SUB_PUT;
		r->text = text_of(op->text);
		r->flags = op->flags;
		r->sub_id = op->sub_id;
		return 1;
	case ST_SUB_DEL:
		r->type = REC_SUB_DEL;
		r->text = text_of(op->text);
		return 1;
	case ST_RETAIN_PUT:
		r->type = REC_RETAIN_PUT;
		r->text = (struct rec_bytes){ (const uint8_t *)msg_topic(op->msg), op->msg->topic_len };
		return 1;
	case ST_RETAIN_DEL:
		r->type = REC_RETAIN_DEL;
		r->text = text_of(op->text);
		return 1;
	case ST_SPOOL_ADD:
	case ST_SPOOL_DEL:
		r->type = op->type == ST_SPOOL_ADD ? REC_SPOOL_ADD : REC_SPOOL_DEL;
		r->text = text_of(op->bridge);
		r->queued_s = op->queued_s;
		return 1;
	}
	return 0;
}

/* Whether the record names a body that the apply reads from its batch. A
 * queue entry's delete or state change holds its message (the entry was not
 * on disk when the broker made it) but names no body: writing the body
 * again for it, in a later batch than its insert, doubled the journal of a
 * steady fan-in. */
static bool names_body(const struct record *r)
{
	switch (r->type) {
	case REC_QUEUE_ADD:
	case REC_RETAIN_PUT:
	case REC_SPOOL_ADD:
		return true;
	case REC_SESSION_PUT:
		return r->id != 0; /* its will */
	default:
		return false;
	}
}

int store__encode_group(struct store_txn *list, struct buf *out)
{
	cancel_delivered(list);
	uint32_t msgs = 0;
	for (struct store_txn *t = list; t; t = t->next)
		for (uint32_t i = 0; i < t->n_ops; i++)
			msgs += t->ops[i].msg != NULL;
	uint32_t cap = 16;
	while (cap < msgs * 2)
		cap *= 2;
	struct body_set bodies = { calloc(cap, sizeof(uint64_t)), cap - 1 };
	int rc = bodies.id && !rec_batch_start(out) ? 0 : -FM_ENOMEM;
	for (struct store_txn *t = list; t && !rc; t = t->next) {
		for (uint32_t i = 0; i < t->n_ops && !rc; i++) {
			const struct store_op *op = &t->ops[i];
			struct record r;
			if (!to_record(op, &r))
				continue;
			if (op->msg && names_body(&r) && (rc = add_body(out, &bodies, op->msg)))
				break;
			rc = rec_append(out, &r);
		}
	}
	free(bodies.id);
	return rc;
}
