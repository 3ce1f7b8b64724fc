/* The operations service of a broker: samples the metric table once a
 * second on worker 0's loop, publishes $SYS, evaluates the alert rules,
 * holds what every node serves (node.h: the HTTP API's credentials, the
 * cluster view, which it samples with the rest), and runs reloads (SIGHUP
 * and POST /api/reload alike). */
#ifndef FM_OPS_H
#define FM_OPS_H
#include "metrics.h"
#include "node.h"
#include <uv.h>

struct ops;
struct net;
struct store;

/* Creates the service for b, configured from b->cfg; conf_path (may be NULL)
 * is read again by reloads for the alert thresholds and the HTTP API grants. With http_token_file
 * the token is read, or the file created with a random token (mode 0600).
 * Returns NULL with a message in err. */
struct ops *ops_new(struct broker *b, const char *conf_path, char *err, size_t errlen);
/* Connects the store (NULL: memory only), before net_start. */
void ops_set_store(struct ops *o, struct store *store);
/* Connects the bridges (NULL: none), before net_start. */
void ops_set_bridges(struct ops *o, struct bridges *bridges);
/* Connects the Modbus collectors (NULL: none), before net_start. */
struct collector;
void ops_set_collector(struct ops *o, struct collector *collector);
/* Starts the sampler on worker 0's loop (called before the loop runs). */
int ops_start(struct ops *o, uv_loop_t *loop);
/* Stops it (worker 0, at shutdown). */
void ops_stop(struct ops *o);
void ops_free(struct ops *o);
/* Start-up finished: recovery done, listeners up. Any thread. */
void ops_set_ready(struct ops *o);
/* NULL when ready to serve, else why not (in a cluster: a node that is not
 * the leader, naming the leader it knows). Any thread; the text stays valid
 * until the calling thread's next call. */
const char *ops_not_ready(struct ops *o);
/* This broker's cluster node, NULL when it is not in a cluster. Any thread. */
struct cluster_node *ops_cluster(struct ops *o);
/* What every node serves, which this broker's service holds: the HTTP
 * API's credentials and the cluster view (node.h). */
struct ops_node *ops_node(struct ops *o);

/* Worker 0 only. */
const struct metrics_snapshot *ops_snapshot(const struct ops *o);
struct broker *ops_broker(const struct ops *o);

/* Reloads TLS files, the password file and ACL, the HTTP token, the alert
 * thresholds and the HTTP API grants. origin names the trigger in log lines ("SIGHUP", "HTTP").
 * Any thread; reloads run one at a time. Errors are logged and listed in r. */
void ops_reload(struct ops *o, const char *origin, struct reload_result *r);

#endif
