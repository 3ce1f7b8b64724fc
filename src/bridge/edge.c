/* The bridge that is the session of the broker's Sparkplug B edge node
 * (bridge_sparkplug): the NDEATH will with a bdSeq that goes up by one at
 * every CONNECT and is on disk before the CONNECT leaves (so a kill -9
 * cannot make two sessions share one), the NBIRTH and the DBIRTHs first on
 * every connection and at every rebirth, seq set as each message is sent,
 * and the spool's older messages sent as history: a DDATA queued before
 * the births carries is_historical, a DBIRTH or DDEATH queued before them
 * is superseded by them and dropped; a device with history but no DBIRTH
 * in the session (offline when it began) gets one from its last known
 * values before its first historical DDATA, and, still offline once the
 * history is sent, a DDEATH after it. NCMD and DCMD for the edge node are
 * taken here, never published locally. Everything runs on worker 0 but
 * the bdSeq file's write, which goes to libuv's thread pool. */
#include "internal.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/log.h"
#include "../sparkplug/edge.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BDSEQ_FILE "sparkplug-bdseq"

struct edge {
	struct bridge *br;
	const char *ns, *group, *node;
	char nbirth[288], ndeath[288], ncmd[288], dcmd[288]; /* dcmd: NS/GROUP/DCMD/EDGE/+ */
	char path[600];        /* the bdSeq file; empty: memory only (persistence false) */
	uint64_t bdseq;        /* of the current or last CONNECT */
	bool have_bdseq;       /* a CONNECT used bdseq: the next one takes bdseq + 1 */
	/* The bdSeq write before a CONNECT. */
	uv_work_t work;
	bool writing;
	int write_errno;
	uint64_t write_value;
	uint32_t attempt, write_attempt; /* connection attempts, to know the one a write was for */
	void (*go)(struct link *l, bool ok);
	struct buf will;       /* the NDEATH of the current CONNECT */
	/* This connection's Sparkplug session. */
	char state[288];       /* NS/STATE/HOST of sparkplug_primary_host_id; empty: none */
	uint64_t host_ts;      /* timestamp of the primary host's last STATE */
	bool host_online;
	bool births_sent;      /* this connection's births went: the spool may follow */
	uint64_t next_seq;     /* of the next message sent */
	uint64_t hist_below;   /* spool entries before it were queued before the births */
	struct born {
		char name[64];     /* a device born in this session */
		bool for_history;  /* by us, for its history: a DDEATH follows it unless it is back */
	} born[CONFIG_MAX_DEVICES];
	unsigned n_born, n_for_history;
	struct buf scratch;
};

/* ---- which topics are the edge node's ---- */

/* Parses topic as one of our edge node's; returns its type or -1. */
static int ours(const struct edge *e, const char *topic, size_t len, struct spb_topic *t)
{
	if (spb_topic_parse(e->ns, strlen(e->ns), topic, len, t) != 1 || t->type == SPB_STATE)
		return -1;
	if (t->group_len != strlen(e->group) || memcmp(t->group, e->group, t->group_len) ||
	    t->edge_len != strlen(e->node) || memcmp(t->edge, e->node, t->edge_len))
		return -1;
	return (int)t->type;
}

bool bridge__edge_takes(const struct bridge *br, const struct msg *m)
{
	struct spb_topic t;
	int type = br->edge ? ours(br->edge, msg_topic(m), m->topic_len, &t) : -1;
	/* What the devices publish; the node's own messages come from the link alone. */
	return type == SPB_DBIRTH || type == SPB_DDATA || type == SPB_DDEATH;
}

/* ---- bdSeq on disk ---- */

static int read_bdseq(const char *path, uint64_t *out)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? 0 : -1;
	unsigned v;
	char extra;
	int n = fscanf(f, "%u%c", &v, &extra);
	fclose(f);
	if (n < 1 || v > 255)
		return -1;
	*out = v;
	return 1;
}

/* Thread pool: PATH.tmp, fsync, rename, fsync of the directory. */
static void write_bdseq(uv_work_t *w)
{
	struct edge *e = w->data;
	char tmp[620], dir[600];
	snprintf(tmp, sizeof tmp, "%s.tmp", e->path);
	snprintf(dir, sizeof dir, "%s", e->path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	e->write_errno = 0;
	errno = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char text[8];
	int n = snprintf(text, sizeof text, "%u\n", (unsigned)e->write_value);
	if (fd < 0 || write(fd, text, (size_t)n) != n || fsync(fd) || close(fd) || (fd = -1, rename(tmp, e->path))) {
		e->write_errno = errno ? errno : EIO;
		if (fd >= 0)
			close(fd);
		return;
	}
	int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd))
		e->write_errno = errno ? errno : EIO;
	if (dfd >= 0)
		close(dfd);
}

struct edge *bridge__edge_new(struct bridge *br)
{
	const struct config *cfg = &br->all->b->cfg;
	struct edge *e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	e->br = br;
	e->ns = cfg->sparkplug_namespace;
	e->group = cfg->sparkplug_group_id;
	e->node = cfg->sparkplug_edge_node_id;
	e->work.data = e;
	/* The ids and sparkplug_namespace are at most 63 bytes each (config): the topics fit. */
	spb_edge_topic(e->nbirth, sizeof e->nbirth, e->ns, e->group, SPB_NBIRTH, e->node, NULL);
	spb_edge_topic(e->ndeath, sizeof e->ndeath, e->ns, e->group, SPB_NDEATH, e->node, NULL);
	spb_edge_topic(e->ncmd, sizeof e->ncmd, e->ns, e->group, SPB_NCMD, e->node, NULL);
	spb_edge_topic(e->dcmd, sizeof e->dcmd, e->ns, e->group, SPB_DCMD, e->node, "+");
	if (cfg->sparkplug_primary_host_id[0])
		snprintf(e->state, sizeof e->state, "%s/STATE/%s", e->ns, cfg->sparkplug_primary_host_id);
	if (!cfg->persistence) {
		log_warn("bridge %s: Sparkplug edge node %s/%s: persistence false, so its bdSeq starts at 0 at every "
			 "start", br->conf->name, e->group, e->node);
		return e;
	}
	snprintf(e->path, sizeof e->path, "%s/%s", cfg->persistence_location, BDSEQ_FILE);
	uint64_t last;
	int rc = read_bdseq(e->path, &last);
	if (rc < 0) {
		/* Unreadable: starting again at 0 may repeat a recent bdSeq, but
		 * refusing to start would keep the plant's data at the edge. */
		log_err("bridge %s: %s holds no bdSeq (0..255): starting again at 0", br->conf->name, e->path);
	} else if (rc > 0) {
		e->bdseq = last;
		e->have_bdseq = true;
	}
	log_info("bridge %s: Sparkplug edge node %s/%s, next bdSeq %u", br->conf->name, e->group, e->node,
		 e->have_bdseq ? (unsigned)((e->bdseq + 1) & 0xff) : 0u);
	return e;
}

void bridge__edge_free(struct edge *e)
{
	if (!e)
		return;
	buf_free(&e->will);
	buf_free(&e->scratch);
	free(e);
}

/* ---- the connection ---- */

static void after_write(uv_work_t *w, int status)
{
	struct edge *e = w->data;
	struct link *l = &e->br->link;
	e->writing = false;
	bool current = e->write_attempt == e->attempt && l->state == LINK_CONNECTING && !l->stopping;
	if (status || e->write_errno) {
		log_err("bridge %s: cannot store the Sparkplug bdSeq in %s: %s; no CONNECT without it",
			e->br->conf->name, e->path, status ? uv_strerror(status) : strerror(e->write_errno));
		if (current)
			e->go(l, false);
		return;
	}
	/* On disk: the next CONNECT's bdSeq, whether or not this attempt goes on. */
	e->bdseq = e->write_value;
	e->have_bdseq = true;
	if (current)
		e->go(l, true);
}

void bridge__edge_before_connect(struct link *l, void (*go)(struct link *l, bool ok))
{
	struct edge *e = l->br->edge;
	uint64_t next = e->have_bdseq ? (e->bdseq + 1) & 0xff : 0;
	e->attempt++;
	if (!e->path[0]) {
		e->bdseq = next;
		e->have_bdseq = true;
		go(l, true);
		return;
	}
	if (e->writing) {
		/* The write of an attempt given up still runs: this one fails, the next waits for it. */
		go(l, false);
		return;
	}
	e->write_value = next;
	e->write_attempt = e->attempt;
	e->go = go;
	e->writing = true;
	int rc = uv_queue_work(l->loop, &e->work, write_bdseq, after_write);
	if (rc) {
		e->writing = false;
		go(l, false);
	}
}

int bridge__edge_will(struct link *l, struct mqtt_connect *m)
{
	struct edge *e = l->br->edge;
	e->will.len = 0;
	if (spb_ndeath_encode(&e->will, e->bdseq, clock_wall_ms()))
		return -FM_ENOMEM;
	/* [tck-id-topics-ndeath-payload], QoS 1 and no retain [tck-id-payloads-ndeath-will-message-qos, -retain]. */
	m->will = true;
	m->will_qos = 1;
	m->will_retain = false;
	m->will_topic = (struct mqtt_bin){ (const uint8_t *)e->ndeath, (uint32_t)strlen(e->ndeath) };
	m->will_payload = (struct mqtt_bin){ e->will.p, e->will.len };
	return 0;
}

/* Births and deaths go at QoS 0, not retained [tck-id-topics-nbirth-qos, -dbirth-qos]:
 * they are made anew for every session, never spooled. */
static void publish0(struct link *l, const char *topic, const uint8_t *p, size_t len)
{
	struct mqtt_publish pub = { .qos = 0, .topic = { (const uint8_t *)topic, (uint32_t)strlen(topic) },
				    .payload = { p, (uint32_t)len } };
	if (mqtt_encode_publish(&l->out, l->version, &pub))
		log_err("bridge %s: out of memory: %s not sent", l->br->conf->name, topic);
}

static struct born *born_find(struct edge *e, const char *device, size_t len)
{
	for (unsigned i = 0; i < e->n_born; i++)
		if (strlen(e->born[i].name) == len && !memcmp(e->born[i].name, device, len))
			return &e->born[i];
	return NULL;
}

/* Notes device (len bytes) born in this session (for_history: by us). */
static void born_add(struct edge *e, const char *device, size_t len, bool for_history)
{
	struct born *b = born_find(e, device, len);
	if (!b && e->n_born < CONFIG_MAX_DEVICES && len < sizeof b->name) {
		b = &e->born[e->n_born++];
		memcpy(b->name, device, len);
		b->name[len] = 0;
		b->for_history = false;
	}
	if (!b)
		return;
	e->n_for_history += for_history && !b->for_history;
	e->n_for_history -= !for_history && b->for_history;
	b->for_history = for_history;
}

static void born_remove(struct edge *e, const char *device, size_t len)
{
	struct born *b = born_find(e, device, len);
	if (!b)
		return;
	e->n_for_history -= b->for_history;
	*b = e->born[--e->n_born];
}

static void emit_dbirth(void *ectx, const char *topic, const uint8_t *p, size_t len)
{
	struct link *l = ectx;
	struct edge *e = l->br->edge;
	const char *device = strrchr(topic, '/') + 1;
	born_add(e, device, strlen(device), false);
	e->scratch.len = 0;
	if (spb_payload_restamp(p, len, e->next_seq, false, &e->scratch)) {
		log_err("bridge %s: out of memory: %s not sent", l->br->conf->name, topic);
		return;
	}
	e->next_seq = (e->next_seq + 1) & 0xff;
	publish0(l, topic, e->scratch.p, e->scratch.len);
}

/* The NBIRTH (seq 0) and every online device's DBIRTH; what the spool
 * holds from before them is history from now on. */
static void send_births(struct link *l)
{
	struct edge *e = l->br->edge;
	struct spool *sp = &l->br->spool;
	pthread_mutex_lock(&sp->lock);
	e->hist_below = sp->tail;
	pthread_mutex_unlock(&sp->lock);
	e->scratch.len = 0;
	if (spb_nbirth_encode(&e->scratch, e->bdseq, clock_wall_ms())) {
		log_err("bridge %s: out of memory: no NBIRTH sent", l->br->conf->name);
		return;
	}
	publish0(l, e->nbirth, e->scratch.p, e->scratch.len);
	e->births_sent = true;
	e->next_seq = 1;
	e->n_born = e->n_for_history = 0;
	const struct edge_port *port = l->br->all->b->edge;
	if (port)
		port->births(port->ctx, emit_dbirth, l);
	log_info("bridge %s: Sparkplug births sent (bdSeq %u)", l->br->conf->name, (unsigned)e->bdseq);
}

void bridge__edge_online(struct link *l)
{
	struct edge *e = l->br->edge;
	/* Commands first, so none sent in answer to the births is missed
	 * [tck-id-operational-behavior-edge-node-birth-sequence...]. */
	struct mqtt_sub_entry s[3] = {
		{ { (const uint8_t *)e->ncmd, (uint32_t)strlen(e->ncmd) }, 1 },
		{ { (const uint8_t *)e->dcmd, (uint32_t)strlen(e->dcmd) }, 1 },
		{ { (const uint8_t *)e->state, (uint32_t)strlen(e->state) }, 1 },
	};
	if (mqtt_encode_subscribe(&l->out, l->version, MQTT_SUBSCRIBE, 2, NULL, s, e->state[0] ? 3 : 2))
		log_err("bridge %s: out of memory: NCMD and DCMD not subscribed", l->br->conf->name);
	e->births_sent = false;
	e->host_online = false;
	/* With a primary host, the births wait for its STATE (retained: it comes
	 * at once when the host is there) [tck-id-operational-behavior-edge-node-
	 * birth-sequence-wait...]. */
	if (!e->state[0])
		send_births(l);
	else
		log_info("bridge %s: waiting for the STATE of primary host %s", l->br->conf->name,
			 e->state + strlen(e->ns) + 7);
}

bool bridge__edge_ready(const struct link *l) { return l->br->edge->births_sent; }

/* The primary host's STATE: online sends the births (once a connection),
 * a newer offline ends the session. Returns 1, or 2 when the link is to
 * close. */
static int on_state(struct link *l, const struct mqtt_publish *p)
{
	struct edge *e = l->br->edge;
	struct spb_state st;
	if (spb_state_parse((const char *)p->payload.p, p->payload.len, &st)) {
		log_notice("bridge %s: STATE of the primary host is not {\"online\",\"timestamp\"}: ignored",
			   l->br->conf->name);
		return 1;
	}
	if (st.timestamp < e->host_ts) {
		log_info("bridge %s: an older STATE of the primary host: ignored", l->br->conf->name);
		return 1;
	}
	e->host_ts = st.timestamp;
	e->host_online = st.online;
	if (st.online && !e->births_sent) {
		log_notice("bridge %s: primary host online: sending the births", l->br->conf->name);
		send_births(l);
		link_pump(l);
		return 1;
	}
	if (!st.online && e->births_sent) {
		log_notice("bridge %s: primary host offline: ending the session (the remote publishes the NDEATH)",
			   l->br->conf->name);
		return 2;
	}
	return 1;
}

/* A DBIRTH from device t's last known values, so the host takes the
 * history that follows [tck-id-operational-behavior-data-publish-...]. */
static void birth_for_history(struct link *l, const struct spb_topic *t)
{
	struct edge *e = l->br->edge;
	const struct edge_port *port = l->br->all->b->edge;
	char topic[288], device[64];
	bool online;
	if (!port || t->device_len >= sizeof device)
		return;
	memcpy(device, t->device, t->device_len);
	device[t->device_len] = 0;
	struct buf raw = { 0 };
	int rc = port->birth_of(port->ctx, t->device, t->device_len, &raw, &online);
	if (!rc && spb_edge_topic(topic, sizeof topic, e->ns, e->group, SPB_DBIRTH, e->node, device) > 0) {
		e->scratch.len = 0;
		rc = spb_payload_restamp(raw.p, raw.len, e->next_seq, false, &e->scratch);
		if (!rc) {
			e->next_seq = (e->next_seq + 1) & 0xff;
			publish0(l, topic, e->scratch.p, e->scratch.len);
			born_add(e, t->device, t->device_len, true);
			log_info("bridge %s: DBIRTH of device %s (%s) for its history", l->br->conf->name, device,
				 online ? "online" : "offline");
		}
	}
	if (rc && rc != -FM_EINVAL)
		log_warn("bridge %s: no DBIRTH for device %s before its history: %s", l->br->conf->name, device,
			 rc == -FM_ENOENT ? "it is no longer configured" : fm_strerror(-rc));
	if (rc) /* tried: its other messages in this session go as they are, without asking again */
		born_add(e, t->device, t->device_len, false);
	buf_free(&raw);
}

bool bridge__edge_history_sent(const struct edge *e, uint64_t next_send) { return next_send >= e->hist_below; }

void bridge__edge_pumped(struct link *l, bool history_sent)
{
	struct edge *e = l->br->edge;
	const struct edge_port *port = l->br->all->b->edge;
	if (!history_sent || !e->n_for_history || !port)
		return;
	char topic[288];
	for (unsigned i = 0; i < e->n_born;) {
		struct born *b = &e->born[i];
		bool online = false;
		if (!b->for_history || port->birth_of(port->ctx, b->name, strlen(b->name), NULL, &online) || online) {
			/* Back meanwhile: its own DBIRTH follows in the spool. */
			e->n_for_history -= b->for_history;
			b->for_history = false;
			i++;
			continue;
		}
		e->scratch.len = 0;
		if (spb_edge_topic(topic, sizeof topic, e->ns, e->group, SPB_DDEATH, e->node, b->name) > 0 &&
		    !spb_payload_encode(&e->scratch, clock_wall_ms(), true, e->next_seq, NULL, 0)) {
			e->next_seq = (e->next_seq + 1) & 0xff;
			publish0(l, topic, e->scratch.p, e->scratch.len);
		}
		born_remove(e, b->name, strlen(b->name)); /* moves the last one here: i stays */
	}
}

int bridge__edge_payload(struct link *l, uint64_t spool_seq, const struct msg *m, struct mqtt_bin *payload)
{
	struct edge *e = l->br->edge;
	struct spb_topic t;
	int type = ours(e, msg_topic(m), m->topic_len, &t);
	if (type < 0)
		return 0;
	bool historical = spool_seq < e->hist_below;
	if (historical && type != SPB_DDATA) {
		log_debug("bridge %s: spooled %s %.*s superseded by this session's births", l->br->conf->name,
			  spb_type_name((enum spb_type)type), (int)m->topic_len, msg_topic(m));
		return 1;
	}
	if (type == SPB_DBIRTH)
		born_add(e, t.device, t.device_len, false);
	else if (type == SPB_DDEATH)
		born_remove(e, t.device, t.device_len);
	else if (historical && !born_find(e, t.device, t.device_len))
		birth_for_history(l, &t);
	e->scratch.len = 0;
	int rc = spb_payload_restamp(msg_payload(m), m->payload_len, e->next_seq, historical, &e->scratch);
	if (rc)
		return rc;
	e->next_seq = (e->next_seq + 1) & 0xff;
	*payload = (struct mqtt_bin){ e->scratch.p, e->scratch.len };
	return 0;
}

int bridge__edge_inbound(struct link *l, const struct mqtt_publish *p)
{
	struct edge *e = l->br->edge;
	struct spb_topic t;
	if (e->state[0] && p->topic.len == strlen(e->state) && !memcmp(p->topic.p, e->state, p->topic.len))
		return on_state(l, p);
	int type = ours(e, (const char *)p->topic.p, p->topic.len, &t);
	if (type == SPB_NCMD) {
		if (!e->births_sent) {
			log_info("bridge %s: NCMD before the births (the primary host is not online): ignored",
				 l->br->conf->name);
		} else if (spb_ncmd_is_rebirth(p->payload.p, p->payload.len)) {
			log_notice("bridge %s: NCMD Node Control/Rebirth: sending the births again", l->br->conf->name);
			send_births(l);
		} else {
			log_info("bridge %s: NCMD without a rebirth request: nothing to do", l->br->conf->name);
		}
		return 1;
	}
	if (type == SPB_DCMD) {
		const struct edge_port *port = l->br->all->b->edge;
		if (port)
			port->command(port->ctx, t.device, t.device_len, p->payload.p, p->payload.len);
		else
			log_notice("bridge %s: DCMD for %.*s: the edge node has no Sparkplug device", l->br->conf->name,
				   (int)t.device_len, t.device);
		return 1;
	}
	return 0;
}

void bridge__edge_goodbye(struct link *l)
{
	struct edge *e = l->br->edge;
	/* v3 has no DISCONNECT with will: the NDEATH goes itself. */
	if (l->version != MQTT_V5)
		publish0(l, e->ndeath, e->will.p, e->will.len);
}
