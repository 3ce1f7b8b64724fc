/* raft-traps: rechecks, on the libraft this is built against, the library
 * behaviours src/cluster depends on or works around (src/cluster/README.md,
 * "libraft traps"). One single-voter node per check, in a fresh directory
 * under DIR. Prints one line per trap ("trap NAME: true|false (detail)")
 * and exits 1 when one the module relies on has changed.
 *
 * usage: raft-traps DIR */
#include <pthread.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

struct node {
	uv_loop_t loop;
	struct raft_uv_transport transport;
	struct raft_io io;
	struct raft_fsm fsm;
	struct raft raft;
	uv_timer_t timer;
	unsigned applied;          /* fsm apply calls */
	raft_index seen_index[16]; /* raft_last_applied() + 1 at each apply */
	bool done, closed;
	int status;
	unsigned applied_at_cb;
	raft_index last_applied_at_cb;
	struct raft_apply req;
	struct raft_barrier barrier;
	/* FSM version 3: where snapshot_async runs. */
	bool async_called;
	pthread_t async_thread;
};

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	struct node *n = fsm->data;
	if (n->applied < 16)
		n->seen_index[n->applied] = raft_last_applied(&n->raft) + 1;
	n->applied++;
	*result = NULL;
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	if (fsm->version < 3)
		return RAFT_NOTFOUND;
	*bufs = raft_malloc(sizeof **bufs);
	(*bufs)[0].len = 8;
	(*bufs)[0].base = raft_calloc(1, 8);
	*n_bufs = 1;
	return 0;
}

static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct node *n = fsm->data;
	n->async_called = true;
	n->async_thread = pthread_self();
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	return RAFT_NOTFOUND;
}

static void timeout_cb(uv_timer_t *t)
{
	struct node *n = t->data;
	n->done = true;
	n->status = -1;
	uv_stop(&n->loop);
}

static int node_open(struct node *n, const char *dir, size_t segment_size, bool *data_kept)
{
	memset(n, 0, sizeof *n);
	mkdir(dir, 0700);
	uv_loop_init(&n->loop);
	n->transport.version = 1;
	if (raft_uv_tcp_init(&n->transport, &n->loop) != 0)
		return -1;
	void *mine = &n->transport;
	n->transport.data = mine;
	if (raft_uv_init(&n->io, &n->loop, dir, &n->transport) != 0)
		return -1;
	if (data_kept)
		*data_kept = n->transport.data == mine;
	if (segment_size)
		raft_uv_set_segment_size(&n->io, segment_size);
	n->fsm.version = 2;
	n->fsm.data = n;
	n->fsm.apply = fsm_apply;
	n->fsm.snapshot = fsm_snapshot;
	n->fsm.restore = fsm_restore;
	if (raft_init(&n->raft, &n->io, &n->fsm, 1, "127.0.0.1:1") != 0)
		return -1;
	struct raft_configuration c;
	raft_configuration_init(&c);
	raft_configuration_add(&c, 1, "127.0.0.1:1", RAFT_VOTER);
	int rv = raft_bootstrap(&n->raft, &c);
	raft_configuration_close(&c);
	if (rv != 0)
		return -1;
	raft_set_election_timeout(&n->raft, 100);
	raft_set_heartbeat_timeout(&n->raft, 10);
	if (raft_start(&n->raft) != 0)
		return -1;
	uv_timer_init(&n->loop, &n->timer);
	n->timer.data = n;
	uv_timer_start(&n->timer, timeout_cb, 5000, 0);
	return 0;
}

static void raft_closed(struct raft *r)
{
	struct node *n = r->data;
	raft_uv_close(&n->io);
	raft_uv_tcp_close(&n->transport);
	n->closed = true;
}

static void node_close(struct node *n)
{
	uv_timer_stop(&n->timer);
	uv_close((uv_handle_t *)&n->timer, NULL);
	n->raft.data = n;
	raft_close(&n->raft, raft_closed);
	uv_run(&n->loop, UV_RUN_DEFAULT);
	uv_loop_close(&n->loop);
}

/* Runs the loop until the node leads (a single voter elects itself). */
static bool wait_leader(struct node *n)
{
	while (!n->done && raft_state(&n->raft) != RAFT_LEADER)
		uv_run(&n->loop, UV_RUN_ONCE);
	return raft_state(&n->raft) == RAFT_LEADER;
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	struct node *n = req->data;
	n->status = status;
	n->applied_at_cb = n->applied;
	n->last_applied_at_cb = raft_last_applied(&n->raft);
	n->done = true;
}

static void barrier_cb(struct raft_barrier *req, int status)
{
	struct node *n = req->data;
	n->status = status;
	n->done = true;
}

static int propose(struct node *n, unsigned count)
{
	struct raft_buffer bufs[4];
	for (unsigned i = 0; i < count; i++) {
		bufs[i].len = 8;
		bufs[i].base = raft_malloc(8);
		memset(bufs[i].base, (int)i, 8);
	}
	n->done = false;
	n->req.data = n;
	int rv = raft_apply(&n->raft, &n->req, bufs, count, apply_cb);
	if (rv != 0) {
		for (unsigned i = 0; i < count; i++)
			raft_free(bufs[i].base);
		return rv;
	}
	while (!n->done)
		uv_run(&n->loop, UV_RUN_ONCE);
	return n->status;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: raft-traps DIR\n");
		return 2;
	}
	char dir[4096];
	int changed = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* raft_version_number() is declared but not exported by 0.22.1's .so. */
	printf("libraft headers %d.%d.%d\n", RAFT_VERSION_MAJOR, RAFT_VERSION_MINOR, RAFT_VERSION_RELEASE);
	struct node *n = calloc(1, sizeof *n);
	bool kept = true;

	/* 1. Inside fsm->apply, is raft_last_applied() + 1 the entry's index,
	 * also right after a barrier? node.c's fsm_apply counts on it. */
	snprintf(dir, sizeof dir, "%s/index", argv[1]);
	if (node_open(n, dir, 0, &kept) != 0 || !wait_leader(n)) {
		fprintf(stderr, "raft-traps: a single-voter node did not start\n");
		return 1;
	}
	int rv = propose(n, 1);
	raft_index first = n->req.index;
	n->done = false;
	n->barrier.data = n;
	int brv = raft_barrier(&n->raft, &n->barrier, barrier_cb);
	while (brv == 0 && !n->done)
		uv_run(&n->loop, UV_RUN_ONCE);
	int rv2 = propose(n, 1);
	bool index_ok = rv == 0 && brv == 0 && rv2 == 0 && n->applied == 2 && n->seen_index[0] == first &&
			n->seen_index[1] == n->req.index && n->req.index == first + 2;
	printf("trap apply_index_is_last_applied_plus_one: %s (entry %llu seen as %llu; after a barrier, "
	       "entry %llu seen as %llu)\n", index_ok ? "true" : "false", first, n->seen_index[0], n->req.index,
	       n->seen_index[1]);
	if (!index_ok)
		changed = 1;
	node_close(n);

	/* 2. A multi-entry raft_apply: when does its callback fire, and are
	 * all its entries appended? (Its lost buffers are what LeakSanitizer
	 * would report: the test runs with detect_leaks=0.) */
	snprintf(dir, sizeof dir, "%s/multi", argv[1]);
	if (node_open(n, dir, 0, NULL) != 0 || !wait_leader(n)) {
		fprintf(stderr, "raft-traps: a single-voter node did not start\n");
		return 1;
	}
	raft_index last_before = raft_last_index(&n->raft);
	rv = propose(n, 3);
	bool early = rv == 0 && (n->applied_at_cb < 3 || n->last_applied_at_cb < n->req.index + 2);
	/* Let anything still queued be appended and applied. */
	uv_timer_t settle;
	uv_timer_init(&n->loop, &settle);
	settle.data = n;
	n->done = false;
	uv_timer_start(&settle, timeout_cb, 300, 0);
	while (!n->done)
		uv_run(&n->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&settle, NULL);
	raft_index appended = raft_last_index(&n->raft) - last_before;
	printf("trap multi_entry_apply_calls_back_early: %s (callback after %u of 3 applied, last_applied %llu, "
	       "entries %llu..%llu)\n", early ? "true" : "false", n->applied_at_cb, n->last_applied_at_cb,
	       n->req.index, n->req.index + 2);
	printf("trap multi_entry_apply_drops_entries: %s (3 buffers: %llu entries appended, %u applied)\n",
	       appended < 3 || n->applied < 3 ? "true" : "false", appended, n->applied);
	node_close(n);

	/* 3. The transport's data field: raft_uv_init takes it. */
	/* 3b. An entry whose length is not a multiple of 8 (node.c pads). The
	 * refused buffer is not handed back: raft has freed it (a free of ours
	 * was a double free under ASan), so it is not freed here. */
	snprintf(dir, sizeof dir, "%s/unaligned", argv[1]);
	if (node_open(n, dir, 0, NULL) != 0 || !wait_leader(n)) {
		fprintf(stderr, "raft-traps: a single-voter node did not start\n");
		return 1;
	}
	{
		struct raft_buffer odd = { .base = raft_malloc(9), .len = 9 };
		memset(odd.base, 0, 9);
		n->req.data = n;
		n->done = false;
		int orv = raft_apply(&n->raft, &n->req, &odd, 1, apply_cb);
		while (orv == 0 && !n->done)
			uv_run(&n->loop, UV_RUN_ONCE);
		printf("trap entry_length_must_be_multiple_of_8: %s (a 9-byte entry: %s; %s)\n",
		       orv == RAFT_INVALID ? "true" : "false", orv ? raft_strerror(orv) : "accepted",
		       orv ? raft_errmsg(&n->raft) : "");
	}
	node_close(n);

	/* 3c. FSM version 3: does snapshot_async run off the loop's thread? */
	snprintf(dir, sizeof dir, "%s/async", argv[1]);
	if (node_open(n, dir, 0, NULL) != 0) {
		fprintf(stderr, "raft-traps: a single-voter node did not start\n");
		return 1;
	}
	n->fsm.version = 3;
	n->fsm.snapshot_async = fsm_snapshot_async;
	raft_set_snapshot_threshold(&n->raft, 4);
	raft_set_snapshot_trailing(&n->raft, 2);
	if (!wait_leader(n)) {
		fprintf(stderr, "raft-traps: a single-voter node did not lead\n");
		return 1;
	}
	for (int i = 0; i < 8 && !n->async_called; i++)
		propose(n, 1);
	printf("trap snapshot_async_runs_on_the_loop: %s (%s)\n",
	       n->async_called && pthread_equal(n->async_thread, pthread_self()) ? "true" : "false",
	       !n->async_called ? "snapshot_async never called"
	       : pthread_equal(n->async_thread, pthread_self()) ? "called on the loop's thread right after snapshot"
							 : "called on another thread");
	node_close(n);

	/* Harmless either way: nodelay.c finds the node with offsetof. */
	printf("trap transport_data_overwritten_by_raft_uv_init: %s\n", kept ? "false" : "true");

	/* 4. Segment sizes: which ones let a leader append? */
	static const unsigned sizes_mb[] = { 8, 16, 32, 64 };
	for (unsigned i = 0; i < sizeof sizes_mb / sizeof *sizes_mb; i++) {
		snprintf(dir, sizeof dir, "%s/segment-%u", argv[1], sizes_mb[i]);
		if (node_open(n, dir, (size_t)sizes_mb[i] << 20, NULL) != 0 || !wait_leader(n)) {
			fprintf(stderr, "raft-traps: a node with %u MiB segments did not start\n", sizes_mb[i]);
			return 1;
		}
		rv = propose(n, 1);
		printf("trap segment_%u_mib_refuses_entries: %s (raft_apply: %s)\n", sizes_mb[i],
		       rv == RAFT_NOSPACE ? "true" : "false", rv ? raft_strerror(rv) : "ok");
		if (sizes_mb[i] <= 16 && rv != 0)
			changed = 1; /* the sizes node.c allows must work */
		node_close(n);
	}
	free(n);
	return changed;
}
