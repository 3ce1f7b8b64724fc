/* The password file: mosquitto's $6$ and $7$ lines, hashing and checking. */
#include "auth.h"
#include "internal.h"
#include "../base/err.h"
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct auth_passwd {
	struct auth_passwd_entry *users; /* sorted by name; user strings owned */
	size_t n;
	struct auth_passwd_entry dummy;  /* checked for unknown users */
};

static bool passwd_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Decodes a base64 field into out[1..cap]; returns its length or -1. */
static int passwd_field(const char *p, size_t n, uint8_t *out, size_t cap)
{
	if (n == 0)
		return -1;
	return auth__b64_decode(p, n, out, cap);
}

int auth_passwd_parse_line(const char *line, struct auth_passwd_entry *out, char *err,
			   size_t errlen)
{
	size_t len = strlen(line);
	while (len > 0 && passwd_blank(line[len - 1]))
		len--;
	size_t lead = 0;
	while (lead < len && passwd_blank(line[lead]))
		lead++;
	if (lead == len || line[lead] == '#')
		return 0;
	if (lead > 0) {
		snprintf(err, errlen, "line starts with whitespace");
		return -FM_EINVAL;
	}
	const char *colon = memchr(line, ':', len);
	if (!colon) {
		snprintf(err, errlen, "expected user:$7$ITERATIONS$SALT$HASH");
		return -FM_EINVAL;
	}
	memset(out, 0, sizeof(*out));
	out->user = line;
	out->ulen = (size_t)(colon - line);
	if (out->ulen == 0) {
		snprintf(err, errlen, "empty username");
		return -FM_EINVAL;
	}
	for (size_t i = 0; i < out->ulen; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) {
			snprintf(err, errlen, "control character in username");
			return -FM_EINVAL;
		}

	/* "$T$" then fields separated by '$' */
	const char *p = colon + 1, *end = line + len;
	if (end - p < 3 || p[0] != '$' || (p[1] != '6' && p[1] != '7') || p[2] != '$') {
		snprintf(err, errlen, "unknown password hash (expected $7$ or $6$; plain-text "
			 "passwords are not supported)");
		return -FM_EINVAL;
	}
	out->type = (uint8_t)(p[1] - '0');
	p += 3;
	if (out->type == AUTH_HASH_PBKDF2) {
		uint64_t it = 0;
		const char *q = p;
		while (q < end && *q >= '0' && *q <= '9' && it <= AUTH_PBKDF2_ITERATIONS_MAX)
			it = it * 10 + (uint64_t)(*q++ - '0');
		if (q == p || q == end || *q != '$' || it == 0 || it > AUTH_PBKDF2_ITERATIONS_MAX) {
			snprintf(err, errlen, "iterations must be a number in 1..%u",
				 AUTH_PBKDF2_ITERATIONS_MAX);
			return -FM_EINVAL;
		}
		out->iterations = (uint32_t)it;
		p = q + 1;
	}
	const char *dollar = memchr(p, '$', (size_t)(end - p));
	if (!dollar) {
		snprintf(err, errlen, "missing '$' between salt and hash");
		return -FM_EINVAL;
	}
	int n = passwd_field(p, (size_t)(dollar - p), out->salt, sizeof(out->salt));
	if (n <= 0) {
		snprintf(err, errlen, "salt is not base64 of 1..%d bytes", AUTH_SALT_MAX);
		return -FM_EINVAL;
	}
	out->salt_len = (uint8_t)n;
	p = dollar + 1;
	n = passwd_field(p, (size_t)(end - p), out->hash, sizeof(out->hash));
	if (n != AUTH_HASH_LEN) {
		snprintf(err, errlen, "hash is not base64 of %d bytes", AUTH_HASH_LEN);
		return -FM_EINVAL;
	}
	return 1;
}

/* Hashes pw with e's type, salt and iterations into out. Returns 0 or -FM_EIO. */
static int passwd_hash(const struct auth_passwd_entry *e, const uint8_t *pw, size_t pwlen,
		       uint8_t out[AUTH_HASH_LEN])
{
	int rc = -FM_EIO;
	if (e->type == AUTH_HASH_PBKDF2) {
		if (pwlen > 0x7fffffff || e->iterations == 0 ||
		    e->iterations > AUTH_PBKDF2_ITERATIONS_MAX)
			return -FM_EINVAL;
		/* an empty password is passed as "" : OpenSSL treats NULL as "" too */
		if (PKCS5_PBKDF2_HMAC((const char *)(pwlen ? pw : (const uint8_t *)""), (int)pwlen,
				      e->salt, e->salt_len, (int)e->iterations, EVP_sha512(),
				      AUTH_HASH_LEN, out) == 1)
			rc = 0;
		return rc;
	}
	if (e->type != AUTH_HASH_SHA512)
		return -FM_EINVAL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned olen = 0;
	if (ctx && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, pw, pwlen) == 1 &&
	    EVP_DigestUpdate(ctx, e->salt, e->salt_len) == 1 &&
	    EVP_DigestFinal_ex(ctx, out, &olen) == 1 && olen == AUTH_HASH_LEN)
		rc = 0;
	EVP_MD_CTX_free(ctx);
	return rc;
}

int auth_passwd_entry_make(struct auth_passwd_entry *e, enum auth_hash_type type,
			   uint32_t iterations, const uint8_t *pw, size_t pwlen)
{
	if (type != AUTH_HASH_PBKDF2 && type != AUTH_HASH_SHA512)
		return -FM_EINVAL;
	if (type == AUTH_HASH_PBKDF2 && (iterations == 0 || iterations > AUTH_PBKDF2_ITERATIONS_MAX))
		return -FM_EINVAL;
	e->type = (uint8_t)type;
	e->iterations = type == AUTH_HASH_PBKDF2 ? iterations : 0;
	e->salt_len = AUTH_SALT_LEN;
	if (RAND_bytes(e->salt, AUTH_SALT_LEN) != 1)
		return -FM_EIO;
	return passwd_hash(e, pw, pwlen, e->hash);
}

bool auth_passwd_entry_verify(const struct auth_passwd_entry *e, const uint8_t *pw,
			      size_t pwlen)
{
	uint8_t h[AUTH_HASH_LEN];
	if (passwd_hash(e, pw, pwlen, h) != 0)
		return false;
	bool ok = CRYPTO_memcmp(h, e->hash, AUTH_HASH_LEN) == 0;
	OPENSSL_cleanse(h, sizeof(h));
	return ok;
}

int auth_passwd_format(const struct auth_passwd_entry *e, char *buf, size_t len)
{
	char salt[AUTH__B64_LEN(AUTH_SALT_MAX) + 1], hash[AUTH__B64_LEN(AUTH_HASH_LEN) + 1];
	if ((e->type != AUTH_HASH_PBKDF2 && e->type != AUTH_HASH_SHA512) || e->salt_len == 0 ||
	    e->salt_len > AUTH_SALT_MAX || e->ulen == 0 || e->ulen > 0x7fffffff ||
	    memchr(e->user, ':', e->ulen))
		return -FM_EINVAL;
	auth__b64_encode(e->salt, e->salt_len, salt);
	auth__b64_encode(e->hash, AUTH_HASH_LEN, hash);
	int n;
	if (e->type == AUTH_HASH_PBKDF2)
		n = snprintf(buf, len, "%.*s:$7$%u$%s$%s", (int)e->ulen, e->user, e->iterations,
			     salt, hash);
	else
		n = snprintf(buf, len, "%.*s:$6$%s$%s", (int)e->ulen, e->user, salt, hash);
	if (n < 0 || (size_t)n >= len)
		return -FM_ELIMIT;
	return n;
}

static int passwd_cmp_name(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int passwd_cmp(const void *x, const void *y)
{
	const struct auth_passwd_entry *a = x, *b = y;
	return passwd_cmp_name(a->user, a->ulen, b->user, b->ulen);
}

void auth_passwd_free(struct auth_passwd *pw)
{
	if (!pw)
		return;
	for (size_t i = 0; i < pw->n; i++)
		free((char *)pw->users[i].user);
	free(pw->users);
	free(pw);
}

/* Checks that no user appears twice; users are sorted by name and then by
 * line (lines[i] is the line of users[i]). */
static int passwd_dups(struct auth_passwd *pw, const size_t *lines, const char *path, char *err,
		       size_t errlen)
{
	for (size_t i = 1; i < pw->n; i++) {
		if (passwd_cmp(&pw->users[i - 1], &pw->users[i]) != 0)
			continue;
		size_t a = lines[i - 1], b = lines[i];
		snprintf(err, errlen, "%s:%zu: user '%.*s' already defined on line %zu", path,
			 a > b ? a : b, (int)pw->users[i].ulen, pw->users[i].user, a < b ? a : b);
		return -FM_EEXIST;
	}
	return 0;
}

struct passwd_sort {
	struct auth_passwd_entry e;
	size_t line;
};

static int passwd_sort_cmp(const void *x, const void *y)
{
	const struct passwd_sort *a = x, *b = y;
	int c = passwd_cmp(&a->e, &b->e);
	return c ? c : (a->line > b->line) - (a->line < b->line);
}

struct auth_passwd *auth_passwd_load(const char *path, char *err, size_t errlen)
{
	struct auth_passwd *pw = calloc(1, sizeof(*pw));
	struct passwd_sort *tmp = NULL;
	size_t *lines = NULL;
	size_t n = 0, cap = 0, lineno = 0, linecap = 0;
	char *line = NULL, msg[160];
	FILE *f = NULL;
	bool ok = false;

	if (!pw) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	uint32_t max_iter = 0;
	for (;;) {
		errno = 0;
		ssize_t got = getline(&line, &linecap, f);
		if (got < 0) {
			if (ferror(f)) {
				snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : EIO));
				goto out;
			}
			break;
		}
		lineno++;
		if (memchr(line, '\0', (size_t)got)) {
			snprintf(err, errlen, "%s:%zu: NUL byte in line", path, lineno);
			goto out;
		}
		struct auth_passwd_entry e;
		int rc = auth_passwd_parse_line(line, &e, msg, sizeof(msg));
		if (rc < 0) {
			snprintf(err, errlen, "%s:%zu: %s", path, lineno, msg);
			goto out;
		}
		if (rc == 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct passwd_sort *t = realloc(tmp, ncap * sizeof(*t));
			if (!t) {
				snprintf(err, errlen, "%s:%zu: out of memory", path, lineno);
				goto out;
			}
			tmp = t;
			cap = ncap;
		}
		char *u = malloc(e.ulen + 1);
		if (!u) {
			snprintf(err, errlen, "%s:%zu: out of memory", path, lineno);
			goto out;
		}
		memcpy(u, e.user, e.ulen);
		u[e.ulen] = '\0';
		e.user = u;
		if (e.iterations > max_iter)
			max_iter = e.iterations;
		tmp[n].e = e;
		tmp[n++].line = lineno;
	}
	if (n)
		qsort(tmp, n, sizeof(*tmp), passwd_sort_cmp);
	pw->users = calloc(n ? n : 1, sizeof(*pw->users));
	lines = calloc(n ? n : 1, sizeof(*lines));
	if (!pw->users || !lines) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		pw->users[i] = tmp[i].e;
		lines[i] = tmp[i].line;
	}
	pw->n = n;
	n = 0; /* moved into pw */
	if (passwd_dups(pw, lines, path, err, errlen) != 0)
		goto out;

	/* The dummy costs as much as the dearest real entry, so a wrong user name
	 * takes no less time than a wrong password. */
	pw->dummy.user = "";
	pw->dummy.type = AUTH_HASH_PBKDF2;
	pw->dummy.iterations = max_iter ? max_iter : AUTH_PBKDF2_ITERATIONS;
	pw->dummy.salt_len = AUTH_SALT_LEN;
	if (RAND_bytes(pw->dummy.salt, AUTH_SALT_LEN) != 1 ||
	    RAND_bytes(pw->dummy.hash, AUTH_HASH_LEN) != 1) {
		snprintf(err, errlen, "%s: no randomness for the dummy entry", path);
		goto out;
	}
	ok = true;
out:
	for (size_t i = 0; i < n; i++)
		free((char *)tmp[i].e.user);
	free(tmp);
	free(lines);
	free(line);
	if (f)
		fclose(f);
	if (!ok) {
		auth_passwd_free(pw);
		pw = NULL;
	}
	return pw;
}

bool auth_passwd_check(const struct auth_passwd *pw, const char *user, size_t ulen,
		       const uint8_t *pass, size_t passlen)
{
	const struct auth_passwd_entry *e = NULL;
	if (user) {
		struct auth_passwd_entry key = { .user = user, .ulen = ulen };
		e = bsearch(&key, pw->users, pw->n, sizeof(*pw->users), passwd_cmp);
	}
	/* Unknown users cost a hash too; the dummy's random hash never matches
	 * (2^-512), and its result is dropped anyway. */
	bool ok = auth_passwd_entry_verify(e ? e : &pw->dummy, pass, passlen);
	return e != NULL && ok;
}

size_t auth_passwd_count(const struct auth_passwd *pw)
{
	return pw->n;
}
