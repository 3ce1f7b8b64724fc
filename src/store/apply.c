/* The one apply: a record batch, as bytes, into the database. It is the
 * only code that changes the database's state, at commit and (next) on
 * every replica; it is deterministic (the same batches in the same order
 * give the same database: what it keeps in memory, the bodies' reference
 * counts and the tombs, mirrors tables and is rebuilt from them) and
 * idempotent (the applied index is stored in the same transaction; an index
 * applied already is skipped). */
#include "store_internal.h"
#include "record.h"
#include "../base/err.h"
#include "../base/log.h"
#include <stdlib.h>
#include <string.h>

/* Tombs live this many indexes at least, twice at most (see tombs.h). */
#define TOMB_GENERATION 256

int store__step_done(struct store *st, enum stmt_id id)
{
	sqlite3_stmt *s = st->st[id];
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Runs a statement that returns at most one integer; *out = -1 when no row. */
static int step_int(struct store *st, enum stmt_id id, int64_t *out)
{
	sqlite3_stmt *s = st->st[id];
	int rc = sqlite3_step(s);
	*out = -1;
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) != SQLITE_NULL)
			*out = sqlite3_column_int64(s, 0);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW)
			;
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void bind_bytes_text(sqlite3_stmt *s, int col, struct rec_bytes b)
{
	sqlite3_bind_text(s, col, b.p ? (const char *)b.p : "", (int)b.len, SQLITE_STATIC);
}

/* ---- the bodies of one batch, by id ---- */

/* Where each body record of the batch is; decoded only when a row holds
 * it (most bodies belong to entries settled within the batches applied
 * together, and are never read). */
struct bodies {
	struct body_at {
		uint64_t id;              /* 0: empty */
		const uint8_t *start, *end; /* the record's bytes */
	} *slot;
	uint32_t mask;
};

static int bodies_init(struct bodies *m, uint32_t records)
{
	uint32_t cap = 16;
	while (cap < records * 2)
		cap *= 2;
	m->slot = calloc(cap, sizeof *m->slot);
	m->mask = cap - 1;
	return m->slot ? 0 : -FM_ENOMEM;
}

static uint32_t bodies_home(const struct bodies *m, uint64_t id)
{
	uint64_t h = id * 0x9E3779B97F4A7C15ull;
	return (uint32_t)(h >> 32) & m->mask;
}

static void bodies_put(struct bodies *m, uint64_t id, const uint8_t *start, const uint8_t *end)
{
	uint32_t i = bodies_home(m, id);
	while (m->slot[i].id && m->slot[i].id != id)
		i = (i + 1) & m->mask;
	m->slot[i] = (struct body_at){ id, start, end };
}

/* Decodes body id into *r: 1, or 0 when the batch has no such body. */
static int bodies_get(const struct bodies *m, uint64_t id, struct record *r)
{
	for (uint32_t i = bodies_home(m, id); m->slot[i].id; i = (i + 1) & m->mask)
		if (m->slot[i].id == id) {
			struct rec_reader one = { m->slot[i].start, m->slot[i].end, 1 };
			return rec_next(&one, r) == 1 && r->type == REC_BODY && r->id == id;
		}
	return 0;
}

struct apply {
	struct store *st;
	uint64_t index;
	struct bodies bodies;
};

/* ---- message bodies, stored once ---- */

/* Takes one more reference to stored body `id`, writing it from the batch
 * if it is new. */
static int msg_hold(struct apply *a, uint64_t id)
{
	struct store *st = a->st;
	if (refmap_has(&st->refs, id)) {
		refmap_add(&st->refs, id, 1);
		return SQLITE_OK;
	}
	struct record body;
	const struct record *m = &body;
	if (!id || !bodies_get(&a->bodies, id, &body))
		return SQLITE_CORRUPT; /* every record travels with the bodies it names */
	sqlite3_stmt *s = st->st[S_MSG_INS];
	sqlite3_bind_int64(s, 1, (int64_t)id);
	bind_bytes_text(s, 2, m->topic);
	sqlite3_bind_blob(s, 3, m->props.p, (int)m->props.len, SQLITE_STATIC);
	sqlite3_bind_blob(s, 4, m->payload.p, (int)m->payload.len, SQLITE_STATIC);
	sqlite3_bind_int(s, 5, m->qos);
	sqlite3_bind_int(s, 6, m->retain);
	sqlite3_bind_int64(s, 7, (int64_t)m->expiry_at);
	sqlite3_bind_int64(s, 8, (int64_t)m->origin);
	int rc = store__step_done(st, S_MSG_INS);
	/* Already there with its one reference: now it has two. */
	if (rc == SQLITE_OK && sqlite3_changes(st->db) == 0 && refmap_put(&st->refs, id, 2))
		rc = SQLITE_NOMEM;
	return rc;
}

/* Drops one reference to a stored body; the last one deletes it. */
static int msg_release(struct store *st, int64_t id)
{
	if (id <= 0)
		return SQLITE_OK;
	int32_t left = refmap_add(&st->refs, (uint64_t)id, -1);
	if (left == 1)
		refmap_del(&st->refs, (uint64_t)id); /* back to the implicit one */
	if (left >= 1)
		return SQLITE_OK;
	sqlite3_bind_int64(st->st[S_MSG_DEL], 1, id);
	return store__step_done(st, S_MSG_DEL);
}

/* ---- tombs: queue entries deleted before their insert arrived ---- */

static int tomb_put(struct apply *a, uint64_t sid, uint64_t seq, uint8_t val)
{
	struct store *st = a->st;
	if (val != TOMB_DELETED && tombs_take(&st->tombs, sid, seq) == TOMB_DELETED)
		val = TOMB_DELETED; /* never let a state overwrite a delete */
	if (tombs_add(&st->tombs, sid, seq, val))
		return SQLITE_NOMEM;
	sqlite3_stmt *s = st->st[S_TOMB_PUT];
	sqlite3_bind_int64(s, 1, (int64_t)sid);
	sqlite3_bind_int64(s, 2, (int64_t)seq);
	sqlite3_bind_int(s, 3, val);
	sqlite3_bind_int64(s, 4, (int64_t)a->index);
	return store__step_done(st, S_TOMB_PUT);
}

/* The tomb of (sid, seq), taken: its value, or -1 when there is none. */
static int tomb_take(struct apply *a, uint64_t sid, uint64_t seq, int *rc)
{
	struct store *st = a->st;
	int val = tombs_take(&st->tombs, sid, seq);
	*rc = SQLITE_OK;
	if (val >= 0) {
		sqlite3_bind_int64(st->st[S_TOMB_DEL], 1, (int64_t)sid);
		sqlite3_bind_int64(st->st[S_TOMB_DEL], 2, (int64_t)seq);
		*rc = store__step_done(st, S_TOMB_DEL);
	}
	return val;
}

/* Tombs belong to the generation of the index that made them (index /
 * TOMB_GENERATION); the current and the one before are kept. A batch whose
 * index starts a newer generation ages them first, in memory and in the
 * table alike, whatever indexes were skipped (a replicated log has gaps): a
 * late insert comes within a few groups. */
static int tombs_turn(struct apply *a)
{
	struct store *st = a->st;
	uint64_t gen = a->index / TOMB_GENERATION;
	if (gen <= st->tomb_gen)
		return SQLITE_OK;
	for (uint64_t g = st->tomb_gen; g < gen && g < st->tomb_gen + 2; g++)
		tombs_age(&st->tombs);
	st->tomb_gen = gen;
	sqlite3_bind_int64(st->st[S_TOMB_AGE], 1, (int64_t)(gen ? (gen - 1) * TOMB_GENERATION : 0));
	return store__step_done(st, S_TOMB_AGE);
}

int store__load_tombs(struct store *st, uint64_t applied)
{
	tombs_free(&st->tombs);
	st->tomb_gen = applied / TOMB_GENERATION;
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(st->db, "SELECT sid, seq, val, at FROM tombs", -1, &s, NULL) != SQLITE_OK)
		return -1;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		uint64_t gen = (uint64_t)sqlite3_column_int64(s, 3) / TOMB_GENERATION;
		if (gen + 1 < st->tomb_gen)
			continue; /* aged out (the next turn deletes its row) */
		if (tombs_load(&st->tombs, (uint64_t)sqlite3_column_int64(s, 0), (uint64_t)sqlite3_column_int64(s, 1),
			       (uint8_t)sqlite3_column_int(s, 2), gen >= st->tomb_gen)) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- one record ---- */

static int apply_session_del(struct store *st, uint64_t sid)
{
	sqlite3_stmt *s = st->st[S_Q_OF_SESSION];
	sqlite3_bind_int64(s, 1, (int64_t)sid);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if ((rc = msg_release(st, sqlite3_column_int64(s, 0))) != SQLITE_OK)
			break;
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_OK)
		return rc;
	int64_t will;
	sqlite3_bind_int64(st->st[S_SESS_WILL], 1, (int64_t)sid);
	if ((rc = step_int(st, S_SESS_WILL, &will)) || (rc = msg_release(st, will)))
		return rc;
	static const enum stmt_id dels[] = { S_Q_DEL_SESSION, S_RX_DEL_SESSION, S_SUB_DEL_SESSION, S_SESS_DEL };
	for (size_t i = 0; i < sizeof dels / sizeof dels[0]; i++) {
		sqlite3_bind_int64(st->st[dels[i]], 1, (int64_t)sid);
		if ((rc = store__step_done(st, dels[i])))
			return rc;
	}
	return SQLITE_OK;
}

static int apply_session_put(struct apply *a, const struct record *r)
{
	struct store *st = a->st;
	int64_t old;
	int rc;
	sqlite3_bind_int64(st->st[S_SESS_WILL], 1, (int64_t)r->sid);
	if ((rc = step_int(st, S_SESS_WILL, &old)))
		return rc;
	int64_t will = r->id ? (int64_t)r->id : -1;
	if (old != will) {
		if (r->id && (rc = msg_hold(a, r->id)))
			return rc;
		if ((rc = msg_release(st, old)))
			return rc;
	}
	sqlite3_stmt *s = st->st[S_SESS_PUT];
	sqlite3_bind_int64(s, 1, (int64_t)r->sid);
	bind_bytes_text(s, 2, r->text);
	sqlite3_bind_int64(s, 3, r->expiry_interval);
	sqlite3_bind_int64(s, 4, (int64_t)r->expires_at);
	sqlite3_bind_int(s, 5, r->version);
	if (r->id)
		sqlite3_bind_int64(s, 6, will);
	else
		sqlite3_bind_null(s, 6);
	sqlite3_bind_int64(s, 7, r->will_delay);
	sqlite3_bind_int64(s, 8, (int64_t)r->will_at);
	if (r->has_user)
		bind_bytes_text(s, 9, r->user);
	else
		sqlite3_bind_null(s, 9);
	return store__step_done(st, S_SESS_PUT);
}

/* Retained updates carry the version the broker gave them under its
 * retained-index lock: two workers may submit them out of order, and only a
 * newer one may replace the row. A clear keeps the row, without a message,
 * as the version mark. */
static int apply_retain(struct apply *a, const struct record *r)
{
	struct store *st = a->st;
	sqlite3_stmt *g = st->st[S_RET_GET];
	bind_bytes_text(g, 1, r->text);
	int64_t old = -1, version = -1;
	int rc = sqlite3_step(g);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_type(g, 0) != SQLITE_NULL)
			old = sqlite3_column_int64(g, 0);
		version = sqlite3_column_int64(g, 1);
	}
	sqlite3_reset(g);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rc;
	if (version >= (int64_t)r->seq)
		return SQLITE_OK; /* a newer update is on disk already */
	if (r->type == REC_RETAIN_PUT && (rc = msg_hold(a, r->id)))
		return rc;
	sqlite3_stmt *s = st->st[S_RET_PUT];
	bind_bytes_text(s, 1, r->text);
	if (r->type == REC_RETAIN_PUT)
		sqlite3_bind_int64(s, 2, (int64_t)r->id);
	else
		sqlite3_bind_null(s, 2);
	sqlite3_bind_int64(s, 3, (int64_t)r->seq);
	rc = store__step_done(st, S_RET_PUT);
	return rc ? rc : msg_release(st, old);
}

static int apply_queue_add(struct apply *a, const struct record *r)
{
	struct store *st = a->st;
	int rc;
	int late = tomb_take(a, r->sid, r->seq, &rc);
	if (rc)
		return rc;
	if (late == TOMB_DELETED)
		return SQLITE_OK; /* delivered and acknowledged already */
	if ((rc = msg_hold(a, r->id)))
		return rc;
	sqlite3_stmt *s = st->st[S_Q_INS];
	sqlite3_bind_int64(s, 1, (int64_t)r->sid);
	sqlite3_bind_int64(s, 2, (int64_t)r->seq);
	sqlite3_bind_int64(s, 3, (int64_t)r->id);
	sqlite3_bind_int(s, 4, r->qos);
	sqlite3_bind_int(s, 5, r->flags);
	sqlite3_bind_int(s, 6, late >= 0 ? late : r->state);
	if (r->sub_ids.len)
		sqlite3_bind_blob(s, 7, r->sub_ids.p, (int)r->sub_ids.len, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 7);
	sqlite3_bind_int64(s, 8, r->queued_s);
	if ((rc = store__step_done(st, S_Q_INS)))
		return rc;
	/* A row that was there already (the same record again) keeps its one hold. */
	return sqlite3_changes(st->db) ? SQLITE_OK : msg_release(st, (int64_t)r->id);
}

static int apply_record(struct apply *a, const struct record *r)
{
	struct store *st = a->st;
	sqlite3_stmt *s;
	int rc;
	int64_t id;
	switch (r->type) {
	case REC_QUEUE_ADD:
		return apply_queue_add(a, r);
	case REC_QUEUE_DEL:
		sqlite3_bind_int64(st->st[S_Q_DEL], 1, (int64_t)r->sid);
		sqlite3_bind_int64(st->st[S_Q_DEL], 2, (int64_t)r->seq);
		if ((rc = step_int(st, S_Q_DEL, &id)))
			return rc;
		if (id < 0)
			return tomb_put(a, r->sid, r->seq, TOMB_DELETED);
		return msg_release(st, id);
	case REC_QUEUE_STATE:
		s = st->st[S_Q_STATE];
		sqlite3_bind_int(s, 1, r->state);
		sqlite3_bind_int64(s, 2, (int64_t)r->sid);
		sqlite3_bind_int64(s, 3, (int64_t)r->seq);
		if ((rc = store__step_done(st, S_Q_STATE)))
			return rc;
		return sqlite3_changes(st->db) ? SQLITE_OK : tomb_put(a, r->sid, r->seq, r->state);
	case REC_RX2_ADD:
	case REC_RX2_DEL:
		s = st->st[r->type == REC_RX2_ADD ? S_RX_INS : S_RX_DEL];
		sqlite3_bind_int64(s, 1, (int64_t)r->sid);
		sqlite3_bind_int(s, 2, r->pid);
		return store__step_done(st, r->type == REC_RX2_ADD ? S_RX_INS : S_RX_DEL);
	case REC_SESSION_PUT:
		return apply_session_put(a, r);
	case REC_SESSION_DEL:
		return apply_session_del(st, r->sid);
	case REC_SUB_PUT:
		s = st->st[S_SUB_PUT];
		sqlite3_bind_int64(s, 1, (int64_t)r->sid);
		bind_bytes_text(s, 2, r->text);
		sqlite3_bind_int(s, 3, r->flags);
		sqlite3_bind_int64(s, 4, r->sub_id);
		return store__step_done(st, S_SUB_PUT);
	case REC_SUB_DEL:
		s = st->st[S_SUB_DEL];
		sqlite3_bind_int64(s, 1, (int64_t)r->sid);
		bind_bytes_text(s, 2, r->text);
		return store__step_done(st, S_SUB_DEL);
	case REC_RETAIN_PUT:
	case REC_RETAIN_DEL:
		return apply_retain(a, r);
	case REC_SPOOL_ADD:
		if ((rc = msg_hold(a, r->id)))
			return rc;
		s = st->st[S_SPOOL_INS];
		bind_bytes_text(s, 1, r->text);
		sqlite3_bind_int64(s, 2, (int64_t)r->seq);
		sqlite3_bind_int64(s, 3, (int64_t)r->id);
		sqlite3_bind_int64(s, 4, r->queued_s);
		if ((rc = store__step_done(st, S_SPOOL_INS)))
			return rc;
		/* A row that was there already keeps its one hold. */
		return sqlite3_changes(st->db) ? SQLITE_OK : msg_release(st, (int64_t)r->id);
	case REC_BODY_DROP:
		/* Only a body no row holds: the same bytes on another database
		 * change nothing that is in use. */
		if (refmap_has(&st->refs, r->id))
			return SQLITE_OK;
		s = st->st[S_MSG_DROP];
		sqlite3_bind_int64(s, 1, (int64_t)r->id);
		return store__step_done(st, S_MSG_DROP);
	case REC_SPOOL_DEL:
		/* The bridge deletes only rows it saw committed: no tomb needed. */
		bind_bytes_text(st->st[S_SPOOL_DEL], 1, r->text);
		sqlite3_bind_int64(st->st[S_SPOOL_DEL], 2, (int64_t)r->seq);
		if ((rc = step_int(st, S_SPOOL_DEL, &id)))
			return rc;
		return msg_release(st, id);
	}
	return SQLITE_CORRUPT;
}

/* ---- queue entries added and removed within the batches applied together ---- */

/* A queue entry whose insert and delete are both among the batches applied
 * together never touches the database: applied one by one the insert makes
 * the row (and holds its body) and the delete removes it again, so skipping
 * the two, and a state change between them, ends in the same database.
 * Only an insert that comes before its delete counts: a delete that arrives
 * first goes through the tombs as it would alone.
 *
 * Finding the pairs is an optimisation, so it may miss some (they are then
 * applied, to the same end): inserts go into a direct-mapped table of the
 * recent ones (a delete comes a few milliseconds after its insert; a
 * collision forgets the older insert), and the records to skip are marked
 * by ordinal in a bitmap that the apply reads in order. */
#define SETTLED_SLOTS (1u << 16)

struct settled {
	uint8_t *skip; /* bit per record ordinal (1-based) of the batches */
	struct settled_slot {
		uint64_t sid, seq;        /* sid 0: empty */
		uint32_t add_at, state_at; /* ordinals (0: none); state_at UINT32_MAX: not to settle */
	} *slot;
};

static struct settled_slot *settled_slot(const struct settled *m, uint64_t sid, uint64_t seq)
{
	uint64_t h = (sid * 0x9E3779B97F4A7C15ull) ^ (seq * 0xC2B2AE3D27D4EB4Full);
	return &m->slot[(h ^ (h >> 29)) & (SETTLED_SLOTS - 1)];
}

static void settled_mark(struct settled *m, uint32_t at)
{
	m->skip[at >> 3] |= (uint8_t)(1u << (at & 7));
}

/* Marks the records of entries settled within the batches (well-formed
 * ones: the apply fails on the others anyway). 0 or -FM_ENOMEM. */
static int settled_scan(struct settled *m, const struct store_batch *b, size_t n)
{
	uint64_t records = 0;
	struct rec_reader rd;
	for (size_t i = 0; i < n; i++)
		if (rec_reader_init(&rd, b[i].p, b[i].len) == 0)
			records += rd.left;
	if (records >= UINT32_MAX - 1)
		return 0; /* nothing marked: everything applied */
	m->skip = calloc(records / 8 + 1, 1);
	m->slot = calloc(SETTLED_SLOTS, sizeof *m->slot);
	if (!m->skip || !m->slot)
		return -FM_ENOMEM;
	uint32_t at = 0;
	for (size_t i = 0; i < n; i++) {
		if (rec_reader_init(&rd, b[i].p, b[i].len))
			continue;
		uint8_t type;
		uint64_t sid, seq;
		while (rec_peek(&rd, &type, &sid, &seq)) {
			at++;
			if (!sid || (type != REC_QUEUE_ADD && type != REC_QUEUE_STATE && type != REC_QUEUE_DEL))
				continue;
			struct settled_slot *s = settled_slot(m, sid, seq);
			bool same = s->sid == sid && s->seq == seq;
			if (type == REC_QUEUE_ADD) {
				/* A state change before its insert leaves a tomb the
				 * insert takes: such an entry is applied. */
				*s = (struct settled_slot){ sid, seq, at, same ? UINT32_MAX : 0 };
				continue;
			}
			if (type == REC_QUEUE_STATE) {
				if (!same)
					*s = (struct settled_slot){ sid, seq, 0, at };
				else
					s->state_at = s->state_at ? UINT32_MAX : at;
				continue;
			}
			if (!same)
				continue;
			if (s->add_at && s->state_at != UINT32_MAX) {
				settled_mark(m, s->add_at);
				if (s->state_at)
					settled_mark(m, s->state_at);
				settled_mark(m, at);
			}
			s->sid = 0;
		}
	}
	free(m->slot);
	m->slot = NULL;
	return 0;
}

static bool settled_skips(const struct settled *m, uint64_t at)
{
	return m->skip && (m->skip[at >> 3] >> (at & 7) & 1);
}

/* Applies every record of one batch (the transaction is open): steps over
 * each record, skips the settled ones and notes where the bodies are
 * without decoding them; decodes the others. *at counts the records of all
 * the batches applied together. */
static int apply_records(struct apply *a, const uint8_t *batch, size_t len, const struct settled *settled,
			 uint64_t *at)
{
	struct rec_reader rd;
	if (rec_reader_init(&rd, batch, len))
		return SQLITE_CORRUPT;
	if (bodies_init(&a->bodies, rd.left))
		return SQLITE_NOMEM;
	int rc = tombs_turn(a);
	while (rc == SQLITE_OK && rd.left) {
		const uint8_t *start = rd.p;
		uint8_t type;
		uint64_t key, seq;
		if (!rec_peek(&rd, &type, &key, &seq)) {
			rc = SQLITE_CORRUPT;
			break;
		}
		++*at;
		if (settled_skips(settled, *at))
			continue;
		if (type == REC_BODY) {
			bodies_put(&a->bodies, key, start, rd.p);
			continue;
		}
		struct rec_reader one = { start, rd.p, 1 };
		struct record r;
		rc = rec_next(&one, &r) == 1 ? apply_record(a, &r) : SQLITE_CORRUPT;
	}
	if (rc == SQLITE_OK && rd.p != rd.end)
		rc = SQLITE_CORRUPT; /* nothing may follow the last record */
	free(a->bodies.slot);
	return rc;
}

/* Applies n batches in one transaction; with `logged` they are entries of
 * the log (indexes growing past the applied one, stored with them), else one
 * repair applied under the current index. */
static int apply_run(struct store *st, const struct store_batch *b, size_t n, bool logged)
{
	struct settled settled = { 0 };
	if (n > 1 && settled_scan(&settled, b, n)) {
		free(settled.skip);
		free(settled.slot);
		st->apply_rc = SQLITE_NOMEM;
		return -FM_ENOMEM;
	}
	uint64_t at = 0, index = st->applied;
	int rc = store__step_done(st, S_BEGIN);
	for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
		if (logged && b[i].index <= index) {
			rc = SQLITE_CORRUPT; /* indexes must grow */
			break;
		}
		if (logged)
			index = b[i].index;
		struct apply a = { st, index, { 0 } };
		rc = apply_records(&a, b[i].p, b[i].len, &settled, &at);
	}
	free(settled.skip);
	if (rc == SQLITE_OK && logged) {
		sqlite3_bind_int64(st->st[S_INDEX_PUT], 1, (int64_t)index);
		rc = store__step_done(st, S_INDEX_PUT);
	}
	if (rc == SQLITE_OK)
		rc = store__step_done(st, S_COMMIT);
	if (rc == SQLITE_OK) {
		st->applied = index;
		return 0;
	}
	st->apply_rc = rc;
	if (!sqlite3_get_autocommit(st->db))
		store__step_done(st, S_ROLLBACK);
	/* What memory mirrors followed the rolled-back records. */
	store__load_refs(st);
	store__load_tombs(st, st->applied);
	return (rc & 0xFF) == SQLITE_FULL ? -FM_ELIMIT : (rc & 0xFF) == SQLITE_CORRUPT ? -FM_EPROTO : -FM_EIO;
}

int store_apply_batches(struct store *st, const struct store_batch *b, size_t n)
{
	while (n && b->index <= st->applied) {
		b++; /* applied already */
		n--;
	}
	return n ? apply_run(st, b, n, true) : 0;
}

int store__apply_local(struct store *st, const uint8_t *batch, size_t len)
{
	struct store_batch b = { batch, len, st->applied };
	return apply_run(st, &b, 1, false);
}

int store_apply(struct store *st, const uint8_t *batch, size_t len, uint64_t index)
{
	struct store_batch b = { batch, len, index };
	return store_apply_batches(st, &b, 1);
}
