/* Rules about names rather than topics: which client ids a username may use
 * (a listener's client_id_pattern), and whether a user is on a list of
 * names (the HTTP API grants). Pure: no allocation, no I/O. */
#include "auth.h"
#include "../base/err.h"
#include <stdio.h>
#include <string.h>

/* The pattern split around its %u: prefix [0, at), suffix after %u without
 * the final '*', and whether that '*' is there. */
struct clientid_parts {
	size_t at;           /* offset of "%u" */
	const char *suffix;
	size_t suffix_len;
	bool star;
};

static int clientid_split(const char *p, struct clientid_parts *out, char *err, size_t errlen)
{
	const char *u = NULL;
	size_t len = strlen(p);
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '%') {
			if (p[i + 1] != 'u') {
				snprintf(err, errlen, "only %%u may follow %% (the username or certificate identity)");
				return -FM_EINVAL;
			}
			if (u) {
				snprintf(err, errlen, "%%u appears twice");
				return -FM_EINVAL;
			}
			u = p + i++;
		} else if (p[i] == '*' && i != len - 1) {
			snprintf(err, errlen, "'*' may only end the pattern");
			return -FM_EINVAL;
		} else if (p[i] == ' ' || p[i] == '\t') {
			snprintf(err, errlen, "one pattern, without blanks");
			return -FM_EINVAL;
		}
	}
	if (!u) {
		snprintf(err, errlen, "needs %%u: a pattern without it binds no client id to its user");
		return -FM_EINVAL;
	}
	out->at = (size_t)(u - p);
	out->suffix = u + 2;
	out->star = len && p[len - 1] == '*';
	out->suffix_len = (size_t)(p + len - out->suffix) - out->star;
	/* "%u*" would give user gw the ids of user gw-a: a separator must end
	 * the username before the free part. */
	if (out->star && out->suffix_len == 0) {
		snprintf(err, errlen, "'*' right after %%u lets user \"gw\" take the ids of \"gw-a\": put a "
				      "separator between them (%%u-*)");
		return -FM_EINVAL;
	}
	return 0;
}

int auth_clientid_pattern_check(const char *pattern, char *err, size_t errlen)
{
	struct clientid_parts parts;
	return clientid_split(pattern, &parts, err, errlen);
}

bool auth_clientid_allowed(const char *pattern, const char *user, const char *client_id)
{
	struct clientid_parts x;
	char err[8];
	if (!user || !*user || clientid_split(pattern, &x, err, sizeof err))
		return false;
	size_t ulen = strlen(user), idlen = strlen(client_id);
	/* With '*', the separator must not occur in the username: the id's first
	 * separator after the prefix is then where the username ends, so no two
	 * users can match one id. */
	if (x.star && memchr(user, x.suffix[0], ulen))
		return false;
	size_t fixed = x.at + ulen + x.suffix_len;
	if (idlen < fixed || (!x.star && idlen != fixed))
		return false;
	return !memcmp(client_id, pattern, x.at) && !memcmp(client_id + x.at, user, ulen) &&
	       !memcmp(client_id + x.at + ulen, x.suffix, x.suffix_len);
}

bool auth_name_listed(const char *list, const char *name, size_t len)
{
	const char *p = list;
	while (*p) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, " \t,");
		if (n && n == len && !memcmp(p, name, len))
			return true;
		p += n;
	}
	return false;
}
