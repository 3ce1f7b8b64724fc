/* Unit tests for the Sparkplug edge node's pure parts: topics, the payloads
 * of births, deaths and data (read back with protoc-c's decoder), the seq
 * and historical restamp, command metrics, and a Modbus tag as a metric. */
#include "sparkplug/edge.h"
#include "sparkplug/sparkplug_b.pb-c.h"
#include "collect/spb.h"
#include "base/err.h"
#include "check.h"
#include <math.h>
#include <stdint.h>

typedef SparkplugB__Payload Payload;
typedef SparkplugB__Payload__Metric Metric;

static Payload *decode(const struct buf *b) { return sparkplug_b__payload__unpack(NULL, b->len, b->p); }

static void test_topics(void)
{
	char t[64];
	ASSERT_EQ(spb_edge_topic(t, sizeof t, "spBv1.0", "g", SPB_NBIRTH, "e", NULL), 18);
	ASSERT_STRN(t, strlen(t), "spBv1.0/g/NBIRTH/e");
	spb_edge_topic(t, sizeof t, "spBv1.0", "plant", SPB_DCMD, "edge-1", "press");
	ASSERT_STRN(t, strlen(t), "spBv1.0/plant/DCMD/edge-1/press");
	ASSERT_EQ(spb_edge_topic(t, 10, "spBv1.0", "g", SPB_NBIRTH, "e", NULL), -FM_ELIMIT);
}

static void test_nbirth_and_ndeath(void)
{
	struct buf b = { 0 };
	ASSERT_EQ(spb_nbirth_encode(&b, 200, 1700000000123ull), 0);
	Payload *p = decode(&b);
	ASSERT_TRUE(p != NULL);
	ASSERT_TRUE(p->has_seq && p->seq == 0);
	ASSERT_EQ(p->timestamp, 1700000000123ull);
	ASSERT_EQ(p->n_metrics, 2);
	ASSERT_TRUE(strcmp(p->metrics[0]->name, "bdSeq") == 0);
	ASSERT_EQ(p->metrics[0]->datatype, SPB_DT_INT64);
	ASSERT_EQ(p->metrics[0]->value_case, SPARKPLUG_B__PAYLOAD__METRIC__VALUE_LONG_VALUE);
	ASSERT_EQ(p->metrics[0]->long_value, 200);
	ASSERT_TRUE(strcmp(p->metrics[1]->name, "Node Control/Rebirth") == 0);
	ASSERT_EQ(p->metrics[1]->datatype, SPB_DT_BOOLEAN);
	ASSERT_EQ(p->metrics[1]->value_case, SPARKPLUG_B__PAYLOAD__METRIC__VALUE_BOOLEAN_VALUE);
	ASSERT_FALSE(p->metrics[1]->boolean_value);
	sparkplug_b__payload__free_unpacked(p, NULL);
	b.len = 0;
	ASSERT_EQ(spb_ndeath_encode(&b, 7, 5), 0);
	p = decode(&b);
	ASSERT_FALSE(p->has_seq); /* an NDEATH has no seq */
	ASSERT_EQ(p->n_metrics, 1);
	ASSERT_EQ(p->metrics[0]->long_value, 7);
	sparkplug_b__payload__free_unpacked(p, NULL);
	buf_free(&b);
}

static void test_values_follow_the_datatype(void)
{
	struct spb_metric_out m[6] = {
		{ .name = "i16", .datatype = SPB_DT_INT16, .kind = SPB_V_INT, .i = -2 },
		{ .name = "u64", .datatype = SPB_DT_UINT64, .kind = SPB_V_UINT, .u = UINT64_MAX },
		{ .name = "f", .datatype = SPB_DT_FLOAT, .kind = SPB_V_DOUBLE, .d = 1.5 },
		{ .alias = 9, .has_alias = true, .kind = SPB_V_DOUBLE, .d = 2.25 }, /* DDATA: no datatype */
		{ .name = "n", .datatype = SPB_DT_DOUBLE, .kind = SPB_V_NULL, .eng_unit = "bar" },
		{ .name = "s", .datatype = SPB_DT_STRING, .kind = SPB_V_STRING, .s = "Press1" },
	};
	struct buf b = { 0 };
	ASSERT_EQ(spb_payload_encode(&b, 1, true, 42, m, 6), 0);
	Payload *p = decode(&b);
	ASSERT_TRUE(p != NULL);
	ASSERT_EQ(p->seq, 42);
	ASSERT_EQ(p->metrics[0]->value_case, SPARKPLUG_B__PAYLOAD__METRIC__VALUE_INT_VALUE);
	ASSERT_EQ(p->metrics[0]->int_value, 0xFFFFFFFEu); /* two's complement in 32 bits */
	ASSERT_EQ(p->metrics[1]->value_case, SPARKPLUG_B__PAYLOAD__METRIC__VALUE_LONG_VALUE);
	ASSERT_TRUE(p->metrics[1]->long_value == UINT64_MAX);
	ASSERT_EQ(p->metrics[2]->value_case, SPARKPLUG_B__PAYLOAD__METRIC__VALUE_FLOAT_VALUE);
	ASSERT_TRUE(p->metrics[2]->float_value == 1.5f);
	ASSERT_TRUE(p->metrics[3]->name == NULL);
	ASSERT_TRUE(p->metrics[3]->has_alias && p->metrics[3]->alias == 9);
	ASSERT_FALSE(p->metrics[3]->has_datatype);
	ASSERT_EQ(p->metrics[3]->value_case, SPARKPLUG_B__PAYLOAD__METRIC__VALUE_DOUBLE_VALUE);
	ASSERT_TRUE(p->metrics[4]->has_is_null && p->metrics[4]->is_null);
	ASSERT_TRUE(p->metrics[4]->properties != NULL);
	ASSERT_EQ(p->metrics[4]->properties->n_keys, 1);
	ASSERT_TRUE(strcmp(p->metrics[4]->properties->keys[0], "engUnit") == 0);
	ASSERT_TRUE(strcmp(p->metrics[4]->properties->values[0]->string_value, "bar") == 0);
	ASSERT_TRUE(p->metrics[0]->properties == NULL);
	ASSERT_TRUE(strcmp(p->metrics[5]->string_value, "Press1") == 0);
	sparkplug_b__payload__free_unpacked(p, NULL);
	/* A value the datatype cannot hold is refused. */
	struct spb_metric_out bad = { .name = "x", .datatype = SPB_DT_BOOLEAN, .kind = SPB_V_DOUBLE, .d = 1 };
	b.len = 0;
	ASSERT_EQ(spb_payload_encode(&b, 1, true, 0, &bad, 1), -FM_EINVAL);
	buf_free(&b);
}

static void test_restamp(void)
{
	struct spb_metric_out m[2] = {
		{ .alias = 1, .has_alias = true, .timestamp = 10, .kind = SPB_V_INT, .i = 5 },
		{ .alias = 2, .has_alias = true, .timestamp = 11, .kind = SPB_V_BOOL, .b = true },
	};
	struct buf in = { 0 }, out = { 0 };
	ASSERT_EQ(spb_payload_encode(&in, 99, true, 17, m, 2), 0);
	ASSERT_EQ(spb_payload_restamp(in.p, in.len, 201, false, &out), 0);
	Payload *p = decode(&out);
	ASSERT_EQ(p->seq, 201);
	ASSERT_EQ(p->timestamp, 99);
	ASSERT_FALSE(p->metrics[0]->is_historical);
	ASSERT_EQ(p->metrics[0]->int_value, 5);
	sparkplug_b__payload__free_unpacked(p, NULL);
	out.len = 0;
	ASSERT_EQ(spb_payload_restamp(in.p, in.len, 0, true, &out), 0);
	p = decode(&out);
	ASSERT_EQ(p->seq, 0);
	ASSERT_TRUE(p->metrics[0]->has_is_historical && p->metrics[0]->is_historical);
	ASSERT_TRUE(p->metrics[1]->is_historical);
	ASSERT_EQ(p->metrics[1]->timestamp, 11);
	sparkplug_b__payload__free_unpacked(p, NULL);
	out.len = 0;
	const uint8_t junk[] = { 0x12, 0x05, 0x01 }; /* metrics, length 5, 1 byte */
	ASSERT_EQ(spb_payload_restamp(junk, sizeof junk, 1, true, &out), -FM_EINVAL);
	ASSERT_EQ(out.len, 0);
	buf_free(&in);
	buf_free(&out);
}

struct seen {
	struct spb_cmd_metric m[4];
	char names[4][32];
	int n;
};

static int keep(void *ctx, const struct spb_cmd_metric *m)
{
	struct seen *s = ctx;
	s->m[s->n] = *m;
	snprintf(s->names[s->n], sizeof s->names[0], "%s", m->name ? m->name : "");
	s->n++;
	return 0;
}

static void test_commands(void)
{
	struct spb_metric_out m[4] = {
		{ .name = "setpoint", .kind = SPB_V_INT, .i = -123, .datatype = SPB_DT_INT16 },
		{ .alias = 4, .has_alias = true, .kind = SPB_V_BOOL, .b = true },
		{ .name = "speed", .kind = SPB_V_DOUBLE, .d = 12.5 },
		{ .name = "label", .kind = SPB_V_STRING, .s = "x" },
	};
	struct buf b = { 0 };
	ASSERT_EQ(spb_payload_encode(&b, 1, false, 0, m, 4), 0);
	struct seen s = { 0 };
	ASSERT_EQ(spb_cmd_each(b.p, b.len, keep, &s), 0);
	ASSERT_EQ(s.n, 4);
	double v;
	ASSERT_TRUE(strcmp(s.names[0], "setpoint") == 0);
	ASSERT_TRUE(spb_cmd_number(&s.m[0], SPB_DT_UINT16, &v) && v == -123); /* the command's datatype wins */
	s.m[0].datatype = 0;
	ASSERT_TRUE(spb_cmd_number(&s.m[0], SPB_DT_INT32, &v) && v == -123);
	ASSERT_TRUE(spb_cmd_number(&s.m[0], SPB_DT_UINT32, &v) && v == 4294967173.0);
	ASSERT_TRUE(s.m[1].has_alias && s.m[1].alias == 4);
	ASSERT_TRUE(spb_cmd_number(&s.m[1], SPB_DT_BOOLEAN, &v) && v == 1);
	ASSERT_TRUE(spb_cmd_number(&s.m[2], 0, &v) && v == 12.5);
	ASSERT_FALSE(spb_cmd_number(&s.m[3], SPB_DT_STRING, &v));
	ASSERT_FALSE(spb_ncmd_is_rebirth(b.p, b.len));
	b.len = 0;
	struct spb_metric_out r = { .name = SPB_REBIRTH_METRIC, .kind = SPB_V_BOOL, .b = true, .datatype = SPB_DT_BOOLEAN };
	spb_payload_encode(&b, 1, false, 0, &r, 1);
	ASSERT_TRUE(spb_ncmd_is_rebirth(b.p, b.len));
	b.len = 0;
	r.b = false;
	spb_payload_encode(&b, 1, false, 0, &r, 1);
	ASSERT_FALSE(spb_ncmd_is_rebirth(b.p, b.len));
	const uint8_t junk[] = { 0x12, 0xff };
	ASSERT_EQ(spb_cmd_each(junk, sizeof junk, keep, &s), -FM_EINVAL);
	ASSERT_FALSE(spb_ncmd_is_rebirth(junk, sizeof junk));
	buf_free(&b);
}

static void test_tag_as_metric(void)
{
	struct modbus_tag_conf t = { .scale = 1, .type = MODBUS_INT16 };
	struct tag_value v = { .kind = TAG_V_INT, .i = -7 };
	struct spb_metric_out m = { 0 };
	spb_tag_metric(&t, &v, &m);
	ASSERT_EQ(m.datatype, SPB_DT_INT16);
	ASSERT_EQ(m.kind, SPB_V_INT);
	ASSERT_EQ(m.i, -7);
	t.scale = 0.5; /* scaled: the engineering value, as Double */
	spb_tag_metric(&t, &v, &m);
	ASSERT_EQ(m.datatype, SPB_DT_DOUBLE);
	ASSERT_TRUE(m.kind == SPB_V_DOUBLE && m.d == -3.5);
	spb_tag_metric(&t, NULL, &m);
	ASSERT_EQ(m.kind, SPB_V_NULL);
	struct modbus_tag_conf f = { .scale = 1, .type = MODBUS_FLOAT32 };
	struct tag_value fv = { .kind = TAG_V_FLOAT, .f = NAN };
	spb_tag_metric(&f, &fv, &m);
	ASSERT_EQ(m.datatype, SPB_DT_FLOAT);
	ASSERT_EQ(m.kind, SPB_V_NULL); /* not finite: null */
	struct modbus_tag_conf u = { .scale = 1, .type = MODBUS_UINT64 }, bit = { .scale = 1, .type = MODBUS_BIT },
			       str = { .scale = 1, .type = MODBUS_STRING };
	ASSERT_EQ(spb_tag_datatype(&u), SPB_DT_UINT64);
	ASSERT_EQ(spb_tag_datatype(&bit), SPB_DT_BOOLEAN);
	ASSERT_EQ(spb_tag_datatype(&str), SPB_DT_STRING);
	/* A command's value as a write request. */
	char text[40];
	struct spb_cmd_metric c = { .kind = SPB_V_UINT, .u = 0xFFFFFF85u };
	struct modbus_tag_conf sp = { .scale = 1, .type = MODBUS_INT16 };
	ASSERT_TRUE(spb_tag_write_text(&sp, &c, text));
	ASSERT_TRUE(strcmp(text, "-123") == 0);
	struct modbus_tag_conf coil = { .scale = 1, .type = MODBUS_BOOL };
	struct spb_cmd_metric on = { .kind = SPB_V_BOOL, .b = true };
	ASSERT_TRUE(spb_tag_write_text(&coil, &on, text));
	ASSERT_TRUE(strcmp(text, "true") == 0);
	struct spb_cmd_metric s = { .kind = SPB_V_STRING, .s = "1" };
	ASSERT_FALSE(spb_tag_write_text(&sp, &s, text));
	struct spb_cmd_metric inf = { .kind = SPB_V_DOUBLE, .d = INFINITY };
	ASSERT_FALSE(spb_tag_write_text(&sp, &inf, text));
}

static void test_alias_is_stable(void)
{
	/* FNV-1a 64 of "press/temp", kept to 53 bits: the same in every run and build. */
	uint64_t h = 0xcbf29ce484222325ull;
	for (const char *p = "press/temp"; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	ASSERT_TRUE(spb_tag_alias("press", "temp") == (h & ((1ull << 53) - 1)));
	ASSERT_TRUE(spb_tag_alias("press", "temp") != spb_tag_alias("press", "tem"));
	ASSERT_TRUE(spb_tag_alias("press", "temp") != spb_tag_alias("press2", "temp"));
	ASSERT_TRUE(spb_tag_alias("a", "b") < (1ull << 53));
}

int main(void)
{
	RUN(test_topics);
	RUN(test_nbirth_and_ndeath);
	RUN(test_values_follow_the_datatype);
	RUN(test_restamp);
	RUN(test_commands);
	RUN(test_tag_as_metric);
	RUN(test_alias_is_stable);
	return CHECK_DONE();
}
