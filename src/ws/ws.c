/* WebSocket sessions: our Upgrade handshake, wslay's framing (see ws.h). */
#include "ws.h"
#include "../base/http_request.h"
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

/* An Upgrade request larger than this is refused. */
#define WS_MAX_REQUEST 8192
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct ws_session {
	wslay_event_context_ptr ctx; /* NULL until the upgrade */
	struct buf req;              /* the request so far; freed at the upgrade */
	uint64_t max_frame;
	/* The current feed or send call. */
	const uint8_t *in;
	size_t in_len;
	ws_sink_fn sink;
	void *arg;
	struct buf *wire;
	const char *err;
	const char *protocol;
	uint64_t frame_left; /* payload bytes of the current frame not yet seen (ws_scan) */
	uint8_t hdr[14];     /* the next frame's header so far */
	uint8_t hdr_len;
	uint8_t opcode;   /* of the frame being received */
	bool binary_msg;  /* the message being received is binary */
	bool stop;        /* the sink stopped, or the peer broke the rules */
	bool nomem;
};

void ws_accept_key(const char *key, size_t key_len, char out[29])
{
	unsigned char md[SHA_DIGEST_LENGTH];
	char cat[128];
	size_t n = key_len < sizeof cat - sizeof WS_GUID ? key_len : sizeof cat - sizeof WS_GUID;
	memcpy(cat, key, n);
	memcpy(cat + n, WS_GUID, sizeof WS_GUID - 1);
	SHA1((const unsigned char *)cat, n + sizeof WS_GUID - 1, md);
	EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH); /* 28 chars and a NUL */
}

/* ---- the Upgrade request ---- */

/* What the handshake needs from the request (RFC 6455 4.2.1). */
struct upgrade_req {
	bool get, http11, upgrade_ws, conn_upgrade;
	const struct http_header *key, *version, *protocol;
	bool want_mqtt, want_mqttv31;
};

static bool header_has(const struct http_request *r, const char *name, const char *token)
{
	/* A header may be repeated: its lists add up (RFC 9110 5.3). */
	size_t nl = strlen(name);
	for (unsigned i = 0; i < r->n_headers; i++) {
		const struct http_header *h = &r->headers[i];
		if (h->name_len == nl && !strncasecmp(h->name, name, nl) && http_header_has_token(h, token))
			return true;
	}
	return false;
}

/* Reads what the handshake needs from a parsed request. Pure. */
static void upgrade_read(const struct http_request *r, struct upgrade_req *u)
{
	memset(u, 0, sizeof *u);
	u->get = r->method_len == 3 && !memcmp(r->method, "GET", 3);
	u->http11 = r->minor == 1;
	u->upgrade_ws = header_has(r, "Upgrade", "websocket");
	u->conn_upgrade = header_has(r, "Connection", "upgrade");
	u->key = http_header_find(r, "Sec-WebSocket-Key");
	u->version = http_header_find(r, "Sec-WebSocket-Version");
	u->protocol = http_header_find(r, "Sec-WebSocket-Protocol");
	u->want_mqtt = header_has(r, "Sec-WebSocket-Protocol", "mqtt");
	u->want_mqttv31 = header_has(r, "Sec-WebSocket-Protocol", "mqttv3.1");
}

static int respond_error(struct ws_session *w, struct buf *wire, const char *status, const char *extra,
			 const char *why)
{
	char resp[512];
	int n = snprintf(resp, sizeof resp,
			 "HTTP/1.1 %s\r\nConnection: close\r\n%sContent-Type: text/plain\r\n"
			 "Content-Length: %zu\r\n\r\n%s\n",
			 status, extra, strlen(why) + 1, why);
	buf_append(wire, resp, (size_t)n);
	w->err = why;
	return WS_FEED_CLOSE;
}

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user);
static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user);
static void on_frame_start(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *a,
			   void *user);
static void on_frame_chunk(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_chunk_arg *a,
			   void *user);

/* The refusal of a request http_parse could not take (its negated status). */
static int refuse_unparsed(struct ws_session *w, long status, struct buf *wire)
{
	switch (status) {
	case -413: /* a body is refused below whatever its size */
	case 0:
		return respond_error(w, wire, "400 Bad Request", "", "an Upgrade request has no body");
	case -414:
		return respond_error(w, wire, "414 URI Too Long", "", "request line too long");
	case -431:
		return respond_error(w, wire, "431 Request Header Fields Too Large", "", "request too large");
	case -501:
		return respond_error(w, wire, "501 Not Implemented", "", "Transfer-Encoding is not supported");
	default:
		return respond_error(w, wire, "400 Bad Request", "", "not an HTTP/1.1 GET request");
	}
}

/* Answers the request in p[0..len) (headers and the blank line). */
static int upgrade(struct ws_session *w, const uint8_t *p, size_t len, struct buf *wire)
{
	struct http_request req;
	long taken = http_parse(p, len, &req);
	if (taken <= 0 || req.body_len)
		return refuse_unparsed(w, taken, wire);
	struct upgrade_req r;
	upgrade_read(&req, &r);
	if (!r.get || !r.http11)
		return respond_error(w, wire, "400 Bad Request", "", "not an HTTP/1.1 GET request");
	if (!r.upgrade_ws || !r.conn_upgrade)
		return respond_error(w, wire, "426 Upgrade Required", "Upgrade: websocket\r\n",
				     "this port speaks MQTT over WebSocket only");
	if (!r.version || r.version->value_len != 2 || memcmp(r.version->value, "13", 2))
		return respond_error(w, wire, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n",
				     "unsupported WebSocket version");
	if (!r.key || r.key->value_len != 24)
		return respond_error(w, wire, "400 Bad Request", "", "missing or bad Sec-WebSocket-Key");
	if (r.protocol && !r.want_mqtt && !r.want_mqttv31)
		return respond_error(w, wire, "400 Bad Request", "", "subprotocol must be mqtt or mqttv3.1");
	w->protocol = r.want_mqtt ? "mqtt" : r.want_mqttv31 ? "mqttv3.1" : NULL;
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = on_recv,
		.send_callback = on_send,
		.on_frame_recv_start_callback = on_frame_start,
		.on_frame_recv_chunk_callback = on_frame_chunk,
	};
	if (wslay_event_context_server_init(&w->ctx, &cbs, w)) {
		w->ctx = NULL;
		return respond_error(w, wire, "503 Service Unavailable", "", "out of memory");
	}
	/* Payload goes straight to MQTT: no message is assembled in memory. */
	wslay_event_config_set_no_buffering(w->ctx, 1);
	wslay_event_config_set_max_recv_msg_length(w->ctx, w->max_frame);
	char accept[29], resp[256];
	ws_accept_key(r.key->value, r.key->value_len, accept);
	int n = snprintf(resp, sizeof resp,
			 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
			 accept, w->protocol ? "Sec-WebSocket-Protocol: " : "", w->protocol ? w->protocol : "",
			 w->protocol ? "\r\n" : "");
	if (buf_append(wire, resp, (size_t)n)) {
		w->err = "out of memory";
		return WS_FEED_CLOSE;
	}
	return WS_FEED_UPGRADED;
}

/* ---- wslay callbacks ---- */

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
	struct ws_session *w = user;
	(void)flags;
	if (w->stop || !w->in_len) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	size_t n = len < w->in_len ? len : w->in_len;
	memcpy(buf, w->in, n);
	w->in += n;
	w->in_len -= n;
	return (ssize_t)n;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
	struct ws_session *w = user;
	(void)flags;
	if (!w->wire || buf_append(w->wire, data, len)) {
		w->nomem = true;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

static void fail(struct ws_session *w, uint16_t code, const char *why)
{
	wslay_event_queue_close(w->ctx, code, (const uint8_t *)why, strlen(why));
	wslay_event_shutdown_read(w->ctx);
	w->err = why;
	w->stop = true;
}

static void on_frame_start(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *a,
			   void *user)
{
	struct ws_session *w = user;
	(void)ctx;
	w->opcode = a->opcode;
	if (w->stop)
		return;
	if (a->opcode == WSLAY_BINARY_FRAME)
		w->binary_msg = true;
	else if (a->opcode == WSLAY_TEXT_FRAME || (a->opcode == WSLAY_CONTINUATION_FRAME && !w->binary_msg))
		fail(w, WSLAY_CODE_UNSUPPORTED_DATA, "MQTT needs binary frames");
}

static void on_frame_chunk(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_chunk_arg *a,
			   void *user)
{
	struct ws_session *w = user;
	(void)ctx;
	if (w->stop || (w->opcode != WSLAY_BINARY_FRAME && w->opcode != WSLAY_CONTINUATION_FRAME))
		return;
	if (w->sink(w->arg, a->data, a->data_length))
		w->stop = true; /* the broker is closing the connection: not an error */
}

/* ---- the session ---- */

struct ws_session *ws_session_new(uint64_t max_frame)
{
	struct ws_session *w = calloc(1, sizeof *w);
	if (w)
		w->max_frame = max_frame;
	return w;
}

void ws_session_free(struct ws_session *w)
{
	if (!w)
		return;
	if (w->ctx)
		wslay_event_context_free(w->ctx);
	buf_free(&w->req);
	free(w);
}

/* Follows the frame boundaries in p[0..len) so that a header is judged as
 * soon as it is complete: wslay looks at a frame's length only once payload
 * follows, so a header announcing 2^62 bytes, then silence, went unanswered.
 * Returns 0, or the close code (RFC 6455 5.1, 5.2, 5.5, 7.4.1). */
static uint16_t ws_scan(struct ws_session *w, const uint8_t *p, size_t len)
{
	while (len) {
		if (w->frame_left) {
			size_t n = len < w->frame_left ? len : (size_t)w->frame_left;
			w->frame_left -= n;
			p += n;
			len -= n;
			continue;
		}
		w->hdr[w->hdr_len++] = *p++;
		len--;
		if (w->hdr_len < 2)
			continue;
		uint8_t l7 = w->hdr[1] & 0x7F, ext = l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
		if (!(w->hdr[1] & 0x80))
			return WSLAY_CODE_PROTOCOL_ERROR; /* client frames are masked */
		if (w->hdr_len < 2 + ext + 4)
			continue;
		uint64_t plen = l7 < 126 ? l7 : 0;
		for (uint8_t i = 0; i < ext; i++)
			plen = plen << 8 | w->hdr[2 + i];
		if (plen >> 63 || ((w->hdr[0] & 0x08) && plen > 125))
			return WSLAY_CODE_PROTOCOL_ERROR;
		if (plen > w->max_frame)
			return WSLAY_CODE_MESSAGE_TOO_BIG;
		w->frame_left = plen;
		w->hdr_len = 0;
	}
	return 0;
}

/* Runs wslay over in[0..len): frames in, replies out. */
static int frames(struct ws_session *w, const uint8_t *p, size_t len, struct buf *wire)
{
	w->in = p;
	w->in_len = len;
	w->wire = wire;
	uint16_t bad = w->stop ? 0 : ws_scan(w, p, len);
	if (bad)
		fail(w, bad, bad == WSLAY_CODE_MESSAGE_TOO_BIG ? "frame too large" : "WebSocket protocol error");
	int rc = bad ? 0 : wslay_event_recv(w->ctx);
	wslay_event_send(w->ctx);
	w->wire = NULL;
	w->in = NULL;
	w->in_len = 0;
	if (w->nomem) {
		w->err = "out of memory";
		return WS_FEED_CLOSE;
	}
	if (rc < 0) {
		w->err = w->err ? w->err : "WebSocket error";
		return WS_FEED_CLOSE;
	}
	if (wslay_event_get_close_received(w->ctx)) {
		w->err = "closed by the client";
		return WS_FEED_CLOSE;
	}
	if (!wslay_event_get_read_enabled(w->ctx)) {
		uint16_t code = wslay_event_get_status_code_sent(w->ctx);
		if (!w->err)
			w->err = code == WSLAY_CODE_MESSAGE_TOO_BIG ? "frame too large" : "WebSocket protocol error";
		return WS_FEED_CLOSE;
	}
	return w->stop && w->err ? WS_FEED_CLOSE : WS_FEED_OK;
}

int ws_session_feed(struct ws_session *w, const uint8_t *p, size_t len, ws_sink_fn sink, void *arg, struct buf *wire)
{
	w->sink = sink;
	w->arg = arg;
	if (w->ctx)
		return frames(w, p, len, wire);
	if (w->req.len + len > WS_MAX_REQUEST)
		return respond_error(w, wire, "431 Request Header Fields Too Large", "", "request too large");
	if (buf_append(&w->req, p, len)) {
		w->err = "out of memory";
		return WS_FEED_CLOSE;
	}
	const uint8_t *end = memmem(w->req.p, w->req.len, "\r\n\r\n", 4);
	if (!end)
		return WS_FEED_OK;
	size_t hlen = (size_t)(end - w->req.p) + 4;
	int rc = upgrade(w, w->req.p, hlen, wire);
	if (rc == WS_FEED_UPGRADED && w->req.len > hlen) {
		/* Frames sent right behind the request. */
		int frc = frames(w, w->req.p + hlen, w->req.len - hlen, wire);
		if (frc < 0)
			rc = frc;
	}
	buf_free(&w->req);
	return rc;
}

int ws_session_send(struct ws_session *w, const uint8_t *p, size_t len, struct buf *wire)
{
	if (!w->ctx)
		return 0;
	/* Control frames wslay has queued (pongs, a close) go first, whole:
	 * on_send takes everything, so no frame of wslay's is left half sent. */
	w->wire = wire;
	int rc = wslay_event_send(w->ctx);
	w->wire = NULL;
	if (rc < 0 || w->nomem)
		return -1;
	/* After a close frame nothing more is sent: the bytes are dropped. */
	if (!len || wslay_event_get_close_sent(w->ctx))
		return 0;
	/* Framed straight into wire (server frames are not masked): wslay's
	 * queue would hold one more copy of a client's whole output. */
	uint8_t h[10];
	size_t hl = 2;
	h[0] = 0x80 | WSLAY_BINARY_FRAME;
	if (len < 126) {
		h[1] = (uint8_t)len;
	} else if (len < 65536) {
		h[1] = 126;
		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		hl = 4;
	} else {
		h[1] = 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
		hl = 10;
	}
	if (buf_reserve(wire, hl + len))
		return -1;
	buf_append(wire, h, hl);
	buf_append(wire, p, len);
	return 0;
}

void ws_session_close(struct ws_session *w, struct buf *wire)
{
	if (!w->ctx || wslay_event_get_close_sent(w->ctx))
		return;
	wslay_event_queue_close(w->ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
	ws_session_send(w, NULL, 0, wire);
}

const char *ws_session_error(const struct ws_session *w) { return w->err ? w->err : "closed"; }

const char *ws_session_protocol(const struct ws_session *w) { return w->ctx ? w->protocol : NULL; }
