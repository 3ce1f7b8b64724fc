/* libFuzzer target for ferromq-ctl's JSON reader (tools/ctl/json.c). Any
 * input either fails with an error inside the text, or parses into tokens
 * whose tree is consistent (every subtree inside its parent, child counts
 * matching iteration). An accepted document, written out again in a
 * canonical form from the decoded values, must parse again to the same
 * canonical text; every value must also render as a table cell. Aborts on
 * any disagreement.
 */
#include "ctl/json.h"
#include "ctl/view.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_TOKENS 4096

struct fuzz_out {
	char *buf;
	size_t len, cap;
};

static void fuzz_put(struct fuzz_out *o, const char *s, size_t n)
{
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2 + 64;
		if (!(o->buf = realloc(o->buf, o->cap)))
			abort();
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static void fuzz_string(const struct json_doc *d, int i, struct fuzz_out *o)
{
	size_t n = json_string(d, i, NULL, 0);
	char *s = malloc(n + 1);
	if (!s || json_string(d, i, s, n + 1) != n)
		abort();
	fuzz_put(o, "\"", 1);
	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)s[k];
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			fuzz_put(o, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			fuzz_put(o, esc, 6);
		} else {
			fuzz_put(o, (const char *)&c, 1);
		}
	}
	fuzz_put(o, "\"", 1);
	free(s);
}

/* Writes value i canonically and checks its subtree; returns the index
 * after it. */
static int fuzz_write(const struct json_doc *d, int i, struct fuzz_out *o)
{
	const struct json_token *t = &d->tok[i];
	if (t->next <= (uint32_t)i || t->next > d->n)
		abort();
	char *cell = view_text(d, i);
	if (!cell)
		abort();
	free(cell);
	switch (t->type) {
	case JSON_NULL: fuzz_put(o, "null", 4); break;
	case JSON_TRUE: fuzz_put(o, "true", 4); break;
	case JSON_FALSE: fuzz_put(o, "false", 5); break;
	case JSON_NUMBER: {
		double x;
		if (!json_number(d, i, &x))
			abort();
		fuzz_put(o, d->text + t->start, t->len);
		break;
	}
	case JSON_STRING:
		fuzz_string(d, i, o);
		break;
	case JSON_ARRAY:
	case JSON_OBJECT: {
		bool obj = t->type == JSON_OBJECT;
		uint32_t count = 0;
		fuzz_put(o, obj ? "{" : "[", 1);
		for (int c = json_first(d, i); c >= 0; c = json_after(d, i, c), count++) {
			if (count)
				fuzz_put(o, ",", 1);
			int end;
			if (obj) {
				if (d->tok[c].type != JSON_STRING)
					abort();
				fuzz_string(d, c, o);
				fuzz_put(o, ":", 1);
				end = fuzz_write(d, c + 1, o);
			} else {
				end = fuzz_write(d, c, o);
			}
			if ((uint32_t)end > t->next)
				abort();
		}
		if (count != t->children)
			abort();
		fuzz_put(o, obj ? "}" : "]", 1);
		break;
	}
	}
	return (int)t->next;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct json_token tok[FUZZ_TOKENS], again[FUZZ_TOKENS];
	struct json_doc d, d2;
	struct json_error err;
	if (json_parse((const char *)data, size, tok, FUZZ_TOKENS, &d, &err) != 0) {
		if (err.offset > size || !err.what)
			abort();
		return 0;
	}
	if (d.n == 0 || d.tok[0].next != d.n)
		abort();
	struct fuzz_out a = { 0 }, b = { 0 };
	if ((size_t)fuzz_write(&d, 0, &a) != d.n)
		abort();
	if (json_parse(a.buf, a.len, again, FUZZ_TOKENS, &d2, &err) != 0 || d2.n != d.n)
		abort();
	fuzz_write(&d2, 0, &b);
	if (a.len != b.len || memcmp(a.buf, b.buf, a.len) != 0)
		abort();
	free(a.buf);
	free(b.buf);
	return 0;
}
