#define _POSIX_C_SOURCE 200809L
#include "log.h"
#include "err.h"
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

unsigned log_mask = (1u << LVL_ERR) | (1u << LVL_WARN) | (1u << LVL_NOTICE) | (1u << LVL_INFO);
bool log_json;

static bool log_stderr = true;
static bool log_syslog;
/* stderr is systemd's journal: no time stamp of ours, a <N> priority instead. */
static bool log_journal;
static FILE *log_file;
/* Workers log from several threads; one line must not interleave with another. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "error", "warning", "notice", "info", "debug" };
static const int syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

/* True when stderr is the journal stream systemd gave us: JOURNAL_STREAM
 * names its device and inode (systemd.exec(5)). A process whose stderr was
 * redirected inherits the variable, not the stream, and keeps time stamps. */
static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st))
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int log_open(bool to_stderr, const char *file, bool to_syslog)
{
	log_close();
	log_stderr = to_stderr;
	log_journal = to_stderr && stderr_is_journal();
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

/* Appends s as a JSON string (or null) to out[cap] at *n. */
static void json_str(char *out, size_t cap, size_t *n, const char *s)
{
	if (!s) {
		*n += (size_t)snprintf(out + *n, *n < cap ? cap - *n : 0, "null");
		return;
	}
	if (*n < cap)
		out[(*n)++] = '"';
	for (; *s && *n + 8 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			*n += (size_t)snprintf(out + *n, cap - *n, "\\%c", c);
		else if (c < 0x20)
			*n += (size_t)snprintf(out + *n, cap - *n, "\\u%04x", c);
		else
			out[(*n)++] = (char)c;
	}
	if (*n < cap)
		out[(*n)++] = '"';
}

/* The JSON line of one message into out[cap]. */
static void json_line(char *out, size_t cap, const char *stamp, enum log_level lvl, const char *msg,
		      const struct log_client *who)
{
	size_t n = (size_t)snprintf(out, cap, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", stamp, level_names[lvl]);
	json_str(out, cap - 2, &n, msg);
	if (who) {
		const char *keys[] = { "client_id", "address", "identity", "username", "protocol" };
		const char *vals[] = { who->client_id, who->address, who->identity, who->username, who->protocol };
		for (int i = 0; i < 5 && n < cap - 2; i++) {
			n += (size_t)snprintf(out + n, cap - 2 - n, ",\"%s\":", keys[i]);
			if (n < cap - 2)
				json_str(out, cap - 2, &n, vals[i]);
		}
		if (n < cap - 2 && who->reason_code >= 0)
			n += (size_t)snprintf(out + n, cap - 2 - n, ",\"reason_code\":%d", who->reason_code);
		else if (n < cap - 2)
			n += (size_t)snprintf(out + n, cap - 2 - n, ",\"reason_code\":null");
	}
	if (n > cap - 2)
		n = cap - 2;
	out[n++] = '}';
	out[n] = 0;
}

static void vwrite(enum log_level lvl, const struct log_client *who, const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char stamp[40];
	size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", ts.tv_nsec / 1000000);
	char json[4096];
	if (log_json)
		json_line(json, sizeof json, stamp, lvl, msg, who);

	pthread_mutex_lock(&log_lock);
	if (log_stderr && log_journal && log_json)
		fprintf(stderr, "<%d>%s\n", syslog_prio[lvl], json);
	else if (log_stderr && log_journal)
		fprintf(stderr, "<%d>%s: %s\n", syslog_prio[lvl], level_names[lvl], msg);
	else if (log_stderr && log_json)
		fprintf(stderr, "%s\n", json);
	else if (log_stderr)
		fprintf(stderr, "%s %s: %s\n", stamp, level_names[lvl], msg);
	if (log_file && log_json)
		fprintf(log_file, "%s\n", json);
	else if (log_file)
		fprintf(log_file, "%s %s: %s\n", stamp, level_names[lvl], msg);
	if (log_syslog)
		syslog(syslog_prio[lvl], "%s", log_json ? json : msg);
	pthread_mutex_unlock(&log_lock);
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwrite(lvl, NULL, fmt, ap);
	va_end(ap);
}

void log_write_client(enum log_level lvl, const struct log_client *who, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwrite(lvl, who, fmt, ap);
	va_end(ap);
}
