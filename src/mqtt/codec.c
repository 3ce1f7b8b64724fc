/* Packet decode and encode for MQTT 3.1, 3.1.1 and 5.0. Pure functions. */
#include "wire.h"
#include "../base/err.h"

#define MALFORMED (-MQTT_RC_MALFORMED)
#define PROTOCOL (-MQTT_RC_PROTOCOL_ERROR)

bool mqtt_utf8_valid(const uint8_t *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = p[i];
		uint32_t cp;
		size_t n;
		if (c < 0x80) {
			if (c == 0) /* [MQTT-1.5.4-2] */
				return false;
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			cp = c & 0x1F;
			n = 1;
		} else if ((c & 0xF0) == 0xE0) {
			cp = c & 0x0F;
			n = 2;
		} else if ((c & 0xF8) == 0xF0) {
			cp = c & 0x07;
			n = 3;
		} else {
			return false;
		}
		if (i + n >= len)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3F);
		}
		/* Overlong forms, surrogates [MQTT-1.5.4-1] and past U+10FFFF. */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			return false;
		i += n + 1;
	}
	return true;
}

int mqtt_fixed_header(const uint8_t *p, size_t len, uint8_t *first, uint32_t *remaining)
{
	if (len < 2)
		return 0;
	int n = wire_varint(p + 1, len - 1, remaining);
	if (n < 0)
		return MALFORMED;
	if (n == 0)
		return 0;
	*first = p[0];
	return 1 + n;
}

static int props_if_v5(struct rd *r, uint8_t version, uint8_t ptype, struct mqtt_props *pr)
{
	if (version != MQTT_V5) {
		memset(pr, 0, sizeof *pr);
		return 0;
	}
	return mqtt__props_decode(r, ptype, pr);
}

static int decode_connect(struct rd *r, uint8_t version_unused, struct mqtt_connect *c)
{
	uint8_t flags;
	(void)version_unused;
	memset(c, 0, sizeof *c);
	if (!rd_bin(r, &c->protocol_name) || !rd_u8(r, &c->version))
		return MALFORMED;
	bool mqtt_name = c->protocol_name.len == 4 && !memcmp(c->protocol_name.p, "MQTT", 4);
	bool mqisdp = c->protocol_name.len == 6 && !memcmp(c->protocol_name.p, "MQIsdp", 6);
	if (!(mqtt_name && (c->version == MQTT_V311 || c->version == MQTT_V5)) &&
	    !(mqisdp && c->version == MQTT_V31))
		return -MQTT_RC_UNSUPPORTED_PROTOCOL; /* [MQTT-3.1.2-2] */
	if (!rd_u8(r, &flags) || !rd_u16(r, &c->keepalive))
		return MALFORMED;
	if (flags & 0x01) /* reserved [MQTT-3.1.2-3] */
		return MALFORMED;
	c->clean_start = flags & 0x02;
	c->will = flags & 0x04;
	c->will_qos = (flags >> 3) & 0x03;
	c->will_retain = flags & 0x20;
	bool has_password = flags & 0x40, has_username = flags & 0x80;
	if (c->will_qos == 3 || (!c->will && (c->will_qos || c->will_retain)))
		return MALFORMED; /* [MQTT-3.1.2-11..14] */
	if (c->version != MQTT_V5 && has_password && !has_username)
		return MALFORMED; /* [MQTT-3.1.2-22] */
	int rc = props_if_v5(r, c->version, MQTT_CONNECT, &c->props);
	if (rc)
		return rc;
	if (!rd_bin(r, &c->client_id))
		return MALFORMED;
	if (!mqtt_utf8_valid(c->client_id.p, c->client_id.len))
		return MALFORMED;
	if (c->will) {
		rc = props_if_v5(r, c->version, MQTT_WILL_PROPS, &c->will_props);
		if (rc)
			return rc;
		if (!rd_utf8(r, &c->will_topic) || !rd_bin(r, &c->will_payload))
			return MALFORMED;
	}
	if (has_username && !rd_utf8(r, &c->username))
		return MALFORMED;
	if (has_password && !rd_bin(r, &c->password))
		return MALFORMED;
	/* Absent fields keep p == NULL; present but empty ones need a non-NULL p. */
	if (has_username && !c->username.p)
		c->username.p = (const uint8_t *)"";
	if (has_password && !c->password.p)
		c->password.p = (const uint8_t *)"";
	if (!c->client_id.p)
		c->client_id.p = (const uint8_t *)"";
	return rd_left(r) ? MALFORMED : 0;
}

static int decode_connack(struct rd *r, uint8_t version, struct mqtt_connack *c)
{
	uint8_t flags;
	if (!rd_u8(r, &flags) || !rd_u8(r, &c->rc) || (flags & 0xFE))
		return MALFORMED;
	c->session_present = flags & 1;
	int rc = props_if_v5(r, version, MQTT_CONNACK, &c->props);
	if (rc)
		return rc;
	return rd_left(r) ? MALFORMED : 0;
}

static int decode_publish(struct rd *r, uint8_t version, uint8_t flags, struct mqtt_publish *m)
{
	m->dup = flags & 0x08;
	m->qos = (flags >> 1) & 0x03;
	m->retain = flags & 0x01;
	if (m->qos == 3) /* [MQTT-3.3.1-4] */
		return MALFORMED;
	if (m->qos == 0 && m->dup) /* [MQTT-3.3.1-2] */
		return MALFORMED;
	/* Ill-formed UTF-8 is malformed [MQTT-1.5.4-1]; 0x90 is for topics that
	 * are well-formed but refused (wildcards), checked by the broker. */
	if (!rd_utf8(r, &m->topic))
		return MALFORMED;
	m->pid = 0;
	if (m->qos && (!rd_u16(r, &m->pid)))
		return MALFORMED;
	if (m->qos && m->pid == 0) /* [MQTT-2.2.1-3] */
		return PROTOCOL;
	int rc = props_if_v5(r, version, MQTT_PUBLISH, &m->props);
	if (rc)
		return rc;
	m->payload.p = r->p;
	m->payload.len = (uint32_t)rd_left(r);
	r->p = r->end;
	return 0;
}

static int decode_ack(struct rd *r, uint8_t version, uint8_t type, struct mqtt_ack *a)
{
	if (!rd_u16(r, &a->pid))
		return MALFORMED;
	if (a->pid == 0)
		return PROTOCOL;
	a->rc = MQTT_RC_SUCCESS;
	memset(&a->props, 0, sizeof a->props);
	if (version == MQTT_V5 && rd_left(r)) {
		/* Reason code alone, or reason code and properties [MQTT-3.4.2.1]. */
		rd_u8(r, &a->rc);
		if (rd_left(r)) {
			int rc = mqtt__props_decode(r, type, &a->props);
			if (rc)
				return rc;
		}
	}
	return rd_left(r) ? MALFORMED : 0;
}

/* Validates the whole topic list once so that mqtt_topics_next cannot fail. */
static int check_topic_list(struct rd *r, uint8_t version, bool with_options, uint32_t *n)
{
	*n = 0;
	while (rd_left(r)) {
		struct mqtt_bin f;
		if (!rd_bin(r, &f))
			return MALFORMED;
		if (!mqtt_utf8_valid(f.p, f.len))
			return MALFORMED;
		if (with_options) {
			uint8_t o;
			if (!rd_u8(r, &o))
				return MALFORMED;
			if ((o & MQTT_SUBOPT_QOS_MASK) == 3)
				return MALFORMED;
			if (version != MQTT_V5 && (o & 0xFC)) /* [MQTT-3.8.3-4] */
				return MALFORMED;
			if (version == MQTT_V5 && ((o & 0xC0) || (o & MQTT_SUBOPT_RH_MASK) == 0x30))
				return MALFORMED; /* [MQTT-3.8.3-5] */
		}
		(*n)++;
	}
	return *n ? 0 : PROTOCOL; /* [MQTT-3.8.3-3], [MQTT-3.10.3-2] */
}

static int decode_subscribe(struct rd *r, uint8_t version, uint8_t type, struct mqtt_subscribe *s)
{
	if (!rd_u16(r, &s->pid))
		return MALFORMED;
	if (s->pid == 0)
		return PROTOCOL;
	int rc = props_if_v5(r, version, type, &s->props);
	if (rc)
		return rc;
	s->list = r->p;
	s->list_len = (uint32_t)rd_left(r);
	return check_topic_list(r, version, type == MQTT_SUBSCRIBE, &s->n);
}

bool mqtt_topics_next(const struct mqtt_subscribe *s, bool with_options, uint32_t *off,
		      struct mqtt_sub_entry *e)
{
	struct rd r = { s->list + *off, s->list + s->list_len };
	if (*off >= s->list_len || !rd_bin(&r, &e->filter))
		return false;
	e->options = 0;
	if (with_options && !rd_u8(&r, &e->options))
		return false;
	*off = (uint32_t)(r.p - s->list);
	return true;
}

static int decode_suback(struct rd *r, uint8_t version, uint8_t type, struct mqtt_suback *s)
{
	if (!rd_u16(r, &s->pid))
		return MALFORMED;
	int rc = 0;
	if (version == MQTT_V5)
		rc = mqtt__props_decode(r, type, &s->props);
	else
		memset(&s->props, 0, sizeof s->props);
	if (rc)
		return rc;
	s->rcs = r->p;
	s->n = (uint32_t)rd_left(r);
	r->p = r->end;
	if (type == MQTT_SUBACK && s->n == 0)
		return MALFORMED;
	if (type == MQTT_UNSUBACK && version != MQTT_V5 && s->n)
		return MALFORMED;
	return 0;
}

static int decode_reason(struct rd *r, uint8_t version, uint8_t type, struct mqtt_reason *m)
{
	m->rc = MQTT_RC_SUCCESS;
	memset(&m->props, 0, sizeof m->props);
	if (version != MQTT_V5)
		return rd_left(r) ? MALFORMED : 0;
	if (rd_left(r)) {
		rd_u8(r, &m->rc);
		if (rd_left(r)) {
			int rc = mqtt__props_decode(r, type, &m->props);
			if (rc)
				return rc;
		}
	}
	return rd_left(r) ? MALFORMED : 0;
}

/* Required low nibble of the first byte per type; 0xFF = PUBLISH (variable). */
static const uint8_t fixed_flags[16] = {
	[MQTT_CONNECT] = 0, [MQTT_CONNACK] = 0, [MQTT_PUBLISH] = 0xFF, [MQTT_PUBACK] = 0,
	[MQTT_PUBREC] = 0, [MQTT_PUBREL] = 2, [MQTT_PUBCOMP] = 0, [MQTT_SUBSCRIBE] = 2,
	[MQTT_SUBACK] = 0, [MQTT_UNSUBSCRIBE] = 2, [MQTT_UNSUBACK] = 0, [MQTT_PINGREQ] = 0,
	[MQTT_PINGRESP] = 0, [MQTT_DISCONNECT] = 0, [MQTT_AUTH] = 0,
};

int mqtt_decode(const uint8_t *p, size_t len, uint8_t version, uint32_t max_size,
		struct mqtt_packet *out)
{
	uint8_t first;
	uint32_t remaining;
	int hl = mqtt_fixed_header(p, len, &first, &remaining);
	if (hl <= 0)
		return hl;
	out->type = first >> 4;
	out->flags = first & 0x0F;
	out->size = (uint32_t)hl + remaining;
	if (max_size && out->size > max_size)
		return -MQTT_RC_PACKET_TOO_LARGE;
	if (len < out->size)
		return 0;
	uint8_t type = out->type;
	if (type == 0 || (type == MQTT_AUTH && version != MQTT_V5 && version != 0))
		return MALFORMED;
	if (fixed_flags[type] != 0xFF && out->flags != fixed_flags[type])
		return MALFORMED; /* [MQTT-2.1.3-1] */
	struct rd r = { p + hl, p + out->size };
	int rc;
	switch (type) {
	case MQTT_CONNECT: rc = decode_connect(&r, version, &out->u.connect); break;
	case MQTT_CONNACK: rc = decode_connack(&r, version, &out->u.connack); break;
	case MQTT_PUBLISH: rc = decode_publish(&r, version, out->flags, &out->u.publish); break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP: rc = decode_ack(&r, version, type, &out->u.ack); break;
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE: rc = decode_subscribe(&r, version, type, &out->u.subscribe); break;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK: rc = decode_suback(&r, version, type, &out->u.suback); break;
	case MQTT_PINGREQ:
	case MQTT_PINGRESP: rc = remaining ? MALFORMED : 0; break;
	default: rc = decode_reason(&r, version, type, &out->u.reason); break;
	}
	return rc ? rc : (int)out->size;
}

/* ---- encoding ---- */

/* Reserves room for a packet with `remaining` bytes after the fixed header and
 * writes the header; returns the write cursor or NULL on allocation failure. */
static uint8_t *begin(struct buf *b, uint8_t first, uint32_t remaining)
{
	if (buf_reserve(b, 1 + varint_size(remaining) + remaining))
		return NULL;
	uint8_t *p = b->p + b->len;
	*p++ = first;
	return wr_varint(p, remaining);
}

static int finish(struct buf *b, uint8_t *end)
{
	b->len = (size_t)(end - b->p);
	return 0;
}

static uint32_t props_total(uint8_t version, const struct mqtt_props *pr, uint32_t *inner)
{
	if (version != MQTT_V5)
		return *inner = 0;
	*inner = mqtt__props_size(pr);
	return varint_size(*inner) + *inner;
}

static uint8_t *props_put(uint8_t *p, uint8_t version, const struct mqtt_props *pr, uint32_t inner)
{
	return version == MQTT_V5 ? mqtt__props_write(p, pr, inner) : p;
}

static inline uint32_t bin_size(struct mqtt_bin s) { return 2 + s.len; }

int mqtt_encode_connect(struct buf *b, const struct mqtt_connect *c)
{
	uint8_t v = c->version;
	struct mqtt_bin name = { (const uint8_t *)(v == MQTT_V31 ? "MQIsdp" : "MQTT"), v == MQTT_V31 ? 6 : 4 };
	uint32_t pin, win = 0;
	uint32_t rem = bin_size(name) + 1 + 1 + 2 + props_total(v, &c->props, &pin) + bin_size(c->client_id);
	if (c->will)
		rem += props_total(v, &c->will_props, &win) + bin_size(c->will_topic) + bin_size(c->will_payload);
	if (c->username.p)
		rem += bin_size(c->username);
	if (c->password.p)
		rem += bin_size(c->password);
	uint8_t *p = begin(b, MQTT_CONNECT << 4, rem);
	if (!p)
		return -FM_ENOMEM;
	uint8_t flags = (c->clean_start ? 0x02 : 0) | (c->username.p ? 0x80 : 0) | (c->password.p ? 0x40 : 0);
	if (c->will)
		flags |= 0x04 | (uint8_t)(c->will_qos << 3) | (c->will_retain ? 0x20 : 0);
	p = wr_bin(p, name);
	p = wr_u8(p, v);
	p = wr_u8(p, flags);
	p = wr_u16(p, c->keepalive);
	p = props_put(p, v, &c->props, pin);
	p = wr_bin(p, c->client_id);
	if (c->will) {
		p = props_put(p, v, &c->will_props, win);
		p = wr_bin(p, c->will_topic);
		p = wr_bin(p, c->will_payload);
	}
	if (c->username.p)
		p = wr_bin(p, c->username);
	if (c->password.p)
		p = wr_bin(p, c->password);
	return finish(b, p);
}

int mqtt_encode_connack(struct buf *b, uint8_t version, const struct mqtt_connack *c)
{
	uint32_t pin;
	uint32_t rem = 2 + props_total(version, &c->props, &pin);
	uint8_t *p = begin(b, MQTT_CONNACK << 4, rem);
	if (!p)
		return -FM_ENOMEM;
	p = wr_u8(p, c->session_present ? 1 : 0);
	p = wr_u8(p, c->rc);
	p = props_put(p, version, &c->props, pin);
	return finish(b, p);
}

static uint32_t publish_remaining(uint8_t version, const struct mqtt_publish *m, uint32_t *pin)
{
	return bin_size(m->topic) + (m->qos ? 2 : 0) + props_total(version, &m->props, pin) + m->payload.len;
}

uint32_t mqtt_publish_size(uint8_t version, const struct mqtt_publish *m)
{
	uint32_t pin;
	uint32_t rem = publish_remaining(version, m, &pin);
	return 1 + varint_size(rem) + rem;
}

int mqtt_encode_publish(struct buf *b, uint8_t version, const struct mqtt_publish *m)
{
	uint32_t pin;
	uint32_t rem = publish_remaining(version, m, &pin);
	uint8_t first = (uint8_t)(MQTT_PUBLISH << 4 | (m->dup ? 0x08 : 0) | m->qos << 1 | (m->retain ? 1 : 0));
	uint8_t *p = begin(b, first, rem);
	if (!p)
		return -FM_ENOMEM;
	p = wr_bin(p, m->topic);
	if (m->qos)
		p = wr_u16(p, m->pid);
	p = props_put(p, version, &m->props, pin);
	if (m->payload.len)
		memcpy(p, m->payload.p, m->payload.len);
	return finish(b, p + m->payload.len);
}

int mqtt_encode_ack(struct buf *b, uint8_t version, uint8_t type, const struct mqtt_ack *a)
{
	uint32_t pin = 0, rem = 2;
	bool v5_long = version == MQTT_V5 && (a->rc != MQTT_RC_SUCCESS || mqtt__props_size(&a->props));
	if (v5_long)
		rem += 1 + props_total(version, &a->props, &pin);
	uint8_t *p = begin(b, (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 2 : 0)), rem);
	if (!p)
		return -FM_ENOMEM;
	p = wr_u16(p, a->pid);
	if (v5_long) {
		p = wr_u8(p, a->rc);
		p = props_put(p, version, &a->props, pin);
	}
	return finish(b, p);
}

int mqtt_encode_subscribe(struct buf *b, uint8_t version, uint8_t type, uint16_t pid,
			  const struct mqtt_props *props, const struct mqtt_sub_entry *e, uint32_t n)
{
	uint32_t pin;
	uint32_t rem = 2 + props_total(version, props, &pin);
	for (uint32_t i = 0; i < n; i++)
		rem += bin_size(e[i].filter) + (type == MQTT_SUBSCRIBE ? 1 : 0);
	uint8_t *p = begin(b, (uint8_t)(type << 4 | 2), rem);
	if (!p)
		return -FM_ENOMEM;
	p = wr_u16(p, pid);
	p = props_put(p, version, props, pin);
	for (uint32_t i = 0; i < n; i++) {
		p = wr_bin(p, e[i].filter);
		if (type == MQTT_SUBSCRIBE)
			p = wr_u8(p, e[i].options);
	}
	return finish(b, p);
}

int mqtt_encode_suback(struct buf *b, uint8_t version, uint8_t type, const struct mqtt_suback *s)
{
	uint32_t pin;
	/* v3 UNSUBACK carries no reason codes. */
	uint32_t n = (type == MQTT_UNSUBACK && version != MQTT_V5) ? 0 : s->n;
	uint32_t rem = 2 + props_total(version, &s->props, &pin) + n;
	uint8_t *p = begin(b, (uint8_t)(type << 4), rem);
	if (!p)
		return -FM_ENOMEM;
	p = wr_u16(p, s->pid);
	p = props_put(p, version, &s->props, pin);
	if (n)
		memcpy(p, s->rcs, n);
	return finish(b, p + n);
}

int mqtt_encode_simple(struct buf *b, uint8_t type)
{
	uint8_t *p = begin(b, (uint8_t)(type << 4), 0);
	return p ? finish(b, p) : -FM_ENOMEM;
}

int mqtt_encode_reason(struct buf *b, uint8_t version, uint8_t type, const struct mqtt_reason *r)
{
	if (version != MQTT_V5)
		return mqtt_encode_simple(b, type);
	uint32_t pin;
	uint32_t rem = 1 + props_total(version, &r->props, &pin);
	uint8_t *p = begin(b, (uint8_t)(type << 4), rem);
	if (!p)
		return -FM_ENOMEM;
	p = wr_u8(p, r->rc);
	p = props_put(p, version, &r->props, pin);
	return finish(b, p);
}

const char *mqtt_type_name(uint8_t type)
{
	static const char *const names[16] = {
		"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
		"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
	};
	return names[type & 0x0F];
}

const char *mqtt_rc_name(uint8_t rc)
{
	switch (rc) {
	case 0x00: return "success";
	case 0x01: return "granted QoS 1";
	case 0x02: return "granted QoS 2";
	case 0x04: return "disconnect with will";
	case 0x10: return "no matching subscribers";
	case 0x11: return "no subscription existed";
	case 0x18: return "continue authentication";
	case 0x19: return "re-authenticate";
	case 0x80: return "unspecified error";
	case 0x81: return "malformed packet";
	case 0x82: return "protocol error";
	case 0x83: return "implementation specific error";
	case 0x84: return "unsupported protocol version";
	case 0x85: return "client identifier not valid";
	case 0x86: return "bad user name or password";
	case 0x87: return "not authorized";
	case 0x88: return "server unavailable";
	case 0x89: return "server busy";
	case 0x8A: return "banned";
	case 0x8B: return "server shutting down";
	case 0x8C: return "bad authentication method";
	case 0x8D: return "keep alive timeout";
	case 0x8E: return "session taken over";
	case 0x8F: return "topic filter invalid";
	case 0x90: return "topic name invalid";
	case 0x91: return "packet identifier in use";
	case 0x92: return "packet identifier not found";
	case 0x93: return "receive maximum exceeded";
	case 0x94: return "topic alias invalid";
	case 0x95: return "packet too large";
	case 0x96: return "message rate too high";
	case 0x97: return "quota exceeded";
	case 0x98: return "administrative action";
	case 0x99: return "payload format invalid";
	case 0x9A: return "retain not supported";
	case 0x9B: return "QoS not supported";
	case 0x9C: return "use another server";
	case 0x9D: return "server moved";
	case 0x9E: return "shared subscriptions not supported";
	case 0x9F: return "connection rate exceeded";
	case 0xA0: return "maximum connect time";
	case 0xA1: return "subscription identifiers not supported";
	case 0xA2: return "wildcard subscriptions not supported";
	}
	return "unknown reason";
}
