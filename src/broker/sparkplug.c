/* The Sparkplug aware broker (sparkplug_aware, issue 17): every admitted
 * message under the Sparkplug namespace passes here on its way to the
 * subscribers (broker__route_publish), whatever brought it (a client, a will, a
 * bridge, a collector). Births are copied, retained and stored, under
 * $sparkplug/certificates/; an NDEATH may get the routing time as its
 * timestamp; the fleet view (src/sparkplug/fleet.c) follows every node.
 * The fleet is shared by the workers: one mutex, held only to update or
 * copy it (no I/O, no allocation but the table's own growth). */
#include "sparkplug.h"
#include "admit.h"
#include "broker.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../auth/auth.h"
#include <stdlib.h>
#include "../base/err.h"
#include "../sparkplug/fleet.h"
#include <string.h>

struct broker_spb {
	pthread_mutex_t lock;
	struct spb_fleet *fleet;    /* under lock */
	uint64_t full_logged_ms;    /* under lock: wall ms of the last "full" line */
	uint64_t full_logged_count; /* under lock: untracked count at that line */
	size_t ns_len;
};

int broker__spb_init(struct broker *b)
{
	if (!b->cfg.sparkplug_aware)
		return 0;
	struct broker_spb *s = calloc(1, sizeof *s);
	if (!s || !(s->fleet = spb_fleet_new(b->cfg.sparkplug_fleet_max))) {
		free(s);
		return -FM_ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->ns_len = strlen(b->cfg.sparkplug_namespace);
	b->spb = s;
	return 0;
}

void broker__spb_free(struct broker *b)
{
	struct broker_spb *s = b->spb;
	if (!s)
		return;
	spb_fleet_free(s->fleet);
	pthread_mutex_destroy(&s->lock);
	free(s);
	b->spb = NULL;
}

/* The retained copy of birth m: "$sparkplug/certificates/" + its topic,
 * QoS 1 (a host application's persistent session gets it queued), no
 * expiry: it stays until the next birth replaces it. NULL with *too_long
 * when that topic is beyond max_topic_length or max_topic_levels (nobody
 * could subscribe to it), NULL when out of memory. */
static struct msg *certificate(const struct broker *b, const struct msg *m, bool *too_long)
{
	size_t len = SPB_CERT_PREFIX_LEN + m->topic_len;
	*too_long = len > UINT16_MAX;
	if (*too_long)
		return NULL;
	char *topic = malloc(len);
	if (!topic)
		return NULL;
	memcpy(topic, SPB_CERT_PREFIX, SPB_CERT_PREFIX_LEN);
	memcpy(topic + SPB_CERT_PREFIX_LEN, msg_topic(m), m->topic_len);
	if (!broker__admit_topic_limits(&b->cfg, topic, len)) {
		*too_long = true;
		free(topic);
		return NULL;
	}
	struct msg *c = msg_new(topic, (uint16_t)len, msg_props(m), m->props_len, msg_payload(m), m->payload_len,
				1, true);
	free(topic);
	return c;
}

/* m with its payload's timestamp set to now [tck-id-conformance-mqtt-aware-
 * ndeath-timestamp]; NULL when it cannot be read or out of memory (m goes
 * as it is). */
static struct msg *ndeath_now(const struct msg *m)
{
	size_t cap = SPB_SET_TIMESTAMP_MAX((size_t)m->payload_len);
	uint8_t *p = malloc(cap);
	if (!p)
		return NULL;
	struct msg *out = NULL;
	long n = spb_payload_set_timestamp(msg_payload(m), m->payload_len, clock_wall_ms(), p, cap);
	if (n >= 0 && (uint64_t)n <= UINT32_MAX) {
		out = msg_new(msg_topic(m), m->topic_len, msg_props(m), m->props_len, p, (uint32_t)n, m->qos, m->retain);
		if (out) {
			out->expiry_at = m->expiry_at;
			out->origin_sid = m->origin_sid;
		}
	}
	free(p);
	return out;
}

/* Logs what the fleet saw, outside its lock. */
static void log_event(enum spb_fleet_event ev, const struct spb_topic *t, const struct spb_payload_info *info)
{
	switch (ev) {
	case SPB_FLEET_NODE_BIRTH:
		log_info("sparkplug: edge node %.*s/%.*s born (bdSeq %llu, %u metrics)", (int)t->group_len, t->group,
			 (int)t->edge_len, t->edge, (unsigned long long)info->bdseq, info->metrics);
		break;
	case SPB_FLEET_NODE_DEATH:
		log_notice("sparkplug: edge node %.*s/%.*s died (NDEATH, bdSeq %llu)", (int)t->group_len, t->group,
			   (int)t->edge_len, t->edge, (unsigned long long)info->bdseq);
		break;
	case SPB_FLEET_STALE_DEATH:
		log_info("sparkplug: edge node %.*s/%.*s: NDEATH of bdSeq %llu ignored: not its current session's",
			 (int)t->group_len, t->group, (int)t->edge_len, t->edge, (unsigned long long)info->bdseq);
		break;
	case SPB_FLEET_SEQ_GAP:
		log_debug("sparkplug: edge node %.*s/%.*s: seq %llu is not the next", (int)t->group_len, t->group,
			  (int)t->edge_len, t->edge, (unsigned long long)info->seq);
		break;
	default:
		break;
	}
}

struct msg *broker__spb_route(struct bworker *w, struct msg *m, struct msg **cert)
{
	struct broker *b = w->b;
	struct broker_spb *s = b->spb;
	*cert = NULL;
	struct spb_topic t;
	int rc = spb_topic_parse(b->cfg.sparkplug_namespace, s->ns_len, msg_topic(m), m->topic_len, &t);
	if (rc == 0)
		return NULL;
	uint64_t now = clock_wall_ms();
	if (rc < 0) {
		pthread_mutex_lock(&s->lock);
		spb_fleet_malformed_topic(s->fleet);
		pthread_mutex_unlock(&s->lock);
		log_debug("sparkplug: %.*s is under the namespace but not a Sparkplug topic", (int)m->topic_len,
			  msg_topic(m));
		return NULL;
	}
	pthread_mutex_lock(&s->lock);
	enum spb_fleet_event ev = spb_fleet_observe(s->fleet, &t, msg_payload(m), m->payload_len, now);
	bool log_full = false;
	struct spb_fleet_totals tot = { 0 };
	if (ev == SPB_FLEET_FULL && now - s->full_logged_ms >= 60000) {
		spb_fleet_totals(s->fleet, &tot);
		log_full = true;
		s->full_logged_ms = now;
	}
	uint64_t since = s->full_logged_count;
	if (log_full)
		s->full_logged_count = tot.untracked;
	pthread_mutex_unlock(&s->lock);
	if (log_full)
		log_warn("sparkplug: the fleet view is full (sparkplug_fleet_max %u entries): %llu messages of "
			 "nodes, devices or hosts not tracked since the last report",
			 b->cfg.sparkplug_fleet_max, (unsigned long long)(tot.untracked - since));
	struct spb_payload_info info = { 0 };
	if (ev == SPB_FLEET_MALFORMED) {
		log_debug("sparkplug: %.*s: the payload is not a Sparkplug payload", (int)m->topic_len, msg_topic(m));
		return NULL;
	}
	if (ev != SPB_FLEET_NOTHING && t.type != SPB_STATE) {
		spb_payload_scan(msg_payload(m), m->payload_len, &info);
		log_event(ev, &t, &info);
	}
	/* [tck-id-conformance-mqtt-aware-store]: the latest birth, as it passes. */
	if ((t.type == SPB_NBIRTH || t.type == SPB_DBIRTH) && m->payload_len) {
		bool too_long;
		*cert = certificate(b, m, &too_long);
		if (!*cert && too_long)
			log_notice("sparkplug: the birth on %.*s is not copied: $sparkplug/certificates/ + its topic is "
				   "beyond max_topic_length or max_topic_levels", (int)m->topic_len, msg_topic(m));
		else if (!*cert)
			log_err("sparkplug: out of memory copying the birth on %.*s", (int)m->topic_len, msg_topic(m));
	}
	/* A QoS 2 message held for its commit is released by its own identity. */
	if (t.type == SPB_NDEATH && b->cfg.sparkplug_ndeath_timestamp && !atomic_load(&m->held))
		return ndeath_now(m);
	return NULL;
}

void broker_spb_totals(struct broker *b, struct spb_fleet_totals *out)
{
	memset(out, 0, sizeof *out);
	if (!b->spb)
		return;
	pthread_mutex_lock(&b->spb->lock);
	spb_fleet_totals(b->spb->fleet, out);
	pthread_mutex_unlock(&b->spb->lock);
}

int broker_spb_list(struct broker *b, struct spb_fleet_entry **out, uint32_t *n,
		    struct spb_fleet_totals *tot)
{
	*out = NULL;
	*n = 0;
	memset(tot, 0, sizeof *tot);
	if (!b->spb)
		return 0;
	pthread_mutex_lock(&b->spb->lock);
	int rc = spb_fleet_list(b->spb->fleet, out, n);
	spb_fleet_totals(b->spb->fleet, tot);
	pthread_mutex_unlock(&b->spb->lock);
	return rc;
}

bool broker__spb_acl_can_read(const struct auth_acl_client *acl, const char *topic, size_t len)
{
	const char *orig;
	size_t olen;
	/* A copy under $sparkplug/certificates/ is readable exactly where its birth is. */
	if (len && topic[0] == '$' && spb_certificate_original(topic, len, &orig, &olen))
		return auth_acl_client_can_read(acl, orig, olen);
	return auth_acl_client_can_read(acl, topic, len);
}
