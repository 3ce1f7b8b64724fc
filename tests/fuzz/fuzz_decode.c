/* libFuzzer target for src/mqtt's decoder. The first byte picks the protocol
 * version (0 = before CONNECT, 4 or 5), the rest is fed to mqtt_decode. A
 * decoded packet must need all of its bytes and respect max_size; its topic
 * list and property blocks are walked to their ends; it is re-encoded (every
 * packet type has an encoder) and decoded again, which must succeed and give
 * the same fields. Aborts on any disagreement.
 */
#include "mqtt/mqtt.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static bool bin_eq(struct mqtt_bin a, struct mqtt_bin b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* A property block walked with mqtt_props_next: user properties and
 * subscription identifiers in order. Owns its arrays. */
struct walk {
	struct mqtt_prop_item *users;
	uint32_t *sub_ids;
	uint32_t n_users, n_sub_ids;
	struct buf user_bytes; /* mqtt_props_copy_user's output */
};

static void walk_props(const struct mqtt_props *pr, struct walk *w)
{
	memset(w, 0, sizeof *w);
	/* every item takes at least two bytes */
	w->users = malloc(sizeof *w->users * (pr->raw_len / 2 + 1));
	w->sub_ids = malloc(sizeof *w->sub_ids * (pr->raw_len / 2 + 1));
	CHECK(w->users && w->sub_ids);
	uint32_t off = 0, items = 0;
	struct mqtt_prop_item it;
	while (mqtt_props_next(pr, &off, &it)) {
		CHECK(off <= pr->raw_len);
		items++;
		if (it.id == MQTT_PROP_USER_PROPERTY)
			w->users[w->n_users++] = it;
		else if (it.id == MQTT_PROP_SUBSCRIPTION_ID)
			w->sub_ids[w->n_sub_ids++] = it.num;
		else
			CHECK(pr->have & MQTT_PROP_BIT(it.id));
	}
	/* the decoder validated the block: the walk reaches its end */
	CHECK(off == pr->raw_len);
	CHECK(w->n_users == pr->n_user);
	CHECK(w->n_sub_ids == pr->n_sub_ids);
	CHECK(w->n_sub_ids == 0 || pr->sub_id == w->sub_ids[0]);
	CHECK(items == w->n_users + w->n_sub_ids + (uint32_t)__builtin_popcountll(pr->have) -
			       (w->n_sub_ids ? 1 : 0));
	CHECK(mqtt_props_copy_user(pr, &w->user_bytes) == 0);
	CHECK((w->user_bytes.len == 0) == (w->n_users == 0));
}

static void walk_free(struct walk *w)
{
	free(w->users);
	free(w->sub_ids);
	buf_free(&w->user_bytes);
}

/* The properties to encode for a decoded block: its fields, with the user
 * properties passed through `extra` and every subscription identifier. */
static struct mqtt_props props_for_encode(const struct mqtt_props *pr, const struct walk *w)
{
	struct mqtt_props out = *pr;
	out.extra = (struct mqtt_bin){ w->user_bytes.p, (uint32_t)w->user_bytes.len };
	if (w->n_sub_ids > 1) {
		out.sub_ids = w->sub_ids;
		out.n_sub_ids = w->n_sub_ids;
	}
	return out;
}

static bool props_same(const struct mqtt_props *a, const struct mqtt_props *b)
{
	if (a->have != b->have || a->n_user != b->n_user || a->n_sub_ids != b->n_sub_ids)
		return false;
	if (a->message_expiry != b->message_expiry || a->session_expiry != b->session_expiry ||
	    a->will_delay != b->will_delay || a->max_packet_size != b->max_packet_size || a->sub_id != b->sub_id ||
	    a->server_keep_alive != b->server_keep_alive || a->receive_maximum != b->receive_maximum ||
	    a->topic_alias_maximum != b->topic_alias_maximum || a->topic_alias != b->topic_alias ||
	    a->payload_format != b->payload_format || a->request_problem_info != b->request_problem_info ||
	    a->request_response_info != b->request_response_info || a->maximum_qos != b->maximum_qos ||
	    a->retain_available != b->retain_available || a->wildcard_sub_available != b->wildcard_sub_available ||
	    a->sub_id_available != b->sub_id_available || a->shared_sub_available != b->shared_sub_available)
		return false;
	if (!bin_eq(a->content_type, b->content_type) || !bin_eq(a->response_topic, b->response_topic) ||
	    !bin_eq(a->correlation_data, b->correlation_data) ||
	    !bin_eq(a->assigned_client_id, b->assigned_client_id) || !bin_eq(a->auth_method, b->auth_method) ||
	    !bin_eq(a->auth_data, b->auth_data) || !bin_eq(a->response_info, b->response_info) ||
	    !bin_eq(a->server_reference, b->server_reference) || !bin_eq(a->reason_string, b->reason_string))
		return false;
	struct walk wa, wb;
	walk_props(a, &wa);
	walk_props(b, &wb);
	bool same = wa.user_bytes.len == wb.user_bytes.len &&
		    (wa.user_bytes.len == 0 || !memcmp(wa.user_bytes.p, wb.user_bytes.p, wa.user_bytes.len)) &&
		    (wa.n_sub_ids == 0 || !memcmp(wa.sub_ids, wb.sub_ids, sizeof(uint32_t) * wa.n_sub_ids));
	for (uint32_t i = 0; same && i < wa.n_users; i++)
		same = bin_eq(wa.users[i].str, wb.users[i].str) && bin_eq(wa.users[i].val, wb.users[i].val);
	walk_free(&wa);
	walk_free(&wb);
	return same;
}

/* Present-or-absent fields of CONNECT: p is NULL when the flag is clear. */
static bool opt_eq(struct mqtt_bin a, struct mqtt_bin b)
{
	return (a.p == NULL) == (b.p == NULL) && bin_eq(a, b);
}

static void topics(const struct mqtt_subscribe *s, bool opts, struct mqtt_sub_entry **out)
{
	uint32_t off = 0, n = 0;
	struct mqtt_sub_entry e;
	*out = malloc(sizeof **out * (s->n + 1));
	CHECK(*out);
	while (mqtt_topics_next(s, opts, &off, &e)) {
		CHECK(n < s->n);
		CHECK(mqtt_utf8_valid(e.filter.p, e.filter.len));
		(*out)[n++] = e;
	}
	CHECK(n == s->n && off == s->list_len);
}

/* Encodes pk (decoded as `version`) into b, with walks w[0..1] of its
 * property blocks. */
static void encode(struct buf *b, uint8_t version, const struct mqtt_packet *pk, const struct walk *w)
{
	switch (pk->type) {
	case MQTT_CONNECT: {
		struct mqtt_connect c = pk->u.connect;
		c.props = props_for_encode(&pk->u.connect.props, &w[0]);
		c.will_props = props_for_encode(&pk->u.connect.will_props, &w[1]);
		CHECK(mqtt_encode_connect(b, &c) == 0);
		break;
	}
	case MQTT_CONNACK: {
		struct mqtt_connack c = pk->u.connack;
		c.props = props_for_encode(&pk->u.connack.props, &w[0]);
		CHECK(mqtt_encode_connack(b, version, &c) == 0);
		break;
	}
	case MQTT_PUBLISH: {
		struct mqtt_publish m = pk->u.publish;
		m.props = props_for_encode(&pk->u.publish.props, &w[0]);
		CHECK(mqtt_encode_publish(b, version, &m) == 0);
		CHECK(mqtt_publish_size(version, &m) == b->len);
		break;
	}
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP: {
		struct mqtt_ack a = pk->u.ack;
		a.props = props_for_encode(&pk->u.ack.props, &w[0]);
		CHECK(mqtt_encode_ack(b, version, pk->type, &a) == 0);
		break;
	}
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE: {
		const struct mqtt_subscribe *s = &pk->u.subscribe;
		struct mqtt_props pr = props_for_encode(&s->props, &w[0]);
		struct mqtt_sub_entry *e;
		topics(s, pk->type == MQTT_SUBSCRIBE, &e);
		CHECK(mqtt_encode_subscribe(b, version, pk->type, s->pid, &pr, e, s->n) == 0);
		free(e);
		break;
	}
	case MQTT_SUBACK:
	case MQTT_UNSUBACK: {
		struct mqtt_suback s = pk->u.suback;
		s.props = props_for_encode(&pk->u.suback.props, &w[0]);
		CHECK(mqtt_encode_suback(b, version, pk->type, &s) == 0);
		break;
	}
	case MQTT_PINGREQ:
	case MQTT_PINGRESP: CHECK(mqtt_encode_simple(b, pk->type) == 0); break;
	default: {
		struct mqtt_reason r = pk->u.reason;
		r.props = props_for_encode(&pk->u.reason.props, &w[0]);
		CHECK(mqtt_encode_reason(b, version, pk->type, &r) == 0);
		break;
	}
	}
}

static const struct mqtt_props *props_of(const struct mqtt_packet *pk, int which)
{
	static const struct mqtt_props none;
	switch (pk->type) {
	case MQTT_CONNECT: return which ? &pk->u.connect.will_props : &pk->u.connect.props;
	case MQTT_CONNACK: return which ? &none : &pk->u.connack.props;
	case MQTT_PUBLISH: return which ? &none : &pk->u.publish.props;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP: return which ? &none : &pk->u.ack.props;
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE: return which ? &none : &pk->u.subscribe.props;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK: return which ? &none : &pk->u.suback.props;
	case MQTT_DISCONNECT:
	case MQTT_AUTH: return which ? &none : &pk->u.reason.props;
	}
	return &none;
}

/* Do two decodings of one packet agree on every field? */
static bool same_packet(const struct mqtt_packet *a, const struct mqtt_packet *b)
{
	if (a->type != b->type || a->flags != b->flags)
		return false;
	if (!props_same(props_of(a, 0), props_of(b, 0)) || !props_same(props_of(a, 1), props_of(b, 1)))
		return false;
	switch (a->type) {
	case MQTT_CONNECT: {
		const struct mqtt_connect *x = &a->u.connect, *y = &b->u.connect;
		return bin_eq(x->protocol_name, y->protocol_name) && x->version == y->version &&
		       x->clean_start == y->clean_start && x->keepalive == y->keepalive &&
		       opt_eq(x->client_id, y->client_id) && opt_eq(x->username, y->username) &&
		       opt_eq(x->password, y->password) && x->will == y->will && x->will_qos == y->will_qos &&
		       x->will_retain == y->will_retain && bin_eq(x->will_topic, y->will_topic) &&
		       bin_eq(x->will_payload, y->will_payload);
	}
	case MQTT_CONNACK:
		return a->u.connack.session_present == b->u.connack.session_present && a->u.connack.rc == b->u.connack.rc;
	case MQTT_PUBLISH: {
		const struct mqtt_publish *x = &a->u.publish, *y = &b->u.publish;
		return x->qos == y->qos && x->dup == y->dup && x->retain == y->retain && x->pid == y->pid &&
		       bin_eq(x->topic, y->topic) && bin_eq(x->payload, y->payload);
	}
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP: return a->u.ack.pid == b->u.ack.pid && a->u.ack.rc == b->u.ack.rc;
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE: {
		const struct mqtt_subscribe *x = &a->u.subscribe, *y = &b->u.subscribe;
		if (x->pid != y->pid || x->n != y->n)
			return false;
		struct mqtt_sub_entry *ex, *ey;
		topics(x, a->type == MQTT_SUBSCRIBE, &ex);
		topics(y, a->type == MQTT_SUBSCRIBE, &ey);
		bool same = true;
		for (uint32_t i = 0; same && i < x->n; i++)
			same = bin_eq(ex[i].filter, ey[i].filter) && ex[i].options == ey[i].options;
		free(ex);
		free(ey);
		return same;
	}
	case MQTT_SUBACK:
	case MQTT_UNSUBACK: {
		const struct mqtt_suback *x = &a->u.suback, *y = &b->u.suback;
		return x->pid == y->pid && x->n == y->n && (x->n == 0 || !memcmp(x->rcs, y->rcs, x->n));
	}
	case MQTT_PINGREQ:
	case MQTT_PINGRESP: return true;
	default: return a->u.reason.rc == b->u.reason.rc;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t versions[3] = { 0, MQTT_V311, MQTT_V5 };
	if (size < 1)
		return 0;
	uint8_t version = versions[data[0] % 3];
	const uint8_t *p = data + 1;
	size_t len = size - 1;
	/* a private copy, so that a read past the packet is caught by ASan */
	uint8_t *in = malloc(len ? len : 1);
	CHECK(in);
	if (len)
		memcpy(in, p, len);
	struct mqtt_packet pk;
	int n = mqtt_decode(in, len, version, 0, &pk);
	if (n <= 0) {
		/* an error is a negated reason code, never a stray value */
		CHECK(n == 0 || (-n >= 0x80 && -n <= 0xA2));
		free(in);
		return 0;
	}
	CHECK((size_t)n <= len && (uint32_t)n == pk.size);
	struct mqtt_packet tmp;
	CHECK(mqtt_decode(in, (size_t)n - 1, version, 0, &tmp) == 0);
	CHECK(mqtt_decode(in, len, version, pk.size - 1, &tmp) == -MQTT_RC_PACKET_TOO_LARGE);
	CHECK(mqtt_decode(in, len, version, pk.size, &tmp) == n);

	struct walk w[2];
	walk_props(props_of(&pk, 0), &w[0]);
	walk_props(props_of(&pk, 1), &w[1]);
	if (pk.type == MQTT_PUBLISH)
		CHECK(mqtt_utf8_valid(pk.u.publish.topic.p, pk.u.publish.topic.len));

	struct buf b = { 0 };
	encode(&b, version, &pk, w);
	struct mqtt_packet again;
	int m = mqtt_decode(b.p, b.len, version, 0, &again);
	CHECK(m > 0 && (size_t)m == b.len);
	CHECK(same_packet(&pk, &again));

	buf_free(&b);
	walk_free(&w[0]);
	walk_free(&w[1]);
	free(in);
	return 0;
}
