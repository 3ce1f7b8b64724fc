/* The metric table: one enum and one table feed $SYS, Prometheus and the
 * JSON API (STYLE rule 20). The sampler (ops.c) fills a snapshot once a
 * second on worker 0; everything that renders metrics reads that snapshot on
 * the same thread. */
#ifndef FM_OPS_METRICS_H
#define FM_OPS_METRICS_H
#include "alerts.h"
#include "rates.h"
#include "../base/buf.h"
#include "../bridge/bridge.h"
#include "../collect/collect.h"
#include "../broker/admin.h"
#include "../broker/stats.h"
#include "../cluster/cluster.h"
#include "../config/config.h"
#include "../sparkplug/fleet.h"

enum metric_id {
	M_MESSAGES_RECEIVED, M_MESSAGES_SENT, M_BYTES_RECEIVED, M_BYTES_SENT,
	M_CLIENTS_CONNECTED, M_CLIENTS_DISCONNECTED, M_CLIENTS_MAXIMUM, M_CLIENTS_TOTAL,
	M_SUBSCRIPTIONS, M_RETAINED_MESSAGES, M_QUEUED_MESSAGES, M_QUEUED_BYTES, M_INFLIGHT_MESSAGES,
	M_HEAP_BYTES, M_HEAP_MAX_BYTES, M_STORE_BYTES, M_UPTIME_SECONDS,
	M_DROPS, /* DROP__COUNT entries, in enum drop_reason's order */
	M__COUNT = M_DROPS + DROP__COUNT
};

struct metric_def {
	const char *key;   /* JSON key in /api/status "metrics" (drops: in "drops") */
	const char *sys;   /* $SYS topic */
	const char *prom;  /* Prometheus family; counters end in _total */
	const char *label; /* the family's label for this row, or NULL */
	bool counter;
	const char *help;
	const char *sys_alias; /* a second $SYS topic with the same value, or NULL */
};
extern const struct metric_def metric_defs[M__COUNT];

/* Counters with rates. */
enum rate_id { R_MESSAGES_RECEIVED, R_MESSAGES_SENT, R_BYTES_RECEIVED, R_BYTES_SENT, R__COUNT };
struct rate_def {
	enum metric_id of;
	const char *key;  /* JSON key in /api/status "rates" */
	const char *sys;  /* $SYS/broker/load/... prefix; /1min, /5min, /15min follow */
	const char *prom; /* gauge family, label window="now|1m|5m|15m" */
};
extern const struct rate_def rate_defs[R__COUNT];
extern const char *const rate_window_names[RATE__WINDOWS]; /* "1m", "5m", "15m" */

/* Sessions the queue_share alert names: the fullest, at most this many, so
 * its $SYS payload and /metrics stay small whatever the number of sessions. */
#define QUEUE_ALERT_SESSIONS 8
struct queue_alert_session {
	char *client_id; /* owned */
	double share;    /* percent of the queue limit used */
};

struct metrics_snapshot {
	bool sampled;       /* at least one sample taken */
	uint64_t wall_ms;   /* when */
	uint64_t v[M__COUNT];
	struct rate rates[R__COUNT];
	struct queue_totals queues; /* owned: the largest queues */
	unsigned n_workers;
	struct stats_local *workers; /* per worker, n_workers */
	unsigned n_listeners;
	uint16_t listener_port[CONFIG_MAX_LISTENERS];
	uint32_t listener_open[CONFIG_MAX_LISTENERS];
	struct alert_state alerts[ALERT__COUNT];
	unsigned n_bridges;
	struct bridge_status bridges[CONFIG_MAX_BRIDGES];
	uint32_t n_queue_over;   /* sessions over alert_queue_share_percent */
	uint32_t n_queue_named;  /* the fullest of them in queue_over, fullest first */
	struct queue_alert_session queue_over[QUEUE_ALERT_SESSIONS];
	struct collect_device_info *devices; /* owned: the Modbus devices, n_devices of them */
	uint32_t n_devices;
	bool sparkplug;                      /* sparkplug_aware: spb holds the fleet view's totals */
	struct spb_fleet_totals spb;
	bool cluster;                        /* a cluster node: cluster_st is its status */
	struct cluster_status cluster_st;
	double no_leader_s;                  /* seconds it has known no leader (0: it knows one) */
};

/* Frees the names of s->queue_over and empties it. */
void metrics_queue_over_free(struct metrics_snapshot *s);

/* Appends the snapshot in the Prometheus text format 0.0.4. Returns 0 or -FM_ENOMEM. */
int metrics_prometheus(const struct metrics_snapshot *s, bool ready, struct buf *out);
/* Appends the cluster's families of the status st: cluster_status_prometheus's,
 * and this node's role, last index, restores, each peer's match index and
 * no_leader_s, the seconds without a leader. Returns 0 or -FM_ENOMEM. */
int metrics_cluster_prometheus(const struct cluster_status *st, double no_leader_s, struct buf *out);
/* A node without a broker (a witness): its cluster's families as above
 * (none while st is NULL: no status sampled yet), ferromq_ready and
 * ferromq_build_info, as a broker shows them. Returns 0 or -FM_ENOMEM. */
int metrics_node_prometheus(const struct cluster_status *st, double no_leader_s, bool ready, struct buf *out);
/* Appends printf-formatted text. Returns 0 or -FM_ENOMEM. */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
