/* The HTTP/1.1 client side of ferromq-ctl: URL parsing and response parsing
 * (pure), and one request/response exchange over a TCP socket. Plain HTTP
 * only: the broker's API listens on loopback without TLS. */
#ifndef FM_CTL_HTTP_H
#define FM_CTL_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_MAX_HEADER (64u << 10)
#define HTTP_MAX_RESPONSE (64u << 20)

struct http_url {
	char host[256]; /* an IPv6 literal without its brackets */
	char port[6];
	char base[512]; /* path prefix without the trailing '/'; often empty */
	bool ipv6;      /* the host was written in brackets */
};

/* Parses "http://HOST[:PORT][/PATH]" (port 80 by default). Returns 0, or -1
 * with *why set to a static message. */
int http_url_parse(const char *url, struct http_url *u, const char **why);

/* Writes s percent-encoded as one path segment (only RFC 3986 unreserved
 * characters stay as they are) into out[0..cap), NUL-terminated. Returns
 * the encoded length; it did not fit when the result is >= cap. */
size_t http_escape_segment(const char *s, char *out, size_t cap);

struct http_response {
	int status;
	const char *body; /* points into the parsed buffer */
	size_t body_len;
};

/* Parses the response held in buf[0..len); eof says the server has closed
 * the connection. Returns 1 when the response is complete and fills r (a
 * chunked body is decoded in place, so buf changes), 0 when more bytes are
 * needed, -1 with *why set when it is not a valid HTTP/1.x response or
 * exceeds HTTP_MAX_HEADER / HTTP_MAX_RESPONSE. */
int http_response_parse(char *buf, size_t len, bool eof, struct http_response *r,
			const char **why);

/* What one exchange brought back. buf is owned by the caller after a
 * successful http_exchange and freed with free(). */
struct http_result {
	char *buf;
	struct http_response resp;
};

/* Sends one request (method, path under u->base, optional Authorization
 * header value and no body) and reads the whole response, within
 * timeout_ms for the exchange. Returns 0, or -1 with a message (such as
 * "Connection refused") in err[0..errcap). */
int http_exchange(const struct http_url *u, const char *method, const char *path,
		  const char *authorization, int timeout_ms, struct http_result *res, char *err,
		  size_t errcap);

/* The same with a JSON body (body: NUL-terminated, or NULL for none). */
int http_exchange_json(const struct http_url *u, const char *method, const char *path,
		       const char *authorization, const char *body, int timeout_ms,
		       struct http_result *res, char *err, size_t errcap);

#endif
