/* Logging. The level is tested before the arguments are evaluated. */
#ifndef FM_LOG_H
#define FM_LOG_H
#include <stdbool.h>

enum log_level { LVL_ERR = 0, LVL_WARN, LVL_NOTICE, LVL_INFO, LVL_DEBUG };

/* Bit per level; mosquitto's log_type names map onto these. */
extern unsigned log_mask;
/* log_format json: one object per line (time, level, msg, and the client's fields). */
extern bool log_json;

/* Who a connect or disconnect line is about. The text line names them in its
 * message; JSON lines carry them as fields. NULL strings are null. */
struct log_client {
	const char *client_id, *address, *identity, *username, *protocol;
	int reason_code; /* -1: none */
};

/* Destinations: any mix of stderr, a file and syslog. Returns 0 or -FM_EIO.
 * When stderr is systemd's journal (JOURNAL_STREAM matches it), its lines
 * start with a <N> syslog priority instead of our time stamp: the journal
 * keeps the level and adds its own time. */
int log_open(bool to_stderr, const char *file, bool to_syslog);
void log_close(void);
void log_write(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_write_client(enum log_level lvl, const struct log_client *who, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_on(lvl) (log_mask & (1u << (lvl)))
#define LOG(lvl, ...) do { if (log_on(lvl)) log_write((lvl), __VA_ARGS__); } while (0)
#define log_err(...) LOG(LVL_ERR, __VA_ARGS__)
#define log_warn(...) LOG(LVL_WARN, __VA_ARGS__)
#define log_notice(...) LOG(LVL_NOTICE, __VA_ARGS__)
#define log_info(...) LOG(LVL_INFO, __VA_ARGS__)
#define log_debug(...) LOG(LVL_DEBUG, __VA_ARGS__)
#define log_client(lvl, who, ...) do { if (log_on(lvl)) log_write_client((lvl), (who), __VA_ARGS__); } while (0)

#endif
