/* Unit tests for src/mqtt: encode->decode round trips of every packet type in
 * v3.1.1 and v5, byte-exact packets from the specs, incremental decoding,
 * malformed input, UTF-8 validation and the property helpers. */
#include "mqtt/mqtt.h"
#include "base/err.h"
#include "check.h"
#include <stdint.h>

#define BIN(s) ((struct mqtt_bin){ (const uint8_t *)(s), (uint32_t)(sizeof(s) - 1) })
#define BYTES(...) ((const uint8_t[]){ __VA_ARGS__ })
#define NBYTES(...) sizeof((const uint8_t[]){ __VA_ARGS__ })
#define MALFORMED (-MQTT_RC_MALFORMED)
#define PROTOCOL (-MQTT_RC_PROTOCOL_ERROR)
#define BIT(id) MQTT_PROP_BIT(MQTT_PROP_##id)

/* ---- helpers ---- */

/* Writes first byte, Remaining Length and body to out; returns the size. */
static size_t mk(uint8_t *out, uint8_t first, const uint8_t *body, size_t n)
{
	uint8_t *p = out;
	size_t v = n;
	*p++ = first;
	do {
		uint8_t b = v & 0x7F;
		v >>= 7;
		*p++ = v ? (uint8_t)(b | 0x80) : b;
	} while (v);
	memcpy(p, body, n);
	return (size_t)(p - out) + n;
}
#define MK(out, first, ...) mk(out, first, BYTES(__VA_ARGS__), NBYTES(__VA_ARGS__))

/* A packet body under construction. */
struct w {
	uint8_t b[2048];
	size_t n;
};
static void w_bytes(struct w *w, const void *p, size_t n)
{
	if (n)
		memcpy(w->b + w->n, p, n);
	w->n += n;
}
static void w_u8(struct w *w, uint8_t v) { w->b[w->n++] = v; }
static void w_u16(struct w *w, uint16_t v)
{
	w_u8(w, (uint8_t)(v >> 8));
	w_u8(w, (uint8_t)v);
}
static void w_str(struct w *w, const void *s, size_t n)
{
	w_u16(w, (uint16_t)n);
	w_bytes(w, s, n);
}
#define W(w, ...) w_bytes(w, BYTES(__VA_ARGS__), NBYTES(__VA_ARGS__))
static size_t w_packet(uint8_t *out, uint8_t first, const struct w *w) { return mk(out, first, w->b, w->n); }

static int dec(const uint8_t *p, size_t n, uint8_t version, struct mqtt_packet *pk)
{
	return mqtt_decode(p, n, version, 0, pk);
}

/* Decodes p after checking that every proper prefix asks for more bytes. */
static int decode_whole(const uint8_t *p, size_t n, uint8_t version, struct mqtt_packet *pk)
{
	for (size_t i = 0; i < n; i++) {
		int r = mqtt_decode(p, i, version, 0, pk);
		if (r != 0)
			CHECK_FAIL("prefix %zu of %zu bytes returned %d, not 0", i, n, r);
	}
	return mqtt_decode(p, n, version, 0, pk);
}

/* Collects the items of a decoded property block. */
struct items {
	struct mqtt_prop_item it[32];
	uint32_t n, end;
};
static void walk_props(const struct mqtt_props *pr, struct items *its)
{
	uint32_t off = 0;
	its->n = 0;
	while (its->n < 32 && mqtt_props_next(pr, &off, &its->it[its->n]))
		its->n++;
	its->end = off;
}

static const uint8_t two_users[] = {
	0x26, 0, 1, 'k', 0, 1, 'v',
	0x26, 0, 2, 'k', '2', 0, 0, /* an empty value is allowed */
};
static const uint8_t one_user[] = { 0x26, 0, 3, 'w', 'h', 'o', 0, 2, 'm', 'e' };

static void check_two_users(const struct mqtt_props *pr)
{
	struct items its;
	walk_props(pr, &its);
	ASSERT_EQ(pr->n_user, 2);
	uint32_t seen = 0;
	for (uint32_t i = 0; i < its.n; i++) {
		if (its.it[i].id != MQTT_PROP_USER_PROPERTY)
			continue;
		if (seen == 0) {
			ASSERT_STRN(its.it[i].str.p, its.it[i].str.len, "k");
			ASSERT_STRN(its.it[i].val.p, its.it[i].val.len, "v");
		} else {
			ASSERT_STRN(its.it[i].str.p, its.it[i].str.len, "k2");
			ASSERT_EQ(its.it[i].val.len, 0);
		}
		seen++;
	}
	ASSERT_EQ(seen, 2);
}

/* ---- round trips ---- */

static void test_connect_v311_roundtrip(void)
{
	struct mqtt_connect c = {
		.version = MQTT_V311, .clean_start = true, .keepalive = 60,
		.client_id = BIN("dev-1"), .username = BIN("alice"), .password = BIN("s3\0cret"),
		.will = true, .will_qos = 1, .will_retain = true,
		.will_topic = BIN("dev/1/status"), .will_payload = BIN("off\xffline"),
	};
	struct buf b = { 0 };
	struct mqtt_packet pk;
	ASSERT_EQ(mqtt_encode_connect(&b, &c), 0);
	ASSERT_EQ(b.p[0], 0x10);
	ASSERT_EQ(b.p[9], 0xEE); /* user, password, will retain, will QoS 1, will, clean */
	ASSERT_EQ(decode_whole(b.p, b.len, 0, &pk), (int)b.len);
	ASSERT_EQ(pk.type, MQTT_CONNECT);
	ASSERT_EQ(pk.size, b.len);
	const struct mqtt_connect *d = &pk.u.connect;
	ASSERT_STRN(d->protocol_name.p, d->protocol_name.len, "MQTT");
	ASSERT_EQ(d->version, MQTT_V311);
	ASSERT_TRUE(d->clean_start);
	ASSERT_EQ(d->keepalive, 60);
	ASSERT_STRN(d->client_id.p, d->client_id.len, "dev-1");
	ASSERT_STRN(d->username.p, d->username.len, "alice");
	ASSERT_EQ(d->password.len, 7);
	ASSERT_MEM(d->password.p, "s3\0cret", 7);
	ASSERT_TRUE(d->will);
	ASSERT_EQ(d->will_qos, 1);
	ASSERT_TRUE(d->will_retain);
	ASSERT_STRN(d->will_topic.p, d->will_topic.len, "dev/1/status");
	ASSERT_EQ(d->will_payload.len, 8);
	ASSERT_MEM(d->will_payload.p, "off\xffline", 8);
	ASSERT_EQ(d->props.have, 0);
	ASSERT_EQ(d->will_props.have, 0);
	buf_free(&b);
}

static void test_connect_v311_minimal(void)
{
	/* no will, no credentials, empty client id; then the 3.1 MQIsdp form */
	struct mqtt_connect c = { .version = MQTT_V311, .keepalive = 0 };
	struct buf b = { 0 };
	struct mqtt_packet pk;
	ASSERT_EQ(mqtt_encode_connect(&b, &c), 0);
	ASSERT_EQ(b.len, 14);
	ASSERT_MEM(b.p, BYTES(0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0, 0, 0, 0, 0), 14);
	ASSERT_EQ(decode_whole(b.p, b.len, 0, &pk), 14);
	ASSERT_FALSE(pk.u.connect.clean_start);
	ASSERT_FALSE(pk.u.connect.will);
	ASSERT_TRUE(pk.u.connect.username.p == NULL);
	ASSERT_TRUE(pk.u.connect.password.p == NULL);
	ASSERT_TRUE(pk.u.connect.client_id.p != NULL); /* present but empty */
	ASSERT_EQ(pk.u.connect.client_id.len, 0);

	b.len = 0;
	c.version = MQTT_V31;
	c.client_id = BIN("old");
	c.username = BIN(""); /* present and empty: the flag is still set */
	ASSERT_EQ(mqtt_encode_connect(&b, &c), 0);
	ASSERT_EQ(decode_whole(b.p, b.len, 0, &pk), (int)b.len);
	ASSERT_STRN(pk.u.connect.protocol_name.p, pk.u.connect.protocol_name.len, "MQIsdp");
	ASSERT_EQ(pk.u.connect.version, MQTT_V31);
	ASSERT_TRUE(pk.u.connect.username.p != NULL);
	ASSERT_EQ(pk.u.connect.username.len, 0);
	ASSERT_TRUE(pk.u.connect.password.p == NULL);
	buf_free(&b);
}

static void test_connect_v5_roundtrip(void)
{
	struct mqtt_connect c = {
		.version = MQTT_V5, .clean_start = false, .keepalive = 0xFFFF,
		.client_id = BIN("v5-client"), .username = BIN("bob"), .password = BIN("\x00\x01\x02"),
		.will = true, .will_qos = 2, .will_retain = false,
		.will_topic = BIN("last/will"), .will_payload = BIN(""),
	};
	c.props.have = BIT(SESSION_EXPIRY) | BIT(RECEIVE_MAXIMUM) | BIT(MAXIMUM_PACKET_SIZE) |
		       BIT(TOPIC_ALIAS_MAXIMUM) | BIT(REQUEST_RESPONSE_INFO) | BIT(REQUEST_PROBLEM_INFO) |
		       BIT(AUTH_METHOD) | BIT(AUTH_DATA);
	c.props.session_expiry = 0xFFFFFFFF;
	c.props.receive_maximum = 20;
	c.props.max_packet_size = 1 << 20;
	c.props.topic_alias_maximum = 10;
	c.props.request_response_info = 1;
	c.props.request_problem_info = 0;
	c.props.auth_method = BIN("SCRAM-SHA-1");
	c.props.auth_data = BIN("\x00\xff");
	c.props.extra = (struct mqtt_bin){ two_users, sizeof two_users };
	c.will_props.have = BIT(WILL_DELAY) | BIT(PAYLOAD_FORMAT) | BIT(MESSAGE_EXPIRY) | BIT(CONTENT_TYPE) |
			    BIT(RESPONSE_TOPIC) | BIT(CORRELATION_DATA);
	c.will_props.will_delay = 30;
	c.will_props.payload_format = 1;
	c.will_props.message_expiry = 3600;
	c.will_props.content_type = BIN("text/plain");
	c.will_props.response_topic = BIN("reply/here");
	c.will_props.correlation_data = BIN("\x01\x02\x03");
	c.will_props.extra = (struct mqtt_bin){ one_user, sizeof one_user };

	struct buf b = { 0 };
	struct mqtt_packet pk;
	ASSERT_EQ(mqtt_encode_connect(&b, &c), 0);
	size_t hl = b.p[1] & 0x80 ? 3 : 2;
	ASSERT_EQ(hl, 3);
	ASSERT_EQ(b.p[hl + 7], 0xD4); /* user, password, will QoS 2, will; no clean start */
	ASSERT_EQ(decode_whole(b.p, b.len, 0, &pk), (int)b.len);
	const struct mqtt_connect *d = &pk.u.connect;
	ASSERT_EQ(d->version, MQTT_V5);
	ASSERT_FALSE(d->clean_start);
	ASSERT_EQ(d->keepalive, 0xFFFF);
	ASSERT_STRN(d->client_id.p, d->client_id.len, "v5-client");
	ASSERT_STRN(d->username.p, d->username.len, "bob");
	ASSERT_EQ(d->password.len, 3);
	ASSERT_MEM(d->password.p, "\x00\x01\x02", 3);
	ASSERT_EQ(d->props.have, c.props.have);
	ASSERT_EQ(d->props.session_expiry, 0xFFFFFFFF);
	ASSERT_EQ(d->props.receive_maximum, 20);
	ASSERT_EQ(d->props.max_packet_size, 1 << 20);
	ASSERT_EQ(d->props.topic_alias_maximum, 10);
	ASSERT_EQ(d->props.request_response_info, 1);
	ASSERT_EQ(d->props.request_problem_info, 0);
	ASSERT_STRN(d->props.auth_method.p, d->props.auth_method.len, "SCRAM-SHA-1");
	ASSERT_EQ(d->props.auth_data.len, 2);
	ASSERT_MEM(d->props.auth_data.p, "\x00\xff", 2);
	check_two_users(&d->props);
	ASSERT_TRUE(d->will);
	ASSERT_EQ(d->will_qos, 2);
	ASSERT_FALSE(d->will_retain);
	ASSERT_STRN(d->will_topic.p, d->will_topic.len, "last/will");
	ASSERT_EQ(d->will_payload.len, 0);
	ASSERT_EQ(d->will_props.have, c.will_props.have);
	ASSERT_EQ(d->will_props.will_delay, 30);
	ASSERT_EQ(d->will_props.payload_format, 1);
	ASSERT_EQ(d->will_props.message_expiry, 3600);
	ASSERT_STRN(d->will_props.content_type.p, d->will_props.content_type.len, "text/plain");
	ASSERT_STRN(d->will_props.response_topic.p, d->will_props.response_topic.len, "reply/here");
	ASSERT_EQ(d->will_props.correlation_data.len, 3);
	ASSERT_MEM(d->will_props.correlation_data.p, "\x01\x02\x03", 3);
	ASSERT_EQ(d->will_props.n_user, 1);
	/* the version argument does not matter for CONNECT */
	ASSERT_EQ(dec(b.p, b.len, MQTT_V311, &pk), (int)b.len);
	ASSERT_EQ(pk.u.connect.version, MQTT_V5);
	buf_free(&b);
}

/* MQTT 3.1.1 section 3.1.2.10 (variable header example: "MQTT", level 4,
 * flags 0xCE, keep alive 10) with a payload in the order of 3.1.3. */
static const uint8_t spec_connect_v311[] = {
	0x10, 30,
	0, 4, 'M', 'Q', 'T', 'T', 4, 0xCE, 0, 10,
	0, 3, 'c', 'i', 'd',
	0, 2, 'w', 't',
	0, 2, 'w', 'm',
	0, 1, 'u',
	0, 2, 'p', 'w',
};

static void test_connect_spec_v311(void)
{
	struct mqtt_packet pk;
	ASSERT_EQ(decode_whole(spec_connect_v311, sizeof spec_connect_v311, 0, &pk), (int)sizeof spec_connect_v311);
	const struct mqtt_connect *d = &pk.u.connect;
	ASSERT_EQ(d->version, 4);
	ASSERT_TRUE(d->clean_start);
	ASSERT_TRUE(d->will);
	ASSERT_EQ(d->will_qos, 1);
	ASSERT_FALSE(d->will_retain);
	ASSERT_EQ(d->keepalive, 10);
	ASSERT_STRN(d->client_id.p, d->client_id.len, "cid");
	ASSERT_STRN(d->will_topic.p, d->will_topic.len, "wt");
	ASSERT_STRN(d->will_payload.p, d->will_payload.len, "wm");
	ASSERT_STRN(d->username.p, d->username.len, "u");
	ASSERT_STRN(d->password.p, d->password.len, "pw");
	struct buf b = { 0 };
	ASSERT_EQ(mqtt_encode_connect(&b, d), 0);
	ASSERT_EQ(b.len, sizeof spec_connect_v311);
	ASSERT_MEM(b.p, spec_connect_v311, sizeof spec_connect_v311);
	buf_free(&b);
}

/* MQTT 5.0 section 3.1.2.11, Figure 3-6: "MQTT", level 5, flags 0xC2, keep
 * alive 10, properties: Session Expiry Interval 10. */
static const uint8_t spec_connect_v5[] = {
	0x10, 28,
	0, 4, 'M', 'Q', 'T', 'T', 5, 0xC2, 0, 10, 5, 0x11, 0, 0, 0, 10,
	0, 3, 'c', 'i', 'd',
	0, 1, 'u',
	0, 2, 'p', 'w',
};

static void test_connect_spec_v5(void)
{
	struct mqtt_packet pk;
	ASSERT_EQ(decode_whole(spec_connect_v5, sizeof spec_connect_v5, 0, &pk), (int)sizeof spec_connect_v5);
	const struct mqtt_connect *d = &pk.u.connect;
	ASSERT_EQ(d->version, 5);
	ASSERT_TRUE(d->clean_start);
	ASSERT_FALSE(d->will);
	ASSERT_EQ(d->keepalive, 10);
	ASSERT_EQ(d->props.have, BIT(SESSION_EXPIRY));
	ASSERT_EQ(d->props.session_expiry, 10);
	ASSERT_STRN(d->client_id.p, d->client_id.len, "cid");
	ASSERT_STRN(d->username.p, d->username.len, "u");
	ASSERT_STRN(d->password.p, d->password.len, "pw");
	struct buf b = { 0 };
	ASSERT_EQ(mqtt_encode_connect(&b, d), 0);
	ASSERT_EQ(b.len, sizeof spec_connect_v5);
	ASSERT_MEM(b.p, spec_connect_v5, sizeof spec_connect_v5);
	buf_free(&b);
}

static void test_connack_roundtrip(void)
{
	struct buf b = { 0 };
	struct mqtt_packet pk;
	struct mqtt_connack c = { .session_present = true, .rc = MQTT_V3_ACCEPTED };
	ASSERT_EQ(mqtt_encode_connack(&b, MQTT_V311, &c), 0);
	ASSERT_EQ(b.len, 4);
	ASSERT_MEM(b.p, BYTES(0x20, 2, 1, 0), 4);
	ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V311, &pk), 4);
	ASSERT_EQ(pk.type, MQTT_CONNACK);
	ASSERT_TRUE(pk.u.connack.session_present);
	ASSERT_EQ(pk.u.connack.rc, 0);

	b.len = 0;
	c = (struct mqtt_connack){ .rc = MQTT_V3_NOT_AUTHORIZED };
	ASSERT_EQ(mqtt_encode_connack(&b, MQTT_V311, &c), 0);
	ASSERT_MEM(b.p, BYTES(0x20, 2, 0, 5), 4);

	b.len = 0;
	c = (struct mqtt_connack){ .rc = MQTT_RC_SUCCESS };
	ASSERT_EQ(mqtt_encode_connack(&b, MQTT_V5, &c), 0);
	ASSERT_EQ(b.len, 5);
	ASSERT_MEM(b.p, BYTES(0x20, 3, 0, 0, 0), 5);

	b.len = 0;
	c = (struct mqtt_connack){ .session_present = false, .rc = MQTT_RC_SUCCESS };
	struct mqtt_props *pr = &c.props;
	pr->have = BIT(SESSION_EXPIRY) | BIT(RECEIVE_MAXIMUM) | BIT(MAXIMUM_QOS) | BIT(RETAIN_AVAILABLE) |
		   BIT(MAXIMUM_PACKET_SIZE) | BIT(ASSIGNED_CLIENT_ID) | BIT(TOPIC_ALIAS_MAXIMUM) |
		   BIT(REASON_STRING) | BIT(WILDCARD_SUB_AVAILABLE) | BIT(SUB_ID_AVAILABLE) |
		   BIT(SHARED_SUB_AVAILABLE) | BIT(SERVER_KEEP_ALIVE) | BIT(RESPONSE_INFO) |
		   BIT(SERVER_REFERENCE) | BIT(AUTH_METHOD) | BIT(AUTH_DATA);
	pr->session_expiry = 120;
	pr->receive_maximum = 65535;
	pr->maximum_qos = 1;
	pr->retain_available = 0;
	pr->max_packet_size = 268435460;
	pr->assigned_client_id = BIN("auto-1234");
	pr->topic_alias_maximum = 0;
	pr->reason_string = BIN("welcome");
	pr->wildcard_sub_available = 1;
	pr->sub_id_available = 0;
	pr->shared_sub_available = 1;
	pr->server_keep_alive = 30;
	pr->response_info = BIN("resp/");
	pr->server_reference = BIN("other:1883");
	pr->auth_method = BIN("m");
	pr->auth_data = BIN("\x7f");
	pr->extra = (struct mqtt_bin){ two_users, sizeof two_users };
	ASSERT_EQ(mqtt_encode_connack(&b, MQTT_V5, &c), 0);
	ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V5, &pk), (int)b.len);
	const struct mqtt_props *d = &pk.u.connack.props;
	ASSERT_FALSE(pk.u.connack.session_present);
	ASSERT_EQ(pk.u.connack.rc, 0);
	ASSERT_EQ(d->have, pr->have);
	ASSERT_EQ(d->session_expiry, 120);
	ASSERT_EQ(d->receive_maximum, 65535);
	ASSERT_EQ(d->maximum_qos, 1);
	ASSERT_EQ(d->retain_available, 0);
	ASSERT_EQ(d->max_packet_size, 268435460);
	ASSERT_STRN(d->assigned_client_id.p, d->assigned_client_id.len, "auto-1234");
	ASSERT_EQ(d->topic_alias_maximum, 0);
	ASSERT_STRN(d->reason_string.p, d->reason_string.len, "welcome");
	ASSERT_EQ(d->wildcard_sub_available, 1);
	ASSERT_EQ(d->sub_id_available, 0);
	ASSERT_EQ(d->shared_sub_available, 1);
	ASSERT_EQ(d->server_keep_alive, 30);
	ASSERT_STRN(d->response_info.p, d->response_info.len, "resp/");
	ASSERT_STRN(d->server_reference.p, d->server_reference.len, "other:1883");
	ASSERT_STRN(d->auth_method.p, d->auth_method.len, "m");
	ASSERT_STRN(d->auth_data.p, d->auth_data.len, "\x7f");
	check_two_users(d);

	b.len = 0;
	c = (struct mqtt_connack){ .rc = MQTT_RC_BAD_USERNAME_PASSWORD };
	c.props.have = BIT(REASON_STRING);
	c.props.reason_string = BIN("no");
	ASSERT_EQ(mqtt_encode_connack(&b, MQTT_V5, &c), 0);
	ASSERT_EQ(b.len, 10);
	ASSERT_MEM(b.p, BYTES(0x20, 8, 0, 0x86, 5, 0x1F, 0, 2, 'n', 'o'), 10);
	buf_free(&b);
}

static void test_publish_v311_roundtrip(void)
{
	struct buf b = { 0 };
	struct mqtt_packet pk;
	struct mqtt_publish m = { .qos = 0, .topic = BIN("a/b"), .payload = BIN("hello") };
	ASSERT_EQ(mqtt_encode_publish(&b, MQTT_V311, &m), 0);
	ASSERT_EQ(b.len, 12);
	ASSERT_MEM(b.p, BYTES(0x30, 10, 0, 3, 'a', '/', 'b', 'h', 'e', 'l', 'l', 'o'), 12);
	ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V311, &pk), 12);
	ASSERT_EQ(pk.type, MQTT_PUBLISH);
	ASSERT_EQ(pk.u.publish.qos, 0);
	ASSERT_EQ(pk.u.publish.pid, 0);
	ASSERT_FALSE(pk.u.publish.dup);
	ASSERT_FALSE(pk.u.publish.retain);
	ASSERT_STRN(pk.u.publish.topic.p, pk.u.publish.topic.len, "a/b");
	ASSERT_STRN(pk.u.publish.payload.p, pk.u.publish.payload.len, "hello");
	ASSERT_EQ(mqtt_publish_size(MQTT_V311, &m), b.len);

	for (uint8_t qos = 1; qos <= 2; qos++) {
		b.len = 0;
		m = (struct mqtt_publish){ .qos = qos, .dup = true, .retain = true, .pid = 0xBEEF,
					   .topic = BIN("x"), .payload = BIN("") };
		ASSERT_EQ(mqtt_encode_publish(&b, MQTT_V311, &m), 0);
		ASSERT_EQ(b.p[0], 0x30 | 0x08 | qos << 1 | 1);
		ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V311, &pk), (int)b.len);
		ASSERT_EQ(pk.flags, b.p[0] & 0x0F);
		ASSERT_EQ(pk.u.publish.qos, qos);
		ASSERT_TRUE(pk.u.publish.dup);
		ASSERT_TRUE(pk.u.publish.retain);
		ASSERT_EQ(pk.u.publish.pid, 0xBEEF);
		ASSERT_STRN(pk.u.publish.topic.p, pk.u.publish.topic.len, "x");
		ASSERT_EQ(pk.u.publish.payload.len, 0);
		ASSERT_EQ(pk.u.publish.props.have, 0);
		ASSERT_EQ(mqtt_publish_size(MQTT_V311, &m), b.len);
	}
	buf_free(&b);
}

/* MQTT 3.1.1 section 3.3.2.3 / MQTT 5.0 Figure 3-9: topic "a/b", packet
 * identifier 10 (v5: and a zero property length), here with no payload. */
static void test_publish_spec_examples(void)
{
	static const uint8_t v311[] = { 0x32, 7, 0, 3, 'a', '/', 'b', 0, 10 };
	static const uint8_t v5[] = { 0x32, 8, 0, 3, 'a', '/', 'b', 0, 10, 0 };
	struct mqtt_packet pk;
	struct buf b = { 0 };
	ASSERT_EQ(decode_whole(v311, sizeof v311, MQTT_V311, &pk), (int)sizeof v311);
	ASSERT_EQ(pk.u.publish.pid, 10);
	ASSERT_EQ(pk.u.publish.qos, 1);
	ASSERT_EQ(mqtt_encode_publish(&b, MQTT_V311, &pk.u.publish), 0);
	ASSERT_EQ(b.len, sizeof v311);
	ASSERT_MEM(b.p, v311, sizeof v311);

	b.len = 0;
	ASSERT_EQ(decode_whole(v5, sizeof v5, MQTT_V5, &pk), (int)sizeof v5);
	ASSERT_EQ(pk.u.publish.pid, 10);
	ASSERT_EQ(pk.u.publish.props.have, 0);
	ASSERT_EQ(pk.u.publish.payload.len, 0);
	ASSERT_EQ(mqtt_encode_publish(&b, MQTT_V5, &pk.u.publish), 0);
	ASSERT_EQ(b.len, sizeof v5);
	ASSERT_MEM(b.p, v5, sizeof v5);
	/* the v3 form of a v5 packet is one byte short: it reads as payload */
	ASSERT_EQ(dec(v5, sizeof v5, MQTT_V311, &pk), (int)sizeof v5);
	ASSERT_EQ(pk.u.publish.payload.len, 1);
	buf_free(&b);
}

/* A v5 PUBLISH with properties (section 3.3.2.3), written by hand in the
 * order the encoder uses: by identifier, user properties last. */
static const uint8_t v5_publish_props[] = {
	0x32, 42,
	0, 3, 'a', '/', 'b', 0, 10,
	32,
	0x01, 1,                                                     /* payload format: UTF-8 */
	0x02, 0, 0, 0, 60,                                           /* message expiry 60 s */
	0x03, 0, 10, 't', 'e', 'x', 't', '/', 'p', 'l', 'a', 'i', 'n', /* content type */
	0x0B, 5,                                                     /* subscription id 5 */
	0x23, 0, 7,                                                  /* topic alias 7 */
	0x26, 0, 1, 'k', 0, 1, 'v',                                  /* user property k=v */
	'h', 'i',
};

static void test_publish_v5_bytes(void)
{
	struct mqtt_packet pk;
	ASSERT_EQ(decode_whole(v5_publish_props, sizeof v5_publish_props, MQTT_V5, &pk),
		  (int)sizeof v5_publish_props);
	const struct mqtt_publish *d = &pk.u.publish;
	ASSERT_EQ(d->qos, 1);
	ASSERT_EQ(d->pid, 10);
	ASSERT_STRN(d->topic.p, d->topic.len, "a/b");
	ASSERT_STRN(d->payload.p, d->payload.len, "hi");
	ASSERT_EQ(d->props.have, BIT(PAYLOAD_FORMAT) | BIT(MESSAGE_EXPIRY) | BIT(CONTENT_TYPE) |
					 BIT(SUBSCRIPTION_ID) | BIT(TOPIC_ALIAS));
	ASSERT_EQ(d->props.payload_format, 1);
	ASSERT_EQ(d->props.message_expiry, 60);
	ASSERT_STRN(d->props.content_type.p, d->props.content_type.len, "text/plain");
	ASSERT_EQ(d->props.sub_id, 5);
	ASSERT_EQ(d->props.n_sub_ids, 1);
	ASSERT_EQ(d->props.topic_alias, 7);
	ASSERT_EQ(d->props.n_user, 1);
	ASSERT_EQ(d->props.raw_len, 32);

	struct mqtt_publish m = { .qos = 1, .pid = 10, .topic = BIN("a/b"), .payload = BIN("hi") };
	m.props.have = d->props.have;
	m.props.payload_format = 1;
	m.props.message_expiry = 60;
	m.props.content_type = BIN("text/plain");
	m.props.sub_id = 5;
	m.props.topic_alias = 7;
	m.props.extra = (struct mqtt_bin){ (const uint8_t *)"\x26\x00\x01k\x00\x01v", 7 };
	struct buf b = { 0 };
	ASSERT_EQ(mqtt_encode_publish(&b, MQTT_V5, &m), 0);
	ASSERT_EQ(b.len, sizeof v5_publish_props);
	ASSERT_MEM(b.p, v5_publish_props, sizeof v5_publish_props);
	ASSERT_EQ(mqtt_publish_size(MQTT_V5, &m), sizeof v5_publish_props);
	/* the same message for a v3 subscriber loses its properties */
	b.len = 0;
	ASSERT_EQ(mqtt_encode_publish(&b, MQTT_V311, &m), 0);
	ASSERT_EQ(b.len, 11);
	ASSERT_MEM(b.p, BYTES(0x32, 9, 0, 3, 'a', '/', 'b', 0, 10, 'h', 'i'), 11);
	ASSERT_EQ(mqtt_publish_size(MQTT_V311, &m), 11);
	buf_free(&b);
}

static void test_publish_v5_roundtrip(void)
{
	static const uint32_t ids[] = { 1, 300, 268435455 };
	for (uint8_t qos = 0; qos <= 2; qos++) {
		struct mqtt_publish m = { .qos = qos, .retain = qos == 1, .pid = qos ? (uint16_t)(qos * 1000) : 0,
					  .topic = BIN("sensors/\xc3\xa9t\xc3\xa9"), .payload = BIN("\x00\x01payload") };
		m.props.have = BIT(PAYLOAD_FORMAT) | BIT(MESSAGE_EXPIRY) | BIT(CONTENT_TYPE) | BIT(RESPONSE_TOPIC) |
			       BIT(CORRELATION_DATA) | BIT(TOPIC_ALIAS) | BIT(SUBSCRIPTION_ID);
		m.props.payload_format = 0;
		m.props.message_expiry = 0xFFFFFFFE;
		m.props.content_type = BIN("application/octet-stream");
		m.props.response_topic = BIN("resp/1");
		m.props.correlation_data = BIN("\xde\xad\x00\xef");
		m.props.topic_alias = 0xFFFF;
		m.props.sub_ids = ids;
		m.props.n_sub_ids = 3;
		m.props.extra = (struct mqtt_bin){ two_users, sizeof two_users };
		struct buf b = { 0 };
		struct mqtt_packet pk;
		ASSERT_EQ(mqtt_encode_publish(&b, MQTT_V5, &m), 0);
		ASSERT_EQ(mqtt_publish_size(MQTT_V5, &m), b.len);
		ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V5, &pk), (int)b.len);
		const struct mqtt_publish *d = &pk.u.publish;
		ASSERT_EQ(d->qos, qos);
		ASSERT_EQ(d->retain, qos == 1);
		ASSERT_FALSE(d->dup);
		ASSERT_EQ(d->pid, m.pid);
		ASSERT_STRN(d->topic.p, d->topic.len, "sensors/\xc3\xa9t\xc3\xa9");
		ASSERT_EQ(d->payload.len, 9);
		ASSERT_MEM(d->payload.p, "\x00\x01payload", 9);
		ASSERT_EQ(d->props.have, m.props.have);
		ASSERT_EQ(d->props.payload_format, 0);
		ASSERT_EQ(d->props.message_expiry, 0xFFFFFFFE);
		ASSERT_STRN(d->props.content_type.p, d->props.content_type.len, "application/octet-stream");
		ASSERT_STRN(d->props.response_topic.p, d->props.response_topic.len, "resp/1");
		ASSERT_EQ(d->props.correlation_data.len, 4);
		ASSERT_MEM(d->props.correlation_data.p, "\xde\xad\x00\xef", 4);
		ASSERT_EQ(d->props.topic_alias, 0xFFFF);
		ASSERT_EQ(d->props.sub_id, 1); /* the first; the rest are walked */
		ASSERT_EQ(d->props.n_sub_ids, 3);
		check_two_users(&d->props);
		struct items its;
		walk_props(&d->props, &its);
		ASSERT_EQ(its.end, d->props.raw_len);
		uint32_t got[3], n = 0;
		for (uint32_t i = 0; i < its.n; i++)
			if (its.it[i].id == MQTT_PROP_SUBSCRIPTION_ID && n < 3)
				got[n++] = its.it[i].num;
		ASSERT_EQ(n, 3);
		ASSERT_EQ(got[0], 1);
		ASSERT_EQ(got[1], 300);
		ASSERT_EQ(got[2], 268435455);
		buf_free(&b);
	}
}

static void test_ack_roundtrip(void)
{
	static const uint8_t types[] = { MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP };
	for (size_t i = 0; i < sizeof types; i++) {
		uint8_t t = types[i], first = (uint8_t)(t << 4 | (t == MQTT_PUBREL ? 2 : 0));
		struct buf b = { 0 };
		struct mqtt_packet pk;
		struct mqtt_ack a = { .pid = 7 };
		/* v3.1.1: always the short form */
		ASSERT_EQ(mqtt_encode_ack(&b, MQTT_V311, t, &a), 0);
		ASSERT_EQ(b.len, 4);
		ASSERT_MEM(b.p, BYTES(first, 2, 0, 7), 4);
		ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V311, &pk), 4);
		ASSERT_EQ(pk.type, t);
		ASSERT_EQ(pk.u.ack.pid, 7);
		ASSERT_EQ(pk.u.ack.rc, 0);

		/* v5 Success without properties: the short form too [MQTT-3.4.2.1] */
		b.len = 0;
		ASSERT_EQ(mqtt_encode_ack(&b, MQTT_V5, t, &a), 0);
		ASSERT_EQ(b.len, 4);
		ASSERT_MEM(b.p, BYTES(first, 2, 0, 7), 4);
		ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V5, &pk), 4);
		ASSERT_EQ(pk.u.ack.rc, 0);
		ASSERT_EQ(pk.u.ack.props.have, 0);

		/* v5 reason code only: encoded with an empty property block */
		b.len = 0;
		a.rc = t == MQTT_PUBREL || t == MQTT_PUBCOMP ? MQTT_RC_PACKET_ID_NOT_FOUND : MQTT_RC_NO_MATCHING_SUBSCRIBERS;
		ASSERT_EQ(mqtt_encode_ack(&b, MQTT_V5, t, &a), 0);
		ASSERT_EQ(b.len, 6);
		ASSERT_MEM(b.p, BYTES(first, 4, 0, 7, a.rc, 0), 6);
		ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V5, &pk), 6);
		ASSERT_EQ(pk.u.ack.rc, a.rc);
		/* ... and without the property length at all (Remaining Length 3) */
		uint8_t three[5] = { first, 3, 0, 7, a.rc };
		ASSERT_EQ(decode_whole(three, 5, MQTT_V5, &pk), 5);
		ASSERT_EQ(pk.u.ack.pid, 7);
		ASSERT_EQ(pk.u.ack.rc, a.rc);
		ASSERT_EQ(pk.u.ack.props.have, 0);

		/* v5 long form with a reason string and user properties */
		b.len = 0;
		a.pid = 0xFFFF;
		a.rc = MQTT_RC_SUCCESS;
		a.props.have = BIT(REASON_STRING);
		a.props.reason_string = BIN("fine");
		a.props.extra = (struct mqtt_bin){ two_users, sizeof two_users };
		ASSERT_EQ(mqtt_encode_ack(&b, MQTT_V5, t, &a), 0);
		ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V5, &pk), (int)b.len);
		ASSERT_EQ(pk.type, t);
		ASSERT_EQ(pk.u.ack.pid, 0xFFFF);
		ASSERT_EQ(pk.u.ack.rc, 0);
		ASSERT_EQ(pk.u.ack.props.have, BIT(REASON_STRING));
		ASSERT_STRN(pk.u.ack.props.reason_string.p, pk.u.ack.props.reason_string.len, "fine");
		check_two_users(&pk.u.ack.props);
		/* v3 encoding drops the code and properties */
		b.len = 0;
		ASSERT_EQ(mqtt_encode_ack(&b, MQTT_V311, t, &a), 0);
		ASSERT_EQ(b.len, 4);
		buf_free(&b);
	}
}

/* MQTT 3.1.1 section 3.8.3 (payload example): packet id 10, "a/b" QoS 1 and
 * "c/d" QoS 2. */
static const uint8_t spec_subscribe_v311[] = {
	0x82, 14, 0, 10, 0, 3, 'a', '/', 'b', 1, 0, 3, 'c', '/', 'd', 2,
};

static void test_subscribe_roundtrip(void)
{
	struct mqtt_sub_entry e[3] = { { BIN("a/b"), 1 }, { BIN("c/d"), 2 } };
	struct buf b = { 0 };
	struct mqtt_packet pk;
	ASSERT_EQ(mqtt_encode_subscribe(&b, MQTT_V311, MQTT_SUBSCRIBE, 10, NULL, e, 2), 0);
	ASSERT_EQ(b.len, sizeof spec_subscribe_v311);
	ASSERT_MEM(b.p, spec_subscribe_v311, sizeof spec_subscribe_v311);
	ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V311, &pk), (int)b.len);
	ASSERT_EQ(pk.type, MQTT_SUBSCRIBE);
	ASSERT_EQ(pk.flags, 2);
	ASSERT_EQ(pk.u.subscribe.pid, 10);
	ASSERT_EQ(pk.u.subscribe.n, 2);
	struct mqtt_sub_entry got;
	uint32_t off = 0;
	ASSERT_TRUE(mqtt_topics_next(&pk.u.subscribe, true, &off, &got));
	ASSERT_STRN(got.filter.p, got.filter.len, "a/b");
	ASSERT_EQ(got.options, 1);
	ASSERT_TRUE(mqtt_topics_next(&pk.u.subscribe, true, &off, &got));
	ASSERT_STRN(got.filter.p, got.filter.len, "c/d");
	ASSERT_EQ(got.options, 2);
	ASSERT_FALSE(mqtt_topics_next(&pk.u.subscribe, true, &off, &got));
	ASSERT_EQ(off, pk.u.subscribe.list_len);

	/* v5: every option bit, a subscription identifier, user properties */
	e[0] = (struct mqtt_sub_entry){ BIN("a/+"), 1 | MQTT_SUBOPT_NO_LOCAL | MQTT_SUBOPT_RAP | 2 << MQTT_SUBOPT_RH_SHIFT };
	e[1] = (struct mqtt_sub_entry){ BIN("$share/g/x"), 2 };
	e[2] = (struct mqtt_sub_entry){ BIN("#"), 1 << MQTT_SUBOPT_RH_SHIFT };
	struct mqtt_props pr = { .have = BIT(SUBSCRIPTION_ID), .sub_id = 268435455,
				 .extra = { two_users, sizeof two_users } };
	b.len = 0;
	ASSERT_EQ(mqtt_encode_subscribe(&b, MQTT_V5, MQTT_SUBSCRIBE, 1, &pr, e, 3), 0);
	ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V5, &pk), (int)b.len);
	const struct mqtt_subscribe *s = &pk.u.subscribe;
	ASSERT_EQ(s->pid, 1);
	ASSERT_EQ(s->n, 3);
	ASSERT_EQ(s->props.have, BIT(SUBSCRIPTION_ID));
	ASSERT_EQ(s->props.sub_id, 268435455);
	check_two_users(&s->props);
	off = 0;
	for (int i = 0; i < 3; i++) {
		ASSERT_TRUE(mqtt_topics_next(s, true, &off, &got));
		ASSERT_EQ(got.filter.len, e[i].filter.len);
		ASSERT_MEM(got.filter.p, e[i].filter.p, e[i].filter.len);
		ASSERT_EQ(got.options, e[i].options);
	}
	ASSERT_FALSE(mqtt_topics_next(s, true, &off, &got));
	buf_free(&b);
}

static void test_unsubscribe_roundtrip(void)
{
	/* MQTT 3.1.1 section 3.10.3 (payload example): "a/b" and "c/d" */
	static const uint8_t spec[] = { 0xA2, 12, 0, 10, 0, 3, 'a', '/', 'b', 0, 3, 'c', '/', 'd' };
	struct mqtt_sub_entry e[2] = { { BIN("a/b"), 0 }, { BIN("c/d"), 0 } };
	struct buf b = { 0 };
	struct mqtt_packet pk;
	struct mqtt_sub_entry got;
	uint32_t off = 0;
	ASSERT_EQ(mqtt_encode_subscribe(&b, MQTT_V311, MQTT_UNSUBSCRIBE, 10, NULL, e, 2), 0);
	ASSERT_EQ(b.len, sizeof spec);
	ASSERT_MEM(b.p, spec, sizeof spec);
	ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V311, &pk), (int)b.len);
	ASSERT_EQ(pk.type, MQTT_UNSUBSCRIBE);
	ASSERT_EQ(pk.u.subscribe.n, 2);
	ASSERT_TRUE(mqtt_topics_next(&pk.u.subscribe, false, &off, &got));
	ASSERT_STRN(got.filter.p, got.filter.len, "a/b");
	ASSERT_EQ(got.options, 0);
	ASSERT_TRUE(mqtt_topics_next(&pk.u.subscribe, false, &off, &got));
	ASSERT_STRN(got.filter.p, got.filter.len, "c/d");
	ASSERT_FALSE(mqtt_topics_next(&pk.u.subscribe, false, &off, &got));

	struct mqtt_props pr = { .extra = { one_user, sizeof one_user } };
	b.len = 0;
	ASSERT_EQ(mqtt_encode_subscribe(&b, MQTT_V5, MQTT_UNSUBSCRIBE, 0x1234, &pr, e, 1), 0);
	ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V5, &pk), (int)b.len);
	ASSERT_EQ(pk.u.subscribe.pid, 0x1234);
	ASSERT_EQ(pk.u.subscribe.n, 1);
	ASSERT_EQ(pk.u.subscribe.props.n_user, 1);
	off = 0;
	ASSERT_TRUE(mqtt_topics_next(&pk.u.subscribe, false, &off, &got));
	ASSERT_STRN(got.filter.p, got.filter.len, "a/b");
	ASSERT_FALSE(mqtt_topics_next(&pk.u.subscribe, false, &off, &got));
	buf_free(&b);
}

static void test_suback_unsuback_roundtrip(void)
{
	/* MQTT 3.1.1 section 3.9.3 (payload example): QoS 0, QoS 2, failure */
	static const uint8_t codes3[] = { 0, 2, 0x80 };
	struct mqtt_suback s = { .pid = 10, .rcs = codes3, .n = 3 };
	struct buf b = { 0 };
	struct mqtt_packet pk;
	ASSERT_EQ(mqtt_encode_suback(&b, MQTT_V311, MQTT_SUBACK, &s), 0);
	ASSERT_EQ(b.len, 7);
	ASSERT_MEM(b.p, BYTES(0x90, 5, 0, 10, 0, 2, 0x80), 7);
	ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V311, &pk), 7);
	ASSERT_EQ(pk.type, MQTT_SUBACK);
	ASSERT_EQ(pk.u.suback.pid, 10);
	ASSERT_EQ(pk.u.suback.n, 3);
	ASSERT_MEM(pk.u.suback.rcs, codes3, 3);

	static const uint8_t codes5[] = { 0x00, 0x01, 0x02, 0x80, 0x8F, 0x9E, 0xA1, 0xA2 };
	s = (struct mqtt_suback){ .pid = 2, .rcs = codes5, .n = sizeof codes5 };
	s.props.have = BIT(REASON_STRING);
	s.props.reason_string = BIN("partly");
	s.props.extra = (struct mqtt_bin){ two_users, sizeof two_users };
	b.len = 0;
	ASSERT_EQ(mqtt_encode_suback(&b, MQTT_V5, MQTT_SUBACK, &s), 0);
	ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V5, &pk), (int)b.len);
	ASSERT_EQ(pk.u.suback.pid, 2);
	ASSERT_EQ(pk.u.suback.n, sizeof codes5);
	ASSERT_MEM(pk.u.suback.rcs, codes5, sizeof codes5);
	ASSERT_STRN(pk.u.suback.props.reason_string.p, pk.u.suback.props.reason_string.len, "partly");
	check_two_users(&pk.u.suback.props);

	/* v3 UNSUBACK carries no codes even when given some */
	static const uint8_t ucodes[] = { MQTT_RC_SUCCESS, MQTT_RC_NO_SUBSCRIPTION_EXISTED };
	s = (struct mqtt_suback){ .pid = 10, .rcs = ucodes, .n = 2 };
	b.len = 0;
	ASSERT_EQ(mqtt_encode_suback(&b, MQTT_V311, MQTT_UNSUBACK, &s), 0);
	ASSERT_EQ(b.len, 4);
	ASSERT_MEM(b.p, BYTES(0xB0, 2, 0, 10), 4);
	ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V311, &pk), 4);
	ASSERT_EQ(pk.type, MQTT_UNSUBACK);
	ASSERT_EQ(pk.u.suback.pid, 10);
	ASSERT_EQ(pk.u.suback.n, 0);

	b.len = 0;
	ASSERT_EQ(mqtt_encode_suback(&b, MQTT_V5, MQTT_UNSUBACK, &s), 0);
	ASSERT_EQ(b.len, 7);
	ASSERT_MEM(b.p, BYTES(0xB0, 5, 0, 10, 0, 0x00, 0x11), 7);
	ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V5, &pk), 7);
	ASSERT_EQ(pk.u.suback.n, 2);
	ASSERT_MEM(pk.u.suback.rcs, ucodes, 2);
	buf_free(&b);
}

static void test_ping_roundtrip(void)
{
	struct buf b = { 0 };
	struct mqtt_packet pk;
	ASSERT_EQ(mqtt_encode_simple(&b, MQTT_PINGREQ), 0);
	ASSERT_EQ(mqtt_encode_simple(&b, MQTT_PINGRESP), 0);
	ASSERT_EQ(b.len, 4);
	ASSERT_MEM(b.p, BYTES(0xC0, 0, 0xD0, 0), 4);
	for (uint8_t v = MQTT_V311; v <= MQTT_V5; v++) {
		ASSERT_EQ(decode_whole(b.p, 2, v, &pk), 2);
		ASSERT_EQ(pk.type, MQTT_PINGREQ);
		ASSERT_EQ(pk.size, 2);
		ASSERT_EQ(dec(b.p, b.len, v, &pk), 2); /* one packet at a time */
		ASSERT_EQ(decode_whole(b.p + 2, 2, v, &pk), 2);
		ASSERT_EQ(pk.type, MQTT_PINGRESP);
	}
	buf_free(&b);
}

static void test_disconnect_auth_roundtrip(void)
{
	struct buf b = { 0 };
	struct mqtt_packet pk;
	struct mqtt_reason r = { .rc = MQTT_RC_DISCONNECT_WITH_WILL };
	ASSERT_EQ(mqtt_encode_reason(&b, MQTT_V311, MQTT_DISCONNECT, &r), 0);
	ASSERT_EQ(b.len, 2);
	ASSERT_MEM(b.p, BYTES(0xE0, 0), 2);
	ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V311, &pk), 2);
	ASSERT_EQ(pk.type, MQTT_DISCONNECT);
	ASSERT_EQ(pk.u.reason.rc, 0);
	/* v5 DISCONNECT with Remaining Length 0 means Normal disconnection */
	ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V5, &pk), 2);
	ASSERT_EQ(pk.u.reason.rc, 0);
	ASSERT_EQ(decode_whole(BYTES(0xE0, 1, 0x8E), 3, MQTT_V5, &pk), 3);
	ASSERT_EQ(pk.u.reason.rc, MQTT_RC_SESSION_TAKEN_OVER);

	b.len = 0;
	r.props.have = BIT(SESSION_EXPIRY) | BIT(REASON_STRING) | BIT(SERVER_REFERENCE);
	r.props.session_expiry = 0;
	r.props.reason_string = BIN("bye");
	r.props.server_reference = BIN("b2");
	r.props.extra = (struct mqtt_bin){ two_users, sizeof two_users };
	ASSERT_EQ(mqtt_encode_reason(&b, MQTT_V5, MQTT_DISCONNECT, &r), 0);
	ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V5, &pk), (int)b.len);
	ASSERT_EQ(pk.type, MQTT_DISCONNECT);
	ASSERT_EQ(pk.u.reason.rc, MQTT_RC_DISCONNECT_WITH_WILL);
	ASSERT_EQ(pk.u.reason.props.have, r.props.have);
	ASSERT_EQ(pk.u.reason.props.session_expiry, 0);
	ASSERT_STRN(pk.u.reason.props.reason_string.p, pk.u.reason.props.reason_string.len, "bye");
	ASSERT_STRN(pk.u.reason.props.server_reference.p, pk.u.reason.props.server_reference.len, "b2");
	check_two_users(&pk.u.reason.props);

	b.len = 0;
	struct mqtt_reason a = { .rc = MQTT_RC_CONTINUE_AUTH };
	a.props.have = BIT(AUTH_METHOD) | BIT(AUTH_DATA) | BIT(REASON_STRING);
	a.props.auth_method = BIN("SCRAM-SHA-1");
	a.props.auth_data = BIN("\x00\x01\xfe\xff");
	a.props.reason_string = BIN("more");
	a.props.extra = (struct mqtt_bin){ one_user, sizeof one_user };
	ASSERT_EQ(mqtt_encode_reason(&b, MQTT_V5, MQTT_AUTH, &a), 0);
	ASSERT_EQ(b.p[0], 0xF0);
	ASSERT_EQ(decode_whole(b.p, b.len, MQTT_V5, &pk), (int)b.len);
	ASSERT_EQ(pk.type, MQTT_AUTH);
	ASSERT_EQ(pk.u.reason.rc, MQTT_RC_CONTINUE_AUTH);
	ASSERT_EQ(pk.u.reason.props.have, a.props.have);
	ASSERT_STRN(pk.u.reason.props.auth_method.p, pk.u.reason.props.auth_method.len, "SCRAM-SHA-1");
	ASSERT_EQ(pk.u.reason.props.auth_data.len, 4);
	ASSERT_MEM(pk.u.reason.props.auth_data.p, "\x00\x01\xfe\xff", 4);
	ASSERT_STRN(pk.u.reason.props.reason_string.p, pk.u.reason.props.reason_string.len, "more");
	ASSERT_EQ(pk.u.reason.props.n_user, 1);

	/* Success with no properties: rc and an empty block, or nothing */
	b.len = 0;
	a = (struct mqtt_reason){ .rc = MQTT_RC_SUCCESS };
	ASSERT_EQ(mqtt_encode_reason(&b, MQTT_V5, MQTT_AUTH, &a), 0);
	ASSERT_EQ(b.len, 4);
	ASSERT_MEM(b.p, BYTES(0xF0, 2, 0, 0), 4);
	ASSERT_EQ(decode_whole(BYTES(0xF0, 0), 2, MQTT_V5, &pk), 2);
	ASSERT_EQ(pk.u.reason.rc, 0);
	buf_free(&b);
}

/* Feeds a stream of packets one byte at a time, as a socket might. */
static void test_incremental_stream(void)
{
	struct buf b = { 0 };
	struct mqtt_packet pk;
	struct mqtt_publish m = { .qos = 1, .pid = 1, .topic = BIN("t"), .payload = BIN("") };
	static uint8_t big[20000];
	struct mqtt_ack a = { .pid = 1, .rc = MQTT_RC_QUOTA_EXCEEDED };
	struct mqtt_sub_entry e = { BIN("s/#"), 1 };
	struct mqtt_reason r = { .rc = MQTT_RC_NOT_AUTHORIZED };
	struct mqtt_connect c = { .version = MQTT_V5, .client_id = BIN("c") };
	memset(big, 'x', sizeof big);
	size_t sizes[8], n = 0, prev = 0;
#define PUSH(call) do { ASSERT_EQ(call, 0); sizes[n++] = b.len - prev; prev = b.len; } while (0)
	PUSH(mqtt_encode_connect(&b, &c));
	PUSH(mqtt_encode_publish(&b, MQTT_V5, &m));
	m.payload = (struct mqtt_bin){ big, sizeof big }; /* three-byte Remaining Length */
	PUSH(mqtt_encode_publish(&b, MQTT_V5, &m));
	PUSH(mqtt_encode_ack(&b, MQTT_V5, MQTT_PUBACK, &a));
	PUSH(mqtt_encode_subscribe(&b, MQTT_V5, MQTT_SUBSCRIBE, 2, NULL, &e, 1));
	PUSH(mqtt_encode_simple(&b, MQTT_PINGREQ));
	PUSH(mqtt_encode_reason(&b, MQTT_V5, MQTT_DISCONNECT, &r));
#undef PUSH
	size_t off = 0, k = 0, bad = 0;
	for (size_t have = off; have <= b.len && k < n; have++) {
		int rc = mqtt_decode(b.p + off, have - off, MQTT_V5, 0, &pk);
		if (rc == 0)
			continue;
		if ((size_t)rc != sizes[k] || have - off != sizes[k])
			bad++;
		off += (size_t)rc;
		k++;
	}
	ASSERT_EQ(k, n);
	ASSERT_EQ(bad, 0);
	ASSERT_EQ(off, b.len);
	buf_free(&b);
}

/* ---- malformed input ---- */

static void test_varint_limits(void)
{
	uint8_t first;
	uint32_t rem;
	struct mqtt_packet pk;
	static const uint8_t five[] = { 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 };
	ASSERT_EQ(mqtt_fixed_header(five, sizeof five, &first, &rem), MALFORMED);
	ASSERT_EQ(dec(five, sizeof five, MQTT_V5, &pk), MALFORMED);
	ASSERT_EQ(dec(five, 5, MQTT_V5, &pk), MALFORMED); /* the fifth byte is enough to know */
	ASSERT_EQ(dec(five, 4, MQTT_V5, &pk), 0);
	static const uint8_t four[] = { 0x30, 0xFF, 0xFF, 0xFF, 0x7F };
	ASSERT_EQ(mqtt_fixed_header(four, sizeof four, &first, &rem), 5);
	ASSERT_EQ(first, 0x30);
	ASSERT_EQ(rem, MQTT_MAX_REMAINING);
	ASSERT_EQ(dec(four, sizeof four, MQTT_V5, &pk), 0);
	ASSERT_EQ(mqtt_fixed_header(four, 1, &first, &rem), 0);
	ASSERT_EQ(mqtt_fixed_header(four, 0, &first, &rem), 0);
	/* Remaining Length boundaries of section 1.5.5 */
	static const struct { uint8_t b[4]; int len; uint32_t v; } cases[] = {
		{ { 0x00 }, 1, 0 }, { { 0x7F }, 1, 127 }, { { 0x80, 0x01 }, 2, 128 },
		{ { 0xFF, 0x7F }, 2, 16383 }, { { 0x80, 0x80, 0x01 }, 3, 16384 },
		{ { 0xFF, 0xFF, 0x7F }, 3, 2097151 }, { { 0x80, 0x80, 0x80, 0x01 }, 4, 2097152 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint8_t p[6] = { 0x30 };
		memcpy(p + 1, cases[i].b, 4);
		ASSERT_EQ(mqtt_fixed_header(p, 1 + (size_t)cases[i].len, &first, &rem), 1 + cases[i].len);
		ASSERT_EQ(rem, cases[i].v);
		ASSERT_EQ(mqtt_fixed_header(p, (size_t)cases[i].len, &first, &rem), 0);
	}
	/* a five-byte property length and a five-byte subscription identifier */
	uint8_t p[64];
	size_t n = MK(p, 0x30, 0, 1, 'a', 0x80, 0x80, 0x80, 0x80, 0x01);
	ASSERT_EQ(dec(p, n, MQTT_V5, &pk), MALFORMED);
	n = MK(p, 0x30, 0, 1, 'a', 6, 0x0B, 0x80, 0x80, 0x80, 0x80, 0x01);
	ASSERT_EQ(dec(p, n, MQTT_V5, &pk), MALFORMED);
}

/* One valid packet of each type but PUBLISH, per protocol version. */
struct valid_pkt {
	uint8_t b[16];
	size_t n;
};

static void check_reserved_flags(uint8_t version, const struct valid_pkt *v, size_t count)
{
	struct mqtt_packet pk;
	for (size_t i = 0; i < count; i++) {
		uint8_t p[16];
		memcpy(p, v[i].b, v[i].n);
		uint8_t type = p[0] >> 4, good = p[0] & 0x0F;
		ASSERT_EQ(dec(p, v[i].n, version, &pk), (int)v[i].n);
		ASSERT_EQ(pk.type, type);
		for (uint8_t f = 0; f < 16; f++) {
			if (f == good)
				continue;
			p[0] = (uint8_t)(type << 4 | f);
			int rc = dec(p, v[i].n, version, &pk);
			if (rc != MALFORMED)
				CHECK_FAIL("v%u %s with flags %#x: %d != %d", version, mqtt_type_name(type), f, rc,
					   MALFORMED);
		}
	}
}

static void test_reserved_flags(void)
{
	static const struct valid_pkt v311[] = {
		{ { 0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 0 }, 14 },
		{ { 0x20, 2, 0, 0 }, 4 },
		{ { 0x40, 2, 0, 1 }, 4 },
		{ { 0x50, 2, 0, 1 }, 4 },
		{ { 0x62, 2, 0, 1 }, 4 },
		{ { 0x70, 2, 0, 1 }, 4 },
		{ { 0x82, 6, 0, 1, 0, 1, 'a', 0 }, 8 },
		{ { 0x90, 3, 0, 1, 0 }, 5 },
		{ { 0xA2, 5, 0, 1, 0, 1, 'a' }, 7 },
		{ { 0xB0, 2, 0, 1 }, 4 },
		{ { 0xC0, 0 }, 2 },
		{ { 0xD0, 0 }, 2 },
		{ { 0xE0, 0 }, 2 },
	};
	static const struct valid_pkt v5[] = {
		{ { 0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 0, 0, 0, 0 }, 15 },
		{ { 0x20, 3, 0, 0, 0 }, 5 },
		{ { 0x40, 2, 0, 1 }, 4 },
		{ { 0x50, 3, 0, 1, 0x10 }, 5 },
		{ { 0x62, 4, 0, 1, 0x92, 0 }, 6 },
		{ { 0x70, 2, 0, 1 }, 4 },
		{ { 0x82, 7, 0, 1, 0, 0, 1, 'a', 0 }, 9 },
		{ { 0x90, 4, 0, 1, 0, 0 }, 6 },
		{ { 0xA2, 6, 0, 1, 0, 0, 1, 'a' }, 8 },
		{ { 0xB0, 4, 0, 1, 0, 0 }, 6 },
		{ { 0xC0, 0 }, 2 },
		{ { 0xD0, 0 }, 2 },
		{ { 0xE0, 1, 0x04 }, 3 },
		{ { 0xF0, 2, 0x18, 0 }, 4 },
	};
	check_reserved_flags(MQTT_V311, v311, sizeof v311 / sizeof v311[0]);
	check_reserved_flags(MQTT_V5, v5, sizeof v5 / sizeof v5[0]);
	/* the reserved type 0, and AUTH outside v5 */
	struct mqtt_packet pk;
	ASSERT_EQ(dec(BYTES(0x00, 0), 2, MQTT_V5, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0x00, 0), 2, 0, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0xF0, 0), 2, MQTT_V311, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0xF0, 0), 2, MQTT_V31, &pk), MALFORMED);
}

static void test_publish_flags(void)
{
	struct mqtt_packet pk;
	uint8_t p[16];
	size_t n = MK(p, 0x36, 0, 1, 'a', 0, 1); /* QoS 3 [MQTT-3.3.1-4] */
	ASSERT_EQ(dec(p, n, MQTT_V311, &pk), MALFORMED);
	ASSERT_EQ(pk.type, MQTT_PUBLISH);
	p[0] = 0x37;
	ASSERT_EQ(dec(p, n, MQTT_V5, &pk), MALFORMED);
	n = MK(p, 0x38, 0, 1, 'a'); /* QoS 0 with DUP [MQTT-3.3.1-2] */
	ASSERT_EQ(dec(p, n, MQTT_V311, &pk), MALFORMED);
	p[0] = 0x39;
	ASSERT_EQ(dec(p, n, MQTT_V311, &pk), MALFORMED);
	n = MK(p, 0x3A, 0, 1, 'a', 0, 1); /* DUP with QoS 1 and 2 is fine */
	ASSERT_EQ(dec(p, n, MQTT_V311, &pk), (int)n);
	ASSERT_TRUE(pk.u.publish.dup);
	p[0] = 0x3D;
	ASSERT_EQ(dec(p, n, MQTT_V311, &pk), (int)n);
	ASSERT_EQ(pk.u.publish.qos, 2);
	ASSERT_TRUE(pk.u.publish.retain);
}

static void test_packet_id_zero(void)
{
	struct mqtt_packet pk;
	uint8_t p[32];
	for (uint8_t v = MQTT_V311; v <= MQTT_V5; v++) {
		struct w w = { .n = 0 };
		w_str(&w, "a", 1);
		w_u16(&w, 0);
		if (v == MQTT_V5)
			w_u8(&w, 0);
		size_t n = w_packet(p, 0x32, &w); /* [MQTT-2.2.1-3] */
		ASSERT_EQ(dec(p, n, v, &pk), PROTOCOL);
		p[0] = 0x34;
		ASSERT_EQ(dec(p, n, v, &pk), PROTOCOL);
		for (uint8_t t = MQTT_PUBACK; t <= MQTT_PUBCOMP; t++) {
			n = MK(p, (uint8_t)(t << 4 | (t == MQTT_PUBREL ? 2 : 0)), 0, 0);
			ASSERT_EQ(dec(p, n, v, &pk), PROTOCOL);
			ASSERT_EQ(pk.type, t);
		}
		w.n = 0;
		w_u16(&w, 0);
		if (v == MQTT_V5)
			w_u8(&w, 0);
		w_str(&w, "a", 1);
		n = w_packet(p, 0xA2, &w);
		ASSERT_EQ(dec(p, n, v, &pk), PROTOCOL);
		w_u8(&w, 0);
		n = w_packet(p, 0x82, &w);
		ASSERT_EQ(dec(p, n, v, &pk), PROTOCOL);
	}
}

static const struct { const char *name; uint8_t b[5]; size_t n; } bad_utf8[] = {
	{ "overlong NUL", { 0xC0, 0x80 }, 2 },
	{ "overlong '/'", { 0xE0, 0x80, 0xAF }, 3 },
	{ "overlong 4-byte", { 0xF0, 0x80, 0x80, 0x80 }, 4 },
	{ "high surrogate", { 0xED, 0xA0, 0x80 }, 3 },
	{ "low surrogate", { 0xED, 0xBF, 0xBF }, 3 },
	{ "U+0000", { 'a', 0x00, 'b' }, 3 },
	{ "above U+10FFFF", { 0xF4, 0x90, 0x80, 0x80 }, 4 },
	{ "truncated", { 'a', 0xE2, 0x82 }, 3 },
	{ "lone continuation", { 0x80 }, 1 },
	{ "0xFF", { 0xFF }, 1 },
};
#define N_BAD_UTF8 (sizeof bad_utf8 / sizeof bad_utf8[0])

static void expect_rc(const uint8_t *p, size_t n, uint8_t version, int want, const char *what, const char *why)
{
	struct mqtt_packet pk;
	int rc = dec(p, n, version, &pk);
	if (rc != want)
		CHECK_FAIL("%s with %s (v%u): %d != %d", what, why, version, rc, want);
}

static void test_bad_utf8_in_packets(void)
{
	uint8_t p[128];
	for (size_t i = 0; i < N_BAD_UTF8; i++) {
		const uint8_t *s = bad_utf8[i].b;
		size_t sl = bad_utf8[i].n;
		const char *why = bad_utf8[i].name;
		for (uint8_t v = MQTT_V311; v <= MQTT_V5; v++) {
			struct w w = { .n = 0 };
			/* CONNECT client id, will topic, username */
			for (int field = 0; field < 3; field++) {
				w.n = 0;
				w_str(&w, "MQTT", 4);
				w_u8(&w, v);
				w_u8(&w, field == 1 ? 0x06 : field == 2 ? 0x82 : 0x02);
				w_u16(&w, 0);
				if (v == MQTT_V5)
					w_u8(&w, 0);
				if (field == 0) {
					w_str(&w, s, sl);
				} else {
					w_str(&w, "c", 1);
				}
				if (field == 1) {
					if (v == MQTT_V5)
						w_u8(&w, 0);
					w_str(&w, s, sl);
					w_str(&w, "", 0);
				}
				if (field == 2)
					w_str(&w, s, sl);
				static const char *const fields[] = { "CONNECT client id", "CONNECT will topic",
								       "CONNECT username" };
				expect_rc(p, w_packet(p, 0x10, &w), v, MALFORMED, fields[field], why);
			}
			/* a password is binary data: anything goes */
			w.n = 0;
			w_str(&w, "MQTT", 4);
			w_u8(&w, v);
			w_u8(&w, 0xC2);
			w_u16(&w, 0);
			if (v == MQTT_V5)
				w_u8(&w, 0);
			w_str(&w, "c", 1);
			w_str(&w, "u", 1);
			w_str(&w, s, sl);
			size_t n = w_packet(p, 0x10, &w);
			expect_rc(p, n, v, (int)n, "CONNECT password", why);
			/* PUBLISH topic [MQTT-1.5.4-1]: malformed, not an invalid topic */
			w.n = 0;
			w_str(&w, s, sl);
			if (v == MQTT_V5)
				w_u8(&w, 0);
			expect_rc(p, w_packet(p, 0x30, &w), v, MALFORMED, "PUBLISH topic", why);
			/* SUBSCRIBE and UNSUBSCRIBE filters */
			w.n = 0;
			w_u16(&w, 1);
			if (v == MQTT_V5)
				w_u8(&w, 0);
			w_str(&w, s, sl);
			expect_rc(p, w_packet(p, 0xA2, &w), v, MALFORMED, "UNSUBSCRIBE filter", why);
			w_u8(&w, 0);
			expect_rc(p, w_packet(p, 0x82, &w), v, MALFORMED, "SUBSCRIBE filter", why);
		}
		/* v5 strings in properties; correlation data is binary */
		struct w w = { .n = 0 };
		w_str(&w, "t", 1);
		w_u8(&w, (uint8_t)(5 + sl));
		w_u8(&w, MQTT_PROP_USER_PROPERTY);
		w_str(&w, s, sl);
		w_str(&w, "", 0);
		expect_rc(p, w_packet(p, 0x30, &w), MQTT_V5, MALFORMED, "user property name", why);
		w.n = 0;
		w_str(&w, "t", 1);
		w_u8(&w, (uint8_t)(5 + sl));
		w_u8(&w, MQTT_PROP_USER_PROPERTY);
		w_str(&w, "", 0);
		w_str(&w, s, sl);
		expect_rc(p, w_packet(p, 0x30, &w), MQTT_V5, MALFORMED, "user property value", why);
		w.n = 0;
		w_str(&w, "t", 1);
		w_u8(&w, (uint8_t)(3 + sl));
		w_u8(&w, MQTT_PROP_CONTENT_TYPE);
		w_str(&w, s, sl);
		expect_rc(p, w_packet(p, 0x30, &w), MQTT_V5, MALFORMED, "content type", why);
		w.n = 0;
		w_str(&w, "t", 1);
		w_u8(&w, (uint8_t)(3 + sl));
		w_u8(&w, MQTT_PROP_CORRELATION_DATA);
		w_str(&w, s, sl);
		size_t n = w_packet(p, 0x30, &w);
		expect_rc(p, n, MQTT_V5, (int)n, "correlation data", why);
	}
}

/* A v5 packet of `first` whose body is `pre` then a property block. */
static int dec_props(uint8_t first, const uint8_t *pre, size_t pre_n, const uint8_t *props, size_t props_n,
		     const uint8_t *post, size_t post_n)
{
	struct w w = { .n = 0 };
	uint8_t p[256];
	struct mqtt_packet pk;
	w_bytes(&w, pre, pre_n);
	w_u8(&w, (uint8_t)props_n);
	w_bytes(&w, props, props_n);
	w_bytes(&w, post, post_n);
	return dec(p, w_packet(p, first, &w), MQTT_V5, &pk);
}
#define PUB_PRE BYTES(0, 1, 't', 0, 1), 5
#define PUB0_PRE BYTES(0, 1, 't'), 3
#define CONNECT_PRE BYTES(0, 4, 'M', 'Q', 'T', 'T', 5, 0, 0, 0), 10
#define CONNECT_POST BYTES(0, 1, 'c'), 3
#define WILL_PRE BYTES(0, 4, 'M', 'Q', 'T', 'T', 5, 0x04, 0, 0, 0, 0, 1, 'c'), 14
#define WILL_POST BYTES(0, 1, 'w', 0, 0), 5
#define ACK_PRE BYTES(0, 1, 0), 3
#define SUB_PRE BYTES(0, 1), 2
#define SUB_POST BYTES(0, 1, 'a', 0), 4
#define UNSUB_POST BYTES(0, 1, 'a'), 3
#define SUBACK_POST BYTES(0), 1
#define RC_PRE BYTES(0), 1
#define NONE NULL, 0
#define PROPS(...) BYTES(__VA_ARGS__), NBYTES(__VA_ARGS__)

static void test_props_not_allowed(void)
{
	/* the props are fine in some packets... */
	ASSERT_TRUE(dec_props(0x32, PUB_PRE, PROPS(0x02, 0, 0, 0, 1), NONE) > 0);
	ASSERT_TRUE(dec_props(0x10, CONNECT_PRE, PROPS(0x11, 0, 0, 0, 1), CONNECT_POST) > 0);
	ASSERT_TRUE(dec_props(0x10, WILL_PRE, PROPS(0x18, 0, 0, 0, 1), WILL_POST) > 0);
	ASSERT_TRUE(dec_props(0x82, SUB_PRE, PROPS(0x0B, 1), SUB_POST) > 0);
	/* ...and malformed in others (section 2.2.2.2) */
	ASSERT_EQ(dec_props(0x32, PUB_PRE, PROPS(0x11, 0, 0, 0, 1), NONE), MALFORMED);
	ASSERT_EQ(dec_props(0x32, PUB_PRE, PROPS(0x12, 0, 1, 'x'), NONE), MALFORMED);
	ASSERT_EQ(dec_props(0x32, PUB_PRE, PROPS(0x18, 0, 0, 0, 1), NONE), MALFORMED);
	ASSERT_EQ(dec_props(0x10, CONNECT_PRE, PROPS(0x23, 0, 1), CONNECT_POST), MALFORMED);
	ASSERT_EQ(dec_props(0x10, CONNECT_PRE, PROPS(0x01, 1), CONNECT_POST), MALFORMED);
	ASSERT_EQ(dec_props(0x10, CONNECT_PRE, PROPS(0x18, 0, 0, 0, 1), CONNECT_POST), MALFORMED);
	ASSERT_EQ(dec_props(0x10, WILL_PRE, PROPS(0x0B, 1), WILL_POST), MALFORMED);
	ASSERT_EQ(dec_props(0x10, WILL_PRE, PROPS(0x11, 0, 0, 0, 1), WILL_POST), MALFORMED);
	ASSERT_EQ(dec_props(0x10, WILL_PRE, PROPS(0x23, 0, 1), WILL_POST), MALFORMED);
	ASSERT_EQ(dec_props(0x20, BYTES(0, 0), 2, PROPS(0x18, 0, 0, 0, 1), NONE), MALFORMED);
	ASSERT_EQ(dec_props(0x20, BYTES(0, 0), 2, PROPS(0x17, 1), NONE), MALFORMED);
	ASSERT_EQ(dec_props(0x40, ACK_PRE, PROPS(0x03, 0, 1, 'x'), NONE), MALFORMED);
	ASSERT_EQ(dec_props(0x62, ACK_PRE, PROPS(0x11, 0, 0, 0, 1), NONE), MALFORMED);
	ASSERT_EQ(dec_props(0x82, SUB_PRE, PROPS(0x03, 0, 1, 'x'), SUB_POST), MALFORMED);
	ASSERT_EQ(dec_props(0xA2, SUB_PRE, PROPS(0x0B, 1), UNSUB_POST), MALFORMED);
	ASSERT_EQ(dec_props(0x90, SUB_PRE, PROPS(0x0B, 1), SUBACK_POST), MALFORMED);
	ASSERT_EQ(dec_props(0xE0, RC_PRE, PROPS(0x15, 0, 1, 'm'), NONE), MALFORMED);
	ASSERT_EQ(dec_props(0xF0, RC_PRE, PROPS(0x11, 0, 0, 0, 1), NONE), MALFORMED);
	/* unknown identifiers */
	ASSERT_EQ(dec_props(0x30, PUB0_PRE, PROPS(0x00, 0), NONE), MALFORMED);
	ASSERT_EQ(dec_props(0x30, PUB0_PRE, PROPS(0x04, 0), NONE), MALFORMED);
	ASSERT_EQ(dec_props(0x30, PUB0_PRE, PROPS(0x2B, 0), NONE), MALFORMED);
	ASSERT_EQ(dec_props(0x30, PUB0_PRE, PROPS(0x7F, 0), NONE), MALFORMED);
	/* values that run past the block, a block that runs past the packet */
	ASSERT_EQ(dec_props(0x30, PUB0_PRE, BYTES(0x02, 0, 0, 0, 1), 1, NONE), MALFORMED);
	ASSERT_EQ(dec_props(0x30, PUB0_PRE, PROPS(0x02, 0, 0, 0), BYTES(1), 1), MALFORMED);
	ASSERT_EQ(dec_props(0x30, PUB0_PRE, PROPS(0x26, 0, 1, 'k', 0, 5, 'v'), NONE), MALFORMED);
	struct mqtt_packet pk;
	ASSERT_EQ(dec(BYTES(0x30, 4, 0, 1, 't', 5), 6, MQTT_V5, &pk), MALFORMED);
}

static void test_props_duplicate(void)
{
	ASSERT_EQ(dec_props(0x10, CONNECT_PRE, PROPS(0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2), CONNECT_POST), PROTOCOL);
	ASSERT_EQ(dec_props(0x10, CONNECT_PRE, PROPS(0x21, 0, 1, 0x21, 0, 1), CONNECT_POST), PROTOCOL);
	ASSERT_EQ(dec_props(0x10, WILL_PRE, PROPS(0x18, 0, 0, 0, 1, 0x18, 0, 0, 0, 1), WILL_POST), PROTOCOL);
	ASSERT_EQ(dec_props(0x20, BYTES(0, 0), 2, PROPS(0x24, 1, 0x24, 1), NONE), PROTOCOL);
	ASSERT_EQ(dec_props(0x32, PUB_PRE, PROPS(0x03, 0, 1, 'a', 0x03, 0, 1, 'b'), NONE), PROTOCOL);
	ASSERT_EQ(dec_props(0x32, PUB_PRE, PROPS(0x23, 0, 1, 0x23, 0, 1), NONE), PROTOCOL);
	ASSERT_EQ(dec_props(0x32, PUB_PRE, PROPS(0x09, 0, 0, 0x09, 0, 0), NONE), PROTOCOL);
	ASSERT_EQ(dec_props(0x40, ACK_PRE, PROPS(0x1F, 0, 0, 0x1F, 0, 0), NONE), PROTOCOL);
	ASSERT_EQ(dec_props(0x82, SUB_PRE, PROPS(0x0B, 1, 0x0B, 2), SUB_POST), PROTOCOL);
	ASSERT_EQ(dec_props(0xF0, RC_PRE, PROPS(0x15, 0, 1, 'm', 0x15, 0, 1, 'm'), NONE), PROTOCOL);
	/* user properties and a server's repeated subscription ids are fine */
	struct w w = { .n = 0 };
	uint8_t p[64];
	struct mqtt_packet pk;
	W(&w, 0, 1, 't', 18, 0x26, 0, 1, 'k', 0, 0, 0x26, 0, 1, 'k', 0, 0, 0x0B, 7, 0x0B, 9, 0x0B, 7);
	size_t n = w_packet(p, 0x30, &w);
	ASSERT_EQ(dec(p, n, MQTT_V5, &pk), (int)n);
	ASSERT_EQ(pk.u.publish.props.n_user, 2);
	ASSERT_EQ(pk.u.publish.props.n_sub_ids, 3);
	ASSERT_EQ(pk.u.publish.props.sub_id, 7);
}

/* A Variable Byte Integer has one encoding, the shortest [MQTT-1.5.5-1]:
 * anything longer is malformed wherever it appears, in v3.1.1 too. */
static void test_varint_minimal(void)
{
	uint8_t first;
	uint32_t rem;
	struct mqtt_packet pk;
	static const uint8_t zero4[] = { 0xC0, 0x80, 0x80, 0x80, 0x00 }; /* PINGREQ, 0 in four bytes */
	ASSERT_EQ(mqtt_fixed_header(zero4, sizeof zero4, &first, &rem), MALFORMED);
	ASSERT_EQ(dec(zero4, sizeof zero4, MQTT_V5, &pk), MALFORMED);
	ASSERT_EQ(dec(zero4, sizeof zero4, MQTT_V311, &pk), MALFORMED);
	ASSERT_EQ(dec(zero4, sizeof zero4, 0, &pk), MALFORMED);
	ASSERT_EQ(dec(zero4, 4, MQTT_V5, &pk), 0); /* not known before the last byte */
	static const uint8_t zero2[] = { 0xC0, 0x80, 0x00 };
	ASSERT_EQ(dec(zero2, sizeof zero2, MQTT_V311, &pk), MALFORMED);
	/* 1 in two bytes, 127 in three: a zero top group after the first byte */
	static const uint8_t one2[] = { 0xE0, 0x81, 0x00, 0x00 };
	ASSERT_EQ(mqtt_fixed_header(one2, sizeof one2, &first, &rem), MALFORMED);
	static const uint8_t max3[] = { 0x30, 0xFF, 0x80, 0x00 };
	ASSERT_EQ(mqtt_fixed_header(max3, sizeof max3, &first, &rem), MALFORMED);
	/* the shortest forms still pass: 0, and 128 whose low byte is zero */
	static const uint8_t ping[] = { 0xC0, 0x00 };
	ASSERT_EQ(dec(ping, sizeof ping, MQTT_V311, &pk), 2);
	static const uint8_t len128[] = { 0x30, 0x80, 0x01 };
	ASSERT_EQ(mqtt_fixed_header(len128, sizeof len128, &first, &rem), 3);
	ASSERT_EQ(rem, 128);
	/* a property length, a property identifier and a subscription identifier */
	uint8_t p[64];
	size_t n = MK(p, 0x30, 0, 1, 'a', 0x80, 0x00);
	ASSERT_EQ(dec(p, n, MQTT_V5, &pk), MALFORMED);
	n = MK(p, 0x30, 0, 1, 'a', 0x00);
	ASSERT_EQ(dec(p, n, MQTT_V5, &pk), (int)n);
	n = MK(p, 0x30, 0, 1, 'a', 3, 0x81, 0x00, 0x00); /* Payload Format Indicator as 81 00 */
	ASSERT_EQ(dec(p, n, MQTT_V5, &pk), MALFORMED);
	ASSERT_EQ(dec_props(0x82, SUB_PRE, PROPS(0x0B, 0x87, 0x00), SUB_POST), MALFORMED);
	ASSERT_TRUE(dec_props(0x82, SUB_PRE, PROPS(0x0B, 0x87, 0x01), SUB_POST) > 0);
}

/* Authentication Data needs an Authentication Method [MQTT-3.1.2.11.10]. */
static void test_props_auth_data_without_method(void)
{
	ASSERT_EQ(dec_props(0x10, CONNECT_PRE, PROPS(0x16, 0, 1, 'd'), CONNECT_POST), PROTOCOL);
	ASSERT_EQ(dec_props(0x10, CONNECT_PRE, PROPS(0x16, 0, 0), CONNECT_POST), PROTOCOL);
	ASSERT_EQ(dec_props(0x20, BYTES(0, 0), 2, PROPS(0x16, 0, 1, 'd'), NONE), PROTOCOL);
	ASSERT_EQ(dec_props(0xF0, RC_PRE, PROPS(0x16, 0, 1, 'd'), NONE), PROTOCOL);
	/* with the method, in either order, and the method alone are fine */
	ASSERT_TRUE(dec_props(0x10, CONNECT_PRE, PROPS(0x15, 0, 1, 'm', 0x16, 0, 1, 'd'), CONNECT_POST) > 0);
	ASSERT_TRUE(dec_props(0x10, CONNECT_PRE, PROPS(0x16, 0, 1, 'd', 0x15, 0, 1, 'm'), CONNECT_POST) > 0);
	ASSERT_TRUE(dec_props(0x10, CONNECT_PRE, PROPS(0x15, 0, 1, 'm'), CONNECT_POST) > 0);
	ASSERT_TRUE(dec_props(0xF0, RC_PRE, PROPS(0x15, 0, 1, 'm', 0x16, 0, 1, 'd'), NONE) > 0);
	/* the CONNECT's version is known to the caller, for the CONNACK 0x82 */
	struct w w = { .n = 0 };
	uint8_t p[64];
	struct mqtt_packet pk;
	W(&w, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 4, 0x16, 0, 1, 'd', 0, 1, 'c');
	ASSERT_EQ(dec(p, w_packet(p, 0x10, &w), 0, &pk), PROTOCOL);
	ASSERT_EQ(pk.type, MQTT_CONNECT);
	ASSERT_EQ(pk.u.connect.version, MQTT_V5);
}

static void test_props_bad_values(void)
{
	/* zero Receive Maximum is a Protocol Error [MQTT-3.1.2.11.3] */
	ASSERT_EQ(dec_props(0x10, CONNECT_PRE, PROPS(0x21, 0, 0), CONNECT_POST), PROTOCOL);
	ASSERT_EQ(dec_props(0x20, BYTES(0, 0), 2, PROPS(0x21, 0, 0), NONE), PROTOCOL);
	ASSERT_EQ(dec_props(0x10, CONNECT_PRE, PROPS(0x27, 0, 0, 0, 0), CONNECT_POST), PROTOCOL);
	ASSERT_EQ(dec_props(0x32, PUB_PRE, PROPS(0x23, 0, 0), NONE), PROTOCOL);
	ASSERT_EQ(dec_props(0x82, SUB_PRE, PROPS(0x0B, 0), SUB_POST), PROTOCOL);
	ASSERT_EQ(dec_props(0x32, PUB_PRE, PROPS(0x01, 2), NONE), PROTOCOL);
	ASSERT_EQ(dec_props(0x10, CONNECT_PRE, PROPS(0x17, 2), CONNECT_POST), PROTOCOL);
	ASSERT_EQ(dec_props(0x10, CONNECT_PRE, PROPS(0x19, 0xFF), CONNECT_POST), PROTOCOL);
	ASSERT_EQ(dec_props(0x20, BYTES(0, 0), 2, PROPS(0x24, 2), NONE), PROTOCOL);
	ASSERT_EQ(dec_props(0x20, BYTES(0, 0), 2, PROPS(0x25, 2), NONE), PROTOCOL);
	ASSERT_EQ(dec_props(0x20, BYTES(0, 0), 2, PROPS(0x28, 2), NONE), PROTOCOL);
	/* the limits themselves are fine */
	ASSERT_TRUE(dec_props(0x10, CONNECT_PRE, PROPS(0x21, 0, 1), CONNECT_POST) > 0);
	ASSERT_TRUE(dec_props(0x20, BYTES(0, 0), 2, PROPS(0x24, 0, 0x25, 1), NONE) > 0);
	ASSERT_TRUE(dec_props(0x82, SUB_PRE, PROPS(0x0B, 0xFF, 0xFF, 0xFF, 0x7F), SUB_POST) > 0);
}

static void test_subscribe_malformed(void)
{
	struct mqtt_packet pk;
	uint8_t p[32];
	size_t n;
	/* no topics [MQTT-3.8.3-3], [MQTT-3.10.3-2] */
	n = MK(p, 0x82, 0, 1);
	ASSERT_EQ(dec(p, n, MQTT_V311, &pk), PROTOCOL);
	n = MK(p, 0x82, 0, 1, 0);
	ASSERT_EQ(dec(p, n, MQTT_V5, &pk), PROTOCOL);
	n = MK(p, 0xA2, 0, 1);
	ASSERT_EQ(dec(p, n, MQTT_V311, &pk), PROTOCOL);
	n = MK(p, 0xA2, 0, 1, 0);
	ASSERT_EQ(dec(p, n, MQTT_V5, &pk), PROTOCOL);
	/* options: QoS 3, reserved bits [MQTT-3.8.3-4], Retain Handling 3 [MQTT-3.8.3-5] */
	static const uint8_t bad3[] = { 0x03, 0x04, 0x08, 0x10, 0x40, 0x80 };
	for (size_t i = 0; i < sizeof bad3; i++) {
		n = MK(p, 0x82, 0, 1, 0, 1, 'a', 0);
		p[n - 1] = bad3[i];
		expect_rc(p, n, MQTT_V311, MALFORMED, "v3 subscription options", "reserved bits");
	}
	static const uint8_t bad5[] = { 0x03, 0x30, 0x40, 0x80, 0xC0, 0x33 };
	for (size_t i = 0; i < sizeof bad5; i++) {
		n = MK(p, 0x82, 0, 1, 0, 0, 1, 'a', 0);
		p[n - 1] = bad5[i];
		expect_rc(p, n, MQTT_V5, MALFORMED, "v5 subscription options", "reserved bits");
	}
	n = MK(p, 0x82, 0, 1, 0, 0, 1, 'a', 0x2E);
	ASSERT_EQ(dec(p, n, MQTT_V5, &pk), (int)n);
	/* missing options byte; filter longer than the packet */
	n = MK(p, 0x82, 0, 1, 0, 1, 'a', 0, 0, 1, 'b');
	ASSERT_EQ(dec(p, n, MQTT_V311, &pk), MALFORMED);
	n = MK(p, 0x82, 0, 1, 0, 9, 'a', 0);
	ASSERT_EQ(dec(p, n, MQTT_V311, &pk), MALFORMED);
	n = MK(p, 0xA2, 0, 1, 0, 1, 'a', 0);
	ASSERT_EQ(dec(p, n, MQTT_V311, &pk), MALFORMED);
	/* SUBACK needs a code, v3 UNSUBACK takes none */
	n = MK(p, 0x90, 0, 1);
	ASSERT_EQ(dec(p, n, MQTT_V311, &pk), MALFORMED);
	n = MK(p, 0x90, 0, 1, 0);
	ASSERT_EQ(dec(p, n, MQTT_V5, &pk), MALFORMED);
	n = MK(p, 0xB0, 0, 1, 0);
	ASSERT_EQ(dec(p, n, MQTT_V311, &pk), MALFORMED);
}

/* CONNECT body: name, level, flags, keep alive 0, then `rest`. */
static int dec_connect(const char *name, uint8_t level, uint8_t flags, const uint8_t *rest, size_t n,
		       struct mqtt_packet *pk)
{
	struct w w = { .n = 0 };
	uint8_t p[128];
	w_str(&w, name, strlen(name));
	w_u8(&w, level);
	w_u8(&w, flags);
	w_u16(&w, 0);
	w_bytes(&w, rest, n);
	return dec(p, w_packet(p, 0x10, &w), 0, pk);
}

static void test_connect_malformed(void)
{
	struct mqtt_packet pk;
	/* v3.1.1: a password needs a username [MQTT-3.1.2-22]; v5 allows it */
	ASSERT_EQ(dec_connect("MQTT", 4, 0x42, BYTES(0, 1, 'c', 0, 2, 'p', 'w'), 7, &pk), MALFORMED);
	ASSERT_EQ(dec_connect("MQIsdp", 3, 0x42, BYTES(0, 1, 'c', 0, 2, 'p', 'w'), 7, &pk), MALFORMED);
	ASSERT_EQ(dec_connect("MQTT", 5, 0x42, BYTES(0, 0, 1, 'c', 0, 2, 'p', 'w'), 8, &pk), 20);
	ASSERT_TRUE(pk.u.connect.username.p == NULL);
	ASSERT_STRN(pk.u.connect.password.p, pk.u.connect.password.len, "pw");
	/* reserved flag [MQTT-3.1.2-3], will QoS 3, will QoS/retain without will */
	ASSERT_EQ(dec_connect("MQTT", 4, 0x03, BYTES(0, 1, 'c'), 3, &pk), MALFORMED);
	ASSERT_EQ(dec_connect("MQTT", 4, 0x1C, BYTES(0, 1, 'c', 0, 1, 't', 0, 0), 8, &pk), MALFORMED);
	ASSERT_EQ(dec_connect("MQTT", 4, 0x08, BYTES(0, 1, 'c'), 3, &pk), MALFORMED);
	ASSERT_EQ(dec_connect("MQTT", 4, 0x10, BYTES(0, 1, 'c'), 3, &pk), MALFORMED);
	ASSERT_EQ(dec_connect("MQTT", 4, 0x20, BYTES(0, 1, 'c'), 3, &pk), MALFORMED);
	/* missing or trailing fields */
	ASSERT_EQ(dec_connect("MQTT", 4, 0x02, BYTES(0, 1, 'c', 'x'), 4, &pk), MALFORMED);
	ASSERT_EQ(dec_connect("MQTT", 4, 0x02, BYTES(0), 1, &pk), MALFORMED);
	ASSERT_EQ(dec_connect("MQTT", 4, 0x82, BYTES(0, 1, 'c'), 3, &pk), MALFORMED);
	ASSERT_EQ(dec_connect("MQTT", 4, 0x06, BYTES(0, 1, 'c', 0, 1, 't'), 6, &pk), MALFORMED);
	ASSERT_EQ(dec_connect("MQTT", 5, 0x02, BYTES(0, 1, 'c'), 3, &pk), MALFORMED); /* no props */
	ASSERT_EQ(dec(BYTES(0x10, 3, 0, 4, 'M'), 5, 0, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0x10, 6, 0, 4, 'M', 'Q', 'T', 'T'), 8, 0, &pk), MALFORMED);
}

static void test_connect_unsupported(void)
{
	struct mqtt_packet pk;
	static const struct { const char *name; uint8_t level; } cases[] = {
		{ "MQTT", 6 }, { "MQTT", 3 }, { "MQTT", 0 }, { "MQTT", 0xFF }, { "MQIsdp", 4 }, { "MQIsdp", 5 },
		{ "MQTX", 4 }, { "mqtt", 4 }, { "", 4 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		memset(&pk, 0, sizeof pk);
		int rc = dec_connect(cases[i].name, cases[i].level, 0x02, BYTES(0, 1, 'c'), 3, &pk);
		if (rc != -MQTT_RC_UNSUPPORTED_PROTOCOL)
			CHECK_FAIL("CONNECT \"%s\" level %u: %d != %d", cases[i].name, cases[i].level, rc,
				   -MQTT_RC_UNSUPPORTED_PROTOCOL);
		/* the broker answers with a CONNACK of the version it read */
		ASSERT_EQ(pk.type, MQTT_CONNECT);
		ASSERT_EQ(pk.u.connect.version, cases[i].level);
	}
}

static void test_packet_too_large(void)
{
	struct mqtt_packet pk;
	/* known from the fixed header alone: 3 + 1000 bytes, only 3 here */
	static const uint8_t hdr[] = { 0x30, 0xE8, 0x07 };
	ASSERT_EQ(mqtt_decode(hdr, 3, MQTT_V5, 100, &pk), -MQTT_RC_PACKET_TOO_LARGE);
	ASSERT_EQ(pk.type, MQTT_PUBLISH);
	ASSERT_EQ(pk.size, 1003);
	ASSERT_EQ(mqtt_decode(hdr, 2, MQTT_V5, 100, &pk), 0); /* header incomplete */
	ASSERT_EQ(mqtt_decode(hdr, 3, MQTT_V5, 1003, &pk), 0);
	ASSERT_EQ(mqtt_decode(hdr, 3, MQTT_V5, 0, &pk), 0);
	static const uint8_t huge[] = { 0x82, 0xFF, 0xFF, 0xFF, 0x7F };
	ASSERT_EQ(mqtt_decode(huge, 5, MQTT_V311, 268435459, &pk), -MQTT_RC_PACKET_TOO_LARGE);
	/* the limit counts the whole packet, fixed header included */
	ASSERT_EQ(mqtt_decode(v5_publish_props, sizeof v5_publish_props, MQTT_V5, sizeof v5_publish_props, &pk),
		  (int)sizeof v5_publish_props);
	ASSERT_EQ(mqtt_decode(v5_publish_props, sizeof v5_publish_props, MQTT_V5, sizeof v5_publish_props - 1, &pk),
		  -MQTT_RC_PACKET_TOO_LARGE);
	ASSERT_EQ(mqtt_decode(spec_connect_v311, 2, 0, 31, &pk), -MQTT_RC_PACKET_TOO_LARGE);
}

static void test_short_and_long_bodies(void)
{
	struct mqtt_packet pk;
	ASSERT_EQ(dec(BYTES(0x30, 5, 0, 0x40, 'a', 'b', 'c'), 7, MQTT_V311, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0x32, 3, 0, 1, 'a'), 5, MQTT_V311, &pk), MALFORMED); /* no packet id */
	ASSERT_EQ(dec(BYTES(0x30, 1, 0), 3, MQTT_V311, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0x30, 0), 2, MQTT_V311, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0x30, 3, 0, 1, 'a'), 5, MQTT_V5, &pk), MALFORMED); /* no props */
	ASSERT_EQ(dec(BYTES(0x20, 1, 0), 3, MQTT_V311, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0x20, 2, 0x02, 0), 4, MQTT_V311, &pk), MALFORMED); /* reserved ack flags */
	ASSERT_EQ(dec(BYTES(0x20, 3, 0, 0, 0), 5, MQTT_V311, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0x20, 2, 0, 0), 4, MQTT_V5, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0x20, 4, 0, 0, 0, 0), 6, MQTT_V5, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0x40, 1, 1), 3, MQTT_V311, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0x40, 3, 0, 1, 0), 5, MQTT_V311, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0x40, 4, 0, 1, 0, 5), 6, MQTT_V5, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0x40, 5, 0, 1, 0, 0, 0), 7, MQTT_V5, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0xC0, 1, 0), 3, MQTT_V311, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0xD0, 1, 0), 3, MQTT_V5, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0xE0, 1, 0), 3, MQTT_V311, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0xE0, 2, 0, 1), 4, MQTT_V5, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0xE0, 3, 0, 0, 0), 5, MQTT_V5, &pk), MALFORMED);
	ASSERT_EQ(dec(BYTES(0x90, 2, 0, 1), 4, MQTT_V5, &pk), MALFORMED);
	/* a second packet after the first is not consumed */
	ASSERT_EQ(dec(BYTES(0xC0, 0, 0xC0), 3, MQTT_V311, &pk), 2);
}

/* ---- UTF-8 and property helpers ---- */

static void test_utf8_valid(void)
{
	static const struct { const char *s; size_t n; bool ok; } cases[] = {
		{ "", 0, true },
		{ "a/b/c", 5, true },
		{ "\x01\x7f", 2, true },                 /* control characters: SHOULD NOT, still valid */
		{ "\xc2\x80", 2, true },                 /* U+0080 */
		{ "\xc3\xa9", 2, true },                 /* é */
		{ "\xdf\xbf", 2, true },                 /* U+07FF */
		{ "\xe0\xa0\x80", 3, true },             /* U+0800 */
		{ "\xe2\x82\xac", 3, true },             /* € */
		{ "\xed\x9f\xbf", 3, true },             /* U+D7FF */
		{ "\xee\x80\x80", 3, true },             /* U+E000 */
		{ "\xef\xbb\xbf", 3, true },             /* BOM U+FEFF is not skipped [MQTT-1.5.4-3] */
		{ "\xef\xbf\xbf", 3, true },             /* U+FFFF */
		{ "\xf0\x90\x80\x80", 4, true },         /* U+10000 */
		{ "\xf0\x9d\x84\x9e", 4, true },         /* 𝄞 */
		{ "\xf4\x8f\xbf\xbf", 4, true },         /* U+10FFFF */
		{ "\x00", 1, false },                    /* U+0000 [MQTT-1.5.4-2] */
		{ "ab\x00", 3, false },
		{ "\xc0\x80", 2, false },                /* overlong U+0000 */
		{ "\xc1\xbf", 2, false },                /* overlong U+007F */
		{ "\xe0\x80\x80", 3, false },
		{ "\xe0\x9f\xbf", 3, false },            /* overlong U+07FF */
		{ "\xf0\x80\x80\x80", 4, false },
		{ "\xf0\x8f\xbf\xbf", 4, false },        /* overlong U+FFFF */
		{ "\xed\xa0\x80", 3, false },            /* U+D800 [MQTT-1.5.4-1] */
		{ "\xed\xbf\xbf", 3, false },            /* U+DFFF */
		{ "\xf4\x90\x80\x80", 4, false },        /* U+110000 */
		{ "\xf5\x80\x80\x80", 4, false },
		{ "\xf8\x88\x80\x80\x80", 5, false },    /* five-byte form */
		{ "\xfe", 1, false },
		{ "\xff", 1, false },
		{ "\x80", 1, false },                    /* lone continuation */
		{ "a\xbf", 2, false },
		{ "\xc3", 1, false },                    /* truncated */
		{ "\xe2\x82", 2, false },
		{ "\xf0\x9d\x84", 3, false },
		{ "\xc3\x28", 2, false },                /* bad continuation */
		{ "\xe2\x28\xa1", 3, false },
		{ "\xf0\x9d\x28\x9e", 4, false },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bool got = mqtt_utf8_valid((const uint8_t *)cases[i].s, cases[i].n);
		if (got != cases[i].ok)
			CHECK_FAIL("mqtt_utf8_valid case %zu (%zu bytes): %d != %d", i, cases[i].n, got, cases[i].ok);
	}
	/* the length bounds the scan: a valid prefix of an invalid buffer */
	ASSERT_TRUE(mqtt_utf8_valid((const uint8_t *)"ab\xff", 2));
	ASSERT_FALSE(mqtt_utf8_valid((const uint8_t *)"\xe2\x82\xac", 2));
	for (size_t i = 0; i < N_BAD_UTF8; i++)
		ASSERT_FALSE(mqtt_utf8_valid(bad_utf8[i].b, bad_utf8[i].n));
}

static void test_props_next(void)
{
	struct mqtt_packet pk;
	ASSERT_EQ(dec(v5_publish_props, sizeof v5_publish_props, MQTT_V5, &pk), (int)sizeof v5_publish_props);
	const struct mqtt_props *pr = &pk.u.publish.props;
	struct mqtt_prop_item it;
	uint32_t off = 0;
	ASSERT_TRUE(mqtt_props_next(pr, &off, &it));
	ASSERT_EQ(it.id, MQTT_PROP_PAYLOAD_FORMAT);
	ASSERT_EQ(it.num, 1);
	ASSERT_EQ(off, 2);
	ASSERT_TRUE(mqtt_props_next(pr, &off, &it));
	ASSERT_EQ(it.id, MQTT_PROP_MESSAGE_EXPIRY);
	ASSERT_EQ(it.num, 60);
	ASSERT_TRUE(mqtt_props_next(pr, &off, &it));
	ASSERT_EQ(it.id, MQTT_PROP_CONTENT_TYPE);
	ASSERT_STRN(it.str.p, it.str.len, "text/plain");
	ASSERT_TRUE(mqtt_props_next(pr, &off, &it));
	ASSERT_EQ(it.id, MQTT_PROP_SUBSCRIPTION_ID);
	ASSERT_EQ(it.num, 5);
	ASSERT_TRUE(mqtt_props_next(pr, &off, &it));
	ASSERT_EQ(it.id, MQTT_PROP_TOPIC_ALIAS);
	ASSERT_EQ(it.num, 7);
	ASSERT_TRUE(mqtt_props_next(pr, &off, &it));
	ASSERT_EQ(it.id, MQTT_PROP_USER_PROPERTY);
	ASSERT_STRN(it.str.p, it.str.len, "k");
	ASSERT_STRN(it.val.p, it.val.len, "v");
	ASSERT_EQ(off, pr->raw_len);
	ASSERT_FALSE(mqtt_props_next(pr, &off, &it));
	ASSERT_EQ(off, pr->raw_len);

	/* an empty block and a v3 packet have nothing to walk */
	static const uint8_t empty[] = { 0x30, 4, 0, 1, 't', 0 };
	ASSERT_EQ(dec(empty, sizeof empty, MQTT_V5, &pk), 6);
	off = 0;
	ASSERT_FALSE(mqtt_props_next(&pk.u.publish.props, &off, &it));
	ASSERT_EQ(dec(empty, sizeof empty, MQTT_V311, &pk), 6);
	off = 0;
	ASSERT_FALSE(mqtt_props_next(&pk.u.publish.props, &off, &it));
	struct mqtt_props none = { 0 };
	ASSERT_FALSE(mqtt_props_next(&none, &off, &it));
}

static void test_props_copy_user(void)
{
	/* user properties between other properties are copied in order */
	static const uint8_t pkt[] = {
		0x30, 25, 0, 1, 't', 20,
		0x26, 0, 2, 'k', '1', 0, 2, 'v', '1',
		0x01, 1,
		0x26, 0, 2, 'k', '2', 0, 0,
		0x0B, 5,
		'p',
	};
	struct mqtt_packet pk;
	ASSERT_EQ(dec(pkt, sizeof pkt, MQTT_V5, &pk), (int)sizeof pkt);
	ASSERT_EQ(pk.u.publish.props.n_user, 2);
	struct buf b = { 0 };
	ASSERT_EQ(buf_append(&b, "X", 1), 0);
	ASSERT_EQ(mqtt_props_copy_user(&pk.u.publish.props, &b), 0);
	ASSERT_EQ(b.len, 1 + 9 + 7);
	ASSERT_MEM(b.p, "X", 1);
	ASSERT_MEM(b.p + 1, pkt + 6, 9);
	ASSERT_MEM(b.p + 10, pkt + 17, 7);

	/* passing them through: the copy goes into `extra` of a new message */
	struct mqtt_publish m = { .topic = BIN("t"), .payload = BIN("p") };
	m.props.have = BIT(PAYLOAD_FORMAT);
	m.props.payload_format = 1;
	m.props.extra = (struct mqtt_bin){ b.p + 1, (uint32_t)(b.len - 1) };
	struct buf out = { 0 };
	ASSERT_EQ(mqtt_encode_publish(&out, MQTT_V5, &m), 0);
	struct mqtt_packet pk2;
	ASSERT_EQ(dec(out.p, out.len, MQTT_V5, &pk2), (int)out.len);
	ASSERT_EQ(pk2.u.publish.props.n_user, 2);
	ASSERT_EQ(pk2.u.publish.props.have, BIT(PAYLOAD_FORMAT));
	struct items its;
	walk_props(&pk2.u.publish.props, &its);
	ASSERT_EQ(its.n, 3);
	ASSERT_EQ(its.it[1].id, MQTT_PROP_USER_PROPERTY);
	ASSERT_STRN(its.it[1].str.p, its.it[1].str.len, "k1");
	ASSERT_STRN(its.it[2].str.p, its.it[2].str.len, "k2");

	/* no user properties, no properties at all: nothing appended */
	b.len = 0;
	ASSERT_EQ(dec(v5_publish_props, sizeof v5_publish_props, MQTT_V5, &pk), (int)sizeof v5_publish_props);
	ASSERT_EQ(mqtt_props_copy_user(&pk.u.publish.props, &b), 0);
	ASSERT_EQ(b.len, 7);
	ASSERT_MEM(b.p, v5_publish_props + 35, 7);
	b.len = 0;
	ASSERT_EQ(dec(BYTES(0x30, 4, 0, 1, 't', 0), 6, MQTT_V5, &pk), 6);
	ASSERT_EQ(mqtt_props_copy_user(&pk.u.publish.props, &b), 0);
	ASSERT_EQ(b.len, 0);
	buf_free(&b);
	buf_free(&out);
}

static void test_props_encode(void)
{
	struct buf b = { 0 };
	struct mqtt_props pr = { 0 };
	ASSERT_EQ(mqtt_props_encode(&pr, &b), 0);
	ASSERT_EQ(b.len, 0);

	pr.have = BIT(PAYLOAD_FORMAT) | BIT(MESSAGE_EXPIRY) | BIT(CONTENT_TYPE) | BIT(SUBSCRIPTION_ID);
	pr.payload_format = 1;
	pr.message_expiry = 0x01020304;
	pr.content_type = BIN("ct");
	pr.sub_id = 200;
	pr.extra = (struct mqtt_bin){ (const uint8_t *)"\x26\x00\x01" "a\x00\x01" "b", 7 };
	ASSERT_EQ(buf_append(&b, "H", 1), 0);
	ASSERT_EQ(mqtt_props_encode(&pr, &b), 0);
	static const uint8_t want[] = {
		'H', 0x01, 1, 0x02, 1, 2, 3, 4, 0x03, 0, 2, 'c', 't', 0x0B, 0xC8, 0x01,
		0x26, 0, 1, 'a', 0, 1, 'b',
	};
	ASSERT_EQ(b.len, sizeof want);
	ASSERT_MEM(b.p, want, sizeof want);

	/* several subscription ids; a block over 127 bytes (two-byte prefix dropped) */
	static const uint32_t ids[] = { 1, 16384 };
	static char big[300];
	memset(big, 'z', sizeof big);
	pr = (struct mqtt_props){ .have = BIT(CONTENT_TYPE) | BIT(SUBSCRIPTION_ID), .sub_ids = ids, .n_sub_ids = 2 };
	pr.content_type = (struct mqtt_bin){ (const uint8_t *)big, sizeof big };
	b.len = 0;
	ASSERT_EQ(mqtt_props_encode(&pr, &b), 0);
	ASSERT_EQ(b.len, 3 + sizeof big + 2 + 4);
	ASSERT_MEM(b.p, BYTES(0x03, 0x01, 0x2C), 3);
	ASSERT_MEM(b.p + 3 + sizeof big, BYTES(0x0B, 0x01, 0x0B, 0x80, 0x80, 0x01), 6);

	/* the encoded block decodes back when framed as a PUBLISH */
	ASSERT_EQ(b.len, 309);
	struct w *w = calloc(1, sizeof *w);
	uint8_t *pkt = malloc(sizeof w->b + 8);
	struct mqtt_packet pk;
	w_str(w, "t", 1);
	W(w, 0xB5, 0x02); /* property length 309 */
	w_bytes(w, b.p, b.len);
	w_u8(w, 'p');
	size_t n = w_packet(pkt, 0x30, w);
	ASSERT_EQ(n, 3 + 3 + 2 + 309 + 1);
	ASSERT_EQ(dec(pkt, n, MQTT_V5, &pk), (int)n);
	ASSERT_EQ(pk.u.publish.props.content_type.len, sizeof big);
	ASSERT_EQ(pk.u.publish.props.n_sub_ids, 2);
	ASSERT_STRN(pk.u.publish.payload.p, pk.u.publish.payload.len, "p");
	free(pkt);
	free(w);
	buf_free(&b);
}

static void test_publish_size(void)
{
	static const uint32_t lens[] = { 0, 1, 100, 118, 119, 120, 121, 122, 123, 16370, 16371, 16372, 16380,
					 16384, 2097140, 2097152 };
	uint8_t *payload = calloc(1, 2097152);
	ASSERT_TRUE(payload != NULL);
	if (!payload)
		return;
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		for (uint8_t v = MQTT_V311; v <= MQTT_V5; v++) {
			for (uint8_t qos = 0; qos <= 1; qos++) {
				struct mqtt_publish m = { .qos = qos, .pid = qos, .topic = BIN("a/b"),
							  .payload = { payload, lens[i] } };
				m.props.have = BIT(MESSAGE_EXPIRY);
				m.props.message_expiry = 5;
				struct buf b = { 0 };
				struct mqtt_packet pk;
				ASSERT_EQ(mqtt_encode_publish(&b, v, &m), 0);
				uint32_t size = mqtt_publish_size(v, &m);
				if (size != b.len)
					CHECK_FAIL("v%u QoS %u payload %u: size %u != encoded %u", v, qos, lens[i], size,
						   b.len);
				ASSERT_EQ(dec(b.p, b.len, v, &pk), (int)b.len);
				ASSERT_EQ(pk.u.publish.payload.len, lens[i]);
				buf_free(&b);
			}
		}
	}
	free(payload);
}

static void test_names(void)
{
	ASSERT_STRN(mqtt_type_name(MQTT_PUBREL), strlen(mqtt_type_name(MQTT_PUBREL)), "PUBREL");
	ASSERT_STRN(mqtt_type_name(MQTT_AUTH), strlen(mqtt_type_name(MQTT_AUTH)), "AUTH");
	ASSERT_STRN(mqtt_type_name(0), strlen(mqtt_type_name(0)), "RESERVED");
	ASSERT_STRN(mqtt_rc_name(0x97), strlen(mqtt_rc_name(0x97)), "quota exceeded");
	ASSERT_STRN(mqtt_rc_name(0x03), strlen(mqtt_rc_name(0x03)), "unknown reason");
}

int main(void)
{
	RUN(test_connect_v311_roundtrip);
	RUN(test_connect_v311_minimal);
	RUN(test_connect_v5_roundtrip);
	RUN(test_connect_spec_v311);
	RUN(test_connect_spec_v5);
	RUN(test_connack_roundtrip);
	RUN(test_publish_v311_roundtrip);
	RUN(test_publish_spec_examples);
	RUN(test_publish_v5_bytes);
	RUN(test_publish_v5_roundtrip);
	RUN(test_ack_roundtrip);
	RUN(test_subscribe_roundtrip);
	RUN(test_unsubscribe_roundtrip);
	RUN(test_suback_unsuback_roundtrip);
	RUN(test_ping_roundtrip);
	RUN(test_disconnect_auth_roundtrip);
	RUN(test_incremental_stream);
	RUN(test_varint_limits);
	RUN(test_varint_minimal);
	RUN(test_reserved_flags);
	RUN(test_publish_flags);
	RUN(test_packet_id_zero);
	RUN(test_bad_utf8_in_packets);
	RUN(test_props_not_allowed);
	RUN(test_props_duplicate);
	RUN(test_props_auth_data_without_method);
	RUN(test_props_bad_values);
	RUN(test_subscribe_malformed);
	RUN(test_connect_malformed);
	RUN(test_connect_unsupported);
	RUN(test_packet_too_large);
	RUN(test_short_and_long_bodies);
	RUN(test_utf8_valid);
	RUN(test_props_next);
	RUN(test_props_copy_user);
	RUN(test_props_encode);
	RUN(test_publish_size);
	RUN(test_names);
	return CHECK_DONE();
}
