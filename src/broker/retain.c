/* The retained message of a topic: set or cleared, in memory and in the store. */
#include "retain.h"
#include "persist.h"
#include "../base/log.h"

void broker__retain_set(struct bworker *w, struct msg *m)
{
	struct broker *b = w->b;
	int err;
	pthread_rwlock_wrlock(&b->retain_lock);
	struct msg *old = retain_index_set(b->retained, msg_topic(m), m->topic_len,
					   m->payload_len ? msg_ref(m) : NULL, &err);
	uint64_t version = b->retain_version++;
	pthread_rwlock_unlock(&b->retain_lock);
	if (err && m->payload_len) {
		msg_unref(m);
		log_err("out of memory storing the retained message on %.*s", (int)m->topic_len, msg_topic(m));
		return;
	}
	msg_unref(old);
	broker__persist_retain(w, m, version);
}
