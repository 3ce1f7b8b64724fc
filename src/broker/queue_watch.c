/* Which sessions' queues are close to their limit: the input of the
 * operations layer's queue_share alert, read while the queues fill, so the
 * alert comes before the first message is dropped or refused. */
#include "internal.h"

/* Percent of the fuller of the two queue limits s's queue uses; 0 without
 * limits. The caller holds s->lock. */
static double queue_share(const struct session *s, const struct session_limits *lim)
{
	double share = 0;
	if (lim->max_messages)
		share = (double)s->queue.count * 100.0 / lim->max_messages;
	if (lim->max_bytes) {
		double by_bytes = (double)s->queued_bytes * 100.0 / (double)lim->max_bytes;
		if (by_bytes > share)
			share = by_bytes;
	}
	return share;
}

double broker_queue_watch(struct broker *b, double over_percent,
			  void (*fn)(void *ctx, const char *client_id, double share), void *ctx)
{
	/* The limits session_enqueue applies, read as it reads them. */
	const struct session_limits lim = broker_limits(b);
	double fullest = 0;
	if (!lim.max_messages && !lim.max_bytes)
		return 0;
	pthread_mutex_lock(&b->reg_lock);
	for (uint32_t i = 0; i < b->reg_cap; i++) {
		for (struct session *s = b->reg[i]; s; s = s->reg_next) {
			pthread_mutex_lock(&s->lock);
			double share = queue_share(s, &lim);
			pthread_mutex_unlock(&s->lock);
			if (share > fullest)
				fullest = share;
			/* client_id is immutable and the session alive under the registry lock. */
			if (share > over_percent)
				fn(ctx, s->client_id, share);
		}
	}
	pthread_mutex_unlock(&b->reg_lock);
	return fullest;
}
