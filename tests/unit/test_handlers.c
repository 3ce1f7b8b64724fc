/* Unit tests of the packet handlers through the broker harness: raw MQTT
 * bytes in, the bytes the broker sends back and the store records it
 * submits out. Each test builds its own broker; leaks and reference
 * imbalances are caught by ASan's leak checker and harness_free. */
#include "broker_harness.h"
#include "base/err.h"
#include "base/log.h"
#include "auth/auth.h"
#include "check.h"
#include <stdlib.h>
#include <unistd.h>
#include "base/clock.h"
#include <stdint.h>

static const char *const durable_lines[] = { "persistence true", NULL };

static struct harness *mk(const char *const *lines, enum harness_store store)
{
	char err[256];
	struct harness *h = harness_new(lines, 2, store, err, sizeof err);
	if (!h) {
		fprintf(stderr, "harness_new: %s\n", err);
		exit(1);
	}
	return h;
}

static void done(struct harness *h) { ASSERT_EQ(harness_free(h), 0); }

/* Sends what b holds (then empties it). */
static int send_buf(struct harness *h, struct fake_conn *fc, struct buf *b)
{
	int rc = harness_send(h, fc, b->p, b->len);
	b->len = 0;
	return rc;
}

/* Reads the next packet sent to fc, which must be of `type`. */
static bool expect(struct fake_conn *fc, uint8_t type, struct mqtt_packet *pk)
{
	int rc = harness_read(fc, pk);
	if (rc != 1) {
		CHECK_FAIL("expected %s, read returned %d (%zu bytes unread)", mqtt_type_name(type), rc,
			   harness_unread(fc));
		return false;
	}
	if (pk->type != type) {
		CHECK_FAIL("expected %s, got %s", mqtt_type_name(type), mqtt_type_name(pk->type));
		return false;
	}
	return true;
}

/* A connection that sent CONNECT o and got CONNACK 0 back (the store
 * completes first when it is MANUAL and the CONNACK waits for it). */
static struct fake_conn *connect_ok(struct harness *h, int worker, const struct harness_connect_opts *o,
				    bool *present)
{
	struct fake_conn *fc = harness_connect(h, worker);
	struct buf b = { 0 };
	fc->version = o->version == MQTT_V31 ? MQTT_V311 : o->version;
	harness_enc_connect(&b, o);
	ASSERT_EQ(send_buf(h, fc, &b), 0);
	buf_free(&b);
	if (!harness_unread(fc) && h->store_mode == HARNESS_STORE_MANUAL)
		harness_store_complete(h, 0);
	struct mqtt_packet pk;
	if (expect(fc, MQTT_CONNACK, &pk)) {
		ASSERT_EQ(pk.u.connack.rc, 0);
		if (present)
			*present = pk.u.connack.session_present;
	}
	return fc;
}

static void subscribe_ok(struct harness *h, struct fake_conn *fc, const char *filter, uint8_t qos)
{
	struct buf b = { 0 };
	harness_enc_subscribe(&b, fc->version, 1, &filter, &qos, 1);
	ASSERT_EQ(send_buf(h, fc, &b), 0);
	buf_free(&b);
	if (!harness_unread(fc) && h->store_mode == HARNESS_STORE_MANUAL)
		harness_store_complete(h, 0);
	struct mqtt_packet pk;
	if (expect(fc, MQTT_SUBACK, &pk)) {
		ASSERT_EQ(pk.u.suback.n, 1);
		ASSERT_EQ(pk.u.suback.rcs[0], qos);
	}
}

static void publish(struct harness *h, struct fake_conn *fc, const char *topic, const char *payload, uint8_t qos,
		    uint16_t pid)
{
	struct buf b = { 0 };
	harness_enc_publish(&b, fc->version, topic, payload, qos, pid, false);
	ASSERT_EQ(send_buf(h, fc, &b), 0);
	buf_free(&b);
}

static void send_ack(struct harness *h, struct fake_conn *fc, uint8_t type, uint16_t pid)
{
	struct buf b = { 0 };
	harness_enc_ack(&b, fc->version, type, pid, 0);
	ASSERT_EQ(send_buf(h, fc, &b), 0);
	buf_free(&b);
}

/* The next packet is a PUBLISH of topic/payload at qos; returns its id. */
static uint16_t expect_publish(struct fake_conn *fc, const char *topic, const char *payload, uint8_t qos)
{
	struct mqtt_packet pk;
	if (!expect(fc, MQTT_PUBLISH, &pk))
		return 0;
	ASSERT_STRN(pk.u.publish.topic.p, pk.u.publish.topic.len, topic);
	ASSERT_STRN(pk.u.publish.payload.p, pk.u.publish.payload.len, payload);
	ASSERT_EQ(pk.u.publish.qos, qos);
	return pk.u.publish.pid;
}

static void expect_ack(struct fake_conn *fc, uint8_t type, uint16_t pid, uint8_t rc)
{
	struct mqtt_packet pk;
	if (expect(fc, type, &pk)) {
		ASSERT_EQ(pk.u.ack.pid, pid);
		ASSERT_EQ(pk.u.ack.rc, rc);
	}
}

/* Byte-exact v3.1.1: CONNECT -> CONNACK, PINGREQ -> PINGRESP, DISCONNECT
 * closes without a reply [MQTT-3.2.2, 3.12.4, 3.14.4]. */
static void test_connect_v311_bytes(void)
{
	struct harness *h = mk(NULL, HARNESS_STORE_AUTO);
	struct fake_conn *fc = harness_connect(h, 0);
	static const uint8_t connect[] = { 0x10, 0x0e, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c,
					   0x00, 0x02, 'c', '1' };
	static const uint8_t connack[] = { 0x20, 0x02, 0x00, 0x00 };
	static const uint8_t pingreq[] = { 0xc0, 0x00 }, pingresp[] = { 0xd0, 0x00 };
	static const uint8_t disconnect[] = { 0xe0, 0x00 };
	/* In two pieces: the broker keeps the incomplete part. */
	ASSERT_EQ(harness_send(h, fc, connect, 5), 0);
	ASSERT_EQ(harness_unread(fc), 0);
	ASSERT_EQ(harness_send(h, fc, connect + 5, sizeof connect - 5), 0);
	ASSERT_EQ(harness_unread(fc), sizeof connack);
	ASSERT_MEM(fc->out.p + fc->read_off, connack, sizeof connack);
	harness_skip(fc);
	ASSERT_EQ(h->n_submitted, 0); /* a clean session writes nothing */
	ASSERT_EQ(harness_send(h, fc, pingreq, sizeof pingreq), 0);
	ASSERT_EQ(harness_unread(fc), sizeof pingresp);
	ASSERT_MEM(fc->out.p + fc->read_off, pingresp, sizeof pingresp);
	harness_skip(fc);
	ASSERT_EQ(harness_send(h, fc, disconnect, sizeof disconnect), -1);
	ASSERT_TRUE(fc->gone);
	ASSERT_FALSE(fc->aborted);
	ASSERT_EQ(harness_unread(fc), 0);
	done(h);
}

/* v5 with an empty client id: the server assigns one and says so
 * [MQTT-3.2.2-16]; its limits come as properties. */
static void test_connect_v5_assigned_id(void)
{
	struct harness *h = mk((const char *const[]){ "max_topic_alias 7", "max_keepalive 60", NULL }, HARNESS_NO_STORE);
	struct fake_conn *fc = harness_connect(h, 1);
	fc->version = MQTT_V5;
	struct buf b = { 0 };
	harness_enc_connect(&b, &(struct harness_connect_opts){ .version = MQTT_V5, .id = "", .clean = true,
								.keepalive = 0 });
	ASSERT_EQ(send_buf(h, fc, &b), 0);
	buf_free(&b);
	struct mqtt_packet pk;
	if (expect(fc, MQTT_CONNACK, &pk)) {
		const struct mqtt_props *pr = &pk.u.connack.props;
		ASSERT_EQ(pk.u.connack.rc, 0);
		ASSERT_FALSE(pk.u.connack.session_present);
		ASSERT_TRUE(pr->have & MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID));
		ASSERT_TRUE(pr->assigned_client_id.len > 3 && !memcmp(pr->assigned_client_id.p, "fm-", 3));
		ASSERT_TRUE(pr->have & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM));
		ASSERT_EQ(pr->topic_alias_maximum, 7);
		/* keep-alive 0 asked for, max_keepalive 60 imposed [MQTT-3.2.2-21] */
		ASSERT_TRUE(pr->have & MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE));
		ASSERT_EQ(pr->server_keep_alive, 60);
	}
	ASSERT_EQ(harness_unread(fc), 0);
	done(h);
}

/* A refused CONNECT gets the version's code and the connection closes. */
struct refusal {
	const char *name;
	const char *const *lines;
	struct harness_connect_opts o;
	uint8_t rc;
};

static void test_connect_refusals(void)
{
	static const char *const no_anon[] = { "allow_anonymous false", NULL };
	const struct refusal cases[] = {
		{ "v5 anonymous", no_anon, { .version = MQTT_V5, .id = "a", .clean = true }, MQTT_RC_NOT_AUTHORIZED },
		{ "v3.1.1 anonymous", no_anon, { .version = MQTT_V311, .id = "a", .clean = true }, MQTT_V3_NOT_AUTHORIZED },
		{ "v3.1 anonymous", no_anon, { .version = MQTT_V31, .id = "a", .clean = true }, MQTT_V3_NOT_AUTHORIZED },
		{ "v5 authentication method", NULL,
		  { .version = MQTT_V5, .id = "a", .clean = true, .auth_method = "SCRAM-SHA-1" }, MQTT_RC_BAD_AUTH_METHOD },
		{ "v3.1.1 empty id, persistent", NULL, { .version = MQTT_V311, .id = "", .clean = false },
		  MQTT_V3_ID_REJECTED },
		{ "v5 will on $SYS", NULL,
		  { .version = MQTT_V5, .id = "a", .clean = true, .will_topic = "$SYS/x", .will_payload = "w" },
		  MQTT_RC_NOT_AUTHORIZED },
		{ "v3.1.1 will on $SYS", NULL,
		  { .version = MQTT_V311, .id = "a", .clean = true, .will_topic = "$SYS/x", .will_payload = "w" },
		  MQTT_V3_NOT_AUTHORIZED },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct refusal *r = &cases[i];
		struct harness *h = mk(r->lines, HARNESS_STORE_AUTO);
		struct fake_conn *fc = harness_connect(h, 0);
		fc->version = r->o.version == MQTT_V31 ? MQTT_V311 : r->o.version;
		struct buf b = { 0 };
		harness_enc_connect(&b, &r->o);
		int rc = send_buf(h, fc, &b);
		buf_free(&b);
		struct mqtt_packet pk;
		if (rc != -1 || !fc->gone)
			CHECK_FAIL("%s: connection not closed", r->name);
		if (expect(fc, MQTT_CONNACK, &pk) && pk.u.connack.rc != r->rc)
			CHECK_FAIL("%s: CONNACK 0x%02x, expected 0x%02x", r->name, pk.u.connack.rc, r->rc);
		ASSERT_EQ(harness_unread(fc), 0);
		ASSERT_EQ(h->b->stats.clients_connected, 0);
		done(h);
	}
	/* Protocol level 6: v3.1.1's "unacceptable protocol version" [MQTT-3.1.2-2]. */
	struct harness *h = mk(NULL, HARNESS_NO_STORE);
	struct fake_conn *fc = harness_connect(h, 0);
	static const uint8_t level6[] = { 0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x3c,
					  0x00, 0x01, 'x' };
	static const uint8_t connack1[] = { 0x20, 0x02, 0x00, 0x01 };
	ASSERT_EQ(harness_send(h, fc, level6, sizeof level6), -1);
	ASSERT_TRUE(fc->gone);
	ASSERT_EQ(harness_unread(fc), sizeof connack1);
	ASSERT_MEM(fc->out.p + fc->read_off, connack1, sizeof connack1);
	done(h);
}

/* The first packet must be CONNECT [MQTT-3.1.0-1], and only the first [MQTT-3.1.0-2]. */
static void test_connect_order(void)
{
	struct harness *h = mk(NULL, HARNESS_NO_STORE);
	struct fake_conn *early = harness_connect(h, 0);
	static const uint8_t pingreq[] = { 0xc0, 0x00 };
	ASSERT_EQ(harness_send(h, early, pingreq, sizeof pingreq), -1);
	ASSERT_TRUE(early->gone);
	ASSERT_EQ(harness_unread(early), 0);

	struct harness_connect_opts o = { .version = MQTT_V5, .id = "twice", .clean = true };
	struct fake_conn *fc = connect_ok(h, 1, &o, NULL);
	struct buf b = { 0 };
	harness_enc_connect(&b, &o);
	ASSERT_EQ(send_buf(h, fc, &b), -1);
	buf_free(&b);
	struct mqtt_packet pk;
	if (expect(fc, MQTT_DISCONNECT, &pk))
		ASSERT_EQ(pk.u.reason.rc, MQTT_RC_PROTOCOL_ERROR);
	ASSERT_TRUE(fc->gone);
	done(h);
}

/* A malformed packet closes the connection: v5 learns why (DISCONNECT
 * 0x81), v3 just sees the close; the broker stays up for others. */
static void test_malformed_closes(void)
{
	struct harness *h = mk(NULL, HARNESS_STORE_AUTO);
	struct fake_conn *v5 = connect_ok(h, 0, &(struct harness_connect_opts){ .version = MQTT_V5, .id = "m5",
										  .clean = true }, NULL);
	struct fake_conn *v3 = connect_ok(h, 1, &(struct harness_connect_opts){ .version = MQTT_V311, .id = "m3",
										  .clean = true }, NULL);
	/* PUBLISH whose topic is not UTF-8 (0xff) [MQTT-1.5.4-1]. */
	static const uint8_t bad_topic[] = { 0x30, 0x05, 0x00, 0x01, 0xff, 'h', 'i' };
	ASSERT_EQ(harness_send(h, v5, bad_topic, sizeof bad_topic), -1);
	struct mqtt_packet pk;
	if (expect(v5, MQTT_DISCONNECT, &pk))
		ASSERT_EQ(pk.u.reason.rc, MQTT_RC_MALFORMED);
	ASSERT_TRUE(v5->gone);
	/* A Remaining Length of five bytes [MQTT-1.5.5]. */
	static const uint8_t bad_length[] = { 0x30, 0xff, 0xff, 0xff, 0xff, 0x7f };
	ASSERT_EQ(harness_send(h, v3, bad_length, sizeof bad_length), -1);
	ASSERT_TRUE(v3->gone);
	ASSERT_EQ(harness_unread(v3), 0);
	struct fake_conn *after = connect_ok(h, 0, &(struct harness_connect_opts){ .version = MQTT_V311, .id = "ok",
										     .clean = true }, NULL);
	ASSERT_FALSE(after->gone);
	done(h);
}

/* SUBACK codes per filter, v3 and v5 [MQTT-3.9.3]. */
static void test_subscribe_suback(void)
{
	struct harness *h = mk(NULL, HARNESS_STORE_AUTO);
	static const char *const filters[] = { "a/b", "a/+", "a/#", "a/#/b" };
	static const uint8_t opts[] = { 0, 1, 2, 1 };
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		struct fake_conn *fc = connect_ok(h, version & 1, &(struct harness_connect_opts){
			.version = version, .id = version == MQTT_V5 ? "s5" : "s3", .clean = true }, NULL);
		struct buf b = { 0 };
		harness_enc_subscribe(&b, version, 42, filters, opts, 4);
		ASSERT_EQ(send_buf(h, fc, &b), 0);
		buf_free(&b);
		struct mqtt_packet pk;
		uint8_t bad = version == MQTT_V5 ? MQTT_RC_TOPIC_FILTER_INVALID : MQTT_V3_SUBACK_FAILURE;
		if (expect(fc, MQTT_SUBACK, &pk)) {
			ASSERT_EQ(pk.u.suback.pid, 42);
			ASSERT_EQ(pk.u.suback.n, 4);
			if (pk.u.suback.n == 4) {
				ASSERT_EQ(pk.u.suback.rcs[0], 0);
				ASSERT_EQ(pk.u.suback.rcs[1], 1);
				ASSERT_EQ(pk.u.suback.rcs[2], 2);
				ASSERT_EQ(pk.u.suback.rcs[3], bad);
			}
		}
	}
	done(h);
}

/* A durable session's CONNACK and SUBACK wait for its records' commit. */
static void test_durable_replies_wait_for_store(void)
{
	struct harness *h = mk(durable_lines, HARNESS_STORE_MANUAL);
	struct fake_conn *fc = harness_connect(h, 0);
	fc->version = MQTT_V5;
	struct buf b = { 0 };
	harness_enc_connect(&b, &(struct harness_connect_opts){ .version = MQTT_V5, .id = "d", .clean = true,
								.session_expiry = 3600 });
	ASSERT_EQ(send_buf(h, fc, &b), 0);
	ASSERT_EQ(harness_unread(fc), 0);
	ASSERT_EQ(harness_pending_ops(h, ST_SESSION_PUT), 1);
	ASSERT_EQ(harness_store_complete(h, 0), 1);
	struct mqtt_packet pk;
	if (expect(fc, MQTT_CONNACK, &pk))
		ASSERT_EQ(pk.u.connack.rc, 0);
	const char *filter = "plant/#";
	uint8_t qos = 1;
	harness_enc_subscribe(&b, MQTT_V5, 5, &filter, &qos, 1);
	ASSERT_EQ(send_buf(h, fc, &b), 0);
	buf_free(&b);
	ASSERT_EQ(harness_unread(fc), 0);
	ASSERT_EQ(harness_pending_ops(h, ST_SUB_PUT), 1);
	harness_store_complete(h, 0);
	if (expect(fc, MQTT_SUBACK, &pk))
		ASSERT_EQ(pk.u.suback.pid, 5);
	done(h);
}

/* QoS 0 crosses workers to a subscriber; nothing is acknowledged or stored. */
static void test_qos0_routed(void)
{
	struct harness *h = mk(durable_lines, HARNESS_STORE_AUTO);
	struct fake_conn *sub = connect_ok(h, 1, &(struct harness_connect_opts){ .version = MQTT_V311, .id = "sub",
										   .clean = true }, NULL);
	subscribe_ok(h, sub, "line/+/temp", 0);
	struct fake_conn *pub = connect_ok(h, 0, &(struct harness_connect_opts){ .version = MQTT_V5, .id = "pub",
										   .clean = true }, NULL);
	uint32_t submitted = h->n_submitted;
	publish(h, pub, "line/4/temp", "21.5", 0, 0);
	expect_publish(sub, "line/4/temp", "21.5", 0);
	ASSERT_EQ(harness_unread(pub), 0);
	ASSERT_EQ(h->n_submitted, submitted);
	done(h);
}

/* QoS 1 to a durable subscriber: the PUBACK waits for the queue entry's
 * commit; a failed commit is answered 0x80 (0x97 for a full store) on v5
 * and with a close on v3, which has no negative acknowledgement. */
static void test_qos1_puback_after_commit(void)
{
	static const int errs[] = { 0, -FM_EIO, -FM_ELIMIT };
	static const uint8_t v5_rc[] = { 0, MQTT_RC_UNSPECIFIED, MQTT_RC_QUOTA_EXCEEDED };
	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		for (size_t i = 0; i < 3; i++) {
			struct harness *h = mk(durable_lines, HARNESS_STORE_MANUAL);
			struct fake_conn *sub = connect_ok(h, 1, &(struct harness_connect_opts){
				.version = MQTT_V311, .id = "hist", .clean = false }, NULL);
			subscribe_ok(h, sub, "plant/#", 1);
			struct fake_conn *pub = connect_ok(h, 0, &(struct harness_connect_opts){
				.version = version, .id = "gw", .clean = true }, NULL);
			publish(h, pub, "plant/a", "1", 1, 7);
			ASSERT_EQ(harness_unread(pub), 0);
			ASSERT_EQ(harness_pending_ops(h, ST_QUEUE_ADD), 1);
			harness_store_complete(h, errs[i]);
			if (!errs[i] || version == MQTT_V5) {
				expect_ack(pub, MQTT_PUBACK, 7, v5_rc[i]);
				ASSERT_FALSE(pub->gone);
			} else {
				ASSERT_TRUE(pub->gone);
				ASSERT_EQ(harness_unread(pub), 0);
			}
			done(h);
		}
	}
	/* No subscriber: v5 says so [MQTT-3.4.2.1, 0x10]; nothing waits. */
	struct harness *h = mk(durable_lines, HARNESS_STORE_MANUAL);
	struct fake_conn *pub = connect_ok(h, 0, &(struct harness_connect_opts){ .version = MQTT_V5, .id = "gw",
										   .clean = true }, NULL);
	publish(h, pub, "nobody/listens", "x", 1, 3);
	expect_ack(pub, MQTT_PUBACK, 3, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	ASSERT_EQ(h->n_pending, 0);
	done(h);
}

/* QoS 2 both ways between durable sessions: the subscriber sees the
 * message only once its PUBREC state is committed; PUBREC, PUBCOMP and
 * the PUBREL to the subscriber each follow a commit. */
static void test_qos2_flow(void)
{
	struct harness *h = mk(durable_lines, HARNESS_STORE_MANUAL);
	struct fake_conn *sub = connect_ok(h, 1, &(struct harness_connect_opts){ .version = MQTT_V5, .id = "cmdsink",
										   .clean = true, .session_expiry = 600 }, NULL);
	subscribe_ok(h, sub, "cmd/#", 2);
	struct fake_conn *pub = connect_ok(h, 0, &(struct harness_connect_opts){ .version = MQTT_V5, .id = "scada",
										   .clean = true, .session_expiry = 600 }, NULL);
	publish(h, pub, "cmd/valve", "open", 2, 9);
	ASSERT_EQ(harness_pending_ops(h, ST_RX2_ADD), 1);
	ASSERT_EQ(harness_pending_ops(h, ST_QUEUE_ADD), 1);
	ASSERT_EQ(harness_unread(pub), 0);
	ASSERT_EQ(harness_unread(sub), 0); /* held until committed */
	harness_store_complete(h, 0);
	expect_ack(pub, MQTT_PUBREC, 9, 0);
	uint16_t pid = expect_publish(sub, "cmd/valve", "open", 2);
	ASSERT_TRUE(pid != 0);

	send_ack(h, pub, MQTT_PUBREL, 9);
	ASSERT_EQ(harness_pending_ops(h, ST_RX2_DEL), 1);
	ASSERT_EQ(harness_unread(pub), 0);
	harness_store_complete(h, 0);
	expect_ack(pub, MQTT_PUBCOMP, 9, 0);

	send_ack(h, sub, MQTT_PUBREC, pid);
	ASSERT_EQ(harness_pending_ops(h, ST_QUEUE_STATE), 1);
	ASSERT_EQ(harness_unread(sub), 0);
	harness_store_complete(h, 0);
	expect_ack(sub, MQTT_PUBREL, pid, 0);
	send_ack(h, sub, MQTT_PUBCOMP, pid);
	ASSERT_EQ(harness_pending_ops(h, ST_QUEUE_DEL), 1);
	harness_store_complete(h, 0);
	ASSERT_EQ(harness_unread(sub), 0);
	ASSERT_EQ(harness_unread(pub), 0);
	done(h);
}

/* A QoS 2 PUBLISH whose commit failed is refused with PUBREC 0x80 and its
 * packet id is free again: the resend is a new message [MQTT-4.3.3]. */
static void test_qos2_store_failure(void)
{
	struct harness *h = mk(durable_lines, HARNESS_STORE_MANUAL);
	struct fake_conn *pub = connect_ok(h, 0, &(struct harness_connect_opts){ .version = MQTT_V5, .id = "scada",
										   .clean = true, .session_expiry = 600 }, NULL);
	publish(h, pub, "cmd/pump", "stop", 2, 11);
	ASSERT_EQ(harness_pending_ops(h, ST_RX2_ADD), 1);
	harness_store_complete(h, -FM_EIO);
	expect_ack(pub, MQTT_PUBREC, 11, MQTT_RC_UNSPECIFIED);
	publish(h, pub, "cmd/pump", "stop", 2, 11);
	ASSERT_EQ(harness_pending_ops(h, ST_RX2_ADD), 1);
	harness_store_complete(h, 0);
	expect_ack(pub, MQTT_PUBREC, 11, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	done(h);
}

/* A will fires when the connection ends without DISCONNECT, and with a v5
 * DISCONNECT 0x04; a normal DISCONNECT discards it [MQTT-3.1.2-8, 3.14.4-3]. */
static void test_will(void)
{
	struct harness *h = mk(NULL, HARNESS_STORE_AUTO);
	struct fake_conn *sub = connect_ok(h, 1, &(struct harness_connect_opts){ .version = MQTT_V311, .id = "watch",
										   .clean = true }, NULL);
	subscribe_ok(h, sub, "status/#", 1);
	struct harness_connect_opts o = { .version = MQTT_V311, .id = "rtu", .clean = true, .keepalive = 30,
					  .will_topic = "status/rtu", .will_payload = "lost", .will_qos = 1 };
	struct fake_conn *rtu = connect_ok(h, 0, &o, NULL);
	harness_drop(h, rtu);
	uint16_t pid = expect_publish(sub, "status/rtu", "lost", 1);
	send_ack(h, sub, MQTT_PUBACK, pid);

	rtu = connect_ok(h, 0, &o, NULL);
	struct buf b = { 0 };
	harness_enc_disconnect(&b, MQTT_V311, 0);
	ASSERT_EQ(send_buf(h, rtu, &b), -1);
	ASSERT_EQ(harness_unread(sub), 0);

	o.version = MQTT_V5;
	rtu = connect_ok(h, 0, &o, NULL);
	harness_enc_disconnect(&b, MQTT_V5, MQTT_RC_DISCONNECT_WITH_WILL);
	ASSERT_EQ(send_buf(h, rtu, &b), -1);
	buf_free(&b);
	expect_publish(sub, "status/rtu", "lost", 1);

	/* Silence for 1.5 x keep-alive: DISCONNECT 0x8D, and the will. */
	harness_skip(sub);
	rtu = connect_ok(h, 0, &o, NULL);
	harness_tick(h, clock_mono_ms() + 46 * 1000);
	struct mqtt_packet pk;
	if (expect(rtu, MQTT_DISCONNECT, &pk))
		ASSERT_EQ(pk.u.reason.rc, MQTT_RC_KEEP_ALIVE_TIMEOUT);
	ASSERT_TRUE(rtu->gone);
	expect_publish(sub, "status/rtu", "lost", 1);
	done(h);
}

/* The same client id on another worker takes the session over: the old
 * connection gets DISCONNECT 0x8E [MQTT-3.1.4-3]; a persistent session
 * comes back with what was queued while it was away. */
static void test_takeover_and_resume(void)
{
	struct harness *h = mk(durable_lines, HARNESS_STORE_AUTO);
	struct harness_connect_opts o = { .version = MQTT_V5, .id = "hmi", .clean = false, .session_expiry = 600 };
	bool present = true;
	struct fake_conn *first = connect_ok(h, 0, &o, &present);
	ASSERT_FALSE(present);
	subscribe_ok(h, first, "alarm/#", 1);
	struct fake_conn *second = connect_ok(h, 1, &o, &present);
	ASSERT_TRUE(present);
	struct mqtt_packet pk;
	if (expect(first, MQTT_DISCONNECT, &pk))
		ASSERT_EQ(pk.u.reason.rc, MQTT_RC_SESSION_TAKEN_OVER);
	ASSERT_TRUE(first->gone);

	harness_drop(h, second);
	struct fake_conn *pub = connect_ok(h, 0, &(struct harness_connect_opts){ .version = MQTT_V311, .id = "plc",
										   .clean = true }, NULL);
	publish(h, pub, "alarm/1", "high", 1, 1);
	publish(h, pub, "alarm/2", "low", 1, 2);
	expect_ack(pub, MQTT_PUBACK, 1, 0);
	expect_ack(pub, MQTT_PUBACK, 2, 0);
	struct fake_conn *third = connect_ok(h, 1, &o, &present);
	ASSERT_TRUE(present);
	uint16_t p1 = expect_publish(third, "alarm/1", "high", 1);
	uint16_t p2 = expect_publish(third, "alarm/2", "low", 1);
	send_ack(h, third, MQTT_PUBACK, p1);
	send_ack(h, third, MQTT_PUBACK, p2);
	ASSERT_EQ(h->ops_by_type[ST_QUEUE_DEL], 2);
	done(h);
}

/* A valid DISCONNECT detaches the session at once, while the peer may still
 * hold the connection open (net/conn.c lingers until it closes): its will
 * goes (v5 0x04), a message published meanwhile is queued for the offline
 * session instead of going to the closing connection; the close that
 * follows detaches nothing again (no second will, no second count). */
static void test_disconnect_detaches_at_once(void)
{
	struct harness *h = mk(durable_lines, HARNESS_STORE_AUTO);
	struct fake_conn *watch = connect_ok(h, 1, &(struct harness_connect_opts){ .version = MQTT_V311, .id = "watch",
										     .clean = true }, NULL);
	subscribe_ok(h, watch, "status/#", 1);
	struct harness_connect_opts o = { .version = MQTT_V5, .id = "hmi", .clean = false, .session_expiry = 600,
					  .will_topic = "status/hmi", .will_payload = "gone", .will_qos = 1 };
	struct fake_conn *hmi = connect_ok(h, 0, &o, NULL);
	subscribe_ok(h, hmi, "alarm/#", 1);
	struct fake_conn *pub = connect_ok(h, 1, &(struct harness_connect_opts){ .version = MQTT_V311, .id = "plc",
										   .clean = true }, NULL);
	ASSERT_EQ(atomic_load(&h->b->stats.clients_connected), 3);

	hmi->linger = true;
	struct buf b = { 0 };
	harness_enc_disconnect(&b, MQTT_V5, MQTT_RC_DISCONNECT_WITH_WILL);
	ASSERT_EQ(send_buf(h, hmi, &b), -1);
	buf_free(&b);
	ASSERT_TRUE(hmi->close_requested && !hmi->gone);
	ASSERT_EQ(atomic_load(&h->b->stats.clients_connected), 2);
	send_ack(h, watch, MQTT_PUBACK, expect_publish(watch, "status/hmi", "gone", 1));
	publish(h, pub, "alarm/1", "high", 1, 1);
	expect_ack(pub, MQTT_PUBACK, 1, 0);
	ASSERT_EQ(harness_unread(hmi), 0);

	harness_drop(h, hmi);
	ASSERT_TRUE(hmi->gone);
	ASSERT_EQ(atomic_load(&h->b->stats.clients_connected), 2);
	ASSERT_EQ(harness_unread(watch), 0);
	bool present = false;
	struct fake_conn *back = connect_ok(h, 0, &o, &present);
	ASSERT_TRUE(present);
	struct mqtt_packet pk;
	if (expect(back, MQTT_PUBLISH, &pk)) {
		ASSERT_STRN(pk.u.publish.payload.p, pk.u.publish.payload.len, "high");
		ASSERT_FALSE(pk.u.publish.dup); /* from the queue, not sent before */
		send_ack(h, back, MQTT_PUBACK, pk.u.publish.pid);
	}
	done(h);
}

/* SIGTERM: v5 clients get DISCONNECT 0x8B; wills stay unpublished. */
static void test_shutdown(void)
{
	struct harness *h = mk(NULL, HARNESS_STORE_AUTO);
	struct fake_conn *sub = connect_ok(h, 0, &(struct harness_connect_opts){ .version = MQTT_V5, .id = "w",
										   .clean = true }, NULL);
	subscribe_ok(h, sub, "#", 0);
	struct fake_conn *fc = connect_ok(h, 1, &(struct harness_connect_opts){ .version = MQTT_V311, .id = "x",
										  .clean = true, .will_topic = "t", .will_payload = "w" }, NULL);
	harness_shutdown(h);
	struct mqtt_packet pk;
	if (expect(sub, MQTT_DISCONNECT, &pk))
		ASSERT_EQ(pk.u.reason.rc, MQTT_RC_SERVER_SHUTTING_DOWN);
	ASSERT_EQ(harness_unread(sub), 0);
	ASSERT_TRUE(sub->gone && fc->gone);
	ASSERT_EQ(harness_unread(fc), 0);
	done(h);
}

/* The session registry through the handlers: many persistent sessions on
 * both workers, found again after their connections ended, discarded by a
 * clean start, expired by a v5 DISCONNECT (the table grows and shrinks). */
static void test_registry_many_sessions(void)
{
	enum { N = 3000 };
	struct harness *h = mk(NULL, HARNESS_NO_STORE);
	char id[32];
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < N; i++) {
			snprintf(id, sizeof id, "gw-%d", i);
			bool present = pass == 0;
			struct fake_conn *fc = connect_ok(h, i & 1, &(struct harness_connect_opts){
				.version = MQTT_V5, .id = id, .clean = false, .session_expiry = 600 }, &present);
			if (present != (pass == 1))
				CHECK_FAIL("%s: session present %d on pass %d", id, present, pass);
			harness_drop(h, fc);
		}
		ASSERT_EQ(atomic_load(&h->b->stats.sessions), N);
	}
	/* Half discarded by Clean Start and ended at DISCONNECT (expiry 0). */
	for (int i = 0; i < N; i += 2) {
		snprintf(id, sizeof id, "gw-%d", i);
		struct fake_conn *fc = connect_ok(h, 0, &(struct harness_connect_opts){ .version = MQTT_V5, .id = id,
											 .clean = true }, NULL);
		struct buf b = { 0 };
		harness_enc_disconnect(&b, MQTT_V5, 0);
		ASSERT_EQ(send_buf(h, fc, &b), -1);
		buf_free(&b);
	}
	ASSERT_EQ(atomic_load(&h->b->stats.sessions), N / 2);
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof id, "gw-%d", i);
		bool present = false;
		connect_ok(h, 1, &(struct harness_connect_opts){ .version = MQTT_V5, .id = id, .clean = false,
							  .session_expiry = 600 }, &present);
		if (present != (i % 2 == 1))
			CHECK_FAIL("%s: session present %d after the clean starts", id, present);
	}
	ASSERT_EQ(atomic_load(&h->b->stats.sessions), N);
	done(h);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f)) {
		fprintf(stderr, "cannot write %s\n", path);
		exit(1);
	}
}

/* Password and ACL: a bad password is refused with its code, and every way
 * a message enters passes the ACL: a PUBLISH (v5 PUBACK 0x87, v3 PUBACK
 * 0 and dropped), a SUBSCRIBE (0x87 / 0x80), a will (CONNACK 0x87 / 5). */
static void test_auth_and_acl(void)
{
	char dir[] = "/tmp/test_handlers.XXXXXX", passwd[64], acl[64], line[AUTH_PASSWD_LINE_MAX(8)];
	if (!mkdtemp(dir)) {
		CHECK_FAIL("mkdtemp: %s", dir);
		return;
	}
	snprintf(passwd, sizeof passwd, "%s/passwd", dir);
	snprintf(acl, sizeof acl, "%s/acl", dir);
	struct auth_passwd_entry e = { .user = "op", .ulen = 2 };
	ASSERT_EQ(auth_passwd_entry_make(&e, AUTH_HASH_PBKDF2, AUTH_PBKDF2_ITERATIONS, (const uint8_t *)"secret", 6), 0);
	ASSERT_TRUE(auth_passwd_format(&e, line, sizeof line) > 0);
	strcat(line, "\n");
	write_file(passwd, line);
	write_file(acl, "user op\ntopic write plant/op/#\ntopic read plant/#\n");
	char pw_line[128], acl_line[128];
	snprintf(pw_line, sizeof pw_line, "password_file %s", passwd);
	snprintf(acl_line, sizeof acl_line, "acl_file %s", acl);
	const char *const lines[] = { "allow_anonymous false", pw_line, acl_line, NULL };
	struct harness *h = mk(lines, HARNESS_STORE_AUTO);

	for (uint8_t version = MQTT_V311; version <= MQTT_V5; version++) {
		bool v5 = version == MQTT_V5;
		struct fake_conn *bad = harness_connect(h, 0);
		bad->version = version;
		struct buf b = { 0 };
		harness_enc_connect(&b, &(struct harness_connect_opts){ .version = version, .id = "op1", .clean = true,
									.username = "op", .password = "wrong" });
		ASSERT_EQ(send_buf(h, bad, &b), -1);
		struct mqtt_packet pk;
		if (expect(bad, MQTT_CONNACK, &pk))
			ASSERT_EQ(pk.u.connack.rc, v5 ? MQTT_RC_BAD_USERNAME_PASSWORD : MQTT_V3_BAD_USERNAME_PASSWORD);

		struct fake_conn *will = harness_connect(h, 1);
		will->version = version;
		harness_enc_connect(&b, &(struct harness_connect_opts){ .version = version, .id = "op2", .clean = true,
									.username = "op", .password = "secret",
									.will_topic = "elsewhere/x", .will_payload = "w" });
		ASSERT_EQ(send_buf(h, will, &b), -1);
		if (expect(will, MQTT_CONNACK, &pk))
			ASSERT_EQ(pk.u.connack.rc, v5 ? MQTT_RC_NOT_AUTHORIZED : MQTT_V3_NOT_AUTHORIZED);
		buf_free(&b);

		struct fake_conn *op = connect_ok(h, 0, &(struct harness_connect_opts){
			.version = version, .id = "op3", .clean = true, .username = "op", .password = "secret" }, NULL);
		subscribe_ok(h, op, "plant/#", 1);
		const char *secret = "vault/#";
		uint8_t qos = 1;
		harness_enc_subscribe(&b, version, 2, &secret, &qos, 1);
		ASSERT_EQ(send_buf(h, op, &b), 0);
		buf_free(&b);
		if (expect(op, MQTT_SUBACK, &pk) && pk.u.suback.n == 1)
			ASSERT_EQ(pk.u.suback.rcs[0], v5 ? MQTT_RC_NOT_AUTHORIZED : MQTT_V3_SUBACK_FAILURE);
		publish(h, op, "plant/other/x", "denied", 1, 4); /* readable, not writable */
		expect_ack(op, MQTT_PUBACK, 4, v5 ? MQTT_RC_NOT_AUTHORIZED : 0);
		publish(h, op, "plant/op/x", "allowed", 1, 5);
		/* Acknowledged at once (nothing to store), then delivered to its own subscription. */
		expect_ack(op, MQTT_PUBACK, 5, 0);
		uint16_t pid = expect_publish(op, "plant/op/x", "allowed", 1);
		send_ack(h, op, MQTT_PUBACK, pid);
		ASSERT_EQ(harness_unread(op), 0);
		harness_drop(h, op);
	}
	done(h);
	unlink(passwd);
	unlink(acl);
	rmdir(dir);
}

/* Retained messages: stored (ST_RETAIN_PUT, the PUBACK after it), sent to
 * a later subscriber with RETAIN set [MQTT-3.3.1-6], cleared by an empty
 * payload (ST_RETAIN_DEL) [MQTT-3.3.1-10]. */
static void test_retained(void)
{
	struct harness *h = mk(durable_lines, HARNESS_STORE_MANUAL);
	struct fake_conn *pub = connect_ok(h, 0, &(struct harness_connect_opts){ .version = MQTT_V5, .id = "cfg",
										   .clean = true }, NULL);
	struct buf b = { 0 };
	harness_enc_publish(&b, MQTT_V5, "cfg/line1", "setpoint=7", 1, 1, true);
	ASSERT_EQ(send_buf(h, pub, &b), 0);
	ASSERT_EQ(harness_pending_ops(h, ST_RETAIN_PUT), 1);
	ASSERT_EQ(harness_unread(pub), 0);
	harness_store_complete(h, 0);
	expect_ack(pub, MQTT_PUBACK, 1, MQTT_RC_NO_MATCHING_SUBSCRIBERS);

	struct fake_conn *sub = connect_ok(h, 1, &(struct harness_connect_opts){ .version = MQTT_V311, .id = "late",
										   .clean = true }, NULL);
	subscribe_ok(h, sub, "cfg/+", 1);
	struct mqtt_packet pk;
	if (expect(sub, MQTT_PUBLISH, &pk)) {
		ASSERT_TRUE(pk.u.publish.retain);
		ASSERT_STRN(pk.u.publish.payload.p, pk.u.publish.payload.len, "setpoint=7");
		send_ack(h, sub, MQTT_PUBACK, pk.u.publish.pid);
	}
	harness_enc_publish(&b, MQTT_V5, "cfg/line1", "", 0, 0, true);
	ASSERT_EQ(send_buf(h, pub, &b), 0);
	buf_free(&b);
	ASSERT_EQ(harness_pending_ops(h, ST_RETAIN_DEL), 1);
	harness_store_complete(h, 0);
	/* The live one goes out to the subscriber without RETAIN [MQTT-3.3.1-9]. */
	if (expect(sub, MQTT_PUBLISH, &pk)) {
		ASSERT_FALSE(pk.u.publish.retain);
		ASSERT_EQ(pk.u.publish.payload.len, 0);
	}
	struct fake_conn *later = connect_ok(h, 0, &(struct harness_connect_opts){ .version = MQTT_V311, .id = "later",
										     .clean = true }, NULL);
	subscribe_ok(h, later, "cfg/#", 0);
	ASSERT_EQ(harness_unread(later), 0);
	done(h);
}

/* A subscriber that does not read: its deliveries pause at
 * max_output_buffer and go on once it has read; one that stays over it
 * for output_stall_timeout is cut off, its output dropped. */
static void test_output_cap(void)
{
	enum { N = 30, SIZE = 1000 };
	struct harness *h = mk((const char *const[]){ "max_output_buffer 4096", "output_stall_timeout 60", NULL },
			       HARNESS_NO_STORE);
	struct fake_conn *sub = connect_ok(h, 1, &(struct harness_connect_opts){ .version = MQTT_V311, .id = "slow",
										   .clean = true }, NULL);
	subscribe_ok(h, sub, "big/#", 0);
	struct fake_conn *pub = connect_ok(h, 0, &(struct harness_connect_opts){ .version = MQTT_V311, .id = "fast",
										   .clean = true }, NULL);
	static char payload[SIZE + 1];
	memset(payload, 'x', SIZE);
	for (int i = 0; i < N; i++)
		publish(h, pub, "big/t", payload, 0, 0);
	ASSERT_TRUE(sub->client.output_full);
	ASSERT_TRUE(harness_unread(sub) >= 4096 && harness_unread(sub) < 4096 + 2 * SIZE);
	int got = 0;
	struct mqtt_packet pk;
	for (int rounds = 0; got < N && rounds < N; rounds++) {
		while (harness_read(sub, &pk) == 1)
			got += pk.type == MQTT_PUBLISH && pk.u.publish.payload.len == SIZE;
		harness_turn(h);
	}
	ASSERT_EQ(got, N);
	ASSERT_FALSE(sub->client.output_full);

	for (int i = 0; i < 8; i++)
		publish(h, pub, "big/t", payload, 0, 0);
	uint64_t now = clock_mono_ms();
	harness_tick(h, now);
	ASSERT_FALSE(sub->gone);
	harness_tick(h, now + 61 * 1000);
	ASSERT_TRUE(sub->gone && sub->aborted);
	ASSERT_EQ(harness_unread(sub), 0);
	ASSERT_FALSE(pub->gone);
	done(h);
}

/* A $share member whose queued messages gave their bodies up to the store
 * (offline, committed) ends by a Clean Start: the broker must stay up
 * (resharing read such an entry's store id as a message pointer; found by
 * fuzz_handlers) and the group goes on with the other member. */
static void test_share_member_ends_with_bodies_on_disk(void)
{
	struct harness *h = mk(durable_lines, HARNESS_STORE_AUTO);
	struct harness_connect_opts m1 = { .version = MQTT_V5, .id = "m1", .clean = true, .session_expiry = 600 };
	struct fake_conn *a = connect_ok(h, 0, &m1, NULL);
	subscribe_ok(h, a, "$share/g/line/#", 1);
	harness_drop(h, a);
	struct fake_conn *pub = connect_ok(h, 1, &(struct harness_connect_opts){ .version = MQTT_V311, .id = "plc",
										   .clean = true }, NULL);
	publish(h, pub, "line/1", "one", 1, 1);
	publish(h, pub, "line/1", "two", 1, 2);
	expect_ack(pub, MQTT_PUBACK, 1, 0);
	expect_ack(pub, MQTT_PUBACK, 2, 0);
	struct fake_conn *b = connect_ok(h, 1, &(struct harness_connect_opts){ .version = MQTT_V5, .id = "m2",
										 .clean = true }, NULL);
	subscribe_ok(h, b, "$share/g/line/#", 1);
	m1.session_expiry = 0;
	struct fake_conn *again = connect_ok(h, 0, &m1, NULL); /* Clean Start ends the old session */
	ASSERT_FALSE(again->gone);
	publish(h, pub, "line/1", "three", 1, 3);
	expect_ack(pub, MQTT_PUBACK, 3, 0);
	bool three = false;
	struct mqtt_packet pk;
	while (harness_read(b, &pk) == 1)
		three |= pk.type == MQTT_PUBLISH && pk.u.publish.payload.len == 5 &&
			 !memcmp(pk.u.publish.payload.p, "three", 5);
	ASSERT_TRUE(three);
	done(h);
}

/* Standby (a cluster follower): every CONNECT is refused before
 * authentication or any session work, v5 with 0x9C and the Server
 * Reference (v5 §3.2.2.3.16, §4.11), v3 with return code 3; the connection
 * closes and no session is made. Once serving again, CONNECT works. */
static struct fake_conn *standby_connect(struct harness *h, const struct harness_connect_opts *o,
					  struct mqtt_packet *pk)
{
	struct fake_conn *fc = harness_connect(h, 0);
	fc->version = o->version == MQTT_V31 ? MQTT_V311 : o->version;
	struct buf b = { 0 };
	harness_enc_connect(&b, o);
	ASSERT_EQ(send_buf(h, fc, &b), -1);
	buf_free(&b);
	ASSERT_TRUE(fc->gone);
	if (expect(fc, MQTT_CONNACK, pk))
		ASSERT_EQ(harness_unread(fc), 0);
	return fc;
}

static void test_standby(void)
{
	struct harness *h = mk(durable_lines, HARNESS_STORE_AUTO);
	static const char why[] = "this node is a cluster follower";
	struct mqtt_packet pk;
	broker_set_standby(h->b, "10.0.0.7:1883");
	struct harness_connect_opts v5 = { .version = MQTT_V5, .id = "line-1", .clean = false,
					   .session_expiry = 600, .will_topic = "w", .will_payload = "gone" };
	standby_connect(h, &v5, &pk);
	ASSERT_EQ(pk.u.connack.rc, MQTT_RC_USE_ANOTHER_SERVER);
	ASSERT_FALSE(pk.u.connack.session_present);
	ASSERT_TRUE(pk.u.connack.props.have & MQTT_PROP_BIT(MQTT_PROP_SERVER_REFERENCE));
	ASSERT_STRN(pk.u.connack.props.server_reference.p, pk.u.connack.props.server_reference.len, "10.0.0.7:1883");
	ASSERT_TRUE(pk.u.connack.props.have & MQTT_PROP_BIT(MQTT_PROP_REASON_STRING));
	ASSERT_STRN(pk.u.connack.props.reason_string.p, pk.u.connack.props.reason_string.len, why);
	/* The first refusal is logged; the next ones within 10 s are counted. */
	ASSERT_EQ(h->b->standby.refused, 0);

	struct fake_conn *v3 = harness_connect(h, 1);
	static const uint8_t connect[] = { 0x10, 0x0e, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c,
					   0x00, 0x02, 'c', '1' };
	static const uint8_t connack3[] = { 0x20, 0x02, 0x00, 0x03 };
	ASSERT_EQ(harness_send(h, v3, connect, sizeof connect), -1);
	ASSERT_TRUE(v3->gone);
	ASSERT_EQ(harness_unread(v3), sizeof connack3);
	ASSERT_MEM(v3->out.p + v3->read_off, connack3, sizeof connack3);
	standby_connect(h, &(struct harness_connect_opts){ .version = MQTT_V31, .id = "old", .clean = true }, &pk);
	ASSERT_EQ(pk.u.connack.rc, MQTT_V3_UNAVAILABLE);
	ASSERT_EQ(h->b->standby.refused, 2);

	/* An empty reference: 0x9C without a Server Reference. */
	broker_set_standby(h->b, "");
	standby_connect(h, &v5, &pk);
	ASSERT_EQ(pk.u.connack.rc, MQTT_RC_USE_ANOTHER_SERVER);
	ASSERT_FALSE(pk.u.connack.props.have & MQTT_PROP_BIT(MQTT_PROP_SERVER_REFERENCE));
	ASSERT_STRN(pk.u.connack.props.reason_string.p, pk.u.connack.props.reason_string.len, why);

	/* A reference longer than an MQTT string is left out rather than sent broken. */
	char *huge = malloc(70001);
	memset(huge, 'h', 70000);
	huge[70000] = 0;
	broker_set_standby(h->b, huge);
	free(huge);
	standby_connect(h, &v5, &pk);
	ASSERT_EQ(pk.u.connack.rc, MQTT_RC_USE_ANOTHER_SERVER);
	ASSERT_FALSE(pk.u.connack.props.have & MQTT_PROP_BIT(MQTT_PROP_SERVER_REFERENCE));

	/* Nothing of the sessions: no registry entry, no store record, no client counted. */
	ASSERT_EQ(h->b->reg.count, 0);
	ASSERT_EQ(h->n_submitted, 0);
	ASSERT_EQ(h->b->stats.clients_connected, 0);
	ASSERT_EQ(h->b->stats.clients_total, 0);

	broker_set_standby(h->b, NULL);
	bool present = true;
	struct fake_conn *fc = connect_ok(h, 0, &v5, &present);
	ASSERT_FALSE(present);
	ASSERT_FALSE(fc->gone);
	ASSERT_EQ(h->b->reg.count, 1);
	ASSERT_EQ(h->b->stats.clients_connected, 1);
	done(h);

	/* Before authentication: a node that would refuse the anonymous client
	 * sends it elsewhere all the same. */
	h = mk((const char *const[]){ "allow_anonymous false", NULL }, HARNESS_NO_STORE);
	broker_set_standby(h->b, "leader");
	standby_connect(h, &(struct harness_connect_opts){ .version = MQTT_V5, .id = "a", .clean = true }, &pk);
	ASSERT_EQ(pk.u.connack.rc, MQTT_RC_USE_ANOTHER_SERVER);
	done(h);
}

int main(void)
{
	log_mask = 1u << LVL_ERR;
	RUN(test_connect_v311_bytes);
	RUN(test_connect_v5_assigned_id);
	RUN(test_connect_refusals);
	RUN(test_connect_order);
	RUN(test_malformed_closes);
	RUN(test_subscribe_suback);
	RUN(test_durable_replies_wait_for_store);
	RUN(test_qos0_routed);
	RUN(test_qos1_puback_after_commit);
	RUN(test_qos2_flow);
	RUN(test_qos2_store_failure);
	RUN(test_will);
	RUN(test_takeover_and_resume);
	RUN(test_disconnect_detaches_at_once);
	RUN(test_shutdown);
	RUN(test_registry_many_sessions);
	RUN(test_auth_and_acl);
	RUN(test_retained);
	RUN(test_output_cap);
	RUN(test_share_member_ends_with_bodies_on_disk);
	RUN(test_standby);
	return CHECK_DONE();
}
