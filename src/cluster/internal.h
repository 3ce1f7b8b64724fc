/* The node's insides, shared by node.c, membership.c and nodelay.c only. */
#ifndef FM_CLUSTER_INTERNAL_H
#define FM_CLUSTER_INTERNAL_H
#include <pthread.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdatomic.h>

#include "cluster/cluster.h"

/* One proposal: queued by any thread, applied by the loop. */
struct cluster_proposal {
	struct raft_apply req; /* req.data = the proposal */
	struct cluster_node *node;
	void *token;
	struct raft_buffer buf; /* raft_malloc'd; raft's once raft_apply took it */
	struct cluster_proposal *next;
};

enum cluster_change_step { CHANGE_NONE, CHANGE_ADD, CHANGE_ASSIGN, CHANGE_REMOVE };

struct cluster_node {
	uv_loop_t *loop;
	struct cluster_conf conf; /* conf.data_dir points at data_dir below */
	char data_dir[4096];
	struct cluster_callbacks cb;

	struct raft_uv_transport transport; /* its data field is libraft's */
	struct raft_io io;
	struct raft_fsm fsm; /* fsm.data = the node */
	struct raft raft;

	/* TCP_NODELAY wrapper (nodelay.c): the transport's own methods. */
	int (*tcp_listen)(struct raft_uv_transport *, raft_uv_accept_cb);
	int (*tcp_connect)(struct raft_uv_transport *, struct raft_uv_connect *, raft_id, const char *,
			   raft_uv_connect_cb);
	raft_uv_accept_cb accept_cb;

	uv_async_t wake;  /* proposals queued by other threads */
	bool proposal_failing; /* the last entry that came back failed (logged once) */
	uv_check_t watch; /* after each loop iteration: state, leader, status */

	pthread_mutex_t lock; /* queue, status */
	struct cluster_proposal *queue_head, *queue_tail;
	struct cluster_status status;

	atomic_bool leader;
	atomic_bool stopping;

	/* Loop-thread state. */
	enum cluster_state seen_state;
	uint64_t seen_leader;
	uint64_t applied;        /* last index handed to apply (or restored) */
	uint64_t snapshots, restores;
	uint64_t snapshots_deferred; /* a witness's, while brokers lag */
	uint64_t watermark;          /* every voter's log reaches it (applied) */
	uint64_t watermark_proposed; /* as leader */
	uint64_t watermark_at;       /* loop time of the next proposal */
	unsigned trailing;
	uint64_t status_at_ms;

	struct raft_change change;
	enum cluster_change_step change_step;
	uint64_t change_id;
	cluster_change_cb change_cb;
	void *change_arg;

	/* An operator's change (cluster_request), under lock until the loop
	 * takes it; its outcome goes into status. */
	int request_kind; /* 0: none waiting */
	uint64_t request_id;
	char request_address[CLUSTER_ADDRESS_MAX];
	atomic_bool request_busy; /* asked and not finished */
	int change_kind;
	uint64_t change_id_asked;
	bool change_pending;
	int change_err;

	struct raft_barrier barrier;
	cluster_change_cb barrier_cb;
	void *barrier_arg;

	struct raft_transfer transfer;
	bool transfer_busy;
	uint64_t witness_tried;    /* a witness's last hand-over target */
	uint64_t witness_retry_at; /* loop time of its next attempt */
	uint64_t transfer_target;
	cluster_change_cb transfer_cb;
	void *transfer_arg;

	int closing; /* handles and raft still to close */
	void (*stop_cb)(void *);
	void *stop_arg;
};

void cluster__nodelay_wrap(struct cluster_node *n);
/* Runs the operator's change cluster_request queued, if any (loop thread). */
void cluster__run_request(struct cluster_node *n);

#endif
