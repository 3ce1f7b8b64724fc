#include "rate.h"

void bucket_init(struct token_bucket *b, double rate, uint64_t now_us)
{
	b->rate = rate;
	b->burst = rate / 10 > 1 ? rate / 10 : 1;
	b->tokens = b->burst;
	b->last_us = now_us;
}

uint64_t bucket_wait(struct token_bucket *b, uint64_t now_us)
{
	if (b->rate <= 0)
		return 0;
	if (now_us > b->last_us) {
		b->tokens += (double)(now_us - b->last_us) * b->rate / 1e6;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last_us = now_us;
	}
	return b->tokens > 0 ? 0 : (uint64_t)(-b->tokens * 1e6 / b->rate) + 1;
}

void bucket_charge(struct token_bucket *b, double n)
{
	if (b->rate > 0)
		b->tokens -= n;
}
