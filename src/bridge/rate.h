/* Token bucket of a bridge's bandwidth limit (pure). A message is sent when
 * the bucket is not empty and may take it below zero: a large message is
 * never stuck, and the average stays exactly at the rate. What waits stays
 * in the spool. */
#ifndef FM_BRIDGE_RATE_H
#define FM_BRIDGE_RATE_H
#include <stdbool.h>
#include <stdint.h>

struct token_bucket {
	double rate;   /* tokens per second; 0: unlimited */
	double burst;  /* the most it holds: a tenth of a second's worth, at least 1 */
	double tokens;
	uint64_t last_us;
};

void bucket_init(struct token_bucket *b, double rate, uint64_t now_us);
/* Refills the bucket for now_us. Returns 0 when it is not empty (or has no
 * rate), else the microseconds until it will not be (at least 1). */
uint64_t bucket_wait(struct token_bucket *b, uint64_t now_us);
/* Takes n tokens (after bucket_wait said 0); the bucket may go below zero. */
void bucket_charge(struct token_bucket *b, double n);

#endif
