/* The retained $SYS/broker/... tree, from the metric table (internal to src/ops). */
#ifndef FM_OPS_SYS_H
#define FM_OPS_SYS_H
#include "metrics.h"

/* One slot per metric, per rate window, and the version. */
#define SYS_SLOTS (M__COUNT + R__COUNT * RATE__WINDOWS + 1)

/* The payloads last published, so unchanged values are not sent again. */
/* Per bridge: connected, the spool's messages, bytes, oldest age and drain
 * estimate, sent, received, reduced, and the drops by reason. */
#define SYS_BRIDGE_SLOTS (8 + BRIDGE_DROP__COUNT)

/* $SYS/broker/cluster/...: state, role, term, leader, leader_address,
 * commit_index, applied_index, last_index, snapshots, restores. */
#define SYS_CLUSTER_SLOTS 10

struct sys_state {
	char last[SYS_SLOTS][48];
	char bridge_last[CONFIG_MAX_BRIDGES][SYS_BRIDGE_SLOTS][24];
	char cluster_last[SYS_CLUSTER_SLOTS][CLUSTER_ADDRESS_MAX];
	struct sys_peer_last {
		uint64_t id; /* the peer whose lag last holds; 0: none (the rest are empty too) */
		char last[24];
	} peer_last[CLUSTER_MAX_NODES];
};

/* Publishes every value of s that changed since the last call. On worker 0. */
void sys_publish(struct sys_state *st, struct bworker *w, const struct metrics_snapshot *s);
/* Publishes $SYS/broker/alerts/<name> with the state of rule id in s (and,
 * for queue_share, the sessions it names). On worker 0. */
void sys_publish_alert(struct bworker *w, const struct metrics_snapshot *s, enum alert_id id);

#endif
