/* Helpers shared inside src/auth (and its unit test). */
#ifndef FM_AUTH_INTERNAL_H
#define FM_AUTH_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

/* Standard base64 (RFC 4648 §4) with padding. out needs
 * AUTH__B64_LEN(n) + 1 bytes; it is NUL-terminated. Returns the length. */
#define AUTH__B64_LEN(n) (((n) + 2) / 3 * 4)
size_t auth__b64_encode(const uint8_t *in, size_t n, char *out);
/* Decodes standard base64; the '=' padding may be left out, nothing else is
 * tolerated (no whitespace, no URL alphabet). Returns the decoded length, or
 * -1 when the text is malformed or would not fit in cap bytes. */
int auth__b64_decode(const char *in, size_t n, uint8_t *out, size_t cap);

#endif
