/* HTTP connections on worker 0's loop: input up to one bounded request at a
 * time, one answer per request (pipelined requests wait their turn),
 * keep-alive, and idle connections closed by a sweep. */
#include "internal.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDLE_MS 30000     /* a keep-alive connection with no request */
#define SWEEP_MS 5000
#define READ_CHUNK 16384

struct hconn {
	uv_tcp_t tcp;
	struct http_server *srv;
	struct hconn *prev, *next;
	struct buf in;
	uint64_t last_ms;     /* monotonic, of the last byte read or answer sent */
	bool keep_alive;      /* of the request being answered */
	bool waiting;         /* an answer is being prepared (api_dispatch returned 1) */
	bool closing;         /* uv_close called */
	bool closed;          /* the handle is closed; freed when no answer waits */
	bool close_after;     /* close once the writes are done */
	bool in_process;      /* process() is running: no recursion from http_reply */
	unsigned writes;      /* uv_writes in progress */
	char peer[48];
};

struct hwrite {
	uv_write_t req;
	struct hconn *c;
	char data[];
};

static void process(struct hconn *c);

struct http_server *hconn_server(const struct hconn *c) { return c->srv; }

static void conn_free(struct hconn *c)
{
	buf_free(&c->in);
	free(c);
}

static void on_closed(uv_handle_t *h)
{
	struct hconn *c = h->data;
	c->closed = true;
	if (!c->waiting && !c->writes)
		conn_free(c);
}

static void conn_close(struct hconn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->prev)
		c->prev->next = c->next;
	else
		c->srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 303: return "See Other";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

static void on_written(uv_write_t *req, int status)
{
	struct hwrite *wr = (struct hwrite *)req;
	struct hconn *c = wr->c;
	free(wr);
	c->writes--;
	if (c->closed) {
		if (!c->waiting && !c->writes)
			conn_free(c);
		return;
	}
	if (status < 0 || (c->close_after && !c->writes))
		conn_close(c);
}

void http_reply(struct hconn *c, struct http_response *res)
{
	c->waiting = false;
	if (c->closing) {
		buf_free(&res->body);
		if (c->closed && !c->writes)
			conn_free(c);
		return;
	}
	const uint8_t *body = res->fixed ? res->fixed : res->body.p;
	size_t blen = res->fixed ? res->fixed_len : res->body.len;
	char head[1024];
	int hn = snprintf(head, sizeof head,
			  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n"
			  "%sX-Content-Type-Options: nosniff\r\nContent-Security-Policy: default-src 'self'\r\n%s\r\n",
			  res->status, reason(res->status), res->type ? res->type : "text/plain; charset=utf-8", blen,
			  c->keep_alive ? "keep-alive" : "close", res->api ? "Cache-Control: no-store\r\n" : "",
			  res->headers);
	struct hwrite *wr = hn > 0 && (size_t)hn < sizeof head ? malloc(sizeof *wr + (size_t)hn + blen) : NULL;
	if (!wr) {
		buf_free(&res->body);
		conn_close(c);
		return;
	}
	memcpy(wr->data, head, (size_t)hn);
	if (blen)
		memcpy(wr->data + hn, body, blen);
	buf_free(&res->body);
	wr->c = c;
	uv_buf_t ub = uv_buf_init(wr->data, (unsigned)((size_t)hn + blen));
	if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &ub, 1, on_written)) {
		free(wr);
		conn_close(c);
		return;
	}
	c->writes++;
	c->last_ms = clock_mono_ms();
	if (!c->keep_alive)
		c->close_after = true;
	else if (!c->in_process)
		process(c); /* a pipelined request may be waiting */
}

/* Answers the requests in c->in, one at a time. */
static void process(struct hconn *c)
{
	c->in_process = true;
	while (!c->waiting && !c->close_after && !c->closing && c->in.len) {
		struct http_request req;
		long n = http_parse(c->in.p, c->in.len, &req);
		if (n == 0)
			break;
		struct http_response res = { 0 };
		if (n < 0) {
			/* The stream cannot be followed after a bad request: answer, close. */
			c->keep_alive = false;
			api_error(&res, (int)-n, (int)-n == 400 ? "malformed request" : reason((int)-n));
			log_debug("http %s: %d %s", c->peer, (int)-n, reason((int)-n));
			c->in.len = 0;
			http_reply(c, &res);
			break;
		}
		c->keep_alive = req.keep_alive;
		int later = api_dispatch(c->srv, c, &req, &res);
		buf_consume(&c->in, (size_t)n);
		if (later) {
			c->waiting = true;
			break;
		}
		http_reply(c, &res);
	}
	c->in_process = false;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
	struct hconn *c = h->data;
	(void)suggested;
	if (buf_reserve(&c->in, READ_CHUNK))
		*out = uv_buf_init(NULL, 0);
	else
		*out = uv_buf_init((char *)c->in.p + c->in.len, READ_CHUNK);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *ub)
{
	struct hconn *c = s->data;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	c->in.len += (uint32_t)nread;
	c->last_ms = clock_mono_ms();
	/* Never more than one bounded request (and what follows it) is kept. */
	if (c->in.len > HTTP_MAX_HEAD + HTTP_MAX_BODY + READ_CHUNK) {
		if (c->waiting) {
			conn_close(c);
			return;
		}
	}
	process(c);
}

static void on_connection(uv_stream_t *l, int status)
{
	struct http_server *s = l->data;
	if (status < 0)
		return;
	struct hconn *c = calloc(1, sizeof *c);
	if (!c)
		return;
	c->srv = s;
	uv_tcp_init(s->loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept(l, (uv_stream_t *)&c->tcp)) {
		c->closing = true;
		uv_close((uv_handle_t *)&c->tcp, on_closed);
		return;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	c->last_ms = clock_mono_ms();
	struct sockaddr_storage ss;
	int sl = sizeof ss;
	snprintf(c->peer, sizeof c->peer, "?");
	if (!uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl))
		uv_ip_name((struct sockaddr *)&ss, c->peer, sizeof c->peer);
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
		conn_close(c);
}

static void on_sweep(uv_timer_t *t)
{
	struct http_server *s = t->data;
	uint64_t now = clock_mono_ms();
	for (struct hconn *c = s->conns, *next; c; c = next) {
		next = c->next;
		if (!c->waiting && !c->writes && now - c->last_ms > IDLE_MS)
			conn_close(c);
	}
}

struct http_server *http_server_new(struct ops *ops, const struct config *cfg)
{
	struct http_server *s = calloc(1, sizeof *s);
	if (s) {
		s->ops = ops;
		s->cfg = cfg;
	}
	return s;
}

int http_server_start(struct http_server *s, uv_loop_t *loop)
{
	struct sockaddr_storage ss;
	const char *addr = s->cfg->http_address;
	unsigned port = s->cfg->http_port;
	if (uv_ip4_addr(addr, (int)port, (struct sockaddr_in *)&ss) &&
	    uv_ip6_addr(addr, (int)port, (struct sockaddr_in6 *)&ss)) {
		log_err("http_listener %s:%u: not an IP address", addr, port);
		return -1;
	}
	s->loop = loop;
	uv_tcp_init(loop, &s->listener);
	s->listener.data = s;
	int rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
	if (!rc)
		rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
	if (rc) {
		log_err("http_listener %s:%u: %s", addr, port, uv_strerror(rc));
		uv_close((uv_handle_t *)&s->listener, NULL);
		return -1;
	}
	uv_timer_init(loop, &s->sweep);
	s->sweep.data = s;
	uv_timer_start(&s->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
	s->started = true;
	log_notice("listening on %s:%u (HTTP: API, /metrics, dashboard)", addr, port);
	return 0;
}

void http_server_stop(struct http_server *s)
{
	if (!s->started || s->stopping)
		return;
	s->stopping = true;
	uv_close((uv_handle_t *)&s->listener, NULL);
	uv_close((uv_handle_t *)&s->sweep, NULL);
	while (s->conns)
		conn_close(s->conns);
}

void http_server_free(struct http_server *s)
{
	free(s);
}
