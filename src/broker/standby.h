/* Standby (standby.c): CONNECT refused while a cluster follower. */
#ifndef FM_BROKER_STANDBY_H
#define FM_BROKER_STANDBY_H
#include "types.h"

/* While b->standby.on, refuses c's CONNECT (c->version set) and closes it. */
struct handled broker__standby_refuse(struct client *c);

#endif
