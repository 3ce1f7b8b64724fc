/* The witness's process: a raft node on a loop of its own thread. */
#include "witness.h"
#include "notify.h"
#include "../base/log.h"
#include <pthread.h>
#include <stdio.h>
#include <string.h>

struct witness {
	uv_loop_t loop;
	uv_async_t stop;
	struct cluster_node *node;
};

static void closed(uv_handle_t *h)
{
	(void)h;
}

static void stopped(void *arg)
{
	struct witness *w = arg;
	uv_close((uv_handle_t *)&w->stop, closed);
}

static void on_stop(uv_async_t *a)
{
	struct witness *w = a->data;
	cluster_stop(w->node, stopped, w);
}

static void *loop_main(void *arg)
{
	struct witness *w = arg;
	uv_run(&w->loop, UV_RUN_DEFAULT);
	return NULL;
}

int witness_run(const struct cluster_conf *conf, sigset_t *sigs)
{
	struct witness w;
	char err[512];
	memset(&w, 0, sizeof w);
	if (uv_loop_init(&w.loop)) {
		log_err("witness: cannot create its loop");
		return 1;
	}
	uv_async_init(&w.loop, &w.stop, on_stop);
	w.stop.data = &w;
	struct cluster_callbacks cb = { .owner = &w };
	pthread_t thread;
	if (cluster_start(&w.loop, conf, &cb, &w.node, err, sizeof err)) {
		log_err("%s", err);
		log_err("start-up stopped: the witness does not vote");
		uv_close((uv_handle_t *)&w.stop, closed);
		uv_run(&w.loop, UV_RUN_DEFAULT);
		uv_loop_close(&w.loop);
		return 1;
	}
	if (pthread_create(&thread, NULL, loop_main, &w)) {
		log_err("witness: cannot start its thread");
		return 1;
	}
	log_notice("witness %llu: storing the log and voting (no MQTT listeners)", (unsigned long long)conf->node_id);
	notify_ready("witness");
	for (;;) {
		int sig;
		if (sigwait(sigs, &sig) || sig == SIGUSR1 || sig == SIGHUP)
			continue;
		log_notice("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		notify_stopping();
		break;
	}
	uv_async_send(&w.stop);
	pthread_join(thread, NULL);
	uv_loop_close(&w.loop);
	log_notice("stopped");
	return 0;
}
