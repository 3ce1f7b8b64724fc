/* Who may connect and what they may touch: the loaded password file and ACL,
 * swapped as one generation on reload. Connections keep the generation they
 * were admitted with (their compiled ACL borrows from it). */
#include "access.h"
#include "admin.h"
#include "broker.h"
#include "client.h"
#include "../auth/auth.h"
#include "../base/err.h"
#include "../base/log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct broker_auth {
	atomic_uint refs;
	struct auth_passwd *passwd; /* NULL: usernames are not checked */
	struct auth_acl *acl;       /* NULL: everything is allowed */
};

static void auth_unref(struct broker_auth *a)
{
	if (!a || atomic_fetch_sub(&a->refs, 1) != 1)
		return;
	auth_passwd_free(a->passwd);
	auth_acl_free(a->acl);
	free(a);
}

/* The client_id_pattern of the listener on `port`; NULL: any id. Listeners
 * sharing a port (on other addresses) have the same one (check_patterns). */
static const char *listener_pattern(const struct broker *b, uint16_t port)
{
	for (unsigned i = 0; i < b->cfg.n_listeners; i++)
		if (b->cfg.listeners[i].port == port)
			return b->cfg.listeners[i].client_id_pattern[0] ? b->cfg.listeners[i].client_id_pattern : NULL;
	return NULL;
}

/* Checks every listener's client_id_pattern. Done here rather than in the
 * configuration parser, which does not link the auth library; errors name
 * the listener's line. A client only tells its listener's port, so two
 * listeners on one port must agree on the pattern. */
static int check_patterns(const struct config *cfg, char *err, size_t errlen)
{
	const char *src = cfg->source[0] ? cfg->source : "(configuration)";
	char why[160];
	for (unsigned i = 0; i < cfg->n_listeners; i++) {
		const struct listener_conf *l = &cfg->listeners[i];
		if (l->client_id_pattern[0] && auth_clientid_pattern_check(l->client_id_pattern, why, sizeof why)) {
			snprintf(err, errlen, "%s:%u: listener %u: client_id_pattern %s: %s", src, l->line, l->port,
				 l->client_id_pattern, why);
			return -FM_EINVAL;
		}
		for (unsigned j = 0; j < i; j++)
			if (cfg->listeners[j].port == l->port &&
			    strcmp(cfg->listeners[j].client_id_pattern, l->client_id_pattern)) {
				snprintf(err, errlen, "%s:%u: listener %u: client_id_pattern differs from the other "
						      "listener on port %u (line %u)", src, l->line, l->port, l->port,
					 cfg->listeners[j].line);
				return -FM_EINVAL;
			}
	}
	return 0;
}

int broker_auth_load(struct broker *b, const char *passwd_path, const char *acl_path, char *err, size_t errlen)
{
	if (check_patterns(&b->cfg, err, errlen))
		return -FM_EINVAL;
	struct broker_auth *a = calloc(1, sizeof *a);
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return -FM_ENOMEM;
	}
	atomic_init(&a->refs, 1);
	if (passwd_path && *passwd_path && !(a->passwd = auth_passwd_load(passwd_path, err, errlen)))
		goto fail;
	if (acl_path && *acl_path && !(a->acl = auth_acl_load(acl_path, err, errlen)))
		goto fail;
	pthread_mutex_lock(&b->auth_lock);
	struct broker_auth *old = b->auth;
	b->auth = a;
	pthread_mutex_unlock(&b->auth_lock);
	auth_unref(old);
	if (a->passwd)
		log_info("password file %s: %zu users", passwd_path, auth_passwd_count(a->passwd));
	if (a->acl)
		log_info("ACL file %s loaded", acl_path);
	return 0;
fail:
	auth_unref(a);
	return -FM_EINVAL;
}

/* The generation loaded now, with a reference for the caller (NULL: none). */
static struct broker_auth *auth_now(struct broker *b)
{
	pthread_mutex_lock(&b->auth_lock);
	struct broker_auth *a = b->auth;
	if (a)
		atomic_fetch_add(&a->refs, 1);
	pthread_mutex_unlock(&b->auth_lock);
	return a;
}

bool broker_check_user(struct broker *b, const char *user, size_t ulen, const uint8_t *pass, size_t plen)
{
	struct broker_auth *a = auth_now(b);
	bool ok = a && a->passwd && auth_passwd_check(a->passwd, user, ulen, pass, plen);
	auth_unref(a);
	return ok;
}

void broker__access_free(struct broker *b)
{
	auth_unref(b->auth);
	b->auth = NULL;
}

int broker__access_admit(struct client *c, const struct mqtt_connect *m, const char *client_id)
{
	struct broker *b = c->b;
	struct broker_auth *a = auth_now(b);
	c->auth = a;
	/* A certificate identity was verified by TLS; a username needs its password. */
	if (a && a->passwd && m->username.p && !c->identity_as_username &&
	    !auth_passwd_check(a->passwd, (const char *)m->username.p, m->username.len,
			       m->password.p ? m->password.p : (const uint8_t *)"", m->password.len))
		return -MQTT_RC_BAD_USERNAME_PASSWORD;
	/* Before the session is looked up: a client id taken by another user
	 * would take over that user's session. */
	const char *pattern = listener_pattern(b, c->listener_port);
	if (pattern && !auth_clientid_allowed(pattern, c->username, client_id)) {
		log_client(LVL_NOTICE, WHO(c, MQTT_RC_CLIENT_ID_NOT_VALID),
			   "client %s (username %s) refused on listener %u: %s client_id_pattern %s", client_id,
			   OR_DASH(c->username), c->listener_port,
			   c->username ? "its client id does not match" : "no username for", pattern);
		return -MQTT_RC_CLIENT_ID_NOT_VALID;
	}
	if (a && a->acl && !(c->acl = auth_acl_client_new(a->acl, c->username, client_id)))
		return -MQTT_RC_SERVER_UNAVAILABLE;
	return 0;
}

int broker__access_acl_now(struct broker *b, const char *user, const char *client_id, struct access_ref *r)
{
	struct broker_auth *a = auth_now(b);
	r->auth = a;
	r->acl = NULL;
	if (a && a->acl && !(r->acl = auth_acl_client_new(a->acl, user, client_id))) {
		broker__access_ref_release(r);
		return -FM_ENOMEM;
	}
	return 0;
}

void broker__access_ref_release(struct access_ref *r)
{
	auth_acl_client_free(r->acl); /* before the generation it borrows from */
	r->acl = NULL;
	auth_unref(r->auth);
	r->auth = NULL;
}

void broker__access_release(struct client *c)
{
	auth_acl_client_free(c->acl);
	c->acl = NULL;
	auth_unref(c->auth);
	c->auth = NULL;
}
