#include "token.h"
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int create_token(const char *path, char out[TOKEN_MAX], char *err, size_t errlen)
{
	unsigned char raw[32];
	if (RAND_bytes(raw, sizeof raw) != 1) {
		snprintf(err, errlen, "%s: no random bytes for a token", path);
		return -1;
	}
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
		return -1;
	}
	char line[TOKEN_MAX + 1];
	int n = snprintf(line, sizeof line, "%s\n", out);
	bool ok = write(fd, line, (size_t)n) == n;
	ok &= close(fd) == 0;
	if (!ok) {
		snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
		unlink(path);
		return -1;
	}
	return 0;
}

int token_load(const char *path, bool create, char out[TOKEN_MAX], bool *created, char *err, size_t errlen)
{
	*created = false;
	FILE *f = fopen(path, "re");
	if (!f && errno == ENOENT && create) {
		*created = true;
		return create_token(path, out, err, errlen);
	}
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	/* Empty: fgets leaves line untouched on an empty file. */
	char line[TOKEN_MAX + 2] = "";
	bool got = fgets(line, sizeof line, f) != NULL;
	fclose(f);
	size_t len = strcspn(line, "\r\n");
	size_t start = strspn(line, " \t");
	while (len > start && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (!got || len <= start || len - start >= TOKEN_MAX) {
		snprintf(err, errlen, "%s: expected a token of 1..%d characters on the first line", path, TOKEN_MAX - 1);
		return -1;
	}
	memcpy(out, line + start, len - start);
	out[len - start] = 0;
	return 0;
}

bool token_equal(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	/* Every byte of b is compared whatever a is: the time says nothing
	 * about how much of the token a guessed. */
	unsigned char diff = alen != blen;
	for (size_t i = 0; i < blen; i++)
		diff |= (unsigned char)(b[i] ^ (i < alen ? a[i] : 0));
	return diff == 0;
}
