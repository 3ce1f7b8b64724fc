/* Data reduction of one bridge topic line (pure): report by exception,
 * numeric deadband and a minimum interval, decided per local topic from the
 * last value forwarded on it. */
#ifndef FM_BRIDGE_REDUCE_H
#define FM_BRIDGE_REDUCE_H
#include "../config/config.h"
#include "topic_table.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What was last forwarded on one topic. */
struct reduce_state {
	uint64_t hash;      /* of the last forwarded payload (FNV-1a 64) */
	uint32_t len;
	bool seen;          /* something was forwarded */
	bool has_value;     /* `value` holds the last forwarded number */
	double value;
	uint64_t last_ms;   /* when it was forwarded (monotonic) */
};

/* The state of one (topic line, local topic), in the bridge's table of
 * them (topic_table.h). Past its bound, an entry that holds no value is
 * forgotten to make room, and its topic's next message is forwarded as new:
 * more traffic, never a loss. */
struct msg;
struct reduce_entry {
	struct topic_entry key;
	struct reduce_state st;
	struct msg *pending; /* min_interval: the latest value held back (the caller's reference), or NULL */
};

/* The entry of (line, topic), created when missing. NULL when out of memory,
 * or when the table is full of entries holding values. (Free the table
 * with topic_table_free once held values are released.) */
struct reduce_entry *reduce_table_get(struct topic_table *t, unsigned line, const char *topic, size_t len);

enum reduce_verdict {
	REDUCE_SEND, /* forward it now */
	REDUCE_DROP, /* same payload, or within the deadband */
	REDUCE_HOLD, /* changed, but min_interval has not passed: keep as the latest */
};

/* True when line t reduces anything. */
bool reduce_enabled(const struct bridge_topic *t);
/* Decides for a payload arriving at now_ms. Numbers that cannot be read
 * (not a number, no such JSON field) pass the deadband. */
enum reduce_verdict reduce_check(const struct bridge_topic *t, const struct reduce_state *st, const uint8_t *p,
				 size_t len, uint64_t now_ms);
/* Records that the payload was forwarded at now_ms. */
void reduce_sent(const struct bridge_topic *t, struct reduce_state *st, const uint8_t *p, size_t len,
		 uint64_t now_ms);
/* Reads the number of a payload: the whole payload (field NULL or empty)
 * or the top-level member `field` of a JSON object. Returns false when there
 * is none. */
bool reduce_number(const uint8_t *p, size_t len, const char *field, double *out);

#endif
