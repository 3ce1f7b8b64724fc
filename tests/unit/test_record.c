/* The record batch codec: every type round-trips field for field, and
 * malformed bytes are refused without reading outside them. */
#include "check.h"
#include "base/buf.h"
#include "base/err.h"
#include "store/le.h"
#include "store/record.h"
#include <stdlib.h>

static struct rec_bytes B(const char *s)
{
	return (struct rec_bytes){ (const uint8_t *)s, (uint32_t)strlen(s) };
}

static bool same_bytes(struct rec_bytes a, struct rec_bytes b)
{
	return a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len));
}

/* Every field of r, distinct values, for every type; the codec keeps only
 * the type's own fields. */
static const uint32_t sub_ids[] = { 7, 70000, 1 };

static struct record sample(uint8_t type)
{
	return (struct record){
		.type = type, .qos = 2, .retain = 1, .flags = 0x11, .state = 3, .version = 5, .has_user = true,
		.pid = 65535, .queued_s = 1700000000, .expiry_interval = UINT32_MAX, .will_delay = 30,
		.sub_id = 268435455, .sid = UINT64_MAX, .seq = 1ull << 40, .id = 99, .expires_at = 123456789012ull,
		.will_at = 42, .expiry_at = 77, .origin = 5, .text = B("plants/1/devices/2/#"), .user = B("gw-7"),
		.topic = B("plants/1/t"), .props = B("\x03\x00\x04json"), .payload = B("{\"v\":21.5}"),
		.sub_ids = { (const uint8_t *)sub_ids, sizeof sub_ids },
	};
}

static void test_round_trip_every_type(void)
{
	struct buf b = { 0 };
	ASSERT_EQ(rec_batch_start(&b), 0);
	for (uint8_t t = REC_BODY; t < REC__END; t++) {
		struct record r = sample(t);
		ASSERT_EQ(rec_append(&b, &r), 0);
	}
	ASSERT_EQ(rec_batch_count(&b), REC__END - 1);
	struct rec_reader rd;
	ASSERT_EQ(rec_reader_init(&rd, b.p, b.len), 0);
	struct record r;
	for (uint8_t t = REC_BODY; t < REC__END; t++) {
		ASSERT_EQ(rec_next(&rd, &r), 1);
		ASSERT_EQ(r.type, t);
		struct record w = sample(t);
		switch (t) {
		case REC_BODY:
			ASSERT_EQ(r.id, w.id);
			ASSERT_EQ(r.qos, w.qos);
			ASSERT_EQ(r.retain, w.retain);
			ASSERT_EQ(r.expiry_at, w.expiry_at);
			ASSERT_EQ(r.origin, w.origin);
			ASSERT_TRUE(same_bytes(r.topic, w.topic) && same_bytes(r.props, w.props) &&
				    same_bytes(r.payload, w.payload));
			ASSERT_EQ(r.sid, 0); /* not a field of a body */
			break;
		case REC_QUEUE_ADD:
			ASSERT_TRUE(r.sid == w.sid && r.seq == w.seq && r.id == w.id);
			ASSERT_TRUE(r.qos == w.qos && r.flags == w.flags && r.state == w.state);
			ASSERT_EQ(r.queued_s, w.queued_s);
			ASSERT_TRUE(same_bytes(r.sub_ids, w.sub_ids));
			break;
		case REC_SESSION_PUT:
			ASSERT_TRUE(r.sid == w.sid && same_bytes(r.text, w.text) && same_bytes(r.user, w.user));
			ASSERT_TRUE(r.expiry_interval == w.expiry_interval && r.expires_at == w.expires_at);
			ASSERT_TRUE(r.version == w.version && r.id == w.id && r.will_delay == w.will_delay);
			ASSERT_TRUE(r.will_at == w.will_at && r.has_user);
			break;
		case REC_SUB_PUT:
			ASSERT_TRUE(r.sid == w.sid && same_bytes(r.text, w.text) && r.flags == w.flags);
			ASSERT_EQ(r.sub_id, w.sub_id);
			break;
		case REC_RX2_ADD:
		case REC_RX2_DEL:
			ASSERT_TRUE(r.sid == w.sid && r.pid == w.pid);
			break;
		case REC_RETAIN_PUT:
		case REC_SPOOL_ADD:
			ASSERT_TRUE(r.seq == w.seq && r.id == w.id && same_bytes(r.text, w.text));
			break;
		case REC_BODY_DROP:
			ASSERT_TRUE(r.id == w.id && r.sid == 0 && r.seq == 0);
			break;
		default:
			ASSERT_EQ(r.sid, t == REC_RETAIN_DEL || t == REC_SPOOL_DEL ? 0 : w.sid);
			break;
		}
	}
	ASSERT_EQ(rec_next(&rd, &r), 0);
	buf_free(&b);
}

static void test_empty_strings_and_no_user(void)
{
	struct buf b = { 0 };
	rec_batch_start(&b);
	struct record r = { .type = REC_SESSION_PUT, .sid = 1 };
	ASSERT_EQ(rec_append(&b, &r), 0);
	struct rec_reader rd;
	struct record got;
	ASSERT_EQ(rec_reader_init(&rd, b.p, b.len), 0);
	ASSERT_EQ(rec_next(&rd, &got), 1);
	ASSERT_TRUE(!got.has_user && got.text.len == 0 && got.user.len == 0);
	ASSERT_EQ(rec_next(&rd, &got), 0);
	buf_free(&b);
}

static void test_refuses_unknown_types(void)
{
	struct buf b = { 0 };
	rec_batch_start(&b);
	ASSERT_EQ(rec_append(&b, &(struct record){ .type = 0 }), -FM_EINVAL);
	ASSERT_EQ(rec_append(&b, &(struct record){ .type = REC__END }), -FM_EINVAL);
	ASSERT_EQ(rec_batch_count(&b), 0);
	buf_free(&b);
}

/* Every prefix of a good batch, and every single-byte change to its
 * framing, is refused or read within bounds (ASan checks the bounds). */
static void test_malformed(void)
{
	struct buf b = { 0 };
	rec_batch_start(&b);
	struct record q = sample(REC_QUEUE_ADD), d = sample(REC_SUB_DEL);
	rec_append(&b, &q);
	rec_append(&b, &d);
	struct rec_reader rd;
	struct record r;
	for (uint32_t n = 0; n < b.len; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, b.p, n);
		int rc = rec_reader_init(&rd, copy, n);
		int got = 0, last;
		while (!rc && (last = rec_next(&rd, &r)) == 1)
			got++;
		ASSERT_TRUE(rc || last < 0); /* a cut batch is never read as whole */
		ASSERT_TRUE(got < 2);
		free(copy);
	}
	/* Bytes after the last record. */
	uint8_t *longer = malloc(b.len + 1);
	memcpy(longer, b.p, b.len);
	longer[b.len] = 0;
	ASSERT_EQ(rec_reader_init(&rd, longer, b.len + 1), 0);
	ASSERT_EQ(rec_next(&rd, &r), 1);
	ASSERT_EQ(rec_next(&rd, &r), 1);
	ASSERT_EQ(rec_next(&rd, &r), -FM_EPROTO);
	free(longer);
	/* A wrong version, a count no batch of that size can hold. */
	b.p[4] = 2;
	ASSERT_EQ(rec_reader_init(&rd, b.p, b.len), -FM_EPROTO);
	b.p[4] = REC_BATCH_VERSION;
	b.p[8] = b.p[9] = b.p[10] = b.p[11] = 0xFF;
	ASSERT_EQ(rec_reader_init(&rd, b.p, b.len), -FM_EPROTO);
	buf_free(&b);
}

/* The bytes on the wire, whatever the host: little-endian integers of each
 * width (one load or store on this host, byte by byte elsewhere), and a
 * record laid out as record.h says. */
static void test_little_endian_bytes(void)
{
	static const uint8_t want[8] = { 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01 };
	const uint64_t v = 0x0102030405060708ull;
	for (int n = 1; n <= 8; n++) {
		uint8_t got[9];
		memset(got, 0xEE, sizeof got);
		put_le(got, v, n);
		ASSERT_MEM(got, want, (size_t)n);
		ASSERT_EQ(got[n], 0xEE); /* nothing past the width */
		ASSERT_EQ(get_le(want, n), n == 8 ? v : v & ((1ull << (8 * n)) - 1));
	}
	struct buf b = { 0 };
	ASSERT_EQ(rec_batch_start(&b), 0);
	struct record r = { .type = REC_QUEUE_STATE, .sid = v, .seq = 0x1122, .state = 3 };
	ASSERT_EQ(rec_append(&b, &r), 0);
	static const uint8_t rec[] = { 'F', 'M', 'R', 'B', 1, 0, 0, 0, 1, 0, 0, 0,
				       REC_QUEUE_STATE, 17, 0, 0, 0,
				       0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
				       0x22, 0x11, 0, 0, 0, 0, 0, 0,
				       3 };
	ASSERT_EQ(b.len, sizeof rec);
	ASSERT_MEM(b.p, rec, sizeof rec);
	buf_free(&b);
}

int main(void)
{
	RUN(test_little_endian_bytes);
	RUN(test_round_trip_every_type);
	RUN(test_empty_strings_and_no_user);
	RUN(test_refuses_unknown_types);
	RUN(test_malformed);
	return CHECK_DONE();
}
