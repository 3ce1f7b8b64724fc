/* Queue entries deleted (or moved to a new state) before their insert
 * reached the writer.
 *
 * Records of one queue entry can come from two workers: the one that routed
 * the message (insert) and the one that delivered it (delete on PUBACK). Each
 * worker submits at the end of its loop turn, so a delete can arrive first.
 * The writer then remembers the (session, sequence) pair and skips the
 * insert when it comes; a sequence number is never reused while the broker
 * runs. Pairs are forgotten after two generations (see tombs_age). This is
 * the memory mirror of the store's tombs table (see apply.c), so that apply
 * stays deterministic across restarts. */
#ifndef FM_TOMBS_H
#define FM_TOMBS_H
#include "../base/hmap.h"
#include <stdbool.h>
#include <stdint.h>

#define TOMB_DELETED 0xFF /* else the value is a queue entry state */

/* An empty set is all zeroes. Each generation is an hmap of small entries
 * (tombs.c), one allocation each; cur.count and old.count are the pairs
 * each remembers. */
struct tombs {
	struct hmap cur, old;
};

/* Remembers what happened to a pair (TOMB_DELETED or a state); a later
 * value replaces an earlier one. Returns 0 or -FM_ENOMEM. */
int tombs_add(struct tombs *t, uint64_t sid, uint64_t seq, uint8_t val);
/* Puts a remembered pair back (at start-up), in the current generation or
 * the one before. Returns 0 or -FM_ENOMEM. */
int tombs_load(struct tombs *t, uint64_t sid, uint64_t seq, uint8_t val, bool current);
/* Forgets the pair and returns its value, or -1 when it was not remembered. */
int tombs_take(struct tombs *t, uint64_t sid, uint64_t seq);
/* Starts a new generation, dropping the oldest. */
void tombs_age(struct tombs *t);
void tombs_free(struct tombs *t);

#endif
