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

/* A listening socket of one worker. Accepted by hand rather than with
 * uv_listen, so that running out of descriptors can pause accepting
 * (libuv retries accept at once, in a loop that never returns). */
struct nlistener {
	uv_poll_t poll;
	int fd;
	uint8_t idx; /* in the configuration */
	bool open;   /* poll initialised (needs uv_close) */
};

/* A connection that said goodbye and waits, reading and discarding, for the
 * peer to close (conn.c). */
struct nlinger {
	struct conn *c;
	uint64_t since; /* uv_now */
};

/* The listening sockets of a net, handed to its successor (net.h,
 * net_release_listeners): the workers' (SO_REUSEPORT, one per worker and
 * listener), the port claims (claim_port) and the service's. */
struct net_listeners {
	unsigned n_workers, n_listeners;
	int port_locks[CONFIG_MAX_LISTENERS];
	uint8_t locked_idx[CONFIG_MAX_LISTENERS]; /* the listener of each claim */
	unsigned n_port_locks;
	int service_fd; /* -1: none */
	int fds[];      /* worker w's listener l at [w * n_listeners + l]; -1: none */
};

/* A log line repeated under attack: written at most once per interval,
 * with the count of the ones left out. */
struct ratelog {
	uint64_t next_ms;
	unsigned skipped;
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
	uv_timer_t pace;   /* when the first held connection may go on */
	struct conn **paced;    /* connections held back by max_publish_rate or for a turn (on_read) */
	uint32_t n_paced, cap_paced;
	uint64_t pace_due; /* uv_now of the pace timer's next run, when active */
	struct nlistener listeners[CONFIG_MAX_LISTENERS];
	unsigned n_listeners;
	uv_timer_t accept_pause; /* out of descriptors: accepting resumes when it fires */
	struct ratelog accept_log, limit_log;
	struct nlinger *lingering; /* conn.c */
	uint32_t n_lingering, cap_lingering;
	uint8_t *rbuf;     /* one read buffer shared by all connections of the worker */
	struct conn *flush_head;
	unsigned n_conns;
	struct tls_ctxset tls;                 /* for new connections; worker-owned */
	_Atomic(struct tls_ctxset *) tls_next; /* posted by a reload, taken by the worker */
	atomic_int stage;  /* shutdown: 1 = publish wills, 2 = stop */
	bool wills_done;
	bool released; /* its listeners are handed over (net_release_listeners) */
	bool stopping;
};

struct net {
	struct broker *b;
	unsigned n;
	struct nworker *w;
	atomic_uint wills_published; /* workers done with shutdown stage 1 */
	atomic_int open[CONFIG_MAX_LISTENERS]; /* connections per listener, all workers */
	atomic_int open_total;                 /* all listeners */
	unsigned max_total; /* the descriptor budget for client connections (net_start) */
	int port_locks[CONFIG_MAX_LISTENERS];  /* one per distinct address and port, -1: none */
	const struct listener_conf *locked[CONFIG_MAX_LISTENERS];
	unsigned n_port_locks;
	struct tls_ctxset tls; /* the newest contexts; under reload_lock */
	pthread_mutex_t reload_lock;
	struct net_service svc; /* on worker 0; svc.ctx NULL: none */
	/* Where the workers put their listeners when asked to hand them over
	 * (allocated by net_start, so that handing over cannot fail; NULL once
	 * handed over), and how each says it is done. */
	struct net_listeners *handover;
	atomic_bool release_asked;
	uv_sem_t released;
};

/* The worker of a connection: the one whose loop its socket is on (so a
 * connection needs no pointer of its own). */
static inline struct nworker *conn_worker(const struct conn *c)
{
	return (struct nworker *)(void *)((char *)c->tcp.loop - offsetof(struct nworker, loop));
}

/* True when the line may be written now (at most one per 10 s); *skipped
 * gets how many were left out before it. */
bool ratelog_due(struct ratelog *r, uint64_t now_ms, unsigned *skipped);
/* The line saying why c ends is written (or is not wanted): the client is
 * marked CLOSING, as the broker marks the ends it decides and logs, and the
 * will fires as for any end without DISCONNECT. */
void conn_mark_ended(struct conn *c);
/* Accepts the connection on fd from the listener with index idx; takes fd. */
void conn_accept(struct nworker *w, int fd, unsigned idx);
/* Closes the lingering connections whose time is up (worker tick). */
void conn_linger_sweep(struct nworker *w);

#endif
