/* The broker: packet handlers, routing, sessions registry, will and expiry.
 * It does no I/O: the network layer feeds it bytes and gives it the ports
 * below to send and close. Locks are always taken in this order:
 * registry -> subscription index -> retained index -> one session.
 */
#ifndef FM_BROKER_H
#define FM_BROKER_H
#include "client.h"
#include "types.h"

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
 * would pass broker__admit now (the ACL loaded now, the topic rules), for
 * what leaves through a bridge without entering the broker (an edge node's
 * births). Returns NULL when it would, else why not. Any worker. */
const char *broker_collect_admits(struct broker *b, const char *user, const char *client_id, const char *topic,
				  size_t len);
/* Publishes every message of bt on bt->worker as a client's QoS 1 PUBLISH
 * would be, through broker__admit and the ACL: retained, routed to
 * subscribers and bridges, stored; bt->done follows the commit. Any thread.
 * Returns 0 (bt taken), or -FM_EINVAL once shutdown has begun or
 * -FM_ENOMEM (bt stays the caller's, done never runs). */
int broker_collect_publish(struct broker *b, struct collect_batch *bt);
/* The client that published m on worker w, when it is connected there: its
 * client id and username (NULL: none), valid while the call that routes m
 * runs. Returns false for a will, a bridged or a collector's message. */
bool broker_msg_publisher(struct bworker *w, const struct msg *m, const char **client_id, const char **username);

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
