/* notify.h over libsystemd's sd_notify: datagrams to $NOTIFY_SOCKET. A
 * failed send only costs systemd's view of us, so it is logged at debug. */
#include "notify.h"
#include "../base/log.h"
#include <string.h>
#include <systemd/sd-daemon.h>

static void notify_send(const char *what, const char *status)
{
	int rc = status ? sd_notifyf(0, "%s%sSTATUS=%s", what, *what ? "\n" : "", status) : sd_notify(0, what);
	if (rc < 0)
		log_debug("sd_notify %s: %s", what, strerror(-rc));
}

void notify_ready(const char *status) { notify_send("READY=1", status); }
void notify_reloading(void) { notify_send("RELOADING=1", "reloading"); }
void notify_stopping(void) { notify_send("STOPPING=1", "shutting down"); }
void notify_status(const char *status) { notify_send("", status); }
