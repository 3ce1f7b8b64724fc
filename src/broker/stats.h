/* Counters. Hot-path counters are per worker (no shared cache line); the
 * rest are broker-wide atomics. The metrics issue builds its table on these. */
#ifndef FM_STATS_H
#define FM_STATS_H
#include <stdatomic.h>
#include <stdint.h>

enum drop_reason { DROP_QUEUE_FULL, DROP_EXPIRED, DROP_TOO_LARGE, DROP_NOT_AUTHORIZED, DROP_QOS0_OFFLINE, DROP__COUNT };

struct stats_local {
	uint64_t msgs_received, msgs_sent;
	uint64_t bytes_received, bytes_sent;
	uint64_t drops[DROP__COUNT];
};

struct stats {
	atomic_long clients_connected;
	atomic_ulong clients_total;
	atomic_long sessions;
};

static inline const char *drop_reason_name(enum drop_reason r)
{
	static const char *const names[DROP__COUNT] = { "queue_full", "expired", "too_large",
							"not_authorized", "qos0_offline" };
	return names[r];
}

#endif
