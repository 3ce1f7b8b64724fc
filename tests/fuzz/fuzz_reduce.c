/* libFuzzer target for the bridge's deadband number reader: the input is
 * "FIELD\nPAYLOAD". reduce_number must not read outside the payload and must
 * return only finite numbers; a plain-number payload must read the same
 * with the field empty as a JSON object {"f": NUMBER} read by field "f".
 */
#include "bridge/reduce.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t flen = nl ? (size_t)(nl - data) : 0;
	char field[64];
	if (flen >= sizeof field)
		return 0;
	memcpy(field, data, flen);
	field[flen] = 0;
	const uint8_t *p = nl ? nl + 1 : data;
	size_t len = size - (size_t)(p - data);
	/* An exact-size copy, so ASan sees any read past the payload. */
	uint8_t *copy = malloc(len ? len : 1);
	memcpy(copy, p, len);
	double v;
	if (reduce_number(copy, len, field, &v) && !isfinite(v))
		abort();
	double plain, wrapped;
	if (len < 200 && reduce_number(copy, len, NULL, &plain)) {
		char obj[256];
		int n = snprintf(obj, sizeof obj, "{\"f\":%.*s}", (int)len, (const char *)copy);
		if (!reduce_number((const uint8_t *)obj, (size_t)n, "f", &wrapped) || wrapped != plain)
			abort();
	}
	free(copy);
	return 0;
}
