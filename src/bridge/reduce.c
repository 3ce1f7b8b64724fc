#include "reduce.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

bool reduce_enabled(const struct bridge_topic *t)
{
	return t->report_by_exception || t->has_deadband || t->min_interval;
}

static uint64_t fnv1a(const uint8_t *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static bool is_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* A JSON number, whole: [-]digits[.digits][(e|E)[+|-]digits]. */
static bool parse_number(const uint8_t *p, size_t len, double *out)
{
	char buf[64];
	size_t i = 0;
	if (!len || len >= sizeof buf)
		return false;
	if (p[i] == '-')
		i++;
	size_t d = i;
	while (i < len && p[i] >= '0' && p[i] <= '9')
		i++;
	if (i == d)
		return false;
	if (i < len && p[i] == '.') {
		d = ++i;
		while (i < len && p[i] >= '0' && p[i] <= '9')
			i++;
		if (i == d)
			return false;
	}
	if (i < len && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		if (i < len && (p[i] == '+' || p[i] == '-'))
			i++;
		d = i;
		while (i < len && p[i] >= '0' && p[i] <= '9')
			i++;
		if (i == d)
			return false;
	}
	if (i != len)
		return false;
	memcpy(buf, p, len);
	buf[len] = 0;
	*out = strtod(buf, NULL);
	return isfinite(*out);
}

struct cursor {
	const uint8_t *p, *end;
};

static void skip_space(struct cursor *c)
{
	while (c->p < c->end && is_space(*c->p))
		c->p++;
}

/* At a '"': moves past the closing quote. */
static bool skip_string(struct cursor *c)
{
	for (c->p++; c->p < c->end; c->p++) {
		if (*c->p == '\\')
			c->p++;
		else if (*c->p == '"') {
			c->p++;
			return true;
		}
	}
	return false;
}

/* Moves past one value; nested objects and arrays by their brackets. */
static bool skip_value(struct cursor *c)
{
	unsigned depth = 0;
	while (c->p < c->end) {
		uint8_t ch = *c->p;
		if (ch == '"') {
			if (!skip_string(c))
				return false;
		} else if (ch == '{' || ch == '[') {
			depth++;
			c->p++;
		} else if (ch == '}' || ch == ']') {
			if (!depth)
				return true; /* the end of the enclosing object */
			depth--;
			c->p++;
		} else if (ch == ',' && !depth) {
			return true;
		} else {
			c->p++;
		}
		if (!depth && (ch == '"' || ch == '}' || ch == ']')) {
			skip_space(c);
			return true;
		}
	}
	return depth == 0;
}

bool reduce_number(const uint8_t *p, size_t len, const char *field, double *out)
{
	struct cursor c = { p, p + len };
	skip_space(&c);
	if (!field || !*field) {
		const uint8_t *end = c.end;
		while (end > c.p && is_space(end[-1]))
			end--;
		return parse_number(c.p, (size_t)(end - c.p), out);
	}
	size_t flen = strlen(field);
	if (c.p == c.end || *c.p != '{')
		return false;
	c.p++;
	for (;;) {
		skip_space(&c);
		if (c.p == c.end || *c.p != '"')
			return false;
		const uint8_t *key = c.p + 1;
		if (!skip_string(&c))
			return false;
		size_t klen = (size_t)(c.p - 1 - key);
		skip_space(&c);
		if (c.p == c.end || *c.p != ':')
			return false;
		c.p++;
		skip_space(&c);
		if (klen == flen && !memcmp(key, field, flen)) {
			const uint8_t *v = c.p;
			while (c.p < c.end && *c.p != ',' && *c.p != '}' && !is_space(*c.p))
				c.p++;
			return parse_number(v, (size_t)(c.p - v), out);
		}
		if (!skip_value(&c))
			return false;
		skip_space(&c);
		if (c.p == c.end || *c.p != ',')
			return false;
		c.p++;
	}
}

enum reduce_verdict reduce_check(const struct bridge_topic *t, const struct reduce_state *st, const uint8_t *p,
				 size_t len, uint64_t now_ms)
{
	if (!st->seen)
		return REDUCE_SEND;
	if (t->report_by_exception && st->len == len && st->hash == fnv1a(p, len))
		return REDUCE_DROP;
	double v;
	if (t->has_deadband && st->has_value && reduce_number(p, len, t->deadband_field, &v) &&
	    fabs(v - st->value) < t->deadband)
		return REDUCE_DROP;
	if (t->min_interval && now_ms - st->last_ms < (uint64_t)t->min_interval * 1000)
		return REDUCE_HOLD;
	return REDUCE_SEND;
}

void reduce_sent(const struct bridge_topic *t, struct reduce_state *st, const uint8_t *p, size_t len,
		 uint64_t now_ms)
{
	st->seen = true;
	st->hash = fnv1a(p, len);
	st->len = (uint32_t)len;
	st->last_ms = now_ms;
	double v;
	if (t->has_deadband && reduce_number(p, len, t->deadband_field, &v)) {
		st->value = v;
		st->has_value = true;
	}
}

/* ---- the table ---- */

static bool holds_nothing(const struct topic_entry *k)
{
	return !((const struct reduce_entry *)k)->pending;
}

struct reduce_entry *reduce_table_get(struct topic_table *t, unsigned line, const char *topic, size_t len)
{
	struct topic_entry *k = topic_table_find(t, line, topic, len);
	if (!k)
		k = topic_table_add(t, sizeof(struct reduce_entry), line, topic, len, holds_nothing);
	return (struct reduce_entry *)k;
}
