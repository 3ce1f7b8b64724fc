/* One client connection: the TCP handle, its partial input, its output, and
 * for TLS and WebSocket listeners the transport state (net-internal). */
#ifndef FM_CONN_H
#define FM_CONN_H
#include "transport.h"
#include "../broker/broker.h"
#include <stdatomic.h>
#include <uv.h>

struct nworker;
struct conn;

struct conn {
	uv_tcp_t tcp;           /* first: its loop is the worker's (conn_worker) */
	struct xport *x; /* NULL for plain TCP (its output is written as it is) */
	struct buf in;  /* bytes of an incomplete packet; empty (no memory) when idle */
	struct buf out; /* packets waiting for the next write */
	struct net_write *wreq; /* the write in progress, NULL when none */
	atomic_int refs;
	/* Bit-fields keep an idle connection in a smaller allocation class;
	 * only the owning worker touches them. */
	bool closing : 1, flush_queued : 1;
	bool read_paused : 1; /* reading stopped: max_publish_rate, or until the next loop turn */
	bool paced : 1;       /* on the worker's pace list */
	bool lingering : 1;   /* goodbye written, write side shut: on the worker's linger list */
	uint8_t listener;     /* index of its listener in the configuration */
	struct conn *flush_next;
	struct client client;
};

/* Writes the output of every connection queued for it (end of a loop turn). */
void conn_flush_all(struct nworker *w);
/* Hands MQTT bytes to the broker, keeping an incomplete packet in c->in.
 * Returns 0, or -1 when the connection is closing. */
int conn_deliver(struct conn *c, const uint8_t *p, size_t len);
/* Lets the held connections go on: those of max_publish_rate when they
 * have tokens again, the others at once (the worker's pace timer). */
void conn_on_pace(uv_timer_t *pace);
/* The configuration of c's listener. */
const struct listener_conf *conn_listener(const struct conn *c);

#endif
