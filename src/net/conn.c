/* Connections: reads into the worker's shared buffer, keeps only incomplete
 * packets per connection, and coalesces each connection's output into one
 * write per loop turn. A transport other than plain TCP (transport.c) turns
 * socket bytes into MQTT bytes on the way in, and the turn's output into
 * wire bytes in one go on the way out. */
#include "worker.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/log.h"
#include "../base/vec.h"
#include "../tls/tls.h"
#include "../ws/ws.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Output buffers at most this big stay allocated between writes. */
#define KEEP_OUT_CAP (256 * 1024)
#define SMALL_OUT_CAP 1024
/* Output a connection may hold before its CONNECT is accepted (handshake
 * replies, WebSocket pongs, the CONNACK): an unauthenticated peer that
 * does not read is cut off past it. */
#define PRELOGIN_OUT_CAP (64 * 1024)
/* After the goodbye: how long the peer's bytes are read and dropped while
 * waiting for it to close (shorter when the broker stops). */
#define LINGER_MS 2000
#define LINGER_STOPPING_MS 1000

static struct conn *conn_of_client(struct client *c)
{
	return (struct conn *)((char *)c - offsetof(struct conn, client));
}

const struct listener_conf *conn_listener(const struct conn *c)
{
	return &conn_worker(c)->bw->b->cfg.listeners[c->listener];
}

static void conn_free(struct conn *c)
{
	if (c->x) {
		xport_free(c->x);
		free(c->x);
	}
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
}

void conn_mark_ended(struct conn *c)
{
	c->client.will_on_close = true; /* not a normal DISCONNECT [MQTT-3.1.2-8] */
	c->client.state = CLIENT_CLOSING;
}

/* Logs why c ends, once, unless the broker already did (it logs every
 * close it decides, and marks the client CLOSING when it does). Connected
 * clients get a notice naming them; connections that never logged in, an
 * info line. */
static void conn_end(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_end(struct conn *c, const char *fmt, ...)
{
	struct client *cl = &c->client;
	if (cl->state == CLIENT_CLOSING)
		return;
	enum log_level lvl = cl->state == CLIENT_NEW ? LVL_INFO : LVL_NOTICE;
	if (!log_on(lvl)) {
		conn_mark_ended(c);
		return;
	}
	char why[256], addr[48];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	client_addr_text(cl, addr);
	if (cl->state == CLIENT_NEW) {
		log_info("connection from %s on listener %u ended before CONNECT: %s", addr, cl->listener_port, why);
	} else {
		const char *id = cl->session ? cl->session->client_id : "-";
		const char *proto = cl->version == MQTT_V5 ? "mqttv5" : cl->version == MQTT_V311 ? "mqttv311" : "mqttv31";
		struct log_client who = { id, addr, cl->identity, cl->username, proto, -1 };
		log_client(lvl, &who, "client %s (%s, identity %s) disconnected: %s", id, addr,
			   cl->identity ? cl->identity : "-", why);
	}
	conn_mark_ended(c);
}

/* The cause of a failed read or write, for conn_end. */
static void conn_end_io(struct conn *c, int err, const char *op)
{
	if (err == UV_EOF)
		conn_end(c, "%s", c->client.state == CLIENT_NEW ? "closed by the client"
								 : "closed by the client without DISCONNECT");
	else if (err == UV_ECONNRESET || err == UV_EPIPE)
		conn_end(c, "connection reset by the client");
	else if (err == UV_ETIMEDOUT)
		conn_end(c, "connection timed out (tcp_keepalive, tcp_user_timeout)");
	else
		conn_end(c, "%s failed: %s", op, uv_strerror(err));
}

static void conn_unref_(struct conn *c)
{
	if (atomic_fetch_sub(&c->refs, 1) == 1)
		conn_free(c);
}

static void on_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	for (struct conn **pp = &conn_worker(c)->flush_head; c->flush_queued && *pp; pp = &(*pp)->flush_next) {
		if (*pp == c) {
			*pp = c->flush_next;
			c->flush_queued = false;
			break;
		}
	}
	struct nworker *w = conn_worker(c);
	for (uint32_t i = 0; c->paced && i < w->n_paced; i++) {
		if (w->paced[i] == c) {
			w->paced[i] = w->paced[--w->n_paced];
			c->paced = false;
		}
	}
	for (uint32_t i = 0; c->lingering && i < w->n_lingering; i++) {
		if (w->lingering[i].c == c) {
			w->lingering[i] = w->lingering[--w->n_lingering];
			c->lingering = false;
		}
	}
	conn_worker(c)->n_conns--;
	atomic_fetch_sub(&conn_worker(c)->net->open[c->listener], 1);
	atomic_fetch_sub(&conn_worker(c)->net->open_total, 1);
	broker_on_close(&c->client);
	conn_unref_(c);
}

static void conn_close_now(struct conn *c)
{
	if (uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *ub);

/* The goodbye (the broker's DISCONNECT or refused CONNACK, the TLS
 * close_notify, the WebSocket close frame) is written. Closing now would
 * make the kernel answer a peer that is still sending with a reset, and
 * the peer might never read the reason. So the write side is shut (the
 * peer reads the reason, then EOF) and whatever the peer still sends is
 * read and dropped until it closes, for LINGER_MS at most (the worker tick
 * sweeps, conn_linger_sweep). On every transport alike. */
static void conn_finish(struct conn *c)
{
	struct nworker *w = conn_worker(c);
	if (c->lingering || uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	uv_os_fd_t fd;
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (uv_fileno((uv_handle_t *)&c->tcp, &fd) || shutdown(fd, SHUT_WR) ||
	    vec_grow(&w->lingering, &w->cap_lingering, w->n_lingering, sizeof *w->lingering, 8) ||
	    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) {
		conn_close_now(c);
		return;
	}
	c->read_paused = false;
	c->lingering = true;
	w->lingering[w->n_lingering++] = (struct nlinger){ c, uv_now(&w->loop) };
}

void conn_linger_sweep(struct nworker *w)
{
	uint64_t now = uv_now(&w->loop), max = w->stopping ? LINGER_STOPPING_MS : LINGER_MS;
	/* conn_close_now leaves the list as it is: on_closed takes c off later. */
	for (uint32_t i = 0; i < w->n_lingering; i++)
		if (now - w->lingering[i].since >= max)
			conn_close_now(w->lingering[i].c);
}

static void queue_flush(struct conn *c)
{
	if (c->flush_queued)
		return;
	c->flush_queued = true;
	c->flush_next = conn_worker(c)->flush_head;
	conn_worker(c)->flush_head = c;
}

static void conn_write(struct conn *c);

static void on_written(uv_write_t *req, int status)
{
	struct conn *c = req->data;
	net_write_free((struct net_write *)req);
	c->wreq = NULL;
	if (status < 0) {
		if (status != UV_ECANCELED)
			conn_end_io(c, status, "write");
		conn_close_now(c);
		return;
	}
	if (c->out.len)
		conn_write(c);
	else if (c->closing)
		conn_finish(c);
	/* Room again: let the session send what waited for it. */
	if (!c->closing && !c->wreq)
		broker_on_writable(&c->client);
}

/* Idle connections hold no output memory; busy ones keep theirs. */
static void release_idle(struct buf *b)
{
	if (!b->len && (b->cap <= SMALL_OUT_CAP || b->cap > KEEP_OUT_CAP))
		buf_free(b);
}

/* Encodes the turn's output for a TLS or WebSocket connection, with the
 * goodbye when it is closing. Returns the buffer to write, or NULL after
 * closing the connection. */
static struct buf *encode_out(struct conn *c)
{
	struct xport *x = c->x;
	int rc = x->tp->encode(x, &c->out);
	c->out.len = 0;
	release_idle(&c->out);
	if (rc) {
		conn_end(c, "%s output failed (out of memory)", x->tp->name);
		conn_close_now(c);
		return NULL;
	}
	if (c->closing && !x->shut) {
		x->shut = true;
		x->tp->shutdown(x);
	}
	return &x->wire;
}

/* Writes the connection's wire bytes (c->out for plain TCP): synchronously
 * as far as the socket takes them, the rest with one uv_write that owns the
 * buffer. */
static void conn_write(struct conn *c)
{
	if (c->lingering) {
		c->out.len = 0; /* the write side is shut: nothing more goes out */
		return;
	}
	if (c->wreq || uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	struct buf *wb = c->x ? encode_out(c) : &c->out;
	if (!wb)
		return;
	if (wb->len) {
		int rc = net_write_start((uv_stream_t *)&c->tcp, wb, c, on_written, &c->wreq);
		if (rc < 0) {
			if (rc == UV_ENOMEM)
				conn_end(c, "out of memory");
			else
				conn_end_io(c, rc, "write");
			conn_close_now(c);
			return;
		}
		if (rc > 0)
			return; /* on_written goes on */
		release_idle(wb);
		/* All of it went at once: no on_written will say there is room for
		 * the deliveries that paused on max_output_buffer. */
		if (!c->closing && c->client.output_full)
			broker_on_writable(&c->client);
	}
	if (c->closing)
		conn_finish(c);
}

void conn_flush_all(struct nworker *w)
{
	while (w->flush_head) {
		struct conn *c = w->flush_head;
		w->flush_head = c->flush_next;
		c->flush_queued = false;
		conn_write(c);
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
	struct conn *c = h->data;
	(void)suggested;
	*out = uv_buf_init((char *)conn_worker(c)->rbuf, NWORKER_READ_BUF);
}

int conn_deliver(struct conn *c, const uint8_t *p, size_t len)
{
	if (c->closing)
		return -1;
	if (c->in.len) {
		/* Completes an earlier partial packet. */
		if (buf_append(&c->in, p, len)) {
			conn_end(c, "out of memory");
			conn_close_now(c);
			return -1;
		}
		p = c->in.p;
		len = c->in.len;
	}
	long used = broker_on_data(&c->client, p, len);
	if (used < 0)
		return -1; /* the broker asked to close */
	if (c->in.len) {
		buf_consume(&c->in, (size_t)used);
		if (!c->in.len)
			buf_free(&c->in);
	} else if ((size_t)used < len && buf_append(&c->in, p + used, len - (size_t)used)) {
		conn_end(c, "out of memory");
		conn_close_now(c);
		return -1;
	}
	return 0;
}

static void conn_shut(struct conn *c);

static bool conn_gone(struct conn *c)
{
	return c->closing || uv_is_closing((uv_handle_t *)&c->tcp);
}

/* Holds c back for `wait` ms (0: until the next loop turn): stops reading
 * its socket and puts it on the worker's pace list, with the pace timer due
 * by then. */
static void pace_hold(struct conn *c, long wait)
{
	struct nworker *w = conn_worker(c);
	if (!c->read_paused) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->read_paused = true;
	}
	if (!c->paced) {
		if (vec_grow(&w->paced, &w->cap_paced, w->n_paced, sizeof *w->paced, 8)) {
			conn_end(c, "out of memory");
			conn_close_now(c); /* cannot be held back: cut off rather than flood */
			return;
		}
		c->paced = true;
		w->paced[w->n_paced++] = c;
	}
	uint64_t due = uv_now(&w->loop) + (uint64_t)wait;
	if (!uv_is_active((uv_handle_t *)&w->pace) || due < w->pace_due) {
		w->pace_due = due;
		uv_timer_start(&w->pace, conn_on_pace, (uint64_t)wait, 0);
	}
}

/* max_publish_rate, after input: a client out of tokens is not read from
 * until it has some again; then its held input goes first, and reading
 * resumes once that is done without running out again. */
static void conn_pace(struct conn *c)
{
	while (c->client.rate_held) {
		if (conn_gone(c))
			return;
		long wait = broker_client_rate_wait(&c->client, clock_mono_ms());
		if (wait < 0)
			return; /* disconnected for staying over the rate */
		if (wait > 0) {
			pace_hold(c, wait);
			return;
		}
		if (c->in.len && conn_deliver(c, NULL, 0))
			return;
	}
	if (c->read_paused && !conn_gone(c)) {
		c->read_paused = false;
		if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) {
			conn_end(c, "cannot read");
			conn_close_now(c);
		}
	}
}

void conn_on_pace(uv_timer_t *pace)
{
	struct nworker *w = pace->data;
	/* Connections still over the rate go back on the list (and re-arm the timer). */
	struct conn **list = w->paced;
	uint32_t n = w->n_paced;
	w->paced = NULL;
	w->n_paced = w->cap_paced = 0;
	for (uint32_t i = 0; i < n; i++)
		list[i]->paced = false;
	for (uint32_t i = 0; i < n; i++)
		conn_pace(list[i]);
	free(list);
}

/* The output cap in every state, for what the network layer itself adds
 * (handshake replies, WebSocket pongs): before its CONNECT is accepted a
 * connection may hold PRELOGIN_OUT_CAP; afterwards the broker's rule
 * (4 x max_output_buffer, output_stall_timeout) applies. */
static void conn_check_out(struct conn *c)
{
	struct client *cl = &c->client;
	if (conn_gone(c))
		return;
	if (cl->state == CLIENT_CONNECTED) {
		broker_client_check_output(cl, clock_mono_ms());
		return;
	}
	size_t pending = net_ports.out_pending(cl);
	if (pending <= PRELOGIN_OUT_CAP)
		return;
	conn_end(c, "not reading: %zu bytes of output before CONNECT (at most %u)", pending, PRELOGIN_OUT_CAP);
	c->closing = true;
	conn_close_now(c);
}

/* One read buffer per connection per loop turn: after a full one (more is
 * likely waiting) the connection is held until the next turn. libuv would
 * otherwise read on, up to 32 buffers in one go, and a client that keeps
 * its socket full (a SUBSCRIBE flood: seconds of work under a sanitizer)
 * held up every other connection of the worker, its accepts and its
 * inbox, a take-over's CONNACK among them. */
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *ub)
{
	struct conn *c = s->data;
	if (nread < 0) {
		if (!c->closing)
			conn_end_io(c, (int)nread, "read");
		conn_close_now(c);
		return;
	}
	/* Closing: what the peer still sends is dropped (conn_finish). */
	if (nread == 0 || c->closing)
		return;
	if (!c->x) {
		conn_deliver(c, (const uint8_t *)ub->base, (size_t)nread);
	} else if (c->x->tp->read(c->x, (const uint8_t *)ub->base, (size_t)nread, conn_worker(c)->rbuf,
				  NWORKER_READ_BUF) < 0) {
		const struct xport *x = c->x;
		conn_end(c, "%s: %s", x->tp->name,
			 x->why ? x->why : x->peer_closed ? "TLS closed by the client (close_notify)" : "closed");
		conn_shut(c);
		return;
	} else {
		queue_flush(c); /* handshake replies, pongs */
		conn_check_out(c);
	}
	if (c->client.rate_held)
		conn_pace(c);
	else if ((size_t)nread == NWORKER_READ_BUF && !conn_gone(c))
		pace_hold(c, 0);
}

/* ---- what the transport asks of a client connection ---- */

static int xc_deliver(void *owner, const uint8_t *p, size_t len) { return conn_deliver(owner, p, len); }

static bool xc_closing(void *owner) { return ((struct conn *)owner)->closing; }

/* The handshake is done: log it and take the certificate's identity. */
static void xc_tls_up(void *owner)
{
	struct conn *c = owner;
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

/* This line is the connection's end line (conn_end). */
static void xc_tls_failed(void *owner)
{
	struct conn *c = owner;
	log_notice("TLS handshake with %s on listener %u failed: %s", CLIENT_ADDR(&c->client), conn_listener(c)->port,
		   c->x->why);
	conn_mark_ended(c);
}

static void xc_ws_up(void *owner, const char *subprotocol)
{
	struct conn *c = owner;
	log_debug("WebSocket from %s upgraded (subprotocol %s)", CLIENT_ADDR(&c->client),
		  subprotocol ? subprotocol : "none");
}

static const struct xport_ops conn_xport_ops = {
	.deliver = xc_deliver,
	.closing = xc_closing,
	.tls_up = xc_tls_up,
	.tls_failed = xc_tls_failed,
	.ws_up = xc_ws_up,
};

/* Picks the transport of listener l and allocates its state. */
static int transport_init(struct conn *c, const struct listener_conf *l)
{
	bool tls = LISTENER_TLS(l), ws = l->protocol == PROTO_WEBSOCKETS;
	if (!tls && !ws)
		return 0;
	struct xport *x = calloc(1, sizeof *x);
	if (!x)
		return -FM_ENOMEM;
	xport_init(x, tls ? (ws ? &net_wss : &net_tls) : &net_ws, NULL, NULL, &conn_xport_ops, c);
	c->x = x;
	if (tls && !(x->tls = tls_session_new(conn_worker(c)->tls.ctx[c->listener])))
		return -FM_ENOMEM;
	/* A frame larger than the largest packet we accept is refused. */
	uint32_t mps = conn_worker(c)->bw->b->cfg.max_packet_size;
	if (ws && !(x->ws = ws_session_new(mps ? mps : 268435460u)))
		return -FM_ENOMEM;
	return 0;
}

/* tcp_keepalive and tcp_user_timeout, against half-open connections. */
static void set_tcp_options(struct conn *c, const struct config *cfg)
{
	if (cfg->tcp_keepalive && uv_tcp_keepalive(&c->tcp, 1, cfg->tcp_keepalive))
		log_debug("tcp_keepalive on %s failed", CLIENT_ADDR(&c->client));
	uv_os_fd_t fd;
	unsigned ms = cfg->tcp_user_timeout;
	if (ms && !uv_fileno((uv_handle_t *)&c->tcp, &fd) &&
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms))
		log_debug("tcp_user_timeout on %s failed", CLIENT_ADDR(&c->client));
}

static void free_unopened(uv_handle_t *h) { free(h->data); }

void conn_accept(struct nworker *w, int fd, unsigned idx)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return;
	}
	c->listener = (uint8_t)idx;
	atomic_init(&c->refs, 1);
	uv_tcp_init(&w->loop, &c->tcp);
	c->tcp.data = c;
	if (uv_tcp_open(&c->tcp, fd)) {
		/* An initialised handle is freed only after uv_close. */
		close(fd);
		uv_close((uv_handle_t *)&c->tcp, free_unopened);
		return;
	}
	/* The handle is live from here on: every exit goes through uv_close. */
	w->n_conns++;
	int open = atomic_fetch_add(&w->net->open[idx], 1) + 1;
	unsigned total = (unsigned)atomic_fetch_add(&w->net->open_total, 1) + 1;
	uv_tcp_nodelay(&c->tcp, 1);
	struct sockaddr_storage ss;
	int sl = sizeof ss;
	bool known = uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0;
	broker_client_init(w->bw->b, &c->client, w->id, known ? (struct sockaddr *)&ss : NULL);
	const struct listener_conf *l = conn_listener(c);
	c->client.identity_as_username = l->use_identity_as_username;
	c->client.listener_port = l->port;
	set_tcp_options(c, &w->bw->b->cfg);
	bool over_listener = l->max_connections && (unsigned)open > l->max_connections;
	if (over_listener || total > w->net->max_total) {
		/* One line per 10 s under a flood, with the count of the others. */
		unsigned skipped;
		conn_mark_ended(c);
		if (ratelog_due(&w->limit_log, uv_now(&w->loop), &skipped)) {
			if (over_listener)
				log_notice("listener %u: max_connections %u reached, closing %s (%u more since the last "
					   "such line)", l->port, l->max_connections, CLIENT_ADDR(&c->client), skipped);
			else
				log_notice("listener %u: %u client connections, the most the open file limit allows; "
					   "closing %s (%u more since the last such line)",
					   l->port, w->net->max_total, CLIENT_ADDR(&c->client), skipped);
		}
		conn_close_now(c);
		return;
	}
	if (w->stopping) {
		conn_end(c, "server shutting down");
		conn_close_now(c);
	} else if (transport_init(c, l) || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) {
		conn_end(c, "out of memory");
		conn_close_now(c);
	}
}

/* ---- the broker's ports ---- */

static struct buf *port_out(struct client *cl) { return &conn_of_client(cl)->out; }

static size_t port_out_pending(struct client *cl)
{
	struct conn *c = conn_of_client(cl);
	return c->out.len + (c->x ? c->x->wire.len + c->x->mid.len : 0) +
	       (c->wreq ? net_write_left(c->wreq) : 0);
}

static void port_flush(struct client *cl)
{
	queue_flush(conn_of_client(cl));
	/* The hard output cap holds between worker ticks too. */
	if (port_out_pending(cl) / 4 > cl->b->cfg.max_output_buffer)
		broker_client_check_output(cl, clock_mono_ms());
}

static void port_close(struct client *cl) { conn_shut(conn_of_client(cl)); }

static void port_abort(struct client *cl)
{
	struct conn *c = conn_of_client(cl);
	c->closing = true;
	conn_close_now(c);
}

/* What is already in the output goes out, then the goodbye, then the
 * socket lingers (conn_finish). Input from here on is read and dropped:
 * unread input at close would make the kernel reset the connection. */
static void conn_shut(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->read_paused) {
		c->read_paused = false;
		uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read); /* conn_finish checks again */
	}
	queue_flush(c); /* what is already in the output goes out first */
}

static void port_conn_ref(struct client *cl) { atomic_fetch_add(&conn_of_client(cl)->refs, 1); }
static void port_conn_unref(struct client *cl) { conn_unref_(conn_of_client(cl)); }

void net_wake(struct broker *b, int worker);

const struct broker_ports net_ports = {
	.out = port_out,
	.out_pending = port_out_pending,
	.flush = port_flush,
	.close = port_close,
	.abort = port_abort,
	.wake = net_wake,
	.conn_ref = port_conn_ref,
	.conn_unref = port_conn_unref,
};
