/* fm-store-replay DUMP DIR: applies every batch of DUMP, a file the broker
 * wrote with FERROMQ_STORE_BATCH_DUMP (u64 index, u32 length, little-endian,
 * then the batch), to the store in DIR (created when missing), in order,
 * with store_apply: the replay half of the replay-equivalence test
 * (tests/integration/test_store_replay.py). The indexes must follow each
 * other from the store's own (a dump with a batch missing is refused).
 * Exits 0, or 1 with a message. */
#include "base/err.h"
#include "config/config.h"
#include "store/store.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: fm-store-replay DUMP DIR\n");
		return 1;
	}
	unsetenv("FERROMQ_STORE_BATCH_DUMP"); /* this store writes no dump */
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	char err[1024];
	struct store *st = store_open(argv[2], DURABILITY_NORMAL, err, sizeof err);
	if (!st) {
		fprintf(stderr, "%s\n", err);
		fclose(f);
		return 1;
	}
	uint8_t head[12], *batch = NULL;
	uint64_t n = 0, last = 0;
	int rc = 0;
	size_t got;
	while ((got = fread(head, 1, sizeof head, f)) == sizeof head) {
		uint64_t index = get_le(head, 8);
		uint32_t len = (uint32_t)get_le(head + 8, 4);
		uint8_t *p = realloc(batch, len ? len : 1);
		if (!p) {
			fprintf(stderr, "%s: batch %llu: out of memory\n", argv[1], (unsigned long long)index);
			rc = 1;
			break;
		}
		batch = p;
		if (fread(batch, 1, len, f) != len) {
			fprintf(stderr, "%s: batch %llu cut short\n", argv[1], (unsigned long long)index);
			rc = 1;
			break;
		}
		if (index != last + 1) {
			fprintf(stderr, "%s: batch %llu follows batch %llu\n", argv[1], (unsigned long long)index,
				(unsigned long long)last);
			rc = 1;
			break;
		}
		int e = store_apply(st, batch, len, index);
		if (e) {
			fprintf(stderr, "%s: batch %llu: store_apply: %d\n", argv[1], (unsigned long long)index, e);
			rc = 1;
			break;
		}
		last = index;
		n++;
	}
	if (!rc && got) {
		fprintf(stderr, "%s: %zu bytes after the last batch\n", argv[1], got);
		rc = 1;
	}
	if (!rc)
		printf("applied %llu batches, last index %llu\n", (unsigned long long)n, (unsigned long long)last);
	free(batch);
	fclose(f);
	store_close(st);
	return rc;
}
