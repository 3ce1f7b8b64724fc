/* The broker: packet handlers, routing, sessions registry, will and expiry.
 * It does no I/O: the network layer feeds it bytes and gives it the ports
 * below to send and close. Locks are always taken in this order:
 * registry -> subscription index -> retained index -> one session.
 */
#ifndef FM_BROKER_H
#define FM_BROKER_H
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

/* Creates the broker state for `cfg` with n_workers workers.
 * Returns NULL when out of memory. */
struct broker *broker_new(const struct config *cfg, unsigned n_workers, const struct broker_ports *ports);
/* Connects the durable store (before any client). */
void broker_set_store(struct broker *b, struct store_port *store);
/* Standby (server_reference not NULL): every CONNECT is refused, once it
 * parses and before authentication or any session work, with v5 CONNACK
 * 0x9C "Use another server" (and a Server Reference property holding
 * server_reference when it is not empty) or v3 return code 3, then the
 * connection closes; refusals are logged at most once per 10 s with their
 * count. NULL: serving. Copies server_reference. Any thread. */
void broker_set_standby(struct broker *b, const char *server_reference);
/* The store finished t (any thread): hands it to its worker. */
void broker_store_complete(struct broker *b, struct store_txn *t);
/* ---- recovery from the store, before serving (single-threaded) ---- */
struct session *broker_restore_session(struct broker *b, uint64_t sid, const char *client_id,
				       uint32_t expiry_interval, uint64_t expires_at, uint8_t version,
				       struct msg *will, uint32_t will_delay, uint64_t will_at,
				       const char *will_user);
int broker_restore_sub(struct broker *b, struct session *s, const char *filter, uint8_t options, uint32_t sub_id);
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
int broker_restore_entry(struct session *s, const struct restored_entry *r);
int broker_restore_retained(struct broker *b, struct msg *m);
/* Hands a spool row to the bridges: 0, -FM_ENOENT (no such bridge, or no
 * bridges) or -FM_ENOMEM. */
int broker_restore_spool(struct broker *b, const char *bridge, const struct restored_spool_entry *e);
void broker_restore_done(struct broker *b, uint64_t next_sid, uint64_t next_msg_id, uint64_t next_retain_version);

/* Loads the password file and ACL (either path may be NULL or empty) and
 * makes them current for new connections. Returns 0, or -FM_EINVAL with
 * "path:line: message" in err (the current ones stay). */
int broker_auth_load(struct broker *b, const char *passwd_path, const char *acl_path, char *err, size_t errlen);

/* ---- for the bridges (bridge/) ---- */

/* Connects the bridges (before recovery). */
void broker_set_bridges(struct broker *b, const struct bridge_port *p);
/* Store records of a spool, in w's current transaction (no-ops without a store). */
void broker_spool_add(struct bworker *w, const char *bridge, uint64_t seq, struct msg *m, uint32_t queued_s);
void broker_spool_del(struct bworker *w, const char *bridge, uint64_t seq);
/* Asks the store (through w's transaction) to read the bodies listed in ld;
 * done(ld, ...) runs on w afterwards. Takes ld. Returns 0 or -FM_ENOMEM
 * (ld freed; nothing runs). */
int broker_store_load(struct bworker *w, struct store_load *ld, store_done_fn done);
/* A message for a local PUBLISH from a bridge: v5 properties pr are kept as
 * for a client's (NULL: none). Returns NULL when out of memory. */
struct msg *broker_msg_new(struct broker *b, struct mqtt_bin topic, struct mqtt_bin payload,
			   const struct mqtt_props *pr, uint8_t qos, bool retain);
/* Publishes m (origin_sid set by the caller) on worker w as a client's
 * PUBLISH would be: retained, routed to subscribers and bridges, stored.
 * done(ctx, pid, 0, err) runs once what it wrote is committed, in the order
 * of calls. Consumes the reference to m. */
void broker_publish_bridged(struct bworker *w, struct msg *m, store_done_fn done, void *ctx, uint16_t pid);

/* ---- for the device collectors (collect/, collect_publish.c) ---- */

/* Connects the collectors (before serving). */
void broker_set_collect(struct broker *b, const struct collect_port *p);
/* Connects the Sparkplug devices to the edge node's session (before the bridges start). */
void broker_set_edge(struct broker *b, const struct edge_port *p);
/* Whether a collector's message on topic (len bytes) by user and client_id
 * would pass broker_admit now (the ACL loaded now, the topic rules), for
 * what leaves through a bridge without entering the broker (an edge node's
 * births). Returns NULL when it would, else why not. Any worker. */
const char *broker_collect_admits(struct broker *b, const char *user, const char *client_id, const char *topic,
				  size_t len);
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
/* Publishes every message of bt on bt->worker as a client's QoS 1 PUBLISH
 * would be, through broker_admit and the ACL: retained, routed to
 * subscribers and bridges, stored; bt->done follows the commit. Any thread.
 * Returns 0 (bt taken), or -FM_EINVAL once shutdown has begun or
 * -FM_ENOMEM (bt stays the caller's, done never runs). */
int broker_collect_publish(struct broker *b, struct collect_batch *bt);
/* The client that published m on worker w, when it is connected there: its
 * client id and username (NULL: none), valid while the call that routes m
 * runs. Returns false for a will, a bridged or a collector's message. */
bool broker_msg_publisher(struct bworker *w, const struct msg *m, const char **client_id, const char **username);
/* route.c: hands m to the collectors (b->collect set); true when taken. */
bool broker_collect_route(struct bworker *w, const struct msg *m);

/* Frees everything; all clients must be gone. */
void broker_free(struct broker *b);

/* ---- Sparkplug (sparkplug.c), for operations; nothing without sparkplug_aware ---- */
struct spb_fleet_entry;
struct spb_fleet_totals;
/* The fleet view's totals now. Any thread. */
void broker_spb_totals(struct broker *b, struct spb_fleet_totals *out);
/* A copy of every entry of the fleet view (*out freed by the caller) and the
 * totals. Any thread. Returns 0 or -FM_ENOMEM. */
int broker_spb_list(struct broker *b, struct spb_fleet_entry **out, uint32_t *n, struct spb_fleet_totals *tot);

/* ---- called by the network layer, on the client's worker ---- */

/* A new connection from peer (may be NULL): initialise c (embedded in the connection). */
struct sockaddr;
void broker_client_init(struct broker *b, struct client *c, int worker, const struct sockaddr *peer);
/* The peer address as text ("1.2.3.4:5678", "[::1]:5678") in out[48]. */
const char *client_addr_text(const struct client *c, char out[48]);
#define CLIENT_ADDR(c) client_addr_text((c), (char[48]){ 0 })
/* Bytes arrived. Returns how many were consumed (the rest is an incomplete
 * packet to present again with more bytes), or BROKER_CLOSED when the
 * connection must be closed (close has already been requested through the
 * ports). */
long broker_on_data(struct client *c, const uint8_t *p, size_t len);
#define BROKER_CLOSED (-1L)
/* The connection is gone (peer closed, error, or after ports.close).
 * Afterwards c is not touched by the broker. */
void broker_on_close(struct client *c);
/* max_publish_rate: c is held (c->rate_held) after it used up its tokens;
 * the rest of its input waits and its socket should not be read. Returns 0
 * when it may go on (the held input first), the milliseconds to wait, or -1
 * when it was disconnected for being over the rate for publish_rate_timeout. */
long broker_client_rate_wait(struct client *c, uint64_t now_mono_ms);
/* Cuts c off when its output exceeds 4 x max_output_buffer, or has stayed
 * above max_output_buffer for output_stall_timeout (the worker tick checks
 * every client; the network layer also checks when output grows). */
void broker_client_check_output(struct client *c, uint64_t now_mono_ms);
/* The client's output drained below the cap: deliver what waits. */
void broker_on_writable(struct client *c);
/* Sends the loop turn's store records to the writer (end of every turn). */
void broker_worker_flush_store(struct bworker *w);
/* Drains the worker's wake list (deliveries from other workers, kicks). */
void broker_worker_wake(struct bworker *w);
/* Periodic work of one worker (keep-alive, connect timeout); every ~250 ms. */
void broker_worker_tick(struct bworker *w, uint64_t now_mono_ms);
/* Periodic broker-wide work (session expiry, delayed wills); one worker calls it. */
void broker_housekeeping(struct broker *b);
/* will_on_shutdown: publishes the wills of this worker's connected clients
 * (every worker does this before any closes a connection). */
void broker_worker_publish_wills(struct bworker *w);
/* Clean shutdown of one worker's clients: DISCONNECT 0x8B to v5 clients,
 * wills only with will_on_shutdown. Set b->shutting_down first. */
void broker_worker_shutdown(struct bworker *w);

/* Copies the worker's counters to w->stats_pub (its own thread, every tick). */
void broker_worker_publish_stats(struct bworker *w);
/* Sums every worker's published counters. Any thread. */
void broker_stats_sum(const struct broker *b, struct stats_local *out);

/* Records the transport identity of c (the client certificate's CN or SAN),
 * copied; with identity_as_username it is the username at CONNECT. */
void broker_client_set_identity(struct client *c, const char *identity);

#endif
