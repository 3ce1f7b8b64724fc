/* Entry and snapshot headers (frame.h): pure. */
#include "cluster/frame.h"

#include <string.h>

#include "base/err.h"

#define SNAP_MAGIC "FMCLSNAP"
#define SNAP_VERSION 1u

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

size_t cluster__entry_size(size_t len)
{
	return CLUSTER_ENTRY_HEADER + ((len + 7) & ~(size_t)7);
}

void cluster__entry_encode(unsigned char *out, enum cluster_entry_type type, const void *payload, uint32_t len)
{
	size_t size = cluster__entry_size(len);
	memset(out, 0, CLUSTER_ENTRY_HEADER);
	out[0] = (unsigned char)type;
	put_u32(out + 4, len);
	if (len)
		memcpy(out + CLUSTER_ENTRY_HEADER, payload, len);
	memset(out + CLUSTER_ENTRY_HEADER + len, 0, size - CLUSTER_ENTRY_HEADER - len);
}

int cluster__entry_decode(const void *bytes, size_t len, enum cluster_entry_type *type,
			  const unsigned char **payload, size_t *payload_len)
{
	const unsigned char *p = bytes;
	if (len < CLUSTER_ENTRY_HEADER || p[1] || p[2] || p[3])
		return -FM_EPROTO;
	if (p[0] != CLUSTER_ENTRY_USER && p[0] != CLUSTER_ENTRY_WATERMARK)
		return -FM_EPROTO;
	size_t plen = get_u32(p + 4);
	if (plen > CLUSTER_ENTRY_MAX_PAYLOAD || cluster__entry_size(plen) != len)
		return -FM_EPROTO;
	for (size_t i = CLUSTER_ENTRY_HEADER + plen; i < len; i++)
		if (p[i])
			return -FM_EPROTO;
	if (p[0] == CLUSTER_ENTRY_WATERMARK && plen != 8)
		return -FM_EPROTO;
	*type = (enum cluster_entry_type)p[0];
	*payload = p + CLUSTER_ENTRY_HEADER;
	*payload_len = plen;
	return 0;
}

void cluster__snap_header_encode(unsigned char out[CLUSTER_SNAP_HEADER], bool witness, uint64_t index)
{
	memcpy(out, SNAP_MAGIC, 8);
	put_u32(out + 8, SNAP_VERSION);
	put_u32(out + 12, witness ? 1u : 0u);
	put_u64(out + 16, index);
}

int cluster__snap_header_decode(const void *bytes, size_t len, bool *witness, uint64_t *index)
{
	const unsigned char *p = bytes;
	if (len < CLUSTER_SNAP_HEADER || memcmp(p, SNAP_MAGIC, 8) != 0 || get_u32(p + 8) != SNAP_VERSION)
		return -FM_EPROTO;
	uint32_t kind = get_u32(p + 12);
	if (kind > 1)
		return -FM_EPROTO;
	*witness = kind == 1;
	*index = get_u64(p + 16);
	return 0;
}
