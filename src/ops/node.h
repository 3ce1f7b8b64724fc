/* What every ferromq process serves on its HTTP listener, a broker's or a
 * witness's: the API's credentials (http_token_file, the grant lists, the
 * users of password_file), the reload of those, and its cluster node with
 * the view of it sampled once a second. A broker's operations service
 * (ops.h) holds one and adds the broker's metrics, $SYS and alerts; a
 * witness, which runs no broker, has only this (README, "High
 * availability"). */
#ifndef FM_OPS_NODE_H
#define FM_OPS_NODE_H
#include "cluster_watch.h"
#include "token.h"
#include "../cluster/cluster.h"
#include "../config/config.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define RELOAD_MAX_ERRORS 8
struct reload_result {
	unsigned n;
	char errors[RELOAD_MAX_ERRORS][1280];
};

/* What http_admin_users and http_readonly_users grant a user of
 * password_file in the HTTP API; a user in both lists is an admin. */
enum ops_grant { OPS_GRANT_NONE, OPS_GRANT_READ, OPS_GRANT_ADMIN };

/* Checks a user's password against password_file: on a broker node, the
 * broker's own table (loaded and reloaded with its ACL). */
typedef bool (*ops_users_check)(void *ctx, const char *user, size_t ulen, const uint8_t *pass, size_t plen);

/* The grant lists as last loaded: the configuration's at start, the
 * file's at each reload. */
struct ops_grants {
	char admin[sizeof ((struct config *)0)->http_admin_users];
	char readonly[sizeof ((struct config *)0)->http_readonly_users];
};

/* The cluster node's view at the last sample. */
struct ops_cluster_view {
	bool cluster;             /* a cluster node: st is its status */
	struct cluster_status st;
	double no_leader_s;       /* seconds it has known no leader (0: it knows one) */
	double peer_stalled_s;    /* the longest a peer has been behind without acknowledging (cluster_watch) */
	uint64_t peer_stalled_id; /* that peer (0: none) */
};

struct auth_passwd;

struct ops_node {
	const struct config *cfg;
	const char *conf_path;        /* read again by reloads; may be NULL */
	struct cluster_node *cluster; /* NULL: not in a cluster; set before the HTTP listener starts */
	ops_users_check users_check;  /* NULL: the node's own table, passwd */
	void *users_ctx;
	/* The sampler: the thread that samples (a broker's worker 0, a
	 * witness's HTTP loop) is the only one that reads view. */
	uv_timer_t timer;
	bool timer_open;
	uint64_t no_leader_since_ms; /* monotonic; 0: a leader is known (or no cluster) */
	struct cluster_watch watch;
	struct ops_cluster_view view;
	/* Shared with reloads on other threads. */
	pthread_mutex_t lock;
	char token[TOKEN_MAX]; /* empty: no token file */
	struct ops_grants grants;
	struct auth_passwd *passwd; /* without users_check: password_file's users, or NULL */
	pthread_mutex_t reload_lock; /* one reload at a time */
};

/* Sets n up from cfg (kept: it must outlive n). With http_token_file the
 * token is read, or the file created with a random token (mode 0600).
 * check (with ctx) verifies the users of password_file; NULL: n loads
 * password_file itself and reloads it with the rest. Returns 0, or -1 with
 * a message in err (n then holds nothing to free). */
int ops_node_init(struct ops_node *n, const struct config *cfg, const char *conf_path, ops_users_check check,
		  void *ctx, char *err, size_t errlen);
void ops_node_fini(struct ops_node *n);
/* Connects the cluster node (NULL: none), before the HTTP listener starts. */
void ops_node_set_cluster(struct ops_node *n, struct cluster_node *cluster);

/* Compares tok with the token of http_token_file in constant time; false
 * without a token file. Any thread. */
bool ops_node_token_matches(struct ops_node *n, const char *tok, size_t len);
/* What the grant lists, as last (re)loaded, grant the user name[0..len).
 * Any thread. */
enum ops_grant ops_node_grant(struct ops_node *n, const char *name, size_t len);
/* Whether pass is the password of user in password_file (false without
 * one). Any thread. */
bool ops_node_check_user(struct ops_node *n, const char *user, size_t ulen, const uint8_t *pass, size_t plen);

/* Takes a sample of the cluster node's status into n->view, on the
 * sampler's thread. */
void ops_node_sample(struct ops_node *n);
/* For a node without a broker (whose sampler samples the cluster view):
 * samples at once, then once a second on loop (before the loop runs). */
int ops_node_start(struct ops_node *n, uv_loop_t *loop);
/* Stops that sampler, on the loop's thread. */
void ops_node_stop(struct ops_node *n);

/* Why a cluster node that does not serve clients does not, into buf
 * (size bytes): a witness never does; a leader waits until the log
 * committed before it is applied; a follower names the leader it knows
 * (leader_id at leader, 0: none). Returns buf. */
const char *ops_node_cluster_not_ready(const struct cluster_status *st, uint64_t leader_id, const char *leader,
				       char *buf, size_t size);
/* /readyz's reason on a node that runs no broker (a witness): it never
 * serves MQTT, and names the leader it knows. Any thread; the text stays
 * valid until the calling thread's next call. */
const char *ops_node_not_ready(struct ops_node *n);

/* The whole reload of a node without a broker: the password file (its own
 * table), the token of http_token_file and the grant lists. origin names
 * the trigger in log lines ("SIGHUP", "HTTP reload"). Any thread; one at a
 * time. Errors are logged and listed in r. */
void ops_node_reload(struct ops_node *n, const char *origin, struct reload_result *r);
/* The part of a reload that is the node's (r emptied by the caller): its
 * own password table, the token and, from conf_path as it is now, the
 * grant lists. *fresh: that configuration, for the caller's own settings
 * (its to free), or NULL when it did not load (the error is in r). The
 * caller serializes reloads. */
void ops_node__reload(struct ops_node *n, const char *origin, struct reload_result *r, struct config **fresh);
/* Adds msg to r (at most RELOAD_MAX_ERRORS are kept). */
void ops_reload_error(void *r, const char *msg);

#endif
