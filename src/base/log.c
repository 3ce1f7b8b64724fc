#define _POSIX_C_SOURCE 200809L
#include "log.h"
#include "err.h"
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>

unsigned log_mask = (1u << LVL_ERR) | (1u << LVL_WARN) | (1u << LVL_NOTICE) | (1u << LVL_INFO);

static bool log_stderr = true;
static bool log_syslog;
static FILE *log_file;
/* Workers log from several threads; one line must not interleave with another. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "error", "warning", "notice", "info", "debug" };
static const int syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

int log_open(bool to_stderr, const char *file, bool to_syslog)
{
	log_close();
	log_stderr = to_stderr;
	if (file) {
		log_file = fopen(file, "a");
		if (!log_file)
			return -FM_EIO;
		setvbuf(log_file, NULL, _IOLBF, 0);
	}
	log_syslog = to_syslog;
	if (to_syslog)
		openlog("ferromq", LOG_PID, LOG_DAEMON);
	return 0;
}

void log_close(void)
{
	if (log_file)
		fclose(log_file);
	log_file = NULL;
	if (log_syslog)
		closelog();
	log_syslog = false;
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char stamp[40];
	size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", ts.tv_nsec / 1000000);

	pthread_mutex_lock(&log_lock);
	if (log_stderr)
		fprintf(stderr, "%s %s: %s\n", stamp, level_names[lvl], msg);
	if (log_file)
		fprintf(log_file, "%s %s: %s\n", stamp, level_names[lvl], msg);
	if (log_syslog)
		syslog(syslog_prio[lvl], "%s", msg);
	pthread_mutex_unlock(&log_lock);
}
