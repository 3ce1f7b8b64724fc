/* A network worker thread, and the network layer's shared state (net-internal). */
#ifndef FM_NWORKER_H
#define FM_NWORKER_H
#include "conn.h"
#include "net.h"
#include <openssl/ssl.h>
#include <pthread.h>
#include <stddef.h>

#define NWORKER_READ_BUF (64 * 1024)

/* TLS contexts of every listener (NULL for plain ones), one reference each. */
struct tls_ctxset {
	SSL_CTX *ctx[CONFIG_MAX_LISTENERS];
};

struct nworker {
	int id;
	struct net *net;
	struct bworker *bw;
	pthread_t thread;
	uv_loop_t loop;
	uv_async_t async;  /* wake-ups from other threads, TLS reloads, and stop */
	uv_check_t check;  /* end of each loop turn: deliveries, then writes */
	uv_timer_t timer;  /* keep-alive, connect timeout, housekeeping */
	uv_timer_t pace;   /* max_publish_rate: when the first held connection may go on */
	struct conn **paced;    /* connections held back by max_publish_rate */
	uint32_t n_paced, cap_paced;
	uint64_t pace_due; /* uv_now of the pace timer's next run, when active */
	uv_tcp_t listeners[CONFIG_MAX_LISTENERS];
	unsigned n_listeners;
	uint8_t *rbuf;     /* one read buffer shared by all connections of the worker */
	struct conn *flush_head;
	unsigned n_conns;
	struct tls_ctxset tls;                 /* for new connections; worker-owned */
	_Atomic(struct tls_ctxset *) tls_next; /* posted by a reload, taken by the worker */
	atomic_int stage;  /* shutdown: 1 = publish wills, 2 = stop */
	bool wills_done;
	bool stopping;
};

struct net {
	struct broker *b;
	unsigned n;
	struct nworker *w;
	atomic_uint wills_published; /* workers done with shutdown stage 1 */
	atomic_int open[CONFIG_MAX_LISTENERS]; /* connections per listener, all workers */
	struct tls_ctxset tls; /* the newest contexts; under reload_lock */
	pthread_mutex_t reload_lock;
	struct net_service svc; /* on worker 0; svc.ctx NULL: none */
};

/* The worker of a connection: the one whose loop its socket is on (so a
 * connection needs no pointer of its own). */
static inline struct nworker *conn_worker(const struct conn *c)
{
	return (struct nworker *)(void *)((char *)c->tcp.loop - offsetof(struct nworker, loop));
}

#endif
