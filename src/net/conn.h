/* One client connection: the TCP handle, its partial input, its output. */
#ifndef FM_CONN_H
#define FM_CONN_H
#include "../broker/broker.h"
#include <stdatomic.h>
#include <uv.h>

struct nworker;

struct conn {
	uv_tcp_t tcp;
	struct nworker *w;
	struct buf in;  /* bytes of an incomplete packet; empty (no memory) when idle */
	struct buf out; /* packets waiting for the next write */
	struct wreq *wreq; /* the write in progress, NULL when none */
	atomic_int refs;
	bool closing, flush_queued;
	struct conn *flush_next;
	struct client client;
};

/* Accepts a connection from the listener. */
void conn_accept(struct nworker *w, uv_stream_t *listener);
/* Writes the output of every connection queued for it (end of a loop turn). */
void conn_flush_all(struct nworker *w);

#endif
