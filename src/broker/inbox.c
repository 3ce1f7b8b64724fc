/* The producer side of a worker's inbox: items (a session to flush, a
 * connection to kick, a committed transaction) appended to its wake list
 * from any thread, with one wake-up of its loop. The worker drains the list
 * (broker.c, broker_worker_wake). */
#include "inbox.h"
#include "../base/err.h"
#include "../base/log.h"
#include "../base/vec.h"

int broker__inbox_push(struct bworker *from, int worker, struct wake_item item)
{
	return broker__inbox_push_to(from->b, worker, item, from->id != worker);
}

int broker__inbox_push_to(struct broker *b, int worker, struct wake_item item, bool wake)
{
	struct bworker *to = &b->workers[worker];
	pthread_mutex_lock(&to->wake_lock);
	if (vec_grow(&to->wake, &to->cap_wake, to->n_wake, sizeof *to->wake, 64)) {
		pthread_mutex_unlock(&to->wake_lock);
		return -FM_ENOMEM;
	}
	to->wake[to->n_wake++] = item;
	/* Woken under the lock: once the worker has taken the item (under the
	 * same lock), nobody touches its loop any more, so it may stop. */
	if (wake)
		b->ports.wake(b, worker);
	pthread_mutex_unlock(&to->wake_lock);
	return 0;
}

void broker__inbox_schedule(struct bworker *from, struct session *s, int worker)
{
	if (worker < 0 || atomic_exchange(&s->flush_pending, true))
		return;
	if (broker__inbox_push(from, worker, (struct wake_item){ session_ref(s), NULL, NULL })) {
		atomic_store(&s->flush_pending, false);
		session_unref(s);
		log_err("out of memory scheduling a delivery to %s", s->client_id);
	}
}
