#include "remap.h"
#include "../topic/topic.h"
#include <string.h>

/* Replaces prefix `from` of topic by `to` when the rest matches pattern. */
static int swap_prefix(const char *pattern, const char *from, const char *to, const char *topic, size_t len,
		       char *out, size_t cap)
{
	size_t flen = strlen(from), tlen = strlen(to);
	if (len <= flen || memcmp(topic, from, flen))
		return -1;
	const char *rest = topic + flen;
	size_t rlen = len - flen;
	if (!topic_match(pattern, strlen(pattern), rest, rlen) || tlen + rlen + 1 > cap)
		return -1;
	memcpy(out, to, tlen);
	memcpy(out + tlen, rest, rlen);
	out[tlen + rlen] = 0;
	return (int)(tlen + rlen);
}

int remap_out(const struct bridge_topic *t, const char *topic, size_t len, char *out, size_t cap)
{
	if (!(t->direction & BRIDGE_OUT))
		return -1;
	return swap_prefix(t->pattern, t->local_prefix, t->remote_prefix, topic, len, out, cap);
}

int remap_in(const struct bridge_topic *t, const char *topic, size_t len, char *out, size_t cap)
{
	if (!(t->direction & BRIDGE_IN))
		return -1;
	return swap_prefix(t->pattern, t->remote_prefix, t->local_prefix, topic, len, out, cap);
}

bool remap_is_echo(const struct bridge_topic *t, const char *topic, size_t len)
{
	size_t p = strlen(t->remote_prefix);
	return (t->direction & BRIDGE_OUT) && len > p && !memcmp(topic, t->remote_prefix, p) &&
	       topic_match(t->pattern, strlen(t->pattern), topic + p, len - p);
}

int remap_remote_filter(const struct bridge_topic *t, char *out, size_t cap)
{
	size_t p = strlen(t->remote_prefix), f = strlen(t->pattern);
	if (p + f + 1 > cap)
		return -1;
	memcpy(out, t->remote_prefix, p);
	memcpy(out + p, t->pattern, f + 1);
	return (int)(p + f);
}
