/* Declarations shared by the bridge's files. */
#ifndef FM_BRIDGE_INTERNAL_H
#define FM_BRIDGE_INTERNAL_H
#include "bridge.h"
#include "rate.h"
#include "aggregate.h"
#include "reduce.h"
#include "../net/transport.h"
#include "../tls/tls.h"
#include <pthread.h>
#include <stdatomic.h>

/* ---- spool.c: the FIFO of one bridge ---- */

/* One spooled message: 16 bytes in memory. Its sequence number is its
 * position. The body stays in memory until its row is committed and while
 * it is near the head; then only its stored id is kept. */
struct spool_entry {
	union {
		struct msg *msg; /* a reference owned by the entry */
		uint64_t msg_id; /* SP_ON_DISK */
	};
	uint32_t bits;     /* payload bytes | SP_* flags */
	uint32_t queued_s; /* wall-clock seconds when spooled */
};
_Static_assert(sizeof(struct spool_entry) == 16, "a spooled message costs 16 bytes of memory");
#define SP_COMMITTED 0x80000000u /* its row is on disk: it may be sent, and give up its body */
#define SP_ON_DISK 0x40000000u   /* msg_id, not msg */
#define SP_GONE 0x20000000u      /* acknowledged, dropped, or its row failed to commit */
#define SP_BYTES 0x0FFFFFFFu     /* an MQTT payload is below 256 MB */

#define SPOOL_BLOCK 4096 /* entries per block: 64 KB, allocated as the spool grows */

/* Entries [head, tail) in blocks; sequence numbers go on across restarts.
 * Guarded by `lock` (publishing workers append, worker 0 sends). */
struct spool {
	pthread_mutex_t lock;
	struct spool_entry **blocks; /* ring of block pointers */
	uint32_t bcap, bfirst, nblocks;
	uint64_t base;      /* sequence number of blocks[bfirst]->[0] */
	uint64_t head, tail;
	uint64_t next_send; /* first not sent on this connection */
	uint64_t dup_below; /* sent before (maybe received): resent with DUP */
	uint64_t count, bytes; /* live entries and their payload bytes */
	uint32_t inflight;  /* live entries in [head, next_send) */
	bool loading;       /* bodies are being read back */
};

int spool_init(struct spool *sp);
void spool_free(struct spool *sp);
static inline uint32_t spool_entry_bytes(const struct spool_entry *e) { return e->bits & SP_BYTES; }
/* The entry of seq, which must be in [head, tail). */
struct spool_entry *spool_at(struct spool *sp, uint64_t seq);
/* Appends an entry (msg: reference taken; NULL with msg_id: on disk) at
 * tail. Returns 0 or -FM_ENOMEM. */
int spool_push(struct spool *sp, struct msg *msg, uint64_t msg_id, uint32_t bytes, uint32_t queued_s, uint32_t flags);
/* Marks seq gone (dropping its body) and frees what the head leaves behind.
 * Returns true when it was live. */
bool spool_remove(struct spool *sp, uint64_t seq);
/* Gives up the body of a committed entry (keeps its stored id). */
void spool_spill(struct spool_entry *e);

/* ---- link.c: the connection to the remote broker ---- */

enum link_state { LINK_IDLE, LINK_RESOLVING, LINK_CONNECTING, LINK_TLS, LINK_MQTT, LINK_ONLINE, LINK_CLOSING };

struct link {
	struct bridge *br;
	uv_loop_t *loop;
	uv_tcp_t tcp;
	uv_getaddrinfo_t resolve;
	uv_connect_t connect;
	uv_timer_t timer;   /* back-off, keep-alive, rate-limit pause and min_interval flushes */
	uv_async_t async;   /* spool commits on other workers */
	uint8_t state;
	bool tcp_open;
	bool stopping;
	bool retain_ok;     /* the remote takes retained messages (v5 Retain Available) */
	uint8_t version;    /* MQTT_V311 or MQTT_V5 */
	uint32_t generation; /* bumped at every connection, for late store callbacks */
	unsigned addr_index;
	unsigned attempts;  /* failed connections since the last success */
	uint16_t window;    /* in-flight limit: the remote's Receive Maximum */
	uint16_t sub_pid;
	uint16_t keepalive;  /* seconds: ours, or the remote's Server Keep Alive */
	uint32_t rx_pending; /* QoS 1 PUBLISHes from the remote not yet acknowledged, this connection */
	uint32_t max_packet; /* the remote's Maximum Packet Size; 0: no limit */
	uint64_t last_tx_ms, last_rx_ms, connect_started_ms;
	uint64_t pause_until_us; /* rate limit */
	struct buf in, out;   /* MQTT bytes from and to the remote */
	struct xport x;       /* TCP or TLS: the transport layer of inbound connections */
	struct net_write *wreq; /* the write in progress, NULL when none */
	SSL_CTX *tls_ctx;
	char remote[160];
};

int link_init(struct link *l, struct bridge *br, uv_loop_t *loop);
/* Starts connecting (now, or after the back-off). */
void link_start(struct link *l);
/* Sends what the spool and the window allow (worker 0). */
void link_pump(struct link *l);
/* Keep-alive, connect timeout, and sending after a rate-limit pause (worker 0, every 100 ms). */
void link_tick(struct link *l, uint64_t now_ms);
/* Goodbye and close every handle. */
void link_stop(struct link *l);
/* After the loop has ended. */
void link_free(struct link *l);

/* ---- bridge.c ---- */

struct bridge {
	struct bridges *all;
	const struct bridge_conf *conf; /* in the broker's configuration */
	unsigned index;
	uint64_t origin;  /* origin_sid of what comes in over it */
	struct spool spool;
	struct link link;
	struct token_bucket msgs_bucket, bytes_bucket;
	/* Reduction state, under reduce_lock (publishing workers). */
	pthread_mutex_t reduce_lock;
	struct topic_table reduce;
	uint32_t n_pending;
	/* Aggregation windows, under reduce_lock too (publishing workers, and
	 * worker 0's tick closing the windows that ended). */
	struct agg_table agg;
	bool aggregates;      /* a topic line has `aggregate` */
	bool agg_full_logged;
	atomic_bool connected;
	atomic_uint_fast64_t sent, received, reduced, acked;
	atomic_uint_fast64_t dropped[BRIDGE_DROP__COUNT];
	double ack_rate;      /* acknowledged per second, averaged (worker 0) */
	uint64_t rate_mark, rate_mark_ms;
	atomic_int_fast64_t drain_s;
	struct edge *edge;    /* bridge_sparkplug: the edge node's session (edge.c); else NULL */
};

struct bridges {
	struct broker *b;
	struct bridge_port port;
	unsigned n;
	struct bridge *v;
	uv_timer_t tick;
	pthread_mutex_t wake_lock; /* commits on other workers wake the links until they stop */
	bool awake;
};

/* The worker the bridges run on. */
static inline struct bworker *bridge_worker(struct bridge *br) { return &br->all->b->workers[0]; }
/* Appends m to the spool of br (any worker w). Returns 0, -FM_ELIMIT (full,
 * reject_new) or -FM_ENOMEM. */
int bridge_spool_append(struct bridge *br, struct bworker *w, struct msg *m);
/* A message came from the remote: publish it locally. done(ctx) runs after
 * its commit. */
void bridge_inbound(struct bridge *br, const struct mqtt_publish *p, store_done_fn done, void *ctx);
/* Forwards held min_interval values that are due (worker 0); returns the
 * milliseconds until the next one is, or 0 when none waits. */
uint64_t bridge_flush_held(struct bridge *br, uint64_t now_ms);

/* ---- edge.c: the Sparkplug edge node's session (bridge_sparkplug) ---- */

struct edge;
/* Reads the last bdSeq (persistence_location/sparkplug-bdseq). NULL: out of memory. */
struct edge *bridge__edge_new(struct bridge *br);
void bridge__edge_free(struct edge *e);
/* m is one of the edge node's device messages (DBIRTH, DDATA, DDEATH):
 * br spools it whatever its topic lines say, and sends it unchanged. */
bool bridge__edge_takes(const struct bridge *br, const struct msg *m);
/* TCP is up: takes the next bdSeq and stores it (thread pool), then calls
 * go(l, true), or go(l, false) when it could not be stored. */
void bridge__edge_before_connect(struct link *l, void (*go)(struct link *l, bool ok));
/* Sets the NDEATH will of the CONNECT. Returns 0 or -FM_ENOMEM. */
int bridge__edge_will(struct link *l, struct mqtt_connect *m);
/* CONNACK came: subscribes NCMD and DCMD, sends the NBIRTH and the DBIRTHs. */
void bridge__edge_online(struct link *l);
/* The payload the spooled m goes out with: restamped with seq (and
 * historical when spooled before the births) into *payload when it is the
 * edge node's (0), untouched when not (0), 1 when a birth or death from
 * before the births is to be dropped, or -FM_EINVAL / -FM_ENOMEM. */
int bridge__edge_payload(struct link *l, uint64_t spool_seq, const struct msg *m, struct mqtt_bin *payload);
/* After link_pump: history_sent when every spool entry from before the
 * births has gone out; then a device born for its history and offline now
 * gets its DDEATH. */
void bridge__edge_pumped(struct link *l, bool history_sent);
/* Whether the spool's entries from before the births are all sent, when
 * the next to send is next_send (spool lock held). */
bool bridge__edge_history_sent(const struct edge *e, uint64_t next_send);
/* A PUBLISH from the remote: 0 when it is not the edge node's; 1 when it
 * is an NCMD, a DCMD or the primary host's STATE, carried out (rebirth,
 * writes, births) and not published; 2 when the link is to close (the
 * primary host went offline). */
int bridge__edge_inbound(struct link *l, const struct mqtt_publish *p);
/* The births of this connection went: the spool may be sent. */
bool bridge__edge_ready(const struct link *l);
/* The NDEATH before a clean DISCONNECT of a v3 link (v5 sends 0x04). */
void bridge__edge_goodbye(struct link *l);

#endif
