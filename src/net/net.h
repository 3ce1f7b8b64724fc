/* The network layer: worker threads with one libuv loop each, TCP listeners
 * (one socket per worker with SO_REUSEPORT, so the kernel spreads accepts and
 * a connection never changes thread), connections and their buffers. */
#ifndef FM_NET_H
#define FM_NET_H
#include "../broker/broker.h"

struct net;

/* The ports the broker uses to reach connections. */
extern const struct broker_ports net_ports;

/* Binds every configured listener on every worker and starts the threads.
 * Returns NULL after logging why (e.g. the port is in use). */
struct net *net_start(struct broker *b);
/* Closes listeners and connections (clean shutdown) and joins the threads.
 * Frees n. */
void net_stop(struct net *n);

#endif
