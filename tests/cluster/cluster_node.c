/* fm-cluster-node: one node of a test cluster (src/cluster), driven by
 * tests/cluster/test_*.py. Its state machine checks what the module
 * promises: every entry applied once, in order, with the index done()
 * reported; the same history (a hash chain) on every node.
 *
 * usage: fm-cluster-node --id N --address HOST:PORT --data DIR --out DIR
 *        [--voter N=HOST:PORT]... [--join] [--witness] [--election-ms MS]
 *        [--heartbeat-ms MS] [--snapshot-threshold N] [--snapshot-trailing N]
 *        [--segment-mb MB] [--batch MSGS] [--esize BYTES] [--window N]
 *
 * Commands on stdin, one a line; each result goes to OUT/events-N:
 *   load on|off      propose from a producer thread while leader
 *   bench start      reset the throughput/latency counters
 *   bench report     write OUT/bench-N (msgs/s, entries/s, latency)
 *   add ID HOST:PORT | remove ID | transfer ID   membership (on the leader)
 *   stop             stop the node cleanly and exit 0 (so does SIGTERM)
 * OUT/status-N is rewritten every 20 ms (key value lines, then one
 * "w KEY LAST" line per writer); OUT/cluster-N.json is cluster_status_json.
 * OUT/acks-N gets "KEY LAST" for each acknowledged proposal (appended with
 * write(2), so it survives kill -9 of this process). With FM_CLUSTER_TRACE
 * set, OUT/trace-N gets "INDEX KEY FIRST COUNT" per applied entry. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/log.h"
#include "cluster/cluster.h"

#define MAX_WRITERS 1024
#define RING 8192
#define ENTRY_HEADER 32 /* key u64, first seq u64, count u32, esize u32, t0 u64 */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* --- the checking state machine (loop thread only) --- */
struct writer {
	uint64_t key, last;
};
struct fsm {
	uint64_t last_index, entries, msgs, violations, index_errors, chain;
	unsigned nw;
	struct writer w[MAX_WRITERS];
	struct { uint64_t key, last; } ring[RING]; /* by index % RING: what apply saw */
	unsigned char *snap;                        /* the last snapshot handed out */
};

static struct {
	struct cluster_conf conf;
	char out[1024];
	uv_loop_t *loop;
	struct cluster_node *node;
	struct fsm fsm;
	unsigned batch, esize, window;
	int ackfd;
	uint64_t leader_since_ms, first_commit_ms;
	enum cluster_state state;
	uv_timer_t status_timer;
	uv_pipe_t input;
	uv_signal_t sigterm;
	char line[512];
	size_t line_len;
	bool stopping;
	FILE *trace; /* FM_CLUSTER_TRACE set: OUT/trace-N, one line per applied entry */

	/* producer thread */
	pthread_t producer;
	bool producer_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool load, quit;
	unsigned inflight;
	uint64_t key, next_seq; /* key 0: none (pick a new one when leader) */
	unsigned generation;

	/* bench (loop thread) */
	uint64_t bench_start_ns, bench_msgs, bench_entries;
	uint64_t *lat;
	size_t nlat, caplat;
	uint64_t acked_entries, failed_entries;
} N;

struct pending {
	uint64_t key, first, last, t0;
};

static void event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void event(const char *fmt, ...)
{
	char path[1100];
	snprintf(path, sizeof path, "%s/events-%" PRIu64, N.out, N.conf.node_id);
	FILE *f = fopen(path, "a");
	if (!f)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fclose(f);
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

static struct writer *writer_get(uint64_t key)
{
	for (unsigned i = 0; i < N.fsm.nw; i++)
		if (N.fsm.w[i].key == key)
			return &N.fsm.w[i];
	if (N.fsm.nw == MAX_WRITERS)
		return NULL;
	N.fsm.w[N.fsm.nw] = (struct writer){ key, 0 };
	return &N.fsm.w[N.fsm.nw++];
}

static void on_apply(void *owner, uint64_t index, const void *bytes, size_t len)
{
	const unsigned char *p = bytes;
	if (index <= N.fsm.last_index)
		N.fsm.index_errors++;
	N.fsm.last_index = index;
	N.fsm.chain = fnv(fnv(N.fsm.chain, &index, sizeof index), bytes, len);
	N.fsm.entries++;
	if (len < ENTRY_HEADER) {
		N.fsm.violations++;
		return;
	}
	uint64_t key = get64(p), first = get64(p + 8);
	uint32_t count, esize;
	memcpy(&count, p + 16, 4);
	memcpy(&esize, p + 20, 4);
	if (len != ENTRY_HEADER + (size_t)count * esize || count == 0) {
		N.fsm.violations++;
		return;
	}
	struct writer *w = writer_get(key);
	if (!w) {
		fprintf(stderr, "node %" PRIu64 ": more than %d writers\n", N.conf.node_id, MAX_WRITERS);
		exit(3);
	}
	if (first != w->last + 1) /* a gap or a message applied twice */
		N.fsm.violations++;
	if (first + count - 1 > w->last)
		w->last = first + count - 1;
	N.fsm.msgs += count;
	if (N.trace)
		fprintf(N.trace, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %u\n", index, key, first, count);
	N.fsm.ring[index % RING].key = key;
	N.fsm.ring[index % RING].last = first + count - 1;
}

/* The snapshot: fixed little-endian-on-this-machine u64s, then writers. */
static int on_snapshot(void *owner, uint64_t index, struct cluster_chunk *chunks)
{
	size_t len = 8 * (7 + 2 * (size_t)N.fsm.nw);
	free(N.fsm.snap);
	N.fsm.snap = malloc(len);
	if (!N.fsm.snap)
		return -1;
	uint64_t *v = (uint64_t *)N.fsm.snap;
	v[0] = index;
	v[1] = N.fsm.entries;
	v[2] = N.fsm.msgs;
	v[3] = N.fsm.violations;
	v[4] = N.fsm.index_errors;
	v[5] = N.fsm.chain;
	v[6] = N.fsm.nw;
	for (unsigned i = 0; i < N.fsm.nw; i++) {
		v[7 + 2 * i] = N.fsm.w[i].key;
		v[8 + 2 * i] = N.fsm.w[i].last;
	}
	chunks[0].base = N.fsm.snap;
	chunks[0].len = len;
	return 1;
}

static int on_restore(void *owner, uint64_t index, const void *bytes, size_t len)
{
	if (len < 56 || len % 8)
		return -1;
	uint64_t v[7];
	memcpy(v, bytes, sizeof v);
	if (v[6] > MAX_WRITERS || len != 8 * (7 + 2 * v[6]) || v[0] != index)
		return -1;
	N.fsm.last_index = index;
	N.fsm.entries = v[1];
	N.fsm.msgs = v[2];
	N.fsm.violations = v[3];
	N.fsm.index_errors = v[4];
	N.fsm.chain = v[5];
	N.fsm.nw = (unsigned)v[6];
	const unsigned char *w = (const unsigned char *)bytes + 56;
	for (unsigned i = 0; i < N.fsm.nw; i++) {
		N.fsm.w[i].key = get64(w + 16 * i);
		N.fsm.w[i].last = get64(w + 16 * i + 8);
	}
	event("restored %" PRIu64, index);
	return 0;
}

static void on_done(void *owner, void *token, uint64_t index, int err)
{
	struct pending *p = token;
	uint64_t t1 = now_ns();
	if (err == 0) {
		/* The index done() reports is the one apply saw for this entry. */
		if (N.fsm.ring[index % RING].key != p->key || N.fsm.ring[index % RING].last != p->last)
			N.fsm.index_errors++;
		char rec[64];
		int n = snprintf(rec, sizeof rec, "%" PRIu64 " %" PRIu64 "\n", p->key, p->last);
		if (write(N.ackfd, rec, (size_t)n) != n)
			perror("acks");
		if (!N.first_commit_ms)
			N.first_commit_ms = t1 / 1000000;
		N.acked_entries++;
		if (N.bench_start_ns && p->t0 >= N.bench_start_ns) {
			if (N.nlat == N.caplat) {
				N.caplat = N.caplat ? 2 * N.caplat : 65536;
				N.lat = realloc(N.lat, N.caplat * sizeof *N.lat);
			}
			N.lat[N.nlat++] = t1 - p->t0;
			N.bench_msgs += p->last - p->first + 1;
			N.bench_entries++;
		}
	} else {
		if (N.failed_entries++ < 5)
			event("proposal %" PRIu64 "/%" PRIu64 ": %s", p->key, p->last, cluster_strerror(err));
	}
	pthread_mutex_lock(&N.lock);
	N.inflight--;
	if (err && N.key == p->key)
		N.key = 0; /* this writer's sequence may have a hole now: start another */
	pthread_cond_broadcast(&N.cond);
	pthread_mutex_unlock(&N.lock);
	free(p);
}

static void on_role(void *owner, enum cluster_state state, uint64_t leader, const char *address)
{
	if (state == CLUSTER_LEADER && N.state != CLUSTER_LEADER) {
		N.leader_since_ms = now_ns() / 1000000;
		N.first_commit_ms = 0;
	}
	N.state = state;
	event("state %s leader %" PRIu64 " at %" PRIu64, cluster_state_name(state), leader, now_ns() / 1000000);
}

/* --- producer thread: what a store writer's clients would be --- */
static void *produce(void *arg)
{
	unsigned char *buf = malloc(ENTRY_HEADER + (size_t)N.batch * N.esize);
	pthread_mutex_lock(&N.lock);
	while (!N.quit) {
		if (!N.load || N.inflight >= N.window || !cluster_is_leader(N.node)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&N.cond, &N.lock, &ts);
			continue;
		}
		if (N.key == 0) {
			struct cluster_status st;
			cluster_status(N.node, &st);
			N.key = N.conf.node_id << 48 | (st.term & 0xffffffffu) << 16 | (++N.generation & 0xffffu);
			N.next_seq = 0;
		}
		struct pending *p = malloc(sizeof *p);
		p->key = N.key;
		p->first = N.next_seq + 1;
		p->last = N.next_seq + N.batch;
		p->t0 = now_ns();
		uint32_t count = N.batch, esize = N.esize;
		memcpy(buf, &p->key, 8);
		memcpy(buf + 8, &p->first, 8);
		memcpy(buf + 16, &count, 4);
		memcpy(buf + 20, &esize, 4);
		memcpy(buf + 24, &p->t0, 8);
		memset(buf + ENTRY_HEADER, 0xab, (size_t)count * esize);
		N.inflight++;
		/* Once proposed, p is done()'s: it may be freed before we look again. */
		uint64_t key = p->key, last = p->last;
		pthread_mutex_unlock(&N.lock);
		int rc = cluster_propose(N.node, buf, ENTRY_HEADER + (size_t)count * esize, p);
		pthread_mutex_lock(&N.lock);
		if (rc) {
			N.inflight--;
			if (N.key == key)
				N.key = 0;
			free(p);
		} else if (N.key == key) {
			N.next_seq = last;
		}
	}
	pthread_mutex_unlock(&N.lock);
	free(buf);
	return NULL;
}

/* --- status and bench files --- */
static void write_atomic(const char *name, const char *text)
{
	char tmp[1200], fin[1200];
	snprintf(tmp, sizeof tmp, "%s/.%s.tmp", N.out, name);
	snprintf(fin, sizeof fin, "%s/%s", N.out, name);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
	rename(tmp, fin);
}

static void status_tick(uv_timer_t *t)
{
	struct cluster_status st;
	cluster_status(N.node, &st);
	static char text[1 << 16];
	int len = snprintf(text, sizeof text,
			   "now_ms %" PRIu64 "\npid %d\nstate %d\nterm %" PRIu64 "\nleader %" PRIu64
			   "\ncommit %" PRIu64 "\napplied %" PRIu64 "\nlast_index %" PRIu64
			   "\nfsm_index %" PRIu64 "\nentries %" PRIu64 "\nmsgs %" PRIu64 "\nviolations %" PRIu64
			   "\nindex_errors %" PRIu64 "\nchain %" PRIu64 "\nsnapshots %" PRIu64
			   "\nrestores %" PRIu64 "\nleader_since_ms %" PRIu64 "\nfirst_commit_ms %" PRIu64
			   "\nacked_entries %" PRIu64 "\nfailed_entries %" PRIu64 "\n",
			   now_ns() / 1000000, (int)getpid(), (int)st.state, st.term, st.leader_id,
			   st.commit_index, st.applied_index, st.last_index, N.fsm.last_index, N.fsm.entries,
			   N.fsm.msgs, N.fsm.violations, N.fsm.index_errors, N.fsm.chain, st.snapshots,
			   st.restores, N.leader_since_ms, N.first_commit_ms, N.acked_entries, N.failed_entries);
	for (unsigned i = 0; i < N.fsm.nw && len > 0 && (size_t)len < sizeof text - 64; i++)
		len += snprintf(text + len, sizeof text - (size_t)len, "w %" PRIu64 " %" PRIu64 "\n", N.fsm.w[i].key,
				N.fsm.w[i].last);
	char name[64];
	snprintf(name, sizeof name, "status-%" PRIu64, N.conf.node_id);
	write_atomic(name, text);
	if (cluster_status_json(&st, text, sizeof text) > 0) {
		snprintf(name, sizeof name, "cluster-%" PRIu64 ".json", N.conf.node_id);
		write_atomic(name, text);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void bench_report(void)
{
	double secs = (now_ns() - N.bench_start_ns) / 1e9;
	if (N.nlat)
		qsort(N.lat, N.nlat, sizeof *N.lat, cmp_u64);
#define PCT(q) (N.nlat ? N.lat[(size_t)((N.nlat - 1) * (q))] / 1e3 : 0.0)
	char text[512], name[64];
	snprintf(text, sizeof text,
		 "secs %.3f\nmsgs %" PRIu64 "\nentries %" PRIu64 "\nmsgs_per_s %.0f\nentries_per_s %.0f\n"
		 "lat_us_p50 %.0f\nlat_us_p99 %.0f\nlat_us_max %.0f\n",
		 secs, N.bench_msgs, N.bench_entries, N.bench_msgs / secs, N.bench_entries / secs, PCT(0.5),
		 PCT(0.99), PCT(1.0));
	snprintf(name, sizeof name, "bench-%" PRIu64, N.conf.node_id);
	write_atomic(name, text);
}

/* --- commands --- */
static void change_done(void *arg, int err)
{
	event("%s %d %s", (const char *)arg, err, err ? cluster_strerror(err) : "ok");
}

static void stopped(void *arg)
{
	event("stopped");
	uv_close((uv_handle_t *)&N.status_timer, NULL);
	uv_close((uv_handle_t *)&N.input, NULL);
	uv_close((uv_handle_t *)&N.sigterm, NULL);
}

static void stop_node(void)
{
	if (N.stopping)
		return;
	N.stopping = true;
	pthread_mutex_lock(&N.lock);
	N.quit = true;
	pthread_cond_broadcast(&N.cond);
	pthread_mutex_unlock(&N.lock);
	if (N.producer_started)
		pthread_join(N.producer, NULL);
	uv_timer_stop(&N.status_timer);
	status_tick(&N.status_timer);
	cluster_stop(N.node, stopped, NULL);
}

static void command(char *line)
{
	char a[64] = "", b[CLUSTER_ADDRESS_MAX] = "";
	unsigned long long id = 0;
	int rc = 0;
	if (strcmp(line, "load on") == 0 || strcmp(line, "load off") == 0) {
		pthread_mutex_lock(&N.lock);
		N.load = line[6] == 'n';
		pthread_cond_broadcast(&N.cond);
		pthread_mutex_unlock(&N.lock);
		event("%s", line);
	} else if (strcmp(line, "bench start") == 0) {
		N.bench_start_ns = now_ns();
		N.bench_msgs = N.bench_entries = 0;
		N.nlat = 0;
		event("%s", line);
	} else if (strcmp(line, "bench report") == 0) {
		bench_report();
		event("%s", line);
	} else if (sscanf(line, "add %llu %271s", &id, b) == 2) {
		rc = cluster_add(N.node, id, b, change_done, "add");
		if (rc)
			event("add %d %s", rc, cluster_strerror(rc));
	} else if (sscanf(line, "remove %llu", &id) == 1) {
		rc = cluster_remove(N.node, id, change_done, "remove");
		if (rc)
			event("remove %d %s", rc, cluster_strerror(rc));
	} else if (sscanf(line, "transfer %llu", &id) == 1) {
		rc = cluster_transfer(N.node, id, change_done, "transfer");
		if (rc)
			event("transfer %d %s", rc, cluster_strerror(rc));
	} else if (strcmp(line, "stop") == 0) {
		stop_node();
	} else if (sscanf(line, "%63s", a) == 1) {
		event("unknown command: %s", line);
	}
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char space[4096];
	buf->base = space;
	buf->len = sizeof space;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	if (nread < 0) { /* the orchestrator went away: stop */
		uv_read_stop(s);
		stop_node();
		return;
	}
	for (ssize_t i = 0; i < nread; i++) {
		char c = buf->base[i];
		if (c == '\n') {
			N.line[N.line_len] = '\0';
			N.line_len = 0;
			if (!N.stopping)
				command(N.line);
		} else if (N.line_len < sizeof N.line - 1) {
			N.line[N.line_len++] = c;
		}
	}
}

static void sigterm_cb(uv_signal_t *s, int sig)
{
	stop_node();
}

static unsigned long arg_num(const char *opt, const char *v)
{
	char *end;
	errno = 0;
	unsigned long x = strtoul(v, &end, 10);
	if (errno || *end || end == v) {
		fprintf(stderr, "fm-cluster-node: %s: not a number: %s\n", opt, v);
		exit(2);
	}
	return x;
}

int main(int argc, char **argv)
{
	struct cluster_conf *c = &N.conf;
	N.batch = 64;
	N.esize = 200;
	N.window = 8;
	static char data[4096];
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		char err[200];
		if (!strcmp(o, "--join")) {
			c->join = true;
			continue;
		}
		if (!strcmp(o, "--witness")) {
			c->role = CLUSTER_ROLE_WITNESS;
			continue;
		}
		if (!v) {
			fprintf(stderr, "fm-cluster-node: %s needs a value\n", o);
			return 2;
		}
		i++;
		if (!strcmp(o, "--id"))
			c->node_id = arg_num(o, v);
		else if (!strcmp(o, "--address"))
			snprintf(c->address, sizeof c->address, "%s", v);
		else if (!strcmp(o, "--data"))
			snprintf(data, sizeof data, "%s", v);
		else if (!strcmp(o, "--out"))
			snprintf(N.out, sizeof N.out, "%s", v);
		else if (!strcmp(o, "--voter")) {
			if (c->n_voters == CLUSTER_MAX_NODES) {
				fprintf(stderr, "fm-cluster-node: at most %d voters\n", CLUSTER_MAX_NODES);
				return 2;
			}
			if (cluster_peer_parse(v, &c->voters[c->n_voters++], err, sizeof err)) {
				fprintf(stderr, "fm-cluster-node: --voter: %s\n", err);
				return 2;
			}
		} else if (!strcmp(o, "--election-ms"))
			c->election_timeout_ms = (unsigned)arg_num(o, v);
		else if (!strcmp(o, "--heartbeat-ms"))
			c->heartbeat_ms = (unsigned)arg_num(o, v);
		else if (!strcmp(o, "--snapshot-threshold"))
			c->snapshot_threshold = (unsigned)arg_num(o, v);
		else if (!strcmp(o, "--snapshot-trailing"))
			c->snapshot_trailing = (unsigned)arg_num(o, v);
		else if (!strcmp(o, "--segment-mb"))
			c->segment_size = (size_t)arg_num(o, v) << 20;
		else if (!strcmp(o, "--batch"))
			N.batch = (unsigned)arg_num(o, v);
		else if (!strcmp(o, "--esize"))
			N.esize = (unsigned)arg_num(o, v);
		else if (!strcmp(o, "--window"))
			N.window = (unsigned)arg_num(o, v);
		else {
			fprintf(stderr, "fm-cluster-node: unknown option %s\n", o);
			return 2;
		}
	}
	if (!*N.out || N.batch == 0 || N.esize == 0 || N.window == 0) {
		fprintf(stderr, "fm-cluster-node: --out, and --batch/--esize/--window above 0, are needed\n");
		return 2;
	}
	c->data_dir = data;
	signal(SIGPIPE, SIG_IGN); /* a peer that died mid-write is raft's to handle */
	log_open(true, NULL, false);
	char path[1100];
	snprintf(path, sizeof path, "%s/acks-%" PRIu64, N.out, c->node_id);
	N.ackfd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (N.ackfd < 0) {
		perror(path);
		return 1;
	}
	if (getenv("FM_CLUSTER_TRACE")) {
		snprintf(path, sizeof path, "%s/trace-%" PRIu64, N.out, c->node_id);
		N.trace = fopen(path, "a");
	}
	pthread_mutex_init(&N.lock, NULL);
	pthread_cond_init(&N.cond, NULL);
	N.loop = uv_default_loop();

	struct cluster_callbacks cb = {
		.owner = NULL, .apply = on_apply, .done = on_done, .snapshot = on_snapshot,
		.restore = on_restore, .role_changed = on_role,
	};
	char err[512];
	int rc = cluster_start(N.loop, c, &cb, &N.node, err, sizeof err);
	if (rc) {
		fprintf(stderr, "fm-cluster-node: %s\n", err);
		return 1;
	}
	uv_timer_init(N.loop, &N.status_timer);
	uv_timer_start(&N.status_timer, status_tick, 0, 20);
	uv_pipe_init(N.loop, &N.input, 0);
	if (uv_pipe_open(&N.input, 0) == 0)
		uv_read_start((uv_stream_t *)&N.input, alloc_cb, read_cb);
	uv_signal_init(N.loop, &N.sigterm);
	uv_signal_start(&N.sigterm, sigterm_cb, SIGTERM);
	if (c->role == CLUSTER_ROLE_BROKER) {
		pthread_create(&N.producer, NULL, produce, NULL);
		N.producer_started = true;
	}
	event("started pid %d", (int)getpid());
	uv_run(N.loop, UV_RUN_DEFAULT);
	uv_loop_close(N.loop);
	free(N.fsm.snap);
	free(N.lat);
	close(N.ackfd);
	return 0;
}
