/* The cluster module: one raft node (libraft 0.22, its libuv I/O and TCP
 * transport) that replicates opaque entries and drives a state machine
 * through callbacks. It knows nothing of the store: an entry is bytes, a
 * snapshot is bytes. Design and the libraft traps: src/cluster/README.md.
 *
 * Threads: cluster_start, cluster_stop and the membership calls run on the
 * loop's thread (the loop the node is given); cluster_propose,
 * cluster_status and cluster_is_leader may be called from any thread.
 * Every callback runs on the loop's thread. */
#ifndef FM_CLUSTER_H
#define FM_CLUSTER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define CLUSTER_MAX_NODES 16
#define CLUSTER_ADDRESS_MAX 272 /* a 255-byte host name, ':' and a port */

/* Errors of this module; functions return 0 or a negative value, either one
 * of these or a negative fm_err (FM_ENOMEM, FM_EINVAL, ...). */
enum cluster_err {
	CLUSTER_ENOTLEADER = 100, /* this node is not the leader: nothing was appended */
	CLUSTER_EUNKNOWN,         /* leadership lost after the append: the entry may still
	                             commit under the next leader (apply will tell) */
	CLUSTER_ESHUTDOWN,        /* the node is stopping: nothing more is accepted */
	CLUSTER_EWITNESS,         /* a witness has no state machine to propose to */
	CLUSTER_EBUSY,            /* a membership change or transfer is already running */
	CLUSTER_ERAFT,            /* libraft refused; its message is logged */
};
const char *cluster_strerror(int err);

enum cluster_role { CLUSTER_ROLE_BROKER, CLUSTER_ROLE_WITNESS };

/* Mirrors raft_state(): what this node is right now. */
enum cluster_state {
	CLUSTER_UNAVAILABLE = 0,
	CLUSTER_FOLLOWER,
	CLUSTER_CANDIDATE,
	CLUSTER_LEADER,
};
const char *cluster_state_name(enum cluster_state s);
const char *cluster_role_name(enum cluster_role r);

struct cluster_peer {
	uint64_t id;                       /* > 0, unique in the cluster */
	char address[CLUSTER_ADDRESS_MAX]; /* HOST:PORT its raft listener is reached at */
};

/* --- parsing (pure; src/cluster/address.c) --- */

/* Checks "HOST:PORT" (a host name or IPv4 address, a port 1-65535). Returns 0,
 * or -FM_EINVAL with a reason in err (errlen bytes, may be 0). */
int cluster_address_check(const char *address, char *err, size_t errlen);
/* "N HOST:PORT" or "N=HOST:PORT" (the test program's --peer) into *peer. */
int cluster_peer_parse(const char *text, struct cluster_peer *peer, char *err, size_t errlen);

struct cluster_conf {
	uint64_t node_id;
	char address[CLUSTER_ADDRESS_MAX]; /* this node's HOST:PORT: listened on, told to peers */
	/* Every voter of the cluster at its first start, this node included when
	 * it is one. Used once: a data directory that holds a log keeps its own
	 * configuration. Empty with join: the node waits to be added. */
	struct cluster_peer voters[CLUSTER_MAX_NODES];
	unsigned n_voters;
	bool join;
	enum cluster_role role;
	const char *data_dir;         /* raft's own directory (created if missing) */
	unsigned election_timeout_ms; /* 0: 500 */
	unsigned heartbeat_ms;        /* 0: 50; must be below the election timeout */
	unsigned snapshot_threshold;  /* entries between snapshots; 0: 1024 */
	unsigned snapshot_trailing;   /* entries kept after one; 0: 512 */
	unsigned max_inflight_entries; /* per follower and unstored locally; 0: 32 */
	size_t segment_size;          /* bytes of a log segment, 4 KiB multiple <= 16 MiB; 0: 8 MiB */
};

/* A piece of the snapshot a state machine hands over. raft writes it as it
 * is (no copy): it must stay unchanged until callbacks.snapshot is called
 * again or the node has stopped. */
struct cluster_chunk {
	const void *base;
	size_t len;
};

struct cluster_callbacks {
	void *owner;
	/* A committed entry, in log order, on every broker node (never on a
	 * witness). It cannot refuse: a state machine that cannot apply stops
	 * its process. index is the raft index (strictly increasing; after a
	 * restore it continues from the snapshot's index). */
	void (*apply)(void *owner, uint64_t index, const void *bytes, size_t len);
	/* Proposal token's outcome: err 0 once its entry is committed and applied
	 * here, else CLUSTER_ENOTLEADER / CLUSTER_EUNKNOWN / CLUSTER_ESHUTDOWN. */
	void (*done)(void *owner, void *token, uint64_t index, int err);
	/* The state at the last applied index (index), as up to
	 * CLUSTER_MAX_CHUNKS chunks. Returns the count, CLUSTER_EBUSY (not now:
	 * asked again at a later entry) or a negative error. */
	int (*snapshot)(void *owner, uint64_t index, struct cluster_chunk *chunks);
	/* Replace the state with a snapshot taken at index. Returns 0 or a
	 * negative error (the node then stops with raft's error). */
	int (*restore)(void *owner, uint64_t index, const void *bytes, size_t len);
	/* This node's state or the leader it knows changed (leader_id 0: none
	 * known). The only leadership signal: libraft has no callback for it. */
	void (*role_changed)(void *owner, enum cluster_state state, uint64_t leader_id,
			     const char *leader_address);
};
#define CLUSTER_MAX_CHUNKS 8

struct cluster_peer_status {
	uint64_t id;
	char address[CLUSTER_ADDRESS_MAX];
	bool voter;
	bool has_match; /* match index known (this node is the leader) */
	uint64_t match_index;
	uint64_t lag; /* leader's last index - match index */
};

struct cluster_status {
	uint64_t node_id;
	enum cluster_role role;
	enum cluster_state state;
	uint64_t term;
	uint64_t leader_id;
	char leader_address[CLUSTER_ADDRESS_MAX];
	uint64_t commit_index, applied_index, last_index;
	uint64_t snapshots;     /* taken by this node since it started */
	uint64_t restores;      /* snapshots installed since it started */
	/* The last membership change or transfer asked with cluster_request. */
	int change_kind;        /* an enum cluster_change, 0: none asked */
	uint64_t change_id;
	bool change_pending;    /* still running */
	int change_err;         /* its outcome once done: 0 or an error */
	unsigned n_peers;
	struct cluster_peer_status peers[CLUSTER_MAX_NODES];
};

/* Formats (pure; src/cluster/status.c). Each returns the length written
 * (excluding the NUL) or -FM_ELIMIT if cap was too small. */
int cluster_status_json(const struct cluster_status *st, char *out, size_t cap);
int cluster_status_prometheus(const struct cluster_status *st, char *out, size_t cap);

struct cluster_node;

/* Starts a node on loop (the caller's thread runs it). Checks conf (errors
 * name the option), opens the data directory, bootstraps it on the first
 * start, and starts raft. *out is the node; freed by cluster_stop. Returns
 * 0 or a negative error, with a reason in err; after a failure past
 * raft_init, running the loop finishes closing what was opened. */
int cluster_start(uv_loop_t *loop, const struct cluster_conf *conf,
		  const struct cluster_callbacks *cb, struct cluster_node **out,
		  char *err, size_t errlen);

/* Proposes one entry (a copy of bytes; one proposal = one raft entry) from
 * any thread. Returns 0 when queued (callbacks.done follows, on the loop's
 * thread) or CLUSTER_ENOTLEADER / CLUSTER_EWITNESS / CLUSTER_ESHUTDOWN /
 * -FM_ENOMEM at once (no done then). */
int cluster_propose(struct cluster_node *n, const void *bytes, size_t len, void *token);

/* True when this node was the leader at its last state check (any thread). */
bool cluster_is_leader(struct cluster_node *n);

/* A copy of the status, at most one loop iteration old (any thread). */
void cluster_status(struct cluster_node *n, struct cluster_status *st);

/* Membership, on the leader, from the loop's thread; one at a time. cb gets
 * 0 or an error. add: the node joins as a voter once it has caught up
 * (raft_add, then raft_assign). */
typedef void (*cluster_change_cb)(void *arg, int err);
int cluster_add(struct cluster_node *n, uint64_t id, const char *address, cluster_change_cb cb,
		void *arg);
int cluster_remove(struct cluster_node *n, uint64_t id, cluster_change_cb cb, void *arg);
/* Hands leadership to id (0: the most up-to-date voter, raft's choice). cb
 * gets 0 when id (any other node for 0) is the leader afterwards. */
int cluster_transfer(struct cluster_node *n, uint64_t id, cluster_change_cb cb, void *arg);

/* The same from any thread, for operators (HTTP API, ferromq-ctl): queued
 * to the loop. Returns 0 when queued, or at once CLUSTER_ENOTLEADER,
 * CLUSTER_EBUSY (a change asked earlier still runs), CLUSTER_ESHUTDOWN or
 * -FM_EINVAL (id 0 for add/remove, a bad address). The outcome is logged
 * and shows in cluster_status (change_*). */
enum cluster_change { CLUSTER_CHANGE_ADD = 1, CLUSTER_CHANGE_REMOVE, CLUSTER_CHANGE_TRANSFER };
int cluster_request(struct cluster_node *n, enum cluster_change kind, uint64_t id, const char *address);

/* On the loop's thread: cb(arg, 0) once every entry committed before the
 * call is applied here (a barrier entry of this term commits), or an error
 * (leadership lost, stopping). The node must be the leader. */
int cluster_barrier(struct cluster_node *n, cluster_change_cb cb, void *arg);

/* The operator's way out when the other voters are lost for good (the
 * other node of a pair died): with every node stopped, makes this node's log
 * a cluster of this node alone (raft_recover), and returns; started again,
 * the node leads by itself. Entries only the lost nodes had are lost: run it
 * on the node with the longest log, once. Any thread, no running node on
 * conf->data_dir. Returns 0 or an error with a reason in err. */
int cluster_continue_alone(const struct cluster_conf *conf, char *err, size_t errlen);

/* Stops raft (pending proposals get CLUSTER_ESHUTDOWN), closes its I/O and
 * handles, frees the node, then calls cb (may be NULL) on the loop. Threads
 * that propose must have stopped proposing before it is called. */
void cluster_stop(struct cluster_node *n, void (*cb)(void *arg), void *arg);

#endif
