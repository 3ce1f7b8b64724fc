/* The fast checksum (src/cluster/crc.c) gives libraft's own values: the
 * build links libraft's byteCrc32 calls to it, and segments written by
 * either must read back with the other. __real_byteCrc32 is libraft's
 * byte-at-a-time original (ld --wrap). */
#include <stdint.h>

#include "check.h"
#include "cluster/crc.h"

unsigned __real_byteCrc32(const void *buf, size_t size, unsigned init);
unsigned __wrap_byteCrc32(const void *buf, size_t size, unsigned init);

static uint64_t rng = 0x9E3779B97F4A7C15u;

static uint32_t next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static void test_check_value(void)
{
	/* "123456789" under this CRC's parameters (poly 0x04C11DB7, init 0,
	 * not reflected, no final inversion). */
	ASSERT_EQ(cluster__crc32("123456789", 9, 0), 0x89A1897Fu);
	ASSERT_EQ(__real_byteCrc32("123456789", 9, 0), 0x89A1897Fu);
	ASSERT_EQ(cluster__crc32("", 0, 0x12345678u), 0x12345678u);
}

/* Every length up to 70 KB at every alignment of the start, with and
 * without a value carried in. */
static void test_same_as_libraft(void)
{
	static unsigned char buf[70000 + 8];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (unsigned char)next_random();
	int differ = 0;
	for (int round = 0; round < 3000; round++) {
		size_t len = round < 200 ? (size_t)round : next_random() % 70000;
		size_t at = (size_t)round % 8;
		unsigned init = round % 3 ? next_random() : 0;
		if (cluster__crc32(buf + at, len, init) != __real_byteCrc32(buf + at, len, init))
			differ++;
	}
	ASSERT_EQ(differ, 0);
}

/* A buffer checksummed in parts gives the value of the whole (libraft
 * chains a batch's header and its entries so). */
static void test_in_parts(void)
{
	unsigned char buf[4096];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (unsigned char)next_random();
	uint32_t whole = cluster__crc32(buf, sizeof buf, 0);
	for (size_t cut = 0; cut <= sizeof buf; cut += 37)
		ASSERT_EQ(cluster__crc32(buf + cut, sizeof buf - cut, cluster__crc32(buf, cut, 0)), whole);
}

/* What libraft calls is ours. */
static void test_wrapped(void)
{
	ASSERT_EQ(__wrap_byteCrc32("123456789", 9, 0), 0x89A1897Fu);
	ASSERT_EQ(__wrap_byteCrc32("ferromq", 7, 42), __real_byteCrc32("ferromq", 7, 42));
}

int main(void)
{
	RUN(test_check_value);
	RUN(test_same_as_libraft);
	RUN(test_in_parts);
	RUN(test_wrapped);
	return CHECK_DONE();
}
