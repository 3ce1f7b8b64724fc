/* Queued bodies of durable sessions live on disk once committed (spill.c). */
#ifndef FM_BROKER_SPILL_H
#define FM_BROKER_SPILL_H
#include "types.h"

/* After the commit of t: entries it added give up their bodies when their
 * session is offline or its queue is longer than the part kept in memory. */
void broker__spill_committed(const struct store_txn *t);
/* The head of s's queue is on disk: asks the store for the bodies of the
 * next entries (s->lock held); delivery resumes when they arrive. */
void broker__spill_load(struct bworker *w, struct session *s);
/* Asks for the next bodies before delivery reaches them (s->lock held). */
void broker__spill_prefetch(struct bworker *w, struct session *s);
/* Asks again for the bodies whose reading failed (worker tick). */
void broker__spill_retry(struct bworker *w);

#endif
