/* The operations every ferromq process serves, broker or witness: the HTTP
 * API's credentials and their reload, and the cluster node's view. */
#include "node.h"
#include "../auth/auth.h"
#include "../base/clock.h"
#include "../base/log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLE_MS 1000

static void grants_from(struct ops_grants *g, const struct config *c)
{
	snprintf(g->admin, sizeof g->admin, "%s", c->http_admin_users);
	snprintf(g->readonly, sizeof g->readonly, "%s", c->http_readonly_users);
}

int ops_node_init(struct ops_node *n, const struct config *cfg, const char *conf_path, ops_users_check check,
		  void *ctx, char *err, size_t errlen)
{
	memset(n, 0, sizeof *n);
	n->cfg = cfg;
	n->conf_path = conf_path;
	n->users_check = check;
	n->users_ctx = ctx;
	grants_from(&n->grants, cfg);
	const struct conf_file *tf = &cfg->http_token_file;
	if (tf->line) {
		bool created;
		char msg[700];
		if (token_load(tf->path, true, n->token, &created, msg, sizeof msg)) {
			snprintf(err, errlen, "%s:%u: http_token_file %s", cfg->source, tf->line, msg);
			return -1;
		}
		if (created)
			log_notice("http_token_file %s: created with a new random token (mode 0600)", tf->path);
	}
	if (!check && cfg->password_file[0]) {
		if (!(n->passwd = auth_passwd_load(cfg->password_file, err, errlen)))
			return -1;
		log_info("password file %s: %zu users", cfg->password_file, auth_passwd_count(n->passwd));
	}
	pthread_mutex_init(&n->lock, NULL);
	pthread_mutex_init(&n->reload_lock, NULL);
	return 0;
}

void ops_node_fini(struct ops_node *n)
{
	auth_passwd_free(n->passwd);
	n->passwd = NULL;
	pthread_mutex_destroy(&n->lock);
	pthread_mutex_destroy(&n->reload_lock);
}

void ops_node_set_cluster(struct ops_node *n, struct cluster_node *cluster) { n->cluster = cluster; }

bool ops_node_token_matches(struct ops_node *n, const char *tok, size_t len)
{
	pthread_mutex_lock(&n->lock);
	bool ok = n->token[0] && token_equal(tok, len, n->token);
	pthread_mutex_unlock(&n->lock);
	return ok;
}

enum ops_grant ops_node_grant(struct ops_node *n, const char *name, size_t len)
{
	pthread_mutex_lock(&n->lock);
	enum ops_grant g = OPS_GRANT_NONE;
	if (auth_name_listed(n->grants.admin, name, len))
		g = OPS_GRANT_ADMIN;
	else if (auth_name_listed(n->grants.readonly, name, len))
		g = OPS_GRANT_READ;
	pthread_mutex_unlock(&n->lock);
	return g;
}

bool ops_node_check_user(struct ops_node *n, const char *user, size_t ulen, const uint8_t *pass, size_t plen)
{
	if (n->users_check)
		return n->users_check(n->users_ctx, user, ulen, pass, plen);
	/* Held through the hash: a reload frees the table it replaces. Only
	 * the HTTP loop checks, so nothing else waits on it but a reload. */
	pthread_mutex_lock(&n->lock);
	bool ok = n->passwd && auth_passwd_check(n->passwd, user, ulen, pass, plen);
	pthread_mutex_unlock(&n->lock);
	return ok;
}

/* ---- the cluster view ---- */

void ops_node_sample(struct ops_node *n)
{
	struct ops_cluster_view *v = &n->view;
	v->cluster = n->cluster != NULL;
	v->no_leader_s = 0;
	if (!n->cluster)
		return;
	cluster_status(n->cluster, &v->st);
	uint64_t now = clock_mono_ms();
	if (v->st.leader_id)
		n->no_leader_since_ms = 0;
	else if (!n->no_leader_since_ms)
		n->no_leader_since_ms = now;
	if (n->no_leader_since_ms)
		v->no_leader_s = (double)(now - n->no_leader_since_ms) / 1000.0;
	v->peer_stalled_s = cluster_watch_update(&n->watch, &v->st, now, &v->peer_stalled_id);
}

static void on_sample(uv_timer_t *t)
{
	ops_node_sample(t->data);
}

int ops_node_start(struct ops_node *n, uv_loop_t *loop)
{
	uv_timer_init(loop, &n->timer);
	n->timer.data = n;
	n->timer_open = true;
	/* The first sample at once: /metrics answers from the loop's first turn. */
	ops_node_sample(n);
	uv_timer_start(&n->timer, on_sample, SAMPLE_MS, SAMPLE_MS);
	return 0;
}

void ops_node_stop(struct ops_node *n)
{
	if (n->timer_open && !uv_is_closing((uv_handle_t *)&n->timer))
		uv_close((uv_handle_t *)&n->timer, NULL);
}

const char *ops_node_cluster_not_ready(const struct cluster_status *st, uint64_t leader_id, const char *leader,
				       char *buf, size_t size)
{
	if (st->role == CLUSTER_ROLE_WITNESS && st->state == CLUSTER_LEADER)
		snprintf(buf, size, "witness, leader: a witness never serves MQTT clients; it hands leadership to a "
			 "broker (term %llu)", (unsigned long long)st->term);
	else if (st->role == CLUSTER_ROLE_WITNESS && leader_id)
		snprintf(buf, size, "witness, %s: a witness never serves MQTT clients; the leader is node %llu at %s",
			 cluster_state_name(st->state), (unsigned long long)leader_id, leader);
	else if (st->role == CLUSTER_ROLE_WITNESS)
		snprintf(buf, size, "witness, %s: a witness never serves MQTT clients; no leader known (term %llu)",
			 cluster_state_name(st->state), (unsigned long long)st->term);
	else if (st->state == CLUSTER_LEADER)
		snprintf(buf, size, "leader: applying the log committed before it serves (term %llu)",
			 (unsigned long long)st->term);
	else if (leader_id)
		snprintf(buf, size, "%s: the leader is node %llu at %s", cluster_state_name(st->state),
			 (unsigned long long)leader_id, leader);
	else
		snprintf(buf, size, "%s: no leader known (term %llu)", cluster_state_name(st->state),
			 (unsigned long long)st->term);
	return buf;
}

const char *ops_node_not_ready(struct ops_node *n)
{
	static _Thread_local char why[128 + CLUSTER_ADDRESS_MAX];
	if (!n->cluster)
		return "starting: the cluster node is not running yet";
	struct cluster_status st;
	cluster_status(n->cluster, &st);
	return ops_node_cluster_not_ready(&st, st.leader_id, st.leader_address, why, sizeof why);
}

/* ---- reloads ---- */

void ops_reload_error(void *ctx, const char *msg)
{
	struct reload_result *r = ctx;
	if (r->n < RELOAD_MAX_ERRORS)
		snprintf(r->errors[r->n++], sizeof r->errors[0], "%s", msg);
}

static bool list_empty(const char *list) { return !list[strspn(list, " \t,")]; }

/* Logs how a reload changed the grant lists from was to now. */
static void log_grants(const struct ops_node *n, const char *origin, const struct ops_grants *was,
		       const struct ops_grants *now)
{
	bool changed = false;
	if (strcmp(was->admin, now->admin)) {
		log_notice("%s: http_admin_users changed from \"%s\" to \"%s\" (HTTP API grants, from the next "
			   "request)", origin, was->admin, now->admin);
		changed = true;
	}
	if (strcmp(was->readonly, now->readonly)) {
		log_notice("%s: http_readonly_users changed from \"%s\" to \"%s\" (HTTP API grants, from the next "
			   "request)", origin, was->readonly, now->readonly);
		changed = true;
	}
	if (changed && n->cfg->password_file[0] && list_empty(now->admin) && list_empty(now->readonly))
		log_warn("%s: no user of password_file may use the HTTP API now (they get 403)", origin);
}

/* The configuration file as it is now (NULL after logging and listing
 * why it did not load). */
static struct config *load_fresh(const struct ops_node *n, const char *origin, struct reload_result *r)
{
	struct config *c = malloc(sizeof *c);
	char err[768];
	if (!c) {
		ops_reload_error(r, "out of memory");
		return NULL;
	}
	config_defaults(c);
	if (config_load(c, n->conf_path, err, sizeof err) || config_finish(c, err, sizeof err)) {
		/* A broker (which checks users itself) also reloads its alert thresholds from it. */
		log_err("%s: %s; the %sHTTP API grants stay", origin, err, n->users_check ? "alert thresholds and " : "");
		ops_reload_error(r, err);
		free(c);
		return NULL;
	}
	return c;
}

void ops_node__reload(struct ops_node *n, const char *origin, struct reload_result *r, struct config **fresh)
{
	char err[768];
	*fresh = NULL;
	/* The password file, when it is the node's own (a witness's); a
	 * broker's is reloaded with its ACL. */
	if (!n->users_check && n->cfg->password_file[0]) {
		struct auth_passwd *pw = auth_passwd_load(n->cfg->password_file, err, sizeof err);
		if (!pw) {
			log_err("%s: %s; the previous password file stays", origin, err);
			ops_reload_error(r, err);
		} else {
			pthread_mutex_lock(&n->lock);
			struct auth_passwd *old = n->passwd;
			n->passwd = pw;
			pthread_mutex_unlock(&n->lock);
			auth_passwd_free(old);
			log_info("password file %s: %zu users", n->cfg->password_file, auth_passwd_count(pw));
		}
	}
	const struct conf_file *tf = &n->cfg->http_token_file;
	if (tf->line) {
		char tok[TOKEN_MAX];
		bool created;
		if (token_load(tf->path, false, tok, &created, err, sizeof err)) {
			log_err("%s: http_token_file %s; the previous token stays", origin, err);
			ops_reload_error(r, err);
		} else {
			pthread_mutex_lock(&n->lock);
			memcpy(n->token, tok, sizeof tok);
			pthread_mutex_unlock(&n->lock);
		}
	}
	if (!n->conf_path || !(*fresh = load_fresh(n, origin, r)))
		return;
	struct ops_grants was, now;
	grants_from(&now, *fresh);
	pthread_mutex_lock(&n->lock);
	was = n->grants;
	n->grants = now;
	pthread_mutex_unlock(&n->lock);
	log_grants(n, origin, &was, &now);
}

void ops_node_reload(struct ops_node *n, const char *origin, struct reload_result *r)
{
	struct config *fresh;
	memset(r, 0, sizeof *r);
	pthread_mutex_lock(&n->reload_lock);
	ops_node__reload(n, origin, r, &fresh);
	pthread_mutex_unlock(&n->reload_lock);
	free(fresh);
	log_notice("%s: reload done (%u error%s)", origin, r->n, r->n == 1 ? "" : "s");
}
