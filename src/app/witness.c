/* The witness's process: a raft node on a loop of its own thread and, with
 * http_listener, the HTTP listener on another: an answer being prepared,
 * a password being hashed, never holds up the node's heartbeats and votes. */
#include "witness.h"
#include "notify.h"
#include "../base/log.h"
#include "../http/http.h"
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* One loop on a thread of its own, stopped through its async handle. */
struct side_loop {
	uv_loop_t loop;
	uv_async_t stop;
	pthread_t thread;
	bool open;    /* initialized: side_loop_end closes it */
	bool running; /* the thread was started */
};

struct witness {
	struct side_loop raft, http;
	struct cluster_node *node;
	struct ops_node ops;       /* credentials, the cluster view */
	struct http_server *server; /* NULL without http_listener */
};

static void closed(uv_handle_t *h)
{
	(void)h;
}

static void raft_stopped(void *arg)
{
	struct witness *w = arg;
	uv_close((uv_handle_t *)&w->raft.stop, closed);
}

static void on_raft_stop(uv_async_t *a)
{
	struct witness *w = a->data;
	if (w->node)
		cluster_stop(w->node, raft_stopped, w);
	else
		raft_stopped(w);
}

/* Closes the listener, its connections and the sampler: the loop ends. */
static void on_http_stop(uv_async_t *a)
{
	struct witness *w = a->data;
	if (w->server)
		http_server_stop(w->server);
	ops_node_stop(&w->ops);
	uv_close((uv_handle_t *)&w->http.stop, closed);
}

static void *loop_main(void *arg)
{
	struct side_loop *l = arg;
	uv_run(&l->loop, UV_RUN_DEFAULT);
	return NULL;
}

static int side_loop_init(struct side_loop *l, struct witness *w, uv_async_cb on_stop)
{
	if (uv_loop_init(&l->loop))
		return -1;
	uv_async_init(&l->loop, &l->stop, on_stop);
	l->stop.data = w;
	l->open = true;
	return 0;
}

static int side_loop_run(struct side_loop *l)
{
	if (pthread_create(&l->thread, NULL, loop_main, l))
		return -1;
	l->running = true;
	return 0;
}

/* Stops a loop (its on_stop closes what it holds): on its thread, or on
 * this one when side_loop_run did not start it; then closes it. */
static void side_loop_end(struct side_loop *l)
{
	if (!l->open)
		return;
	uv_async_send(&l->stop);
	if (l->running)
		pthread_join(l->thread, NULL);
	else
		uv_run(&l->loop, UV_RUN_DEFAULT);
	uv_loop_close(&l->loop);
}

/* The HTTP listener on a loop of its own, reporting on w->node. Returns 0,
 * or -1 after logging (side_loop_end then closes what was opened). */
static int http_start(struct witness *w, const struct config *cfg)
{
	if (side_loop_init(&w->http, w, on_http_stop)) {
		log_err("witness: cannot create the HTTP listener's loop");
		return -1;
	}
	if (!(w->server = http_server_new_witness(&w->ops, cfg))) {
		log_err("out of memory");
		return -1;
	}
	ops_node_set_cluster(&w->ops, w->node);
	if (http_server_start(w->server, &w->http.loop))
		return -1;
	ops_node_start(&w->ops, &w->http.loop);
	if (side_loop_run(&w->http)) {
		log_err("witness: cannot start the HTTP listener's thread");
		return -1;
	}
	return 0;
}

int witness_run(const struct config *cfg, const char *conf_path, const struct cluster_conf *conf, sigset_t *sigs)
{
	struct witness w;
	char err[768];
	int status = 1;
	memset(&w, 0, sizeof w);
	/* Its own password table (no broker has one here). */
	if (ops_node_init(&w.ops, cfg, conf_path, NULL, NULL, err, sizeof err)) {
		log_err("%s", err);
		return 1;
	}
	if (side_loop_init(&w.raft, &w, on_raft_stop)) {
		log_err("witness: cannot create its loop");
		goto out;
	}
	struct cluster_callbacks cb = { .owner = &w };
	if (cluster_start(&w.raft.loop, conf, &cb, &w.node, err, sizeof err)) {
		log_err("%s", err);
		log_err("start-up stopped: the witness does not vote");
		goto out;
	}
	if (side_loop_run(&w.raft)) {
		log_err("witness: cannot start its thread");
		goto out;
	}
	if (cfg->http_port) {
		if (http_start(&w, cfg)) {
			log_err("start-up stopped: the witness's HTTP listener did not start");
			goto out;
		}
	}
	log_notice("witness %llu: storing the log and voting (no MQTT listeners%s)", (unsigned long long)conf->node_id,
		   cfg->http_port ? "; HTTP: /healthz, /readyz, /metrics, /api/cluster" : "");
	notify_ready("witness");
	for (;;) {
		int sig;
		if (sigwait(sigs, &sig) || sig == SIGUSR1)
			continue;
		if (sig == SIGHUP) {
			struct reload_result r;
			notify_reloading();
			ops_node_reload(&w.ops, "SIGHUP", &r);
			notify_ready("witness");
			continue;
		}
		log_notice("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		notify_stopping();
		break;
	}
	status = 0;
out:
	/* The HTTP listener first: it asks the raft node for its status. */
	side_loop_end(&w.http);
	http_server_free(w.server);
	side_loop_end(&w.raft);
	ops_node_fini(&w.ops);
	if (!status)
		log_notice("stopped");
	return status;
}
