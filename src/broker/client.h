/* Client helpers (client.c): the peer address and protocol as text, the
 * fields of a log line, the Reason String, closing with a reason; the alias table. */
#ifndef FM_BROKER_CLIENT_H
#define FM_BROKER_CLIENT_H
#include "types.h"
#include "../base/log.h"
#include <stdlib.h>

/* The peer address as text ("1.2.3.4:5678", "[::1]:5678") in out[48]. */
const char *client_addr_text(const struct client *c, char out[48]);
#define CLIENT_ADDR(c) client_addr_text((c), (char[48]){ 0 })
/* "mqttv5", "mqttv311" or "mqttv31". */
const char *client_protocol_name(uint8_t version);
/* The fields of c's connect and disconnect log lines, with reason code rc
 * (-1: none); addr is where the address text goes. Returns who. */
const struct log_client *broker__client_who(const struct client *c, int rc, struct log_client *who, char addr[48]);
#define WHO(c, rc) broker__client_who((c), (rc), &(struct log_client){ 0 }, (char[48]){ 0 })
/* The client id of c's session, or "(not connected)". */
const char *broker__client_name(const struct client *c);
#define OR_DASH(s) ((s) ? (s) : "-")

/* Sends a v5 DISCONNECT (v3: nothing) and closes. Logs the reason. */
void broker__client_disconnect(struct client *c, uint8_t rc, const char *why);
/* Reason string property, only when the client did not opt out. */
void broker__client_reason_string(const struct client *c, struct mqtt_props *pr, const char *why);

/* The client's alias table, allocated at first use; NULL when out of memory. */
static inline char **broker__client_aliases(struct client *c)
{
	if (!c->aliases)
		c->aliases = calloc((size_t)c->alias_max_in + 1 + CLIENT_MAX_OUT_ALIASES, sizeof *c->aliases);
	return c->aliases;
}

#endif
