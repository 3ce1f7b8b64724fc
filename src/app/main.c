/* ferromq: arguments, configuration, start and stop order, signals. */
#include "../base/log.h"
#include "../bridge/bridge.h"
#include "../collect/collect.h"
#include "../broker/broker.h"
#include "../config/config.h"
#include "../http/http.h"
#include "../net/net.h"
#include "../ops/ops.h"
#include "../store/store.h"
#include "../cluster/cluster.h"
#include "notify.h"
#include "witness.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ferromq [-c FILE] [--check-config] [--cluster-continue-alone] [--help] [--version]\n"
		"\n"
		"An MQTT 3.1.1 and 5.0 broker.\n"
		"\n"
		"  -c, --config FILE   read the configuration from FILE (mosquitto.conf-style lines)\n"
		"      --check-config  check the configuration, print the first error as FILE:LINE, and exit\n"
		"      --cluster-continue-alone\n"
		"                      with this cluster node stopped and the others lost for good (the\n"
		"                      other node of a pair died): make its log a cluster of this node\n"
		"                      alone, and exit; started again, it serves by itself (README,\n"
		"                      \"High availability\")\n"
		"  -h, --help          show this help and every configuration option\n"
		"  -v, --version       print the version\n"
		"\n"
		"Without -c the broker listens on 127.0.0.1:1883 with the defaults below.\n"
		"SIGTERM or SIGINT shut it down cleanly; SIGHUP (or POST /api/reload) reloads the\n"
		"certificates, keys and CRLs of TLS listeners (established connections stay), the\n"
		"password file, the ACL, http_token_file, the HTTP API grants (http_admin_users,\n"
		"http_readonly_users) and the alert thresholds.\n"
		"\n"
		"Configuration options:\n");
	config_print_help(f);
}

/* Opens as many files as the hard limit allows: every client is one. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	rlim_t before = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			rl.rlim_cur = before;
	}
	log_info("open file limit %llu (was %llu)", (unsigned long long)rl.rlim_cur, (unsigned long long)before);
}

/* Two brokers on one database would undo each other's changes (recovery
 * ends the other one's sessions). The directory is ours while we hold an
 * exclusive flock on its ferromq.lock, which holds our PID for the message
 * of the one refused. The kernel drops the lock however we end. Returns the
 * descriptor to keep open, or -1 after logging. */
static int lock_data_dir(const char *dir)
{
	char path[600], pid[32] = "";
	snprintf(path, sizeof path, "%s/ferromq.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_err("persistence_location %s: cannot open %s: %s", dir, path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int e = errno;
		ssize_t n = e == EWOULDBLOCK ? pread(fd, pid, sizeof pid - 1, 0) : -1;
		pid[n > 0 ? n : 0] = 0;
		pid[strcspn(pid, "\n")] = 0;
		if (e == EWOULDBLOCK)
			log_err("persistence_location %s is in use by another ferromq%s%s%s; refusing to start "
				"(two brokers on one database would undo each other's changes)",
				dir, *pid ? " (pid " : "", pid, *pid ? ")" : "");
		else
			log_err("persistence_location %s: cannot lock %s: %s", dir, path, strerror(e));
		close(fd);
		return -1;
	}
	int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) || pwrite(fd, pid, (size_t)len, 0) != len)
		log_warn("persistence_location %s: cannot write our PID to %s: %s", dir, path, strerror(errno));
	return fd;
}

/* What runs on worker 0's loop beside its clients. */
struct services {
	struct ops *ops;
	struct http_server *http; /* NULL without http_listener */
	struct bridges *bridges;  /* NULL without connection sections */
};

static int services_start(void *ctx, uv_loop_t *loop, int http_fd)
{
	struct services *s = ctx;
	if (!s->http && http_fd >= 0)
		close(http_fd);
	if (ops_start(s->ops, loop)) {
		if (s->http && http_fd >= 0)
			close(http_fd);
		return -1;
	}
	if (s->http && http_server_start_on(s->http, loop, http_fd)) {
		ops_stop(s->ops);
		return -1;
	}
	if (s->bridges && bridges_start(s->bridges, loop)) {
		if (s->http)
			http_server_stop(s->http);
		ops_stop(s->ops);
		return -1;
	}
	return 0;
}

static void services_stop(void *ctx)
{
	struct services *s = ctx;
	if (s->bridges)
		bridges_stop(s->bridges);
	if (s->http)
		http_server_stop(s->http);
	ops_stop(s->ops);
}

static int services_release(void *ctx)
{
	struct services *s = ctx;
	return s->http ? http_server_hand_over(s->http) : -1;
}

static int make_dirs(const char *path)
{
	char tmp[512];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0750) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0750) && errno != EEXIST ? -1 : 0;
}


/* What serves clients: a broker and what runs beside it. A single node
 * builds it once; a cluster node builds a serving one while it leads and a
 * standby one (every CONNECT refused with the leader's address, /readyz
 * 503) while it follows, anew at each change. */
enum stack_kind { STACK_SINGLE, STACK_LEADER, STACK_STANDBY };

struct stack {
	enum stack_kind kind;
	struct broker *b;
	struct bridges *bridges;
	struct collector *collector;
	struct services svc;
	struct net *net;
	bool collecting;
};

/* Stops and frees what stack_start built (each part may be missing);
 * store: the single node's, closed once the workers have had their commits
 * back, or NULL. */
static void stack_stop(struct stack *s, struct store *single_store, struct store *cluster_store)
{
	if (s->net) {
		collect_stop(s->collector); /* its last statuses go through the workers */
		net_stop(s->net);
	}
	http_server_free(s->svc.http);
	ops_free(s->svc.ops);
	collect_free(s->collector);
	store_close(single_store);
	if (cluster_store)
		store_detach(cluster_store);
	bridges_free(s->bridges);
	broker_free(s->b);
	memset(s, 0, sizeof *s);
}

/* The MQTT address clients are sent to while this node follows: the
 * leader's, from its cluster_peer line, or else the leader's host with
 * this node's first listener port (nodes configured alike); "" when no
 * leader is known. */
static void server_reference(const struct config *cfg, uint64_t leader_id, const char *leader_raft, char *out,
			     size_t len)
{
	const char *colon = strrchr(leader_raft, ':');
	*out = 0;
	for (unsigned i = 0; i < cfg->n_cluster_peers; i++)
		if (cfg->cluster_peers[i].id == leader_id && cfg->cluster_peers[i].mqtt_address[0]) {
			snprintf(out, len, "%s", cfg->cluster_peers[i].mqtt_address);
			return;
		}
	if (*leader_raft && colon && cfg->n_listeners)
		snprintf(out, len, "%.*s:%u", (int)(colon - leader_raft), leader_raft, cfg->listeners[0].port);
}

/* Builds and starts a stack. store: the node's store (NULL without
 * persistence); reference: a standby's Server Reference; old: the stack
 * this one replaces (NULL: none), which keeps its listeners until this one
 * is built (a serving broker has recovered) and then hands them over: it
 * is stopped afterwards, its connections closing while this one answers.
 * Returns 0, or -1 after logging (what was built is for stack_stop). */
static int stack_start(struct stack *s, const struct config *cfg, const char *conf_path, unsigned n_workers,
		       struct store *store, enum stack_kind kind, const char *reference, struct stack *old)
{
	char err[768];
	int bridge_err = 0, collect_err = 0;
	s->kind = kind;
	if (!(s->b = broker_new(cfg, n_workers, &net_ports))) {
		log_err("out of memory");
		return -1;
	}
	if (broker_auth_load(s->b, cfg->password_file, cfg->acl_file, err, sizeof err)) {
		log_err("%s", err);
		return -1;
	}
	if (kind == STACK_STANDBY) {
		broker_set_standby(s->b, reference);
	} else {
		/* Before recovery: the store hands the spools back to them. */
		s->bridges = bridges_new(s->b, &bridge_err);
		if (bridge_err) {
			log_err("out of memory");
			return -1;
		}
	}
	if (store && kind != STACK_STANDBY) {
		notify_status("recovering the store");
		int rc = kind == STACK_SINGLE ? store_recover(store, s->b, err, sizeof err)
					      : store_attach(store, s->b, err, sizeof err);
		if (rc || (kind == STACK_SINGLE && store_start(store, s->b))) {
			log_err("%s", err);
			log_err("start-up stopped: nothing was served and nothing was changed");
			return -1;
		}
	} else if (!cfg->persistence) {
		log_notice("persistence false: sessions and messages are kept in memory only");
	}
	/* Before serving: a write request may come with the first client. */
	if (kind != STACK_STANDBY)
		s->collector = collect_new(s->b, &collect_err);
	s->svc.ops = collect_err ? NULL : ops_new(s->b, conf_path, err, sizeof err);
	s->svc.bridges = s->bridges;
	if (collect_err)
		snprintf(err, sizeof err, "out of memory");
	if (s->svc.ops && cfg->http_port && !(s->svc.http = http_server_new(s->svc.ops, &s->b->cfg)))
		snprintf(err, sizeof err, "out of memory");
	if (!s->svc.ops || (!s->svc.http && cfg->http_port)) {
		log_err("%s", err);
		return -1;
	}
	ops_set_store(s->svc.ops, store);
	ops_set_bridges(s->svc.ops, s->bridges);
	ops_set_collector(s->svc.ops, s->collector);
	struct net_listeners *taken = old && old->net ? net_release_listeners(old->net) : NULL;
	struct net_service svc = { &s->svc, services_start, services_stop, services_release };
	if (!(s->net = net_start(s->b, &svc, taken)))
		return -1;
	if (kind != STACK_STANDBY)
		ops_set_ready(s->svc.ops);
	/* Once the workers and the store run: readings are published at once. */
	return s->collector && collect_start(s->collector) ? -1 : 0;
}

/* ---- a cluster node ---- */

static pthread_t main_thread;

/* A stack replaced by another, stopped on a thread of its own: its
 * connections take their time to close (up to a second when their clients
 * do not read), and meanwhile the main thread keeps the new one up to date
 * (the leader named in its refusals). */
struct retiring {
	pthread_t thread;
	struct stack *s;
	struct store *cluster_store; /* detached once s is stopped, or NULL */
	bool running;
};

static void *retire_main(void *arg)
{
	struct retiring *r = arg;
	pthread_setname_np(pthread_self(), "fm-stack-stop");
	stack_stop(r->s, NULL, r->cluster_store);
	return NULL;
}

/* Returns once the stack being retired, if any, is stopped and freed: its
 * slot is free again, and a store it held is detached. */
static void retire_wait(struct retiring *r)
{
	if (r->running)
		pthread_join(r->thread, NULL);
	r->running = false;
}

/* Stops s in the background (here when no thread can be started). */
static void retire(struct retiring *r, struct stack *s, struct store *cluster_store)
{
	retire_wait(r);
	r->s = s;
	r->cluster_store = cluster_store;
	if (pthread_create(&r->thread, NULL, retire_main, r)) {
		stack_stop(s, NULL, cluster_store);
		return;
	}
	r->running = true;
}

/* The store says whether to serve may have changed: the main thread looks. */
static void wake_main(void *arg)
{
	(void)arg;
	pthread_kill(main_thread, SIGUSR1);
}

/* The raft node's settings from the configuration; dir holds raft's own
 * files (persistence_location/raft). */
static void cluster_conf_of(const struct config *cfg, struct cluster_conf *cc, const char *dir)
{
	memset(cc, 0, sizeof *cc);
	cc->node_id = cfg->cluster_node_id;
	snprintf(cc->address, sizeof cc->address, "%s", cfg->cluster_address);
	cc->join = cfg->cluster_join;
	if (!cc->join) {
		cc->voters[0].id = cc->node_id;
		snprintf(cc->voters[0].address, sizeof cc->voters[0].address, "%s", cfg->cluster_address);
		cc->n_voters = 1;
		for (unsigned i = 0; i < cfg->n_cluster_peers && cc->n_voters < CLUSTER_MAX_NODES; i++, cc->n_voters++) {
			cc->voters[cc->n_voters].id = cfg->cluster_peers[i].id;
			snprintf(cc->voters[cc->n_voters].address, sizeof cc->voters[cc->n_voters].address, "%s",
				 cfg->cluster_peers[i].address);
		}
	}
	cc->role = cfg->cluster_witness ? CLUSTER_ROLE_WITNESS : CLUSTER_ROLE_BROKER;
	cc->data_dir = dir;
	cc->election_timeout_ms = cfg->cluster_election_timeout_ms;
	cc->heartbeat_ms = cfg->cluster_heartbeat_ms;
}

int main(int argc, char **argv)
{
	const char *conf_path = NULL;
	bool check_only = false, continue_alone = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
			conf_path = argv[++i];
		} else if (!strcmp(a, "--check-config")) {
			check_only = true;
		} else if (!strcmp(a, "--cluster-continue-alone")) {
			continue_alone = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--version")) {
			printf("ferromq %s\n", FM_VERSION);
			return 0;
		} else {
			fprintf(stderr, "ferromq: unknown argument '%s'\n\n", a);
			usage(stderr);
			return 2;
		}
	}

	struct config cfg;
	char err[768];
	config_defaults(&cfg);
	if ((conf_path && config_load(&cfg, conf_path, err, sizeof err)) || config_finish(&cfg, err, sizeof err)) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (check_only) {
		/* The password and ACL files are part of the configuration. */
		struct broker *probe = broker_new(&cfg, 1, &net_ports);
		int bad = probe && broker_auth_load(probe, cfg.password_file, cfg.acl_file, err, sizeof err);
		broker_free(probe);
		if (bad) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		printf("%s: configuration OK\n", conf_path ? conf_path : "(defaults)");
		return 0;
	}

	if (continue_alone) {
		if (!cfg.cluster_node_id) {
			fprintf(stderr, "ferromq: --cluster-continue-alone: %s has no cluster_node_id\n",
				conf_path ? conf_path : "the configuration");
			return 2;
		}
		char raft_dir[600];
		struct cluster_conf cc;
		snprintf(raft_dir, sizeof raft_dir, "%s/raft", cfg.persistence_location);
		cluster_conf_of(&cfg, &cc, raft_dir);
		/* Never under a running node: its lock says so. */
		int lock = lock_data_dir(cfg.persistence_location);
		if (lock < 0)
			return 1;
		int rc = cluster_continue_alone(&cc, err, sizeof err);
		close(lock);
		if (rc) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		printf("node %llu is now a cluster of itself alone: start it normally\n",
		       (unsigned long long)cfg.cluster_node_id);
		return 0;
	}
	log_mask = cfg.log_mask;
	log_json = cfg.log_format == LOG_FORMAT_JSON;
	if (log_open(cfg.log_stderr, cfg.log_file[0] ? cfg.log_file : NULL, cfg.log_syslog)) {
		fprintf(stderr, "ferromq: cannot open log file %s: %s\n", cfg.log_file, strerror(errno));
		return 1;
	}
	/* From here every exit goes through `out`, which frees what exists (each
	 * free takes NULL) in the reverse order of the start. */
	int status = 1;
	int data_lock = -2; /* the data directory's lock, held until exit; -2: none */
	struct store *store = NULL;
	/* The stack that runs, and room for the one that replaces it: each is
	 * referred to by address (its services run on a worker's loop). */
	struct stack stacks[2], *stack = &stacks[0];
	struct retiring retiring = { .running = false };
	enum stack_kind running = STACK_SINGLE;
	bool built = false, cluster = cfg.cluster_node_id != 0;
	uint64_t built_generation = 0;
	char ready_status[96], raft_dir[600], reference[CLUSTER_ADDRESS_MAX + 8] = "";
	memset(stacks, 0, sizeof stacks);

	log_notice("ferromq %s starting", FM_VERSION);
	raise_fd_limit();
	if (cfg.persistence && make_dirs(cfg.persistence_location)) {
		log_err("persistence_location %s: %s", cfg.persistence_location, strerror(errno));
		goto out;
	}
	if (cfg.persistence && (data_lock = lock_data_dir(cfg.persistence_location)) == -1)
		goto out;

	unsigned n_workers = cfg.workers;
	if (!n_workers) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		n_workers = cores > 0 ? (unsigned)cores : 1;
	}

	/* Signals go to the main thread only, through sigwait; workers never
	 * see them. SIGUSR1: the store says whether to serve may have changed. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	main_thread = pthread_self();

	if (cluster) {
		struct cluster_conf cc;
		snprintf(raft_dir, sizeof raft_dir, "%s/raft", cfg.persistence_location);
		cluster_conf_of(&cfg, &cc, raft_dir);
		if (cfg.cluster_witness) {
			status = witness_run(&cfg, conf_path, &cc, &sigs);
			goto out;
		}
		notify_status("recovering the store");
		store = store_open(cfg.persistence_location, cfg.durability, err, sizeof err);
		if (!store || store_cluster_start(store, &cc, wake_main, NULL, err, sizeof err)) {
			log_err("%s", err);
			log_err("start-up stopped: nothing was served");
			goto out;
		}
	} else if (cfg.persistence) {
		notify_status("recovering the store");
		if (!(store = store_open(cfg.persistence_location, cfg.durability, err, sizeof err))) {
			log_err("%s", err);
			log_err("start-up stopped: nothing was served and nothing was changed");
			goto out;
		}
	}

	for (;;) {
		enum stack_kind want = STACK_SINGLE;
		char leader[CLUSTER_ADDRESS_MAX], ref[sizeof reference];
		uint64_t leader_id = 0, generation = 0;
		if (cluster) {
			want = store_cluster_serving(store, leader, sizeof leader, &leader_id, &generation) ? STACK_LEADER
													     : STACK_STANDBY;
			server_reference(&cfg, leader_id, leader, ref, sizeof ref);
		}
		/* A new generation: the serving broker went out of step with the
		 * replicated state, and is built again from the database. */
		bool again = false;
		if (!built || want != running || (want == STACK_LEADER && generation != built_generation)) {
			struct stack *old = stack;
			built_generation = generation;
			if (built && want == STACK_LEADER && running == STACK_LEADER) {
				/* The new broker can recover only once the old one has let
				 * go of the database (stopped, its transactions handed
				 * back): a standby stack refuses clients meanwhile. */
				log_notice("cluster: this node's broker went out of step with the replicated state: it "
					   "refuses clients until it is built again from the database");
				want = STACK_STANDBY;
				ref[0] = 0;
				again = true;
			} else if (built) {
				log_notice("cluster: %s", want == STACK_LEADER ? "this node leads: its broker recovers the "
					   "replicated state and serves" : "this node no longer leads: its clients are "
					   "disconnected and it refuses new ones");
			}
			/* The CONNECTs the old broker still reads are refused too. */
			if (built && running == STACK_LEADER)
				broker_set_standby(old->b, ref);
			/* The other slot, and the database, are free once the stack
			 * replaced before is stopped (at once, but for a quick
			 * succession of changes). */
			retire_wait(&retiring);
			stack = old == &stacks[0] ? &stacks[1] : &stacks[0];
			int rc = stack_start(stack, &cfg, conf_path, n_workers, store, want, ref, built ? old : NULL);
			if (!rc && built)
				log_notice("cluster: the %s broker answers; the %s one's connections close",
					   want == STACK_LEADER ? "serving" : "standby",
					   running == STACK_LEADER ? "serving" : "standby");
			/* Its listeners are the new stack's by now (or the new one
			 * failed): its connections close while the new one answers. */
			if (built)
				retire(&retiring, old, old->kind == STACK_LEADER ? store : NULL);
			built = true;
			running = want;
			if (rc)
				goto out;
			snprintf(reference, sizeof reference, "%s", ref);
			snprintf(ready_status, sizeof ready_status, "%s: %u workers",
				 want == STACK_STANDBY ? "standby (cluster follower)" : "ready", n_workers);
			log_notice("%s", ready_status);
			/* Type=notify: systemd counts the broker started from here, after
			 * recovery, with every listener accepting and the collectors running. */
			notify_ready(ready_status);
		} else if (want == STACK_STANDBY && strcmp(ref, reference)) {
			snprintf(reference, sizeof reference, "%s", ref);
			broker_set_standby(stack->b, reference);
		}
		int sig;
		if (again || sigwait(&sigs, &sig) || sig == SIGUSR1)
			continue;
		if (sig == SIGHUP) {
			struct reload_result r;
			notify_reloading(); /* systemctl reload waits for READY=1 */
			ops_reload(stack->svc.ops, "SIGHUP", &r);
			notify_ready(ready_status);
			continue;
		}
		log_notice("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		notify_stopping();
		status = 0;
		break;
	}
out:;
	retire_wait(&retiring);
	bool served = stack->net != NULL;
	stack_stop(stack, cluster ? NULL : store, cluster && running == STACK_LEADER ? store : NULL);
	if (cluster)
		store_close(store); /* raft stops with it */
	if (served)
		log_notice("stopped");
	log_close();
	if (data_lock >= 0)
		close(data_lock);
	return status;
}
