#include "json.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static void put(struct jw *j, const char *s, size_t n)
{
	if (!j->oom && buf_append(&j->out, s, n))
		j->oom = true;
}

/* A comma before every item but the first of its container. */
static void item(struct jw *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->depth && j->has_items[j->depth - 1])
		put(j, ",", 1);
	if (j->depth)
		j->has_items[j->depth - 1] = true;
}

static void open_(struct jw *j, const char *c)
{
	item(j);
	put(j, c, 1);
	if (j->depth < JSON_MAX_DEPTH)
		j->has_items[j->depth] = false;
	j->depth++;
}

void jw_obj(struct jw *j) { open_(j, "{"); }
void jw_arr(struct jw *j) { open_(j, "["); }
void jw_obj_end(struct jw *j) { j->depth--; put(j, "}", 1); }
void jw_arr_end(struct jw *j) { j->depth--; put(j, "]", 1); }

void jw_strn(struct jw *j, const char *s, size_t n)
{
	item(j);
	put(j, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		put(j, s + run, i - run);
		char esc[8];
		int k = c == '"' ? snprintf(esc, sizeof esc, "\\\"") : c == '\\' ? snprintf(esc, sizeof esc, "\\\\")
			: snprintf(esc, sizeof esc, "\\u%04x", c);
		put(j, esc, (size_t)k);
		run = i + 1;
	}
	put(j, s + run, n - run);
	put(j, "\"", 1);
}

void jw_str(struct jw *j, const char *s)
{
	if (s)
		jw_strn(j, s, strlen(s));
	else
		jw_null(j);
}

void jw_key(struct jw *j, const char *key)
{
	jw_str(j, key);
	put(j, ":", 1);
	j->after_key = true;
}

void jw_u64(struct jw *j, uint64_t v)
{
	char t[24];
	item(j);
	put(j, t, (size_t)snprintf(t, sizeof t, "%llu", (unsigned long long)v));
}

void jw_num(struct jw *j, double v)
{
	char t[40];
	item(j);
	if (!isfinite(v))
		v = 0; /* JSON has no NaN or infinity */
	put(j, t, (size_t)snprintf(t, sizeof t, "%.3f", v));
}

void jw_bool(struct jw *j, bool v)
{
	item(j);
	put(j, v ? "true" : "false", v ? 4 : 5);
}

void jw_null(struct jw *j)
{
	item(j);
	put(j, "null", 4);
}
