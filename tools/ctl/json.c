/* JSON reader for ferromq-ctl; see json.h. */
#include "ctl/json.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct json_parser {
	const char *s;
	size_t len, pos;
	struct json_token *tok;
	size_t cap, n;
	const char *what; /* first error, or NULL */
};

static bool json__fail(struct json_parser *p, const char *what)
{
	if (!p->what)
		p->what = what;
	return false;
}

static void json__space(struct json_parser *p)
{
	while (p->pos < p->len) {
		char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

/* Appends a token starting at the current position; -1 when full. */
static int json__token(struct json_parser *p, enum json_type type)
{
	if (p->n == p->cap)
		return json__fail(p, "too many values"), -1;
	struct json_token *t = &p->tok[p->n];
	t->type = type;
	t->start = (uint32_t)p->pos;
	t->len = 0;
	t->children = 0;
	t->next = 0;
	return (int)p->n++;
}

/* Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t json__utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;
	size_t len;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return len;
}

static int json__hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The four hex digits at s[0..4) as a code unit, or -1. */
static long json__hex4(const char *s)
{
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int h = json__hex(s[i]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* A \uXXXX escape at p->pos (just after the backslash and 'u'), with the low
 * half that must follow a high surrogate. */
static bool json__unicode_escape(struct json_parser *p)
{
	if (p->len - p->pos < 4)
		return json__fail(p, "truncated \\u escape");
	long u = json__hex4(p->s + p->pos);
	if (u < 0)
		return json__fail(p, "bad hex digit in \\u escape");
	p->pos += 4;
	if (u >= 0xDC00 && u <= 0xDFFF)
		return json__fail(p, "lone low surrogate in \\u escape");
	if (u < 0xD800 || u > 0xDBFF)
		return true;
	if (p->len - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
		return json__fail(p, "high surrogate without its low half");
	long low = json__hex4(p->s + p->pos + 2);
	if (low < 0xDC00 || low > 0xDFFF)
		return json__fail(p, "high surrogate without its low half");
	p->pos += 6;
	return true;
}

static bool json__string(struct json_parser *p)
{
	int t = json__token(p, JSON_STRING);
	if (t < 0)
		return false;
	size_t start = ++p->pos; /* after the opening quote */
	while (p->pos < p->len) {
		unsigned char c = (unsigned char)p->s[p->pos];
		if (c == '"') {
			p->tok[t].start = (uint32_t)start;
			p->tok[t].len = (uint32_t)(p->pos - start);
			p->tok[t].next = (uint32_t)p->n;
			p->pos++;
			return true;
		}
		if (c < 0x20)
			return json__fail(p, "control character in string");
		if (c == '\\') {
			if (++p->pos == p->len)
				break;
			char e = p->s[p->pos++];
			if (e == 'u') {
				if (!json__unicode_escape(p))
					return false;
			} else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
				p->pos--;
				return json__fail(p, "bad escape in string");
			}
			continue;
		}
		size_t n = json__utf8_len((const unsigned char *)p->s + p->pos, p->len - p->pos);
		if (n == 0)
			return json__fail(p, "invalid UTF-8 in string");
		p->pos += n;
	}
	return json__fail(p, "unterminated string");
}

static bool json__digits(struct json_parser *p)
{
	size_t from = p->pos;
	while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
		p->pos++;
	return p->pos > from;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool json__number(struct json_parser *p)
{
	int t = json__token(p, JSON_NUMBER);
	if (t < 0)
		return false;
	if (p->s[p->pos] == '-')
		p->pos++;
	if (p->pos < p->len && p->s[p->pos] == '0')
		p->pos++;
	else if (!json__digits(p))
		return json__fail(p, "bad number");
	if (p->pos < p->len && p->s[p->pos] == '.') {
		p->pos++;
		if (!json__digits(p))
			return json__fail(p, "bad number: no digit after '.'");
	}
	if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		p->pos++;
		if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		if (!json__digits(p))
			return json__fail(p, "bad number: no digit in exponent");
	}
	p->tok[t].len = (uint32_t)(p->pos - p->tok[t].start);
	p->tok[t].next = (uint32_t)p->n;
	return true;
}

static bool json__literal(struct json_parser *p, const char *word, enum json_type type)
{
	size_t n = strlen(word);
	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
		return json__fail(p, "unexpected character");
	int t = json__token(p, type);
	if (t < 0)
		return false;
	p->pos += n;
	p->tok[t].len = (uint32_t)n;
	p->tok[t].next = (uint32_t)p->n;
	return true;
}

static bool json__value(struct json_parser *p, int depth);

/* An array or object at p->pos: its children follow its token. */
static bool json__container(struct json_parser *p, int depth, bool object)
{
	if (depth >= JSON_MAX_DEPTH)
		return json__fail(p, "nested too deeply");
	int t = json__token(p, object ? JSON_OBJECT : JSON_ARRAY);
	if (t < 0)
		return false;
	char close = object ? '}' : ']';
	uint32_t children = 0;
	p->pos++;
	json__space(p);
	if (p->pos < p->len && p->s[p->pos] == close) {
		p->pos++;
	} else {
		for (;;) {
			if (object) {
				if (p->pos == p->len || p->s[p->pos] != '"')
					return json__fail(p, "expected a string key");
				if (!json__string(p))
					return false;
				json__space(p);
				if (p->pos == p->len || p->s[p->pos] != ':')
					return json__fail(p, "expected ':' after key");
				p->pos++;
				json__space(p);
			}
			if (!json__value(p, depth + 1))
				return false;
			children++;
			json__space(p);
			if (p->pos == p->len)
				return json__fail(p, object ? "unterminated object" : "unterminated array");
			char c = p->s[p->pos++];
			if (c == close)
				break;
			if (c != ',') {
				p->pos--;
				return json__fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
			}
			json__space(p);
		}
	}
	p->tok[t].len = (uint32_t)(p->pos - p->tok[t].start);
	p->tok[t].children = children;
	p->tok[t].next = (uint32_t)p->n;
	return true;
}

static bool json__value(struct json_parser *p, int depth)
{
	if (p->pos == p->len)
		return json__fail(p, "unexpected end of input");
	switch (p->s[p->pos]) {
	case '{':
		return json__container(p, depth, true);
	case '[':
		return json__container(p, depth, false);
	case '"':
		return json__string(p);
	case 't':
		return json__literal(p, "true", JSON_TRUE);
	case 'f':
		return json__literal(p, "false", JSON_FALSE);
	case 'n':
		return json__literal(p, "null", JSON_NULL);
	default:
		if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
			return json__number(p);
		return json__fail(p, "unexpected character");
	}
}

int json_parse(const char *text, size_t len, struct json_token *tok, size_t cap,
	       struct json_doc *doc, struct json_error *err)
{
	struct json_parser p = { .s = text, .len = len, .tok = tok, .cap = cap };
	/* Offsets are 32-bit; the caller's limits keep documents far smaller. */
	if (len >= UINT32_MAX) {
		err->offset = 0;
		err->what = "document too large";
		return -1;
	}
	json__space(&p);
	if (json__value(&p, 0)) {
		json__space(&p);
		if (p.pos != p.len)
			json__fail(&p, "text after the value");
	}
	if (p.what) {
		err->offset = p.pos;
		err->what = p.what;
		return -1;
	}
	doc->text = text;
	doc->tok = tok;
	doc->n = p.n;
	return 0;
}

int json_first(const struct json_doc *d, int i)
{
	if (i < 0 || (size_t)i >= d->n || d->tok[i].children == 0)
		return -1;
	return i + 1;
}

int json_after(const struct json_doc *d, int parent, int c)
{
	if (parent < 0 || c <= parent || (size_t)c >= d->n)
		return -1;
	uint32_t next = d->tok[parent].type == JSON_OBJECT ? d->tok[c + 1].next : d->tok[c].next;
	return next < d->tok[parent].next ? (int)next : -1;
}

/* Unescapes the character at raw[*pos] of a validated string into buf,
 * advancing *pos; returns the number of bytes written (1 to 4). */
static size_t json__unescape_one(const char *raw, size_t *pos, char buf[4])
{
	if (raw[*pos] != '\\') {
		buf[0] = raw[(*pos)++];
		return 1;
	}
	char e = raw[*pos + 1];
	*pos += 2;
	switch (e) {
	case 'b': buf[0] = '\b'; return 1;
	case 'f': buf[0] = '\f'; return 1;
	case 'n': buf[0] = '\n'; return 1;
	case 'r': buf[0] = '\r'; return 1;
	case 't': buf[0] = '\t'; return 1;
	case 'u': break;
	default: buf[0] = e; return 1; /* '"', '\\' and '/' stand for themselves */
	}
	unsigned long cp = (unsigned long)json__hex4(raw + *pos);
	*pos += 4;
	if (cp >= 0xD800 && cp <= 0xDBFF) {
		cp = 0x10000 + ((cp - 0xD800) << 10) + ((unsigned long)json__hex4(raw + *pos + 2) - 0xDC00);
		*pos += 6;
	}
	if (cp < 0x80) {
		buf[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		buf[0] = (char)(0xC0 | (cp >> 6));
		buf[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		buf[0] = (char)(0xE0 | (cp >> 12));
		buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		buf[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	buf[0] = (char)(0xF0 | (cp >> 18));
	buf[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	buf[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

size_t json_string(const struct json_doc *d, int i, char *out, size_t cap)
{
	if (i < 0 || (size_t)i >= d->n || d->tok[i].type != JSON_STRING)
		return 0;
	const char *raw = d->text + d->tok[i].start;
	size_t pos = 0, n = 0, end = d->tok[i].len;
	char buf[4];
	while (pos < end) {
		size_t k = json__unescape_one(raw, &pos, buf);
		for (size_t j = 0; j < k; j++, n++)
			if (n + 1 < cap)
				out[n] = buf[j];
	}
	if (cap > 0)
		out[n < cap ? n : cap - 1] = '\0';
	return n;
}

bool json_string_is(const struct json_doc *d, int i, const char *s)
{
	if (i < 0 || (size_t)i >= d->n || d->tok[i].type != JSON_STRING)
		return false;
	const char *raw = d->text + d->tok[i].start;
	size_t pos = 0, n = 0, end = d->tok[i].len, slen = strlen(s);
	char buf[4];
	while (pos < end) {
		size_t k = json__unescape_one(raw, &pos, buf);
		if (n + k > slen || memcmp(s + n, buf, k) != 0)
			return false;
		n += k;
	}
	return n == slen;
}

int json_get(const struct json_doc *d, int obj, const char *key)
{
	if (obj < 0 || (size_t)obj >= d->n || d->tok[obj].type != JSON_OBJECT)
		return -1;
	for (int k = json_first(d, obj); k >= 0; k = json_after(d, obj, k))
		if (json_string_is(d, k, key))
			return k + 1;
	return -1;
}

bool json_number(const struct json_doc *d, int i, double *out)
{
	if (i < 0 || (size_t)i >= d->n || d->tok[i].type != JSON_NUMBER)
		return false;
	/* strtod needs a terminated copy: the text is not NUL-terminated. */
	char small[64], *copy = small;
	size_t len = d->tok[i].len;
	if (len >= sizeof(small) && !(copy = malloc(len + 1)))
		return false;
	memcpy(copy, d->text + d->tok[i].start, len);
	copy[len] = '\0';
	*out = strtod(copy, NULL);
	if (copy != small)
		free(copy);
	return true;
}

bool json_integer(const struct json_doc *d, int i, long long *out)
{
	if (i < 0 || (size_t)i >= d->n || d->tok[i].type != JSON_NUMBER)
		return false;
	const char *s = d->text + d->tok[i].start;
	size_t len = d->tok[i].len, k = 0;
	bool neg = s[0] == '-';
	unsigned long long v = 0, limit = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
	if (neg)
		k++;
	for (; k < len; k++) {
		if (s[k] < '0' || s[k] > '9')
			return false; /* a fraction or an exponent */
		unsigned digit = (unsigned)(s[k] - '0');
		if (v > (limit - digit) / 10)
			return false;
		v = v * 10 + digit;
	}
	*out = !neg ? (long long)v : v == limit ? LLONG_MIN : -(long long)v;
	return true;
}
