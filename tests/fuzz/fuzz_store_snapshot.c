/* libFuzzer target for a cluster snapshot's layout (src/store/snapshot.c),
 * which arrives from a peer. Invariants (abort when broken): what decodes
 * lies inside the input; trailer entries lie inside the trailer, with
 * indexes above the image's and growing; re-encoding the decoded parts
 * gives the input back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_snap_view v;
	if (store__snap_decode(data, size, &v) != 0)
		return 0;
	if (v.image < data || v.image + v.image_len > data + size)
		abort();
	if (!v.image_index)
		return 0; /* a bare image */
	const uint8_t *p = v.trailer, *bytes;
	size_t left = v.trailer_len, n;
	uint64_t last = v.image_index, index, prev = v.image_index;
	struct buf again = { 0 };
	int rc;
	while ((rc = store__snap_trailer_next(&p, &left, &last, &index, &bytes, &n)) > 0) {
		if (bytes < v.trailer || bytes + n > v.trailer + v.trailer_len || index <= prev)
			abort();
		prev = index;
		if (store__snap_trailer_add(&again, index, bytes, n))
			abort();
	}
	if (rc == 0) {
		uint8_t head[STORE_SNAP_HEAD];
		store__snap_head(head, v.image_index, v.image_len);
		if (memcmp(head, data, STORE_SNAP_HEAD) != 0 || again.len != v.trailer_len ||
		    (again.len && memcmp(again.p, v.trailer, again.len) != 0))
			abort();
	}
	buf_free(&again);
	return 0;
}
