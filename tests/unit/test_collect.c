/* Unit tests of collect/'s pure part (tag.c) and of the modbus_device
 * configuration: decoding of every type and byte/word order, scale and
 * offset, JSON payloads, report by exception, write parsing and encoding
 * with their range checks, and request planning. */
#include "check.h"
#include "collect/tag.h"
#include "config/config.h"
#include <math.h>
#include <stdint.h>

static struct modbus_tag_conf tag(uint8_t area, uint8_t type, uint8_t order)
{
	struct modbus_tag_conf t = { .scale = 1, .write_min = NAN, .write_max = NAN, .area = area, .type = type,
				     .order = order };
	snprintf(t.name, sizeof t.name, "t");
	return t;
}

/* The wire registers of big-endian bytes be[0..2n) in `order`. */
static void wire(const uint8_t *be, unsigned n, uint8_t order, uint16_t *r)
{
	for (unsigned i = 0; i < n; i++) {
		uint16_t w = (uint16_t)(be[2 * i] << 8 | be[2 * i + 1]);
		if (order == MODBUS_BADC || order == MODBUS_DCBA)
			w = (uint16_t)(w << 8 | w >> 8);
		r[(order == MODBUS_CDAB || order == MODBUS_DCBA) ? n - 1 - i : i] = w;
	}
}

static void test_decode_orders(void)
{
	for (uint8_t o = MODBUS_ABCD; o <= MODBUS_DCBA; o++) {
		uint16_t r[4];
		struct tag_value v;
		struct modbus_tag_conf t = tag(MODBUS_HOLDING_REGISTER, MODBUS_INT32, o);
		static const uint8_t i32[] = { 0xF8, 0xA4, 0x32, 0xEB }; /* -123456789 */
		wire(i32, 2, o, r);
		tag_decode(&t, r, 0, &v);
		ASSERT_EQ(v.kind, TAG_V_INT);
		ASSERT_EQ(v.i, -123456789);
		t.type = MODBUS_FLOAT32;
		static const uint8_t f32[] = { 0x41, 0xAC, 0x00, 0x00 }; /* 21.5 */
		wire(f32, 2, o, r);
		tag_decode(&t, r, 0, &v);
		ASSERT_TRUE(v.kind == TAG_V_FLOAT && v.f == 21.5);
		t.type = MODBUS_UINT64;
		static const uint8_t u64[] = { 0xAB, 0x54, 0xA9, 0x8C, 0xEB, 0x1F, 0x0A, 0xD2 };
		wire(u64, 4, o, r);
		tag_decode(&t, r, 0, &v);
		ASSERT_TRUE(v.kind == TAG_V_UINT && v.u == 12345678901234567890ull);
		t.type = MODBUS_FLOAT64;
		double d = -1234.5678901234;
		uint64_t bits;
		uint8_t be[8];
		memcpy(&bits, &d, 8);
		for (int i = 0; i < 8; i++)
			be[i] = (uint8_t)(bits >> (56 - 8 * i));
		wire(be, 4, o, r);
		tag_decode(&t, r, 0, &v);
		ASSERT_TRUE(v.f == d);
		t.type = MODBUS_INT16;
		static const uint8_t i16[] = { 0xCF, 0xC7 }; /* -12345 */
		wire(i16, 1, o, r);
		tag_decode(&t, r, 0, &v);
		ASSERT_EQ(v.i, -12345);
	}
}

static void test_decode_bits_strings_scale(void)
{
	struct tag_value v;
	struct modbus_tag_conf t = tag(MODBUS_INPUT_REGISTER, MODBUS_BIT, MODBUS_ABCD);
	uint16_t r[4] = { 0x8001 };
	t.bit = 15;
	tag_decode(&t, r, 0, &v);
	ASSERT_TRUE(v.kind == TAG_V_BOOL && v.b);
	t.bit = 1;
	tag_decode(&t, r, 0, &v);
	ASSERT_FALSE(v.b);
	t = tag(MODBUS_COIL, MODBUS_BOOL, MODBUS_ABCD);
	tag_decode(&t, NULL, 1, &v);
	ASSERT_TRUE(v.b);
	t = tag(MODBUS_HOLDING_REGISTER, MODBUS_STRING, MODBUS_ABCD);
	t.count = 3;
	uint16_t s[3] = { 0x4142, 0x4320, 0x0000 };
	tag_decode(&t, s, 0, &v);
	ASSERT_STRN(v.s, v.len, "ABC");
	t.order = MODBUS_BADC;
	tag_decode(&t, s, 0, &v);
	ASSERT_STRN(v.s, v.len, "BA C");
	t = tag(MODBUS_HOLDING_REGISTER, MODBUS_INT16, MODBUS_ABCD);
	t.scale = 0.1;
	t.offset = -40;
	r[0] = 655; /* 65.5 - 40 */
	tag_decode(&t, r, 0, &v);
	ASSERT_TRUE(fabs(tag_engineering(&t, &v) - 25.5) < 1e-9);
}

static void test_payloads(void)
{
	struct buf b = { 0 };
	struct tag_value v;
	struct modbus_tag_conf t = tag(MODBUS_HOLDING_REGISTER, MODBUS_UINT64, MODBUS_ABCD);
	uint16_t r[4] = { 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF };
	tag_decode(&t, r, 0, &v);
	ASSERT_EQ(tag_payload(&b, &t, &v, 1700000000123ull, TAG_GOOD, NULL), 0);
	ASSERT_STRN(b.p, b.len, "{\"value\":18446744073709551615,\"ts\":1700000000123,\"quality\":\"good\"}");
	b.len = 0;
	t = tag(MODBUS_HOLDING_REGISTER, MODBUS_FLOAT32, MODBUS_ABCD);
	snprintf(t.unit, sizeof t.unit, "m\"3");
	r[0] = 0x3DCC;
	r[1] = 0xCCCD; /* 0.1f */
	tag_decode(&t, r, 0, &v);
	tag_payload(&b, &t, &v, 5, TAG_GOOD, NULL);
	ASSERT_STRN(b.p, b.len, "{\"value\":0.1,\"ts\":5,\"quality\":\"good\",\"unit\":\"m\\\"3\"}");
	b.len = 0;
	r[0] = 0x7FC0; /* NaN */
	tag_decode(&t, r, 0, &v);
	tag_payload(&b, &t, &v, 5, TAG_GOOD, NULL);
	ASSERT_STRN(b.p, b.len, "{\"value\":null,\"ts\":5,\"quality\":\"good\",\"unit\":\"m\\\"3\"}");
	b.len = 0;
	tag_payload(&b, &t, NULL, 5, TAG_BAD, "exception 2: illegal data address");
	ASSERT_STRN(b.p, b.len, "{\"value\":null,\"ts\":5,\"quality\":\"bad\",\"unit\":\"m\\\"3\","
			       "\"error\":\"exception 2: illegal data address\"}");
	b.len = 0;
	t = tag(MODBUS_HOLDING_REGISTER, MODBUS_STRING, MODBUS_ABCD);
	t.count = 2;
	uint16_t s[2] = { 0x0A22, 0xC341 }; /* control, quote, 8-bit */
	tag_decode(&t, s, 0, &v);
	tag_payload(&b, &t, &v, 5, TAG_GOOD, NULL);
	ASSERT_STRN(b.p, b.len, "{\"value\":\"\\u000a\\\"?A\",\"ts\":5,\"quality\":\"good\"}");
	buf_free(&b);
}

static void test_report_by_exception(void)
{
	struct modbus_tag_conf t = tag(MODBUS_HOLDING_REGISTER, MODBUS_INT16, MODBUS_ABCD);
	struct tag_last last = { 0 };
	ASSERT_TRUE(tag_should_publish(&t, &last, TAG_GOOD, 1, 1, 0)); /* not by exception: always */
	t.report_by_exception = true;
	ASSERT_TRUE(tag_should_publish(&t, &last, TAG_GOOD, 1, 1, 0)); /* nothing published yet */
	last = (struct tag_last){ .any = true, .quality = TAG_GOOD, .value = 1, .hash = 1, .at_ms = 1000 };
	ASSERT_FALSE(tag_should_publish(&t, &last, TAG_GOOD, 1, 1, 2000));
	ASSERT_TRUE(tag_should_publish(&t, &last, TAG_GOOD, 2, 2, 2000));
	ASSERT_TRUE(tag_should_publish(&t, &last, TAG_BAD, NAN, 0, 2000));
	t.max_silence = 5;
	ASSERT_FALSE(tag_should_publish(&t, &last, TAG_GOOD, 1, 1, 5999));
	ASSERT_TRUE(tag_should_publish(&t, &last, TAG_GOOD, 1, 1, 6000));
	t.max_silence = 0;
	t.report_by_exception = false;
	t.has_deadband = true;
	t.deadband = 0.5;
	ASSERT_FALSE(tag_should_publish(&t, &last, TAG_GOOD, 1.4, 3, 2000));
	ASSERT_TRUE(tag_should_publish(&t, &last, TAG_GOOD, 1.5, 4, 2000));
	ASSERT_TRUE(tag_should_publish(&t, &last, TAG_GOOD, 0.5, 5, 2000));
	last.quality = TAG_BAD;
	ASSERT_FALSE(tag_should_publish(&t, &last, TAG_BAD, NAN, 0, 2000)); /* bad stays said once */
}

/* With tag_aggregate every reading has gone to its window; which are
 * published as well. */
static void test_aggregated_readings(void)
{
	struct modbus_tag_conf t = tag(MODBUS_HOLDING_REGISTER, MODBUS_INT16, MODBUS_ABCD);
	struct tag_last last = { 0 };
	t.agg.window_s = 1;
	/* Alone: numbers only in the summary; bad readings pass as they are (or not). */
	ASSERT_FALSE(tag_publish_reading(&t, &last, TAG_GOOD, 1, 1, 0));
	ASSERT_TRUE(tag_publish_reading(&t, &last, TAG_BAD, NAN, 0, 0));
	t.agg.non_numeric = AGG_NN_DROP;
	ASSERT_FALSE(tag_publish_reading(&t, &last, TAG_BAD, NAN, 0, 0));
	ASSERT_FALSE(tag_publish_reading(&t, &last, TAG_GOOD, 1, 1, 0));
	/* With the deadband: the moves it lets through are published too. */
	t.agg.non_numeric = AGG_NN_PASS;
	t.has_deadband = true;
	t.deadband = 5;
	last = (struct tag_last){ .any = true, .quality = TAG_GOOD, .value = 10, .hash = 10, .at_ms = 0 };
	ASSERT_FALSE(tag_publish_reading(&t, &last, TAG_GOOD, 14, 14, 1));
	ASSERT_TRUE(tag_publish_reading(&t, &last, TAG_GOOD, 15, 15, 1));
	ASSERT_TRUE(tag_publish_reading(&t, &last, TAG_BAD, NAN, 0, 1));     /* the quality changed */
	last.quality = TAG_BAD;
	ASSERT_FALSE(tag_publish_reading(&t, &last, TAG_BAD, NAN, 0, 1));    /* bad said once */
	ASSERT_TRUE(tag_publish_reading(&t, &last, TAG_GOOD, 10, 10, 1));    /* good again */
	/* With report by exception: the changes. */
	t.has_deadband = false;
	t.report_by_exception = true;
	last.quality = TAG_GOOD;
	ASSERT_FALSE(tag_publish_reading(&t, &last, TAG_GOOD, 10, 10, 1));
	ASSERT_TRUE(tag_publish_reading(&t, &last, TAG_GOOD, 11, 11, 1));
	/* Without tag_aggregate: tag_should_publish alone. */
	t.agg.window_s = 0;
	t.report_by_exception = false;
	ASSERT_TRUE(tag_publish_reading(&t, &last, TAG_GOOD, 10, 10, 1));
}

static void test_parse_write(void)
{
	double v;
	const char *why;
	ASSERT_EQ(tag_parse_write((const uint8_t *)" 12.5 ", 6, &v, &why), 0);
	ASSERT_TRUE(v == 12.5);
	ASSERT_EQ(tag_parse_write((const uint8_t *)"true", 4, &v, &why), 0);
	ASSERT_TRUE(v == 1);
	ASSERT_EQ(tag_parse_write((const uint8_t *)"{\"value\": -3e2}", 15, &v, &why), 0);
	ASSERT_TRUE(v == -300);
	static const char *const bad[] = { "", "abc", "1 2", "{\"value\":1", "{\"v\":1}", "nan", "1e999", "+1",
					   "{\"value\":1,\"x\":2}", "0x10", "truex" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (!tag_parse_write((const uint8_t *)bad[i], strlen(bad[i]), &v, &why))
			CHECK_FAIL("accepted \"%s\"", bad[i]);
}

static void test_encode(void)
{
	uint16_t r[4];
	unsigned n;
	uint8_t bit;
	const char *why;
	struct modbus_tag_conf t = tag(MODBUS_HOLDING_REGISTER, MODBUS_INT16, MODBUS_ABCD);
	t.scale = 0.1;
	ASSERT_EQ(tag_encode(&t, 12.3, r, &n, &bit, &why), 0);
	ASSERT_TRUE(n == 1 && r[0] == 123);
	ASSERT_EQ(tag_encode(&t, -3276.8, r, &n, &bit, &why), 0);
	ASSERT_EQ(r[0], 0x8000);
	ASSERT_EQ(tag_encode(&t, 3276.8, r, &n, &bit, &why), -1); /* 32768 */
	t.write_max = 100;
	ASSERT_EQ(tag_encode(&t, 100.01, r, &n, &bit, &why), -1);
	t = tag(MODBUS_HOLDING_REGISTER, MODBUS_INT32, MODBUS_CDAB);
	ASSERT_EQ(tag_encode(&t, -100000, r, &n, &bit, &why), 0);
	ASSERT_TRUE(n == 2 && r[0] == 0x7960 && r[1] == 0xFFFE);
	/* Every order reads back what it wrote. */
	for (uint8_t o = MODBUS_ABCD; o <= MODBUS_DCBA; o++) {
		struct tag_value v;
		t = tag(MODBUS_HOLDING_REGISTER, MODBUS_FLOAT64, o);
		ASSERT_EQ(tag_encode(&t, 3.25e100, r, &n, &bit, &why), 0);
		tag_decode(&t, r, 0, &v);
		ASSERT_TRUE(v.f == 3.25e100);
		t.type = MODBUS_UINT64;
		ASSERT_EQ(tag_encode(&t, 2e19, r, &n, &bit, &why), -1);
		ASSERT_EQ(tag_encode(&t, 9007199254740992.0, r, &n, &bit, &why), 0);
		tag_decode(&t, r, 0, &v);
		ASSERT_TRUE(v.u == 9007199254740992ull);
	}
	t = tag(MODBUS_HOLDING_REGISTER, MODBUS_UINT16, MODBUS_ABCD);
	ASSERT_EQ(tag_encode(&t, -0.4, r, &n, &bit, &why), 0); /* rounds to 0 */
	ASSERT_EQ(tag_encode(&t, -0.6, r, &n, &bit, &why), -1);
	ASSERT_EQ(tag_encode(&t, INFINITY, r, &n, &bit, &why), -1);
	t = tag(MODBUS_COIL, MODBUS_BOOL, MODBUS_ABCD);
	ASSERT_EQ(tag_encode(&t, 1, r, &n, &bit, &why), 0);
	ASSERT_TRUE(bit == 1 && n == 0);
	ASSERT_EQ(tag_encode(&t, 2, r, &n, &bit, &why), -1);
	t = tag(MODBUS_HOLDING_REGISTER, MODBUS_FLOAT32, MODBUS_ABCD);
	ASSERT_EQ(tag_encode(&t, 1e39, r, &n, &bit, &why), -1);
}

static void test_plan(void)
{
	struct modbus_tag_conf tags[8];
	uint32_t idx[8];
	struct tag_request req[8];
	/* Out of order on purpose: the plan sorts. */
	tags[0] = tag(MODBUS_HOLDING_REGISTER, MODBUS_FLOAT32, MODBUS_ABCD);
	tags[0].address = 20;   /* 20..21 */
	tags[1] = tag(MODBUS_HOLDING_REGISTER, MODBUS_UINT16, MODBUS_ABCD);
	tags[1].address = 0;
	tags[2] = tag(MODBUS_HOLDING_REGISTER, MODBUS_UINT16, MODBUS_ABCD);
	tags[2].address = 5;    /* gap 4 <= 16: joined */
	tags[3] = tag(MODBUS_HOLDING_REGISTER, MODBUS_UINT16, MODBUS_ABCD);
	tags[3].address = 100;  /* gap 78: a new request */
	tags[4] = tag(MODBUS_HOLDING_REGISTER, MODBUS_UINT16, MODBUS_ABCD);
	tags[4].address = 114;  /* gap 13: joined */
	tags[5] = tag(MODBUS_HOLDING_REGISTER, MODBUS_UINT16, MODBUS_ABCD);
	tags[5].address = 225;  /* gap 110: a new one */
	tags[6] = tag(MODBUS_COIL, MODBUS_BOOL, MODBUS_ABCD);
	tags[6].address = 0;
	tags[7] = tag(MODBUS_COIL, MODBUS_BOOL, MODBUS_ABCD);
	tags[7].address = 256;  /* gap 255 <= 16 x 16: joined */
	for (uint32_t i = 0; i < 8; i++)
		idx[i] = i;
	uint32_t n = tag_plan(tags, idx, 8, 16, req);
	ASSERT_EQ(n, 4);
	ASSERT_TRUE(req[0].area == MODBUS_COIL && req[0].start == 0 && req[0].count == 257 && req[0].n == 2);
	ASSERT_TRUE(req[1].area == MODBUS_HOLDING_REGISTER && req[1].start == 0 && req[1].count == 22 && req[1].n == 3);
	ASSERT_TRUE(req[2].start == 100 && req[2].count == 15 && req[2].n == 2);
	ASSERT_TRUE(req[3].start == 225 && req[3].count == 1 && req[3].n == 1);
	ASSERT_EQ(tags[idx[req[1].first]].address, 0);
	ASSERT_EQ(tags[idx[req[1].first + 2]].address, 20);
	/* Without gaps allowed, only neighbours join: none here. */
	n = tag_plan(tags, idx, 8, 0, req);
	ASSERT_EQ(n, 8);
	/* 125 registers and 2,000 bits at most, however large the gap allowed. */
	tags[4].address = 224;  /* 100..224: 125 */
	tags[7].address = 2000; /* 0..2000: 2,001 bits */
	n = tag_plan(tags, idx, 8, 120, req);
	ASSERT_EQ(n, 4);
	ASSERT_TRUE(req[0].count == 1 && req[1].start == 2000);
	ASSERT_TRUE(req[2].start == 0 && req[2].count == 101 && req[2].n == 4); /* 0, 5, 20..21, 100 */
	ASSERT_TRUE(req[3].start == 224 && req[3].count == 2 && req[3].n == 2); /* 0..224 would be 225 */
}

static int apply(struct config *c, const char *text, char *err, size_t len)
{
	char line[512];
	const char *p = text;
	c->cur_line = 0;
	while (*p) {
		size_t n = strcspn(p, "\n");
		snprintf(line, sizeof line, "%.*s", (int)n, p);
		c->cur_line++;
		if (config_apply_line(c, line, err, len))
			return -1;
		p += n + (p[n] == '\n');
	}
	return config_finish(c, err, len);
}

static struct config cfg; /* 1.6 MB: not on the stack */

static void test_config_sections(void)
{
	char err[512] = "";
	config_defaults(&cfg);
	ASSERT_EQ(apply(&cfg, "modbus_device a\nmodbus_address [::1]:1502\nmodbus_unit_id 7\n"
			      "modbus_restart_timeout 100 800\n"
			      "modbus_tag x holding_register 10 float32 cdab\ntag_scale -0.5\ntag_deadband 2\n"
			      "tag_unit degC\ntag_interval 250\n"
			      "modbus_tag y coil 3 bool\ntag_writable true\n"
			      "modbus_device b\nmodbus_address plc-b\nmodbus_topic_prefix site/b\n"
			      "modbus_tag z input_register 0 string:10\n", err, sizeof err), 0);
	ASSERT_STRN(err, strlen(err), "");
	ASSERT_EQ(cfg.n_devices, 2);
	ASSERT_EQ(cfg.n_tags, 3);
	const struct modbus_device_conf *a = &cfg.devices[0], *b = &cfg.devices[1];
	ASSERT_STRN(a->host, strlen(a->host), "::1");
	ASSERT_TRUE(a->port == 1502 && a->unit_id == 7 && a->restart_timeout.min == 100 && a->restart_timeout.max == 800);
	ASSERT_STRN(a->topic_prefix, strlen(a->topic_prefix), "modbus/a");
	ASSERT_TRUE(a->first_tag == 0 && a->n_tags == 2 && b->first_tag == 2 && b->n_tags == 1);
	ASSERT_TRUE(b->port == 502 && b->timeout_ms == 1000 && b->poll_interval_ms == 1000 && b->offline_after == 3);
	ASSERT_STRN(b->topic_prefix, strlen(b->topic_prefix), "site/b");
	const struct modbus_tag_conf *x = &cfg.tags[0];
	ASSERT_TRUE(x->scale == -0.5 && x->has_deadband && x->deadband == 2 && x->interval_ms == 250 &&
		    x->order == MODBUS_CDAB && x->type == MODBUS_FLOAT32 && x->address == 10);
	ASSERT_TRUE(isnan(x->write_min) && !x->writable && cfg.tags[1].writable && cfg.tags[2].count == 10);
	static const struct { const char *text, *why; } bad[] = {
		{ "tag_scale 2", "without a `modbus_device NAME`" },
		{ "modbus_device a\ntag_scale 2", "this device has none" },
		{ "modbus_device a\nmodbus_device a", "declared twice" },
		{ "modbus_device a/b", "letters, digits" },
		{ "modbus_device a\"b", "letters, digits" },
		{ "modbus_device a\nmodbus_address h:0", "port in 1..65535" },
		{ "modbus_device a\nmodbus_tag x holding_register 0", "NAME AREA ADDRESS TYPE" },
		{ "modbus_device a\nmodbus_tag status holding_register 0 int16", "not status" },
		{ "modbus_device a\nmodbus_tag x register 0 int16", "AREA must be" },
		{ "modbus_device a\nmodbus_tag x holding_register 70000 int16", "ADDRESS must be" },
		{ "modbus_device a\nmodbus_tag x holding_register 0 bit:16", "bit:N needs" },
		{ "modbus_device a\nmodbus_tag x holding_register 0 int16:2", "TYPE must be" },
		{ "modbus_device a\nmodbus_tag x discrete_input 0 bool abcd", "only for registers" },
		{ "modbus_device a\nmodbus_tag x holding_register 0 int16\ntag_deadband -1", "invalid value" },
		{ "modbus_device a\nmodbus_tag x holding_register 0 int16\ntag_unit kilowatt", "invalid value" },
		{ "modbus_device a\nmodbus_restart_timeout 5", "milliseconds in 10..3600000" },
		{ "modbus_device a\nmodbus_address h\nmodbus_topic_prefix $SYS/x\nmodbus_tag x coil 0 bool",
		  "not under $" },
		{ "modbus_device a\nmodbus_address h\nmodbus_tag x coil 0 bool\ntag_min 5\ntag_max 1", "above tag_max" },
		{ "modbus_device a\nmodbus_tag x\x01y coil 0 bool", "NAME must be" },
		{ "modbus_device a\nmodbus_address h\nmodbus_tag x coil 0 bool\nmodbus_device b\nmodbus_address h\n"
		  "modbus_topic_prefix modbus/a\nmodbus_tag x coil 0 bool", "that of an earlier device" },
		{ "modbus_device a\nmodbus_address h\nmodbus_tag x holding_register 0 bit:3\ntag_writable true",
		  "cannot be written" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		config_defaults(&cfg);
		err[0] = 0;
		if (!apply(&cfg, bad[i].text, err, sizeof err) || !strstr(err, bad[i].why))
			CHECK_FAIL("\"%s\": expected \"%s\", got \"%s\"", bad[i].text, bad[i].why, err);
	}
	/* Aggregation: the bridge's words, its defaults, and the tag's own checks. */
	config_defaults(&cfg);
	err[0] = 0;
	ASSERT_EQ(apply(&cfg, "modbus_device a\nmodbus_address h\n"
			      "modbus_tag x holding_register 0 int16\ntag_aggregate 60\n"
			      "modbus_tag y holding_register 1 int16\ntag_aggregate 1\ntag_aggregate_stats max,count,end\n"
			      "tag_aggregate_empty count\ntag_aggregate_non_numeric drop\ntag_aggregate_suffix /1s/stats\n"
			      "tag_deadband 2\n"
			      "modbus_tag z coil 0 bool\n", err, sizeof err), 0);
	ASSERT_STRN(err, strlen(err), "");
	const struct agg_conf *ax = &cfg.tags[0].agg, *ay = &cfg.tags[1].agg, *az = &cfg.tags[2].agg;
	ASSERT_TRUE(ax->window_s == 60 && ax->stats == AGG_ALL && ax->empty == AGG_EMPTY_SKIP &&
		    ax->non_numeric == AGG_NN_PASS && !cfg.tags[0].agg_suffix[0]);
	ASSERT_TRUE(ay->window_s == 1 && ay->stats == ((1u << AGG_MAX) | (1u << AGG_COUNT) | (1u << AGG_END)) &&
		    ay->empty == AGG_EMPTY_COUNT && ay->non_numeric == AGG_NN_DROP && cfg.tags[1].has_deadband);
	ASSERT_STRN(cfg.tags[1].agg_suffix, strlen(cfg.tags[1].agg_suffix), "/1s/stats");
	ASSERT_TRUE(az->window_s == 0 && az->stats == 0);
	static const struct { const char *opt, *why; } bad_agg[] = {
		{ "tag_aggregate 0", "not a number in 1..86400" },
		{ "tag_aggregate 86401", "not a number in 1..86400" },
		{ "tag_aggregate 1m", "not a number in 1..86400" },
		{ "tag_aggregate 1\ntag_aggregate_stats count,median", "invalid value 'count,median'" },
		{ "tag_aggregate 1\ntag_aggregate_stats ,", "invalid value" },
		{ "tag_aggregate 1\ntag_aggregate_empty zero", "expected skip|count" },
		{ "tag_aggregate 1\ntag_aggregate_non_numeric keep", "expected pass|drop" },
		{ "tag_aggregate 1\ntag_aggregate_suffix /a-very-long-suffix", "invalid value" },
		{ "tag_aggregate 1\ntag_aggregate_suffix 1s", "must start with /" },
		{ "tag_aggregate 1\ntag_aggregate_suffix /1s/", "must start with /" },
		{ "tag_aggregate 1\ntag_aggregate_suffix /a//b", "must start with /" },
		{ "tag_aggregate 1\ntag_aggregate_suffix /+", "must start with /" },
		{ "tag_aggregate 1\ntag_aggregate_suffix /#", "must start with /" },
		{ "tag_aggregate 1\ntag_aggregate_suffix /set", "not /set" },
		{ "tag_aggregate 1\ntag_aggregate_suffix /set/x", "not /set" },
		{ "tag_aggregate_stats count", "need tag_aggregate" },
		{ "tag_aggregate_empty count", "need tag_aggregate" },
		{ "tag_aggregate_non_numeric drop", "need tag_aggregate" },
		{ "tag_aggregate_suffix /1m", "need tag_aggregate" },
	};
	char text[256];
	for (size_t i = 0; i < sizeof bad_agg / sizeof bad_agg[0]; i++) {
		config_defaults(&cfg);
		err[0] = 0;
		snprintf(text, sizeof text, "modbus_device a\nmodbus_address h\nmodbus_tag x holding_register 0 int16\n%s",
			 bad_agg[i].opt);
		if (!apply(&cfg, text, err, sizeof err) || !strstr(err, bad_agg[i].why))
			CHECK_FAIL("\"%s\": expected \"%s\", got \"%s\"", bad_agg[i].opt, bad_agg[i].why, err);
	}
	config_defaults(&cfg);
	ASSERT_EQ(apply(&cfg, "modbus_device a\nmodbus_address h\nmodbus_tag s holding_register 0 string:2\n"
			      "tag_aggregate 1", err, sizeof err), -1);
	ASSERT_TRUE(strstr(err, "not for a string tag") != NULL);
	config_defaults(&cfg);
	ASSERT_EQ(apply(&cfg, "modbus_device a\nmodbus_address h\nmodbus_format sparkplug\n"
			      "modbus_tag v holding_register 0 int16\ntag_aggregate 1", err, sizeof err), -1);
	ASSERT_TRUE(strstr(err, ":4: modbus_device a: tag_aggregate publishes JSON summaries") != NULL);
	config_defaults(&cfg);
	ASSERT_EQ(apply(&cfg, "tag_aggregate 1", err, sizeof err), -1);
	ASSERT_TRUE(strstr(err, "without a `modbus_device NAME`") != NULL);
	/* config_finish names the file and the tag's line. */
	config_defaults(&cfg);
	snprintf(cfg.source, sizeof cfg.source, "f.conf");
	ASSERT_EQ(apply(&cfg, "modbus_device a\nmodbus_address h\n\nmodbus_tag x input_register 0 int16\n"
			      "tag_writable true", err, sizeof err), -1);
	ASSERT_TRUE(strstr(err, "f.conf:4: modbus_device a: tag_writable") != NULL);
}

int main(void)
{
	RUN(test_decode_orders);
	RUN(test_decode_bits_strings_scale);
	RUN(test_payloads);
	RUN(test_report_by_exception);
	RUN(test_aggregated_readings);
	RUN(test_parse_write);
	RUN(test_encode);
	RUN(test_plan);
	RUN(test_config_sections);
	return CHECK_DONE();
}
