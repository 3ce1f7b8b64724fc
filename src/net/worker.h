/* A network worker thread (net-internal). */
#ifndef FM_NWORKER_H
#define FM_NWORKER_H
#include "conn.h"
#include <pthread.h>

#define NWORKER_READ_BUF (64 * 1024)

struct nworker {
	int id;
	struct net *net;
	struct bworker *bw;
	pthread_t thread;
	uv_loop_t loop;
	uv_async_t async;  /* wake-ups from other threads, and stop */
	uv_check_t check;  /* end of each loop turn: deliveries, then writes */
	uv_timer_t timer;  /* keep-alive, connect timeout, housekeeping */
	uv_tcp_t listeners[CONFIG_MAX_LISTENERS];
	unsigned n_listeners;
	uint8_t *rbuf;     /* one read buffer shared by all connections of the worker */
	struct conn *flush_head;
	unsigned n_conns;
	atomic_int stage;  /* shutdown: 1 = publish wills, 2 = stop */
	bool wills_done;
	bool stopping;
};

#endif
