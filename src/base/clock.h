/* Time sources. Monotonic for timeouts, wall clock for anything that must
 * survive a restart (message and session expiry). */
#ifndef FM_CLOCK_H
#define FM_CLOCK_H
#include <stdint.h>

uint64_t clock_mono_ms(void);
uint64_t clock_mono_us(void);
uint64_t clock_wall_ms(void);
/* Wall-clock seconds from the kernel's coarse clock (a few ms behind, no
 * hardware counter read): for per-message times kept in seconds. */
uint32_t clock_wall_s_coarse(void);

#endif
