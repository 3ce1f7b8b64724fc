/* Authentication and authorization: the password file and the ACL file.
 * A pure library: no sockets, no threads, no broker types, no logging. The
 * loaded objects are immutable, so any number of threads may check against
 * one at the same time; a reload builds new ones and swaps them.
 *
 * Both files are mosquitto's formats, so existing files keep working:
 *
 *   password file  user:$7$ITERATIONS$SALT$HASH   PBKDF2-HMAC-SHA512 (mosquitto 2.x)
 *                  user:$6$SALT$HASH              SHA-512(password || salt) (mosquitto 1.x)
 *                  SALT and HASH are standard base64 (padding optional on input,
 *                  always written); HASH is 64 bytes, SALT 1..64 bytes (12 written).
 *                  '#' starts a comment line; blank lines are skipped.
 *
 *   ACL file       user NAME                        starts NAME's block
 *                  topic [read|write|readwrite|deny] FILTER
 *                  pattern [read|write|readwrite|deny] FILTER   %c = client id, %u = username
 *                  '#' starts a comment line; blank lines are skipped.
 *
 * ACL semantics (what README documents):
 *  - `topic` lines before the first `user` line apply to anonymous clients
 *    only; those after `user NAME` to NAME (blocks of one name are merged).
 *    `pattern` lines apply to every client wherever they appear.
 *  - no access word means readwrite. `deny` denies read and write.
 *  - a deny rule that matches wins over every allow rule; otherwise access
 *    needs an allow rule with that access; what no rule allows is denied.
 *  - '+' and '#' in rules match as in MQTT, so "#" and "+/..." never reach
 *    "$SYS/..." [MQTT-4.7.2-1]: $-topics need rules that start with '$'.
 *  - SUBSCRIBE: the filter must be covered by (be a subset of) one read rule
 *    and must not lie within a deny rule. A filter that partly overlaps a deny
 *    rule is granted; the broker must call auth_acl_client_can_read for every
 *    delivery, which drops the denied messages. "$share/G/F" is checked as F.
 *  - %c / %u: an identity that is empty or contains '+', '#' or '/' is
 *    unusable: allow patterns using it match nothing, a deny pattern using it
 *    denies everything. An anonymous client skips patterns that use %u.
 *
 * ident.c adds rules about names: the client ids a user may take, and lists
 * of user names.
 */
#ifndef FM_AUTH_H
#define FM_AUTH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- password file ---- */

#define AUTH_HASH_LEN 64             /* SHA-512 output, both formats */
#define AUTH_SALT_MAX 64             /* longest salt accepted on input */
#define AUTH_SALT_LEN 12             /* salt length written (as mosquitto_passwd) */
#define AUTH_PBKDF2_ITERATIONS 101   /* mosquitto_passwd's default */
#define AUTH_PBKDF2_ITERATIONS_MAX 2147483647u /* OpenSSL takes an int */

enum auth_hash_type {
	AUTH_HASH_SHA512 = 6,  /* $6$: SHA-512(password || salt) */
	AUTH_HASH_PBKDF2 = 7,  /* $7$: PBKDF2-HMAC-SHA512(password, salt, iterations, 64) */
};

/* One password line, decoded. */
struct auth_passwd_entry {
	const char *user;      /* not NUL-terminated; borrowed (see each function) */
	size_t ulen;
	uint32_t iterations;   /* AUTH_HASH_PBKDF2 only, else 0 */
	uint8_t type;          /* enum auth_hash_type */
	uint8_t salt_len;
	uint8_t salt[AUTH_SALT_MAX];
	uint8_t hash[AUTH_HASH_LEN];
};

struct auth_passwd;

/* Parses one line of a password file (NUL-terminated; a trailing "\n" or
 * "\r\n" is ignored). Returns 1 and fills *out (out->user points into
 * `line`), 0 for a blank or comment line, or -FM_EINVAL with a message in
 * err (no "path:line:" prefix). Pure: no allocation, no I/O. */
int auth_passwd_parse_line(const char *line, struct auth_passwd_entry *out, char *err,
			   size_t errlen);

/* Fills e's type, iterations, a fresh random salt (AUTH_SALT_LEN bytes) and
 * the hash of pw. e->user is left as it is. iterations is used for
 * AUTH_HASH_PBKDF2 only (1..AUTH_PBKDF2_ITERATIONS_MAX). Returns 0,
 * -FM_EINVAL (bad type or iterations) or -FM_EIO (no randomness). */
int auth_passwd_entry_make(struct auth_passwd_entry *e, enum auth_hash_type type,
			   uint32_t iterations, const uint8_t *pw, size_t pwlen);

/* Does pw hash to e->hash? The comparison is constant-time. */
bool auth_passwd_entry_verify(const struct auth_passwd_entry *e, const uint8_t *pw,
			      size_t pwlen);

/* Writes e as a password-file line "user:$7$..." (no newline, NUL-terminated)
 * into buf. Returns its length, or -FM_ELIMIT when buf is too small
 * (AUTH_PASSWD_LINE_MAX(ulen) always fits) or -FM_EINVAL for a bad entry. */
#define AUTH_PASSWD_LINE_MAX(ulen) ((ulen) + 256)
int auth_passwd_format(const struct auth_passwd_entry *e, char *buf, size_t len);

/* Loads a password file. Returns the table, or NULL with "path:line: message"
 * (or "path: message") in err. A bad line or a user listed twice fails the
 * whole load. The caller frees the table with auth_passwd_free. */
struct auth_passwd *auth_passwd_load(const char *path, char *err, size_t errlen);

/* Is pw the password of user? Takes the same time whether the user exists or
 * not: an unknown user is checked against a dummy entry with the file's
 * largest iteration count. user may be NULL (false). */
bool auth_passwd_check(const struct auth_passwd *pw, const char *user, size_t ulen,
		       const uint8_t *pass, size_t passlen);

/* Number of users in the table. */
size_t auth_passwd_count(const struct auth_passwd *pw);

void auth_passwd_free(struct auth_passwd *pw);

/* ---- ACL file ---- */

enum auth_access {
	AUTH_READ = 1,
	AUTH_WRITE = 2,
	AUTH_READWRITE = 3,
	AUTH_DENY = 4,   /* alone: denies read and write */
};

enum auth_acl_kind {
	AUTH_ACL_USER = 1,
	AUTH_ACL_TOPIC = 2,
	AUTH_ACL_PATTERN = 3,
};

/* One ACL line, decoded. arg is the user name (AUTH_ACL_USER) or the filter,
 * a view into the parsed line. */
struct auth_acl_line {
	uint8_t kind;    /* enum auth_acl_kind */
	uint8_t access;  /* enum auth_access; 0 for AUTH_ACL_USER */
	const char *arg;
	size_t alen;
};

/* Parses one line of an ACL file (NUL-terminated, trailing "\n"/"\r\n" and
 * surrounding blanks ignored). Returns 1 and fills *out, 0 for a blank or
 * comment line, or -FM_EINVAL with a message in err (an unknown keyword or
 * access word, a missing argument, an invalid filter). Pure. */
int auth_acl_parse_line(const char *line, struct auth_acl_line *out, char *err, size_t errlen);

struct auth_acl;
struct auth_acl_client;

/* Loads and compiles an ACL file. Returns it, or NULL with "path:line:
 * message" (or "path: message") in err. Freed with auth_acl_free, after every
 * auth_acl_client made from it. */
struct auth_acl *auth_acl_load(const char *path, char *err, size_t errlen);
/* Same, from text in memory (`name` is used in error messages). */
struct auth_acl *auth_acl_parse(const char *name, const char *text, size_t len, char *err,
				size_t errlen);
void auth_acl_free(struct auth_acl *acl);

/* The rules of one client, resolved once at CONNECT: the user's (or the
 * anonymous) rules and the patterns with %c/%u substituted. user == NULL for
 * an anonymous client. Copies what it needs from user and client_id; keeps a
 * pointer to acl. Returns NULL when out of memory. */
struct auth_acl_client *auth_acl_client_new(const struct auth_acl *acl, const char *user,
					    const char *client_id);
void auth_acl_client_free(struct auth_acl_client *c);

/* May this client PUBLISH to topic name [len bytes]? false for an invalid name. */
bool auth_acl_client_can_publish(const struct auth_acl_client *c, const char *topic, size_t len);
/* May a message on topic be delivered to this client? Call it for every
 * delivery (and for $SYS), not only at SUBSCRIBE. */
bool auth_acl_client_can_read(const struct auth_acl_client *c, const char *topic, size_t len);

/* Result of a SUBSCRIBE check: MQTT v5 SUBACK reason codes (a v3 broker maps
 * anything but AUTH_SUB_GRANTED to 0x80). */
enum auth_sub_result {
	AUTH_SUB_GRANTED = 0x00,
	AUTH_SUB_NOT_AUTHORIZED = 0x87,
	AUTH_SUB_FILTER_INVALID = 0x8F,
};
/* May this client SUBSCRIBE to filter? See the semantics above. Returns an
 * enum auth_sub_result. */
uint8_t auth_acl_client_can_subscribe(const struct auth_acl_client *c, const char *filter,
				      size_t len);

/* One-off checks without a cached client (they build one and free it; false /
 * AUTH_SUB_NOT_AUTHORIZED when out of memory). user NULL = anonymous. */
bool auth_acl_can_publish(const struct auth_acl *acl, const char *user, const char *client_id,
			  const char *topic, size_t len);
bool auth_acl_can_read(const struct auth_acl *acl, const char *user, const char *client_id,
		       const char *topic, size_t len);
uint8_t auth_acl_can_subscribe(const struct auth_acl *acl, const char *user,
			       const char *client_id, const char *filter, size_t len);

/* Is every topic name matched by filter `inner` also matched by filter
 * `outer`? Both must be valid filters. Follows topic_match: "a/#" matches
 * "a", and a first level '+' or '#' does not match names starting with '$'.
 * Pure. */
bool auth_filter_covers(const char *outer, size_t olen, const char *inner, size_t ilen);

/* ---- names (ident.c) ---- */

/* A listener's client_id_pattern: literal characters, exactly one %u (the
 * username, or the certificate identity on a use_identity_as_username
 * listener) and optionally a final '*' (any characters, none included),
 * which must not follow %u directly: "%u", "%u-*", "plant1/%u". Returns 0,
 * or -FM_EINVAL with the reason in err. */
int auth_clientid_pattern_check(const char *pattern, char *err, size_t errlen);
/* May `user` use client_id under pattern? False for a NULL or empty user or
 * an invalid pattern. With a '*', a user whose name contains the character
 * that follows %u (the separator) matches nothing: then no id can match two
 * users. */
bool auth_clientid_allowed(const char *pattern, const char *user, const char *client_id);
/* Is name[len] one of the names of list (separated by blanks or commas)? */
bool auth_name_listed(const char *list, const char *name, size_t len);

#endif
