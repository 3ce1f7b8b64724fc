/* Host and port checks shared by the configuration (src/config) and the
 * cluster (src/cluster), which must agree on what an address is. */
#include "base/address.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"


/* libraft's transport splits "HOST:PORT" at the last ':' and resolves HOST,
 * so a host is limited to the characters of a name or an IPv4 address. */
static bool host_chars_ok(const char *host, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = host[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '.' || c == '_'))
			return false;
	}
	return true;
}

int address_host_check(const char *host, char *err, size_t errlen)
{
	size_t len = strlen(host);
	if (len == 0)
		return fm_fail(err, errlen, "empty host");
	if (len > ADDRESS_HOST_MAX)
		return fm_fail(err, errlen, "host longer than %d bytes", ADDRESS_HOST_MAX);
	if (!host_chars_ok(host, len))
		return fm_fail(err, errlen, "'%s': a host is a name or an IPv4 address (letters, digits, '-', '.', '_')",
			    host);
	return 0;
}

int address_port_parse(const char *text, uint16_t *port)
{
	unsigned long v = 0;
	if (*text == '\0')
		return -FM_EINVAL;
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return -FM_EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 65535)
			return -FM_EINVAL;
	}
	if (v == 0)
		return -FM_EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int address_check(const char *hostport, char *err, size_t errlen)
{
	size_t len = strlen(hostport);
	if (len == 0)
		return fm_fail(err, errlen, "empty address (expected HOST:PORT)");
	if (len >= ADDRESS_MAX)
		return fm_fail(err, errlen, "address longer than %d bytes", ADDRESS_MAX - 1);
	const char *colon = strchr(hostport, ':');
	if (!colon)
		return fm_fail(err, errlen, "'%s': expected HOST:PORT", hostport);
	size_t hlen = (size_t)(colon - hostport);
	if (hlen == 0)
		return fm_fail(err, errlen, "'%s': no host before ':'", hostport);
	if (hlen > ADDRESS_HOST_MAX)
		return fm_fail(err, errlen, "'%s': host longer than %d bytes", hostport, ADDRESS_HOST_MAX);
	if (!host_chars_ok(hostport, hlen))
		return fm_fail(err, errlen, "'%s': a host is a name or an IPv4 address (letters, digits, '-', '.', '_')",
			    hostport);
	if (colon[1] == '\0')
		return fm_fail(err, errlen, "'%s': no port after ':'", hostport);
	uint16_t port;
	if (address_port_parse(colon + 1, &port))
		return fm_fail(err, errlen, "'%s': the port is a number 1-65535", hostport);
	return 0;
}

int address_split(const char *hostport, char *host, size_t hostcap, uint16_t *port, char *err, size_t errlen)
{
	int rc = address_check(hostport, err, errlen);
	if (rc)
		return rc;
	const char *colon = strchr(hostport, ':');
	size_t hlen = (size_t)(colon - hostport);
	if (hlen >= hostcap)
		return fm_fail(err, errlen, "'%s': host longer than %zu bytes", hostport, hostcap - 1);
	memcpy(host, hostport, hlen);
	host[hlen] = '\0';
	return address_port_parse(colon + 1, port);
}
