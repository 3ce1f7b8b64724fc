/* The cluster status as JSON (/api/cluster, ferromq-ctl cluster) and as
 * Prometheus text (/metrics): pure formatting, unit-tested. */
#include "cluster/cluster.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"

const char *cluster_state_name(enum cluster_state s)
{
	switch (s) {
	case CLUSTER_UNAVAILABLE: return "unavailable";
	case CLUSTER_FOLLOWER: return "follower";
	case CLUSTER_CANDIDATE: return "candidate";
	case CLUSTER_LEADER: return "leader";
	}
	return "unknown";
}

const char *cluster_role_name(enum cluster_role r)
{
	return r == CLUSTER_ROLE_WITNESS ? "witness" : "broker";
}

const char *cluster_strerror(int err)
{
	switch (err < 0 ? -err : err) {
	case CLUSTER_ENOTLEADER: return "not the leader";
	case CLUSTER_EUNKNOWN: return "leadership lost: the entry may or may not commit";
	case CLUSTER_ESHUTDOWN: return "the cluster node is stopping";
	case CLUSTER_EWITNESS: return "a witness holds no state machine";
	case CLUSTER_EBUSY: return "a membership change or transfer is already running";
	case CLUSTER_ERAFT: return "raft refused the request";
	}
	return fm_strerror(err);
}

/* An output cursor: appends until full, then remembers it overflowed. */
struct out {
	char *p;
	size_t len, cap;
	bool full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	if (o->full)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len) {
		o->full = true;
		return;
	}
	o->len += (size_t)n;
}

/* A JSON string; addresses come from peers' configuration, so escape. */
static void put_json_str(struct out *o, const char *s)
{
	put(o, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			put(o, "\\%c", c);
		else if (c < 0x20)
			put(o, "\\u%04x", c);
		else
			put(o, "%c", c);
	}
	put(o, "\"");
}

static int finish(struct out *o)
{
	if (o->full || o->cap == 0)
		return -FM_ELIMIT;
	o->p[o->len] = '\0';
	return (int)o->len;
}

int cluster_status_json(const struct cluster_status *st, char *buf, size_t cap)
{
	struct out o = { buf, 0, cap, cap == 0 };
	if (cap)
		buf[0] = '\0';
	put(&o, "{\"node_id\":%" PRIu64 ",\"role\":\"%s\",\"state\":\"%s\",\"term\":%" PRIu64
		",\"leader_id\":", st->node_id, cluster_role_name(st->role),
	    cluster_state_name(st->state), st->term);
	if (st->leader_id) {
		put(&o, "%" PRIu64 ",\"leader_address\":", st->leader_id);
		put_json_str(&o, st->leader_address);
	} else {
		put(&o, "null,\"leader_address\":null");
	}
	put(&o, ",\"commit_index\":%" PRIu64 ",\"applied_index\":%" PRIu64 ",\"last_index\":%" PRIu64
		",\"snapshots\":%" PRIu64 ",\"restores\":%" PRIu64 ",\"peers\":[",
	    st->commit_index, st->applied_index, st->last_index, st->snapshots, st->restores);
	for (unsigned i = 0; i < st->n_peers && i < CLUSTER_MAX_NODES; i++) {
		const struct cluster_peer_status *p = &st->peers[i];
		put(&o, "%s{\"id\":%" PRIu64 ",\"address\":", i ? "," : "", p->id);
		put_json_str(&o, p->address);
		put(&o, ",\"voter\":%s", p->voter ? "true" : "false");
		if (p->has_match)
			put(&o, ",\"match_index\":%" PRIu64 ",\"lag\":%" PRIu64 "}", p->match_index, p->lag);
		else
			put(&o, ",\"match_index\":null,\"lag\":null}");
	}
	put(&o, "],\"change\":");
	static const char *const kinds[] = { "", "add", "remove", "transfer" };
	if (st->change_kind >= CLUSTER_CHANGE_ADD && st->change_kind <= CLUSTER_CHANGE_TRANSFER) {
		put(&o, "{\"kind\":\"%s\",\"id\":%" PRIu64 ",\"pending\":%s,\"error\":", kinds[st->change_kind],
		    st->change_id, st->change_pending ? "true" : "false");
		if (st->change_pending || !st->change_err)
			put(&o, "null}");
		else {
			put_json_str(&o, cluster_strerror(st->change_err));
			put(&o, "}");
		}
	} else {
		put(&o, "null");
	}
	put(&o, "}");
	return finish(&o);
}

int cluster_status_prometheus(const struct cluster_status *st, char *buf, size_t cap)
{
	struct out o = { buf, 0, cap, cap == 0 };
	if (cap)
		buf[0] = '\0';
	put(&o, "# HELP ferromq_cluster_state This node's raft state (1 for the current one).\n"
		"# TYPE ferromq_cluster_state gauge\n");
	for (int s = CLUSTER_UNAVAILABLE; s <= CLUSTER_LEADER; s++)
		put(&o, "ferromq_cluster_state{state=\"%s\"} %d\n", cluster_state_name((enum cluster_state)s),
		    st->state == (enum cluster_state)s);
	put(&o, "# HELP ferromq_cluster_term The current raft term.\n# TYPE ferromq_cluster_term gauge\n"
		"ferromq_cluster_term %" PRIu64 "\n", st->term);
	put(&o, "# HELP ferromq_cluster_leader_id The leader's node id (0: none known).\n"
		"# TYPE ferromq_cluster_leader_id gauge\nferromq_cluster_leader_id %" PRIu64 "\n",
	    st->leader_id);
	put(&o, "# HELP ferromq_cluster_commit_index Highest log index known committed.\n"
		"# TYPE ferromq_cluster_commit_index gauge\nferromq_cluster_commit_index %" PRIu64 "\n",
	    st->commit_index);
	put(&o, "# HELP ferromq_cluster_applied_index Highest log index applied here.\n"
		"# TYPE ferromq_cluster_applied_index gauge\nferromq_cluster_applied_index %" PRIu64 "\n",
	    st->applied_index);
	put(&o, "# HELP ferromq_cluster_snapshots_total Snapshots taken by this node.\n"
		"# TYPE ferromq_cluster_snapshots_total counter\nferromq_cluster_snapshots_total %" PRIu64 "\n",
	    st->snapshots);
	put(&o, "# HELP ferromq_cluster_peer_lag Entries a peer's log is behind the leader's (leader only).\n"
		"# TYPE ferromq_cluster_peer_lag gauge\n");
	for (unsigned i = 0; i < st->n_peers && i < CLUSTER_MAX_NODES; i++)
		if (st->peers[i].has_match)
			put(&o, "ferromq_cluster_peer_lag{peer=\"%" PRIu64 "\"} %" PRIu64 "\n", st->peers[i].id,
			    st->peers[i].lag);
	return finish(&o);
}
