/* The packet handlers: connect.c, publish.c (PUBLISH and the acknowledgements),
 * subscribe.c. Each returns what it left of the connection. */
#ifndef FM_BROKER_HANDLERS_H
#define FM_BROKER_HANDLERS_H
#include "types.h"

struct handled broker__handle_connect(struct client *c, const struct mqtt_connect *m);
struct handled broker__handle_publish(struct client *c, const struct mqtt_publish *m);
struct handled broker__handle_ack(struct client *c, uint8_t type, const struct mqtt_ack *a);
struct handled broker__handle_subscribe(struct client *c, const struct mqtt_subscribe *m);
struct handled broker__handle_unsubscribe(struct client *c, const struct mqtt_subscribe *m);

#endif
