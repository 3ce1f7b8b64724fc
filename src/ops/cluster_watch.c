/* A dead or cut-off peer shows as a match index that stops while the
 * leader's log grows: the leader learns nothing else about it (libraft has
 * no per-peer contact time in its API). An idle cluster appends nothing,
 * so such a peer shows at the next write. */
#include "cluster_watch.h"
#include <string.h>

static struct cluster_watch_peer *find(struct cluster_watch *w, uint64_t id)
{
	for (unsigned i = 0; i < w->n; i++)
		if (w->peers[i].id == id)
			return &w->peers[i];
	return NULL;
}

double cluster_watch_update(struct cluster_watch *w, const struct cluster_status *st, uint64_t now_ms,
			    uint64_t *worst)
{
	struct cluster_watch next = { 0 };
	double longest = 0;
	*worst = 0;
	for (unsigned i = 0; i < st->n_peers && i < CLUSTER_MAX_NODES; i++) {
		const struct cluster_peer_status *p = &st->peers[i];
		if (!p->has_match)
			continue; /* not the leader (or not yet told): nothing to watch */
		const struct cluster_watch_peer *was = find(w, p->id);
		struct cluster_watch_peer *now = &next.peers[next.n++];
		now->id = p->id;
		now->match = p->match_index;
		/* In step, new, or moving: the clock starts again. */
		now->since_ms = !p->lag || !was || was->match != p->match_index || now_ms < was->since_ms
					? now_ms
					: was->since_ms;
		double s = (double)(now_ms - now->since_ms) / 1000.0;
		if (s > longest) {
			longest = s;
			*worst = p->id;
		}
	}
	*w = next;
	return longest;
}
