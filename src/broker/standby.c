/* Standby: while the node is a cluster follower, its broker refuses every
 * CONNECT and points the client at the server that serves (v5 Server
 * Reference). The flag is read on every CONNECT without the lock; the
 * reference and the refusal count live under it. */
#include "standby.h"
#include "broker.h"
#include "client.h"
#include "../base/clock.h"
#include "../base/log.h"
#include <stdlib.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Refusals are logged at most this often, with how many there were. */
#define STANDBY_LOG_INTERVAL_MS 10000

static const char standby_why[] = "this node is a cluster follower";

void broker_set_standby(struct broker *b, const char *server_reference)
{
	struct broker_standby *st = &b->standby;
	char *ref = NULL;
	if (server_reference && strlen(server_reference) > UINT16_MAX) /* an MQTT string's limit (v5 §1.5.4) */
		log_warn("standby: a server reference of %zu bytes is too long for a CONNACK: refusing CONNECT "
			 "without one", strlen(server_reference));
	else if (server_reference && !(ref = strdup(server_reference)))
		log_warn("standby: out of memory for the server reference %s: refusing CONNECT without one",
			 server_reference);
	pthread_mutex_lock(&st->lock);
	bool was = atomic_load(&st->on);
	uint64_t unreported = st->refused;
	free(st->reference);
	st->reference = ref;
	if (!server_reference)
		st->refused = 0;
	atomic_store(&st->on, server_reference != NULL);
	pthread_mutex_unlock(&st->lock);
	if (server_reference && !was)
		log_notice("standby: refusing every CONNECT (server reference \"%s\")", server_reference);
	else if (!server_reference && was)
		log_notice("standby ended: serving clients (%" PRIu64 " CONNECT refused since the last report)",
			   unreported);
}

struct handled broker__standby_refuse(struct client *c)
{
	struct broker_standby *st = &c->b->standby;
	bool v5 = c->version == MQTT_V5;
	uint8_t rc = v5 ? MQTT_RC_USE_ANOTHER_SERVER : MQTT_V3_UNAVAILABLE;
	struct mqtt_connack ack = { .rc = rc };
	if (v5) {
		/* A CONNACK may carry a Reason String whatever Request Problem
		 * Information says [MQTT-3.1.2-29]. */
		ack.props.have |= MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
		ack.props.reason_string = (struct mqtt_bin){ (const uint8_t *)standby_why, sizeof standby_why - 1 };
	}
	uint64_t now = clock_mono_ms(), refused = 0;
	char ref[128];
	pthread_mutex_lock(&st->lock);
	/* The reference is encoded under the lock: it may be replaced meanwhile. */
	if (v5 && st->reference && st->reference[0]) {
		ack.props.have |= MQTT_PROP_BIT(MQTT_PROP_SERVER_REFERENCE);
		ack.props.server_reference =
			(struct mqtt_bin){ (const uint8_t *)st->reference, (uint32_t)strlen(st->reference) };
	}
	mqtt_encode_connack(c->b->ports.out(c), c->version, &ack);
	st->refused++;
	if (!st->logged || now - st->logged_ms >= STANDBY_LOG_INTERVAL_MS) {
		refused = st->refused;
		st->refused = 0;
		st->logged = true;
		st->logged_ms = now;
		snprintf(ref, sizeof ref, "%s", st->reference && st->reference[0] ? st->reference : "none");
	}
	pthread_mutex_unlock(&st->lock);
	if (refused)
		log_client(LVL_NOTICE, WHO(c, rc),
			   "standby: CONNECT from %s refused: %s (0x%02x, server reference %s); %" PRIu64
			   " refused since the last report",
			   CLIENT_ADDR(c), standby_why, rc, ref, refused);
	c->state = CLIENT_CLOSING;
	c->b->ports.close(c);
	return HANDLED_CLOSED;
}
