/* Connections: reads into the worker's shared buffer, keeps only incomplete
 * packets per connection, and coalesces each connection's output into one
 * write per loop turn. */
#include "worker.h"
#include "../base/err.h"
#include "../base/log.h"
#include <stdlib.h>
#include <string.h>

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

static void conn_free(struct conn *c)
{
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
	for (struct conn **pp = &c->w->flush_head; c->flush_queued && *pp; pp = &(*pp)->flush_next) {
		if (*pp == c) {
			*pp = c->flush_next;
			c->flush_queued = false;
			break;
		}
	}
	c->w->n_conns--;
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

static void queue_flush(struct conn *c)
{
	if (c->flush_queued)
		return;
	c->flush_queued = true;
	c->flush_next = c->w->flush_head;
	c->w->flush_head = c;
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
		conn_close_now(c);
	/* Room again: let the session send what waited for it. */
	if (!c->closing && !c->wreq)
		broker_on_writable(&c->client);
}

/* Writes c->out: synchronously as far as the socket takes it, the rest with
 * one uv_write that owns the buffer. */
static void conn_write(struct conn *c)
{
	if (c->wreq || uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	if (c->out.len) {
		uv_buf_t ub = uv_buf_init((char *)c->out.p, (unsigned)c->out.len);
		int n = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
		if (n < 0 && n != UV_EAGAIN) {
			log_debug("write to %s failed: %s", CLIENT_ADDR(&c->client), uv_strerror(n));
			c->out.len = 0;
			conn_close_now(c);
			return;
		}
		size_t done = n > 0 ? (size_t)n : 0;
		if (done < c->out.len) {
			struct wreq *wr = malloc(sizeof *wr);
			if (!wr) {
				conn_close_now(c);
				return;
			}
			wr->data = c->out; /* the request owns the buffer now */
			wr->off = done;
			memset(&c->out, 0, sizeof c->out);
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
		c->out.len = 0;
		/* Idle connections hold no output memory; busy ones keep theirs. */
		if (c->out.cap <= SMALL_OUT_CAP || c->out.cap > KEEP_OUT_CAP)
			buf_free(&c->out);
	}
	if (c->closing)
		conn_close_now(c);
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
	*out = uv_buf_init((char *)c->w->rbuf, NWORKER_READ_BUF);
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
	const uint8_t *p = (const uint8_t *)ub->base;
	size_t len = (size_t)nread;
	if (c->in.len) {
		/* Completes an earlier partial packet. */
		if (buf_append(&c->in, p, len)) {
			conn_close_now(c);
			return;
		}
		p = c->in.p;
		len = c->in.len;
	}
	long used = broker_on_data(&c->client, p, len);
	if (used < 0)
		return; /* the broker asked to close */
	if (c->in.len) {
		buf_consume(&c->in, (size_t)used);
		if (!c->in.len)
			buf_free(&c->in);
	} else if ((size_t)used < len && buf_append(&c->in, p + used, len - (size_t)used)) {
		conn_close_now(c);
	}
}

void conn_accept(struct nworker *w, uv_stream_t *listener)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return;
	c->w = w;
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
	if (w->stopping || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
		conn_close_now(c);
}

/* ---- the broker's ports ---- */

static struct buf *port_out(struct client *cl) { return &conn_of_client(cl)->out; }

static size_t port_out_pending(struct client *cl)
{
	struct conn *c = conn_of_client(cl);
	return c->out.len + (c->wreq ? c->wreq->data.len - c->wreq->off : 0);
}

static void port_flush(struct client *cl) { queue_flush(conn_of_client(cl)); }

static void port_close(struct client *cl)
{
	struct conn *c = conn_of_client(cl);
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
	.wake = net_wake,
	.conn_ref = port_conn_ref,
	.conn_unref = port_conn_unref,
};
