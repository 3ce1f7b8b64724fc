/* HTTP connections on worker 0's loop: input up to one bounded request at a
 * time, one answer per request (pipelined requests wait their turn),
 * keep-alive, and idle connections closed by a sweep. Every connection is
 * bounded in memory and time whatever the client does: at most MAX_CONNS,
 * a request must arrive whole within REQUEST_MS, an answer must be read
 * within STALL_MS, and nothing more is read while an answer is unsent. */
#include "internal.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/log.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IDLE_MS 30000     /* a keep-alive connection with no request */
#define REQUEST_MS 10000  /* from a request's first byte to its last (slowloris) */
#define STALL_MS 30000    /* an answer that the client does not read on */
#define LINGER_MS 2000    /* after our FIN, for the client's */
#define SWEEP_MS 1000
#define READ_CHUNK 16384
#define MAX_CONNS 128     /* more: the least recently active idle one goes */
/* Unparsed input kept while an answer is being prepared or sent: one whole
 * request fits, so parsing it cannot need more. */
#define IN_MAX (HTTP_MAX_HEAD + HTTP_MAX_BODY)

struct hconn {
	uv_tcp_t tcp;
	struct http_server *srv;
	struct hconn *prev, *next;
	uv_shutdown_t shutdown;
	struct buf in;
	uint64_t last_ms;     /* monotonic, of the last byte read or answer sent */
	uint64_t req_ms;      /* since when in holds a request not yet whole; 0: empty */
	uint64_t write_ms;    /* of the last progress of the answer being sent */
	size_t write_queued;  /* bytes of it libuv still held then */
	size_t parsed_len;    /* in.len when http_parse last needed more; 0: parse */
	size_t need;          /* http_parse's need then */
	uint64_t linger_ms;   /* when our FIN went (lingering) */
	bool lf_seen;         /* in held a line end then */
	bool keep_alive;      /* of the request being answered */
	bool head;            /* it is a HEAD: the answer has no body */
	bool waiting;         /* an answer is being prepared (api_dispatch returned 1) */
	bool closing;         /* uv_close called */
	bool closed;          /* the handle is closed; freed when no answer waits */
	bool close_after;     /* close once the writes are done */
	bool lingering;       /* FIN sent: input is read and dropped until the client's */
	bool paused;          /* uv_read_stop while in is full */
	unsigned writes;      /* uv_writes in progress */
	char peer[48];
};

/* One answer: the head, and the body it owns (or an embedded asset). */
struct hwrite {
	uv_write_t req;
	struct hconn *c;
	struct buf body;
	char head[];
};

static void process(struct hconn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *ub);

struct http_server *hconn_server(const struct hconn *c) { return c->srv; }
const char *hconn_peer(const struct hconn *c) { return c->peer; }

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
	c->srv->n_conns--;
	uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 202: return "Accepted";
	case 303: return "See Other";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

static bool busy(const struct hconn *c) { return c->waiting || c->writes; }

static void read_resume(struct hconn *c)
{
	if (!c->paused || c->closing)
		return;
	c->paused = false;
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
		conn_close(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct hconn *c = req->data;
	if (status < 0 && !c->closing)
		conn_close(c);
}

/* The last answer is out: closing now would reset the connection when
 * unread input is left (a pipelined request, the rest of a refused body),
 * and a reset can destroy the answer before the client has read it. So
 * our FIN goes first, and the client's is awaited, reading and dropping,
 * for LINGER_MS at most. */
static void linger(struct hconn *c)
{
	c->lingering = true;
	c->linger_ms = clock_mono_ms();
	c->in.len = 0;
	c->shutdown.data = c;
	if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown)) {
		conn_close(c);
		return;
	}
	read_resume(c);
}

static void on_written(uv_write_t *req, int status)
{
	struct hwrite *wr = (struct hwrite *)req;
	struct hconn *c = wr->c;
	buf_free(&wr->body);
	free(wr);
	c->writes--;
	if (c->closed) {
		if (!c->waiting && !c->writes)
			conn_free(c);
		return;
	}
	if (c->closing)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	c->last_ms = clock_mono_ms();
	if (c->writes)
		return;
	if (c->close_after) {
		linger(c);
		return;
	}
	/* The client's time for what it pipelined starts now. */
	c->req_ms = c->in.len ? c->last_ms : 0;
	process(c);
	if (!c->closing && !c->close_after && c->in.len < IN_MAX)
		read_resume(c);
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
	/* HEAD: the same Content-Length, no body [RFC 9110 9.3.2]. */
	int hn = snprintf(head, sizeof head,
			  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n"
			  "%sX-Content-Type-Options: nosniff\r\nContent-Security-Policy: default-src 'self'\r\n%s\r\n",
			  res->status, reason(res->status), res->type ? res->type : "text/plain; charset=utf-8", blen,
			  c->keep_alive ? "keep-alive" : "close", res->api ? "Cache-Control: no-store\r\n" : "",
			  res->headers);
	struct hwrite *wr = hn > 0 && (size_t)hn < sizeof head ? malloc(sizeof *wr + (size_t)hn) : NULL;
	if (!wr) {
		buf_free(&res->body);
		conn_close(c);
		return;
	}
	memcpy(wr->head, head, (size_t)hn);
	/* The body is written from where it is, not copied: a listing can be
	 * tens of megabytes. */
	wr->body = res->body;
	res->body = (struct buf){ 0 };
	wr->c = c;
	uv_buf_t ub[2] = { uv_buf_init(wr->head, (unsigned)hn), uv_buf_init((char *)(uintptr_t)body, (unsigned)blen) };
	if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, ub, blen && !c->head ? 2 : 1, on_written)) {
		buf_free(&wr->body);
		free(wr);
		conn_close(c);
		return;
	}
	c->writes++;
	c->last_ms = c->write_ms = clock_mono_ms();
	c->write_queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
	if (!c->keep_alive)
		c->close_after = true;
}

/* Whether parsing c->in again could give more than "need more": after that
 * answer, only a CR or LF (the old last byte included), the body's last
 * byte, or passing a size limit can change it. Parsing only then keeps a
 * request sent a byte at a time linear, not quadratic, in its size. */
static bool worth_parsing(const struct hconn *c)
{
	if (!c->parsed_len || c->in.len < c->parsed_len)
		return true;
	if (c->need)
		return c->in.len >= c->need;
	const uint8_t *from = c->in.p + c->parsed_len - 1;
	size_t n = c->in.len - c->parsed_len + 1;
	if (memchr(from, '\r', n) || memchr(from, '\n', n))
		return true;
	return c->in.len > (c->lf_seen ? HTTP_MAX_HEAD : HTTP_MAX_TARGET);
}

/* Answers the request at the head of c->in, if it is whole and no answer
 * is outstanding: one answer at a time, so a client that pipelines and
 * does not read holds one answer, not one per request. */
static void process(struct hconn *c)
{
	if (busy(c) || c->close_after || c->closing || !c->in.len || !worth_parsing(c))
		return;
	struct http_request req;
	long n = http_parse(c->in.p, c->in.len, &req);
	if (n == 0) {
		c->parsed_len = c->in.len;
		c->need = req.need;
		c->lf_seen = memchr(c->in.p, '\n', c->in.len) != NULL;
		return;
	}
	c->parsed_len = 0;
	struct http_response res = { 0 };
	if (n < 0) {
		/* The stream cannot be followed after a bad request: answer, close. */
		c->keep_alive = false;
		c->head = false;
		api_error(&res, (int)-n, (int)-n == 400 ? "malformed request" : reason((int)-n));
		log_debug("http %s: %d %s", c->peer, (int)-n, reason((int)-n));
		c->in.len = 0;
		http_reply(c, &res);
		return;
	}
	c->keep_alive = req.keep_alive;
	c->head = req.method_len == 4 && !memcmp(req.method, "HEAD", 4);
	int later = api_dispatch(c->srv, c, &req, &res);
	buf_consume(&c->in, (size_t)n);
	if (later)
		c->waiting = true;
	else
		http_reply(c, &res);
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
	if (!nread)
		return;
	c->last_ms = clock_mono_ms();
	if (c->close_after) {
		c->in.len = 0; /* after the last answer: dropped */
		return;
	}
	if (!c->in.len)
		c->req_ms = c->last_ms;
	c->in.len += (uint32_t)nread;
	process(c);
	/* Never more than one bounded request (and what follows it) is kept:
	 * the rest waits in the socket until the answer is out. */
	if (!c->closing && !c->close_after && c->in.len >= IN_MAX && !c->paused) {
		uv_read_stop(s);
		c->paused = true;
	}
}

/* At MAX_CONNS: closes the connection with no answer outstanding that was
 * active least recently (an idle keep-alive, or a slow request), so that a
 * client hoarding connections cannot lock operators out. Returns false when
 * every connection is busy with an answer. */
static bool make_room(struct http_server *s)
{
	struct hconn *oldest = NULL;
	for (struct hconn *c = s->conns; c; c = c->next)
		if (!busy(c) && (!oldest || c->last_ms <= oldest->last_ms)) /* ties: the older */
			oldest = c;
	if (!s->full_logged) {
		log_warn("http_listener: %u connections open; the least recently active idle one is closed for a "
			 "new one", MAX_CONNS);
		s->full_logged = true;
	}
	if (!oldest)
		return false;
	conn_close(oldest);
	return true;
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
	if (uv_accept(l, (uv_stream_t *)&c->tcp) || (s->n_conns >= MAX_CONNS && !make_room(s))) {
		c->closing = true;
		uv_close((uv_handle_t *)&c->tcp, on_closed);
		return;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
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
		if (c->writes) {
			size_t q = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
			if (q < c->write_queued) {
				c->write_queued = q;
				c->write_ms = now;
			}
		}
		bool expired = c->lingering ? now - c->linger_ms > LINGER_MS
			       : c->writes  ? now - c->write_ms > STALL_MS
			       : c->waiting ? false
			       : c->in.len  ? now - c->req_ms > REQUEST_MS
					    : now - c->last_ms > IDLE_MS;
		if (expired) {
			log_debug("http %s: closed (%s)", c->peer,
				  c->lingering ? "linger over" : c->writes ? "answer not read" :
				  c->in.len ? "request not finished in time" : "idle");
			conn_close(c);
		}
	}
	if (s->n_conns < MAX_CONNS)
		s->full_logged = false;
}

struct http_server *http_server_new(struct ops *ops, const struct config *cfg)
{
	struct http_server *s = calloc(1, sizeof *s);
	if (s) {
		s->ops = ops;
		s->node = ops_node(ops);
		s->cfg = cfg;
	}
	return s;
}

struct http_server *http_server_new_witness(struct ops_node *node, const struct config *cfg)
{
	struct http_server *s = calloc(1, sizeof *s);
	if (s) {
		s->node = node;
		s->cfg = cfg;
	}
	return s;
}

int http_server_start(struct http_server *s, uv_loop_t *loop) { return http_server_start_on(s, loop, -1); }

int http_server_start_on(struct http_server *s, uv_loop_t *loop, int fd)
{
	struct sockaddr_storage ss;
	const char *addr = s->cfg->http_address;
	unsigned port = s->cfg->http_port;
	if (uv_ip4_addr(addr, (int)port, (struct sockaddr_in *)&ss) &&
	    uv_ip6_addr(addr, (int)port, (struct sockaddr_in6 *)&ss)) {
		log_err("http_listener %s:%u: not an IP address", addr, port);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	s->loop = loop;
	uv_tcp_init(loop, &s->listener);
	s->listener.data = s;
	int rc;
	if (fd >= 0 && (rc = uv_tcp_open(&s->listener, fd)))
		close(fd); /* not the handle's: uv_close below leaves it */
	else
		rc = fd >= 0 ? 0 : uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
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
	log_notice("listening on %s:%u (HTTP: %s)", addr, port,
		   s->ops ? "API, /metrics, dashboard" : "a witness's /healthz, /readyz, /metrics and /api/cluster");
	/* Since the grants exist, password_file alone opens nothing: said at
	 * every start, so an upgrade does not lose the API without a word. */
	const struct config *cfg = s->cfg;
	bool granted = cfg->http_admin_users[strspn(cfg->http_admin_users, " \t,")] ||
		       cfg->http_readonly_users[strspn(cfg->http_readonly_users, " \t,")];
	if (cfg->password_file[0] && !granted)
		log_warn("http_listener: no user of password_file may use the HTTP API (they get 403), since "
			 "devices log in with the same file; grant people with http_admin_users or "
			 "http_readonly_users%s", cfg->http_token_file.line ? "; the http_token_file token works" : "");
	else if (!cfg->password_file[0] && granted)
		log_warn("http_listener: http_admin_users and http_readonly_users name users of password_file, "
			 "and there is none: Basic logins are refused");
	return 0;
}

int http_server_hand_over(struct http_server *s)
{
	if (!s->started || s->stopping || s->handed_over)
		return -1;
	uv_os_fd_t fd;
	/* A second descriptor of the same socket: closing the handle's leaves
	 * the socket listening, its backlog kept. */
	int kept = uv_fileno((uv_handle_t *)&s->listener, &fd) ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (kept < 0)
		log_warn("http_listener: cannot hand the listening socket over (%s): the next one binds anew",
			 strerror(errno));
	s->handed_over = true;
	uv_close((uv_handle_t *)&s->listener, NULL);
	return kept;
}

void http_server_stop(struct http_server *s)
{
	if (!s->started || s->stopping)
		return;
	s->stopping = true;
	if (!s->handed_over)
		uv_close((uv_handle_t *)&s->listener, NULL);
	uv_close((uv_handle_t *)&s->sweep, NULL);
	while (s->conns)
		conn_close(s->conns);
}

void http_server_free(struct http_server *s)
{
	free(s);
}
