/* The network layer: worker threads with one libuv loop each, listeners
 * (one socket per worker with SO_REUSEPORT, so the kernel spreads accepts and
 * a connection never changes thread), connections, their buffers and their
 * transports (TCP, TLS, WebSocket, secure WebSocket). */
#ifndef FM_NET_H
#define FM_NET_H
#include "../broker/broker.h"
#include <uv.h>

struct net;

/* The ports the broker uses to reach connections. */
extern const struct broker_ports net_ports;

/* Services that run on worker 0's loop beside its connections (the metrics
 * sampler, the HTTP listener). */
struct net_service {
	void *ctx;
	/* Before the loop runs (main thread). Returns 0, or -1 after logging. */
	int (*start)(void *ctx, uv_loop_t *loop);
	/* On worker 0 when it begins to stop: close every handle. */
	void (*stop)(void *ctx);
};

/* Loads the TLS contexts, binds every configured listener on every worker,
 * starts svc (may be NULL) on worker 0 and starts the threads. Returns NULL
 * after logging why (e.g. the port is in use, a certificate cannot be read). */
struct net *net_start(struct broker *b, const struct net_service *svc);
/* Rebuilds the TLS context of every TLS listener from its files and hands
 * the new ones to the workers for new connections; established connections
 * keep theirs. A listener whose files fail keeps its context; the error is
 * logged with `origin` ("SIGHUP") and passed to on_error. Any thread; one
 * reload at a time. Returns the number of failures. */
int net_reload_tls(struct net *n, const char *origin, void (*on_error)(void *ctx, const char *msg), void *ctx);
/* Connections open on the listener with index idx, all workers. */
unsigned net_listener_open(const struct net *n, unsigned idx);
/* Closes listeners and connections (clean shutdown) and joins the threads.
 * Frees n. */
void net_stop(struct net *n);

#endif
