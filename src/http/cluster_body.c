/* A strict reader for the two-member objects of the cluster operations:
 * anything else in the body is refused with the offset where it went
 * wrong, so an operator's typo ("adress") is an error, not a default. */
#include "cluster_body.h"
#include "../base/err.h"
#include <stdio.h>
#include <string.h>

struct cursor {
	const uint8_t *p;
	size_t len, at;
	char *err;
	size_t errlen;
};

static int fail(struct cursor *c, const char *why)
{
	if (c->errlen)
		snprintf(c->err, c->errlen, "%s at byte %zu of the body", why, c->at);
	return -FM_EINVAL;
}

static void blanks(struct cursor *c)
{
	while (c->at < c->len && (c->p[c->at] == ' ' || c->p[c->at] == '\t' || c->p[c->at] == '\r' ||
				  c->p[c->at] == '\n'))
		c->at++;
}

static bool take(struct cursor *c, char ch)
{
	blanks(c);
	if (c->at < c->len && c->p[c->at] == ch) {
		c->at++;
		return true;
	}
	return false;
}

static int hex(uint8_t ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* A JSON string (the opening quote next) into out[cap], NUL-terminated.
 * Escapes are decoded; \u only below U+0080 (keys and addresses are
 * ASCII); control characters and NUL are refused. */
static int string(struct cursor *c, char *out, size_t cap)
{
	if (!take(c, '"'))
		return fail(c, "expected a string");
	size_t n = 0;
	for (;;) {
		if (c->at >= c->len)
			return fail(c, "unterminated string");
		size_t start = c->at; /* where an error points */
		uint8_t ch = c->p[c->at++];
		if (ch == '"')
			break;
		if (ch < 0x20) {
			c->at = start;
			return fail(c, "control character in a string");
		}
		if (ch == '\\') {
			if (c->at >= c->len)
				return fail(c, "unterminated string");
			uint8_t e = c->p[c->at++];
			static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
			const char *k = e ? strchr(from, e) : NULL;
			if (k) {
				ch = (uint8_t)to[k - from];
			} else if (e == 'u') {
				unsigned v = 0;
				for (int i = 0; i < 4; i++) {
					int h = c->at < c->len ? hex(c->p[c->at]) : -1;
					if (h < 0) {
						c->at = start;
						return fail(c, "bad \\u escape");
					}
					v = v << 4 | (unsigned)h;
					c->at++;
				}
				if (v == 0 || v >= 0x80) {
					c->at = start;
					return fail(c, "only ASCII characters other than NUL may be escaped with \\u");
				}
				ch = (uint8_t)v;
			} else {
				c->at = start;
				return fail(c, "bad escape");
			}
		}
		if (n + 1 >= cap)
			return fail(c, "string too long");
		out[n++] = (char)ch;
	}
	out[n] = '\0';
	return 0;
}

/* A non-negative integer without sign, fraction or exponent. */
static int integer(struct cursor *c, uint64_t *out)
{
	blanks(c);
	size_t start = c->at;
	uint64_t v = 0;
	while (c->at < c->len && c->p[c->at] >= '0' && c->p[c->at] <= '9') {
		unsigned d = c->p[c->at] - '0';
		if (v > (UINT64_MAX - d) / 10)
			return fail(c, "number too large for a node id");
		v = v * 10 + d;
		c->at++;
	}
	if (c->at == start)
		return fail(c, "expected a non-negative integer");
	if (c->p[start] == '0' && c->at - start > 1)
		return fail(c, "leading zero in a number");
	if (c->at < c->len && (c->p[c->at] == '.' || c->p[c->at] == 'e' || c->p[c->at] == 'E'))
		return fail(c, "a node id is a whole number");
	*out = v;
	return 0;
}

int cluster_body_parse(const uint8_t *p, size_t len, struct cluster_body *out, char *err, size_t errlen)
{
	struct cursor c = { p, len, 0, err, errlen };
	memset(out, 0, sizeof *out);
	if (errlen)
		err[0] = '\0';
	if (!take(&c, '{'))
		return fail(&c, "expected a JSON object");
	if (!take(&c, '}')) {
		for (;;) {
			char key[16];
			blanks(&c);
			size_t key_at = c.at;
			int rc = string(&c, key, sizeof key);
			if (rc)
				return rc;
			if (!take(&c, ':'))
				return fail(&c, "expected ':'");
			if (!strcmp(key, "id")) {
				if (out->has_id)
					return fail(&c, "\"id\" given twice");
				if ((rc = integer(&c, &out->id)))
					return rc;
				out->has_id = true;
			} else if (!strcmp(key, "address")) {
				if (out->has_address)
					return fail(&c, "\"address\" given twice");
				if ((rc = string(&c, out->address, sizeof out->address)))
					return rc;
				out->has_address = true;
			} else {
				c.at = key_at;
				return fail(&c, "unknown member (only \"id\" and \"address\")");
			}
			if (take(&c, '}'))
				break;
			if (!take(&c, ','))
				return fail(&c, "expected ',' or '}'");
		}
	}
	blanks(&c);
	if (c.at != c.len)
		return fail(&c, "unexpected text after the object");
	return 0;
}
