/* Telling the service manager where the broker is: systemd's sd_notify
 * (notify_systemd.c) or nothing (notify_none.c), chosen in CMake by
 * FM_SYSTEMD. Outside a Type=notify service (no NOTIFY_SOCKET) every call
 * does nothing. Called from the main thread only. */
#ifndef FM_APP_NOTIFY_H
#define FM_APP_NOTIFY_H

/* Recovery is done and every listener accepts: READY=1. Also after a reload. */
void notify_ready(const char *status);
/* SIGHUP arrived: RELOADING=1 until the next notify_ready. */
void notify_reloading(void);
/* Shutting down: STOPPING=1. */
void notify_stopping(void);
/* A free-form STATUS= line (systemctl status shows it). */
void notify_status(const char *status);

#endif
