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
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Output buffers at most this big stay allocated between writes. */
#define KEEP_OUT_CAP (256 * 1024)
#define SMALL_OUT_CAP 1024

struct wreq {
	uv_write_t req;
	struct buf data;
	size_t off;
};

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
		tls_session_free(c->x->tls);
		ws_session_free(c->x->ws);
		buf_free(&c->x->mid);
		buf_free(&c->x->wire);
		free(c->x);
	}
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
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
	conn_worker(c)->n_conns--;
	atomic_fetch_sub(&conn_worker(c)->net->open[c->listener], 1);
	broker_on_close(&c->client);
	conn_unref_(c);
}

static void free_timer(uv_handle_t *h) { free(h); }

static void conn_close_now(struct conn *c)
{
	if (uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	if (c->x && c->x->linger) {
		uv_close((uv_handle_t *)c->x->linger, free_timer);
		c->x->linger = NULL;
	}
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_linger_timeout(uv_timer_t *t) { conn_close_now(t->data); }

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *ub);

/* Closes after the goodbye went out. TLS and WebSocket peers answer with
 * their own close (close_notify, close frame): closing the socket before it
 * arrives makes the kernel reset the connection, and the peer sees an error.
 * So those wait, reading and discarding, for the peer to close (at most 1 s). */
static void conn_finish(struct conn *c)
{
	if (!c->x || !c->x->shut || c->x->linger || uv_is_closing((uv_handle_t *)&c->tcp)) {
		conn_close_now(c);
		return;
	}
	uv_timer_t *t = malloc(sizeof *t);
	if (!t || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) {
		free(t);
		conn_close_now(c);
		return;
	}
	uv_timer_init(&conn_worker(c)->loop, t);
	t->data = c;
	c->x->linger = t;
	uv_timer_start(t, on_linger_timeout, 1000, 0);
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
	struct wreq *wr = (struct wreq *)req;
	struct conn *c = req->data;
	buf_free(&wr->data);
	free(wr);
	c->wreq = NULL;
	if (status < 0) {
		if (status != UV_ECANCELED)
			log_debug("write to %s failed: %s", CLIENT_ADDR(&c->client), uv_strerror(status));
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
	int rc = x->tp->encode(c);
	c->out.len = 0;
	release_idle(&c->out);
	if (rc) {
		log_debug("%s output to %s failed", x->tp->name, CLIENT_ADDR(&c->client));
		conn_close_now(c);
		return NULL;
	}
	if (c->closing && !x->shut) {
		x->shut = true;
		x->tp->shutdown(c);
	}
	return &x->wire;
}

/* Writes the connection's wire bytes (c->out for plain TCP): synchronously
 * as far as the socket takes them, the rest with one uv_write that owns the
 * buffer. */
static void conn_write(struct conn *c)
{
	if (c->wreq || uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	struct buf *wb = c->x ? encode_out(c) : &c->out;
	if (!wb)
		return;
	if (wb->len) {
		uv_buf_t ub = uv_buf_init((char *)wb->p, (unsigned)wb->len);
		int n = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
		if (n < 0 && n != UV_EAGAIN) {
			log_debug("write to %s failed: %s", CLIENT_ADDR(&c->client), uv_strerror(n));
			wb->len = 0;
			conn_close_now(c);
			return;
		}
		size_t done = n > 0 ? (size_t)n : 0;
		if (done < wb->len) {
			struct wreq *wr = malloc(sizeof *wr);
			if (!wr) {
				conn_close_now(c);
				return;
			}
			wr->data = *wb; /* the request owns the buffer now */
			wr->off = done;
			memset(wb, 0, sizeof *wb);
			wr->req.data = c;
			ub = uv_buf_init((char *)wr->data.p + done, (unsigned)(wr->data.len - done));
			int rc = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &ub, 1, on_written);
			if (rc) {
				buf_free(&wr->data);
				free(wr);
				conn_close_now(c);
				return;
			}
			c->wreq = wr;
			return;
		}
		wb->len = 0;
		release_idle(wb);
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

/* Holds c back for `wait` ms: stops reading its socket and puts it on the
 * worker's pace list, with the pace timer due by then. */
static void pace_hold(struct conn *c, long wait)
{
	struct nworker *w = conn_worker(c);
	if (!c->read_paused) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->read_paused = true;
	}
	if (!c->paced) {
		if (vec_grow(&w->paced, &w->cap_paced, w->n_paced, sizeof *w->paced, 8)) {
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
		if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
			conn_close_now(c);
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

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *ub)
{
	struct conn *c = s->data;
	if (nread < 0) {
		if (nread != UV_EOF)
			log_debug("read from %s: %s", CLIENT_ADDR(&c->client), uv_strerror((int)nread));
		conn_close_now(c);
		return;
	}
	if (nread == 0 || c->closing)
		return;
	if (!c->x) {
		conn_deliver(c, (const uint8_t *)ub->base, (size_t)nread);
	} else if (c->x->tp->read(c, (const uint8_t *)ub->base, (size_t)nread) < 0) {
		conn_shut(c);
		return;
	} else {
		queue_flush(c); /* handshake replies, pongs */
	}
	if (c->client.rate_held)
		conn_pace(c);
}

/* Picks the transport of listener l and allocates its state. */
static int transport_init(struct conn *c, const struct listener_conf *l)
{
	bool tls = LISTENER_TLS(l), ws = l->protocol == PROTO_WEBSOCKETS;
	if (!tls && !ws)
		return 0;
	struct xport *x = calloc(1, sizeof *x);
	if (!x)
		return -FM_ENOMEM;
	c->x = x;
	x->tp = tls ? (ws ? &conn_wss : &conn_tls) : &conn_ws;
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

void conn_accept(struct nworker *w, uv_stream_t *listener, unsigned idx)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return;
	c->listener = (uint8_t)idx;
	atomic_init(&c->refs, 1);
	uv_tcp_init(&w->loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept(listener, (uv_stream_t *)&c->tcp)) {
		free(c);
		return;
	}
	/* The handle is live from here on: every exit goes through uv_close. */
	w->n_conns++;
	uv_tcp_nodelay(&c->tcp, 1);
	struct sockaddr_storage ss;
	int sl = sizeof ss;
	bool known = uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0;
	broker_client_init(w->bw->b, &c->client, w->id, known ? (struct sockaddr *)&ss : NULL);
	const struct listener_conf *l = conn_listener(c);
	c->client.identity_as_username = l->use_identity_as_username;
	c->client.listener_port = l->port;
	set_tcp_options(c, &w->bw->b->cfg);
	int open = atomic_fetch_add(&w->net->open[idx], 1) + 1;
	if (l->max_connections && (unsigned)open > l->max_connections) {
		log_notice("listener %u: max_connections %u reached, closing %s", l->port, l->max_connections,
			   CLIENT_ADDR(&c->client));
		conn_close_now(c);
		return;
	}
	if (w->stopping || transport_init(c, l) || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
		conn_close_now(c);
}

/* ---- the broker's ports ---- */

static struct buf *port_out(struct client *cl) { return &conn_of_client(cl)->out; }

static size_t port_out_pending(struct client *cl)
{
	struct conn *c = conn_of_client(cl);
	return c->out.len + (c->x ? c->x->wire.len + c->x->mid.len : 0) +
	       (c->wreq ? c->wreq->data.len - c->wreq->off : 0);
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

/* Stops reading; what is already in the output goes out, then the goodbye,
 * then the socket closes. */
static void conn_shut(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_read_stop((uv_stream_t *)&c->tcp);
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
