/* Tag values: decoding, encoding, JSON, report by exception, planning.
 * Pure functions of their arguments (see tag.h). */
#include "tag.h"
#include "../base/err.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned tag_width(const struct modbus_tag_conf *t)
{
	switch (t->type) {
	case MODBUS_INT32: case MODBUS_UINT32: case MODBUS_FLOAT32: return 2;
	case MODBUS_INT64: case MODBUS_UINT64: case MODBUS_FLOAT64: return 4;
	case MODBUS_STRING: return t->count;
	default: return 1;
	}
}

bool tag_area_bits(uint8_t area)
{
	return area == MODBUS_COIL || area == MODBUS_DISCRETE_INPUT;
}

static bool order_swaps_bytes(uint8_t o) { return o == MODBUS_BADC || o == MODBUS_DCBA; }
static bool order_swaps_words(uint8_t o) { return o == MODBUS_CDAB || o == MODBUS_DCBA; }
static uint16_t bswap16(uint16_t v) { return (uint16_t)(v << 8 | v >> 8); }

/* The value's registers in big-endian order (abcd), from n wire registers. */
static uint64_t assemble(const uint16_t *r, unsigned n, uint8_t order)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++) {
		uint16_t w = r[order_swaps_words(order) ? n - 1 - i : i];
		if (order_swaps_bytes(order))
			w = bswap16(w);
		v = v << 16 | w;
	}
	return v;
}

/* The inverse of assemble: n wire registers of value v. */
static void disassemble(uint64_t v, unsigned n, uint8_t order, uint16_t *r)
{
	for (unsigned i = 0; i < n; i++) {
		uint16_t w = (uint16_t)(v >> (16 * (n - 1 - i)));
		if (order_swaps_bytes(order))
			w = bswap16(w);
		r[order_swaps_words(order) ? n - 1 - i : i] = w;
	}
}

void tag_decode(const struct modbus_tag_conf *t, const uint16_t *r, uint8_t bit, struct tag_value *v)
{
	v->len = 0;
	v->s[0] = 0;
	uint64_t raw = 0;
	if (t->type != MODBUS_BOOL && t->type != MODBUS_STRING)
		raw = assemble(r, tag_width(t), t->order);
	switch (t->type) {
	case MODBUS_BOOL:
		v->kind = TAG_V_BOOL;
		v->b = bit != 0;
		break;
	case MODBUS_BIT:
		v->kind = TAG_V_BOOL;
		v->b = (r[0] >> t->bit) & 1; /* bit 0 is the least significant, whatever the order */
		break;
	case MODBUS_INT16: v->kind = TAG_V_INT; v->i = (int16_t)(uint16_t)raw; break;
	case MODBUS_UINT16: v->kind = TAG_V_UINT; v->u = (uint16_t)raw; break;
	case MODBUS_INT32: v->kind = TAG_V_INT; v->i = (int32_t)(uint32_t)raw; break;
	case MODBUS_UINT32: v->kind = TAG_V_UINT; v->u = (uint32_t)raw; break;
	case MODBUS_INT64: v->kind = TAG_V_INT; v->i = (int64_t)raw; break;
	case MODBUS_UINT64: v->kind = TAG_V_UINT; v->u = raw; break;
	case MODBUS_FLOAT32: {
		uint32_t u = (uint32_t)raw;
		float f;
		memcpy(&f, &u, sizeof f);
		v->kind = TAG_V_FLOAT;
		v->f = f;
		break;
	}
	case MODBUS_FLOAT64: {
		double d;
		memcpy(&d, &raw, sizeof d);
		v->kind = TAG_V_FLOAT;
		v->f = d;
		break;
	}
	case MODBUS_STRING:
	default:
		v->kind = TAG_V_STRING;
		for (unsigned i = 0; i < t->count && i < TAG_MAX_STRING / 2; i++) {
			uint16_t w = order_swaps_bytes(t->order) ? bswap16(r[i]) : r[i];
			v->s[v->len++] = (char)(w >> 8);
			v->s[v->len++] = (char)(w & 0xFF);
		}
		/* Devices pad with NULs or spaces. */
		while (v->len && (v->s[v->len - 1] == 0 || v->s[v->len - 1] == ' '))
			v->len--;
		v->s[v->len] = 0;
		break;
	}
}

static bool tag_exact(const struct modbus_tag_conf *t)
{
	return t->scale == 1 && t->offset == 0;
}

double tag_engineering(const struct modbus_tag_conf *t, const struct tag_value *v)
{
	double raw;
	switch (v->kind) {
	case TAG_V_BOOL: return v->b ? 1 : 0;
	case TAG_V_INT: raw = (double)v->i; break;
	case TAG_V_UINT: raw = (double)v->u; break;
	case TAG_V_FLOAT: raw = v->f; break;
	default: return NAN;
	}
	return raw * t->scale + t->offset;
}

uint64_t tag_value_hash(const struct modbus_tag_conf *t, const struct tag_value *v)
{
	/* FNV-1a over what identifies the published value. */
	uint64_t h = 1469598103934665603ull;
	uint8_t bytes[8];
	const uint8_t *p = bytes;
	size_t n = 8;
	switch (v->kind) {
	case TAG_V_STRING: p = (const uint8_t *)v->s; n = v->len; break;
	case TAG_V_BOOL: memset(bytes, 0, 8); bytes[0] = v->b; break;
	case TAG_V_INT: memcpy(bytes, &v->i, 8); break;
	case TAG_V_UINT: memcpy(bytes, &v->u, 8); break;
	default: {
		double d = tag_engineering(t, v);
		memcpy(bytes, &d, 8);
		break;
	}
	}
	if (v->kind != TAG_V_STRING && v->kind != TAG_V_BOOL && !tag_exact(t)) {
		double d = tag_engineering(t, v);
		memcpy(bytes, &d, 8);
	}
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h ^ v->kind;
}

static int put(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

/* The shortest text that reads back as d (as a float when f32). */
static void fmt_double(char *out, size_t size, double d, bool f32)
{
	for (int prec = f32 ? 6 : 15; prec <= 17; prec++) {
		snprintf(out, size, "%.*g", prec, d);
		double back = strtod(out, NULL);
		if (f32 ? (float)back == (float)d : back == d)
			return;
	}
}

static int put_json_string(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (buf_reserve(b, n * 6 + 2))
		return -FM_ENOMEM;
	uint8_t *o = b->p + b->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];
		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = c;
		} else if (c < 0x20 || c == 0x7F) {
			memcpy(o, "\\u00", 4);
			o[4] = hex[c >> 4];
			o[5] = hex[c & 15];
			o += 6;
		} else if (c >= 0x80) {
			*o++ = '?'; /* a device's 8-bit text is not known to be UTF-8 */
		} else {
			*o++ = c;
		}
	}
	*o++ = '"';
	b->len = (uint32_t)(o - b->p);
	return 0;
}

int tag_json_value(struct buf *out, const struct modbus_tag_conf *t, const struct tag_value *v)
{
	char num[48];
	if (!v)
		return put(out, "null");
	switch (v->kind) {
	case TAG_V_STRING: return put_json_string(out, v->s, v->len);
	case TAG_V_BOOL:
		if (tag_exact(t))
			return put(out, v->b ? "true" : "false");
		break;
	case TAG_V_INT:
		if (tag_exact(t)) {
			snprintf(num, sizeof num, "%" PRId64, v->i);
			return put(out, num);
		}
		break;
	case TAG_V_UINT:
		if (tag_exact(t)) {
			snprintf(num, sizeof num, "%" PRIu64, v->u);
			return put(out, num);
		}
		break;
	default:
		break;
	}
	double d = tag_engineering(t, v);
	if (!isfinite(d))
		return put(out, "null");
	fmt_double(num, sizeof num, d, t->type == MODBUS_FLOAT32 && tag_exact(t));
	return put(out, num);
}

int tag_payload(struct buf *out, const struct modbus_tag_conf *t, const struct tag_value *v, uint64_t ts_ms,
		enum tag_quality q, const char *err)
{
	char head[64];
	int rc = put(out, "{\"value\":");
	if (!rc)
		rc = tag_json_value(out, t, q == TAG_GOOD ? v : NULL);
	snprintf(head, sizeof head, ",\"ts\":%" PRIu64 ",\"quality\":\"%s\"", ts_ms, q == TAG_GOOD ? "good" : "bad");
	if (!rc)
		rc = put(out, head);
	if (!rc && t->unit[0]) {
		rc = put(out, ",\"unit\":");
		if (!rc)
			rc = put_json_string(out, t->unit, strlen(t->unit));
	}
	if (!rc && err) {
		rc = put(out, ",\"error\":");
		if (!rc)
			rc = put_json_string(out, err, strlen(err));
	}
	if (!rc)
		rc = put(out, "}");
	return rc ? -FM_ENOMEM : 0;
}

bool tag_should_publish(const struct modbus_tag_conf *t, const struct tag_last *last, enum tag_quality q,
			double value, uint64_t hash, uint64_t now_ms)
{
	if (!t->report_by_exception && !t->has_deadband)
		return true;
	if (!last->any || last->quality != q)
		return true;
	if (t->max_silence && now_ms - last->at_ms >= (uint64_t)t->max_silence * 1000)
		return true;
	if (q != TAG_GOOD)
		return false; /* still bad: said once */
	if (t->has_deadband && isfinite(value) && isfinite(last->value))
		return fabs(value - last->value) >= t->deadband && (t->deadband > 0 || hash != last->hash);
	return hash != last->hash;
}

bool tag_publish_reading(const struct modbus_tag_conf *t, const struct tag_last *last, enum tag_quality q,
			 double value, uint64_t hash, uint64_t now_ms)
{
	if (t->agg.window_s) {
		bool number = q == TAG_GOOD && isfinite(value);
		if (number && !t->report_by_exception && !t->has_deadband)
			return false; /* its window's summary stands for it */
		if (!number && t->agg.non_numeric == AGG_NN_DROP)
			return false;
	}
	return tag_should_publish(t, last, q, value, hash, now_ms);
}

/* Skips JSON white space. */
static const uint8_t *skip_ws(const uint8_t *p, const uint8_t *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* A JSON number, true or false at p. Returns the end, or NULL. */
static const uint8_t *scalar(const uint8_t *p, const uint8_t *end, double *value)
{
	static const char num_chars[] = "0123456789+-.eE";
	if (end - p >= 4 && !memcmp(p, "true", 4)) {
		*value = 1;
		return p + 4;
	}
	if (end - p >= 5 && !memcmp(p, "false", 5)) {
		*value = 0;
		return p + 5;
	}
	char tmp[64];
	size_t n = 0;
	while (p + n < end && n < sizeof tmp - 1 && p[n] && strchr(num_chars, p[n]))
		n++;
	if (!n || n == sizeof tmp - 1 || !(p[0] == '-' || (p[0] >= '0' && p[0] <= '9')))
		return NULL;
	memcpy(tmp, p, n);
	tmp[n] = 0;
	char *e;
	double d = strtod(tmp, &e);
	if (*e || !isfinite(d))
		return NULL;
	*value = d;
	return p + n;
}

int tag_parse_write(const uint8_t *p, size_t len, double *value, const char **why)
{
	const uint8_t *end = p + len, *q = skip_ws(p, end);
	*why = "the payload must be a number, true, false or {\"value\": ...}";
	if (len > 4096)
		return -1;
	if (q < end && *q == '{') {
		/* One member, "value"; nothing else is accepted. */
		q = skip_ws(q + 1, end);
		if (end - q < 7 || memcmp(q, "\"value\"", 7))
			return -1;
		q = skip_ws(q + 7, end);
		if (q == end || *q != ':')
			return -1;
		q = scalar(skip_ws(q + 1, end), end, value);
		if (!q)
			return -1;
		q = skip_ws(q, end);
		if (q == end || *q != '}')
			return -1;
		q++;
	} else {
		q = scalar(q, end, value);
		if (!q)
			return -1;
	}
	if (skip_ws(q, end) != end)
		return -1;
	*why = NULL;
	return 0;
}

int tag_encode(const struct modbus_tag_conf *t, double eng, uint16_t regs[4], unsigned *n, uint8_t *bit,
	       const char **why)
{
	*n = 0;
	*bit = 0;
	if (!isfinite(eng)) {
		*why = "not a finite number";
		return -1;
	}
	if ((!isnan(t->write_min) && eng < t->write_min) || (!isnan(t->write_max) && eng > t->write_max)) {
		*why = "outside tag_min..tag_max";
		return -1;
	}
	if (t->type == MODBUS_BOOL) {
		if (eng != 0 && eng != 1) {
			*why = "a coil takes true, false, 1 or 0";
			return -1;
		}
		*bit = eng == 1;
		return 0;
	}
	double raw = (eng - t->offset) / t->scale;
	unsigned w = tag_width(t);
	uint64_t bits = 0;
	static const struct { double lo, hi; } range[] = {
		[MODBUS_INT16] = { -32768.0, 32767.0 },
		[MODBUS_UINT16] = { 0, 65535.0 },
		[MODBUS_INT32] = { -2147483648.0, 2147483647.0 },
		[MODBUS_UINT32] = { 0, 4294967295.0 },
		/* The doubles nearest inside the 64-bit ranges. */
		[MODBUS_INT64] = { -9223372036854775808.0, 9223372036854774784.0 },
		[MODBUS_UINT64] = { 0, 18446744073709549568.0 },
	};
	switch (t->type) {
	case MODBUS_FLOAT32: {
		if (fabs(raw) > 3.4028234663852886e38) {
			*why = "outside the range of float32";
			return -1;
		}
		float f = (float)raw;
		uint32_t u;
		memcpy(&u, &f, sizeof u);
		bits = u;
		break;
	}
	case MODBUS_FLOAT64:
		memcpy(&bits, &raw, sizeof bits);
		break;
	case MODBUS_INT16: case MODBUS_UINT16: case MODBUS_INT32: case MODBUS_UINT32:
	case MODBUS_INT64: case MODBUS_UINT64: {
		double r = nearbyint(raw);
		if (!(r >= range[t->type].lo && r <= range[t->type].hi)) {
			*why = "outside the range of the register type";
			return -1;
		}
		if (t->type == MODBUS_UINT64)
			bits = (uint64_t)r;
		else
			bits = (uint64_t)(int64_t)r;
		if (w < 4)
			bits &= (1ull << (16 * w)) - 1;
		break;
	}
	default:
		*why = "this tag type cannot be written";
		return -1;
	}
	disassemble(bits, w, t->order, regs);
	*n = w;
	return 0;
}

/* ---- planning ---- */

/* Insertion sort by (area, address, index): stable without a context
 * argument, which C11's qsort lacks; run once per group at start. */
static void sort_idx(const struct modbus_tag_conf *tags, uint32_t *idx, uint32_t n)
{
	for (uint32_t i = 1; i < n; i++) {
		uint32_t v = idx[i], k = i;
		const struct modbus_tag_conf *t = &tags[v];
		while (k > 0) {
			const struct modbus_tag_conf *p = &tags[idx[k - 1]];
			if (p->area < t->area || (p->area == t->area && (p->address < t->address ||
									 (p->address == t->address && idx[k - 1] < v))))
				break;
			idx[k] = idx[k - 1];
			k--;
		}
		idx[k] = v;
	}
}

uint32_t tag_plan(const struct modbus_tag_conf *tags, uint32_t *idx, uint32_t n, uint32_t max_gap,
		  struct tag_request *req)
{
	sort_idx(tags, idx, n);
	uint32_t nreq = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct modbus_tag_conf *t = &tags[idx[i]];
		bool bits = tag_area_bits(t->area);
		uint32_t start = t->address, end = start + tag_width(t); /* [start, end) */
		uint32_t limit = bits ? TAG_MAX_READ_BITS : TAG_MAX_READ_REGISTERS;
		uint32_t gap = bits ? max_gap * 16 : max_gap;
		if (nreq) {
			struct tag_request *r = &req[nreq - 1];
			uint32_t r_end = (uint32_t)r->start + r->count;
			uint32_t new_end = end > r_end ? end : r_end;
			if (r->area == t->area && start <= r_end + gap && new_end - r->start <= limit) {
				r->count = (uint16_t)(new_end - r->start);
				r->n++;
				continue;
			}
		}
		req[nreq++] = (struct tag_request){ .area = t->area, .start = (uint16_t)start,
						    .count = (uint16_t)(end - start), .first = i, .n = 1 };
	}
	return nreq;
}
