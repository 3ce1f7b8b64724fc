/* Growable byte buffer: the one container for encoded packets and partial reads. */
#ifndef FM_BUF_H
#define FM_BUF_H
#include <stddef.h>
#include <stdint.h>

/* 32-bit sizes: an MQTT packet is at most 256 MB, and idle connections keep
 * two of these. */
struct buf {
	uint8_t *p;
	uint32_t len;
	uint32_t cap;
};

/* Makes room for n more bytes; returns 0 or -FM_ENOMEM (the buffer is unchanged). */
int buf_reserve(struct buf *b, size_t n);
/* Appends n bytes; returns 0 or -FM_ENOMEM. */
int buf_append(struct buf *b, const void *src, size_t n);
/* Drops the first n bytes (a consumed prefix). */
void buf_consume(struct buf *b, size_t n);
/* Frees the storage; the struct is left empty and reusable. */
void buf_free(struct buf *b);

#endif
