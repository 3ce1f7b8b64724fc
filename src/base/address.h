/* Network addresses as the configuration and the cluster write them: a host
 * (a name or an IPv4 address) and a port, alone or as "HOST:PORT". Pure. */
#ifndef FM_ADDRESS_H
#define FM_ADDRESS_H
#include <stddef.h>
#include <stdint.h>

#define ADDRESS_HOST_MAX 255 /* bytes of a host name (RFC 1035 §2.3.4) */
#define ADDRESS_MAX 272      /* bytes of "HOST:PORT" with its NUL, rounded up */

/* Checks a host: 1..ADDRESS_HOST_MAX letters, digits, '-', '.' or '_' (a
 * name or an IPv4 address; no IPv6 literal, whose colons a "HOST:PORT" reader
 * would split). Returns 0, or -FM_EINVAL with a reason in err (errlen bytes,
 * may be 0). */
int address_host_check(const char *host, char *err, size_t errlen);

/* Parses a port: decimal digits only, 1..65535. Returns 0 with *port set, or
 * -FM_EINVAL (*port untouched). */
int address_port_parse(const char *text, uint16_t *port);

/* Checks "HOST:PORT" (a host as address_host_check wants it, one ':', a port
 * as address_port_parse wants it), shorter than ADDRESS_MAX. Returns 0, or
 * -FM_EINVAL with a reason naming the address in err (may be 0 bytes). */
int address_check(const char *hostport, char *err, size_t errlen);

/* Splits a "HOST:PORT" that address_check accepts: the host into host
 * (hostcap bytes, ADDRESS_HOST_MAX + 1 always fit) and the port into *port.
 * Returns 0, or address_check's error (or -FM_EINVAL when host is too small),
 * with a reason in err. */
int address_split(const char *hostport, char *host, size_t hostcap, uint16_t *port, char *err, size_t errlen);

#endif
