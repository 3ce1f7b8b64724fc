/* src/ops: rates, moving averages and the alert rules, as pure functions. */
#include "check.h"
#include "ops/alerts.h"
#include "ops/cluster_watch.h"
#include "ops/metrics.h"
#include "ops/node.h"
#include "ops/rates.h"
#include "ops/token.h"
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define ASSERT_NEAR(a, b, eps) do { double a_ = (a), b_ = (b); \
	if (fabs(a_ - b_) > (eps)) CHECK_FAIL("%s ~ %s: %g != %g", #a, #b, a_, b_); } while (0)

static void test_rate_now_and_ewma(void)
{
	struct rate r = { 0 };
	rate_update(&r, 1000, 1.0); /* primes only */
	ASSERT_NEAR(r.now, 0, 1e-9);
	rate_update(&r, 1100, 1.0);
	ASSERT_NEAR(r.now, 100, 1e-9);
	ASSERT_NEAR(r.ewma[RATE_1M], 100 * (1 - exp(-1.0 / 60)), 1e-9);
	rate_update(&r, 1300, 2.0);
	ASSERT_NEAR(r.now, 100, 1e-9);
	/* A steady rate converges: after 15 minutes the 1-minute average is there. */
	for (int i = 0; i < 900; i++)
		rate_update(&r, 1300 + (uint64_t)(i + 1) * 50, 1.0);
	ASSERT_NEAR(r.ewma[RATE_1M], 50, 0.01);
	/* Slower windows are still on their way up from 0: 1 - e^-3, 1 - e^-1. */
	ASSERT_NEAR(r.ewma[RATE_5M], 50 * (1 - exp(-3.0)), 1);
	ASSERT_NEAR(r.ewma[RATE_15M], 50 * (1 - exp(-1.0)), 1);
	/* A counter that went backwards is no traffic, not a huge rate. */
	rate_update(&r, 10, 1.0);
	ASSERT_NEAR(r.now, 0, 1e-9);
}

static void test_ewma_step(void)
{
	ASSERT_NEAR(ewma_step(0, 10, 60, 60), 10 * (1 - exp(-1)), 1e-9);
	ASSERT_NEAR(ewma_step(5, 5, 1, 900), 5, 1e-12);
}

static struct alert_config config(void)
{
	return (struct alert_config){ .clients_drop_percent = 10, .clients_drop_window = 5, .clients_drop_min = 5,
				      .rate_drop_percent = 50, .rate_window = 2, .rate_baseline = 10,
				      .memory_percent = 80, .memory_limit = 1000,
				      .subs_growth_percent = 50, .subs_window = 3, .queue_share_percent = 80 };
}

static void feed(struct alert_history *h, double clients, double rate, double subs, int seconds)
{
	for (int i = 0; i < seconds; i++)
		alert_history_push(h, (struct alert_point){ clients, rate, subs });
}

/* Evaluates with nothing measured outside the history (no heap, no queues). */
static unsigned eval(const struct alert_config *c, const struct alert_history *h, uint64_t now_s,
		     struct alert_state st[ALERT__COUNT])
{
	const struct alert_input none = { 0 };
	return alerts_evaluate(c, h, &none, now_s, st);
}

static unsigned eval_heap(const struct alert_config *c, const struct alert_history *h, uint64_t heap,
			  uint64_t now_s, struct alert_state st[ALERT__COUNT])
{
	const struct alert_input in = { .heap_bytes = heap };
	return alerts_evaluate(c, h, &in, now_s, st);
}

static void test_clients_drop(void)
{
	struct alert_config c = config();
	struct alert_history *h = calloc(1, sizeof *h);
	struct alert_state st[ALERT__COUNT] = { 0 };
	feed(h, 100, 0, 0, 3);
	ASSERT_EQ(eval(&c, h, 1000, st), 0);
	feed(h, 85, 0, 0, 1); /* median of 100, 100, 100, 85 */
	ASSERT_EQ(eval(&c, h, 1001, st), 1u << ALERT_CLIENTS_DROP);
	ASSERT_TRUE(st[ALERT_CLIENTS_DROP].firing);
	ASSERT_NEAR(st[ALERT_CLIENTS_DROP].value, 15, 1e-9);
	ASSERT_NEAR(st[ALERT_CLIENTS_DROP].threshold, 10, 1e-9);
	ASSERT_EQ(st[ALERT_CLIENTS_DROP].since_s, 1001);
	/* 100 x3, 85 x3: the median is 92.5, 8.1 % above 85. */
	feed(h, 85, 0, 0, 2);
	ASSERT_EQ(eval(&c, h, 1003, st), 1u << ALERT_CLIENTS_DROP);
	ASSERT_FALSE(st[ALERT_CLIENTS_DROP].firing);
	ASSERT_NEAR(st[ALERT_CLIENTS_DROP].value, 7.5 * 100 / 92.5, 1e-9);
	/* Once the median is 85, the lower level is the new normal. */
	feed(h, 85, 0, 0, 3);
	ASSERT_EQ(eval(&c, h, 1006, st), 0);
	ASSERT_NEAR(st[ALERT_CLIENTS_DROP].value, 0, 1e-9);
	free(h);
}

/* A burst of short-lived connections is not the level clients drop from:
 * against the peak, 200 -> 100 read as a 50 % drop. */
static void test_clients_drop_ignores_a_burst(void)
{
	struct alert_config c = config();
	struct alert_history *h = calloc(1, sizeof *h);
	struct alert_state st[ALERT__COUNT] = { 0 };
	feed(h, 100, 0, 0, 4);
	feed(h, 200, 0, 0, 2);
	feed(h, 100, 0, 0, 1);
	ASSERT_EQ(eval(&c, h, 1, st), 0);
	ASSERT_NEAR(st[ALERT_CLIENTS_DROP].value, 0, 1e-9);
	free(h);
}

/* With one client connected, its every exit was a 100 % drop. */
static void test_clients_drop_quiet_below_minimum(void)
{
	struct alert_config c = config();
	struct alert_history *h = calloc(1, sizeof *h);
	struct alert_state st[ALERT__COUNT] = { 0 };
	feed(h, 1, 0, 0, 5);
	feed(h, 0, 0, 0, 1);
	ASSERT_EQ(eval(&c, h, 1, st), 0);
	ASSERT_NEAR(st[ALERT_CLIENTS_DROP].value, 0, 1e-9);
	feed(h, 4, 0, 0, 6);
	feed(h, 0, 0, 0, 1);
	ASSERT_EQ(eval(&c, h, 2, st), 0); /* a median of 4 < clients_drop_min 5 */
	feed(h, 5, 0, 0, 6);
	feed(h, 0, 0, 0, 1);
	ASSERT_EQ(eval(&c, h, 3, st), 1u << ALERT_CLIENTS_DROP);
	ASSERT_NEAR(st[ALERT_CLIENTS_DROP].value, 100, 1e-9);
	free(h);
}

/* The reported flap: 4 of 30 gateways go down, then a monitoring client
 * connects (27 of 30 is a 10 % drop, not above 10 %). The alert stays until
 * the condition has been false for clear_after seconds. */
static void test_clients_drop_monitor_joins(void)
{
	struct alert_config c = config();
	c.clients_drop_window = 300;
	c.clear_after = 60;
	struct alert_history *h = calloc(1, sizeof *h);
	struct alert_state st[ALERT__COUNT] = { 0 };
	uint64_t t = 5000;
	feed(h, 30, 0, 0, 300);
	ASSERT_EQ(eval(&c, h, t, st), 0);
	feed(h, 26, 0, 0, 1);
	ASSERT_EQ(eval(&c, h, ++t, st), 1u << ALERT_CLIENTS_DROP);
	uint64_t fired = t;
	/* False from fired + 1 on: still firing until fired + 1 + 60. */
	for (int i = 0; i < 60; i++) {
		feed(h, 27, 0, 0, 1);
		ASSERT_EQ(eval(&c, h, ++t, st), 0);
		ASSERT_TRUE(st[ALERT_CLIENTS_DROP].firing);
		ASSERT_NEAR(st[ALERT_CLIENTS_DROP].value, 10, 1e-9);
		ASSERT_EQ(st[ALERT_CLIENTS_DROP].since_s, fired);
	}
	feed(h, 27, 0, 0, 1);
	ASSERT_EQ(eval(&c, h, ++t, st), 1u << ALERT_CLIENTS_DROP);
	ASSERT_FALSE(st[ALERT_CLIENTS_DROP].firing);
	ASSERT_EQ(st[ALERT_CLIENTS_DROP].since_s, fired + 61);
	free(h);
}

/* Hysteresis is the same for every rule: the clock of clear_after restarts
 * whenever the condition holds again, or the wall clock goes back. */
static void test_clear_after(void)
{
	struct alert_config c = config();
	c.clear_after = 10;
	struct alert_history *h = calloc(1, sizeof *h);
	struct alert_state st[ALERT__COUNT] = { 0 };
	feed(h, 0, 0, 0, 1);
	ASSERT_EQ(eval_heap(&c, h, 900, 100, st), 1u << ALERT_MEMORY);
	ASSERT_EQ(eval_heap(&c, h, 500, 101, st), 0);
	ASSERT_NEAR(st[ALERT_MEMORY].value, 50, 1e-9); /* the value is current while clearing */
	ASSERT_EQ(eval_heap(&c, h, 500, 110, st), 0);
	ASSERT_EQ(eval_heap(&c, h, 900, 111, st), 0); /* true again: the wait starts over */
	ASSERT_EQ(eval_heap(&c, h, 500, 112, st), 0);
	ASSERT_EQ(eval_heap(&c, h, 500, 121, st), 0);
	ASSERT_EQ(eval_heap(&c, h, 500, 90, st), 0); /* clock set back: starts over at 90 */
	ASSERT_EQ(eval_heap(&c, h, 500, 99, st), 0);
	ASSERT_TRUE(st[ALERT_MEMORY].firing);
	ASSERT_EQ(st[ALERT_MEMORY].since_s, 100);
	ASSERT_EQ(eval_heap(&c, h, 500, 100, st), 1u << ALERT_MEMORY);
	ASSERT_FALSE(st[ALERT_MEMORY].firing);
	ASSERT_EQ(st[ALERT_MEMORY].since_s, 100);
	/* Firing again is at once. */
	ASSERT_EQ(eval_heap(&c, h, 900, 101, st), 1u << ALERT_MEMORY);
	free(h);
}

static void test_queue_share(void)
{
	struct alert_config c = config();
	struct alert_history *h = calloc(1, sizeof *h);
	struct alert_state st[ALERT__COUNT] = { 0 };
	feed(h, 0, 0, 0, 1);
	struct alert_input in = { .queue_share = 80 };
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 1, st), 0); /* 80 % is not above 80 % */
	in.queue_share = 80.1;
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 2, st), 1u << ALERT_QUEUE_SHARE);
	ASSERT_NEAR(st[ALERT_QUEUE_SHARE].value, 80.1, 1e-9);
	ASSERT_NEAR(st[ALERT_QUEUE_SHARE].threshold, 80, 1e-9);
	ASSERT_STRN(alert_name(ALERT_QUEUE_SHARE), strlen(alert_name(ALERT_QUEUE_SHARE)), "queue_share");
	in.queue_share = 0;
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 3, st), 1u << ALERT_QUEUE_SHARE);
	ASSERT_FALSE(st[ALERT_QUEUE_SHARE].firing);
	free(h);
}

static void test_rate_drop(void)
{
	struct alert_config c = config();
	struct alert_history *h = calloc(1, sizeof *h);
	struct alert_state st[ALERT__COUNT] = { 0 };
	/* Idle: a baseline under the minimum never alarms. */
	feed(h, 1, 0.5, 0, 10);
	feed(h, 1, 0, 0, 2);
	ASSERT_EQ(eval(&c, h, 1, st), 0);
	feed(h, 1, 100, 0, 10);
	ASSERT_EQ(eval(&c, h, 2, st), 0);
	feed(h, 1, 0, 0, 2); /* baseline 80, recent 0 */
	ASSERT_EQ(eval(&c, h, 3, st), 1u << ALERT_MESSAGE_RATE_DROP);
	ASSERT_NEAR(st[ALERT_MESSAGE_RATE_DROP].value, 100, 1e-9);
	feed(h, 1, 100, 0, 2); /* back */
	ASSERT_EQ(eval(&c, h, 4, st), 1u << ALERT_MESSAGE_RATE_DROP);
	ASSERT_FALSE(st[ALERT_MESSAGE_RATE_DROP].firing);
	free(h);
}

static void test_memory(void)
{
	struct alert_config c = config();
	struct alert_history *h = calloc(1, sizeof *h);
	struct alert_state st[ALERT__COUNT] = { 0 };
	feed(h, 0, 0, 0, 1);
	ASSERT_EQ(eval_heap(&c, h, 800, 1, st), 0); /* 80 % is not above 80 % */
	ASSERT_EQ(eval_heap(&c, h, 801, 2, st), 1u << ALERT_MEMORY);
	ASSERT_NEAR(st[ALERT_MEMORY].value, 80.1, 1e-9);
	c.memory_limit = 0; /* off */
	ASSERT_EQ(eval_heap(&c, h, 1u << 30, 3, st), 1u << ALERT_MEMORY);
	ASSERT_FALSE(st[ALERT_MEMORY].firing);
	free(h);
}

static void test_subscription_leak(void)
{
	struct alert_config c = config();
	struct alert_history *h = calloc(1, sizeof *h);
	struct alert_state st[ALERT__COUNT] = { 0 };
	feed(h, 10, 0, 20, 4);
	/* Growth with clients: not a leak. */
	feed(h, 20, 0, 40, 1);
	ASSERT_EQ(eval(&c, h, 1, st), 0);
	feed(h, 20, 0, 40, 4);
	/* Too small to matter: +9. */
	feed(h, 20, 0, 49, 1);
	ASSERT_EQ(eval(&c, h, 2, st), 0);
	feed(h, 20, 0, 70, 1); /* +30 = 75 % within 3 s, clients flat */
	ASSERT_EQ(eval(&c, h, 3, st), 1u << ALERT_SUBSCRIPTION_LEAK);
	ASSERT_NEAR(st[ALERT_SUBSCRIPTION_LEAK].value, 75, 1e-9);
	feed(h, 20, 0, 70, 3); /* the window moved past the growth */
	ASSERT_EQ(eval(&c, h, 4, st), 1u << ALERT_SUBSCRIPTION_LEAK);
	ASSERT_FALSE(st[ALERT_SUBSCRIPTION_LEAK].firing);
	free(h);
}

static void test_history_wraps(void)
{
	struct alert_config c = config();
	c.clients_drop_window = ALERT_MAX_WINDOW;
	struct alert_history *h = calloc(1, sizeof *h);
	struct alert_state st[ALERT__COUNT] = { 0 };
	feed(h, 100, 0, 0, ALERT_MAX_WINDOW + 1);
	feed(h, 50, 0, 0, ALERT_MAX_WINDOW / 2 + 5);
	ASSERT_EQ(h->n, ALERT_MAX_WINDOW + 1);
	ASSERT_EQ(eval(&c, h, 1, st), 0); /* most of the 100s fell out: the median is 50 */
	ASSERT_NEAR(st[ALERT_CLIENTS_DROP].value, 0, 1e-9);
	free(h);
}

static void test_prometheus_families(void)
{
	struct metrics_snapshot s = { 0 };
	struct stats_local w = { .msgs_received = 3 };
	s.workers = &w;
	s.n_workers = 1;
	s.v[M_DROPS + DROP_EXPIRED] = 7;
	struct buf out = { 0 };
	ASSERT_EQ(metrics_prometheus(&s, true, &out), 0);
	buf_append(&out, "", 1);
	const char *t = (const char *)out.p;
	ASSERT_TRUE(strstr(t, "# TYPE ferromq_dropped_messages_total counter\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_dropped_messages_total{reason=\"expired\"} 7\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_worker_messages_received_total{worker=\"0\"} 3\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_alert_firing{name=\"memory\"} 0\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_alert_firing{name=\"queue_share\"} 0\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_queue_share_sessions 0\n") != NULL);
	/* One HELP per family, however many rows it has. */
	const char *first = strstr(t, "# HELP ferromq_dropped_messages_total");
	ASSERT_TRUE(first && !strstr(first + 1, "# HELP ferromq_dropped_messages_total"));
	buf_free(&out);
}

/* A client id is any UTF-8: as a label value it is escaped (format 0.0.4). */
static void test_prometheus_queue_share_label(void)
{
	struct metrics_snapshot s = { 0 };
	char id[] = "gw \"7\"\\a\nb";
	s.queue_over[0] = (struct queue_alert_session){ id, 90.5 };
	s.n_queue_named = 1;
	s.n_queue_over = 3;
	struct buf out = { 0 };
	ASSERT_EQ(metrics_prometheus(&s, true, &out), 0);
	buf_append(&out, "", 1);
	const char *t = (const char *)out.p;
	ASSERT_TRUE(strstr(t, "ferromq_queue_share_sessions 3\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_queue_share_percent{client_id=\"gw \\\"7\\\"\\\\a\\nb\"} 90.50\n") != NULL);
	buf_free(&out);
}

static void test_token_compare(void)
{
	ASSERT_TRUE(token_equal("abc", 3, "abc"));
	ASSERT_FALSE(token_equal("abd", 3, "abc"));
	ASSERT_FALSE(token_equal("ab", 2, "abc"));
	ASSERT_FALSE(token_equal("abcd", 4, "abc"));
	ASSERT_FALSE(token_equal("", 0, "abc"));
}

/* Fills the stack below the caller with blanks, as an earlier call might
 * have left it. */
static __attribute__((noinline)) void blank_stack(void)
{
	volatile char junk[8192];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = ' ';
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

static void test_token_file(void)
{
	char dir[] = "/tmp/fm-token-XXXXXX", path[64], tok[TOKEN_MAX], err[256];
	bool created;
	ASSERT_TRUE(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/token", dir);
	ASSERT_EQ(write_file(path, "  s3cret-token \t\r\nsecond line\n"), 0);
	ASSERT_EQ(token_load(path, false, tok, &created, err, sizeof err), 0);
	ASSERT_STRN(tok, strlen(tok), "s3cret-token");
	ASSERT_FALSE(created);
	/* An empty file (fgets reads nothing and leaves the buffer as it was:
	 * here, blanks past its end) and a blank line are refused. */
	const char *bad[] = { "", " \t\n", "\ntoken on line 2\n" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ASSERT_EQ(write_file(path, bad[i]), 0);
		blank_stack();
		ASSERT_EQ(token_load(path, false, tok, &created, err, sizeof err), -1);
		ASSERT_TRUE(strstr(err, "expected a token") != NULL);
	}
	ASSERT_EQ(unlink(path), 0);
	ASSERT_EQ(token_load(path, false, tok, &created, err, sizeof err), -1);
	ASSERT_EQ(token_load(path, true, tok, &created, err, sizeof err), 0);
	ASSERT_TRUE(created);
	ASSERT_EQ(strlen(tok), 64);
	struct stat st;
	ASSERT_EQ(stat(path, &st), 0);
	ASSERT_EQ(st.st_mode & 0777, 0600);
	unlink(path);
	rmdir(dir);
}

/* sparkplug_node_offline fires while any edge node's last word was its
 * NDEATH, alone (not device_offline), and clears like every rule. */
static void test_sparkplug_node_offline(void)
{
	struct alert_config c = config();
	c.clear_after = 5;
	struct alert_history *h = calloc(1, sizeof *h);
	struct alert_state st[ALERT__COUNT] = { 0 };
	struct alert_input in = { .sparkplug_nodes_offline = 2 };
	alert_history_push(h, (struct alert_point){ 0, 0, 0 }); /* rules wait for a first sample */
	unsigned changed = alerts_evaluate(&c, h, &in, 1000, st);
	ASSERT_EQ(changed, 1u << ALERT_SPARKPLUG_NODE_OFFLINE);
	ASSERT_TRUE(st[ALERT_SPARKPLUG_NODE_OFFLINE].firing);
	ASSERT_EQ(st[ALERT_SPARKPLUG_NODE_OFFLINE].value, 2);
	ASSERT_FALSE(st[ALERT_DEVICE_OFFLINE].firing);
	ASSERT_TRUE(strcmp(alert_name(ALERT_SPARKPLUG_NODE_OFFLINE), "sparkplug_node_offline") == 0);
	in.sparkplug_nodes_offline = 0;
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 1001, st), 0);
	ASSERT_TRUE(st[ALERT_SPARKPLUG_NODE_OFFLINE].firing);
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 1006, st), 1u << ALERT_SPARKPLUG_NODE_OFFLINE);
	ASSERT_FALSE(st[ALERT_SPARKPLUG_NODE_OFFLINE].firing);
	free(h);
}

/* cluster_no_leader: quiet without a cluster; fires once no leader has
 * been known for longer than its limit, clears like every rule. */
static void test_cluster_no_leader(void)
{
	struct alert_config c = config();
	c.clear_after = 5;
	struct alert_history *h = calloc(1, sizeof *h);
	struct alert_state st[ALERT__COUNT] = { 0 };
	alert_history_push(h, (struct alert_point){ 0, 0, 0 });
	/* No cluster: whatever the inputs say, nothing. */
	struct alert_input in = { .no_leader_s = 100, .no_leader_limit_s = 2, .peer_lag = 5000 };
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 1000, st), 0);
	ASSERT_EQ(st[ALERT_CLUSTER_NO_LEADER].value, 0);
	in.cluster = true;
	in.peer_lag = 0;
	in.no_leader_s = 2; /* not longer than the limit */
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 1001, st), 0);
	ASSERT_EQ(st[ALERT_CLUSTER_NO_LEADER].threshold, 2);
	in.no_leader_s = 2.5;
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 1002, st), 1u << ALERT_CLUSTER_NO_LEADER);
	ASSERT_TRUE(st[ALERT_CLUSTER_NO_LEADER].firing);
	ASSERT_TRUE(st[ALERT_CLUSTER_NO_LEADER].value == 2.5);
	in.no_leader_s = 0; /* a leader again */
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 1003, st), 0);
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 1008, st), 1u << ALERT_CLUSTER_NO_LEADER);
	ASSERT_FALSE(st[ALERT_CLUSTER_NO_LEADER].firing);
	ASSERT_TRUE(strcmp(alert_name(ALERT_CLUSTER_NO_LEADER), "cluster_no_leader") == 0);
	free(h);
}

/* cluster_peer_lag fires above ALERT_CLUSTER_LAG_ENTRIES, not at it. */
static void test_cluster_peer_lag(void)
{
	struct alert_config c = config();
	c.clear_after = 0;
	struct alert_history *h = calloc(1, sizeof *h);
	struct alert_state st[ALERT__COUNT] = { 0 };
	alert_history_push(h, (struct alert_point){ 0, 0, 0 });
	struct alert_input in = { .cluster = true, .peer_lag = ALERT_CLUSTER_LAG_ENTRIES };
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 1000, st), 0);
	ASSERT_EQ(st[ALERT_CLUSTER_PEER_LAG].threshold, ALERT_CLUSTER_LAG_ENTRIES);
	in.peer_lag = ALERT_CLUSTER_LAG_ENTRIES + 1;
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 1001, st), 1u << ALERT_CLUSTER_PEER_LAG);
	ASSERT_EQ(st[ALERT_CLUSTER_PEER_LAG].value, ALERT_CLUSTER_LAG_ENTRIES + 1);
	in.peer_lag = 3;
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 1002, st), 1u << ALERT_CLUSTER_PEER_LAG);
	ASSERT_FALSE(st[ALERT_CLUSTER_PEER_LAG].firing);
	ASSERT_TRUE(strcmp(alert_name(ALERT_CLUSTER_PEER_LAG), "cluster_peer_lag") == 0);
	/* Only the cluster rules depend on being in a cluster. */
	for (int i = 0; i < ALERT__COUNT; i++) {
		ASSERT_TRUE(alert_applies((enum alert_id)i, true));
		ASSERT_EQ(alert_applies((enum alert_id)i, false),
			  i != ALERT_CLUSTER_NO_LEADER && i != ALERT_CLUSTER_PEER_LAG &&
				  i != ALERT_CLUSTER_PEER_UNREACHABLE);
	}
	free(h);
}

/* A peer behind the leader whose match index stands still counts from
 * when it stopped; moving or in step, it counts nothing; followers (no
 * match index) watch nothing. */
static void test_cluster_watch(void)
{
	struct cluster_watch w = { 0 };
	struct cluster_status st = { .state = CLUSTER_LEADER, .n_peers = 2 };
	st.peers[0] = (struct cluster_peer_status){ .id = 2, .has_match = true, .match_index = 10, .lag = 0 };
	st.peers[1] = (struct cluster_peer_status){ .id = 3, .has_match = true, .match_index = 10, .lag = 0 };
	uint64_t worst;
	ASSERT_TRUE(cluster_watch_update(&w, &st, 1000, &worst) == 0 && worst == 0);
	/* 3 stops at 10 while the log grows; 2 keeps up. */
	st.peers[0].match_index = 15;
	st.peers[1].lag = 5;
	ASSERT_TRUE(cluster_watch_update(&w, &st, 2000, &worst) == 1.0);
	ASSERT_EQ(worst, 3);
	st.peers[0].match_index = 40;
	st.peers[1].lag = 30;
	ASSERT_TRUE(cluster_watch_update(&w, &st, 13500, &worst) == 12.5);
	ASSERT_EQ(worst, 3);
	/* It answers: moving again, the clock starts over. */
	st.peers[1].match_index = 20;
	st.peers[1].lag = 20;
	ASSERT_TRUE(cluster_watch_update(&w, &st, 14000, &worst) == 0 && worst == 0);
	ASSERT_TRUE(cluster_watch_update(&w, &st, 15000, &worst) == 1.0 && worst == 3);
	/* A follower knows no match index: nothing, and nothing kept. */
	struct cluster_status f = { .state = CLUSTER_FOLLOWER, .n_peers = 2 };
	f.peers[0].id = 2;
	f.peers[1].id = 3;
	ASSERT_TRUE(cluster_watch_update(&w, &f, 16000, &worst) == 0 && worst == 0);
	ASSERT_EQ(w.n, 0);
	/* Leader again: a peer seen anew starts from now. */
	ASSERT_TRUE(cluster_watch_update(&w, &st, 17000, &worst) == 0);
	ASSERT_TRUE(cluster_watch_update(&w, &st, 19000, &worst) == 2.0);

	/* The rule: above ALERT_CLUSTER_UNREACHABLE_S, in a cluster only. */
	struct alert_config c = config();
	c.clear_after = 0;
	struct alert_history *h = calloc(1, sizeof *h);
	struct alert_state a[ALERT__COUNT] = { 0 };
	alert_history_push(h, (struct alert_point){ 0, 0, 0 });
	struct alert_input in = { .peer_stalled_s = 100 };
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 1000, a), 0);
	in.cluster = true;
	in.peer_stalled_s = ALERT_CLUSTER_UNREACHABLE_S;
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 1001, a), 0);
	in.peer_stalled_s = ALERT_CLUSTER_UNREACHABLE_S + 0.5;
	ASSERT_EQ(alerts_evaluate(&c, h, &in, 1002, a), 1u << ALERT_CLUSTER_PEER_UNREACHABLE);
	ASSERT_TRUE(strcmp(alert_name(ALERT_CLUSTER_PEER_UNREACHABLE), "cluster_peer_unreachable") == 0);
	ASSERT_FALSE(alert_applies(ALERT_CLUSTER_PEER_UNREACHABLE, false));
	free(h);
}

/* Without a cluster /metrics has no cluster family and no cluster alert;
 * with one, the node's state, indexes and each known peer's lag. */
static void test_prometheus_cluster(void)
{
	struct metrics_snapshot s = { 0 };
	struct buf out = { 0 };
	ASSERT_EQ(metrics_prometheus(&s, true, &out), 0);
	buf_append(&out, "", 1);
	ASSERT_TRUE(strstr((const char *)out.p, "cluster") == NULL);
	buf_free(&out);

	s.cluster = true;
	s.no_leader_s = 0;
	s.cluster_st = (struct cluster_status){ .node_id = 1, .role = CLUSTER_ROLE_BROKER, .state = CLUSTER_LEADER,
						.term = 7, .leader_id = 1, .commit_index = 120, .applied_index = 119,
						.last_index = 121, .snapshots = 2, .restores = 1, .n_peers = 2 };
	s.cluster_st.peers[0] = (struct cluster_peer_status){ .id = 2, .voter = true, .has_match = true,
							      .match_index = 121, .lag = 0 };
	s.cluster_st.peers[1] = (struct cluster_peer_status){ .id = 3, .voter = true, .has_match = true,
							      .match_index = 21, .lag = 100 };
	s.alerts[ALERT_CLUSTER_PEER_LAG] = (struct alert_state){ .threshold = ALERT_CLUSTER_LAG_ENTRIES };
	ASSERT_EQ(metrics_prometheus(&s, false, &out), 0);
	buf_append(&out, "", 1);
	const char *t = (const char *)out.p;
	ASSERT_TRUE(strstr(t, "ferromq_cluster_state{state=\"leader\"} 1\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_state{state=\"follower\"} 0\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_term 7\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_leader_id 1\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_commit_index 120\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_applied_index 119\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_last_index 121\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_snapshots_total 2\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_restores_total 1\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_role{role=\"broker\"} 1\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_peer_lag{peer=\"3\"} 100\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_peer_match_index{peer=\"2\"} 121\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_no_leader_seconds 0.000\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_alert_threshold{name=\"cluster_peer_lag\"} 1000\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_alert_firing{name=\"cluster_no_leader\"} 0\n") != NULL);
	buf_free(&out);
}

/* A witness's /metrics: the cluster's families as a broker shows them, its
 * role, never ready, and nothing of a broker (it runs none). */
static void test_prometheus_witness(void)
{
	struct cluster_status st = { .node_id = 3, .role = CLUSTER_ROLE_WITNESS, .state = CLUSTER_FOLLOWER,
				     .term = 4, .leader_id = 1, .commit_index = 50, .applied_index = 50,
				     .last_index = 50, .n_peers = 2 };
	st.peers[0] = (struct cluster_peer_status){ .id = 1, .voter = true };
	st.peers[1] = (struct cluster_peer_status){ .id = 2, .voter = true };
	struct buf out = { 0 };
	ASSERT_EQ(metrics_node_prometheus(&st, 0, false, &out), 0);
	buf_append(&out, "", 1);
	const char *t = (const char *)out.p;
	ASSERT_TRUE(strstr(t, "ferromq_cluster_role{role=\"witness\"} 1\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_role{role=\"broker\"} 0\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_state{state=\"follower\"} 1\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_leader_id 1\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_term 4\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_commit_index 50\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_node_id 3\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_cluster_no_leader_seconds 0.000\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_ready 0\n") != NULL);
	ASSERT_TRUE(strstr(t, "ferromq_build_info{version=") != NULL);
	/* not the leader: no peer's lag is known here */
	ASSERT_TRUE(strstr(t, "ferromq_cluster_peer_lag{") == NULL);
	ASSERT_TRUE(strstr(t, "ferromq_messages_received_total") == NULL);
	ASSERT_TRUE(strstr(t, "ferromq_alert_") == NULL);
	buf_free(&out);
	/* Before the first sample: ready and build only. */
	ASSERT_EQ(metrics_node_prometheus(NULL, 0, false, &out), 0);
	buf_append(&out, "", 1);
	ASSERT_TRUE(strstr((const char *)out.p, "cluster") == NULL);
	ASSERT_TRUE(strstr((const char *)out.p, "ferromq_ready 0\n") != NULL);
	buf_free(&out);
}

/* /readyz's reasons: a witness never serves and names the leader; a
 * broker follower names it too; a leader that applies says so. */
static void not_ready_is(const char *got, const char *want)
{
	ASSERT_STRN(got, strlen(got), want);
}

static void test_cluster_not_ready(void)
{
	char buf[128 + CLUSTER_ADDRESS_MAX];
	struct cluster_status st = { .role = CLUSTER_ROLE_WITNESS, .state = CLUSTER_FOLLOWER, .term = 3 };
	not_ready_is(ops_node_cluster_not_ready(&st, 1, "10.0.0.1:7000", buf, sizeof buf),
		   "witness, follower: a witness never serves MQTT clients; the leader is node 1 at 10.0.0.1:7000");
	not_ready_is(ops_node_cluster_not_ready(&st, 0, "", buf, sizeof buf),
		   "witness, follower: a witness never serves MQTT clients; no leader known (term 3)");
	st.state = CLUSTER_LEADER;
	not_ready_is(ops_node_cluster_not_ready(&st, 3, "10.0.0.3:7000", buf, sizeof buf),
		   "witness, leader: a witness never serves MQTT clients; it hands leadership to a broker (term 3)");
	st.role = CLUSTER_ROLE_BROKER;
	not_ready_is(ops_node_cluster_not_ready(&st, 2, "10.0.0.2:7000", buf, sizeof buf),
		   "leader: applying the log committed before it serves (term 3)");
	st.state = CLUSTER_CANDIDATE;
	not_ready_is(ops_node_cluster_not_ready(&st, 2, "10.0.0.2:7000", buf, sizeof buf),
		   "candidate: the leader is node 2 at 10.0.0.2:7000");
}

int main(void)
{
	RUN(test_rate_now_and_ewma);
	RUN(test_ewma_step);
	RUN(test_clients_drop);
	RUN(test_clients_drop_ignores_a_burst);
	RUN(test_clients_drop_quiet_below_minimum);
	RUN(test_clients_drop_monitor_joins);
	RUN(test_clear_after);
	RUN(test_queue_share);
	RUN(test_rate_drop);
	RUN(test_memory);
	RUN(test_subscription_leak);
	RUN(test_sparkplug_node_offline);
	RUN(test_cluster_no_leader);
	RUN(test_cluster_peer_lag);
	RUN(test_prometheus_cluster);
	RUN(test_prometheus_witness);
	RUN(test_cluster_not_ready);
	RUN(test_cluster_watch);
	RUN(test_history_wraps);
	RUN(test_prometheus_families);
	RUN(test_prometheus_queue_share_label);
	RUN(test_token_compare);
	RUN(test_token_file);
	return CHECK_DONE();
}
