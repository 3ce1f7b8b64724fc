/* Little-endian integers of n bytes, as the store's encodings (record
 * batches, journal entries) write them. The widths the encodings use (1, 2,
 * 4, 8) are one load or store each on a little-endian host (the byte loop
 * showed up in the writer's profile: every record is read twice at apply
 * time); other widths, and big-endian hosts, go byte by byte. */
#ifndef FM_STORE_LE_H
#define FM_STORE_LE_H
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define FM_LE_HOST 1
#else
#define FM_LE_HOST 0
#endif

static inline void put_le(uint8_t *p, uint64_t v, int n)
{
	if (FM_LE_HOST) {
		uint32_t v32 = (uint32_t)v;
		uint16_t v16 = (uint16_t)v;
		switch (n) {
		case 8: memcpy(p, &v, 8); return;
		case 4: memcpy(p, &v32, 4); return;
		case 2: memcpy(p, &v16, 2); return;
		case 1: p[0] = (uint8_t)v; return;
		default: break;
		}
	}
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_le(const uint8_t *p, int n)
{
	if (FM_LE_HOST) {
		uint64_t v64;
		uint32_t v32;
		uint16_t v16;
		switch (n) {
		case 8: memcpy(&v64, p, 8); return v64;
		case 4: memcpy(&v32, p, 4); return v32;
		case 2: memcpy(&v16, p, 2); return v16;
		case 1: return p[0];
		default: break;
		}
	}
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

#endif
