/* libFuzzer target for the cluster's entry and snapshot headers
 * (src/cluster/frame.c). Invariants (abort when broken):
 *  - an entry that decodes has a payload inside the input, and encodes
 *    back to exactly the input bytes;
 *  - encoding the input as a payload decodes back to the same payload;
 *  - a snapshot header that decodes encodes back to its first 24 bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum cluster_entry_type type;
	const unsigned char *payload;
	size_t len;
	if (cluster__entry_decode(data, size, &type, &payload, &len) == 0) {
		if (payload < data || payload + len > data + size)
			abort();
		unsigned char *again = malloc(cluster__entry_size(len));
		if (!again)
			return 0;
		cluster__entry_encode(again, type, payload, (uint32_t)len);
		if (cluster__entry_size(len) != size || memcmp(again, data, size) != 0)
			abort();
		free(again);
	}
	if (size <= 1 << 16) {
		unsigned char *e = malloc(cluster__entry_size(size));
		if (!e)
			return 0;
		cluster__entry_encode(e, CLUSTER_ENTRY_USER, data, (uint32_t)size);
		if (cluster__entry_decode(e, cluster__entry_size(size), &type, &payload, &len) != 0 ||
		    type != CLUSTER_ENTRY_USER || len != size || (size && memcmp(payload, data, size) != 0))
			abort();
		free(e);
	}
	bool witness;
	uint64_t index;
	if (cluster__snap_header_decode(data, size, &witness, &index) == 0) {
		unsigned char h[CLUSTER_SNAP_HEADER];
		cluster__snap_header_encode(h, witness, index);
		if (memcmp(h, data, CLUSTER_SNAP_HEADER) != 0)
			abort();
	}
	return 0;
}
