/* Unit tests for ferromq-ctl's JSON reader (tools/ctl/json.c). */
#include "check.h"
#include "ctl/json.h"

#include <limits.h>

static struct json_token tok[256];

/* Parses s (NUL-terminated) and returns 0, or -1 with err filled. */
static int parse(const char *s, struct json_doc *d, struct json_error *err)
{
	return json_parse(s, strlen(s), tok, sizeof(tok) / sizeof(tok[0]), d, err);
}

static void test_scalars(void)
{
	struct json_doc d;
	struct json_error e;
	long long ll;
	double x;
	ASSERT_EQ(parse(" true ", &d, &e), 0);
	ASSERT_EQ(d.n, 1);
	ASSERT_EQ(d.tok[0].type, JSON_TRUE);
	ASSERT_EQ(parse("null", &d, &e), 0);
	ASSERT_EQ(d.tok[0].type, JSON_NULL);
	ASSERT_EQ(parse("false", &d, &e), 0);
	ASSERT_EQ(d.tok[0].type, JSON_FALSE);
	ASSERT_EQ(parse("-12.5e+2", &d, &e), 0);
	ASSERT_EQ(d.tok[0].type, JSON_NUMBER);
	ASSERT_STRN(d.text + d.tok[0].start, d.tok[0].len, "-12.5e+2");
	ASSERT_TRUE(json_number(&d, 0, &x));
	ASSERT_TRUE(x == -1250.0);
	ASSERT_FALSE(json_integer(&d, 0, &ll));
	ASSERT_EQ(parse("0", &d, &e), 0);
	ASSERT_TRUE(json_integer(&d, 0, &ll));
	ASSERT_EQ(ll, 0);
}

static void test_integers(void)
{
	struct json_doc d;
	struct json_error e;
	long long ll = 1;
	ASSERT_EQ(parse("9223372036854775807", &d, &e), 0);
	ASSERT_TRUE(json_integer(&d, 0, &ll));
	ASSERT_TRUE(ll == LLONG_MAX);
	ASSERT_EQ(parse("-9223372036854775808", &d, &e), 0);
	ASSERT_TRUE(json_integer(&d, 0, &ll));
	ASSERT_TRUE(ll == LLONG_MIN);
	ASSERT_EQ(parse("9223372036854775808", &d, &e), 0);
	ASSERT_FALSE(json_integer(&d, 0, &ll));
	ASSERT_EQ(parse("-9223372036854775809", &d, &e), 0);
	ASSERT_FALSE(json_integer(&d, 0, &ll));
	ASSERT_EQ(parse("\"5\"", &d, &e), 0);
	ASSERT_FALSE(json_integer(&d, 0, &ll));
}

static void test_layout(void)
{
	struct json_doc d;
	struct json_error e;
	const char *s = "{\"a\": [1, {\"b\": null}, \"x\"], \"c\": {}, \"a\": 2}";
	ASSERT_EQ(parse(s, &d, &e), 0);
	/* {  "a" [ 1 { "b" null } "x" ] "c" {} "a" 2 */
	ASSERT_EQ(d.n, 12);
	ASSERT_EQ(d.tok[0].type, JSON_OBJECT);
	ASSERT_EQ(d.tok[0].children, 3);
	ASSERT_EQ(d.tok[0].next, 12);
	ASSERT_STRN(d.text + d.tok[0].start, d.tok[0].len, s);
	ASSERT_EQ(d.tok[2].type, JSON_ARRAY);
	ASSERT_EQ(d.tok[2].children, 3);
	ASSERT_EQ(d.tok[2].next, 8);
	ASSERT_EQ(d.tok[4].type, JSON_OBJECT);
	ASSERT_EQ(d.tok[4].next, 7);
	ASSERT_STRN(d.text + d.tok[7].start, d.tok[7].len, "x");

	/* The first member wins when a key repeats. */
	int a = json_get(&d, 0, "a");
	ASSERT_EQ(a, 2);
	ASSERT_EQ(json_get(&d, 0, "c"), 9);
	ASSERT_EQ(json_get(&d, 0, "missing"), -1);
	ASSERT_EQ(json_get(&d, 2, "a"), -1); /* not an object */
	ASSERT_EQ(json_get(&d, json_get(&d, 0, "c"), "a"), -1);

	/* Array elements in order, skipping nested values. */
	int seen[4], n = 0;
	for (int i = json_first(&d, a); i >= 0 && n < 4; i = json_after(&d, a, i))
		seen[n++] = i;
	ASSERT_EQ(n, 3);
	ASSERT_EQ(seen[0], 3);
	ASSERT_EQ(seen[1], 4);
	ASSERT_EQ(seen[2], 7);
	/* Object members: keys in order. */
	n = 0;
	for (int k = json_first(&d, 0); k >= 0 && n < 4; k = json_after(&d, 0, k))
		seen[n++] = k;
	ASSERT_EQ(n, 3);
	ASSERT_EQ(seen[0], 1);
	ASSERT_EQ(seen[1], 8);
	ASSERT_EQ(seen[2], 10);
	ASSERT_EQ(json_first(&d, 9), -1); /* empty object */
	ASSERT_EQ(json_first(&d, 3), -1); /* a number */
}

static void test_strings(void)
{
	struct json_doc d;
	struct json_error e;
	char out[64];
	/* Escapes, a BMP character and a surrogate pair (U+1F600). */
	ASSERT_EQ(parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00 caf\xc3\xa9\"", &d, &e), 0);
	size_t n = json_string(&d, 0, out, sizeof(out));
	const char want[] = "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80 caf\xc3\xa9";
	ASSERT_EQ(n, sizeof(want) - 1);
	ASSERT_MEM(out, want, sizeof(want));
	ASSERT_TRUE(json_string_is(&d, 0, want));
	ASSERT_FALSE(json_string_is(&d, 0, "a\"b"));

	/* Truncation keeps the full length and terminates the buffer. */
	ASSERT_EQ(json_string(&d, 0, out, 4), sizeof(want) - 1);
	ASSERT_STRN(out, strlen(out), "a\"b");
	ASSERT_EQ(json_string(&d, 0, NULL, 0), sizeof(want) - 1);

	/* \u0000 is data, not the end. */
	ASSERT_EQ(parse("\"x\\u0000y\"", &d, &e), 0);
	ASSERT_EQ(json_string(&d, 0, out, sizeof(out)), 3);
	ASSERT_MEM(out, "x\0y", 4);
	ASSERT_FALSE(json_string_is(&d, 0, "x"));

	/* Keys are compared after unescaping. */
	ASSERT_EQ(parse("{\"client\\u005fid\": \"gw\"}", &d, &e), 0);
	ASSERT_EQ(json_get(&d, 0, "client_id"), 2);
	ASSERT_EQ(json_string(&d, 1, out, sizeof(out)), 9);
	ASSERT_EQ(json_string(&d, 0, out, sizeof(out)), 0); /* an object */
}

struct bad_case {
	const char *text;
	size_t offset;
	const char *what;
};

static void test_errors(void)
{
	static const struct bad_case bad[] = {
		{ "", 0, "unexpected end of input" },
		{ "  ", 2, "unexpected end of input" },
		{ "[1,]", 3, "unexpected character" },
		{ "[1 2]", 3, "expected ',' or ']'" },
		{ "{\"a\" 1}", 5, "expected ':' after key" },
		{ "{1: 2}", 1, "expected a string key" },
		{ "{\"a\": 1,}", 8, "expected a string key" },
		{ "[1", 2, "unterminated array" },
		{ "{\"a\": 1", 7, "unterminated object" },
		{ "01", 1, "text after the value" },
		{ "1.", 2, "bad number: no digit after '.'" },
		{ "1e+", 3, "bad number: no digit in exponent" },
		{ "-", 1, "bad number" },
		{ "+1", 0, "unexpected character" },
		{ "tru", 0, "unexpected character" },
		{ "nul", 0, "unexpected character" },
		{ "\"abc", 4, "unterminated string" },
		{ "\"a\\", 3, "unterminated string" },
		{ "\"\\x\"", 2, "bad escape in string" },
		{ "\"\x01\"", 1, "control character in string" },
		{ "\"\\u12\"", 3, "truncated \\u escape" },
		{ "\"\\u12g4\"", 3, "bad hex digit in \\u escape" },
		{ "\"\\ud800\"", 7, "high surrogate without its low half" },
		{ "\"\\ud800\\u0041\"", 7, "high surrogate without its low half" },
		{ "\"\\udc00\"", 7, "lone low surrogate in \\u escape" },
		{ "\"\xc0\xaf\"", 1, "invalid UTF-8 in string" },      /* overlong '/' */
		{ "\"\xed\xa0\x80\"", 1, "invalid UTF-8 in string" },  /* a surrogate */
		{ "\"\xf4\x90\x80\x80\"", 1, "invalid UTF-8 in string" }, /* above U+10FFFF */
		{ "\"\xe2\x82\"", 1, "invalid UTF-8 in string" },      /* cut short */
		{ "[true] x", 7, "text after the value" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct json_doc d;
		struct json_error e = { 0, NULL };
		int rc = parse(bad[i].text, &d, &e);
		if (rc != -1 || e.offset != bad[i].offset || !e.what || strcmp(e.what, bad[i].what) != 0)
			CHECK_FAIL("case %zu \"%s\": rc %d, error \"%s\" at %zu; want \"%s\" at %zu", i,
				   bad[i].text, rc, e.what ? e.what : "(none)", e.offset, bad[i].what,
				   bad[i].offset);
	}
}

static void test_limits(void)
{
	struct json_doc d;
	struct json_error e;
	char deep[2 * JSON_MAX_DEPTH + 3];
	/* JSON_MAX_DEPTH nested arrays parse; one more does not. */
	memset(deep, '[', JSON_MAX_DEPTH);
	memset(deep + JSON_MAX_DEPTH, ']', JSON_MAX_DEPTH);
	deep[2 * JSON_MAX_DEPTH] = '\0';
	ASSERT_EQ(parse(deep, &d, &e), 0);
	ASSERT_EQ(d.n, JSON_MAX_DEPTH);
	memset(deep, '[', JSON_MAX_DEPTH + 1);
	memset(deep + JSON_MAX_DEPTH + 1, ']', JSON_MAX_DEPTH + 1);
	deep[2 * JSON_MAX_DEPTH + 2] = '\0';
	ASSERT_EQ(parse(deep, &d, &e), -1);
	ASSERT_STRN(e.what, strlen(e.what), "nested too deeply");
	ASSERT_EQ(e.offset, JSON_MAX_DEPTH);

	/* The token array bounds the number of values. */
	struct json_token three[3];
	ASSERT_EQ(json_parse("[1,2]", 5, three, 3, &d, &e), 0);
	ASSERT_EQ(json_parse("[1,2,3]", 7, three, 3, &d, &e), -1);
	ASSERT_STRN(e.what, strlen(e.what), "too many values");
	/* The length is honoured: no reading past it. */
	ASSERT_EQ(json_parse("[1]]", 3, tok, 8, &d, &e), 0);
	ASSERT_EQ(json_parse("\"ab\"", 3, tok, 8, &d, &e), -1);
	ASSERT_EQ(json_parse("truex", 4, tok, 8, &d, &e), 0);
}

int main(void)
{
	RUN(test_scalars);
	RUN(test_integers);
	RUN(test_layout);
	RUN(test_strings);
	RUN(test_errors);
	RUN(test_limits);
	return CHECK_DONE();
}
