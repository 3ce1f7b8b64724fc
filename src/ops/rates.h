/* Rates of a counter: per second over the last sample, and 1/5/15-minute
 * exponentially weighted averages (the load averages of mosquitto's $SYS).
 * Pure. */
#ifndef FM_OPS_RATES_H
#define FM_OPS_RATES_H
#include <stdbool.h>
#include <stdint.h>

enum { RATE_1M, RATE_5M, RATE_15M, RATE__WINDOWS };

struct rate {
	uint64_t last_total;
	bool primed;       /* last_total holds a sample */
	double now;        /* per second over the last interval */
	double ewma[RATE__WINDOWS];
};

/* Feeds the counter's total after dt_s seconds (> 0). A total below the
 * last one (a reset) counts as no traffic. */
void rate_update(struct rate *r, uint64_t total, double dt_s);
/* The average after one more sample `now` over dt_s, with the window's
 * time constant window_s: prev + (1 - e^(-dt/window)) * (now - prev). */
double ewma_step(double prev, double now, double dt_s, double window_s);

#endif
