#include "err.h"
#include <stdarg.h>
#include <stdio.h>

const char *fm_strerror(int err)
{
	switch (err < 0 ? -err : err) {
	case FM_OK: return "ok";
	case FM_ENOMEM: return "out of memory";
	case FM_EINVAL: return "invalid value";
	case FM_ENOENT: return "not found";
	case FM_EEXIST: return "already exists";
	case FM_EIO: return "I/O error";
	case FM_ELIMIT: return "limit exceeded";
	case FM_EPROTO: return "protocol error";
	case FM_ENOTLEADER: return "this node no longer leads its cluster";
	}
	return "unknown error";
}

int fm_fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -FM_EINVAL;
}
