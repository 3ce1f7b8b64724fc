/* ferromq-bench: MQTT load generator.
 *
 *   ferromq-bench fanin|fanout|idle|latency|fill|drain [options]
 *
 * The main thread parses the options, steps the phases (subscribers, then
 * publishers, run, drain, stop), and reports; see bench.h for the threads.
 */
#include "bench.h"
#include "base/clock.h"
#include "base/err.h"
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char *const mode_names[] = {"fanin", "fanout", "idle", "latency", "fill", "drain",
					  "plant", "sessions"};
#define N_MODES (sizeof(mode_names) / sizeof(mode_names[0]))

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ferromq-bench fanin|fanout|idle|latency|fill|drain|plant|sessions [options]\n"
		"  fanin    P publishers -> S subscribers on a wildcard (default 8 -> 1)\n"
		"  fanout   1 publisher -> S subscribers (default 1 -> 50)\n"
		"  idle     N connections, one subscription each, held --duration s\n"
		"  latency  steady --rate (0: ping-pong), 1 -> 1, end-to-end latency\n"
		"  fill     S sessions " BENCH_FILL_ID "0.. subscribe and disconnect, then P publishers\n"
		"           (default 8) publish --messages N in all for them (QoS 1 by default)\n"
		"  drain    the S sessions reconnect and receive; each must get all N\n"
		"           (exit 3 on loss); --drain S: give up after S s without progress (30)\n"
		"options:\n"
		"  --host H (127.0.0.1)  --port N (1883)  --protocol 4|5 (4)\n"
		"  --qos 0|1|2 (0)  --size BYTES (200, >= %d)  --inflight N (64)\n"
		"  --window N     messages a publisher may have out that not every\n"
		"                 subscriber has received yet (default: --inflight, or one\n"
		"                 second's worth at --rate; latency without --rate: 1; 0 = off)\n"
		"  --rate MSG/S   total over all publishers, 0 = as fast as possible\n"
		"  --duration S (10)  --warmup S (2)  --drain S (5)  --connect-timeout S (60)\n"
		"  --pubs P  --subs S  --conns N (idle)  --threads N (1)  --messages N (fill, drain)\n"
		"  --filter F (bench/#)  --keepalive S (60)  --pid PID (broker, idle RSS)\n"
		"  --json         print one JSON object instead of the text line\n"
		"  --persistent   subscribers keep their sessions (v3 clean session 0, v5 expiry 300 s)\n"
		"plant: G gateways (gw-P-D, persistent, will + retained status) publish T tags each\n"
		"  every --interval ms, QoS 1, JSON payloads, to plants/P/devices/D/tags/T; H historians\n"
		"  (persistent) take plants/+/devices/+/#; reports rate, loss, latency and the broker's\n"
		"  RSS, CPU and store once a second\n"
		"  --profile small|medium|large  10x50, 50x100, 200x200 at 1000 ms, 1 historian\n"
		"  --gateways G (10)  --tags T (50)  --interval MS (1000)  --historians H (1)\n"
		"  --share GROUP  historians subscribe to $share/GROUP/plants/+/devices/+/#\n"
		"  --offline-after S --offline-for S  historian 0 leaves after S s, returns and drains\n"
		"                 (an outage that outlasts the run ends when the gateways stop)\n"
		"  --messages N   the gateways stop after N messages in all (default: at --duration)\n"
		"  --sparkplug NS the gateways are Sparkplug B edge nodes plant-P/gw-P-D under namespace NS:\n"
		"                 NDEATH will (bdSeq 0), an NBIRTH (seq 0) once connected, then NDATA QoS 1 of\n"
		"                 --size bytes (seq 1, 2, ... mod 256; one metric by alias; the bench header\n"
		"                 in the body field); historians take NS/+/NDATA/+\n"
		"  --pid PID  --store-dir DIR  the broker and its persistence_location, sampled\n"
		"sessions: create --sessions N (100000) stored sessions with %d subscriptions each,\n"
		"  --batch B (1000) handshakes at a time; --connected C (5000) of them come back and\n"
		"  receive --rate M (10000) msg/s QoS 1 from --pubs P (4) for --duration s\n",
		BENCH_HDR, BENCH_SESS_FILTERS);
}

void bench_error(struct bench *b, bool fatal, const char *fmt, ...)
{
	pthread_mutex_lock(&b->err_lock);
	if (!b->err[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(b->err, sizeof(b->err), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&b->err_lock);
	if (fatal)
		atomic_store(&b->fatal, true);
}

static int parse_num(const char *name, const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "ferromq-bench: --%s: '%s' is not a number in [%g, %g]\n", name, s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

/* plant: the profile, then explicit counts over it; the rate follows.
 * Returns 0, or -1 after printing why. */
static int parse_plant(struct bench_opts *o, const char *profile, double pubs, double subs, double tags,
		       double interval)
{
	static const struct { const char *name; uint32_t gateways, tags; } profiles[] = {
		{"small", 10, 50}, {"medium", 50, 100}, {"large", 200, 200},
	};
	uint32_t g = 10, t = 50;
	if (profile) {
		size_t i = 0;
		while (i < sizeof(profiles) / sizeof(profiles[0]) && strcmp(profiles[i].name, profile))
			i++;
		if (i == sizeof(profiles) / sizeof(profiles[0])) {
			fprintf(stderr, "ferromq-bench: --profile: '%s' is not small, medium or large\n", profile);
			return -1;
		}
		g = profiles[i].gateways;
		t = profiles[i].tags;
	}
	o->pubs = pubs >= 0 ? (uint32_t)pubs : g;
	o->subs = subs >= 0 ? (uint32_t)subs : 1;
	o->tags = tags >= 0 ? (uint32_t)tags : t;
	o->interval_ms = interval >= 0 ? interval : 1000;
	o->rate = (double)o->pubs * o->tags * 1000.0 / o->interval_ms;
	o->persistent = true;
	o->profile = profile;
	if (o->sparkplug && (o->size < SPB_PLANT_MIN_SIZE || o->size > 16000 || !o->sparkplug[0] ||
			     strlen(o->sparkplug) > 24 || strpbrk(o->sparkplug, "/+#"))) {
		fprintf(stderr, "ferromq-bench: --sparkplug needs one topic level of at most 24 bytes and "
			"%d <= --size <= 16000\n", SPB_PLANT_MIN_SIZE);
		return -1;
	}
	if (o->size < PLANT_MIN_SIZE) {
		fprintf(stderr, "ferromq-bench: plant payloads need --size >= %d\n", PLANT_MIN_SIZE);
		return -1;
	}
	if ((o->offline_after > 0 || o->offline_for > 0) && !(o->offline_for > 0)) {
		fprintf(stderr, "ferromq-bench: --offline-after needs --offline-for\n");
		return -1;
	}
	return 0;
}

/* Fills b->o from argv. Returns 0, or -1 after printing why. */
static int parse_args(struct bench *b, int argc, char **argv)
{
	struct bench_opts *o = &b->o;
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return -1;
	}
	int mode = -1;
	for (int i = 0; i < (int)N_MODES; i++)
		if (!strcmp(argv[1], mode_names[i]))
			mode = i;
	if (mode < 0) {
		fprintf(stderr, "ferromq-bench: unknown scenario '%s'\n", argv[1]);
		usage(stderr);
		return -1;
	}
	*o = (struct bench_opts){
		.mode = (enum bench_mode)mode, .host = "127.0.0.1", .port = 1883, .qos = 0,
		.protocol = MQTT_V311, .size = 200, .inflight = 64, .duration = 10, .warmup = 2,
		.drain = 5, .connect_timeout = 60, .threads = 1, .filter = "bench/#", .keepalive = 60,
	};
	double pubs = -1, subs = -1, window = -1, qos = -1, drain = -1, rate = -1, timeout = -1;
	double tags = -1, interval = -1;
	const char *profile = NULL;
	static const struct option longopts[] = {
		{"host", 1, 0, 'H'}, {"port", 1, 0, 'p'}, {"qos", 1, 0, 'q'}, {"size", 1, 0, 's'},
		{"inflight", 1, 0, 'i'}, {"window", 1, 0, 'W'}, {"duration", 1, 0, 'd'},
		{"warmup", 1, 0, 'w'}, {"drain", 1, 0, 'D'}, {"rate", 1, 0, 'r'},
		{"protocol", 1, 0, 'V'}, {"pubs", 1, 0, 'P'}, {"subs", 1, 0, 'S'},
		{"conns", 1, 0, 'S'}, {"threads", 1, 0, 't'}, {"json", 0, 0, 'j'},
		{"pid", 1, 0, 'I'}, {"filter", 1, 0, 'f'}, {"keepalive", 1, 0, 'k'},
		{"connect-timeout", 1, 0, 'c'}, {"persistent", 0, 0, 'X'}, {"messages", 1, 0, 'n'},
		{"gateways", 1, 0, 'P'}, {"historians", 1, 0, 'S'}, {"tags", 1, 0, 'T'},
		{"interval", 1, 0, 'J'}, {"share", 1, 0, 'g'}, {"offline-after", 1, 0, 'a'},
		{"offline-for", 1, 0, 'b'}, {"store-dir", 1, 0, 'o'}, {"profile", 1, 0, 'R'},
		{"sessions", 1, 0, 'N'}, {"connected", 1, 0, 'C'}, {"batch", 1, 0, 'B'},
		{"sparkplug", 1, 0, 'K'},
		{"help", 0, 0, 'h'}, {0, 0, 0, 0},
	};
	int ch;
	double v;
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		const char *name = "";
		for (const struct option *lo = longopts; lo->name; lo++)
			if (lo->val == ch)
				name = lo->name;
		switch (ch) {
		case 'H': o->host = optarg; continue;
		case 'f': o->filter = optarg; continue;
		case 'j': o->json = true; continue;
		case 'X': o->persistent = true; continue;
		case 'g': o->share = optarg; continue;
		case 'K': o->sparkplug = optarg; continue;
		case 'o': o->store_dir = optarg; continue;
		case 'R': profile = optarg; continue;
		case 'h': usage(stdout); return -1;
		case '?': usage(stderr); return -1;
		default: break;
		}
		static const struct { int ch; double lo, hi; } bounds[] = {
			{'p', 1, 65535}, {'q', 0, 2}, {'s', BENCH_HDR, 1 << 20}, {'i', 1, 65535},
			{'W', 0, 1e9}, {'d', 0.1, 86400}, {'w', 0, 3600}, {'D', 0, 600}, {'r', 0, 1e8},
			{'V', 4, 5}, {'P', 0, 100000}, {'S', 0, 100000}, {'t', 1, 64},
			{'I', 1, 1 << 22}, {'k', 0, 65535}, {'c', 1, 3600}, {'n', 1, 1e10},
			{'T', 1, 100000}, {'J', 1, 3600000}, {'a', 0, 86400}, {'b', 0, 86400},
			{'N', 1, 10000000}, {'C', 1, 10000000}, {'B', 1, 100000},
		};
		double lo = 0, hi = 0;
		for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++)
			if (bounds[i].ch == ch) {
				lo = bounds[i].lo;
				hi = bounds[i].hi;
			}
		if (parse_num(name, optarg, lo, hi, &v) < 0)
			return -1;
		switch (ch) {
		case 'p': o->port = (uint16_t)v; break;
		case 'q': qos = v; break;
		case 's': o->size = (uint32_t)v; break;
		case 'i': o->inflight = (uint32_t)v; break;
		case 'W': window = v; break;
		case 'd': o->duration = v; break;
		case 'w': o->warmup = v; break;
		case 'D': drain = v; break;
		case 'r': rate = v; break;
		case 'V': o->protocol = (uint8_t)v; break;
		case 'P': pubs = v; break;
		case 'S': subs = v; break;
		case 't': o->threads = (int)v; break;
		case 'I': o->pid = (int)v; break;
		case 'k': o->keepalive = (uint16_t)v; break;
		case 'c': timeout = v; break;
		case 'n': o->messages = (uint64_t)v; break;
		case 'T': tags = v; break;
		case 'J': interval = v; break;
		case 'a': o->offline_after = v; break;
		case 'b': o->offline_for = v; break;
		case 'N': o->sessions = (uint32_t)v; break;
		case 'C': o->readers = (uint32_t)v; break;
		case 'B': o->batch = (uint32_t)v; break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ferromq-bench: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	static const uint32_t def_pubs[] = {8, 1, 0, 1, 8, 0, 10, 4}, def_subs[] = {1, 50, 1000, 1, 1, 1, 1, 0};
	bool fill = o->mode == BENCH_FILL, store = fill || o->mode == BENCH_DRAIN;
	bool plant = o->mode == BENCH_PLANT, sess = o->mode == BENCH_SESSIONS;
	o->pubs = pubs >= 0 ? (uint32_t)pubs : def_pubs[o->mode];
	o->subs = subs >= 0 ? (uint32_t)subs : def_subs[o->mode];
	o->qos = qos >= 0 ? (uint8_t)qos : fill || plant || sess ? 1 : 0;
	o->drain = drain >= 0 ? drain : store || plant || sess ? 30 : 5;
	o->rate = rate >= 0 ? rate : sess ? 10000 : 0;
	o->connect_timeout = timeout >= 0 ? timeout : sess ? 900 : 60;
	if (plant && parse_plant(o, profile, pubs, subs, tags, interval) < 0)
		return -1;
	if (!plant && (profile || tags >= 0 || interval >= 0 || o->share || o->offline_for || o->sparkplug)) {
		fprintf(stderr, "ferromq-bench: --profile, --tags, --interval, --share, --offline-* and --sparkplug are "
			"for plant\n");
		return -1;
	}
	if (sess) {
		o->sessions = o->sessions ? o->sessions : 100000;
		o->readers = o->readers ? o->readers : 5000;
		o->batch = o->batch ? o->batch : 1000;
		if (o->readers > o->sessions) {
			fprintf(stderr, "ferromq-bench: --connected %u is more than --sessions %u\n", o->readers,
				o->sessions);
			return -1;
		}
		if (o->qos == 0 || o->rate == 0) {
			fprintf(stderr, "ferromq-bench: sessions needs QoS 1 or 2 and a --rate\n");
			return -1;
		}
		o->subs = o->sessions;
		o->warmup = 0;
	}
	if (o->mode != BENCH_SESSIONS)
		o->batch = PENDING_CONNECTS_DEFAULT;
	if (plant || sess)
		o->window = 0; /* one paced stream; a historian may be away on purpose */
	if (o->mode == BENCH_IDLE || o->mode == BENCH_DRAIN) {
		o->pubs = 0;
		o->warmup = 0;
	} else if (o->mode == BENCH_FANOUT) {
		o->pubs = 1;
	}
	if (store && !o->messages) {
		fprintf(stderr, "ferromq-bench: %s needs --messages N\n", mode_names[o->mode]);
		return -1;
	}
	if (o->mode == BENCH_DRAIN && o->subs == 0) {
		fprintf(stderr, "ferromq-bench: drain needs at least one subscriber\n");
		return -1;
	}
	if (o->mode != BENCH_IDLE && o->mode != BENCH_DRAIN && (o->pubs == 0 || o->subs == 0)) {
		fprintf(stderr, "ferromq-bench: %s needs at least one publisher and one subscriber\n",
			mode_names[o->mode]);
		return -1;
	}
	if (fill || plant || sess)
		o->window = fill || window < 0 ? 0 : (uint32_t)window; /* fill: the subscribers are offline */
	else if (window >= 0)
		o->window = (uint32_t)window;
	else if (o->mode == BENCH_LATENCY && o->rate == 0)
		o->window = 1; /* ping-pong: one message out at a time */
	else if (o->rate > 0 && o->rate / o->pubs > o->inflight)
		o->window = (uint32_t)(o->rate / o->pubs); /* a second's worth: pacing is the bound */
	else
		o->window = o->inflight;
	return 0;
}

static int resolve(struct bench *b)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%u", b->o.port);
	int rc = getaddrinfo(b->o.host, port, &hints, &res);
	if (rc) {
		fprintf(stderr, "ferromq-bench: error: cannot resolve '%s': %s\n", b->o.host, gai_strerror(rc));
		return -1;
	}
	memcpy(&b->addr, res->ai_addr, res->ai_addrlen);
	b->addrlen = res->ai_addrlen;
	snprintf(b->addr_text, sizeof(b->addr_text), "%s:%u", b->o.host, b->o.port);
	freeaddrinfo(res);
	return 0;
}

/* Raises RLIMIT_NOFILE to the hard limit; returns the soft limit now in force. */
static uint64_t raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur;
}

void bench_sleep_us(uint64_t us)
{
	struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void bench_set_phase(struct bench *b, enum bench_phase phase)
{
	atomic_store_explicit(&b->phase, (int)phase, memory_order_release);
	for (int i = 0; i < b->nworkers; i++)
		worker_wake(b->workers[i]);
}

/* Waits until *count reaches want (plus failures in idle mode), a fatal
 * error, or the connect timeout. Returns 0 when reached. */
int bench_wait_ready(struct bench *b, _Atomic uint32_t *count, uint32_t want, const char *what)
{
	uint64_t until = clock_mono_us() + (uint64_t)(b->o.connect_timeout * 1e6);
	for (;;) {
		if (atomic_load(&b->fatal))
			return -1;
		uint32_t got = atomic_load(count);
		uint32_t failed = b->o.mode == BENCH_IDLE ? atomic_load(&b->failed) : 0;
		if (got + failed >= want)
			return 0;
		if (clock_mono_us() > until) {
			bench_error(b, true, "timeout: %u of %u %s ready after %.0f s", got, want, what,
				    b->o.connect_timeout);
			return -1;
		}
		bench_sleep_us(2000);
	}
}

/* Drain: publishers have stopped; wait for every QoS1/2 flow to complete and
 * every subscriber to reach each publisher's last sequence number. */
static void drain(struct bench *b)
{
	uint64_t until = clock_mono_us() + (uint64_t)(b->o.drain * 1e6);
	while (clock_mono_us() < until && !atomic_load(&b->fatal)) {
		bool done = true;
		for (uint32_t p = 0; p < b->o.pubs && done; p++) {
			uint64_t sent = atomic_load(&b->pub[p].sent);
			if (atomic_load(&b->pub[p].unacked))
				done = false;
			for (uint32_t s = 0; s < b->o.subs && done; s++)
				if (atomic_load(&b->mark[(size_t)s * b->o.pubs + p]) < sent)
					done = false;
		}
		if (done)
			return;
		bench_sleep_us(2000);
	}
}

struct result {
	double secs, published_rate, delivered_rate;
	uint64_t published, delivered, received_total, sent_total, lost, dup, foreign, rejected;
	uint64_t p50, p99, p999, pmax, pmin;
	double mean;
	uint64_t ack_n, ack_p50, ack_p99, ack_p999, ack_max;
	uint64_t last_event;
};

/* Merges the workers' counters and histograms into r. */
static void compute_totals(struct bench *b, struct result *r)
{
	struct worker_totals t;
	memset(&t, 0, sizeof(t));
	for (int i = 0; i < b->nworkers; i++)
		worker_totals_add(b->workers[i], &t);
	r->published = t.published_win;
	r->delivered = t.delivered_win;
	r->received_total = t.delivered_total;
	r->last_event = t.last_event;
	r->p50 = hist_quantile(&t.lat, 0.50);
	r->p99 = hist_quantile(&t.lat, 0.99);
	r->p999 = hist_quantile(&t.lat, 0.999);
	r->pmax = t.lat.max;
	r->pmin = t.lat.min;
	r->mean = t.lat.n ? (double)t.lat.sum / (double)t.lat.n : 0;
	r->ack_n = t.ack.n;
	r->ack_p50 = hist_quantile(&t.ack, 0.50);
	r->ack_p99 = hist_quantile(&t.ack, 0.99);
	r->ack_p999 = hist_quantile(&t.ack, 0.999);
	r->ack_max = t.ack.max;
}

static void compute(struct bench *b, struct result *r)
{
	compute_totals(b, r);
	r->secs = (double)(b->t1 - b->t0) / 1e6;
	r->published_rate = (double)r->published / r->secs;
	r->delivered_rate = (double)r->delivered / r->secs;
	for (uint32_t p = 0; p < b->o.pubs; p++) {
		struct pub_stat *ps = &b->pub[p];
		uint64_t sent = atomic_load(&ps->sent);
		r->sent_total += sent;
		r->rejected += ps->rejected;
		for (uint32_t s = 0; s < b->o.subs; s++)
			r->lost += seqmap_missing(&b->sub[s].seen[p], b->o.qos ? &ps->acked : NULL, sent);
	}
	for (uint32_t s = 0; s < b->o.subs; s++) {
		r->dup += b->sub[s].dup;
		r->foreign += b->sub[s].foreign;
	}
}

static void report(struct bench *b, const struct result *r)
{
	const struct bench_opts *o = &b->o;
	if (o->json) {
		printf("{\"scenario\":\"%s\",\"protocol\":%u,\"qos\":%u,\"pubs\":%u,\"subs\":%u,"
		       "\"size\":%u,\"inflight\":%u,\"window\":%u,\"rate\":%.0f,\"threads\":%d,"
		       "\"seconds\":%.3f,\"published_per_s\":%.1f,\"delivered_per_s\":%.1f,"
		       "\"published\":%llu,\"delivered\":%llu,\"sent_total\":%llu,\"received_total\":%llu,"
		       "\"lat_us\":{\"min\":%llu,\"p50\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu,\"mean\":%.1f},"
		       "\"ack_n\":%llu,\"ack_p50_us\":%llu,\"ack_p99_us\":%llu,\"ack_p999_us\":%llu,\"ack_max_us\":%llu,"
		       "\"lost\":%llu,\"dup\":%llu,\"rejected\":%llu,\"foreign\":%llu}\n",
		       mode_names[o->mode], o->protocol, o->qos, o->pubs, o->subs, o->size, o->inflight,
		       o->window, o->rate, o->threads, r->secs, r->published_rate, r->delivered_rate,
		       (unsigned long long)r->published, (unsigned long long)r->delivered,
		       (unsigned long long)r->sent_total, (unsigned long long)r->received_total,
		       (unsigned long long)r->pmin, (unsigned long long)r->p50, (unsigned long long)r->p99,
		       (unsigned long long)r->p999, (unsigned long long)r->pmax, r->mean,
		       (unsigned long long)r->ack_n, (unsigned long long)r->ack_p50,
		       (unsigned long long)r->ack_p99, (unsigned long long)r->ack_p999,
		       (unsigned long long)r->ack_max, (unsigned long long)r->lost, (unsigned long long)r->dup,
		       (unsigned long long)r->rejected, (unsigned long long)r->foreign);
		return;
	}
	printf("%s v%u qos%u %u->%u size %u: delivered %.0f msg/s, published %.0f msg/s, "
	       "latency p50 %llu us p99 %llu us p999 %llu us max %llu us, ",
	       mode_names[o->mode], o->protocol, o->qos, o->pubs, o->subs, o->size, r->delivered_rate,
	       r->published_rate, (unsigned long long)r->p50, (unsigned long long)r->p99,
	       (unsigned long long)r->p999, (unsigned long long)r->pmax);
	if (o->qos)
		printf("ack p50 %llu us p99 %llu us p999 %llu us, ", (unsigned long long)r->ack_p50,
		       (unsigned long long)r->ack_p99, (unsigned long long)r->ack_p999);
	printf("lost %llu, dup %llu (%.2f s measured; %llu sent, %llu received in all",
	       (unsigned long long)r->lost,
	       (unsigned long long)r->dup, r->secs, (unsigned long long)r->sent_total,
	       (unsigned long long)r->received_total);
	if (r->rejected)
		printf("; %llu rejected by the broker", (unsigned long long)r->rejected);
	if (r->foreign)
		printf("; %llu foreign messages", (unsigned long long)r->foreign);
	printf(")\n");
}

struct idle_result {
	uint32_t requested, established, failed;
	double connect_secs;
	uint64_t rss_before, rss_after;
};

static void report_idle(struct bench *b, const struct idle_result *r)
{
	double per_conn = r->established && r->rss_after
		? ((double)r->rss_after - (double)r->rss_before) * 1024.0 / r->established : 0;
	if (b->o.json) {
		printf("{\"scenario\":\"idle\",\"protocol\":%u,\"qos\":%u,\"requested\":%u,"
		       "\"established\":%u,\"failed\":%u,\"connect_seconds\":%.3f,\"hold_seconds\":%.1f,"
		       "\"rss_before_kb\":%llu,\"rss_after_kb\":%llu,\"rss_per_conn_bytes\":%.0f}\n",
		       b->o.protocol, b->o.qos, r->requested, r->established, r->failed, r->connect_secs,
		       b->o.duration, (unsigned long long)r->rss_before, (unsigned long long)r->rss_after,
		       per_conn);
		return;
	}
	printf("idle v%u: %u of %u connections established (%u failed) in %.2f s, held %.1f s",
	       b->o.protocol, r->established, r->requested, r->failed, r->connect_secs, b->o.duration);
	if (b->o.pid)
		printf("; broker RSS %llu kB -> %llu kB, %.0f bytes per connection",
		       (unsigned long long)r->rss_before, (unsigned long long)r->rss_after, per_conn);
	printf("\n");
}

/* Fill: every message acknowledged. Drain: every session has them all.
 * Gives up after --drain seconds without progress; a stalled fill is an
 * error, a stalled drain is reported as loss. */
static void wait_store(struct bench *b)
{
	const struct bench_opts *o = &b->o;
	uint64_t last = 0, last_change = clock_mono_us();
	while (!atomic_load(&b->fatal)) {
		uint64_t progress = 0;
		bool done = true;
		for (uint32_t p = 0; p < o->pubs; p++) {
			uint64_t sent = atomic_load(&b->pub[p].sent); /* first: see worker's release */
			uint32_t unacked = atomic_load(&b->pub[p].unacked);
			progress += sent > unacked ? sent - unacked : 0;
			if (unacked)
				done = false;
		}
		if (o->mode == BENCH_FILL && progress < o->messages)
			done = false;
		for (uint32_t s = 0; o->mode == BENCH_DRAIN && s < o->subs; s++) {
			uint64_t u = atomic_load(&b->sub[s].unique);
			progress += u;
			if (u < o->messages)
				done = false;
		}
		if (done)
			return;
		uint64_t now = clock_mono_us();
		if (progress != last) {
			last = progress;
			last_change = now;
		} else if (now - last_change > (uint64_t)(o->drain * 1e6)) {
			if (o->mode == BENCH_FILL)
				bench_error(b, true, "stalled: %llu of %llu messages acknowledged, none for %.0f s",
					    (unsigned long long)progress, (unsigned long long)o->messages, o->drain);
			else
				fprintf(stderr, "ferromq-bench: no new message for %.0f s: giving up\n", o->drain);
			return;
		}
		bench_sleep_us(5000);
	}
}

/* Fill report: the publishing side only (the subscribers are offline). */
static void report_fill(struct bench *b, uint64_t t_end)
{
	const struct bench_opts *o = &b->o;
	struct result r;
	memset(&r, 0, sizeof(r));
	compute_totals(b, &r);
	for (uint32_t p = 0; p < o->pubs; p++) {
		r.sent_total += atomic_load(&b->pub[p].sent);
		r.rejected += b->pub[p].rejected;
	}
	if (o->qos && r.last_event)
		t_end = r.last_event;
	r.secs = (double)(t_end - b->t_run) / 1e6;
	double rate = r.secs > 0 ? (double)r.sent_total / r.secs : 0;
	if (o->json) {
		printf("{\"scenario\":\"fill\",\"protocol\":%u,\"qos\":%u,\"pubs\":%u,\"subs\":%u,\"size\":%u,"
		       "\"inflight\":%u,\"threads\":%d,\"messages\":%llu,\"sent_total\":%llu,\"rejected\":%llu,"
		       "\"seconds\":%.3f,\"published_per_s\":%.1f,\"ack_n\":%llu,\"ack_p50_us\":%llu,"
		       "\"ack_p99_us\":%llu,\"ack_p999_us\":%llu,\"ack_max_us\":%llu}\n",
		       o->protocol, o->qos, o->pubs, o->subs, o->size, o->inflight, o->threads,
		       (unsigned long long)o->messages, (unsigned long long)r.sent_total,
		       (unsigned long long)r.rejected, r.secs, rate, (unsigned long long)r.ack_n,
		       (unsigned long long)r.ack_p50, (unsigned long long)r.ack_p99,
		       (unsigned long long)r.ack_p999, (unsigned long long)r.ack_max);
		return;
	}
	printf("fill v%u qos%u %u publishers -> %u offline sessions, size %u: %llu messages %s in %.2f s, "
	       "%.0f msg/s", o->protocol, o->qos, o->pubs, o->subs, o->size,
	       (unsigned long long)r.sent_total, o->qos ? "acknowledged" : "sent", r.secs, rate);
	if (o->qos)
		printf(", ack p50 %llu us p99 %llu us p999 %llu us max %llu us", (unsigned long long)r.ack_p50,
		       (unsigned long long)r.ack_p99, (unsigned long long)r.ack_p999,
		       (unsigned long long)r.ack_max);
	if (r.rejected)
		printf("; %llu rejected by the broker", (unsigned long long)r.rejected);
	printf("\n");
}

/* Drain report. Returns the exit code: 0, or 3 when a session missed
 * messages. The time runs from the first connect to the last new message. */
static int report_drain(struct bench *b, uint64_t t_start)
{
	const struct bench_opts *o = &b->o;
	struct result r;
	memset(&r, 0, sizeof(r));
	compute_totals(b, &r);
	uint64_t unique = 0, min = UINT64_MAX;
	for (uint32_t s = 0; s < o->subs; s++) {
		uint64_t u = atomic_load(&b->sub[s].unique);
		unique += u;
		r.lost += o->messages - u;
		r.dup += b->sub[s].dup;
		r.foreign += b->sub[s].foreign;
		if (u < min)
			min = u;
	}
	r.secs = r.last_event > t_start ? (double)(r.last_event - t_start) / 1e6 : 0;
	double rate = r.secs > 0 ? (double)unique / r.secs : 0;
	if (o->json) {
		printf("{\"scenario\":\"drain\",\"protocol\":%u,\"subs\":%u,\"messages\":%llu,"
		       "\"received_min\":%llu,\"unique_total\":%llu,\"received_total\":%llu,\"seconds\":%.3f,"
		       "\"delivered_per_s\":%.1f,\"lost\":%llu,\"dup\":%llu,\"foreign\":%llu}\n",
		       o->protocol, o->subs, (unsigned long long)o->messages, (unsigned long long)min,
		       (unsigned long long)unique, (unsigned long long)r.received_total, r.secs, rate,
		       (unsigned long long)r.lost, (unsigned long long)r.dup, (unsigned long long)r.foreign);
	} else {
		printf("drain v%u %u sessions: %llu of %llu messages in the emptiest session, %llu distinct in all "
		       "in %.2f s, %.0f msg/s, lost %llu, dup %llu", o->protocol, o->subs,
		       (unsigned long long)min, (unsigned long long)o->messages, (unsigned long long)unique,
		       r.secs, rate, (unsigned long long)r.lost, (unsigned long long)r.dup);
		if (r.foreign)
			printf("; %llu foreign messages", (unsigned long long)r.foreign);
		printf("\n");
	}
	if (!r.lost)
		return 0;
	fprintf(stderr, "ferromq-bench: error: %llu messages lost\n", (unsigned long long)r.lost);
	return 3;
}

/* Sequence maps per subscriber: one per publisher; drain keeps one for all. */
static uint32_t seen_maps(const struct bench_opts *o)
{
	return o->mode == BENCH_DRAIN || o->mode == BENCH_SESSIONS ? 1 : o->pubs;
}

/* Subscribers that receive: sessions keeps maps only for its readers. */
static uint32_t seen_subs(const struct bench_opts *o)
{
	return o->mode == BENCH_SESSIONS ? o->readers : o->subs;
}

static int bench_alloc(struct bench *b)
{
	const struct bench_opts *o = &b->o;
	b->pub = calloc(o->pubs ? o->pubs : 1, sizeof(*b->pub));
	b->sub = calloc(o->subs ? o->subs : 1, sizeof(*b->sub));
	b->mark = calloc((size_t)o->subs * o->pubs + 1, sizeof(*b->mark));
	if (!b->pub || !b->sub || !b->mark)
		return -FM_ENOMEM;
	for (uint32_t s = 0; seen_maps(o) && s < seen_subs(o); s++)
		if (!(b->sub[s].seen = calloc(seen_maps(o), sizeof(struct seqmap))))
			return -FM_ENOMEM;
	b->workers = calloc((size_t)b->nworkers, sizeof(*b->workers));
	if (!b->workers)
		return -FM_ENOMEM;
	for (int i = 0; i < b->nworkers; i++)
		if (!(b->workers[i] = worker_create(b, i)))
			return -FM_ENOMEM;
	return 0;
}

static void bench_free(struct bench *b)
{
	for (int i = 0; b->workers && i < b->nworkers; i++)
		worker_destroy(b->workers[i]);
	free(b->workers);
	for (uint32_t p = 0; b->pub && p < b->o.pubs; p++)
		seqmap_free(&b->pub[p].acked);
	for (uint32_t s = 0; b->sub && s < b->o.subs; s++) {
		for (uint32_t p = 0; b->sub[s].seen && p < seen_maps(&b->o); p++)
			seqmap_free(&b->sub[s].seen[p]);
		free(b->sub[s].seen);
	}
	free(b->pub);
	free(b->sub);
	free((void *)b->mark);
}

int main(int argc, char **argv)
{
	static struct bench bench;
	struct bench *b = &bench;
	int rc = 1, started = 0;
	uint64_t t_end = 0;
	pthread_mutex_init(&b->err_lock, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (parse_args(b, argc, argv) < 0)
		return 2;
	if (resolve(b) < 0)
		return 1;
	const struct bench_opts *o = &b->o;
	uint64_t nofile = raise_nofile();
	b->nconns = o->subs + o->readers + o->pubs;
	/* sessions opens at most a batch of the sessions it makes at once. */
	uint64_t open_max = o->mode == BENCH_SESSIONS ? (uint64_t)o->batch + o->readers + o->pubs : b->nconns;
	if (open_max + 64 > nofile) {
		fprintf(stderr, "ferromq-bench: error: %llu connections need more than the open-file limit %llu "
			"(raise it with ulimit -n)\n", (unsigned long long)open_max, (unsigned long long)nofile);
		return 1;
	}
	b->nworkers = o->threads;
	if ((uint32_t)b->nworkers > b->nconns)
		b->nworkers = b->nconns ? (int)b->nconns : 1;
	if (bench_alloc(b) < 0) {
		fprintf(stderr, "ferromq-bench: error: out of memory\n");
		goto out;
	}
	if (o->mode == BENCH_PLANT || o->mode == BENCH_SESSIONS) {
		rc = o->mode == BENCH_PLANT ? plant_run(b) : sessions_run(b);
		goto out;
	}
	struct idle_result ir = {.requested = o->subs};
	if (o->pid) {
		ir.rss_before = probe_rss_kb(o->pid);
		if (!ir.rss_before)
			fprintf(stderr, "ferromq-bench: warning: cannot read /proc/%d/status\n", o->pid);
	}
	atomic_store(&b->phase, PH_CONNECT_SUBS);
	uint64_t t_connect = clock_mono_us();
	for (; started < b->nworkers; started++)
		if (worker_start(b->workers[started]) < 0) {
			bench_error(b, true, "cannot start a thread");
			goto stop;
		}
	if (bench_wait_ready(b, &b->subs_ready, o->subs, "subscribers") < 0)
		goto stop;
	bench_set_phase(b, PH_CONNECT_PUBS);
	if (bench_wait_ready(b, &b->pubs_ready, o->pubs, "publishers") < 0)
		goto stop;
	ir.connect_secs = (double)(clock_mono_us() - t_connect) / 1e6;

	b->t_run = clock_mono_us();
	bool store = o->mode == BENCH_FILL || o->mode == BENCH_DRAIN;
	b->t0 = b->t_run + (uint64_t)(o->warmup * 1e6);
	b->t1 = store ? UINT64_MAX : b->t0 + (uint64_t)(o->duration * 1e6);
	if (store)
		b->t0 = b->t_run;
	bench_set_phase(b, PH_RUN);
	while (!store && clock_mono_us() < b->t1 && !atomic_load(&b->fatal))
		bench_sleep_us(5000);
	if (store) {
		wait_store(b);
		t_end = clock_mono_us();
	} else if (o->mode == BENCH_IDLE) {
		ir.established = atomic_load(&b->subs_ready);
		if (o->pid)
			ir.rss_after = probe_rss_kb(o->pid);
	} else if (!atomic_load(&b->fatal)) {
		bench_set_phase(b, PH_DRAIN);
		drain(b);
	}
stop:
	bench_set_phase(b, PH_STOP);
	for (int i = 0; i < started; i++)
		worker_join(b->workers[i]);
	ir.failed = atomic_load(&b->failed);
	if (atomic_load(&b->fatal)) {
		fprintf(stderr, "ferromq-bench: error: %s\n", b->err[0] ? b->err : "failed");
		goto out;
	}
	if (o->mode == BENCH_IDLE) {
		report_idle(b, &ir);
		if (ir.established < ir.requested) {
			fprintf(stderr, "ferromq-bench: error: only %u of %u connections established; first failure: %s\n",
				ir.established, ir.requested, b->err[0] ? b->err : "unknown");
			goto out;
		}
		rc = 0;
		goto out;
	}
	if (o->mode == BENCH_FILL) {
		report_fill(b, t_end);
		rc = 0;
		goto out;
	}
	if (o->mode == BENCH_DRAIN) {
		rc = report_drain(b, t_connect);
		goto out;
	}
	struct result r;
	memset(&r, 0, sizeof(r));
	compute(b, &r);
	report(b, &r);
	rc = 0;
	if (o->qos == 2 && r.dup) {
		fprintf(stderr, "ferromq-bench: error: %llu duplicates at QoS 2\n", (unsigned long long)r.dup);
		rc = 3;
	}
out:
	fflush(stdout);
	bench_free(b);
	return rc;
}
