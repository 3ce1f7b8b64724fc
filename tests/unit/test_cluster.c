/* The cluster module's pure parts: addresses, peers, status formats. */
#include <string.h>

#include "check.h"
#include "cluster/cluster.h"
#include "cluster/frame.h"
#include "base/err.h"

static void test_address(void)
{
	char err[160];
	ASSERT_EQ(cluster_address_check("127.0.0.1:9001", err, sizeof err), 0);
	ASSERT_EQ(cluster_address_check("node-2.plant.example:65535", err, sizeof err), 0);
	ASSERT_EQ(cluster_address_check("", err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "empty") != NULL);
	ASSERT_EQ(cluster_address_check("127.0.0.1", err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "HOST:PORT") != NULL);
	ASSERT_EQ(cluster_address_check(":9001", err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(cluster_address_check("host:", err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(cluster_address_check("host:0", err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(cluster_address_check("host:65536", err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(cluster_address_check("host:99999999999999999999", err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(cluster_address_check("host:80x", err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(cluster_address_check("::1:9001", err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(cluster_address_check("bad host:9001", err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "name or an IPv4") != NULL);
	char longer[400];
	memset(longer, 'a', sizeof longer);
	strcpy(longer + 300, ":1");
	ASSERT_EQ(cluster_address_check(longer, err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "longer") != NULL);
	/* No room for a reason is fine. */
	ASSERT_EQ(cluster_address_check("x", NULL, 0), -FM_EINVAL);
}

static void test_peer(void)
{
	char err[160];
	struct cluster_peer p;
	ASSERT_EQ(cluster_peer_parse("2 10.0.0.2:9001", &p, err, sizeof err), 0);
	ASSERT_EQ(p.id, 2);
	ASSERT_STRN(p.address, strlen(p.address), "10.0.0.2:9001");
	ASSERT_EQ(cluster_peer_parse("17=broker-b:7000  ", &p, err, sizeof err), 0);
	ASSERT_EQ(p.id, 17);
	ASSERT_STRN(p.address, strlen(p.address), "broker-b:7000");
	ASSERT_EQ(cluster_peer_parse("0 host:1", &p, err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "start at 1") != NULL);
	ASSERT_EQ(cluster_peer_parse("x host:1", &p, err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(cluster_peer_parse("3", &p, err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(cluster_peer_parse("3 ", &p, err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(cluster_peer_parse("3x host:1", &p, err, sizeof err), -FM_EINVAL);
	ASSERT_EQ(cluster_peer_parse("99999999999999999999999 host:1", &p, err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "too large") != NULL);
	ASSERT_EQ(cluster_peer_parse("4 host", &p, err, sizeof err), -FM_EINVAL);
}

static struct cluster_status sample(void)
{
	struct cluster_status st;
	memset(&st, 0, sizeof st);
	st.node_id = 1;
	st.role = CLUSTER_ROLE_BROKER;
	st.state = CLUSTER_LEADER;
	st.term = 7;
	st.leader_id = 1;
	strcpy(st.leader_address, "127.0.0.1:9001");
	st.commit_index = 120;
	st.applied_index = 119;
	st.last_index = 125;
	st.snapshots = 2;
	st.n_peers = 2;
	st.peers[0] = (struct cluster_peer_status){ .id = 2, .voter = true, .has_match = true,
						    .match_index = 120, .lag = 5 };
	strcpy(st.peers[0].address, "127.0.0.1:9002");
	st.peers[1] = (struct cluster_peer_status){ .id = 3, .voter = false };
	strcpy(st.peers[1].address, "w\"x:9003");
	return st;
}

static void test_status_json(void)
{
	struct cluster_status st = sample();
	char out[1024];
	int n = cluster_status_json(&st, out, sizeof out);
	const char *want = "{\"node_id\":1,\"role\":\"broker\",\"state\":\"leader\",\"term\":7,\"leader_id\":1,"
			   "\"leader_address\":\"127.0.0.1:9001\",\"commit_index\":120,\"applied_index\":119,"
			   "\"last_index\":125,\"snapshots\":2,\"restores\":0,\"peers\":[{\"id\":2,"
			   "\"address\":\"127.0.0.1:9002\",\"voter\":true,\"match_index\":120,\"lag\":5},"
			   "{\"id\":3,\"address\":\"w\\\"x:9003\",\"voter\":false,\"match_index\":null,\"lag\":null}],"
			   "\"change\":null}";
	ASSERT_EQ(n, (int)strlen(want));
	ASSERT_STRN(out, strlen(out), want);
	/* No leader known; a witness that is a follower. */
	st.leader_id = 0;
	st.state = CLUSTER_FOLLOWER;
	st.role = CLUSTER_ROLE_WITNESS;
	st.n_peers = 0;
	n = cluster_status_json(&st, out, sizeof out);
	ASSERT_TRUE(n > 0);
	ASSERT_TRUE(strstr(out, "\"leader_id\":null,\"leader_address\":null") != NULL);
	ASSERT_TRUE(strstr(out, "\"role\":\"witness\",\"state\":\"follower\"") != NULL);
	/* An operator's change: running, then failed. */
	st.change_kind = CLUSTER_CHANGE_ADD;
	st.change_id = 4;
	st.change_pending = true;
	ASSERT_TRUE(cluster_status_json(&st, out, sizeof out) > 0);
	ASSERT_TRUE(strstr(out, "\"change\":{\"kind\":\"add\",\"id\":4,\"pending\":true,\"error\":null}") != NULL);
	st.change_pending = false;
	st.change_err = CLUSTER_ENOTLEADER;
	ASSERT_TRUE(cluster_status_json(&st, out, sizeof out) > 0);
	ASSERT_TRUE(strstr(out, "\"pending\":false,\"error\":\"not the leader\"}") != NULL);
	/* Too small: an error and an empty string, never a cut-off object. */
	st = sample();
	ASSERT_EQ(cluster_status_json(&st, out, 40), -FM_ELIMIT);
	ASSERT_EQ(cluster_status_json(&st, out, 0), -FM_ELIMIT);
}

static void test_status_prometheus(void)
{
	struct cluster_status st = sample();
	char out[4096];
	int n = cluster_status_prometheus(&st, out, sizeof out);
	ASSERT_TRUE(n > 0);
	ASSERT_TRUE(strstr(out, "ferromq_cluster_state{state=\"leader\"} 1\n") != NULL);
	ASSERT_TRUE(strstr(out, "ferromq_cluster_state{state=\"follower\"} 0\n") != NULL);
	ASSERT_TRUE(strstr(out, "ferromq_cluster_term 7\n") != NULL);
	ASSERT_TRUE(strstr(out, "ferromq_cluster_commit_index 120\n") != NULL);
	ASSERT_TRUE(strstr(out, "ferromq_cluster_applied_index 119\n") != NULL);
	ASSERT_TRUE(strstr(out, "ferromq_cluster_peer_lag{peer=\"2\"} 5\n") != NULL);
	ASSERT_TRUE(strstr(out, "peer=\"3\"") == NULL); /* lag unknown: no sample */
	ASSERT_EQ(cluster_status_prometheus(&st, out, 100), -FM_ELIMIT);
}

/* cluster_start refuses a bad configuration before it touches the loop or
 * the disk, and says which setting is wrong. */
static int start_error(struct cluster_conf *c, char *err, size_t errlen)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct cluster_callbacks cb;
	memset(&cb, 0, sizeof cb);
	struct cluster_node *n = NULL;
	int rc = cluster_start(&loop, c, &cb, &n, err, errlen);
	uv_loop_close(&loop);
	return rc;
}

static void good_conf(struct cluster_conf *c)
{
	memset(c, 0, sizeof *c);
	c->node_id = 1;
	strcpy(c->address, "127.0.0.1:9001");
	c->data_dir = "/nonexistent/never-created";
	c->n_voters = 2;
	c->voters[0].id = 1;
	strcpy(c->voters[0].address, "127.0.0.1:9001");
	c->voters[1].id = 2;
	strcpy(c->voters[1].address, "127.0.0.1:9002");
}

static void test_conf_errors(void)
{
	struct cluster_conf c;
	char err[200];
	good_conf(&c);
	c.node_id = 0;
	ASSERT_EQ(start_error(&c, err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "node id") != NULL);
	good_conf(&c);
	strcpy(c.address, "nohost");
	ASSERT_EQ(start_error(&c, err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "cluster address") != NULL);
	good_conf(&c);
	c.voters[1].id = 1;
	ASSERT_EQ(start_error(&c, err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "listed twice") != NULL);
	good_conf(&c);
	strcpy(c.voters[1].address, "127.0.0.1:9001");
	ASSERT_EQ(start_error(&c, err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "same address") != NULL);
	good_conf(&c);
	c.voters[0].id = 3;
	ASSERT_EQ(start_error(&c, err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "is not one of them") != NULL);
	good_conf(&c);
	strcpy(c.voters[0].address, "127.0.0.1:9009");
	ASSERT_EQ(start_error(&c, err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "is not this node's") != NULL);
	good_conf(&c);
	c.join = true;
	ASSERT_EQ(start_error(&c, err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "joining node") != NULL);
	good_conf(&c);
	c.n_voters = 0;
	ASSERT_EQ(start_error(&c, err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "none") != NULL);
	good_conf(&c);
	c.heartbeat_ms = 600;
	ASSERT_EQ(start_error(&c, err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "below the election timeout (500 ms)") != NULL);
	good_conf(&c);
	c.snapshot_threshold = 100;
	c.snapshot_trailing = 200;
	ASSERT_EQ(start_error(&c, err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "trailing") != NULL);
	good_conf(&c);
	c.segment_size = (size_t)64 << 20;
	ASSERT_EQ(start_error(&c, err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "segment size") != NULL);
	good_conf(&c);
	c.data_dir = "";
	ASSERT_EQ(start_error(&c, err, sizeof err), -FM_EINVAL);
	ASSERT_TRUE(strstr(err, "data directory") != NULL);
	/* A valid one gets as far as the directory. */
	good_conf(&c);
	ASSERT_EQ(start_error(&c, err, sizeof err), -FM_EIO);
	ASSERT_TRUE(strstr(err, "/nonexistent/never-created") != NULL);
}

static void test_entry_frame(void)
{
	unsigned char out[64];
	enum cluster_entry_type type;
	const unsigned char *payload;
	size_t len;
	/* Lengths are padded to 8: libraft 0.22.1 refuses others. */
	ASSERT_EQ(cluster__entry_size(0), 8);
	ASSERT_EQ(cluster__entry_size(1), 16);
	ASSERT_EQ(cluster__entry_size(8), 16);
	ASSERT_EQ(cluster__entry_size(9), 24);
	cluster__entry_encode(out, CLUSTER_ENTRY_USER, "hello", 5);
	const unsigned char want[16] = { 0, 0, 0, 0, 5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o', 0, 0, 0 };
	ASSERT_MEM(out, want, 16);
	ASSERT_EQ(cluster__entry_decode(out, 16, &type, &payload, &len), 0);
	ASSERT_EQ(type, CLUSTER_ENTRY_USER);
	ASSERT_STRN(payload, len, "hello");
	/* An empty payload is an entry too. */
	cluster__entry_encode(out, CLUSTER_ENTRY_USER, NULL, 0);
	ASSERT_EQ(cluster__entry_decode(out, 8, &type, &payload, &len), 0);
	ASSERT_EQ(len, 0);
	/* Not exactly one of ours: refused. */
	cluster__entry_encode(out, CLUSTER_ENTRY_USER, "hello", 5);
	ASSERT_EQ(cluster__entry_decode(out, 15, &type, &payload, &len), -FM_EPROTO); /* short */
	ASSERT_EQ(cluster__entry_decode(out, 7, &type, &payload, &len), -FM_EPROTO);
	out[14] = 1; /* padding not zero */
	ASSERT_EQ(cluster__entry_decode(out, 16, &type, &payload, &len), -FM_EPROTO);
	out[14] = 0;
	out[2] = 1; /* reserved byte */
	ASSERT_EQ(cluster__entry_decode(out, 16, &type, &payload, &len), -FM_EPROTO);
	out[2] = 0;
	out[0] = 7; /* unknown type */
	ASSERT_EQ(cluster__entry_decode(out, 16, &type, &payload, &len), -FM_EPROTO);
	out[0] = CLUSTER_ENTRY_USER;
	out[4] = 200; /* a length beyond the entry */
	ASSERT_EQ(cluster__entry_decode(out, 16, &type, &payload, &len), -FM_EPROTO);
	/* A watermark carries exactly 8 bytes. */
	const unsigned char mark[8] = { 42, 0, 0, 0, 0, 0, 0, 1 };
	cluster__entry_encode(out, CLUSTER_ENTRY_WATERMARK, mark, 8);
	ASSERT_EQ(cluster__entry_decode(out, 16, &type, &payload, &len), 0);
	ASSERT_EQ(type, CLUSTER_ENTRY_WATERMARK);
	ASSERT_MEM(payload, mark, 8);
	cluster__entry_encode(out, CLUSTER_ENTRY_WATERMARK, mark, 4);
	ASSERT_EQ(cluster__entry_decode(out, 16, &type, &payload, &len), -FM_EPROTO);
}

static void test_snapshot_header(void)
{
	unsigned char h[CLUSTER_SNAP_HEADER + 4];
	bool witness = true;
	uint64_t index = 0;
	cluster__snap_header_encode(h, false, 0x0102030405060708ull);
	ASSERT_MEM(h, "FMCLSNAP\1\0\0\0\0\0\0\0\x08\x07\x06\x05\x04\x03\x02\x01", 24);
	ASSERT_EQ(cluster__snap_header_decode(h, 24, &witness, &index), 0);
	ASSERT_FALSE(witness);
	ASSERT_EQ(index, 0x0102030405060708ll);
	cluster__snap_header_encode(h, true, 7);
	ASSERT_EQ(cluster__snap_header_decode(h, 28, &witness, &index), 0); /* data follows */
	ASSERT_TRUE(witness);
	ASSERT_EQ(index, 7);
	ASSERT_EQ(cluster__snap_header_decode(h, 23, &witness, &index), -FM_EPROTO);
	h[8] = 2; /* a version we do not know */
	ASSERT_EQ(cluster__snap_header_decode(h, 24, &witness, &index), -FM_EPROTO);
	h[8] = 1;
	h[12] = 2; /* an unknown kind */
	ASSERT_EQ(cluster__snap_header_decode(h, 24, &witness, &index), -FM_EPROTO);
	h[12] = 1;
	h[0] = 'X';
	ASSERT_EQ(cluster__snap_header_decode(h, 24, &witness, &index), -FM_EPROTO);
}

static void test_names(void)
{
	ASSERT_STRN(cluster_state_name(CLUSTER_CANDIDATE), 9, "candidate");
	ASSERT_STRN(cluster_strerror(CLUSTER_ENOTLEADER), 14, "not the leader");
	ASSERT_STRN(cluster_strerror(-FM_ENOMEM), 13, "out of memory");
}

int main(void)
{
	RUN(test_address);
	RUN(test_peer);
	RUN(test_status_json);
	RUN(test_status_prometheus);
	RUN(test_conf_errors);
	RUN(test_entry_frame);
	RUN(test_snapshot_header);
	RUN(test_names);
	return CHECK_DONE();
}
