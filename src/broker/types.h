/* The broker's types: its state, a worker's, a client's, and the ports
 * through which it reaches the network, the store, the bridges and the
 * collectors. Types only: the functions are declared by the header of the
 * file that defines them (broker.h for other folders). */
#ifndef FM_BROKER_TYPES_H
#define FM_BROKER_TYPES_H
#include "../base/buf.h"
#include "../base/hmap.h"
#include "../config/config.h"
#include "../mqtt/mqtt.h"
#include "../session/session.h"
#include "../topic/topic.h"
#include "stats.h"
#include "store_port.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct broker;
struct bworker;
struct client;
struct broker_auth;
struct auth_acl_client;

/* What the broker needs from the network layer (implemented in net/). */
struct broker_ports {
	/* Output buffer of the client's connection; packets are appended to it. */
	struct buf *(*out)(struct client *c);
	/* Bytes waiting in the client's output (for the output cap). */
	size_t (*out_pending)(struct client *c);
	/* Write the output at the end of this loop turn. */
	void (*flush)(struct client *c);
	/* Flush, then close the connection; broker_on_close follows. */
	void (*close)(struct client *c);
	/* Close the connection now, dropping its pending output (a client that
	 * does not read); broker_on_close follows. */
	void (*abort)(struct client *c);
	/* Wake `worker`'s loop: its wake list has work. Thread-safe. */
	void (*wake)(struct broker *b, int worker);
	/* Context of the network layer, for `wake`. */
	void *ctx;
	/* A reference that keeps the connection's memory valid across threads. */
	void (*conn_ref)(struct client *c);
	/* Drops it; runs on the client's own worker. */
	void (*conn_unref)(struct client *c);
};

/* A bridge spool row read back at start-up (bridge/ takes it). */
struct restored_spool_entry {
	uint64_t seq, msg_id;
	uint32_t bytes, queued_s;
};

/* What the broker needs from the bridges (implemented in bridge/);
 * b->bridges is NULL when none is configured, so routing pays nothing. */
struct bridge_port {
	void *ctx;
	/* m was routed on worker w: spools it (records in w's transaction) for
	 * every bridge whose out topics take it and that it did not come from.
	 * Returns how many bridges took it; *refused counts those whose full
	 * spool refused it (reject_new). */
	uint32_t (*route)(void *ctx, struct bworker *w, struct msg *m, uint32_t *refused);
	/* t was committed (t->err 0) or failed, on its worker. */
	void (*committed)(void *ctx, const struct store_txn *t);
	/* A spool row, during recovery. Returns 0, -FM_ENOENT (no such bridge)
	 * or -FM_ENOMEM. */
	int (*restore)(void *ctx, const char *bridge, const struct restored_spool_entry *e);
};

/* What the broker needs from the device collectors (implemented in
 * collect/); b->collect is NULL when no device is configured. */
struct collect_port {
	void *ctx;
	/* m was routed on worker w (any publish that passed admission): takes
	 * it when it is a write request (a tag's set topic). Returns true when
	 * taken. Must not block. */
	bool (*route)(void *ctx, struct bworker *w, const struct msg *m);
};

/* What the Sparkplug edge node's session (a bridge link, bridge/) needs
 * from the devices it speaks for (collect/); b->edge is NULL without
 * Sparkplug devices. Both run on worker 0. */
struct edge_port {
	void *ctx;
	/* Calls emit with the DBIRTH (topic, payload without seq) of every
	 * device online now, with its current values. */
	void (*births)(void *ctx, void (*emit)(void *ectx, const char *topic, const uint8_t *p, size_t len),
		       void *ectx);
	/* A DCMD for device (dlen bytes, not NUL-terminated) came over the
	 * session: writes the writable tags it names. Must not block. */
	void (*command)(void *ctx, const char *device, size_t dlen, const uint8_t *p, size_t len);
	/* Device (dlen bytes) has history to send in a session that has not
	 * born it: whether it is online now, and with out its DBIRTH from its
	 * last known values (payload without seq, appended). Returns 0,
	 * -FM_ENOENT (no such Sparkplug device), -FM_EINVAL (its DBIRTH would
	 * not pass admission) or -FM_ENOMEM. */
	int (*birth_of)(void *ctx, const char *device, size_t dlen, struct buf *out, bool *online);
};

enum client_state { CLIENT_NEW, CLIENT_CONNECTED, CLIENT_CLOSING };

#define CLIENT_MAX_OUT_ALIASES 32

/* Protocol state of one connection. Owned by its worker; embedded in the
 * network layer's connection. Fields are ordered and packed so an idle
 * connection fits a smaller allocation (the idle benchmark's RSS per
 * connection): 176 bytes. */
struct client {
	struct broker *b;
	struct session *session;    /* reference owned by the client while attached */
	struct client *prev, *next; /* the worker's list */
	/* Topic aliases, allocated at first use: [0..alias_max_in] the topics the
	 * client set (index = alias), then CLIENT_MAX_OUT_ALIASES of ours. */
	char **aliases;
	char *username;
	char *identity;             /* transport identity (certificate CN/SAN), owned; NULL: none */
	struct broker_auth *auth;       /* the generation this client was admitted with */
	struct auth_acl_client *acl;    /* its compiled ACL, NULL: no ACL */
	struct client_rate *rate;       /* max_publish_rate buckets; NULL when there is no limit */
	uint64_t last_rx_ms;        /* monotonic */
	uint64_t connected_at_ms;
	uint64_t out_full_since_ms;     /* output at or above max_output_buffer since; 0: below */
	/* Traffic of this connection (worker-owned; listed through a broker_job). */
	uint64_t msgs_received, msgs_sent, bytes_received, bytes_sent;
	uint32_t pending_store;     /* acknowledgements waiting for a store commit */
	uint32_t max_packet_out;    /* client's Maximum Packet Size; 0 = protocol limit */
	uint16_t keepalive;         /* effective, seconds; 0 = none */
	uint16_t send_max;          /* client's Receive Maximum capped by max_inflight_messages */
	uint16_t alias_max_in;      /* aliases we accept */
	uint16_t addr_port;
	uint16_t listener_port;     /* set by the network layer, for listings */
	uint8_t addr_ip[16];        /* peer address, formatted only for logs */
	uint8_t addr_family;
	uint8_t worker;
	uint8_t alias_max_out;      /* aliases the client accepts, at most CLIENT_MAX_OUT_ALIASES */
	uint8_t n_out_aliases;
	uint8_t state : 2;          /* enum client_state */
	uint8_t version : 3;
	bool request_problem_info : 1;
	bool will_on_close : 1;     /* publish the session's will when this connection ends */
	bool kicked : 1;            /* taken over: the session is no longer ours */
	bool connack_pending : 1;   /* CONNACK waits for the store: hold deliveries */
	bool identity_as_username : 1; /* set by the network layer: the listener's use_identity_as_username */
	bool rate_held : 1;         /* out of publish tokens: no more packets are read until a refill */
	bool output_full : 1;       /* deliveries paused on max_output_buffer (window halved once) */
};
_Static_assert(sizeof(struct client) == 176, "an idle connection's size class");

/* Work that must run on every worker's own thread (listing its clients):
 * run() on each worker, then done() on `home`, the worker that started it.
 * The starter owns the job; it must stay valid until done() runs. */
struct broker_job {
	void (*run)(struct broker_job *j, struct bworker *w);
	void (*done)(struct broker_job *j);
	int home;
	atomic_uint pending; /* workers that have not run it yet */
};

/* A pending session flush or a takeover kick, handed to a worker. */
struct wake_item {
	struct session *session; /* reference owned by the item, or NULL */
	struct client *kick;     /* conn reference owned by the item, or NULL */
	struct store_txn *txn;   /* a committed transaction, owned by the item, or NULL */
};

/* Administrative work handed to a worker (admin.c), beside its wake list. */
struct admin_item {
	struct broker_job *job;  /* to run there (or finish, when `finish`), or NULL */
	bool finish;
	struct client *kick;     /* conn reference owned by the item, or NULL */
	uint8_t kick_rc;         /* the DISCONNECT reason for `kick` */
};

/* Broker-side state of one worker thread. */
struct bworker {
	int id;
	struct broker *b;
	pthread_mutex_t wake_lock;
	struct wake_item *wake, *wake_spare;
	uint32_t n_wake, cap_wake, cap_spare;
	struct admin_item *admin; /* under wake_lock */
	uint32_t n_admin, cap_admin;
	struct client *clients; /* connected and connecting clients of this worker */
	/* Scratch for routing, reused per publish. */
	struct route_target *targets;
	uint32_t n_targets, cap_targets;
	/* Store records of the action being handled, submitted at its end. */
	struct store_txn *txn;
	uint32_t ops_mark;        /* txn->n_ops when the last action ended */
	atomic_uint pending_txns; /* submitted, not yet handed back */
	/* Sessions that got a held (QoS 2, not yet committed) message. */
	struct session **held;
	uint32_t n_held, cap_held;
	/* Sessions whose queued bodies could not be read back: retried at the next tick. */
	struct session **load_retry;
	uint32_t n_load_retry, cap_load_retry;
	struct stats_local stats;
	struct stats_published stats_pub; /* copy of `stats` for other threads, every tick */
	uint64_t bridged_refused;         /* bridged messages refused since the last report */
	uint64_t bridged_refused_log_ms;  /* monotonic ms of that report */
};

/* standby.c: whether CONNECT is refused (a cluster follower's broker). */
struct broker_standby {
	atomic_bool on;          /* read without the lock on every CONNECT */
	pthread_mutex_t lock;
	char *reference;         /* the v5 Server Reference, owned; NULL or "": none */
	uint64_t refused;        /* CONNECTs refused since the last log line */
	uint64_t logged_ms;      /* monotonic ms of that line */
	bool logged;             /* a line was written since the start */
};

struct broker {
	struct config cfg;
	struct broker_ports ports;
	unsigned n_workers;
	struct bworker *workers;

	pthread_rwlock_t subs_lock;
	struct sub_index *subs;
	pthread_rwlock_t retain_lock;
	struct retain_index *retained;
	uint64_t retain_version; /* orders retained updates in the store (retain_lock) */

	pthread_mutex_t reg_lock;
	struct hmap reg;             /* client id -> session (sessions.c) */
	/* Offline sessions with a deadline (expiry or delayed will); refs owned. */
	struct session **timed;
	uint32_t n_timed, cap_timed;

	struct store_port *store; /* NULL: memory only (persistence false) */
	const struct bridge_port *bridges; /* NULL: no bridge */
	const struct collect_port *collect; /* NULL: no Modbus device */
	const struct edge_port *edge;       /* NULL: no Sparkplug device */
	struct broker_spb *spb;   /* sparkplug.c; NULL: sparkplug_aware false */
	pthread_mutex_t auth_lock;
	struct broker_auth *auth; /* current password file and ACL, or NULL */
	atomic_uint_fast64_t next_msg_id;
	atomic_uint_fast64_t next_sid;
	atomic_uint_fast64_t next_client_no;
	struct stats stats;
	atomic_bool shutting_down; /* set before workers shut down */
	atomic_uint jobs_in_flight; /* broker_jobs started, not done: workers keep their loops */
	uint64_t started_wall_ms;
	uint32_t housekeeping_runs; /* worker 0 only */
	/* Over the store-wide queue budget: the bytes a queue may hold; 0: not over. */
	atomic_uint_fast64_t queue_fair_share;
	atomic_uint_fast64_t queued_bytes_all; /* every queue, at the last sweep */
	struct broker_standby standby;
};

/* A stored queue entry. state QE_QUEUED goes to the queue, the others in
 * flight; msg NULL: the body stays on disk (msg_id, bytes and expiry_at
 * describe it), otherwise a reference to it is taken. */
struct restored_entry {
	struct msg *msg;
	uint64_t msg_id, seq, expiry_at;
	uint32_t bytes, queued_s;
	uint8_t qos, flags, state;
	uint16_t n_sub_ids; /* at most QENTRY_MAX_SUB_IDS */
	const uint32_t *sub_ids;
};

/* One message of a collector's batch; the strings stay the batch's. */
struct collect_msg {
	const char *topic;
	const uint8_t *payload;
	uint32_t payload_len;
	uint16_t topic_len;
	bool retain;
	const struct mqtt_bin *correlation; /* v5 Correlation Data to carry, or NULL */
	/* Whose ACL rules it passes (acl_file): user (NULL: anonymous) and client id. */
	const char *user, *client_id;
};

/* Messages a collector hands to the broker at once. */
struct collect_batch {
	struct collect_msg *msgs;
	uint32_t n;
	int worker;        /* the worker that publishes them */
	/* Filled by the broker before done(): how many admission refused, and
	 * why the first one was; how many were not published for want of memory. */
	uint32_t refused, lost;
	const char *refused_why;
	/* Runs on the worker once what the batch wrote is committed (err 0) or
	 * failed; owns bt from then on. */
	void (*done)(struct collect_batch *bt, int err);
};

/* What a packet handler leaves of the connection: open, or closed (the
 * close is requested through the ports, a DISCONNECT or refusing CONNACK
 * queued before it). A struct rather than an int so that the compiler
 * refuses a bare -1 or an fm_err where this is expected. */
struct handled {
	bool closed;
};
#define HANDLED_OPEN ((struct handled){ .closed = false })
#define HANDLED_CLOSED ((struct handled){ .closed = true })

#endif
