/* Queue entries deleted before their insert reached the writer.
 *
 * Records of one queue entry can come from two workers: the one that routed
 * the message (insert) and the one that delivered it (delete on PUBACK). Each
 * worker submits at the end of its loop turn, so a delete can arrive first.
 * The writer then remembers the (session, sequence) pair and skips the
 * insert when it comes; a sequence number is never reused while the broker
 * runs. Pairs are forgotten after two generations (see tombs_age). */
#ifndef FM_TOMBS_H
#define FM_TOMBS_H
#include <stdbool.h>
#include <stdint.h>

struct tomb_gen {
	uint64_t *sid, *seq; /* sid 0 = empty slot */
	uint32_t cap, n;
};

struct tombs {
	struct tomb_gen cur, old;
};

/* Remembers a pair; returns 0 or -FM_ENOMEM (then the insert is written). */
int tombs_add(struct tombs *t, uint64_t sid, uint64_t seq);
/* Forgets and returns true when the pair was remembered. */
bool tombs_take(struct tombs *t, uint64_t sid, uint64_t seq);
/* Starts a new generation, dropping the oldest. */
void tombs_age(struct tombs *t);
void tombs_free(struct tombs *t);

#endif
