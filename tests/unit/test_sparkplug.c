/* Unit tests for src/sparkplug: topics, the payload scanner against
 * protoc-c's full decoder, the timestamp rewrite and STATE payloads. */
#include "sparkplug/sparkplug.h"
#include "sparkplug/sparkplug_b.pb-c.h"
#include "base/err.h"
#include "check.h"
#include <stdint.h>

#define S(s) s, strlen(s)
#define NS "spBv1.0"

typedef SparkplugB__Payload Payload;
typedef SparkplugB__Payload__Metric Metric;

/* ---- topics ---- */

static void test_topic_edge_node_types(void)
{
	struct spb_topic t;
	ASSERT_EQ(spb_topic_parse(S(NS), S("spBv1.0/plant1/NBIRTH/press-7"), &t), 1);
	ASSERT_EQ(t.type, SPB_NBIRTH);
	ASSERT_STRN(t.group, t.group_len, "plant1");
	ASSERT_STRN(t.edge, t.edge_len, "press-7");
	ASSERT_TRUE(t.device == NULL);
	const char *types[] = { "NBIRTH", "NDEATH", "NDATA", "NCMD" };
	for (size_t i = 0; i < 4; i++) {
		char topic[64];
		snprintf(topic, sizeof topic, "spBv1.0/g/%s/e", types[i]);
		ASSERT_EQ(spb_topic_parse(S(NS), S(topic), &t), 1);
		ASSERT_TRUE(strcmp(spb_type_name(t.type), types[i]) == 0);
		ASSERT_FALSE(spb_type_has_device(t.type));
		/* an N-type with a device level is malformed */
		snprintf(topic, sizeof topic, "spBv1.0/g/%s/e/d", types[i]);
		ASSERT_EQ(spb_topic_parse(S(NS), S(topic), &t), -FM_EINVAL);
	}
}

static void test_topic_device_types(void)
{
	struct spb_topic t;
	ASSERT_EQ(spb_topic_parse(S(NS), S("spBv1.0/g1/DBIRTH/e1/plc 3"), &t), 1);
	ASSERT_EQ(t.type, SPB_DBIRTH);
	ASSERT_STRN(t.group, t.group_len, "g1");
	ASSERT_STRN(t.edge, t.edge_len, "e1");
	ASSERT_STRN(t.device, t.device_len, "plc 3");
	const char *types[] = { "DBIRTH", "DDEATH", "DDATA", "DCMD" };
	for (size_t i = 0; i < 4; i++) {
		char topic[64];
		snprintf(topic, sizeof topic, "spBv1.0/g/%s/e/d", types[i]);
		ASSERT_EQ(spb_topic_parse(S(NS), S(topic), &t), 1);
		ASSERT_TRUE(spb_type_has_device(t.type));
		/* a D-type without its device level is malformed */
		snprintf(topic, sizeof topic, "spBv1.0/g/%s/e", types[i]);
		ASSERT_EQ(spb_topic_parse(S(NS), S(topic), &t), -FM_EINVAL);
	}
}

static void test_topic_state(void)
{
	struct spb_topic t;
	ASSERT_EQ(spb_topic_parse(S(NS), S("spBv1.0/STATE/scada-1"), &t), 1);
	ASSERT_EQ(t.type, SPB_STATE);
	ASSERT_STRN(t.host, t.host_len, "scada-1");
	ASSERT_TRUE(t.group == NULL && t.edge == NULL);
	ASSERT_EQ(spb_topic_parse(S(NS), S("spBv1.0/STATE/"), &t), -FM_EINVAL);
	ASSERT_EQ(spb_topic_parse(S(NS), S("spBv1.0/STATE/a/b"), &t), -FM_EINVAL);
	/* a group may still be called STATE when the topic has a type */
	ASSERT_EQ(spb_topic_parse(S(NS), S("spBv1.0/STATE/NDATA/e"), &t), 1);
	ASSERT_EQ(t.type, SPB_NDATA);
}

static void test_topic_not_sparkplug(void)
{
	struct spb_topic t;
	ASSERT_EQ(spb_topic_parse(S(NS), S("plant/line1/temp"), &t), 0);
	ASSERT_EQ(spb_topic_parse(S(NS), S("spBv1.0"), &t), 0);
	ASSERT_EQ(spb_topic_parse(S(NS), S("spBv1.0x/g/NDATA/e"), &t), 0);
	ASSERT_EQ(spb_topic_parse(S(NS), S("spbv1.0/g/NDATA/e"), &t), 0);
}

static void test_topic_malformed(void)
{
	struct spb_topic t;
	const char *bad[] = {
		"spBv1.0/", "spBv1.0/g", "spBv1.0/g/NDATA", "spBv1.0/g/NDATA/",
		"spBv1.0//NDATA/e", "spBv1.0/g/ndata/e", "spBv1.0/g/NFOO/e",
		"spBv1.0/g/DDATA/e/", "spBv1.0/g/DDATA/e/d/x", "spBv1.0/g/DDATA//d",
		"spBv1.0/g/NDATA/e/d/x/y/z",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (spb_topic_parse(S(NS), S(bad[i]), &t) != -FM_EINVAL)
			CHECK_FAIL("accepted %s", bad[i]);
}

/* The namespace is a parameter: the next version's draft uses spCv1.0. */
static void test_topic_other_namespace(void)
{
	struct spb_topic t;
	ASSERT_EQ(spb_topic_parse(S("spCv1.0"), S("spCv1.0/g/NBIRTH/e"), &t), 1);
	ASSERT_EQ(spb_topic_parse(S("spCv1.0"), S("spBv1.0/g/NBIRTH/e"), &t), 0);
	ASSERT_TRUE(spb_namespace_valid(S("spCv1.0")));
	ASSERT_FALSE(spb_namespace_valid(S("")));
	ASSERT_FALSE(spb_namespace_valid(S("a/b")));
	ASSERT_FALSE(spb_namespace_valid(S("sp+")));
	ASSERT_FALSE(spb_namespace_valid(S("$sparkplug")));
}

/* ---- payloads ---- */

/* Packs payload into a malloc'd buffer; *len its length. */
static uint8_t *pack(const Payload *pl, size_t *len)
{
	*len = sparkplug_b__payload__get_packed_size(pl);
	uint8_t *buf = malloc(*len ? *len : 1);
	if (!buf)
		abort();
	if (sparkplug_b__payload__pack(pl, buf) != *len)
		abort();
	return buf;
}

static void test_scan_nbirth(void)
{
	Metric bdseq = SPARKPLUG_B__PAYLOAD__METRIC__INIT, temp = SPARKPLUG_B__PAYLOAD__METRIC__INIT;
	bdseq.name = "bdSeq";
	bdseq.has_datatype = 1;
	bdseq.datatype = SPARKPLUG_B__DATA_TYPE__Int64;
	bdseq.value_case = SPARKPLUG_B__PAYLOAD__METRIC__VALUE_LONG_VALUE;
	bdseq.long_value = 41;
	temp.name = "Temperature";
	temp.has_alias = 1;
	temp.alias = 7;
	temp.value_case = SPARKPLUG_B__PAYLOAD__METRIC__VALUE_DOUBLE_VALUE;
	temp.double_value = 21.5;
	Metric *metrics[] = { &temp, &bdseq };
	Payload pl = SPARKPLUG_B__PAYLOAD__INIT;
	pl.has_timestamp = 1;
	pl.timestamp = 1733570000123ULL;
	pl.has_seq = 1;
	pl.seq = 0;
	pl.n_metrics = 2;
	pl.metrics = metrics;
	size_t len;
	uint8_t *buf = pack(&pl, &len);
	struct spb_payload_info info;
	ASSERT_EQ(spb_payload_scan(buf, len, &info), 0);
	ASSERT_TRUE(info.has_timestamp && info.has_seq && info.has_bdseq);
	ASSERT_EQ(info.timestamp, 1733570000123ULL);
	ASSERT_EQ(info.seq, 0);
	ASSERT_EQ(info.bdseq, 41);
	ASSERT_EQ(info.metrics, 2);
	free(buf);
}

/* An NDEATH carries the bdSeq metric only, and no seq. */
static void test_scan_ndeath(void)
{
	Metric bdseq = SPARKPLUG_B__PAYLOAD__METRIC__INIT;
	bdseq.name = "bdSeq";
	bdseq.value_case = SPARKPLUG_B__PAYLOAD__METRIC__VALUE_INT_VALUE;
	bdseq.int_value = 255;
	Metric *metrics[] = { &bdseq };
	Payload pl = SPARKPLUG_B__PAYLOAD__INIT;
	pl.n_metrics = 1;
	pl.metrics = metrics;
	size_t len;
	uint8_t *buf = pack(&pl, &len);
	struct spb_payload_info info;
	ASSERT_EQ(spb_payload_scan(buf, len, &info), 0);
	ASSERT_FALSE(info.has_seq);
	ASSERT_FALSE(info.has_timestamp);
	ASSERT_TRUE(info.has_bdseq);
	ASSERT_EQ(info.bdseq, 255);
	free(buf);
}

static void test_scan_empty_and_unknown_fields(void)
{
	struct spb_payload_info info;
	ASSERT_EQ(spb_payload_scan(NULL, 0, &info), 0);
	ASSERT_EQ(info.metrics, 0);
	/* seq = 5, an unknown field 7 (varint), an unknown fixed32 field 9, timestamp = 1 */
	const uint8_t p[] = { 0x18, 5, 0x38, 0x80, 0x01, 0x4d, 1, 2, 3, 4, 0x08, 1 };
	ASSERT_EQ(spb_payload_scan(p, sizeof p, &info), 0);
	ASSERT_EQ(info.seq, 5);
	ASSERT_EQ(info.timestamp, 1);
	/* a repeated scalar: the last value wins, as in protobuf */
	const uint8_t twice[] = { 0x18, 5, 0x18, 6 };
	ASSERT_EQ(spb_payload_scan(twice, sizeof twice, &info), 0);
	ASSERT_EQ(info.seq, 6);
}

static void test_scan_malformed(void)
{
	struct spb_payload_info info;
	const uint8_t truncated_varint[] = { 0x18, 0x80 };
	const uint8_t long_varint[] = { 0x18, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 };
	const uint8_t len_past_end[] = { 0x12, 0x05, 0x0a };
	const uint8_t wrong_wire_type[] = { 0x0a, 0x00 };  /* timestamp as LEN */
	const uint8_t group[] = { 0x33, 0x34 };             /* field 6, start group */
	const uint8_t field_zero[] = { 0x00, 0x01 };
	const uint8_t bad_metric[] = { 0x12, 0x02, 0x0a, 0x05 }; /* metric name runs past it */
	const uint8_t metric_wrong_wt[] = { 0x12, 0x02, 0x10 | 2, 0x00 }; /* alias as LEN */
	const uint8_t short_fixed[] = { 0x4d, 1, 2 };
	struct { const uint8_t *p; size_t n; } bad[] = {
		{ truncated_varint, sizeof truncated_varint }, { long_varint, sizeof long_varint },
		{ len_past_end, sizeof len_past_end }, { wrong_wire_type, sizeof wrong_wire_type },
		{ group, sizeof group }, { field_zero, sizeof field_zero },
		{ bad_metric, sizeof bad_metric }, { metric_wrong_wt, sizeof metric_wrong_wt },
		{ short_fixed, sizeof short_fixed },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (spb_payload_scan(bad[i].p, bad[i].n, &info) != -FM_EINVAL)
			CHECK_FAIL("case %zu accepted", i);
		/* whatever the scanner refuses, protoc-c's decoder refuses too */
		Payload *pl = sparkplug_b__payload__unpack(NULL, bad[i].n, bad[i].p);
		if (pl) {
			CHECK_FAIL("case %zu unpacked by protobuf-c", i);
			sparkplug_b__payload__free_unpacked(pl, NULL);
		}
	}
}

/* A bdSeq metric whose value is replaced in the oneof by another member
 * has no integer value; the first named bdSeq with one counts. */
static void test_scan_bdseq_rules(void)
{
	Metric a = SPARKPLUG_B__PAYLOAD__METRIC__INIT, b = SPARKPLUG_B__PAYLOAD__METRIC__INIT,
	       c = SPARKPLUG_B__PAYLOAD__METRIC__INIT;
	a.name = "bdSeq";
	a.value_case = SPARKPLUG_B__PAYLOAD__METRIC__VALUE_STRING_VALUE;
	a.string_value = "3";
	b.name = "bdSeq";
	b.value_case = SPARKPLUG_B__PAYLOAD__METRIC__VALUE_LONG_VALUE;
	b.long_value = 9;
	c.name = "bdSeq";
	c.value_case = SPARKPLUG_B__PAYLOAD__METRIC__VALUE_LONG_VALUE;
	c.long_value = 10;
	Metric *metrics[] = { &a, &b, &c };
	Payload pl = SPARKPLUG_B__PAYLOAD__INIT;
	pl.n_metrics = 3;
	pl.metrics = metrics;
	size_t len;
	uint8_t *buf = pack(&pl, &len);
	struct spb_payload_info info;
	ASSERT_EQ(spb_payload_scan(buf, len, &info), 0);
	ASSERT_EQ(info.metrics, 3);
	ASSERT_TRUE(info.has_bdseq);
	ASSERT_EQ(info.bdseq, 9);
	free(buf);
}

static void test_set_timestamp(void)
{
	Metric m = SPARKPLUG_B__PAYLOAD__METRIC__INIT;
	m.name = "bdSeq";
	m.value_case = SPARKPLUG_B__PAYLOAD__METRIC__VALUE_LONG_VALUE;
	m.long_value = 4;
	Metric *metrics[] = { &m };
	Payload pl = SPARKPLUG_B__PAYLOAD__INIT;
	pl.has_timestamp = 1;
	pl.timestamp = 5;
	pl.n_metrics = 1;
	pl.metrics = metrics;
	pl.uuid = "u-1";
	size_t len;
	uint8_t *buf = pack(&pl, &len);
	uint8_t out[256];
	long n = spb_payload_set_timestamp(buf, len, 1733570000999ULL, out, sizeof out);
	ASSERT_TRUE(n > 0 && (size_t)n <= SPB_SET_TIMESTAMP_MAX(len));
	Payload *back = sparkplug_b__payload__unpack(NULL, (size_t)n, out);
	ASSERT_TRUE(back != NULL);
	if (back) {
		ASSERT_TRUE(back->has_timestamp);
		ASSERT_EQ(back->timestamp, 1733570000999ULL);
		ASSERT_EQ(back->n_metrics, 1);
		ASSERT_TRUE(strcmp(back->metrics[0]->name, "bdSeq") == 0);
		ASSERT_EQ(back->metrics[0]->long_value, 4);
		ASSERT_TRUE(strcmp(back->uuid, "u-1") == 0);
		sparkplug_b__payload__free_unpacked(back, NULL);
	}
	/* no timestamp before: one is added */
	pl.has_timestamp = 0;
	free(buf);
	buf = pack(&pl, &len);
	n = spb_payload_set_timestamp(buf, len, 300, out, sizeof out);
	struct spb_payload_info info;
	ASSERT_TRUE(n > 0);
	ASSERT_EQ(spb_payload_scan(out, (size_t)n, &info), 0);
	ASSERT_TRUE(info.has_timestamp && info.has_bdseq);
	ASSERT_EQ(info.timestamp, 300);
	ASSERT_EQ(info.bdseq, 4);
	/* too small an output, and a malformed input */
	ASSERT_EQ(spb_payload_set_timestamp(buf, len, 300, out, 3), -FM_ELIMIT);
	const uint8_t bad[] = { 0x12, 0x05 };
	ASSERT_EQ(spb_payload_set_timestamp(bad, sizeof bad, 300, out, sizeof out), -FM_EINVAL);
	free(buf);
}

/* ---- STATE ---- */

static void test_state(void)
{
	struct spb_state st;
	ASSERT_EQ(spb_state_parse(S("{\"online\":true,\"timestamp\":1733570000123}"), &st), 0);
	ASSERT_TRUE(st.online);
	ASSERT_EQ(st.timestamp, 1733570000123ULL);
	ASSERT_EQ(spb_state_parse(S(" { \"timestamp\" : 7 , \"x\": \"y\", \"online\" : false,"
				    " \"n\": null, \"f\": -1.5e3 } \n"), &st), 0);
	ASSERT_FALSE(st.online);
	ASSERT_EQ(st.timestamp, 7);
	const char *bad[] = {
		"", "{}", "{\"online\":true}", "{\"timestamp\":1}", "{\"online\":1,\"timestamp\":1}",
		"{\"online\":true,\"timestamp\":-1}", "{\"online\":true,\"timestamp\":1.5}",
		"{\"online\":true,\"timestamp\":\"1\"}", "{\"online\":true,\"timestamp\":1} x",
		"{\"online\":true,\"timestamp\":1,}", "{\"online\":true \"timestamp\":1}",
		"{\"online\":true,\"timestamp\":99999999999999999999}", "[1]",
		"{\"online\":true,\"timestamp\":1,\"o\":{}}", "{\"online\":true,\"timestamp\":01}",
		"OFFLINE",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (spb_state_parse(S(bad[i]), &st) != -FM_EINVAL)
			CHECK_FAIL("accepted %s", bad[i]);
}

int main(void)
{
	RUN(test_topic_edge_node_types);
	RUN(test_topic_device_types);
	RUN(test_topic_state);
	RUN(test_topic_not_sparkplug);
	RUN(test_topic_malformed);
	RUN(test_topic_other_namespace);
	RUN(test_scan_nbirth);
	RUN(test_scan_ndeath);
	RUN(test_scan_empty_and_unknown_fields);
	RUN(test_scan_malformed);
	RUN(test_scan_bdseq_rules);
	RUN(test_set_timestamp);
	RUN(test_state);
	return CHECK_DONE();
}
