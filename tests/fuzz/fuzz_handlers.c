/* libFuzzer target for the packet handlers, through the broker harness
 * (tests/unit/broker_harness.h): a real broker with two workers and a fake
 * store, three client slots. The input is a script: its first byte picks
 * the configuration and the store, then each command byte (low 3 bits)
 * does one thing:
 *   0 raw     slot, length, bytes: sent as they are (malformed, split, anything)
 *   1 connect slot, version, flags, keep-alive: a CONNECT (will, clean, expiry)
 *   2 sub     slot, filter, options
 *   3 pub     slot, topic, qos|retain, packet id, payload length|v5 alias|expiry
 *   4 ack     slot, type, packet id
 *   5 drop    slot: the peer goes away (a new connection takes the slot);
 *             with bit 3 instead, the slot's peer keeps its side open after
 *             the broker's goodbye (lingers) until it is dropped
 *   6 tick    seconds: keep-alive, expiry and delayed wills
 *   7 store   how commits end from now on: ok, I/O error, full
 * After every command each client's output must decode as whole packets of
 * its protocol, the connected-clients gauge must match the connections
 * that hold their session, and at the end every connection reference
 * must be back; ASan, UBSan and LSan watch the rest.
 */
#include "broker_harness.h"
#include "base/err.h"
#include "base/clock.h"
#include "base/log.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "fuzz_handlers: %s\n", #x); abort(); } } while (0)

#define SLOTS 3
#define MAX_STEPS 256

struct script {
	const uint8_t *p;
	size_t len;
};

static uint8_t take(struct script *s)
{
	if (!s->len)
		return 0;
	s->len--;
	return *s->p++;
}

static const char *const filters[] = { "#", "a/#", "a/+", "a/b", "$share/g/a/#", "$SYS/#", "+/+", "a/#/b" };
static const char *const topics[] = { "a/b", "a/c", "b", "$SYS/x", "a/b/c/d", "", "a/+", "$share/g/a" };
static const char *const ids[SLOTS] = { "c0", "c1", "c0" }; /* slot 2 takes slot 0's session over */

static const char *const config_plain[] = { NULL };
static const char *const config_tight[] = { "max_inflight_messages 2", "max_queued_messages 3",
					    "queue_overflow reject_new", "max_topic_alias 2",
					    "receive_maximum 4", "max_packet_size 512", NULL };
static const char *const config_closed[] = { "allow_anonymous false", "retain_available false",
					     "max_subscriptions_per_client 2", NULL };

/* Every byte sent to fc so far decodes as whole packets. */
static void drain(struct fake_conn *fc)
{
	struct mqtt_packet pk;
	int rc;
	while ((rc = harness_read(fc, &pk)) == 1)
		;
	CHECK(rc == 0);
	CHECK(harness_unread(fc) == 0);
}

static void check_turn(struct harness *h, struct fake_conn *const *slot)
{
	long connected = 0;
	for (uint32_t i = 0; i < h->n_conns; i++) {
		struct fake_conn *fc = h->conns[i];
		drain(fc);
		/* Counted: the connections their session is attached to. One
		 * closing after its DISCONNECT holds none; one the broker closes
		 * itself keeps it until the close (a lingering peer). */
		struct session *ss = fc->gone ? NULL : fc->client.session;
		connected += ss && ss->client == &fc->client;
	}
	(void)slot;
	CHECK(atomic_load(&h->b->stats.clients_connected) == connected);
	if (h->store_mode == HARNESS_STORE_AUTO)
		CHECK(h->n_pending == 0);
}

static struct fake_conn *slot_conn(struct harness *h, struct fake_conn **slot, unsigned k)
{
	if (!slot[k] || slot[k]->gone || slot[k]->close_requested)
		slot[k] = harness_connect(h, (int)(k % 2));
	CHECK(slot[k]);
	return slot[k];
}

static void step(struct harness *h, struct fake_conn **slot, struct script *s)
{
	uint8_t cmd = take(s);
	unsigned k = take(s) % SLOTS;
	struct buf b = { 0 };
	uint8_t version;
	switch (cmd & 7) {
	case 0: {
		size_t n = take(s);
		if (n > s->len)
			n = s->len;
		harness_send(h, slot_conn(h, slot, k), s->p, n);
		s->p += n;
		s->len -= n;
		break;
	}
	case 1: {
		static const uint8_t versions[4] = { MQTT_V31, MQTT_V311, MQTT_V5, MQTT_V5 };
		uint8_t flags = take(s);
		struct harness_connect_opts o = {
			.version = versions[flags & 3],
			.id = (flags & 4) ? "" : ids[k],
			.clean = flags & 8,
			.keepalive = take(s),
			.session_expiry = (flags & 16) ? 600 : 0,
			.username = (flags & 32) ? "user" : NULL,
			.password = (flags & 32) ? "pass" : NULL,
			.will_topic = (flags & 64) ? topics[(flags >> 4) & 7] : NULL,
			.will_payload = "will",
			.will_qos = (flags >> 6) & 3 ? 1 : 0,
			.will_retain = flags & 128,
		};
		harness_enc_connect(&b, &o);
		harness_send(h, slot_conn(h, slot, k), b.p, b.len);
		break;
	}
	case 2: {
		struct fake_conn *fc = slot_conn(h, slot, k);
		const char *f = filters[take(s) & 7];
		uint8_t opt = take(s) & 0x3f;
		version = fc->client.version;
		harness_enc_subscribe(&b, version, 1 + (cmd >> 3), &f, &opt, 1);
		harness_send(h, fc, b.p, b.len);
		break;
	}
	case 3: {
		struct fake_conn *fc = slot_conn(h, slot, k);
		uint8_t how = take(s), pid = take(s), extra = take(s), n = extra & 63;
		static const char payload[64] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde";
		const char *topic = topics[how & 7];
		uint8_t qos = (how >> 3) % 3;
		struct mqtt_publish m = { .qos = qos, .retain = how & 0x80, .pid = qos ? (uint16_t)(pid + 1) : 0,
					  .topic = { (const uint8_t *)topic, (uint32_t)strlen(topic) },
					  .payload = { (const uint8_t *)payload, n } };
		if (fc->client.version == MQTT_V5 && (extra & 0x40)) {
			/* A topic alias (0 and past the maximum included), set or used. */
			m.props.have |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
			m.props.topic_alias = pid % 4;
			if (how & 0x40)
				m.topic.len = 0;
		}
		if (fc->client.version == MQTT_V5 && (extra & 0x80)) {
			m.props.have |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
			m.props.message_expiry = pid % 3;
		}
		if (!mqtt_encode_publish(&b, fc->client.version, &m))
			harness_send(h, fc, b.p, b.len);
		break;
	}
	case 4: {
		static const uint8_t types[4] = { MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP };
		struct fake_conn *fc = slot_conn(h, slot, k);
		uint8_t t = take(s);
		harness_enc_ack(&b, fc->client.version, types[t & 3], (uint16_t)(take(s) + 1), (t & 4) ? 0x80 : 0);
		harness_send(h, fc, b.p, b.len);
		break;
	}
	case 5:
		if (cmd & 8)
			slot_conn(h, slot, k)->linger = true;
		else if (slot[k] && !slot[k]->gone)
			harness_drop(h, slot[k]);
		break;
	case 6: harness_tick(h, clock_mono_ms() + (uint64_t)take(s) * 1000); break;
	case 7: {
		static const int errs[3] = { 0, -FM_EIO, -FM_ELIMIT };
		h->store_err = errs[(cmd >> 3) % 3];
		break;
	}
	}
	buf_free(&b);
	check_turn(h, slot);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const *configs[3] = { config_plain, config_tight, config_closed };
	log_mask = 0;
	if (size < 1)
		return 0;
	struct script s = { data + 1, size - 1 };
	char err[256];
	enum harness_store store = data[0] & 1 ? HARNESS_STORE_AUTO : HARNESS_NO_STORE;
	struct harness *h = harness_new(configs[(data[0] >> 1) % 3], 2, store, err, sizeof err);
	CHECK(h);
	struct fake_conn *slot[SLOTS] = { 0 };
	for (unsigned n = 0; s.len && n < MAX_STEPS; n++)
		step(h, slot, &s);
	CHECK(harness_free(h) == 0);
	return 0;
}
