/* Routing (route.c): from a published message to the sessions that must get it. */
#ifndef FM_BROKER_ROUTE_H
#define FM_BROKER_ROUTE_H
#include "types.h"

/* One subscriber found for a message. */
struct route_target {
	struct session *s;
	uint32_t sub_id;
	uint8_t qos;
	uint8_t flags; /* QE_RETAIN, QE_SHARED */
};

/* Outcome of routing one message. */
struct route_result {
	uint32_t matched;  /* sessions that took it */
	uint32_t rejected; /* sessions whose full queue refused it (reject_new) */
};

/* Routes m (the caller keeps its reference) to the sessions whose
 * subscriptions match, the bridges and the collectors (a Sparkplug birth's
 * certificate too). Returns how many took it and how many refused it. */
struct route_result broker__route_publish(struct bworker *w, struct msg *m);
/* Queues m for s and schedules its delivery. Takes its own reference. */
int broker__route_to_session(struct bworker *w, struct session *s, struct msg *m, uint8_t qos, uint8_t flags,
			     const uint32_t *sub_ids, uint16_t n_sub_ids);
/* Hands the entries of a $share member that left to other members; consumes them. */
void broker__route_reshare(struct bworker *w, struct session *from, struct qentry *entries, uint32_t n);

static inline uint8_t min_u8(uint8_t a, uint8_t b) { return a < b ? a : b; }

#endif
