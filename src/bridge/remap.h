/* Topic remapping of one bridge `topic` line (pure): a local topic under
 * LOCAL_PREFIX that matches PATTERN is sent as REMOTE_PREFIX + the rest, and
 * a remote topic under REMOTE_PREFIX comes in as LOCAL_PREFIX + the rest. */
#ifndef FM_BRIDGE_REMAP_H
#define FM_BRIDGE_REMAP_H
#include "../config/config.h"
#include <stddef.h>

/* The remote topic of local topic `topic` when line t sends it (out or
 * both), written to out. Returns its length, or -1 when t does not send it
 * or it does not fit in cap (with its NUL). */
int remap_out(const struct bridge_topic *t, const char *topic, size_t len, char *out, size_t cap);
/* The local topic of remote topic `topic` when line t takes it in (in or
 * both). Returns its length or -1, like remap_out. */
int remap_in(const struct bridge_topic *t, const char *topic, size_t len, char *out, size_t cap);
/* True when remote topic `topic` is one that line t sends out (REMOTE_PREFIX
 * + a name matching PATTERN): for a v3 remote, which has no No Local, such a
 * message coming back is our own. */
bool remap_is_echo(const struct bridge_topic *t, const char *topic, size_t len);
/* The filter of the remote subscription of line t (REMOTE_PREFIX +
 * PATTERN). Returns its length or -1 when it does not fit. */
int remap_remote_filter(const struct bridge_topic *t, char *out, size_t cap);

#endif
