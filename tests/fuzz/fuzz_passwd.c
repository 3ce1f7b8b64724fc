/* libFuzzer target for the password-file line parser (src/auth/passwd.c) and
 * its base64. The input is one line. A line that parses must format back to a
 * line that parses to the same entry; base64 that decodes must re-encode to
 * text that decodes to the same bytes. Aborts on any disagreement.
 */
#include "auth/auth.h"
#include "auth/internal.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_b64(const char *in, size_t n)
{
	uint8_t dec[512], dec2[512];
	char enc[AUTH__B64_LEN(sizeof(dec)) + 1];
	int got = auth__b64_decode(in, n, dec, sizeof(dec));
	if (got < 0)
		return;
	if ((size_t)got > n)
		abort();
	size_t elen = auth__b64_encode(dec, (size_t)got, enc);
	if (elen != AUTH__B64_LEN((size_t)got) || strlen(enc) != elen)
		abort();
	if (auth__b64_decode(enc, elen, dec2, sizeof(dec2)) != got || memcmp(dec, dec2, (size_t)got))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	fuzz_b64(line, size < 600 ? size : 600);

	struct auth_passwd_entry e, back;
	char err[256];
	int rc = auth_passwd_parse_line(line, &e, err, sizeof(err));
	if (rc < 0 && !memchr(err, '\0', sizeof(err)))
		abort();
	if (rc == 1) {
		if (e.user != line || e.ulen == 0 || e.ulen > strlen(line) ||
		    memchr(e.user, ':', e.ulen) || e.salt_len == 0 || e.salt_len > AUTH_SALT_MAX ||
		    (e.type != AUTH_HASH_PBKDF2 && e.type != AUTH_HASH_SHA512) ||
		    (e.type == AUTH_HASH_PBKDF2) != (e.iterations != 0))
			abort();
		size_t cap = AUTH_PASSWD_LINE_MAX(e.ulen);
		char *out = malloc(cap);
		if (!out)
			goto done;
		int n = auth_passwd_format(&e, out, cap);
		if (n <= 0 || (size_t)n != strlen(out))
			abort();
		if (auth_passwd_parse_line(out, &back, err, sizeof(err)) != 1 || back.ulen != e.ulen ||
		    memcmp(back.user, e.user, e.ulen) || back.type != e.type ||
		    back.iterations != e.iterations || back.salt_len != e.salt_len ||
		    memcmp(back.salt, e.salt, e.salt_len) || memcmp(back.hash, e.hash, AUTH_HASH_LEN))
			abort();
		/* hashing is exercised only where it is cheap */
		if (e.iterations <= 16)
			(void)auth_passwd_entry_verify(&e, (const uint8_t *)line, size);
		free(out);
	}
done:
	free(line);
	return 0;
}
