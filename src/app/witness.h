/* A witness: a cluster voter that stores the raft log and votes, with no
 * broker, no database and no MQTT listeners (README, "High availability"). */
#ifndef FM_APP_WITNESS_H
#define FM_APP_WITNESS_H
#include "../cluster/cluster.h"
#include <signal.h>

/* Runs the node until SIGTERM or SIGINT (blocked in sigs, waited for here).
 * Returns the process's exit status. */
int witness_run(const struct cluster_conf *conf, sigset_t *sigs);

#endif
