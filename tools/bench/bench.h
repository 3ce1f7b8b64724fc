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

enum bench_mode { BENCH_FANIN, BENCH_FANOUT, BENCH_IDLE, BENCH_LATENCY, BENCH_FILL, BENCH_DRAIN };

/* Phases, stepped forward only by the main thread. */
enum bench_phase {
	PH_CONNECT_SUBS, /* connect + subscribe every subscriber */
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
	uint64_t messages;  /* fill: total to publish; drain: expected per session */
	int threads;
	bool json;
	bool persistent;    /* subscribers keep their session (durable store path) */
	int pid;            /* broker pid for RSS (idle), 0 = none */
	const char *filter;
	uint16_t keepalive;
};

/* Client id prefix of the sessions fill leaves behind and drain resumes. */
#define BENCH_FILL_ID "fmb-fill-s"


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
	uint64_t rejected;          /* v5 acks with a failure reason code */
};

/* Per subscriber, written by its worker. */
struct sub_stat {
	struct seqmap *seen;        /* [pubs] seqs received from each publisher (drain: [1]) */
	uint64_t dup, received, foreign;
	_Atomic uint64_t unique;    /* drain: distinct seqs below messages; polled */
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
};

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
