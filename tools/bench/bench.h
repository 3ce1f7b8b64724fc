/* ferromq-bench: the load generator's shared definitions.
 *
 * One process: the main thread parses options, steps the phases and prints
 * the result; each worker thread runs its own epoll loop over its own slice
 * of the connections (a connection never moves between threads). Workers
 * publish counters through the structs below; the main thread reads them
 * after it has joined the workers, except the few _Atomic fields it polls.
 */
#ifndef FM_BENCH_H
#define FM_BENCH_H
#include "base/buf.h"
#include "mqtt/mqtt.h"
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

enum bench_mode {
	BENCH_FANIN, BENCH_FANOUT, BENCH_IDLE, BENCH_LATENCY, BENCH_FILL, BENCH_DRAIN,
	BENCH_PLANT,    /* gateways -> historians, see plant.c */
	BENCH_SESSIONS, /* many stored sessions, a few reconnect and receive */
};

/* Phases, stepped forward only by the main thread. */
enum bench_phase {
	PH_CONNECT_SUBS, /* connect + subscribe every subscriber */
	PH_CONNECT_RESUME, /* sessions: the readers resume their sessions */
	PH_CONNECT_PUBS, /* connect every publisher */
	PH_RUN,          /* warmup then measurement (idle: the hold) */
	PH_DRAIN,        /* publishers stop; wait for acks and stragglers */
	PH_STOP,         /* DISCONNECT, close, leave the loop */
};

struct bench_opts {
	enum bench_mode mode;
	const char *host;
	uint16_t port;
	uint8_t qos, protocol;
	uint32_t size;      /* payload bytes, >= BENCH_HDR */
	uint32_t inflight;  /* unacknowledged QoS1/2 publishes per publisher */
	uint32_t window;    /* sent but not yet seen by every subscriber; 0 = off */
	double duration, warmup, drain, connect_timeout;
	double rate;        /* messages/s over all publishers; 0 = unpaced */
	uint32_t pubs, subs;
	uint64_t messages;  /* fill, plant: total to publish (0 = plant: no limit); drain: per session */
	int threads;
	bool json;
	bool persistent;    /* subscribers keep their session (durable store path) */
	int pid;            /* broker pid for RSS (idle), 0 = none */
	const char *filter;
	uint16_t keepalive;
	/* plant */
	const char *profile;  /* small|medium|large or NULL */
	uint32_t tags;        /* per gateway (the gateways are the publishers) */
	double interval_ms;   /* each tag publishes once per interval */
	const char *share;    /* historians subscribe through $share/GROUP/ */
	const char *sparkplug; /* plant as Sparkplug edge nodes under this namespace, or NULL */
	double offline_after, offline_for; /* historian 0's outage; 0 = none */
	const char *store_dir; /* broker's persistence_location, for du */
	/* sessions */
	uint32_t sessions;    /* stored sessions to create (the subscribers) */
	uint32_t readers;     /* of which this many reconnect and receive */
	uint32_t batch;       /* handshakes in flight at once */
};

/* Handshakes in progress at once over all workers, but for sessions' --batch. */
#define PENDING_CONNECTS_DEFAULT 128

/* Client id prefix of the sessions fill leaves behind and drain resumes. */
#define BENCH_FILL_ID "fmb-fill-s"
/* sessions mode: client ids and the five filters of each session. */
#define BENCH_SESS_ID "fmb-sess-"
#define BENCH_SESS_FILTERS 5
/* Session expiry (v5) of the plant and sessions modes: outlives any run. */
#define BENCH_LONG_EXPIRY 86400u
/* plant: devices per plant; gateway g is plant g / this, device g % this. */
#define PLANT_DEVICES 10


/* The first bytes of every payload, host byte order (same machine). In fill
 * mode seq is the message's number over all publishers, 0..messages-1. */
#define BENCH_MAGIC 0x42514d46u /* "FMQB" */
#define BENCH_HDR 24            /* magic u32, publisher u32, seq u64, send time us u64 */

/* Log-linear latency histogram in microseconds: exact below 128, then 64
 * sub-buckets per power of two (under 1.6 % error), up to 2^40 us. */
#define HIST_LINEAR 128
#define HIST_SUB 64
#define HIST_BUCKETS (HIST_LINEAR + 34 * HIST_SUB)
struct hist {
	uint64_t n, sum, min, max;
	uint64_t b[HIST_BUCKETS];
};
void hist_add(struct hist *h, uint64_t v);
void hist_merge(struct hist *dst, const struct hist *src);
/* Value at quantile q in [0,1] (bucket midpoint, clamped to min/max); 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);

/* Growable bitmap of sequence numbers. */
struct seqmap {
	uint64_t *w;
	uint64_t nwords;
};
/* Sets bit seq. Returns 1 if it was set already, 0 if new, -FM_ENOMEM. */
int seqmap_set(struct seqmap *m, uint64_t seq);
/* Bits of `have` below `limit` (all of them when have is NULL) absent from m. */
uint64_t seqmap_missing(const struct seqmap *m, const struct seqmap *have, uint64_t limit);
void seqmap_free(struct seqmap *m);

/* Per publisher, written by its worker. `sent` and `unacked` are polled by
 * the main thread during the drain. */
struct pub_stat {
	_Atomic uint64_t sent;      /* sequence numbers 0..sent-1 were written */
	_Atomic uint32_t unacked;   /* QoS1/2 publishes still in flight */
	struct seqmap acked;        /* QoS1/2: seqs completed by PUBACK/PUBCOMP */
	_Atomic uint64_t acked_n;   /* bits set in acked; polled (plant, sessions) */
	uint64_t rejected;          /* v5 acks with a failure reason code */
};

/* Per subscriber, written by its worker. */
struct sub_stat {
	struct seqmap *seen;        /* [pubs] seqs received from each publisher (drain: [1];
				       sessions: [1], numbered per session, see sess_target) */
	uint64_t dup, received, foreign;
	uint64_t status;            /* plant: retained online/offline messages */
	uint64_t backlog;           /* plant: sent before the historian came back */
	uint64_t backlog_last;      /* plant: when the last of those arrived, us */
	_Atomic uint64_t unique;    /* drain, plant, sessions: distinct messages; polled */
};

struct worker;

struct bench {
	struct bench_opts o;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char addr_text[96];
	uint32_t nconns; /* subs + pubs */

	_Atomic int phase;
	/* Set by the main thread before it stores PH_RUN (release). Fill
	 * measures everything: t0 = t_run, t1 = UINT64_MAX. */
	uint64_t t_run, t0, t1; /* run start, measurement window [t0, t1) in us */

	_Atomic uint32_t subs_ready, pubs_ready, failed;
	_Atomic bool fatal;
	pthread_mutex_t err_lock;
	char err[512];          /* first error, under err_lock */

	struct pub_stat *pub;   /* [pubs] */
	struct sub_stat *sub;   /* [subs] */
	/* [subs * pubs]: 1 + highest seq subscriber s has seen from publisher p.
	 * The window of publisher p is measured against the smallest of them. */
	_Atomic uint64_t *mark;

	struct worker **workers;
	int nworkers;

	/* plant: historian 0's outage, stepped by the main thread (enum
	 * hist_cmd); the worker that owns it answers in hist_state. */
	_Atomic int hist_cmd, hist_state;
	uint64_t t_back;        /* when the reconnect was ordered, us */
};

enum hist_cmd { HIST_ONLINE, HIST_OFFLINE, HIST_RESUME };

/* Shared by the phases of every mode (main.c). */
void bench_set_phase(struct bench *b, enum bench_phase ph);
/* Waits until *count reaches want; 0, or -1 on timeout or a fatal error. */
int bench_wait_ready(struct bench *b, _Atomic uint32_t *count, uint32_t want, const char *what);
void bench_sleep_us(uint64_t us);

/* plant.c: the plant and sessions modes. Each returns the exit code. */
int plant_run(struct bench *b);
int sessions_run(struct bench *b);
/* The plant payload: JSON of exactly `size` bytes carrying the header as
 * hex. Writes into out[size]; size >= PLANT_MIN_SIZE. */
#define PLANT_MIN_SIZE 160
void plant_payload(uint8_t *out, uint32_t size, uint32_t gw, uint64_t seq, uint64_t now_us,
		   uint32_t tags);
/* Reads the header of a plant payload; false when it is not one. */
bool plant_header(const uint8_t *p, uint32_t len, uint32_t *gw, uint64_t *seq, uint64_t *ts);
/* Topic of gateway gw's tag; returns its length (buffer of 64). */
int plant_topic(char *out, size_t n, uint32_t gw, uint32_t tag);
/* --sparkplug NS: gateway gw is edge node gw-P-D of group plant-P. Its
 * topic for type ("NDATA", "NBIRTH", "NDEATH"); returns its length. */
int spb_plant_topic(char *out, size_t n, const char *ns, uint32_t gw, const char *type);
/* An NDATA Payload (hand-encoded protobuf, Sparkplug 3.0) of exactly size
 * bytes: the plant payload (with the header) in its body field first, then
 * timestamp, seq (seq + 1) mod 256 (the NBIRTH has 0) and one metric by alias
 * (the tag + 1) with a Double value. size in [SPB_PLANT_MIN_SIZE, 16000]. */
#define SPB_PLANT_MIN_SIZE (PLANT_MIN_SIZE + 48)
void spb_plant_payload(uint8_t *out, uint32_t size, uint32_t gw, uint64_t seq, uint64_t now_us,
		       uint32_t tags);
/* The NBIRTH: timestamp, seq 0, bdSeq 0 (Int64), Node Control/Rebirth
 * false, a Double metric per tag (at most 64) by name and alias. Returns
 * its length in out[cap], or -1 when cap is too small. */
int spb_plant_nbirth(uint8_t *out, size_t cap, uint32_t tags);
/* The NDEATH will: bdSeq 0 only. */
extern const uint8_t spb_plant_ndeath[13];
/* sessions: message seq of publisher p goes to reader *target as its
 * message number *k (each reader numbers its own from 0). */
void sess_target(const struct bench *b, uint32_t p, uint64_t seq, uint32_t *target, uint64_t *k);

/* probe.c: the broker process and its store, sampled from /proc. */
uint64_t probe_rss_kb(int pid);
/* utime + stime of pid in clock ticks, or -1. */
int64_t probe_cpu_ticks(int pid);
/* Disk usage of a directory tree in bytes (like du), or 0. */
uint64_t probe_dir_bytes(const char *path);
struct probe {
	int pid;
	const char *dir;
	uint64_t t_first, t_last;      /* us */
	int64_t cpu_first, cpu_last;   /* ticks */
	uint64_t rss_max, rss_last;    /* kB */
	uint64_t store_first, store_max, store_last;
	uint32_t n;
};
/* Takes one sample (call about once a second). */
void probe_sample(struct probe *pr);
/* Mean CPU between the first and the last sample, % of one core. */
double probe_cpu_pct(const struct probe *pr);

/* Records the first error (later ones only go to stderr in verbose use).
 * fatal: stop the whole run. */
void bench_error(struct bench *b, bool fatal, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Worker threads. worker_create returns NULL on allocation failure. */
struct worker *worker_create(struct bench *b, int id);
int worker_start(struct worker *w);
void worker_join(struct worker *w);
/* Wakes the worker's loop (after a phase change). Any thread. */
void worker_wake(struct worker *w);
/* Counters merged by the main thread after the join. */
struct worker_totals {
	uint64_t published_win, delivered_win, delivered_total;
	uint64_t last_event;    /* fill: last ack; drain: last new message (us) */
	struct hist lat;        /* publish to delivery */
	struct hist ack;        /* publish to PUBACK (QoS 1) or PUBREC (QoS 2) */
};
void worker_totals_add(const struct worker *w, struct worker_totals *t);
void worker_destroy(struct worker *w);

#endif
