/* The network layer: worker threads with one libuv loop each, listeners
 * (one socket per worker with SO_REUSEPORT, so the kernel spreads accepts and
 * a connection never changes thread), connections, their buffers and their
 * transports (TCP, TLS, WebSocket, secure WebSocket). */
#ifndef FM_NET_H
#define FM_NET_H
#include "../broker/broker.h"
#include <uv.h>

struct net;
/* Listening sockets handed from a net that stops to the one that replaces
 * it (net_release_listeners, net_start). */
struct net_listeners;

/* The ports the broker uses to reach connections. */
extern const struct broker_ports net_ports;

/* Services that run on worker 0's loop beside its connections (the metrics
 * sampler, the HTTP listener). */
struct net_service {
	void *ctx;
	/* Before the loop runs (main thread). listen_fd: the service's listening
	 * socket handed over by the net this one replaces (release), which it
	 * takes in every case, or -1: it binds its own. Returns 0, or -1 after
	 * logging. */
	int (*start)(void *ctx, uv_loop_t *loop, int listen_fd);
	/* On worker 0 when it begins to stop: close every handle. */
	void (*stop)(void *ctx);
	/* On worker 0 when the net hands its listeners over: the service stops
	 * accepting and returns its listening socket, open, for the next net's
	 * start; or -1 (none, or it could not: then it is closed, and the next
	 * service binds its own). NULL: a service without a listener. */
	int (*release)(void *ctx);
};

/* Loads the TLS contexts, binds every configured listener on every worker
 * (or takes the sockets of `taken`, from net_release_listeners of a net
 * with the same configuration; taken is consumed whatever happens), starts
 * svc (may be NULL) on worker 0 and starts the threads. Returns NULL after
 * logging why (e.g. the port is in use, a certificate cannot be read). */
struct net *net_start(struct broker *b, const struct net_service *svc, struct net_listeners *taken);
/* Stops n accepting and returns its listening sockets, still listening, for
 * the net_start of its successor: a cluster node switching between serving
 * and standby hands the sockets over, so that the new broker answers at once
 * while the old one's connections take their time to close (net_stop), and
 * a client connecting in between waits in the same backlog instead of being
 * refused. Worker 0's service hands its listener over too (release). n keeps
 * serving its connections until net_stop. Main thread, before net_stop;
 * returns once every worker has let go (NULL the second time). */
struct net_listeners *net_release_listeners(struct net *n);
/* Closes the sockets of `l` and frees it (NULL: nothing). */
void net_listeners_free(struct net_listeners *l);
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
