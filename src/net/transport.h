/* The transport layer of every connection, inbound (a client on one of our
 * listeners, conn.c) and outbound (a bridge's link to its remote broker):
 * how socket bytes become MQTT bytes and back (plain TCP, TLS, WebSocket,
 * WebSocket over TLS), and how wire bytes are written to the socket. The
 * owner of a connection supplies where MQTT bytes go and hears of the TLS
 * handshake through struct xport_ops. (Redis' ConnectionType, in the small.) */
#ifndef FM_NET_TRANSPORT_H
#define FM_NET_TRANSPORT_H
#include "../base/buf.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct xport;
struct tls_session;
struct ws_session;

/* What a transport needs from the connection's owner. */
struct xport_ops {
	/* MQTT bytes from the peer. Returns 0, or <0 when the owner is closing
	 * (the rest is not read). */
	int (*deliver)(void *owner, const uint8_t *p, size_t len);
	/* Whether the owner is closing: a WebSocket over TLS stops decrypting. */
	bool (*closing)(void *owner);
	/* The TLS handshake is done (the owner may send now). NULL: nothing. */
	void (*tls_up)(void *owner);
	/* The TLS handshake failed; x->why says why. NULL: nothing. */
	void (*tls_failed)(void *owner);
	/* The WebSocket Upgrade was accepted. NULL: nothing. */
	void (*ws_up)(void *owner, const char *subprotocol);
};

struct net_transport {
	const char *name;
	/* Bytes from the socket (may be none: a TLS client then starts its
	 * handshake). scratch[cap] takes the plaintext; p may lie in it (it is
	 * copied first). MQTT bytes go to ops->deliver. Returns 0, or -1 when
	 * the connection must close after writing what is in x->wire (x->why,
	 * or x->peer_closed, says why). */
	int (*read)(struct xport *x, const uint8_t *p, size_t len, uint8_t *scratch, size_t cap);
	/* Moves out (MQTT bytes; may be empty, e.g. for a pending pong) into
	 * x->wire and empties it. NULL: out is written as it is. Returns 0 or -1. */
	int (*encode)(struct xport *x, struct buf *out);
	/* The connection is closing: append the goodbye (close_notify, close
	 * frame) to x->wire. */
	void (*shutdown)(struct xport *x);
};

extern const struct net_transport net_tcp, net_tls, net_ws, net_wss;

/* The state of one connection's transport. */
struct xport {
	const struct net_transport *tp;
	const struct xport_ops *ops;
	void *owner;
	struct tls_session *tls; /* tls, wss */
	struct ws_session *ws;   /* ws, wss */
	struct buf mid;          /* wss: WebSocket bytes waiting for encryption */
	struct buf wire;         /* bytes for the socket */
	const char *why;         /* why read returned -1 (static or session text) */
	bool shut;               /* the goodbye has been appended */
	bool ended;              /* wss: the WebSocket layer ended the connection */
	bool peer_closed;        /* the peer ended TLS with close_notify */
};

/* Sets up x for tp; takes tls and ws (NULL where tp has none). */
void xport_init(struct xport *x, const struct net_transport *tp, struct tls_session *tls, struct ws_session *ws,
		const struct xport_ops *ops, void *owner);
/* Frees the sessions and buffers of x (not x). */
void xport_free(struct xport *x);

/* ---- writing to the socket ---- */

/* A write the socket did not take at once: it owns its bytes. */
struct net_write {
	uv_write_t req; /* req.data: the owner given to net_write_start */
	struct buf data;
	size_t off;     /* bytes of data written before the request */
};

/* Writes wb to s: synchronously as far as the socket takes it, the rest
 * with one uv_write that takes wb's bytes (wb is left empty either way).
 * Returns 0 when all of it went at once, 1 when *pending holds the write
 * in progress (done(&(*pending)->req, status) follows, and must call
 * net_write_free), or a negative libuv error (wb emptied). */
int net_write_start(uv_stream_t *s, struct buf *wb, void *owner, uv_write_cb done, struct net_write **pending);
/* The bytes of w not yet written. */
static inline size_t net_write_left(const struct net_write *w) { return w->data.len - w->off; }
void net_write_free(struct net_write *w);

#endif
