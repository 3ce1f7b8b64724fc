/* Device collectors: the broker polls Modbus TCP devices itself. One thread
 * per device makes the blocking libmodbus calls with the device's own
 * timeout, so a slow or dead device delays nobody else; its readings go to
 * a network worker in one batch per poll and enter the broker through
 * broker_collect_publish (admission, ACL, routing, store), exactly like a
 * client's QoS 1 PUBLISH. Writes arrive as publishes to a tag's set topic
 * (collect_port.route) and are carried out by the device's thread. */
#ifndef FM_COLLECT_H
#define FM_COLLECT_H
#include "../broker/broker.h"
#include <stdint.h>

struct collector;

/* Creates the collectors of b->cfg's modbus_device sections and connects
 * them to b (broker_set_collect). Returns NULL with *err 0 when there is no
 * device, or NULL with *err -FM_ENOMEM. */
struct collector *collect_new(struct broker *b, int *err);
/* Starts one thread per device (after the store and the workers are up).
 * Returns 0 or -FM_EIO (the threads started are stopped again). */
int collect_start(struct collector *c);
/* Stops the threads: each publishes its device's status as offline and
 * waits (at most 2 s) for its batches to be committed. Call before the
 * workers stop. */
void collect_stop(struct collector *c);
/* Frees c (after collect_stop and after the workers have stopped). */
void collect_free(struct collector *c);

enum collect_state { COLLECT_CONNECTING, COLLECT_ONLINE, COLLECT_OFFLINE };
const char *collect_state_name(uint32_t state);

/* Upper bounds of the histograms' buckets, in milliseconds (the last one,
 * +Inf, is implied). */
#define COLLECT_HIST_BUCKETS 18
extern const double collect_hist_bounds_ms[COLLECT_HIST_BUCKETS];

struct collect_hist {
	uint64_t count;
	uint64_t sum_us;
	uint64_t buckets[COLLECT_HIST_BUCKETS + 1]; /* cumulative, last: +Inf */
};

/* One device as the operations layer shows it. */
struct collect_device_info {
	char name[64], host[128], prefix[128], last_error[160];
	uint16_t port;
	uint32_t unit_id, n_tags, n_requests; /* requests of one round of every poll group */
	uint32_t state;                       /* enum collect_state */
	uint64_t since_ms;                    /* wall ms the state began */
	uint64_t last_success_ms;             /* wall ms of the last answered request; 0: never */
	uint64_t polls, polls_failed, polls_late, requests, requests_failed, exceptions;
	uint64_t readings, readings_committed, readings_refused, readings_lost;
	uint64_t writes, writes_failed, connects, offline_episodes;
	uint64_t cpu_ns;                      /* CPU time of the device's thread */
	struct collect_hist request_latency; /* request sent to answer */
	struct collect_hist poll_jitter;     /* scheduled to actual start of a poll */
	struct collect_hist poll_commit;     /* start of a poll to the commit of its readings */
};

/* A copy of every device's state and counters; the caller frees *out.
 * Returns 0 or -FM_ENOMEM. Any thread; c may be NULL (no devices). */
int collect_list(struct collector *c, struct collect_device_info **out, uint32_t *n);

#endif
