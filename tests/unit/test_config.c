/* Unit tests for src/config: defaults, every option type, bad values,
 * repeatable options, size suffixes, config_load's file:line messages and
 * config_finish. */
#include "config/config.h"
#include "base/log.h"
#include "check.h"
#include <stdint.h>
#include <unistd.h>

#define ERRLEN 256
#define ASSERT_ERR(err, want) ASSERT_STRN(err, strlen(err), want)

/* Applies one line to c; returns config_apply_line's result, err in err. */
static int apply(struct config *c, const char *line, char *err)
{
	err[0] = 0;
	return config_apply_line(c, line, err, ERRLEN);
}

/* Applies a line that must succeed. */
static void ok_line(struct config *c, const char *line)
{
	char err[ERRLEN];
	int rc = apply(c, line, err);
	if (rc != 0)
		CHECK_FAIL("\"%s\" failed: %s", line, err);
}

/* Applies a line that must fail with exactly `want`; an option that is not
 * repeatable must leave the config unchanged. */
static void bad_line(const char *line, const char *want)
{
	struct config c, before;
	char err[ERRLEN];
	config_defaults(&c);
	before = c;
	int rc = apply(&c, line, err);
	if (rc != -1)
		CHECK_FAIL("\"%s\": %d != -1", line, rc);
	else if (strcmp(err, want) != 0)
		CHECK_FAIL("\"%s\": message \"%s\" != \"%s\"", line, err, want);
	bool repeatable = !strncmp(line, "listener", 8) || !strncmp(line, "log_", 4);
	if (!repeatable && memcmp(&c, &before, sizeof c) != 0)
		CHECK_FAIL("\"%s\" changed the config", line);
}

static void test_defaults(void)
{
	struct config c;
	memset(&c, 0xA5, sizeof c);
	config_defaults(&c);
	ASSERT_EQ(c.n_listeners, 1);
	ASSERT_EQ(c.listeners[0].port, 1883);
	ASSERT_STRN(c.listeners[0].address, strlen(c.listeners[0].address), "127.0.0.1");
	ASSERT_TRUE(c.allow_anonymous);
	ASSERT_EQ(c.workers, 0);
	ASSERT_EQ(c.max_keepalive, 65535);
	ASSERT_EQ(c.max_packet_size, 0);
	ASSERT_EQ(c.max_queued_messages, 1000000);
	ASSERT_EQ(c.max_queued_bytes, 1024ull * 1024 * 1024);
	ASSERT_EQ(c.max_queued_bytes_total, 0);
	ASSERT_EQ(c.queue_overflow, QUEUE_DROP_OLDEST);
	ASSERT_EQ(c.max_inflight_messages, 1000);
	ASSERT_EQ(c.receive_maximum, 65535);
	ASSERT_EQ(c.max_topic_alias, 10);
	ASSERT_EQ(c.message_expiry_default, 0);
	ASSERT_EQ(c.persistent_client_expiration, 0);
	ASSERT_FALSE(c.will_on_shutdown);
	ASSERT_EQ(c.connect_timeout, 10);
	ASSERT_TRUE(c.retain_available);
	ASSERT_EQ(c.max_output_buffer, 4 * 1024 * 1024);
	ASSERT_TRUE(c.persistence);
	ASSERT_EQ(c.durability, DURABILITY_FULL);
	ASSERT_STRN(c.persistence_location, strlen(c.persistence_location), "./data");
	ASSERT_TRUE(c.log_stderr);
	ASSERT_FALSE(c.log_syslog);
	ASSERT_EQ(c.log_file[0], 0);
	ASSERT_EQ(c.log_mask, (1u << LVL_ERR) | (1u << LVL_WARN) | (1u << LVL_NOTICE) | (1u << LVL_INFO));
	ASSERT_FALSE(c.seen_listener);
	ASSERT_FALSE(c.seen_log_dest);
	ASSERT_FALSE(c.seen_log_type);
	char err[ERRLEN] = "untouched";
	ASSERT_EQ(config_finish(&c, err, sizeof err), 0);
	ASSERT_EQ(c.max_inflight_messages, 1000);
}

static void test_bool(void)
{
	struct config c;
	config_defaults(&c);
	ok_line(&c, "allow_anonymous false");
	ASSERT_FALSE(c.allow_anonymous);
	ok_line(&c, "allow_anonymous true");
	ASSERT_TRUE(c.allow_anonymous);
	ok_line(&c, "will_on_shutdown true");
	ASSERT_TRUE(c.will_on_shutdown);
	ok_line(&c, "retain_available false");
	ASSERT_FALSE(c.retain_available);
	ok_line(&c, "persistence false");
	ASSERT_FALSE(c.persistence);
	bad_line("allow_anonymous yes", "allow_anonymous: invalid value 'yes' (expected true|false)");
	bad_line("allow_anonymous TRUE", "allow_anonymous: invalid value 'TRUE' (expected true|false)");
	bad_line("persistence 1", "persistence: invalid value '1' (expected true|false)");
	bad_line("persistence true false", "persistence: invalid value 'true false' (expected true|false)");
}

static void test_u32(void)
{
	struct config c;
	config_defaults(&c);
	ok_line(&c, "workers 4");
	ASSERT_EQ(c.workers, 4);
	ok_line(&c, "workers 256");
	ASSERT_EQ(c.workers, 256);
	ok_line(&c, "max_keepalive 0");
	ASSERT_EQ(c.max_keepalive, 0);
	ok_line(&c, "max_queued_messages 4294967295");
	ASSERT_EQ(c.max_queued_messages, UINT32_MAX);
	ok_line(&c, "receive_maximum 1");
	ASSERT_EQ(c.receive_maximum, 1);
	ok_line(&c, "max_inflight_messages 0");
	ASSERT_EQ(c.max_inflight_messages, 0);
	ok_line(&c, "max_topic_alias 65535");
	ASSERT_EQ(c.max_topic_alias, 65535);
	ok_line(&c, "message_expiry_default 86400");
	ASSERT_EQ(c.message_expiry_default, 86400);
	ok_line(&c, "persistent_client_expiration 3600");
	ASSERT_EQ(c.persistent_client_expiration, 3600);
	ok_line(&c, "connect_timeout 3600");
	ASSERT_EQ(c.connect_timeout, 3600);
	bad_line("workers 257", "workers: '257' is not a number in 0..256");
	bad_line("workers -1", "workers: '-1' is not a number in 0..256");
	bad_line("workers 4x", "workers: '4x' is not a number in 0..256");
	bad_line("workers 4k", "workers: '4k' is not a number in 0..256"); /* no suffix for counts */
	bad_line("workers +4", "workers: '+4' is not a number in 0..256");
	bad_line("workers four", "workers: 'four' is not a number in 0..256");
	bad_line("receive_maximum 0", "receive_maximum: '0' is not a number in 1..65535");
	bad_line("receive_maximum 65536", "receive_maximum: '65536' is not a number in 1..65535");
	bad_line("connect_timeout 0", "connect_timeout: '0' is not a number in 1..3600");
	bad_line("max_queued_messages 4294967296",
		 "max_queued_messages: '4294967296' is not a number in 0..4294967295");
	bad_line("max_queued_messages 99999999999999999999999",
		 "max_queued_messages: '99999999999999999999999' is not a number in 0..4294967295");
}

static void test_size_suffixes(void)
{
	struct config c;
	config_defaults(&c);
	ok_line(&c, "max_queued_bytes 1000");
	ASSERT_EQ(c.max_queued_bytes, 1000);
	ok_line(&c, "max_queued_bytes 10k");
	ASSERT_EQ(c.max_queued_bytes, 10240);
	ok_line(&c, "max_queued_bytes 10K");
	ASSERT_EQ(c.max_queued_bytes, 10240);
	ok_line(&c, "max_queued_bytes 3M");
	ASSERT_EQ(c.max_queued_bytes, 3u * 1024 * 1024);
	ok_line(&c, "max_queued_bytes 3m");
	ASSERT_EQ(c.max_queued_bytes, 3u * 1024 * 1024);
	ok_line(&c, "max_queued_bytes 5G");
	ASSERT_EQ(c.max_queued_bytes, 5ull << 30); /* a 64-bit field */
	ok_line(&c, "max_queued_bytes 0");
	ASSERT_EQ(c.max_queued_bytes, 0);
	ok_line(&c, "max_queued_bytes 17179869183G");
	ASSERT_EQ(c.max_queued_bytes, 17179869183ull << 30);
	ok_line(&c, "max_output_buffer 4k");
	ASSERT_EQ(c.max_output_buffer, 4096);
	ok_line(&c, "max_output_buffer 1G");
	ASSERT_EQ(c.max_output_buffer, 1ull << 30);
	ok_line(&c, "max_packet_size 256M");
	ASSERT_EQ(c.max_packet_size, 256u << 20);
	ok_line(&c, "max_packet_size 268435460");
	ASSERT_EQ(c.max_packet_size, 268435460);
	bad_line("max_packet_size 268435461", "max_packet_size: '268435461' is not a number in 0..268435460");
	bad_line("max_packet_size 1G", "max_packet_size: '1G' is not a number in 0..268435460");
	bad_line("max_output_buffer 4095", "max_output_buffer: '4095' is not a number in 4096..18446744073709551615");
	bad_line("max_queued_bytes 17179869184G",
		 "max_queued_bytes: '17179869184G' is not a number in 0..18446744073709551615");
	bad_line("max_queued_bytes 10T", "max_queued_bytes: '10T' is not a number in 0..18446744073709551615");
	bad_line("max_queued_bytes 10kk", "max_queued_bytes: '10kk' is not a number in 0..18446744073709551615");
	bad_line("max_queued_bytes 10 k", "max_queued_bytes: '10 k' is not a number in 0..18446744073709551615");
	bad_line("max_queued_bytes k", "max_queued_bytes: 'k' is not a number in 0..18446744073709551615");
}

static void test_enum_and_path(void)
{
	struct config c;
	config_defaults(&c);
	ok_line(&c, "queue_overflow reject_new");
	ASSERT_EQ(c.queue_overflow, QUEUE_REJECT_NEW);
	ok_line(&c, "queue_overflow drop_oldest");
	ASSERT_EQ(c.queue_overflow, QUEUE_DROP_OLDEST);
	ok_line(&c, "durability normal");
	ASSERT_EQ(c.durability, DURABILITY_NORMAL);
	ok_line(&c, "durability full");
	ASSERT_EQ(c.durability, DURABILITY_FULL);
	bad_line("durability fsync", "durability: invalid value 'fsync' (expected full|normal)");
	bad_line("queue_overflow drop_newest",
		 "queue_overflow: invalid value 'drop_newest' (expected drop_oldest|reject_new)");
	ok_line(&c, "persistence_location /var/lib/ferromq");
	ASSERT_STRN(c.persistence_location, strlen(c.persistence_location), "/var/lib/ferromq");
	ok_line(&c, "persistence_location /path with spaces/x");
	ASSERT_STRN(c.persistence_location, strlen(c.persistence_location), "/path with spaces/x");
	char line[700];
	snprintf(line, sizeof line, "persistence_location /%0511d", 0); /* 512 chars: one too many */
	struct config d;
	char err[ERRLEN];
	config_defaults(&d);
	ASSERT_EQ(apply(&d, line, err), -1);
	ASSERT_TRUE(strncmp(err, "persistence_location: invalid value '/000", 40) == 0);
	ASSERT_STRN(d.persistence_location, strlen(d.persistence_location), "./data");
	snprintf(line, sizeof line, "persistence_location /%0510d", 0); /* 511 chars fit */
	ok_line(&d, line);
	ASSERT_EQ(strlen(d.persistence_location), 511);
}

static void test_unknown_and_missing(void)
{
	bad_line("bogus 1", "unknown option 'bogus'");
	bad_line("bogus", "unknown option 'bogus'");
	bad_line("listeners 1883", "unknown option 'listeners'");
	bad_line("listen 1883", "unknown option 'listen'");
	bad_line("Workers 1", "unknown option 'Workers'");
	bad_line("workers", "workers: missing value (expected N)");
	bad_line("workers   \t ", "workers: missing value (expected N)");
	bad_line("listener", "listener: missing value (expected PORT [ADDRESS])");
	bad_line("log_dest", "log_dest: missing value (expected stderr|syslog|file PATH|none)");
	char line[1100];
	memset(line, 'a', sizeof line - 1);
	line[sizeof line - 1] = 0;
	bad_line(line, "line too long");
}

static void test_comments_and_whitespace(void)
{
	struct config c, d;
	config_defaults(&c);
	config_defaults(&d);
	ok_line(&c, "");
	ok_line(&c, "   \t\r\n");
	ok_line(&c, "# workers 9");
	ok_line(&c, "   # indented comment");
	ASSERT_TRUE(memcmp(&c, &d, sizeof c) == 0);
	ok_line(&c, "  workers\t\t7  \r\n");
	ASSERT_EQ(c.workers, 7);
	ok_line(&c, "workers 0003");
	ASSERT_EQ(c.workers, 3);
	/* a line at the limit is fine, one more byte is not */
	char line[1030];
	memset(line, ' ', sizeof line);
	memcpy(line, "workers 5", 9);
	line[1023] = 0;
	ok_line(&c, line); /* trailing spaces are trimmed before the length check */
	ASSERT_EQ(c.workers, 5);
	/* inner blanks count: 1023 characters are fine, 1024 are not */
	memset(line, ' ', sizeof line);
	memcpy(line, "workers", 7);
	line[1022] = '6';
	line[1023] = 0;
	ok_line(&c, line);
	ASSERT_EQ(c.workers, 6);
	line[1023] = '6';
	line[1024] = 0;
	char err[ERRLEN];
	ASSERT_EQ(apply(&c, line, err), -1);
	ASSERT_ERR(err, "line too long");
	memset(line, '#', sizeof line);
	line[sizeof line - 1] = 0;
	ok_line(&c, line); /* a long comment is still a comment */
}

static void test_listener(void)
{
	struct config c;
	char err[ERRLEN];
	config_defaults(&c);
	/* the first line replaces the default, later ones add */
	ok_line(&c, "listener 1884");
	ASSERT_EQ(c.n_listeners, 1);
	ASSERT_EQ(c.listeners[0].port, 1884);
	ASSERT_STRN(c.listeners[0].address, strlen(c.listeners[0].address), "127.0.0.1");
	ASSERT_TRUE(c.seen_listener);
	ok_line(&c, "listener 8883 0.0.0.0");
	ok_line(&c, "listener\t1\t::1");
	ASSERT_EQ(c.n_listeners, 3);
	ASSERT_EQ(c.listeners[1].port, 8883);
	ASSERT_STRN(c.listeners[1].address, strlen(c.listeners[1].address), "0.0.0.0");
	ASSERT_EQ(c.listeners[2].port, 1);
	ASSERT_STRN(c.listeners[2].address, strlen(c.listeners[2].address), "::1");
	bad_line("listener 0", "listener: port must be 1..65535");
	bad_line("listener 65536", "listener: port must be 1..65535");
	bad_line("listener 1883x", "listener: port must be 1..65535");
	bad_line("listener 1k", "listener: port must be 1..65535");
	bad_line("listener x 1883", "listener: port must be 1..65535");
	bad_line("listener 1883 0.0.0.0 extra", "listener: expected PORT [ADDRESS]");
	char line[200];
	snprintf(line, sizeof line, "listener 1883 %064d", 0);
	bad_line(line, "listener: address too long");
	snprintf(line, sizeof line, "listener 1883 %063d", 0);
	ok_line(&c, line);
	ASSERT_EQ(strlen(c.listeners[3].address), 63);
	/* at most CONFIG_MAX_LISTENERS */
	config_defaults(&c);
	for (int i = 0; i < CONFIG_MAX_LISTENERS; i++) {
		snprintf(line, sizeof line, "listener %d", 2000 + i);
		ok_line(&c, line);
	}
	ASSERT_EQ(c.n_listeners, CONFIG_MAX_LISTENERS);
	ASSERT_EQ(apply(&c, "listener 3000", err), -1);
	ASSERT_ERR(err, "listener: at most 16 listeners");
	ASSERT_EQ(c.n_listeners, CONFIG_MAX_LISTENERS);
	ASSERT_EQ(c.listeners[15].port, 2015);
}

static void test_log_dest(void)
{
	struct config c;
	char err[ERRLEN];
	config_defaults(&c);
	ok_line(&c, "log_dest syslog");
	ASSERT_FALSE(c.log_stderr); /* the default is replaced */
	ASSERT_TRUE(c.log_syslog);
	ok_line(&c, "log_dest stderr");
	ASSERT_TRUE(c.log_stderr);
	ASSERT_TRUE(c.log_syslog);
	ok_line(&c, "log_dest file   /var/log/ferromq.log");
	ASSERT_STRN(c.log_file, strlen(c.log_file), "/var/log/ferromq.log");
	ASSERT_TRUE(c.log_stderr && c.log_syslog);

	config_defaults(&c);
	ok_line(&c, "log_dest none");
	ASSERT_FALSE(c.log_stderr);
	ASSERT_FALSE(c.log_syslog);
	ASSERT_EQ(c.log_file[0], 0);
	config_defaults(&c);
	ok_line(&c, "log_dest stdout");
	ASSERT_TRUE(c.log_stderr);
	config_defaults(&c);
	ok_line(&c, "log_dest file\t/tmp/x.log");
	ASSERT_FALSE(c.log_stderr);
	ASSERT_STRN(c.log_file, strlen(c.log_file), "/tmp/x.log");

	bad_line("log_dest topic", "log_dest: expected stderr, syslog, file PATH or none, not 'topic'");
	bad_line("log_dest file", "log_dest: expected stderr, syslog, file PATH or none, not 'file'");
	bad_line("log_dest filex /a", "log_dest: expected stderr, syslog, file PATH or none, not 'filex /a'");
	char line[600];
	snprintf(line, sizeof line, "log_dest file /%0511d", 0);
	config_defaults(&c);
	ASSERT_EQ(apply(&c, line, err), -1);
	ASSERT_ERR(err, "log_dest file: missing or too long path");
}

static void test_log_type(void)
{
	struct config c;
	config_defaults(&c);
	ok_line(&c, "log_type error");
	ASSERT_EQ(c.log_mask, 1u << LVL_ERR); /* the default is replaced */
	ok_line(&c, "log_type debug");
	ASSERT_EQ(c.log_mask, (1u << LVL_ERR) | (1u << LVL_DEBUG));
	ok_line(&c, "log_type subscribe");
	ASSERT_EQ(c.log_mask, (1u << LVL_ERR) | (1u << LVL_DEBUG));
	config_defaults(&c);
	ok_line(&c, "log_type all");
	ASSERT_EQ(c.log_mask, 0x1F);
	config_defaults(&c);
	ok_line(&c, "log_type none");
	ASSERT_EQ(c.log_mask, 0);
	ok_line(&c, "log_type warning");
	ok_line(&c, "log_type notice");
	ok_line(&c, "log_type information");
	ok_line(&c, "log_type unsubscribe");
	ASSERT_EQ(c.log_mask, (1u << LVL_WARN) | (1u << LVL_NOTICE) | (1u << LVL_INFO) | (1u << LVL_DEBUG));
	bad_line("log_type verbose", "log_type: unknown type 'verbose'");
	bad_line("log_type error warning", "log_type: unknown type 'error warning'");
}

/* Writes text to a new temporary file; returns its path in path. */
static void write_temp(char *path, size_t len, const char *text)
{
	snprintf(path, len, "/tmp/fm_test_config_XXXXXX");
	int fd = mkstemp(path);
	ASSERT_TRUE(fd >= 0);
	if (fd < 0)
		return;
	size_t n = strlen(text);
	ASSERT_EQ(write(fd, text, n), (long long)n);
	close(fd);
}

static void test_load(void)
{
	char path[64], err[ERRLEN], want[ERRLEN];
	struct config c;
	config_defaults(&c);
	write_temp(path, sizeof path,
		   "# ferromq test\n"
		   "\n"
		   "listener 1884\n"
		   "listener 1885 0.0.0.0\n"
		   "workers 2\r\n"
		   "max_queued_bytes 1M\n"
		   "log_type error"); /* no final newline */
	ASSERT_EQ(config_load(&c, path, err, sizeof err), 0);
	ASSERT_EQ(c.n_listeners, 2);
	ASSERT_EQ(c.listeners[1].port, 1885);
	ASSERT_EQ(c.workers, 2);
	ASSERT_EQ(c.max_queued_bytes, 1 << 20);
	ASSERT_EQ(c.log_mask, 1u << LVL_ERR);
	unlink(path);

	/* the message names the file and the line, counting blanks and comments */
	config_defaults(&c);
	write_temp(path, sizeof path, "workers 1\n\n# comment\n  \nbogus_option yes\nworkers 3\n");
	ASSERT_EQ(config_load(&c, path, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:5: unknown option 'bogus_option'", path);
	ASSERT_ERR(err, want);
	ASSERT_EQ(c.workers, 1); /* lines after the error are not read */
	unlink(path);

	config_defaults(&c);
	write_temp(path, sizeof path, "workers 1\nreceive_maximum 0\n");
	ASSERT_EQ(config_load(&c, path, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:2: receive_maximum: '0' is not a number in 1..65535", path);
	ASSERT_ERR(err, want);
	unlink(path);

	config_defaults(&c);
	write_temp(path, sizeof path, "listener 1\nlistener 2 a b\n");
	ASSERT_EQ(config_load(&c, path, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:2: listener: expected PORT [ADDRESS]", path);
	ASSERT_ERR(err, want);
	unlink(path);

	/* a line longer than the reader's buffer */
	static char text[3000];
	memset(text, 0, sizeof text);
	strcpy(text, "workers 1\nworkers 2\n# ");
	memset(text + strlen(text), 'x', 2000);
	strcat(text, "\nworkers 3\n");
	config_defaults(&c);
	write_temp(path, sizeof path, text);
	ASSERT_EQ(config_load(&c, path, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:3: line too long", path);
	ASSERT_ERR(err, want);
	unlink(path);

	/* a missing file */
	ASSERT_EQ(config_load(&c, "/nonexistent/ferromq.conf", err, sizeof err), -1);
	ASSERT_ERR(err, "/nonexistent/ferromq.conf: cannot open: No such file or directory");
	/* an empty file changes nothing */
	config_defaults(&c);
	struct config d = c;
	write_temp(path, sizeof path, "");
	ASSERT_EQ(config_load(&c, path, err, sizeof err), 0);
	ASSERT_TRUE(memcmp(&c, &d, sizeof c) == 0);
	unlink(path);
}

static void test_finish(void)
{
	struct config c;
	char err[ERRLEN];
	config_defaults(&c);
	ok_line(&c, "listener 1883");
	ok_line(&c, "listener 1883 0.0.0.0");
	ok_line(&c, "listener 1884");
	ASSERT_EQ(config_finish(&c, err, sizeof err), 0);
	ok_line(&c, "listener 1884 127.0.0.1");
	ASSERT_EQ(config_finish(&c, err, sizeof err), -1);
	ASSERT_ERR(err, "listener 1884 127.0.0.1 is declared twice");

	config_defaults(&c);
	ok_line(&c, "listener 1883");
	ok_line(&c, "listener 1883"); /* the default was replaced, so this is a real duplicate */
	ASSERT_EQ(config_finish(&c, err, sizeof err), -1);
	ASSERT_ERR(err, "listener 1883 127.0.0.1 is declared twice");

	config_defaults(&c);
	ok_line(&c, "max_inflight_messages 0");
	ASSERT_EQ(config_finish(&c, err, sizeof err), 0);
	ASSERT_EQ(c.max_inflight_messages, 65535);
}

static void test_help(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ASSERT_TRUE(f != NULL);
	if (!f)
		return;
	config_print_help(f);
	fclose(f);
	static const char *const names[] = {
		"listener", "allow_anonymous", "workers", "max_keepalive", "max_packet_size",
		"max_queued_messages", "max_queued_bytes", "queue_overflow", "max_inflight_messages",
		"receive_maximum", "max_topic_alias", "message_expiry_default", "persistent_client_expiration",
		"will_on_shutdown", "connect_timeout", "retain_available", "max_output_buffer", "persistence", "durability",
		"persistence_location", "log_dest", "log_type",
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char want[64];
		snprintf(want, sizeof want, "  %s ", names[i]);
		if (!strstr(text, want))
			CHECK_FAIL("help lacks %s", names[i]);
	}
	ASSERT_TRUE(strstr(text, "Default: drop_oldest.") != NULL);
	free(text);
}

static void test_client_limits(void)
{
	struct config c;
	config_defaults(&c);
	ASSERT_EQ(c.max_topic_length, 65535);
	ASSERT_EQ(c.max_topic_levels, 128);
	ASSERT_EQ(c.max_subscriptions_per_client, 10000);
	ASSERT_EQ(c.max_publish_rate.msgs, 0);
	ASSERT_EQ(c.max_publish_rate.bytes, 0);
	ASSERT_EQ(c.publish_rate_timeout, 10);
	ASSERT_EQ(c.output_stall_timeout, 60);
	ASSERT_EQ(c.tcp_keepalive, 60);
	ASSERT_EQ(c.tcp_user_timeout, 0);
	ok_line(&c, "max_publish_rate 100");
	ASSERT_EQ(c.max_publish_rate.msgs, 100);
	ASSERT_EQ(c.max_publish_rate.bytes, 0);
	ok_line(&c, "max_publish_rate 0   64k");
	ASSERT_EQ(c.max_publish_rate.msgs, 0);
	ASSERT_EQ(c.max_publish_rate.bytes, 65536);
	ok_line(&c, "max_publish_rate 5 1G");
	ASSERT_EQ(c.max_publish_rate.msgs, 5);
	ASSERT_EQ(c.max_publish_rate.bytes, 1ull << 30);
	const char *want = "max_publish_rate: invalid value '%s' (expected MSGS_PER_S [BYTES_PER_S])";
	const char *bad[] = { "x", "-1", "10 1k 2", "10 2T", "10 1025G", "4294967296" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char line[64], msg[128];
		snprintf(line, sizeof line, "max_publish_rate %s", bad[i]);
		snprintf(msg, sizeof msg, want, bad[i]);
		bad_line(line, msg);
	}
	bad_line("max_topic_length 0", "max_topic_length: '0' is not a number in 1..65535");
	bad_line("max_topic_levels 65536", "max_topic_levels: '65536' is not a number in 1..65535");
	bad_line("tcp_user_timeout 2147483648", "tcp_user_timeout: '2147483648' is not a number in 0..2147483647");
}

static void test_bridge_section(void)
{
	struct config c;
	char err[ERRLEN];
	config_defaults(&c);
	ok_line(&c, "connection cloud");
	ok_line(&c, "address cloud.example.com:8883 [::1] 10.0.0.7");
	ok_line(&c, "topic machines/# out 1 \"\" plant-detroit/");
	ok_line(&c, "report_by_exception true");
	ok_line(&c, "deadband 0.25");
	ok_line(&c, "deadband_field value");
	ok_line(&c, "topic +/cmd in");
	ok_line(&c, "restart_timeout 2");
	ok_line(&c, "bridge_max_spool_bytes 360M");
	ok_line(&c, "bridge_max_bytes_per_sec 1k");
	ASSERT_EQ(c.n_bridges, 1);
	const struct bridge_conf *b = &c.bridges[0];
	ASSERT_STRN(b->name, strlen(b->name), "cloud");
	ASSERT_EQ(b->n_addresses, 3);
	ASSERT_STRN(b->addresses[0].host, strlen(b->addresses[0].host), "cloud.example.com");
	ASSERT_EQ(b->addresses[0].port, 8883);
	ASSERT_STRN(b->addresses[1].host, strlen(b->addresses[1].host), "::1");
	ASSERT_EQ(b->addresses[1].port, 1883);
	ASSERT_EQ(b->addresses[2].port, 1883);
	ASSERT_EQ(b->n_topics, 2);
	ASSERT_EQ(b->topics[0].direction, BRIDGE_OUT);
	ASSERT_EQ(b->topics[0].qos, 1);
	ASSERT_EQ(b->topics[0].local_prefix[0], 0);
	ASSERT_STRN(b->topics[0].remote_prefix, strlen(b->topics[0].remote_prefix), "plant-detroit/");
	ASSERT_TRUE(b->topics[0].report_by_exception && b->topics[0].has_deadband);
	ASSERT_TRUE(b->topics[0].deadband == 0.25);
	ASSERT_STRN(b->topics[0].deadband_field, strlen(b->topics[0].deadband_field), "value");
	ASSERT_EQ(b->topics[1].direction, BRIDGE_IN);
	ASSERT_EQ(b->topics[1].qos, 0);
	ASSERT_FALSE(b->topics[1].report_by_exception); /* the options went to the line above */
	ASSERT_EQ(b->restart_timeout.min, 2);
	ASSERT_EQ(b->restart_timeout.max, 2);
	ASSERT_EQ(b->max_spool_bytes, 360ull << 20);
	ASSERT_EQ(b->max_bytes_per_sec, 1024);
	/* Defaults of a section, set by its connection line. */
	ASSERT_EQ(b->keepalive_interval, 60);
	ASSERT_EQ(b->protocol_version, BRIDGE_MQTTV311);
	ASSERT_FALSE(b->cleansession);
	ASSERT_EQ(config_finish(&c, err, sizeof err), 0);
	/* A second section starts with the defaults again. */
	ok_line(&c, "connection backup");
	ASSERT_EQ(c.bridges[1].restart_timeout.min, 5);
	ASSERT_EQ(c.bridges[1].restart_timeout.max, 30);
	ASSERT_EQ(config_finish(&c, err, sizeof err), -1);
	ASSERT_TRUE(strstr(err, "connection backup: needs an address line") != NULL);
	bad_line("connection a/b", "connection: the name must be one word of at most 63 characters without / + #");
	bad_line("topic a/#", "topic: bridge option without a `connection NAME` line above it");
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_bool);
	RUN(test_u32);
	RUN(test_size_suffixes);
	RUN(test_enum_and_path);
	RUN(test_unknown_and_missing);
	RUN(test_comments_and_whitespace);
	RUN(test_listener);
	RUN(test_log_dest);
	RUN(test_log_type);
	RUN(test_load);
	RUN(test_finish);
	RUN(test_help);
	RUN(test_client_limits);
	RUN(test_bridge_section);
	return CHECK_DONE();
}
