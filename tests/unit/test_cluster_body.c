/* src/http/cluster_body.c: the bodies of the cluster operations. */
#include "check.h"
#include "http/cluster_body.h"
#include "base/err.h"

static int parse(const char *text, struct cluster_body *b, char *err, size_t errlen)
{
	return cluster_body_parse((const uint8_t *)text, strlen(text), b, err, errlen);
}

static void test_accepts(void)
{
	struct cluster_body b;
	char err[200];
	ASSERT_EQ(parse("{\"id\":4,\"address\":\"10.0.0.4:7000\"}", &b, err, sizeof err), 0);
	ASSERT_TRUE(b.has_id && b.has_address);
	ASSERT_EQ(b.id, 4);
	ASSERT_STRN(b.address, strlen(b.address), "10.0.0.4:7000");
	/* Any order, blanks, escapes that decode to ASCII. */
	ASSERT_EQ(parse(" \r\n{ \"address\" : \"h\\u006fst\\/x:1\" ,\t\"id\": 18446744073709551615 } \n", &b, err,
			sizeof err), 0);
	ASSERT_TRUE(b.id == UINT64_MAX);
	ASSERT_STRN(b.address, strlen(b.address), "host/x:1");
	ASSERT_EQ(parse("{}", &b, err, sizeof err), 0);
	ASSERT_FALSE(b.has_id || b.has_address);
	ASSERT_EQ(parse("{\"id\":0}", &b, err, sizeof err), 0);
	ASSERT_TRUE(b.has_id && b.id == 0 && !b.has_address);
}

static void test_refuses(void)
{
	static const struct { const char *text, *why; } bad[] = {
		{ "", "expected a JSON object at byte 0 of the body" },
		{ "[]", "expected a JSON object at byte 0 of the body" },
		{ "{\"adress\":\"a:1\"}", "unknown member (only \"id\" and \"address\") at byte 1 of the body" },
		{ "{\"id\":1,\"id\":2}", "\"id\" given twice at byte 13 of the body" },
		{ "{\"id\":-1}", "expected a non-negative integer at byte 6 of the body" },
		{ "{\"id\":1.5}", "a node id is a whole number at byte 7 of the body" },
		{ "{\"id\":1e3}", "a node id is a whole number at byte 7 of the body" },
		{ "{\"id\":01}", "leading zero in a number at byte 8 of the body" },
		{ "{\"id\":18446744073709551616}", "number too large for a node id at byte 25 of the body" },
		{ "{\"id\":\"4\"}", "expected a non-negative integer at byte 6 of the body" },
		{ "{\"address\":4}", "expected a string at byte 11 of the body" },
		{ "{\"address\":\"a\\u00e9:1\"}", "only ASCII characters other than NUL may be escaped with \\u at byte 13 of the body" },
		{ "{\"address\":\"a\\u0000\"}", "only ASCII characters other than NUL may be escaped with \\u at byte 13 of the body" },
		{ "{\"address\":\"a\\x\"}", "bad escape at byte 13 of the body" },
		{ "{\"address\":\"a\tb\"}", "control character in a string at byte 13 of the body" },
		{ "{\"address\":\"ab", "unterminated string at byte 14 of the body" },
		{ "{\"id\":1", "expected ',' or '}' at byte 7 of the body" },
		{ "{\"id\":1,}", "expected a string at byte 8 of the body" },
		{ "{\"id\" 1}", "expected ':' at byte 6 of the body" },
		{ "{\"id\":1} x", "unexpected text after the object at byte 9 of the body" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct cluster_body b;
		char err[200];
		ASSERT_EQ(parse(bad[i].text, &b, err, sizeof err), -FM_EINVAL);
		if (strcmp(err, bad[i].why))
			CHECK_FAIL("%s: \"%s\" != \"%s\"", bad[i].text, err, bad[i].why);
	}
	/* An address longer than any HOST:PORT. */
	char big[CLUSTER_ADDRESS_MAX + 40];
	int n = snprintf(big, sizeof big, "{\"address\":\"");
	memset(big + n, 'a', CLUSTER_ADDRESS_MAX);
	snprintf(big + n + CLUSTER_ADDRESS_MAX, sizeof big - n - CLUSTER_ADDRESS_MAX, "\"}");
	struct cluster_body b;
	ASSERT_EQ(parse(big, &b, NULL, 0), -FM_EINVAL);
}

int main(void)
{
	RUN(test_accepts);
	RUN(test_refuses);
	return CHECK_DONE();
}
