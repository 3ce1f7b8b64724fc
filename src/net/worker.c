/* Worker threads and listeners. */
#include "net.h"
#include "worker.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/log.h"
#include "../tls/tls.h"
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 250

void net_wake(struct broker *b, int worker);

/* Socket bound with SO_REUSEPORT so each worker accepts on its own socket. */
static int bind_listener(const struct listener_conf *l, int *fd_out)
{
	struct sockaddr_storage ss;
	int rc = uv_ip4_addr(l->address, l->port, (struct sockaddr_in *)&ss);
	if (rc)
		rc = uv_ip6_addr(l->address, l->port, (struct sockaddr_in6 *)&ss);
	if (rc) {
		log_err("listener %s:%u: not an IP address", l->address, l->port);
		return -FM_EINVAL;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -FM_EIO;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	socklen_t sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		log_err("listener %s:%u: %s", l->address, l->port, strerror(errno));
		close(fd);
		return -FM_EIO;
	}
	*fd_out = fd;
	return 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct nworker *w = listener->data;
	if (status < 0) {
		log_warn("accept: %s", uv_strerror(status));
		return;
	}
	conn_accept(w, listener, (unsigned)((uv_tcp_t *)listener - w->listeners));
}

static void close_quiet(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* Once a stopping worker has no connections left, its own handles close
 * and the loop ends. */
static void maybe_finish(struct nworker *w)
{
	/* Wait for the store to hand back every transaction of this worker, and
	 * for administrative jobs, which may still come to this loop. */
	if (!w->stopping || w->n_conns || atomic_load(&w->bw->pending_txns) ||
	    atomic_load(&w->bw->b->jobs_in_flight))
		return;
	close_quiet((uv_handle_t *)&w->async);
	close_quiet((uv_handle_t *)&w->check);
	close_quiet((uv_handle_t *)&w->timer);
	close_quiet((uv_handle_t *)&w->pace);
}

static void on_check(uv_check_t *h)
{
	struct nworker *w = h->data;
	broker_worker_wake(w->bw);
	broker_worker_flush_store(w->bw);
	conn_flush_all(w);
	maybe_finish(w);
}

static void begin_stop(struct nworker *w)
{
	w->stopping = true;
	for (unsigned i = 0; i < w->n_listeners; i++)
		close_quiet((uv_handle_t *)&w->listeners[i]);
	if (w->id == 0 && w->net->svc.ctx)
		w->net->svc.stop(w->net->svc.ctx);
	broker_worker_shutdown(w->bw);
	conn_flush_all(w);
}

static void ctxset_clear(struct tls_ctxset *s)
{
	for (unsigned i = 0; i < CONFIG_MAX_LISTENERS; i++) {
		SSL_CTX_free(s->ctx[i]);
		s->ctx[i] = NULL;
	}
}

/* Copies src with a reference of its own to each context. */
static void ctxset_copy(struct tls_ctxset *dst, const struct tls_ctxset *src)
{
	for (unsigned i = 0; i < CONFIG_MAX_LISTENERS; i++) {
		dst->ctx[i] = src->ctx[i];
		if (dst->ctx[i])
			SSL_CTX_up_ref(dst->ctx[i]);
	}
}

static void on_async(uv_async_t *h)
{
	struct nworker *w = h->data;
	struct tls_ctxset *fresh = atomic_exchange(&w->tls_next, NULL);
	if (fresh) {
		/* New connections use the new contexts; each SSL keeps its own. */
		ctxset_clear(&w->tls);
		w->tls = *fresh;
		free(fresh);
	}
	int stage = atomic_load(&w->stage);
	if (stage == 1 && !w->wills_done) {
		w->wills_done = true;
		broker_worker_publish_wills(w->bw);
		atomic_fetch_add(&w->net->wills_published, 1);
	}
	if (stage >= 2 && !w->stopping)
		begin_stop(w);
	broker_worker_wake(w->bw);
}

static void on_timer(uv_timer_t *h)
{
	struct nworker *w = h->data;
	broker_worker_tick(w->bw, clock_mono_ms());
	if (w->id == 0 && !w->stopping)
		broker_housekeeping(w->bw->b);
}

static void *worker_main(void *arg)
{
	struct nworker *w = arg;
	uv_run(&w->loop, UV_RUN_DEFAULT);
	return NULL;
}

static int worker_init(struct net *n, struct nworker *w, int id, const int *fds, unsigned n_fds)
{
	struct broker *b = n->b;
	w->id = id;
	w->net = n;
	w->bw = &b->workers[id];
	w->rbuf = malloc(NWORKER_READ_BUF);
	if (!w->rbuf || uv_loop_init(&w->loop))
		return -FM_ENOMEM;
	ctxset_copy(&w->tls, &n->tls);
	uv_async_init(&w->loop, &w->async, on_async);
	uv_check_init(&w->loop, &w->check);
	uv_timer_init(&w->loop, &w->timer);
	uv_timer_init(&w->loop, &w->pace);
	w->async.data = w->check.data = w->timer.data = w->pace.data = w;
	uv_check_start(&w->check, on_check);
	uv_timer_start(&w->timer, on_timer, TICK_MS, TICK_MS);
	for (unsigned i = 0; i < n_fds; i++) {
		uv_tcp_t *t = &w->listeners[i];
		uv_tcp_init(&w->loop, t);
		t->data = w;
		w->n_listeners++;
		int rc = uv_tcp_open(t, fds[i]);
		if (!rc)
			rc = uv_listen((uv_stream_t *)t, 1024, on_connection);
		if (rc) {
			log_err("listen: %s", uv_strerror(rc));
			return -FM_EIO;
		}
	}
	return 0;
}

void net_wake(struct broker *b, int worker)
{
	struct net *n = b->ports.ctx;
	uv_async_send(&n->w[worker].async);
}

struct net *net_start(struct broker *b, const struct net_service *svc)
{
	const struct config *cfg = &b->cfg;
	struct net *n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	n->b = b;
	n->n = b->n_workers;
	n->w = calloc(n->n, sizeof *n->w);
	if (!n->w) {
		free(n);
		return NULL;
	}
	b->ports.ctx = n;
	pthread_mutex_init(&n->reload_lock, NULL);
	unsigned started = 0;
	int rc = 0;
	for (unsigned l = 0; l < cfg->n_listeners && !rc; l++) {
		char err[1024];
		if (LISTENER_TLS(&cfg->listeners[l]) &&
		    !(n->tls.ctx[l] = tls_ctx_build(&cfg->listeners[l], cfg->source, err, sizeof err))) {
			log_err("%s", err);
			rc = -FM_EINVAL;
		}
	}
	for (unsigned i = 0; i < n->n && !rc; i++) {
		int fds[CONFIG_MAX_LISTENERS];
		unsigned nf = 0;
		for (unsigned l = 0; l < cfg->n_listeners && !rc; l++) {
			rc = bind_listener(&cfg->listeners[l], &fds[nf]);
			if (!rc)
				nf++;
		}
		if (!rc)
			rc = worker_init(n, &n->w[i], (int)i, fds, nf);
		else
			for (unsigned k = 0; k < nf; k++)
				close(fds[k]);
		if (!rc && i == 0 && svc) {
			/* A service that fails to start closes what it opened. */
			rc = svc->start(svc->ctx, &n->w[0].loop) ? -FM_EIO : 0;
			if (!rc)
				n->svc = *svc;
		}
	}
	if (!rc) {
		for (unsigned i = 0; i < n->n; i++) {
			if (pthread_create(&n->w[i].thread, NULL, worker_main, &n->w[i]))
				break;
			started++;
		}
	}
	if (rc || started < n->n) {
		/* Stop what started, then tear everything down. */
		for (unsigned i = 0; i < started; i++) {
			atomic_store(&n->w[i].stage, 2);
			uv_async_send(&n->w[i].async);
			pthread_join(n->w[i].thread, NULL);
		}
		for (unsigned i = started; i < n->n; i++) {
			struct nworker *w = &n->w[i];
			if (!w->rbuf)
				continue;
			for (unsigned k = 0; k < w->n_listeners; k++)
				close_quiet((uv_handle_t *)&w->listeners[k]);
			if (i == 0 && n->svc.ctx)
				n->svc.stop(n->svc.ctx);
			close_quiet((uv_handle_t *)&w->async);
			close_quiet((uv_handle_t *)&w->check);
			close_quiet((uv_handle_t *)&w->timer);
			close_quiet((uv_handle_t *)&w->pace);
			uv_run(&w->loop, UV_RUN_DEFAULT);
		}
		for (unsigned i = 0; i < n->n; i++) {
			if (n->w[i].rbuf)
				uv_loop_close(&n->w[i].loop);
			free(n->w[i].rbuf);
		free(n->w[i].paced);
			ctxset_clear(&n->w[i].tls);
		}
		ctxset_clear(&n->tls);
		pthread_mutex_destroy(&n->reload_lock);
		free(n->w);
		free(n);
		b->ports.ctx = NULL;
		return NULL;
	}
	for (unsigned i = 0; i < cfg->n_listeners; i++) {
		const struct listener_conf *l = &cfg->listeners[i];
		bool ws = l->protocol == PROTO_WEBSOCKETS;
		log_notice("listening on %s:%u (%s)", l->address, l->port,
			   LISTENER_TLS(l) ? (ws ? "MQTT over secure WebSocket" : "MQTT over TLS")
					   : (ws ? "MQTT over WebSocket" : "MQTT"));
	}
	return n;
}

unsigned net_listener_open(const struct net *n, unsigned idx)
{
	int open = atomic_load_explicit(&n->open[idx], memory_order_relaxed);
	return open > 0 ? (unsigned)open : 0;
}

int net_reload_tls(struct net *n, const char *origin, void (*on_error)(void *ctx, const char *msg), void *ctx_arg)
{
	const struct config *cfg = &n->b->cfg;
	int failures = 0, reloaded = 0;
	char msg[1200];
	pthread_mutex_lock(&n->reload_lock);
	for (unsigned l = 0; l < cfg->n_listeners; l++) {
		const struct listener_conf *lc = &cfg->listeners[l];
		if (!LISTENER_TLS(lc))
			continue;
		char err[1024];
		SSL_CTX *ctx = tls_ctx_build(lc, cfg->source, err, sizeof err);
		if (!ctx) {
			snprintf(msg, sizeof msg, "%s; listener %u keeps its previous certificates", err, lc->port);
			log_err("%s: %s", origin, msg);
			on_error(ctx_arg, msg);
			failures++;
			continue;
		}
		SSL_CTX_free(n->tls.ctx[l]);
		n->tls.ctx[l] = ctx;
		reloaded++;
		log_notice("%s: listener %u: certificate, key, CA and CRL files reloaded", origin, lc->port);
	}
	if (!reloaded) {
		if (!failures)
			log_notice("%s: no TLS listener, nothing to reload", origin);
		pthread_mutex_unlock(&n->reload_lock);
		return failures;
	}
	for (unsigned i = 0; i < n->n; i++) {
		struct tls_ctxset *set = malloc(sizeof *set);
		if (!set) {
			snprintf(msg, sizeof msg, "out of memory; worker %u keeps its previous certificates", i);
			log_err("%s: %s", origin, msg);
			on_error(ctx_arg, msg);
			failures++;
			continue;
		}
		ctxset_copy(set, &n->tls);
		/* A set the worker has not taken yet is replaced by this one. */
		struct tls_ctxset *old = atomic_exchange(&n->w[i].tls_next, set);
		if (old) {
			ctxset_clear(old);
			free(old);
		}
		uv_async_send(&n->w[i].async);
	}
	pthread_mutex_unlock(&n->reload_lock);
	return failures;
}

void net_stop(struct net *n)
{
	if (n->b->cfg.will_on_shutdown) {
		/* Every will goes out while every subscriber is still connected. */
		for (unsigned i = 0; i < n->n; i++) {
			atomic_store(&n->w[i].stage, 1);
			uv_async_send(&n->w[i].async);
		}
		uint64_t deadline = clock_mono_ms() + 5000;
		while (atomic_load(&n->wills_published) < n->n && clock_mono_ms() < deadline) {
			struct timespec ts = { 0, 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
	atomic_store(&n->b->shutting_down, true);
	for (unsigned i = 0; i < n->n; i++) {
		atomic_store(&n->w[i].stage, 2);
		uv_async_send(&n->w[i].async);
	}
	for (unsigned i = 0; i < n->n; i++) {
		pthread_join(n->w[i].thread, NULL);
		uv_loop_close(&n->w[i].loop);
		free(n->w[i].rbuf);
		free(n->w[i].paced);
		ctxset_clear(&n->w[i].tls);
		struct tls_ctxset *pending = atomic_exchange(&n->w[i].tls_next, NULL);
		if (pending) {
			ctxset_clear(pending);
			free(pending);
		}
	}
	ctxset_clear(&n->tls);
	pthread_mutex_destroy(&n->reload_lock);
	free(n->w);
	free(n);
}
