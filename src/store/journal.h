/* The journal: the local log of record batches, the store's write-ahead log.
 *
 * A batch is on disk (acknowledgeable) once it is appended here and, with
 * `durability full`, fdatasync'd; the database gets it later, applied
 * together with the batches after it (apply.c), and the log starts over
 * once the database holds everything in it. At start, entries above the
 * database's applied index are applied again. A file of entries; the store
 * uses two in turn (writer.c), from its writer thread only.
 *
 * An entry (integers little-endian): "FMJE" u32 crc32c u64 index u32 length,
 * then `length` bytes of batch; the crc covers index, length and the bytes.
 * The log ends at the first entry that is short, fails its crc, or does not
 * carry an index above the one before it (a torn write, or what a reset left
 * behind: a reset starts writing at the beginning again, over the old
 * entries). */
#ifndef FM_STORE_JOURNAL_H
#define FM_STORE_JOURNAL_H
#include <stddef.h>
#include <stdint.h>

/* The store's journal is two such files, used in turn (writer.c). */
#define JOURNAL_FILE_0 "ferromq.journal.0"
#define JOURNAL_FILE_1 "ferromq.journal.1"
#define JOURNAL_ENTRY_HEAD 20

struct journal {
	int fd;
	char path[620];
	uint64_t end;   /* where the next entry goes */
	uint64_t size;  /* of the file: entries left behind by a reset may follow end */
	uint64_t last;  /* index of the last entry in the log (0: none) */
};

/* Writes an entry's head for `len` bytes of batch under index. Pure. */
void journal_entry_head(uint8_t head[JOURNAL_ENTRY_HEAD], uint64_t index, const uint8_t *p, uint32_t len);
/* Checks the head and body at p (avail bytes): 1 with *index, *body and
 * *len set, *used the entry's size; 0 when there is no whole valid entry
 * there (the end of the log). Pure; never reads outside [p, p + avail). */
int journal_entry_parse(const uint8_t *p, size_t avail, uint64_t *index, const uint8_t **body, uint32_t *len,
		    size_t *used);

/* Opens (creating) DIR/NAME. 0, or -1 with a message in err. */
int journal_open(struct journal *j, const char *dir, const char *name, char *err, size_t errlen);
/* Calls fn for every entry in order, from the start; sets where the log
 * ends. fn returns 0 to go on, or a negative fm_err that stops the read and
 * is returned. 0, or a negative fm_err (-FM_EIO with errno for a read). */
int journal_read(struct journal *j, int (*fn)(void *ctx, uint64_t index, const uint8_t *p, uint32_t len), void *ctx);
/* Appends an entry (written, not synced). 0, -FM_ELIMIT (disk full) or
 * -FM_EIO; a failed append leaves the log as it was. */
int journal_append(struct journal *j, uint64_t index, const uint8_t *p, uint32_t len);
/* fdatasync: 0, -FM_ELIMIT or -FM_EIO. */
int journal_sync(struct journal *j);
/* Starts the log over: everything in it is in the database. The file
 * keeps its blocks, to be written over, up to `keep` bytes. 0 or -FM_EIO. */
int journal_reset(struct journal *j, uint64_t keep);
void journal_close(struct journal *j);

#endif
