/* Slicing by eight: table[k][b] is the checksum of byte b followed by k
 * zero bytes, so eight input bytes are folded in with eight lookups. */
#include "crc.h"
#include <pthread.h>

#define POLY 0x04C11DB7u

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_build(void)
{
	for (unsigned b = 0; b < 256; b++) {
		uint32_t c = (uint32_t)b << 24;
		for (int bit = 0; bit < 8; bit++)
			c = c & 0x80000000u ? c << 1 ^ POLY : c << 1;
		table[0][b] = c;
	}
	for (unsigned b = 0; b < 256; b++)
		for (int k = 1; k < 8; k++)
			table[k][b] = table[k - 1][b] << 8 ^ table[0][table[k - 1][b] >> 24];
}

uint32_t cluster__crc32(const void *bytes, size_t len, uint32_t crc)
{
	pthread_once(&table_once, table_build);
	const unsigned char *p = bytes;
	for (; len >= 8; p += 8, len -= 8) {
		uint32_t w = crc ^ ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
		crc = table[7][w >> 24] ^ table[6][w >> 16 & 0xff] ^ table[5][w >> 8 & 0xff] ^ table[4][w & 0xff] ^
		      table[3][p[4]] ^ table[2][p[5]] ^ table[1][p[6]] ^ table[0][p[7]];
	}
	for (; len; p++, len--)
		crc = crc << 8 ^ table[0][(crc >> 24 ^ *p) & 0xff];
	return crc;
}

/* libraft's byteCrc32 (buffer, size, value so far), linked here by
 * `ld --wrap=byteCrc32` (CMakeLists.txt). */
unsigned __wrap_byteCrc32(const void *buf, size_t size, unsigned init);

unsigned __wrap_byteCrc32(const void *buf, size_t size, unsigned init)
{
	return cluster__crc32(buf, size, init);
}
