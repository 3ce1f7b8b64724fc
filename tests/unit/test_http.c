/* src/http's request parser and JSON writer. */
#include "check.h"
#include "http/json.h"
#include "base/http_request.h"
#include <stdlib.h>

static long parse(const char *s, struct http_request *r) { return http_parse((const uint8_t *)s, strlen(s), r); }

static void test_simple_get(void)
{
	struct http_request r;
	const char *s = "GET /api/status?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer abc \r\n\r\n";
	ASSERT_EQ(parse(s, &r), strlen(s));
	ASSERT_STRN(r.method, r.method_len, "GET");
	ASSERT_STRN(r.target, r.target_len, "/api/status?x=1");
	ASSERT_EQ(r.minor, 1);
	ASSERT_EQ(r.n_headers, 2);
	ASSERT_TRUE(r.keep_alive);
	const struct http_header *h = http_header_find(&r, "authorization");
	ASSERT_TRUE(h != NULL);
	if (h)
		ASSERT_STRN(h->value, h->value_len, "Bearer abc");
	ASSERT_TRUE(http_header_find(&r, "Cookie") == NULL);
}

static void test_incomplete_needs_more(void)
{
	struct http_request r;
	const char *s = "POST /api/reload HTTP/1.1\r\nContent-Length: 5\r\n\r\nab";
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\n", &r), 0);
	ASSERT_EQ(parse("GET / HT", &r), 0);
	ASSERT_EQ(parse(s, &r), 0);
	/* Every prefix of a complete request needs more, the whole takes all. */
	const char *full = "POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET";
	size_t want = strlen(full) - 3;
	for (size_t i = 0; i < want; i++)
		ASSERT_EQ(http_parse((const uint8_t *)full, i, &r), 0);
	ASSERT_EQ(http_parse((const uint8_t *)full, strlen(full), &r), want);
	ASSERT_STRN((const char *)r.body, r.body_len, "abc");
	ASSERT_EQ(r.need, 0);
	/* Once the head is whole, the length of the whole request is known
	 * (the server waits for it instead of parsing every byte again). */
	ASSERT_EQ(http_parse((const uint8_t *)full, want - 2, &r), 0);
	ASSERT_EQ(r.need, want);
	ASSERT_EQ(http_parse((const uint8_t *)full, 20, &r), 0);
	ASSERT_EQ(r.need, 0);
}

static void test_keep_alive_rules(void)
{
	struct http_request r;
	ASSERT_TRUE(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &r) > 0);
	ASSERT_FALSE(r.keep_alive);
	ASSERT_TRUE(parse("GET / HTTP/1.0\r\n\r\n", &r) > 0);
	ASSERT_FALSE(r.keep_alive);
	ASSERT_TRUE(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r) > 0);
	ASSERT_TRUE(r.keep_alive);
	ASSERT_TRUE(parse("GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n", &r) > 0);
	ASSERT_FALSE(r.keep_alive);
}

static void test_malformed(void)
{
	struct http_request r;
	ASSERT_EQ(parse("GET /\r\n\r\n", &r), -400);
	ASSERT_EQ(parse("GET  / HTTP/1.1\r\n\r\n", &r), -400);
	ASSERT_EQ(parse("GET / HTTP/2.0\r\n\r\n", &r), -400);
	ASSERT_EQ(parse("G(T / HTTP/1.1\r\n\r\n", &r), -400);
	ASSERT_EQ(parse("GET / HTTP/1.1\nHost: a\n\n", &r), -400);
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nNo colon\r\n\r\n", &r), -400);
	ASSERT_EQ(parse("GET / HTTP/1.1\r\n folded: x\r\n\r\n", &r), -400);
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", &r), -400);
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", &r), -400);
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &r), -501);
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n", &r), -400);
}

static void test_limits(void)
{
	struct http_request r;
	ASSERT_EQ(parse("POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", &r), -413);
	ASSERT_EQ(parse("POST / HTTP/1.1\r\nContent-Length: 99999999999999\r\n\r\n", &r), -413);
	char *big = malloc(HTTP_MAX_HEAD * 2);
	/* A request line longer than the limit, complete or not. */
	memset(big, 'a', HTTP_MAX_HEAD);
	memcpy(big, "GET /", 5);
	ASSERT_EQ(http_parse((uint8_t *)big, HTTP_MAX_TARGET + 10, &r), -414);
	/* Too many headers, and too many header bytes. */
	size_t n = (size_t)sprintf(big, "GET / HTTP/1.1\r\n");
	for (int i = 0; i <= HTTP_MAX_HEADERS; i++)
		n += (size_t)sprintf(big + n, "X%d: y\r\n", i);
	n += (size_t)sprintf(big + n, "\r\n");
	ASSERT_EQ(http_parse((uint8_t *)big, n, &r), -431);
	n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nX: ");
	memset(big + n, 'v', HTTP_MAX_HEAD);
	ASSERT_EQ(http_parse((uint8_t *)big, n + HTTP_MAX_HEAD, &r), -431);
	free(big);
}

static void test_pct_decode_and_query(void)
{
	char out[32];
	ASSERT_EQ(http_pct_decode("a%2Fb%20c", 9, out, sizeof out), 5);
	ASSERT_STRN(out, 5, "a/b c");
	ASSERT_EQ(http_pct_decode("a%2", 3, out, sizeof out), -1);
	ASSERT_EQ(http_pct_decode("a%zz", 4, out, sizeof out), -1);
	ASSERT_EQ(http_pct_decode("%00", 3, out, sizeof out), -1);
	ASSERT_EQ(http_pct_decode("abcd", 4, out, 4), -1);
	const char *q = "a=1&token=x%3Dy&tok=2";
	ASSERT_EQ(http_query_get(q, strlen(q), "token", out, sizeof out), 3);
	ASSERT_STRN(out, 3, "x=y");
	ASSERT_EQ(http_query_get(q, strlen(q), "to", out, sizeof out), -1);
	ASSERT_EQ(http_query_get(q, strlen(q), "b", out, sizeof out), -1);
}

static void test_json_writer(void)
{
	struct jw j = { 0 };
	jw_obj(&j);
	jw_key(&j, "s");
	jw_str(&j, "a\"b\\c\n\x01");
	jw_key(&j, "list");
	jw_arr(&j);
	jw_u64(&j, 1);
	jw_bool(&j, false);
	jw_null(&j);
	jw_num(&j, 1.5);
	jw_obj(&j);
	jw_obj_end(&j);
	jw_arr_end(&j);
	jw_key(&j, "n");
	jw_str(&j, NULL);
	jw_obj_end(&j);
	ASSERT_FALSE(j.oom);
	ASSERT_STRN(j.out.p, j.out.len,
		    "{\"s\":\"a\\\"b\\\\c\\u000a\\u0001\",\"list\":[1,false,null,1.500,{}],\"n\":null}");
	buf_free(&j.out);
}

int main(void)
{
	RUN(test_simple_get);
	RUN(test_incomplete_needs_more);
	RUN(test_keep_alive_rules);
	RUN(test_malformed);
	RUN(test_limits);
	RUN(test_pct_decode_and_query);
	RUN(test_json_writer);
	return CHECK_DONE();
}
