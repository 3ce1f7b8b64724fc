/* The network layer: worker threads with one libuv loop each, listeners
 * (one socket per worker with SO_REUSEPORT, so the kernel spreads accepts and
 * a connection never changes thread), connections, their buffers and their
 * transports (TCP, TLS, WebSocket, secure WebSocket). */
#ifndef FM_NET_H
#define FM_NET_H
#include "../broker/broker.h"

struct net;

/* The ports the broker uses to reach connections. */
extern const struct broker_ports net_ports;

/* Loads the TLS contexts, binds every configured listener on every worker
 * and starts the threads. Returns NULL after logging why (e.g. the port is
 * in use, a certificate cannot be read). */
struct net *net_start(struct broker *b);
/* Rebuilds the TLS context of every TLS listener from its files (SIGHUP) and
 * hands the new ones to the workers for new connections; established
 * connections keep theirs. A listener whose files fail keeps its context
 * (the error is logged). Main thread. Returns the number of failures. */
int net_reload_tls(struct net *n);
/* Closes listeners and connections (clean shutdown) and joins the threads.
 * Frees n. */
void net_stop(struct net *n);

#endif
