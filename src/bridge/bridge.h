/* Bridges: outbound MQTT client connections to remote brokers (edge to
 * cloud), each with a durable spool of the messages it sends. They run on
 * worker 0's loop; publishing workers append to the spools. */
#ifndef FM_BRIDGE_H
#define FM_BRIDGE_H
#include "../broker/broker.h"
#include <uv.h>

struct bridges;

/* Why a bridge did not forward a message. */
enum bridge_drop {
	BRIDGE_DROP_SPOOL_FULL,     /* bridge_max_spool_bytes: the oldest (drop_oldest) or the new one (reject_new) */
	BRIDGE_DROP_REMOTE_REFUSED, /* the remote broker's PUBACK said no (0x87 and other final refusals) */
	BRIDGE_DROP_ECHO,           /* a v3 remote sent back what we sent it */
	BRIDGE_DROP_EXPIRED,        /* its v5 Message Expiry passed while it was spooled */
	BRIDGE_DROP__COUNT
};
extern const char *const bridge_drop_names[BRIDGE_DROP__COUNT];

/* What a bridge looks like now (any thread). */
struct bridge_status {
	const char *name;
	bool connected;
	char remote[160];        /* HOST:PORT connected to, or last tried */
	uint64_t spool_messages, spool_bytes;
	uint64_t oldest_age_s;   /* of the oldest spooled message; 0 when empty */
	int64_t drain_s;         /* estimated seconds to empty the spool; -1: unknown (not sending) */
	uint64_t sent, received, reduced;
	uint64_t dropped[BRIDGE_DROP__COUNT];
};

/* Creates the configured bridges and connects them to b for routing and
 * recovery (before store_recover). Returns NULL when none is configured or
 * out of memory (*err set, then). */
struct bridges *bridges_new(struct broker *b, int *err);
/* Starts connecting on worker 0's loop (its thread from then on). */
int bridges_start(struct bridges *br, uv_loop_t *loop);
/* On worker 0 when it stops: says goodbye to the remotes and closes every handle. */
void bridges_stop(struct bridges *br);
/* After the workers have stopped. */
void bridges_free(struct bridges *br);
unsigned bridges_count(const struct bridges *br);
void bridges_status(struct bridges *br, unsigned i, struct bridge_status *out);

#endif
