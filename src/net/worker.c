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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 250

void net_wake(struct broker *b, int worker);

/* Accepts per wake-up of one listener, so that a flood of connections
 * does not starve the clients already connected. */
#define ACCEPT_BATCH 64
/* Out of descriptors: how long a worker stops accepting. */
#define ACCEPT_PAUSE_MS 250
#define RATELOG_MS 10000

bool ratelog_due(struct ratelog *r, uint64_t now_ms, unsigned *skipped)
{
	if (now_ms < r->next_ms) {
		r->skipped++;
		return false;
	}
	*skipped = r->skipped;
	r->skipped = 0;
	r->next_ms = now_ms + RATELOG_MS;
	return true;
}

static int listener_addr(const struct listener_conf *l, struct sockaddr_storage *ss, socklen_t *sl)
{
	memset(ss, 0, sizeof *ss);
	if (uv_ip4_addr(l->address, l->port, (struct sockaddr_in *)ss) &&
	    uv_ip6_addr(l->address, l->port, (struct sockaddr_in6 *)ss)) {
		log_err("listener %s:%u: not an IP address", l->address, l->port);
		return -FM_EINVAL;
	}
	*sl = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	return 0;
}

/* The process that holds the abstract socket sa (its listen() call), or -1. */
static long port_owner(const struct sockaddr_un *sa, socklen_t sl)
{
	long pid = -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct ucred cr;
	socklen_t cl = sizeof cr;
	if (fd >= 0 && !connect(fd, (const struct sockaddr *)sa, sl) &&
	    !getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) && cr.pid > 0)
		pid = cr.pid;
	if (fd >= 0)
		close(fd);
	return pid;
}

/* Makes the port ours before the workers bind it. Their sockets use
 * SO_REUSEPORT, which would let a second ferromq of the same user join the
 * group and take part of the clients. So each port is first claimed with an
 * abstract Unix socket named after it (the kernel frees it however the
 * process ends; it is per network namespace, like ports), then bound once
 * without SO_REUSEPORT, which fails if any program already listens there.
 * Returns 0, or -FM_EIO after logging. */
static int claim_port(struct net *n, const struct listener_conf *l)
{
	for (unsigned i = 0; i < n->n_port_locks; i++)
		if (n->locked[i]->port == l->port && !strcmp(n->locked[i]->address, l->address))
			return 0;
	/* Per address and port: SO_REUSEPORT shares only an identical pair, and
	 * brokers on other addresses of one port are a legitimate setup (an
	 * address that overlaps, like the wildcard, is caught by the probe). */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int len = snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "ferromq/listen/%s/%u", l->address, l->port);
	socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sl) || listen(fd, 1)) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		if (e != EADDRINUSE) {
			log_err("listener %s:%u: cannot claim the port: %s", l->address, l->port, strerror(e));
			return -FM_EIO;
		}
		long pid = port_owner(&sa, sl);
		char who[32] = "";
		if (pid > 0)
			snprintf(who, sizeof who, " (pid %ld)", pid);
		log_err("listener %s:%u: another ferromq%s already listens on port %u; refusing to start "
			"(two brokers on one port would each get part of the clients)",
			l->address, l->port, who, l->port);
		return -FM_EIO;
	}
	n->port_locks[n->n_port_locks] = fd;
	n->locked[n->n_port_locks++] = l;
	struct sockaddr_storage ss;
	socklen_t al;
	if (listener_addr(l, &ss, &al))
		return -FM_EINVAL;
	int probe = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (probe < 0 || setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
	    bind(probe, (struct sockaddr *)&ss, al)) {
		log_err("listener %s:%u: %s%s", l->address, l->port, strerror(errno),
			errno == EADDRINUSE ? " (another program listens there)" : "");
		if (probe >= 0)
			close(probe);
		return -FM_EIO;
	}
	close(probe);
	return 0;
}

/* Socket bound with SO_REUSEPORT so each worker accepts on its own socket. */
static int bind_listener(const struct listener_conf *l, int *fd_out)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int rc = listener_addr(l, &ss, &sl);
	if (rc)
		return rc;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -FM_EIO;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		log_err("listener %s:%u: %s", l->address, l->port, strerror(errno));
		close(fd);
		return -FM_EIO;
	}
	*fd_out = fd;
	return 0;
}

static void on_acceptable(uv_poll_t *p, int status, int events);

static void accept_resume(uv_timer_t *t)
{
	struct nworker *w = t->data;
	for (unsigned i = 0; i < w->n_listeners && !w->stopping; i++)
		uv_poll_start(&w->listeners[i].poll, UV_READABLE, on_acceptable);
}

/* accept failed with something other than "nothing waiting": out of
 * descriptors, most often. The connection stays in the backlog and poll
 * would report it again at once, so the worker stops accepting on all its
 * listeners for ACCEPT_PAUSE_MS; its clients are served meanwhile. */
static void accept_pause(struct nworker *w, const struct nlistener *l, int err)
{
	for (unsigned i = 0; i < w->n_listeners; i++)
		uv_poll_stop(&w->listeners[i].poll);
	uv_timer_start(&w->accept_pause, accept_resume, ACCEPT_PAUSE_MS, 0);
	unsigned skipped;
	if (!ratelog_due(&w->accept_log, uv_now(&w->loop), &skipped))
		return;
	struct rlimit rl = { 0 };
	getrlimit(RLIMIT_NOFILE, &rl);
	log_warn("listener %u: accept: %s (open file limit %llu, %u client connections open); not accepting "
		 "for %d ms (%u more since the last such line)",
		 w->net->b->cfg.listeners[l->idx].port, strerror(err), (unsigned long long)rl.rlim_cur,
		 (unsigned)atomic_load(&w->net->open_total), ACCEPT_PAUSE_MS, skipped);
}

static void on_acceptable(uv_poll_t *p, int status, int events)
{
	struct nlistener *l = (struct nlistener *)p;
	struct nworker *w = p->data;
	(void)events;
	if (status < 0) {
		accept_pause(w, l, -status);
		return;
	}
	for (int i = 0; i < ACCEPT_BATCH && !w->stopping; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_accept(w, fd, l->idx);
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		/* The peer gave up before we took it: the next one may be fine. */
		if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
			continue;
		accept_pause(w, l, errno);
		return;
	}
}

static void listener_closed(uv_handle_t *h)
{
	struct nlistener *l = (struct nlistener *)h;
	close(l->fd);
	l->fd = -1;
}

/* Closes a listening socket the worker owns (its poll first, if any). */
static void listener_close(struct nlistener *l)
{
	if (l->open) {
		if (!uv_is_closing((uv_handle_t *)&l->poll))
			uv_close((uv_handle_t *)&l->poll, listener_closed);
	} else if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
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
	close_quiet((uv_handle_t *)&w->accept_pause);
}

static void on_check(uv_check_t *h)
{
	struct nworker *w = h->data;
	broker_worker_wake(w->bw);
	broker_worker_flush_store(w->bw);
	conn_flush_all(w);
	/* Writes done at once resume deliveries (conn.c), which may ask the
	 * store for bodies or delete rows: those go now, not a tick later. */
	broker_worker_flush_store(w->bw);
	maybe_finish(w);
}

static void begin_stop(struct nworker *w)
{
	w->stopping = true;
	for (unsigned i = 0; i < w->n_listeners; i++)
		listener_close(&w->listeners[i]);
	uv_timer_stop(&w->accept_pause);
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

/* Hands the worker's listening sockets over (net_release_listeners): its
 * polls stop, the sockets stay open, listening, in net->handover; worker 0's
 * service gives its own. Connections already accepted are served on. */
static void listeners_hand_over(struct nworker *w)
{
	struct net_listeners *h = w->net->handover;
	w->released = true;
	if (w->stopping) {
		uv_sem_post(&w->net->released); /* closed already: nothing to hand */
		return;
	}
	uv_timer_stop(&w->accept_pause);
	for (unsigned i = 0; i < w->n_listeners; i++) {
		struct nlistener *l = &w->listeners[i];
		if (l->open)
			uv_close((uv_handle_t *)&l->poll, NULL); /* the fd stays open */
		l->open = false;
		h->fds[(unsigned)w->id * h->n_listeners + l->idx] = l->fd;
		l->fd = -1;
	}
	w->n_listeners = 0;
	if (w->id == 0 && w->net->svc.ctx && w->net->svc.release)
		h->service_fd = w->net->svc.release(w->net->svc.ctx);
	uv_sem_post(&w->net->released);
}

static void on_async(uv_async_t *h)
{
	struct nworker *w = h->data;
	if (atomic_load(&w->net->release_asked) && !w->released)
		listeners_hand_over(w);
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
	conn_linger_sweep(w);
	if (w->id == 0 && !w->stopping)
		broker_housekeeping(w->bw->b);
}

static void *worker_main(void *arg)
{
	struct nworker *w = arg;
	char name[16];
	snprintf(name, sizeof name, "fm-net-%d", w->id);
	pthread_setname_np(pthread_self(), name);
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
	uv_timer_init(&w->loop, &w->accept_pause);
	w->async.data = w->check.data = w->timer.data = w->pace.data = w->accept_pause.data = w;
	uv_check_start(&w->check, on_check);
	uv_timer_start(&w->timer, on_timer, TICK_MS, TICK_MS);
	/* The worker owns every fd from here, whatever fails. */
	for (unsigned i = 0; i < n_fds; i++) {
		w->listeners[i] = (struct nlistener){ .fd = fds[i], .idx = (uint8_t)i };
		w->n_listeners++;
	}
	for (unsigned i = 0; i < n_fds; i++) {
		struct nlistener *l = &w->listeners[i];
		int rc = uv_poll_init(&w->loop, &l->poll, l->fd);
		if (!rc) {
			l->open = true;
			l->poll.data = w;
			rc = uv_poll_start(&l->poll, UV_READABLE, on_acceptable);
		}
		if (rc) {
			log_err("listen: %s", uv_strerror(rc));
			return -FM_EIO;
		}
	}
	return 0;
}

static void release_ports(struct net *n)
{
	for (unsigned i = 0; i < n->n_port_locks; i++)
		close(n->port_locks[i]);
	n->n_port_locks = 0;
}

/* Client connections the open file limit leaves room for: the limit less
 * what the broker keeps for itself (per worker its loop, wake-up and
 * listening sockets; the store's files; the log; the HTTP listener's
 * connections; the bridges). Past it a new connection is closed at once,
 * so accepting never runs out of descriptors in normal operation. */
static void fd_budget(struct net *n)
{
	const struct config *cfg = &n->b->cfg;
	struct rlimit rl;
	uint64_t limit = UINT32_MAX;
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < limit)
		limit = rl.rlim_cur;
	uint64_t reserve = 48 + (uint64_t)n->n * (cfg->n_listeners + 4) + (cfg->http_port ? 130 : 0) +
			   4 * (uint64_t)cfg->n_bridges;
	if (limit > 2 * reserve) {
		n->max_total = (unsigned)(limit - reserve);
	} else {
		n->max_total = (unsigned)(limit / 2);
		log_warn("open file limit %llu is low: %llu descriptors are kept for the broker itself",
			 (unsigned long long)limit, (unsigned long long)reserve);
	}
	log_notice("open file limit %llu: at most %u client connections at once", (unsigned long long)limit,
		   n->max_total);
}

void net_wake(struct broker *b, int worker)
{
	struct net *n = b->ports.ctx;
	uv_async_send(&n->w[worker].async);
}

static struct net_listeners *listeners_new(unsigned n_workers, unsigned n_listeners)
{
	size_t n_fds = (size_t)n_workers * n_listeners;
	struct net_listeners *l = malloc(sizeof *l + n_fds * sizeof l->fds[0]);
	if (!l)
		return NULL;
	*l = (struct net_listeners){ .n_workers = n_workers, .n_listeners = n_listeners, .service_fd = -1 };
	for (size_t i = 0; i < n_fds; i++)
		l->fds[i] = -1;
	return l;
}

void net_listeners_free(struct net_listeners *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < (size_t)l->n_workers * l->n_listeners; i++)
		if (l->fds[i] >= 0)
			close(l->fds[i]);
	for (unsigned i = 0; i < l->n_port_locks; i++)
		close(l->port_locks[i]);
	if (l->service_fd >= 0)
		close(l->service_fd);
	free(l);
}

/* The port claims of `taken` become n's (before its workers start). */
static void take_ports(struct net *n, struct net_listeners *taken)
{
	for (unsigned i = 0; i < taken->n_port_locks; i++) {
		n->port_locks[i] = taken->port_locks[i];
		n->locked[i] = &n->b->cfg.listeners[taken->locked_idx[i]];
	}
	n->n_port_locks = taken->n_port_locks;
	taken->n_port_locks = 0;
}

struct net *net_start(struct broker *b, const struct net_service *svc, struct net_listeners *taken)
{
	const struct config *cfg = &b->cfg;
	struct net *n = calloc(1, sizeof *n);
	if (n && !(n->handover = listeners_new(b->n_workers, cfg->n_listeners))) {
		free(n);
		n = NULL;
	}
	if (!n) {
		net_listeners_free(taken);
		return NULL;
	}
	n->b = b;
	n->n = b->n_workers;
	n->w = calloc(n->n, sizeof *n->w);
	if (!n->w || uv_sem_init(&n->released, 0)) {
		net_listeners_free(taken);
		free(n->handover);
		free(n->w);
		free(n);
		return NULL;
	}
	b->ports.ctx = n;
	pthread_mutex_init(&n->reload_lock, NULL);
	if (taken && (taken->n_workers != n->n || taken->n_listeners != cfg->n_listeners)) {
		/* Not from a net of this configuration: its sockets close and ours
		 * are bound anew. */
		log_warn("listeners handed over for %u workers and %u listeners, not %u and %u: binding anew",
			 taken->n_workers, taken->n_listeners, n->n, cfg->n_listeners);
		net_listeners_free(taken);
		taken = NULL;
	}
	if (taken)
		take_ports(n, taken);
	fd_budget(n);
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
			int *handed = taken ? &taken->fds[i * taken->n_listeners + l] : NULL;
			if (handed && *handed >= 0) {
				fds[nf++] = *handed; /* the same socket, still listening */
				*handed = -1;
				continue;
			}
			if (i == 0)
				rc = claim_port(n, &cfg->listeners[l]);
			if (!rc)
				rc = bind_listener(&cfg->listeners[l], &fds[nf]);
			if (!rc)
				nf++;
		}
		if (!rc) {
			rc = worker_init(n, &n->w[i], (int)i, fds, nf);
		} else {
			for (unsigned k = 0; k < nf; k++)
				close(fds[k]);
		}
		if (!rc && i == 0 && svc) {
			/* A service that fails to start closes what it opened. */
			int listen_fd = taken ? taken->service_fd : -1;
			if (taken)
				taken->service_fd = -1; /* the service's from here */
			rc = svc->start(svc->ctx, &n->w[0].loop, listen_fd) ? -FM_EIO : 0;
			if (!rc)
				n->svc = *svc;
		}
	}
	/* Clients are let in only once every listener and service is up, so
	 * that one that gets in finds the HTTP listener too. */
	for (unsigned i = 0; i < n->n && !rc; i++) {
		for (unsigned k = 0; k < n->w[i].n_listeners && !rc; k++) {
			if (listen(n->w[i].listeners[k].fd, 1024)) {
				log_err("listen: %s", strerror(errno));
				rc = -FM_EIO;
			}
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
				listener_close(&w->listeners[k]);
			if (i == 0 && n->svc.ctx)
				n->svc.stop(n->svc.ctx);
			close_quiet((uv_handle_t *)&w->async);
			close_quiet((uv_handle_t *)&w->check);
			close_quiet((uv_handle_t *)&w->timer);
			close_quiet((uv_handle_t *)&w->pace);
			close_quiet((uv_handle_t *)&w->accept_pause);
			uv_run(&w->loop, UV_RUN_DEFAULT);
		}
		for (unsigned i = 0; i < n->n; i++) {
			if (n->w[i].rbuf)
				uv_loop_close(&n->w[i].loop);
			free(n->w[i].rbuf);
			free(n->w[i].paced);
			free(n->w[i].lingering);
			ctxset_clear(&n->w[i].tls);
		}
		release_ports(n);
		ctxset_clear(&n->tls);
		pthread_mutex_destroy(&n->reload_lock);
		uv_sem_destroy(&n->released);
		net_listeners_free(n->handover);
		net_listeners_free(taken);
		free(n->w);
		free(n);
		b->ports.ctx = NULL;
		return NULL;
	}
	net_listeners_free(taken); /* what the configuration no longer has, if anything */
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

struct net_listeners *net_release_listeners(struct net *n)
{
	struct net_listeners *h = n->handover;
	if (!h)
		return NULL;
	atomic_store(&n->release_asked, true);
	for (unsigned i = 0; i < n->n; i++)
		uv_async_send(&n->w[i].async);
	for (unsigned i = 0; i < n->n; i++)
		uv_sem_wait(&n->released);
	/* The port claims go with the sockets: no other ferromq may take the
	 * ports in between. */
	for (unsigned i = 0; i < n->n_port_locks; i++) {
		h->port_locks[i] = n->port_locks[i];
		h->locked_idx[i] = (uint8_t)(n->locked[i] - n->b->cfg.listeners);
	}
	h->n_port_locks = n->n_port_locks;
	n->n_port_locks = 0;
	n->handover = NULL;
	return h;
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
		free(n->w[i].lingering);
		ctxset_clear(&n->w[i].tls);
		struct tls_ctxset *pending = atomic_exchange(&n->w[i].tls_next, NULL);
		if (pending) {
			ctxset_clear(pending);
			free(pending);
		}
	}
	release_ports(n);
	ctxset_clear(&n->tls);
	pthread_mutex_destroy(&n->reload_lock);
	uv_sem_destroy(&n->released);
	net_listeners_free(n->handover); /* not handed over: holds nothing */
	free(n->w);
	free(n);
}
