/* libFuzzer target for the record batch decoder: hostile bytes never make
 * it read outside them, and whatever it reads as a whole batch encodes back
 * to the very same bytes (the encoding has one form). */
#include "base/buf.h"
#include "store/record.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so ASan sees any read past the end. */
	uint8_t *copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	struct rec_reader rd;
	struct buf again = { 0 };
	if (rec_reader_init(&rd, copy, size) == 0 && rec_batch_start(&again) == 0) {
		struct record r;
		int rc;
		while ((rc = rec_next(&rd, &r)) == 1)
			if (rec_append(&again, &r))
				abort(); /* a record read back always encodes */
		if (rc == 0 && (again.len != size || memcmp(again.p, copy, size)))
			abort();
	}
	buf_free(&again);
	free(copy);
	return 0;
}
