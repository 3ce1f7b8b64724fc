/* libFuzzer target for client_id_pattern (src/auth/ident.c). The input is
 * "PATTERN\0USER1\0USER2\0CLIENT_ID" (missing parts are empty). Invariants
 * (abort when broken):
 *  - a pattern that auth_clientid_pattern_check refuses allows nothing;
 *  - no client id is allowed for two different users (the take-over the
 *    option exists to prevent);
 *  - an allowed id starts with the pattern's text before %u, then the user;
 *  - an empty or missing user is allowed nothing.
 */
#include "auth/auth.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 4);
	if (!text)
		return 0;
	memcpy(text, data, size);
	memset(text + size, 0, 4);
	const char *part[4];
	size_t at = 0;
	for (int i = 0; i < 4; i++) {
		part[i] = text + at;
		at += strlen(text + at) + 1;
		if (at > size)
			at = size;
	}
	const char *pattern = part[0], *u1 = part[1], *u2 = part[2], *id = part[3];
	char err[200];
	bool valid = auth_clientid_pattern_check(pattern, err, sizeof(err)) == 0;
	bool a1 = auth_clientid_allowed(pattern, u1, id), a2 = auth_clientid_allowed(pattern, u2, id);
	if (!valid && (a1 || a2))
		abort();
	if (a1 && a2 && strcmp(u1, u2))
		abort();
	if (a1) {
		size_t pre = (size_t)(strstr(pattern, "%u") - pattern);
		if (strncmp(id, pattern, pre) || strncmp(id + pre, u1, strlen(u1)))
			abort();
	}
	if (auth_clientid_allowed(pattern, "", id) || auth_clientid_allowed(pattern, NULL, id))
		abort();
	free(text);
	return 0;
}
