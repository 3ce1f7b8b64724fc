/* The session registry (registry.c): client id -> session; the caller
 * holds b->reg_lock. */
#ifndef FM_BROKER_REGISTRY_H
#define FM_BROKER_REGISTRY_H
#include "types.h"

/* The session of client id (len bytes), or NULL. */
struct session *broker__registry_find(struct broker *b, const char *id, size_t len);
int broker__registry_insert(struct broker *b, struct session *s);
void broker__registry_remove(struct broker *b, struct session *s);
/* Walks the registry (lock held, unchanged during the walk): *pos starts
 * at 0; returns the next session or NULL at the end. */
struct session *broker__registry_next(const struct broker *b, size_t *pos);
/* Drops every session (shutdown). */
void broker__registry_free_all(struct broker *b);

#endif
