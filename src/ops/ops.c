/* The operations service on worker 0's loop: a one-second sampler that
 * fills the metric snapshot, feeds the alert rules and publishes $SYS. */
#include "ops.h"
#include "devices.h"
#include "sparkplug.h"
#include "sys.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/features.h"
#include "../base/log.h"
#include "../net/net.h"
#include "../store/store.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLE_MS 1000

struct ops {
	struct broker *b;
	struct store *store;
	struct bridges *bridges;
	struct collector *collector;
	const char *conf_path;
	uv_timer_t timer;
	bool timer_open;
	uint64_t last_sample_ms; /* monotonic */
	uint64_t next_sys_s;     /* uptime second of the next $SYS update */
	struct ops_node node;    /* the credentials and the cluster view */
	bool node_open;          /* node initialized */
	bool alerts_published;
	bool queue_named_changed; /* the sessions queue_share names changed at the last sample */
	struct metrics_snapshot snap;
	struct sys_state sys;
	struct alert_history history;
	atomic_bool ready;
	/* Shared with reloads on other threads. */
	pthread_mutex_t lock;
	struct alert_config alert_cfg;
	pthread_mutex_t reload_lock; /* one reload at a time */
};

/* The users of password_file, as the broker loaded them with its ACL. */
static bool broker_users_check(void *ctx, const char *user, size_t ulen, const uint8_t *pass, size_t plen)
{
	return broker_check_user(ctx, user, ulen, pass, plen);
}

static void alert_config_from(struct alert_config *a, const struct config *c)
{
	*a = (struct alert_config){
		.clients_drop_percent = c->alert_clients_drop_percent,
		.clients_drop_window = c->alert_clients_drop_window,
		.clients_drop_min = c->alert_clients_drop_min,
		.rate_drop_percent = c->alert_rate_drop_percent,
		.rate_window = c->alert_rate_window,
		.rate_baseline = c->alert_rate_baseline,
		.memory_percent = c->alert_memory_percent,
		.memory_limit = c->memory_limit,
		.subs_growth_percent = c->alert_subscriptions_growth_percent,
		.subs_window = c->alert_subscriptions_window,
		.queue_share_percent = c->alert_queue_share_percent,
		.clear_after = c->alert_clear_after,
	};
}

struct ops *ops_new(struct broker *b, const char *conf_path, char *err, size_t errlen)
{
	struct ops *o = calloc(1, sizeof *o);
	if (!o || !(o->snap.workers = calloc(b->n_workers, sizeof *o->snap.workers))) {
		free(o);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	o->b = b;
	o->conf_path = conf_path;
	o->snap.n_workers = b->n_workers;
	pthread_mutex_init(&o->lock, NULL);
	pthread_mutex_init(&o->reload_lock, NULL);
	alert_config_from(&o->alert_cfg, &b->cfg);
	for (int i = 0; i < ALERT__COUNT; i++)
		o->snap.alerts[i].threshold = 0;
	if (ops_node_init(&o->node, &b->cfg, conf_path, broker_users_check, b, err, errlen)) {
		ops_free(o);
		return NULL;
	}
	o->node_open = true;
	return o;
}

void ops_set_store(struct ops *o, struct store *store)
{
	o->store = store;
	ops_node_set_cluster(&o->node, store_cluster(store));
}
void ops_set_bridges(struct ops *o, struct bridges *bridges) { o->bridges = bridges; }
void ops_set_collector(struct ops *o, struct collector *collector) { o->collector = collector; }

/* The network layer, set in the broker's ports before any worker runs. */
static struct net *ops_net(const struct ops *o) { return o->b->ports.ctx; }

void ops_free(struct ops *o)
{
	if (!o)
		return;
	queue_totals_free(&o->snap.queues);
	metrics_queue_over_free(&o->snap);
	free(o->snap.devices);
	free(o->snap.workers);
	if (o->node_open)
		ops_node_fini(&o->node);
	pthread_mutex_destroy(&o->lock);
	pthread_mutex_destroy(&o->reload_lock);
	free(o);
}

void ops_set_ready(struct ops *o) { atomic_store(&o->ready, true); }

struct cluster_node *ops_cluster(struct ops *o) { return o->node.cluster; }
struct ops_node *ops_node(struct ops *o) { return &o->node; }

const char *ops_not_ready(struct ops *o)
{
	static _Thread_local char why[64 + CLUSTER_ADDRESS_MAX];
	/* First: a standby stack (a follower's, a witness's) is never set ready,
	 * and the leader it points to is what a load balancer needs to know. */
	struct cluster_node *n = ops_cluster(o);
	char leader[CLUSTER_ADDRESS_MAX];
	uint64_t leader_id;
	if (n && !store_cluster_serving(o->store, leader, sizeof leader, &leader_id, NULL)) {
		struct cluster_status st;
		cluster_status(n, &st);
		return ops_node_cluster_not_ready(&st, leader_id, leader, why, sizeof why);
	}
	if (!atomic_load(&o->ready))
		return "starting: recovery or listeners not finished";
	if (atomic_load_explicit(&o->b->stats.store_failing, memory_order_relaxed))
		return "store: writes are failing (disk full or I/O error); QoS 1/2 messages are refused";
	return NULL;
}

const struct metrics_snapshot *ops_snapshot(const struct ops *o) { return &o->snap; }
struct broker *ops_broker(const struct ops *o) { return o->b; }

/* The sessions over the queue share: all counted, the fullest named. */
struct queue_over_walk {
	struct queue_alert_session top[QUEUE_ALERT_SESSIONS];
	uint32_t n, over;
};

static void queue_over_add(void *ctx, const char *client_id, double share)
{
	struct queue_over_walk *qw = ctx;
	qw->over++;
	if (qw->n == QUEUE_ALERT_SESSIONS && share <= qw->top[QUEUE_ALERT_SESSIONS - 1].share)
		return;
	char *copy = strdup(client_id);
	if (!copy)
		return; /* out of memory: counted, not named */
	uint32_t i = qw->n;
	if (qw->n < QUEUE_ALERT_SESSIONS)
		qw->n++;
	else
		free(qw->top[--i].client_id);
	/* Insertion, fullest first. */
	for (; i > 0 && qw->top[i - 1].share < share; i--)
		qw->top[i] = qw->top[i - 1];
	qw->top[i] = (struct queue_alert_session){ copy, share };
}

static bool named(const struct queue_alert_session *a, uint32_t n, const char *client_id)
{
	for (uint32_t i = 0; i < n; i++)
		if (!strcmp(a[i].client_id, client_id))
			return true;
	return false;
}

/* Replaces the sessions over the share in s with qw's (moved); the set of
 * names, not their order or shares, decides whether they changed. */
static bool queue_over_take(struct metrics_snapshot *s, struct queue_over_walk *qw)
{
	bool changed = qw->n != s->n_queue_named || qw->over != s->n_queue_over;
	for (uint32_t i = 0; i < qw->n && !changed; i++)
		changed = !named(s->queue_over, s->n_queue_named, qw->top[i].client_id);
	metrics_queue_over_free(s);
	memcpy(s->queue_over, qw->top, qw->n * sizeof qw->top[0]);
	s->n_queue_named = qw->n;
	s->n_queue_over = qw->over;
	return changed;
}

/* The cluster node's status, and since when it has known no leader. */
static void sample_cluster(struct ops *o, struct metrics_snapshot *s)
{
	ops_node_sample(&o->node);
	const struct ops_cluster_view *v = &o->node.view;
	s->cluster = v->cluster;
	s->no_leader_s = v->no_leader_s;
	if (v->cluster)
		s->cluster_st = v->st;
}

/* The largest lag of a peer the leader knows, in entries. */
static uint64_t max_peer_lag(const struct cluster_status *st)
{
	uint64_t lag = 0;
	for (unsigned i = 0; i < st->n_peers && i < CLUSTER_MAX_NODES; i++)
		if (st->peers[i].has_match && st->peers[i].lag > lag)
			lag = st->peers[i].lag;
	return lag;
}

/* "; peers 2 (lag 5000), 3 (lag 1200)" for cluster_peer_lag's log line. */
static void lagging_peers_text(const struct cluster_status *st, char *out, size_t size)
{
	size_t len = 0;
	out[0] = 0;
	for (unsigned i = 0; i < st->n_peers && i < CLUSTER_MAX_NODES && len < size; i++) {
		const struct cluster_peer_status *p = &st->peers[i];
		if (p->has_match && p->lag > ALERT_CLUSTER_LAG_ENTRIES)
			len += (size_t)snprintf(out + len, size - len, "%s%llu at %s (lag %llu)", len ? ", " : "; peers ",
						(unsigned long long)p->id, p->address, (unsigned long long)p->lag);
	}
}

/* "; peer 3 at HOST:PORT (match index 120, lag 40)" for
 * cluster_peer_unreachable's log line. */
static void unreachable_text(const struct cluster_status *st, uint64_t id, char *out, size_t size)
{
	out[0] = 0;
	for (unsigned i = 0; i < st->n_peers && i < CLUSTER_MAX_NODES; i++)
		if (st->peers[i].id == id && st->peers[i].has_match)
			snprintf(out, size, "; peer %llu at %s (match index %llu, lag %llu)", (unsigned long long)id,
				 st->peers[i].address, (unsigned long long)st->peers[i].match_index,
				 (unsigned long long)st->peers[i].lag);
}

/* Fills the snapshot from the broker's counters (worker 0). Returns the
 * largest share of its queue limit any session uses, for the alert. */
static double sample(struct ops *o, const struct alert_config *cfg, double dt_s)
{
	struct broker *b = o->b;
	struct metrics_snapshot *s = &o->snap;
	struct stats_local sum;
	broker_stats_sum(b, &sum);
	for (unsigned i = 0; i < b->n_workers; i++) {
		const struct stats_published *p = &b->workers[i].stats_pub;
		struct stats_local *w = &s->workers[i];
		w->msgs_received = atomic_load_explicit(&p->msgs_received, memory_order_relaxed);
		w->msgs_sent = atomic_load_explicit(&p->msgs_sent, memory_order_relaxed);
		w->bytes_received = atomic_load_explicit(&p->bytes_received, memory_order_relaxed);
		w->bytes_sent = atomic_load_explicit(&p->bytes_sent, memory_order_relaxed);
	}
	uint64_t *v = s->v;
	v[M_MESSAGES_RECEIVED] = sum.msgs_received;
	v[M_MESSAGES_SENT] = sum.msgs_sent;
	v[M_BYTES_RECEIVED] = sum.bytes_received;
	v[M_BYTES_SENT] = sum.bytes_sent;
	for (int r = 0; r < DROP__COUNT; r++)
		v[M_DROPS + r] = sum.drops[r];
	long connected = atomic_load(&b->stats.clients_connected), sessions = atomic_load(&b->stats.sessions);
	v[M_CLIENTS_CONNECTED] = connected > 0 ? (uint64_t)connected : 0;
	v[M_CLIENTS_DISCONNECTED] = sessions > connected ? (uint64_t)(sessions - connected) : 0;
	v[M_CLIENTS_MAXIMUM] = (uint64_t)atomic_load(&b->stats.clients_maximum);
	v[M_CLIENTS_TOTAL] = atomic_load(&b->stats.clients_total);
	v[M_SUBSCRIPTIONS] = broker_subscription_count(b);
	v[M_RETAINED_MESSAGES] = broker_retained_count(b);
	queue_totals_free(&s->queues);
	struct queue_over_walk qw = { 0 };
	broker_queue_totals(b, &s->queues, &(struct queue_watch){ cfg->queue_share_percent, queue_over_add, &qw });
	v[M_QUEUED_MESSAGES] = s->queues.queued;
	v[M_QUEUED_BYTES] = s->queues.queued_bytes;
	v[M_INFLIGHT_MESSAGES] = s->queues.inflight;
	double queue_share = s->queues.fullest_share;
	o->queue_named_changed = queue_over_take(s, &qw);
	v[M_HEAP_BYTES] = fm_heap_current();
	if (v[M_HEAP_BYTES] > v[M_HEAP_MAX_BYTES])
		v[M_HEAP_MAX_BYTES] = v[M_HEAP_BYTES];
	v[M_STORE_BYTES] = o->store ? store_disk_bytes(o->store) : 0;
	s->wall_ms = clock_wall_ms();
	v[M_UPTIME_SECONDS] = (s->wall_ms - b->started_wall_ms) / 1000;
	for (int r = 0; r < R__COUNT; r++)
		rate_update(&s->rates[r], v[rate_defs[r].of], dt_s);
	s->n_listeners = b->cfg.n_listeners;
	for (unsigned l = 0; l < s->n_listeners; l++) {
		s->listener_port[l] = b->cfg.listeners[l].port;
		s->listener_open[l] = net_listener_open(ops_net(o), l);
	}
	s->n_bridges = bridges_count(o->bridges);
	for (unsigned i = 0; i < s->n_bridges; i++)
		bridges_status(o->bridges, i, &s->bridges[i]);
	s->sparkplug = b->spb != NULL;
	broker_spb_totals(b, &s->spb);
	sample_cluster(o, s);
	free(s->devices);
	if (collect_list(o->collector, &s->devices, &s->n_devices))
		s->n_devices = 0; /* out of memory: none shown this second */
	s->sampled = true;
	return queue_share;
}

/* "a (91.0 %), b (85.2 %) of N sessions" for the log line of queue_share. */
static void queue_over_text(const struct metrics_snapshot *s, char *out, size_t size)
{
	size_t len = 0;
	out[0] = 0;
	for (uint32_t i = 0; i < s->n_queue_named && len < size; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%s (%.1f %%)", i ? ", " : "; sessions ",
					s->queue_over[i].client_id, s->queue_over[i].share);
	if (s->n_queue_over > s->n_queue_named && len < size)
		snprintf(out + len, size - len, " and %u more", s->n_queue_over - s->n_queue_named);
}

static void evaluate_alerts(struct ops *o, const struct alert_config *cfg, double queue_share)
{
	struct metrics_snapshot *s = &o->snap;
	alert_history_push(&o->history, (struct alert_point){ (double)s->v[M_CLIENTS_CONNECTED],
							      s->rates[R_MESSAGES_RECEIVED].now,
							      (double)s->v[M_SUBSCRIPTIONS] });
	const struct alert_input in = {
		s->v[M_HEAP_BYTES], queue_share, devices_offline(s->devices, s->n_devices), s->spb.nodes_offline,
		s->cluster, s->no_leader_s,
		o->b->cfg.cluster_election_timeout_ms * ALERT_CLUSTER_NO_LEADER_TIMEOUTS / 1000.0,
		s->cluster ? max_peer_lag(&s->cluster_st) : 0, s->cluster ? o->node.view.peer_stalled_s : 0,
	};
	unsigned changed = alerts_evaluate(cfg, &o->history, &in, s->wall_ms / 1000, s->alerts);
	struct bworker *w0 = &o->b->workers[0];
	for (int i = 0; i < ALERT__COUNT; i++) {
		const struct alert_state *a = &s->alerts[i];
		if (!alert_applies((enum alert_id)i, s->cluster))
			continue;
		if (changed & (1u << i)) {
			char detail[512] = "";
			if (i == ALERT_QUEUE_SHARE)
				queue_over_text(s, detail, sizeof detail);
			if (i == ALERT_DEVICE_OFFLINE)
				devices_offline_text(s->devices, s->n_devices, detail, sizeof detail);
			if (i == ALERT_SPARKPLUG_NODE_OFFLINE)
				sparkplug_offline_text(o->b, detail, sizeof detail);
			if (i == ALERT_CLUSTER_PEER_LAG)
				lagging_peers_text(&s->cluster_st, detail, sizeof detail);
			if (i == ALERT_CLUSTER_PEER_UNREACHABLE)
				unreachable_text(&s->cluster_st, o->node.view.peer_stalled_id, detail, sizeof detail);
			if (i == ALERT_CLUSTER_NO_LEADER)
				snprintf(detail, sizeof detail, "; node %llu is %s in term %llu",
					 (unsigned long long)s->cluster_st.node_id,
					 cluster_state_name(s->cluster_st.state), (unsigned long long)s->cluster_st.term);
			if (a->firing)
				log_warn("alert %s firing: value %.1f above threshold %.1f%s", alert_name((enum alert_id)i),
					 a->value, a->threshold, detail);
			else
				log_notice("alert %s cleared: value %.1f, threshold %.1f", alert_name((enum alert_id)i),
					   a->value, a->threshold);
		}
		/* Every rule's state is on $SYS from the first sample on; queue_share's
		 * again when the sessions it names change. */
		bool renamed = i == ALERT_QUEUE_SHARE && o->queue_named_changed;
		if ((changed & (1u << i)) || !o->alerts_published || renamed)
			sys_publish_alert(w0, s, (enum alert_id)i);
	}
	o->alerts_published = true;
}

static void on_sample(uv_timer_t *t)
{
	struct ops *o = t->data;
	uint64_t now = clock_mono_ms();
	double dt = o->last_sample_ms ? (double)(now - o->last_sample_ms) / 1000.0 : 0;
	o->last_sample_ms = now;
	struct alert_config cfg;
	pthread_mutex_lock(&o->lock);
	cfg = o->alert_cfg;
	pthread_mutex_unlock(&o->lock);
	double queue_share = sample(o, &cfg, dt);
	evaluate_alerts(o, &cfg, queue_share);
	uint32_t interval = o->b->cfg.sys_interval;
	if (interval && o->snap.v[M_UPTIME_SECONDS] >= o->next_sys_s) {
		sys_publish(&o->sys, &o->b->workers[0], &o->snap);
		o->next_sys_s = o->snap.v[M_UPTIME_SECONDS] + interval;
	}
}

int ops_start(struct ops *o, uv_loop_t *loop)
{
	uv_timer_init(loop, &o->timer);
	o->timer.data = o;
	o->timer_open = true;
	/* The first sample primes the rates at once. */
	uv_timer_start(&o->timer, on_sample, 0, SAMPLE_MS);
	return 0;
}

void ops_stop(struct ops *o)
{
	if (o->timer_open && !uv_is_closing((uv_handle_t *)&o->timer))
		uv_close((uv_handle_t *)&o->timer, NULL);
}

void ops_reload(struct ops *o, const char *origin, struct reload_result *r)
{
	struct broker *b = o->b;
	struct config *fresh;
	char err[768];
	memset(r, 0, sizeof *r);
	pthread_mutex_lock(&o->reload_lock);
	/* Certificates, keys and CRLs of the TLS listeners; connections stay. */
	if (ops_net(o))
		net_reload_tls(ops_net(o), origin, ops_reload_error, r);
	/* Password file and ACL: new connections get the new ones. */
	if (broker_auth_load(b, b->cfg.password_file, b->cfg.acl_file, err, sizeof err)) {
		log_err("%s: %s; the previous password file and ACL stay", origin, err);
		ops_reload_error(r, err);
	}
	/* The token and the grant lists; then the alert thresholds and
	 * memory_limit from the same file. */
	ops_node__reload(&o->node, origin, r, &fresh);
	if (fresh) {
		pthread_mutex_lock(&o->lock);
		alert_config_from(&o->alert_cfg, fresh);
		pthread_mutex_unlock(&o->lock);
		free(fresh);
	}
	pthread_mutex_unlock(&o->reload_lock);
	log_notice("%s: reload done (%u error%s)", origin, r->n, r->n == 1 ? "" : "s");
}
