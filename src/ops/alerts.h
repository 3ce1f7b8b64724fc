/* Alert rules over the per-second history of a few metrics. Pure: the
 * sampler feeds points and acts on the state changes (log, $SYS). */
#ifndef FM_OPS_ALERTS_H
#define FM_OPS_ALERTS_H
#include <stdbool.h>
#include <stdint.h>

enum alert_id {
	ALERT_CLIENTS_DROP, ALERT_MESSAGE_RATE_DROP, ALERT_MEMORY, ALERT_SUBSCRIPTION_LEAK, ALERT_QUEUE_SHARE,
	ALERT_DEVICE_OFFLINE, ALERT_SPARKPLUG_NODE_OFFLINE,
	ALERT_CLUSTER_NO_LEADER, ALERT_CLUSTER_PEER_LAG, ALERT_CLUSTER_PEER_UNREACHABLE, /* cluster only: see alert_applies */
	ALERT__COUNT
};

/* cluster_peer_lag's threshold: entries a voter's log may be behind the
 * leader's. An ops-side constant (the option table belongs to config): a
 * follower in step is within max_inflight_entries (32) of the leader, and
 * one 1,024 entries behind is sent a snapshot; above 1,000 it is not
 * keeping up. */
#define ALERT_CLUSTER_LAG_ENTRIES 1000
/* cluster_peer_unreachable's threshold: seconds a peer may acknowledge
 * nothing while entries wait for it. A follower in step answers within a
 * heartbeat (50 ms); one installing a large snapshot may take seconds. */
#define ALERT_CLUSTER_UNREACHABLE_S 10
/* cluster_no_leader fires when no leader has been known for longer than
 * this many election timeouts: one election takes one or two. */
#define ALERT_CLUSTER_NO_LEADER_TIMEOUTS 4

/* Longest window of any rule, in seconds (samples kept). */
#define ALERT_MAX_WINDOW 3600
/* Below this baseline (messages/s) the rate rule stays quiet: an idle
 * broker is not a dropping one. */
#define ALERT_RATE_MIN_BASELINE 1.0
/* A leak is at least this many new subscriptions. */
#define ALERT_SUBS_MIN_GROWTH 10
/* Clients may grow this much (percent) while subscriptions leak. */
#define ALERT_SUBS_CLIENTS_GROWTH 5.0

struct alert_config {
	uint32_t clients_drop_percent, clients_drop_window;
	uint32_t clients_drop_min; /* a baseline under this many clients never alarms */
	uint32_t rate_drop_percent, rate_window, rate_baseline;
	uint32_t memory_percent;
	uint64_t memory_limit; /* bytes; 0: the memory rule is off */
	uint32_t subs_growth_percent, subs_window;
	uint32_t queue_share_percent;
	uint32_t clear_after; /* seconds a rule's condition stays false before it clears */
};

/* One sample a second. */
struct alert_point {
	double clients, msg_rate, subs;
};

/* Ring of the last ALERT_MAX_WINDOW + 1 points. */
struct alert_history {
	struct alert_point p[ALERT_MAX_WINDOW + 1];
	uint32_t n, head; /* head: where the next point goes */
};

/* What the rules without a history measure, at the time of evaluation. */
struct alert_input {
	uint64_t heap_bytes;
	double queue_share; /* percent of a queue limit the fullest session's queue uses */
	uint32_t devices_offline; /* Modbus devices offline now */
	uint32_t sparkplug_nodes_offline; /* Sparkplug edge nodes whose last word was their NDEATH */
	/* The cluster rules measure these; both stay quiet without a cluster. */
	bool cluster;
	double no_leader_s;       /* seconds this node has known no leader (0: it knows one) */
	double no_leader_limit_s; /* election timeout x ALERT_CLUSTER_NO_LEADER_TIMEOUTS */
	uint64_t peer_lag;        /* the largest lag of a peer, in entries (known on the leader) */
	double peer_stalled_s;    /* the longest a peer has been behind without acknowledging (cluster_watch) */
};

struct alert_state {
	bool firing;
	bool clearing;     /* firing, and its condition has been false since clear_from_s */
	double value, threshold;
	uint64_t since_s;  /* unix seconds of the last state change; 0: ok since start */
	uint64_t clear_from_s;
};

const char *alert_name(enum alert_id id);
/* Whether rule id exists on this broker: the cluster rules only in a
 * cluster (they are left out of $SYS, /metrics and the API otherwise). */
bool alert_applies(enum alert_id id, bool cluster);
void alert_history_push(struct alert_history *h, struct alert_point p);
/* Evaluates every rule on h and in at unix time now_s. Updates value and
 * threshold, and firing/since: a rule fires as soon as its condition holds
 * and clears once the condition has been false for cfg->clear_after seconds.
 * Returns a bit (1 << id) for every rule whose firing state changed. */
unsigned alerts_evaluate(const struct alert_config *cfg, const struct alert_history *h,
			 const struct alert_input *in, uint64_t now_s, struct alert_state st[ALERT__COUNT]);

#endif
