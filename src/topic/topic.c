#include "topic.h"
#include "trie.h"
#include <string.h>

#define TOPIC_SHARE_PREFIX "$share/"
#define TOPIC_SHARE_PREFIX_LEN (sizeof(TOPIC_SHARE_PREFIX) - 1)

bool topic_name_valid(const char *p, size_t len)
{
	if (len == 0 || len > TOPIC_MAX_LEN) /* [MQTT-4.7.3-1] */
		return false;
	for (size_t i = 0; i < len; i++)
		if (p[i] == '+' || p[i] == '#' || p[i] == '\0') /* [MQTT-3.3.2-2], [MQTT-4.7.3-2] */
			return false;
	return true;
}

bool topic_filter_valid(const char *p, size_t len)
{
	if (len == 0 || len > TOPIC_MAX_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		bool alone = (i == 0 || p[i - 1] == '/') && (i + 1 == len || p[i + 1] == '/');
		switch (p[i]) {
		case '\0':
			return false;
		case '+': /* [MQTT-4.7.1-2] */
			if (!alone)
				return false;
			break;
		case '#': /* [MQTT-4.7.1-1] */
			if (!alone || i + 1 != len)
				return false;
			break;
		}
	}
	return true;
}

static bool topic_level_is(const char *p, size_t at, size_t end, char c)
{
	return end - at == 1 && p[at] == c;
}

bool topic_match(const char *filter, size_t flen, const char *name, size_t nlen)
{
	/* [MQTT-4.7.2-1]: "#" and "+/..." do not reach "$SYS/..." */
	if (nlen > 0 && name[0] == '$' && flen > 0 && (filter[0] == '+' || filter[0] == '#'))
		return false;
	size_t fa = 0, na = 0; /* level cursors, see trie.h */
	for (;;) {
		size_t fe = topic__level_end(filter, flen, fa);
		if (topic_level_is(filter, fa, fe, '#')) /* also the parent: "a/#" matches "a" */
			return true;
		if (na > nlen)
			return false;
		size_t ne = topic__level_end(name, nlen, na);
		if (!topic_level_is(filter, fa, fe, '+') &&
		    (fe - fa != ne - na || memcmp(filter + fa, name + na, ne - na) != 0))
			return false;
		if (fe == flen)
			return ne == nlen;
		fa = fe + 1;
		na = ne + 1;
	}
}

size_t topic_levels(const char *p, size_t len)
{
	size_t n = 1;
	if (len == 0)
		return 0;
	for (const char *s = p, *e = p + len; (s = memchr(s, '/', (size_t)(e - s))); s++)
		n++;
	return n;
}

int topic_share_split(const char *p, size_t len, const char **group, size_t *glen,
		      const char **filter, size_t *flen)
{
	if (len < TOPIC_SHARE_PREFIX_LEN ||
	    memcmp(p, TOPIC_SHARE_PREFIX, TOPIC_SHARE_PREFIX_LEN) != 0) {
		*group = NULL;
		*glen = 0;
		*filter = p;
		*flen = len;
		return 0;
	}
	const char *g = p + TOPIC_SHARE_PREFIX_LEN;
	size_t rest = len - TOPIC_SHARE_PREFIX_LEN;
	const char *slash = memchr(g, '/', rest);
	if (!slash)
		return -1;
	size_t gl = (size_t)(slash - g);
	/* [MQTT-4.8.2-1] non-empty, [MQTT-4.8.2-2] no wildcard, a filter follows;
	 * no NUL either: the index keeps group names as C strings */
	if (gl == 0 || memchr(g, '+', gl) || memchr(g, '#', gl) || memchr(g, '\0', gl) ||
	    gl + 1 == rest)
		return -1;
	*group = g;
	*glen = gl;
	*filter = slash + 1;
	*flen = rest - gl - 1;
	return 1;
}
