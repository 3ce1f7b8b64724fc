/* MQTT over WebSocket (RFC 6455): the HTTP Upgrade handshake is ours, the
 * framing is wslay's. Bytes go in and out through buffers, so the same
 * session works over TCP and under TLS (WSS). Only binary messages carry
 * MQTT; an MQTT packet may span frames and a frame may hold several packets. */
#ifndef FM_WS_H
#define FM_WS_H
#include "../base/buf.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ws_session;

/* Where the payload of binary frames goes. Returns 0, or <0 to stop reading
 * (the connection is closing). */
typedef int (*ws_sink_fn)(void *arg, const uint8_t *p, size_t len);

/* Results of ws_session_feed. */
enum ws_feed {
	WS_FEED_OK = 0,
	WS_FEED_UPGRADED = 1, /* the Upgrade request was accepted in this call */
	WS_FEED_CLOSE = -1,   /* write what is in wire, then close: reason in ws_session_error */
};

/* A session that waits for the Upgrade request. Frames with a payload
 * larger than max_frame are refused (close 1009). NULL when out of memory. */
struct ws_session *ws_session_new(uint64_t max_frame);
void ws_session_free(struct ws_session *w);
/* Takes bytes from the peer: the HTTP request first (the 101 or error
 * response is appended to wire), then frames, whose binary payload goes to
 * sink and whose replies (pong, close) are appended to wire. */
int ws_session_feed(struct ws_session *w, const uint8_t *p, size_t len, ws_sink_fn sink, void *arg, struct buf *wire);
/* Frames len bytes (may be 0) as one binary message and appends it, with
 * any pending control frames, to wire. Returns 0 or -1. Before the upgrade
 * and after a close the bytes are dropped. */
int ws_session_send(struct ws_session *w, const uint8_t *p, size_t len, struct buf *wire);
/* Appends a close frame (1000) to wire unless one was sent. */
void ws_session_close(struct ws_session *w, struct buf *wire);
/* Why the last feed asked to close (static text), never NULL. */
const char *ws_session_error(const struct ws_session *w);
/* The subprotocol agreed ("mqtt", "mqttv3.1"), or NULL before the upgrade. */
const char *ws_session_protocol(const struct ws_session *w);

/* The Sec-WebSocket-Accept value of key (RFC 6455 4.2.2) in out[29]. */
void ws_accept_key(const char *key, size_t key_len, char out[29]);

#endif
