/* The HTTP API's bearer token file. */
#ifndef FM_OPS_TOKEN_H
#define FM_OPS_TOKEN_H
#include <stdbool.h>
#include <stddef.h>

#define TOKEN_MAX 256

/* Reads the token (first line, surrounding blanks dropped) from path into
 * out[TOKEN_MAX]. When the file does not exist and create is set, writes a
 * random 32-byte hex token to a new file with mode 0600 and sets *created.
 * Returns 0, or -1 with a message in err. */
int token_load(const char *path, bool create, char out[TOKEN_MAX], bool *created, char *err, size_t errlen);
/* Constant-time comparison of a with b (b NUL-terminated, non-empty). */
bool token_equal(const char *a, size_t alen, const char *b);

#endif
