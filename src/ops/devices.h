/* Modbus devices in operations: their series in /metrics, and the names the
 * device_offline alert gives. The sampler copies the collectors' state into
 * the snapshot once a second (collect_list); these render that copy. */
#ifndef FM_OPS_DEVICES_H
#define FM_OPS_DEVICES_H
#include "../base/buf.h"
#include "../collect/collect.h"

/* Appends the ferromq_device_* families for devices d[0..n) (nothing when n
 * is 0). Returns 0 or -FM_ENOMEM. */
int devices_prometheus(const struct collect_device_info *d, uint32_t n, struct buf *out);
/* How many of d[0..n) are offline. */
uint32_t devices_offline(const struct collect_device_info *d, uint32_t n);
/* "; devices a (since ..., last error ...), b" for the alert's log line. */
void devices_offline_text(const struct collect_device_info *d, uint32_t n, char *out, size_t size);
/* The estimated q-quantile (0..1) of h in milliseconds: the upper bound of
 * the bucket it falls in (the largest finite one when beyond); -1 when h is
 * empty. */
double devices_hist_quantile_ms(const struct collect_hist *h, double q);

#endif
