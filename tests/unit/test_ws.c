/* src/ws: the Upgrade request, read by the one HTTP parser (base/http_request.c). */
#include "check.h"
#include "ws/ws.h"

static int sink(void *arg, const uint8_t *p, size_t len)
{
	(void)arg;
	(void)p;
	(void)len;
	return 0;
}

#define REQ_HEAD "GET /mqtt HTTP/1.1\r\nHost: x\r\n"
#define REQ_WS "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

/* Feeds req whole; returns the feed's result and the response's status. */
static int feed(const char *req, int *status)
{
	struct ws_session *w = ws_session_new(1024);
	struct buf out = { 0 };
	int rc = ws_session_feed(w, (const uint8_t *)req, strlen(req), sink, NULL, &out);
	*status = 0;
	if (out.len > 12 && !memcmp(out.p, "HTTP/1.1 ", 9))
		*status = atoi((const char *)out.p + 9);
	buf_free(&out);
	ws_session_free(w);
	return rc;
}

static void test_upgrade_accepted(void)
{
	int status;
	ASSERT_EQ(feed(REQ_HEAD "Upgrade: websocket\r\nConnection: Upgrade\r\n" REQ_WS "\r\n", &status),
		  WS_FEED_UPGRADED);
	ASSERT_EQ(status, 101);
	/* Token lists: case, blanks and tabs around items, a repeated header. */
	ASSERT_EQ(feed(REQ_HEAD "Upgrade: WebSocket\r\nConnection: keep-alive,\tUpgrade\r\n" REQ_WS "\r\n", &status),
		  WS_FEED_UPGRADED);
	ASSERT_EQ(feed(REQ_HEAD "Upgrade: websocket\r\nConnection: keep-alive\r\nConnection: upgrade\r\n" REQ_WS
		       "\r\n", &status), WS_FEED_UPGRADED);
}

static void test_upgrade_refused(void)
{
	int status;
	/* Incomplete: waits. */
	ASSERT_EQ(feed(REQ_HEAD "Upgrade: websocket\r\n", &status), WS_FEED_OK);
	ASSERT_EQ(status, 0);
	/* No Upgrade: 426. */
	ASSERT_EQ(feed(REQ_HEAD "\r\n", &status), WS_FEED_CLOSE);
	ASSERT_EQ(status, 426);
	/* Not HTTP/1.1, not GET, a bare LF, a body: 400. */
	ASSERT_EQ(feed("GET /mqtt HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" REQ_WS "\r\n", &status),
		  WS_FEED_CLOSE);
	ASSERT_EQ(status, 400);
	ASSERT_EQ(feed("POST /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" REQ_WS "\r\n", &status),
		  WS_FEED_CLOSE);
	ASSERT_EQ(status, 400);
	ASSERT_EQ(feed(REQ_HEAD "Upgrade: websocket\nConnection: Upgrade\r\n" REQ_WS "\r\n", &status), WS_FEED_CLOSE);
	ASSERT_EQ(status, 400);
	ASSERT_EQ(feed(REQ_HEAD "Upgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 4\r\n" REQ_WS "\r\n",
		       &status), WS_FEED_CLOSE);
	ASSERT_EQ(status, 400);
	/* A Transfer-Encoding: 501. */
	ASSERT_EQ(feed(REQ_HEAD "Upgrade: websocket\r\nConnection: Upgrade\r\nTransfer-Encoding: chunked\r\n" REQ_WS
		       "\r\n", &status), WS_FEED_CLOSE);
	ASSERT_EQ(status, 501);
	/* Wrong version: 426; bad key or subprotocol: 400. */
	ASSERT_EQ(feed(REQ_HEAD "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", &status),
		  WS_FEED_CLOSE);
	ASSERT_EQ(status, 426);
	ASSERT_EQ(feed(REQ_HEAD "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		       "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n", &status), WS_FEED_CLOSE);
	ASSERT_EQ(status, 400);
	ASSERT_EQ(feed(REQ_HEAD "Upgrade: websocket\r\nConnection: Upgrade\r\n" REQ_WS
		       "Sec-WebSocket-Protocol: chat\r\n\r\n", &status), WS_FEED_CLOSE);
	ASSERT_EQ(status, 400);
}

int main(void)
{
	RUN(test_upgrade_accepted);
	RUN(test_upgrade_refused);
	return CHECK_DONE();
}
