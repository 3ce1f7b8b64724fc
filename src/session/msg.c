#include "msg.h"
#include <stdlib.h>
#include <string.h>

struct msg *msg_new(const char *topic, uint16_t topic_len, const uint8_t *props, uint32_t props_len,
		    const uint8_t *payload, uint32_t payload_len, uint8_t qos, bool retain)
{
	struct msg *m = malloc(sizeof *m + (size_t)topic_len + props_len + payload_len);
	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->qos = qos;
	m->retain = retain;
	m->topic_len = topic_len;
	m->props_len = props_len;
	m->payload_len = payload_len;
	m->expiry_at = 0;
	m->origin_sid = 0;
	atomic_init(&m->id, 0);
	atomic_init(&m->held, false);
	memcpy(m->data, topic, topic_len);
	if (props_len)
		memcpy(m->data + topic_len, props, props_len);
	if (payload_len)
		memcpy(m->data + topic_len + props_len, payload, payload_len);
	return m;
}

void msg_unref(struct msg *m)
{
	if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}
