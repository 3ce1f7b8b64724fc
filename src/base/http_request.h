/* The one HTTP/1.1 request parser, for the HTTP listener (src/http) and the
 * WebSocket Upgrade (src/ws): pure and bounded; request line, headers, a
 * body by Content-Length, keep-alive. No socket, no allocation: the request
 * points into the caller's bytes. */
#ifndef FM_BASE_HTTP_REQUEST_H
#define FM_BASE_HTTP_REQUEST_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_TARGET 4096   /* request line; longer: 414 */
#define HTTP_MAX_HEAD 16384    /* request line and headers; more: 431 */
#define HTTP_MAX_HEADERS 48    /* more: 431 */
#define HTTP_MAX_BODY 65536    /* more: 413 */

struct http_header {
	const char *name, *value;
	size_t name_len, value_len;
};

struct http_request {
	const char *method, *target;
	size_t method_len, target_len;
	uint8_t minor; /* HTTP/1.minor */
	struct http_header headers[HTTP_MAX_HEADERS];
	unsigned n_headers;
	const uint8_t *body;
	size_t body_len;
	bool keep_alive;
	/* When http_parse needs more: the whole request's length once its head
	 * is complete (the body is still coming), else 0. Lets a caller skip
	 * parsing again until that much has arrived. */
	size_t need;
};

/* Parses the request at the start of p[0..len). Returns the bytes it takes
 * (head and body) when complete, 0 when more bytes are needed, or the
 * negated HTTP status to answer before closing: -400 (malformed), -413
 * (body too large), -414 (request line too long), -431 (headers too large
 * or too many), -501 (a Transfer-Encoding). */
long http_parse(const uint8_t *p, size_t len, struct http_request *r);
/* The value of header `name` (case-insensitive), or NULL. */
const struct http_header *http_header_find(const struct http_request *r, const char *name);
/* Whether the comma-separated list in h's value holds token
 * (case-insensitive; blanks around the items ignored). */
bool http_header_has_token(const struct http_header *h, const char *token);
/* Decodes %XX escapes of in[0..len) into out[cap]. Returns the decoded
 * length, or -1 for a malformed escape, a NUL, or no room. */
long http_pct_decode(const char *in, size_t len, char *out, size_t cap);
/* Finds `name` in a query string (a=1&b=2) and decodes its value into
 * out[cap], NUL-terminated. Returns the length, or -1 when absent or bad. */
long http_query_get(const char *q, size_t qlen, const char *name, char *out, size_t cap);

#endif
