/* libFuzzer target for collect/tag.c's value functions. The first bytes
 * choose a tag (area, type, order, bit, string length, scale and offset from
 * fixed sets), the next 8 bytes are its registers; the rest is a write
 * request's payload. Decoding and the JSON payload must not crash and must
 * stay valid JSON text (no raw control characters, closed quotes); a write
 * that tag_encode accepts must read back (tag_decode) as the value asked,
 * within half a raw step for integers and float32's precision; nothing
 * outside tag_min..tag_max or the raw type's range may be accepted; with
 * tag_aggregate a reading is published alone only as tag_publish_reading
 * says. Aborts otherwise. */
#include "collect/tag.h"
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static const double scales[] = { 1, 0.1, -2.5, 1000, 1e-3 };
static const double offsets[] = { 0, -40, 273.15, 1e6 };

/* The text between the outer quotes and the rest must hold no raw control
 * character, and quotes must pair up outside escapes. */
static void check_json(const struct buf *b)
{
	bool in_str = false;
	CHECK(b->len >= 2 && b->p[0] == '{' && b->p[b->len - 1] == '}');
	for (uint32_t i = 0; i < b->len; i++) {
		uint8_t c = b->p[i];
		CHECK(c >= 0x20 && c < 0x7F);
		if (in_str && c == '\\') {
			i++;
			continue;
		}
		if (c == '"')
			in_str = !in_str;
	}
	CHECK(!in_str);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 14)
		return 0;
	struct modbus_tag_conf t = { .write_min = NAN, .write_max = NAN };
	t.type = data[0] % (MODBUS_STRING + 1);
	t.area = t.type == MODBUS_BOOL ? (data[1] & 1 ? MODBUS_COIL : MODBUS_DISCRETE_INPUT) :
		 (data[1] & 1 ? MODBUS_HOLDING_REGISTER : MODBUS_INPUT_REGISTER);
	t.order = (data[1] >> 1) & 3;
	t.bit = (data[1] >> 3) & 15;
	t.count = (uint8_t)(1 + data[2] % 4);
	bool exact = t.type == MODBUS_STRING || (data[3] & 0x80);
	t.scale = exact ? 1 : scales[data[3] % 5];
	t.offset = exact ? 0 : offsets[(data[3] >> 3) % 4];
	if (data[4] & 1)
		t.write_min = (double)(int8_t)data[5] * 10;
	if (data[4] & 2)
		t.write_max = (double)(int8_t)data[5] * 10 + 500;
	snprintf(t.name, sizeof t.name, "tag");
	if (data[4] & 4)
		snprintf(t.unit, sizeof t.unit, "%c\"\\", data[4]);
	uint16_t regs[4];
	for (int i = 0; i < 4; i++)
		regs[i] = (uint16_t)(data[6 + 2 * i] << 8 | data[7 + 2 * i]);
	const uint8_t agg_bits = data[2]; /* above count's: aggregation, report by exception, the last published */
	data += 14;
	size -= 14;

	struct tag_value v;
	tag_decode(&t, regs, regs[0] & 1, &v);
	CHECK(v.len <= TAG_MAX_STRING && v.s[v.len] == 0);
	struct buf b = { 0 };
	CHECK(tag_payload(&b, &t, &v, 1700000000000ull, TAG_GOOD, NULL) == 0);
	check_json(&b);
	b.len = 0;
	CHECK(tag_payload(&b, &t, NULL, 1, TAG_BAD, "bad \"one\"\n") == 0);
	check_json(&b);
	buf_free(&b);

	/* Aggregated or not, a reading goes out only where tag_should_publish
	 * would send it; aggregated, a number only under report by exception,
	 * one without a number not with tag_aggregate_non_numeric drop. */
	t.agg.window_s = (agg_bits >> 2) & 1;
	t.agg.non_numeric = (agg_bits >> 3) & 1 ? AGG_NN_DROP : AGG_NN_PASS;
	t.report_by_exception = (agg_bits >> 4) & 1;
	struct tag_last last = { .any = (agg_bits >> 5) & 1, .quality = (agg_bits >> 6) & 1, .hash = regs[1] };
	double eng = tag_engineering(&t, &v);
	for (int q = TAG_GOOD; q <= TAG_BAD; q++) {
		double value = q == TAG_GOOD ? eng : NAN;
		bool should = tag_should_publish(&t, &last, q, value, regs[0], 1000);
		bool pub = tag_publish_reading(&t, &last, q, value, regs[0], 1000);
		bool number = q == TAG_GOOD && isfinite(value);
		if (!t.agg.window_s || (number && t.report_by_exception) ||
		    (!number && t.agg.non_numeric == AGG_NN_PASS))
			CHECK(pub == should);
		else
			CHECK(!pub);
	}
	t.agg.window_s = 0;
	t.report_by_exception = false;

	double value;
	const char *why;
	if (tag_parse_write(data, size, &value, &why)) {
		CHECK(why != NULL);
		return 0;
	}
	CHECK(isfinite(value));
	uint16_t out[4];
	unsigned n;
	uint8_t bit;
	int rc = tag_encode(&t, value, out, &n, &bit, &why);
	if (rc) {
		CHECK(why != NULL && n == 0);
		return 0;
	}
	CHECK(isnan(t.write_min) || value >= t.write_min);
	CHECK(isnan(t.write_max) || value <= t.write_max);
	if (t.type == MODBUS_BOOL) {
		CHECK((value == 1 && bit == 1) || (value == 0 && bit == 0));
		return 0;
	}
	CHECK(t.type != MODBUS_BIT && t.type != MODBUS_STRING && n == tag_width(&t));
	tag_decode(&t, out, 0, &v);
	double back = tag_engineering(&t, &v);
	double step = fabs(t.scale);
	if (t.type == MODBUS_FLOAT32)
		CHECK(fabs(back - value) <= fabs(value) * 1e-6 + fabs(t.offset) * 1e-6 + step * 1e-6);
	else if (t.type == MODBUS_FLOAT64)
		CHECK(fabs(back - value) <= fabs(value) * 1e-12 + fabs(t.offset) * 1e-12 + 1e-300);
	else /* rounded to the nearest raw step; doubles hold 53 bits of it */
		CHECK(fabs(back - value) <= step / 2 + fabs(value) * 1e-15 + fabs(t.offset) * 1e-15 + 1e-9);
	return 0;
}
