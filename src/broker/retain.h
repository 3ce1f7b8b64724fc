/* The retained message of a topic (retain.c). */
#ifndef FM_BROKER_RETAIN_H
#define FM_BROKER_RETAIN_H
#include "types.h"

/* Sets (or, with an empty payload, clears) the retained message of m's topic,
 * in memory and in the store [MQTT-3.3.1-5..7]. */
void broker__retain_set(struct bworker *w, struct msg *m);

#endif
