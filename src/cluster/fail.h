/* The cluster's configuration errors: the message into err (when errlen),
 * -FM_EINVAL returned (address.c). */
#ifndef FM_CLUSTER_FAIL_H
#define FM_CLUSTER_FAIL_H
#include <stddef.h>

int cluster__fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
