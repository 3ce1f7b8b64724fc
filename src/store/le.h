/* Little-endian integers of n bytes, as the store's encodings (record
 * batches, journal entries) write them. */
#ifndef FM_STORE_LE_H
#define FM_STORE_LE_H
#include <stdint.h>

static inline void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

#endif
