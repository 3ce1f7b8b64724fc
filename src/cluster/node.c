/* A raft node on a libuv loop it is given: start and bootstrap, the state
 * machine glue (apply, snapshot, restore), proposals handed over from any
 * thread, the leadership watch, the status copy, and stop. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/err.h"
#include "base/log.h"
#include "cluster/frame.h"
#include "cluster/internal.h"


/* A follower waits 1-2 election timeouts before it stands: 500 ms puts a new
 * leader within ~1 s of a crash on loopback (tests/cluster). */
/* Entries and snapshots carry our headers (frame.h). */
#define WATERMARK_PERIOD_MS 500

#define DEFAULT_ELECTION_MS 500
#define DEFAULT_HEARTBEAT_MS 50
#define DEFAULT_SNAPSHOT_THRESHOLD 1024
#define DEFAULT_SNAPSHOT_TRAILING 512
#define DEFAULT_MAX_INFLIGHT 32
/* libraft's own 8 MiB: 0.22.1 takes a 32, 64 or 96 MiB segment size and then
 * fails every raft_apply with RAFT_NOSPACE (README.md, traps). */
#define DEFAULT_SEGMENT_SIZE (8u << 20)
#define MAX_SEGMENT_SIZE (16u << 20)
#define STATUS_PERIOD_MS 5

/* --- the state machine, as libraft sees it --- */

/* libraft gives apply no index: it sets last_applied after apply returns,
 * so the entry's index is last_applied + 1 (configuration and barrier
 * entries advance last_applied without reaching us). */
static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	struct cluster_node *n = fsm->data;
	uint64_t index = raft_last_applied(&n->raft) + 1;
	*result = NULL;
	if (index <= n->applied) {
		/* Would be applied twice: a libraft change we have not checked. */
		log_err("cluster: entry %" PRIu64 " after %" PRIu64 " was already applied", index,
			n->applied);
		return RAFT_INVALID;
	}
	n->applied = index;
	enum cluster_entry_type type;
	const unsigned char *payload;
	size_t len;
	if (cluster__entry_decode(buf->base, buf->len, &type, &payload, &len) == 0) {
		if (type == CLUSTER_ENTRY_USER) {
			if (n->conf.role == CLUSTER_ROLE_BROKER && n->cb.apply)
				n->cb.apply(n->cb.owner, index, payload, len);
		} else {
			uint64_t mark = 0;
			for (int i = 7; i >= 0; i--)
				mark = mark << 8 | payload[i];
			if (mark > n->watermark)
				n->watermark = mark;
		}
		return 0;
	}
	/* Only this module writes entries: a stranger is a bug or corruption,
	 * and skipping it would fork this node's state from the others'. */
	log_err("cluster: entry %" PRIu64 " (%zu bytes) is not one of ours", index, buf->len);
	return RAFT_MALFORMED;
}

/* A raft_malloc'd entry (frame.h). NULL: no memory. */
static void *entry_new(enum cluster_entry_type type, const void *payload, uint32_t len, size_t *size)
{
	*size = cluster__entry_size(len);
	unsigned char *e = raft_malloc(*size);
	if (e)
		cluster__entry_encode(e, type, payload, len);
	return e;
}

/* The state machine's chunks go to raft as they are, not copied (a copy of
 * a database of hundreds of MB on the loop was a stall of its own): raft
 * writes them and then calls fsm_snapshot_finalize (fsm version 2), which
 * frees only our header and the array; the chunks stay the state
 * machine's, unchanged until it is asked for a snapshot again (raft asks
 * for none while one is being written). */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct cluster_node *n = fsm->data;
	uint64_t index = raft_last_applied(&n->raft);
	struct cluster_chunk chunks[CLUSTER_MAX_CHUNKS];
	int count = 0;
	if (n->conf.role == CLUSTER_ROLE_WITNESS && index > n->watermark + n->trailing) {
		/* The log it would drop is not on every broker yet: keep it (raft
		 * tries again at a later entry). */
		n->snapshots_deferred++;
		return RAFT_BUSY;
	}
	if (n->conf.role == CLUSTER_ROLE_BROKER) {
		count = n->cb.snapshot ? n->cb.snapshot(n->cb.owner, index, chunks) : 0;
		if (count == CLUSTER_EBUSY) {
			n->snapshots_deferred++;
			return RAFT_BUSY; /* not now: raft asks again at a later entry */
		}
		if (count < 0 || count > CLUSTER_MAX_CHUNKS) {
			log_err("cluster: the state machine gave no snapshot at %" PRIu64 ": %s", index,
				count < 0 ? cluster_strerror(count) : "too many chunks");
			return RAFT_IOERR;
		}
	}
	struct raft_buffer *out = raft_calloc((size_t)count + 1, sizeof *out);
	void *head = out ? raft_malloc(CLUSTER_SNAP_HEADER) : NULL;
	if (!head) {
		raft_free(out);
		return RAFT_NOMEM;
	}
	cluster__snap_header_encode(head, n->conf.role == CLUSTER_ROLE_WITNESS, index);
	out[0] = (struct raft_buffer){ head, CLUSTER_SNAP_HEADER };
	for (int i = 0; i < count; i++)
		out[i + 1] = (struct raft_buffer){ (void *)chunks[i].base, chunks[i].len };
	*bufs = out;
	*n_bufs = (unsigned)count + 1;
	n->snapshots++;
	return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	(void)fsm;
	if (*bufs)
		raft_free((*bufs)[0].base);
	raft_free(*bufs);
	*bufs = NULL;
	*n_bufs = 0;
	return 0;
}

/* raft hands the snapshot's buffers concatenated in one; on success it is
 * ours to free. */
static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct cluster_node *n = fsm->data;
	const unsigned char *p = buf->base;
	bool witness;
	uint64_t index;
	if (cluster__snap_header_decode(p, buf->len, &witness, &index) != 0) {
		log_err("cluster: a snapshot of %zu bytes is not one of ours (bad header)", buf->len);
		return RAFT_MALFORMED;
	}
	if (n->conf.role == CLUSTER_ROLE_BROKER) {
		if (witness) {
			/* Installing it would empty this broker's state. */
			log_err("cluster: refusing a witness's snapshot at %" PRIu64
				": a witness holds no data", index);
			return RAFT_MALFORMED;
		}
		int rc = n->cb.restore ? n->cb.restore(n->cb.owner, index, p + CLUSTER_SNAP_HEADER,
						       buf->len - CLUSTER_SNAP_HEADER) : 0;
		if (rc) {
			log_err("cluster: the state machine refused the snapshot at %" PRIu64 ": %s", index,
				cluster_strerror(rc));
			return RAFT_MALFORMED;
		}
	}
	n->applied = index;
	n->restores++;
	raft_free(buf->base);
	return 0;
}

/* --- proposals --- */

int cluster_propose(struct cluster_node *n, const void *bytes, size_t len, void *token)
{
	if (n->conf.role == CLUSTER_ROLE_WITNESS)
		return CLUSTER_EWITNESS;
	if (!atomic_load(&n->leader))
		return CLUSTER_ENOTLEADER;
	struct cluster_proposal *p = calloc(1, sizeof *p);
	if (!p)
		return -FM_ENOMEM;
	if (len > CLUSTER_ENTRY_MAX_PAYLOAD) {
		free(p);
		return -FM_EINVAL;
	}
	p->buf.base = entry_new(CLUSTER_ENTRY_USER, bytes, (uint32_t)len, &p->buf.len);
	if (!p->buf.base) {
		free(p);
		return -FM_ENOMEM;
	}
	p->node = n;
	p->token = token;
	p->req.data = p;
	pthread_mutex_lock(&n->lock);
	if (atomic_load(&n->stopping)) {
		pthread_mutex_unlock(&n->lock);
		raft_free(p->buf.base);
		free(p);
		return CLUSTER_ESHUTDOWN;
	}
	if (n->queue_tail)
		n->queue_tail->next = p;
	else
		n->queue_head = p;
	n->queue_tail = p;
	pthread_mutex_unlock(&n->lock);
	uv_async_send(&n->wake);
	return 0;
}

static void proposal_fail(struct cluster_proposal *p, int err)
{
	struct cluster_node *n = p->node;
	raft_free(p->buf.base);
	if (n->cb.done)
		n->cb.done(n->cb.owner, p->token, 0, err);
	free(p);
}

/* After the entry is applied here (status 0), or its fate became unknown:
 * an appended entry may still commit under the next leader. */
static void proposal_applied(struct raft_apply *req, int status, void *result)
{
	(void)result;
	struct cluster_proposal *p = req->data;
	struct cluster_node *n = p->node;
	int err = status == 0 ? 0 : status == RAFT_SHUTDOWN ? CLUSTER_ESHUTDOWN : CLUSTER_EUNKNOWN;
	/* Why an entry failed, once per run of failures (a lost leadership
	 * fails every entry in flight). */
	if (status && status != RAFT_SHUTDOWN && !n->proposal_failing)
		log_warn("cluster: entry %llu was not committed: %s (%s)", (unsigned long long)req->index,
			 raft_strerror(status), raft_errmsg(&n->raft));
	n->proposal_failing = status != 0;
	if (n->cb.done)
		n->cb.done(n->cb.owner, p->token, req->index, err);
	free(p);
}

static struct cluster_proposal *take_queue(struct cluster_node *n)
{
	pthread_mutex_lock(&n->lock);
	struct cluster_proposal *p = n->queue_head;
	n->queue_head = n->queue_tail = NULL;
	pthread_mutex_unlock(&n->lock);
	return p;
}

/* One raft entry per proposal: a multi-buffer raft_apply calls back once,
 * when its first entry is applied (README.md, traps). */
static void wake_cb(uv_async_t *a)
{
	struct cluster_node *n = a->data;
	struct cluster_proposal *p = take_queue(n);
	while (p) {
		struct cluster_proposal *next = p->next;
		p->next = NULL;
		if (atomic_load(&n->stopping)) {
			proposal_fail(p, CLUSTER_ESHUTDOWN);
		} else if (raft_state(&n->raft) != RAFT_LEADER) {
			proposal_fail(p, CLUSTER_ENOTLEADER);
		} else {
			int rv = raft_apply(&n->raft, &p->req, &p->buf, 1, proposal_applied);
			if (rv != 0) { /* nothing appended */
				/* Refused as not the leader, the buffer is still ours;
				 * refused later (the append), raft has freed it. */
				if (rv != RAFT_NOTLEADER) {
					log_warn("cluster: raft_apply: %s (%s)", raft_strerror(rv), raft_errmsg(&n->raft));
					p->buf.base = NULL;
				}
				proposal_fail(p, rv == RAFT_NOTLEADER ? CLUSTER_ENOTLEADER : CLUSTER_ERAFT);
			}
		}
		p = next;
	}
	cluster__run_request(n);
}

/* --- leadership watch and status --- */

static enum cluster_state state_of(struct cluster_node *n)
{
	switch (raft_state(&n->raft)) {
	case RAFT_FOLLOWER: return CLUSTER_FOLLOWER;
	case RAFT_CANDIDATE: return CLUSTER_CANDIDATE;
	case RAFT_LEADER: return CLUSTER_LEADER;
	default: return CLUSTER_UNAVAILABLE;
	}
}

static void refresh_status(struct cluster_node *n)
{
	struct cluster_status st;
	memset(&st, 0, sizeof st);
	st.node_id = n->conf.node_id;
	st.role = n->conf.role;
	st.state = state_of(n);
	st.term = raft_current_term(&n->raft);
	raft_id lid = 0;
	const char *laddr = NULL;
	raft_leader(&n->raft, &lid, &laddr);
	st.leader_id = lid;
	if (lid && laddr)
		snprintf(st.leader_address, sizeof st.leader_address, "%s", laddr);
	st.commit_index = raft_commit_index(&n->raft);
	st.applied_index = raft_last_applied(&n->raft);
	st.last_index = raft_last_index(&n->raft);
	st.snapshots = n->snapshots;
	st.restores = n->restores;
	pthread_mutex_lock(&n->lock);
	st.change_kind = n->change_kind;
	st.change_id = n->change_id_asked;
	st.change_pending = n->change_pending;
	st.change_err = n->change_err;
	pthread_mutex_unlock(&n->lock);
	const struct raft_configuration *c = &n->raft.configuration;
	for (unsigned i = 0; i < c->n && st.n_peers < CLUSTER_MAX_NODES; i++) {
		if (c->servers[i].id == n->conf.node_id)
			continue;
		struct cluster_peer_status *ps = &st.peers[st.n_peers++];
		ps->id = c->servers[i].id;
		snprintf(ps->address, sizeof ps->address, "%s", c->servers[i].address);
		ps->voter = c->servers[i].role == RAFT_VOTER;
		raft_index match = 0;
		if (st.state == CLUSTER_LEADER && raft_match_index(&n->raft, ps->id, &match) == 0) {
			ps->has_match = true;
			ps->match_index = match;
			ps->lag = st.last_index > match ? st.last_index - match : 0;
		}
	}
	pthread_mutex_lock(&n->lock);
	n->status = st;
	pthread_mutex_unlock(&n->lock);
}

static void witness_handed_over(struct raft_transfer *req);

static void watermark_applied(struct raft_apply *req, int status, void *result)
{
	free(req);
}

/* The leader tells the witnesses how far every voter's log reaches (the
 * least match index), so that a witness compacts only what all have: the
 * rest it may have to give a broker that was behind (README.md). Proposed
 * when it moved, at most every WATERMARK_PERIOD_MS. */
static void propose_watermark(struct cluster_node *n, uint64_t now)
{
	n->watermark_at = now + WATERMARK_PERIOD_MS;
	const struct raft_configuration *c = &n->raft.configuration;
	uint64_t mark = raft_last_index(&n->raft);
	for (unsigned i = 0; i < c->n; i++) {
		raft_index match = 0;
		if (c->servers[i].id == n->conf.node_id || c->servers[i].role != RAFT_VOTER)
			continue;
		if (raft_match_index(&n->raft, c->servers[i].id, &match) != 0)
			return;
		if (match < mark)
			mark = match;
	}
	if (mark <= n->watermark_proposed)
		return;
	unsigned char payload[8];
	for (int i = 0; i < 8; i++)
		payload[i] = (unsigned char)(mark >> (8 * i));
	struct raft_apply *req = calloc(1, sizeof *req);
	struct raft_buffer buf;
	buf.base = req ? entry_new(CLUSTER_ENTRY_WATERMARK, payload, sizeof payload, &buf.len) : NULL;
	if (!buf.base) {
		free(req);
		return;
	}
	int rv = raft_apply(&n->raft, req, &buf, 1, watermark_applied);
	if (rv != 0) {
		free(req);
		if (rv == RAFT_NOTLEADER) /* refused before it took the buffer */
			raft_free(buf.base);
		return;
	}
	n->watermark_proposed = mark;
}

/* Whom a witness that leads hands leadership to: a voter whose log is
 * complete, not the one tried last (it may be dead). raft_transfer(0) is
 * no good here: just elected, the witness knows no match index yet, and
 * libraft then picks the last voter of the configuration every time, dead
 * or alive. */
static uint64_t witness_successor(struct cluster_node *n)
{
	const struct raft_configuration *c = &n->raft.configuration;
	raft_index last = raft_last_index(&n->raft);
	uint64_t fallback = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < c->n; i++) {
			const struct raft_server *s = &c->servers[i];
			if (s->id == n->conf.node_id || s->role != RAFT_VOTER || s->id == n->witness_tried)
				continue;
			raft_index match = 0;
			if (pass == 1 || (raft_match_index(&n->raft, s->id, &match) == 0 && match == last))
				return s->id;
		}
	}
	for (unsigned i = 0; i < c->n; i++)
		if (c->servers[i].id != n->conf.node_id && c->servers[i].role == RAFT_VOTER)
			fallback = c->servers[i].id;
	return fallback;
}

/* A witness leads only until a broker takes over: it has no state to
 * serve and its snapshots are empty. Tried after every loop iteration while
 * it leads, at most once per election timeout. */
static void witness_hand_over(struct cluster_node *n)
{
	uint64_t now = uv_now(n->loop);
	if (n->transfer_busy || now < n->witness_retry_at)
		return;
	n->witness_retry_at = now + (n->conf.election_timeout_ms ? n->conf.election_timeout_ms : DEFAULT_ELECTION_MS);
	uint64_t to = witness_successor(n);
	n->witness_tried = to;
	n->transfer_cb = NULL;
	n->transfer_target = to;
	n->transfer_busy = true;
	int rv = to ? raft_transfer(&n->raft, &n->transfer, to, witness_handed_over) : RAFT_NOTFOUND;
	if (rv != 0) {
		n->transfer_busy = false;
		log_warn("cluster: witness %" PRIu64 " could not hand leadership to %" PRIu64 ": %s",
			 n->conf.node_id, to, raft_strerror(rv));
		return;
	}
	log_notice("cluster: witness %" PRIu64 " hands leadership to %" PRIu64, n->conf.node_id, to);
}

static void watch_cb(uv_check_t *h)
{
	struct cluster_node *n = h->data;
	if (n->closing)
		return;
	enum cluster_state st = state_of(n);
	raft_id lid = 0;
	const char *laddr = NULL;
	raft_leader(&n->raft, &lid, &laddr);
	atomic_store(&n->leader, st == CLUSTER_LEADER);
	uint64_t now = uv_now(n->loop);
	if (st != n->seen_state || lid != n->seen_leader) {
		if (st == CLUSTER_LEADER && n->seen_state != CLUSTER_LEADER) {
			/* A heartbeat round first, so the match indexes say who is alive. */
			unsigned hb = n->conf.heartbeat_ms ? n->conf.heartbeat_ms : DEFAULT_HEARTBEAT_MS;
			n->witness_retry_at = now + 2 * hb;
			n->witness_tried = 0;
			/* Match indexes are learned in the first heartbeat round. */
			n->watermark_proposed = n->watermark;
			n->watermark_at = now + 2 * hb;
		}
		n->seen_state = st;
		n->seen_leader = lid;
		refresh_status(n);
		n->status_at_ms = now;
		log_notice("cluster: node %" PRIu64 " is %s, term %llu, leader %" PRIu64 "%s%s",
			   n->conf.node_id, cluster_state_name(st), (unsigned long long)raft_current_term(&n->raft),
			   (uint64_t)lid, lid && laddr ? " at " : "", lid && laddr ? laddr : "");
		if (n->cb.role_changed)
			n->cb.role_changed(n->cb.owner, st, lid, lid ? laddr : NULL);
	} else if (now - n->status_at_ms >= STATUS_PERIOD_MS) {
		n->status_at_ms = now;
		refresh_status(n);
	}
	if (st == CLUSTER_LEADER && n->conf.role == CLUSTER_ROLE_WITNESS)
		witness_hand_over(n);
	if (st == CLUSTER_LEADER && n->conf.role == CLUSTER_ROLE_BROKER && now >= n->watermark_at)
		propose_watermark(n, now);
}

static void witness_handed_over(struct raft_transfer *req)
{
	struct cluster_node *n = req->data;
	n->transfer_busy = false;
	/* Still leading (the target did not take over in time): the watch
	 * tries another voter. */
	n->witness_retry_at = 0;
}

bool cluster_is_leader(struct cluster_node *n)
{
	return atomic_load(&n->leader);
}

void cluster_status(struct cluster_node *n, struct cluster_status *st)
{
	pthread_mutex_lock(&n->lock);
	*st = n->status;
	pthread_mutex_unlock(&n->lock);
}

/* --- start and stop --- */

static void handle_closed(uv_handle_t *h);
static void raft_closed(struct raft *r);

static int check_conf(const struct cluster_conf *c, char *err, size_t errlen)
{
	char why[160];
	if (c->node_id == 0)
		return fm_fail(err, errlen, "cluster node id: must be >= 1");
	if (cluster_address_check(c->address, why, sizeof why))
		return fm_fail(err, errlen, "cluster address: %s", why);
	if (!c->data_dir || !*c->data_dir)
		return fm_fail(err, errlen, "cluster data directory: not set");
	if (strlen(c->data_dir) >= 4096)
		return fm_fail(err, errlen, "cluster data directory: path too long");
	if (c->n_voters > CLUSTER_MAX_NODES)
		return fm_fail(err, errlen, "cluster voters: at most %d", CLUSTER_MAX_NODES);
	if (!c->join && c->n_voters == 0)
		return fm_fail(err, errlen, "cluster voters: none (a node that waits to be added sets join)");
	if (c->join && c->n_voters)
		return fm_fail(err, errlen, "cluster voters: a joining node takes its configuration from the leader");
	bool self = false;
	for (unsigned i = 0; i < c->n_voters; i++) {
		if (c->voters[i].id == 0)
			return fm_fail(err, errlen, "cluster voter: node ids start at 1");
		if (cluster_address_check(c->voters[i].address, why, sizeof why))
			return fm_fail(err, errlen, "cluster voter %" PRIu64 ": %s", c->voters[i].id, why);
		for (unsigned j = 0; j < i; j++) {
			if (c->voters[j].id == c->voters[i].id)
				return fm_fail(err, errlen, "cluster voter %" PRIu64 ": listed twice", c->voters[i].id);
			if (strcmp(c->voters[j].address, c->voters[i].address) == 0)
				return fm_fail(err, errlen, "cluster voters %" PRIu64 " and %" PRIu64 ": same address %s",
						 c->voters[j].id, c->voters[i].id, c->voters[i].address);
		}
		if (c->voters[i].id == c->node_id) {
			self = true;
			if (strcmp(c->voters[i].address, c->address) != 0)
				return fm_fail(err, errlen, "cluster voter %" PRIu64 ": address %s is not this node's %s",
						 c->node_id, c->voters[i].address, c->address);
		}
	}
	if (!c->join && !self)
		return fm_fail(err, errlen, "cluster voters: this node (%" PRIu64 ") is not one of them", c->node_id);
	unsigned election = c->election_timeout_ms ? c->election_timeout_ms : DEFAULT_ELECTION_MS;
	unsigned heartbeat = c->heartbeat_ms ? c->heartbeat_ms : DEFAULT_HEARTBEAT_MS;
	if (heartbeat >= election)
		return fm_fail(err, errlen, "cluster heartbeat %u ms: must be below the election timeout (%u ms)",
				 heartbeat, election);
	unsigned threshold = c->snapshot_threshold ? c->snapshot_threshold : DEFAULT_SNAPSHOT_THRESHOLD;
	unsigned trailing = c->snapshot_trailing ? c->snapshot_trailing : DEFAULT_SNAPSHOT_TRAILING;
	if (c->segment_size && (c->segment_size % 4096 || c->segment_size > MAX_SEGMENT_SIZE))
		return fm_fail(err, errlen, "cluster segment size %zu: a multiple of 4096 up to %u (larger ones "
				 "make libraft 0.22.1 refuse every entry)", c->segment_size, MAX_SEGMENT_SIZE);
	if (trailing > threshold)
		return fm_fail(err, errlen, "cluster snapshot trailing %u: above the threshold %u", trailing,
				 threshold);
	return 0;
}

static void node_free(struct cluster_node *n)
{
	pthread_mutex_destroy(&n->lock);
	free(n);
}

static int raft_fail(struct cluster_node *n, char *err, size_t errlen, const char *what, int rv)
{
	if (errlen)
		snprintf(err, errlen, "cluster: %s: %s (%s)", what, raft_strerror(rv),
			 n->raft.io ? raft_errmsg(&n->raft) : n->io.errmsg);
	return CLUSTER_ERAFT;
}

int cluster_start(uv_loop_t *loop, const struct cluster_conf *conf, const struct cluster_callbacks *cb,
		  struct cluster_node **out, char *err, size_t errlen)
{
	int rc = check_conf(conf, err, errlen);
	if (rc)
		return rc;
	if (mkdir(conf->data_dir, 0700) != 0 && errno != EEXIST) {
		if (errlen)
			snprintf(err, errlen, "cluster data directory %s: %s", conf->data_dir, strerror(errno));
		return -FM_EIO;
	}
	struct cluster_node *n = calloc(1, sizeof *n);
	if (!n)
		return -FM_ENOMEM;
	n->loop = loop;
	n->conf = *conf;
	snprintf(n->data_dir, sizeof n->data_dir, "%s", conf->data_dir);
	n->conf.data_dir = n->data_dir;
	n->cb = *cb;
	pthread_mutex_init(&n->lock, NULL);
	atomic_init(&n->leader, false);
	atomic_init(&n->stopping, false);

	n->transport.version = 1; /* 0.22 refuses a transport without it */
	int rv = raft_uv_tcp_init(&n->transport, loop);
	if (rv != 0) {
		if (errlen)
			snprintf(err, errlen, "cluster: raft_uv_tcp_init: %s", raft_strerror(rv));
		node_free(n);
		return CLUSTER_ERAFT;
	}
	cluster__nodelay_wrap(n);
	rv = raft_uv_init(&n->io, loop, n->data_dir, &n->transport);
	if (rv != 0) {
		if (errlen)
			snprintf(err, errlen, "cluster: raft_uv_init %s: %s", n->data_dir, n->io.errmsg);
		raft_uv_tcp_close(&n->transport);
		node_free(n);
		return CLUSTER_ERAFT;
	}
	raft_uv_set_segment_size(&n->io, conf->segment_size ? conf->segment_size : DEFAULT_SEGMENT_SIZE);
	n->fsm.version = 2;
	n->fsm.data = n;
	n->fsm.apply = fsm_apply;
	n->fsm.snapshot = fsm_snapshot;
	n->fsm.restore = fsm_restore;
	n->fsm.snapshot_finalize = fsm_snapshot_finalize;
	rv = raft_init(&n->raft, &n->io, &n->fsm, conf->node_id, conf->address);
	if (rv != 0) {
		rc = raft_fail(n, err, errlen, "raft_init", rv);
		goto fail_io;
	}
	if (!conf->join) {
		struct raft_configuration c;
		raft_configuration_init(&c);
		for (unsigned i = 0; i < conf->n_voters && rv == 0; i++)
			rv = raft_configuration_add(&c, conf->voters[i].id, conf->voters[i].address, RAFT_VOTER);
		if (rv == 0)
			rv = raft_bootstrap(&n->raft, &c);
		raft_configuration_close(&c);
		if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) { /* CANTBOOTSTRAP: the directory has a log */
			rc = raft_fail(n, err, errlen, "bootstrap", rv);
			goto fail_raft;
		}
	}
	raft_set_election_timeout(&n->raft, conf->election_timeout_ms ? conf->election_timeout_ms : DEFAULT_ELECTION_MS);
	raft_set_heartbeat_timeout(&n->raft, conf->heartbeat_ms ? conf->heartbeat_ms : DEFAULT_HEARTBEAT_MS);
	/* Pre-vote: a node that was cut off (SIGSTOP, a partition) does not
	 * depose a working leader with its inflated term when it comes back. */
	raft_set_pre_vote(&n->raft, true);
	raft_set_snapshot_threshold(&n->raft, conf->snapshot_threshold ? conf->snapshot_threshold : DEFAULT_SNAPSHOT_THRESHOLD);
	n->trailing = conf->snapshot_trailing ? conf->snapshot_trailing : DEFAULT_SNAPSHOT_TRAILING;
	raft_set_snapshot_trailing(&n->raft, n->trailing);
	raft_set_max_inflight_entries(&n->raft, conf->max_inflight_entries ? conf->max_inflight_entries : DEFAULT_MAX_INFLIGHT);
	raft_uv_set_connect_retry_delay(&n->io, 100);

	uv_async_init(loop, &n->wake, wake_cb);
	n->wake.data = n;
	uv_check_init(loop, &n->watch);
	n->watch.data = n;
	n->transfer.data = n;
	n->change.data = n;
	n->raft.data = n;
	rv = raft_start(&n->raft);
	if (rv != 0) {
		rc = raft_fail(n, err, errlen, "start", rv);
		n->closing = 2;
		uv_close((uv_handle_t *)&n->wake, handle_closed);
		uv_close((uv_handle_t *)&n->watch, handle_closed);
		goto fail_raft;
	}
	n->applied = raft_last_applied(&n->raft);
	n->seen_state = CLUSTER_UNAVAILABLE;
	refresh_status(n);
	uv_check_start(&n->watch, watch_cb);
	*out = n;
	return 0;

fail_raft:
	/* raft_init succeeded: raft_close closes the io; the node is freed when
	 * the loop has run the closes. */
	n->closing++;
	n->raft.data = n;
	raft_close(&n->raft, raft_closed);
	return rc;
fail_io:
	raft_uv_close(&n->io);
	raft_uv_tcp_close(&n->transport);
	node_free(n);
	return rc;
}

static void stop_step(struct cluster_node *n)
{
	if (--n->closing > 0)
		return;
	void (*cb)(void *) = n->stop_cb;
	void *arg = n->stop_arg;
	node_free(n);
	if (cb)
		cb(arg);
}

static void handle_closed(uv_handle_t *h)
{
	stop_step(h->data);
}

static void raft_closed(struct raft *r)
{
	struct cluster_node *n = r->data;
	raft_uv_close(&n->io);
	raft_uv_tcp_close(&n->transport);
	stop_step(n);
}

void cluster_stop(struct cluster_node *n, void (*cb)(void *), void *arg)
{
	pthread_mutex_lock(&n->lock);
	atomic_store(&n->stopping, true);
	pthread_mutex_unlock(&n->lock);
	atomic_store(&n->leader, false);
	n->stop_cb = cb;
	n->stop_arg = arg;
	n->closing = 3; /* wake, watch, raft */
	struct cluster_proposal *p = take_queue(n);
	while (p) {
		struct cluster_proposal *next = p->next;
		proposal_fail(p, CLUSTER_ESHUTDOWN);
		p = next;
	}
	uv_check_stop(&n->watch);
	uv_close((uv_handle_t *)&n->wake, handle_closed);
	uv_close((uv_handle_t *)&n->watch, handle_closed);
	raft_close(&n->raft, raft_closed);
}
