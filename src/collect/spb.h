/* A Modbus device as a Sparkplug B device of the broker's edge node
 * (modbus_format sparkplug): its tags as metrics. The mapping of a tag to a
 * metric is pure (unit-tested); the rest runs on the device's thread (the
 * readings, the DBIRTH when it comes online, the DDEATH when it goes
 * offline) and on worker 0 (the births of a new session, DCMD writes). */
#ifndef FM_COLLECT_SPB_H
#define FM_COLLECT_SPB_H
#include "../sparkplug/edge.h"
#include "tag.h"

/* The datatype of a tag's metric: its own type when it is published raw
 * (tag_scale 1, tag_offset 0), Double when scaled. Pure. */
uint32_t spb_tag_datatype(const struct modbus_tag_conf *t);
/* Sets m's datatype and value from reading v (NULL or not finite: null). Pure. */
void spb_tag_metric(const struct modbus_tag_conf *t, const struct tag_value *v, struct spb_metric_out *m);
/* A tag's metric alias: a 53-bit hash (never 0) of DEVICE/TAG, the same in
 * every run. Pure. */
uint64_t spb_tag_alias(const char *device, const char *tag);
/* The write request text (tag_parse_write's) of command metric c for tag t:
 * a number, or true/false for a bool tag. Returns false when c holds no
 * number or boolean (a string, a null). Pure. */
bool spb_tag_write_text(const struct modbus_tag_conf *t, const struct spb_cmd_metric *c, char out[40]);

#endif
