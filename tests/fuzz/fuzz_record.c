/* libFuzzer target for the record batch decoder: hostile bytes never make
 * it read outside them, and whatever it reads as a whole batch encodes back
 * to the very same bytes (the encoding has one form); rec_peek agrees with
 * rec_next on every record both read. */
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
	/* rec_peek steps over the same records rec_next reads, with the same
	 * type and queue key, and never reads outside the bytes either. */
	struct rec_reader peek, full;
	if (rec_reader_init(&peek, copy, size) == 0 && rec_reader_init(&full, copy, size) == 0) {
		uint8_t type;
		uint64_t sid, seq;
		struct record r;
		while (rec_peek(&peek, &type, &sid, &seq)) {
			if (rec_next(&full, &r) != 1)
				break; /* malformed inside: only rec_next can tell */
			if (type != r.type || ((type == REC_QUEUE_ADD || type == REC_QUEUE_DEL ||
						type == REC_QUEUE_STATE) && (sid != r.sid || seq != r.seq)))
				abort();
		}
	}
	buf_free(&again);
	free(copy);
	return 0;
}
