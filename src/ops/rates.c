#include "rates.h"
#include <math.h>

static const double window_s[RATE__WINDOWS] = { 60, 300, 900 };

double ewma_step(double prev, double now, double dt_s, double window)
{
	return prev + (1.0 - exp(-dt_s / window)) * (now - prev);
}

void rate_update(struct rate *r, uint64_t total, double dt_s)
{
	if (!r->primed || dt_s <= 0) {
		r->primed = true;
		r->last_total = total;
		return;
	}
	uint64_t delta = total >= r->last_total ? total - r->last_total : 0;
	r->last_total = total;
	r->now = (double)delta / dt_s;
	for (int i = 0; i < RATE__WINDOWS; i++)
		r->ewma[i] = ewma_step(r->ewma[i], r->now, dt_s, window_s[i]);
}
