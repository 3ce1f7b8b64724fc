/* Delivery (deliver.c): with s->lock held and s->client on this worker. */
#ifndef FM_BROKER_DELIVER_H
#define FM_BROKER_DELIVER_H
#include "types.h"

/* Sends s's client what its window allows: in-flight messages first, then the queue. */
/* Sends s's client what its window allows: in-flight messages first, then the queue. */
void broker__deliver_pump(struct session *s);
/* The in-flight window: where it starts, and the least it shrinks to. */
#define SEND_WINDOW_START 32
#define SEND_WINDOW_MIN 16
/* A PUBACK or PUBREC from s's client (s->lock held): the window may widen. */
void broker__deliver_window_on_ack(struct session *s);
void broker__deliver_resend_inflight(struct session *s);

#endif
