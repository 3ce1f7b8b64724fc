/* The HTTP listener (http_listener): the JSON API, Prometheus /metrics,
 * /healthz, /readyz and the dashboard, served on worker 0's loop (on a
 * witness: the cluster's part, on a loop of its own). */
#ifndef FM_HTTP_H
#define FM_HTTP_H
#include "../ops/ops.h"

struct http_server;

/* A server for cfg's http_listener, answering from ops. NULL: out of memory. */
struct http_server *http_server_new(struct ops *ops, const struct config *cfg);
/* A witness's server (it runs no broker): /healthz, /readyz, /metrics and
 * /api/cluster from node; the broker's endpoints answer 404. NULL: out of
 * memory. */
struct http_server *http_server_new_witness(struct ops_node *node, const struct config *cfg);
/* Binds and listens on loop (before the loop runs). Returns 0, or -1 after
 * logging why. */
int http_server_start(struct http_server *s, uv_loop_t *loop);
/* The same, listening on fd (a listening socket another server handed
 * over, taken in every case), or binding its own when fd is -1. */
int http_server_start_on(struct http_server *s, uv_loop_t *loop, int fd);
/* Stops accepting and returns the listening socket, open and listening, for
 * the next server's http_server_start_on; connections being served finish
 * (until http_server_stop). -1: none, or it could not be kept (then it is
 * closed: the next server binds anew). On the loop's thread. */
int http_server_hand_over(struct http_server *s);
/* Closes the listener and every connection (on the loop's thread). */
void http_server_stop(struct http_server *s);
/* After the loop has ended. */
void http_server_free(struct http_server *s);

#endif
