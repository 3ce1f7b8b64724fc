/* libFuzzer target for tag_plan (collect/tag.c): the input is a list of
 * tags, 4 bytes each (area and type, address), after a byte of max_gap.
 * Every tag must fall in exactly one request of its own area, wholly; no
 * request may pass 125 registers or 2,000 bits, start past its first tag,
 * or overlap the next of its area; there are at most as many requests as
 * tags. Aborts otherwise. */
#include "collect/tag.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x) do { if (!(x)) abort(); } while (0)
#define MAX_TAGS 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct modbus_tag_conf tags[MAX_TAGS];
	static uint32_t idx[MAX_TAGS], seen[MAX_TAGS];
	static struct tag_request req[MAX_TAGS];
	if (size < 1)
		return 0;
	uint32_t max_gap = data[0] % 121, n = 0;
	for (size_t i = 1; i + 4 <= size && n < MAX_TAGS; i += 4, n++) {
		struct modbus_tag_conf *t = &tags[n];
		memset(t, 0, sizeof *t);
		t->area = data[i] & 3;
		t->type = tag_area_bits(t->area) ? MODBUS_BOOL : (uint8_t)(1 + (data[i] >> 2) % MODBUS_STRING);
		t->count = (uint8_t)(1 + data[i + 1] % 125);
		t->address = (uint16_t)(data[i + 2] << 8 | data[i + 3]);
		if (t->address + tag_width(t) > 65536)
			t->address = (uint16_t)(65536 - tag_width(t));
		idx[n] = n;
	}
	uint32_t nreq = tag_plan(tags, idx, n, max_gap, req);
	CHECK(nreq <= n);
	memset(seen, 0, sizeof seen);
	for (uint32_t r = 0; r < nreq; r++) {
		const struct tag_request *q = &req[r];
		uint32_t limit = tag_area_bits(q->area) ? TAG_MAX_READ_BITS : TAG_MAX_READ_REGISTERS;
		CHECK(q->count >= 1 && q->count <= limit && q->n >= 1 && q->first + q->n <= n);
		CHECK((uint32_t)q->start + q->count <= 65536);
		for (uint32_t k = q->first; k < q->first + q->n; k++) {
			const struct modbus_tag_conf *t = &tags[idx[k]];
			CHECK(t->area == q->area && t->address >= q->start &&
			      t->address + tag_width(t) <= (uint32_t)q->start + q->count);
			seen[idx[k]]++;
		}
		CHECK(tags[idx[q->first]].address == q->start);
		if (r + 1 < nreq && req[r + 1].area == q->area)
			CHECK((uint32_t)q->start + q->count <= req[r + 1].start || req[r + 1].start >= q->start);
	}
	for (uint32_t i = 0; i < n; i++)
		CHECK(seen[i] == 1);
	return 0;
}
