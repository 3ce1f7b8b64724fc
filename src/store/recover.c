/* Start-up recovery: everything in the database goes back into the broker
 * before the first client is served. */
#include "store_internal.h"
#include "record.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/log.h"
#include "../session/session.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	struct session_list sessions;
	uint64_t max_sid, max_msg, max_retain;
	uint64_t n_queued, n_retained, n_subs, n_dropped, n_spooled;
	struct buf repair; /* records of what recovery repairs (a batch, or empty) */
	char *err;
	size_t errlen;
};

/* Adds a repair record to r->repair. 0, or -1 with r->err set. */
static int repair(struct recovery *r, const struct record *rec)
{
	if ((r->repair.len || rec_batch_start(&r->repair) == 0) && rec_append(&r->repair, rec) == 0)
		return 0;
	snprintf(r->err, r->errlen, "%s: out of memory recording a repair", r->st->path);
	return -1;
}

static int fail(struct recovery *r, const char *what)
{
	snprintf(r->err, r->errlen, "%s: reading %s: %s: %s", r->st->path, what, sqlite3_errmsg(r->st->db),
		 store__advice(r->st->db));
	return -1;
}

/* A stored body named by a session (will), a retained topic or a message in
 * flight. NULL: missing (counted) or failed (*failed set). */
static struct msg *body(struct recovery *r, uint64_t id, bool *failed)
{
	int rc;
	struct msg *m = store__read_msg(r->st, id, &rc);
	if (rc == SQLITE_DONE)
		r->n_dropped++;
	else if (rc != SQLITE_ROW)
		*failed = true;
	return m;
}

static int max_msg_id(struct recovery *r)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(r->st->db, "SELECT max(id) FROM msgs", -1, &s, NULL))
		return fail(r, "messages");
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		r->max_msg = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : fail(r, "messages");
}

static int load_sessions(struct recovery *r)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(r->st->db,
			       "SELECT sid, client_id, expiry_interval, expires_at, version, will_msg, will_delay, will_at, will_user"
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
		bool failed = false;
		struct msg *will = sqlite3_column_type(s, 5) == SQLITE_NULL ? NULL
				 : body(r, (uint64_t)sqlite3_column_int64(s, 5), &failed);
		if (failed) {
			rc = SQLITE_IOERR;
			break;
		}
		struct session *ss = broker_restore_session(
			r->b, sid, (const char *)sqlite3_column_text(s, 1), (uint32_t)sqlite3_column_int64(s, 2),
			(uint64_t)sqlite3_column_int64(s, 3), (uint8_t)sqlite3_column_int(s, 4), will,
			(uint32_t)sqlite3_column_int64(s, 6), (uint64_t)sqlite3_column_int64(s, 7),
			(const char *)sqlite3_column_text(s, 8));
		msg_unref(will);
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

/* Queued entries come back without their bodies (read when delivery
 * reaches them); entries in flight with them, to be resent on reconnect. */
static int load_queues(struct recovery *r)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(r->st->db,
			       "SELECT q.sid, q.seq, q.msg_id, q.qos, q.flags, q.state, q.sub_ids, length(m.payload),"
			       " m.expiry_at, m.id IS NOT NULL, q.queued_at FROM queue q LEFT JOIN msgs m ON m.id = q.msg_id"
			       " ORDER BY q.sid, q.seq", -1, &s, NULL))
		return fail(r, "queues");
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct session *ss = session_find(&r->sessions, (uint64_t)sqlite3_column_int64(s, 0));
		struct restored_entry e = {
			.msg_id = (uint64_t)sqlite3_column_int64(s, 2),
			.seq = (uint64_t)sqlite3_column_int64(s, 1),
			.expiry_at = (uint64_t)sqlite3_column_int64(s, 8),
			.bytes = (uint32_t)sqlite3_column_int64(s, 7),
			.queued_s = (uint32_t)sqlite3_column_int64(s, 10),
			.qos = (uint8_t)sqlite3_column_int(s, 3),
			.flags = (uint8_t)sqlite3_column_int(s, 4),
			.state = (uint8_t)sqlite3_column_int(s, 5),
		};
		int ids_len = sqlite3_column_bytes(s, 6);
		const void *ids_blob = sqlite3_column_blob(s, 6);
		uint32_t ids[64];
		e.n_sub_ids = (uint16_t)(ids_len / (int)sizeof(uint32_t));
		if (!ss || !sqlite3_column_int(s, 9) || e.state > QE_WAIT_PUBCOMP || e.qos < 1 || e.qos > 2 ||
		    e.n_sub_ids > 64) {
			r->n_dropped++;
			continue;
		}
		if (e.n_sub_ids)
			memcpy(ids, ids_blob, e.n_sub_ids * sizeof(uint32_t));
		e.sub_ids = ids;
		bool failed = false;
		if (e.state != QE_QUEUED && !(e.msg = body(r, e.msg_id, &failed))) {
			if (failed)
				break;
			continue;
		}
		int err = broker_restore_entry(ss, &e);
		msg_unref(e.msg);
		if (err) {
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
		bool failed = false;
		struct msg *m = body(r, (uint64_t)sqlite3_column_int64(s, 0), &failed);
		if (failed)
			break;
		if (!m)
			continue;
		if (broker_restore_retained(r->b, m))
			r->n_dropped++;
		else
			r->n_retained++;
		msg_unref(m); /* the index took its own reference */
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : fail(r, "retained messages");
}

/* Bridge spools come back without their bodies: the id and the payload
 * length are all a spooled message costs in memory until it is sent. Rows of
 * a bridge that is no longer configured stay in the database (logged). Rows
 * whose body is missing (a damaged database) cannot be sent and are deleted:
 * left in place, a new message given their sequence number would lose its
 * row to them (INSERT OR IGNORE) and be gone after the next restart. */
static int load_spools(struct recovery *r)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(r->st->db,
			       "SELECT s.bridge, s.seq, s.msg_id, length(m.payload), s.queued_at, m.id IS NOT NULL"
			       " FROM spool s LEFT JOIN msgs m ON m.id = s.msg_id ORDER BY s.bridge, s.seq", -1, &s, NULL))
		return fail(r, "bridge spools");
	char unknown[64] = "";
	uint64_t orphans = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *bridge = (const char *)sqlite3_column_text(s, 0);
		struct restored_spool_entry e = {
			.seq = (uint64_t)sqlite3_column_int64(s, 1),
			.msg_id = (uint64_t)sqlite3_column_int64(s, 2),
			.bytes = (uint32_t)sqlite3_column_int64(s, 3),
			.queued_s = (uint32_t)sqlite3_column_int64(s, 4),
		};
		if (!bridge || !sqlite3_column_int(s, 5)) {
			orphans++;
			struct record del = { .type = REC_SPOOL_DEL, .seq = e.seq,
					      .text = { (const uint8_t *)bridge, bridge ? (uint32_t)strlen(bridge) : 0 } };
			if (bridge && repair(r, &del)) {
				sqlite3_finalize(s);
				return -1;
			}
			continue;
		}
		int err = broker_restore_spool(r->b, bridge, &e);
		if (err == -FM_ENOMEM) {
			sqlite3_finalize(s);
			snprintf(r->err, r->errlen, "%s: out of memory loading bridge spools", r->st->path);
			return -1;
		}
		if (err == -FM_ENOENT) {
			/* One line per unknown bridge (rows come grouped by bridge). */
			if (strcmp(unknown, bridge))
				log_warn("store %s: spool of bridge '%s' kept: no such connection is configured",
					 r->st->path, bridge);
			snprintf(unknown, sizeof unknown, "%s", bridge);
			continue;
		}
		r->n_spooled++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return fail(r, "bridge spools");
	r->n_dropped += orphans;
	return 0;
}

/* Finds stored bodies that nothing refers to any more (a database of an
 * earlier release, or edited by hand): repaired by deleting them. */
static int drop_unreferenced(struct recovery *r)
{
	static const char *const sql =
		"SELECT id FROM msgs WHERE id NOT IN (SELECT msg_id FROM queue UNION SELECT msg_id FROM retained"
		" WHERE msg_id IS NOT NULL UNION SELECT will_msg FROM sessions WHERE will_msg IS NOT NULL"
		" UNION SELECT msg_id FROM spool)";
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(r->st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return fail(r, "unreferenced messages");
	int rc, n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct record drop = { .type = REC_BODY_DROP, .id = (uint64_t)sqlite3_column_int64(s, 0) };
		if (repair(r, &drop)) {
			sqlite3_finalize(s);
			return -1;
		}
		n++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return fail(r, "unreferenced messages");
	if (n)
		log_info("store %s: removing %d unreferenced message bodies", r->st->path, n);
	return 0;
}

int store_recover(struct store *st, struct broker *b, char *err, size_t errlen)
{
	uint64_t t0 = clock_mono_ms();
	struct recovery r = { .st = st, .b = b, .err = err, .errlen = errlen };
	int rc = drop_unreferenced(&r);
	if (!rc)
		rc = max_msg_id(&r);
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
	if (!rc)
		rc = load_spools(&r);
	if (!rc && r.repair.len)
		rc = store__repair(st, &r.repair, err, errlen);
	buf_free(&r.repair);
	if (!rc && store__load_refs(st))
		rc = fail(&r, "message references");
	if (!rc) {
		broker_restore_done(b, r.max_sid + 1, r.max_msg + 1, r.max_retain + 1);
		log_notice("store %s: recovered %u sessions, %llu subscriptions, %llu queued messages, %llu retained, "
			   "%llu spooled for bridges in %.2f s", st->path, r.sessions.n, (unsigned long long)r.n_subs,
			   (unsigned long long)r.n_queued, (unsigned long long)r.n_retained,
			   (unsigned long long)r.n_spooled,
			   (double)(clock_mono_ms() - t0) / 1000.0);
		if (r.n_dropped)
			log_warn("store %s: %llu rows referred to missing sessions or messages and were skipped",
				 st->path, (unsigned long long)r.n_dropped);
	}
	/* The registry owns the sessions; the list only borrowed them. */
	free(r.sessions.sids);
	free(r.sessions.s);
	return rc;
}
