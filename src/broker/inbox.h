/* The producer side of a worker's inbox (inbox.c): items for its wake list. */
#ifndef FM_BROKER_INBOX_H
#define FM_BROKER_INBOX_H
#include "types.h"

/* Appends an item to a worker's wake list and, when `wake`, wakes it.
 * Returns 0 or -FM_ENOMEM. Thread-safe. */
int broker__inbox_push_to(struct broker *b, int worker, struct wake_item item, bool wake);
/* The same from a worker: the local one drains its list at the end of the turn. */
int broker__inbox_push(struct bworker *from, int worker, struct wake_item item);
/* Puts s on its worker's wake list (s->lock not held). */
void broker__inbox_schedule(struct bworker *from, struct session *s, int worker);

#endif
