/* Message construction: a message from PUBLISH or Will fields, keeping the
 * v5 properties that are forwarded and applying the expiry. */
#include "msg.h"
#include "broker.h"
#include "../base/clock.h"

/* v5 properties a PUBLISH carries on to subscribers unaltered: Payload Format
 * Indicator [MQTT-3.3.2-4], Content Type [MQTT-3.3.2-20], Response Topic
 * [MQTT-3.3.2-15], Correlation Data [MQTT-3.3.2-16]; User Properties are
 * copied in order [MQTT-3.3.2-17], [MQTT-3.3.2-18]. */
#define FORWARDED_PROPS (MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) | \
			 MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC) | MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA))

struct msg *broker__msg_build(struct broker *b, struct bworker *w, struct mqtt_bin topic, struct mqtt_bin payload,
			      const struct mqtt_props *pr, uint8_t version, uint8_t qos, bool retain)
{
	struct buf props = { 0 };
	uint32_t expiry = b->cfg.message_expiry_default;
	if (version == MQTT_V5) {
		struct mqtt_props fwd = *pr;
		fwd.have &= FORWARDED_PROPS;
		fwd.extra = (struct mqtt_bin){ 0 };
		fwd.n_sub_ids = 0;
		if (mqtt_props_encode(&fwd, &props) || (pr->n_user && mqtt_props_copy_user(pr, &props))) {
			buf_free(&props);
			return NULL;
		}
		if (pr->have & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY))
			expiry = pr->message_expiry;
	}
	struct msg *m = msg_new((const char *)topic.p, (uint16_t)topic.len, props.p, (uint32_t)props.len,
				payload.p, payload.len, qos, retain);
	buf_free(&props);
	if (m && expiry)
		m->expiry_at = clock_wall_ms() + (uint64_t)expiry * 1000;
	(void)w;
	return m;
}

struct msg *broker_msg_new(struct broker *b, struct mqtt_bin topic, struct mqtt_bin payload,
			   const struct mqtt_props *pr, uint8_t qos, bool retain)
{
	static const struct mqtt_props none;
	return broker__msg_build(b, NULL, topic, payload, pr ? pr : &none, pr ? MQTT_V5 : MQTT_V311, qos, retain);
}
