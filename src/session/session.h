/* A session: the durable state of one client id — subscriptions, the queue of
 * messages waiting for delivery, messages in flight both ways, the will and
 * the expiry. It outlives connections. Every field after `lock` is guarded
 * by it; the functions here expect the caller to hold it.
 */
#ifndef FM_SESSION_H
#define FM_SESSION_H
#include "msg.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;

enum qentry_state {
	QE_QUEUED = 0,   /* not sent yet */
	QE_WAIT_PUBACK,  /* QoS 1 sent */
	QE_WAIT_PUBREC,  /* QoS 2 sent */
	QE_WAIT_PUBCOMP, /* QoS 2 PUBREL sent */
};

#define QE_RETAIN 0x01 /* send with the retain flag */
#define QE_SHARED 0x02 /* came through a $share group: another member may take it over */
#define QE_MAYBE_SENT 0x04 /* restored after a restart: may have been sent before, so DUP */
#define QE_ON_DISK 0x08 /* the body is in the durable store only: `msg_id`, not `msg` */
#define QE_RESEND 0x10 /* in flight before this connection: to be sent again on it (memory only) */

/* One message for one session. Subscription identifiers: `sub_id` when
 * n_sub_ids <= 1, else the heap array `sub_ids` (owned by the entry).
 * A queued entry of a durable session whose row is on disk may give up its
 * body (QE_ON_DISK) and is loaded back before it is sent: an offline queue
 * costs this struct per message in memory, not the message. */
struct qentry {
	union {
		struct msg *msg; /* one reference owned by the entry */
		uint64_t msg_id; /* QE_ON_DISK: the stored body */
	};
	uint64_t seq;    /* position in the session's stream; the store's key */
	union {
		uint32_t sub_id;
		uint32_t *sub_ids;
	} u;
	uint32_t bytes;     /* payload length, for the queue's byte limit */
	uint32_t expiry_s;  /* wall-clock seconds when it expires (rounded up); 0 = never */
	uint32_t queued_s;  /* wall-clock seconds when it was queued (a queue's oldest age) */
	uint8_t n_sub_ids;  /* at most QENTRY_MAX_SUB_IDS */
	uint8_t qos;
	uint8_t flags;
	uint8_t state;
};
/* 40 bytes: an offline queue's cost per message in memory. The packet id is
 * not kept: it follows from the sequence number (qentry_pid). */
_Static_assert(sizeof(struct qentry) == 40, "a queued message costs 40 bytes of memory");

#define QENTRY_MAX_SUB_IDS 64

static inline bool qentry_on_disk(const struct qentry *e) { return e->flags & QE_ON_DISK; }
static inline bool qentry_expired(const struct qentry *e, uint64_t now_ms)
{
	return e->expiry_s && now_ms >= (uint64_t)e->expiry_s * 1000;
}
/* expiry_s of a message: rounded up, so an entry never expires early. */
static inline uint32_t msg_expiry_s(const struct msg *m)
{
	return m->expiry_at ? (uint32_t)((m->expiry_at + 999) / 1000) : 0;
}
/* Gives up the body of an entry whose row is on disk (its reference is dropped). */
void qentry_spill(struct qentry *e);
/* Gives an on-disk entry its body back (takes over the reference to m). */
void qentry_fill(struct qentry *e, struct msg *m);

static inline const uint32_t *qentry_sub_ids(const struct qentry *e)
{
	return e->n_sub_ids > 1 ? e->u.sub_ids : &e->u.sub_id;
}

/* A ring of entries in ascending sequence order. */
struct qring {
	struct qentry *e;
	uint32_t head, count, cap;
};

struct session_sub {
	char *filter;    /* as subscribed, "$share/g/f" included */
	uint16_t len;
	uint8_t options;
	uint32_t sub_id;
};

struct session_limits {
	uint32_t max_messages; /* 0 = none */
	uint64_t max_bytes;    /* 0 = none */
	bool reject_new;
};

struct session {
	atomic_uint refs;
	atomic_bool flush_pending; /* queued on its worker's wake list */
	uint64_t sid;              /* unique for the broker's lifetime, for No Local */
	uint16_t client_id_len;

	pthread_mutex_t lock;
	struct client *client; /* attached connection, NULL when offline */
	int worker;            /* worker of `client`, -1 when offline */
	bool ended;            /* removed from the registry; drop deliveries */
	bool timed;            /* on the broker's deadline list (guarded by the registry lock) */
	bool stored;           /* has rows in the durable store */
	bool loading;          /* bodies of on-disk entries are being read back */
	uint8_t version;
	uint32_t expiry_interval; /* seconds; UINT32_MAX = never */
	uint64_t expires_at;      /* wall ms when offline and finite, else 0 */

	struct qring queue;    /* QE_QUEUED entries, delivery order */
	struct qring inflight; /* sent, waiting for an ack, send order */
	uint64_t queued_bytes; /* payload bytes in `queue` */
	uint64_t next_seq;     /* for the next queued entry */
	uint16_t send_window;  /* messages in flight allowed now to `client` (see broker__deliver_pump) */
	uint32_t n_resend;     /* entries of `inflight` marked QE_RESEND */

	/* Incoming QoS 2 packet ids between PUBREC and PUBREL [MQTT-4.3.3]. */
	uint16_t *rx_qos2;
	uint32_t n_rx_qos2, cap_rx_qos2;

	struct msg *will;      /* the Will message, NULL when none */
	char *will_user;       /* the user the will was admitted for, NULL: anonymous */
	uint32_t will_delay;   /* seconds */
	uint64_t will_at;      /* wall ms when a delayed will is due, else 0 */

	/* Drops not yet logged (see broker__queue_note_drops), under `lock`. */
	uint64_t drops_unlogged;
	uint64_t drop_logged_ms; /* monotonic ms of the last report, 0: never */
	uint8_t drop_reason;

	struct session_sub *subs;
	/* Finds a filter in `subs` without a scan once there are more than a
	 * few: NULL, or 1 << sub_pos_shift slots holding an index in subs + 1
	 * (0: free), at most half full. */
	uint32_t *sub_pos;
	uint32_t n_subs, cap_subs;
	uint8_t sub_pos_shift;
	char client_id[]; /* NUL-terminated */
};

/* Creates a session with one reference. Returns NULL when out of memory. */
struct session *session_new(const char *client_id, size_t len, uint64_t sid);
static inline struct session *session_ref(struct session *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}
/* Drops one reference; the last frees the session, its queues and its will. */
void session_unref(struct session *s);

/* Queues a message. Takes its own reference to msg; sub_ids is copied.
 * Returns 0, 1 when older messages were dropped to make room (drop_oldest:
 * they are moved to *dropped, which the caller releases), -FM_ELIMIT when the
 * new one was refused (reject_new, larger than max_bytes by itself, or nothing
 * left to drop; nothing is dropped then), or -FM_ENOMEM.
 * On success *seq_out is the new entry's sequence number. */
int session_enqueue(struct session *s, struct msg *msg, uint8_t qos, uint8_t flags,
		    const uint32_t *sub_ids, uint16_t n_sub_ids, const struct session_limits *lim,
		    struct qring *dropped, uint64_t *seq_out);

/* Finds the in-flight entry with `pid` waiting for `ack_type`. PUBACK and
 * PUBCOMP remove it (copied to *done, which the caller releases); PUBREC
 * moves it to QE_WAIT_PUBCOMP (*done gets a copy without ownership).
 * Returns 0 or -FM_ENOENT. */
int session_on_ack(struct session *s, uint16_t pid, uint8_t ack_type, struct qentry *done);

/* The packet id of an entry follows from its sequence number, so a restart
 * resends every message under the id it had [MQTT-4.4.0-1]. */
static inline uint16_t qentry_pid_of(uint64_t seq) { return (uint16_t)(seq % 65535 + 1); }
/* An entry's packet id: 0 for QoS 0. */
static inline uint16_t qentry_pid(const struct qentry *e) { return e->qos ? qentry_pid_of(e->seq) : 0; }
/* Would the entry with this sequence number reuse an id in flight?
 * Entries are queued and sent in ascending sequence order. */
bool session_pid_in_use(const struct session *s, uint64_t seq);

/* Incoming QoS 2 ids. add: 1 = new, 0 = already present, -FM_ENOMEM. */
int session_rx_qos2_add(struct session *s, uint16_t pid);
bool session_rx_qos2_remove(struct session *s, uint16_t pid);

/* Subscription list (mirror of the index, for clean-up and listing), as
 * subscribed ("$share/g/f" included). Each call costs the filter's length,
 * not the number of subscriptions, so one SUBSCRIBE of many filters (or a
 * session restored with them) is linear.
 * add returns 1 when it replaced an existing one, 0 when new, or -FM_ENOMEM
 * (nothing changed). find returns the index in s->subs, or -1. */
int session_sub_add(struct session *s, const char *filter, size_t len, uint8_t options, uint32_t sub_id);
bool session_sub_remove(struct session *s, const char *filter, size_t len);
long session_sub_find(const struct session *s, const char *filter, size_t len);

/* Entry helpers. */
void qentry_release(struct qentry *e);
void qring_free(struct qring *r);
int qring_push(struct qring *r, const struct qentry *e);
/* Puts e before the first entry (its sequence number must be the lowest). */
int qring_push_front(struct qring *r, const struct qentry *e);
static inline struct qentry *qring_at(struct qring *r, uint32_t i)
{
	return &r->e[(r->head + i) % r->cap];
}
/* Index of the entry with sequence number seq, or -1. */
long qring_find(struct qring *r, uint64_t seq);
/* Removes entry i, keeping the order of the rest; the entry is copied to *out. */
void qring_remove(struct qring *r, uint32_t i, struct qentry *out);

#endif
