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
#include "notify.h"
#include <errno.h>
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
		"Usage: ferromq [-c FILE] [--check-config] [--help] [--version]\n"
		"\n"
		"An MQTT 3.1.1 and 5.0 broker.\n"
		"\n"
		"  -c, --config FILE   read the configuration from FILE (mosquitto.conf-style lines)\n"
		"      --check-config  check the configuration, print the first error as FILE:LINE, and exit\n"
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

static int services_start(void *ctx, uv_loop_t *loop)
{
	struct services *s = ctx;
	if (ops_start(s->ops, loop))
		return -1;
	if (s->http && http_server_start(s->http, loop)) {
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

int main(int argc, char **argv)
{
	const char *conf_path = NULL;
	bool check_only = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
			conf_path = argv[++i];
		} else if (!strcmp(a, "--check-config")) {
			check_only = true;
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
	struct broker *b = NULL;
	struct bridges *bridges = NULL;
	struct store *store = NULL;
	struct collector *collector = NULL;
	struct services svc = { NULL, NULL, NULL };
	struct net *net = NULL;
	int bridge_err, collect_err;
	char ready_status[64];
	bool serve = false;

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

	/* Signals go to the main thread only, through sigwait; workers never see them. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (!(b = broker_new(&cfg, n_workers, &net_ports))) {
		log_err("out of memory");
		goto out;
	}
	if (broker_auth_load(b, cfg.password_file, cfg.acl_file, err, sizeof err)) {
		log_err("%s", err);
		goto out;
	}
	/* Before recovery: the store hands the spools back to them. */
	bridges = bridges_new(b, &bridge_err);
	if (bridge_err) {
		log_err("out of memory");
		goto out;
	}
	if (cfg.persistence) {
		notify_status("recovering the store");
		store = store_open(cfg.persistence_location, cfg.durability, err, sizeof err);
		if (!store || store_recover(store, b, err, sizeof err) || store_start(store, b)) {
			log_err("%s", err);
			log_err("start-up stopped: nothing was served and nothing was changed");
			goto out;
		}
	} else {
		log_notice("persistence false: sessions and messages are kept in memory only");
	}
	/* Before serving: a write request may come with the first client. */
	collector = collect_new(b, &collect_err);
	svc.ops = collect_err ? NULL : ops_new(b, conf_path, err, sizeof err);
	svc.bridges = bridges;
	if (collect_err)
		snprintf(err, sizeof err, "out of memory");
	if (svc.ops && cfg.http_port && !(svc.http = http_server_new(svc.ops, &b->cfg)))
		snprintf(err, sizeof err, "out of memory");
	if (!svc.ops || (!svc.http && cfg.http_port)) {
		log_err("%s", err);
		goto out;
	}
	ops_set_store(svc.ops, store);
	ops_set_bridges(svc.ops, bridges);
	ops_set_collector(svc.ops, collector);
	if (!(net = net_start(b, &(struct net_service){ &svc, services_start, services_stop })))
		goto out;
	ops_set_ready(svc.ops);
	log_notice("ready: %u workers", n_workers);
	/* Once the workers and the store run: readings are published at once. */
	serve = !collector || !collect_start(collector);
	/* Type=notify: systemd counts the broker started from here, after
	 * recovery, with every listener accepting and the collectors running. */
	snprintf(ready_status, sizeof ready_status, "ready: %u workers", n_workers);
	if (serve)
		notify_ready(ready_status);

	for (; serve;) {
		int sig;
		if (sigwait(&sigs, &sig))
			continue;
		if (sig == SIGHUP) {
			struct reload_result r;
			notify_reloading(); /* systemctl reload waits for READY=1 */
			ops_reload(svc.ops, "SIGHUP", &r);
			notify_ready(ready_status);
			continue;
		}
		log_notice("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		notify_stopping();
		break;
	}
	status = serve ? 0 : 1;
out:
	if (net) {
		collect_stop(collector); /* its last statuses go through the workers */
		net_stop(net);
	}
	http_server_free(svc.http);
	ops_free(svc.ops);
	collect_free(collector);
	store_close(store); /* every worker has had its commits back */
	bridges_free(bridges);
	broker_free(b);
	if (net)
		log_notice("stopped");
	log_close();
	if (data_lock >= 0)
		close(data_lock);
	return status;
}
