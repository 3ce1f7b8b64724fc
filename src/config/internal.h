/* Between config.c (the option table, the line parser) and cluster.c (the
 * cluster options' lines and checks). */
#ifndef FM_CONFIG_INTERNAL_H
#define FM_CONFIG_INTERNAL_H
#include "config/config.h"

/* A node id: decimal digits only, 0..CONFIG_CLUSTER_ID_MAX. Returns 0 or -1. */
int config__parse_id(const char *text, uint64_t *id);
/* `cluster_listener PORT [ADDRESS]` and `cluster_peer N HOST:PORT` (args is
 * cut up in place). Return 0, or -1 with the message in err; on an error the
 * configuration is unchanged. */
int config__cluster_listener(struct config *c, char *args, char *err, size_t errlen);
int config__cluster_peer(struct config *c, char *args, char *err, size_t errlen);
/* Notes that option `name` (a cluster_* option just set) is on line. */
void config__cluster_line(struct config *c, const char *name, uint32_t line);
/* The cluster options as a whole, after every line: "file:line: message"
 * in err and -1, or 0. */
int config__cluster_finish(const struct config *c, char *err, size_t errlen);

#endif
