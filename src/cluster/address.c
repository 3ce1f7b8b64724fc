/* Cluster addresses and peers: pure parsing, unit-tested and fuzzed. */
#include "cluster/cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/address.h"
#include "base/err.h"

/* One definition of an address for the configuration and the cluster
 * (src/base/address.c); a config line that passes is one raft can use. */
_Static_assert(CLUSTER_ADDRESS_MAX == ADDRESS_MAX, "cluster and base agree on an address's size");

int cluster_address_check(const char *address, char *err, size_t errlen)
{
	return address_check(address, err, errlen);
}

int cluster_peer_parse(const char *text, struct cluster_peer *peer, char *err, size_t errlen)
{
	const char *p = text;
	uint64_t id = 0;
	if (*p < '0' || *p > '9')
		return fm_fail(err, errlen, "'%s': expected N HOST:PORT (N a node id >= 1)", text);
	for (; *p >= '0' && *p <= '9'; p++) {
		if (id > (UINT64_MAX - 9) / 10)
			return fm_fail(err, errlen, "'%s': node id too large", text);
		id = id * 10 + (uint64_t)(*p - '0');
	}
	if (id == 0)
		return fm_fail(err, errlen, "'%s': node ids start at 1", text);
	if (*p != ' ' && *p != '=')
		return fm_fail(err, errlen, "'%s': expected N HOST:PORT (N a node id >= 1)", text);
	while (*p == ' ' || *p == '=')
		p++;
	size_t len = strlen(p);
	while (len && p[len - 1] == ' ')
		len--;
	if (len >= CLUSTER_ADDRESS_MAX)
		return fm_fail(err, errlen, "'%s': address longer than %d bytes", text, CLUSTER_ADDRESS_MAX - 1);
	char address[CLUSTER_ADDRESS_MAX];
	memcpy(address, p, len);
	address[len] = '\0';
	int rc = cluster_address_check(address, err, errlen);
	if (rc)
		return rc;
	peer->id = id;
	memcpy(peer->address, address, len + 1);
	return 0;
}
