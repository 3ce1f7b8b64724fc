/* libFuzzer target for the fast checksum (src/cluster/crc.c). Invariants
 * (abort when broken): it equals libraft's byte-at-a-time original
 * (__real_byteCrc32, ld --wrap) over the input, and computed in two parts
 * cut where the first byte says, it equals the whole. */
#include <stdint.h>
#include <stdlib.h>

#include "cluster/crc.h"

unsigned __real_byteCrc32(const void *buf, size_t size, unsigned init);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t whole = cluster__crc32(data, size, 0);
	if (whole != __real_byteCrc32(data, size, 0))
		abort();
	size_t cut = size ? data[0] % (size + 1) : 0;
	if (cluster__crc32(data + cut, size - cut, cluster__crc32(data, cut, 0)) != whole)
		abort();
	return 0;
}
