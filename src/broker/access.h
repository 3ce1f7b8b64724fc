/* Authentication and the ACL of a client (access.c). */
#ifndef FM_BROKER_ACCESS_H
#define FM_BROKER_ACCESS_H
#include "types.h"

/* Checks the password and compiles the client's ACL at CONNECT.
 * Returns 0 or the negated v5 reason code to refuse with. */
int broker__access_admit(struct client *c, const struct mqtt_connect *m, const char *client_id);
void broker__access_release(struct client *c);
void broker__access_free(struct broker *b);

/* The rules loaded now compiled for user/client_id, to admit a will when it
 * fires (the rules may have been reloaded since its CONNECT) or a batch of
 * messages alike (a collector's): r->acl for broker__admit, NULL when no
 * ACL applies; r holds the generation the ACL borrows from until
 * broker__access_ref_release. Returns 0 or -FM_ENOMEM (r holds nothing). */
struct access_ref {
	struct broker_auth *auth;
	struct auth_acl_client *acl;
};
int broker__access_acl_now(struct broker *b, const char *user, const char *client_id, struct access_ref *r);
void broker__access_ref_release(struct access_ref *r);

#endif
