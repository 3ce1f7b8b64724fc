/* The transports of a connection: plain TCP, TLS, WebSocket and WebSocket
 * over TLS. Reads go socket -> [TLS] -> [WebSocket] -> ops->deliver; the
 * turn's output goes out -> [WebSocket frames] -> [TLS records] -> wire.
 * Inbound connections (conn.c) and a bridge's outbound link alike. */
#include "transport.h"
#include "../tls/tls.h"
#include "../ws/ws.h"
#include <stdlib.h>
#include <string.h>

void xport_init(struct xport *x, const struct net_transport *tp, struct tls_session *tls, struct ws_session *ws,
		const struct xport_ops *ops, void *owner)
{
	memset(x, 0, sizeof *x);
	x->tp = tp;
	x->tls = tls;
	x->ws = ws;
	x->ops = ops;
	x->owner = owner;
}

void xport_free(struct xport *x)
{
	tls_session_free(x->tls);
	ws_session_free(x->ws);
	buf_free(&x->mid);
	buf_free(&x->wire);
	x->tls = NULL;
	x->ws = NULL;
}

/* ---- TCP: the output is the wire ---- */

static int tcp_read(struct xport *x, const uint8_t *p, size_t len, uint8_t *scratch, size_t cap)
{
	(void)scratch;
	(void)cap;
	if (len)
		x->ops->deliver(x->owner, p, len);
	return 0;
}

const struct net_transport net_tcp = { "tcp", tcp_read, NULL, NULL };

/* ---- TLS ---- */

static int deliver_sink(void *arg, const uint8_t *p, size_t len)
{
	struct xport *x = arg;
	return x->ops->deliver(x->owner, p, len);
}

/* Decrypts p and hands the plaintext to sink(x). Returns 0 or -1 (close). */
static int tls_in(struct xport *x, const uint8_t *p, size_t len, uint8_t *scratch, size_t cap, tls_sink_fn sink)
{
	bool was_established = tls_session_established(x->tls);
	int rc = tls_session_feed(x->tls, p, len, scratch, cap, sink, x, &x->wire);
	if (rc == TLS_FEED_HANDSHAKE_DONE) {
		if (x->ops->tls_up)
			x->ops->tls_up(x->owner);
		rc = tls_session_feed(x->tls, NULL, 0, scratch, cap, sink, x, &x->wire);
	}
	if (rc == TLS_FEED_ERROR) {
		x->why = tls_session_error(x->tls);
		if (!was_established && x->ops->tls_failed)
			x->ops->tls_failed(x->owner);
		return -1;
	}
	if (rc == TLS_FEED_CLOSED)
		x->peer_closed = true;
	return rc == TLS_FEED_CLOSED ? -1 : 0;
}

static int tls_read(struct xport *x, const uint8_t *p, size_t len, uint8_t *scratch, size_t cap)
{
	return tls_in(x, p, len, scratch, cap, deliver_sink);
}

/* Encrypts src into the wire buffer and empties src. */
static int tls_out(struct xport *x, struct buf *src)
{
	int rc = 0;
	/* Before the handshake nothing can be sent (a client's first bytes
	 * follow tls_up). */
	if (src->len && tls_session_established(x->tls))
		rc = tls_session_encrypt(x->tls, src->p, src->len, &x->wire);
	src->len = 0;
	return rc;
}

static void tls_shutdown(struct xport *x) { tls_session_shutdown(x->tls, &x->wire); }

const struct net_transport net_tls = { "tls", tls_read, tls_out, tls_shutdown };

/* ---- WebSocket ---- */

/* Takes WebSocket bytes; replies go to out. Returns 0 or -1 (close). */
static int ws_in(struct xport *x, const uint8_t *p, size_t len, struct buf *out)
{
	int rc = ws_session_feed(x->ws, p, len, deliver_sink, x, out);
	if (rc == WS_FEED_UPGRADED && x->ops->ws_up)
		x->ops->ws_up(x->owner, ws_session_protocol(x->ws));
	if (rc == WS_FEED_CLOSE) {
		x->why = ws_session_error(x->ws);
		return -1;
	}
	return 0;
}

static int ws_read(struct xport *x, const uint8_t *p, size_t len, uint8_t *scratch, size_t cap)
{
	(void)scratch;
	(void)cap;
	return ws_in(x, p, len, &x->wire);
}

static int ws_encode(struct xport *x, struct buf *out)
{
	int rc = ws_session_send(x->ws, out->p, out->len, &x->wire);
	out->len = 0;
	return rc;
}

static void ws_shutdown(struct xport *x) { ws_session_close(x->ws, &x->wire); }

const struct net_transport net_ws = { "websocket", ws_read, ws_encode, ws_shutdown };

/* ---- WebSocket over TLS ---- */

/* Plaintext from TLS is WebSocket bytes; their replies wait in mid for
 * encryption. A WebSocket close stops the TLS reader too. */
static int wss_sink(void *arg, const uint8_t *p, size_t len)
{
	struct xport *x = arg;
	if (ws_in(x, p, len, &x->mid)) {
		x->ended = true; /* the close frame is in mid; close_notify follows */
		return -1;
	}
	return x->ops->closing(x->owner) ? -1 : 0;
}

static int wss_read(struct xport *x, const uint8_t *p, size_t len, uint8_t *scratch, size_t cap)
{
	return tls_in(x, p, len, scratch, cap, wss_sink) || x->ended ? -1 : 0;
}

static int wss_encode(struct xport *x, struct buf *out)
{
	int rc = ws_session_send(x->ws, out->p, out->len, &x->mid);
	out->len = 0;
	if (tls_out(x, &x->mid))
		rc = -1;
	if (x->mid.cap > 64 * 1024)
		buf_free(&x->mid);
	return rc;
}

static void wss_shutdown(struct xport *x)
{
	ws_session_close(x->ws, &x->mid);
	tls_out(x, &x->mid);
	tls_session_shutdown(x->tls, &x->wire);
}

const struct net_transport net_wss = { "secure websocket", wss_read, wss_encode, wss_shutdown };

/* ---- writing ---- */

int net_write_start(uv_stream_t *s, struct buf *wb, void *owner, uv_write_cb done, struct net_write **pending)
{
	*pending = NULL;
	if (!wb->len)
		return 0;
	uv_buf_t ub = uv_buf_init((char *)wb->p, (unsigned)wb->len);
	int n = uv_try_write(s, &ub, 1);
	if (n < 0 && n != UV_EAGAIN) {
		wb->len = 0;
		return n;
	}
	size_t done_now = n > 0 ? (size_t)n : 0;
	if (done_now == wb->len) {
		wb->len = 0;
		return 0;
	}
	struct net_write *w = malloc(sizeof *w);
	if (!w) {
		wb->len = 0;
		return UV_ENOMEM;
	}
	w->data = *wb; /* the request owns the buffer now */
	w->off = done_now;
	memset(wb, 0, sizeof *wb);
	w->req.data = owner;
	ub = uv_buf_init((char *)w->data.p + done_now, (unsigned)(w->data.len - done_now));
	int rc = uv_write(&w->req, s, &ub, 1, done);
	if (rc) {
		net_write_free(w);
		return rc;
	}
	*pending = w;
	return 1;
}

void net_write_free(struct net_write *w)
{
	if (!w)
		return;
	buf_free(&w->data);
	free(w);
}
