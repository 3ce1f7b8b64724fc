/* The spool's memory: a FIFO of 16-byte entries in 64 KB blocks, so a long
 * outage costs 16 bytes per message and the blocks behind the head are
 * freed as it drains. The caller holds sp->lock. */
#include "internal.h"
#include "../base/err.h"
#include <stdlib.h>
#include <string.h>

int spool_init(struct spool *sp)
{
	memset(sp, 0, sizeof *sp);
	sp->head = sp->tail = sp->base = sp->next_send = sp->dup_below = 1;
	return pthread_mutex_init(&sp->lock, NULL) ? -FM_ENOMEM : 0;
}

void spool_free(struct spool *sp)
{
	for (uint64_t seq = sp->head; seq < sp->tail; seq++) {
		struct spool_entry *e = spool_at(sp, seq);
		if (!(e->bits & (SP_GONE | SP_ON_DISK)))
			msg_unref(e->msg);
	}
	for (uint32_t i = 0; i < sp->nblocks; i++)
		free(sp->blocks[(sp->bfirst + i) % sp->bcap]);
	free(sp->blocks);
	pthread_mutex_destroy(&sp->lock);
}

struct spool_entry *spool_at(struct spool *sp, uint64_t seq)
{
	uint64_t off = seq - sp->base;
	return &sp->blocks[(sp->bfirst + off / SPOOL_BLOCK) % sp->bcap][off % SPOOL_BLOCK];
}

/* Room for one more block pointer: the ring doubles, in order from bfirst. */
static int grow_ring(struct spool *sp)
{
	uint32_t cap = sp->bcap ? sp->bcap * 2 : 8;
	struct spool_entry **v = malloc(sizeof *v * cap);
	if (!v)
		return -FM_ENOMEM;
	for (uint32_t i = 0; i < sp->nblocks; i++)
		v[i] = sp->blocks[(sp->bfirst + i) % sp->bcap];
	free(sp->blocks);
	sp->blocks = v;
	sp->bcap = cap;
	sp->bfirst = 0;
	return 0;
}

int spool_push(struct spool *sp, struct msg *msg, uint64_t msg_id, uint32_t bytes, uint32_t queued_s, uint32_t flags)
{
	if (!sp->nblocks || sp->head == sp->tail)
		sp->base = sp->tail; /* an empty spool starts its first block here */
	uint64_t off = sp->tail - sp->base;
	if (off / SPOOL_BLOCK >= sp->nblocks) {
		if (sp->nblocks == sp->bcap && grow_ring(sp))
			return -FM_ENOMEM;
		struct spool_entry *blk = malloc(sizeof *blk * SPOOL_BLOCK);
		if (!blk)
			return -FM_ENOMEM;
		sp->blocks[(sp->bfirst + sp->nblocks) % sp->bcap] = blk;
		sp->nblocks++;
	}
	struct spool_entry *e = spool_at(sp, sp->tail);
	if (msg)
		e->msg = msg_ref(msg);
	else
		e->msg_id = msg_id;
	e->bits = (bytes & SP_BYTES) | flags | (msg ? 0 : SP_ON_DISK);
	e->queued_s = queued_s;
	sp->tail++;
	if (!(flags & SP_GONE)) {
		sp->count++;
		sp->bytes += bytes & SP_BYTES;
	}
	return 0;
}

void spool_spill(struct spool_entry *e)
{
	uint64_t id = atomic_load(&e->msg->id);
	msg_unref(e->msg);
	e->msg_id = id;
	e->bits |= SP_ON_DISK;
}

bool spool_remove(struct spool *sp, uint64_t seq)
{
	if (seq < sp->head || seq >= sp->tail)
		return false;
	struct spool_entry *e = spool_at(sp, seq);
	if (e->bits & SP_GONE)
		return false;
	if (!(e->bits & SP_ON_DISK))
		msg_unref(e->msg);
	e->bits = (e->bits & ~SP_ON_DISK) | SP_GONE;
	sp->count--;
	sp->bytes -= spool_entry_bytes(e);
	if (seq < sp->next_send)
		sp->inflight--;
	while (sp->head < sp->tail && (spool_at(sp, sp->head)->bits & SP_GONE))
		sp->head++;
	/* Blocks wholly behind the head go; an empty spool keeps one, from the head. */
	while (sp->nblocks > 1 && (sp->head - sp->base >= SPOOL_BLOCK || sp->head == sp->tail)) {
		free(sp->blocks[sp->bfirst]);
		sp->bfirst = (sp->bfirst + 1) % sp->bcap;
		sp->nblocks--;
		sp->base += SPOOL_BLOCK;
	}
	if (sp->head == sp->tail)
		sp->base = sp->head;
	if (sp->next_send < sp->head)
		sp->next_send = sp->head;
	return true;
}
