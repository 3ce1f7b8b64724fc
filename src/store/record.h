/* Durable changes as values: the record batch.
 *
 * Every change the store makes is a record that holds its keys, names and
 * message bodies by value (no pointers), so that a batch of them is one byte
 * buffer that any node can apply and get the same state (the local log now,
 * a replicated one next). Pure: no I/O, no globals.
 *
 * A batch (version 1, all integers little-endian):
 *   "FMRB" u8 version u8 0 u16 0 u32 count, then `count` records, each
 *   u8 type u32 length, then `length` bytes of the type's fields in order
 *   (record.c lists them). Byte strings are u32 length + bytes.
 * A message body travels once per batch (REC_BODY), before the first record
 * that refers to it by id.
 */
#ifndef FM_STORE_RECORD_H
#define FM_STORE_RECORD_H
#include "../base/buf.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REC_BATCH_VERSION 1
#define REC_BATCH_HEADER 12

enum rec_type {
	REC_BODY = 1,    /* id, qos, retain, expiry_at, origin, topic, props, payload */
	REC_QUEUE_ADD,   /* sid, seq, id (body), qos, flags, state, queued_s, sub_ids */
	REC_QUEUE_DEL,   /* sid, seq */
	REC_QUEUE_STATE, /* sid, seq, state */
	REC_RX2_ADD,     /* sid, pid */
	REC_RX2_DEL,     /* sid, pid */
	REC_SESSION_PUT, /* sid, text = client id, expiry_interval, expires_at, version, id = will body
			    (0: none), will_delay, will_at, user (has_user) */
	REC_SESSION_DEL, /* sid */
	REC_SUB_PUT,     /* sid, text = filter, flags = options, sub_id */
	REC_SUB_DEL,     /* sid, text = filter */
	REC_RETAIN_PUT,  /* seq = version, id (body), text = topic */
	REC_RETAIN_DEL,  /* seq = version, text = topic */
	REC_SPOOL_ADD,   /* text = bridge, seq, id (body), queued_s */
	REC_SPOOL_DEL,   /* text = bridge, seq */
	REC_BODY_DROP,   /* id: a stored body no row holds (a repair at recovery) */
	REC__END
};

/* A view of bytes inside a batch (or, when encoding, the caller's). */
struct rec_bytes {
	const uint8_t *p;
	uint32_t len;
};

/* One record; which fields count depends on the type (see enum rec_type). */
struct record {
	uint8_t type;
	uint8_t qos, retain, flags, state, version;
	bool has_user;
	uint16_t pid;
	uint32_t queued_s, expiry_interval, will_delay, sub_id;
	uint64_t sid, seq, id;
	uint64_t expires_at, will_at, expiry_at, origin;
	struct rec_bytes text, user;
	struct rec_bytes topic, props, payload; /* REC_BODY */
	struct rec_bytes sub_ids;               /* REC_QUEUE_ADD: n x u32, little-endian */
};

/* Starts an empty batch in b (which it empties first). 0 or -FM_ENOMEM. */
int rec_batch_start(struct buf *b);
/* Appends r to the batch in b. 0, -FM_ENOMEM, or -FM_EINVAL for a type it
 * does not know or a field too large for the encoding. */
int rec_append(struct buf *b, const struct record *r);
/* Records in the batch (from its header). */
uint32_t rec_batch_count(const struct buf *b);

/* Reads a batch; the records it returns point into the batch's bytes. */
struct rec_reader {
	const uint8_t *p, *end;
	uint32_t left; /* records not read yet */
};

/* Checks the header. 0, or -FM_EPROTO for bytes that are not a batch of a
 * version this code reads. */
int rec_reader_init(struct rec_reader *rd, const uint8_t *p, size_t len);
/* The next record: 1 with *r filled, 0 at the end of a well-formed batch,
 * -FM_EPROTO for malformed bytes (never reads outside [p, p + len)). */
int rec_next(struct rec_reader *rd, struct record *r);

/* Steps over the next record reading only its type and its first two
 * fields where they are 8-byte integers (else 0): a queue entry's sid and
 * seq, a body's id. 1, or 0 at the end or at bytes that are not a record
 * (rec_next tells which). Never reads outside the batch. */
int rec_peek(struct rec_reader *rd, uint8_t *type, uint64_t *first, uint64_t *second);

#endif
