/* v5 properties: one table of {id, wire type, packets allowed} drives both
 * decoding and encoding (section 2.2.2.2). */
#include "wire.h"
#include "../base/err.h"
#include <stddef.h>

enum prop_wire { W_NONE, W_BYTE, W_U16, W_U32, W_VARINT, W_STR, W_BIN, W_PAIR };

#define P(t) (1u << (t))
#define PUB_WILL (P(MQTT_PUBLISH) | P(MQTT_WILL_PROPS))
#define ALL_PACKETS 0x1FFFEu

struct prop_def {
	uint8_t wire;
	uint32_t allowed; /* bit per packet type, bit 16 = Will properties */
	uint16_t offset;  /* field in struct mqtt_props */
	bool binary;      /* W_STR that is not UTF-8 checked */
};

#define F(field) offsetof(struct mqtt_props, field)

static const struct prop_def prop_defs[0x2B] = {
	[MQTT_PROP_PAYLOAD_FORMAT] = { W_BYTE, PUB_WILL, F(payload_format), false },
	[MQTT_PROP_MESSAGE_EXPIRY] = { W_U32, PUB_WILL, F(message_expiry), false },
	[MQTT_PROP_CONTENT_TYPE] = { W_STR, PUB_WILL, F(content_type), false },
	[MQTT_PROP_RESPONSE_TOPIC] = { W_STR, PUB_WILL, F(response_topic), false },
	[MQTT_PROP_CORRELATION_DATA] = { W_BIN, PUB_WILL, F(correlation_data), true },
	[MQTT_PROP_SUBSCRIPTION_ID] = { W_VARINT, P(MQTT_PUBLISH) | P(MQTT_SUBSCRIBE), F(sub_id), false },
	[MQTT_PROP_SESSION_EXPIRY] = { W_U32, P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_DISCONNECT), F(session_expiry), false },
	[MQTT_PROP_ASSIGNED_CLIENT_ID] = { W_STR, P(MQTT_CONNACK), F(assigned_client_id), false },
	[MQTT_PROP_SERVER_KEEP_ALIVE] = { W_U16, P(MQTT_CONNACK), F(server_keep_alive), false },
	[MQTT_PROP_AUTH_METHOD] = { W_STR, P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_AUTH), F(auth_method), false },
	[MQTT_PROP_AUTH_DATA] = { W_BIN, P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_AUTH), F(auth_data), true },
	[MQTT_PROP_REQUEST_PROBLEM_INFO] = { W_BYTE, P(MQTT_CONNECT), F(request_problem_info), false },
	[MQTT_PROP_WILL_DELAY] = { W_U32, P(MQTT_WILL_PROPS), F(will_delay), false },
	[MQTT_PROP_REQUEST_RESPONSE_INFO] = { W_BYTE, P(MQTT_CONNECT), F(request_response_info), false },
	[MQTT_PROP_RESPONSE_INFO] = { W_STR, P(MQTT_CONNACK), F(response_info), false },
	[MQTT_PROP_SERVER_REFERENCE] = { W_STR, P(MQTT_CONNACK) | P(MQTT_DISCONNECT), F(server_reference), false },
	[MQTT_PROP_REASON_STRING] = { W_STR, P(MQTT_CONNACK) | P(MQTT_PUBACK) | P(MQTT_PUBREC) | P(MQTT_PUBREL) |
		P(MQTT_PUBCOMP) | P(MQTT_SUBACK) | P(MQTT_UNSUBACK) | P(MQTT_DISCONNECT) | P(MQTT_AUTH), F(reason_string), false },
	[MQTT_PROP_RECEIVE_MAXIMUM] = { W_U16, P(MQTT_CONNECT) | P(MQTT_CONNACK), F(receive_maximum), false },
	[MQTT_PROP_TOPIC_ALIAS_MAXIMUM] = { W_U16, P(MQTT_CONNECT) | P(MQTT_CONNACK), F(topic_alias_maximum), false },
	[MQTT_PROP_TOPIC_ALIAS] = { W_U16, P(MQTT_PUBLISH), F(topic_alias), false },
	[MQTT_PROP_MAXIMUM_QOS] = { W_BYTE, P(MQTT_CONNACK), F(maximum_qos), false },
	[MQTT_PROP_RETAIN_AVAILABLE] = { W_BYTE, P(MQTT_CONNACK), F(retain_available), false },
	[MQTT_PROP_USER_PROPERTY] = { W_PAIR, ALL_PACKETS, 0, false },
	[MQTT_PROP_MAXIMUM_PACKET_SIZE] = { W_U32, P(MQTT_CONNECT) | P(MQTT_CONNACK), F(max_packet_size), false },
	[MQTT_PROP_WILDCARD_SUB_AVAILABLE] = { W_BYTE, P(MQTT_CONNACK), F(wildcard_sub_available), false },
	[MQTT_PROP_SUB_ID_AVAILABLE] = { W_BYTE, P(MQTT_CONNACK), F(sub_id_available), false },
	[MQTT_PROP_SHARED_SUB_AVAILABLE] = { W_BYTE, P(MQTT_CONNACK), F(shared_sub_available), false },
};

static const struct prop_def *prop_def(uint32_t id)
{
	if (id >= sizeof prop_defs / sizeof prop_defs[0] || prop_defs[id].wire == W_NONE)
		return NULL;
	return &prop_defs[id];
}

/* Byte properties that are booleans, and integers that must not be zero. */
static bool prop_value_ok(uint8_t id, uint32_t v)
{
	switch (id) {
	case MQTT_PROP_PAYLOAD_FORMAT:
	case MQTT_PROP_REQUEST_PROBLEM_INFO:
	case MQTT_PROP_REQUEST_RESPONSE_INFO:
	case MQTT_PROP_MAXIMUM_QOS:
	case MQTT_PROP_RETAIN_AVAILABLE:
	case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
	case MQTT_PROP_SUB_ID_AVAILABLE:
	case MQTT_PROP_SHARED_SUB_AVAILABLE:
		return v <= 1;
	case MQTT_PROP_RECEIVE_MAXIMUM:      /* zero is a Protocol Error (v5 §3.1.2.11.3, §3.2.2.3.3: no requirement id) */
	case MQTT_PROP_MAXIMUM_PACKET_SIZE:
	case MQTT_PROP_SUBSCRIPTION_ID:
	case MQTT_PROP_TOPIC_ALIAS:
		return v != 0;
	}
	return true;
}

/* Reads one property's value. Returns false when it runs past the block. */
static bool prop_read_value(struct rd *r, const struct prop_def *d, struct mqtt_prop_item *it)
{
	uint8_t b;
	uint16_t s;
	switch (d->wire) {
	case W_BYTE: if (!rd_u8(r, &b)) return false; it->num = b; return true;
	case W_U16: if (!rd_u16(r, &s)) return false; it->num = s; return true;
	case W_U32: return rd_u32(r, &it->num);
	case W_VARINT: return rd_varint(r, &it->num);
	case W_STR: return rd_utf8(r, &it->str);
	case W_BIN: return rd_bin(r, &it->str);
	case W_PAIR: return rd_utf8(r, &it->str) && rd_utf8(r, &it->val);
	}
	return false;
}

/* Decodes the property block at r for packet `ptype` (MQTT_WILL_PROPS for a
 * Will). Returns 0 or a negated reason code. */
int mqtt__props_decode(struct rd *r, uint8_t ptype, struct mqtt_props *pr)
{
	uint32_t len;
	memset(pr, 0, sizeof *pr);
	if (!rd_varint(r, &len) || rd_left(r) < len)
		return -MQTT_RC_MALFORMED;
	struct rd pr_rd = { r->p, r->p + len };
	pr->raw = r->p;
	pr->raw_len = len;
	r->p += len;
	while (pr_rd.p < pr_rd.end) {
		uint32_t id;
		struct mqtt_prop_item it = { 0 };
		if (!rd_varint(&pr_rd, &id))
			return -MQTT_RC_MALFORMED;
		const struct prop_def *d = prop_def(id);
		if (!d || !(d->allowed & (1u << ptype)))
			return -MQTT_RC_MALFORMED;
		if (!prop_read_value(&pr_rd, d, &it))
			return -MQTT_RC_MALFORMED;
		if (d->wire == W_PAIR) {
			pr->n_user++;
			continue;
		}
		if (!prop_value_ok((uint8_t)id, it.num))
			return -MQTT_RC_PROTOCOL_ERROR;
		bool repeatable = id == MQTT_PROP_SUBSCRIPTION_ID && ptype == MQTT_PUBLISH;
		if (pr->have & MQTT_PROP_BIT(id)) {
			/* Only a server's PUBLISH may repeat Subscription Identifier. */
			if (!repeatable)
				return -MQTT_RC_PROTOCOL_ERROR;
			pr->n_sub_ids++;
			continue;
		}
		pr->have |= MQTT_PROP_BIT(id);
		char *field = (char *)pr + d->offset;
		switch (d->wire) {
		case W_BYTE: *(uint8_t *)field = (uint8_t)it.num; break;
		case W_U16: *(uint16_t *)field = (uint16_t)it.num; break;
		case W_U32:
		case W_VARINT: *(uint32_t *)field = it.num; break;
		default: *(struct mqtt_bin *)field = it.str; break;
		}
		if (id == MQTT_PROP_SUBSCRIPTION_ID)
			pr->n_sub_ids = 1;
	}
	/* Data means nothing without the method that reads it: a Protocol Error
	 * in CONNECT, CONNACK and AUTH alike [MQTT-3.1.2.11.10, 3.2.2.3.18, 3.15.2.2.3]. */
	if ((pr->have & MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA)) && !(pr->have & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD)))
		return -MQTT_RC_PROTOCOL_ERROR;
	/* n_sub_ids counts decoded identifiers; sub_ids is for encoding only. */
	return 0;
}

bool mqtt_props_next(const struct mqtt_props *pr, uint32_t *off, struct mqtt_prop_item *it)
{
	if (!pr->raw || *off >= pr->raw_len)
		return false;
	struct rd r = { pr->raw + *off, pr->raw + pr->raw_len };
	uint32_t id;
	memset(it, 0, sizeof *it);
	if (!rd_varint(&r, &id))
		return false;
	const struct prop_def *d = prop_def(id);
	if (!d || !prop_read_value(&r, d, it))
		return false;
	it->id = (uint8_t)id;
	*off = (uint32_t)(r.p - pr->raw);
	return true;
}

int mqtt_props_copy_user(const struct mqtt_props *pr, struct buf *b)
{
	uint32_t off = 0, prev = 0;
	struct mqtt_prop_item it;
	while (mqtt_props_next(pr, &off, &it)) {
		if (it.id == MQTT_PROP_USER_PROPERTY) {
			int rc = buf_append(b, pr->raw + prev, off - prev);
			if (rc)
				return rc;
		}
		prev = off;
	}
	return 0;
}

static uint32_t prop_value_size(const struct prop_def *d, const char *field)
{
	switch (d->wire) {
	case W_BYTE: return 1;
	case W_U16: return 2;
	case W_U32: return 4;
	case W_VARINT: return varint_size(*(const uint32_t *)field);
	default: return 2 + ((const struct mqtt_bin *)field)->len;
	}
}

/* Size of the property block's contents (without its length prefix). */
uint32_t mqtt__props_size(const struct mqtt_props *pr)
{
	if (!pr)
		return 0;
	uint32_t n = pr->extra.len;
	for (uint32_t id = 1; id < sizeof prop_defs / sizeof prop_defs[0]; id++) {
		const struct prop_def *d = &prop_defs[id];
		if (d->wire == W_NONE || d->wire == W_PAIR || !(pr->have & MQTT_PROP_BIT(id)))
			continue;
		if (id == MQTT_PROP_SUBSCRIPTION_ID && pr->n_sub_ids > 0 && pr->sub_ids) {
			for (uint32_t i = 0; i < pr->n_sub_ids; i++)
				n += 1 + varint_size(pr->sub_ids[i]);
			continue;
		}
		n += 1 + prop_value_size(d, (const char *)pr + d->offset);
	}
	return n;
}

/* Writes the property block (length prefix included). */
uint8_t *mqtt__props_write(uint8_t *p, const struct mqtt_props *pr, uint32_t size)
{
	p = wr_varint(p, size);
	if (!pr)
		return p;
	for (uint32_t id = 1; id < sizeof prop_defs / sizeof prop_defs[0]; id++) {
		const struct prop_def *d = &prop_defs[id];
		if (d->wire == W_NONE || d->wire == W_PAIR || !(pr->have & MQTT_PROP_BIT(id)))
			continue;
		const char *field = (const char *)pr + d->offset;
		if (id == MQTT_PROP_SUBSCRIPTION_ID && pr->n_sub_ids > 0 && pr->sub_ids) {
			for (uint32_t i = 0; i < pr->n_sub_ids; i++) {
				*p++ = (uint8_t)id;
				p = wr_varint(p, pr->sub_ids[i]);
			}
			continue;
		}
		*p++ = (uint8_t)id;
		switch (d->wire) {
		case W_BYTE: p = wr_u8(p, *(const uint8_t *)field); break;
		case W_U16: p = wr_u16(p, *(const uint16_t *)field); break;
		case W_U32: p = wr_u32(p, *(const uint32_t *)field); break;
		case W_VARINT: p = wr_varint(p, *(const uint32_t *)field); break;
		default: p = wr_bin(p, *(const struct mqtt_bin *)field); break;
		}
	}
	if (pr->extra.len) {
		memcpy(p, pr->extra.p, pr->extra.len);
		p += pr->extra.len;
	}
	return p;
}

int mqtt_props_encode(const struct mqtt_props *pr, struct buf *b)
{
	uint32_t size = mqtt__props_size(pr);
	if (buf_reserve(b, size + 4))
		return -FM_ENOMEM;
	/* Write with the prefix, then drop it: one writer for both forms. */
	uint8_t *start = b->p + b->len;
	uint8_t *end = mqtt__props_write(start, pr, size);
	uint32_t prefix = (uint32_t)(end - start) - size;
	memmove(start, start + prefix, size);
	b->len += size;
	return 0;
}
