/* The store-wide queue budget and the report of drops (queue_limits.c). */
#ifndef FM_BROKER_QUEUE_LIMITS_H
#define FM_BROKER_QUEUE_LIMITS_H
#include "types.h"

/* Counts n messages of s dropped for `why` and logs it, at most once an
 * interval per session (s->lock held). */
void broker__queue_note_drops(struct bworker *w, struct session *s, enum drop_reason why, uint64_t n);
/* Sums the queues against their budget and reports drops not yet logged
 * (worker 0, every second). */
void broker__queue_budget_sweep(struct bworker *w);
/* The limits of s's queue now: the configured ones, tightened while the
 * queues are over their store-wide budget (s->lock held). */
struct session_limits broker__queue_session_limits(const struct broker *b, const struct session *s);
/* The configured limits of every queue (max_queued_messages, max_queued_bytes,
 * queue_overflow). */
struct session_limits broker__queue_limits(const struct broker *b);

#endif
