/* max_publish_rate (rate.c). */
#ifndef FM_BROKER_RATE_H
#define FM_BROKER_RATE_H
#include "types.h"

/* Fills the buckets of a new client; takes a PUBLISH of packet_len bytes out
 * of them, holding the client when they run out. */
void broker__rate_init(struct client *c, uint64_t now);
void broker__rate_free(struct client *c);
void broker__rate_charge(struct client *c, size_t packet_len, uint64_t now);

#endif
