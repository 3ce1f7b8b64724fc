/* What the compiler builds in: the one header with #if (STYLE rule 22). */
#ifndef FM_FEATURES_H
#define FM_FEATURES_H
#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define FM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FM_ASAN 1
#endif
#endif

/* Bytes the program has allocated and not freed. Under AddressSanitizer
 * malloc is its allocator, so glibc's counters would read zero. */
#ifdef FM_ASAN
#include <sanitizer/allocator_interface.h>
static inline size_t fm_heap_current(void) { return __sanitizer_get_current_allocated_bytes(); }
#else
#include <malloc.h>
static inline size_t fm_heap_current(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}
#endif

#endif
