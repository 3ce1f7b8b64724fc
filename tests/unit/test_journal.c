/* The store's journal (src/store/journal.c): the entry encoding (CRC-32C,
 * checked against an entry computed independently), what ends a log (a
 * short or damaged entry, an index that does not grow), and appends, reads
 * and resets of a real file. */
#include "check.h"
#include "base/err.h"
#include "store/journal.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* entry(7, "abc"), computed with a bitwise CRC-32C outside this code. */
static const uint8_t entry7[] = { 0x46, 0x4d, 0x4a, 0x45, 0x73, 0xb8, 0x60, 0x8e, 0x07, 0x00, 0x00, 0x00,
				  0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x61, 0x62, 0x63 };

static void test_entry_encoding(void)
{
	uint8_t head[JOURNAL_ENTRY_HEAD];
	journal_entry_head(head, 7, (const uint8_t *)"abc", 3);
	ASSERT_MEM(head, entry7, sizeof head);
	uint64_t index;
	const uint8_t *body;
	uint32_t len;
	size_t used;
	ASSERT_EQ(journal_entry_parse(entry7, sizeof entry7, &index, &body, &len, &used), 1);
	ASSERT_EQ(index, 7);
	ASSERT_EQ(len, 3);
	ASSERT_EQ(used, sizeof entry7);
	ASSERT_STRN(body, len, "abc");
	/* Short (a torn write), one byte changed anywhere, another magic. */
	for (size_t n = 0; n < sizeof entry7; n++)
		ASSERT_EQ(journal_entry_parse(entry7, n, &index, &body, &len, &used), 0);
	for (size_t i = 0; i < sizeof entry7; i++) {
		uint8_t bad[sizeof entry7];
		memcpy(bad, entry7, sizeof bad);
		bad[i] ^= 0x10;
		ASSERT_EQ(journal_entry_parse(bad, sizeof bad, &index, &body, &len, &used), 0);
	}
}

struct seen {
	uint64_t index[16];
	char text[16][16];
	int n;
};

static int collect(void *ctx, uint64_t index, const uint8_t *p, uint32_t len)
{
	struct seen *s = ctx;
	if (s->n == 16 || len >= 16)
		return -FM_EINVAL;
	s->index[s->n] = index;
	memcpy(s->text[s->n], p, len);
	s->text[s->n][len] = 0;
	s->n++;
	return 0;
}

static int read_all(struct journal *j, struct seen *s)
{
	memset(s, 0, sizeof *s);
	return journal_read(j, collect, s);
}

static void test_file(void)
{
	char dir[] = "/tmp/fm-journal-XXXXXX", err[256];
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(2);
	}
	struct journal j;
	ASSERT_EQ(journal_open(&j, dir, JOURNAL_FILE_0, err, sizeof err), 0);
	struct seen s;
	ASSERT_EQ(read_all(&j, &s), 0);
	ASSERT_EQ(s.n, 0);
	ASSERT_EQ(journal_append(&j, 1, (const uint8_t *)"one", 3), 0);
	ASSERT_EQ(journal_append(&j, 2, (const uint8_t *)"two", 3), 0);
	ASSERT_EQ(journal_append(&j, 3, (const uint8_t *)"three", 5), 0);
	ASSERT_EQ(journal_sync(&j), 0);
	uint64_t end = j.end;
	journal_close(&j);

	/* Reopened: every entry, in order; then a torn fourth ends the log
	 * where the third did, and the next append goes there. */
	ASSERT_EQ(journal_open(&j, dir, JOURNAL_FILE_0, err, sizeof err), 0);
	ASSERT_EQ(read_all(&j, &s), 0);
	ASSERT_EQ(s.n, 3);
	ASSERT_EQ(s.index[2], 3);
	ASSERT_TRUE(strcmp(s.text[1], "two") == 0);
	ASSERT_EQ(j.end, end);
	ASSERT_EQ(j.last, 3);
	ASSERT_EQ(pwrite(j.fd, entry7, 11, (off_t)end), 11);
	ASSERT_EQ(read_all(&j, &s), 0);
	ASSERT_EQ(s.n, 3);
	ASSERT_EQ(j.end, end);
	ASSERT_EQ(journal_append(&j, 4, (const uint8_t *)"four", 4), 0);
	ASSERT_EQ(read_all(&j, &s), 0);
	ASSERT_EQ(s.n, 4);
	ASSERT_TRUE(strcmp(s.text[3], "four") == 0);

	/* An entry whose index does not grow is what a reset left behind: the
	 * log ends before it, whatever follows. */
	ASSERT_EQ(journal_append(&j, 2, (const uint8_t *)"stale", 5), 0);
	ASSERT_EQ(journal_append(&j, 9, (const uint8_t *)"nine", 4), 0);
	ASSERT_EQ(read_all(&j, &s), 0);
	ASSERT_EQ(s.n, 4);
	ASSERT_EQ(j.last, 4);
	ASSERT_EQ(journal_append(&j, 5, (const uint8_t *)"five", 4), 0); /* over the stale one */
	ASSERT_EQ(read_all(&j, &s), 0);
	ASSERT_EQ(s.n, 5);
	ASSERT_EQ(s.index[4], 5);

	/* A reader that stops the read gets its error back. */
	struct seen full = { .n = 16 };
	ASSERT_EQ(journal_read(&j, collect, &full), -FM_EINVAL);

	/* Reset keeping the file: appends write over the old entries from the
	 * beginning, and the log ends where the new ones do. */
	uint64_t size = j.size;
	ASSERT_EQ(journal_reset(&j, 1 << 20), 0);
	ASSERT_EQ(j.size, size);
	ASSERT_EQ(journal_append(&j, 10, (const uint8_t *)"ten", 3), 0);
	ASSERT_EQ(read_all(&j, &s), 0);
	ASSERT_EQ(s.n, 1);
	ASSERT_EQ(s.index[0], 10);
	ASSERT_EQ(j.size, size);

	/* Reset cutting the file: empty. */
	ASSERT_EQ(journal_reset(&j, 0), 0);
	ASSERT_EQ(read_all(&j, &s), 0);
	ASSERT_EQ(s.n, 0);
	ASSERT_EQ(j.size, 0);
	ASSERT_EQ(journal_append(&j, 11, (const uint8_t *)"eleven", 6), 0);
	ASSERT_EQ(read_all(&j, &s), 0);
	ASSERT_EQ(s.n, 1);
	ASSERT_EQ(s.index[0], 11);
	journal_close(&j);

	char p[128];
	snprintf(p, sizeof p, "%s/%s", dir, JOURNAL_FILE_0);
	unlink(p);
	rmdir(dir);
}

int main(void)
{
	RUN(test_entry_encoding);
	RUN(test_file);
	return CHECK_DONE();
}
