/* Tables for the API's answers; see view.h. */
#include "ctl/view.h"
#include "ctl/table.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum view_kind {
	KIND_TEXT,     /* view_text */
	KIND_NUMBER,   /* view_text, right-aligned */
	KIND_DURATION, /* seconds, in human units */
	KIND_EXPIRY,   /* a session expiry interval: 4294967295 is "never" */
	KIND_BYTES,    /* a byte count, in human units */
	KIND_TIME,     /* unix seconds, as local date and time */
};

struct view_column {
	const char *title, *key;
	enum view_kind kind;
};

#define VIEW_END { NULL, NULL, KIND_TEXT }

static const struct view_column view_clients[] = {
	{ "CLIENT ID", "client_id", KIND_TEXT },
	{ "ADDRESS", "address", KIND_TEXT },
	{ "PROTOCOL", "protocol", KIND_TEXT },
	{ "LISTENER", "listener", KIND_TEXT },
	{ "USERNAME", "username", KIND_TEXT },
	{ "IDENTITY", "identity", KIND_TEXT },
	{ "KEEPALIVE", "keepalive", KIND_NUMBER },
	{ "INFLIGHT", "inflight", KIND_NUMBER },
	{ "QUEUED", "queued", KIND_NUMBER },
	{ "MSGS IN", "msgs_received", KIND_NUMBER },
	{ "MSGS OUT", "msgs_sent", KIND_NUMBER },
	{ "BYTES IN", "bytes_received", KIND_NUMBER },
	{ "BYTES OUT", "bytes_sent", KIND_NUMBER },
	{ "CONNECTED", "connected_seconds", KIND_DURATION },
	{ "WORKER", "worker", KIND_NUMBER },
	VIEW_END,
};

static const struct view_column view_sessions[] = {
	{ "CLIENT ID", "client_id", KIND_TEXT },
	{ "CONNECTED", "connected", KIND_TEXT },
	{ "QUEUED", "queued", KIND_NUMBER },
	{ "QUEUED BYTES", "queued_bytes", KIND_NUMBER },
	{ "OLDEST", "oldest_age_seconds", KIND_DURATION },
	{ "INFLIGHT", "inflight", KIND_NUMBER },
	{ "SUBS", "subscriptions", KIND_NUMBER },
	{ "EXPIRY", "expiry_interval", KIND_EXPIRY },
	{ "EXPIRES IN", "expires_in_seconds", KIND_DURATION },
	VIEW_END,
};

static const struct view_column view_subscriptions[] = {
	{ "CLIENT ID", "client_id", KIND_TEXT },
	{ "FILTER", "filter", KIND_TEXT },
	{ "QOS", "qos", KIND_NUMBER },
	{ "NO LOCAL", "no_local", KIND_TEXT },
	{ "RETAIN AS PUB", "retain_as_published", KIND_TEXT },
	{ "RETAIN HANDLING", "retain_handling", KIND_NUMBER },
	{ "SUB ID", "subscription_id", KIND_NUMBER },
	VIEW_END,
};

static const struct view_column view_retained[] = {
	{ "TOPIC", "topic", KIND_TEXT },
	{ "BYTES", "bytes", KIND_NUMBER },
	{ "QOS", "qos", KIND_NUMBER },
	VIEW_END,
};

static const struct view_column view_bridges[] = {
	{ "BRIDGE", "name", KIND_TEXT },
	{ "CONNECTED", "connected", KIND_TEXT },
	{ "REMOTE", "remote", KIND_TEXT },
	{ "SPOOLED", "spool_messages", KIND_NUMBER },
	{ "SPOOL BYTES", "spool_bytes", KIND_BYTES },
	{ "OLDEST", "oldest_age_seconds", KIND_DURATION },
	{ "DRAIN IN", "drain_seconds", KIND_DURATION },
	{ "SENT", "sent", KIND_NUMBER },
	{ "RECEIVED", "received", KIND_NUMBER },
	{ "REDUCED", "reduced", KIND_NUMBER },
	{ "DROPPED", "dropped", KIND_TEXT },
	VIEW_END,
};

static const struct view_column view_devices[] = {
	{ "DEVICE", "name", KIND_TEXT },
	{ "STATE", "state", KIND_TEXT },
	{ "ADDRESS", "address", KIND_TEXT },
	{ "SINCE", "since", KIND_TIME },
	{ "LAST ANSWER", "last_success", KIND_TIME },
	{ "TAGS", "tags", KIND_NUMBER },
	{ "POLLS", "polls", KIND_NUMBER },
	{ "FAILED", "polls_failed", KIND_NUMBER },
	{ "LATE", "polls_late", KIND_NUMBER },
	{ "EXCEPTIONS", "exceptions", KIND_NUMBER },
	{ "COMMITTED", "readings_committed", KIND_NUMBER },
	{ "WRITES", "writes", KIND_NUMBER },
	{ "LAST ERROR", "last_error", KIND_TEXT },
	VIEW_END,
};

static const struct view_column view_top_queues[] = {
	{ "TOP QUEUES", "client_id", KIND_TEXT },
	{ "QUEUED", "queued", KIND_NUMBER },
	{ "QUEUED BYTES", "queued_bytes", KIND_BYTES },
	{ "CONNECTED", "connected", KIND_TEXT },
	VIEW_END,
};

static const struct view_column view_alerts[] = {
	{ "ALERT", "name", KIND_TEXT },
	{ "STATE", "state", KIND_TEXT },
	{ "VALUE", "value", KIND_NUMBER },
	{ "THRESHOLD", "threshold", KIND_NUMBER },
	{ "SINCE", "since", KIND_TIME },
	VIEW_END,
};

void view_duration(double s, char *buf, size_t cap)
{
	long long t = s < 0 ? 0 : (long long)s;
	if (t < 60)
		snprintf(buf, cap, "%llds", t);
	else if (t < 3600)
		snprintf(buf, cap, "%lldm%02llds", t / 60, t % 60);
	else if (t < 86400)
		snprintf(buf, cap, "%lldh%02lldm", t / 3600, t / 60 % 60);
	else
		snprintf(buf, cap, "%lldd%02lldh", t / 86400, t / 3600 % 24);
}

void view_bytes(double b, char *buf, size_t cap)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	size_t u = 0;
	while (b >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		b /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, cap, "%.0f B", b);
	else
		snprintf(buf, cap, "%.1f %s", b, unit[u]);
}

/* Replaces C0 and C1 control characters (and DEL) of a UTF-8 string of len
 * bytes with '?', so a client id cannot drive the terminal. */
static void view__sanitize(char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7F) {
			s[i] = '?';
		} else if (c == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
			   (unsigned char)s[i + 1] <= 0x9F) {
			/* U+0080..U+009F take two bytes; keep the width at one. */
			memmove(s + i + 1, s + i + 2, len - i - 2);
			s[i] = '?';
			s[--len] = '\0';
		}
	}
}

char *view_text(const struct json_doc *d, int v)
{
	if (v < 0 || d->tok[v].type == JSON_NULL)
		return strdup("-");
	const struct json_token *t = &d->tok[v];
	long long ll;
	double x;
	char num[64];
	char *s;
	switch (t->type) {
	case JSON_TRUE:
		return strdup("yes");
	case JSON_FALSE:
		return strdup("no");
	case JSON_NUMBER:
		if (json_integer(d, v, &ll))
			snprintf(num, sizeof(num), "%lld", ll);
		else if (json_number(d, v, &x))
			snprintf(num, sizeof(num), "%.1f", x);
		else
			return NULL;
		return strdup(num);
	case JSON_STRING: {
		size_t n = json_string(d, v, NULL, 0);
		if (!(s = malloc(n + 1)))
			return NULL;
		json_string(d, v, s, n + 1);
		view__sanitize(s, n);
		return s;
	}
	default:
		if (!(s = strndup(d->text + t->start, t->len)))
			return NULL;
		view__sanitize(s, t->len);
		return s;
	}
}

static char *view__cell(const struct json_doc *d, int v, enum view_kind kind)
{
	double x;
	char buf[64];
	if (v < 0 || !json_number(d, v, &x) || kind == KIND_TEXT || kind == KIND_NUMBER)
		return view_text(d, v);
	if (kind == KIND_EXPIRY && x >= 4294967295.0)
		return strdup("never");
	if (kind == KIND_TIME) {
		time_t when = (time_t)x;
		struct tm tm;
		if (!localtime_r(&when, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm))
			return view_text(d, v);
	} else if (kind == KIND_BYTES)
		view_bytes(x, buf, sizeof(buf));
	else
		view_duration(x, buf, sizeof(buf));
	return strdup(buf);
}

/* Writes the rows of array arr (objects) with the given columns. */
static int view__table(const struct json_doc *d, int arr, const struct view_column *cols,
		       FILE *out, const char **why)
{
	const char *titles[TABLE_MAX_COLUMNS];
	bool right[TABLE_MAX_COLUMNS];
	char *cells[TABLE_MAX_COLUMNS];
	size_t n = 0;
	int ret = -1;
	struct table t;
	if (arr < 0 || d->tok[arr].type != JSON_ARRAY) {
		*why = "expected a JSON array";
		return -1;
	}
	for (; cols[n].title; n++) {
		titles[n] = cols[n].title;
		right[n] = cols[n].kind != KIND_TEXT;
	}
	table_init(&t, n, titles, right);
	for (int row = json_first(d, arr); row >= 0; row = json_after(d, arr, row)) {
		size_t c = 0;
		if (d->tok[row].type != JSON_OBJECT) {
			*why = "expected an array of JSON objects";
			goto out;
		}
		for (; c < n; c++)
			if (!(cells[c] = view__cell(d, json_get(d, row, cols[c].key), cols[c].kind)))
				break;
		int rc = c == n ? table_add(&t, (const char *const *)cells) : -1;
		while (c > 0)
			free(cells[--c]);
		if (rc != 0) {
			*why = "out of memory";
			goto out;
		}
	}
	table_print(&t, out);
	ret = 0;
out:
	table_free(&t);
	return ret;
}

int view_list(const struct json_doc *d, enum view_list which, FILE *out, const char **why)
{
	static const struct view_column *const cols[] = {
		[VIEW_CLIENTS] = view_clients,
		[VIEW_SESSIONS] = view_sessions,
		[VIEW_SUBSCRIPTIONS] = view_subscriptions,
		[VIEW_RETAINED] = view_retained,
		[VIEW_BRIDGES] = view_bridges,
		[VIEW_DEVICES] = view_devices,
	};
	return view__table(d, 0, cols[which], out, why);
}

/* Appends "label value" rows for the totals; a missing metric shows "-". */
static int view__totals(const struct json_doc *d, int m, struct table *t)
{
	static const struct { const char *label, *key; enum view_kind kind; } rows[] = {
		{ "messages received", "messages_received", KIND_NUMBER },
		{ "messages sent", "messages_sent", KIND_NUMBER },
		{ "bytes received", "bytes_received", KIND_BYTES },
		{ "bytes sent", "bytes_sent", KIND_BYTES },
		{ "clients connected", "clients_connected", KIND_NUMBER },
		{ "clients disconnected", "clients_disconnected", KIND_NUMBER },
		{ "clients maximum", "clients_maximum", KIND_NUMBER },
		{ "clients total", "clients_total", KIND_NUMBER },
		{ "subscriptions", "subscriptions", KIND_NUMBER },
		{ "retained messages", "retained_messages", KIND_NUMBER },
		{ "queued messages", "queued_messages", KIND_NUMBER },
		{ "queued bytes", "queued_bytes", KIND_BYTES },
		{ "inflight messages", "inflight_messages", KIND_NUMBER },
		{ "heap", "heap_bytes", KIND_BYTES },
		{ "heap maximum", "heap_max_bytes", KIND_BYTES },
		{ "store", "store_bytes", KIND_BYTES },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *v = view__cell(d, json_get(d, m, rows[i].key), rows[i].kind);
		const char *cells[2] = { rows[i].label, v };
		int rc = v ? table_add(t, cells) : -1;
		free(v);
		if (rc)
			return -1;
	}
	int drops = json_get(d, m, "drops");
	if (drops < 0 || d->tok[drops].type != JSON_OBJECT)
		return 0;
	for (int k = json_first(d, drops); k >= 0; k = json_after(d, drops, k)) {
		char *name = view_text(d, k), *v = view_text(d, k + 1), *label = NULL;
		int rc = -1;
		if (name && v && asprintf(&label, "dropped: %s", name) >= 0) {
			const char *cells[2] = { label, v };
			rc = table_add(t, cells);
			free(label);
		}
		free(name);
		free(v);
		if (rc)
			return -1;
	}
	return 0;
}

/* The rates table: one row per rate, columns now/1m/5m/15m. */
static int view__rates(const struct json_doc *d, int rates, FILE *out)
{
	static const char *const titles[] = { "RATE /s", "NOW", "1M", "5M", "15M" };
	static const char *const keys[] = { NULL, "now", "1m", "5m", "15m" };
	static const bool right[] = { false, true, true, true, true };
	struct table t;
	int ret = -1;
	table_init(&t, 5, titles, right);
	for (int k = rates >= 0 && d->tok[rates].type == JSON_OBJECT ? json_first(d, rates) : -1;
	     k >= 0; k = json_after(d, rates, k)) {
		char *cells[5] = { view_text(d, k) };
		for (size_t c = 1; c < 5; c++)
			cells[c] = view_text(d, json_get(d, k + 1, keys[c]));
		bool ok = true;
		for (size_t c = 0; c < 5; c++)
			ok = ok && cells[c];
		int rc = ok ? table_add(&t, (const char *const *)cells) : -1;
		for (size_t c = 0; c < 5; c++)
			free(cells[c]);
		if (rc)
			goto out;
	}
	table_print(&t, out);
	ret = 0;
out:
	table_free(&t);
	return ret;
}

static const struct view_column view_spb_nodes[] = {
	{ "GROUP", "group", KIND_TEXT },
	{ "EDGE NODE", "edge_node", KIND_TEXT },
	{ "ONLINE", "online", KIND_TEXT },
	{ "SINCE", "since", KIND_TIME },
	{ "LAST BIRTH", "last_birth", KIND_TIME },
	{ "METRICS", "metrics", KIND_NUMBER },
	{ "BDSEQ", "bdseq", KIND_NUMBER },
	{ "SEQ GAPS", "seq_gaps", KIND_NUMBER },
	{ "BIRTHS", "births", KIND_NUMBER },
	{ "DEATHS", "deaths", KIND_NUMBER },
	{ "STALE DEATHS", "stale_deaths", KIND_NUMBER },
	{ "MESSAGES", "messages", KIND_NUMBER },
	VIEW_END,
};

static const struct view_column view_spb_devices[] = {
	{ "GROUP", "group", KIND_TEXT },
	{ "EDGE NODE", "edge_node", KIND_TEXT },
	{ "DEVICE", "device", KIND_TEXT },
	{ "ONLINE", "online", KIND_TEXT },
	{ "SINCE", "since", KIND_TIME },
	{ "LAST BIRTH", "last_birth", KIND_TIME },
	{ "METRICS", "metrics", KIND_NUMBER },
	{ "BIRTHS", "births", KIND_NUMBER },
	{ "DEATHS", "deaths", KIND_NUMBER },
	{ "MESSAGES", "messages", KIND_NUMBER },
	VIEW_END,
};

static const struct view_column view_spb_hosts[] = {
	{ "HOST APPLICATION", "host_id", KIND_TEXT },
	{ "ONLINE", "online", KIND_TEXT },
	{ "SINCE", "since", KIND_TIME },
	{ "LAST STATE", "last_state", KIND_TIME },
	VIEW_END,
};

int view_sparkplug(const struct json_doc *d, FILE *out, const char **why)
{
	*why = NULL;
	if (d->tok[0].type != JSON_OBJECT) {
		*why = "expected a JSON object";
		return -1;
	}
	int aware = json_get(d, 0, "aware");
	if (aware >= 0 && d->tok[aware].type == JSON_FALSE) {
		fputs("the broker is not Sparkplug aware (sparkplug_aware false): no fleet view\n", out);
		return 0;
	}
	int t = json_get(d, 0, "totals");
	char *ns = view_text(d, json_get(d, 0, "namespace"));
	char *n[7] = { 0 };
	static const char *const keys[7] = { "edge_nodes", "edge_nodes_online", "devices", "devices_online",
					     "host_applications", "host_applications_online", "seq_gaps" };
	for (int i = 0; i < 7; i++)
		n[i] = view_text(d, t >= 0 ? json_get(d, t, keys[i]) : -1);
	int rc = -1;
	if (ns && n[0] && n[1] && n[2] && n[3] && n[4] && n[5] && n[6]) {
		fprintf(out, "namespace %s: %s of %s edge nodes online, %s of %s devices, %s of %s host applications; "
			"%s seq gaps\n\n", ns, n[1], n[0], n[3], n[2], n[5], n[4], n[6]);
		rc = view__table(d, json_get(d, 0, "edge_nodes"), view_spb_nodes, out, why);
	}
	if (rc == 0) {
		fputc('\n', out);
		rc = view__table(d, json_get(d, 0, "devices"), view_spb_devices, out, why);
	}
	if (rc == 0) {
		fputc('\n', out);
		rc = view__table(d, json_get(d, 0, "host_applications"), view_spb_hosts, out, why);
	}
	free(ns);
	for (int i = 0; i < 7; i++)
		free(n[i]);
	if (rc != 0 && !*why)
		*why = "out of memory";
	return rc;
}

int view_status(const struct json_doc *d, FILE *out, const char **why)
{
	struct table t;
	double x;
	char up[32] = "-";
	*why = NULL;
	if (d->tok[0].type != JSON_OBJECT) {
		*why = "expected a JSON object";
		return -1;
	}
	char *version = view_text(d, json_get(d, 0, "version"));
	if (json_number(d, json_get(d, 0, "uptime_seconds"), &x))
		view_duration(x, up, sizeof(up));
	const char *head[2][2] = { { "version", version ? version : "-" }, { "uptime", up } };
	table_init(&t, 2, NULL, NULL);
	int rc = table_add(&t, head[0]) | table_add(&t, head[1]);
	free(version);
	if (rc == 0)
		rc = view__totals(d, json_get(d, 0, "metrics"), &t);
	if (rc == 0)
		table_print(&t, out);
	table_free(&t);
	if (rc == 0) {
		fputc('\n', out);
		rc = view__rates(d, json_get(d, 0, "rates"), out);
	}
	int queues = json_get(d, 0, "top_queues"), alerts = json_get(d, 0, "alerts");
	if (rc == 0 && queues >= 0) {
		fputc('\n', out);
		rc = view__table(d, queues, view_top_queues, out, why);
	}
	if (rc == 0 && alerts >= 0) {
		fputc('\n', out);
		rc = view__table(d, alerts, view_alerts, out, why);
	}
	if (rc != 0 && !*why)
		*why = "out of memory";
	return rc;
}

static const struct view_column view_cluster_peers[] = {
	{ "PEER", "id", KIND_NUMBER },
	{ "ADDRESS", "address", KIND_TEXT },
	{ "VOTER", "voter", KIND_TEXT },
	{ "MATCH INDEX", "match_index", KIND_NUMBER },
	{ "LAG", "lag", KIND_NUMBER },
	VIEW_END,
};

/* "add of node 4: running", "... done" or "... failed: why". */
static char *view__change_text(const struct json_doc *d, int c)
{
	if (c < 0 || d->tok[c].type != JSON_OBJECT)
		return strdup("none");
	char *kind = view_text(d, json_get(d, c, "kind")), *id = view_text(d, json_get(d, c, "id"));
	char *err = view_text(d, json_get(d, c, "error")), *text = NULL;
	int pending = json_get(d, c, "pending");
	const char *state = pending >= 0 && d->tok[pending].type == JSON_TRUE ? "running"
			    : err && strcmp(err, "-")			    ? "failed: "
									    : "done";
	if (kind && id && err &&
	    asprintf(&text, "%s of node %s: %s%s", kind, id, state, !strcmp(state, "failed: ") ? err : "") < 0)
		text = NULL;
	free(kind);
	free(id);
	free(err);
	return text;
}

int view_cluster(const struct json_doc *d, FILE *out, const char **why)
{
	*why = NULL;
	if (d->tok[0].type != JSON_OBJECT) {
		*why = "expected a JSON object";
		return -1;
	}
	int on = json_get(d, 0, "cluster");
	if (on < 0 || d->tok[on].type == JSON_FALSE) {
		fputs("cluster: off (this broker is not in a cluster)\n", out);
		return 0;
	}
	static const struct { const char *label, *key; } rows[] = {
		{ "node", "node_id" },	       { "role", "role" },
		{ "state", "state" },	       { "not serving", "not_ready" },
		{ "term", "term" },	       { "leader", "leader_id" },
		{ "leader address", "leader_address" },
		{ "commit index", "commit_index" }, { "applied index", "applied_index" },
		{ "last index", "last_index" }, { "snapshots", "snapshots" },
		{ "restores", "restores" },
	};
	struct table t;
	int rc = 0;
	table_init(&t, 2, NULL, NULL);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]) && rc == 0; i++) {
		int v = json_get(d, 0, rows[i].key);
		if (!strcmp(rows[i].key, "not_ready") && (v < 0 || d->tok[v].type == JSON_NULL))
			continue; /* serving: nothing to say */
		char *cell = view_text(d, v);
		const char *cells[2] = { rows[i].label, cell };
		rc = cell ? table_add(&t, cells) : -1;
		free(cell);
	}
	char *change = rc == 0 ? view__change_text(d, json_get(d, 0, "change")) : NULL;
	if (change) {
		const char *cells[2] = { "last change", change };
		rc = table_add(&t, cells);
		free(change);
	} else {
		rc = -1;
	}
	if (rc == 0)
		table_print(&t, out);
	table_free(&t);
	if (rc == 0) {
		fputc('\n', out);
		rc = view__table(d, json_get(d, 0, "peers"), view_cluster_peers, out, why);
	}
	if (rc != 0 && !*why)
		*why = "out of memory";
	return rc;
}

enum view_change view_cluster_change(const struct json_doc *d, const char *kind, long long id, char **error)
{
	*error = NULL;
	int on = d->tok[0].type == JSON_OBJECT ? json_get(d, 0, "cluster") : -1;
	if (on < 0 || d->tok[on].type != JSON_TRUE)
		return VIEW_CHANGE_BAD;
	int c = json_get(d, 0, "change");
	if (c < 0 || d->tok[c].type != JSON_OBJECT)
		return VIEW_CHANGE_OTHER;
	long long cid;
	if (!json_string_is(d, json_get(d, c, "kind"), kind) || !json_integer(d, json_get(d, c, "id"), &cid) ||
	    (cid != id && !(id == 0 && !strcmp(kind, "transfer"))))
		return VIEW_CHANGE_OTHER;
	int pending = json_get(d, c, "pending");
	if (pending >= 0 && d->tok[pending].type == JSON_TRUE)
		return VIEW_CHANGE_PENDING;
	int e = json_get(d, c, "error");
	if (e < 0 || d->tok[e].type == JSON_NULL)
		return VIEW_CHANGE_DONE;
	*error = view_text(d, e);
	return VIEW_CHANGE_FAILED;
}

char *view_cluster_change_json(const struct json_doc *d)
{
	int c = d->tok[0].type == JSON_OBJECT ? json_get(d, 0, "change") : -1;
	if (c < 0)
		return NULL;
	/* A string's token excludes its quotes; "change" is an object or null. */
	return strndup(d->text + d->tok[c].start, d->tok[c].len);
}
