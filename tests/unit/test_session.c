/* Unit tests for src/session: queue limits, acknowledgement flows, packet ids
 * from sequence numbers, incoming QoS 2 ids, the subscription list, the entry
 * ring and reference counts (leaks are caught by ASan's leak checker). */
#include "session/session.h"
#include "base/err.h"
#include "mqtt/mqtt.h"
#include "check.h"
#include <stdint.h>

static const struct session_limits no_limits = { 0, 0, false };

/* A message on `topic` with a payload of n bytes. */
static struct msg *mkmsg(const char *topic, uint32_t n)
{
	static const uint8_t payload[4096];
	struct msg *m = msg_new(topic, (uint16_t)strlen(topic), NULL, 0, payload, n, 1, false);
	ASSERT_TRUE(m != NULL);
	return m;
}

static unsigned refs(const struct msg *m) { return atomic_load(&((struct msg *)m)->refs); }

/* session_enqueue with a scratch ring for dropped entries, which are checked
 * against want_dropped (oldest first) and released. */
static int enq_check(struct session *s, struct msg *m, uint8_t qos, uint8_t flags, const uint32_t *ids,
		     uint16_t n_ids, const struct session_limits *lim, struct msg *const *want_dropped,
		     uint32_t n_dropped)
{
	struct qring dropped = { 0 };
	uint64_t seq = 0, next = s->next_seq;
	int rc = session_enqueue(s, m, qos, flags, ids, n_ids, lim, &dropped, &seq);
	if (rc >= 0 && (seq != next || s->next_seq != next + 1))
		CHECK_FAIL("sequence %llu, next %llu: expected %llu", (unsigned long long)seq,
			   (unsigned long long)s->next_seq, (unsigned long long)next);
	if (rc < 0 && s->next_seq != next)
		CHECK_FAIL("a refused message used sequence %llu", (unsigned long long)next);
	if (dropped.count != n_dropped)
		CHECK_FAIL("%u entries dropped, expected %u", dropped.count, n_dropped);
	for (uint32_t i = 0; i < dropped.count && i < n_dropped; i++)
		if (qring_at(&dropped, i)->msg != want_dropped[i])
			CHECK_FAIL("dropped entry %u is not the expected message", i);
	qring_free(&dropped);
	return rc;
}
static int enq(struct session *s, struct msg *m, uint8_t qos, uint8_t flags, const uint32_t *ids, uint16_t n_ids,
	       const struct session_limits *lim)
{
	return enq_check(s, m, qos, flags, ids, n_ids, lim, NULL, 0);
}

/* session_on_ack, releasing what it hands back when it removed the entry. */
static int ack(struct session *s, uint16_t pid, uint8_t type)
{
	struct qentry done = { 0 };
	uint32_t before = s->inflight.count;
	int rc = session_on_ack(s, pid, type, &done);
	if (rc == 0 && qentry_pid(&done) != pid)
		CHECK_FAIL("ack %u handed back pid %u", pid, qentry_pid(&done));
	if (rc == 0 && s->inflight.count + 1 == before)
		qentry_release(&done);
	return rc;
}

static struct session *mksession(void)
{
	struct session *s = session_new("client", 6, 1);
	ASSERT_TRUE(s != NULL);
	return s;
}

/* Moves the head of the queue in flight, as the delivery pump does; returns
 * the packet id it got. */
static uint16_t send_head(struct session *s)
{
	struct qentry e;
	ASSERT_FALSE(session_pid_in_use(s, qring_at(&s->queue, 0)->seq));
	qring_remove(&s->queue, 0, &e);
	s->queued_bytes -= e.bytes;
	e.state = e.qos == 1 ? QE_WAIT_PUBACK : QE_WAIT_PUBREC;
	ASSERT_EQ(qring_push(&s->inflight, &e), 0);
	return qentry_pid(&e);
}

/* Is the queue exactly msgs[0..n) in order? */
static bool queue_is(struct session *s, struct msg *const *msgs, uint32_t n)
{
	if (s->queue.count != n)
		return false;
	for (uint32_t i = 0; i < n; i++)
		if (qring_at(&s->queue, i)->msg != msgs[i])
			return false;
	return true;
}

static void test_new_and_refs(void)
{
	struct session *s = session_new("client-1xyz", 8, 42);
	ASSERT_TRUE(s != NULL);
	ASSERT_STRN(s->client_id, strlen(s->client_id), "client-1");
	ASSERT_EQ(s->client_id_len, 8);
	ASSERT_EQ(s->sid, 42);
	ASSERT_EQ(s->worker, -1);
	ASSERT_TRUE(s->client == NULL);
	ASSERT_EQ(s->next_seq, 1);
	ASSERT_EQ(s->queue.count, 0);
	ASSERT_EQ(s->inflight.count, 0);
	ASSERT_EQ(atomic_load(&s->refs), 1);
	ASSERT_TRUE(session_ref(s) == s);
	ASSERT_EQ(atomic_load(&s->refs), 2);
	session_unref(s);
	ASSERT_EQ(atomic_load(&s->refs), 1);
	session_unref(s);
	session_unref(NULL); /* harmless */
	struct session *e = session_new("", 0, 2);
	ASSERT_TRUE(e != NULL);
	ASSERT_EQ(e->client_id[0], 0);
	session_unref(e);
}

static void test_msg(void)
{
	static const uint8_t props[] = { 0x01, 1 };
	struct msg *m = msg_new("a/b", 3, props, 2, (const uint8_t *)"hey", 3, 2, true);
	ASSERT_TRUE(m != NULL);
	ASSERT_EQ(refs(m), 1);
	ASSERT_STRN(msg_topic(m), m->topic_len, "a/b");
	ASSERT_MEM(msg_props(m), props, 2);
	ASSERT_STRN(msg_payload(m), m->payload_len, "hey");
	ASSERT_EQ(m->qos, 2);
	ASSERT_TRUE(m->retain);
	ASSERT_FALSE(msg_expired(m, 123));
	m->expiry_at = 100;
	ASSERT_FALSE(msg_expired(m, 99));
	ASSERT_TRUE(msg_expired(m, 100));
	ASSERT_TRUE(msg_ref(m) == m);
	ASSERT_EQ(refs(m), 2);
	msg_unref(m);
	msg_unref(m);
	msg_unref(NULL);
}

static void test_enqueue_unlimited(void)
{
	struct session *s = mksession();
	struct msg *m[3] = { mkmsg("a", 1), mkmsg("b", 20), mkmsg("c", 0) };
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(enq(s, m[i], (uint8_t)i, QE_RETAIN, NULL, 0, &no_limits), 0);
	ASSERT_TRUE(queue_is(s, m, 3));
	ASSERT_EQ(s->queued_bytes, 21);
	for (uint32_t i = 0; i < 3; i++) {
		struct qentry *e = qring_at(&s->queue, i);
		ASSERT_EQ(e->qos, i);
		ASSERT_EQ(e->flags, QE_RETAIN);
		ASSERT_EQ(e->state, QE_QUEUED);
		ASSERT_EQ(e->n_sub_ids, 0);
		ASSERT_EQ(refs(m[i]), 2); /* the queue holds its own reference */
	}
	/* the same message may be queued twice */
	ASSERT_EQ(enq(s, m[0], 1, 0, NULL, 0, &no_limits), 0);
	ASSERT_EQ(refs(m[0]), 3);
	session_unref(s);
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(refs(m[i]), 1);
		msg_unref(m[i]);
	}
}

static void test_enqueue_max_messages(void)
{
	struct msg *m[5];
	for (int i = 0; i < 5; i++)
		m[i] = mkmsg("t", 10);

	/* drop_oldest keeps the newest */
	struct session *s = mksession();
	struct session_limits lim = { .max_messages = 3 };
	ASSERT_EQ(enq(s, m[0], 1, 0, NULL, 0, &lim), 0);
	ASSERT_EQ(enq(s, m[1], 1, 0, NULL, 0, &lim), 0);
	ASSERT_EQ(enq(s, m[2], 1, 0, NULL, 0, &lim), 0);
	ASSERT_EQ(enq_check(s, m[3], 1, 0, NULL, 0, &lim, &m[0], 1), 1);
	ASSERT_EQ(enq_check(s, m[4], 1, 0, NULL, 0, &lim, &m[1], 1), 1);
	ASSERT_TRUE(queue_is(s, m + 2, 3));
	ASSERT_EQ(s->queued_bytes, 30);
	ASSERT_EQ(refs(m[0]), 1); /* dropped entries give their reference back */
	ASSERT_EQ(refs(m[1]), 1);
	ASSERT_EQ(refs(m[4]), 2);
	session_unref(s);

	/* reject_new keeps the oldest */
	s = mksession();
	lim.reject_new = true;
	ASSERT_EQ(enq(s, m[0], 1, 0, NULL, 0, &lim), 0);
	ASSERT_EQ(enq(s, m[1], 1, 0, NULL, 0, &lim), 0);
	ASSERT_EQ(enq(s, m[2], 1, 0, NULL, 0, &lim), 0);
	ASSERT_EQ(enq(s, m[3], 1, 0, NULL, 0, &lim), -FM_ELIMIT);
	ASSERT_EQ(enq(s, m[4], 1, 0, NULL, 0, &lim), -FM_ELIMIT);
	ASSERT_TRUE(queue_is(s, m, 3));
	ASSERT_EQ(s->queued_bytes, 30);
	ASSERT_EQ(refs(m[3]), 1); /* a refused message is not referenced */
	/* in-flight messages do not count against the queue limit */
	send_head(s);
	ASSERT_EQ(enq(s, m[3], 1, 0, NULL, 0, &lim), 0);
	ASSERT_EQ(s->queue.count, 3);
	ASSERT_EQ(s->inflight.count, 1);
	session_unref(s);
	for (int i = 0; i < 5; i++) {
		ASSERT_EQ(refs(m[i]), 1);
		msg_unref(m[i]);
	}
}

static void test_enqueue_max_bytes(void)
{
	struct msg *a = mkmsg("a", 10), *b = mkmsg("b", 10), *c = mkmsg("c", 10), *big = mkmsg("d", 25);
	struct session_limits lim = { .max_bytes = 25 };
	struct session *s = mksession();
	ASSERT_EQ(enq(s, a, 1, 0, NULL, 0, &lim), 0);
	ASSERT_EQ(enq(s, b, 1, 0, NULL, 0, &lim), 0);
	ASSERT_EQ(s->queued_bytes, 20);
	ASSERT_EQ(enq_check(s, c, 1, 0, NULL, 0, &lim, &a, 1), 1);
	ASSERT_TRUE(queue_is(s, (struct msg *[]){ b, c }, 2));
	ASSERT_EQ(s->queued_bytes, 20);
	/* exactly the limit fits, after dropping as many as needed */
	ASSERT_EQ(enq_check(s, big, 1, 0, NULL, 0, &lim, (struct msg *[]){ b, c }, 2), 1);
	ASSERT_TRUE(queue_is(s, &big, 1));
	ASSERT_EQ(s->queued_bytes, 25);
	session_unref(s);

	s = mksession();
	lim.reject_new = true;
	ASSERT_EQ(enq(s, a, 1, 0, NULL, 0, &lim), 0);
	ASSERT_EQ(enq(s, b, 1, 0, NULL, 0, &lim), 0);
	ASSERT_EQ(enq(s, c, 1, 0, NULL, 0, &lim), -FM_ELIMIT);
	ASSERT_TRUE(queue_is(s, (struct msg *[]){ a, b }, 2));
	ASSERT_EQ(s->queued_bytes, 20);
	session_unref(s);

	/* both limits at once: whichever is hit first */
	s = mksession();
	lim = (struct session_limits){ .max_messages = 2, .max_bytes = 100 };
	ASSERT_EQ(enq(s, a, 1, 0, NULL, 0, &lim), 0);
	ASSERT_EQ(enq(s, b, 1, 0, NULL, 0, &lim), 0);
	ASSERT_EQ(enq_check(s, c, 1, 0, NULL, 0, &lim, &a, 1), 1);
	ASSERT_TRUE(queue_is(s, (struct msg *[]){ b, c }, 2));
	session_unref(s);

	struct msg *all[] = { a, b, c, big };
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(refs(all[i]), 1);
		msg_unref(all[i]);
	}
}

/* A message larger than max_bytes can never fit: it is refused without
 * emptying the queue for nothing, whatever the overflow policy. */
static void test_enqueue_too_big(void)
{
	struct msg *a = mkmsg("a", 10), *b = mkmsg("b", 10), *huge = mkmsg("h", 30);
	for (int reject = 0; reject <= 1; reject++) {
		struct session_limits lim = { .max_bytes = 25, .reject_new = reject };
		struct session *s = mksession();
		ASSERT_EQ(enq(s, a, 1, 0, NULL, 0, &lim), 0);
		ASSERT_EQ(enq(s, b, 1, 0, NULL, 0, &lim), 0);
		ASSERT_EQ(enq(s, huge, 1, 0, NULL, 0, &lim), -FM_ELIMIT);
		ASSERT_TRUE(queue_is(s, (struct msg *[]){ a, b }, 2));
		ASSERT_EQ(s->queued_bytes, 20);
		ASSERT_EQ(refs(huge), 1);
		session_unref(s);
		/* and into an empty queue */
		s = mksession();
		ASSERT_EQ(enq(s, huge, 1, 0, NULL, 0, &lim), -FM_ELIMIT);
		ASSERT_EQ(s->queue.count, 0);
		session_unref(s);
	}
	msg_unref(a);
	msg_unref(b);
	msg_unref(huge);
}

static void test_enqueue_sub_ids(void)
{
	struct session *s = mksession();
	struct msg *m = mkmsg("t", 1);
	uint32_t ids[3] = { 7, 300, 268435455 };
	ASSERT_EQ(enq(s, m, 1, 0, ids, 1, &no_limits), 0);
	ASSERT_EQ(enq(s, m, 1, QE_SHARED, ids, 3, &no_limits), 0);
	ids[0] = ids[1] = ids[2] = 0; /* the session keeps copies */
	struct qentry *one = qring_at(&s->queue, 0), *three = qring_at(&s->queue, 1);
	ASSERT_EQ(one->n_sub_ids, 1);
	ASSERT_EQ(qentry_sub_ids(one)[0], 7);
	ASSERT_EQ(three->n_sub_ids, 3);
	ASSERT_EQ(three->flags, QE_SHARED);
	ASSERT_EQ(qentry_sub_ids(three)[0], 7);
	ASSERT_EQ(qentry_sub_ids(three)[1], 300);
	ASSERT_EQ(qentry_sub_ids(three)[2], 268435455);
	/* dropping an entry with an id array frees it (ASan checks) */
	struct session_limits lim = { .max_messages = 2 };
	ASSERT_EQ(enq_check(s, m, 1, 0, NULL, 0, &lim, &m, 1), 1);
	ASSERT_EQ(enq_check(s, m, 1, 0, NULL, 0, &lim, &m, 1), 1);
	ASSERT_EQ(qring_at(&s->queue, 0)->n_sub_ids, 0);
	ASSERT_EQ(enq(s, m, 1, 0, (uint32_t[]){ 1, 2 }, 2, &no_limits), 0);
	session_unref(s);
	ASSERT_EQ(refs(m), 1);
	msg_unref(m);
}

static void test_ack_qos1(void)
{
	struct session *s = mksession();
	struct msg *m[3] = { mkmsg("a", 1), mkmsg("b", 1), mkmsg("c", 1) };
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(enq(s, m[i], 1, 0, NULL, 0, &no_limits), 0);
	/* ids follow sequence numbers: 1, 2, 3 -> 2, 3, 4 */
	ASSERT_EQ(send_head(s), 2);
	ASSERT_EQ(send_head(s), 3);
	ASSERT_EQ(send_head(s), 4);
	ASSERT_EQ(s->queue.count, 0);
	ASSERT_EQ(s->queued_bytes, 0);
	ASSERT_EQ(s->inflight.count, 3);
	/* wrong-state acks leave the entry alone */
	ASSERT_EQ(ack(s, 3, MQTT_PUBREC), -FM_ENOENT);
	ASSERT_EQ(ack(s, 3, MQTT_PUBCOMP), -FM_ENOENT);
	ASSERT_EQ(s->inflight.count, 3);
	ASSERT_EQ(qring_at(&s->inflight, 1)->state, QE_WAIT_PUBACK);
	/* PUBACK removes and hands the entry back, keeping the order of the others */
	struct qentry done;
	ASSERT_EQ(session_on_ack(s, 3, MQTT_PUBACK, &done), 0);
	ASSERT_TRUE(done.msg == m[1]);
	ASSERT_EQ(done.seq, 2);
	ASSERT_EQ(refs(m[1]), 2); /* the caller now owns the entry's reference */
	qentry_release(&done);
	ASSERT_EQ(refs(m[1]), 1);
	ASSERT_EQ(s->inflight.count, 2);
	ASSERT_TRUE(qring_at(&s->inflight, 0)->msg == m[0]);
	ASSERT_TRUE(qring_at(&s->inflight, 1)->msg == m[2]);
	ASSERT_EQ(ack(s, 3, MQTT_PUBACK), -FM_ENOENT);
	ASSERT_EQ(ack(s, 99, MQTT_PUBACK), -FM_ENOENT);
	ASSERT_EQ(ack(s, 2, MQTT_PUBACK), 0);
	ASSERT_EQ(ack(s, 4, MQTT_PUBACK), 0);
	ASSERT_EQ(s->inflight.count, 0);
	ASSERT_TRUE(s->inflight.e == NULL); /* an idle session keeps no queue memory */
	ASSERT_EQ(ack(s, 2, MQTT_PUBACK), -FM_ENOENT);
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(refs(m[i]), 1);
		msg_unref(m[i]);
	}
	session_unref(s);
}

static void test_ack_qos2(void)
{
	struct session *s = mksession();
	struct msg *m = mkmsg("q2", 5);
	ASSERT_EQ(enq(s, m, 2, 0, NULL, 0, &no_limits), 0);
	ASSERT_EQ(enq(s, m, 2, 0, NULL, 0, &no_limits), 0);
	uint16_t p1 = send_head(s), p2 = send_head(s);
	ASSERT_EQ(qring_at(&s->inflight, 0)->state, QE_WAIT_PUBREC);
	ASSERT_EQ(ack(s, p1, MQTT_PUBACK), -FM_ENOENT);
	ASSERT_EQ(ack(s, p1, MQTT_PUBCOMP), -FM_ENOENT);
	/* PUBREC moves the entry to WAIT_PUBCOMP, still in flight */
	struct qentry done;
	ASSERT_EQ(session_on_ack(s, p1, MQTT_PUBREC, &done), 0);
	ASSERT_EQ(qentry_pid(&done), p1); /* a copy: the entry keeps its reference */
	ASSERT_EQ(done.state, QE_WAIT_PUBCOMP);
	ASSERT_EQ(s->inflight.count, 2);
	ASSERT_EQ(qring_at(&s->inflight, 0)->state, QE_WAIT_PUBCOMP);
	ASSERT_EQ(qring_at(&s->inflight, 1)->state, QE_WAIT_PUBREC);
	ASSERT_EQ(refs(m), 3);
	ASSERT_EQ(ack(s, p1, MQTT_PUBREC), -FM_ENOENT);
	ASSERT_EQ(ack(s, p1, MQTT_PUBACK), -FM_ENOENT);
	/* PUBCOMP removes */
	ASSERT_EQ(ack(s, p1, MQTT_PUBCOMP), 0);
	ASSERT_EQ(s->inflight.count, 1);
	ASSERT_EQ(refs(m), 2);
	ASSERT_EQ(ack(s, p1, MQTT_PUBCOMP), -FM_ENOENT);
	ASSERT_EQ(ack(s, p2, MQTT_PUBREC), 0);
	ASSERT_EQ(ack(s, p2, MQTT_PUBCOMP), 0);
	ASSERT_EQ(s->inflight.count, 0);
	ASSERT_EQ(refs(m), 1);
	session_unref(s);
	msg_unref(m);
}

static void test_pid_of_seq(void)
{
	/* 1..65535, then wraps to 1: never 0 [MQTT-2.2.1-3] */
	ASSERT_EQ(qentry_pid_of(0), 1);
	ASSERT_EQ(qentry_pid_of(1), 2);
	ASSERT_EQ(qentry_pid_of(65533), 65534);
	ASSERT_EQ(qentry_pid_of(65534), 65535);
	ASSERT_EQ(qentry_pid_of(65535), 1);
	ASSERT_EQ(qentry_pid_of(65536), 2);
	ASSERT_EQ(qentry_pid_of(UINT64_MAX), UINT64_MAX % 65535 + 1);
	uint32_t zeros = 0;
	for (uint64_t seq = (1ull << 40) - 70000; seq < (1ull << 40) + 70000; seq++)
		zeros += qentry_pid_of(seq) == 0;
	ASSERT_EQ(zeros, 0);
}

/* Sends n QoS 1 messages so that `count` entries are in flight. */
static void fill_inflight(struct session *s, struct msg *m, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		ASSERT_EQ(enq(s, m, 1, 0, NULL, 0, &no_limits), 0);
		send_head(s);
	}
}

static void test_pid_in_use(void)
{
	struct session *s = mksession();
	struct msg *m = mkmsg("t", 0);
	ASSERT_FALSE(session_pid_in_use(s, 1));
	ASSERT_FALSE(session_pid_in_use(s, 65536));
	fill_inflight(s, m, 3); /* sequences 1, 2, 3: ids 2, 3, 4 */
	ASSERT_EQ(qentry_pid(qring_at(&s->inflight, 0)), 2);
	ASSERT_EQ(qentry_pid(qring_at(&s->inflight, 2)), 4);
	ASSERT_FALSE(session_pid_in_use(s, 4));
	ASSERT_FALSE(session_pid_in_use(s, 65535)); /* id 1, not in flight */
	ASSERT_TRUE(session_pid_in_use(s, 65536));  /* id 2, in flight for sequence 1 */
	ASSERT_TRUE(session_pid_in_use(s, 65538));  /* id 4 */
	ASSERT_FALSE(session_pid_in_use(s, 65539)); /* id 5 */
	ASSERT_TRUE(session_pid_in_use(s, 2 * 65535 + 2));
	/* acknowledging the oldest frees its id */
	ASSERT_EQ(ack(s, 2, MQTT_PUBACK), 0);
	ASSERT_FALSE(session_pid_in_use(s, 65536));
	ASSERT_TRUE(session_pid_in_use(s, 65537));
	/* an acknowledgement out of order frees an id in the middle */
	ASSERT_EQ(ack(s, 4, MQTT_PUBACK), 0);
	ASSERT_FALSE(session_pid_in_use(s, 65538));
	ASSERT_TRUE(session_pid_in_use(s, 65537));
	ASSERT_EQ(ack(s, 3, MQTT_PUBACK), 0);
	ASSERT_FALSE(session_pid_in_use(s, 65537));
	session_unref(s);

	/* the queue head waits when its id would collide after a wrap */
	s = mksession();
	s->next_seq = 65530;
	fill_inflight(s, m, 10); /* sequences 65530..65539: ids 65531..65535, 1..5 */
	ASSERT_EQ(qentry_pid(qring_at(&s->inflight, 4)), 65535);
	ASSERT_EQ(qentry_pid(qring_at(&s->inflight, 5)), 1);
	ASSERT_EQ(enq(s, m, 1, 0, NULL, 0, &no_limits), 0);
	uint64_t head = qring_at(&s->queue, 0)->seq;
	ASSERT_EQ(head, 65540);
	ASSERT_FALSE(session_pid_in_use(s, head)); /* id 6 is free */
	ASSERT_TRUE(session_pid_in_use(s, 65530 + 65535)); /* id 65531 again */
	ASSERT_FALSE(session_pid_in_use(s, 65529 + 65535));
	for (uint32_t i = 0; i < 11; i++) {
		if (s->inflight.count == 0)
			break;
		uint16_t pid = qentry_pid(qring_at(&s->inflight, 0));
		ASSERT_EQ(ack(s, pid, MQTT_PUBACK), 0);
	}
	ASSERT_EQ(s->inflight.count, 0);
	session_unref(s);
	ASSERT_EQ(refs(m), 1);
	msg_unref(m);
}

static void test_rx_qos2(void)
{
	struct session *s = mksession();
	ASSERT_EQ(session_rx_qos2_add(s, 1), 1);
	ASSERT_EQ(session_rx_qos2_add(s, 1), 0);
	ASSERT_EQ(session_rx_qos2_add(s, 65535), 1);
	for (uint16_t pid = 100; pid < 120; pid++)
		ASSERT_EQ(session_rx_qos2_add(s, pid), 1);
	ASSERT_EQ(s->n_rx_qos2, 22);
	ASSERT_EQ(session_rx_qos2_add(s, 110), 0);
	ASSERT_TRUE(session_rx_qos2_remove(s, 110));
	ASSERT_FALSE(session_rx_qos2_remove(s, 110));
	ASSERT_EQ(session_rx_qos2_add(s, 110), 1); /* a new exchange may reuse the id */
	ASSERT_TRUE(session_rx_qos2_remove(s, 1));
	ASSERT_FALSE(session_rx_qos2_remove(s, 2));
	ASSERT_TRUE(session_rx_qos2_remove(s, 65535));
	for (uint16_t pid = 100; pid < 120; pid++)
		ASSERT_TRUE(session_rx_qos2_remove(s, pid));
	ASSERT_EQ(s->n_rx_qos2, 0);
	ASSERT_FALSE(session_rx_qos2_remove(s, 100));
	ASSERT_EQ(session_rx_qos2_add(s, 5), 1);
	session_unref(s);
}

static void test_subs(void)
{
	struct session *s = mksession();
	ASSERT_EQ(session_sub_add(s, "a/b", 3, 1, 0), 0);
	ASSERT_EQ(session_sub_add(s, "a/c", 3, 2, 5), 0);
	ASSERT_EQ(session_sub_add(s, "$share/g/a/b", 12, 0, 0), 0);
	ASSERT_EQ(s->n_subs, 3);
	/* the same filter replaces the options and id */
	ASSERT_EQ(session_sub_add(s, "a/bXYZ", 3, 0x2D, 9), 1);
	ASSERT_EQ(s->n_subs, 3);
	ASSERT_STRN(s->subs[0].filter, strlen(s->subs[0].filter), "a/b"); /* a NUL-terminated copy */
	ASSERT_EQ(s->subs[0].len, 3);
	ASSERT_EQ(s->subs[0].options, 0x2D);
	ASSERT_EQ(s->subs[0].sub_id, 9);
	ASSERT_EQ(s->subs[1].sub_id, 5);
	/* prefixes and longer filters are different filters */
	ASSERT_FALSE(session_sub_remove(s, "a", 1));
	ASSERT_FALSE(session_sub_remove(s, "a/b/c", 5));
	ASSERT_TRUE(session_sub_remove(s, "a/b", 3));
	ASSERT_FALSE(session_sub_remove(s, "a/b", 3));
	ASSERT_EQ(s->n_subs, 2);
	ASSERT_TRUE(session_sub_remove(s, "$share/g/a/b", 12));
	ASSERT_EQ(s->n_subs, 1);
	ASSERT_STRN(s->subs[0].filter, s->subs[0].len, "a/c");
	char f[16];
	for (int i = 0; i < 40; i++) {
		int n = snprintf(f, sizeof f, "f/%d", i);
		ASSERT_EQ(session_sub_add(s, f, (size_t)n, 0, 0), 0);
	}
	ASSERT_EQ(s->n_subs, 41);
	ASSERT_TRUE(session_sub_remove(s, "f/39", 4));
	ASSERT_TRUE(session_sub_remove(s, "a/c", 3));
	ASSERT_EQ(session_sub_add(s, "f/0", 3, 1, 0), 1);
	ASSERT_EQ(s->n_subs, 39);
	session_unref(s); /* frees the remaining filters */
}

/* Many filters: past the scan limit the list is found through its position
 * table, which must agree with the list through adds, replacements and
 * removals in any order, and give its memory back when the list shrinks. */
static void test_subs_many(void)
{
	enum { N = 20000 };
	static bool present[N];
	struct session *s = mksession();
	char f[32];
	memset(present, 0, sizeof present);
	for (int i = 0; i < N; i++) {
		int n = snprintf(f, sizeof f, "plant/%d/tag", i);
		ASSERT_EQ(session_sub_add(s, f, (size_t)n, 1, (uint32_t)i), 0);
		present[i] = true;
	}
	ASSERT_EQ(s->n_subs, N);
	ASSERT_TRUE(s->sub_pos != NULL);
	/* remove two in three in a scattered order, replace a few of the rest */
	uint32_t left = N;
	for (uint32_t k = 0; k < N; k++) {
		uint32_t i = (k * 7919u) % N;
		int n = snprintf(f, sizeof f, "plant/%u/tag", i);
		if (i % 3) {
			ASSERT_TRUE(session_sub_remove(s, f, (size_t)n));
			ASSERT_FALSE(session_sub_remove(s, f, (size_t)n));
			present[i] = false;
			left--;
		} else if (i % 5 == 0) {
			ASSERT_EQ(session_sub_add(s, f, (size_t)n, 2, i + 1), 1);
		}
	}
	ASSERT_EQ(s->n_subs, left);
	for (uint32_t i = 0; i < N; i++) {
		int n = snprintf(f, sizeof f, "plant/%u/tag", i);
		long at = session_sub_find(s, f, (size_t)n);
		ASSERT_EQ(at >= 0, present[i]);
		if (at >= 0) {
			ASSERT_STRN(s->subs[at].filter, s->subs[at].len, f);
			ASSERT_EQ(s->subs[at].sub_id, i % 5 == 0 ? i + 1 : i);
		}
	}
	/* a prefix or an extension of a filter is not it */
	ASSERT_EQ(session_sub_find(s, "plant/0/ta", 10), -1);
	ASSERT_EQ(session_sub_find(s, "plant/0/tags", 12), -1);
	/* down to a few: the table is freed and the scan still finds them */
	for (uint32_t i = 0; i < N; i++) {
		int n = snprintf(f, sizeof f, "plant/%u/tag", i);
		if (present[i] && i >= 20)
			ASSERT_TRUE(session_sub_remove(s, f, (size_t)n));
	}
	ASSERT_EQ(s->n_subs, 7); /* 0, 3, ..., 18 */
	ASSERT_TRUE(s->sub_pos == NULL);
	ASSERT_TRUE(session_sub_find(s, "plant/18/tag", 12) >= 0);
	ASSERT_EQ(session_sub_find(s, "plant/21/tag", 12), -1);
	session_unref(s);
}

static void test_qring(void)
{
	struct msg *m[8];
	struct qring r = { 0 };
	for (int i = 0; i < 8; i++)
		m[i] = mkmsg("r", 0);
	for (uint16_t i = 0; i < 4; i++)
		ASSERT_EQ(qring_push(&r, &(struct qentry){ .msg = msg_ref(m[i]), .seq = i }), 0);
	ASSERT_EQ(r.cap, 4);
	struct qentry out;
	qring_remove(&r, 0, &out);
	ASSERT_EQ(out.seq, 0);
	qentry_release(&out);
	ASSERT_TRUE(out.msg == NULL);
	qring_remove(&r, 0, &out);
	ASSERT_EQ(out.seq, 1);
	qentry_release(&out);
	ASSERT_EQ(r.head, 2);
	/* these wrap around the end of the array, then the ring grows */
	for (uint16_t i = 4; i < 8; i++)
		ASSERT_EQ(qring_push(&r, &(struct qentry){ .msg = msg_ref(m[i]), .seq = i }), 0);
	ASSERT_EQ(r.count, 6);
	ASSERT_EQ(r.cap, 6); /* grown by half */
	for (uint32_t i = 0; i < 6; i++)
		ASSERT_EQ(qring_at(&r, i)->seq, i + 2);
	/* removing from the middle keeps the order */
	qring_remove(&r, 3, &out);
	ASSERT_EQ(out.seq, 5);
	qentry_release(&out);
	qring_remove(&r, 4, &out);
	ASSERT_EQ(out.seq, 7);
	qentry_release(&out);
	static const uint16_t want[] = { 2, 3, 4, 6 };
	for (uint32_t i = 0; i < 4; i++)
		ASSERT_EQ(qring_at(&r, i)->seq, want[i]);
	qring_free(&r);
	ASSERT_EQ(r.count, 0);
	ASSERT_TRUE(r.e == NULL);
	for (int i = 0; i < 8; i++) {
		ASSERT_EQ(refs(m[i]), 1);
		msg_unref(m[i]);
	}
}

/* The last reference frees the queue, the in-flight window, the will, the
 * subscriptions and the incoming QoS 2 ids; ASan reports any leak. */
/* Entries that gave up their bodies keep their place, size and expiry; the
 * byte limit drops them like any other; lookups by sequence number find them. */
/* Entries put back before the head keep the ring in order, whether the ring
 * has room at its start, wraps, or grows. */
static void test_qring_push_front(void)
{
	struct qring r = { 0 };
	for (uint64_t seq = 10; seq < 14; seq++)
		ASSERT_EQ(qring_push(&r, &(struct qentry){ .seq = seq }), 0);
	for (uint64_t seq = 10; seq-- > 5;)
		ASSERT_EQ(qring_push_front(&r, &(struct qentry){ .seq = seq }), 0);
	ASSERT_EQ(r.count, 9);
	for (uint32_t i = 0; i < r.count; i++)
		ASSERT_EQ(qring_at(&r, i)->seq, i + 5);
	ASSERT_EQ(qring_find(&r, 12), 7);
	qring_free(&r);
}

/* A large window acknowledged out of order: each id finds its entry (by
 * search, not by a scan), and ids not in flight are refused. */
static void test_ack_large_window_out_of_order(void)
{
	struct session *s = mksession();
	struct msg *m = mkmsg("w", 1);
	enum { N = 5000 };
	s->next_seq = 65530; /* the ids wrap past 65535 within the window */
	for (uint32_t i = 0; i < N; i++) {
		uint64_t seq = s->next_seq++;
		struct qentry e = { .msg = msg_ref(m), .seq = seq, .qos = 1, .state = QE_WAIT_PUBACK };
		ASSERT_EQ(qring_push(&s->inflight, &e), 0);
	}
	struct qentry done;
	ASSERT_EQ(session_on_ack(s, qentry_pid_of(65530 + N), MQTT_PUBACK, &done), -FM_ENOENT);
	ASSERT_EQ(session_on_ack(s, 0, MQTT_PUBACK, &done), -FM_ENOENT);
	for (uint32_t k = 0; k < N; k++) {
		uint64_t seq = 65530 + (k * 7919u) % N; /* every entry once, scattered */
		ASSERT_EQ(session_on_ack(s, qentry_pid_of(seq), MQTT_PUBACK, &done), 0);
		ASSERT_EQ(done.seq, seq);
		qentry_release(&done);
	}
	ASSERT_EQ(s->inflight.count, 0);
	msg_unref(m);
	session_unref(s);
}

static void test_spilled_entries(void)
{
	struct session *s = mksession();
	struct msg *m[4];
	for (int i = 0; i < 4; i++) {
		m[i] = mkmsg("t", 10u + (uint32_t)i);
		atomic_store(&m[i]->id, 100u + (unsigned)i);
		ASSERT_EQ(enq(s, m[i], 1, 0, NULL, 0, &no_limits), 0);
	}
	qentry_spill(qring_at(&s->queue, 1));
	qentry_spill(qring_at(&s->queue, 2));
	ASSERT_EQ(refs(m[1]), 1);
	ASSERT_TRUE(qentry_on_disk(qring_at(&s->queue, 1)));
	ASSERT_EQ(qring_at(&s->queue, 1)->msg_id, 101);
	ASSERT_EQ(qring_at(&s->queue, 2)->bytes, 12);
	ASSERT_EQ(qring_find(&s->queue, 3), 2);
	ASSERT_EQ(qring_find(&s->queue, 9), -1);

	/* The body comes back in place. */
	qentry_fill(qring_at(&s->queue, 1), msg_ref(m[1]));
	ASSERT_FALSE(qentry_on_disk(qring_at(&s->queue, 1)));
	ASSERT_TRUE(qring_at(&s->queue, 1)->msg == m[1]);

	/* drop_oldest counts the bytes of an on-disk entry it drops. */
	qentry_spill(qring_at(&s->queue, 0));
	struct session_limits lim = { 0, 10 + 11 + 12 + 13, false };
	struct qring dropped = { 0 };
	uint64_t seq;
	ASSERT_EQ(session_enqueue(s, mkmsg("t", 10), 1, 0, NULL, 0, &lim, &dropped, &seq), 1);
	ASSERT_EQ(dropped.count, 1);
	ASSERT_TRUE(qentry_on_disk(qring_at(&dropped, 0)));
	ASSERT_EQ(qring_at(&dropped, 0)->msg_id, 100);
	qring_free(&dropped);
	ASSERT_EQ(s->queued_bytes, 11 + 12 + 13 + 10);
	ASSERT_EQ(qring_find(&s->queue, 1), -1);
	ASSERT_EQ(qring_find(&s->queue, 2), 0);
	msg_unref(qring_at(&s->queue, 3)->msg); /* mkmsg's reference of the new one */
	session_unref(s);
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(refs(m[i]), 1);
		msg_unref(m[i]);
	}
}

/* An expiry in seconds, rounded up: an entry never expires before its message. */
static void test_entry_expiry(void)
{
	struct msg *m = mkmsg("t", 1);
	m->expiry_at = 10001;
	struct qentry e = { .expiry_s = msg_expiry_s(m) };
	ASSERT_EQ(e.expiry_s, 11);
	ASSERT_FALSE(qentry_expired(&e, 10999));
	ASSERT_TRUE(qentry_expired(&e, 11000));
	e.expiry_s = 0;
	ASSERT_FALSE(qentry_expired(&e, UINT64_MAX / 2));
	msg_unref(m);
}

static void test_unref_releases_everything(void)
{
	struct session *s = mksession();
	struct msg *q = mkmsg("q", 3), *f = mkmsg("f", 3), *will = mkmsg("will", 3);
	ASSERT_EQ(enq(s, q, 1, 0, (uint32_t[]){ 1, 2, 3 }, 3, &no_limits), 0);
	ASSERT_EQ(enq(s, f, 2, 0, (uint32_t[]){ 4, 5 }, 2, &no_limits), 0);
	ASSERT_EQ(enq(s, q, 0, 0, NULL, 0, &no_limits), 0);
	send_head(s);
	uint16_t p2 = send_head(s);
	ASSERT_EQ(ack(s, p2, MQTT_PUBREC), 0);
	s->will = msg_ref(will);
	ASSERT_EQ(session_sub_add(s, "x/#", 3, 1, 1), 0);
	ASSERT_EQ(session_rx_qos2_add(s, 9), 1);
	ASSERT_TRUE(session_ref(s) == s);
	session_unref(s);
	ASSERT_EQ(refs(q), 3); /* still alive: one reference left */
	session_unref(s);
	ASSERT_EQ(refs(q), 1);
	ASSERT_EQ(refs(f), 1);
	ASSERT_EQ(refs(will), 1);
	msg_unref(q);
	msg_unref(f);
	msg_unref(will);
}

int main(void)
{
	RUN(test_new_and_refs);
	RUN(test_msg);
	RUN(test_enqueue_unlimited);
	RUN(test_enqueue_max_messages);
	RUN(test_enqueue_max_bytes);
	RUN(test_enqueue_too_big);
	RUN(test_enqueue_sub_ids);
	RUN(test_ack_qos1);
	RUN(test_ack_qos2);
	RUN(test_pid_of_seq);
	RUN(test_pid_in_use);
	RUN(test_rx_qos2);
	RUN(test_subs);
	RUN(test_subs_many);
	RUN(test_qring);
	RUN(test_qring_push_front);
	RUN(test_ack_large_window_out_of_order);
	RUN(test_spilled_entries);
	RUN(test_entry_expiry);
	RUN(test_unref_releases_everything);
	return CHECK_DONE();
}
