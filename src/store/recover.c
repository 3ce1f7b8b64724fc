/* Start-up recovery: everything in the database goes back into the broker
 * before the first client is served. */
#include "store_internal.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/log.h"
#include "../session/session.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Message bodies by id, while recovering. */
struct body_map {
	uint64_t *ids;
	struct msg **msgs;
	uint32_t cap, n;
};

static uint32_t body_slot(uint64_t id, uint32_t cap) { return (uint32_t)(id * 0x9E3779B97F4A7C15ull >> 32) & (cap - 1); }

static struct msg *body_get(const struct body_map *m, uint64_t id)
{
	if (!m->cap)
		return NULL;
	for (uint32_t i = body_slot(id, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->ids[i] == id)
			return m->msgs[i];
		if (!m->ids[i])
			return NULL;
	}
}

static int body_put(struct body_map *m, uint64_t id, struct msg *msg)
{
	if ((m->n + 1) * 2 > m->cap) {
		uint32_t cap = m->cap ? m->cap * 2 : 4096;
		uint64_t *ids = calloc(cap, sizeof *ids);
		struct msg **msgs = calloc(cap, sizeof *msgs);
		if (!ids || !msgs) {
			free(ids);
			free(msgs);
			return -FM_ENOMEM;
		}
		for (uint32_t i = 0; i < m->cap; i++) {
			if (!m->ids[i])
				continue;
			uint32_t j = body_slot(m->ids[i], cap);
			while (ids[j])
				j = (j + 1) & (cap - 1);
			ids[j] = m->ids[i];
			msgs[j] = m->msgs[i];
		}
		free(m->ids);
		free(m->msgs);
		m->ids = ids;
		m->msgs = msgs;
		m->cap = cap;
	}
	uint32_t j = body_slot(id, m->cap);
	while (m->ids[j])
		j = (j + 1) & (m->cap - 1);
	m->ids[j] = id;
	m->msgs[j] = msg;
	m->n++;
	return 0;
}

static void body_free(struct body_map *m)
{
	for (uint32_t i = 0; i < m->cap; i++)
		if (m->ids[i])
			msg_unref(m->msgs[i]);
	free(m->ids);
	free(m->msgs);
}

/* Sessions by sid, while recovering (sids are dense: a sorted array). */
struct session_list {
	uint64_t *sids;
	struct session **s;
	uint32_t n, cap;
};

static struct session *session_find(const struct session_list *l, uint64_t sid)
{
	uint32_t lo = 0, hi = l->n;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (l->sids[mid] < sid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < l->n && l->sids[lo] == sid ? l->s[lo] : NULL;
}

struct recovery {
	struct store *st;
	struct broker *b;
	struct body_map bodies;
	struct session_list sessions;
	uint64_t max_sid, max_msg, max_retain;
	uint64_t n_queued, n_retained, n_subs, n_dropped;
	char *err;
	size_t errlen;
};

static int fail(struct recovery *r, const char *what)
{
	snprintf(r->err, r->errlen, "%s: reading %s: %s: %s", r->st->path, what, sqlite3_errmsg(r->st->db),
		 store__damaged_help);
	return -1;
}

static int load_bodies(struct recovery *r)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(r->st->db,
			       "SELECT id, topic, props, payload, qos, retain, expiry_at, origin FROM msgs", -1, &s,
			       NULL))
		return fail(r, "messages");
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		uint64_t id = (uint64_t)sqlite3_column_int64(s, 0);
		const char *topic = (const char *)sqlite3_column_text(s, 1);
		int tlen = sqlite3_column_bytes(s, 1);
		const uint8_t *props = sqlite3_column_blob(s, 2);
		int plen = sqlite3_column_bytes(s, 2);
		const uint8_t *payload = sqlite3_column_blob(s, 3);
		int len = sqlite3_column_bytes(s, 3);
		if (!topic || tlen > 65535) {
			rc = SQLITE_CORRUPT;
			break;
		}
		struct msg *m = msg_new(topic, (uint16_t)tlen, props, (uint32_t)plen, payload, (uint32_t)len,
					(uint8_t)sqlite3_column_int(s, 4), sqlite3_column_int(s, 5) != 0);
		if (!m || body_put(&r->bodies, id, m)) {
			msg_unref(m);
			sqlite3_finalize(s);
			snprintf(r->err, r->errlen, "%s: out of memory loading messages", r->st->path);
			return -1;
		}
		m->expiry_at = (uint64_t)sqlite3_column_int64(s, 6);
		m->origin_sid = (uint64_t)sqlite3_column_int64(s, 7);
		atomic_store(&m->id, id);
		if (id > r->max_msg)
			r->max_msg = id;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : fail(r, "messages");
}

static int load_sessions(struct recovery *r)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(r->st->db,
			       "SELECT sid, client_id, expiry_interval, expires_at, version, will_msg, will_delay, will_at"
			       " FROM sessions ORDER BY sid", -1, &s, NULL))
		return fail(r, "sessions");
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct session_list *l = &r->sessions;
		if (l->n == l->cap) {
			uint32_t cap = l->cap ? l->cap * 2 : 256;
			uint64_t *sids = realloc(l->sids, sizeof *sids * cap);
			if (sids)
				l->sids = sids;
			struct session **ss = realloc(l->s, sizeof *ss * cap);
			if (ss)
				l->s = ss;
			if (!sids || !ss)
				break;
			l->cap = cap;
		}
		uint64_t sid = (uint64_t)sqlite3_column_int64(s, 0);
		struct msg *will = sqlite3_column_type(s, 5) == SQLITE_NULL ? NULL
				 : body_get(&r->bodies, (uint64_t)sqlite3_column_int64(s, 5));
		struct session *ss = broker_restore_session(
			r->b, sid, (const char *)sqlite3_column_text(s, 1), (uint32_t)sqlite3_column_int64(s, 2),
			(uint64_t)sqlite3_column_int64(s, 3), (uint8_t)sqlite3_column_int(s, 4), will,
			(uint32_t)sqlite3_column_int64(s, 6), (uint64_t)sqlite3_column_int64(s, 7));
		if (!ss)
			break;
		l->sids[l->n] = sid;
		l->s[l->n++] = ss;
		if (sid > r->max_sid)
			r->max_sid = sid;
	}
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW) {
		snprintf(r->err, r->errlen, "%s: out of memory loading sessions", r->st->path);
		return -1;
	}
	return rc == SQLITE_DONE ? 0 : fail(r, "sessions");
}

static int load_subs(struct recovery *r)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(r->st->db, "SELECT sid, filter, options, sub_id FROM subs", -1, &s, NULL))
		return fail(r, "subscriptions");
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct session *ss = session_find(&r->sessions, (uint64_t)sqlite3_column_int64(s, 0));
		const char *filter = (const char *)sqlite3_column_text(s, 1);
		if (!ss || !filter || broker_restore_sub(r->b, ss, filter, (uint8_t)sqlite3_column_int(s, 2),
							  (uint32_t)sqlite3_column_int64(s, 3))) {
			r->n_dropped++;
			continue;
		}
		r->n_subs++;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : fail(r, "subscriptions");
}

static int load_queues(struct recovery *r)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(r->st->db, "SELECT sid, seq, msg_id, qos, flags, state, sub_ids FROM queue ORDER BY sid, seq",
			       -1, &s, NULL))
		return fail(r, "queues");
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct session *ss = session_find(&r->sessions, (uint64_t)sqlite3_column_int64(s, 0));
		struct msg *m = body_get(&r->bodies, (uint64_t)sqlite3_column_int64(s, 2));
		int state = sqlite3_column_int(s, 5);
		int qos = sqlite3_column_int(s, 3);
		int ids_len = sqlite3_column_bytes(s, 6);
		const void *ids_blob = sqlite3_column_blob(s, 6);
		uint32_t ids[64];
		uint16_t n_ids = (uint16_t)(ids_len / (int)sizeof(uint32_t));
		if (!ss || !m || state < QE_QUEUED || state > QE_WAIT_PUBCOMP || qos < 1 || qos > 2 || n_ids > 64) {
			r->n_dropped++;
			continue;
		}
		if (n_ids)
			memcpy(ids, ids_blob, n_ids * sizeof(uint32_t));
		if (broker_restore_entry(ss, m, (uint64_t)sqlite3_column_int64(s, 1), (uint8_t)qos,
					 (uint8_t)sqlite3_column_int(s, 4), (uint8_t)state, ids, n_ids)) {
			sqlite3_finalize(s);
			snprintf(r->err, r->errlen, "%s: out of memory loading queues", r->st->path);
			return -1;
		}
		r->n_queued++;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : fail(r, "queues");
}

static int load_rx2(struct recovery *r)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(r->st->db, "SELECT sid, pid FROM rx_qos2", -1, &s, NULL))
		return fail(r, "QoS 2 state");
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct session *ss = session_find(&r->sessions, (uint64_t)sqlite3_column_int64(s, 0));
		if (ss && session_rx_qos2_add(ss, (uint16_t)sqlite3_column_int(s, 1)) < 0)
			rc = SQLITE_NOMEM;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : fail(r, "QoS 2 state");
}

static int load_retained(struct recovery *r)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(r->st->db, "SELECT msg_id, version FROM retained", -1, &s, NULL))
		return fail(r, "retained messages");
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		uint64_t version = (uint64_t)sqlite3_column_int64(s, 1);
		if (version > r->max_retain)
			r->max_retain = version;
		if (sqlite3_column_type(s, 0) == SQLITE_NULL)
			continue; /* a cleared topic */
		struct msg *m = body_get(&r->bodies, (uint64_t)sqlite3_column_int64(s, 0));
		if (!m || broker_restore_retained(r->b, m))
			r->n_dropped++;
		else
			r->n_retained++;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : fail(r, "retained messages");
}

/* Deletes stored bodies that nothing refers to any more (left by a crash
 * between two commits of one body's last references). */
static int drop_unreferenced(struct recovery *r)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(r->st->db, "DELETE FROM msgs WHERE id = ?", -1, &s, NULL))
		return fail(r, "unreferenced messages");
	int rc = SQLITE_DONE;
	uint64_t n = 0;
	sqlite3_exec(r->st->db, "BEGIN", NULL, NULL, NULL);
	for (uint32_t i = 0; i < r->bodies.cap && rc == SQLITE_DONE; i++) {
		uint64_t id = r->bodies.ids[i];
		if (!id || refmap_has(&r->st->refs, id))
			continue;
		sqlite3_bind_int64(s, 1, (int64_t)id);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		n++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE || sqlite3_exec(r->st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_exec(r->st->db, "ROLLBACK", NULL, NULL, NULL);
		return fail(r, "unreferenced messages");
	}
	if (n)
		log_info("store %s: removed %llu unreferenced message bodies", r->st->path, (unsigned long long)n);
	return 0;
}

int store_recover(struct store *st, struct broker *b, char *err, size_t errlen)
{
	uint64_t t0 = clock_mono_ms();
	struct recovery r = { .st = st, .b = b, .err = err, .errlen = errlen };
	int rc = load_bodies(&r);
	if (!rc)
		rc = load_sessions(&r);
	if (!rc)
		rc = load_subs(&r);
	if (!rc)
		rc = load_queues(&r);
	if (!rc)
		rc = load_rx2(&r);
	if (!rc)
		rc = load_retained(&r);
	if (!rc && store__load_refs(st))
		rc = fail(&r, "message references");
	if (!rc)
		rc = drop_unreferenced(&r);
	if (!rc) {
		broker_restore_done(b, r.max_sid + 1, r.max_msg + 1, r.max_retain + 1);
		log_notice("store %s: recovered %u sessions, %llu subscriptions, %llu queued messages, %llu retained "
			   "in %.2f s", st->path, r.sessions.n, (unsigned long long)r.n_subs,
			   (unsigned long long)r.n_queued, (unsigned long long)r.n_retained,
			   (double)(clock_mono_ms() - t0) / 1000.0);
		if (r.n_dropped)
			log_warn("store %s: %llu rows referred to missing sessions or messages and were skipped",
				 st->path, (unsigned long long)r.n_dropped);
	}
	/* The registry owns the sessions; the list only borrowed them. */
	free(r.sessions.sids);
	free(r.sessions.s);
	body_free(&r.bodies);
	return rc;
}
