/* Sparkplug B payloads read and rewritten at the protobuf wire level
 * (Sparkplug 3.0 chapter 6; protobuf encoding: tag = field << 3 | wire type,
 * varints of at most 10 bytes). No allocation: the broker calls these on
 * every Sparkplug message it routes. */
#include "sparkplug/sparkplug.h"
#include "base/err.h"
#include <limits.h>
#include <string.h>

enum { SPB_WT_VARINT = 0, SPB_WT_I64 = 1, SPB_WT_LEN = 2, SPB_WT_I32 = 5 };

/* Payload and Metric field numbers (sparkplug_b.proto). */
enum {
	SPB_PAYLOAD_TIMESTAMP = 1,
	SPB_PAYLOAD_METRICS = 2,
	SPB_PAYLOAD_SEQ = 3,
	SPB_PAYLOAD_UUID = 4,
	SPB_PAYLOAD_BODY = 5,
	SPB_METRIC_NAME = 1,
	SPB_METRIC_INT_VALUE = 10,
	SPB_METRIC_LONG_VALUE = 11,
	SPB_METRIC_LAST_FIELD = 19,
};

struct spb_cursor {
	const uint8_t *p, *end;
};

/* Reads a varint; bits past the 64th are dropped, as protobuf-c does.
 * Returns false when it is truncated or longer than 10 bytes. */
static bool spb__varint(struct spb_cursor *c, uint64_t *v)
{
	uint64_t r = 0;
	for (unsigned i = 0; i < 10; i++) {
		if (c->p == c->end)
			return false;
		uint8_t b = *c->p++;
		r |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*v = r;
			return true;
		}
	}
	return false;
}

/* One field: its number, wire type, and its value (a varint) or its bytes
 * (LEN, I32, I64). */
struct spb_field {
	uint32_t num;
	unsigned wt;
	uint64_t varint;
	const uint8_t *data;
	size_t len;
};

/* Reads the next field. Groups (wire types 3, 4) and field number 0 are
 * refused, as protobuf-c refuses them. */
static bool spb__field(struct spb_cursor *c, struct spb_field *f)
{
	uint64_t tag;
	if (!spb__varint(c, &tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX >> 3)
		return false;
	f->num = (uint32_t)(tag >> 3);
	f->wt = (unsigned)(tag & 7);
	size_t left = (size_t)(c->end - c->p);
	switch (f->wt) {
	case SPB_WT_VARINT:
		return spb__varint(c, &f->varint);
	case SPB_WT_I64:
	case SPB_WT_I32:
		f->len = f->wt == SPB_WT_I64 ? 8 : 4;
		break;
	case SPB_WT_LEN: {
		uint64_t n;
		if (!spb__varint(c, &n))
			return false;
		left = (size_t)(c->end - c->p);
		if (n > left)
			return false;
		f->len = (size_t)n;
		break;
	}
	default:
		return false;
	}
	if (f->len > left)
		return false;
	f->data = c->p;
	c->p += f->len;
	return true;
}

/* The wire type each known field must have: a known field on another wire
 * type fails protobuf's decoding, so it fails here too. 0xff = unknown field. */
static unsigned spb__payload_wt(uint32_t num)
{
	switch (num) {
	case SPB_PAYLOAD_TIMESTAMP:
	case SPB_PAYLOAD_SEQ:
		return SPB_WT_VARINT;
	case SPB_PAYLOAD_METRICS:
	case SPB_PAYLOAD_UUID:
	case SPB_PAYLOAD_BODY:
		return SPB_WT_LEN;
	default:
		return 0xff;
	}
}

static unsigned spb__metric_wt(uint32_t num)
{
	static const uint8_t wt[SPB_METRIC_LAST_FIELD + 1] = {
		[1] = SPB_WT_LEN,     /* name */
		[2] = SPB_WT_VARINT,  /* alias */
		[3] = SPB_WT_VARINT,  /* timestamp */
		[4] = SPB_WT_VARINT,  /* datatype */
		[5] = SPB_WT_VARINT,  /* is_historical */
		[6] = SPB_WT_VARINT,  /* is_transient */
		[7] = SPB_WT_VARINT,  /* is_null */
		[8] = SPB_WT_LEN,     /* metadata */
		[9] = SPB_WT_LEN,     /* properties */
		[10] = SPB_WT_VARINT, /* int_value */
		[11] = SPB_WT_VARINT, /* long_value */
		[12] = SPB_WT_I32,    /* float_value */
		[13] = SPB_WT_I64,    /* double_value */
		[14] = SPB_WT_VARINT, /* boolean_value */
		[15] = SPB_WT_LEN,    /* string_value */
		[16] = SPB_WT_LEN,    /* bytes_value */
		[17] = SPB_WT_LEN,    /* dataset_value */
		[18] = SPB_WT_LEN,    /* template_value */
		[19] = SPB_WT_LEN,    /* extension_value */
	};
	return num >= 1 && num <= SPB_METRIC_LAST_FIELD ? wt[num] : 0xff;
}

/* Scans one Metric: is it named "bdSeq", and its integer value if it has
 * one (the oneof's last member wins, as in protobuf). */
static bool spb__metric(const uint8_t *p, size_t len, bool *is_bdseq, bool *has_int,
			uint64_t *value)
{
	struct spb_cursor c = { p, p + len };
	struct spb_field f;
	*is_bdseq = *has_int = false;
	while (c.p < c.end) {
		if (!spb__field(&c, &f))
			return false;
		unsigned want = spb__metric_wt(f.num);
		if (want != 0xff && want != f.wt)
			return false;
		if (f.num == SPB_METRIC_NAME)
			*is_bdseq = f.len == 5 && memcmp(f.data, "bdSeq", 5) == 0;
		else if (f.num == SPB_METRIC_INT_VALUE || f.num == SPB_METRIC_LONG_VALUE) {
			*has_int = true;
			*value = f.num == SPB_METRIC_INT_VALUE ? (uint32_t)f.varint : f.varint;
		} else if (f.num >= 12 && f.num <= SPB_METRIC_LAST_FIELD)
			*has_int = false;
	}
	return true;
}

int spb_payload_scan(const uint8_t *p, size_t len, struct spb_payload_info *out)
{
	memset(out, 0, sizeof *out);
	if (len == 0)
		return 0; /* an empty message: every field absent */
	struct spb_cursor c = { p, p + len };
	struct spb_field f;
	while (c.p < c.end) {
		if (!spb__field(&c, &f))
			return -FM_EINVAL;
		unsigned want = spb__payload_wt(f.num);
		if (want != 0xff && want != f.wt)
			return -FM_EINVAL;
		if (f.num == SPB_PAYLOAD_TIMESTAMP) {
			out->has_timestamp = true;
			out->timestamp = f.varint;
		} else if (f.num == SPB_PAYLOAD_SEQ) {
			out->has_seq = true;
			out->seq = f.varint;
		} else if (f.num == SPB_PAYLOAD_METRICS) {
			bool is_bdseq, has_int;
			uint64_t v = 0;
			if (!spb__metric(f.data, f.len, &is_bdseq, &has_int, &v))
				return -FM_EINVAL;
			if (out->metrics == UINT32_MAX)
				return -FM_EINVAL;
			out->metrics++;
			if (is_bdseq && has_int && !out->has_bdseq) {
				out->has_bdseq = true;
				out->bdseq = v;
			}
		}
	}
	return 0;
}

static size_t spb__put_varint(uint8_t *out, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

long spb_payload_set_timestamp(const uint8_t *p, size_t len, uint64_t ts, uint8_t *out,
			       size_t cap)
{
	struct spb_payload_info info;
	if (spb_payload_scan(p, len, &info) != 0 || len > (size_t)LONG_MAX - 11)
		return -FM_EINVAL;
	uint8_t head[11];
	size_t n = 0;
	head[n++] = SPB_PAYLOAD_TIMESTAMP << 3 | SPB_WT_VARINT;
	n += spb__put_varint(head + n, ts);
	/* the timestamp fields of p are dropped, everything else is copied */
	size_t need = n + len;
	if (len == 0) {
		if (need > cap)
			return -FM_ELIMIT;
		memcpy(out, head, n);
		return (long)n;
	}
	struct spb_cursor c = { p, p + len };
	struct spb_field f;
	const uint8_t *start = c.p;
	while (c.p < c.end) {
		start = c.p;
		spb__field(&c, &f); /* cannot fail: the scan above passed */
		if (f.num == SPB_PAYLOAD_TIMESTAMP)
			need -= (size_t)(c.p - start);
	}
	if (need > cap)
		return -FM_ELIMIT;
	memcpy(out, head, n);
	size_t o = n;
	c.p = p;
	while (c.p < c.end) {
		start = c.p;
		spb__field(&c, &f);
		if (f.num == SPB_PAYLOAD_TIMESTAMP)
			continue;
		memcpy(out + o, start, (size_t)(c.p - start));
		o += (size_t)(c.p - start);
	}
	return (long)o;
}
