/* libFuzzer target for the journal's entry parser: hostile bytes (a torn or
 * damaged journal) never make it read outside them, and an entry it accepts
 * has a head that encodes back to the same bytes. */
#include "store/journal.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so ASan sees any read past the end. */
	uint8_t *copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	size_t off = 0;
	uint64_t index;
	const uint8_t *body;
	uint32_t len;
	size_t used;
	while (journal_entry_parse(copy + off, size - off, &index, &body, &len, &used)) {
		uint8_t head[JOURNAL_ENTRY_HEAD];
		journal_entry_head(head, index, body, len);
		if (used != JOURNAL_ENTRY_HEAD + (size_t)len || memcmp(head, copy + off, sizeof head))
			abort();
		off += used;
	}
	free(copy);
	return 0;
}
