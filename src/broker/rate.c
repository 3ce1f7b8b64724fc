/* max_publish_rate: two token buckets per client (PUBLISH packets and their
 * bytes), counted in thousandths so that a refill every millisecond stays an
 * integer. A client out of tokens is "held": the broker reads no more of its
 * packets and the network layer stops reading its socket until the buckets
 * refill, so TCP pushes back on the client and nothing piles up here. */
#include "internal.h"

/* A bucket holds 100 ms of the rate, and at least two units, so that a held
 * client (let go at one unit) never finds a full bucket. */
static int64_t bucket_cap(uint64_t per_s)
{
	int64_t cap = (int64_t)per_s * 100;
	return cap < 2000 ? 2000 : cap;
}

void rate_init(struct client *c, uint64_t now)
{
	const struct rate_conf *r = &c->b->cfg.max_publish_rate;
	c->rate_msgs = bucket_cap(r->msgs);
	c->rate_bytes = bucket_cap(r->bytes);
	c->rate_at_ms = now;
}

/* Adds the tokens earned since the last refill. A client whose configured
 * buckets are all full has not been over the rate lately. */
static void rate_refill(struct client *c, uint64_t now)
{
	const struct rate_conf *r = &c->b->cfg.max_publish_rate;
	uint64_t ms = now - c->rate_at_ms;
	if (ms > 10000)
		ms = 10000; /* the buckets are full long before; keeps the products small */
	c->rate_at_ms = now;
	bool full = true;
	if (r->msgs) {
		int64_t cap = bucket_cap(r->msgs);
		c->rate_msgs += (int64_t)(ms * r->msgs);
		if (c->rate_msgs >= cap)
			c->rate_msgs = cap;
		else
			full = false;
	}
	if (r->bytes) {
		int64_t cap = bucket_cap(r->bytes);
		c->rate_bytes += (int64_t)(ms * r->bytes);
		if (c->rate_bytes >= cap)
			c->rate_bytes = cap;
		else
			full = false;
	}
	if (full)
		c->rate_over_since_ms = 0;
}

/* Milliseconds until c may publish again; 0 when it may now. */
static long rate_wait_ms(const struct client *c)
{
	const struct rate_conf *r = &c->b->cfg.max_publish_rate;
	long wait = 0;
	if (r->msgs && c->rate_msgs < 1000)
		wait = (long)((1000 - c->rate_msgs + (int64_t)r->msgs - 1) / (int64_t)r->msgs);
	if (r->bytes && c->rate_bytes <= 0) {
		long wb = (long)(-c->rate_bytes / (int64_t)r->bytes) + 1;
		if (wb > wait)
			wait = wb;
	}
	return wait;
}

void rate_charge(struct client *c, size_t packet_len, uint64_t now)
{
	const struct rate_conf *r = &c->b->cfg.max_publish_rate;
	if (!r->msgs && !r->bytes)
		return;
	rate_refill(c, now);
	if (r->msgs)
		c->rate_msgs -= 1000;
	if (r->bytes)
		c->rate_bytes -= (int64_t)packet_len * 1000;
	if (rate_wait_ms(c) > 0) {
		c->rate_held = true;
		if (!c->rate_over_since_ms)
			c->rate_over_since_ms = now;
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
	if (limit && c->rate_over_since_ms && now - c->rate_over_since_ms >= (uint64_t)limit * 1000) {
		client_disconnect(c, MQTT_RC_MESSAGE_RATE_TOO_HIGH,
				  "publishing faster than max_publish_rate for publish_rate_timeout");
		return -1;
	}
	return wait;
}
