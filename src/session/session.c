#include "session.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/hmap.h"
#include "../base/vec.h"
#include "../mqtt/mqtt.h"
#include <stdlib.h>
#include <string.h>

struct session *session_new(const char *client_id, size_t len, uint64_t sid)
{
	struct session *s = calloc(1, sizeof *s + len + 1);
	if (!s)
		return NULL;
	memcpy(s->client_id, client_id, len);
	s->client_id[len] = 0;
	s->client_id_len = (uint16_t)len;
	atomic_init(&s->refs, 1);
	atomic_init(&s->flush_pending, false);
	s->sid = sid;
	s->worker = -1;
	s->next_seq = 1;
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

void qentry_release(struct qentry *e)
{
	if (!qentry_on_disk(e))
		msg_unref(e->msg);
	e->msg = NULL;
	e->flags &= (uint8_t)~QE_ON_DISK;
	if (e->n_sub_ids > 1)
		free(e->u.sub_ids);
	e->n_sub_ids = 0;
}

void qring_free(struct qring *r)
{
	for (uint32_t i = 0; i < r->count; i++)
		qentry_release(qring_at(r, i));
	free(r->e);
	memset(r, 0, sizeof *r);
}

void qentry_spill(struct qentry *e)
{
	struct msg *m = e->msg;
	e->msg_id = atomic_load(&m->id);
	e->flags |= QE_ON_DISK;
	msg_unref(m);
}

void qentry_fill(struct qentry *e, struct msg *m)
{
	e->msg = m;
	e->flags &= (uint8_t)~QE_ON_DISK;
}

/* A full ring grows by half (a long offline queue wastes at most a third of
 * its ring), its entries copied in order from slot `first`. 0 or -FM_ENOMEM. */
static int qring_grow(struct qring *r, uint32_t first)
{
	if (r->count < r->cap)
		return 0;
	uint32_t cap = r->cap ? r->cap + r->cap / 2 : 4;
	struct qentry *n = malloc(sizeof *n * cap);
	if (!n)
		return -FM_ENOMEM;
	for (uint32_t i = 0; i < r->count; i++)
		n[first + i] = *qring_at(r, i);
	free(r->e);
	r->e = n;
	r->head = first;
	r->cap = cap;
	return 0;
}

int qring_push(struct qring *r, const struct qentry *e)
{
	if (qring_grow(r, 0))
		return -FM_ENOMEM;
	r->e[(r->head + r->count) % r->cap] = *e;
	r->count++;
	return 0;
}

int qring_push_front(struct qring *r, const struct qentry *e)
{
	if (qring_grow(r, 1)) /* slot 0 stays free for e */
		return -FM_ENOMEM;
	r->head = (r->head + r->cap - 1) % r->cap;
	r->e[r->head] = *e;
	r->count++;
	return 0;
}

long qring_find(struct qring *r, uint64_t seq)
{
	uint32_t lo = 0, hi = r->count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (qring_at(r, mid)->seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < r->count && qring_at(r, lo)->seq == seq ? (long)lo : -1;
}

void qring_remove(struct qring *r, uint32_t i, struct qentry *out)
{
	*out = *qring_at(r, i);
	if (i == 0) {
		r->head = (r->head + 1) % r->cap;
	} else {
		for (uint32_t k = i; k + 1 < r->count; k++)
			*qring_at(r, k) = *qring_at(r, k + 1);
	}
	r->count--;
	if (r->count == 0) {
		/* An idle session keeps no queue memory. */
		free(r->e);
		r->e = NULL;
		r->cap = r->head = 0;
	}
}

void session_unref(struct session *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	qring_free(&s->queue);
	qring_free(&s->inflight);
	msg_unref(s->will);
	free(s->will_user);
	for (uint32_t i = 0; i < s->n_subs; i++)
		free(s->subs[i].filter);
	free(s->subs);
	free(s->sub_pos);
	free(s->rx_qos2);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static bool over_limit(const struct session *s, const struct session_limits *lim, uint32_t add_bytes)
{
	if (lim->max_messages && s->queue.count + 1 > lim->max_messages)
		return true;
	return lim->max_bytes && s->queued_bytes + add_bytes > lim->max_bytes;
}

int session_enqueue(struct session *s, struct msg *msg, uint8_t qos, uint8_t flags,
		    const uint32_t *sub_ids, uint16_t n_sub_ids, const struct session_limits *lim,
		    struct qring *dropped, uint64_t *seq_out)
{
	int rc = 0;
	/* One that could never fit must not empty the queue on its way out. */
	if (lim->max_bytes && msg->payload_len > lim->max_bytes)
		return -FM_ELIMIT;
	while (over_limit(s, lim, msg->payload_len)) {
		if (lim->reject_new || s->queue.count == 0)
			return -FM_ELIMIT;
		struct qentry old;
		qring_remove(&s->queue, 0, &old);
		s->queued_bytes -= old.bytes;
		if (qring_push(dropped, &old))
			qentry_release(&old);
		rc = 1;
	}
	if (n_sub_ids > QENTRY_MAX_SUB_IDS)
		n_sub_ids = QENTRY_MAX_SUB_IDS;
	struct qentry e = { .msg = msg, .seq = s->next_seq, .bytes = msg->payload_len, .expiry_s = msg_expiry_s(msg),
			    .queued_s = clock_wall_s_coarse(), .qos = qos, .flags = flags,
			    .state = QE_QUEUED };
	e.n_sub_ids = (uint8_t)n_sub_ids;
	if (n_sub_ids == 1) {
		e.u.sub_id = sub_ids[0];
	} else if (n_sub_ids > 1) {
		e.u.sub_ids = malloc(sizeof(uint32_t) * n_sub_ids);
		if (!e.u.sub_ids)
			return -FM_ENOMEM;
		memcpy(e.u.sub_ids, sub_ids, sizeof(uint32_t) * n_sub_ids);
	}
	if (qring_push(&s->queue, &e)) {
		if (n_sub_ids > 1)
			free(e.u.sub_ids);
		return -FM_ENOMEM;
	}
	msg_ref(msg);
	s->next_seq++;
	s->queued_bytes += msg->payload_len;
	*seq_out = e.seq;
	return rc;
}

int session_on_ack(struct session *s, uint16_t pid, uint8_t ack_type, struct qentry *done)
{
	uint8_t want = ack_type == MQTT_PUBACK ? QE_WAIT_PUBACK
		     : ack_type == MQTT_PUBREC ? QE_WAIT_PUBREC : QE_WAIT_PUBCOMP;
	if (!s->inflight.count || !pid)
		return -FM_ENOENT;
	/* In flight is in ascending sequence order, almost always within 65535
	 * of its oldest: the id names one sequence number there, found by
	 * search (a window of thousands acknowledged out of order stays cheap);
	 * otherwise every entry is looked at. */
	uint64_t oldest = qring_at(&s->inflight, 0)->seq;
	uint64_t seq = oldest + (uint64_t)((pid + 65535u - qentry_pid_of(oldest)) % 65535u);
	long at = qring_find(&s->inflight, seq);
	for (uint32_t i = at >= 0 ? (uint32_t)at : 0; i < s->inflight.count; i++) {
		struct qentry *e = qring_at(&s->inflight, i);
		if (qentry_pid(e) != pid)
			continue;
		if (e->state != want)
			return -FM_ENOENT;
		if (e->flags & QE_RESEND) {
			/* Acknowledged before it went again: nothing to resend. */
			e->flags &= (uint8_t)~QE_RESEND;
			s->n_resend--;
		}
		if (ack_type == MQTT_PUBREC) {
			e->state = QE_WAIT_PUBCOMP;
			*done = *e;
			return 0;
		}
		qring_remove(&s->inflight, i, done);
		return 0;
	}
	return -FM_ENOENT;
}

bool session_pid_in_use(const struct session *s, uint64_t seq)
{
	if (s->inflight.count == 0)
		return false;
	/* In flight is in ascending sequence order and below `seq`: the ids of
	 * fewer than 65535 consecutive numbers cannot collide. */
	uint64_t oldest = s->inflight.e[s->inflight.head].seq;
	if (seq > oldest && seq - oldest < 65535)
		return false;
	uint16_t pid = qentry_pid_of(seq);
	for (uint32_t i = 0; i < s->inflight.count; i++)
		if (qentry_pid(&s->inflight.e[(s->inflight.head + i) % s->inflight.cap]) == pid)
			return true;
	return false;
}

int session_rx_qos2_add(struct session *s, uint16_t pid)
{
	for (uint32_t i = 0; i < s->n_rx_qos2; i++)
		if (s->rx_qos2[i] == pid)
			return 0;
	if (vec_grow(&s->rx_qos2, &s->cap_rx_qos2, s->n_rx_qos2, sizeof *s->rx_qos2, 4))
		return -FM_ENOMEM;
	s->rx_qos2[s->n_rx_qos2++] = pid;
	return 1;
}

bool session_rx_qos2_remove(struct session *s, uint16_t pid)
{
	for (uint32_t i = 0; i < s->n_rx_qos2; i++) {
		if (s->rx_qos2[i] == pid) {
			s->rx_qos2[i] = s->rx_qos2[--s->n_rx_qos2];
			return true;
		}
	}
	return false;
}

/* ---- subscriptions: the list and its position table ---- */

/* Filters are scanned up to this many; above, found through sub_pos. */
#define SESSION_SUB_SCAN_MAX 16
#define SESSION_SUB_POS_MIN_SHIFT 6

/* Seeded with the session's address: filters a client chose to collide in
 * one session's table do not collide in another's, nor from one run to the
 * next. (The table holds indexes into subs, which realloc moves, so it is
 * not a base/hmap.h map of pointers; the hash is base's.) */
static size_t session__sub_hash(const struct session *s, const char *f, size_t len)
{
	return (size_t)hmap_hash_bytes((uint64_t)(uintptr_t)s, f, len);
}

static size_t session__sub_mask(const struct session *s)
{
	return ((size_t)1 << s->sub_pos_shift) - 1;
}

static size_t session__sub_home(const struct session *s, uint32_t idx)
{
	return session__sub_hash(s, s->subs[idx].filter, s->subs[idx].len) & session__sub_mask(s);
}

static void session__sub_pos_put(struct session *s, uint32_t idx)
{
	size_t mask = session__sub_mask(s), i = session__sub_home(s, idx);
	while (s->sub_pos[i])
		i = (i + 1) & mask;
	s->sub_pos[i] = idx + 1;
}

/* The table slot that holds entry idx. */
static size_t session__sub_pos_slot(const struct session *s, uint32_t idx)
{
	size_t mask = session__sub_mask(s), i = session__sub_home(s, idx);
	while (s->sub_pos[i] != idx + 1)
		i = (i + 1) & mask;
	return i;
}

/* Empties slot `hole`, moving back the entries after it that would become
 * unreachable (linear probing has no tombstones). */
static void session__sub_pos_del(struct session *s, size_t hole)
{
	size_t mask = session__sub_mask(s);
	s->sub_pos[hole] = 0;
	for (size_t j = (hole + 1) & mask; s->sub_pos[j]; j = (j + 1) & mask) {
		size_t home = session__sub_home(s, s->sub_pos[j] - 1);
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			s->sub_pos[hole] = s->sub_pos[j];
			s->sub_pos[j] = 0;
			hole = j;
		}
	}
}

/* Indexes the n_subs entries in a new table of 1 << shift slots. */
static int session__sub_pos_build(struct session *s, unsigned shift)
{
	uint32_t *t = calloc((size_t)1 << shift, sizeof *t);
	if (!t)
		return -FM_ENOMEM;
	free(s->sub_pos);
	s->sub_pos = t;
	s->sub_pos_shift = (uint8_t)shift;
	for (uint32_t i = 0; i < s->n_subs; i++)
		session__sub_pos_put(s, i);
	return 0;
}

long session_sub_find(const struct session *s, const char *filter, size_t len)
{
	if (!s->sub_pos) {
		for (uint32_t i = 0; i < s->n_subs; i++)
			if (s->subs[i].len == len && !memcmp(s->subs[i].filter, filter, len))
				return i;
		return -1;
	}
	size_t mask = session__sub_mask(s);
	for (size_t i = session__sub_hash(s, filter, len) & mask; s->sub_pos[i]; i = (i + 1) & mask) {
		const struct session_sub *sub = &s->subs[s->sub_pos[i] - 1];
		if (sub->len == len && !memcmp(sub->filter, filter, len))
			return s->sub_pos[i] - 1;
	}
	return -1;
}

int session_sub_add(struct session *s, const char *filter, size_t len, uint8_t options, uint32_t sub_id)
{
	long at = session_sub_find(s, filter, len);
	if (at >= 0) {
		s->subs[at].options = options;
		s->subs[at].sub_id = sub_id;
		return 1;
	}
	if (vec_grow(&s->subs, &s->cap_subs, s->n_subs, sizeof *s->subs, 1))
		return -FM_ENOMEM;
	size_t want = ((size_t)s->n_subs + 1) * 2; /* keeps the table at most half full */
	if (s->n_subs + 1 > SESSION_SUB_SCAN_MAX && (!s->sub_pos || want > session__sub_mask(s) + 1)) {
		unsigned shift = SESSION_SUB_POS_MIN_SHIFT;
		while (((size_t)1 << shift) < want)
			shift++;
		if (session__sub_pos_build(s, shift))
			return -FM_ENOMEM;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		return -FM_ENOMEM;
	memcpy(copy, filter, len);
	copy[len] = 0;
	s->subs[s->n_subs] = (struct session_sub){ copy, (uint16_t)len, options, sub_id };
	if (s->sub_pos)
		session__sub_pos_put(s, s->n_subs);
	s->n_subs++;
	return 0;
}

bool session_sub_remove(struct session *s, const char *filter, size_t len)
{
	long at = session_sub_find(s, filter, len);
	if (at < 0)
		return false;
	uint32_t i = (uint32_t)at, last = s->n_subs - 1;
	if (s->sub_pos) {
		session__sub_pos_del(s, session__sub_pos_slot(s, i));
		if (i != last)
			s->sub_pos[session__sub_pos_slot(s, last)] = i + 1;
	}
	free(s->subs[i].filter);
	s->subs[i] = s->subs[last]; /* the list has no order */
	s->n_subs--;
	/* Memory back after removals; best effort, a failure keeps more room. */
	if (s->sub_pos && s->n_subs <= SESSION_SUB_SCAN_MAX / 2) {
		free(s->sub_pos);
		s->sub_pos = NULL;
		s->sub_pos_shift = 0;
	} else if (s->sub_pos && s->sub_pos_shift > SESSION_SUB_POS_MIN_SHIFT &&
		   (size_t)s->n_subs * 8 < session__sub_mask(s) + 1) {
		(void)session__sub_pos_build(s, s->sub_pos_shift - 1u);
	}
	return true;
}
