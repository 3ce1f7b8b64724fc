/* Internal error codes. Functions return 0 or a negative fm_err. */
#ifndef FM_ERR_H
#define FM_ERR_H

enum fm_err {
	FM_OK = 0,
	FM_ENOMEM = 1,   /* allocation failed */
	FM_EINVAL = 2,   /* bad argument or value */
	FM_ENOENT = 3,   /* not found */
	FM_EEXIST = 4,   /* already present */
	FM_EIO = 5,      /* system call failed; errno is logged where it happened */
	FM_ELIMIT = 6,   /* a configured limit would be exceeded */
	FM_EPROTO = 7,   /* peer broke the protocol */
	FM_ENOTLEADER = 8, /* this cluster node stopped leading: nothing more is acknowledged here */
};

const char *fm_strerror(int err);
#include <stddef.h>
/* A refusal's reason, formatted into err (when errlen), and -FM_EINVAL: the
 * one way parsers and checks say why they refuse a value. */
int fm_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
