/* Unit tests for the cluster options of src/config (issue 14): every
 * accepted form, every refused line with its message, and every check of
 * config_finish with the file and line it names. */
#include "config/config.h"
#include "check.h"
#include <inttypes.h>
#include <stdint.h>
#include <unistd.h>

#define ERRLEN 512
#define ASSERT_ERR(err, want) ASSERT_STRN(err, strlen(err), want)

static int apply(struct config *c, const char *line, char *err)
{
	err[0] = 0;
	return config_apply_line(c, line, err, ERRLEN);
}

static void ok_line(struct config *c, const char *line)
{
	char err[ERRLEN];
	if (apply(c, line, err) != 0)
		CHECK_FAIL("\"%s\" failed: %s", line, err);
}

/* Applies a line to c that must fail with exactly `want` and leave c as it
 * was. */
static void bad_line_in(struct config *c, const char *line, const char *want)
{
	static struct config before;
	char err[ERRLEN];
	before = *c;
	int rc = apply(c, line, err);
	if (rc != -1)
		CHECK_FAIL("\"%s\": %d != -1", line, rc);
	else if (strcmp(err, want) != 0)
		CHECK_FAIL("\"%s\": message \"%s\" != \"%s\"", line, err, want);
	if (memcmp(c, &before, sizeof *c) != 0)
		CHECK_FAIL("\"%s\" changed the config", line);
}

static void bad_line(const char *line, const char *want)
{
	static struct config c;
	config_defaults(&c);
	bad_line_in(&c, line, want);
}

/* Loads text from a file and finishes it: returns the first failure's code,
 * the message in err and the file's path in path. */
static int load(struct config *c, const char *text, char *path, size_t pathlen, char *err)
{
	snprintf(path, pathlen, "/tmp/fm_test_config_cluster_XXXXXX");
	int fd = mkstemp(path);
	ASSERT_TRUE(fd >= 0);
	if (fd < 0)
		return -2;
	size_t n = strlen(text);
	ASSERT_EQ(write(fd, text, n), (long long)n);
	close(fd);
	config_defaults(c);
	err[0] = 0;
	int rc = config_load(c, path, err, ERRLEN);
	if (rc == 0)
		rc = config_finish(c, err, ERRLEN);
	unlink(path);
	return rc;
}

/* text must load and finish. */
static void good_file(struct config *c, const char *text)
{
	char path[64], err[ERRLEN];
	if (load(c, text, path, sizeof path, err) != 0)
		CHECK_FAIL("refused: %s\n--- config:\n%s", err, text);
}

/* text must fail with "FILE:line: want". */
static void bad_file(const char *text, unsigned line, const char *want)
{
	static struct config c;
	char path[64], err[ERRLEN], full[ERRLEN + 80];
	if (load(&c, text, path, sizeof path, err) != -1) {
		CHECK_FAIL("accepted, expected line %u: %s\n--- config:\n%s", line, want, text);
		return;
	}
	snprintf(full, sizeof full, "%s:%u: %s", path, line, want);
	if (strcmp(err, full) != 0)
		CHECK_FAIL("message \"%s\" != \"%s\"", err, full);
}

static void test_defaults(void)
{
	static struct config c;
	memset(&c, 0xA5, sizeof c);
	config_defaults(&c);
	ASSERT_EQ(c.cluster_node_id, 0);
	ASSERT_EQ(c.cluster_address[0], 0);
	ASSERT_EQ(c.n_cluster_peers, 0);
	ASSERT_FALSE(c.cluster_witness);
	ASSERT_FALSE(c.cluster_join);
	ASSERT_EQ(c.cluster_election_timeout_ms, 500);
	ASSERT_EQ(c.cluster_heartbeat_ms, 50);
	char err[ERRLEN];
	ASSERT_EQ(config_finish(&c, err, sizeof err), 0);
	/* cluster_node_id 0 alone is the same as none */
	ok_line(&c, "cluster_node_id 0");
	ASSERT_EQ(config_finish(&c, err, sizeof err), 0);
}

static void test_accepted_forms(void)
{
	static struct config c;
	config_defaults(&c);
	ok_line(&c, "cluster_node_id 1");
	ASSERT_EQ(c.cluster_node_id, 1);
	ok_line(&c, "cluster_node_id 9223372036854775807");
	ASSERT_TRUE(c.cluster_node_id == INT64_MAX);
	ok_line(&c, "cluster_node_id\t007");
	ASSERT_EQ(c.cluster_node_id, 7);
	ok_line(&c, "cluster_listener 7883");
	ASSERT_STRN(c.cluster_address, strlen(c.cluster_address), "127.0.0.1:7883");

	config_defaults(&c);
	ok_line(&c, "cluster_listener 65535\tnode-a.plant.example");
	ASSERT_STRN(c.cluster_address, strlen(c.cluster_address), "node-a.plant.example:65535");
	config_defaults(&c);
	ok_line(&c, "cluster_listener 1 10.0.0.1");
	ASSERT_STRN(c.cluster_address, strlen(c.cluster_address), "10.0.0.1:1");

	ok_line(&c, "cluster_peer 2 10.0.0.2:7883");
	ok_line(&c, "cluster_peer 9223372036854775807\tnode-c:1");
	ASSERT_EQ(c.n_cluster_peers, 2);
	ASSERT_EQ(c.cluster_peers[0].id, 2);
	ASSERT_STRN(c.cluster_peers[0].address, strlen(c.cluster_peers[0].address), "10.0.0.2:7883");
	ASSERT_TRUE(c.cluster_peers[1].id == INT64_MAX);
	ASSERT_STRN(c.cluster_peers[1].address, strlen(c.cluster_peers[1].address), "node-c:1");

	ok_line(&c, "cluster_role witness");
	ASSERT_TRUE(c.cluster_witness);
	ok_line(&c, "cluster_role broker");
	ASSERT_FALSE(c.cluster_witness);
	ok_line(&c, "cluster_join true");
	ASSERT_TRUE(c.cluster_join);
	ok_line(&c, "cluster_join false");
	ASSERT_FALSE(c.cluster_join);
	ok_line(&c, "cluster_election_timeout 100");
	ASSERT_EQ(c.cluster_election_timeout_ms, 100);
	ok_line(&c, "cluster_election_timeout 60000");
	ASSERT_EQ(c.cluster_election_timeout_ms, 60000);
	ok_line(&c, "cluster_heartbeat 10");
	ASSERT_EQ(c.cluster_heartbeat_ms, 10);
	ok_line(&c, "cluster_heartbeat 20000");
	ASSERT_EQ(c.cluster_heartbeat_ms, 20000);

	/* fifteen peers: a cluster of sixteen */
	config_defaults(&c);
	for (int i = 0; i < 15; i++) {
		char line[64];
		snprintf(line, sizeof line, "cluster_peer %d 10.0.0.%d:7883", i + 2, i + 2);
		ok_line(&c, line);
	}
	ASSERT_EQ(c.n_cluster_peers, 15);
	ASSERT_EQ(c.cluster_peers[14].id, 16);
	bad_line_in(&c, "cluster_peer 17 10.0.0.17:7883", "cluster_peer: at most 15 other nodes (a cluster has at most 16)");
}

static void test_refused_lines(void)
{
	bad_line("cluster_node_id 9223372036854775808",
		 "cluster_node_id: '9223372036854775808' is not a number in 0..9223372036854775807");
	bad_line("cluster_node_id 18446744073709551616",
		 "cluster_node_id: '18446744073709551616' is not a number in 0..9223372036854775807");
	bad_line("cluster_node_id -1", "cluster_node_id: '-1' is not a number in 0..9223372036854775807");
	bad_line("cluster_node_id 1k", "cluster_node_id: '1k' is not a number in 0..9223372036854775807");
	bad_line("cluster_node_id one", "cluster_node_id: 'one' is not a number in 0..9223372036854775807");
	bad_line("cluster_node_id", "cluster_node_id: missing value (expected N)");

	bad_line("cluster_listener 0", "cluster_listener: port must be 1..65535, not '0'");
	bad_line("cluster_listener 65536", "cluster_listener: port must be 1..65535, not '65536'");
	bad_line("cluster_listener 7883x", "cluster_listener: port must be 1..65535, not '7883x'");
	bad_line("cluster_listener 10.0.0.1:7883", "cluster_listener: port must be 1..65535, not '10.0.0.1:7883'");
	bad_line("cluster_listener 7883 a b", "cluster_listener: expected PORT [ADDRESS]");
	bad_line("cluster_listener 7883 ::1",
		 "cluster_listener: '::1': a host is a name or an IPv4 address (letters, digits, '-', '.', '_')");
	bad_line("cluster_listener 7883 0.0.0.0",
		 "cluster_listener: ADDRESS is also told to the other nodes, and 0.0.0.0 reaches none of them: give "
		 "this machine's address on the network they share");
	bad_line("cluster_listener 7883 0",
		 "cluster_listener: ADDRESS is also told to the other nodes, and 0 reaches none of them: give "
		 "this machine's address on the network they share");
	static struct config c;
	config_defaults(&c);
	ok_line(&c, "cluster_listener 7883");
	bad_line_in(&c, "cluster_listener 7884", "cluster_listener: one per node, and line 1 has it");

	bad_line("cluster_peer 2", "cluster_peer: expected N HOST:PORT [MQTT_HOST:PORT] (another node's "
		 "cluster_node_id, its cluster_listener, and where its clients connect)");
	bad_line("cluster_peer 2 h:1 h:2 h:3", "cluster_peer: expected N HOST:PORT [MQTT_HOST:PORT] (another node's "
		 "cluster_node_id, its cluster_listener, and where its clients connect)");
	bad_line("cluster_peer 2 h:1 h", "cluster_peer 2: its MQTT address: 'h': expected HOST:PORT");
	bad_line("cluster_peer 0 h:1", "cluster_peer: N is a node id in 1..9223372036854775807, not '0'");
	bad_line("cluster_peer two h:1", "cluster_peer: N is a node id in 1..9223372036854775807, not 'two'");
	bad_line("cluster_peer 9223372036854775808 h:1",
		 "cluster_peer: N is a node id in 1..9223372036854775807, not '9223372036854775808'");
	bad_line("cluster_peer 2=h:1", "cluster_peer: expected N HOST:PORT [MQTT_HOST:PORT] (another node's "
		 "cluster_node_id, its cluster_listener, and where its clients connect)");
	bad_line("cluster_peer 2 h", "cluster_peer 2: 'h': expected HOST:PORT");
	bad_line("cluster_peer 2 h:0", "cluster_peer 2: 'h:0': the port is a number 1-65535");
	bad_line("cluster_peer 2 :7883", "cluster_peer 2: ':7883': no host before ':'");
	bad_line("cluster_peer 2 [::1]:7883",
		 "cluster_peer 2: '[::1]:7883': a host is a name or an IPv4 address (letters, digits, '-', '.', '_')");
	bad_line("cluster_peer 2 0.0.0.0:7883",
		 "cluster_peer 2: 0.0.0.0:7883 reaches no node: give the address of its cluster_listener");
	config_defaults(&c);
	ok_line(&c, "cluster_peer 2 node-b:7883");
	bad_line_in(&c, "cluster_peer 2 node-c:7883", "cluster_peer 2: listed twice (first on line 1)");
	bad_line_in(&c, "cluster_peer 3 NODE-B:7883", "cluster_peer 3: NODE-B:7883 is the address of node 2 too (line 1)");
	ASSERT_STRN(c.cluster_peers[0].mqtt_address, strlen(c.cluster_peers[0].mqtt_address), "");
	ok_line(&c, "cluster_peer 4 node-d:7883 mqtt-d:8883");
	ASSERT_STRN(c.cluster_peers[1].mqtt_address, strlen(c.cluster_peers[1].mqtt_address), "mqtt-d:8883");

	bad_line("cluster_role leader", "cluster_role: invalid value 'leader' (expected broker|witness)");
	bad_line("cluster_role Witness", "cluster_role: invalid value 'Witness' (expected broker|witness)");
	bad_line("cluster_join yes", "cluster_join: invalid value 'yes' (expected true|false)");
	bad_line("cluster_election_timeout 99", "cluster_election_timeout: '99' is not a number in 100..60000");
	bad_line("cluster_election_timeout 60001", "cluster_election_timeout: '60001' is not a number in 100..60000");
	bad_line("cluster_election_timeout 1s", "cluster_election_timeout: '1s' is not a number in 100..60000");
	bad_line("cluster_heartbeat 9", "cluster_heartbeat: '9' is not a number in 10..20000");
	bad_line("cluster_heartbeat 20001", "cluster_heartbeat: '20001' is not a number in 10..20000");
}

#define NODE1 "cluster_node_id 1\ncluster_listener 7881 10.0.0.1\n"
#define PEERS "cluster_peer 2 10.0.0.2:7882\ncluster_peer 3 10.0.0.3:7883\n"

static void test_good_files(void)
{
	static struct config c;
	good_file(&c, "listener 1883 0.0.0.0\n" NODE1 PEERS);
	ASSERT_EQ(c.cluster_node_id, 1);
	ASSERT_STRN(c.cluster_address, strlen(c.cluster_address), "10.0.0.1:7881");
	ASSERT_EQ(c.n_cluster_peers, 2);
	ASSERT_EQ(c.cluster_peers[1].id, 3);
	ASSERT_FALSE(c.cluster_witness);

	/* the witness of two brokers: no MQTT listener line, the default is not started */
	good_file(&c, "cluster_node_id 3\ncluster_listener 1883 127.0.0.1\ncluster_role witness\n"
		      "cluster_peer 1 127.0.0.1:1881\ncluster_peer 2 127.0.0.1:1882\n");
	ASSERT_TRUE(c.cluster_witness);

	/* a node that waits to be added */
	good_file(&c, "cluster_node_id 4\ncluster_listener 7884 10.0.0.4\ncluster_join true\n");
	ASSERT_TRUE(c.cluster_join);
	ASSERT_EQ(c.n_cluster_peers, 0);

	/* a heartbeat of exactly a third; the lines in any order */
	good_file(&c, PEERS "cluster_heartbeat 50\ncluster_election_timeout 150\n" NODE1);
	ASSERT_EQ(c.cluster_heartbeat_ms, 50);
	ASSERT_EQ(c.cluster_election_timeout_ms, 150);

	/* the same port as an MQTT or HTTP listener on another address */
	good_file(&c, "listener 7881 127.0.0.1\n" NODE1 PEERS);
	good_file(&c, "http_listener 7881 192.168.1.1\nhttp_token_file /tmp/t\n" NODE1 PEERS);
	/* a two-node pair is allowed (README: it cannot fail over by itself) */
	good_file(&c, NODE1 "cluster_peer 2 10.0.0.2:7882\n");
}

static void test_finish_without_node_id(void)
{
	bad_file("workers 2\ncluster_listener 7881\n", 2,
		 "cluster_listener needs cluster_node_id (1 or more; without it, or with 0, this broker runs on its own)");
	bad_file("cluster_heartbeat 40\ncluster_peer 2 h:1\n", 1,
		 "cluster_heartbeat needs cluster_node_id (1 or more; without it, or with 0, this broker runs on its own)");
	bad_file("cluster_election_timeout 400\ncluster_peer 2 h:1\n", 1,
		 "cluster_election_timeout needs cluster_node_id (1 or more; without it, or with 0, this broker runs "
		 "on its own)");
	bad_file("\ncluster_peer 2 h:1\ncluster_role witness\n", 2,
		 "cluster_peer needs cluster_node_id (1 or more; without it, or with 0, this broker runs on its own)");
	bad_file("cluster_node_id 0\ncluster_role broker\n", 2,
		 "cluster_role needs cluster_node_id (1 or more; without it, or with 0, this broker runs on its own)");
	bad_file("cluster_join false\n", 1,
		 "cluster_join needs cluster_node_id (1 or more; without it, or with 0, this broker runs on its own)");
	/* set, then set back to 0 */
	bad_file("cluster_node_id 1\ncluster_listener 7881\ncluster_peer 2 h:1\ncluster_node_id 0\n", 2,
		 "cluster_listener needs cluster_node_id (1 or more; without it, or with 0, this broker runs on its own)");
}

static void test_finish_node(void)
{
	bad_file("\ncluster_node_id 5\n" PEERS, 2,
		 "cluster_node_id 5 needs cluster_listener PORT [ADDRESS]: where the other nodes reach this one");
	bad_file(NODE1 "\n", 1,
		 "cluster_node_id 1 needs a cluster_peer line for each other node, or cluster_join true to wait to be "
		 "added by the leader (a single broker needs no cluster options)");
	bad_file(NODE1 "cluster_join true\n" PEERS, 4,
		 "cluster_peer: with cluster_join true (line 3) the node learns the cluster from the leader that adds "
		 "it (ferromq-ctl cluster add): no cluster_peer lines");
	bad_file(NODE1 "persistence false\n" PEERS, 1,
		 "cluster_node_id: a cluster broker's state is the replicated log and the store in "
		 "persistence_location: not with persistence false");
	bad_file(NODE1 "cluster_role witness\npersistence false\n" PEERS, 1,
		 "cluster_node_id: a witness keeps the raft log in persistence_location/raft: not with persistence "
		 "false");
	bad_file(NODE1 PEERS "cluster_peer 1 10.0.0.9:7881\n", 5,
		 "cluster_peer 1: this node's own cluster_node_id (line 1): list the other nodes only");
	bad_file(NODE1 "cluster_peer 2 10.0.0.1:7881\n", 3,
		 "cluster_peer 2: 10.0.0.1:7881 is this node's own cluster_listener (line 2)");
}

static void test_finish_timing(void)
{
	bad_file(NODE1 PEERS "cluster_heartbeat 200\n", 5,
		 "cluster_heartbeat 200 ms is more than a third of cluster_election_timeout 500 ms: a follower must be "
		 "able to miss two heartbeats in a row without starting an election");
	/* the default heartbeat against a short timeout: the timeout's line */
	bad_file(NODE1 "cluster_election_timeout 100\n" PEERS, 3,
		 "cluster_heartbeat 50 ms is more than a third of cluster_election_timeout 100 ms: a follower must be "
		 "able to miss two heartbeats in a row without starting an election");
	bad_file(NODE1 PEERS "cluster_heartbeat 51\ncluster_election_timeout 150\n", 5,
		 "cluster_heartbeat 51 ms is more than a third of cluster_election_timeout 150 ms: a follower must be "
		 "able to miss two heartbeats in a row without starting an election");
}

static void test_finish_witness(void)
{
	/* The cluster's part of the HTTP API: http_listener and its credentials. */
	static struct config c;
	good_file(&c, NODE1 "cluster_role witness\n" PEERS "http_listener 8080 10.0.0.1\nhttp_token_file /tmp/t\n"
		      "password_file /tmp/p\nhttp_readonly_users prometheus\n");
	ASSERT_TRUE(c.cluster_witness);
	ASSERT_EQ(c.http_port, 8080);
	ASSERT_STRN(c.http_address, strlen(c.http_address), "10.0.0.1");
	/* ... but still no MQTT listener, bridge or device beside it. */
	bad_file(NODE1 "cluster_role witness\n" PEERS "http_listener 8080\nhttp_token_file /tmp/t\nlistener 1883\n", 8,
		 "listener: a witness (cluster_role witness, line 3) has no MQTT listeners");
	bad_file(NODE1 "cluster_role witness\n" PEERS "listener 1883\n", 6,
		 "listener: a witness (cluster_role witness, line 3) has no MQTT listeners");
	bad_file(NODE1 "cluster_role witness\n" PEERS "connection cloud\naddress h\ntopic a/#\n", 6,
		 "connection cloud: a witness (cluster_role witness, line 3) runs no bridges");
	bad_file(NODE1 "cluster_role witness\n" PEERS "modbus_device plc\nmodbus_address h\n"
		 "modbus_tag t holding_register 1 int16\n", 6,
		 "modbus_device plc: a witness (cluster_role witness, line 3) polls no devices");
}

static void test_finish_ports(void)
{
	bad_file("listener 1883 0.0.0.0\nlistener 7881 0.0.0.0\n" NODE1 PEERS, 4,
		 "cluster_listener 10.0.0.1:7881: the port of the MQTT listener on line 2");
	bad_file("listener 7881 10.0.0.1\n" NODE1 PEERS, 3,
		 "cluster_listener 10.0.0.1:7881: the port of the MQTT listener on line 1");
	bad_file("cluster_node_id 1\ncluster_listener 1883\n" PEERS, 2,
		 "cluster_listener 127.0.0.1:1883: the port of the default MQTT listener (1883 127.0.0.1)");
	bad_file("http_listener 7881\nhttp_token_file /tmp/t\ncluster_node_id 1\ncluster_listener 7881\n" PEERS, 4,
		 "cluster_listener 127.0.0.1:7881: the port of the http_listener on line 1");
	/* A witness's HTTP listener cannot share the cluster port either. */
	bad_file("cluster_role witness\nhttp_listener 7881 0.0.0.0\nhttp_token_file /tmp/t\n" NODE1 PEERS, 5,
		 "cluster_listener 10.0.0.1:7881: the port of the http_listener on line 2");
}

static void test_help(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ASSERT_TRUE(f != NULL);
	if (!f)
		return;
	config_print_help(f);
	fclose(f);
	static const char *const want[] = {
		"  cluster_node_id N\n", "  cluster_listener PORT [ADDRESS]\n", "  cluster_peer N HOST:PORT [MQTT_HOST:PORT]\n",
		"  cluster_role broker|witness\n", "  cluster_election_timeout MS\n", "  cluster_heartbeat MS\n",
		"  cluster_join true|false\n", "persistence_location/raft", "Default: 500.", "Default: 50.",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		if (!strstr(text, want[i]))
			CHECK_FAIL("help lacks \"%s\"", want[i]);
	free(text);
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_accepted_forms);
	RUN(test_refused_lines);
	RUN(test_good_files);
	RUN(test_finish_without_node_id);
	RUN(test_finish_node);
	RUN(test_finish_timing);
	RUN(test_finish_witness);
	RUN(test_finish_ports);
	RUN(test_help);
	return CHECK_DONE();
}
