/* A host application's STATE payload (Sparkplug 3.0, 5.3 "Host Application
 * Session Establishment"): UTF-8 JSON {"online": true|false, "timestamp": ms}.
 * A strict reader for one flat object; nested values are refused, since a
 * STATE message has none. */
#include "sparkplug/sparkplug.h"
#include "base/err.h"
#include <string.h>

struct spb_json {
	const char *p, *end;
};

static void spb__ws(struct spb_json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static bool spb__lit(struct spb_json *j, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return false;
	j->p += n;
	return true;
}

/* A string: sets *s and *len to its raw contents (escapes left as they are:
 * the member names we look for have none). */
static bool spb__string(struct spb_json *j, const char **s, size_t *len)
{
	if (j->p == j->end || *j->p != '"')
		return false;
	const char *start = ++j->p;
	while (j->p < j->end && *j->p != '"') {
		if ((unsigned char)*j->p < 0x20)
			return false;
		if (*j->p == '\\' && ++j->p == j->end)
			return false;
		j->p++;
	}
	if (j->p == j->end)
		return false;
	*s = start;
	*len = (size_t)(j->p - start);
	j->p++;
	return true;
}

/* A JSON number; *is_uint and *v when it is a plain non-negative integer
 * that fits 64 bits. */
static bool spb__number(struct spb_json *j, bool *is_uint, uint64_t *v)
{
	const char *start = j->p;
	bool digits_only = true;
	uint64_t r = 0;
	if (j->p < j->end && *j->p == '-') {
		digits_only = false;
		j->p++;
	}
	if (j->p == j->end || *j->p < '0' || *j->p > '9')
		return false;
	while (j->p < j->end && ((*j->p >= '0' && *j->p <= '9') || *j->p == '.' || *j->p == 'e' ||
				 *j->p == 'E' || *j->p == '+' || *j->p == '-')) {
		if (*j->p < '0' || *j->p > '9')
			digits_only = false;
		else if (digits_only) {
			unsigned d = (unsigned)(*j->p - '0');
			if (r > (UINT64_MAX - d) / 10)
				digits_only = false;
			else
				r = r * 10 + d;
		}
		j->p++;
	}
	*is_uint = digits_only && !(j->p - start > 1 && start[0] == '0');
	*v = r;
	return true;
}

int spb_state_parse(const char *p, size_t len, struct spb_state *out)
{
	struct spb_json j = { p, p + len };
	bool have_online = false, have_ts = false;
	spb__ws(&j);
	if (!spb__lit(&j, "{"))
		return -FM_EINVAL;
	spb__ws(&j);
	if (spb__lit(&j, "}"))
		return -FM_EINVAL;
	for (;;) {
		const char *key;
		size_t klen;
		spb__ws(&j);
		if (!spb__string(&j, &key, &klen))
			return -FM_EINVAL;
		spb__ws(&j);
		if (!spb__lit(&j, ":"))
			return -FM_EINVAL;
		spb__ws(&j);
		bool is_online = klen == 6 && memcmp(key, "online", 6) == 0;
		bool is_ts = klen == 9 && memcmp(key, "timestamp", 9) == 0;
		bool is_true = spb__lit(&j, "true");
		if (is_true || spb__lit(&j, "false")) {
			if (is_ts)
				return -FM_EINVAL;
			if (is_online) {
				out->online = is_true;
				have_online = true;
			}
		} else if (j.p < j.end && (*j.p == '-' || (*j.p >= '0' && *j.p <= '9'))) {
			bool is_uint;
			uint64_t v;
			if (!spb__number(&j, &is_uint, &v) || is_online || (is_ts && !is_uint))
				return -FM_EINVAL;
			if (is_ts) {
				out->timestamp = v;
				have_ts = true;
			}
		} else if (j.p < j.end && *j.p == '"') {
			const char *s;
			size_t slen;
			if (!spb__string(&j, &s, &slen) || is_online || is_ts)
				return -FM_EINVAL;
		} else if (!spb__lit(&j, "null") || is_online || is_ts) {
			return -FM_EINVAL;
		}
		spb__ws(&j);
		if (spb__lit(&j, "}"))
			break;
		if (!spb__lit(&j, ","))
			return -FM_EINVAL;
	}
	spb__ws(&j);
	return j.p == j.end && have_online && have_ts ? 0 : -FM_EINVAL;
}
