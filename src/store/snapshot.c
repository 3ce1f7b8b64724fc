/* The snapshot's layout (snapshot.h): pure. */
#include "snapshot.h"
#include "le.h"
#include "../base/err.h"
#include <string.h>

static const uint8_t magic[4] = { 'F', 'M', 'S', 'N' };
static const uint8_t sqlite_magic[16] = "SQLite format 3";
#define SNAP_VERSION 1u
#define TRAILER_HEAD 12

void store__snap_head(uint8_t head[STORE_SNAP_HEAD], uint64_t image_index, uint64_t image_len)
{
	memcpy(head, magic, 4);
	put_le(head + 4, SNAP_VERSION, 4);
	put_le(head + 8, image_index, 8);
	put_le(head + 16, image_len, 8);
}

int store__snap_trailer_add(struct buf *trailer, uint64_t index, const void *bytes, size_t len)
{
	uint8_t head[TRAILER_HEAD];
	if (len > UINT32_MAX)
		return -FM_EINVAL;
	put_le(head, index, 8);
	put_le(head + 8, len, 4);
	return buf_append(trailer, head, sizeof head) || buf_append(trailer, bytes, len) ? -FM_ENOMEM : 0;
}

int store__snap_decode(const uint8_t *p, size_t len, struct store_snap_view *v)
{
	memset(v, 0, sizeof *v);
	if (len >= sizeof sqlite_magic && memcmp(p, sqlite_magic, sizeof sqlite_magic) == 0) {
		v->image = p;
		v->image_len = len;
		return 0;
	}
	if (len < STORE_SNAP_HEAD || memcmp(p, magic, 4) != 0 || get_le(p + 4, 4) != SNAP_VERSION)
		return -FM_EINVAL;
	uint64_t image_len = get_le(p + 16, 8);
	if (image_len > len - STORE_SNAP_HEAD)
		return -FM_EINVAL;
	v->image_index = get_le(p + 8, 8);
	v->image = p + STORE_SNAP_HEAD;
	v->image_len = (size_t)image_len;
	v->trailer = v->image + image_len;
	v->trailer_len = len - STORE_SNAP_HEAD - (size_t)image_len;
	return 0;
}

int store__snap_trailer_next(const uint8_t **p, size_t *left, uint64_t *last, uint64_t *index,
			     const uint8_t **bytes, size_t *len)
{
	if (!*left)
		return 0;
	if (*left < TRAILER_HEAD)
		return -FM_EINVAL;
	uint64_t at = get_le(*p, 8);
	uint64_t n = get_le(*p + 8, 4);
	if (at <= *last || n > *left - TRAILER_HEAD)
		return -FM_EINVAL;
	*index = at;
	*bytes = *p + TRAILER_HEAD;
	*len = (size_t)n;
	*p += TRAILER_HEAD + n;
	*left -= TRAILER_HEAD + n;
	*last = at;
	return 1;
}
