/* Declarations shared by the broker's own files. */
#ifndef FM_BROKER_INTERNAL_H
#define FM_BROKER_INTERNAL_H
#include "broker.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../mqtt/mqtt.h"
#include "../auth/auth.h"
#include <stdlib.h>

/* One subscriber found for a message. */
struct route_target {
	struct session *s;
	uint32_t sub_id;
	uint8_t qos;
	uint8_t flags; /* QE_RETAIN, QE_SHARED */
};

/* Outcome of routing one message. */
struct route_result {
	uint32_t matched;  /* sessions that took it */
	uint32_t rejected; /* sessions whose full queue refused it (reject_new) */
};

/* access.c: checks the password and compiles the client's ACL at CONNECT.
 * Returns 0 or the negated v5 reason code to refuse with. */
int client_admit(struct client *c, const struct mqtt_connect *m, const char *client_id);
void client_release_access(struct client *c);
void broker_auth_free(struct broker *b);

/* queue_limits.c: the store-wide queue budget and the report of drops. */
/* Counts n messages of s dropped for `why` and logs it, at most once an
 * interval per session (s->lock held). */
void broker_note_drops(struct bworker *w, struct session *s, enum drop_reason why, uint64_t n);
/* Sums the queues against their budget and reports drops not yet logged
 * (worker 0, every second). */
void broker_queue_budget_sweep(struct bworker *w);
/* The limits of s's queue now: the configured ones, tightened while the
 * queues are over their store-wide budget (s->lock held). */
struct session_limits broker_session_limits(const struct broker *b, const struct session *s);

/* admit.c: the one admission check of every message entering the broker. */
enum admit { ADMIT_OK, ADMIT_TOPIC_INVALID, ADMIT_TOPIC_LIMIT, ADMIT_RETAIN, ADMIT_SYS, ADMIT_SPARKPLUG,
	     ADMIT_DENIED };
/* acl: the publisher's compiled ACL, NULL when no ACL applies. */
enum admit broker_admit(const struct broker *b, const struct auth_acl_client *acl, const char *topic, size_t len,
			bool retain);
uint8_t broker_admit_rc(enum admit a);     /* v5 reason code */
const char *broker_admit_why(enum admit a); /* for reason strings and logs */
/* The rules loaded now compiled for user/client_id, to admit a will when it
 * fires (the rules may have been reloaded since its CONNECT) or a batch of
 * messages alike (a collector's): r->acl for broker_admit, NULL when no
 * ACL applies; r holds the generation the ACL borrows from until
 * access_ref_release. Returns 0 or -FM_ENOMEM (r holds nothing). */
struct access_ref {
	struct broker_auth *auth;
	struct auth_acl_client *acl;
};
int access_acl_now(struct broker *b, const char *user, const char *client_id, struct access_ref *r);
void access_ref_release(struct access_ref *r);

/* sparkplug.c: the Sparkplug aware broker (b->spb set). */
int broker_spb_init(struct broker *b); /* 0 or -FM_ENOMEM */
void broker_spb_free(struct broker *b);
/* Called by route_publish for every message it routes: observes m for the
 * fleet view; *cert gets the retained copy of a birth to store and route
 * (a reference, or NULL); returns the message to route instead of m (an
 * NDEATH with the time as its timestamp, a reference) or NULL for m. */
struct msg *broker_spb_route(struct bworker *w, struct msg *m, struct msg **cert);
/* May a message on topic go to the client of acl? A copy under
 * $sparkplug/certificates/ only where its birth's topic may. */
bool broker_acl_can_read(const struct auth_acl_client *acl, const char *topic, size_t len);

/* What a packet handler leaves of the connection: open, or closed (the
 * close is requested through the ports, a DISCONNECT or refusing CONNACK
 * queued before it). A struct rather than an int so that the compiler
 * refuses a bare -1 or an fm_err where this is expected. */
struct handled {
	bool closed;
};
#define HANDLED_OPEN ((struct handled){ .closed = false })
#define HANDLED_CLOSED ((struct handled){ .closed = true })

/* standby.c: while b->standby.on, refuses c's CONNECT (c->version set) and
 * closes it. */
struct handled broker__standby_refuse(struct client *c);

/* handlers */
struct handled handle_connect(struct client *c, const struct mqtt_connect *m);
struct handled handle_publish(struct client *c, const struct mqtt_publish *m);
struct handled handle_ack(struct client *c, uint8_t type, const struct mqtt_ack *a);
struct handled handle_subscribe(struct client *c, const struct mqtt_subscribe *m);
struct handled handle_unsubscribe(struct client *c, const struct mqtt_subscribe *m);
struct handled handle_disconnect(struct client *c, const struct mqtt_reason *m);

/* The fields of c's connect and disconnect log lines, with reason code rc
 * (-1: none); addr is where the address text goes. Returns who. */
const struct log_client *client_who(const struct client *c, int rc, struct log_client *who, char addr[48]);
#define WHO(c, rc) client_who((c), (rc), &(struct log_client){ 0 }, (char[48]){ 0 })
#define OR_DASH(s) ((s) ? (s) : "-")

/* Sends a v5 DISCONNECT (v3: nothing) and closes. Logs the reason. */
void client_disconnect(struct client *c, uint8_t rc, const char *why);
/* Reason string property, only when the client did not opt out. */
void client_reason_string(const struct client *c, struct mqtt_props *pr, const char *why);

/* route.c */
struct route_result route_publish(struct bworker *w, struct msg *m);
/* Queues m for s and schedules its delivery. Takes its own reference. */
int route_to_session(struct bworker *w, struct session *s, struct msg *m, uint8_t qos, uint8_t flags,
		     const uint32_t *sub_ids, uint16_t n_sub_ids);
/* Hands the entries of a $share member that left to other members; consumes them. */
void route_reshare(struct bworker *w, struct session *from, struct qentry *entries, uint32_t n);
/* Appends an item to a worker's wake list and, when `wake`, wakes it.
 * Returns 0 or -FM_ENOMEM. Thread-safe. */
int wake_push_to(struct broker *b, int worker, struct wake_item item, bool wake);
/* The same from a worker: the local one drains its list at the end of the turn. */
int wake_push(struct bworker *from, int worker, struct wake_item item);
/* Puts s on its worker's wake list (s->lock not held). */
void session_schedule(struct bworker *from, struct session *s, int worker);

/* publish.c: builds a message from PUBLISH or Will fields, keeping the v5
 * properties that are forwarded and applying the expiry. */
struct msg *msg_build(struct broker *b, struct bworker *w, struct mqtt_bin topic, struct mqtt_bin payload,
		      const struct mqtt_props *pr, uint8_t version, uint8_t qos, bool retain);

/* True when a topic name or filter is within max_topic_length and
 * max_topic_levels. */
bool topic_within_limits(const struct config *cfg, const char *t, size_t len);

/* rate.c: fills the buckets of a new client; takes a PUBLISH of
 * packet_len bytes out of them, holding the client when they run out. */
void rate_init(struct client *c, uint64_t now);
void rate_free(struct client *c);
void rate_charge(struct client *c, size_t packet_len, uint64_t now);

/* persist.c: store records of the current action (no-ops without a store
 * or for sessions that end with their connection). */
bool session_durable(const struct broker *b, const struct session *s);
/* Appends a record to the worker's transaction; NULL without a store or
 * when out of memory (logged). */
struct store_op *persist_op_add(struct bworker *w, uint8_t type);
void persist_queue_add(struct bworker *w, const struct session *s, const struct qentry *e);
void persist_queue_del(struct bworker *w, const struct session *s, const struct qentry *e);
void persist_queue_state(struct bworker *w, const struct session *s, const struct qentry *e);
void persist_rx2(struct bworker *w, const struct session *s, uint16_t pid, bool add);
void persist_session(struct bworker *w, struct session *s);
void persist_session_del(struct bworker *w, struct session *s);
void persist_sub(struct bworker *w, const struct session *s, const char *filter, size_t len, uint8_t options,
		 uint32_t sub_id, bool add);
void persist_retain(struct bworker *w, struct msg *m, uint64_t version);
/* Ends the current action. done(ctx) runs after the commit of what the action
 * wrote (the records go to the writer at the end of the loop turn), or at once
 * when nothing durable changed. force: wait for the store even without
 * records (to order an ack after earlier commits). Replies to a client go
 * through reply.h instead. */
void broker_commit(struct bworker *w, store_done_fn done, void *ctx, uint16_t pid, uint8_t kind, bool force);
/* Ends the current action like broker_commit and queues cb (NULL: none)
 * behind its records when it must wait: the action wrote records, force, or
 * an earlier callback of the same client (cb->c) still waits. Returns 1 when
 * queued (cb->c's pending_store counts it), 0 when cb must run now, or
 * -FM_ENOMEM (cb must run now as a failed commit). */
int broker_commit_cb(struct bworker *w, const struct store_cb *cb, bool force);

/* spill.c: queued bodies of durable sessions live on disk once committed. */
/* After the commit of t: entries it added give up their bodies when their
 * session is offline or its queue is longer than the part kept in memory. */
void spill_committed(const struct store_txn *t);
/* The head of s's queue is on disk: asks the store for the bodies of the
 * next entries (s->lock held); delivery resumes when they arrive. */
void spill_load(struct bworker *w, struct session *s);
/* Asks for the next bodies before delivery reaches them (s->lock held). */
void spill_prefetch(struct bworker *w, struct session *s);
/* Asks again for the bodies whose reading failed (worker tick). */
void spill_retry(struct bworker *w);

/* deliver.c: with s->lock held and s->client on this worker. */
void session_pump(struct session *s);
/* The in-flight window: where it starts, and the least it shrinks to. */
#define SEND_WINDOW_START 32
#define SEND_WINDOW_MIN 16
/* A PUBACK or PUBREC from s's client (s->lock held): the window may widen. */
void session_window_on_ack(struct session *s);
void session_resend_inflight(struct session *s);
struct session_limits broker_limits(const struct broker *b);

/* admin.c: runs the administrative items handed to w (kicks, jobs). */
void broker_worker_admin(struct bworker *w);

/* sessions.c */
struct session *registry_find(struct broker *b, const char *id, size_t len);
int registry_insert(struct broker *b, struct session *s);
void registry_remove(struct broker *b, struct session *s);
/* Walks the registry (lock held, unchanged during the walk): *pos starts
 * at 0; returns the next session or NULL at the end. */
struct session *registry_next(const struct broker *b, size_t *pos);
/* Drops every session (shutdown). */
void registry_free_all(struct broker *b);
/* Ends a session already removed from the registry: drops its
 * subscriptions and queue, publishes a pending will; consumes one reference. */
void session_end(struct bworker *w, struct session *s);
/* Adds s to the deadline list (registry lock held). */
int timed_add(struct broker *b, struct session *s);
/* Sets (or, with an empty payload, clears) the retained message of m's topic,
 * in memory and in the store [MQTT-3.3.1-5..7]. */
void retain_set(struct bworker *w, struct msg *m);
/* Takes s's will and the user it was admitted for, together, so that a new
 * connection's will cannot lend the old one its user (s->lock held). */
struct msg *session_take_will(struct session *s, char **user);
/* Publishes a will once admitted again under the rules in force now, as
 * the user it was admitted for (NULL: anonymous). Consumes will and user;
 * a NULL will does nothing. */
void will_publish(struct bworker *w, const char *client_id, char *user, struct msg *will);

static inline uint8_t min_u8(uint8_t a, uint8_t b) { return a < b ? a : b; }

/* The client's alias table, allocated at first use; NULL when out of memory. */
static inline char **client_aliases(struct client *c)
{
	if (!c->aliases)
		c->aliases = calloc((size_t)c->alias_max_in + 1 + CLIENT_MAX_OUT_ALIASES, sizeof *c->aliases);
	return c->aliases;
}

#endif
