/* Tiny unit-test kit: each ASSERT prints both sides on failure and the test
 * binary exits non-zero. */
#ifndef FM_CHECK_H
#define FM_CHECK_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;

#define CHECK_FAIL(fmt, ...) do { \
	fprintf(stderr, "%s:%d: " fmt "\n", __FILE__, __LINE__, __VA_ARGS__); \
	check_failures++; } while (0)

#define ASSERT_TRUE(x) do { if (!(x)) CHECK_FAIL("expected true: %s", #x); } while (0)
#define ASSERT_FALSE(x) do { if (x) CHECK_FAIL("expected false: %s", #x); } while (0)
#define ASSERT_EQ(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
	if (a_ != b_) CHECK_FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_); } while (0)
#define ASSERT_MEM(a, b, n) do { if (memcmp((a), (b), (n)) != 0) \
	CHECK_FAIL("%s and %s differ in %zu bytes", #a, #b, (size_t)(n)); } while (0)
#define ASSERT_STRN(a, alen, s) do { size_t sl_ = strlen(s); \
	if ((size_t)(alen) != sl_ || memcmp((a), (s), sl_) != 0) \
	CHECK_FAIL("%s: \"%.*s\" != \"%s\"", #a, (int)(alen), (const char *)(a), s); } while (0)

#define RUN(test) do { int before_ = check_failures; test(); \
	fprintf(stderr, "%s %s\n", check_failures == before_ ? "ok  " : "FAIL", #test); } while (0)
#define CHECK_DONE() (check_failures ? (fprintf(stderr, "%d failure(s)\n", check_failures), 1) : 0)

#endif
