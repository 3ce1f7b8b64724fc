/* Session end, session expiry and wills (sessions.c). */
#ifndef FM_BROKER_SESSIONS_H
#define FM_BROKER_SESSIONS_H
#include "types.h"

/* Ends a session already removed from the registry: drops its
 * subscriptions and queue, publishes a pending will; consumes one reference. */
void broker__session_end(struct bworker *w, struct session *s);
/* Adds s to the deadline list (registry lock held). */
int broker__session_timed_add(struct broker *b, struct session *s);
/* Takes s's will and the user it was admitted for, together, so that a new
 * connection's will cannot lend the old one its user (s->lock held). */
struct msg *broker__session_take_will(struct session *s, char **user);
/* Publishes a will once admitted again under the rules in force now, as
 * the user it was admitted for (NULL: anonymous). Consumes will and user;
 * a NULL will does nothing. */
void broker__session_will_publish(struct bworker *w, const char *client_id, char *user, struct msg *will);

#endif
