/* Aggregation (pure): the numbers of one topic (or one tag) over a window of
 * the wall clock, summarised as one JSON message per window: count, min,
 * max, mean, first, last, start, end. No locks, no messages, no clock: the
 * caller passes the time, and decides what a summary becomes.
 *
 * Windows are aligned to the epoch (a window of 60 s ends on the minute).
 * The statistics of the open window are in memory only: whoever holds them
 * loses at most that window when the process stops. */
#ifndef FM_BRIDGE_AGGREGATE_H
#define FM_BRIDGE_AGGREGATE_H
#include "topic_table.h"
#include "../config/config.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One window's statistics. */
struct agg_window {
	uint64_t start_ms;    /* a multiple of the window's length */
	uint32_t count;       /* numbers read */
	uint32_t non_numeric; /* messages without a number */
	double min, max, first, last; /* meaningful when count > 0 */
	double sum, carry;    /* compensated (Neumaier) sum of the numbers */
	double mean;          /* running mean: the fallback when sum overflows */
};

/* Enough for any summary agg_format writes (eight members, 24 bytes a number). */
#define AGG_SUMMARY_MAX 320
/* Windows without readings an AGG_EMPTY_COUNT roll reports at most at once
 * (after the process was stopped or starved); older ones are skipped. */
#define AGG_CATCH_UP 64

/* The start of the window of window_s seconds holding wall_ms. */
uint64_t agg_window_start(uint32_t window_s, uint64_t wall_ms);
/* Makes w the empty window of c holding now_ms. */
void agg_window_reset(const struct agg_conf *c, struct agg_window *w, uint64_t now_ms);
static inline bool agg_window_empty(const struct agg_window *w) { return !w->count && !w->non_numeric; }
/* The mean of w's numbers (count > 0): within [min, max], finite. */
double agg_mean(const struct agg_window *w);
/* Adds the number v (finite) to w. */
void agg_add(struct agg_window *w, double v);
/* Adds a message's payload to w: its number (the whole payload, or the
 * top-level JSON member `field` when field is not empty), else one more
 * non_numeric. Returns true when it held a number. */
bool agg_read(struct agg_window *w, const uint8_t *p, size_t len, const char *field);

/* A summary is due: ctx is the caller's, w the window that ended. */
typedef void (*agg_emit_fn)(void *ctx, const struct agg_window *w);
/* Closes the windows of w that ended by now_ms, oldest first: emit(ctx, w)
 * for each one that had a message, and for those without one when c->empty
 * is AGG_EMPTY_COUNT (at most AGG_CATCH_UP of them). Leaves w as the window
 * holding now_ms (unchanged when it still is). A clock stepping back leaves
 * w as it is: its messages stay in the open window. Returns the summaries
 * emitted. */
unsigned agg_roll(const struct agg_conf *c, struct agg_window *w, uint64_t now_ms, agg_emit_fn emit, void *ctx);
/* Writes the JSON summary of w to out with the members c->stats selects
 * (min, max, mean, first and last only when w holds a number), and
 * "non_numeric" when w had messages without one. Returns its length, or -1
 * when cap (with the NUL) is too small; AGG_SUMMARY_MAX always suffices. */
int agg_format(const struct agg_conf *c, const struct agg_window *w, char *out, size_t cap);

/* ---- the windows of one bridge, per (topic line, topic) ---- */

struct agg_entry {
	struct topic_entry key;
	const struct agg_conf *conf; /* of its line, in the configuration (outlives the table) */
	struct agg_window w;
};

/* At most `max` entries: a topic space without bound (an id or a time in
 * the topic) must not grow the edge's memory. Past max, an entry whose open
 * window is empty is forgotten to make room (with AGG_EMPTY_COUNT its topic
 * sends no more summaries of count 0 until it has a message again); when
 * every entry holds statistics there is no room, and the caller forwards
 * the message unaggregated: more traffic, never a loss. */
struct agg_table {
	struct topic_table t;
	uint64_t next_due_ms; /* no window of an entry ends before this; 0: no entry */
};

/* The entry of (line, topic), created with the window of c holding now_ms
 * when missing. NULL when out of memory or when the table is full of
 * entries holding statistics. */
struct agg_entry *agg_table_get(struct agg_table *t, const struct agg_conf *c, unsigned line, const char *topic,
				size_t len, uint64_t now_ms);
/* A summary of the table is due: e is its entry (topic, line, conf). */
typedef void (*agg_table_emit_fn)(void *ctx, const struct agg_entry *e, const struct agg_window *w);
/* Rolls every entry whose window ended by now_ms (agg_roll); nothing
 * when none has (now_ms < next_due_ms). Returns the summaries emitted. */
unsigned agg_table_roll(struct agg_table *t, uint64_t now_ms, agg_table_emit_fn emit, void *ctx);
/* Frees every entry (the open windows are lost). */
void agg_table_free(struct agg_table *t);

#endif
