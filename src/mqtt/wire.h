/* Bounds-checked cursor readers and writers for MQTT's wire types. Every
 * overlong varint and bad UTF-8 string is rejected here and nowhere else. */
#ifndef FM_MQTT_WIRE_H
#define FM_MQTT_WIRE_H
#include "mqtt.h"
#include <string.h>

struct rd {
	const uint8_t *p, *end;
};

static inline size_t rd_left(const struct rd *r) { return (size_t)(r->end - r->p); }

static inline bool rd_u8(struct rd *r, uint8_t *v)
{
	if (r->p >= r->end)
		return false;
	*v = *r->p++;
	return true;
}

static inline bool rd_u16(struct rd *r, uint16_t *v)
{
	if (rd_left(r) < 2)
		return false;
	*v = (uint16_t)(r->p[0] << 8 | r->p[1]);
	r->p += 2;
	return true;
}

static inline bool rd_u32(struct rd *r, uint32_t *v)
{
	if (rd_left(r) < 4)
		return false;
	*v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
	r->p += 4;
	return true;
}

/* Variable Byte Integer at p[0..len): at most four bytes and in its shortest
 * form, so a value has one encoding only [MQTT-1.5.5-1] (v3.1.1's
 * Remaining Length algorithm, section 2.2.3, only produces that form too).
 * Returns the bytes it took, 0 when more are needed, -1 when malformed: a
 * fifth byte, or a last byte of zero after the first (a non-minimal form
 * such as 80 80 80 00 for 0). */
static inline int wire_varint(const uint8_t *p, size_t len, uint32_t *v)
{
	uint32_t val = 0;
	for (int i = 0; i < 4; i++) {
		if ((size_t)i >= len)
			return 0;
		uint8_t b = p[i];
		val |= (uint32_t)(b & 0x7F) << (7 * i);
		if (!(b & 0x80)) {
			if (i > 0 && b == 0)
				return -1;
			*v = val;
			return i + 1;
		}
	}
	return -1;
}

/* A Variable Byte Integer inside a packet whose bytes are all there:
 * truncated and malformed are both false. */
static inline bool rd_varint(struct rd *r, uint32_t *v)
{
	int n = wire_varint(r->p, rd_left(r), v);
	if (n <= 0)
		return false;
	r->p += n;
	return true;
}

static inline bool rd_bin(struct rd *r, struct mqtt_bin *b)
{
	uint16_t n;
	if (!rd_u16(r, &n) || rd_left(r) < n)
		return false;
	b->p = r->p;
	b->len = n;
	r->p += n;
	return true;
}

static inline bool rd_utf8(struct rd *r, struct mqtt_bin *b)
{
	return rd_bin(r, b) && mqtt_utf8_valid(b->p, b->len);
}

static inline uint32_t varint_size(uint32_t v)
{
	return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

static inline uint8_t *wr_u8(uint8_t *p, uint8_t v) { *p = v; return p + 1; }

static inline uint8_t *wr_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static inline uint8_t *wr_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

static inline uint8_t *wr_varint(uint8_t *p, uint32_t v)
{
	do {
		uint8_t b = v & 0x7F;
		v >>= 7;
		*p++ = v ? (uint8_t)(b | 0x80) : b;
	} while (v);
	return p;
}

static inline uint8_t *wr_bin(uint8_t *p, struct mqtt_bin b)
{
	p = wr_u16(p, (uint16_t)b.len);
	if (b.len)
		memcpy(p, b.p, b.len);
	return p + b.len;
}

/* Property block helpers (props.c). */
int mqtt__props_decode(struct rd *r, uint8_t ptype, struct mqtt_props *pr);
uint32_t mqtt__props_size(const struct mqtt_props *pr);
uint8_t *mqtt__props_write(uint8_t *p, const struct mqtt_props *pr, uint32_t size);

#endif
