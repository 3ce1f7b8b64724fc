/* What the cluster module puts around the bytes it replicates: the header
 * of every raft entry and of every snapshot. Pure, unit-tested and fuzzed
 * (tests/unit/test_cluster.c, tests/fuzz/fuzz_cluster_frame.c). */
#ifndef FM_CLUSTER_FRAME_H
#define FM_CLUSTER_FRAME_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An entry: type (u8), 3 zero bytes, the payload's length (u32 little
 * endian), the payload, zero padding to a multiple of 8 bytes (libraft
 * 0.22.1 refuses entries of other lengths). */
enum cluster_entry_type {
	CLUSTER_ENTRY_USER = 0,      /* the state machine's bytes */
	CLUSTER_ENTRY_WATERMARK = 1, /* u64: every voter's log reaches this index */
};
#define CLUSTER_ENTRY_HEADER 8
#define CLUSTER_ENTRY_MAX_PAYLOAD (UINT32_MAX - 16u)

/* Bytes of an entry carrying len payload bytes (len <= CLUSTER_ENTRY_MAX_PAYLOAD). */
size_t cluster__entry_size(size_t len);
/* Writes the entry into out (cluster__entry_size(len) bytes). */
void cluster__entry_encode(unsigned char *out, enum cluster_entry_type type, const void *payload, uint32_t len);
/* Reads an entry: 0 with its type and payload (pointing into bytes), or
 * -FM_EPROTO when it is not exactly one of ours. */
int cluster__entry_decode(const void *bytes, size_t len, enum cluster_entry_type *type,
			  const unsigned char **payload, size_t *payload_len);

/* A snapshot starts with magic "FMCLSNAP", version u32 (1), kind u32
 * (0 data, 1 a witness's: no data), the index it was taken at (u64). */
#define CLUSTER_SNAP_HEADER 24
void cluster__snap_header_encode(unsigned char out[CLUSTER_SNAP_HEADER], bool witness, uint64_t index);
/* 0, or -FM_EPROTO for a header that is not ours (or a version we do not know). */
int cluster__snap_header_decode(const void *bytes, size_t len, bool *witness, uint64_t *index);

#endif
