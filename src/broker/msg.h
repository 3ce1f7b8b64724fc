/* Message construction (msg.c). */
#ifndef FM_BROKER_MSG_H
#define FM_BROKER_MSG_H
#include "types.h"

/* Builds a message from PUBLISH or Will fields of a client speaking
 * `version`, keeping the v5 properties that are forwarded (pr) and applying
 * the message expiry (the property, else message_expiry_default). Returns a
 * new reference, or NULL when out of memory. */
struct msg *broker__msg_build(struct broker *b, struct bworker *w, struct mqtt_bin topic, struct mqtt_bin payload,
			      const struct mqtt_props *pr, uint8_t version, uint8_t qos, bool retain);

#endif
