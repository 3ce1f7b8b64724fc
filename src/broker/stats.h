/* Counters. Hot-path counters are per worker (no shared cache line) and
 * plain: only their worker writes them. Every tick the worker copies them to
 * relaxed atomics (plain loads and stores on the machines we run on) that the
 * metrics sampler reads from its own thread without a data race. The rest
 * are broker-wide atomics. src/ops builds the metric table on these. */
#ifndef FM_STATS_H
#define FM_STATS_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum drop_reason { DROP_QUEUE_FULL, DROP_EXPIRED, DROP_TOO_LARGE, DROP_NOT_AUTHORIZED, DROP_QOS0_OFFLINE, DROP__COUNT };

struct stats_local {
	uint64_t msgs_received, msgs_sent;
	uint64_t bytes_received, bytes_sent;
	uint64_t drops[DROP__COUNT];
};

/* The same counters, published by their worker for other threads. */
struct stats_published {
	atomic_uint_fast64_t msgs_received, msgs_sent;
	atomic_uint_fast64_t bytes_received, bytes_sent;
	atomic_uint_fast64_t drops[DROP__COUNT];
};

struct stats {
	atomic_long clients_connected;
	atomic_ulong clients_total;
	atomic_long clients_maximum; /* most connected at once since start */
	atomic_long sessions;
	atomic_bool store_failing;   /* in a store failure episode (disk full, I/O error); set by the store */
};

static inline const char *drop_reason_name(enum drop_reason r)
{
	static const char *const names[DROP__COUNT] = { "queue_full", "expired", "too_large",
							"not_authorized", "qos0_offline" };
	return names[r];
}

#endif
