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

struct sys_state {
	char last[SYS_SLOTS][48];
	char bridge_last[CONFIG_MAX_BRIDGES][SYS_BRIDGE_SLOTS][24];
};

/* Publishes every value of s that changed since the last call. On worker 0. */
void sys_publish(struct sys_state *st, struct bworker *w, const struct metrics_snapshot *s);
/* Publishes $SYS/broker/alerts/<name> with the state of rule id in s (and,
 * for queue_share, the sessions it names). On worker 0. */
void sys_publish_alert(struct bworker *w, const struct metrics_snapshot *s, enum alert_id id);

#endif
