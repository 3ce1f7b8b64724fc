/* Growable arrays: the one way to make room for one more element. */
#ifndef FM_VEC_H
#define FM_VEC_H
#include <stddef.h>
#include <stdint.h>

/* Ensures (*arr) has room for element n, doubling *cap (or starting at
 * `first`). arr is the address of the array pointer. Returns 0 or
 * -FM_ENOMEM (the array is unchanged). */
int vec_grow(void *arr, uint32_t *cap, uint32_t n, size_t elem, uint32_t first);

#endif
