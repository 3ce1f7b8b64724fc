/* The one admission check of every message entering the broker (admit.c). */
#ifndef FM_BROKER_ADMIT_H
#define FM_BROKER_ADMIT_H
#include "types.h"

/* Why a message is refused (ADMIT_OK: it is not). */
enum admit { ADMIT_OK, ADMIT_TOPIC_INVALID, ADMIT_TOPIC_LIMIT, ADMIT_RETAIN, ADMIT_SYS, ADMIT_SPARKPLUG,
	     ADMIT_DENIED };
/* acl: the publisher's compiled ACL, NULL when no ACL applies. */
enum admit broker__admit(const struct broker *b, const struct auth_acl_client *acl, const char *topic, size_t len,
			 bool retain);
uint8_t broker__admit_rc(enum admit a);     /* v5 reason code */
const char *broker__admit_why(enum admit a); /* for reason strings and logs */

/* True when a topic name or filter is within max_topic_length and
 * max_topic_levels. */
bool broker__admit_topic_limits(const struct config *cfg, const char *t, size_t len);

#endif
