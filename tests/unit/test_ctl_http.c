/* Unit tests for ferromq-ctl's HTTP parsing and its table/view helpers
 * (tools/ctl/http.c, table.c, view.c). */
#include "check.h"
#include "ctl/http.h"
#include "ctl/table.h"
#include "ctl/view.h"

#include <stdlib.h>

static void test_url(void)
{
	struct http_url u;
	const char *why = NULL;
	ASSERT_EQ(http_url_parse("http://127.0.0.1:8080", &u, &why), 0);
	ASSERT_STRN(u.host, strlen(u.host), "127.0.0.1");
	ASSERT_STRN(u.port, strlen(u.port), "8080");
	ASSERT_STRN(u.base, strlen(u.base), "");
	ASSERT_EQ(http_url_parse("HTTP://broker/ops/", &u, &why), 0);
	ASSERT_STRN(u.host, strlen(u.host), "broker");
	ASSERT_STRN(u.port, strlen(u.port), "80");
	ASSERT_STRN(u.base, strlen(u.base), "/ops");
	ASSERT_EQ(http_url_parse("http://[::1]:9000/", &u, &why), 0);
	ASSERT_STRN(u.host, strlen(u.host), "::1");
	ASSERT_TRUE(u.ipv6);
	ASSERT_STRN(u.port, strlen(u.port), "9000");

	static const char *const bad[] = {
		"https://127.0.0.1", "127.0.0.1:8080", "http://", "http://:80", "http://h:0",
		"http://h:65536", "http://h:80x", "http://h:", "http://[::1", "http://h/?q=1",
		"http://h#f",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		if (http_url_parse(bad[i], &u, &why) != -1 || !why)
			CHECK_FAIL("URL \"%s\" was accepted", bad[i]);
	}
	ASSERT_EQ(http_url_parse("https://x", &u, &why), -1);
	ASSERT_TRUE(strstr(why, "https is not supported") != NULL);
}

static void test_escape(void)
{
	char out[64];
	ASSERT_EQ(http_escape_segment("gw-1.a_b~", out, sizeof(out)), 9);
	ASSERT_STRN(out, strlen(out), "gw-1.a_b~");
	ASSERT_EQ(http_escape_segment("a/b c%\xc3\xa9", out, sizeof(out)), 18);
	ASSERT_STRN(out, strlen(out), "a%2Fb%20c%25%C3%A9");
	ASSERT_EQ(http_escape_segment("a/b", out, 3), 5);
	ASSERT_STRN(out, strlen(out), "a%");
}

/* Parses a copy of s delivered whole; returns the parser's result. */
static int parse(const char *s, bool eof, struct http_response *r, char **copy)
{
	const char *why = NULL;
	size_t n = strlen(s);
	*copy = realloc(*copy, n + 1);
	memcpy(*copy, s, n + 1);
	int rc = http_response_parse(*copy, n, eof, r, &why);
	if (rc < 0 && !why)
		CHECK_FAIL("no reason given for \"%s\"", s);
	return rc;
}

static void test_response(void)
{
	struct http_response r;
	char *buf = NULL;
	const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 4\r\n\r\n[1]\n";
	ASSERT_EQ(parse(ok, false, &r, &buf), 1);
	ASSERT_EQ(r.status, 200);
	ASSERT_STRN(r.body, r.body_len, "[1]\n");
	/* Every prefix needs more bytes; with EOF it is an error. */
	for (size_t cut = 0; cut < strlen(ok); cut++) {
		char part[256];
		memcpy(part, ok, cut);
		part[cut] = '\0';
		if (parse(part, false, &r, &buf) != 0)
			CHECK_FAIL("prefix of %zu bytes was not incomplete", cut);
		if (parse(part, true, &r, &buf) != -1)
			CHECK_FAIL("prefix of %zu bytes at EOF was not an error", cut);
	}

	/* Chunked, with an extension and a trailer, decoded in place. */
	ASSERT_EQ(parse("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
			"3;x=y\r\n{\"e\r\n9\r\nrror\": 1}\r\n0\r\nX-T: 1\r\n\r\n", false, &r, &buf), 1);
	ASSERT_EQ(r.status, 404);
	ASSERT_STRN(r.body, r.body_len, "{\"error\": 1}");
	ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", false, &r, &buf), 0);
	ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n", false, &r, &buf), 0);
	ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", true, &r, &buf), -1);
	ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", false, &r, &buf), -1);
	ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, &r, &buf), -1);
	ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffff\r\n", false, &r, &buf), -1);

	/* No length: the body ends when the server closes. */
	ASSERT_EQ(parse("HTTP/1.0 200 OK\r\n\r\nabc", false, &r, &buf), 0);
	ASSERT_EQ(parse("HTTP/1.0 200 OK\r\n\r\nabc", true, &r, &buf), 1);
	ASSERT_STRN(r.body, r.body_len, "abc");
	ASSERT_EQ(parse("HTTP/1.1 204 No Content\r\n\r\n", false, &r, &buf), 1);
	ASSERT_EQ(r.body_len, 0);

	/* Not HTTP, or not what it claims. */
	ASSERT_EQ(parse("\x20\x02\x01\x01\r\n\r\n", false, &r, &buf), -1);
	ASSERT_EQ(parse("HTTP/1.1 20 OK\r\n\r\n", false, &r, &buf), -1);
	ASSERT_EQ(parse("HTTP/1.1 100 Continue\r\n\r\n", false, &r, &buf), -1);
	ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", false, &r, &buf), -1);
	ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", false, &r, &buf), -1);
	ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", false, &r, &buf), -1);
	ASSERT_EQ(parse("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", false, &r, &buf), 1);
	ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nX: y\nZ: 1\r\n\r\n", false, &r, &buf), -1);
	free(buf);
}

static void test_table(void)
{
	static const char *const titles[] = { "ID", "N", "NOTE" };
	static const bool right[] = { false, true, false };
	const char *r1[] = { "caf\xc3\xa9", "7", "x" }, *r2[] = { "a", "1234", "" };
	struct table t;
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	table_init(&t, 3, titles, right);
	ASSERT_EQ(table_add(&t, r1), 0);
	ASSERT_EQ(table_add(&t, r2), 0);
	table_print(&t, out);
	table_free(&t);
	fclose(out);
	ASSERT_STRN(text, len, "ID       N  NOTE\ncaf\xc3\xa9     7  x\na     1234  \n");
	free(text);
}

static void test_view(void)
{
	char buf[32];
	view_duration(59.9, buf, sizeof(buf));
	ASSERT_STRN(buf, strlen(buf), "59s");
	view_duration(187, buf, sizeof(buf));
	ASSERT_STRN(buf, strlen(buf), "3m07s");
	view_duration(7500, buf, sizeof(buf));
	ASSERT_STRN(buf, strlen(buf), "2h05m");
	view_duration(4 * 86400 + 3 * 3600, buf, sizeof(buf));
	ASSERT_STRN(buf, strlen(buf), "4d03h");
	view_bytes(1023, buf, sizeof(buf));
	ASSERT_STRN(buf, strlen(buf), "1023 B");
	view_bytes(1536, buf, sizeof(buf));
	ASSERT_STRN(buf, strlen(buf), "1.5 KiB");

	/* Control characters in names never reach the terminal. */
	static struct json_token tok[16];
	struct json_doc d;
	struct json_error e;
	const char *s = "[\"a\\u001b[2Jb\\u0085c\", 3, 2.25, null, true, {\"k\":\n1}]";
	ASSERT_EQ(json_parse(s, strlen(s), tok, 16, &d, &e), 0);
	const char *want[] = { "a?[2Jb?c", "3", "2.2", "-", "yes", "{\"k\":?1}" };
	int i = json_first(&d, 0);
	for (size_t k = 0; k < 6; k++, i = json_after(&d, 0, i)) {
		char *t = view_text(&d, i);
		ASSERT_STRN(t, strlen(t), want[k]);
		free(t);
	}
	char *t = view_text(&d, -1);
	ASSERT_STRN(t, strlen(t), "-");
	free(t);
}

/* view_cluster on text (printed into memory). */
static char *cluster_text(const char *json, int *rc)
{
	static struct json_token tok[128];
	struct json_doc d;
	struct json_error e;
	char *text = NULL;
	size_t len;
	const char *why = NULL;
	*rc = -2;
	if (json_parse(json, strlen(json), tok, 128, &d, &e) != 0)
		return NULL;
	FILE *out = open_memstream(&text, &len);
	*rc = view_cluster(&d, out, &why);
	fclose(out);
	return text;
}

static const char cluster_leader[] =
	"{\"cluster\":true,\"node_id\":1,\"role\":\"broker\",\"state\":\"leader\",\"serving\":true,"
	"\"not_ready\":null,\"leader_id\":1,\"leader_address\":\"127.0.0.1:7001\",\"term\":3,"
	"\"commit_index\":120,\"applied_index\":120,\"last_index\":121,\"snapshots\":0,\"restores\":0,"
	"\"peers\":[{\"id\":2,\"address\":\"127.0.0.1:7002\",\"voter\":true,\"match_index\":121,\"lag\":0},"
	"{\"id\":3,\"address\":\"127.0.0.1:7003\",\"voter\":false,\"match_index\":null,\"lag\":null}],"
	"\"change\":{\"kind\":\"add\",\"id\":3,\"pending\":true,\"error\":null}}";

static void test_view_cluster(void)
{
	int rc;
	char *t = cluster_text("{\"cluster\":false}", &rc);
	ASSERT_EQ(rc, 0);
	ASSERT_STRN(t, strlen(t), "cluster: off (this broker is not in a cluster)\n");
	free(t);
	t = cluster_text(cluster_leader, &rc);
	ASSERT_EQ(rc, 0);
	ASSERT_STRN(t, strlen(t),
		    "node            1\n"
		    "role            broker\n"
		    "state           leader\n"
		    "term            3\n"
		    "leader          1\n"
		    "leader address  127.0.0.1:7001\n"
		    "commit index    120\n"
		    "applied index   120\n"
		    "last index      121\n"
		    "snapshots       0\n"
		    "restores        0\n"
		    "last change     add of node 3: running\n"
		    "\n"
		    "PEER  ADDRESS         VOTER  MATCH INDEX  LAG\n"
		    "   2  127.0.0.1:7002  yes            121    0\n"
		    "   3  127.0.0.1:7003  no               -    -\n");
	free(t);
	/* A follower says why it does not serve. */
	t = cluster_text("{\"cluster\":true,\"node_id\":2,\"state\":\"follower\",\"not_ready\":\"follower: the "
			 "leader is node 1 at h:1\",\"leader_id\":1,\"peers\":[],\"change\":{\"kind\":\"remove\","
			 "\"id\":4,\"pending\":false,\"error\":\"not the leader\"}}", &rc);
	ASSERT_EQ(rc, 0);
	ASSERT_TRUE(strstr(t, "not serving     follower: the leader is node 1 at h:1\n") != NULL);
	ASSERT_TRUE(strstr(t, "last change     remove of node 4: failed: not the leader\n") != NULL);
	free(t);
	t = cluster_text("[1]", &rc);
	ASSERT_EQ(rc, -1);
	free(t);
}

static enum view_change change_of(const char *json, const char *kind, long long id, char **err)
{
	static struct json_token tok[128];
	struct json_doc d;
	struct json_error e;
	if (json_parse(json, strlen(json), tok, 128, &d, &e) != 0)
		return (enum view_change)-1;
	return view_cluster_change(&d, kind, id, err);
}

static void test_view_cluster_change(void)
{
	char *err;
	ASSERT_EQ(change_of(cluster_leader, "add", 3, &err), VIEW_CHANGE_PENDING);
	ASSERT_TRUE(err == NULL);
	ASSERT_EQ(change_of(cluster_leader, "add", 4, &err), VIEW_CHANGE_OTHER);
	ASSERT_EQ(change_of(cluster_leader, "remove", 3, &err), VIEW_CHANGE_OTHER);
	ASSERT_EQ(change_of("{\"cluster\":true,\"change\":null}", "add", 3, &err), VIEW_CHANGE_OTHER);
	ASSERT_EQ(change_of("{\"cluster\":false}", "add", 3, &err), VIEW_CHANGE_BAD);
	ASSERT_EQ(change_of("[]", "add", 3, &err), VIEW_CHANGE_BAD);
	const char *done = "{\"cluster\":true,\"change\":{\"kind\":\"transfer\",\"id\":0,\"pending\":false,"
			   "\"error\":null}}";
	ASSERT_EQ(change_of(done, "transfer", 0, &err), VIEW_CHANGE_DONE);
	ASSERT_EQ(change_of(done, "transfer", 2, &err), VIEW_CHANGE_OTHER);
	/* "transfer" without an id is done by whichever node took over. */
	ASSERT_EQ(change_of("{\"cluster\":true,\"change\":{\"kind\":\"transfer\",\"id\":2,\"pending\":false,"
			    "\"error\":null}}", "transfer", 0, &err), VIEW_CHANGE_DONE);
	ASSERT_EQ(change_of("{\"cluster\":true,\"change\":{\"kind\":\"add\",\"id\":3,\"pending\":false,"
			    "\"error\":\"raft refused the request\"}}", "add", 3, &err), VIEW_CHANGE_FAILED);
	ASSERT_STRN(err, strlen(err), "raft refused the request");
	free(err);

	/* The change as text, to tell a new outcome from the one shown before. */
	static struct json_token tok[128];
	struct json_doc d;
	struct json_error e;
	ASSERT_EQ(json_parse(done, strlen(done), tok, 128, &d, &e), 0);
	char *text = view_cluster_change_json(&d);
	ASSERT_STRN(text, strlen(text), "{\"kind\":\"transfer\",\"id\":0,\"pending\":false,\"error\":null}");
	free(text);
	const char *none = "{\"cluster\":false}";
	ASSERT_EQ(json_parse(none, strlen(none), tok, 128, &d, &e), 0);
	ASSERT_TRUE(view_cluster_change_json(&d) == NULL);
}

int main(void)
{
	RUN(test_url);
	RUN(test_escape);
	RUN(test_response);
	RUN(test_table);
	RUN(test_view);
	RUN(test_view_cluster);
	RUN(test_view_cluster_change);
	return CHECK_DONE();
}
