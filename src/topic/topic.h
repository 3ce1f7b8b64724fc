/* Topic names, filters, the subscription index and the retained index.
 * Pure data structures: no locks, no I/O. The broker serialises writers and
 * lets readers share (see broker/route.c). Subscribers and retained messages
 * are opaque pointers owned by the caller.
 */
#ifndef FM_TOPIC_H
#define FM_TOPIC_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOPIC_MAX_LEN 65535

/* A PUBLISH topic name: 1..65535 bytes, no '+' or '#' [MQTT-3.3.2-2], no NUL.
 * UTF-8 validity is the codec's job. */
bool topic_name_valid(const char *p, size_t len);
/* A subscription filter: '#' only last and alone in its level, '+' alone in its
 * level [MQTT-4.7.1-2, 4.7.1-3]; 1..65535 bytes, no NUL. */
bool topic_filter_valid(const char *p, size_t len);
/* Does `filter` match `name`? Wildcards at the first level do not match a
 * name starting with '$' [MQTT-4.7.2-1]. Both must be valid. */
bool topic_match(const char *filter, size_t flen, const char *name, size_t nlen);
/* Number of levels ('/'-separated parts) in a topic. */
size_t topic_levels(const char *p, size_t len);

/* Splits "$share/GROUP/FILTER". Returns 1 and sets group/filter views for a
 * shared subscription, 0 for an ordinary filter, -1 when it starts with
 * "$share/" but is malformed (empty group, '+'/'#' in group, no filter)
 * [MQTT-4.8.2-1, 4.8.2-2]. */
int topic_share_split(const char *p, size_t len, const char **group, size_t *glen,
		      const char **filter, size_t *flen);

/* ---- subscription index ---- */

struct sub_index;

/* One subscription of one subscriber on one filter. */
struct sub_entry {
	void *subscriber;
	uint8_t options;  /* MQTT subscription options byte (QoS, NL, RAP, RH) */
	uint32_t sub_id;  /* v5 Subscription Identifier, 0 when none */
};

/* A $share group on one filter: messages go to one member at a time. */
struct sub_group {
	const char *name;
	struct sub_entry *members;
	uint32_t n_members;
	atomic_uint next; /* round-robin cursor, advanced by readers */
};

struct sub_index *sub_index_new(void);
/* Frees the index; subscribers are not touched. */
void sub_index_free(struct sub_index *idx);

/* Adds or replaces the subscription of e->subscriber on filter (in `group`
 * when group != NULL). Returns 1 when it replaced an existing one, 0 when new,
 * or -FM_ENOMEM. */
int sub_index_add(struct sub_index *idx, const char *filter, size_t flen,
		  const char *group, size_t glen, const struct sub_entry *e);
/* Removes it. Returns 0, or -FM_ENOENT when there was none. */
int sub_index_remove(struct sub_index *idx, const char *filter, size_t flen,
		     const char *group, size_t glen, const void *subscriber);

/* Calls `each` for every ordinary subscription matching topic `name` and
 * `each_group` for every $share group with a matching filter (the caller picks
 * the member). Callbacks must not modify the index. */
typedef void (*sub_each_fn)(void *ctx, const struct sub_entry *e);
typedef void (*sub_group_fn)(void *ctx, struct sub_group *g);
void sub_index_match(const struct sub_index *idx, const char *name, size_t nlen,
		     sub_each_fn each, sub_group_fn each_group, void *ctx);

/* Number of subscriptions (shared members included). */
size_t sub_index_count(const struct sub_index *idx);

/* ---- retained index ---- */

struct retain_index;

struct retain_index *retain_index_new(void);
/* Frees the index; calls drop(msg) for every message still held. */
void retain_index_free(struct retain_index *idx, void (*drop)(void *msg));
/* Sets the message of `name` (msg != NULL) or clears it (msg == NULL).
 * Returns the message it replaced (the caller releases it), or NULL.
 * *err is set to -FM_ENOMEM on allocation failure, else 0. */
void *retain_index_set(struct retain_index *idx, const char *name, size_t nlen, void *msg,
		       int *err);
/* Calls each(ctx, msg) for every retained message whose topic matches
 * `filter` (with the '$' rule of topic_match). */
void retain_index_match(const struct retain_index *idx, const char *filter, size_t flen,
			void (*each)(void *ctx, void *msg), void *ctx);
size_t retain_index_count(const struct retain_index *idx);
/* Calls each(ctx, msg) for every retained message, '$' topics included. */
void retain_index_each(const struct retain_index *idx, void (*each)(void *ctx, void *msg), void *ctx);

#endif
