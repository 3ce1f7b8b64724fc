/* MQTT 3.1.1 and 5.0 codec: constants, packet structs, pure decode/encode.
 *
 * Decoded packets are views: every struct mqtt_bin points into the input
 * buffer, so the input must outlive the struct. Nothing here allocates except
 * the encoders, which append to a struct buf.
 */
#ifndef FM_MQTT_H
#define FM_MQTT_H
#include "../base/buf.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQTT_V31 3
#define MQTT_V311 4
#define MQTT_V5 5

/* Largest Remaining Length a four-byte varint can carry [MQTT-1.5.5]. */
#define MQTT_MAX_REMAINING 268435455u
/* Largest fixed header: one type byte and a four-byte varint. */
#define MQTT_MAX_FIXED_HEADER 5

enum mqtt_type {
	MQTT_CONNECT = 1, MQTT_CONNACK, MQTT_PUBLISH, MQTT_PUBACK, MQTT_PUBREC,
	MQTT_PUBREL, MQTT_PUBCOMP, MQTT_SUBSCRIBE, MQTT_SUBACK, MQTT_UNSUBSCRIBE,
	MQTT_UNSUBACK, MQTT_PINGREQ, MQTT_PINGRESP, MQTT_DISCONNECT, MQTT_AUTH,
};

/* v5 reason codes (section 2.4). Packets that may carry each are listed. */
enum mqtt_rc {
	MQTT_RC_SUCCESS = 0x00,                 /* CONNACK PUBACK PUBREC PUBREL PUBCOMP UNSUBACK AUTH; DISCONNECT (normal); SUBACK (granted QoS 0) */
	MQTT_RC_GRANTED_QOS1 = 0x01,            /* SUBACK */
	MQTT_RC_GRANTED_QOS2 = 0x02,            /* SUBACK */
	MQTT_RC_DISCONNECT_WITH_WILL = 0x04,    /* DISCONNECT */
	MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10, /* PUBACK PUBREC */
	MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11, /* UNSUBACK */
	MQTT_RC_CONTINUE_AUTH = 0x18,           /* AUTH */
	MQTT_RC_REAUTHENTICATE = 0x19,          /* AUTH */
	MQTT_RC_UNSPECIFIED = 0x80,             /* CONNACK PUBACK PUBREC SUBACK UNSUBACK DISCONNECT */
	MQTT_RC_MALFORMED = 0x81,               /* CONNACK DISCONNECT */
	MQTT_RC_PROTOCOL_ERROR = 0x82,          /* CONNACK DISCONNECT */
	MQTT_RC_IMPL_SPECIFIC = 0x83,           /* CONNACK PUBACK PUBREC SUBACK UNSUBACK DISCONNECT */
	MQTT_RC_UNSUPPORTED_PROTOCOL = 0x84,    /* CONNACK */
	MQTT_RC_CLIENT_ID_NOT_VALID = 0x85,     /* CONNACK */
	MQTT_RC_BAD_USERNAME_PASSWORD = 0x86,   /* CONNACK */
	MQTT_RC_NOT_AUTHORIZED = 0x87,          /* CONNACK PUBACK PUBREC SUBACK UNSUBACK DISCONNECT */
	MQTT_RC_SERVER_UNAVAILABLE = 0x88,      /* CONNACK */
	MQTT_RC_SERVER_BUSY = 0x89,             /* CONNACK DISCONNECT */
	MQTT_RC_BANNED = 0x8A,                  /* CONNACK */
	MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,    /* DISCONNECT */
	MQTT_RC_BAD_AUTH_METHOD = 0x8C,         /* CONNACK DISCONNECT */
	MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,      /* DISCONNECT */
	MQTT_RC_SESSION_TAKEN_OVER = 0x8E,      /* DISCONNECT */
	MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,    /* SUBACK UNSUBACK DISCONNECT */
	MQTT_RC_TOPIC_NAME_INVALID = 0x90,      /* CONNACK PUBACK PUBREC DISCONNECT */
	MQTT_RC_PACKET_ID_IN_USE = 0x91,        /* PUBACK PUBREC SUBACK UNSUBACK */
	MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,     /* PUBREL PUBCOMP */
	MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,    /* DISCONNECT */
	MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,     /* DISCONNECT */
	MQTT_RC_PACKET_TOO_LARGE = 0x95,        /* CONNACK DISCONNECT */
	MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,   /* DISCONNECT */
	MQTT_RC_QUOTA_EXCEEDED = 0x97,          /* CONNACK PUBACK PUBREC SUBACK DISCONNECT */
	MQTT_RC_ADMIN_ACTION = 0x98,            /* DISCONNECT */
	MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,  /* CONNACK PUBACK PUBREC DISCONNECT */
	MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,    /* CONNACK DISCONNECT */
	MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,       /* CONNACK DISCONNECT */
	MQTT_RC_USE_ANOTHER_SERVER = 0x9C,      /* CONNACK DISCONNECT */
	MQTT_RC_SERVER_MOVED = 0x9D,            /* CONNACK DISCONNECT */
	MQTT_RC_SHARED_SUB_NOT_SUPPORTED = 0x9E,/* SUBACK DISCONNECT */
	MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,/* CONNACK DISCONNECT */
	MQTT_RC_MAX_CONNECT_TIME = 0xA0,        /* DISCONNECT */
	MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,   /* SUBACK DISCONNECT */
	MQTT_RC_WILDCARD_SUB_NOT_SUPPORTED = 0xA2, /* SUBACK DISCONNECT */
};

/* v3.1.1 CONNACK return codes (section 3.2.2.3). */
enum mqtt_v3_connack {
	MQTT_V3_ACCEPTED = 0,
	MQTT_V3_BAD_PROTOCOL = 1,
	MQTT_V3_ID_REJECTED = 2,
	MQTT_V3_UNAVAILABLE = 3,
	MQTT_V3_BAD_USERNAME_PASSWORD = 4,
	MQTT_V3_NOT_AUTHORIZED = 5,
};
/* v3.1.1 SUBACK failure [MQTT-3.9.3-2]. */
#define MQTT_V3_SUBACK_FAILURE 0x80

/* v5 property identifiers (section 2.2.2.2). */
enum mqtt_prop_id {
	MQTT_PROP_PAYLOAD_FORMAT = 0x01,
	MQTT_PROP_MESSAGE_EXPIRY = 0x02,
	MQTT_PROP_CONTENT_TYPE = 0x03,
	MQTT_PROP_RESPONSE_TOPIC = 0x08,
	MQTT_PROP_CORRELATION_DATA = 0x09,
	MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
	MQTT_PROP_SESSION_EXPIRY = 0x11,
	MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
	MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
	MQTT_PROP_AUTH_METHOD = 0x15,
	MQTT_PROP_AUTH_DATA = 0x16,
	MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
	MQTT_PROP_WILL_DELAY = 0x18,
	MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
	MQTT_PROP_RESPONSE_INFO = 0x1A,
	MQTT_PROP_SERVER_REFERENCE = 0x1C,
	MQTT_PROP_REASON_STRING = 0x1F,
	MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
	MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
	MQTT_PROP_TOPIC_ALIAS = 0x23,
	MQTT_PROP_MAXIMUM_QOS = 0x24,
	MQTT_PROP_RETAIN_AVAILABLE = 0x25,
	MQTT_PROP_USER_PROPERTY = 0x26,
	MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,
	MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
	MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
	MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};
#define MQTT_PROP_BIT(id) (1ull << (id))

/* Pseudo packet type for the properties of a Will in CONNECT. */
#define MQTT_WILL_PROPS 16

/* Subscription option bits (section 3.8.3.1). */
#define MQTT_SUBOPT_QOS_MASK 0x03
#define MQTT_SUBOPT_NO_LOCAL 0x04
#define MQTT_SUBOPT_RAP 0x08
#define MQTT_SUBOPT_RH_SHIFT 4
#define MQTT_SUBOPT_RH_MASK 0x30

/* A byte string or UTF-8 string viewed in place; p is NULL when absent. */
struct mqtt_bin {
	const uint8_t *p;
	uint32_t len;
};

/* v5 properties. `have` has MQTT_PROP_BIT(id) set for each present property.
 * Decoding: raw/raw_len view the whole property block (for user properties
 * and repeated subscription identifiers; see mqtt_props_next).
 * Encoding: sub_ids/n_sub_ids (when n_sub_ids > 0) replace sub_id, and
 * `extra` is appended verbatim (already-encoded properties, e.g. user
 * properties being passed through). */
struct mqtt_props {
	uint64_t have;
	uint32_t message_expiry, session_expiry, will_delay, max_packet_size, sub_id;
	uint16_t server_keep_alive, receive_maximum, topic_alias_maximum, topic_alias;
	uint8_t payload_format, request_problem_info, request_response_info;
	uint8_t maximum_qos, retain_available, wildcard_sub_available;
	uint8_t sub_id_available, shared_sub_available;
	struct mqtt_bin content_type, response_topic, correlation_data;
	struct mqtt_bin assigned_client_id, auth_method, auth_data;
	struct mqtt_bin response_info, server_reference, reason_string;
	uint32_t n_user;
	const uint8_t *raw;
	uint32_t raw_len;
	const uint32_t *sub_ids;
	uint32_t n_sub_ids;
	struct mqtt_bin extra;
};

struct mqtt_connect {
	struct mqtt_bin protocol_name;
	uint8_t version;
	bool clean_start;
	uint16_t keepalive;
	struct mqtt_bin client_id, username, password; /* p NULL when the flag is clear */
	bool will;
	uint8_t will_qos;
	bool will_retain;
	struct mqtt_bin will_topic, will_payload;
	struct mqtt_props will_props;
	struct mqtt_props props;
};

struct mqtt_connack {
	bool session_present;
	uint8_t rc; /* v5 reason code or v3 return code, by version */
	struct mqtt_props props;
};

struct mqtt_publish {
	uint8_t qos;
	bool dup, retain;
	struct mqtt_bin topic; /* may be empty in v5 when a topic alias is used */
	uint16_t pid;          /* 0 for QoS 0 */
	struct mqtt_props props;
	struct mqtt_bin payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
struct mqtt_ack {
	uint16_t pid;
	uint8_t rc;
	struct mqtt_props props;
};

/* SUBSCRIBE and UNSUBSCRIBE: the topic list is validated by the decoder and
 * walked with mqtt_topics_next. */
struct mqtt_sub_entry {
	struct mqtt_bin filter;
	uint8_t options; /* SUBSCRIBE only */
};
struct mqtt_subscribe {
	uint16_t pid;
	struct mqtt_props props;
	uint32_t n;
	const uint8_t *list;
	uint32_t list_len;
};

/* SUBACK and UNSUBACK (v3 UNSUBACK has no codes: n == 0). */
struct mqtt_suback {
	uint16_t pid;
	struct mqtt_props props;
	const uint8_t *rcs;
	uint32_t n;
};

/* DISCONNECT and AUTH. */
struct mqtt_reason {
	uint8_t rc;
	struct mqtt_props props;
};

struct mqtt_packet {
	uint8_t type;
	uint8_t flags; /* the low nibble of the first byte */
	uint32_t size; /* whole packet, fixed header included */
	union {
		struct mqtt_connect connect;
		struct mqtt_connack connack;
		struct mqtt_publish publish;
		struct mqtt_ack ack;
		struct mqtt_subscribe subscribe;
		struct mqtt_suback suback;
		struct mqtt_reason reason;
	} u;
};

/* Reads the fixed header. Returns header bytes (>0), 0 when more bytes are
 * needed, or -MQTT_RC_MALFORMED for a bad varint. */
int mqtt_fixed_header(const uint8_t *p, size_t len, uint8_t *first, uint32_t *remaining);

/* Decodes one packet of protocol `version` (MQTT_V31/V311/V5; CONNECT is
 * decoded whatever it is). Returns bytes consumed (>0), 0 when the packet is
 * not complete yet, or the negated v5 reason code that names the fault:
 * -MQTT_RC_MALFORMED, -MQTT_RC_PROTOCOL_ERROR, -MQTT_RC_PACKET_TOO_LARGE
 * (size above max_size, known from the fixed header alone), or
 * -MQTT_RC_UNSUPPORTED_PROTOCOL for a CONNECT of an unknown version.
 * On error *out->type tells which packet failed when known. */
int mqtt_decode(const uint8_t *p, size_t len, uint8_t version, uint32_t max_size,
		struct mqtt_packet *out);

/* Walks a decoded SUBSCRIBE/UNSUBSCRIBE list; *off starts at 0. Returns false
 * at the end. */
bool mqtt_topics_next(const struct mqtt_subscribe *s, bool with_options, uint32_t *off,
		      struct mqtt_sub_entry *e);

/* Walks a decoded property block; *off starts at 0. Returns false at the end.
 * For string pairs (user property) *val is the second string. */
struct mqtt_prop_item {
	uint8_t id;
	uint32_t num;
	struct mqtt_bin str, val;
};
bool mqtt_props_next(const struct mqtt_props *pr, uint32_t *off, struct mqtt_prop_item *it);

/* Appends the contents of a property block (no length prefix) built from
 * pr's `have` fields and `extra`. Returns 0 or -FM_ENOMEM. */
int mqtt_props_encode(const struct mqtt_props *pr, struct buf *b);

/* Appends the user properties of a decoded block, encoded, to b. */
int mqtt_props_copy_user(const struct mqtt_props *pr, struct buf *b);

/* Is this valid MQTT UTF-8 (no U+0000, no surrogates, shortest form)? [MQTT-1.5.4] */
bool mqtt_utf8_valid(const uint8_t *p, size_t len);

/* Encoders append one whole packet to b and return 0 or -FM_ENOMEM.
 * `version` selects the wire form; properties are written only for v5. */
int mqtt_encode_connect(struct buf *b, const struct mqtt_connect *c);
int mqtt_encode_connack(struct buf *b, uint8_t version, const struct mqtt_connack *c);
int mqtt_encode_publish(struct buf *b, uint8_t version, const struct mqtt_publish *m);
/* type: MQTT_PUBACK, PUBREC, PUBREL or PUBCOMP. v5 omits a Success code with
 * no properties, as the spec allows. */
int mqtt_encode_ack(struct buf *b, uint8_t version, uint8_t type, const struct mqtt_ack *a);
/* type: MQTT_SUBSCRIBE or MQTT_UNSUBSCRIBE; entries written in order. */
int mqtt_encode_subscribe(struct buf *b, uint8_t version, uint8_t type, uint16_t pid,
			  const struct mqtt_props *props, const struct mqtt_sub_entry *e, uint32_t n);
/* type: MQTT_SUBACK or MQTT_UNSUBACK. */
int mqtt_encode_suback(struct buf *b, uint8_t version, uint8_t type, const struct mqtt_suback *s);
int mqtt_encode_simple(struct buf *b, uint8_t type); /* PINGREQ, PINGRESP, v3 DISCONNECT */
/* type: MQTT_DISCONNECT or MQTT_AUTH. */
int mqtt_encode_reason(struct buf *b, uint8_t version, uint8_t type, const struct mqtt_reason *r);

/* Size of an encoded PUBLISH, for Maximum Packet Size checks before encoding. */
uint32_t mqtt_publish_size(uint8_t version, const struct mqtt_publish *m);

const char *mqtt_type_name(uint8_t type);
const char *mqtt_rc_name(uint8_t rc);

#endif
