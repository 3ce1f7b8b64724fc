/* The group's batch (store/batch.c, store__encode_group): a queue entry
 * added and removed within one group reaches neither the batch nor, when
 * nothing else holds it, its body; a state change before the removal is
 * folded into the addition; everything else is kept, in order. A body
 * travels only with the records that name it. */
#include "store/store_internal.h"
#include "store/record.h"
#include "broker/store_txn.h"
#include "session/session.h"
#include "base/buf.h"
#include "check.h"
#include <stdatomic.h>

static struct msg *body(uint64_t id)
{
	struct msg *m = msg_new("t", 1, NULL, 0, (const uint8_t *)"p", 1, 1, false);
	atomic_store(&m->id, id);
	return m;
}

static void queue_op(struct store_txn *t, uint8_t type, uint64_t sid, uint64_t seq, uint8_t state, uint64_t body_id)
{
	struct store_op *op = broker__txn_add(t, type);
	op->sid = sid;
	op->seq = seq;
	op->state = state;
	if (body_id)
		op->msg = body(body_id);
}

/* What a batch holds, record by record. */
struct seen {
	uint32_t n_bodies, n_adds, n_dels, n_states;
	uint64_t bodies[2048];
	struct { uint64_t sid, seq; uint8_t state; } adds[2048], dels[2048];
};

static void read_batch(const struct buf *b, struct seen *s)
{
	memset(s, 0, sizeof *s);
	struct rec_reader rd;
	ASSERT_EQ(rec_reader_init(&rd, b->p, b->len), 0);
	struct record r;
	int rc;
	while ((rc = rec_next(&rd, &r)) > 0) {
		if (r.type == REC_BODY && s->n_bodies < 2048)
			s->bodies[s->n_bodies++] = r.id;
		else if (r.type == REC_QUEUE_ADD && s->n_adds < 2048)
			s->adds[s->n_adds].sid = r.sid, s->adds[s->n_adds].seq = r.seq,
			s->adds[s->n_adds++].state = r.state;
		else if (r.type == REC_QUEUE_DEL && s->n_dels < 2048)
			s->dels[s->n_dels].sid = r.sid, s->dels[s->n_dels++].seq = r.seq;
		else if (r.type == REC_QUEUE_STATE)
			s->n_states++;
	}
	ASSERT_EQ(rc, 0);
}

static void test_cancelled_within_a_group(void)
{
	struct store_txn *t1 = broker__txn_new(0), *t2 = broker__txn_new(1);
	t1->next = t2;
	queue_op(t1, ST_QUEUE_ADD, 1, 1, 0, 101); /* delivered and acknowledged: gone */
	queue_op(t1, ST_QUEUE_ADD, 1, 2, 0, 102); /* sent: added in its latest state */
	queue_op(t1, ST_QUEUE_ADD, 2, 1, 0, 103); /* kept as it is */
	queue_op(t2, ST_QUEUE_DEL, 1, 1, 0, 0);
	queue_op(t2, ST_QUEUE_STATE, 1, 2, 3, 0);
	queue_op(t2, ST_QUEUE_DEL, 2, 5, 0, 0);   /* added in an earlier group: stays */
	queue_op(t2, ST_QUEUE_STATE, 3, 1, 2, 0); /* likewise */
	struct buf out = { 0 };
	ASSERT_EQ(store__encode_group(t1, &out), 0);
	struct seen *s = calloc(1, sizeof *s);
	read_batch(&out, s);
	ASSERT_EQ(s->n_bodies, 2);
	ASSERT_EQ(s->bodies[0], 102);
	ASSERT_EQ(s->bodies[1], 103);
	ASSERT_EQ(s->n_adds, 2);
	ASSERT_EQ(s->adds[0].sid, 1);
	ASSERT_EQ(s->adds[0].seq, 2);
	ASSERT_EQ(s->adds[0].state, 3);
	ASSERT_EQ(s->adds[1].sid, 2);
	ASSERT_EQ(s->adds[1].state, 0);
	ASSERT_EQ(s->n_dels, 1);
	ASSERT_EQ(s->dels[0].sid, 2);
	ASSERT_EQ(s->dels[0].seq, 5);
	ASSERT_EQ(s->n_states, 1);
	free(s);
	buf_free(&out);
	broker__txn_free(t1);
	broker__txn_free(t2);
}

/* Many entries over many transactions (the map grows past its first
 * size): every second one is removed in a later transaction of the group,
 * and the same (sid, seq) from another session is not confused with it. */
static void test_many_entries(void)
{
	enum { N = 1000 };
	struct store_txn *head = NULL, **tail = &head;
	for (int k = 0; k < 10; k++) {
		struct store_txn *t = broker__txn_new(k % 2);
		for (uint64_t i = (uint64_t)k * N / 10; i < (uint64_t)(k + 1) * N / 10; i++)
			queue_op(t, ST_QUEUE_ADD, 7, i, 0, 1000 + i);
		*tail = t;
		tail = &t->next;
	}
	struct store_txn *dels = broker__txn_new(0);
	for (uint64_t i = 0; i < N; i += 2) {
		queue_op(dels, ST_QUEUE_DEL, 7, i, 0, 0);
		queue_op(dels, ST_QUEUE_DEL, 8, i, 0, 0); /* another session's entry, not in the group */
	}
	*tail = dels;
	struct buf out = { 0 };
	ASSERT_EQ(store__encode_group(head, &out), 0);
	struct seen *s = calloc(1, sizeof *s);
	read_batch(&out, s);
	ASSERT_EQ(s->n_adds, N / 2);
	ASSERT_EQ(s->n_bodies, N / 2);
	ASSERT_EQ(s->n_dels, N / 2);
	bool odd = true;
	for (uint32_t i = 0; i < s->n_adds; i++)
		odd &= s->adds[i].sid == 7 && s->adds[i].seq % 2 == 1 && s->bodies[i] == 1000 + s->adds[i].seq;
	for (uint32_t i = 0; i < s->n_dels; i++)
		odd &= s->dels[i].sid == 8;
	ASSERT_TRUE(odd);
	free(s);
	buf_free(&out);
	for (struct store_txn *t = head, *next; t; t = next) {
		next = t->next;
		broker__txn_free(t);
	}
}

/* A steady fan-in: the subscriber's acknowledgement reaches the writer in a
 * later group than the publisher's insert. The removal and the state change
 * hold the message (the entry was not on disk when the broker made them)
 * but name no body: the body goes once, with the insert. */
static void test_removal_in_a_later_group_writes_no_body(void)
{
	struct store_txn *g1 = broker__txn_new(0), *g2 = broker__txn_new(1);
	queue_op(g1, ST_QUEUE_ADD, 1, 1, 0, 201);
	struct msg *m = g1->ops[0].msg;
	queue_op(g2, ST_QUEUE_STATE, 1, 1, 3, 0);
	queue_op(g2, ST_QUEUE_DEL, 1, 1, 0, 0);
	g2->ops[0].msg = msg_ref(m);
	g2->ops[1].msg = msg_ref(m);
	struct buf b1 = { 0 }, b2 = { 0 };
	struct seen *s = calloc(1, sizeof *s);
	ASSERT_EQ(store__encode_group(g1, &b1), 0);
	read_batch(&b1, s);
	ASSERT_EQ(s->n_bodies, 1);
	ASSERT_EQ(s->n_adds, 1);
	ASSERT_EQ(store__encode_group(g2, &b2), 0);
	read_batch(&b2, s);
	ASSERT_EQ(s->n_bodies, 0);
	ASSERT_EQ(s->n_states, 1);
	ASSERT_EQ(s->n_dels, 1);
	free(s);
	buf_free(&b1);
	buf_free(&b2);
	broker__txn_free(g1);
	broker__txn_free(g2);
}

/* Every record that names a body has it before it, once per batch: queue
 * additions, a retained put, a spool addition, a session's will. */
static void test_bodies_with_the_records_that_name_them(void)
{
	struct store_txn *t = broker__txn_new(0);
	queue_op(t, ST_QUEUE_ADD, 1, 1, 0, 301);
	struct msg *m = t->ops[0].msg;
	queue_op(t, ST_QUEUE_ADD, 2, 1, 0, 0);
	t->ops[1].msg = msg_ref(m);
	struct store_op *op = broker__txn_add(t, ST_RETAIN_PUT);
	op->seq = 3;
	op->msg = body(302);
	op = broker__txn_add(t, ST_SPOOL_ADD);
	op->bridge = "cloud";
	op->seq = 1;
	op->msg = body(303);
	op = broker__txn_add(t, ST_SESSION_PUT);
	op->sid = 3;
	op->text = strdup("gw-1");
	op->msg = body(304); /* its will */
	op = broker__txn_add(t, ST_SESSION_PUT);
	op->sid = 4;
	op->text = strdup("gw-2");
	struct buf out = { 0 };
	ASSERT_EQ(store__encode_group(t, &out), 0);
	struct rec_reader rd;
	struct record r;
	char types[16] = { 0 };
	uint64_t ids[16] = { 0 };
	size_t n = 0;
	ASSERT_EQ(rec_reader_init(&rd, out.p, out.len), 0);
	while (n < 15 && rec_next(&rd, &r) == 1) {
		ids[n] = r.id;
		types[n++] = (char)('a' + r.type - 1);
	}
	/* a body, b queue add, k retained put, m spool add, g session put */
	ASSERT_STRN(types, n, "abbakamagg");
	ASSERT_EQ(ids[0], 301);
	ASSERT_EQ(ids[3], 302);
	ASSERT_EQ(ids[5], 303);
	ASSERT_EQ(ids[7], 304);
	ASSERT_EQ(ids[9], 0); /* no will */
	buf_free(&out);
	broker__txn_free(t);
}

int main(void)
{
	RUN(test_removal_in_a_later_group_writes_no_body);
	RUN(test_bodies_with_the_records_that_name_them);
	RUN(test_cancelled_within_a_group);
	RUN(test_many_entries);
	return CHECK_DONE();
}
