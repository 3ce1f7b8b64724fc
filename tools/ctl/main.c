/* ferromq-ctl: a command-line client of the broker's HTTP API.
 *
 *   ferromq-ctl [--url URL] [--token TOKEN | --token-file PATH |
 *                --user USER --password PASSWORD] [--json] COMMAND [CLIENT_ID]
 *
 * One request per run, plain HTTP/1.1. Tables for people; --json passes the
 * API's answer through unchanged (after checking that it is JSON).
 * Exit codes: 0 done, 1 the broker said no, 2 the command did not get an
 * answer it could use; see ctl_usage().
 */
#include "ctl/http.h"
#include "ctl/json.h"
#include "ctl/view.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CTL_DEFAULT_URL "http://127.0.0.1:8080"
#define CTL_TOKEN_MAX 4096
#define CTL_MAX_TOKENS (8u << 20) /* JSON values in one answer */

enum ctl_exit {
	CTL_OK = 0,
	CTL_REFUSED = 1, /* the broker answered no: credentials, unknown client, reload errors */
	CTL_FAILED = 2,  /* bad usage, broker unreachable, unusable answer */
};

enum ctl_action { ACT_STATUS, ACT_LIST, ACT_SPARKPLUG, ACT_KICK, ACT_DELETE_SESSION, ACT_RELOAD, ACT_CLUSTER };

struct ctl_command {
	const char *name, *method, *path; /* path: for ACT_KICK/ACT_DELETE_SESSION, a prefix */
	enum ctl_action action;
	enum view_list list;
	const char *help;
};

static const struct ctl_command ctl_commands[] = {
	{ "status", "GET", "/api/status", ACT_STATUS, 0,
	  "totals, message rates, top session queues and alerts" },
	{ "clients", "GET", "/api/clients", ACT_LIST, VIEW_CLIENTS,
	  "connected clients: address, protocol, keep-alive, in-flight, traffic" },
	{ "sessions", "GET", "/api/sessions", ACT_LIST, VIEW_SESSIONS,
	  "sessions: queue depth and bytes, oldest message age, expiry" },
	{ "subscriptions", "GET", "/api/subscriptions", ACT_LIST, VIEW_SUBSCRIPTIONS,
	  "every subscription with its options" },
	{ "retained", "GET", "/api/retained", ACT_LIST, VIEW_RETAINED,
	  "retained topics with their size and QoS" },
	{ "bridge", "GET", "/api/bridges", ACT_LIST, VIEW_BRIDGES,
	  "bridges: link state, spool depth, bytes, oldest age, drain estimate, traffic, drops" },
	{ "devices", "GET", "/api/devices", ACT_LIST, VIEW_DEVICES,
	  "Modbus devices: state and since when, last answer, polls, failures, late polls, readings, writes" },
	{ "sparkplug", "GET", "/api/sparkplug", ACT_SPARKPLUG, 0,
	  "Sparkplug fleet (sparkplug_aware): edge nodes, devices, host applications, online since when, "
	  "last birth, metrics, bdSeq, seq gaps" },
	{ "cluster", "GET", "/api/cluster", ACT_CLUSTER, 0,
	  "cluster node: role, state, term, leader, commit/applied/last index, peers and their lag;\n"
	  "                  cluster add N HOST:PORT | cluster remove N | cluster transfer [N]:\n"
	  "                  change the membership (on the leader) and wait for the outcome" },
	{ "kick", "POST", "/api/clients/", ACT_KICK, 0,
	  "CLIENT_ID: disconnect the client (its session stays)" },
	{ "delete-session", "DELETE", "/api/sessions/", ACT_DELETE_SESSION, 0,
	  "CLIENT_ID: delete the session, disconnecting its client" },
	{ "reload", "POST", "/api/reload", ACT_RELOAD, 0,
	  "reload the configuration, password and ACL files, certificates" },
};

struct ctl_opts {
	const char *url, *token, *token_file, *user, *password;
	bool json;
	int timeout_s;
	int wait_s; /* cluster changes: how long to wait for the outcome */
	const struct ctl_command *cmd;
	const char *client_id;
	const char *cluster_op; /* "add", "remove", "transfer"; NULL: the status */
	long long node_id;
	const char *address;
};

static void ctl_usage(FILE *out)
{
	fprintf(out,
		"ferromq-ctl: manage a running ferromq broker through its HTTP API.\n"
		"\n"
		"Usage: ferromq-ctl [OPTIONS] COMMAND [CLIENT_ID]\n"
		"\n"
		"Commands:\n");
	for (size_t i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
		fprintf(out, "  %-15s %s\n", ctl_commands[i].name, ctl_commands[i].help);
	fprintf(out,
		"\n"
		"Options:\n"
		"  --url URL            the broker's http_listener (default $FERROMQ_URL,\n"
		"                       else " CTL_DEFAULT_URL ")\n"
		"  --token TOKEN        bearer token (default $FERROMQ_TOKEN)\n"
		"  --token-file PATH    read the token from PATH (the broker's http_token_file)\n"
		"  --user USER          a user of the broker's password_file named in its\n"
		"                       http_admin_users (or http_readonly_users: reads only),\n"
		"                       with --password\n"
		"  --password PASSWORD  that user's password\n"
		"  --json               print the API's JSON answer unchanged, for scripts\n"
		"  --timeout SECONDS    give up after SECONDS (default 10)\n"
		"  --wait SECONDS       cluster add/remove/transfer: wait at most SECONDS for\n"
		"                       the change to finish (default 30)\n"
		"  --help               this text;  --version: the version\n"
		"\n"
		"Exit codes:\n"
		"  0  done\n"
		"  1  the broker said no: credentials refused (401/403), no such client or\n"
		"     session (404), the reload reported errors, or a cluster change was\n"
		"     refused or failed (this node is not the leader: the leader is named)\n"
		"  2  bad usage, the broker could not be reached, or its answer was unusable\n"
		"\n"
		"Examples:\n"
		"  ferromq-ctl --token-file data/http.token status\n"
		"  FERROMQ_TOKEN=$(cat data/http.token) ferromq-ctl clients\n"
		"  ferromq-ctl --url http://127.0.0.1:9000 --user admin --password s3cret kick gw-17\n"
		"  ferromq-ctl --json sessions | jq '.[] | select(.queued > 1000)'\n"
		"  ferromq-ctl --url http://10.0.0.1:8080 cluster add 4 10.0.0.4:7000\n");
}

/* The value of option a at argv[*i]: "--opt=value" or "--opt value". */
static const char *ctl_optarg(int argc, char **argv, int *i, const char *name)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		fprintf(stderr, "ferromq-ctl: %s needs a value (see --help)\n", name);
		exit(CTL_FAILED);
	}
	return argv[++*i];
}

static int ctl_credentials(struct ctl_opts *o);

/* A node id argument: a whole number from 1 (from 0 when zero_ok). */
static bool ctl_node_id(const char *s, bool zero_ok, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*s < '0' || *s > '9' || *end != '\0' || errno || v < (zero_ok ? 0 : 1))
		return false;
	*out = v;
	return true;
}

/* "cluster", "cluster add N HOST:PORT", "cluster remove N", "cluster
 * transfer [N]": the n arguments after "cluster" into o. */
static int ctl_cluster_args(struct ctl_opts *o, const char **arg, int n)
{
	if (n == 0)
		return 0;
	o->cluster_op = arg[0];
	bool add = !strcmp(arg[0], "add"), remove = !strcmp(arg[0], "remove"), transfer = !strcmp(arg[0], "transfer");
	if (!add && !remove && !transfer) {
		fprintf(stderr, "ferromq-ctl: cluster %s: not add, remove or transfer (see --help)\n", arg[0]);
		return -1;
	}
	if ((add && n != 3) || (remove && n != 2) || (transfer && n > 2)) {
		fprintf(stderr, "ferromq-ctl: usage: cluster add N HOST:PORT | cluster remove N | cluster transfer [N]\n");
		return -1;
	}
	if (n > 1 && !ctl_node_id(arg[1], transfer, &o->node_id)) {
		fprintf(stderr, "ferromq-ctl: cluster %s: the node id is a whole number from %d, not \"%s\"\n", arg[0],
			transfer ? 0 : 1, arg[1]);
		return -1;
	}
	if (add) {
		o->address = arg[2];
		/* It goes into a JSON string as it is; the broker checks the rest. */
		if (!o->address[0] || o->address[strspn(o->address, "abcdefghijklmnopqrstuvwxyz"
						       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:")]) {
			fprintf(stderr, "ferromq-ctl: cluster add: \"%s\" is not HOST:PORT\n", o->address);
			return -1;
		}
	}
	return 0;
}

/* Parses argv into o. Returns -1 after printing why, 1 when --help or
 * --version was handled, else 0. */
static int ctl_args(int argc, char **argv, struct ctl_opts *o)
{
	const char *pos[4];
	int npos = 0;
	const char *v;
	o->timeout_s = 10;
	o->wait_s = 30;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			ctl_usage(stdout);
			return 1;
		} else if (!strcmp(a, "--version")) {
			printf("ferromq-ctl %s\n", FM_VERSION);
			return 1;
		} else if (!strcmp(a, "--json")) {
			o->json = true;
		} else if ((v = ctl_optarg(argc, argv, &i, "--url"))) {
			o->url = v;
		} else if ((v = ctl_optarg(argc, argv, &i, "--token-file"))) {
			o->token_file = v;
		} else if ((v = ctl_optarg(argc, argv, &i, "--token"))) {
			o->token = v;
		} else if ((v = ctl_optarg(argc, argv, &i, "--user"))) {
			o->user = v;
		} else if ((v = ctl_optarg(argc, argv, &i, "--password"))) {
			o->password = v;
		} else if ((v = ctl_optarg(argc, argv, &i, "--timeout"))) {
			char *end;
			long t = strtol(v, &end, 10);
			if (*v == '\0' || *end != '\0' || t < 1 || t > 3600) {
				fprintf(stderr, "ferromq-ctl: --timeout takes seconds from 1 to 3600, not \"%s\"\n", v);
				return -1;
			}
			o->timeout_s = (int)t;
		} else if ((v = ctl_optarg(argc, argv, &i, "--wait"))) {
			char *end;
			long t = strtol(v, &end, 10);
			if (*v == '\0' || *end != '\0' || t < 1 || t > 3600) {
				fprintf(stderr, "ferromq-ctl: --wait takes seconds from 1 to 3600, not \"%s\"\n", v);
				return -1;
			}
			o->wait_s = (int)t;
		} else if (a[0] == '-' && a[1] != '\0' && strcmp(a, "--") != 0) {
			fprintf(stderr, "ferromq-ctl: unknown option %s (see --help)\n", a);
			return -1;
		} else if (npos == 4) {
			fprintf(stderr, "ferromq-ctl: too many arguments: %s (see --help)\n", a);
			return -1;
		} else if (strcmp(a, "--") == 0 && i + 1 < argc) {
			pos[npos++] = argv[++i]; /* a client id that starts with '-' */
		} else {
			pos[npos++] = a;
		}
	}
	if (npos == 0) {
		fprintf(stderr, "ferromq-ctl: no command given (see --help)\n");
		return -1;
	}
	for (size_t c = 0; c < sizeof(ctl_commands) / sizeof(ctl_commands[0]); c++)
		if (!strcmp(pos[0], ctl_commands[c].name))
			o->cmd = &ctl_commands[c];
	if (!o->cmd) {
		fprintf(stderr, "ferromq-ctl: unknown command \"%s\" (see --help)\n", pos[0]);
		return -1;
	}
	if (o->cmd->action == ACT_CLUSTER)
		return ctl_cluster_args(o, pos + 1, npos - 1) ? -1 : ctl_credentials(o);
	bool wants_id = o->cmd->action == ACT_KICK || o->cmd->action == ACT_DELETE_SESSION;
	if (npos > 2) {
		fprintf(stderr, "ferromq-ctl: too many arguments: %s (see --help)\n", pos[2]);
		return -1;
	}
	if (wants_id && npos != 2) {
		fprintf(stderr, "ferromq-ctl: %s needs a CLIENT_ID\n", o->cmd->name);
		return -1;
	}
	if (!wants_id && npos != 1) {
		fprintf(stderr, "ferromq-ctl: %s takes no argument\n", o->cmd->name);
		return -1;
	}
	o->client_id = wants_id ? pos[1] : NULL;
	if (wants_id && o->client_id[0] == '\0') {
		fprintf(stderr, "ferromq-ctl: the CLIENT_ID is empty\n");
		return -1;
	}
	return ctl_credentials(o);
}

/* The URL and the credential: options first, then the environment.
 * Returns 0, or -1 after printing why. */
static int ctl_credentials(struct ctl_opts *o)
{
	if (!o->url)
		o->url = getenv("FERROMQ_URL") && *getenv("FERROMQ_URL") ? getenv("FERROMQ_URL")
									 : CTL_DEFAULT_URL;
	int kinds = (o->token != NULL) + (o->token_file != NULL) + (o->user || o->password);
	if (kinds > 1) {
		fprintf(stderr, "ferromq-ctl: give one of --token, --token-file or --user/--password\n");
		return -1;
	}
	if ((o->user != NULL) != (o->password != NULL)) {
		fprintf(stderr, "ferromq-ctl: --user and --password go together\n");
		return -1;
	}
	if (kinds == 0 && getenv("FERROMQ_TOKEN") && *getenv("FERROMQ_TOKEN"))
		o->token = getenv("FERROMQ_TOKEN");
	return 0;
}

static void ctl_base64(const unsigned char *in, size_t n, char *out)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
			     (i + 2 < n ? in[i + 2] : 0);
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = i + 1 < n ? abc[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? abc[v & 63] : '=';
	}
	out[o] = '\0';
}

/* Reads the token file: its first line, surrounding blanks trimmed. */
static int ctl_read_token(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "ferromq-ctl: cannot read the token file %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	size_t lead = strspn(buf, " \t");
	memmove(buf, buf + lead, n - lead + 1);
	if (buf[0] == '\0') {
		fprintf(stderr, "ferromq-ctl: the token file %s is empty\n", path);
		return -1;
	}
	return 0;
}

/* The Authorization header value for o (malloc'd in *out, NULL when no
 * credential was given). Returns 0 or -1 after printing why. */
static int ctl_authorization(const struct ctl_opts *o, char **out)
{
	char token[CTL_TOKEN_MAX];
	const char *tok = o->token;
	*out = NULL;
	if (o->token_file) {
		if (ctl_read_token(o->token_file, token, sizeof(token)) != 0)
			return -1;
		tok = token;
	}
	if (tok) {
		if (strpbrk(tok, "\r\n")) {
			fprintf(stderr, "ferromq-ctl: the token must be one line\n");
			return -1;
		}
		return asprintf(out, "Bearer %s", tok) < 0 ? -1 : 0;
	}
	if (!o->user)
		return 0;
	if (strchr(o->user, ':')) {
		fprintf(stderr, "ferromq-ctl: a user name for Basic authentication cannot contain ':'\n");
		return -1;
	}
	char *pair;
	if (asprintf(&pair, "%s:%s", o->user, o->password) < 0)
		return -1;
	size_t n = strlen(pair);
	char *enc = malloc(6 + (n + 2) / 3 * 4 + 1);
	if (enc) {
		memcpy(enc, "Basic ", 6);
		ctl_base64((const unsigned char *)pair, n, enc + 6);
	}
	free(pair);
	*out = enc;
	return enc ? 0 : -1;
}

/* The path of the request: the command's, with the client id escaped. */
static char *ctl_path(const struct ctl_opts *o)
{
	char *path = NULL;
	if (!o->client_id)
		return strdup(o->cmd->path);
	size_t n = http_escape_segment(o->client_id, NULL, 0);
	char *seg = malloc(n + 1);
	if (!seg)
		return NULL;
	http_escape_segment(o->client_id, seg, n + 1);
	if (asprintf(&path, "%s%s%s", o->cmd->path, seg, o->cmd->action == ACT_KICK ? "/kick" : "") < 0)
		path = NULL;
	free(seg);
	return path;
}

/* The "error" member of a JSON error answer, or a short excerpt of the body. */
static char *ctl_error_text(const struct json_doc *d, bool parsed, const struct http_response *r)
{
	int e = parsed && d->tok[0].type == JSON_OBJECT ? json_get(d, 0, "error") : -1;
	if (e >= 0)
		return view_text(d, e);
	char *s = strndup(r->body, r->body_len > 200 ? 200 : r->body_len);
	for (char *p = s; p && *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	return s;
}

/* why: the broker's own error text, or NULL. */
static void ctl_auth_failed(const struct ctl_opts *o, int status, const char *why)
{
	const char *what = status == 401 ? "refused" : "forbade";
	/* A 403 for a good password: the user lacks an HTTP API grant, which
	 * the broker's answer names. */
	if (o->user && status == 403)
		fprintf(stderr, "ferromq-ctl: the broker at %s forbade user \"%s\" (HTTP 403): %s\n", o->url, o->user,
			why ? why : "no grant for this request");
	else if (o->user)
		fprintf(stderr,
			"ferromq-ctl: the broker at %s %s user \"%s\" (HTTP %d): check --user and "
			"--password against the broker's password_file\n", o->url, what, o->user, status);
	else if (o->token || o->token_file)
		fprintf(stderr,
			"ferromq-ctl: the broker at %s %s the token (HTTP %d): pass the one in the "
			"broker's http_token_file with --token-file PATH or --token TOKEN\n",
			o->url, what, status);
	else
		fprintf(stderr,
			"ferromq-ctl: the broker at %s wants a credential (HTTP %d): pass --token-file "
			"PATH (the broker's http_token_file), --token TOKEN or $FERROMQ_TOKEN, or "
			"--user USER --password PASSWORD of its password_file\n", o->url, status);
}

/* The "errors" array of a reload answer, or -1 when it has none. */
static int ctl_reload_errors(const struct json_doc *d)
{
	int errors = d->tok[0].type == JSON_OBJECT ? json_get(d, 0, "errors") : -1;
	if (errors < 0 || d->tok[errors].type != JSON_ARRAY || d->tok[errors].children == 0)
		return -1;
	return errors;
}

/* What a 2xx answer means for kick, delete-session and reload. */
static int ctl_show_action(const struct ctl_opts *o, const struct json_doc *d)
{
	if (o->cmd->action == ACT_KICK) {
		printf("kicked %s\n", o->client_id);
		return CTL_OK;
	}
	if (o->cmd->action == ACT_DELETE_SESSION) {
		printf("deleted session %s\n", o->client_id);
		return CTL_OK;
	}
	int errors = ctl_reload_errors(d);
	if (errors < 0) {
		printf("reloaded\n");
		return CTL_OK;
	}
	fprintf(stderr, "ferromq-ctl: the reload reported %u error(s):\n", d->tok[errors].children);
	for (int e = json_first(d, errors); e >= 0; e = json_after(d, errors, e)) {
		char *s = view_text(d, e);
		fprintf(stderr, "  %s\n", s ? s : "?");
		free(s);
	}
	return CTL_REFUSED;
}

/* Interprets the answer r to the request of o; returns the exit code. */
static int ctl_answer(const struct ctl_opts *o, const struct http_response *r)
{
	size_t cap = r->body_len / 2 + 2;
	struct json_token *tok = malloc((cap < CTL_MAX_TOKENS ? cap : CTL_MAX_TOKENS) * sizeof(*tok));
	struct json_doc d;
	struct json_error jerr = { 0, "out of memory" };
	bool parsed = tok && json_parse(r->body, r->body_len, tok, cap < CTL_MAX_TOKENS ? cap : CTL_MAX_TOKENS,
				       &d, &jerr) == 0;
	int ret = CTL_FAILED;
	const char *why = NULL;
	char *text = NULL;

	if (r->status == 401 || r->status == 403) {
		text = ctl_error_text(&d, parsed, r);
		ctl_auth_failed(o, r->status, text);
		ret = CTL_REFUSED;
		goto out;
	}
	if (r->status == 404 && o->client_id) {
		text = ctl_error_text(&d, parsed, r);
		if (o->json && parsed)
			printf("%.*s\n", (int)r->body_len, r->body);
		fprintf(stderr, "ferromq-ctl: no %s \"%s\" on the broker at %s (%s)\n",
			o->cmd->action == ACT_KICK ? "connected client" : "session", o->client_id, o->url,
			text ? text : "404");
		ret = CTL_REFUSED;
		goto out;
	}
	if (r->status < 200 || r->status > 299) {
		text = ctl_error_text(&d, parsed, r);
		fprintf(stderr, "ferromq-ctl: %s %s%s: HTTP %d from the broker: %s\n", o->cmd->method,
			o->url, o->cmd->path, r->status, text ? text : "");
		goto out;
	}
	if (!parsed) {
		fprintf(stderr, "ferromq-ctl: the answer from %s is not valid JSON: %s at byte %zu\n",
			o->url, jerr.what, jerr.offset);
		goto out;
	}
	if (o->json) {
		fwrite(r->body, 1, r->body_len, stdout);
		if (r->body_len == 0 || r->body[r->body_len - 1] != '\n')
			putchar('\n');
		ret = o->cmd->action == ACT_RELOAD && ctl_reload_errors(&d) >= 0 ? CTL_REFUSED : CTL_OK;
		goto out;
	}
	switch (o->cmd->action) {
	case ACT_STATUS:
		ret = view_status(&d, stdout, &why) == 0 ? CTL_OK : CTL_FAILED;
		break;
	case ACT_LIST:
		ret = view_list(&d, o->cmd->list, stdout, &why) == 0 ? CTL_OK : CTL_FAILED;
		break;
	case ACT_SPARKPLUG:
		ret = view_sparkplug(&d, stdout, &why) == 0 ? CTL_OK : CTL_FAILED;
		break;
	case ACT_CLUSTER:
		ret = view_cluster(&d, stdout, &why) == 0 ? CTL_OK : CTL_FAILED;
		break;
	default:
		ret = ctl_show_action(o, &d);
		break;
	}
	if (why)
		fprintf(stderr, "ferromq-ctl: unexpected answer from %s%s: %s\n", o->url, o->cmd->path, why);
out:
	free(text);
	free(tok);
	return ret;
}

/* Parses the JSON of answer r into d (tokens in *tok, to free). Returns 0,
 * or -1 after printing why. */
static int ctl_parse(const struct ctl_opts *o, const struct http_response *r, struct json_doc *d,
		     struct json_token **tok)
{
	size_t cap = r->body_len / 2 + 2;
	struct json_error jerr = { 0, "out of memory" };
	cap = cap < CTL_MAX_TOKENS ? cap : CTL_MAX_TOKENS;
	*tok = malloc(cap * sizeof(**tok));
	if (*tok && json_parse(r->body, r->body_len, *tok, cap, d, &jerr) == 0)
		return 0;
	fprintf(stderr, "ferromq-ctl: the answer from %s is not valid JSON: %s at byte %zu\n", o->url, jerr.what,
		jerr.offset);
	return -1;
}

/* A cluster change the broker did not queue (answer r): who leads, when
 * it is not this node. Returns the exit code. */
static int ctl_cluster_refused(const struct ctl_opts *o, const struct http_response *r)
{
	struct json_token *tok = NULL;
	struct json_doc d;
	bool parsed = ctl_parse(o, r, &d, &tok) == 0 && d.tok[0].type == JSON_OBJECT;
	char *text = ctl_error_text(&d, parsed, r);
	int ret = r->status == 400 || r->status == 409 ? CTL_REFUSED : CTL_FAILED;
	int leader = parsed ? json_get(&d, 0, "leader_id") : -1;
	if (r->status == 401 || r->status == 403) {
		ctl_auth_failed(o, r->status, text);
		ret = CTL_REFUSED;
	} else if (leader >= 0 && d.tok[leader].type == JSON_NUMBER) {
		char *id = view_text(&d, leader), *addr = view_text(&d, json_get(&d, 0, "leader_address"));
		fprintf(stderr, "ferromq-ctl: the node at %s is not the leader: the leader is node %s at %s "
				"(its cluster address); run this against that node's http_listener\n",
			o->url, id ? id : "?", addr ? addr : "?");
		free(id);
		free(addr);
	} else if (leader >= 0) {
		fprintf(stderr, "ferromq-ctl: the node at %s is not the leader and knows no leader now (an election "
				"may be running): try again\n", o->url);
	} else {
		fprintf(stderr, "ferromq-ctl: cluster %s refused by %s (HTTP %d): %s\n", o->cluster_op, o->url,
			r->status, text ? text : "");
	}
	free(text);
	free(tok);
	return ret;
}

static long long ctl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What a finished change (in status d) did, for people. */
static void ctl_cluster_done(const struct ctl_opts *o, const struct json_doc *d)
{
	if (!strcmp(o->cluster_op, "add")) {
		printf("node %lld at %s added (a voter)\n", o->node_id, o->address);
	} else if (!strcmp(o->cluster_op, "remove")) {
		printf("node %lld removed\n", o->node_id);
	} else {
		char *id = view_text(d, json_get(d, 0, "leader_id"));
		char *addr = view_text(d, json_get(d, 0, "leader_address"));
		printf("leadership transferred: the leader is node %s at %s\n", id ? id : "?", addr ? addr : "?");
		free(id);
		free(addr);
	}
}

/* GET /api/cluster: 0 with the parsed answer in d (tokens in *tok and the
 * result in *res, to free), else -1 with why in err. */
static int ctl_cluster_get(const struct ctl_opts *o, const struct http_url *url, const char *auth, int timeout_ms,
			   struct http_result *res, struct json_doc *d, struct json_token **tok, char *err,
			   size_t errcap)
{
	*tok = NULL;
	if (http_exchange(url, "GET", "/api/cluster", auth, timeout_ms, res, err, errcap) != 0)
		return -1;
	if (res->resp.status == 200 && ctl_parse(o, &res->resp, d, tok) == 0)
		return 0;
	snprintf(err, errcap, "GET /api/cluster answered HTTP %d without a cluster status", res->resp.status);
	return -1;
}

/* How long an outcome identical to the one the node showed before the
 * request is taken for that old one: the status a node shows is refreshed
 * by its loop, which takes the request after answering 202. */
#define CTL_CHANGE_SETTLE_MS 2000

/* Polls /api/cluster until the change o asked for is over, for o->wait_s
 * at most; before: the node's "change" before the request (or NULL).
 * Returns the exit code. */
static int ctl_cluster_wait(const struct ctl_opts *o, const struct http_url *url, const char *auth,
			    const char *before)
{
	long long start = ctl_now_ms(), deadline = start + (long long)o->wait_s * 1000;
	char err[256] = "no answer yet";
	for (;;) {
		nanosleep(&(struct timespec){ 0, 200 * 1000000L }, NULL);
		struct http_result res = { 0 };
		struct json_token *tok = NULL;
		struct json_doc d;
		long long left = deadline - ctl_now_ms();
		int t = (int)(left < o->timeout_s * 1000LL ? left : o->timeout_s * 1000LL), ret = -1;
		if (t > 0 && ctl_cluster_get(o, url, auth, t, &res, &d, &tok, err, sizeof(err)) == 0) {
			char *why = NULL, *now = view_cluster_change_json(&d);
			enum view_change st = view_cluster_change(&d, o->cluster_op, o->node_id, &why);
			if (before && now && !strcmp(before, now) && ctl_now_ms() - start < CTL_CHANGE_SETTLE_MS)
				st = VIEW_CHANGE_PENDING; /* the node's loop has not taken it yet */
			if (st == VIEW_CHANGE_DONE) {
				if (o->json)
					printf("%.*s\n", (int)res.resp.body_len, res.resp.body);
				else
					ctl_cluster_done(o, &d);
				ret = CTL_OK;
			} else if (st == VIEW_CHANGE_FAILED) {
				fprintf(stderr, "ferromq-ctl: cluster %s of node %lld failed: %s\n", o->cluster_op,
					o->node_id, why ? why : "?");
				ret = CTL_REFUSED;
			} else if (st == VIEW_CHANGE_OTHER) {
				/* Not visible yet, or (rarely) over and followed by another. */
				snprintf(err, sizeof(err), "the node's last change is another one: %s", now ? now : "null");
			} else if (st == VIEW_CHANGE_PENDING) {
				snprintf(err, sizeof(err), "still running");
			}
			free(now);
			free(why);
		}
		free(tok);
		free(res.buf);
		if (ret >= 0)
			return ret;
		if (ctl_now_ms() + 200 >= deadline) {
			fprintf(stderr, "ferromq-ctl: the cluster %s of node %lld did not finish within %d s (last: %s); "
					"see ferromq-ctl cluster and the broker's log\n",
				o->cluster_op, o->node_id, o->wait_s, err);
			return CTL_FAILED;
		}
	}
}

/* cluster add / remove / transfer: asks, then waits for the outcome. */
static int ctl_cluster_change(const struct ctl_opts *o, const struct http_url *url, const char *auth)
{
	struct http_result res = { 0 };
	char path[64], *body = NULL, err[256];
	const char *method = "POST";
	int n;
	if (!strcmp(o->cluster_op, "add")) {
		snprintf(path, sizeof(path), "/api/cluster/nodes");
		n = asprintf(&body, "{\"id\":%lld,\"address\":\"%s\"}", o->node_id, o->address);
	} else if (!strcmp(o->cluster_op, "remove")) {
		method = "DELETE";
		snprintf(path, sizeof(path), "/api/cluster/nodes/%lld", o->node_id);
		n = 0;
	} else {
		snprintf(path, sizeof(path), "/api/cluster/transfer");
		n = asprintf(&body, "{\"id\":%lld}", o->node_id);
	}
	if (n < 0) {
		fprintf(stderr, "ferromq-ctl: out of memory\n");
		return CTL_FAILED;
	}
	/* What the node showed before: an identical outcome may be the old one. */
	struct http_result was = { 0 };
	struct json_token *tok = NULL;
	struct json_doc d;
	char *before = NULL;
	if (ctl_cluster_get(o, url, auth, o->timeout_s * 1000, &was, &d, &tok, err, sizeof(err)) == 0)
		before = view_cluster_change_json(&d);
	free(tok);
	free(was.buf);
	int ret = CTL_FAILED;
	if (http_exchange_json(url, method, path, auth, body, o->timeout_s * 1000, &res, err, sizeof(err)) != 0)
		fprintf(stderr, "ferromq-ctl: cannot %s %s%s: %s (is the broker running with an http_listener "
				"there? --url or $FERROMQ_URL)\n", method, o->url, path, err);
	else if (res.resp.status != 202)
		ret = ctl_cluster_refused(o, &res.resp);
	else
		ret = ctl_cluster_wait(o, url, auth, before);
	free(before);
	free(res.buf);
	free(body);
	return ret;
}

int main(int argc, char **argv)
{
	struct ctl_opts o = { 0 };
	struct http_url url;
	struct http_result res = { 0 };
	char *auth = NULL, *path = NULL, err[256];
	const char *why;
	int ret = CTL_FAILED;

	int rc = ctl_args(argc, argv, &o);
	if (rc != 0)
		return rc > 0 ? CTL_OK : CTL_FAILED;
	if (http_url_parse(o.url, &url, &why) != 0) {
		fprintf(stderr, "ferromq-ctl: bad URL \"%s\": %s\n", o.url, why);
		return CTL_FAILED;
	}
	if (ctl_authorization(&o, &auth) != 0)
		return CTL_FAILED;
	if (o.cluster_op) {
		ret = ctl_cluster_change(&o, &url, auth);
		goto out;
	}
	if (!(path = ctl_path(&o))) {
		fprintf(stderr, "ferromq-ctl: out of memory\n");
		goto out;
	}
	if (http_exchange(&url, o.cmd->method, path, auth, o.timeout_s * 1000, &res, err, sizeof(err)) != 0) {
		fprintf(stderr, "ferromq-ctl: cannot %s %s%s: %s (is the broker running with an "
				"http_listener there? --url or $FERROMQ_URL)\n",
			o.cmd->method, o.url, path, err);
		goto out;
	}
	ret = ctl_answer(&o, &res.resp);
	fflush(stdout);
	if (ferror(stdout)) {
		fprintf(stderr, "ferromq-ctl: writing the output failed\n");
		ret = CTL_FAILED;
	}
out:
	free(res.buf);
	free(path);
	free(auth);
	return ret;
}
