/* Replies that go out after the commit of what they acknowledge.
 *
 * A reply that promises durability (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK,
 * UNSUBACK, CONNACK), or that must keep its place behind one (PINGRESP), goes
 * to the client once the records its action wrote are committed, and behind
 * every earlier reply of the same client [MQTT-4.6.0-2]. The reply travels by
 * value in the transaction's callback record (struct store_cb: client, kind,
 * packet id, reason code and string), so a PUBACK costs no allocation. Only
 * replies whose bytes cannot be written again from that (CONNACK, SUBACK,
 * UNSUBACK) carry them ready-made in a struct reply_body, and a QoS 2 message
 * held until its PUBREC state is committed rides in a struct reply_held.
 *
 * Every reply holds a reference to its connection until it has run; when
 * it runs it writes nothing to a connection that is no longer connected.
 */
#ifndef FM_BROKER_REPLY_H
#define FM_BROKER_REPLY_H
#include "types.h"

/* The encoded bytes of a CONNACK, SUBACK or UNSUBACK and what follows them. */
struct reply_body {
	struct buf bytes;
	/* Logged when the commit failed (the reply goes out all the same):
	 * "<what> not stored (<error>); <instead>". */
	const char *what, *instead;
	/* Runs after the bytes are queued, while the client is connected; or NULL. */
	void (*then)(struct client *c, struct reply_body *rb);
	/* Frees rb, its bytes included. */
	void (*release)(struct reply_body *rb);
};

/* A QoS 2 message subscribers see only once its PUBREC state is committed
 * (or that is withdrawn from their queues when that commit fails). */
struct reply_held {
	struct msg *msg; /* reference owned */
	uint32_t n;
	struct session *sessions[]; /* references owned: the sessions it was queued for */
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP or PINGRESP for pid with reason code rc
 * (why: a static v5 reason string for rc >= 0x80, or NULL), once what this
 * worker's current action recorded is committed; at once when it recorded
 * nothing durable, no earlier reply of c waits and force is false (force:
 * wait for the store all the same, behind everything submitted before).
 * When the commit fails: PUBACK/PUBREC answer v5 with 0x97 (-FM_ELIMIT) or
 * 0x80 and close a v3 client (which then resends); PUBREL and PUBCOMP are
 * not sent (the client resends what they answer). */
void broker__reply_ack(struct bworker *w, struct client *c, uint8_t kind, uint16_t pid, uint8_t rc, const char *why,
		       bool force);
/* A PUBREC like broker__reply_ack that first releases held (taken) to its
 * subscribers on commit, or withdraws it on failure. */
void broker__reply_held(struct bworker *w, struct client *c, uint16_t pid, uint8_t rc, const char *why,
			struct reply_held *held);
/* Takes w->held (the sessions broker__route_publish queued a held message for) and
 * the reference msg into a new struct reply_held; NULL when out of memory
 * (then nothing is taken). */
struct reply_held *broker__reply_held_new(struct bworker *w, struct msg *msg);
/* Withdraws msg (taken), held for the sessions in w->held, from their
 * queues: its PUBREC will not be sent. */
void broker__reply_held_withdraw(struct bworker *w, struct msg *msg);
/* Writes a PUBACK/PUBREC/PUBREL/PUBCOMP to c now, not behind earlier replies
 * (for answers that promise nothing durable, such as an unknown packet id). */
void broker__reply_now(struct client *c, uint8_t kind, uint16_t pid, uint8_t rc, const char *why);
/* CONNACK, SUBACK or UNSUBACK: rb (taken) once the action's records are
 * committed; kind MQTT_CONNACK also lets deliveries go to c after it. */
void broker__reply_body(struct bworker *w, struct client *c, uint8_t kind, struct reply_body *rb);
/* Runs a reply that waited for the store (err: 0 or the commit's negative
 * fm_err) and drops its connection reference. */
void broker__reply_done(const struct store_cb *r, int err);

#endif
