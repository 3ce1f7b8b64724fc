/* RFC 9112 request syntax, strictly: CRLF line ends, no obsolete line
 * folding, one Content-Length, no Transfer-Encoding (we never need it). */
#include "http_request.h"
#include <string.h>
#include <strings.h>

static bool is_tchar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The end of the line starting at p (the index of its CR), or -1. */
static long line_end(const uint8_t *p, size_t from, size_t len)
{
	for (size_t i = from; i + 1 < len; i++) {
		if (p[i] == '\r')
			return p[i + 1] == '\n' ? (long)i : -2;
		if (p[i] == '\n')
			return -2; /* a bare LF */
	}
	return -1;
}

static int parse_request_line(const uint8_t *p, size_t end, struct http_request *r)
{
	size_t i = 0;
	while (i < end && is_tchar(p[i]))
		i++;
	if (i == 0 || i >= end || p[i] != ' ')
		return -400;
	r->method = (const char *)p;
	r->method_len = i;
	size_t t = ++i;
	while (i < end && p[i] > 0x20 && p[i] < 0x7f)
		i++;
	if (i == t || i >= end || p[i] != ' ')
		return -400;
	r->target = (const char *)p + t;
	r->target_len = i - t;
	i++;
	if (end - i != 8 || memcmp(p + i, "HTTP/1.", 7) || (p[i + 7] != '0' && p[i + 7] != '1'))
		return -400;
	r->minor = (uint8_t)(p[i + 7] - '0');
	return 0;
}

bool http_header_has_token(const struct http_header *h, const char *token)
{
	/* RFC 9110 5.6.1: items separated by commas, optional blanks (SP, HTAB). */
	size_t tl = strlen(token), i = 0;
	while (i < h->value_len) {
		while (i < h->value_len && (h->value[i] == ' ' || h->value[i] == '\t' || h->value[i] == ','))
			i++;
		size_t s = i;
		while (i < h->value_len && h->value[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (h->value[e - 1] == ' ' || h->value[e - 1] == '\t'))
			e--;
		if (e - s == tl && !strncasecmp(h->value + s, token, tl))
			return true;
	}
	return false;
}

static int parse_header(const uint8_t *p, size_t end, struct http_header *h)
{
	size_t i = 0;
	while (i < end && is_tchar(p[i]))
		i++;
	if (i == 0 || i >= end || p[i] != ':')
		return -400; /* also a folded line, which starts with a blank */
	h->name = (const char *)p;
	h->name_len = i;
	i++;
	while (i < end && (p[i] == ' ' || p[i] == '\t'))
		i++;
	size_t e = end;
	while (e > i && (p[e - 1] == ' ' || p[e - 1] == '\t'))
		e--;
	for (size_t k = i; k < e; k++)
		if ((p[k] < 0x20 && p[k] != '\t') || p[k] == 0x7f)
			return -400;
	h->value = (const char *)p + i;
	h->value_len = e - i;
	return 0;
}

static int content_length(const struct http_header *h, size_t *out)
{
	if (!h->value_len || h->value_len > 12)
		return h->value_len ? -413 : -400;
	size_t v = 0;
	for (size_t i = 0; i < h->value_len; i++) {
		if (h->value[i] < '0' || h->value[i] > '9')
			return -400;
		v = v * 10 + (size_t)(h->value[i] - '0');
	}
	*out = v;
	return 0;
}

long http_parse(const uint8_t *p, size_t len, struct http_request *r)
{
	memset(r, 0, sizeof *r);
	long end = line_end(p, 0, len);
	if (end == -2)
		return -400;
	if (end < 0)
		return len > HTTP_MAX_TARGET ? -414 : 0;
	if (end > HTTP_MAX_TARGET)
		return -414;
	int rc = parse_request_line(p, (size_t)end, r);
	if (rc)
		return rc;
	size_t at = (size_t)end + 2;
	bool have_len = false;
	size_t body_len = 0;
	for (;;) {
		end = line_end(p, at, len);
		if (end == -2)
			return -400;
		if (end < 0)
			return len > HTTP_MAX_HEAD ? -431 : 0;
		if ((size_t)end + 2 > HTTP_MAX_HEAD)
			return -431;
		if ((size_t)end == at)
			break; /* the empty line */
		if (r->n_headers == HTTP_MAX_HEADERS)
			return -431;
		struct http_header *h = &r->headers[r->n_headers++];
		if ((rc = parse_header(p + at, (size_t)end - at, h)))
			return rc;
		if (h->name_len == 14 && !strncasecmp(h->name, "Content-Length", 14)) {
			size_t v;
			if ((rc = content_length(h, &v)))
				return rc;
			if (have_len && v != body_len)
				return -400;
			have_len = true;
			body_len = v;
		} else if (h->name_len == 17 && !strncasecmp(h->name, "Transfer-Encoding", 17)) {
			return -501;
		}
		at = (size_t)end + 2;
	}
	size_t head = (size_t)end + 2;
	if (body_len > HTTP_MAX_BODY)
		return -413;
	if (len - head < body_len) {
		r->need = head + body_len;
		return 0;
	}
	r->body = p + head;
	r->body_len = body_len;
	const struct http_header *conn = http_header_find(r, "Connection");
	r->keep_alive = r->minor == 1 ? !(conn && http_header_has_token(conn, "close"))
				       : conn && http_header_has_token(conn, "keep-alive");
	return (long)(head + body_len);
}

const struct http_header *http_header_find(const struct http_request *r, const char *name)
{
	size_t n = strlen(name);
	for (unsigned i = 0; i < r->n_headers; i++)
		if (r->headers[i].name_len == n && !strncasecmp(r->headers[i].name, name, n))
			return &r->headers[i];
	return NULL;
}

static int hex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

long http_pct_decode(const char *in, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	if (!cap)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '%') {
			if (i + 2 >= len)
				return -1;
			int h = hex(in[i + 1]), l = hex(in[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = (char)(h * 16 + l);
			i += 2;
		}
		if (c == 0 || o + 1 >= cap)
			return -1;
		out[o++] = c;
	}
	out[o] = 0;
	return (long)o;
}

long http_query_get(const char *q, size_t qlen, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name), i = 0;
	while (i < qlen) {
		size_t s = i;
		while (i < qlen && q[i] != '&')
			i++;
		if (i - s > nl && q[s + nl] == '=' && !memcmp(q + s, name, nl))
			return http_pct_decode(q + s + nl + 1, i - s - nl - 1, out, cap);
		i++;
	}
	return -1;
}
