/* Queue limits beyond a session's own: the store-wide budget that keeps one
 * forgotten session from filling the disk (or the memory), and the report of
 * every message a limit drops (counted, and logged per session at most once
 * an interval, with the limit that dropped it). */
#include "queue_limits.h"
#include "registry.h"
#include "../base/log.h"
#include "../base/clock.h"
#include <sys/statvfs.h>
#include <unistd.h>

/* Queued bytes counted per entry beyond its payload: the row, the topic and
 * the indexes on disk, or the entry and body header in memory. */
#define ENTRY_OVERHEAD 128
/* No session is squeezed below this under budget pressure. */
#define FAIR_SHARE_MIN (1024 * 1024)
/* One drop report per session per interval. */
#define DROP_LOG_INTERVAL_MS 10000

static const char *const drop_names[DROP__COUNT] = {
	[DROP_QUEUE_FULL] = "its queue was full",
	[DROP_EXPIRED] = "its Message Expiry Interval has passed",
	[DROP_TOO_LARGE] = "larger than the client's Maximum Packet Size",
	[DROP_NOT_AUTHORIZED] = "the client may no longer read its topic",
	[DROP_QOS0_OFFLINE] = "QoS 0 for an offline session",
};

static void log_drops(struct broker *b, struct session *s, uint64_t now)
{
	const struct config *cfg = &b->cfg;
	if (s->drop_reason == DROP_QUEUE_FULL)
		log_warn("client %s: %llu message%s dropped: its queue was full (max_queued_messages %u, "
			 "max_queued_bytes %llu%s, queue_overflow %s; now %u messages, %llu bytes)",
			 s->client_id, (unsigned long long)s->drops_unlogged, s->drops_unlogged == 1 ? "" : "s",
			 cfg->max_queued_messages,
			 (unsigned long long)cfg->max_queued_bytes,
			 atomic_load_explicit(&b->queue_fair_share, memory_order_relaxed)
				 ? ", the store-wide queue budget is reached" : "",
			 cfg->queue_overflow == QUEUE_REJECT_NEW ? "reject_new" : "drop_oldest", s->queue.count,
			 (unsigned long long)s->queued_bytes);
	else
		log_warn("client %s: %llu message%s dropped: %s", s->client_id, (unsigned long long)s->drops_unlogged,
			 s->drops_unlogged == 1 ? "" : "s", drop_names[s->drop_reason]);
	s->drops_unlogged = 0;
	s->drop_logged_ms = now;
}

void broker__queue_note_drops(struct bworker *w, struct session *s, enum drop_reason why, uint64_t n)
{
	if (!n)
		return;
	w->stats.drops[why] += n;
	if (why == DROP_QOS0_OFFLINE)
		return; /* by design, not a limit: counted only */
	if (s->drops_unlogged && s->drop_reason != why)
		log_drops(w->b, s, clock_mono_ms()); /* another cause: report the last one first */
	s->drop_reason = (uint8_t)why;
	s->drops_unlogged += n;
	uint64_t now = clock_mono_ms();
	if (!s->drop_logged_ms || now - s->drop_logged_ms >= DROP_LOG_INTERVAL_MS)
		log_drops(w->b, s, now);
}

/* The budget in bytes: the configured one, or half of what the store's
 * filesystem has left plus what the queues hold already (memory only: a
 * quarter of the machine's memory). 0 when it cannot be known. */
static uint64_t budget_bytes(const struct broker *b, uint64_t queued_now)
{
	if (b->cfg.max_queued_bytes_total)
		return b->cfg.max_queued_bytes_total;
	if (!b->cfg.persistence) {
		long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
		return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size / 4 : 0;
	}
	struct statvfs sv;
	if (statvfs(b->cfg.persistence_location, &sv))
		return 0;
	return ((uint64_t)sv.f_bavail * sv.f_frsize + queued_now) / 2;
}

void broker__queue_budget_sweep(struct bworker *w)
{
	struct broker *b = w->b;
	uint64_t queued = 0, sessions = 0, now = clock_mono_ms();
	pthread_mutex_lock(&b->reg_lock);
	size_t pos = 0;
	for (struct session *s; (s = broker__registry_next(b, &pos));) {
		pthread_mutex_lock(&s->lock);
		if (s->queue.count) {
			queued += s->queued_bytes + (uint64_t)s->queue.count * ENTRY_OVERHEAD;
			sessions++;
		}
		/* Drops the last report did not cover, once its interval is over. */
		if (s->drops_unlogged && now - s->drop_logged_ms >= DROP_LOG_INTERVAL_MS)
			log_drops(b, s, now);
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&b->reg_lock);
	uint64_t budget = budget_bytes(b, queued);
	/* Over budget, every queue holding more than an equal share of it is
	 * full: the largest (a forgotten session) give way first, the small ones
	 * of healthy subscribers keep going. */
	uint64_t share = 0;
	if (budget && queued >= budget) {
		share = budget / (sessions ? sessions : 1);
		if (share < FAIR_SHARE_MIN)
			share = FAIR_SHARE_MIN;
	}
	uint64_t before = atomic_exchange_explicit(&b->queue_fair_share, share, memory_order_relaxed);
	if (share && !before)
		log_warn("queues hold %llu bytes of a budget of %llu (max_queued_bytes_total%s): queues above "
			 "%llu bytes are full until they drain",
			 (unsigned long long)queued, (unsigned long long)budget,
			 b->cfg.max_queued_bytes_total ? "" : ": half of the free disk", (unsigned long long)share);
	else if (!share && before)
		log_notice("queues back within their store-wide budget (%llu of %llu bytes)", (unsigned long long)queued,
			   (unsigned long long)budget);
	atomic_store_explicit(&b->queued_bytes_all, queued, memory_order_relaxed);
}

struct session_limits broker__queue_session_limits(const struct broker *b, const struct session *s)
{
	struct session_limits lim = broker__queue_limits(b);
	uint64_t share = atomic_load_explicit(&b->queue_fair_share, memory_order_relaxed);
	/* A queue above the share is full at the size it has (each new message
	 * takes an old one's place), not cut down to the share at once. */
	if (share && s->queued_bytes > share)
		share = s->queued_bytes;
	if (share && (!lim.max_bytes || share < lim.max_bytes))
		lim.max_bytes = share;
	return lim;
}

struct session_limits broker__queue_limits(const struct broker *b)
{
	return (struct session_limits){ b->cfg.max_queued_messages, b->cfg.max_queued_bytes,
					b->cfg.queue_overflow == QUEUE_REJECT_NEW };
}
