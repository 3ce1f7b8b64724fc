/* Admission: the one check every message passes before it enters the
 * broker, whatever brought it (a client's PUBLISH, a will, a bridge's
 * inbound message): a valid topic within the configured limits, retain only
 * where available, nothing into the broker's own `$SYS` tree (nor, when
 * Sparkplug aware, `$sparkplug`), and the ACL's
 * write permission. Callers react in their own way (a DISCONNECT, a negative
 * acknowledgement, a refused CONNACK, a dropped will), but never skip it. */
#include "admit.h"
#include "../auth/auth.h"
#include "../sparkplug/sparkplug.h"
#include <string.h>

static const struct admit_outcome {
	uint8_t rc;      /* v5 reason code */
	const char *why; /* for the reason string and the log */
} outcomes[] = {
	[ADMIT_OK] = { MQTT_RC_SUCCESS, NULL },
	[ADMIT_TOPIC_INVALID] = { MQTT_RC_TOPIC_NAME_INVALID, "invalid topic name" },
	[ADMIT_TOPIC_LIMIT] = { MQTT_RC_TOPIC_NAME_INVALID,
				"topic longer than max_topic_length or max_topic_levels" },
	[ADMIT_RETAIN] = { MQTT_RC_RETAIN_NOT_SUPPORTED, "retain not available" },
	[ADMIT_SYS] = { MQTT_RC_NOT_AUTHORIZED, "$SYS is read-only" },
	[ADMIT_SPARKPLUG] = { MQTT_RC_NOT_AUTHORIZED, "$sparkplug is the Sparkplug aware broker's" },
	[ADMIT_DENIED] = { MQTT_RC_NOT_AUTHORIZED, "not authorized" },
};

enum admit broker__admit(const struct broker *b, const struct auth_acl_client *acl, const char *topic, size_t len,
			 bool retain)
{
	if (!topic_name_valid(topic, len)) /* [MQTT-3.3.2-2] */
		return ADMIT_TOPIC_INVALID;
	if (!broker__admit_topic_limits(&b->cfg, topic, len))
		return ADMIT_TOPIC_LIMIT;
	if (retain && !b->cfg.retain_available)
		return ADMIT_RETAIN;
	if (len >= 4 && !memcmp(topic, "$SYS", 4))
		return ADMIT_SYS;
	/* Only the broker writes the birth certificates it keeps. */
	if (b->cfg.sparkplug_aware && spb_reserved_topic(topic, len))
		return ADMIT_SPARKPLUG;
	if (acl && !auth_acl_client_can_publish(acl, topic, len))
		return ADMIT_DENIED;
	return ADMIT_OK;
}

uint8_t broker__admit_rc(enum admit a)
{
	return outcomes[a].rc;
}

const char *broker__admit_why(enum admit a)
{
	return outcomes[a].why;
}

bool broker__admit_topic_limits(const struct config *cfg, const char *t, size_t len)
{
	if (len > cfg->max_topic_length)
		return false;
	uint32_t levels = 1;
	for (const char *p = t, *end = t + len; (p = memchr(p, '/', (size_t)(end - p))) != NULL; p++)
		if (++levels > cfg->max_topic_levels)
			return false;
	return true;
}
