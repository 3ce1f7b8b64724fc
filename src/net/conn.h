/* One client connection: the TCP handle, its partial input, its output, and
 * for TLS and WebSocket listeners the transport state (net-internal). */
#ifndef FM_CONN_H
#define FM_CONN_H
#include "../broker/broker.h"
#include <stdatomic.h>
#include <uv.h>

struct nworker;
struct conn;

/* A transport: how bytes from the socket become MQTT bytes and back. Plain
 * TCP has no state; the others keep theirs in struct xport, allocated only
 * for their connections. (Redis' ConnectionType, in the small.) */
struct conn_transport {
	const char *name;
	/* Bytes from the socket (p is in the worker's read buffer, which the
	 * transport may reuse once it has copied p). MQTT bytes go to
	 * conn_deliver. Returns 0, or -1 when the connection must close after
	 * writing what is in its wire buffer (x->why says why). */
	int (*read)(struct conn *c, const uint8_t *p, size_t len);
	/* Moves c->out (MQTT bytes; may be empty, e.g. for a pending pong) into
	 * the wire buffer. NULL: c->out is written as it is. Returns 0 or -1. */
	int (*encode)(struct conn *c);
	/* The connection is closing: append the goodbye (close_notify, close
	 * frame) to the wire buffer. */
	void (*shutdown)(struct conn *c);
};

extern const struct conn_transport conn_tcp, conn_tls, conn_ws, conn_wss;

struct tls_session;
struct ws_session;

/* State of a TLS and/or WebSocket connection. */
struct xport {
	const struct conn_transport *tp;
	struct tls_session *tls; /* tls, wss */
	struct ws_session *ws;   /* ws, wss */
	struct buf mid;          /* wss: WebSocket bytes waiting for encryption */
	struct buf wire;         /* bytes for the socket */
	const char *why;         /* why read returned -1 (static or session text) */
	bool shut;               /* the goodbye has been appended */
	bool ended;              /* wss: the WebSocket layer ended the connection */
};

struct conn {
	uv_tcp_t tcp;           /* first: its loop is the worker's (conn_worker) */
	struct xport *x; /* NULL for plain TCP */
	struct buf in;  /* bytes of an incomplete packet; empty (no memory) when idle */
	struct buf out; /* packets waiting for the next write */
	struct wreq *wreq; /* the write in progress, NULL when none */
	atomic_int refs;
	/* Bit-fields keep an idle connection in a smaller allocation class;
	 * only the owning worker touches them. */
	bool closing : 1, flush_queued : 1;
	bool read_paused : 1; /* max_publish_rate: reading stopped until the client has tokens */
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
/* Lets the connections held back by max_publish_rate go on when they have
 * tokens again (the worker's pace timer). */
void conn_on_pace(uv_timer_t *pace);
/* The configuration of c's listener. */
const struct listener_conf *conn_listener(const struct conn *c);

#endif
