/* cluster_body_parse (src/http/cluster_body.c) on any bytes: never reads
 * outside them, and what it accepts is what it says. */
#include "http/cluster_body.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cluster_body b;
	char err[200];
	/* A copy of exactly size bytes, so ASan sees any read past the end. */
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (cluster_body_parse(copy, size, &b, err, sizeof err) == 0) {
		if (b.has_address && strlen(b.address) >= sizeof b.address)
			abort();
		if (!b.has_id && b.id)
			abort();
	} else if (!err[0]) {
		abort(); /* a refusal always says why */
	}
	free(copy);
	return 0;
}
