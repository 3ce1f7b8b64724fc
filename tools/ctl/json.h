/* A small, bounded JSON reader (RFC 8259) for ferromq-ctl.
 *
 * json_parse() checks the whole text and records every value as a token in
 * a caller-supplied array, in document order: a container is followed by
 * its children (an object's by key, value, key, value, ...). Nothing is
 * copied and nothing is allocated; the tokens point into the text, which
 * must outlive them. Nesting is limited to JSON_MAX_DEPTH and the number of
 * values to the array's capacity, so hostile input costs bounded memory and
 * stack. Pure functions: no I/O, no globals.
 */
#ifndef FM_CTL_JSON_H
#define FM_CTL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64

enum json_type {
	JSON_NULL,
	JSON_FALSE,
	JSON_TRUE,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
};

struct json_token {
	enum json_type type;
	uint32_t start, len; /* the value's text; a string's without its quotes */
	uint32_t children;   /* array: elements; object: members */
	uint32_t next;       /* index of the first token after this value's subtree */
};

struct json_doc {
	const char *text;
	const struct json_token *tok;
	size_t n; /* tokens used; tok[0] is the top-level value */
};

struct json_error {
	size_t offset;    /* byte offset in the text where parsing stopped */
	const char *what; /* static English text */
};

/* Parses text[0..len) as exactly one JSON value (surrounding whitespace
 * allowed) into tok[0..cap). On success fills doc and returns 0; otherwise
 * returns -1 and fills err. */
int json_parse(const char *text, size_t len, struct json_token *tok, size_t cap,
	       struct json_doc *doc, struct json_error *err);

/* Index of the first child of token i (an array's first element, an
 * object's first key), or -1 when it has none. */
int json_first(const struct json_doc *d, int i);

/* Index of the sibling after child c of container parent (for an object, c
 * and the result are keys), or -1 after the last one. */
int json_after(const struct json_doc *d, int parent, int c);

/* Index of the value of the first member of object obj whose key is key
 * (compared after unescaping), or -1 when there is none or obj is not an
 * object. */
int json_get(const struct json_doc *d, int obj, const char *key);

/* Unescapes string token i into out[0..cap) and NUL-terminates it when cap
 * > 0, cutting at cap - 1 bytes (possibly inside a UTF-8 sequence). Returns
 * the full unescaped length, which may exceed cap - 1; the result may hold
 * NUL bytes (from \u0000). Returns 0 for a token that is not a string. */
size_t json_string(const struct json_doc *d, int i, char *out, size_t cap);

/* True when string token i unescapes to exactly s. */
bool json_string_is(const struct json_doc *d, int i, const char *s);

/* Number token i as a double; false when i is not a number. */
bool json_number(const struct json_doc *d, int i, double *out);

/* Number token i as an exact integer; false when i is not a number or not an
 * integer within the range of long long. */
bool json_integer(const struct json_doc *d, int i, long long *out);

#endif
