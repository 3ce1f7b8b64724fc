/* A bounded table of per-topic state, keyed by (topic line, local topic):
 * what the data reduction and the aggregation of one bridge keep per topic.
 * A topic space without bound (an id or a time in the topic) must not grow
 * the edge's memory: past `max` entries, one its owner says may go is
 * forgotten to make room. Pure; not thread-safe (one bridge's worker). */
#ifndef FM_BRIDGE_TOPIC_TABLE_H
#define FM_BRIDGE_TOPIC_TABLE_H
#include "../base/hmap.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The first member of every entry. */
struct topic_entry {
	const char *topic; /* in the entry's own allocation, after it; not NUL-terminated */
	uint16_t line;     /* index of the topic line */
	uint16_t topic_len;
};

struct topic_table {
	struct hmap map;  /* of struct topic_entry; map.count entries */
	uint32_t max;
	uint32_t hand;    /* the next slot to forget from */
	uint64_t forgotten;
	uint64_t seed;    /* of the hash, set by the first add */
};

/* May this entry be forgotten to make room? */
typedef bool (*topic_forgettable_fn)(const struct topic_entry *e);

/* The entry of (line, topic), or NULL. */
struct topic_entry *topic_table_find(const struct topic_table *t, unsigned line, const char *topic, size_t len);
/* Adds the entry of (line, topic), `size` bytes (the owner's struct, a
 * struct topic_entry first), zeroed but for its key. Past max it forgets an
 * entry `forgettable` allows first. NULL when out of memory, for a topic
 * longer than 65,535 bytes, or when no entry may go. */
struct topic_entry *topic_table_add(struct topic_table *t, size_t size, unsigned line, const char *topic, size_t len,
				    topic_forgettable_fn forgettable);
/* Iterates: *pos starts at 0; NULL at the end. Adding or forgetting ends a
 * walk. */
struct topic_entry *topic_table_next(const struct topic_table *t, size_t *pos);
/* Frees every entry (the owner released what they held). */
void topic_table_free(struct topic_table *t);

#endif
