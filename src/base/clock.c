#define _POSIX_C_SOURCE 200809L
#include "clock.h"
#include <time.h>

static uint64_t ts_us(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t clock_mono_us(void) { return ts_us(CLOCK_MONOTONIC); }
uint64_t clock_mono_ms(void) { return ts_us(CLOCK_MONOTONIC) / 1000u; }
uint64_t clock_wall_ms(void) { return ts_us(CLOCK_REALTIME) / 1000u; }

uint32_t clock_wall_s_coarse(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (uint32_t)ts.tv_sec;
}
