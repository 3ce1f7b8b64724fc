/* A message body: stored once, shared by reference between every queue that
 * holds it, across threads. Immutable after msg_new. */
#ifndef FM_MSG_H
#define FM_MSG_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct msg {
	atomic_uint refs;
	uint8_t qos;          /* as published */
	bool retain;          /* as published */
	uint16_t topic_len;
	uint32_t props_len;   /* forwardable v5 properties, encoded, no length prefix */
	uint32_t payload_len;
	uint64_t expiry_at;   /* wall-clock ms; 0 = never */
	uint64_t origin_sid;  /* session id of the publisher, for No Local; 0 = none */
	atomic_uint_fast64_t id; /* durable store id, 0 until first stored */
	atomic_bool held;     /* QoS 2: not to be sent before its store commit */
	uint8_t data[];       /* topic | props | payload */
};

static inline const char *msg_topic(const struct msg *m) { return (const char *)m->data; }
static inline const uint8_t *msg_props(const struct msg *m) { return m->data + m->topic_len; }
static inline const uint8_t *msg_payload(const struct msg *m)
{
	return m->data + m->topic_len + m->props_len;
}

/* Copies topic, props and payload into one allocation with one reference.
 * Returns NULL when out of memory. */
struct msg *msg_new(const char *topic, uint16_t topic_len, const uint8_t *props, uint32_t props_len,
		    const uint8_t *payload, uint32_t payload_len, uint8_t qos, bool retain);

static inline struct msg *msg_ref(struct msg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

/* Drops one reference; the last one frees the message. */
void msg_unref(struct msg *m);

static inline bool msg_expired(const struct msg *m, uint64_t now_ms)
{
	return m->expiry_at && now_ms >= m->expiry_at;
}

#endif
