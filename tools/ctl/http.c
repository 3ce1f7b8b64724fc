/* HTTP/1.1 client for ferromq-ctl; see http.h. */
#include "ctl/http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int http_url_parse(const char *url, struct http_url *u, const char **why)
{
	static const char scheme[] = "http://";
	memset(u, 0, sizeof(*u));
	if (strncasecmp(url, "https://", 8) == 0) {
		*why = "https is not supported: the broker's HTTP API is plain HTTP (use http://)";
		return -1;
	}
	if (strncasecmp(url, scheme, sizeof(scheme) - 1) != 0) {
		*why = "the URL must start with http://";
		return -1;
	}
	const char *h = url + sizeof(scheme) - 1, *end;
	if (*h == '[') {
		end = strchr(h, ']');
		if (!end) {
			*why = "unterminated [ in the URL's host";
			return -1;
		}
		u->ipv6 = true;
		h++;
	} else {
		end = h + strcspn(h, ":/?#");
	}
	size_t hlen = (size_t)(end - h);
	if (hlen == 0 || hlen >= sizeof(u->host)) {
		*why = hlen ? "the URL's host is too long" : "the URL has no host";
		return -1;
	}
	memcpy(u->host, h, hlen);
	const char *rest = u->ipv6 ? end + 1 : end;
	strcpy(u->port, "80");
	if (*rest == ':') {
		rest++;
		size_t plen = strspn(rest, "0123456789");
		long port = plen && plen <= 5 ? strtol(rest, NULL, 10) : 0;
		if (port < 1 || port > 65535) {
			*why = "the URL's port must be a number from 1 to 65535";
			return -1;
		}
		snprintf(u->port, sizeof(u->port), "%ld", port);
		rest += plen;
	}
	if (*rest == '?' || *rest == '#') {
		*why = "the URL must not carry a query or fragment";
		return -1;
	}
	if (*rest != '\0' && *rest != '/') {
		*why = "unexpected character after the URL's host";
		return -1;
	}
	size_t blen = strcspn(rest, "?#");
	if (rest[blen] != '\0') {
		*why = "the URL must not carry a query or fragment";
		return -1;
	}
	while (blen > 0 && rest[blen - 1] == '/')
		blen--;
	if (blen >= sizeof(u->base)) {
		*why = "the URL's path is too long";
		return -1;
	}
	memcpy(u->base, rest, blen);
	return 0;
}

size_t http_escape_segment(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char one[3];
		size_t k = 1;
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			one[0] = (char)*p;
		} else {
			one[0] = '%';
			one[1] = hex[*p >> 4];
			one[2] = hex[*p & 15];
			k = 3;
		}
		for (size_t i = 0; i < k; i++, n++)
			if (n + 1 < cap)
				out[n] = one[i];
	}
	if (cap > 0)
		out[n < cap ? n : cap - 1] = '\0';
	return n;
}

/* Offset just after the blank line ending the header block, or 0. */
static size_t http__header_end(const char *buf, size_t len)
{
	for (size_t i = 3; i < len; i++)
		if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
			return i + 1;
	return 0;
}

/* Case-insensitive "Name:" at line; returns the trimmed value's start. */
static const char *http__header_value(const char *line, const char *eol, const char *name)
{
	size_t n = strlen(name);
	if ((size_t)(eol - line) <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return NULL;
	const char *v = line + n + 1;
	while (v < eol && (*v == ' ' || *v == '\t'))
		v++;
	return v;
}

/* Parses the hex size of a chunk at buf[*pos..len), up to its CRLF. Returns
 * 1 and advances *pos past the CRLF, 0 when the line is incomplete, -1 when
 * it is malformed or too large. */
static int http__chunk_size(const char *buf, size_t len, size_t *pos, size_t *size)
{
	size_t i = *pos, v = 0, digits = 0;
	for (; i < len; i++, digits++) {
		char c = buf[i];
		int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (h < 0)
			break;
		v = v * 16 + (size_t)h;
		if (v > HTTP_MAX_RESPONSE)
			return -1;
	}
	if (i == len)
		return 0;
	if (digits == 0)
		return -1;
	/* Chunk extensions (";name=value") carry nothing we use. */
	while (i < len && buf[i] != '\n')
		i++;
	if (i == len)
		return 0;
	if (buf[i - 1] != '\r')
		return -1;
	*pos = i + 1;
	*size = v;
	return 1;
}

/* Checks that a complete chunked body starts at buf[start..len) and decodes
 * it in place. Returns 1 with *body_len, 0 for more bytes, -1 when malformed. */
static int http__dechunk(char *buf, size_t len, size_t start, size_t *body_len)
{
	size_t pos = start, total = 0, size;
	for (;;) {
		int rc = http__chunk_size(buf, len, &pos, &size);
		if (rc <= 0)
			return rc;
		if (size == 0)
			break;
		if (len - pos < size + 2)
			return 0;
		if (buf[pos + size] != '\r' || buf[pos + size + 1] != '\n')
			return -1;
		total += size;
		if (total > HTTP_MAX_RESPONSE)
			return -1;
		pos += size + 2;
	}
	/* Trailer fields, then the empty line. */
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		if (!nl)
			return 0;
		size_t line = (size_t)(nl - (buf + pos));
		if (line == 0 || buf[pos + line - 1] != '\r')
			return -1;
		pos += line + 1;
		if (line == 1)
			break;
	}
	/* Everything is there: move the chunk data together. */
	size_t in = start, out = start;
	for (;;) {
		http__chunk_size(buf, len, &in, &size);
		if (size == 0)
			break;
		memmove(buf + out, buf + in, size);
		out += size;
		in += size + 2;
	}
	*body_len = out - start;
	return 1;
}

int http_response_parse(char *buf, size_t len, bool eof, struct http_response *r,
			const char **why)
{
	size_t hend = http__header_end(buf, len);
	if (hend == 0) {
		if (len > HTTP_MAX_HEADER) {
			*why = "response headers too long";
			return -1;
		}
		if (eof) {
			*why = len ? "the response ends inside its headers" : "empty response";
			return -1;
		}
		return 0;
	}
	if (hend > HTTP_MAX_HEADER) {
		*why = "response headers too long";
		return -1;
	}
	if (hend < 14 || (memcmp(buf, "HTTP/1.1 ", 9) != 0 && memcmp(buf, "HTTP/1.0 ", 9) != 0) ||
	    buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' || buf[11] < '0' ||
	    buf[11] > '9' || (buf[12] != ' ' && buf[12] != '\r')) {
		*why = "not an HTTP/1.x response";
		return -1;
	}
	int status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	if (status < 200) {
		*why = "unexpected interim (1xx) response";
		return -1;
	}
	bool chunked = false, has_length = false, other_coding = false;
	size_t length = 0;
	const char *line = memchr(buf, '\n', hend) + 1;
	while (line < buf + hend - 2) {
		const char *eol = memchr(line, '\n', (size_t)(buf + hend - line)) - 1;
		const char *v;
		if (*eol != '\r') {
			*why = "header line not ended by CRLF";
			return -1;
		}
		if ((v = http__header_value(line, eol, "Content-Length"))) {
			size_t n = 0;
			const char *d = v;
			for (; d < eol && *d >= '0' && *d <= '9'; d++) {
				n = n * 10 + (size_t)(*d - '0');
				if (n > HTTP_MAX_RESPONSE) {
					*why = "response body too large";
					return -1;
				}
			}
			while (d < eol && (*d == ' ' || *d == '\t'))
				d++;
			if (d == v || d != eol || (has_length && n != length)) {
				*why = "bad Content-Length";
				return -1;
			}
			has_length = true;
			length = n;
		} else if ((v = http__header_value(line, eol, "Transfer-Encoding"))) {
			size_t n = (size_t)(eol - v);
			while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
				n--;
			if (n >= 7 && strncasecmp(v + n - 7, "chunked", 7) == 0)
				chunked = true;
			else
				other_coding = true;
		}
		line = eol + 2;
	}
	r->status = status;
	r->body = buf + hend;
	if (status == 204 || status == 304) {
		r->body_len = 0;
		return 1;
	}
	if (chunked) {
		int rc = http__dechunk(buf, len, hend, &r->body_len);
		if (rc < 0)
			*why = "malformed chunked body";
		else if (rc == 0 && (eof || len - hend > HTTP_MAX_RESPONSE + HTTP_MAX_HEADER)) {
			*why = eof ? "the response ends inside its chunked body" : "response body too large";
			return -1;
		}
		return rc;
	}
	if (has_length && !other_coding) {
		if (len - hend >= length) {
			r->body_len = length;
			return 1;
		}
		if (eof) {
			*why = "the response is shorter than its Content-Length";
			return -1;
		}
		return 0;
	}
	/* No length given: the body runs until the server closes. */
	if (len - hend > HTTP_MAX_RESPONSE) {
		*why = "response body too large";
		return -1;
	}
	if (!eof)
		return 0;
	r->body_len = len - hend;
	return 1;
}

static long long http__now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes; 0 or -1
 * (errno ETIMEDOUT). */
static int http__wait(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - http__now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd p = { .fd = fd, .events = events };
		int rc = poll(&p, 1, (int)left);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

/* Connects to the first address of u that answers; the socket is
 * non-blocking. Returns the fd or -1 with errno of the last attempt. */
static int http__connect(const struct http_url *u, long long deadline, char *err, size_t errcap)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *list;
	int rc = getaddrinfo(u->host, u->port, &hints, &list);
	if (rc != 0) {
		snprintf(err, errcap, "cannot resolve %s: %s", u->host, gai_strerror(rc));
		return -1;
	}
	int fd = -1, last = ECONNREFUSED;
	for (struct addrinfo *a = list; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
			int soerr = errno;
			socklen_t sl = sizeof(soerr);
			if (soerr == EINPROGRESS &&
			    (http__wait(fd, POLLOUT, deadline) != 0 ||
			     getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0))
				soerr = errno;
			if (soerr != 0 && soerr != EINPROGRESS) {
				last = soerr;
				close(fd);
				fd = -1;
			}
		}
	}
	freeaddrinfo(list);
	if (fd < 0)
		snprintf(err, errcap, "%s", strerror(last));
	return fd;
}

int http_exchange(const struct http_url *u, const char *method, const char *path,
		  const char *authorization, int timeout_ms, struct http_result *res, char *err,
		  size_t errcap)
{
	return http_exchange_json(u, method, path, authorization, NULL, timeout_ms, res, err, errcap);
}

int http_exchange_json(const struct http_url *u, const char *method, const char *path,
		       const char *authorization, const char *body, int timeout_ms,
		       struct http_result *res, char *err, size_t errcap)
{
	long long deadline = http__now_ms() + timeout_ms;
	char *req = NULL, *buf = NULL;
	int fd = -1, ret = -1;
	size_t cap = 16384, len = 0;
	const char *why;

	int n = asprintf(&req,
			 "%s %s%s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: ferromq-ctl/%s\r\n"
			 "Accept: application/json\r\n%s%s%s%sContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 method, u->base, path, u->ipv6 ? "[" : "", u->host, u->ipv6 ? "]" : "",
			 u->port, FM_VERSION, authorization ? "Authorization: " : "",
			 authorization ? authorization : "", authorization ? "\r\n" : "",
			 body ? "Content-Type: application/json\r\n" : "", body ? strlen(body) : 0,
			 body ? body : "");
	if (n < 0) {
		req = NULL;
		snprintf(err, errcap, "out of memory");
		goto out;
	}
	fd = http__connect(u, deadline, err, errcap);
	if (fd < 0)
		goto out;
	for (size_t sent = 0; sent < (size_t)n;) {
		ssize_t k = send(fd, req + sent, (size_t)n - sent, MSG_NOSIGNAL);
		if (k > 0) {
			sent += (size_t)k;
		} else if (k < 0 && errno != EAGAIN && errno != EINTR) {
			snprintf(err, errcap, "sending the request: %s", strerror(errno));
			goto out;
		} else if (http__wait(fd, POLLOUT, deadline) != 0) {
			snprintf(err, errcap, "sending the request: %s", strerror(errno));
			goto out;
		}
	}
	if (!(buf = malloc(cap))) {
		snprintf(err, errcap, "out of memory");
		goto out;
	}
	for (;;) {
		if (len == cap) {
			char *bigger = realloc(buf, cap * 2);
			if (!bigger) {
				snprintf(err, errcap, "out of memory");
				goto out;
			}
			buf = bigger;
			cap *= 2;
		}
		ssize_t k = recv(fd, buf + len, cap - len, 0);
		if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (http__wait(fd, POLLIN, deadline) != 0) {
				snprintf(err, errcap, "waiting for the response: %s", strerror(errno));
				goto out;
			}
			continue;
		}
		if (k < 0) {
			snprintf(err, errcap, "reading the response: %s", strerror(errno));
			goto out;
		}
		len += (size_t)k;
		int rc = http_response_parse(buf, len, k == 0, &res->resp, &why);
		if (rc < 0) {
			snprintf(err, errcap, "bad response: %s", why);
			goto out;
		}
		if (rc > 0)
			break;
	}
	res->buf = buf;
	buf = NULL;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(req);
	free(buf);
	return ret;
}
