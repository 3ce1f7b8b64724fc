/* Which peers of a leader acknowledge nothing: pure bookkeeping over the
 * successive cluster statuses the sampler reads (unit-tested). */
#ifndef FM_OPS_CLUSTER_WATCH_H
#define FM_OPS_CLUSTER_WATCH_H
#include "../cluster/cluster.h"

/* Since when each peer's match index has stood still with entries waiting
 * for it. */
struct cluster_watch {
	unsigned n;
	struct cluster_watch_peer {
		uint64_t id, match;
		uint64_t since_ms; /* its match index last moved, or it was in step */
	} peers[CLUSTER_MAX_NODES];
};

/* Takes the status st sampled at now_ms (monotonic). Returns the longest
 * time, in seconds, a peer has been behind the leader's log without its
 * match index moving (0 when every peer is in step or moving, and on a
 * node that is not the leader, which knows no match index); *worst is that
 * peer's id (0: none). */
double cluster_watch_update(struct cluster_watch *w, const struct cluster_status *st, uint64_t now_ms,
			    uint64_t *worst);

#endif
