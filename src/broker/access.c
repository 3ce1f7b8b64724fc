/* Who may connect and what they may touch: the loaded password file and ACL,
 * swapped as one generation on reload. Connections keep the generation they
 * were admitted with (their compiled ACL borrows from it). */
#include "internal.h"
#include "../base/err.h"
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

int broker_auth_load(struct broker *b, const char *passwd_path, const char *acl_path, char *err, size_t errlen)
{
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

bool broker_check_user(struct broker *b, const char *user, size_t ulen, const uint8_t *pass, size_t plen)
{
	pthread_mutex_lock(&b->auth_lock);
	struct broker_auth *a = b->auth;
	if (a)
		atomic_fetch_add(&a->refs, 1);
	pthread_mutex_unlock(&b->auth_lock);
	bool ok = a && a->passwd && auth_passwd_check(a->passwd, user, ulen, pass, plen);
	auth_unref(a);
	return ok;
}

void broker_auth_free(struct broker *b)
{
	auth_unref(b->auth);
	b->auth = NULL;
}

int client_admit(struct client *c, const struct mqtt_connect *m, const char *client_id)
{
	struct broker *b = c->b;
	pthread_mutex_lock(&b->auth_lock);
	struct broker_auth *a = b->auth;
	if (a)
		atomic_fetch_add(&a->refs, 1);
	pthread_mutex_unlock(&b->auth_lock);
	if (!a)
		return 0;
	c->auth = a;
	/* A certificate identity was verified by TLS; a username needs its password. */
	if (a->passwd && m->username.p && !c->identity_as_username &&
	    !auth_passwd_check(a->passwd, (const char *)m->username.p, m->username.len,
			       m->password.p ? m->password.p : (const uint8_t *)"", m->password.len))
		return -MQTT_RC_BAD_USERNAME_PASSWORD;
	if (a->acl && !(c->acl = auth_acl_client_new(a->acl, c->username, client_id)))
		return -MQTT_RC_SERVER_UNAVAILABLE;
	return 0;
}

void client_release_access(struct client *c)
{
	auth_acl_client_free(c->acl);
	c->acl = NULL;
	auth_unref(c->auth);
	c->auth = NULL;
}
