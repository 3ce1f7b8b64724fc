/* libFuzzer target for the v5 property block decoder on its own. The first
 * byte picks the packet type the block belongs to (16 = Will properties), the
 * rest is the block (length prefix included). A block that decodes is encoded
 * again from its fields and user properties and must decode to the same
 * fields. Aborts on any disagreement.
 */
#include "mqtt/wire.h"
#include <stdlib.h>
#include <string.h>

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static bool bin_eq(struct mqtt_bin a, struct mqtt_bin b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t ptype = data[0] % 17;
	if (ptype == 0)
		ptype = MQTT_WILL_PROPS;
	struct rd r = { data + 1, data + size };
	struct mqtt_props pr;
	if (mqtt__props_decode(&r, ptype, &pr))
		return 0;
	CHECK(r.p <= r.end);

	/* Fields plus user properties, encoded again. Repeated subscription
	 * identifiers are kept to the first: encoding takes sub_ids for more. */
	struct buf users = { 0 }, block = { 0 };
	CHECK(mqtt_props_copy_user(&pr, &users) == 0);
	struct mqtt_props again = pr;
	again.extra = (struct mqtt_bin){ users.p, users.len };
	again.n_sub_ids = 0;
	again.sub_ids = NULL;
	CHECK(mqtt_props_encode(&again, &block) == 0);

	/* Decode the re-encoded block (with a length prefix). */
	uint8_t *framed = malloc(block.len + 4);
	CHECK(framed);
	uint8_t *end = wr_varint(framed, block.len);
	if (block.len)
		memcpy(end, block.p, block.len);
	end += block.len;
	struct rd r2 = { framed, end };
	struct mqtt_props back;
	CHECK(mqtt__props_decode(&r2, ptype, &back) == 0);
	CHECK(r2.p == r2.end);
	CHECK(back.have == pr.have);
	CHECK(back.n_user == pr.n_user);
	CHECK(back.message_expiry == pr.message_expiry && back.session_expiry == pr.session_expiry);
	CHECK(back.will_delay == pr.will_delay && back.max_packet_size == pr.max_packet_size);
	CHECK(back.sub_id == pr.sub_id && back.topic_alias == pr.topic_alias);
	CHECK(back.receive_maximum == pr.receive_maximum && back.topic_alias_maximum == pr.topic_alias_maximum);
	CHECK(bin_eq(back.content_type, pr.content_type) && bin_eq(back.response_topic, pr.response_topic));
	CHECK(bin_eq(back.correlation_data, pr.correlation_data) && bin_eq(back.reason_string, pr.reason_string));
	CHECK(bin_eq(back.auth_method, pr.auth_method) && bin_eq(back.auth_data, pr.auth_data));
	free(framed);
	buf_free(&users);
	buf_free(&block);
	return 0;
}
