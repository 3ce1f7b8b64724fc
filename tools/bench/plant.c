/* The plant and sessions modes: their payloads and topics (used by the
 * workers) and their main-thread side (phases, broker sampling, report).
 *
 * plant: G gateways publish T tags each every I ms (QoS 1, JSON payloads of
 * --size bytes with the bench header as hex) to H historians. Loss is
 * counted per gateway sequence number (the tag is seq % T, so per tag too):
 * a message the broker acknowledged that no historian got (with --share) or
 * that some historian did not get (without).
 *
 * sessions: N sessions are made and left (five filters each), C of them
 * come back; publishers send M msg/s, message g of all going to reader
 * g % C as its number g / C, so each reader's bitmap stays small.
 */
#include "bench.h"
#include "base/clock.h"
#include "base/err.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLANT_HEX_AT 6 /* {"h":" */

static const char hexdig[] = "0123456789abcdef";

int plant_topic(char *out, size_t n, uint32_t gw, uint32_t tag)
{
	return snprintf(out, n, "plants/%u/devices/%u/tags/%u", gw / PLANT_DEVICES, gw % PLANT_DEVICES, tag);
}

void plant_payload(uint8_t *out, uint32_t size, uint32_t gw, uint64_t seq, uint64_t now_us, uint32_t tags)
{
	uint8_t hdr[BENCH_HDR];
	uint32_t magic = BENCH_MAGIC;
	memcpy(hdr, &magic, 4);
	memcpy(hdr + 4, &gw, 4);
	memcpy(hdr + 8, &seq, 8);
	memcpy(hdr + 16, &now_us, 8);
	char hex[2 * BENCH_HDR + 1];
	for (int i = 0; i < BENCH_HDR; i++) {
		hex[2 * i] = hexdig[hdr[i] >> 4];
		hex[2 * i + 1] = hexdig[hdr[i] & 15];
	}
	hex[2 * BENCH_HDR] = 0;
	uint32_t tag = (uint32_t)(seq % tags);
	/* A reading that wanders a little: enough to look like data. */
	double value = 20.0 + (double)((seq * 2654435761u + gw * 40503u) % 2000u) / 100.0;
	char tmp[PLANT_MIN_SIZE + 64];
	int n = snprintf(tmp, sizeof(tmp),
			 "{\"h\":\"%s\",\"value\":%.2f,\"ts\":%llu,\"quality\":\"good\",\"unit\":\"degC\","
			 "\"tag\":\"P%u/D%u/T%u\"",
			 hex, value, (unsigned long long)clock_wall_ms(), gw / PLANT_DEVICES, gw % PLANT_DEVICES, tag);
	if (n < 0 || (uint32_t)n > size - 1)
		n = (int)size - 1; /* cannot happen above PLANT_MIN_SIZE */
	memcpy(out, tmp, (size_t)n);
	/* Pad with JSON whitespace so every message has the same size. */
	memset(out + n, ' ', size - 1 - (uint32_t)n);
	out[size - 1] = '}';
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* ---- --sparkplug: the same plant as Sparkplug B edge nodes ---- */

int spb_plant_topic(char *out, size_t n, const char *ns, uint32_t gw, const char *type)
{
	return snprintf(out, n, "%s/plant-%u/%s/gw-%u-%u", ns, gw / PLANT_DEVICES, type, gw / PLANT_DEVICES,
			gw % PLANT_DEVICES);
}

static size_t pb_varint(uint8_t *out, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

/* Protobuf tags: field << 3 | wire type (0 varint, 1 64-bit, 2 length-delimited). */
enum { PB_TIMESTAMP = 0x08, PB_METRICS = 0x12, PB_SEQ = 0x18, PB_BODY = 0x2a, PB_NAME = 0x0a, PB_ALIAS = 0x10,
       PB_DATATYPE = 0x20, PB_LONG = 0x58, PB_DOUBLE = 0x69, PB_BOOLEAN = 0x70 };
enum { SPB_INT64 = 4, SPB_DOUBLE = 10, SPB_BOOLEAN = 11 };

const uint8_t spb_plant_ndeath[13] = { PB_METRICS, 11, PB_NAME, 5, 'b', 'd', 'S', 'e', 'q', PB_DATATYPE, SPB_INT64,
				       PB_LONG, 0 };

void spb_plant_payload(uint8_t *out, uint32_t size, uint32_t gw, uint64_t seq, uint64_t now_us, uint32_t tags)
{
	uint8_t tail[64], metric[32];
	size_t t = 0, m = 0;
	double value = 20.0 + (double)((seq * 2654435761u + gw * 40503u) % 2000u) / 100.0;
	metric[m++] = PB_ALIAS;
	m += pb_varint(metric + m, seq % tags + 1);
	metric[m++] = PB_DATATYPE;
	metric[m++] = SPB_DOUBLE;
	metric[m++] = PB_DOUBLE;
	memcpy(metric + m, &value, 8); /* little endian, as protobuf's fixed64 */
	m += 8;
	tail[t++] = PB_TIMESTAMP;
	t += pb_varint(tail + t, clock_wall_ms());
	tail[t++] = PB_SEQ;
	t += pb_varint(tail + t, (seq + 1) & 0xff);
	tail[t++] = PB_METRICS;
	tail[t++] = (uint8_t)m;
	memcpy(tail + t, metric, m);
	t += m;
	/* The body's length takes two varint bytes: 128 <= len < 16384. */
	uint32_t body = size - (uint32_t)t - 3;
	out[0] = PB_BODY;
	pb_varint(out + 1, body);
	plant_payload(out + 3, body, gw, seq, now_us, tags);
	memcpy(out + 3 + body, tail, t);
}

int spb_plant_nbirth(uint8_t *out, size_t cap, uint32_t tags)
{
	uint8_t buf[4096];
	size_t n = 0;
	buf[n++] = PB_TIMESTAMP;
	n += pb_varint(buf + n, clock_wall_ms());
	buf[n++] = PB_SEQ;
	buf[n++] = 0;
	memcpy(buf + n, spb_plant_ndeath, sizeof spb_plant_ndeath);
	n += sizeof spb_plant_ndeath;
	static const char rebirth[] = "Node Control/Rebirth";
	buf[n++] = PB_METRICS;
	buf[n++] = (uint8_t)(2 + sizeof rebirth - 1 + 4);
	buf[n++] = PB_NAME;
	buf[n++] = sizeof rebirth - 1;
	memcpy(buf + n, rebirth, sizeof rebirth - 1);
	n += sizeof rebirth - 1;
	buf[n++] = PB_DATATYPE;
	buf[n++] = SPB_BOOLEAN;
	buf[n++] = PB_BOOLEAN;
	buf[n++] = 0;
	for (uint32_t i = 0; i < tags && i < 64; i++) {
		uint8_t metric[48];
		size_t m = 0;
		char name[16];
		int nl = snprintf(name, sizeof name, "tag%u", i);
		double zero = 0;
		metric[m++] = PB_NAME;
		metric[m++] = (uint8_t)nl;
		memcpy(metric + m, name, (size_t)nl);
		m += (size_t)nl;
		metric[m++] = PB_ALIAS;
		m += pb_varint(metric + m, i + 1);
		metric[m++] = PB_DATATYPE;
		metric[m++] = SPB_DOUBLE;
		metric[m++] = PB_DOUBLE;
		memcpy(metric + m, &zero, 8);
		m += 8;
		buf[n++] = PB_METRICS;
		buf[n++] = (uint8_t)m;
		memcpy(buf + n, metric, m);
		n += m;
	}
	if (n > cap)
		return -1;
	memcpy(out, buf, n);
	return (int)n;
}

bool plant_header(const uint8_t *p, uint32_t len, uint32_t *gw, uint64_t *seq, uint64_t *ts)
{
	/* A Sparkplug payload (--sparkplug): the plant payload is its body, first. */
	if (p && len > 3 && p[0] == PB_BODY && (p[1] & 0x80) && !(p[2] & 0x80)) {
		uint32_t body = (uint32_t)(p[1] & 0x7f) | (uint32_t)p[2] << 7;
		return body <= len - 3 && plant_header(p + 3, body, gw, seq, ts);
	}
	if (!p || len < PLANT_HEX_AT + 2 * BENCH_HDR || memcmp(p, "{\"h\":\"", PLANT_HEX_AT))
		return false;
	uint8_t hdr[BENCH_HDR];
	for (int i = 0; i < BENCH_HDR; i++) {
		int hi = hexval(p[PLANT_HEX_AT + 2 * i]), lo = hexval(p[PLANT_HEX_AT + 2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		hdr[i] = (uint8_t)(hi << 4 | lo);
	}
	uint32_t magic;
	memcpy(&magic, hdr, 4);
	memcpy(gw, hdr + 4, 4);
	memcpy(seq, hdr + 8, 8);
	memcpy(ts, hdr + 16, 8);
	return magic == BENCH_MAGIC;
}

void sess_target(const struct bench *b, uint32_t p, uint64_t seq, uint32_t *target, uint64_t *k)
{
	uint64_t g = seq * b->o.pubs + p;
	*target = (uint32_t)(g % b->o.readers);
	*k = g / b->o.readers;
}

static bool seqmap_has(const struct seqmap *m, uint64_t seq)
{
	return (seq >> 6) < m->nwords && (m->w[seq >> 6] >> (seq & 63) & 1);
}

/* Starts the workers; returns how many started (all, or fewer after an error). */
static int start_workers(struct bench *b)
{
	int started = 0;
	atomic_store(&b->phase, PH_CONNECT_SUBS);
	for (; started < b->nworkers; started++)
		if (worker_start(b->workers[started]) < 0) {
			bench_error(b, true, "cannot start a thread");
			break;
		}
	return started;
}

static void stop_workers(struct bench *b, int started)
{
	bench_set_phase(b, PH_STOP);
	for (int i = 0; i < started; i++)
		worker_join(b->workers[i]);
}

static uint64_t sum_sent(const struct bench *b)
{
	uint64_t n = 0;
	for (uint32_t p = 0; p < b->o.pubs; p++)
		n += atomic_load(&b->pub[p].sent);
	return n;
}

static uint64_t sum_acked(const struct bench *b)
{
	uint64_t n = 0;
	for (uint32_t p = 0; p < b->o.pubs; p++)
		n += atomic_load(&b->pub[p].acked_n);
	return n;
}

static uint64_t sum_unique(const struct bench *b, uint32_t subs)
{
	uint64_t n = 0;
	for (uint32_t s = 0; s < subs; s++)
		n += atomic_load(&b->sub[s].unique);
	return n;
}

static bool all_acked(const struct bench *b)
{
	for (uint32_t p = 0; p < b->o.pubs; p++)
		if (atomic_load(&b->pub[p].unacked))
			return false;
	return true;
}

/* After the publishers stop: waits until every acknowledged message has
 * reached the receivers (`copies` each: historians without --share), or
 * --drain seconds pass without progress. Samples pr once a second. */
static void drain_deliveries(struct bench *b, uint32_t subs, uint64_t copies, struct probe *pr)
{
	uint64_t last = UINT64_MAX, last_change = clock_mono_us(), next_sample = last_change + 1000000;
	while (!atomic_load(&b->fatal)) {
		uint64_t got = sum_unique(b, subs), want = sum_acked(b) * copies;
		bool back = atomic_load(&b->hist_cmd) != HIST_RESUME || atomic_load(&b->hist_state) == HIST_RESUME;
		if (back && all_acked(b) && got >= want)
			return;
		uint64_t now = clock_mono_us();
		if (got != last) {
			last = got;
			last_change = now;
		} else if (now - last_change > (uint64_t)(b->o.drain * 1e6)) {
			fprintf(stderr, "ferromq-bench: %llu of %llu deliveries after %.0f s without progress: "
				"giving up\n", (unsigned long long)got, (unsigned long long)want, b->o.drain);
			return;
		}
		if (now >= next_sample) {
			probe_sample(pr);
			next_sample += 1000000;
		}
		bench_sleep_us(5000);
	}
}

struct lat_summary {
	uint64_t n, p50, p99, p999, max, ack_p50, ack_p99, ack_p999, delivered_win, last_event;
};

static void lat_summary(const struct bench *b, struct lat_summary *l)
{
	static struct worker_totals t; /* large: not on the stack; main thread only */
	memset(&t, 0, sizeof(t));
	for (int i = 0; i < b->nworkers; i++)
		worker_totals_add(b->workers[i], &t);
	*l = (struct lat_summary){
		.n = t.lat.n, .p50 = hist_quantile(&t.lat, 0.5), .p99 = hist_quantile(&t.lat, 0.99),
		.p999 = hist_quantile(&t.lat, 0.999), .max = t.lat.max,
		.ack_p50 = hist_quantile(&t.ack, 0.5), .ack_p99 = hist_quantile(&t.ack, 0.99),
		.ack_p999 = hist_quantile(&t.ack, 0.999), .delivered_win = t.delivered_win,
		.last_event = t.last_event,
	};
}

/* The outage of historian 0, as seen from outside the broker. */
struct outage {
	bool on;
	uint64_t t_off, t_on;                 /* us */
	uint64_t sent_off, sent_on, acked_off, acked_on;
	uint64_t store_off, store_on, rss_off, rss_on;
	/* Halfway through: a bounded queue stops growing by then. */
	bool mid_done;
	uint64_t acked_mid, store_mid, rss_mid;
};

static void outage_mark(struct bench *b, struct probe *pr, uint64_t *sent, uint64_t *acked,
			uint64_t *store, uint64_t *rss)
{
	*sent = sum_sent(b);
	*acked = sum_acked(b);
	*store = pr->dir ? probe_dir_bytes(pr->dir) : 0;
	*rss = pr->pid ? probe_rss_kb(pr->pid) : 0;
}

/* Waits for historian 0 to reach state want (bounded by the connect timeout). */
static int hist_wait(struct bench *b, int want)
{
	uint64_t until = clock_mono_us() + (uint64_t)(b->o.connect_timeout * 1e6);
	while (atomic_load(&b->hist_state) != want) {
		if (atomic_load(&b->fatal))
			return -1;
		if (clock_mono_us() > until) {
			bench_error(b, true, "historian 0 did not %s in time", want == HIST_OFFLINE ? "leave" : "return");
			return -1;
		}
		bench_sleep_us(1000);
	}
	return 0;
}

struct plant_result {
	uint64_t sent, acked, rejected, lost, dup, foreign, status, received, backlog;
	uint64_t store_run_end, t_store_run_end;
	uint64_t gw_with_loss;
};

/* Loss and duplicates: each historian must have every acknowledged message
 * (without --share), or exactly one of them must (with it). */
static int plant_count(struct bench *b, struct plant_result *r)
{
	const struct bench_opts *o = &b->o;
	struct seqmap u = {0};
	for (uint32_t s = 0; s < o->subs; s++) {
		struct sub_stat *st = &b->sub[s];
		r->foreign += st->foreign;
		r->status += st->status;
		r->received += st->received;
		r->backlog += st->backlog;
		if (!o->share)
			r->dup += st->dup;
	}
	uint64_t in_union = 0;
	for (uint32_t p = 0; p < o->pubs; p++) {
		struct pub_stat *ps = &b->pub[p];
		uint64_t sent = atomic_load(&ps->sent), lost = 0;
		r->sent += sent;
		r->acked += atomic_load(&ps->acked_n);
		r->rejected += ps->rejected;
		if (!o->share) {
			for (uint32_t s = 0; s < o->subs; s++)
				lost += seqmap_missing(&b->sub[s].seen[p], &ps->acked, sent);
		} else {
			for (uint32_t s = 0; s < o->subs; s++) {
				const struct seqmap *m = &b->sub[s].seen[p];
				if (m->nwords > u.nwords) {
					uint64_t *w = realloc(u.w, m->nwords * sizeof(*w));
					if (!w)
						goto oom;
					memset(w + u.nwords, 0, (m->nwords - u.nwords) * sizeof(*w));
					u.w = w;
					u.nwords = m->nwords;
				}
				for (uint64_t i = 0; i < m->nwords; i++)
					u.w[i] |= m->w[i];
			}
			for (uint64_t i = 0; i < u.nwords; i++)
				in_union += (uint64_t)__builtin_popcountll(u.w[i]);
			lost += seqmap_missing(&u, &ps->acked, sent);
			if (u.nwords)
				memset(u.w, 0, u.nwords * sizeof(*u.w));
		}
		r->lost += lost;
		r->gw_with_loss += lost > 0;
	}
	if (o->share) {
		uint64_t data = 0;
		for (uint32_t s = 0; s < o->subs; s++)
			data += b->sub[s].received;
		r->dup = data > in_union ? data - in_union : 0;
	}
	seqmap_free(&u);
	return 0;
oom:
	seqmap_free(&u);
	return -FM_ENOMEM;
}

static void plant_report(struct bench *b, const struct plant_result *r, const struct lat_summary *l,
			 const struct probe *pr, const struct outage *out)
{
	const struct bench_opts *o = &b->o;
	double secs = (double)(b->t1 - b->t0) / 1e6;
	double run_secs = (double)(b->t1 - b->t_run) / 1e6;
	double delivered_rate = (double)l->delivered_win / secs;
	/* Every historian counts without --share: the rate is per copy. */
	double per_copy = o->share ? delivered_rate : delivered_rate / o->subs;
	double growth = r->t_store_run_end > pr->t_first && r->store_run_end >= pr->store_first
		? (double)(r->store_run_end - pr->store_first) / ((double)(r->t_store_run_end - pr->t_first) / 1e6)
		: 0;
	uint64_t queued = out->acked_on - out->acked_off;
	double out_secs = (double)(out->t_on - out->t_off) / 1e6;
	double disk_per = queued ? ((double)out->store_on - (double)out->store_off) / (double)queued : 0;
	double ram_per = queued ? ((double)out->rss_on - (double)out->rss_off) * 1024.0 / (double)queued : 0;
	uint64_t last = b->sub[0].backlog_last;
	double drain_s = out->on && b->t_back && last > b->t_back ? (double)(last - b->t_back) / 1e6 : 0;
	double drain_rate = drain_s > 0 ? (double)r->backlog / drain_s : 0;
	if (o->json) {
		printf("{\"scenario\":\"plant\",\"profile\":\"%s\",\"protocol\":%u,\"qos\":%u,\"gateways\":%u,"
		       "\"tags\":%u,\"interval_ms\":%.0f,\"historians\":%u,\"share\":%s%s%s,\"size\":%u,"
		       "\"threads\":%d,\"target_per_s\":%.1f,\"seconds\":%.3f,\"run_seconds\":%.3f,"
		       "\"delivered_per_s\":%.1f,\"delivered_per_s_per_historian\":%.1f,\"sent\":%llu,"
		       "\"acked\":%llu,\"rejected\":%llu,\"received\":%llu,\"lost\":%llu,\"gateways_with_loss\":%llu,"
		       "\"dup\":%llu,\"foreign\":%llu,\"status_msgs\":%llu,"
		       "\"lat_us\":{\"n\":%llu,\"p50\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu},"
		       "\"ack_us\":{\"p50\":%llu,\"p99\":%llu,\"p999\":%llu},",
		       o->profile ? o->profile : "custom", o->protocol, o->qos, o->pubs, o->tags, o->interval_ms,
		       o->subs, o->share ? "\"" : "", o->share ? o->share : "null", o->share ? "\"" : "", o->size,
		       o->threads, o->rate, secs, run_secs, delivered_rate, per_copy, (unsigned long long)r->sent,
		       (unsigned long long)r->acked, (unsigned long long)r->rejected, (unsigned long long)r->received,
		       (unsigned long long)r->lost, (unsigned long long)r->gw_with_loss, (unsigned long long)r->dup,
		       (unsigned long long)r->foreign, (unsigned long long)r->status, (unsigned long long)l->n,
		       (unsigned long long)l->p50, (unsigned long long)l->p99, (unsigned long long)l->p999,
		       (unsigned long long)l->max, (unsigned long long)l->ack_p50, (unsigned long long)l->ack_p99,
		       (unsigned long long)l->ack_p999);
		printf("\"broker\":{\"pid\":%d,\"samples\":%u,\"rss_max_kb\":%llu,\"rss_end_kb\":%llu,"
		       "\"cpu_mean_pct\":%.1f,\"store_start_bytes\":%llu,\"store_max_bytes\":%llu,"
		       "\"store_end_bytes\":%llu,\"store_growth_bytes_per_s\":%.0f}",
		       o->pid, pr->n, (unsigned long long)pr->rss_max, (unsigned long long)pr->rss_last,
		       probe_cpu_pct(pr), (unsigned long long)pr->store_first, (unsigned long long)pr->store_max,
		       (unsigned long long)pr->store_last, growth);
		if (out->on)
			printf(",\"outage\":{\"after_s\":%.1f,\"seconds\":%.3f,\"messages\":%llu,\"sent\":%llu,"
			       "\"store_before_bytes\":%llu,\"store_after_bytes\":%llu,\"store_growth_bytes\":%lld,"
			       "\"rss_before_kb\":%llu,\"rss_after_kb\":%llu,\"rss_growth_kb\":%lld,"
			       "\"disk_bytes_per_msg\":%.1f,\"ram_bytes_per_msg\":%.1f,\"backlog_delivered\":%llu,"
			       "\"drain_seconds\":%.3f,\"drain_per_s\":%.1f,"
			       "\"mid\":{\"messages\":%llu,\"store_bytes\":%llu,\"rss_kb\":%llu}}",
			       o->offline_after, out_secs, (unsigned long long)queued,
			       (unsigned long long)(out->sent_on - out->sent_off), (unsigned long long)out->store_off,
			       (unsigned long long)out->store_on, (long long)out->store_on - (long long)out->store_off,
			       (unsigned long long)out->rss_off, (unsigned long long)out->rss_on,
			       (long long)out->rss_on - (long long)out->rss_off, disk_per, ram_per,
			       (unsigned long long)r->backlog, drain_s, drain_rate, (unsigned long long)(out->mid_done ? out->acked_mid - out->acked_off : 0),
			       (unsigned long long)out->store_mid, (unsigned long long)out->rss_mid);
		printf("}\n");
		return;
	}
	printf("plant %s: %u gateways x %u tags every %.0f ms -> %u historian%s%s%s, QoS %u, %u bytes: "
	       "target %.0f msg/s, delivered %.0f msg/s%s, latency p50 %llu us p99 %llu us p999 %llu us, "
	       "lost %llu, dup %llu (%llu sent, %llu acknowledged, %.1f s measured)\n",
	       o->profile ? o->profile : "custom", o->pubs, o->tags, o->interval_ms, o->subs, o->subs == 1 ? "" : "s",
	       o->share ? " sharing " : "", o->share ? o->share : "", o->qos, o->size, o->rate, per_copy,
	       o->share || o->subs == 1 ? "" : " per historian", (unsigned long long)l->p50,
	       (unsigned long long)l->p99, (unsigned long long)l->p999, (unsigned long long)r->lost,
	       (unsigned long long)r->dup, (unsigned long long)r->sent, (unsigned long long)r->acked, secs);
	if (o->pid || o->store_dir)
		printf("  broker: RSS max %llu kB, CPU mean %.1f %%, store %llu -> max %llu -> end %llu bytes, "
		       "%.0f bytes/s while publishing\n", (unsigned long long)pr->rss_max, probe_cpu_pct(pr),
		       (unsigned long long)pr->store_first, (unsigned long long)pr->store_max,
		       (unsigned long long)pr->store_last, growth);
	if (out->on)
		printf("  outage of historian 0: %.1f s, %llu messages queued, store %+lld bytes (%.1f per message), "
		       "RSS %+lld kB (%.1f bytes per message); %llu delivered after it in %.2f s (%.0f msg/s)\n",
		       out_secs, (unsigned long long)queued, (long long)out->store_on - (long long)out->store_off,
		       disk_per, (long long)out->rss_on - (long long)out->rss_off, ram_per,
		       (unsigned long long)r->backlog, drain_s, drain_rate);
}

/* The end of a run: stops the workers; 1 after a fatal error (printed),
 * else the run's own result. */
static int finish(struct bench *b, int started, int rc)
{
	stop_workers(b, started);
	if (atomic_load(&b->fatal)) {
		fprintf(stderr, "ferromq-bench: error: %s\n", b->err[0] ? b->err : "failed");
		return 1;
	}
	return rc;
}

int plant_run(struct bench *b)
{
	const struct bench_opts *o = &b->o;
	struct probe pr = {.pid = o->pid, .dir = o->store_dir};
	struct outage out = {.on = o->offline_for > 0};
	struct plant_result r;
	memset(&r, 0, sizeof(r));
	int rc = 1, started = start_workers(b);
	if (started < b->nworkers)
		goto stop;
	if (bench_wait_ready(b, &b->subs_ready, o->subs, "historians") < 0)
		goto stop;
	bench_set_phase(b, PH_CONNECT_PUBS);
	if (bench_wait_ready(b, &b->pubs_ready, o->pubs, "gateways") < 0)
		goto stop;
	probe_sample(&pr);
	uint64_t t_run = clock_mono_us();
	b->t_run = t_run;
	b->t0 = t_run + (uint64_t)(o->warmup * 1e6);
	b->t1 = b->t0 + (uint64_t)(o->duration * 1e6);
	uint64_t t_off = t_run + (uint64_t)(o->offline_after * 1e6);
	uint64_t t_on = t_off + (uint64_t)(o->offline_for * 1e6);
	uint64_t next_sample = t_run + 1000000;
	bench_set_phase(b, PH_RUN);
	for (uint64_t now = t_run; now < b->t1 && !atomic_load(&b->fatal); now = clock_mono_us()) {
		if (now >= next_sample) {
			probe_sample(&pr);
			next_sample += 1000000;
		}
		if (out.on && now >= t_off && atomic_load(&b->hist_cmd) == HIST_ONLINE) {
			out.t_off = now;
			outage_mark(b, &pr, &out.sent_off, &out.acked_off, &out.store_off, &out.rss_off);
			atomic_store(&b->hist_cmd, HIST_OFFLINE);
		}
		if (out.on && !out.mid_done && now >= t_off + (t_on - t_off) / 2 &&
		    atomic_load(&b->hist_cmd) == HIST_OFFLINE) {
			uint64_t sent;
			outage_mark(b, &pr, &sent, &out.acked_mid, &out.store_mid, &out.rss_mid);
			out.mid_done = true;
		}
		if (out.on && now >= t_on && atomic_load(&b->hist_cmd) == HIST_OFFLINE) {
			if (hist_wait(b, HIST_OFFLINE) < 0)
				goto stop;
			out.t_on = clock_mono_us();
			outage_mark(b, &pr, &out.sent_on, &out.acked_on, &out.store_on, &out.rss_on);
			atomic_store(&b->hist_cmd, HIST_RESUME);
		}
		bench_sleep_us(5000);
	}
	if (atomic_load(&b->fatal))
		goto stop;
	bench_set_phase(b, PH_DRAIN);
	probe_sample(&pr);
	r.store_run_end = pr.store_last;
	r.t_store_run_end = pr.t_last;
	if (out.on && atomic_load(&b->hist_cmd) != HIST_RESUME) {
		/* The outage outlasted the run: it ends here. */
		if (atomic_load(&b->hist_cmd) == HIST_ONLINE) {
			bench_error(b, true, "--offline-after is past the end of the run");
			goto stop;
		}
		if (hist_wait(b, HIST_OFFLINE) < 0)
			goto stop;
		out.t_on = clock_mono_us();
		outage_mark(b, &pr, &out.sent_on, &out.acked_on, &out.store_on, &out.rss_on);
		atomic_store(&b->hist_cmd, HIST_RESUME);
	}
	if (out.on && hist_wait(b, HIST_RESUME) < 0)
		goto stop;
	drain_deliveries(b, o->subs, o->share ? 1 : o->subs, &pr);
	probe_sample(&pr);
	rc = 0;
stop:
	if ((rc = finish(b, started, rc)))
		return rc;
	struct lat_summary l;
	lat_summary(b, &l);
	if (plant_count(b, &r) < 0) {
		fprintf(stderr, "ferromq-bench: error: out of memory\n");
		return 1;
	}
	plant_report(b, &r, &l, &pr, &out);
	return 0;
}

/* Waits for the sessions to be made, printing progress to stderr. */
static int sessions_wait_made(struct bench *b)
{
	uint64_t start = clock_mono_us(), until = start + (uint64_t)(b->o.connect_timeout * 1e6);
	uint64_t next_note = start + 10000000;
	for (;;) {
		if (atomic_load(&b->fatal))
			return -1;
		uint32_t got = atomic_load(&b->subs_ready);
		if (got >= b->o.sessions)
			return 0;
		uint64_t now = clock_mono_us();
		if (now > until) {
			bench_error(b, true, "timeout: %u of %u sessions made after %.0f s", got, b->o.sessions,
				    b->o.connect_timeout);
			return -1;
		}
		if (now >= next_note) {
			fprintf(stderr, "ferromq-bench: %u of %u sessions made after %.0f s\n", got, b->o.sessions,
				(double)(now - start) / 1e6);
			next_note += 10000000;
		}
		bench_sleep_us(5000);
	}
}

int sessions_run(struct bench *b)
{
	const struct bench_opts *o = &b->o;
	struct probe pr = {.pid = o->pid, .dir = o->store_dir};
	uint64_t rss0 = o->pid ? probe_rss_kb(o->pid) : 0, store0 = probe_dir_bytes(o->store_dir);
	uint64_t rss_made = 0, store_made = 0;
	double make_s = 0, resume_s = 0;
	int rc = 1, started = start_workers(b);
	if (started < b->nworkers)
		goto stop;
	uint64_t t = clock_mono_us();
	if (sessions_wait_made(b) < 0)
		goto stop;
	make_s = (double)(clock_mono_us() - t) / 1e6;
	rss_made = o->pid ? probe_rss_kb(o->pid) : 0;
	store_made = probe_dir_bytes(o->store_dir);
	t = clock_mono_us();
	bench_set_phase(b, PH_CONNECT_RESUME);
	if (bench_wait_ready(b, &b->subs_ready, o->sessions + o->readers, "readers") < 0)
		goto stop;
	resume_s = (double)(clock_mono_us() - t) / 1e6;
	bench_set_phase(b, PH_CONNECT_PUBS);
	if (bench_wait_ready(b, &b->pubs_ready, o->pubs, "publishers") < 0)
		goto stop;
	probe_sample(&pr);
	b->t_run = b->t0 = clock_mono_us();
	b->t1 = b->t0 + (uint64_t)(o->duration * 1e6);
	uint64_t next_sample = b->t0 + 1000000;
	bench_set_phase(b, PH_RUN);
	for (uint64_t now = b->t0; now < b->t1 && !atomic_load(&b->fatal); now = clock_mono_us()) {
		if (now >= next_sample) {
			probe_sample(&pr);
			next_sample += 1000000;
		}
		bench_sleep_us(5000);
	}
	if (atomic_load(&b->fatal))
		goto stop;
	bench_set_phase(b, PH_DRAIN);
	drain_deliveries(b, o->readers, 1, &pr);
	probe_sample(&pr);
	rc = 0;
stop:
	if ((rc = finish(b, started, rc)))
		return rc;
	struct lat_summary l;
	lat_summary(b, &l);
	uint64_t sent = 0, acked = 0, rejected = 0, lost = 0, dup = 0, foreign = 0, received = 0;
	for (uint32_t p = 0; p < o->pubs; p++) {
		struct pub_stat *ps = &b->pub[p];
		uint64_t n = atomic_load(&ps->sent);
		sent += n;
		acked += atomic_load(&ps->acked_n);
		rejected += ps->rejected;
		for (uint64_t s = 0; s < n; s++) {
			uint32_t target;
			uint64_t k;
			if (!seqmap_has(&ps->acked, s))
				continue;
			sess_target(b, p, s, &target, &k);
			lost += !seqmap_has(&b->sub[target].seen[0], k);
		}
	}
	for (uint32_t s = 0; s < o->readers; s++) {
		dup += b->sub[s].dup;
		foreign += b->sub[s].foreign;
		received += b->sub[s].received;
	}
	double secs = (double)(b->t1 - b->t0) / 1e6;
	double rate = (double)l.delivered_win / secs;
	if (o->json) {
		printf("{\"scenario\":\"sessions\",\"protocol\":%u,\"qos\":%u,\"sessions\":%u,\"subscriptions\":%llu,"
		       "\"batch\":%u,\"connected\":%u,\"pubs\":%u,\"rate\":%.0f,\"size\":%u,\"threads\":%d,"
		       "\"create_seconds\":%.3f,\"resume_seconds\":%.3f,\"seconds\":%.3f,\"delivered_per_s\":%.1f,"
		       "\"sent\":%llu,\"acked\":%llu,\"rejected\":%llu,\"received\":%llu,\"lost\":%llu,\"dup\":%llu,"
		       "\"foreign\":%llu,\"lat_us\":{\"p50\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu},"
		       "\"ack_us\":{\"p50\":%llu,\"p99\":%llu},\"broker\":{\"pid\":%d,\"rss_before_kb\":%llu,"
		       "\"rss_after_create_kb\":%llu,\"rss_traffic_max_kb\":%llu,\"rss_end_kb\":%llu,"
		       "\"cpu_mean_pct\":%.1f,\"store_before_bytes\":%llu,\"store_after_create_bytes\":%llu,"
		       "\"store_end_bytes\":%llu}}\n",
		       o->protocol, o->qos, o->sessions, (unsigned long long)o->sessions * BENCH_SESS_FILTERS, o->batch,
		       o->readers, o->pubs, o->rate, o->size, o->threads, make_s, resume_s, secs, rate,
		       (unsigned long long)sent, (unsigned long long)acked, (unsigned long long)rejected,
		       (unsigned long long)received, (unsigned long long)lost, (unsigned long long)dup,
		       (unsigned long long)foreign, (unsigned long long)l.p50, (unsigned long long)l.p99,
		       (unsigned long long)l.p999, (unsigned long long)l.max, (unsigned long long)l.ack_p50,
		       (unsigned long long)l.ack_p99, o->pid, (unsigned long long)rss0, (unsigned long long)rss_made,
		       (unsigned long long)pr.rss_max, (unsigned long long)pr.rss_last, probe_cpu_pct(&pr),
		       (unsigned long long)store0, (unsigned long long)store_made, (unsigned long long)pr.store_last);
	} else {
		printf("sessions v%u: %u sessions x %d subscriptions made in %.2f s (batches of %u), %u resumed in "
		       "%.2f s; %.0f msg/s QoS %u target, delivered %.0f msg/s, latency p50 %llu us p99 %llu us, "
		       "lost %llu, dup %llu (%llu sent, %llu acknowledged)\n",
		       o->protocol, o->sessions, BENCH_SESS_FILTERS, make_s, o->batch, o->readers, resume_s, o->rate,
		       o->qos, rate, (unsigned long long)l.p50, (unsigned long long)l.p99, (unsigned long long)lost,
		       (unsigned long long)dup, (unsigned long long)sent, (unsigned long long)acked);
		if (o->pid || o->store_dir)
			printf("  broker: RSS %llu kB before, %llu kB with the sessions, max %llu kB under traffic; "
			       "store %llu -> %llu -> %llu bytes; CPU mean %.1f %% under traffic\n",
			       (unsigned long long)rss0, (unsigned long long)rss_made, (unsigned long long)pr.rss_max,
			       (unsigned long long)store0, (unsigned long long)store_made,
			       (unsigned long long)pr.store_last, probe_cpu_pct(&pr));
	}
	if (lost) {
		fprintf(stderr, "ferromq-bench: error: %llu messages lost\n", (unsigned long long)lost);
		return 3;
	}
	return 0;
}
