/* Declarations shared by collect/'s own files. */
#ifndef FM_COLLECT_INTERNAL_H
#define FM_COLLECT_INTERNAL_H
#include "collect.h"
#include "tag.h"
/* A tag's windows are the bridge's own (pure, no bridge state): collect
 * comes after bridge in ARCHITECTURE.md's order, so one module serves both. */
#include "../bridge/aggregate.h"
#include <modbus.h>
#include <pthread.h>
#include <stdatomic.h>

/* Poll batches of one device not yet committed; a poll due while this many
 * wait is counted late and skipped (the store is behind). */
#define COLLECT_MAX_INFLIGHT 16
/* Write requests waiting for one device; more are refused. */
#define COLLECT_MAX_WRITES 64

struct atomic_hist {
	atomic_uint_fast64_t count, sum_us;
	atomic_uint_fast64_t buckets[COLLECT_HIST_BUCKETS + 1];
};
void hist_add(struct atomic_hist *h, uint64_t us);
void hist_copy(const struct atomic_hist *h, struct collect_hist *out);

/* Runtime state of one tag (its device thread's only). */
struct ctag {
	const struct modbus_tag_conf *conf;
	char *topic;          /* PREFIX/NAME, owned */
	struct tag_last last; /* what was last published */
	int exception;        /* Modbus exception code of the last read, 0: none */
	struct agg_window *agg; /* tag_aggregate: the open window, owned; NULL: not aggregated */
	char *agg_topic;      /* tag_aggregate: where summaries go (topic + tag_aggregate_suffix), owned */
};

/* The tags of one device polled at one interval, and their requests. */
struct cgroup {
	uint32_t interval_ms;
	uint64_t next_ns;        /* monotonic time of the next poll */
	uint32_t *idx;           /* tag indices (into the device's tags), planned order */
	uint32_t n;
	struct tag_request *req;
	bool *split;             /* per request: read its tags one by one (an exception hit a joined read) */
	uint32_t n_req;
};

/* A write request handed over by a worker. */
struct cwrite {
	struct cwrite *next;
	uint32_t tag;
	char *client_id, *username;   /* owned; username may be NULL */
	char *response_topic;         /* owned; NULL: PREFIX/TAG/set/result */
	uint8_t *correlation;         /* owned; NULL: none */
	uint32_t correlation_len;
	uint32_t payload_len;
	uint8_t payload[];
};

struct cbatch;
struct cspb;

struct cdevice {
	struct collector *col;
	const struct modbus_device_conf *conf;
	const struct modbus_tag_conf *tag_confs; /* conf->n_tags of them */
	unsigned index;
	struct ctag *tags;
	struct cgroup *groups;
	uint32_t n_groups;
	struct cspb *spb;        /* modbus_format sparkplug (spb.c); NULL: json */
	char client_id[80];      /* modbus/NAME: the ACL's %c */
	char *status_topic;      /* PREFIX/status */

	pthread_t thread;
	bool started;
	pthread_mutex_t lock;    /* guards the fields below up to the counters */
	pthread_cond_t cond;
	bool stop;
	struct cwrite *writes, **writes_tail;
	uint32_t n_writes;
	int sock;                /* the connection's socket while connected, for stop; -1 */
	uint32_t state;          /* enum collect_state */
	uint64_t since_ms;
	char last_error[160];

	/* The device thread's own. */
	modbus_t *mb;
	struct cbatch *cur_batch; /* of the poll running, NULL between polls */
	uint64_t agg_due_ms;     /* wall clock: no aggregated tag's window ends before; 0: none aggregates */
	uint32_t fail_streak;    /* failed requests or connects in a row */
	uint32_t backoff_ms;
	uint64_t retry_ns;       /* no connection attempt before */

	/* Counters: written by the device thread and the workers, read by anyone. */
	atomic_uint inflight;    /* batches not yet committed */
	atomic_bool resend;      /* a batch failed to commit: publish every tag again */
	atomic_bool refused_logged;
	atomic_uint_fast64_t last_success_ms;
	atomic_uint_fast64_t polls, polls_failed, polls_late, requests, requests_failed, exceptions;
	atomic_uint_fast64_t readings, readings_committed, readings_refused, readings_lost;
	atomic_uint_fast64_t writes_done, writes_failed, connects, offline_episodes;
	atomic_uint_fast64_t cpu_ns; /* the device thread's CPU time (CLOCK_THREAD_CPUTIME_ID) */
	struct atomic_hist request_latency, poll_jitter, poll_commit;
};

struct collector {
	struct broker *b;
	struct collect_port port;
	struct cdevice *devices;
	unsigned n_devices;
	struct edge_port edge;   /* for the Sparkplug edge node's session (spb.c) */
	atomic_uint spb_seq;     /* seq of the local Sparkplug messages */
	/* Set topics of every tag, sorted, for the workers' lookups. */
	struct set_entry {
		const char *topic; /* PREFIX/TAG/set, owned */
		uint32_t len;
		uint32_t device, tag;
	} *sets;
	uint32_t n_sets;
};

uint64_t collect__now_ns(void);
/* The thread of one device (device.c). */
void *collect__device_main(void *arg);
/* Sets the device's state, publishing its retained status when it changed
 * (device thread). */
void collect__set_state(struct cdevice *d, uint32_t state, const char *error);
/* The waiting write requests, in order (collect.c); each is freed with
 * collect__write_free. */
struct cwrite *collect__take_writes(struct cdevice *d);
void collect__write_free(struct cwrite *w);
/* Queues a write of payload (tag_parse_write's text) to tag of d for
 * client_id, from any thread. Returns 0, -FM_ENOMEM or -FM_ELIMIT (too
 * many waiting; logged and counted). */
int collect__write_enqueue(struct cdevice *d, uint32_t tag, const char *client_id, const uint8_t *payload,
			   uint32_t len);

/* ---- spb.c: modbus_format sparkplug ---- */

/* Creates the Sparkplug state of the devices that have it and connects
 * them to the edge node's session. Returns 0 or -FM_ENOMEM. */
int collect__spb_init(struct collector *c);
void collect__spb_free(struct collector *c);
/* Device thread: tag t read v (NULL: bad) at ts_ms; and it passed report
 * by exception (it goes in this poll's DDATA). */
void collect__spb_reading(struct cdevice *d, const struct ctag *t, const struct tag_value *v, uint64_t ts_ms);
void collect__spb_changed(struct cdevice *d, const struct ctag *t);
/* Device thread, at the end of a poll: the topic of the message it
 * publishes (its DBIRTH after coming online, else a DDATA of the changes),
 * or NULL; then its payload. */
const char *collect__spb_due(struct cdevice *d);
int collect__spb_encode_due(struct cdevice *d, struct buf *out);
/* Device thread, the device's state changed: the DDEATH topic when it is
 * to be published (offline after a birth), else NULL; then its payload. */
const char *collect__spb_state(struct cdevice *d, uint32_t state);
int collect__spb_encode_ddeath(struct cdevice *d, struct buf *out);

#endif
