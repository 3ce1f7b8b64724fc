/* The ACL file: parsing, compiling, per-client resolution and the checks.
 * See auth.h for the semantics. */
#include "auth.h"
#include "../base/err.h"
#include "../topic/topic.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	ACL_SUBST_C = 1, /* the pattern uses %c */
	ACL_SUBST_U = 2, /* the pattern uses %u */
};

/* A rule as written in the file. */
struct acl_rule {
	char *filter;     /* owned, NUL-terminated */
	uint32_t len;
	uint16_t n_c, n_u; /* patterns: number of %c and %u */
	uint8_t access;   /* enum auth_access */
	uint8_t subst;    /* ACL_SUBST_* */
};

struct acl_rules {
	struct acl_rule *v;
	size_t n, cap;
};

struct acl_user {
	char *name;       /* owned, NUL-terminated */
	size_t block;     /* order of its `user` line, for a stable merge */
	struct acl_rules rules;
};

struct auth_acl {
	struct acl_rules anon;     /* topic lines before the first user line */
	struct acl_rules patterns;
	struct acl_user *users;    /* sorted by name, one per name after load */
	size_t n_users, cap_users;
};

/* One level of a compiled filter. */
enum { ACL_LIT, ACL_PLUS, ACL_HASH };
struct acl_level {
	const char *p;
	uint32_t len;
	uint32_t kind;            /* ACL_LIT, ACL_PLUS, ACL_HASH */
};

/* A rule as one client sees it, split into levels once, so a check splits
 * the topic once and compares level by level; filter points into the acl or
 * into the client's pool. */
struct acl_crule {
	const char *filter;
	uint32_t len;
	uint32_t n_levels;        /* '#' included */
	struct acl_level *levels; /* into the client's level array */
	bool hash;                /* ends with '#' */
	bool wild_first;          /* first level is '+' or '#': no '$' topics */
	uint8_t access;
};

struct auth_acl_client {
	bool deny_all;            /* a deny pattern with an unusable identity */
	size_t n_deny, n_allow;
	struct acl_crule *rules;  /* n_deny deny rules, then n_allow allow rules */
	struct acl_level *levels;
	char *pool;               /* the substituted pattern filters */
};

/* ---- parsing ---- */

static bool acl_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Splits the first word off [*p, end): returns its length and moves *p past
 * it and the blanks after it. */
static size_t acl_word(const char **p, const char *end, const char **word)
{
	const char *s = *p, *e = s;
	while (e < end && !acl_blank(*e))
		e++;
	*word = s;
	*p = e;
	while (*p < end && acl_blank(**p))
		(*p)++;
	return (size_t)(e - s);
}

static bool acl_is(const char *w, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(w, lit, n) == 0;
}

static const struct {
	const char *name;
	uint8_t access;
} acl_access_words[] = {
	{ "read", AUTH_READ },
	{ "write", AUTH_WRITE },
	{ "readwrite", AUTH_READWRITE },
	{ "deny", AUTH_DENY },
};

int auth_acl_parse_line(const char *line, struct auth_acl_line *out, char *err, size_t errlen)
{
	const char *p = line, *end = line + strlen(line);
	while (end > p && acl_blank(end[-1]))
		end--;
	while (p < end && acl_blank(*p))
		p++;
	if (p == end || *p == '#')
		return 0;
	const char *kw;
	size_t kwlen = acl_word(&p, end, &kw);
	memset(out, 0, sizeof(*out));
	if (acl_is(kw, kwlen, "user")) {
		if (p == end) {
			snprintf(err, errlen, "user: missing user name");
			return -FM_EINVAL;
		}
		out->kind = AUTH_ACL_USER;
		out->arg = p; /* the rest of the line, as mosquitto */
		out->alen = (size_t)(end - p);
		return 1;
	}
	if (!acl_is(kw, kwlen, "topic") && !acl_is(kw, kwlen, "pattern")) {
		snprintf(err, errlen, "unknown keyword '%.*s' (expected user, topic or pattern)",
			 (int)(kwlen > 64 ? 64 : kwlen), kw);
		return -FM_EINVAL;
	}
	out->kind = kw[0] == 't' ? AUTH_ACL_TOPIC : AUTH_ACL_PATTERN;
	if (p == end) {
		snprintf(err, errlen, "%.*s: missing topic filter", (int)kwlen, kw);
		return -FM_EINVAL;
	}
	const char *w;
	size_t wlen = acl_word(&p, end, &w);
	if (p == end) { /* one word: it is the filter, access readwrite (as mosquitto) */
		out->access = AUTH_READWRITE;
		out->arg = w;
		out->alen = wlen;
	} else {
		for (size_t i = 0; i < sizeof(acl_access_words) / sizeof(acl_access_words[0]); i++)
			if (acl_is(w, wlen, acl_access_words[i].name))
				out->access = acl_access_words[i].access;
		if (!out->access) {
			snprintf(err, errlen,
				 "%.*s: unknown access '%.*s' (expected read, write, readwrite or deny)",
				 (int)kwlen, kw, (int)(wlen > 64 ? 64 : wlen), w);
			return -FM_EINVAL;
		}
		out->arg = p;
		out->alen = (size_t)(end - p);
	}
	if (!topic_filter_valid(out->arg, out->alen)) {
		snprintf(err, errlen, "%.*s: invalid topic filter '%.*s'", (int)kwlen, kw,
			 (int)(out->alen > 200 ? 200 : out->alen), out->arg);
		return -FM_EINVAL;
	}
	return 1;
}

/* ---- compiling ---- */

/* Counts "%c" and "%u" the way they are substituted: left to right, a
 * substituted pair is not rescanned. */
static void acl_count_subst(const char *f, size_t len, uint16_t *n_c, uint16_t *n_u)
{
	*n_c = *n_u = 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (f[i] != '%')
			continue;
		if (f[i + 1] == 'c')
			(*n_c)++, i++;
		else if (f[i + 1] == 'u')
			(*n_u)++, i++;
	}
}

static int acl_rules_add(struct acl_rules *r, const struct auth_acl_line *l, bool pattern)
{
	if (r->n == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 8;
		struct acl_rule *v = realloc(r->v, ncap * sizeof(*v));
		if (!v)
			return -FM_ENOMEM;
		r->v = v;
		r->cap = ncap;
	}
	struct acl_rule *x = &r->v[r->n];
	memset(x, 0, sizeof(*x));
	x->filter = malloc(l->alen + 1);
	if (!x->filter)
		return -FM_ENOMEM;
	memcpy(x->filter, l->arg, l->alen);
	x->filter[l->alen] = '\0';
	x->len = (uint32_t)l->alen; /* a valid filter is at most 65535 bytes */
	x->access = l->access;
	if (pattern) {
		acl_count_subst(x->filter, x->len, &x->n_c, &x->n_u);
		x->subst = (uint8_t)((x->n_c ? ACL_SUBST_C : 0) | (x->n_u ? ACL_SUBST_U : 0));
	}
	r->n++;
	return 0;
}

static void acl_rules_free(struct acl_rules *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].filter);
	free(r->v);
	r->v = NULL;
	r->n = r->cap = 0;
}

static int acl_user_add(struct auth_acl *acl, const char *name, size_t len)
{
	if (acl->n_users == acl->cap_users) {
		size_t ncap = acl->cap_users ? acl->cap_users * 2 : 8;
		struct acl_user *v = realloc(acl->users, ncap * sizeof(*v));
		if (!v)
			return -FM_ENOMEM;
		acl->users = v;
		acl->cap_users = ncap;
	}
	struct acl_user *u = &acl->users[acl->n_users];
	memset(u, 0, sizeof(*u));
	u->name = malloc(len + 1);
	if (!u->name)
		return -FM_ENOMEM;
	memcpy(u->name, name, len);
	u->name[len] = '\0';
	u->block = acl->n_users++;
	return 0;
}

static int acl_user_cmp(const void *x, const void *y)
{
	const struct acl_user *a = x, *b = y;
	int c = strcmp(a->name, b->name);
	return c ? c : (a->block > b->block) - (a->block < b->block);
}

/* Sorts the user blocks and merges blocks of one name into the first. */
static int acl_merge_users(struct auth_acl *acl)
{
	if (acl->n_users == 0)
		return 0;
	qsort(acl->users, acl->n_users, sizeof(*acl->users), acl_user_cmp);
	size_t w = 0;
	for (size_t i = 1; i < acl->n_users; i++) {
		struct acl_user *dst = &acl->users[w], *src = &acl->users[i];
		if (strcmp(dst->name, src->name) != 0) {
			acl->users[++w] = *src;
			continue;
		}
		size_t need = dst->rules.n + src->rules.n;
		if (src->rules.n == 0) { /* "user x" with no rule below it */
			free(src->name);
			continue;
		}
		if (need > dst->rules.cap) {
			struct acl_rule *v = realloc(dst->rules.v, need * sizeof(*v));
			if (!v) {
				/* keep every block reachable for auth_acl_free */
				acl->users[++w] = *src;
				for (size_t j = i + 1; j < acl->n_users; j++)
					acl->users[++w] = acl->users[j];
				acl->n_users = w + 1;
				return -FM_ENOMEM;
			}
			dst->rules.v = v;
			dst->rules.cap = need;
		}
		memcpy(dst->rules.v + dst->rules.n, src->rules.v,
		       src->rules.n * sizeof(*src->rules.v));
		dst->rules.n = need;
		free(src->rules.v);
		free(src->name);
	}
	acl->n_users = w + 1;
	return 0;
}

void auth_acl_free(struct auth_acl *acl)
{
	if (!acl)
		return;
	acl_rules_free(&acl->anon);
	acl_rules_free(&acl->patterns);
	for (size_t i = 0; i < acl->n_users; i++) {
		acl_rules_free(&acl->users[i].rules);
		free(acl->users[i].name);
	}
	free(acl->users);
	free(acl);
}

struct auth_acl *auth_acl_parse(const char *name, const char *text, size_t len, char *err,
				size_t errlen)
{
	struct auth_acl *acl = calloc(1, sizeof(*acl));
	char *line = NULL, msg[320];
	size_t linecap = 0, lineno = 0;
	bool ok = false;
	struct acl_rules *cur; /* where topic lines go */

	if (!acl) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto out;
	}
	cur = &acl->anon;
	for (size_t at = 0; at < len;) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
		lineno++;
		if (memchr(text + at, '\0', n)) {
			snprintf(err, errlen, "%s:%zu: NUL byte in line", name, lineno);
			goto out;
		}
		if (n + 1 > linecap) {
			char *l = realloc(line, n + 1);
			if (!l)
				goto nomem;
			line = l;
			linecap = n + 1;
		}
		memcpy(line, text + at, n);
		line[n] = '\0';
		at += n + 1;

		struct auth_acl_line l;
		int rc = auth_acl_parse_line(line, &l, msg, sizeof(msg));
		if (rc < 0) {
			snprintf(err, errlen, "%s:%zu: %s", name, lineno, msg);
			goto out;
		}
		if (rc == 0)
			continue;
		switch (l.kind) {
		case AUTH_ACL_USER:
			if (acl_user_add(acl, l.arg, l.alen) != 0)
				goto nomem;
			cur = &acl->users[acl->n_users - 1].rules;
			break;
		case AUTH_ACL_TOPIC:
			if (acl_rules_add(cur, &l, false) != 0)
				goto nomem;
			break;
		case AUTH_ACL_PATTERN:
			if (acl_rules_add(&acl->patterns, &l, true) != 0)
				goto nomem;
			break;
		}
		continue;
nomem:
		snprintf(err, errlen, "%s:%zu: out of memory", name, lineno);
		goto out;
	}
	if (acl_merge_users(acl) != 0) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto out;
	}
	ok = true;
out:
	free(line);
	if (!ok) {
		auth_acl_free(acl);
		acl = NULL;
	}
	return acl;
}

struct auth_acl *auth_acl_load(const char *path, char *err, size_t errlen)
{
	struct auth_acl *acl = NULL;
	char *text = NULL;
	size_t len = 0, cap = 0;
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			char *t = realloc(text, ncap);
			if (!t) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto out;
			}
			text = t;
			cap = ncap;
		}
		size_t got = fread(text + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		goto out;
	}
	acl = auth_acl_parse(path, text, len, err, errlen);
out:
	free(text);
	fclose(f);
	return acl;
}

/* ---- per-client resolution ---- */

/* May this identity be put into a pattern? Not when it could widen the rule
 * (a '+' or '#' would read as a wildcard, a '/' adds levels) or when it is
 * missing or empty. */
static bool acl_ident_ok(const char *s)
{
	return s && *s && !strpbrk(s, "+#/");
}

static const struct acl_user *acl_find_user(const struct auth_acl *acl, const char *user)
{
	size_t lo = 0, hi = acl->n_users;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(user, acl->users[mid].name);
		if (c == 0)
			return &acl->users[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Writes r's filter with %c/%u replaced into out; returns its length. */
static size_t acl_subst(const struct acl_rule *r, const char *cid, size_t clen, const char *user,
			size_t ulen, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < r->len; i++) {
		if (r->filter[i] == '%' && i + 1 < r->len) {
			if (r->filter[i + 1] == 'c') {
				memcpy(out + o, cid, clen);
				o += clen;
				i++;
				continue;
			}
			if (r->filter[i + 1] == 'u') {
				memcpy(out + o, user, ulen);
				o += ulen;
				i++;
				continue;
			}
		}
		out[o++] = r->filter[i];
	}
	out[o] = '\0';
	return o;
}

/* Adds a rule to c (deny rules from the front, allow rules from the back)
 * with its levels at c->levels[*lv_at...]. */
static void acl_client_put(struct auth_acl_client *c, size_t *deny_at, size_t *allow_at,
			   size_t *lv_at, const char *filter, size_t len, uint8_t access)
{
	struct acl_crule *r = access == AUTH_DENY ? &c->rules[(*deny_at)++]
						  : &c->rules[(*allow_at)--];
	r->filter = filter;
	r->len = (uint32_t)len;
	r->access = access;
	r->levels = &c->levels[*lv_at];
	r->n_levels = 0;
	for (size_t at = 0;;) {
		const char *slash = memchr(filter + at, '/', len - at);
		size_t end = slash ? (size_t)(slash - filter) : len;
		struct acl_level *l = &r->levels[r->n_levels++];
		l->p = filter + at;
		l->len = (uint32_t)(end - at);
		l->kind = l->len == 1 && *l->p == '+' ? ACL_PLUS
			  : l->len == 1 && *l->p == '#' ? ACL_HASH : ACL_LIT;
		if (!slash)
			break;
		at = end + 1;
	}
	*lv_at += r->n_levels;
	r->hash = r->levels[r->n_levels - 1].kind == ACL_HASH;
	r->wild_first = r->levels[0].kind != ACL_LIT;
}

struct auth_acl_client *auth_acl_client_new(const struct auth_acl *acl, const char *user,
					    const char *client_id)
{
	struct auth_acl_client *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	const struct acl_rules *own = &acl->anon;
	if (user) {
		const struct acl_user *u = acl_find_user(acl, user);
		own = u ? &u->rules : NULL;
	}
	bool c_ok = acl_ident_ok(client_id), u_ok = acl_ident_ok(user);
	size_t clen = c_ok ? strlen(client_id) : 0, ulen = u_ok ? strlen(user) : 0;

	/* which patterns apply, and the room their filters and levels need */
	size_t n = own ? own->n : 0, pool = 0, n_lv = 0;
	for (size_t i = 0; own && i < own->n; i++)
		n_lv += topic_levels(own->v[i].filter, own->v[i].len);
	for (size_t i = 0; i < acl->patterns.n; i++) {
		const struct acl_rule *r = &acl->patterns.v[i];
		if ((r->subst & ACL_SUBST_U) && !user)
			continue; /* no username: the pattern names nobody */
		if (((r->subst & ACL_SUBST_C) && !c_ok) || ((r->subst & ACL_SUBST_U) && !u_ok)) {
			if (r->access == AUTH_DENY)
				c->deny_all = true;
			continue;
		}
		n++;
		pool += r->len + 1 + (size_t)r->n_c * clen + (size_t)r->n_u * ulen;
		n_lv += topic_levels(r->filter, r->len); /* an identity adds no '/' */
	}
	c->rules = calloc(n ? n : 1, sizeof(*c->rules));
	c->pool = malloc(pool ? pool : 1);
	c->levels = calloc(n_lv ? n_lv : 1, sizeof(*c->levels));
	if (!c->rules || !c->pool || !c->levels) {
		auth_acl_client_free(c);
		return NULL;
	}

	/* deny rules fill the array from the front, allow rules from the back */
	size_t deny_at = 0, allow_at = n - 1, p = 0, lv_at = 0;
	for (size_t i = 0; own && i < own->n; i++)
		acl_client_put(c, &deny_at, &allow_at, &lv_at, own->v[i].filter, own->v[i].len,
			       own->v[i].access);
	for (size_t i = 0; i < acl->patterns.n; i++) {
		const struct acl_rule *r = &acl->patterns.v[i];
		if (((r->subst & ACL_SUBST_C) && !c_ok) || ((r->subst & ACL_SUBST_U) && !u_ok))
			continue;
		size_t len = acl_subst(r, client_id, clen, user, ulen, c->pool + p);
		acl_client_put(c, &deny_at, &allow_at, &lv_at, c->pool + p, len, r->access);
		p += len + 1;
	}
	c->n_deny = deny_at;
	c->n_allow = n - deny_at;
	return c;
}

void auth_acl_client_free(struct auth_acl_client *c)
{
	if (!c)
		return;
	free(c->rules);
	free(c->levels);
	free(c->pool);
	free(c);
}

/* ---- checks ---- */

/* A topic name split into levels: level i is [start[i], start[i + 1] - 1). */
#define ACL_SPLIT_MAX 32
struct acl_split {
	uint32_t n;                       /* levels; 0 when too deep to split */
	uint32_t start[ACL_SPLIT_MAX + 1];
};

/* Validates topic name t (as topic_name_valid) and splits it. */
static bool acl_split(const char *t, size_t len, struct acl_split *s)
{
	if (len == 0 || len > TOPIC_MAX_LEN)
		return false;
	s->n = 1;
	s->start[0] = 0;
	for (size_t i = 0; i < len; i++) {
		char ch = t[i];
		if (ch == '/') {
			if (s->n < ACL_SPLIT_MAX)
				s->start[s->n] = (uint32_t)i + 1;
			s->n++;
		} else if (ch == '+' || ch == '#' || ch == '\0') {
			return false;
		}
	}
	if (s->n > ACL_SPLIT_MAX)
		s->n = 0; /* deeper than the array: rules fall back to topic_match */
	else
		s->start[s->n] = (uint32_t)len + 1;
	return true;
}

static bool acl_crule_match(const struct acl_crule *r, const char *t, size_t len,
			    const struct acl_split *s)
{
	if (s->n == 0)
		return topic_match(r->filter, r->len, t, len);
	if (r->hash ? s->n + 1 < r->n_levels : s->n != r->n_levels)
		return false;
	if (r->wild_first && t[0] == '$') /* [MQTT-4.7.2-1] */
		return false;
	for (uint32_t i = 0; i < r->n_levels; i++) {
		const struct acl_level *l = &r->levels[i];
		if (l->kind == ACL_HASH) /* the rest, the parent level included */
			return true;
		if (l->kind == ACL_PLUS)
			continue;
		uint32_t at = s->start[i], n = s->start[i + 1] - 1 - at;
		if (l->len != n || memcmp(l->p, t + at, n) != 0)
			return false;
	}
	return true;
}

static bool acl_client_check(const struct auth_acl_client *c, const char *t, size_t len,
			     uint8_t access)
{
	struct acl_split s;
	if (c->deny_all || !acl_split(t, len, &s))
		return false;
	for (size_t i = 0; i < c->n_deny; i++)
		if (acl_crule_match(&c->rules[i], t, len, &s))
			return false;
	for (size_t i = c->n_deny; i < c->n_deny + c->n_allow; i++)
		if ((c->rules[i].access & access) && acl_crule_match(&c->rules[i], t, len, &s))
			return true;
	return false;
}

bool auth_acl_client_can_publish(const struct auth_acl_client *c, const char *topic, size_t len)
{
	return acl_client_check(c, topic, len, AUTH_WRITE);
}

bool auth_acl_client_can_read(const struct auth_acl_client *c, const char *topic, size_t len)
{
	return acl_client_check(c, topic, len, AUTH_READ);
}

uint8_t auth_acl_client_can_subscribe(const struct auth_acl_client *c, const char *filter,
				      size_t len)
{
	const char *group, *f;
	size_t glen, flen;
	if (!topic_filter_valid(filter, len) ||
	    topic_share_split(filter, len, &group, &glen, &f, &flen) < 0 ||
	    !topic_filter_valid(f, flen))
		return AUTH_SUB_FILTER_INVALID;
	if (c->deny_all)
		return AUTH_SUB_NOT_AUTHORIZED;
	for (size_t i = 0; i < c->n_deny; i++)
		if (auth_filter_covers(c->rules[i].filter, c->rules[i].len, f, flen))
			return AUTH_SUB_NOT_AUTHORIZED;
	for (size_t i = c->n_deny; i < c->n_deny + c->n_allow; i++)
		if ((c->rules[i].access & AUTH_READ) &&
		    auth_filter_covers(c->rules[i].filter, c->rules[i].len, f, flen))
			return AUTH_SUB_GRANTED;
	return AUTH_SUB_NOT_AUTHORIZED;
}

bool auth_acl_can_publish(const struct auth_acl *acl, const char *user, const char *client_id,
			  const char *topic, size_t len)
{
	struct auth_acl_client *c = auth_acl_client_new(acl, user, client_id);
	bool ok = c && auth_acl_client_can_publish(c, topic, len);
	auth_acl_client_free(c);
	return ok;
}

bool auth_acl_can_read(const struct auth_acl *acl, const char *user, const char *client_id,
		       const char *topic, size_t len)
{
	struct auth_acl_client *c = auth_acl_client_new(acl, user, client_id);
	bool ok = c && auth_acl_client_can_read(c, topic, len);
	auth_acl_client_free(c);
	return ok;
}

uint8_t auth_acl_can_subscribe(const struct auth_acl *acl, const char *user,
			       const char *client_id, const char *filter, size_t len)
{
	struct auth_acl_client *c = auth_acl_client_new(acl, user, client_id);
	uint8_t rc = c ? auth_acl_client_can_subscribe(c, filter, len) : AUTH_SUB_NOT_AUTHORIZED;
	auth_acl_client_free(c);
	return rc;
}

/* ---- filter coverage ---- */

/* End of the level starting at `at` (the index of the next '/' or len). */
static size_t acl_level_end(const char *p, size_t len, size_t at)
{
	const char *s = at < len ? memchr(p + at, '/', len - at) : NULL;
	return s ? (size_t)(s - p) : len;
}

static bool acl_level_is(const char *p, size_t at, size_t end, char c)
{
	return end - at == 1 && p[at] == c;
}

bool auth_filter_covers(const char *outer, size_t olen, const char *inner, size_t ilen)
{
	/* [MQTT-4.7.2-1]: a first-level wildcard in outer does not reach the
	 * '$' names that a literal "$..." first level in inner matches */
	if (olen > 0 && ilen > 0 && (outer[0] == '+' || outer[0] == '#') && inner[0] == '$')
		return false;
	size_t oa = 0, ia = 0;
	for (;;) {
		size_t oe = acl_level_end(outer, olen, oa), ie = acl_level_end(inner, ilen, ia);
		if (acl_level_is(outer, oa, oe, '#'))
			return true;  /* the rest, the parent level included */
		if (acl_level_is(inner, ia, ie, '#'))
			/* inner reaches deeper than outer's fixed depth, and includes the
			 * parent level; only at the top is there no parent, where "+/#"
			 * matches every name as "#" does */
			return ia == 0 && olen == 3 && memcmp(outer, "+/#", 3) == 0;
		if (acl_level_is(inner, ia, ie, '+')) {
			if (!acl_level_is(outer, oa, oe, '+'))
				return false;
		} else if (!acl_level_is(outer, oa, oe, '+') &&
			   (oe - oa != ie - ia || memcmp(outer + oa, inner + ia, ie - ia) != 0)) {
			return false;
		}
		bool o_end = oe == olen, i_end = ie == ilen;
		if (i_end)   /* "a" is covered by "a" and by "a/#" */
			return o_end || (olen - oe == 2 && outer[oe + 1] == '#');
		if (o_end)
			return false;
		oa = oe + 1;
		ia = ie + 1;
	}
}
