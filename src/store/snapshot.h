/* A cluster node's snapshot: an image of its database taken at applied
 * index Y off the raft loop, and the committed entries applied after Y
 * while the image was taken (the trailer), which together are the state at
 * the index the snapshot is handed to raft at. Laid out as
 *   "FMSN", u32 version (1), u64 Y, u64 image length, the image,
 *   then the trailer: (u64 index, u32 length, bytes) per entry, growing indexes
 * (little-endian). A snapshot of an older build is a bare image (it starts
 * with SQLite's own header) with no trailer. The codec is pure. */
#ifndef FM_STORE_SNAPSHOT_H
#define FM_STORE_SNAPSHOT_H
#include <stddef.h>
#include <stdint.h>

#include "../base/buf.h"

#define STORE_SNAP_HEAD 24

struct store_snap_view {
	uint64_t image_index; /* Y: the image's applied index (0: a bare image, unknown) */
	const uint8_t *image;
	size_t image_len;
	const uint8_t *trailer;
	size_t trailer_len;
};

void store__snap_head(uint8_t head[STORE_SNAP_HEAD], uint64_t image_index, uint64_t image_len);
/* Appends one entry to a trailer. 0 or -FM_ENOMEM. */
int store__snap_trailer_add(struct buf *trailer, uint64_t index, const void *bytes, size_t len);
/* Splits a snapshot. 0 or -FM_EINVAL. */
int store__snap_decode(const uint8_t *p, size_t len, struct store_snap_view *v);
/* The next trailer entry: 1 (set), 0 at the end, -FM_EINVAL when malformed
 * (cut short, or an index not above the last one and Y). */
int store__snap_trailer_next(const uint8_t **p, size_t *left, uint64_t *last, uint64_t *index,
			     const uint8_t **bytes, size_t *len);

#endif
