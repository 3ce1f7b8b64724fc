/* The Sparkplug fleet view in operations (sparkplug_aware): its families in
 * /metrics, and the names the sparkplug_node_offline alert gives. The
 * sampler copies the fleet's totals into the snapshot once a second. */
#ifndef FM_OPS_SPARKPLUG_H
#define FM_OPS_SPARKPLUG_H
#include "../base/buf.h"
#include "../broker/broker.h"
#include "../sparkplug/fleet.h"

/* Appends the ferromq_sparkplug_* families for totals t. Returns 0 or -FM_ENOMEM. */
int sparkplug_prometheus(const struct spb_fleet_totals *t, struct buf *out);
/* "; edge nodes g/a (since ...), g/b" for the alert's log line: the nodes
 * born once and offline now, at most what fits in out. */
void sparkplug_offline_text(struct broker *b, char *out, size_t size);

#endif
