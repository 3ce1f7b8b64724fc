/* The transports of a connection: plain TCP, TLS, WebSocket and WebSocket
 * over TLS. Reads go socket -> [TLS] -> [WebSocket] -> conn_deliver; the
 * turn's output goes c->out -> [WebSocket frames] -> [TLS records] -> wire. */
#include "worker.h"
#include "../base/log.h"
#include "../tls/tls.h"
#include "../ws/ws.h"

/* ---- TCP: c->out is the wire ---- */

static int tcp_read(struct conn *c, const uint8_t *p, size_t len)
{
	conn_deliver(c, p, len);
	return 0;
}

const struct conn_transport conn_tcp = { "tcp", tcp_read, NULL, NULL };

/* ---- TLS ---- */

static int deliver_sink(void *arg, const uint8_t *p, size_t len) { return conn_deliver(arg, p, len); }

/* The handshake is done: log it and take the certificate's identity. */
static void tls_established(struct conn *c)
{
	const struct listener_conf *l = conn_listener(c);
	char id[256], desc[96];
	tls_session_describe(c->x->tls, desc, sizeof desc);
	if (tls_session_identity(c->x->tls, l->identity_source, id, sizeof id) == 0) {
		broker_client_set_identity(&c->client, id);
		log_info("TLS from %s on listener %u: %s, certificate identity '%s'", CLIENT_ADDR(&c->client),
			 l->port, desc, id);
	} else {
		log_debug("TLS from %s on listener %u: %s, no certificate identity", CLIENT_ADDR(&c->client), l->port,
			  desc);
	}
}

/* Decrypts p and hands the plaintext to sink. Returns 0 or -1 (close). */
static int tls_in(struct conn *c, const uint8_t *p, size_t len, tls_sink_fn sink)
{
	struct xport *x = c->x;
	bool was_established = tls_session_established(x->tls);
	int rc = tls_session_feed(x->tls, p, len, conn_worker(c)->rbuf, NWORKER_READ_BUF, sink, c, &x->wire);
	if (rc == TLS_FEED_HANDSHAKE_DONE) {
		tls_established(c);
		rc = tls_session_feed(x->tls, NULL, 0, conn_worker(c)->rbuf, NWORKER_READ_BUF, sink, c, &x->wire);
	}
	if (rc == TLS_FEED_ERROR) {
		/* This line is the connection's end line (conn_end). */
		if (!was_established) {
			log_notice("TLS handshake with %s on listener %u failed: %s", CLIENT_ADDR(&c->client),
				   conn_listener(c)->port, tls_session_error(x->tls));
			conn_mark_ended(c);
		}
		x->why = tls_session_error(x->tls);
		return -1;
	}
	if (rc == TLS_FEED_CLOSED && !x->why)
		x->why = "TLS closed by the client (close_notify)";
	return rc == TLS_FEED_CLOSED ? -1 : 0;
}

static int tls_read(struct conn *c, const uint8_t *p, size_t len) { return tls_in(c, p, len, deliver_sink); }

/* Encrypts src into the wire buffer and empties src. */
static int tls_out(struct conn *c, struct buf *src)
{
	int rc = 0;
	/* Before the handshake nothing can be sent; the broker sends nothing either. */
	if (src->len && tls_session_established(c->x->tls))
		rc = tls_session_encrypt(c->x->tls, src->p, src->len, &c->x->wire);
	src->len = 0;
	return rc;
}

static int tls_encode(struct conn *c) { return tls_out(c, &c->out); }

static void tls_shutdown(struct conn *c) { tls_session_shutdown(c->x->tls, &c->x->wire); }

const struct conn_transport conn_tls = { "tls", tls_read, tls_encode, tls_shutdown };

/* ---- WebSocket ---- */

/* Takes WebSocket bytes; replies go to out. Returns 0 or -1 (close). */
static int ws_in(struct conn *c, const uint8_t *p, size_t len, struct buf *out)
{
	struct ws_session *ws = c->x->ws;
	int rc = ws_session_feed(ws, p, len, deliver_sink, c, out);
	if (rc == WS_FEED_UPGRADED)
		log_debug("WebSocket from %s upgraded (subprotocol %s)", CLIENT_ADDR(&c->client),
			  ws_session_protocol(ws) ? ws_session_protocol(ws) : "none");
	if (rc == WS_FEED_CLOSE) {
		c->x->why = ws_session_error(ws);
		return -1;
	}
	return 0;
}

static int ws_read(struct conn *c, const uint8_t *p, size_t len) { return ws_in(c, p, len, &c->x->wire); }

static int ws_encode(struct conn *c)
{
	int rc = ws_session_send(c->x->ws, c->out.p, c->out.len, &c->x->wire);
	c->out.len = 0;
	return rc;
}

static void ws_shutdown(struct conn *c) { ws_session_close(c->x->ws, &c->x->wire); }

const struct conn_transport conn_ws = { "websocket", ws_read, ws_encode, ws_shutdown };

/* ---- WebSocket over TLS ---- */

/* Plaintext from TLS is WebSocket bytes; their replies wait in mid for
 * encryption. A WebSocket close stops the TLS reader too. */
static int wss_sink(void *arg, const uint8_t *p, size_t len)
{
	struct conn *c = arg;
	if (ws_in(c, p, len, &c->x->mid)) {
		c->x->ended = true; /* the close frame is in mid; close_notify follows */
		return -1;
	}
	return c->closing ? -1 : 0;
}

static int wss_read(struct conn *c, const uint8_t *p, size_t len)
{
	return tls_in(c, p, len, wss_sink) || c->x->ended ? -1 : 0;
}

static int wss_encode(struct conn *c)
{
	int rc = ws_session_send(c->x->ws, c->out.p, c->out.len, &c->x->mid);
	c->out.len = 0;
	if (tls_out(c, &c->x->mid))
		rc = -1;
	if (c->x->mid.cap > 64 * 1024)
		buf_free(&c->x->mid);
	return rc;
}

static void wss_shutdown(struct conn *c)
{
	ws_session_close(c->x->ws, &c->x->mid);
	tls_out(c, &c->x->mid);
	tls_session_shutdown(c->x->tls, &c->x->wire);
}

const struct conn_transport conn_wss = { "secure websocket", wss_read, wss_encode, wss_shutdown };
