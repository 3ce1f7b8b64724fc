/* A journal file: appends, reads back and resets it (see journal.h). */
#include "journal.h"
#include "le.h"
#include "../base/err.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static const uint8_t magic[4] = { 'F', 'M', 'J', 'E' };

/* CRC-32C (Castagnoli, reflected): the SSE 4.2 instruction where the CPU
 * has it (the journal checks every byte it writes and reads), else a table. */
static uint32_t crc_table[256];

static uint32_t crc_update_table(uint32_t crc, const uint8_t *p, size_t n)
{
	if (!crc_table[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
			crc_table[i] = c;
		}
	for (size_t i = 0; i < n; i++)
		crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) static uint32_t crc_update_sse42(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t c = crc;
	for (; n >= 8; n -= 8, p += 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	uint32_t c32 = (uint32_t)c;
	for (; n; n--, p++)
		c32 = __builtin_ia32_crc32qi(c32, *p);
	return c32;
}

static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n)
{
	static int sse42 = -1;
	if (sse42 < 0)
		sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
	return sse42 ? crc_update_sse42(crc, p, n) : crc_update_table(crc, p, n);
}
#else
static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n)
{
	return crc_update_table(crc, p, n);
}
#endif

/* The crc of an entry: index and length (head bytes 8..19), then the body. */
static uint32_t entry_crc(const uint8_t head[JOURNAL_ENTRY_HEAD], const uint8_t *p, uint32_t len)
{
	uint32_t crc = crc_update(0xFFFFFFFFu, head + 8, 12);
	return ~crc_update(crc, p, len);
}

void journal_entry_head(uint8_t head[JOURNAL_ENTRY_HEAD], uint64_t index, const uint8_t *p, uint32_t len)
{
	memcpy(head, magic, 4);
	put_le(head + 8, index, 8);
	put_le(head + 16, len, 4);
	put_le(head + 4, entry_crc(head, p, len), 4);
}

int journal_entry_parse(const uint8_t *p, size_t avail, uint64_t *index, const uint8_t **body, uint32_t *len,
			size_t *used)
{
	if (avail < JOURNAL_ENTRY_HEAD || memcmp(p, magic, 4))
		return 0;
	uint32_t n = (uint32_t)get_le(p + 16, 4);
	if (n > avail - JOURNAL_ENTRY_HEAD)
		return 0;
	if ((uint32_t)get_le(p + 4, 4) != entry_crc(p, p + JOURNAL_ENTRY_HEAD, n))
		return 0;
	*index = get_le(p + 8, 8);
	*body = p + JOURNAL_ENTRY_HEAD;
	*len = n;
	*used = JOURNAL_ENTRY_HEAD + (size_t)n;
	return 1;
}

int journal_open(struct journal *j, const char *dir, const char *name, char *err, size_t errlen)
{
	memset(j, 0, sizeof *j);
	snprintf(j->path, sizeof j->path, "%s/%s", dir, name);
	j->fd = open(j->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (j->fd < 0) {
		snprintf(err, errlen, "%s: %s", j->path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Reads exactly n bytes at off: n, less at the end of the file, or -1. */
static ssize_t read_at(int fd, uint8_t *p, size_t n, uint64_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, p + got, n - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int journal_read(struct journal *j, int (*fn)(void *ctx, uint64_t index, const uint8_t *p, uint32_t len), void *ctx)
{
	uint8_t head[JOURNAL_ENTRY_HEAD];
	uint8_t *entry = NULL;
	size_t cap = 0;
	uint64_t off = 0, last = 0;
	int rc = 0;
	for (;;) {
		ssize_t got = read_at(j->fd, head, sizeof head, off);
		if (got < 0) {
			rc = -FM_EIO;
			break;
		}
		if (got < (ssize_t)sizeof head || memcmp(head, magic, 4))
			break;
		size_t size = JOURNAL_ENTRY_HEAD + (size_t)get_le(head + 16, 4);
		if (size > cap) {
			uint8_t *p = realloc(entry, size);
			if (!p) {
				rc = -FM_ENOMEM;
				break;
			}
			entry = p;
			cap = size;
		}
		if ((got = read_at(j->fd, entry, size, off)) < 0) {
			rc = -FM_EIO;
			break;
		}
		uint64_t index;
		const uint8_t *body;
		uint32_t len;
		size_t used;
		if (!journal_entry_parse(entry, (size_t)got, &index, &body, &len, &used) || index <= last)
			break;
		if ((rc = fn(ctx, index, body, len)))
			break;
		last = index;
		off += used;
	}
	free(entry);
	j->end = off;
	j->last = last;
	struct stat sb;
	j->size = fstat(j->fd, &sb) == 0 ? (uint64_t)sb.st_size : off;
	return rc;
}

static int io_err(void)
{
	return errno == ENOSPC || errno == EDQUOT ? -FM_ELIMIT : -FM_EIO;
}

int journal_append(struct journal *j, uint64_t index, const uint8_t *p, uint32_t len)
{
	uint8_t head[JOURNAL_ENTRY_HEAD];
	journal_entry_head(head, index, p, len);
	struct iovec iov[2] = { { head, sizeof head }, { (void *)p, len } };
	size_t want = sizeof head + len, done = 0;
	while (done < want) {
		/* pwritev at the end we keep, not O_APPEND: a failed append is
		 * simply written over by the next one. */
		struct iovec *v = iov;
		int nv = 2;
		size_t skip = done;
		if (skip >= iov[0].iov_len) {
			skip -= iov[0].iov_len;
			v++;
			nv--;
		}
		struct iovec part[2];
		memcpy(part, v, sizeof *v * (size_t)nv);
		part[0].iov_base = (uint8_t *)part[0].iov_base + skip;
		part[0].iov_len -= skip;
		ssize_t r = pwritev(j->fd, part, nv, (off_t)(j->end + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = ENOSPC;
			return io_err();
		}
		done += (size_t)r;
	}
	j->end += want;
	if (j->end > j->size)
		j->size = j->end;
	j->last = index;
	return 0;
}

int journal_sync(struct journal *j)
{
	while (fdatasync(j->fd) != 0)
		if (errno != EINTR)
			return io_err();
	return 0;
}

int journal_reset(struct journal *j, uint64_t keep)
{
	/* Writing over the file's blocks again, rather than growing it anew,
	 * spares every sync an update of its size; what is left behind ends at
	 * the first entry written over it (indexes only grow). A file grown
	 * past `keep` (a burst, an apply that failed for a while) is cut. */
	if (j->size > keep) {
		if (ftruncate(j->fd, 0) != 0)
			return -FM_EIO;
		j->size = 0;
	}
	j->end = 0;
	return 0;
}

void journal_close(struct journal *j)
{
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
}
