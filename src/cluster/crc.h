/* The checksum of libraft's log segments and snapshots, computed fast.
 * libraft 0.22.1 checksums every entry it writes (and each snapshot) one
 * byte at a time, measured at 307 MB/s here: a fifth to a third of each
 * node's CPU under a QoS 1 flood (perf, bench/cluster.sh). The build links
 * libraft's calls to byteCrc32 to cluster__crc32 (ld --wrap), which gives
 * the same values eight bytes at a time, so segments written before and
 * after read back alike (tests/unit/test_cluster_crc.c checks it against
 * libraft's own). */
#ifndef FM_CLUSTER_CRC_H
#define FM_CLUSTER_CRC_H
#include <stddef.h>
#include <stdint.h>

/* CRC-32 with the polynomial 0x04C11DB7, most significant bit first, not
 * reflected, no final inversion; `crc` is the value so far (0 to start),
 * so a buffer can be checksummed in parts. Pure, any thread. */
uint32_t cluster__crc32(const void *bytes, size_t len, uint32_t crc);

#endif
