/* Rules: clients_drop (connected clients fell by more than a percentage below
 * their median over a window), message_rate_drop (the received rate over a
 * short window against its average over a long one), memory (heap against
 * memory_limit), subscription_leak (subscriptions grow while clients do not),
 * queue_share (a session's queue passed a share of its limit), device_offline
 * (a Modbus device stopped answering; the value counts them),
 * sparkplug_node_offline (a Sparkplug edge node died: its NDEATH of the
 * current bdSeq came, and no NBIRTH since; the value counts them),
 * cluster_no_leader (this node has known no leader for longer than 4
 * election timeouts; the value is seconds), cluster_peer_lag (on the
 * leader, a peer's log is more than ALERT_CLUSTER_LAG_ENTRIES behind; the
 * value is the largest lag in entries), cluster_peer_unreachable (on the
 * leader, a peer has acknowledged nothing for ALERT_CLUSTER_UNREACHABLE_S
 * while entries waited for it; the value is seconds). */
#include "alerts.h"
#include <stdlib.h>

static const char *const names[ALERT__COUNT] = { "clients_drop", "message_rate_drop", "memory",
						 "subscription_leak", "queue_share", "device_offline",
						 "sparkplug_node_offline", "cluster_no_leader",
						 "cluster_peer_lag", "cluster_peer_unreachable" };

const char *alert_name(enum alert_id id) { return names[id]; }

bool alert_applies(enum alert_id id, bool cluster)
{
	return cluster ||
	       (id != ALERT_CLUSTER_NO_LEADER && id != ALERT_CLUSTER_PEER_LAG && id != ALERT_CLUSTER_PEER_UNREACHABLE);
}

void alert_history_push(struct alert_history *h, struct alert_point p)
{
	h->p[h->head] = p;
	h->head = (h->head + 1) % (ALERT_MAX_WINDOW + 1);
	if (h->n < ALERT_MAX_WINDOW + 1)
		h->n++;
}

/* The point `ago` samples before the newest (ago < h->n). */
static const struct alert_point *point_ago(const struct alert_history *h, uint32_t ago)
{
	uint32_t cap = ALERT_MAX_WINDOW + 1;
	return &h->p[(h->head + cap - 1 - ago) % cap];
}

/* Samples back a window of `seconds` reaches, within the history. */
static uint32_t span(const struct alert_history *h, uint32_t seconds)
{
	return seconds < h->n - 1 ? seconds : h->n - 1;
}

static double avg_rate(const struct alert_history *h, uint32_t seconds)
{
	uint32_t k = seconds < h->n ? seconds : h->n;
	double sum = 0;
	for (uint32_t i = 0; i < k; i++)
		sum += point_ago(h, i)->msg_rate;
	return k ? sum / k : 0;
}

static double pct_change(double from, double to)
{
	return (to - from) * 100.0 / (from > 1 ? from : 1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The median of connected clients over the window, the current sample
 * included. Unlike the peak, a short burst of connections (a test script, a
 * reconnect storm) does not become the level to drop from, and one client
 * joining does not reset it. */
static double clients_baseline(const struct alert_history *h, uint32_t window)
{
	double v[ALERT_MAX_WINDOW + 1];
	uint32_t k = span(h, window) + 1;
	for (uint32_t i = 0; i < k; i++)
		v[i] = point_ago(h, i)->clients;
	qsort(v, k, sizeof v[0], cmp_double);
	return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

static bool eval_clients_drop(const struct alert_config *c, const struct alert_history *h, struct alert_state *s)
{
	double base = clients_baseline(h, c->clients_drop_window), now = point_ago(h, 0)->clients;
	s->threshold = c->clients_drop_percent;
	/* A handful of clients is quiet: with one, every exit would be a 100 % drop. */
	bool quiet = base <= 0 || base < c->clients_drop_min;
	s->value = !quiet && now < base ? (base - now) * 100.0 / base : 0;
	return s->value > s->threshold;
}

static bool eval_rate_drop(const struct alert_config *c, const struct alert_history *h, struct alert_state *s)
{
	double recent = avg_rate(h, c->rate_window), baseline = avg_rate(h, c->rate_baseline);
	s->threshold = c->rate_drop_percent;
	s->value = baseline >= ALERT_RATE_MIN_BASELINE && recent < baseline ? (baseline - recent) * 100.0 / baseline : 0;
	return s->value > s->threshold;
}

static bool eval_memory(const struct alert_config *c, uint64_t heap, struct alert_state *s)
{
	s->threshold = c->memory_percent;
	s->value = c->memory_limit ? (double)heap * 100.0 / (double)c->memory_limit : 0;
	return c->memory_limit && s->value > s->threshold;
}

static bool eval_queue_share(const struct alert_config *c, double share, struct alert_state *s)
{
	s->threshold = c->queue_share_percent;
	s->value = share;
	return s->value > s->threshold;
}

static bool eval_device_offline(uint32_t offline, struct alert_state *s)
{
	s->threshold = 0;
	s->value = offline;
	return offline > 0;
}

static bool eval_cluster_no_leader(const struct alert_input *in, struct alert_state *s)
{
	s->threshold = in->cluster ? in->no_leader_limit_s : 0;
	s->value = in->cluster ? in->no_leader_s : 0;
	return in->cluster && s->value > s->threshold;
}

static bool eval_cluster_peer_lag(const struct alert_input *in, struct alert_state *s)
{
	s->threshold = ALERT_CLUSTER_LAG_ENTRIES;
	s->value = in->cluster ? (double)in->peer_lag : 0;
	return in->cluster && in->peer_lag > ALERT_CLUSTER_LAG_ENTRIES;
}

static bool eval_cluster_peer_unreachable(const struct alert_input *in, struct alert_state *s)
{
	s->threshold = ALERT_CLUSTER_UNREACHABLE_S;
	s->value = in->cluster ? in->peer_stalled_s : 0;
	return in->cluster && s->value > s->threshold;
}

static bool eval_subscription_leak(const struct alert_config *c, const struct alert_history *h,
				   struct alert_state *s)
{
	const struct alert_point *now = point_ago(h, 0), *then = point_ago(h, span(h, c->subs_window));
	s->threshold = c->subs_growth_percent;
	s->value = now->subs > then->subs ? pct_change(then->subs, now->subs) : 0;
	return now->subs - then->subs >= ALERT_SUBS_MIN_GROWTH && s->value > s->threshold &&
	       pct_change(then->clients, now->clients) <= ALERT_SUBS_CLIENTS_GROWTH;
}

/* Applies one evaluation of a rule's condition to its state at now_s.
 * Returns true when the firing state changed. */
static bool settle(struct alert_state *a, bool condition, uint32_t clear_after, uint64_t now_s)
{
	if (condition) {
		a->clearing = false;
		if (a->firing)
			return false;
		a->firing = true;
		a->since_s = now_s;
		return true;
	}
	if (!a->firing)
		return false;
	/* A wall clock set back restarts the wait instead of stretching it. */
	if (!a->clearing || now_s < a->clear_from_s) {
		a->clearing = true;
		a->clear_from_s = now_s;
	}
	if (now_s - a->clear_from_s < clear_after)
		return false;
	a->firing = a->clearing = false;
	a->since_s = now_s;
	return true;
}

unsigned alerts_evaluate(const struct alert_config *cfg, const struct alert_history *h,
			 const struct alert_input *in, uint64_t now_s, struct alert_state st[ALERT__COUNT])
{
	if (!h->n)
		return 0;
	bool condition[ALERT__COUNT] = {
		[ALERT_CLIENTS_DROP] = eval_clients_drop(cfg, h, &st[ALERT_CLIENTS_DROP]),
		[ALERT_MESSAGE_RATE_DROP] = eval_rate_drop(cfg, h, &st[ALERT_MESSAGE_RATE_DROP]),
		[ALERT_MEMORY] = eval_memory(cfg, in->heap_bytes, &st[ALERT_MEMORY]),
		[ALERT_SUBSCRIPTION_LEAK] = eval_subscription_leak(cfg, h, &st[ALERT_SUBSCRIPTION_LEAK]),
		[ALERT_QUEUE_SHARE] = eval_queue_share(cfg, in->queue_share, &st[ALERT_QUEUE_SHARE]),
		[ALERT_DEVICE_OFFLINE] = eval_device_offline(in->devices_offline, &st[ALERT_DEVICE_OFFLINE]),
		/* The same rule: any one counted fires it. */
		[ALERT_SPARKPLUG_NODE_OFFLINE] = eval_device_offline(in->sparkplug_nodes_offline,
								     &st[ALERT_SPARKPLUG_NODE_OFFLINE]),
		[ALERT_CLUSTER_NO_LEADER] = eval_cluster_no_leader(in, &st[ALERT_CLUSTER_NO_LEADER]),
		[ALERT_CLUSTER_PEER_LAG] = eval_cluster_peer_lag(in, &st[ALERT_CLUSTER_PEER_LAG]),
		[ALERT_CLUSTER_PEER_UNREACHABLE] = eval_cluster_peer_unreachable(in, &st[ALERT_CLUSTER_PEER_UNREACHABLE]),
	};
	unsigned changed = 0;
	for (int i = 0; i < ALERT__COUNT; i++)
		if (settle(&st[i], condition[i], cfg->clear_after, now_s))
			changed |= 1u << i;
	return changed;
}
