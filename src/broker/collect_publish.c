/* The collectors' way in: a batch of readings (or write results) from a
 * collector thread is published on a worker exactly as a client's QoS 1
 * PUBLISH is: broker__admit (topic, limits, $SYS guard, and the ACL of the
 * collector's user, compiled once a batch), retained, routing to subscribers and bridges, one store
 * commit; and the way out of a write request: publishes that reach a tag's
 * set topic are handed to the collectors with the publisher's identity. */
#include "access.h"
#include "admin.h"
#include "admit.h"
#include "broker.h"
#include "persist.h"
#include "retain.h"
#include "route.h"
#include "../base/log.h"
#include "../base/err.h"
#include <stdlib.h>
#include <string.h>

void broker_set_collect(struct broker *b, const struct collect_port *p) { b->collect = p; }

void broker_set_edge(struct broker *b, const struct edge_port *p) { b->edge = p; }

/* A batch in transit to its worker: a job run on every worker (only the
 * batch's own publishes it), freed when the last worker has run it. */
struct collect_job {
	struct broker_job job;
	struct collect_batch *bt;
};

static void batch_committed(void *ctx, uint16_t pid, uint8_t kind, int err)
{
	(void)pid;
	(void)kind;
	struct collect_batch *bt = ctx;
	bt->done(bt, err);
}

static bool same(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static void publish_batch(struct bworker *w, struct collect_batch *bt)
{
	struct broker *b = w->b;
	/* The ACL loaded now, compiled once for the messages' user (a batch has
	 * one, but nothing here relies on it). */
	struct access_ref ref = { 0 };
	const char *ref_user = NULL, *ref_cid = NULL;
	bool have_ref = false, ref_oom = false;
	for (uint32_t i = 0; i < bt->n; i++) {
		const struct collect_msg *cm = &bt->msgs[i];
		w->stats.msgs_received++;
		if (!have_ref || !same(ref_user, cm->user) || !same(ref_cid, cm->client_id)) {
			if (have_ref)
				broker__access_ref_release(&ref);
			ref_oom = broker__access_acl_now(b, cm->user, cm->client_id, &ref) != 0;
			have_ref = !ref_oom;
			ref_user = cm->user;
			ref_cid = cm->client_id;
		}
		/* A status is retained where retain is available, else sent as it is. */
		bool retain = cm->retain && b->cfg.retain_available;
		if (ref_oom) {
			bt->lost++;
			continue;
		}
		enum admit a = broker__admit(b, ref.acl, cm->topic, cm->topic_len, retain);
		if (a != ADMIT_OK) {
			w->stats.drops[DROP_NOT_AUTHORIZED]++;
			if (!bt->refused++)
				bt->refused_why = broker__admit_why(a);
			continue;
		}
		struct mqtt_props pr = { 0 };
		if (cm->correlation) {
			pr.have = MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA);
			pr.correlation_data = *cm->correlation;
		}
		struct msg *m = broker_msg_new(b, (struct mqtt_bin){ (const uint8_t *)cm->topic, cm->topic_len },
					       (struct mqtt_bin){ cm->payload, cm->payload_len },
					       cm->correlation ? &pr : NULL, 1, retain);
		if (!m) {
			bt->lost++;
			continue;
		}
		if (retain)
			broker__retain_set(w, m);
		broker__route_publish(w, m);
		msg_unref(m);
	}
	if (have_ref)
		broker__access_ref_release(&ref);
	if (bt->lost)
		log_err("collector: out of memory: %u of %u messages not published", bt->lost, bt->n);
	/* Through the store even when nothing was written, so done() keeps the
	 * order of the batches and follows every earlier commit. */
	broker__persist_commit(w, batch_committed, bt, 0, 0, true);
}

static void job_run(struct broker_job *j, struct bworker *w)
{
	struct collect_job *cj = (struct collect_job *)j;
	if (w->id == j->home)
		publish_batch(w, cj->bt);
}

static void job_done(struct broker_job *j) { free(j); }

int broker_collect_publish(struct broker *b, struct collect_batch *bt)
{
	struct collect_job *cj = calloc(1, sizeof *cj);
	if (!cj)
		return -FM_ENOMEM;
	cj->bt = bt;
	cj->job.run = job_run;
	cj->job.done = job_done;
	bt->refused = bt->lost = 0;
	bt->refused_why = NULL;
	int home = bt->worker >= 0 && (unsigned)bt->worker < b->n_workers ? bt->worker : 0;
	int rc = broker_job_start(b, &cj->job, home);
	if (rc)
		free(cj);
	return rc;
}

const char *broker_collect_admits(struct broker *b, const char *user, const char *client_id, const char *topic,
				  size_t len)
{
	struct access_ref ref = { 0 };
	if (broker__access_acl_now(b, user, client_id, &ref))
		return "out of memory";
	enum admit a = broker__admit(b, ref.acl, topic, len, false);
	broker__access_ref_release(&ref);
	return a == ADMIT_OK ? NULL : broker__admit_why(a);
}

bool broker_msg_publisher(struct bworker *w, const struct msg *m, const char **client_id, const char **username)
{
	if (!m->origin_sid)
		return false;
	/* Writes are rare: a walk over the worker's clients costs nothing on the
	 * path of every other publish. */
	for (struct client *c = w->clients; c; c = c->next) {
		if (c->state != CLIENT_CONNECTED || !c->session || c->session->sid != m->origin_sid)
			continue;
		*client_id = c->session->client_id;
		*username = c->username;
		return true;
	}
	return false;
}
