/* Cluster addresses and peers: pure parsing, unit-tested and fuzzed. */
#include "cluster/cluster.h"
#include "cluster/fail.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

int cluster__fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -FM_EINVAL;
}

/* A host is a name or an IPv4 address: letters, digits, '-', '.', '_'.
 * libraft's transport splits "HOST:PORT" at the last ':' and resolves HOST,
 * so an IPv6 literal (colons) is refused here rather than misread there. */
static bool host_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

int cluster_address_check(const char *address, char *err, size_t errlen)
{
	size_t len = strlen(address);
	if (len == 0)
		return cluster__fail(err, errlen, "empty address (expected HOST:PORT)");
	if (len >= CLUSTER_ADDRESS_MAX)
		return cluster__fail(err, errlen, "address longer than %d bytes", CLUSTER_ADDRESS_MAX - 1);
	const char *colon = strchr(address, ':');
	if (!colon)
		return cluster__fail(err, errlen, "'%s': expected HOST:PORT", address);
	if (colon == address)
		return cluster__fail(err, errlen, "'%s': no host before ':'", address);
	for (const char *p = address; p < colon; p++)
		if (!host_char_ok(*p))
			return cluster__fail(err, errlen, "'%s': a host is a name or an IPv4 address", address);
	const char *port = colon + 1;
	if (*port == '\0')
		return cluster__fail(err, errlen, "'%s': no port after ':'", address);
	unsigned long v = 0;
	for (const char *p = port; *p; p++) {
		if (*p < '0' || *p > '9')
			return cluster__fail(err, errlen, "'%s': the port is a number 1-65535", address);
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 65535)
			return cluster__fail(err, errlen, "'%s': the port is a number 1-65535", address);
	}
	if (v == 0)
		return cluster__fail(err, errlen, "'%s': the port is a number 1-65535", address);
	return 0;
}

int cluster_peer_parse(const char *text, struct cluster_peer *peer, char *err, size_t errlen)
{
	const char *p = text;
	uint64_t id = 0;
	if (*p < '0' || *p > '9')
		return cluster__fail(err, errlen, "'%s': expected N HOST:PORT (N a node id >= 1)", text);
	for (; *p >= '0' && *p <= '9'; p++) {
		if (id > (UINT64_MAX - 9) / 10)
			return cluster__fail(err, errlen, "'%s': node id too large", text);
		id = id * 10 + (uint64_t)(*p - '0');
	}
	if (id == 0)
		return cluster__fail(err, errlen, "'%s': node ids start at 1", text);
	if (*p != ' ' && *p != '=')
		return cluster__fail(err, errlen, "'%s': expected N HOST:PORT (N a node id >= 1)", text);
	while (*p == ' ' || *p == '=')
		p++;
	size_t len = strlen(p);
	while (len && p[len - 1] == ' ')
		len--;
	if (len >= CLUSTER_ADDRESS_MAX)
		return cluster__fail(err, errlen, "'%s': address longer than %d bytes", text, CLUSTER_ADDRESS_MAX - 1);
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
