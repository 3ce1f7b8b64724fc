/* Unit tests for src/sparkplug: topics, the payload scanner against
 * protoc-c's full decoder, the timestamp rewrite and STATE payloads. */
#include "sparkplug/sparkplug.h"
#include "sparkplug/fleet.h"
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

static void test_certificate_topics(void)
{
	const char *orig;
	size_t olen;
	ASSERT_TRUE(spb_certificate_original(S("$sparkplug/certificates/spBv1.0/g/NBIRTH/e"), &orig, &olen));
	ASSERT_STRN(orig, olen, "spBv1.0/g/NBIRTH/e");
	ASSERT_TRUE(spb_certificate_original(S("$sparkplug/certificates/#"), &orig, &olen));
	ASSERT_STRN(orig, olen, "#");
	ASSERT_FALSE(spb_certificate_original(S("$sparkplug/certificates/"), &orig, &olen));
	ASSERT_FALSE(spb_certificate_original(S("$sparkplug/certificate/x"), &orig, &olen));
	ASSERT_FALSE(spb_certificate_original(S("spBv1.0/g/NBIRTH/e"), &orig, &olen));
	ASSERT_TRUE(spb_reserved_topic(S("$sparkplug")));
	ASSERT_TRUE(spb_reserved_topic(S("$sparkplug/x")));
	ASSERT_TRUE(spb_reserved_topic(S("$sparkplug/certificates/spBv1.0/g/NBIRTH/e")));
	ASSERT_FALSE(spb_reserved_topic(S("$sparkplugs/x")));
	ASSERT_FALSE(spb_reserved_topic(S("$sparkplu")));
	ASSERT_FALSE(spb_reserved_topic(S("sparkplug/x")));
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

/* ---- the fleet view ---- */

/* A payload with seq (when >= 0) and bdSeq (when >= 0) and n more metrics. */
static uint8_t *fleet_payload(int seq, long bdseq, unsigned n, size_t *len)
{
	Metric ms[8], *mp[8];
	Payload pl = SPARKPLUG_B__PAYLOAD__INIT;
	for (unsigned i = 0; i < n + (bdseq >= 0) && i < 8; i++) {
		sparkplug_b__payload__metric__init(&ms[i]);
		mp[i] = &ms[i];
		ms[i].name = (bdseq >= 0 && i == 0) ? "bdSeq" : "m";
		ms[i].value_case = SPARKPLUG_B__PAYLOAD__METRIC__VALUE_LONG_VALUE;
		ms[i].long_value = (bdseq >= 0 && i == 0) ? (uint64_t)bdseq : i;
		pl.n_metrics++;
	}
	pl.metrics = mp;
	pl.has_seq = seq >= 0;
	pl.seq = seq >= 0 ? (uint64_t)seq : 0;
	return pack(&pl, len);
}

static enum spb_fleet_event feed(struct spb_fleet *f, const char *topic, int seq, long bdseq, unsigned n,
				 uint64_t now)
{
	struct spb_topic t;
	if (spb_topic_parse(S(NS), S(topic), &t) != 1)
		abort();
	size_t len;
	uint8_t *p = fleet_payload(seq, bdseq, n, &len);
	enum spb_fleet_event ev = spb_fleet_observe(f, &t, p, len, now);
	free(p);
	return ev;
}

static const struct spb_fleet_entry *find(const struct spb_fleet_entry *e, uint32_t n, uint8_t kind,
					  const char *key)
{
	for (uint32_t i = 0; i < n; i++)
		if (e[i].kind == kind && strcmp(e[i].key, key) == 0)
			return &e[i];
	return NULL;
}

/* [tck-id-message-flow-edge-node-birth-publish-will-message-payload-bdSeq]:
 * an NDEATH of another bdSeq than the current NBIRTH's changes nothing. */
static void test_fleet_bdseq(void)
{
	struct spb_fleet *f = spb_fleet_new(100);
	ASSERT_EQ(feed(f, "spBv1.0/g/NBIRTH/e", 0, 4, 3, 1000), SPB_FLEET_NODE_BIRTH);
	ASSERT_EQ(feed(f, "spBv1.0/g/DBIRTH/e/d", 1, -1, 2, 1001), SPB_FLEET_NOTHING);
	/* the will of the session before (bdSeq 3) arrives late: stale */
	ASSERT_EQ(feed(f, "spBv1.0/g/NDEATH/e", -1, 3, 0, 1002), SPB_FLEET_STALE_DEATH);
	ASSERT_EQ(feed(f, "spBv1.0/g/NDEATH/e", -1, -1, 0, 1002), SPB_FLEET_STALE_DEATH);
	struct spb_fleet_entry *e;
	uint32_t n;
	ASSERT_EQ(spb_fleet_list(f, &e, &n), 0);
	ASSERT_EQ(n, 2);
	const struct spb_fleet_entry *node = find(e, n, SPB_FLEET_NODE, "g/e");
	const struct spb_fleet_entry *dev = find(e, n, SPB_FLEET_DEVICE, "g/e/d");
	ASSERT_TRUE(node && dev);
	if (node && dev) {
		ASSERT_TRUE(node->online && dev->online);
		ASSERT_EQ(node->stale_deaths, 2);
		ASSERT_EQ(node->metrics, 4);
		ASSERT_EQ(node->bdseq, 4);
		ASSERT_EQ(dev->metrics, 2);
		ASSERT_EQ(node->since_ms, 1000);
	}
	free(e);
	/* its own death: node and device offline */
	ASSERT_EQ(feed(f, "spBv1.0/g/NDEATH/e", -1, 4, 0, 2000), SPB_FLEET_NODE_DEATH);
	ASSERT_EQ(spb_fleet_list(f, &e, &n), 0);
	node = find(e, n, SPB_FLEET_NODE, "g/e");
	dev = find(e, n, SPB_FLEET_DEVICE, "g/e/d");
	ASSERT_TRUE(node && dev && !node->online && !dev->online);
	if (node && dev) {
		ASSERT_EQ(node->since_ms, 2000);
		ASSERT_EQ(node->deaths, 1);
		ASSERT_EQ(dev->deaths, 1);
	}
	free(e);
	/* a second death of the same session is stale too */
	ASSERT_EQ(feed(f, "spBv1.0/g/NDEATH/e", -1, 4, 0, 2001), SPB_FLEET_STALE_DEATH);
	struct spb_fleet_totals tot;
	spb_fleet_totals(f, &tot);
	ASSERT_EQ(tot.nodes, 1);
	ASSERT_EQ(tot.nodes_online, 0);
	ASSERT_EQ(tot.devices, 1);
	ASSERT_EQ(tot.node_deaths, 1);
	ASSERT_EQ(tot.stale_deaths, 3);
	spb_fleet_free(f);
}

static void test_fleet_seq_gaps(void)
{
	struct spb_fleet *f = spb_fleet_new(100);
	feed(f, "spBv1.0/g/NBIRTH/e", 254, 0, 1, 1);
	ASSERT_EQ(feed(f, "spBv1.0/g/NDATA/e", 255, -1, 1, 2), SPB_FLEET_NOTHING);
	ASSERT_EQ(feed(f, "spBv1.0/g/DDATA/e/d", 0, -1, 1, 3), SPB_FLEET_NOTHING); /* wraps */
	ASSERT_EQ(feed(f, "spBv1.0/g/NDATA/e", 2, -1, 1, 4), SPB_FLEET_SEQ_GAP);   /* 1 lost */
	ASSERT_EQ(feed(f, "spBv1.0/g/NDATA/e", 3, -1, 1, 5), SPB_FLEET_NOTHING);
	ASSERT_EQ(feed(f, "spBv1.0/g/NCMD/e", 9, -1, 1, 6), SPB_FLEET_NOTHING);    /* a host's */
	ASSERT_EQ(feed(f, "spBv1.0/g/NDATA/e", 4, -1, 1, 7), SPB_FLEET_NOTHING);
	/* a new birth starts again from its own seq */
	feed(f, "spBv1.0/g/NBIRTH/e", 0, 1, 1, 8);
	ASSERT_EQ(feed(f, "spBv1.0/g/NDATA/e", 1, -1, 1, 9), SPB_FLEET_NOTHING);
	struct spb_fleet_totals tot;
	spb_fleet_totals(f, &tot);
	ASSERT_EQ(tot.seq_gaps, 1);
	spb_fleet_free(f);
}

static void test_fleet_bounded(void)
{
	struct spb_fleet *f = spb_fleet_new(3);
	ASSERT_EQ(feed(f, "spBv1.0/g/NBIRTH/a", 0, 0, 1, 1), SPB_FLEET_NODE_BIRTH);
	ASSERT_EQ(feed(f, "spBv1.0/g/NBIRTH/b", 0, 0, 1, 1), SPB_FLEET_NODE_BIRTH);
	ASSERT_EQ(feed(f, "spBv1.0/g/NBIRTH/c", 0, 0, 1, 1), SPB_FLEET_NODE_BIRTH);
	ASSERT_EQ(feed(f, "spBv1.0/g/NBIRTH/d", 0, 0, 1, 1), SPB_FLEET_FULL);
	ASSERT_EQ(feed(f, "spBv1.0/g/DBIRTH/a/x", 1, -1, 1, 1), SPB_FLEET_FULL);
	ASSERT_EQ(feed(f, "spBv1.0/g/NDATA/a", 2, -1, 1, 1), SPB_FLEET_NOTHING); /* a is still tracked */
	struct spb_fleet_totals tot;
	spb_fleet_totals(f, &tot);
	ASSERT_EQ(tot.entries, 3);
	ASSERT_EQ(tot.untracked, 2);
	spb_fleet_free(f);
	/* many entries: the hash grows and finds every one again */
	f = spb_fleet_new(5000);
	char topic[64];
	for (int i = 0; i < 4000; i++) {
		snprintf(topic, sizeof topic, "spBv1.0/g%d/NBIRTH/e%d", i % 7, i);
		feed(f, topic, 0, i, 1, 1);
	}
	for (int i = 0; i < 4000; i++) {
		snprintf(topic, sizeof topic, "spBv1.0/g%d/NDEATH/e%d", i % 7, i);
		if (feed(f, topic, -1, i, 0, 2) != SPB_FLEET_NODE_DEATH)
			CHECK_FAIL("node %d not found", i);
	}
	spb_fleet_totals(f, &tot);
	ASSERT_EQ(tot.nodes, 4000);
	ASSERT_EQ(tot.nodes_online, 0);
	spb_fleet_free(f);
}

static void test_fleet_state_and_malformed(void)
{
	struct spb_fleet *f = spb_fleet_new(10);
	struct spb_topic t;
	ASSERT_EQ(spb_topic_parse(S(NS), S("spBv1.0/STATE/scada"), &t), 1);
	const char *on = "{\"online\":true,\"timestamp\":500}";
	const char *old_off = "{\"online\":false,\"timestamp\":400}";
	const char *off = "{\"online\":false,\"timestamp\":600}";
	spb_fleet_observe(f, &t, (const uint8_t *)on, strlen(on), 10);
	spb_fleet_observe(f, &t, (const uint8_t *)old_off, strlen(old_off), 11); /* older: ignored */
	struct spb_fleet_totals tot;
	spb_fleet_totals(f, &tot);
	ASSERT_EQ(tot.hosts_online, 1);
	spb_fleet_observe(f, &t, (const uint8_t *)off, strlen(off), 12);
	spb_fleet_totals(f, &tot);
	ASSERT_EQ(tot.hosts, 1);
	ASSERT_EQ(tot.hosts_online, 0);
	ASSERT_EQ(spb_fleet_observe(f, &t, (const uint8_t *)"x", 1, 13), SPB_FLEET_MALFORMED);
	ASSERT_EQ(spb_topic_parse(S(NS), S("spBv1.0/g/NDATA/e"), &t), 1);
	const uint8_t bad[] = { 0x12, 0x09 };
	ASSERT_EQ(spb_fleet_observe(f, &t, bad, sizeof bad, 14), SPB_FLEET_MALFORMED);
	spb_fleet_malformed_topic(f);
	spb_fleet_totals(f, &tot);
	ASSERT_EQ(tot.malformed, 3);
	ASSERT_EQ(tot.nodes, 0); /* a malformed payload makes no entry */
	spb_fleet_free(f);
}

int main(void)
{
	RUN(test_topic_edge_node_types);
	RUN(test_topic_device_types);
	RUN(test_topic_state);
	RUN(test_topic_not_sparkplug);
	RUN(test_topic_malformed);
	RUN(test_topic_other_namespace);
	RUN(test_certificate_topics);
	RUN(test_scan_nbirth);
	RUN(test_scan_ndeath);
	RUN(test_scan_empty_and_unknown_fields);
	RUN(test_scan_malformed);
	RUN(test_scan_bdseq_rules);
	RUN(test_set_timestamp);
	RUN(test_state);
	RUN(test_fleet_bdseq);
	RUN(test_fleet_seq_gaps);
	RUN(test_fleet_bounded);
	RUN(test_fleet_state_and_malformed);
	return CHECK_DONE();
}
