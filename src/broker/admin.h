/* What the operations layer (src/ops, src/http) asks of the broker: listings
 * of clients, sessions, subscriptions and retained messages, kicking a client,
 * deleting a session, jobs run on every worker, and $SYS messages. Listings
 * return arrays the caller frees with the matching *_free. */
#ifndef FM_BROKER_ADMIN_H
#define FM_BROKER_ADMIN_H
#include "broker.h"

/* Starts j on every worker (j->run there, then j->done on `home`). Refused
 * with -FM_EINVAL once shutdown has begun, so no job reaches a stopped loop. */
int broker_job_start(struct broker *b, struct broker_job *j, int home);

struct client_info {
	char *client_id, *username, *identity; /* owned; username/identity may be NULL */
	char address[48];
	uint8_t version;
	uint16_t listener_port, keepalive;
	uint32_t inflight, queued;
	uint64_t msgs_received, msgs_sent, bytes_received, bytes_sent;
	uint64_t connected_ms; /* monotonic */
	int worker;
};
/* On w's own thread: appends its connected clients to *arr (n, cap).
 * Returns 0 or -FM_ENOMEM (what was appended stays). */
int broker_worker_list_clients(struct bworker *w, struct client_info **arr, uint32_t *n, uint32_t *cap);
void client_info_free(struct client_info *a, uint32_t n);

struct session_info {
	char *client_id;
	bool connected;
	uint32_t queued, inflight, subscriptions, expiry_interval;
	uint64_t queued_bytes;
	uint64_t oldest_ms;  /* wall ms the oldest queued message was queued (to the second); 0: none */
	uint64_t expires_at; /* wall ms; 0: connected or never */
};
int broker_list_sessions(struct broker *b, struct session_info **out, uint32_t *n);
void session_info_free(struct session_info *a, uint32_t n);

struct sub_info {
	char *client_id, *filter;
	uint8_t options; /* MQTT subscription options byte */
	uint32_t sub_id;
};
int broker_list_subscriptions(struct broker *b, struct sub_info **out, uint32_t *n);
void sub_info_free(struct sub_info *a, uint32_t n);

struct retained_info {
	char *topic;
	uint32_t bytes;
	uint8_t qos;
};
int broker_list_retained(struct broker *b, struct retained_info **out, uint32_t *n);
void retained_info_free(struct retained_info *a, uint32_t n);

#define QUEUE_TOP_N 10
struct queue_top {
	char *client_id; /* owned */
	uint32_t queued;
	uint64_t queued_bytes;
	bool connected;
};
/* Session totals for the metrics, and the largest queues, largest first. */
struct queue_totals {
	uint64_t queued, queued_bytes, inflight;
	struct queue_top top[QUEUE_TOP_N];
	uint32_t n_top;
	/* The largest share of its queue limit any session uses (percent of the
	 * fuller of max_queued_messages and max_queued_bytes; 0 without limits). */
	double fullest_share;
};
/* Sessions whose queue is close to its limit, the queue_share alert's
 * input: fn(ctx, client_id, share) for each one over over_percent, under
 * the registry lock (fn copies what it keeps and calls nothing of the
 * broker). */
struct queue_watch {
	double over_percent;
	void (*fn)(void *ctx, const char *client_id, double share);
	void *ctx;
};
/* Walks every session (registry, then each session lock), once for the
 * totals and the watch (NULL: none). */
void broker_queue_totals(struct broker *b, struct queue_totals *t, const struct queue_watch *watch);
void queue_totals_free(struct queue_totals *t);

size_t broker_subscription_count(struct broker *b);
size_t broker_retained_count(struct broker *b);

/* Disconnects the client of session `id` with a v5 DISCONNECT carrying rc
 * (its session stays). Returns 0, or -FM_ENOENT when no client is connected. */
int broker_kick(struct broker *b, const char *id, size_t len, uint8_t rc);
/* Disconnects the session's client (rc) if any, then removes the session,
 * its queue and its subscriptions from memory and the store. On w's thread.
 * Returns 0 or -FM_ENOENT. */
int broker_delete_session(struct bworker *w, const char *id, size_t len, uint8_t rc);


/* Is pass the password of user in the current password file? False without
 * one. Constant time in the password (see auth_passwd_check). Any thread. */
bool broker_check_user(struct broker *b, const char *user, size_t ulen, const uint8_t *pass, size_t plen);

/* Publishes a retained QoS 0 message on a $SYS topic through the retained
 * index and routing, so subscriptions and ACLs apply. Kept in memory only:
 * $SYS is rebuilt at every start. On w's thread. Returns 0 or -FM_ENOMEM. */
int broker_publish_sys(struct bworker *w, const char *topic, const char *payload, size_t len);

/* Runs the administrative items handed to w (kicks, jobs); its own thread. */
void broker__admin_run(struct bworker *w);

#endif
