/* A witness: a cluster voter that stores the raft log and votes, with no
 * broker, no database and no MQTT listeners, and with http_listener the
 * cluster's part of the HTTP API (README, "High availability"). */
#ifndef FM_APP_WITNESS_H
#define FM_APP_WITNESS_H
#include "../cluster/cluster.h"
#include "../config/config.h"
#include <signal.h>

/* Runs the node conf (from cfg, read from conf_path, which SIGHUP reads
 * again) until SIGTERM or SIGINT (blocked in sigs, waited for here).
 * Returns the process's exit status. */
int witness_run(const struct config *cfg, const char *conf_path, const struct cluster_conf *conf, sigset_t *sigs);

#endif
