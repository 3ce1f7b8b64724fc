/* libFuzzer target for the one HTTP request parser (src/base/http_request.c,
 * used by the HTTP listener and the WebSocket Upgrade): any bytes give a
 * complete request whose parts all lie inside the input, "need more" (then
 * one byte short of a complete request needs more too; once the head is
 * complete it says how long the request is), or an HTTP error status. The
 * target is then percent-decoded and its query searched, and every header
 * value is read as a token list. Aborts otherwise.
 */
#include "base/http_request.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static void inside(const uint8_t *p, size_t len, const void *q, size_t n)
{
	CHECK((const uint8_t *)q >= p && (const uint8_t *)q + n <= p + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_request r;
	long n = http_parse(data, size, &r);
	CHECK(n == 0 || n == -400 || n == -413 || n == -414 || n == -431 || n == -501 || (n > 0 && (size_t)n <= size));
	/* What is still needed lies beyond what there is. */
	CHECK(n == 0 ? r.need == 0 || r.need > size : r.need == 0);
	if (n <= 0)
		return 0;
	inside(data, (size_t)n, r.method, r.method_len);
	inside(data, (size_t)n, r.target, r.target_len);
	CHECK(r.method_len > 0 && r.target_len > 0 && r.target_len <= HTTP_MAX_TARGET);
	CHECK(r.n_headers <= HTTP_MAX_HEADERS && r.minor <= 1);
	for (unsigned i = 0; i < r.n_headers; i++) {
		inside(data, (size_t)n, r.headers[i].name, r.headers[i].name_len);
		inside(data, (size_t)n, r.headers[i].value, r.headers[i].value_len);
		/* A value that is exactly the token holds it, whatever the case. */
		bool exact = r.headers[i].value_len == 7 && !strncasecmp(r.headers[i].value, "upgrade", 7);
		CHECK(!exact || http_header_has_token(&r.headers[i], "Upgrade"));
	}
	CHECK(r.body_len <= HTTP_MAX_BODY);
	if (r.body_len)
		CHECK(r.body + r.body_len == data + n);
	/* The same request, one byte short, is incomplete. */
	struct http_request r2;
	CHECK(http_parse(data, (size_t)n - 1, &r2) == 0);
	CHECK(r2.need == 0 || r2.need == (size_t)n);
	char out[HTTP_MAX_TARGET + 1];
	long d = http_pct_decode(r.target, r.target_len, out, sizeof out);
	CHECK(d == -1 || ((size_t)d <= r.target_len && out[d] == 0 && strlen(out) == (size_t)d));
	const char *q = memchr(r.target, '?', r.target_len);
	if (q) {
		size_t qlen = r.target_len - (size_t)(q + 1 - r.target);
		long v = http_query_get(q + 1, qlen, "token", out, sizeof out);
		CHECK(v == -1 || ((size_t)v <= qlen && out[v] == 0));
	}
	return 0;
}
