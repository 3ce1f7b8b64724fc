/* libFuzzer target for the ACL parser and checks (src/auth/acl.c). The input
 * is "ACL TEXT" or "ACL TEXT\0TOPICS" (one topic or filter a line). The first
 * line goes through auth_acl_parse_line, the ACL text through auth_acl_parse;
 * when that compiles, clients with ordinary and with hostile identities check
 * the topics (without a NUL part: the last word of every ACL line) as topic
 * names and as filters. Invariants (abort when broken):
 *  - for a topic name T, SUBSCRIBE T is granted exactly when T may be read;
 *  - auth_filter_covers(F, T) == topic_match(F, T) for a name T, and every
 *    valid filter covers itself.
 */
#include "auth/auth.h"
#include "topic/topic.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_WORDS 16

static void fuzz_check(const struct auth_acl *acl, const char *user, const char *cid,
		       const char *const *w, const size_t *wl, size_t n)
{
	struct auth_acl_client *c = auth_acl_client_new(acl, user, cid);
	if (!c)
		return;
	for (size_t i = 0; i < n; i++) {
		bool name = topic_name_valid(w[i], wl[i]);
		bool filter = topic_filter_valid(w[i], wl[i]);
		bool pub = auth_acl_client_can_publish(c, w[i], wl[i]);
		bool rd = auth_acl_client_can_read(c, w[i], wl[i]);
		uint8_t sub = auth_acl_client_can_subscribe(c, w[i], wl[i]);
		if ((pub || rd) && !name)
			abort();
		if (!filter && sub != AUTH_SUB_FILTER_INVALID)
			abort();
		/* "$share/..." is a valid name too, but is subscribed as its inner filter */
		if (name && filter && !(wl[i] >= 7 && memcmp(w[i], "$share/", 7) == 0) &&
		    (sub == AUTH_SUB_GRANTED) != rd)
			abort();
	}
	auth_acl_client_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	/* the first line alone (up to a NUL or newline) */
	struct auth_acl_line l;
	char err[400];
	int rc = auth_acl_parse_line(text, &l, err, sizeof(err));
	if (rc == 1) {
		if (l.arg < text || l.arg + l.alen > text + strlen(text) || l.alen == 0)
			abort();
		if (l.kind != AUTH_ACL_USER && !topic_filter_valid(l.arg, l.alen))
			abort();
	}

	/* the topics: each line after the NUL, or the last word of each ACL line */
	size_t acl_len = strlen(text);
	bool split = acl_len < size;
	const char *w[FUZZ_MAX_WORDS];
	size_t wl[FUZZ_MAX_WORDS], n = 0;
	for (size_t at = split ? acl_len + 1 : 0; at < size && n < FUZZ_MAX_WORDS;) {
		const char *nl = memchr(text + at, '\n', size - at);
		size_t end = nl ? (size_t)(nl - text) : size, s = end;
		while (!split && s > at && text[s - 1] != ' ')
			s--;
		if (end > s) {
			w[n] = text + s;
			wl[n++] = end - s;
		}
		at = end + 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!topic_filter_valid(w[i], wl[i]))
			continue;
		if (!auth_filter_covers(w[i], wl[i], w[i], wl[i]))
			abort();
		for (size_t j = 0; j < n; j++)
			if (topic_name_valid(w[j], wl[j]) &&
			    auth_filter_covers(w[i], wl[i], w[j], wl[j]) !=
				    topic_match(w[i], wl[i], w[j], wl[j]))
				abort();
	}

	struct auth_acl *acl = auth_acl_parse("fuzz", text, acl_len, err, sizeof(err));
	if (acl) {
		fuzz_check(acl, NULL, "c1", w, wl, n);
		fuzz_check(acl, "u1", "c1", w, wl, n);
		fuzz_check(acl, "+", "#", w, wl, n);
		fuzz_check(acl, "a/b", "", w, wl, n);
		fuzz_check(acl, "%u%c", "%c", w, wl, n);
		fuzz_check(acl, NULL, NULL, w, wl, n);
		auth_acl_free(acl);
	}
	free(text);
	return 0;
}
