/* A harness that drives the broker's packet handlers without sockets,
 * threads or SQLite: a real struct broker built from configuration lines,
 * fake connections (struct broker_ports) that record the bytes the broker
 * would send, and a fake store port that keeps the transactions the broker
 * submits and completes them at the end of each turn or when the test says
 * so, with success or an error. Everything runs on the caller's thread:
 * one harness_turn does what every worker's loop does at the end of a turn
 * (drain its wake list, submit its store records) until nothing is left.
 *
 * Used by tests/unit/test_handlers.c and tests/fuzz/fuzz_handlers.c. Not
 * thread-safe; one harness per test. */
#ifndef FM_BROKER_HARNESS_H
#define FM_BROKER_HARNESS_H
#include "base/buf.h"
#include "broker/broker.h"
#include "mqtt/mqtt.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum harness_store {
	HARNESS_NO_STORE,     /* persistence false: nothing is submitted */
	HARNESS_STORE_AUTO,   /* every turn completes what was submitted (with store_err) */
	HARNESS_STORE_MANUAL, /* submitted transactions wait for harness_store_complete */
};

/* One client connection as the broker sees it: the broker's struct client
 * is embedded, as in net/conn.c, and the ports find the connection from it. */
struct fake_conn {
	struct client client;
	struct harness *h;
	struct buf out;       /* bytes the broker sent, from read_off on not yet read by the test */
	size_t read_off;
	struct buf in;        /* input the broker left unconsumed (an incomplete packet) */
	uint8_t version;      /* protocol the test's client speaks, for reading replies */
	int refs;             /* conn_ref/conn_unref balance; the harness holds 1 */
	bool close_requested; /* ports.close or ports.abort was called */
	bool aborted;         /* ports.abort: closed with its unread output dropped */
	bool gone;            /* broker_on_close has run */
	/* The peer keeps its side open after the broker's goodbye (net/conn.c
	 * lingers then): the close waits for harness_drop. */
	bool linger;
};

/* Store records the broker submitted, counted by type (ST_*). */
#define HARNESS_OP_TYPES 16

struct harness {
	struct broker *b;
	struct store_port store;
	enum harness_store store_mode;
	int store_err;              /* what AUTO completions report: 0 or a negative fm_err */
	struct store_txn **pending; /* submitted, not completed, in order */
	uint32_t n_pending, cap_pending;
	uint32_t n_submitted;       /* transactions submitted since the start */
	uint32_t ops_by_type[HARNESS_OP_TYPES];
	/* Message bodies the store "has", for reading back spilled entries:
	 * every body a record carried (a reference each), by id. */
	struct msg **bodies;
	uint32_t n_bodies, cap_bodies;
	struct fake_conn **conns;   /* every connection opened, until harness_free */
	uint32_t n_conns, cap_conns;
	uint32_t wakes;             /* ports.wake calls */
	uint16_t next_port;
};

/* A broker configured by `lines` ("key value", NULL-terminated; NULL for
 * the defaults) with n_workers workers and the given store. Returns NULL
 * with the reason in err when a line or the configuration is refused. */
struct harness *harness_new(const char *const *lines, unsigned n_workers, enum harness_store store, char *err,
			    size_t errlen);
/* Drops every connection still open (as peers that went away), completes
 * what the store holds, frees the broker. Returns the number of connection
 * references left unbalanced (0 when the broker released every one). */
int harness_free(struct harness *h);

/* A new connection on worker `worker` (from 127.0.0.1); NULL when out of memory. */
struct fake_conn *harness_connect(struct harness *h, int worker);
/* Bytes from the client, then a turn. Returns 0, or -1 when the broker
 * closed the connection (now or before). */
int harness_send(struct harness *h, struct fake_conn *fc, const void *p, size_t len);
/* The peer went away without a DISCONNECT (read EOF), then a turn. */
void harness_drop(struct harness *h, struct fake_conn *fc);
/* What every worker's loop does until nothing is left: drain the wake
 * lists, submit the store records, complete them (AUTO), end the
 * connections the broker closed, resume the deliveries that paused on
 * max_output_buffer once the test has read the output below it. */
void harness_turn(struct harness *h);
/* MANUAL: completes every pending transaction with err (0 or a negative
 * fm_err), in order, then a turn. Returns how many it completed. */
uint32_t harness_store_complete(struct harness *h, int err);
/* The worker tick and broker housekeeping at monotonic time now_ms, then a turn. */
void harness_tick(struct harness *h, uint64_t now_ms);
/* Clean shutdown as on SIGTERM: DISCONNECT 0x8B, connections closed. */
void harness_shutdown(struct harness *h);

/* The next packet the broker sent to fc, decoded as fc->version (fields
 * point into fc->out, valid until the next harness call). Returns 1, 0
 * when nothing (complete) is left, or the decoder's negative code. */
int harness_read(struct fake_conn *fc, struct mqtt_packet *pk);
/* Bytes sent to fc and not read yet. */
size_t harness_unread(const struct fake_conn *fc);
/* Discards what was sent to fc and not read. */
void harness_skip(struct fake_conn *fc);
/* Records of type `type` in the pending (MANUAL) transactions. */
uint32_t harness_pending_ops(const struct harness *h, uint8_t type);

/* ---- client packets, encoded with the codec every part of ferromq uses ---- */

/* CONNECT of `version` with client id `id` ("" for none), clean start and
 * keep-alive; will_topic NULL: no will. v5 properties: session expiry. */
struct harness_connect_opts {
	uint8_t version;
	const char *id;
	bool clean;
	uint16_t keepalive;
	uint32_t session_expiry;           /* v5 */
	const char *username, *password;   /* NULL: absent */
	const char *will_topic, *will_payload;
	uint8_t will_qos;
	bool will_retain;
	const char *auth_method;           /* v5, NULL: absent */
};
void harness_enc_connect(struct buf *b, const struct harness_connect_opts *o);
void harness_enc_publish(struct buf *b, uint8_t version, const char *topic, const char *payload, uint8_t qos,
			 uint16_t pid, bool retain);
/* SUBSCRIBE of n filters, each with its options byte. */
void harness_enc_subscribe(struct buf *b, uint8_t version, uint16_t pid, const char *const *filters,
			   const uint8_t *options, uint32_t n);
void harness_enc_ack(struct buf *b, uint8_t version, uint8_t type, uint16_t pid, uint8_t rc);
/* DISCONNECT with reason rc (v3: rc ignored). */
void harness_enc_disconnect(struct buf *b, uint8_t version, uint8_t rc);

#endif
