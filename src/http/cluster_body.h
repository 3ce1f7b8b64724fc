/* The JSON bodies of the cluster operations (POST /api/cluster/nodes,
 * POST /api/cluster/transfer): pure parsing, unit-tested and fuzzed. */
#ifndef FM_HTTP_CLUSTER_BODY_H
#define FM_HTTP_CLUSTER_BODY_H
#include "../cluster/cluster.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cluster_body {
	bool has_id, has_address;
	uint64_t id;                       /* a node id: 0 .. 2^64-1 */
	char address[CLUSTER_ADDRESS_MAX]; /* HOST:PORT, not yet checked (cluster_address_check) */
};

/* Parses p[0..len): one JSON object whose members are "id" (a non-negative
 * integer) and "address" (a string), each at most once, in any order;
 * blanks around tokens allowed. Returns 0, or -FM_EINVAL with the reason
 * (naming the byte offset) in err (errlen bytes, may be 0). */
int cluster_body_parse(const uint8_t *p, size_t len, struct cluster_body *out, char *err, size_t errlen);

#endif
