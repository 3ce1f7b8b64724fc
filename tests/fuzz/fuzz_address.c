/* libFuzzer target for src/base/address.c. The input, NUL-terminated, is
 * given to each function. Invariants (abort when broken):
 *  - a refusal always says why, in a terminated message;
 *  - an accepted port is 1..65535 and all digits; an accepted host is
 *    1..255 bytes without ':' or blanks;
 *  - an accepted "HOST:PORT" is shorter than ADDRESS_MAX, has exactly one
 *    ':', and splits into a host and a port the other two accept, which
 *    put back together give the input (up to the port's leading zeros).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/address.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	size_t len = strlen(text);
	char err[400];

	uint16_t port = 0;
	if (address_port_parse(text, &port) == 0)
		CHECK(port >= 1 && len && strspn(text, "0123456789") == len);

	memset(err, 0, sizeof err);
	if (address_host_check(text, err, sizeof err) == 0)
		CHECK(len >= 1 && len <= ADDRESS_HOST_MAX && !strpbrk(text, ": \t/[]"));
	else
		CHECK(err[0] && memchr(err, 0, sizeof err));

	memset(err, 0, sizeof err);
	char host[ADDRESS_HOST_MAX + 1];
	if (address_check(text, err, sizeof err) == 0) {
		const char *colon = strchr(text, ':');
		CHECK(len < ADDRESS_MAX && colon && !strchr(colon + 1, ':'));
		CHECK(address_split(text, host, sizeof host, &port, err, sizeof err) == 0);
		CHECK(address_host_check(host, NULL, 0) == 0 && port >= 1);
		char again[ADDRESS_MAX + 8];
		snprintf(again, sizeof again, "%s:%u", host, port);
		CHECK(strncmp(again, text, strlen(host) + 1) == 0 && strtoul(colon + 1, NULL, 10) == port);
	} else {
		CHECK(err[0] && memchr(err, 0, sizeof err));
		CHECK(address_split(text, host, sizeof host, &port, NULL, 0) != 0);
	}
	free(text);
	return 0;
}
