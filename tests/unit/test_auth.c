/* Unit tests for src/auth: base64, password lines (mosquitto's vectors),
 * the password table, ACL lines, filter coverage and the ACL checks,
 * including the plant gateway rules; client_id_pattern and user lists. */
#include "auth/auth.h"
#include "auth/internal.h"
#include "base/err.h"
#include "topic/topic.h"
#include "check.h"
#include <stdint.h>
#include <unistd.h>

#define S(s) s, strlen(s)
#define P(s) (const uint8_t *)s, strlen(s)

/* Made by Debian's mosquitto_passwd 2.0.11:
 *   mosquitto_passwd -c -b pw alice 'secret pw'
 *   mosquitto_passwd -H sha512 -b pw bob hunter2
 *   mosquitto_passwd -I 5 -b pw x y */
#define MOSQ_ALICE "alice:$7$101$TXtGcX3tsX9mfJLQ$6ZVuRX50t/PwBfdS2CjhBdqTkPXCknhzihywaMC0ovsKwHMEYGmRBPcOw6fcFxHeHM0P2o+5FPLc9qpFbwZIrw=="
#define MOSQ_BOB "bob:$6$3kIzAK/znPgMu2bf$YlxkpaTdmSTENQC19U/Le72m29Yaxerazz1aSC6uZcVzlmsf7ISUK7hIoDzojDw5xb8E3q7jL3dvTDPbgWjOKg=="
#define MOSQ_X "x:$7$5$h0HrbXNqHAcXXvdj$1spw8GxJ+PneS+RLP9BRBRunr0vdOPiTw0PMTY6H5FFJBD0BIxk5B1yUSJ05blk7xX6/afW+Ux6PBNxSk841/A=="

static char tmpdir[] = "/tmp/test_auth.XXXXXX";

/* Writes text to tmpdir/name and returns the path (static buffer). */
static const char *write_file(const char *name, const char *text)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	if (!f) {
		CHECK_FAIL("cannot write %s", path);
		return path;
	}
	fputs(text, f);
	fclose(f);
	return path;
}

/* ---- base64 ---- */

static void test_b64(void)
{
	static const struct {
		const char *raw, *enc;
	} v[] = { { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		  { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" } };
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char enc[32];
		uint8_t dec[32];
		size_t n = auth__b64_encode((const uint8_t *)v[i].raw, strlen(v[i].raw), enc);
		ASSERT_STRN(enc, n, v[i].enc);
		ASSERT_EQ(auth__b64_decode(S(v[i].enc), dec, sizeof(dec)), strlen(v[i].raw));
		ASSERT_MEM(dec, v[i].raw, strlen(v[i].raw));
	}
	uint8_t d[8];
	ASSERT_EQ(auth__b64_decode(S("Zg"), d, sizeof(d)), 1);      /* padding optional */
	ASSERT_EQ(auth__b64_decode(S("Zm8"), d, sizeof(d)), 2);
	ASSERT_EQ(auth__b64_decode(S("Z"), d, sizeof(d)), -1);
	ASSERT_EQ(auth__b64_decode(S("Zg="), d, sizeof(d)), -1);
	ASSERT_EQ(auth__b64_decode(S("Zg==="), d, sizeof(d)), -1);
	ASSERT_EQ(auth__b64_decode(S("Z=g="), d, sizeof(d)), -1);
	ASSERT_EQ(auth__b64_decode(S("Zm9v\n"), d, sizeof(d)), -1);
	ASSERT_EQ(auth__b64_decode(S("Zm-_"), d, sizeof(d)), -1);   /* URL alphabet */
	ASSERT_EQ(auth__b64_decode(S("Zm9vYmFy"), d, 5), -1);       /* too long */
}

/* ---- password lines ---- */

static void test_passwd_parse_mosquitto(void)
{
	struct auth_passwd_entry e;
	char err[200];
	ASSERT_EQ(auth_passwd_parse_line(MOSQ_ALICE "\n", &e, err, sizeof(err)), 1);
	ASSERT_STRN(e.user, e.ulen, "alice");
	ASSERT_EQ(e.type, AUTH_HASH_PBKDF2);
	ASSERT_EQ(e.iterations, 101);
	ASSERT_EQ(e.salt_len, 12);
	ASSERT_TRUE(auth_passwd_entry_verify(&e, P("secret pw")));
	ASSERT_FALSE(auth_passwd_entry_verify(&e, P("secret pW")));
	ASSERT_FALSE(auth_passwd_entry_verify(&e, P("")));

	ASSERT_EQ(auth_passwd_parse_line(MOSQ_BOB "\r\n", &e, err, sizeof(err)), 1);
	ASSERT_STRN(e.user, e.ulen, "bob");
	ASSERT_EQ(e.type, AUTH_HASH_SHA512);
	ASSERT_EQ(e.iterations, 0);
	ASSERT_TRUE(auth_passwd_entry_verify(&e, P("hunter2")));
	ASSERT_FALSE(auth_passwd_entry_verify(&e, P("hunter3")));

	ASSERT_EQ(auth_passwd_parse_line(MOSQ_X, &e, err, sizeof(err)), 1);
	ASSERT_EQ(e.iterations, 5);
	ASSERT_TRUE(auth_passwd_entry_verify(&e, P("y")));
}

static void test_passwd_parse_errors(void)
{
	static const struct {
		const char *line;
		int rc;
		const char *msg; /* a part of the message */
	} v[] = {
		{ "", 0, NULL },
		{ "   \t\r\n", 0, NULL },
		{ "# alice:$7$...", 0, NULL },
		{ "  # indented comment", 0, NULL },
		{ "alice", -FM_EINVAL, "expected user:" },
		{ ":$6$3kIzAK/znPgMu2bf$YlxkpaTdmSTENQC19U/Le72m29Yaxerazz1aSC6uZcVzlmsf7ISUK7hIoDzojDw5xb8E3q7jL3dvTDPbgWjOKg==",
		  -FM_EINVAL, "empty username" },
		{ " bob:$6$x$y", -FM_EINVAL, "whitespace" },
		{ "alice:plaintext", -FM_EINVAL, "unknown password hash" },
		{ "alice:$5$abc$def", -FM_EINVAL, "unknown password hash" },
		{ "alice:$7$", -FM_EINVAL, "iterations" },
		{ "alice:$7$0$TXtGcX3tsX9mfJLQ$AAAA", -FM_EINVAL, "iterations" },
		{ "alice:$7$-1$TXtGcX3tsX9mfJLQ$AAAA", -FM_EINVAL, "iterations" },
		{ "alice:$7$2147483648$TXtGcX3tsX9mfJLQ$AAAA", -FM_EINVAL, "iterations" },
		{ "alice:$7$99999999999999999999999$TXtGcX3tsX9mfJLQ$AAAA", -FM_EINVAL, "iterations" },
		{ "alice:$7$101", -FM_EINVAL, "iterations" },
		{ "alice:$7$101$TXtGcX3tsX9mfJLQ", -FM_EINVAL, "missing '$'" },
		{ "alice:$7$101$$AAAA", -FM_EINVAL, "salt" },
		{ "alice:$7$101$TXt!cX3tsX9mfJLQ$AAAA", -FM_EINVAL, "salt" },
		{ "alice:$7$101$TXtGcX3tsX9mfJLQ$AAAA", -FM_EINVAL, "hash is not base64 of 64" },
		{ MOSQ_ALICE "$", -FM_EINVAL, "hash" },
		{ MOSQ_ALICE " trailing", -FM_EINVAL, "hash" },
		{ "al\x01ice:$6$x$y", -FM_EINVAL, "control character" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct auth_passwd_entry e;
		char err[200] = "";
		int rc = auth_passwd_parse_line(v[i].line, &e, err, sizeof(err));
		if (rc != v[i].rc)
			CHECK_FAIL("'%s': rc %d, want %d (%s)", v[i].line, rc, v[i].rc, err);
		if (v[i].msg && !strstr(err, v[i].msg))
			CHECK_FAIL("'%s': message '%s' lacks '%s'", v[i].line, err, v[i].msg);
	}
}

static void test_passwd_make_format(void)
{
	for (int t = 6; t <= 7; t++) {
		struct auth_passwd_entry e = { .user = "dev7", .ulen = 4 }, back;
		char line[AUTH_PASSWD_LINE_MAX(4)], err[200];
		const uint8_t *secret = (const uint8_t *)"pw\0with nul"; /* binary: 11 bytes */
		ASSERT_EQ(auth_passwd_entry_make(&e, (enum auth_hash_type)t, 1000, secret, 11), 0);
		ASSERT_TRUE(auth_passwd_entry_verify(&e, secret, 11));
		int n = auth_passwd_format(&e, line, sizeof(line));
		ASSERT_TRUE(n > 0);
		ASSERT_EQ(strlen(line), n);
		ASSERT_TRUE(strncmp(line, t == 7 ? "dev7:$7$1000$" : "dev7:$6$", t == 7 ? 13 : 8) == 0);
		ASSERT_EQ(auth_passwd_parse_line(line, &back, err, sizeof(err)), 1);
		ASSERT_STRN(back.user, back.ulen, "dev7");
		ASSERT_EQ(back.type, t);
		ASSERT_EQ(back.salt_len, AUTH_SALT_LEN);
		ASSERT_MEM(back.salt, e.salt, AUTH_SALT_LEN);
		ASSERT_MEM(back.hash, e.hash, AUTH_HASH_LEN);
		ASSERT_TRUE(auth_passwd_entry_verify(&back, P("pw")) == false);
		ASSERT_EQ(auth_passwd_format(&e, line, 20), -FM_ELIMIT);
	}
	struct auth_passwd_entry e = { .user = "a:b", .ulen = 3 };
	char line[300];
	ASSERT_EQ(auth_passwd_entry_make(&e, AUTH_HASH_PBKDF2, 0, P("x")), -FM_EINVAL);
	ASSERT_EQ(auth_passwd_entry_make(&e, (enum auth_hash_type)5, 1, P("x")), -FM_EINVAL);
	ASSERT_EQ(auth_passwd_entry_make(&e, AUTH_HASH_PBKDF2, 1, P("x")), 0);
	ASSERT_EQ(auth_passwd_format(&e, line, sizeof(line)), -FM_EINVAL); /* ':' in name */
}

static void test_passwd_load_check(void)
{
	char err[300];
	const char *path = write_file("pw", "# made by mosquitto_passwd\n" MOSQ_ALICE "\n\n" MOSQ_BOB
					    "\n" MOSQ_X); /* no final newline */
	struct auth_passwd *pw = auth_passwd_load(path, err, sizeof(err));
	ASSERT_TRUE(pw != NULL);
	if (!pw) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	ASSERT_EQ(auth_passwd_count(pw), 3);
	ASSERT_TRUE(auth_passwd_check(pw, S("alice"), P("secret pw")));
	ASSERT_FALSE(auth_passwd_check(pw, S("alice"), P("hunter2")));
	ASSERT_TRUE(auth_passwd_check(pw, S("bob"), P("hunter2")));
	ASSERT_TRUE(auth_passwd_check(pw, S("x"), P("y")));
	ASSERT_FALSE(auth_passwd_check(pw, S("alic"), P("secret pw")));
	ASSERT_FALSE(auth_passwd_check(pw, S("alicee"), P("secret pw")));
	ASSERT_FALSE(auth_passwd_check(pw, "alice", 4, P("secret pw")));
	ASSERT_FALSE(auth_passwd_check(pw, S("nobody"), P("")));
	ASSERT_FALSE(auth_passwd_check(pw, NULL, 0, P("secret pw")));
	auth_passwd_free(pw);

	/* an empty file is valid: nobody can log in */
	pw = auth_passwd_load(write_file("empty", "# nobody\n"), err, sizeof(err));
	ASSERT_TRUE(pw != NULL);
	if (pw) {
		ASSERT_EQ(auth_passwd_count(pw), 0);
		ASSERT_FALSE(auth_passwd_check(pw, S("alice"), P("secret pw")));
		auth_passwd_free(pw);
	}
}

static void test_passwd_load_errors(void)
{
	char err[300], want[300];
	const char *path = write_file("dup", MOSQ_ALICE "\n" MOSQ_BOB "\n# c\n" MOSQ_ALICE "\n");
	ASSERT_TRUE(auth_passwd_load(path, err, sizeof(err)) == NULL);
	snprintf(want, sizeof(want), "%s:4: user 'alice' already defined on line 1", path);
	ASSERT_STRN(err, strlen(err), want);

	path = write_file("bad", MOSQ_ALICE "\n\nbob:$6$x\n");
	ASSERT_TRUE(auth_passwd_load(path, err, sizeof(err)) == NULL);
	snprintf(want, sizeof(want), "%s:3: missing '$' between salt and hash", path);
	ASSERT_STRN(err, strlen(err), want);

	ASSERT_TRUE(auth_passwd_load("/nonexistent/pw", err, sizeof(err)) == NULL);
	ASSERT_STRN(err, strlen(err), "/nonexistent/pw: No such file or directory");
}

/* ---- ACL lines ---- */

static void test_acl_parse_line(void)
{
	static const struct {
		const char *line;
		int rc;
		uint8_t kind, access;
		const char *arg; /* or a part of the error message */
	} v[] = {
		{ "", 0, 0, 0, NULL },
		{ "# topic read #", 0, 0, 0, NULL },
		{ "   # x", 0, 0, 0, NULL },
		{ "user alice", 1, AUTH_ACL_USER, 0, "alice" },
		{ "user  two words \r\n", 1, AUTH_ACL_USER, 0, "two words" },
		{ "topic a/b", 1, AUTH_ACL_TOPIC, AUTH_READWRITE, "a/b" },
		{ "topic read a/+/c", 1, AUTH_ACL_TOPIC, AUTH_READ, "a/+/c" },
		{ "topic write #", 1, AUTH_ACL_TOPIC, AUTH_WRITE, "#" },
		{ "\ttopic\treadwrite\t$SYS/#\t", 1, AUTH_ACL_TOPIC, AUTH_READWRITE, "$SYS/#" },
		{ "topic deny secret/#", 1, AUTH_ACL_TOPIC, AUTH_DENY, "secret/#" },
		{ "topic read a b", 1, AUTH_ACL_TOPIC, AUTH_READ, "a b" },
		{ "topic read", 1, AUTH_ACL_TOPIC, AUTH_READWRITE, "read" }, /* as mosquitto */
		{ "pattern write plants/+/devices/%u/#", 1, AUTH_ACL_PATTERN, AUTH_WRITE,
		  "plants/+/devices/%u/#" },
		{ "pattern %c/x", 1, AUTH_ACL_PATTERN, AUTH_READWRITE, "%c/x" },
		{ "user", -FM_EINVAL, 0, 0, "missing user name" },
		{ "user   ", -FM_EINVAL, 0, 0, "missing user name" },
		{ "topic", -FM_EINVAL, 0, 0, "missing topic filter" },
		{ "pattern  ", -FM_EINVAL, 0, 0, "missing topic filter" },
		{ "topic rw a/b", -FM_EINVAL, 0, 0, "unknown access 'rw'" },
		{ "topic read a/#/b", -FM_EINVAL, 0, 0, "invalid topic filter 'a/#/b'" },
		{ "topic read a+", -FM_EINVAL, 0, 0, "invalid topic filter" },
		{ "pattern write dev%c+/x", -FM_EINVAL, 0, 0, "invalid topic filter" },
		{ "topics read a", -FM_EINVAL, 0, 0, "unknown keyword 'topics'" },
		{ "auth_plugin x", -FM_EINVAL, 0, 0, "unknown keyword" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct auth_acl_line l;
		char err[320] = "";
		int rc = auth_acl_parse_line(v[i].line, &l, err, sizeof(err));
		if (rc != v[i].rc) {
			CHECK_FAIL("'%s': rc %d, want %d (%s)", v[i].line, rc, v[i].rc, err);
			continue;
		}
		if (rc < 0 && !strstr(err, v[i].arg))
			CHECK_FAIL("'%s': message '%s' lacks '%s'", v[i].line, err, v[i].arg);
		if (rc != 1)
			continue;
		ASSERT_EQ(l.kind, v[i].kind);
		ASSERT_EQ(l.access, v[i].access);
		ASSERT_STRN(l.arg, l.alen, v[i].arg);
	}
}

static void test_acl_load_errors(void)
{
	char err[400], want[400];
	const char *path = write_file("acl", "# x\ntopic read a\n\nuser u\ntopic reed b\n");
	ASSERT_TRUE(auth_acl_load(path, err, sizeof(err)) == NULL);
	snprintf(want, sizeof(want),
		 "%s:5: topic: unknown access 'reed' (expected read, write, readwrite or deny)", path);
	ASSERT_STRN(err, strlen(err), want);

	path = write_file("acl2", "user u\npattern read a/#/%c\n");
	ASSERT_TRUE(auth_acl_load(path, err, sizeof(err)) == NULL);
	snprintf(want, sizeof(want), "%s:2: pattern: invalid topic filter 'a/#/%%c'", path);
	ASSERT_STRN(err, strlen(err), want);

	ASSERT_TRUE(auth_acl_parse("mem", "topic a\0b\n", 10, err, sizeof(err)) == NULL);
	ASSERT_STRN(err, strlen(err), "mem:1: NUL byte in line");

	ASSERT_TRUE(auth_acl_load("/nonexistent/acl", err, sizeof(err)) == NULL);
	ASSERT_STRN(err, strlen(err), "/nonexistent/acl: No such file or directory");
}

/* ---- filter coverage ---- */

static void test_filter_covers_table(void)
{
	static const struct {
		const char *outer, *inner;
		bool want;
	} v[] = {
		{ "#", "#", true },
		{ "#", "a/b/c", true },
		{ "#", "+/+", true },
		{ "#", "$SYS/x", false },        /* [MQTT-4.7.2-1] */
		{ "+/#", "$SYS/#", false },
		{ "+", "$SYS", false },
		{ "$SYS/#", "$SYS/broker/#", true },
		{ "$SYS/#", "$SYS", true },
		{ "$SYS/#", "#", false },
		{ "#", "+/x", true },             /* '+' first: no $ names */
		{ "+/#", "#", true },             /* both match every name but $ ones */
		{ "+/#", "+", true },
		{ "a/+/#", "a/#", false },        /* "a/#" matches "a" */
		{ "a/#", "a", true },             /* "a/#" matches the parent */
		{ "a/#", "a/#", true },
		{ "a/#", "a/+", true },
		{ "a/#", "a/b/+/#", true },
		{ "a/#", "b", false },
		{ "a/#", "#", false },
		{ "a/#", "+/b", false },
		{ "a/+", "a/b", true },
		{ "a/+", "a/+", true },
		{ "a/+", "a", false },
		{ "a/+", "a/#", false },
		{ "a/+", "a/b/c", false },
		{ "a/+/#", "a", false },
		{ "a/+/#", "a/b", true },
		{ "a/b", "a/b", true },
		{ "a/b", "a/+", false },
		{ "a/b", "a/bc", false },
		{ "a/bc", "a/b", false },
		{ "a", "a/b", false },
		{ "a/b", "a", false },
		{ "+/+", "a/b", true },
		{ "+/+", "a//", false },
		{ "+/+/", "a//", true },
		{ "a//b", "a/+/b", false },
		{ "a/+/b", "a//b", true },
		{ "/#", "/a", true },
		{ "/#", "a", false },
		{ "+/#", "/a", true },
		{ "plants/+/devices/+/#", "plants/+/devices/+/#", true },
		{ "plants/+/devices/+/#", "plants/p1/devices/+/temp", true },
		{ "plants/+/devices/+/#", "plants/#", false },
		{ "plants/+/devices/dev7/commands/#", "plants/p1/devices/dev7/commands/#", true },
		{ "plants/+/devices/dev7/commands/#", "plants/+/devices/+/commands/#", false },
		{ "plants/+/devices/dev7/commands/#", "plants/p1/devices/dev8/commands/#", false },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (auth_filter_covers(S(v[i].outer), S(v[i].inner)) != v[i].want)
			CHECK_FAIL("covers(%s, %s) != %d", v[i].outer, v[i].inner, v[i].want);
}

/* Every filter and name of up to `depth` levels over `alphabet`, '/'-joined. */
static size_t gen_topics(const char *const *alphabet, size_t n_alpha, int depth, char out[][16],
			 size_t max)
{
	size_t n = 0;
	size_t total = 1;
	for (int d = 1; d <= depth; d++) {
		total *= n_alpha;
		for (size_t k = 0; k < total && n < max; k++) {
			char s[16] = "";
			size_t x = k;
			for (int l = 0; l < d; l++) {
				if (l)
					strcat(s, "/");
				strcat(s, alphabet[x % n_alpha]);
				x /= n_alpha;
			}
			strcpy(out[n++], s);
		}
	}
	return n;
}

/* covers(o, i) must hold exactly when every name matched by i is matched by o,
 * over a universe of names rich enough to witness every difference for
 * filters of up to 3 levels (a fresh literal "c", an empty level, a '$' level
 * and one level more than the deepest filter). */
static void test_filter_covers_exhaustive(void)
{
	static const char *const falpha[] = { "a", "b", "$s", "", "+", "#" };
	static const char *const nalpha[] = { "a", "b", "$s", "", "c" };
	static char filters[400][16], names[1000][16];
	size_t nf = gen_topics(falpha, 6, 3, filters, 400);
	size_t nn = gen_topics(nalpha, 5, 4, names, 1000);
	size_t checked = 0;
	for (size_t o = 0; o < nf; o++) {
		if (!topic_filter_valid(S(filters[o])))
			continue;
		for (size_t i = 0; i < nf; i++) {
			if (!topic_filter_valid(S(filters[i])))
				continue;
			bool subset = true;
			for (size_t k = 0; k < nn && subset; k++)
				if (topic_match(S(filters[i]), S(names[k])) &&
				    !topic_match(S(filters[o]), S(names[k])))
					subset = false;
			checked++;
			if (auth_filter_covers(S(filters[o]), S(filters[i])) != subset)
				CHECK_FAIL("covers('%s', '%s') != %d", filters[o], filters[i], subset);
		}
	}
	ASSERT_TRUE(checked > 10000);
}

/* ---- ACL checks ---- */

static struct auth_acl *acl_from(const char *text)
{
	char err[400];
	struct auth_acl *acl = auth_acl_parse("test.acl", text, strlen(text), err, sizeof(err));
	if (!acl)
		CHECK_FAIL("acl: %s", err);
	return acl;
}

#define PUB(acl, u, c, t) auth_acl_can_publish(acl, u, c, S(t))
#define READ(acl, u, c, t) auth_acl_can_read(acl, u, c, S(t))
#define SUB(acl, u, c, f) (auth_acl_can_subscribe(acl, u, c, S(f)) == AUTH_SUB_GRANTED)

/* The seed's plant rules: a gateway logs in with its device id as username. */
static const char plant_acl[] =
	"# gateways: each under its own device, in any plant\n"
	"pattern write plants/+/devices/%u/#\n"
	"pattern read plants/+/devices/%u/commands/#\n"
	"\n"
	"user cloud-historian\n"
	"topic read plants/+/devices/+/#\n"
	"\n"
	"user admin\n"
	"topic read $SYS/#\n";

static void test_acl_plant(void)
{
	struct auth_acl *acl = acl_from(plant_acl);
	if (!acl)
		return;
	/* gateway dev7 */
	ASSERT_TRUE(PUB(acl, "dev7", "gw-7", "plants/p1/devices/dev7/temp"));
	ASSERT_TRUE(PUB(acl, "dev7", "gw-7", "plants/p1/devices/dev7"));
	ASSERT_FALSE(PUB(acl, "dev7", "gw-7", "plants/p1/devices/dev8/temp"));
	ASSERT_FALSE(PUB(acl, "dev7", "gw-7", "plants/p1/devices/dev77/temp"));
	ASSERT_FALSE(PUB(acl, "dev7", "gw-7", "plants/p1/devices"));
	ASSERT_FALSE(PUB(acl, "dev7", "gw-7", "plants/p1/devices/+/temp")); /* not a name */
	ASSERT_TRUE(SUB(acl, "dev7", "gw-7", "plants/p1/devices/dev7/commands/#"));
	ASSERT_TRUE(SUB(acl, "dev7", "gw-7", "plants/+/devices/dev7/commands/+"));
	ASSERT_TRUE(SUB(acl, "dev7", "gw-7", "$share/g/plants/p1/devices/dev7/commands/#"));
	ASSERT_FALSE(SUB(acl, "dev7", "gw-7", "plants/p1/devices/dev8/commands/#"));
	ASSERT_FALSE(SUB(acl, "dev7", "gw-7", "plants/+/devices/+/commands/#"));
	ASSERT_FALSE(SUB(acl, "dev7", "gw-7", "plants/p1/devices/dev7/#")); /* write only */
	ASSERT_FALSE(SUB(acl, "dev7", "gw-7", "#"));
	ASSERT_TRUE(READ(acl, "dev7", "gw-7", "plants/p1/devices/dev7/commands/reboot"));
	ASSERT_FALSE(READ(acl, "dev7", "gw-7", "plants/p1/devices/dev7/temp"));
	ASSERT_FALSE(READ(acl, "dev7", "gw-7", "plants/p1/devices/dev8/commands/reboot"));
	ASSERT_FALSE(PUB(acl, "dev7", "gw-7", "plants/p1/devices/dev8/commands/reboot"));

	/* the cloud service reads every device, writes nothing */
	ASSERT_TRUE(SUB(acl, "cloud-historian", "hist-1", "plants/+/devices/+/#"));
	ASSERT_TRUE(SUB(acl, "cloud-historian", "hist-1", "plants/p1/devices/dev8/temp"));
	ASSERT_FALSE(SUB(acl, "cloud-historian", "hist-1", "plants/#"));
	ASSERT_FALSE(SUB(acl, "cloud-historian", "hist-1", "#"));
	ASSERT_TRUE(READ(acl, "cloud-historian", "hist-1", "plants/p1/devices/dev7/temp"));
	ASSERT_FALSE(PUB(acl, "cloud-historian", "hist-1", "plants/p1/devices/dev7/commands/x"));
	/* patterns apply to every user: a username "cloud-historian" device subtree */
	ASSERT_TRUE(PUB(acl, "cloud-historian", "hist-1", "plants/p1/devices/cloud-historian/x"));

	/* $SYS: admin only */
	ASSERT_TRUE(SUB(acl, "admin", "ops", "$SYS/#"));
	ASSERT_TRUE(SUB(acl, "admin", "ops", "$SYS/broker/clients/+"));
	ASSERT_TRUE(READ(acl, "admin", "ops", "$SYS/broker/uptime"));
	ASSERT_FALSE(PUB(acl, "admin", "ops", "$SYS/broker/uptime"));
	ASSERT_FALSE(READ(acl, "admin", "ops", "plants/p1/devices/dev7/temp"));
	const char *others[] = { "dev7", "cloud-historian", "nobody", NULL };
	for (size_t i = 0; i < 4; i++) {
		ASSERT_FALSE(SUB(acl, others[i], "c", "$SYS/#"));
		ASSERT_FALSE(SUB(acl, others[i], "c", "#"));
		ASSERT_FALSE(READ(acl, others[i], "c", "$SYS/broker/uptime"));
	}
	/* anonymous: no rules before the first user line, %u patterns skipped */
	ASSERT_FALSE(PUB(acl, NULL, "c", "plants/p1/devices/c/x"));
	ASSERT_FALSE(PUB(acl, NULL, "c", "plants/p1/devices//x"));
	/* a username that would widen the pattern matches nothing */
	ASSERT_FALSE(PUB(acl, "+", "c", "plants/p1/devices/dev8/temp"));
	ASSERT_FALSE(PUB(acl, "#", "c", "plants/p1/devices/dev8/temp"));
	ASSERT_FALSE(PUB(acl, "dev8/temp", "c", "plants/p1/devices/dev8/temp"));
	ASSERT_FALSE(PUB(acl, "", "c", "plants/p1/devices//temp"));
	ASSERT_FALSE(SUB(acl, "+", "c", "plants/p1/devices/+/commands/#"));
	auth_acl_free(acl);
}

/* The same, binding the plant too: username = plant, client id = device.
 * (Weaker: every gateway of a plant shares its credentials.) */
static void test_acl_plant_client_id(void)
{
	struct auth_acl *acl = acl_from("pattern write plants/%u/devices/%c/#\n");
	if (!acl)
		return;
	ASSERT_TRUE(PUB(acl, "p1", "dev7", "plants/p1/devices/dev7/temp"));
	ASSERT_FALSE(PUB(acl, "p1", "dev7", "plants/p2/devices/dev7/temp"));
	ASSERT_FALSE(PUB(acl, "p1", "dev7", "plants/p1/devices/dev8/temp"));
	ASSERT_FALSE(PUB(acl, "p1", "+", "plants/p1/devices/dev8/temp"));
	ASSERT_FALSE(PUB(acl, "p1", "#", "plants/p1/devices/dev8/temp"));
	ASSERT_FALSE(PUB(acl, "p1", "dev8/x", "plants/p1/devices/dev8/x/temp"));
	ASSERT_FALSE(PUB(acl, "p1", NULL, "plants/p1/devices/dev8/temp"));
	ASSERT_FALSE(PUB(acl, NULL, "dev7", "plants//devices/dev7/temp"));
	auth_acl_free(acl);
}

static void test_acl_anonymous_and_users(void)
{
	struct auth_acl *acl = acl_from("topic read public/#\n"
					"topic write inbox\n"
					"user alice\n"
					"topic alice/#\n"
					"user bob\n"
					"topic read bob/#\n"
					"user alice\n" /* a second block for alice: merged */
					"topic read shared/+\n"
					"pattern readwrite clients/%c/#\n");
	if (!acl)
		return;
	/* anonymous */
	ASSERT_TRUE(READ(acl, NULL, "c1", "public/news"));
	ASSERT_TRUE(SUB(acl, NULL, "c1", "public/#"));
	ASSERT_FALSE(PUB(acl, NULL, "c1", "public/news"));
	ASSERT_TRUE(PUB(acl, NULL, "c1", "inbox"));
	ASSERT_FALSE(PUB(acl, NULL, "c1", "alice/x"));
	ASSERT_TRUE(PUB(acl, NULL, "c1", "clients/c1/x"));      /* %c patterns apply */
	ASSERT_FALSE(PUB(acl, NULL, "c1", "clients/c2/x"));
	/* users do not get the anonymous rules */
	ASSERT_FALSE(READ(acl, "alice", "c1", "public/news"));
	ASSERT_FALSE(PUB(acl, "alice", "c1", "inbox"));
	ASSERT_TRUE(PUB(acl, "alice", "c1", "alice/x"));
	ASSERT_TRUE(READ(acl, "alice", "c1", "alice"));
	ASSERT_TRUE(READ(acl, "alice", "c1", "shared/x"));
	ASSERT_FALSE(PUB(acl, "alice", "c1", "shared/x"));
	ASSERT_TRUE(PUB(acl, "alice", "c1", "clients/c1/y"));
	ASSERT_FALSE(PUB(acl, "bob", "c1", "bob/x"));
	ASSERT_TRUE(READ(acl, "bob", "c1", "bob/x"));
	ASSERT_FALSE(READ(acl, "bob", "c1", "alice/x"));
	/* a user without a block gets the patterns only */
	ASSERT_FALSE(READ(acl, "carol", "c9", "public/news"));
	ASSERT_TRUE(READ(acl, "carol", "c9", "clients/c9/z"));
	/* a client id that would widen the pattern matches nothing */
	ASSERT_FALSE(PUB(acl, "carol", "+", "clients/c1/x"));
	ASSERT_FALSE(PUB(acl, "carol", "#", "clients/c1/x"));
	ASSERT_FALSE(SUB(acl, "carol", "+", "clients/+/#"));
	ASSERT_FALSE(PUB(acl, "carol", "c1/x", "clients/c1/x/y"));
	ASSERT_FALSE(PUB(acl, "carol", "", "clients//x"));
	/* but the user's own rules still apply */
	ASSERT_TRUE(PUB(acl, "alice", "+", "alice/x"));
	/* invalid topic names and filters */
	ASSERT_FALSE(PUB(acl, "alice", "c1", "alice/+"));
	ASSERT_FALSE(PUB(acl, "alice", "c1", ""));
	ASSERT_EQ(auth_acl_can_subscribe(acl, "alice", "c1", S("alice/#/x")), AUTH_SUB_FILTER_INVALID);
	ASSERT_EQ(auth_acl_can_subscribe(acl, "alice", "c1", S("$share/g")), AUTH_SUB_FILTER_INVALID);
	ASSERT_EQ(auth_acl_can_subscribe(acl, "alice", "c1", S("$share/+/alice/x")),
		  AUTH_SUB_FILTER_INVALID);
	ASSERT_EQ(auth_acl_can_subscribe(acl, "alice", "c1", S("bob/#")), AUTH_SUB_NOT_AUTHORIZED);
	auth_acl_free(acl);
}

static void test_acl_deny(void)
{
	struct auth_acl *acl = acl_from("user ops\n"
					"topic readwrite #\n"
					"topic deny secret/#\n"
					"topic read $SYS/#\n"
					"topic deny $SYS/broker/log/#\n"
					"pattern deny private/%c/#\n"
					"pattern read private/%u/#\n");
	if (!acl)
		return;
	ASSERT_TRUE(PUB(acl, "ops", "c1", "a/b"));
	ASSERT_FALSE(PUB(acl, "ops", "c1", "secret"));
	ASSERT_FALSE(PUB(acl, "ops", "c1", "secret/x"));
	ASSERT_FALSE(READ(acl, "ops", "c1", "secret/x/y"));
	ASSERT_TRUE(READ(acl, "ops", "c1", "secrets"));
	/* SUBSCRIBE: within a deny rule: refused; overlapping: granted, and the
	 * denied messages are dropped per delivery */
	ASSERT_FALSE(SUB(acl, "ops", "c1", "secret/#"));
	ASSERT_FALSE(SUB(acl, "ops", "c1", "secret/+/x"));
	ASSERT_TRUE(SUB(acl, "ops", "c1", "#"));
	ASSERT_TRUE(SUB(acl, "ops", "c1", "+/x"));
	ASSERT_FALSE(READ(acl, "ops", "c1", "secret/x"));
	ASSERT_TRUE(READ(acl, "ops", "c1", "$SYS/broker/uptime"));
	ASSERT_FALSE(READ(acl, "ops", "c1", "$SYS/broker/log/N"));
	ASSERT_FALSE(SUB(acl, "ops", "c1", "$SYS/broker/log/#"));
	ASSERT_TRUE(SUB(acl, "ops", "c1", "$SYS/#"));
	/* a deny pattern with the client's own id */
	ASSERT_FALSE(PUB(acl, "ops", "c1", "private/c1/x"));
	ASSERT_TRUE(PUB(acl, "ops", "c1", "private/c2/x"));
	/* an allow pattern never overrides a deny */
	ASSERT_FALSE(READ(acl, "ops", "c1", "secret/ops"));
	/* a deny pattern that cannot be resolved for this identity denies all */
	ASSERT_FALSE(PUB(acl, "ops", "+", "a/b"));
	ASSERT_FALSE(READ(acl, "ops", "x/y", "a/b"));
	ASSERT_FALSE(SUB(acl, "ops", "#", "a/b"));
	ASSERT_FALSE(PUB(acl, "ops", NULL, "a/b"));
	auth_acl_free(acl);

	/* deny %u: an anonymous client has no name to deny, the pattern is
	 * skipped; a username that cannot be put in denies everything */
	acl = acl_from("topic read #\nuser u1\ntopic read #\nuser u/1\ntopic read #\n"
		       "pattern deny home/%u/#\n");
	if (!acl)
		return;
	ASSERT_TRUE(READ(acl, NULL, "c", "home/x/y"));
	ASSERT_FALSE(READ(acl, "u1", "c", "home/u1/a"));
	ASSERT_TRUE(READ(acl, "u1", "c", "home/u2/a"));
	ASSERT_FALSE(READ(acl, "u/1", "c", "a"));
	auth_acl_free(acl);
}

static void test_acl_client_cache(void)
{
	struct auth_acl *acl = acl_from(plant_acl);
	if (!acl)
		return;
	struct auth_acl_client *c = auth_acl_client_new(acl, "dev7", "gw-7");
	ASSERT_TRUE(c != NULL);
	if (c) {
		ASSERT_TRUE(auth_acl_client_can_publish(c, S("plants/p9/devices/dev7/a/b/c")));
		ASSERT_FALSE(auth_acl_client_can_publish(c, S("plants/p9/devices/dev8/a")));
		ASSERT_TRUE(auth_acl_client_can_read(c, S("plants/p9/devices/dev7/commands")));
		ASSERT_EQ(auth_acl_client_can_subscribe(c, S("plants/+/devices/dev7/commands/#")),
			  AUTH_SUB_GRANTED);
		ASSERT_EQ(auth_acl_client_can_subscribe(c, S("plants/+/devices/+/commands/#")),
			  AUTH_SUB_NOT_AUTHORIZED);
		auth_acl_client_free(c);
	}
	/* patterns with many substitutions */
	struct auth_acl *acl2 = acl_from("pattern %c/%u/%c%u/%%u/%/%c%\n");
	if (acl2) {
		c = auth_acl_client_new(acl2, "uu", "cc");
		ASSERT_TRUE(c && auth_acl_client_can_publish(c, S("cc/uu/ccuu/%uu/%/cc%")));
		auth_acl_client_free(c);
		auth_acl_free(acl2);
	}
	auth_acl_free(acl);

	/* topics deeper than the split array fall back to topic_match */
	acl = acl_from("topic read a/+/#\ntopic write a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/"
		       "y/z/1/2/3/4/5/6/7/8/9/+\n");
	if (acl) {
		char deep[200] = "a";
		for (int i = 0; i < 40; i++)
			strcat(deep, "/x");
		ASSERT_TRUE(READ(acl, NULL, "c", deep));
		ASSERT_FALSE(PUB(acl, NULL, "c", deep));
		ASSERT_TRUE(PUB(acl, NULL, "c",
				"a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/1/2/3/4/5/6/7/8/9/0"));
		ASSERT_FALSE(PUB(acl, NULL, "c",
				 "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/1/2/3/4/5/6/7/8/9"));
		ASSERT_FALSE(READ(acl, NULL, "c", "a"));
		ASSERT_TRUE(READ(acl, NULL, "c", "a/"));
		auth_acl_free(acl);
	}

	/* blocks of one user merge, empty ones included, in any order */
	acl = acl_from("user a\nuser b\ntopic b/#\nuser a\nuser a\ntopic a/#\nuser a\n"
		       "user b\nuser c\n");
	if (acl) {
		ASSERT_TRUE(PUB(acl, "a", "c", "a/x"));
		ASSERT_FALSE(PUB(acl, "a", "c", "b/x"));
		ASSERT_TRUE(PUB(acl, "b", "c", "b/x"));
		ASSERT_FALSE(PUB(acl, "c", "c", "a/x"));
		auth_acl_free(acl);
	}

	/* an empty ACL allows nothing */
	acl = acl_from("# nothing\n");
	if (acl) {
		ASSERT_FALSE(PUB(acl, NULL, "c", "a"));
		ASSERT_FALSE(SUB(acl, "u", "c", "#"));
		auth_acl_free(acl);
	}
}

/* ---- names: client_id_pattern and user lists ---- */

static void test_clientid_pattern_check(void)
{
	static const char *const good[] = { "%u", "%u-*", "plant1/%u", "plant1/%u-*", "%u.dev.*", "x%uy" };
	static const struct {
		const char *pattern, *why;
	} bad[] = {
		{ "", "needs %u" },           { "gw-*", "needs %u" },       { "%u*", "separator" },
		{ "%u%u", "twice" },          { "%c", "only %u" },          { "%u-%", "only %u" },
		{ "%u-*-x", "only end" },     { "*%u", "only end" },        { "%u %u-*", "without blanks" },
	};
	char err[160];
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err[0] = 0;
		ASSERT_EQ(auth_clientid_pattern_check(good[i], err, sizeof(err)), 0);
		if (err[0])
			CHECK_FAIL("%s: %s", good[i], err);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		ASSERT_EQ(auth_clientid_pattern_check(bad[i].pattern, err, sizeof(err)), -FM_EINVAL);
		if (!strstr(err, bad[i].why))
			CHECK_FAIL("\"%s\": \"%s\" does not say \"%s\"", bad[i].pattern, err, bad[i].why);
	}
}

static void test_clientid_allowed(void)
{
	static const struct {
		const char *pattern, *user, *id;
		bool ok;
	} v[] = {
		{ "%u", "gw-a", "gw-a", true },
		{ "%u", "gw-b", "gw-a", false },         /* the take-over of issue 11 #10 */
		{ "%u", "gw-a", "gw-a2", false },
		{ "%u", "gw-a", "gw-", false },
		{ "%u", "gw-a", "", false },
		{ "%u", NULL, "gw-a", false },           /* anonymous */
		{ "%u", "", "", false },
		{ "%u-*", "gwa", "gwa-1", true },
		{ "%u-*", "gwa", "gwa-", true },         /* '*' may be empty */
		{ "%u-*", "gwa", "gwa-x-y", true },
		{ "%u-*", "gwa", "gwa", false },         /* the separator is part of the pattern */
		{ "%u-*", "gwa", "gwb-1", false },
		{ "%u-*", "gw", "gw-a-1", true },        /* gw's own id, since gw-a cannot log in here: */
		{ "%u-*", "gw-a", "gw-a-1", false },     /* a username with the separator matches nothing */
		{ "%u-*", "gw-a", "gw-a", false },
		{ "plant1/%u", "gwa", "plant1/gwa", true },
		{ "plant1/%u", "gwa", "plant2/gwa", false },
		{ "plant1/%u", "gwa", "plant1/gwa/x", false },
		{ "plant1/%u.*", "gw-a", "plant1/gw-a.main", true },
		{ "plant1/%u.*", "gw-a", "plant1/gw-b.main", false },
		{ "plant1/%u.*", "gw.a", "plant1/gw.a.main", false },
		{ "x%uy", "a", "xay", true },
		{ "x%uy", "a", "xayy", false },
		{ "%u*", "gw", "gw-a", false },          /* invalid pattern: nothing matches */
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (auth_clientid_allowed(v[i].pattern, v[i].user, v[i].id) != v[i].ok)
			CHECK_FAIL("pattern \"%s\" user \"%s\" id \"%s\": expected %s", v[i].pattern,
				   v[i].user ? v[i].user : "(none)", v[i].id, v[i].ok ? "allowed" : "refused");
}

/* With '*', no id is allowed for two users: every user of a small alphabet
 * that contains the separator, against every id. */
static void test_clientid_no_shared_ids(void)
{
	static const char *const patterns[] = { "%u-*", "p/%u-x*", "%u" };
	static const char alpha[] = "a-x";
	char users[40][4], ids[400][6];
	size_t nu = 0, ni = 0;
	/* Every string of 1..3 (users) and 1..5 (ids) characters of alpha. */
	for (size_t len = 1; len <= 5; len++) {
		size_t total = 1;
		for (size_t k = 0; k < len; k++)
			total *= 3;
		for (size_t n = 0; n < total; n++) {
			char s[6];
			size_t x = n;
			for (size_t k = 0; k < len; k++, x /= 3)
				s[k] = alpha[x % 3];
			s[len] = 0;
			if (len <= 3)
				memcpy(users[nu++], s, len + 1);
			memcpy(ids[ni++], s, len + 1);
		}
	}
	for (size_t p = 0; p < sizeof(patterns) / sizeof(patterns[0]); p++)
		for (size_t i = 0; i < ni; i++) {
			char id[16];
			/* Give the ids the prefix of the pattern, so they can match. */
			snprintf(id, sizeof(id), "%s%.5s", p == 1 ? "p/" : "", ids[i]);
			const char *owner = NULL;
			for (size_t u = 0; u < nu; u++) {
				if (!auth_clientid_allowed(patterns[p], users[u], id))
					continue;
				if (owner)
					CHECK_FAIL("\"%s\": id \"%s\" allowed for \"%s\" and \"%s\"", patterns[p], id,
						   owner, users[u]);
				owner = users[u];
			}
		}
}

static void test_name_listed(void)
{
	const char *list = " alice, bob\tcarol,,dave ";
	ASSERT_TRUE(auth_name_listed(list, S("alice")));
	ASSERT_TRUE(auth_name_listed(list, S("bob")));
	ASSERT_TRUE(auth_name_listed(list, S("carol")));
	ASSERT_TRUE(auth_name_listed(list, S("dave")));
	ASSERT_FALSE(auth_name_listed(list, S("al")));
	ASSERT_FALSE(auth_name_listed(list, S("alice,")));
	ASSERT_FALSE(auth_name_listed(list, S("bo")));
	ASSERT_FALSE(auth_name_listed(list, S("")));
	ASSERT_FALSE(auth_name_listed("", S("alice")));
	ASSERT_FALSE(auth_name_listed(list, S("alice bob")));
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_b64);
	RUN(test_passwd_parse_mosquitto);
	RUN(test_passwd_parse_errors);
	RUN(test_passwd_make_format);
	RUN(test_passwd_load_check);
	RUN(test_passwd_load_errors);
	RUN(test_acl_parse_line);
	RUN(test_acl_load_errors);
	RUN(test_filter_covers_table);
	RUN(test_filter_covers_exhaustive);
	RUN(test_acl_plant);
	RUN(test_acl_plant_client_id);
	RUN(test_acl_anonymous_and_users);
	RUN(test_acl_deny);
	RUN(test_acl_client_cache);
	RUN(test_clientid_pattern_check);
	RUN(test_clientid_allowed);
	RUN(test_clientid_no_shared_ids);
	RUN(test_name_listed);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return CHECK_DONE();
}
