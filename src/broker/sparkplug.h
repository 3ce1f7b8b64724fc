/* The Sparkplug aware broker (sparkplug.c; b->spb set). */
#ifndef FM_BROKER_SPARKPLUG_H
#define FM_BROKER_SPARKPLUG_H
#include "types.h"

int broker__spb_init(struct broker *b); /* 0 or -FM_ENOMEM */
void broker__spb_free(struct broker *b);
/* Called by broker__route_publish for every message it routes: observes m for the
 * fleet view; *cert gets the retained copy of a birth to store and route
 * (a reference, or NULL); returns the message to route instead of m (an
 * NDEATH with the time as its timestamp, a reference) or NULL for m. */
struct msg *broker__spb_route(struct bworker *w, struct msg *m, struct msg **cert);
/* May a message on topic go to the client of acl? A copy under
 * $sparkplug/certificates/ only where its birth's topic may. */
bool broker__spb_acl_can_read(const struct auth_acl_client *acl, const char *topic, size_t len);

#endif
