/* max_publish_rate: two token buckets per client (PUBLISH packets and their
 * bytes), counted in thousandths so that a refill every millisecond stays an
 * integer. A client out of tokens is "held": the broker reads no more of its
 * packets and the network layer stops reading its socket until the buckets
 * refill, so TCP pushes back on the client and nothing piles up here. */
#include "rate.h"
#include "broker.h"
#include "client.h"
#include "../base/log.h"
#include <stdlib.h>

/* Allocated only when a rate is configured: idle clients stay small. */
struct client_rate {
	int64_t msgs, bytes;    /* tokens, in thousandths of a message / byte */
	uint64_t at_ms;         /* last refill, monotonic */
	uint64_t over_since_ms; /* over the rate since (buckets never full again); 0: not */
};

/* A bucket holds 100 ms of the rate, and at least two units, so that a held
 * client (let go at one unit) never finds a full bucket. */
static int64_t bucket_cap(uint64_t per_s)
{
	int64_t cap = (int64_t)per_s * 100;
	return cap < 2000 ? 2000 : cap;
}

void broker__rate_init(struct client *c, uint64_t now)
{
	const struct rate_conf *r = &c->b->cfg.max_publish_rate;
	if (!r->msgs && !r->bytes)
		return;
	/* Without memory for the buckets the client goes unlimited (logged). */
	if (!(c->rate = calloc(1, sizeof *c->rate))) {
		log_err("out of memory: a client is not rate limited");
		return;
	}
	c->rate->msgs = bucket_cap(r->msgs);
	c->rate->bytes = bucket_cap(r->bytes);
	c->rate->at_ms = now;
}

void broker__rate_free(struct client *c)
{
	free(c->rate);
	c->rate = NULL;
}

/* Adds the tokens earned since the last refill. A client whose configured
 * buckets are all full has not been over the rate lately. */
static void rate_refill(struct client *c, uint64_t now)
{
	const struct rate_conf *r = &c->b->cfg.max_publish_rate;
	uint64_t ms = now - c->rate->at_ms;
	if (ms > 10000)
		ms = 10000; /* the buckets are full long before; keeps the products small */
	c->rate->at_ms = now;
	bool full = true;
	if (r->msgs) {
		int64_t cap = bucket_cap(r->msgs);
		c->rate->msgs += (int64_t)(ms * r->msgs);
		if (c->rate->msgs >= cap)
			c->rate->msgs = cap;
		else
			full = false;
	}
	if (r->bytes) {
		int64_t cap = bucket_cap(r->bytes);
		c->rate->bytes += (int64_t)(ms * r->bytes);
		if (c->rate->bytes >= cap)
			c->rate->bytes = cap;
		else
			full = false;
	}
	if (full)
		c->rate->over_since_ms = 0;
}

/* Milliseconds until c may publish again; 0 when it may now. */
static long rate_wait_ms(const struct client *c)
{
	const struct rate_conf *r = &c->b->cfg.max_publish_rate;
	long wait = 0;
	if (r->msgs && c->rate->msgs < 1000)
		wait = (long)((1000 - c->rate->msgs + (int64_t)r->msgs - 1) / (int64_t)r->msgs);
	if (r->bytes && c->rate->bytes <= 0) {
		long wb = (long)(-c->rate->bytes / (int64_t)r->bytes) + 1;
		if (wb > wait)
			wait = wb;
	}
	return wait;
}

void broker__rate_charge(struct client *c, size_t packet_len, uint64_t now)
{
	const struct rate_conf *r = &c->b->cfg.max_publish_rate;
	if (!c->rate)
		return;
	rate_refill(c, now);
	if (r->msgs)
		c->rate->msgs -= 1000;
	if (r->bytes)
		c->rate->bytes -= (int64_t)packet_len * 1000;
	if (rate_wait_ms(c) > 0) {
		c->rate_held = true;
		if (!c->rate->over_since_ms)
			c->rate->over_since_ms = now;
	}
}

long broker_client_rate_wait(struct client *c, uint64_t now)
{
	if (!c->rate_held)
		return 0;
	if (c->state == CLIENT_CLOSING)
		return -1;
	rate_refill(c, now);
	long wait = rate_wait_ms(c);
	if (!wait) {
		c->rate_held = false;
		return 0;
	}
	uint32_t limit = c->b->cfg.publish_rate_timeout;
	if (limit && c->rate->over_since_ms && now - c->rate->over_since_ms >= (uint64_t)limit * 1000) {
		broker__client_disconnect(c, MQTT_RC_MESSAGE_RATE_TOO_HIGH,
					  "publishing faster than max_publish_rate for publish_rate_timeout");
		return -1;
	}
	return wait;
}
