/* The record batch codec (see record.h). Each type's fields are one table
 * row, so the encoder and the decoder cannot disagree on their order. */
#include "record.h"
#include "le.h"
#include "../base/err.h"
#include <stddef.h>
#include <string.h>

enum field {
	F_END,
	F_SID, F_SEQ, F_ID, F_EXPIRES_AT, F_WILL_AT, F_EXPIRY_AT, F_ORIGIN, /* u64 */
	F_QUEUED_S, F_EXPIRY_INTERVAL, F_WILL_DELAY, F_SUB_ID,               /* u32 */
	F_PID,                                                               /* u16 */
	F_QOS, F_RETAIN, F_FLAGS, F_STATE, F_VERSION, F_HAS_USER,            /* u8 */
	F_TEXT, F_USER, F_TOPIC, F_PROPS, F_PAYLOAD, F_SUB_IDS,              /* bytes */
};

#define MAX_FIELDS 11

static const uint8_t layout[REC__END][MAX_FIELDS] = {
	[REC_BODY] = { F_ID, F_QOS, F_RETAIN, F_EXPIRY_AT, F_ORIGIN, F_TOPIC, F_PROPS, F_PAYLOAD },
	[REC_QUEUE_ADD] = { F_SID, F_SEQ, F_ID, F_QOS, F_FLAGS, F_STATE, F_QUEUED_S, F_SUB_IDS },
	[REC_QUEUE_DEL] = { F_SID, F_SEQ },
	[REC_QUEUE_STATE] = { F_SID, F_SEQ, F_STATE },
	[REC_RX2_ADD] = { F_SID, F_PID },
	[REC_RX2_DEL] = { F_SID, F_PID },
	[REC_SESSION_PUT] = { F_SID, F_TEXT, F_EXPIRY_INTERVAL, F_EXPIRES_AT, F_VERSION, F_ID, F_WILL_DELAY,
			      F_WILL_AT, F_HAS_USER, F_USER },
	[REC_SESSION_DEL] = { F_SID },
	[REC_SUB_PUT] = { F_SID, F_TEXT, F_FLAGS, F_SUB_ID },
	[REC_SUB_DEL] = { F_SID, F_TEXT },
	[REC_RETAIN_PUT] = { F_SEQ, F_ID, F_TEXT },
	[REC_RETAIN_DEL] = { F_SEQ, F_TEXT },
	[REC_SPOOL_ADD] = { F_TEXT, F_SEQ, F_ID, F_QUEUED_S },
	[REC_SPOOL_DEL] = { F_TEXT, F_SEQ },
	[REC_BODY_DROP] = { F_ID },
};

/* Each field's width on the wire (0: bytes, a u32 length and the data) and
 * its place in struct record (integers of that same width there). */
#define INT(f, w, member) [f] = { w, offsetof(struct record, member) }
#define BYTES(f, member) [f] = { 0, offsetof(struct record, member) }
static const struct {
	uint8_t width;
	uint16_t offset;
} fields[] = {
	INT(F_SID, 8, sid), INT(F_SEQ, 8, seq), INT(F_ID, 8, id), INT(F_EXPIRES_AT, 8, expires_at),
	INT(F_WILL_AT, 8, will_at), INT(F_EXPIRY_AT, 8, expiry_at), INT(F_ORIGIN, 8, origin),
	INT(F_QUEUED_S, 4, queued_s), INT(F_EXPIRY_INTERVAL, 4, expiry_interval), INT(F_WILL_DELAY, 4, will_delay),
	INT(F_SUB_ID, 4, sub_id), INT(F_PID, 2, pid), INT(F_QOS, 1, qos), INT(F_RETAIN, 1, retain),
	INT(F_FLAGS, 1, flags), INT(F_STATE, 1, state), INT(F_VERSION, 1, version), INT(F_HAS_USER, 1, has_user),
	BYTES(F_TEXT, text), BYTES(F_USER, user), BYTES(F_TOPIC, topic), BYTES(F_PROPS, props),
	BYTES(F_PAYLOAD, payload), BYTES(F_SUB_IDS, sub_ids),
};
_Static_assert(sizeof(bool) == 1, "has_user is one byte");

static uint64_t get_int(const struct record *r, enum field f)
{
	const uint8_t *at = (const uint8_t *)r + fields[f].offset;
	switch (fields[f].width) {
	case 8: { uint64_t v; memcpy(&v, at, 8); return v; }
	case 4: { uint32_t v; memcpy(&v, at, 4); return v; }
	case 2: { uint16_t v; memcpy(&v, at, 2); return v; }
	default: return *at;
	}
}

static void set_int(struct record *r, enum field f, uint64_t v)
{
	uint8_t *at = (uint8_t *)r + fields[f].offset;
	switch (fields[f].width) {
	case 8: memcpy(at, &v, 8); break;
	case 4: { uint32_t x = (uint32_t)v; memcpy(at, &x, 4); break; }
	case 2: { uint16_t x = (uint16_t)v; memcpy(at, &x, 2); break; }
	default: *at = (uint8_t)(f == F_HAS_USER ? v != 0 : v); break;
	}
}

static const struct rec_bytes *bytes_in(const struct record *r, enum field f)
{
	return (const struct rec_bytes *)(const void *)((const uint8_t *)r + fields[f].offset);
}

int rec_batch_start(struct buf *b)
{
	b->len = 0;
	if (buf_reserve(b, REC_BATCH_HEADER))
		return -FM_ENOMEM;
	static const uint8_t header[REC_BATCH_HEADER] = { 'F', 'M', 'R', 'B', REC_BATCH_VERSION };
	memcpy(b->p, header, sizeof header);
	b->len = REC_BATCH_HEADER;
	return 0;
}

uint32_t rec_batch_count(const struct buf *b)
{
	return b->len >= REC_BATCH_HEADER ? (uint32_t)get_le(b->p + 8, 4) : 0;
}

int rec_append(struct buf *b, const struct record *r)
{
	if (r->type == 0 || r->type >= REC__END || b->len < REC_BATCH_HEADER)
		return -FM_EINVAL;
	uint64_t size = 0;
	for (const uint8_t *f = layout[r->type]; *f; f++)
		size += fields[*f].width ? fields[*f].width : 4u + (uint64_t)bytes_in(r, *f)->len;
	if (size > UINT32_MAX - 5u - b->len)
		return -FM_EINVAL;
	if (buf_reserve(b, 5 + (size_t)size))
		return -FM_ENOMEM;
	uint8_t *p = b->p + b->len;
	*p++ = r->type;
	put_le(p, size, 4);
	p += 4;
	for (const uint8_t *f = layout[r->type]; *f; f++) {
		int w = fields[*f].width;
		if (w) {
			put_le(p, get_int(r, *f), w);
			p += w;
			continue;
		}
		const struct rec_bytes *v = bytes_in(r, *f);
		put_le(p, v->len, 4);
		p += 4;
		if (v->len)
			memcpy(p, v->p, v->len);
		p += v->len;
	}
	b->len = (uint32_t)(p - b->p);
	put_le(b->p + 8, rec_batch_count(b) + 1, 4);
	return 0;
}

int rec_reader_init(struct rec_reader *rd, const uint8_t *p, size_t len)
{
	if (len < REC_BATCH_HEADER || memcmp(p, "FMRB", 4) || p[4] != REC_BATCH_VERSION || p[5] || p[6] || p[7])
		return -FM_EPROTO;
	rd->p = p + REC_BATCH_HEADER;
	rd->end = p + len;
	rd->left = (uint32_t)get_le(p + 8, 4);
	if (rd->left > (len - REC_BATCH_HEADER) / 5)
		return -FM_EPROTO; /* a record takes 5 bytes at least */
	return 0;
}

int rec_next(struct rec_reader *rd, struct record *r)
{
	if (!rd->left)
		return rd->p == rd->end ? 0 : -FM_EPROTO; /* nothing may follow the last record */
	if (rd->end - rd->p < 5)
		return -FM_EPROTO;
	memset(r, 0, sizeof *r);
	r->type = rd->p[0];
	uint64_t size = get_le(rd->p + 1, 4);
	const uint8_t *p = rd->p + 5, *end = p + size;
	if (r->type == 0 || r->type >= REC__END || size > (uint64_t)(rd->end - p))
		return -FM_EPROTO;
	for (const uint8_t *f = layout[r->type]; *f; f++) {
		int w = fields[*f].width;
		if (w) {
			if (end - p < w || (*f == F_HAS_USER && *p > 1))
				return -FM_EPROTO; /* one form for each value */
			set_int(r, *f, get_le(p, w));
			p += w;
			continue;
		}
		if (end - p < 4)
			return -FM_EPROTO;
		uint64_t n = get_le(p, 4);
		p += 4;
		if (n > (uint64_t)(end - p))
			return -FM_EPROTO;
		struct rec_bytes v = { n ? p : NULL, (uint32_t)n };
		memcpy((uint8_t *)r + fields[*f].offset, &v, sizeof v);
		p += n;
	}
	if (p != end)
		return -FM_EPROTO; /* a record is exactly its fields */
	rd->p = end;
	rd->left--;
	return 1;
}

int rec_peek(struct rec_reader *rd, uint8_t *type, uint64_t *sid, uint64_t *seq)
{
	if (!rd->left || rd->end - rd->p < 5)
		return 0;
	uint64_t size = get_le(rd->p + 1, 4);
	const uint8_t *p = rd->p + 5;
	if (size > (uint64_t)(rd->end - p))
		return 0;
	*type = rd->p[0];
	*sid = *seq = 0;
	if (*type < REC__END && fields[layout[*type][0]].width == 8 && size >= 8) {
		*sid = get_le(p, 8);
		if (fields[layout[*type][1]].width == 8 && size >= 16)
			*seq = get_le(p + 8, 8);
	}
	rd->p = p + size;
	rd->left--;
	return 1;
}
