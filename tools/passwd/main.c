/* ferromq-passwd: manages a password file, mosquitto_passwd-compatible.
 *
 *   ferromq-passwd [-H sha512-pbkdf2|sha512] [-I ITERATIONS] [-c] FILE USER
 *   ferromq-passwd [-H ...] [-I ITERATIONS] [-c] -b FILE USER PASSWORD
 *   ferromq-passwd -D FILE USER
 *   ferromq-passwd --check FILE USER PASSWORD   (exit 0 match, 1 no match, 2 error)
 *
 * The file is rewritten atomically (a temp file in the same directory, fsync,
 * rename) with mode 0600; other users' lines, comments and blank lines are
 * kept as they are. A file that does not load (a bad line, a user listed
 * twice) is not modified.
 */
#include "auth/auth.h"
#include "base/err.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#define PASSWD_MAX 65535 /* an MQTT password is binary data of at most 65535 bytes */

struct passwd_opts {
	bool create, batch, delete, check;
	enum auth_hash_type type;
	uint32_t iterations;
	const char *file, *user, *password;
};

static void passwd_usage(FILE *out)
{
	fprintf(out,
		"ferromq-passwd manages password files for ferromq (and mosquitto).\n"
		"\n"
		"Usage: ferromq-passwd [-H sha512-pbkdf2|sha512] [-I iterations] [-c | -D] FILE USER\n"
		"       ferromq-passwd [-H sha512-pbkdf2|sha512] [-I iterations] [-c] -b FILE USER PASSWORD\n"
		"       ferromq-passwd --check FILE USER PASSWORD\n"
		"\n"
		" -b : batch mode: the password is given on the command line.\n"
		" -c : create a new password file; an existing one is overwritten.\n"
		" -D : delete USER rather than adding or updating their password.\n"
		" -H : hash: sha512-pbkdf2 (default, mosquitto 2.x \"$7$\") or sha512\n"
		"      (mosquitto 1.x \"$6$\", weak: for old readers only).\n"
		" -I : PBKDF2 iterations (default %u).\n"
		" --check : exit 0 when PASSWORD is USER's password in FILE, 1 when it is\n"
		"      not (or USER is unknown), 2 when FILE cannot be loaded.\n"
		" --help : this text.\n"
		"\n"
		"Without -b the password is asked twice on the terminal, or read as one\n"
		"line from standard input when that is not a terminal. The file is\n"
		"replaced atomically with mode 0600; other lines and comments are kept.\n",
		AUTH_PBKDF2_ITERATIONS);
}

/* Parses argv into o. Returns 0, 1 for --help, or -1 after printing why. */
static int passwd_args(int argc, char **argv, struct passwd_opts *o)
{
	const char *pos[3];
	int npos = 0;
	bool iter_set = false;
	o->type = AUTH_HASH_PBKDF2;
	o->iterations = AUTH_PBKDF2_ITERATIONS;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (npos > 0 || a[0] != '-' || a[1] == '\0') {
			if (npos == 3) {
				fprintf(stderr, "Error: too many arguments.\n");
				return -1;
			}
			pos[npos++] = a;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			return 1;
		} else if (!strcmp(a, "--check")) {
			o->check = true;
		} else if (!strcmp(a, "-c")) {
			o->create = true;
		} else if (!strcmp(a, "-b")) {
			o->batch = true;
		} else if (!strcmp(a, "-D")) {
			o->delete = true;
		} else if (!strcmp(a, "-U")) {
			fprintf(stderr, "Error: -U (hashing a plain-text file) is not supported: "
					"ferromq reads hashed password files only.\n");
			return -1;
		} else if (!strcmp(a, "-H") || !strcmp(a, "-I")) {
			if (i + 1 == argc) {
				fprintf(stderr, "Error: %s needs an argument.\n", a);
				return -1;
			}
			const char *v = argv[++i];
			if (a[1] == 'H') {
				if (!strcmp(v, "sha512-pbkdf2")) {
					o->type = AUTH_HASH_PBKDF2;
				} else if (!strcmp(v, "sha512")) {
					o->type = AUTH_HASH_SHA512;
				} else {
					fprintf(stderr, "Error: unknown hash '%s' (sha512-pbkdf2 or sha512).\n", v);
					return -1;
				}
			} else {
				char *end;
				errno = 0;
				unsigned long long n = strtoull(v, &end, 10);
				if (errno || *end || end == v || v[0] == '-' || n == 0 ||
				    n > AUTH_PBKDF2_ITERATIONS_MAX) {
					fprintf(stderr, "Error: -I needs a number in 1..%u.\n",
						AUTH_PBKDF2_ITERATIONS_MAX);
					return -1;
				}
				o->iterations = (uint32_t)n;
				iter_set = true;
			}
		} else {
			fprintf(stderr, "Error: unknown option '%s'.\n", a);
			return -1;
		}
	}
	if (o->check) {
		if (o->create || o->batch || o->delete || npos != 3) {
			fprintf(stderr, "Error: usage: ferromq-passwd --check FILE USER PASSWORD\n");
			return -1;
		}
	} else if (o->create && o->delete) {
		fprintf(stderr, "Error: -c and -D cannot be used together.\n");
		return -1;
	} else if (npos != 2 + o->batch || (o->batch && o->delete)) {
		fprintf(stderr, o->batch && o->delete ? "Error: -b and -D cannot be used together.\n"
			: npos == 3 ? "Error: a password on the command line needs -b.\n"
				    : "Error: missing FILE or USER. See --help.\n");
		return -1;
	}
	if (iter_set && o->type != AUTH_HASH_PBKDF2) {
		fprintf(stderr, "Error: -I applies to sha512-pbkdf2 only.\n");
		return -1;
	}
	o->file = pos[0];
	o->user = pos[1];
	o->password = npos == 3 ? pos[2] : NULL;
	return 0;
}

/* Is s well-formed UTF-8 without control characters (as an MQTT string)? */
static bool passwd_user_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned c = *p, n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2
				     : (c & 0xf8) == 0xf0 ? 3 : 4;
		if (n == 4 || c < 0x20 || c == 0x7f || c == 0xc0 || c == 0xc1 || c > 0xf4)
			return false;
		uint32_t cp = n ? c & (0x3f >> n) : c;
		for (unsigned i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
			return false;
		p += n + 1;
	}
	return true;
}

/* Reads a line from f without its line end into a malloc'd string. */
static char *passwd_read_line(FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);
	if (n < 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

/* Asks for the password on the terminal with echo off. */
static char *passwd_prompt(const char *prompt)
{
	struct termios old, quiet;
	/* echo goes off before the prompt shows, so nothing typed after the
	 * prompt is echoed or flushed away */
	bool restore = tcgetattr(STDIN_FILENO, &old) == 0;
	if (restore) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	fputs(prompt, stderr);
	fflush(stderr);
	char *pw = passwd_read_line(stdin);
	if (restore)
		tcsetattr(STDIN_FILENO, TCSANOW, &old);
	return pw;
}

/* The new password: the argument, two prompts on a terminal, or one line of
 * standard input. Returns a malloc'd string or NULL after printing why. */
static char *passwd_get(const struct passwd_opts *o)
{
	char *pw;
	if (o->password) {
		pw = strdup(o->password);
	} else if (isatty(STDIN_FILENO)) {
		pw = passwd_prompt("Password: ");
		char *again = pw ? passwd_prompt("Reenter password: ") : NULL;
		if (pw && (!again || strcmp(pw, again) != 0)) {
			fprintf(stderr, "Error: passwords do not match.\n");
			free(again);
			free(pw);
			return NULL;
		}
		free(again);
	} else {
		pw = passwd_read_line(stdin);
	}
	if (!pw) {
		fprintf(stderr, "Error: no password given.\n");
		return NULL;
	}
	if (!*pw || strlen(pw) > PASSWD_MAX) {
		fprintf(stderr, "Error: the password must be 1..%d bytes.\n", PASSWD_MAX);
		free(pw);
		return NULL;
	}
	return pw;
}

struct passwd_file {
	char **lines; /* without line ends */
	size_t n, cap;
};

static void passwd_file_free(struct passwd_file *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->lines[i]);
	free(f->lines);
}

static int passwd_file_add(struct passwd_file *f, char *line)
{
	if (f->n == f->cap) {
		size_t ncap = f->cap ? f->cap * 2 : 16;
		char **v = realloc(f->lines, ncap * sizeof(*v));
		if (!v)
			return -FM_ENOMEM;
		f->lines = v;
		f->cap = ncap;
	}
	f->lines[f->n++] = line;
	return 0;
}

/* Reads `path`, checking every line as auth_passwd_load does. Returns 0, or
 * -1 after printing why. */
static int passwd_file_read(const char *path, struct passwd_file *f)
{
	FILE *in = fopen(path, "r");
	if (!in) {
		fprintf(stderr, "Error: cannot open %s: %s%s\n", path, strerror(errno),
			errno == ENOENT ? " (use -c to create it)" : "");
		return -1;
	}
	int rc = 0;
	char *line;
	while ((line = passwd_read_line(in))) {
		if (passwd_file_add(f, line) != 0) {
			free(line);
			fprintf(stderr, "Error: out of memory.\n");
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(in)) {
		fprintf(stderr, "Error: cannot read %s.\n", path);
		rc = -1;
	}
	fclose(in);
	if (rc != 0)
		return rc;
	/* the same checks as the broker's: a file it would refuse is left alone */
	char err[512];
	struct auth_passwd *pw = auth_passwd_load(path, err, sizeof(err));
	if (!pw) {
		fprintf(stderr, "Error: %s\n", err);
		return -1;
	}
	auth_passwd_free(pw);
	return 0;
}

/* Index of user's line in f, or f->n. */
static size_t passwd_file_find(const struct passwd_file *f, const char *user)
{
	size_t ulen = strlen(user);
	for (size_t i = 0; i < f->n; i++) {
		struct auth_passwd_entry e;
		char err[200];
		if (auth_passwd_parse_line(f->lines[i], &e, err, sizeof(err)) == 1 &&
		    e.ulen == ulen && memcmp(e.user, user, ulen) == 0)
			return i;
	}
	return f->n;
}

static int passwd_write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Replaces `path` with f's lines: temp file, fsync, rename, fsync of the
 * directory. A symlink is followed, so the file it points to is replaced. */
static int passwd_file_write(const char *path, const struct passwd_file *f)
{
	char real[PATH_MAX], dirbuf[PATH_MAX], basebuf[PATH_MAX], tmp[PATH_MAX + 32];
	if (!realpath(path, real)) {
		if (errno != ENOENT || strlen(path) >= sizeof(real)) {
			fprintf(stderr, "Error: %s: %s\n", path, strerror(errno));
			return -1;
		}
		strcpy(real, path);
	}
	strcpy(dirbuf, real);
	strcpy(basebuf, real);
	const char *dir = dirname(dirbuf), *base = basename(basebuf);
	snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, base);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		fprintf(stderr, "Error: cannot create a temporary file in %s: %s\n", dir,
			strerror(errno));
		return -1;
	}
	int rc = fchmod(fd, 0600);
	for (size_t i = 0; rc == 0 && i < f->n; i++)
		if (passwd_write_all(fd, f->lines[i], strlen(f->lines[i])) != 0 ||
		    passwd_write_all(fd, "\n", 1) != 0)
			rc = -1;
	if (rc == 0)
		rc = fsync(fd);
	if (close(fd) != 0)
		rc = -1;
	if (rc == 0)
		rc = rename(tmp, real);
	if (rc != 0) {
		fprintf(stderr, "Error: cannot write %s: %s\n", real, strerror(errno));
		unlink(tmp);
		return -1;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

static int passwd_check(const struct passwd_opts *o)
{
	char err[512];
	struct auth_passwd *pw = auth_passwd_load(o->file, err, sizeof(err));
	if (!pw) {
		fprintf(stderr, "Error: %s\n", err);
		return 2;
	}
	bool ok = auth_passwd_check(pw, o->user, strlen(o->user), (const uint8_t *)o->password,
				    strlen(o->password));
	auth_passwd_free(pw);
	if (!ok)
		fprintf(stderr, "%s: wrong password or unknown user.\n", o->file);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct passwd_opts o = { 0 };
	struct passwd_file f = { 0 };
	char *pw = NULL, *line = NULL;
	int status = 1;

	if (argc == 1) {
		passwd_usage(stderr);
		return 1;
	}
	int rc = passwd_args(argc, argv, &o);
	if (rc > 0) {
		passwd_usage(stdout);
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "Run 'ferromq-passwd --help' for usage.\n");
		return 1;
	}
	if (o.check)
		return passwd_check(&o);
	/* a leading '#' would read as a comment, a leading blank is refused by the loader */
	if (!o.user[0] || strchr(o.user, ':') || !passwd_user_ok(o.user) ||
	    strlen(o.user) > 65535 || strchr("# ", o.user[0])) {
		fprintf(stderr, "Error: the username must be 1..65535 bytes of UTF-8, without "
				"':' or control characters, not starting with '#' or a space.\n");
		goto out;
	}
	if (!o.create && passwd_file_read(o.file, &f) != 0)
		goto out;
	size_t at = passwd_file_find(&f, o.user);
	if (o.delete) {
		if (at == f.n) {
			fprintf(stderr, "Error: user %s not found in %s.\n", o.user, o.file);
			goto out;
		}
		free(f.lines[at]);
		memmove(&f.lines[at], &f.lines[at + 1], (f.n - at - 1) * sizeof(*f.lines));
		f.n--;
	} else {
		pw = passwd_get(&o);
		if (!pw)
			goto out;
		struct auth_passwd_entry e = { .user = o.user, .ulen = strlen(o.user) };
		size_t cap = AUTH_PASSWD_LINE_MAX(e.ulen);
		line = malloc(cap);
		if (!line || auth_passwd_entry_make(&e, o.type, o.iterations, (const uint8_t *)pw,
						    strlen(pw)) != 0 ||
		    auth_passwd_format(&e, line, cap) < 0) {
			fprintf(stderr, "Error: cannot hash the password.\n");
			goto out;
		}
		if (at < f.n) {
			free(f.lines[at]);
			f.lines[at] = line;
		} else if (passwd_file_add(&f, line) != 0) {
			fprintf(stderr, "Error: out of memory.\n");
			goto out;
		}
		line = NULL; /* owned by f */
	}
	if (passwd_file_write(o.file, &f) == 0)
		status = 0;
out:
	if (pw) {
		memset(pw, 0, strlen(pw));
		free(pw);
	}
	free(line);
	passwd_file_free(&f);
	return status;
}
