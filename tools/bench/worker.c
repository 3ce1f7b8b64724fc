/* One worker thread: an epoll loop over its slice of the connections.
 *
 * Reads go into a large per-thread scratch buffer and are decoded with
 * mqtt_decode in a loop; only a trailing partial packet is copied into the
 * connection's own buffer. Everything a connection has to send during one
 * loop turn is appended to its write buffer and written once at the end of
 * the turn.
 *
 * fill and drain use the same loop: a fill subscriber makes its session
 * (CONNECT, SUBSCRIBE, DISCONNECT) and is done before the publishers start;
 * a drain subscriber resumes that session and only receives. sessions does
 * both in one run: its creators are fill subscribers with five filters, its
 * readers resume the first of those sessions. plant's publishers are
 * gateways with a will and a retained status, its subscribers historians;
 * historian 0 may leave and come back on the main thread's word (hist_cmd).
 */
#include "bench.h"
#include "base/clock.h"
#include "base/err.h"
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define SCRATCH_SIZE (1u << 20)  /* one read of up to 1 MiB */
#define READS_PER_TURN 4         /* then let the other connections run */
#define WBUF_HIGH (256u << 10)   /* stop producing above this backlog */
#define BATCH_MAX 256            /* publishes per publisher per turn */
#define MAX_PACKET (1u << 24)

enum conn_role { ROLE_SUB, ROLE_PUB };
enum conn_state {
	CS_NEW, CS_TCP, CS_CONNACK, CS_SUBACK, CS_READY, CS_CLOSED,
	CS_CLOSING, /* sent DISCONNECT, waiting for the broker to close (fill) */
};
/* Steps of a fill subscriber. v3 has no way to start clean and keep the
 * session afterwards, so it first connects with clean session 1 to discard
 * whatever an earlier fill left, then again with 0. */
enum fill_step { FILL_PURGE, FILL_SUBSCRIBE, FILL_DONE };
enum slot_state { SLOT_FREE, SLOT_ACK, SLOT_COMP };
enum hist_away { AWAY_NO, AWAY_LEAVING, AWAY_BACKING };

struct pubconn {
	uint64_t next_seq;
	uint64_t win_base;      /* cached min of the subscribers' marks */
	double next_due;        /* rate pacing, us (offset until started) */
	bool paced;             /* next_due is absolute */
	uint32_t cap;           /* packet ids 1..cap */
	uint16_t *free_ids;
	uint32_t nfree;
	uint64_t *slot_seq;     /* [cap + 1] */
	uint64_t *slot_t;       /* [cap + 1] send time, us */
	uint64_t seq_base;      /* fill: number of this publisher's first message */
	uint64_t quota;         /* fill, plant --messages: messages to send; 0 = no limit */
	uint8_t *slot_state;    /* [cap + 1] */
	uint8_t *tpl;           /* payload template (plant: rebuilt per message) */
	char topic[64];
	uint16_t topic_len;
	uint16_t status_pid;    /* plant: the retained "online" in flight, 0 = none */
};

struct conn {
	struct worker *w;
	int fd;
	uint8_t role, state;
	uint8_t fill_step;      /* fill subscribers: enum fill_step */
	bool dirty, want_out;
	bool resume;            /* next CONNECT resumes a stored session: no SUBSCRIBE */
	uint8_t away;           /* plant historian 0: enum hist_away */
	uint32_t idx;           /* publisher or subscriber index */
	uint16_t keepalive;
	uint16_t recv_max;      /* the broker's Receive Maximum (v5) */
	uint64_t last_tx;
	struct buf rb, wb;
	struct pubconn *pub;    /* publishers only */
	uint8_t *qos2_held;     /* subscribers: 65536-bit set of ids awaiting PUBREL */
};

struct worker {
	struct bench *b;
	int id;
	pthread_t th;
	int epfd, efd, tfd;
	_Atomic bool want_wake;
	struct conn *conns;
	uint32_t nconns, nsubs;  /* subscribers first, then publishers */
	uint32_t ncreate;        /* sessions: the first ncreate subscribers make sessions,
				    the rest up to nsubs are readers; else nsubs */
	uint32_t next_start;     /* next conn index to connect */
	uint32_t pending;        /* handshakes in progress */
	uint32_t pending_max;
	struct conn **dirty;
	uint32_t ndirty;
	uint8_t *scratch;
	uint64_t now;
	uint64_t last_ping_scan;
	bool marks_moved;        /* this turn advanced a subscriber mark */
	bool pubs_blocked;       /* a publisher waits on the receipt window */
	bool stopped;
	/* results */
	uint64_t published_win, delivered_win, delivered_total;
	uint64_t last_event;
	struct hist lat, ack;
};

static void conn_close(struct conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(c->w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	if (c->state != CS_READY && c->state != CS_CLOSED && c->state != CS_NEW && c->w->pending)
		c->w->pending--;
	c->state = CS_CLOSED;
	c->wb.len = 0;
	c->rb.len = 0;
}

static const char *conn_name(const struct conn *c, char *tmp, size_t n)
{
	snprintf(tmp, n, "%s %u", c->role == ROLE_PUB ? "publisher" : "subscriber", c->idx);
	return tmp;
}

/* A connection failed: record why, close it. Fatal for the run except in
 * idle mode, where the count of established connections is the result. */
static void conn_fail(struct conn *c, const char *what)
{
	struct bench *b = c->w->b;
	char tmp[48];
	bool was_ready = c->state == CS_READY;
	if (c->state == CS_CLOSED)
		return;
	conn_close(c);
	atomic_fetch_add(&b->failed, 1);
	if (was_ready && c->role == ROLE_SUB)
		atomic_fetch_sub(&b->subs_ready, 1);
	if (atomic_load(&b->phase) == PH_STOP)
		return; /* tearing down: nothing left to report */
	bench_error(b, b->o.mode != BENCH_IDLE, "%s: %s", conn_name(c, tmp, sizeof(tmp)), what);
}

static void conn_fail_errno(struct conn *c, const char *op, int err)
{
	char msg[200];
	snprintf(msg, sizeof(msg), "%s %s: %s", op, c->w->b->addr_text, strerror(err));
	conn_fail(c, msg);
}

static void conn_mark_dirty(struct conn *c)
{
	if (!c->dirty) {
		c->dirty = true;
		c->w->dirty[c->w->ndirty++] = c;
	}
}

static void conn_set_out(struct conn *c, bool on)
{
	if (c->want_out == on || c->fd < 0)
		return;
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
	epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
	c->want_out = on;
}

static void conn_flush(struct conn *c)
{
	size_t off = 0;
	while (off < c->wb.len && c->fd >= 0) {
		ssize_t n = send(c->fd, c->wb.p + off, c->wb.len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		conn_fail_errno(c, "write to", errno);
		return;
	}
	if (c->fd < 0)
		return;
	if (off) {
		buf_consume(&c->wb, off);
		c->last_tx = c->w->now;
	}
	conn_set_out(c, c->wb.len > 0);
}

static void flush_dirty(struct worker *w)
{
	for (uint32_t i = 0; i < w->ndirty; i++) {
		struct conn *c = w->dirty[i];
		c->dirty = false;
		if (c->fd >= 0 && !c->want_out)
			conn_flush(c);
	}
	w->ndirty = 0;
}

static int conn_ack(struct conn *c, uint8_t type, uint16_t pid)
{
	struct mqtt_ack a = {.pid = pid};
	if (mqtt_encode_ack(&c->wb, c->w->b->o.protocol, type, &a) < 0) {
		conn_fail(c, "out of memory");
		return -1;
	}
	conn_mark_dirty(c);
	return 0;
}

/* Appends DISCONNECT (v5: reason Success). Returns 0 or -FM_ENOMEM. */
static int conn_put_disconnect(struct conn *c)
{
	struct mqtt_reason r = {.rc = MQTT_RC_SUCCESS};
	uint8_t ver = c->w->b->o.protocol;
	return ver == MQTT_V5 ? mqtt_encode_reason(&c->wb, MQTT_V5, MQTT_DISCONNECT, &r)
			      : mqtt_encode_simple(&c->wb, MQTT_DISCONNECT);
}

/* Fill subscriber: leave the session with the broker. It is done once the
 * broker closes the connection (conn_closing_done), which it does only
 * after it has processed the DISCONNECT. Until then it counts as a pending
 * handshake, so --batch bounds the open descriptors. */
static void conn_leave(struct conn *c)
{
	if (conn_put_disconnect(c) < 0) {
		conn_fail(c, "out of memory");
		return;
	}
	if (c->state == CS_READY)
		c->w->pending++;
	c->state = CS_CLOSING;
	conn_mark_dirty(c);
}

static void conn_start(struct conn *c);

/* The broker closed a connection in CS_CLOSING: the purge connection is
 * followed by the real one; after the subscribing one the session is ready. */
static void conn_closing_done(struct conn *c)
{
	conn_close(c);
	if (c->fill_step == FILL_PURGE) {
		c->fill_step = FILL_SUBSCRIBE;
		conn_start(c);
		return;
	}
	if (c->away == AWAY_LEAVING) {
		/* A historian on its outage: the session stays with the broker. */
		atomic_store(&c->w->b->hist_state, HIST_OFFLINE);
		return;
	}
	c->fill_step = FILL_DONE;
	atomic_fetch_add(&c->w->b->subs_ready, 1);
}

static void conn_start(struct conn *c)
{
	struct bench *b = c->w->b;
	c->fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		c->state = CS_TCP; /* so conn_fail counts it */
		c->w->pending++;
		conn_fail_errno(c, "socket for", errno);
		return;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = CS_TCP;
	c->w->pending++;
	if (connect(c->fd, (struct sockaddr *)&b->addr, b->addrlen) < 0 && errno != EINPROGRESS) {
		conn_fail_errno(c, "connect to", errno);
		return;
	}
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
	if (epoll_ctl(c->w->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		conn_fail_errno(c, "epoll for", errno);
		return;
	}
	c->want_out = true;
}

/* TCP is up: send CONNECT. */
static void conn_connected(struct conn *c)
{
	struct bench *b = c->w->b;
	int err = 0;
	socklen_t len = sizeof(err);
	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err) {
		conn_fail_errno(c, "connect to", err);
		return;
	}
	char id[64], status[64];
	int n;
	enum bench_mode mode = b->o.mode;
	bool plant = mode == BENCH_PLANT, sub = c->role == ROLE_SUB;
	bool fixed = sub && (mode == BENCH_FILL || mode == BENCH_DRAIN || mode == BENCH_SESSIONS);
	if (sub && mode == BENCH_SESSIONS)
		n = snprintf(id, sizeof(id), BENCH_SESS_ID "%u", c->idx);
	else if (fixed)
		n = snprintf(id, sizeof(id), BENCH_FILL_ID "%u", c->idx);
	else if (plant && !sub)
		n = snprintf(id, sizeof(id), "gw-%u-%u", c->idx / PLANT_DEVICES, c->idx % PLANT_DEVICES);
	else if (plant)
		n = snprintf(id, sizeof(id), "fmb-hist-%u", c->idx);
	else
		n = snprintf(id, sizeof(id), "fmb-%d-%c%u", (int)getpid(), c->role == ROLE_PUB ? 'p' : 's', c->idx);
	bool keep = ((b->o.persistent || fixed) && sub) || plant;
	/* A fill (and a sessions creator, a plant client) starts from an empty
	 * session: v5 says so with clean start plus an expiry, v3 with the
	 * purge connection first (plant's gateways skip it: they subscribe to
	 * nothing, so no earlier run can have left them anything). */
	bool fresh = !c->resume && (plant || (sub && (mode == BENCH_FILL || mode == BENCH_SESSIONS)));
	bool clean = !keep || (fresh && (b->o.protocol == MQTT_V5 || c->fill_step == FILL_PURGE));
	struct mqtt_connect cn = {
		.protocol_name = {(const uint8_t *)"MQTT", 4},
		.version = b->o.protocol,
		.clean_start = clean,
		.keepalive = b->o.keepalive,
		.client_id = {(const uint8_t *)id, (uint32_t)n},
	};
	if (keep && b->o.protocol == MQTT_V5 && c->fill_step != FILL_PURGE) {
		cn.props.have |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
		cn.props.session_expiry = plant || mode == BENCH_SESSIONS ? BENCH_LONG_EXPIRY : 300;
	}
	if (plant && !sub) {
		/* The gateway's status: "online" once connected, "offline" by
		 * the broker if the connection dies. */
		int sn = snprintf(status, sizeof(status), "plants/%u/devices/%u/status", c->idx / PLANT_DEVICES,
				  c->idx % PLANT_DEVICES);
		cn.will = true;
		cn.will_qos = 1;
		cn.will_retain = true;
		cn.will_topic = (struct mqtt_bin){(const uint8_t *)status, (uint32_t)sn};
		cn.will_payload = (struct mqtt_bin){(const uint8_t *)"offline", 7};
		if (b->o.sparkplug) {
			/* An edge node's will is its NDEATH: QoS 1, not retained. */
			sn = spb_plant_topic(status, sizeof(status), b->o.sparkplug, c->idx, "NDEATH");
			cn.will_retain = false;
			cn.will_topic = (struct mqtt_bin){(const uint8_t *)status, (uint32_t)sn};
			cn.will_payload = (struct mqtt_bin){spb_plant_ndeath, sizeof spb_plant_ndeath};
		}
	}
	if (mqtt_encode_connect(&c->wb, &cn) < 0) {
		conn_fail(c, "out of memory");
		return;
	}
	c->state = CS_CONNACK;
	c->last_tx = c->w->now;
	conn_mark_dirty(c);
}

static int pub_setup(struct conn *c)
{
	struct bench *b = c->w->b;
	struct pubconn *p = c->pub;
	uint32_t cap = b->o.inflight;
	if (c->recv_max && cap > c->recv_max)
		cap = c->recv_max;
	if (cap > 65534)
		cap = 65534; /* plant's status takes cap + 1 */
	if (b->o.mode == BENCH_PLANT && c->recv_max && cap >= c->recv_max)
		cap = c->recv_max > 1 ? c->recv_max - 1u : 1u; /* the status counts against it too */
	p->cap = cap;
	if (b->o.qos) {
		p->free_ids = malloc(sizeof(*p->free_ids) * cap);
		p->slot_seq = calloc(cap + 1, sizeof(*p->slot_seq));
		p->slot_state = calloc(cap + 1, 1);
		p->slot_t = calloc(cap + 1, sizeof(*p->slot_t));
		if (!p->free_ids || !p->slot_seq || !p->slot_state || !p->slot_t)
			return -FM_ENOMEM;
		for (uint32_t i = 0; i < cap; i++)
			p->free_ids[i] = (uint16_t)(cap - i); /* pops 1 first */
		p->nfree = cap;
	}
	return 0;
}

/* plant gateway: publish the retained "online" (QoS 1, packet id cap + 1,
 * outside the numbered messages). Returns 0 or -FM_ENOMEM. */
static int gw_status(struct conn *c)
{
	struct pubconn *p = c->pub;
	char topic[64];
	int n = snprintf(topic, sizeof(topic), "plants/%u/devices/%u/status", c->idx / PLANT_DEVICES,
			 c->idx % PLANT_DEVICES);
	struct mqtt_publish m = {
		.qos = 1,
		.retain = true,
		.topic = {(const uint8_t *)topic, (uint32_t)n},
		.pid = (uint16_t)(p->cap + 1),
		.payload = {(const uint8_t *)"online", 6},
	};
	uint8_t birth[4096];
	const char *ns = c->w->b->o.sparkplug;
	if (ns) {
		/* An edge node's NBIRTH instead (QoS 1 here, so its PUBACK marks it sent). */
		int bl = spb_plant_nbirth(birth, sizeof birth, c->w->b->o.tags);
		if (bl < 0)
			return -FM_ENOMEM;
		n = spb_plant_topic(topic, sizeof(topic), ns, c->idx, "NBIRTH");
		m.retain = false;
		m.topic = (struct mqtt_bin){(const uint8_t *)topic, (uint32_t)n};
		m.payload = (struct mqtt_bin){birth, (uint32_t)bl};
	}
	p->status_pid = m.pid;
	if (mqtt_encode_publish(&c->wb, c->w->b->o.protocol, &m) < 0)
		return -FM_ENOMEM;
	conn_mark_dirty(c);
	return 0;
}

/* The filters subscriber c subscribes to, written into f (and pointed to
 * by e). Returns how many. */
static uint32_t sub_filters(const struct conn *c, char f[][96], struct mqtt_sub_entry *e)
{
	const struct bench_opts *o = &c->w->b->o;
	uint32_t n = 1;
	switch (o->mode) {
	case BENCH_IDLE:
		snprintf(f[0], 96, "idle/%u", c->idx);
		break;
	case BENCH_PLANT:
		if (o->sparkplug && o->share)
			snprintf(f[0], 96, "$share/%s/%s/+/NDATA/+", o->share, o->sparkplug);
		else if (o->sparkplug)
			snprintf(f[0], 96, "%s/+/NDATA/+", o->sparkplug);
		else if (o->share)
			snprintf(f[0], 96, "$share/%s/plants/+/devices/+/#", o->share);
		else
			snprintf(f[0], 96, "plants/+/devices/+/#");
		break;
	case BENCH_SESSIONS:
		snprintf(f[0], 96, "s/%u/a/#", c->idx);
		snprintf(f[1], 96, "s/%u/b", c->idx);
		snprintf(f[2], 96, "s/%u/c/+", c->idx);
		snprintf(f[3], 96, "fleet/%u/#", c->idx % 100);
		snprintf(f[4], 96, "cmd/%u", c->idx);
		n = BENCH_SESS_FILTERS;
		break;
	default:
		snprintf(f[0], 96, "%s", o->filter);
	}
	for (uint32_t i = 0; i < n; i++)
		e[i] = (struct mqtt_sub_entry){{(const uint8_t *)f[i], (uint32_t)strlen(f[i])}, o->qos};
	return n;
}

static void on_connack(struct conn *c, const struct mqtt_connack *ca)
{
	struct bench *b = c->w->b;
	if (c->state != CS_CONNACK) {
		conn_fail(c, "unexpected CONNACK");
		return;
	}
	if (ca->rc != 0) {
		char msg[128];
		if (b->o.protocol == MQTT_V5)
			snprintf(msg, sizeof(msg), "CONNACK refused: 0x%02x %s", ca->rc, mqtt_rc_name(ca->rc));
		else
			snprintf(msg, sizeof(msg), "CONNACK refused: return code %u", ca->rc);
		conn_fail(c, msg);
		return;
	}
	if (ca->props.have & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM))
		c->recv_max = ca->props.receive_maximum;
	if (ca->props.have & MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE))
		c->keepalive = ca->props.server_keep_alive;
	if (c->role == ROLE_PUB) {
		if (pub_setup(c) < 0 || (b->o.mode == BENCH_PLANT && gw_status(c) < 0)) {
			conn_fail(c, "out of memory");
			return;
		}
		c->state = CS_READY;
		c->w->pending--;
		atomic_fetch_add(&b->pubs_ready, 1);
		return;
	}
	if (c->fill_step == FILL_PURGE) {
		conn_leave(c);
		return;
	}
	if (b->o.mode == BENCH_DRAIN || c->resume) {
		/* The session, its subscription and its queue are the broker's. */
		if (!ca->session_present) {
			char msg[128], id[48];
			if (b->o.mode == BENCH_DRAIN)
				snprintf(id, sizeof(id), BENCH_FILL_ID "%u (run fill first)", c->idx);
			else
				snprintf(id, sizeof(id), "%s %u", b->o.mode == BENCH_PLANT ? "historian" : "session",
					 c->idx);
			snprintf(msg, sizeof(msg), "the broker has no session for %s", id);
			conn_fail(c, msg);
			return;
		}
		c->state = CS_READY;
		c->w->pending--;
		if (c->away == AWAY_BACKING) {
			c->away = AWAY_NO;
			atomic_store(&b->hist_state, HIST_RESUME);
		} else {
			atomic_fetch_add(&b->subs_ready, 1);
		}
		return;
	}
	char filters[BENCH_SESS_FILTERS][96];
	struct mqtt_sub_entry e[BENCH_SESS_FILTERS];
	uint32_t ne = sub_filters(c, filters, e);
	struct mqtt_props none = {0};
	if (mqtt_encode_subscribe(&c->wb, b->o.protocol, MQTT_SUBSCRIBE, 1, &none, e, ne) < 0) {
		conn_fail(c, "out of memory");
		return;
	}
	c->state = CS_SUBACK;
	conn_mark_dirty(c);
}

static void on_suback(struct conn *c, const struct mqtt_suback *sa)
{
	struct bench *b = c->w->b;
	uint32_t want = b->o.mode == BENCH_SESSIONS ? BENCH_SESS_FILTERS : 1;
	if (c->state != CS_SUBACK || sa->pid != 1 || sa->n != want) {
		conn_fail(c, "unexpected SUBACK");
		return;
	}
	for (uint32_t i = 0; i < sa->n; i++) {
		if (sa->rcs[i] >= 0x80) {
			char msg[96];
			snprintf(msg, sizeof(msg), "SUBACK refused filter %u: 0x%02x %s", i + 1, sa->rcs[i],
				 b->o.protocol == MQTT_V5 ? mqtt_rc_name(sa->rcs[i]) : "failure");
			conn_fail(c, msg);
			return;
		}
		if (sa->rcs[i] != b->o.qos) {
			char msg[96];
			snprintf(msg, sizeof(msg), "SUBACK granted QoS %u, asked for %u", sa->rcs[i], b->o.qos);
			conn_fail(c, msg);
			return;
		}
	}
	if (b->o.mode == BENCH_FILL || b->o.mode == BENCH_SESSIONS) {
		conn_leave(c);
		return;
	}
	c->state = CS_READY;
	c->w->pending--;
	atomic_fetch_add(&b->subs_ready, 1);
}

/* A message for a subscriber: account for it and acknowledge it. */
static void on_publish(struct conn *c, const struct mqtt_publish *m)
{
	struct worker *w = c->w;
	struct bench *b = w->b;
	struct sub_stat *st = &b->sub[c->idx];
	if (c->role == ROLE_SUB && c->state == CS_CLOSING)
		return; /* sent before our DISCONNECT; unacknowledged, so it comes again */
	if (c->role != ROLE_SUB || c->state != CS_READY) {
		conn_fail(c, "unexpected PUBLISH");
		return;
	}
	if (m->qos == 2) {
		if (!c->qos2_held && !(c->qos2_held = calloc(65536 / 8, 1))) {
			conn_fail(c, "out of memory");
			return;
		}
		uint8_t bit = (uint8_t)(1u << (m->pid & 7));
		if (c->qos2_held[m->pid >> 3] & bit) {
			/* A resend of a message already taken (Method B, 4.3.3):
			 * acknowledge again, do not deliver twice. */
			conn_ack(c, MQTT_PUBREC, m->pid);
			return;
		}
		c->qos2_held[m->pid >> 3] |= bit;
	}
	uint32_t magic = 0, pi = 0;
	uint64_t seq = 0, ts = 0;
	bool drain = b->o.mode == BENCH_DRAIN;
	if (b->o.mode == BENCH_PLANT) {
		if (m->topic.len > 7 && !memcmp(m->topic.p + m->topic.len - 7, "/status", 7)) {
			st->status++;
			goto ack;
		}
		if (plant_header(m->payload.p, m->payload.len, &pi, &seq, &ts))
			magic = BENCH_MAGIC;
	} else if (m->payload.len >= BENCH_HDR && st->seen) {
		memcpy(&magic, m->payload.p, 4);
		memcpy(&pi, m->payload.p + 4, 4);
		memcpy(&seq, m->payload.p + 8, 8);
		memcpy(&ts, m->payload.p + 16, 8);
	}
	uint32_t target = 0;
	if (b->o.mode == BENCH_SESSIONS && magic == BENCH_MAGIC && pi < b->o.pubs) {
		/* Count by the reader's own numbering: small maps per session. */
		sess_target(b, pi, seq, &target, &seq);
		if (target != c->idx)
			magic = 0;
	}
	if (magic != BENCH_MAGIC || (drain ? seq >= b->o.messages : pi >= b->o.pubs)) {
		st->foreign++;
	} else {
		/* Sessions and drain count by the reader's own numbering (one map). */
		bool one_map = b->o.mode == BENCH_SESSIONS || drain;
		int r = seqmap_set(&st->seen[one_map ? 0 : pi], seq);
		if (r < 0) {
			conn_fail(c, "out of memory");
			return;
		}
		if (r)
			st->dup++;
		else
			atomic_fetch_add_explicit(&st->unique, 1, memory_order_relaxed);
		st->received++;
		w->delivered_total++;
		/* A drain counts an earlier run's messages: no latency, no window,
		 * and only new ones show progress. */
		if (!drain || !r)
			w->last_event = w->now;
		if (b->o.mode == BENCH_SESSIONS) {
			if (w->now >= b->t0 && w->now < b->t1) {
				w->delivered_win++;
				hist_add(&w->lat, w->now > ts ? w->now - ts : 0);
			}
		} else if (!drain) {
			_Atomic uint64_t *mk = &b->mark[(size_t)c->idx * b->o.pubs + pi];
			if (seq + 1 > atomic_load_explicit(mk, memory_order_relaxed)) {
				atomic_store_explicit(mk, seq + 1, memory_order_release);
				w->marks_moved = true;
			}
			if (c->idx == 0 && b->t_back && ts < b->t_back) {
				/* Queued during the outage: its latency is the outage's. */
				st->backlog++;
				st->backlog_last = w->now;
			} else if (w->now >= b->t0 && w->now < b->t1) {
				w->delivered_win++;
				hist_add(&w->lat, w->now > ts ? w->now - ts : 0);
			}
		}
	}
ack:
	if (m->qos == 1)
		conn_ack(c, MQTT_PUBACK, m->pid);
	else if (m->qos == 2)
		conn_ack(c, MQTT_PUBREC, m->pid);
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
static void on_ack(struct conn *c, uint8_t type, const struct mqtt_ack *a)
{
	struct bench *b = c->w->b;
	if (type == MQTT_PUBREL) {
		if (c->role != ROLE_SUB || !c->qos2_held) {
			conn_fail(c, "unexpected PUBREL");
			return;
		}
		c->qos2_held[a->pid >> 3] &= (uint8_t)~(1u << (a->pid & 7));
		conn_ack(c, MQTT_PUBCOMP, a->pid);
		return;
	}
	struct pubconn *p = c->pub;
	if (p && p->status_pid && a->pid == p->status_pid && type == MQTT_PUBACK) {
		p->status_pid = 0;
		if (a->rc >= 0x80)
			bench_error(b, true, "publisher %u: retained status refused: 0x%02x %s", c->idx, a->rc,
				    mqtt_rc_name(a->rc));
		return;
	}
	uint8_t want = type == MQTT_PUBCOMP ? SLOT_COMP : SLOT_ACK;
	bool qos_ok = (type == MQTT_PUBACK) == (b->o.qos == 1);
	if (!p || !qos_ok || a->pid == 0 || a->pid > p->cap || p->slot_state[a->pid] != want) {
		char msg[96];
		snprintf(msg, sizeof(msg), "unexpected %s for packet id %u", mqtt_type_name(type), a->pid);
		conn_fail(c, msg);
		return;
	}
	struct pub_stat *ps = &b->pub[c->idx];
	if (type != MQTT_PUBCOMP && a->rc < 0x80) {
		/* The first answer to the PUBLISH: what the publisher waits for,
		 * and what a durable store delays. */
		uint64_t t = p->slot_t[a->pid];
		if (t >= b->t0 && t < b->t1)
			hist_add(&c->w->ack, c->w->now > t ? c->w->now - t : 0);
		c->w->last_event = c->w->now;
	}
	if (type == MQTT_PUBREC && a->rc < 0x80) {
		p->slot_state[a->pid] = SLOT_COMP;
		conn_ack(c, MQTT_PUBREL, a->pid);
		return;
	}
	if (a->rc >= 0x80) {
		ps->rejected++;
	} else if (seqmap_set(&ps->acked, p->slot_seq[a->pid]) < 0) {
		conn_fail(c, "out of memory");
		return;
	} else {
		atomic_fetch_add_explicit(&ps->acked_n, 1, memory_order_relaxed);
	}
	p->slot_state[a->pid] = SLOT_FREE;
	p->free_ids[p->nfree++] = a->pid;
	atomic_fetch_sub_explicit(&ps->unacked, 1, memory_order_relaxed);
}

static void conn_handle(struct conn *c, const struct mqtt_packet *pkt)
{
	switch (pkt->type) {
	case MQTT_CONNACK:
		on_connack(c, &pkt->u.connack);
		break;
	case MQTT_SUBACK:
		on_suback(c, &pkt->u.suback);
		break;
	case MQTT_PUBLISH:
		on_publish(c, &pkt->u.publish);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		on_ack(c, pkt->type, &pkt->u.ack);
		break;
	case MQTT_PINGRESP:
		break;
	case MQTT_DISCONNECT: {
		char msg[96];
		snprintf(msg, sizeof(msg), "broker sent DISCONNECT 0x%02x %s", pkt->u.reason.rc,
			 mqtt_rc_name(pkt->u.reason.rc));
		conn_fail(c, msg);
		break;
	}
	default: {
		char msg[64];
		snprintf(msg, sizeof(msg), "unexpected %s from broker", mqtt_type_name(pkt->type));
		conn_fail(c, msg);
	}
	}
}

/* Reads and decodes. Large reads into the scratch buffer; only the partial
 * tail is kept in c->rb. */
static void conn_read(struct conn *c)
{
	struct worker *w = c->w;
	uint8_t ver = w->b->o.protocol;
	for (int turn = 0; turn < READS_PER_TURN && c->fd >= 0; turn++) {
		uint8_t *dst;
		size_t room;
		if (c->rb.len) {
			if (buf_reserve(&c->rb, SCRATCH_SIZE / 4) < 0) {
				conn_fail(c, "out of memory");
				return;
			}
			dst = c->rb.p + c->rb.len;
			room = c->rb.cap - c->rb.len;
		} else {
			dst = w->scratch;
			room = SCRATCH_SIZE;
		}
		ssize_t n = read(c->fd, dst, room);
		if (n == 0 && c->state == CS_CLOSING) {
			conn_closing_done(c);
			return;
		}
		if (n == 0) {
			conn_fail(c, "connection closed by the broker");
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECONNRESET && c->state == CS_CLOSING) {
				conn_closing_done(c);
				return;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				conn_fail_errno(c, "read from", errno);
			return;
		}
		w->now = clock_mono_us();
		const uint8_t *p;
		size_t len;
		if (c->rb.len) {
			c->rb.len += (size_t)n;
			p = c->rb.p;
			len = c->rb.len;
		} else {
			p = dst;
			len = (size_t)n;
		}
		size_t off = 0;
		while (off < len && c->fd >= 0) {
			struct mqtt_packet pkt;
			int r = mqtt_decode(p + off, len - off, ver, MAX_PACKET, &pkt);
			if (r == 0)
				break;
			if (r < 0) {
				char msg[128];
				snprintf(msg, sizeof(msg), "bad packet from the broker (%s): %s",
					 mqtt_type_name(pkt.type), mqtt_rc_name((uint8_t)-r));
				conn_fail(c, msg);
				return;
			}
			conn_handle(c, &pkt);
			off += (size_t)r;
		}
		if (c->fd < 0)
			return;
		if (c->rb.len) {
			buf_consume(&c->rb, off);
		} else if (off < len && buf_append(&c->rb, p + off, len - off) < 0) {
			conn_fail(c, "out of memory");
			return;
		}
		if ((size_t)n < room)
			return;
	}
}

/* Has publisher c room in its receipt window? Refreshes the cached
 * minimum of the subscribers' marks only when the cache says no. */
static bool pub_window_open(struct worker *w, struct conn *c)
{
	struct bench *b = w->b;
	struct pubconn *p = c->pub;
	if (!b->o.window || p->next_seq < p->win_base + b->o.window)
		return true;
	uint64_t lo = UINT64_MAX;
	for (uint32_t s = 0; s < b->o.subs; s++) {
		uint64_t m = atomic_load_explicit(&b->mark[(size_t)s * b->o.pubs + c->idx],
						  memory_order_acquire);
		if (m < lo)
			lo = m;
	}
	p->win_base = lo;
	return p->next_seq < lo + b->o.window;
}

/* Appends as many PUBLISH packets as the windows, the rate and the batch
 * limit allow. Returns true when it stopped only because of the batch or
 * backlog limit (more can be sent right away). */
static bool pub_pump(struct worker *w, struct conn *c, uint64_t *next_due)
{
	struct bench *b = w->b;
	struct pubconn *p = c->pub;
	struct pub_stat *ps = &b->pub[c->idx];
	uint8_t qos = b->o.qos;
	double interval = b->o.rate > 0 ? (double)b->o.pubs * 1e6 / b->o.rate : 0;
	unsigned n = 0;
	bool more = false;
	if (!p->paced) {
		p->next_due += (double)b->t_run;
		p->paced = true;
	}
	while (c->fd >= 0) {
		if (n >= BATCH_MAX || c->wb.len >= WBUF_HIGH) {
			more = true;
			break;
		}
		if (qos && p->nfree == 0)
			break;
		if (p->quota && p->next_seq >= p->quota)
			break;
		if (!pub_window_open(w, c)) {
			w->pubs_blocked = true;
			break;
		}
		uint64_t now = clock_mono_us();
		if (interval > 0 && p->next_due > (double)now) {
			if ((uint64_t)p->next_due < *next_due)
				*next_due = (uint64_t)p->next_due;
			break;
		}
		if (b->o.mode == BENCH_PLANT) {
			/* Tags in turn, each its own topic; the header goes in as hex. */
			if (b->o.sparkplug) {
				p->topic_len = (uint16_t)spb_plant_topic(p->topic, sizeof(p->topic), b->o.sparkplug,
									 c->idx, "NDATA");
				spb_plant_payload(p->tpl, b->o.size, c->idx, p->next_seq, now, b->o.tags);
			} else {
				p->topic_len = (uint16_t)plant_topic(p->topic, sizeof(p->topic), c->idx,
								     (uint32_t)(p->next_seq % b->o.tags));
				plant_payload(p->tpl, b->o.size, c->idx, p->next_seq, now, b->o.tags);
			}
		} else if (b->o.mode == BENCH_SESSIONS) {
			uint32_t target;
			uint64_t k;
			sess_target(b, c->idx, p->next_seq, &target, &k);
			p->topic_len = (uint16_t)snprintf(p->topic, sizeof(p->topic), "s/%u/a/x", target);
		}
		struct mqtt_publish m = {
			.qos = qos,
			.topic = {(const uint8_t *)p->topic, p->topic_len},
			.payload = {p->tpl, b->o.size},
		};
		if (qos) {
			m.pid = p->free_ids[--p->nfree];
			p->slot_seq[m.pid] = p->next_seq;
			p->slot_state[m.pid] = SLOT_ACK;
			p->slot_t[m.pid] = now;
			atomic_fetch_add_explicit(&ps->unacked, 1, memory_order_relaxed);
		}
		if (mqtt_encode_publish(&c->wb, b->o.protocol, &m) < 0) {
			conn_fail(c, "out of memory");
			return false;
		}
		/* The payload is the packet's tail: stamp its header in place. */
		if (b->o.mode != BENCH_PLANT) {
			uint8_t *pl = c->wb.p + c->wb.len - b->o.size;
			uint32_t idx = c->idx;
			uint64_t seq = p->seq_base + p->next_seq;
			memcpy(pl + 4, &idx, 4);
			memcpy(pl + 8, &seq, 8);
			memcpy(pl + 16, &now, 8);
		}
		p->next_seq++;
		/* Release: whoever sees this count also sees the unacked increment. */
		atomic_store_explicit(&ps->sent, p->next_seq, memory_order_release);
		if (now >= b->t0 && now < b->t1)
			w->published_win++;
		if (interval > 0) {
			p->next_due += interval;
			/* Fell behind by more than a second: do not burst to catch up. */
			if (p->next_due < (double)now - 1e6)
				p->next_due = (double)now;
		}
		n++;
	}
	if (n)
		conn_mark_dirty(c);
	return more;
}

static void send_pings(struct worker *w)
{
	for (uint32_t i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];
		if (c->state != CS_READY || !c->keepalive)
			continue;
		if (w->now - c->last_tx >= (uint64_t)c->keepalive * 500000u) {
			if (mqtt_encode_simple(&c->wb, MQTT_PINGREQ) == 0)
				conn_mark_dirty(c);
			c->last_tx = w->now;
		}
	}
}

/* Sends DISCONNECT everywhere, then waits up to two seconds for the broker
 * to close each connection first, so TIME_WAIT lands on the broker's side
 * and repeated runs do not run out of ephemeral ports. */
static void worker_shutdown(struct worker *w)
{
	struct epoll_event evs[256];
	for (uint32_t i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];
		if (c->state != CS_READY) {
			conn_close(c);
			continue;
		}
		if (conn_put_disconnect(c) == 0)
			conn_flush(c);
	}
	uint64_t until = clock_mono_us() + 2000000;
	for (;;) {
		uint32_t open = 0;
		for (uint32_t i = 0; i < w->nconns; i++)
			open += w->conns[i].fd >= 0;
		if (!open || clock_mono_us() > until)
			break;
		int n = epoll_wait(w->epfd, evs, 256, 10);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c || c == (struct conn *)w || c->fd < 0)
				continue;
			if ((evs[i].events & EPOLLOUT) && c->wb.len)
				conn_flush(c);
			if (c->fd < 0 || !(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				continue;
			ssize_t got;
			while ((got = read(c->fd, w->scratch, SCRATCH_SIZE)) > 0)
				;
			if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
				conn_close(c);
		}
	}
	for (uint32_t i = 0; i < w->nconns; i++)
		conn_close(&w->conns[i]);
	w->stopped = true;
}

/* plant: historian 0 (conns[0] of worker 0) follows the main thread's
 * hist_cmd: leave with its session kept, or come back for it. */
static void hist_step(struct worker *w, struct conn *c)
{
	struct bench *b = w->b;
	int cmd = atomic_load_explicit(&b->hist_cmd, memory_order_acquire);
	if (cmd == HIST_OFFLINE && c->away == AWAY_NO && c->state == CS_READY) {
		c->away = AWAY_LEAVING;
		conn_leave(c);
	} else if (cmd == HIST_RESUME && c->away == AWAY_LEAVING && c->state == CS_CLOSED) {
		c->away = AWAY_BACKING;
		c->resume = true;
		b->t_back = w->now;
		conn_start(c);
	}
}

static void arm_timer(struct worker *w, uint64_t at_us)
{
	struct itimerspec its = {0};
	its.it_value.tv_sec = (time_t)(at_us / 1000000u);
	its.it_value.tv_nsec = (long)(at_us % 1000000u) * 1000;
	if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
		its.it_value.tv_nsec = 1;
	timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct bench *b = w->b;
	struct epoll_event evs[256];
	bool more = false;
	uint64_t armed = 0;
	while (!w->stopped) {
		int phase = atomic_load_explicit(&b->phase, memory_order_acquire);
		w->now = clock_mono_us();
		if (phase == PH_STOP) {
			worker_shutdown(w);
			break;
		}
		/* Start handshakes for the phase's role, a bounded number at a time. */
		uint32_t start_end = phase == PH_CONNECT_SUBS ? w->ncreate
				   : phase == PH_CONNECT_RESUME ? w->nsubs : w->nconns;
		while (w->next_start < start_end && w->pending < w->pending_max)
			conn_start(&w->conns[w->next_start++]);
		if (b->o.mode == BENCH_PLANT && w->id == 0 && w->nsubs)
			hist_step(w, &w->conns[0]);
		flush_dirty(w);

		int timeout = more ? 0 : 100;
		if (w->pubs_blocked && b->nworkers > 1) {
			/* Receipts may come from another thread: ask for a wake-up,
			 * then look once more so none is missed (the 10 ms cap is
			 * only a safety net). */
			atomic_store(&w->want_wake, true);
			timeout = more ? 0 : 10;
			for (uint32_t i = w->nsubs; i < w->nconns && timeout; i++) {
				struct conn *c = &w->conns[i];
				if (c->state == CS_READY && (!b->o.qos || c->pub->nfree) && pub_window_open(w, c))
					timeout = 0;
			}
		}
		int n = epoll_wait(w->epfd, evs, 256, timeout);
		w->now = clock_mono_us();
		w->pubs_blocked = false;
		w->marks_moved = false;
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c) {
				uint64_t v;
				if (read(w->efd, &v, sizeof(v)) < 0)
					(void)0;
				continue;
			}
			if (c == (struct conn *)w) {
				uint64_t v;
				if (read(w->tfd, &v, sizeof(v)) < 0)
					(void)0;
				armed = 0;
				continue;
			}
			if (c->fd < 0)
				continue;
			if (c->state == CS_TCP) {
				if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
					conn_connected(c);
				continue;
			}
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				conn_read(c);
			if (c->fd >= 0 && (evs[i].events & EPOLLOUT)) {
				conn_flush(c);
			}
		}
		more = false;
		phase = atomic_load_explicit(&b->phase, memory_order_acquire);
		if (phase == PH_RUN) {
			uint64_t due = UINT64_MAX;
			for (uint32_t i = w->nsubs; i < w->nconns; i++) {
				struct conn *c = &w->conns[i];
				if (c->state == CS_READY && pub_pump(w, c, &due))
					more = true;
			}
			if (due != UINT64_MAX && due != armed) {
				arm_timer(w, due);
				armed = due;
			}
		}
		if (w->marks_moved && b->nworkers > 1) {
			for (int i = 0; i < b->nworkers; i++) {
				struct worker *o = b->workers[i];
				if (o != w && atomic_exchange(&o->want_wake, false))
					worker_wake(o);
			}
		}
		if (w->now - w->last_ping_scan >= 1000000) {
			w->last_ping_scan = w->now;
			send_pings(w);
		}
		flush_dirty(w);
	}
	return NULL;
}

struct worker *worker_create(struct bench *b, int id)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->b = b;
	w->id = id;
	w->epfd = w->efd = w->tfd = -1;
	uint32_t T = (uint32_t)b->nworkers;
	for (uint32_t s = (uint32_t)id; s < b->o.subs; s += T)
		w->nsubs++;
	w->nconns = w->nsubs;
	for (uint32_t p = (uint32_t)id; p < b->o.pubs; p += T)
		w->nconns++;
	w->ncreate = w->nsubs;
	for (uint32_t r = (uint32_t)id; r < b->o.readers; r += T)
		w->nsubs++;
	w->nconns += w->nsubs - w->ncreate;
	w->pending_max = b->o.batch / T ? b->o.batch / T : 1;
	w->conns = calloc(w->nconns ? w->nconns : 1, sizeof(*w->conns));
	w->dirty = calloc(w->nconns ? w->nconns : 1, sizeof(*w->dirty));
	w->scratch = malloc(SCRATCH_SIZE);
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!w->conns || !w->dirty || !w->scratch || w->epfd < 0 || w->efd < 0 || w->tfd < 0)
		goto fail;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->efd, &ev);
	ev.data.ptr = w; /* the timer is told apart by this pointer */
	epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->tfd, &ev);

	uint32_t k = 0;
	for (uint32_t s = (uint32_t)id; s < b->o.subs; s += T, k++) {
		struct conn *c = &w->conns[k];
		c->w = w;
		c->fd = -1;
		c->role = ROLE_SUB;
		c->idx = s;
		c->keepalive = b->o.keepalive;
		bool fresh = b->o.mode == BENCH_FILL || b->o.mode == BENCH_SESSIONS || b->o.mode == BENCH_PLANT;
		c->fill_step = fresh && b->o.protocol != MQTT_V5 ? FILL_PURGE : FILL_SUBSCRIBE;
	}
	for (uint32_t r = (uint32_t)id; r < b->o.readers; r += T, k++) {
		struct conn *c = &w->conns[k];
		c->w = w;
		c->fd = -1;
		c->role = ROLE_SUB;
		c->idx = r;
		c->keepalive = b->o.keepalive;
		c->resume = true;
		c->fill_step = FILL_SUBSCRIBE;
	}
	for (uint32_t pi = (uint32_t)id; pi < b->o.pubs; pi += T, k++) {
		struct conn *c = &w->conns[k];
		c->w = w;
		c->fd = -1;
		c->role = ROLE_PUB;
		c->idx = pi;
		c->keepalive = b->o.keepalive;
		struct pubconn *p = calloc(1, sizeof(*p));
		if (!p)
			goto fail;
		c->pub = p;
		p->tpl = malloc(b->o.size);
		if (!p->tpl)
			goto fail;
		for (uint32_t i = 0; i < b->o.size; i++)
			p->tpl[i] = (uint8_t)('a' + i % 26);
		uint32_t magic = BENCH_MAGIC;
		memcpy(p->tpl, &magic, 4);
		p->topic_len = (uint16_t)snprintf(p->topic, sizeof(p->topic), "bench/%u", pi);
		if (b->o.mode == BENCH_FILL || (b->o.mode == BENCH_PLANT && b->o.messages)) {
			/* Split the messages; each fill publisher numbers a contiguous
			 * range, each plant gateway its own from 0. */
			uint64_t each = b->o.messages / b->o.pubs, extra = b->o.messages % b->o.pubs;
			p->quota = each + (pi < extra);
			if (b->o.mode == BENCH_FILL)
				p->seq_base = (uint64_t)pi * each + (pi < extra ? pi : extra);
		}
		/* Stagger paced publishers over one interval. */
		if (b->o.rate > 0)
			p->next_due = (double)pi * 1e6 / b->o.rate;
	}
	return w;
fail:
	worker_destroy(w);
	return NULL;
}

int worker_start(struct worker *w)
{
	return pthread_create(&w->th, NULL, worker_main, w) ? -FM_EIO : 0;
}

void worker_join(struct worker *w)
{
	pthread_join(w->th, NULL);
}

void worker_wake(struct worker *w)
{
	uint64_t one = 1;
	if (write(w->efd, &one, sizeof(one)) < 0)
		(void)0;
}

void worker_totals_add(const struct worker *w, struct worker_totals *t)
{
	t->published_win += w->published_win;
	t->delivered_win += w->delivered_win;
	t->delivered_total += w->delivered_total;
	if (w->last_event > t->last_event)
		t->last_event = w->last_event;
	hist_merge(&t->lat, &w->lat);
	hist_merge(&t->ack, &w->ack);
}

void worker_destroy(struct worker *w)
{
	if (!w)
		return;
	for (uint32_t i = 0; w->conns && i < w->nconns; i++) {
		struct conn *c = &w->conns[i];
		if (c->fd >= 0)
			close(c->fd);
		buf_free(&c->rb);
		buf_free(&c->wb);
		free(c->qos2_held);
		if (c->pub) {
			free(c->pub->free_ids);
			free(c->pub->slot_seq);
			free(c->pub->slot_state);
			free(c->pub->slot_t);
			free(c->pub->tpl);
			free(c->pub);
		}
	}
	free(w->conns);
	free(w->dirty);
	free(w->scratch);
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->efd >= 0)
		close(w->efd);
	if (w->tfd >= 0)
		close(w->tfd);
	free(w);
}
