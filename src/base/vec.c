#include "vec.h"
#include "err.h"
#include <stdlib.h>
#include <string.h>

int vec_grow(void *arr, uint32_t *cap, uint32_t n, size_t elem, uint32_t first)
{
	if (n < *cap)
		return 0;
	uint32_t want = *cap ? *cap * 2 : first;
	if (want <= n || (size_t)want > SIZE_MAX / elem)
		return -FM_ENOMEM;
	void *old;
	memcpy(&old, arr, sizeof old);
	void *p = realloc(old, (size_t)want * elem);
	if (!p)
		return -FM_ENOMEM;
	memcpy(arr, &p, sizeof p);
	*cap = want;
	return 0;
}
