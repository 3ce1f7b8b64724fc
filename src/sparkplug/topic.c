/* Sparkplug topics (Sparkplug 3.0 chapter 4, "Topics and Messages"). */
#include "sparkplug/sparkplug.h"
#include "base/err.h"
#include <string.h>

static const char *const spb_type_names[SPB_TYPE_COUNT] = {
	[SPB_NBIRTH] = "NBIRTH", [SPB_NDEATH] = "NDEATH", [SPB_DBIRTH] = "DBIRTH",
	[SPB_DDEATH] = "DDEATH", [SPB_NDATA] = "NDATA",   [SPB_DDATA] = "DDATA",
	[SPB_NCMD] = "NCMD",     [SPB_DCMD] = "DCMD",     [SPB_STATE] = "STATE",
};

const char *spb_type_name(enum spb_type type)
{
	return (unsigned)type < SPB_TYPE_COUNT ? spb_type_names[type] : "?";
}

bool spb_type_has_device(enum spb_type type)
{
	return type == SPB_DBIRTH || type == SPB_DDEATH || type == SPB_DDATA || type == SPB_DCMD;
}

/* [tck-id-topic-structure-namespace-...]: group, edge node, device and host
 * ids are non-empty and hold none of the MQTT wildcards ('/' separates). */
static bool spb__id_valid(const char *s, size_t len)
{
	return len > 0 && !memchr(s, '+', len) && !memchr(s, '#', len);
}

bool spb_namespace_valid(const char *ns, size_t len)
{
	return spb__id_valid(ns, len) && ns[0] != '$' && !memchr(ns, '/', len) &&
	       !memchr(ns, '\0', len);
}

/* The message types that may follow a group id (STATE has no group). */
static int spb__type_parse(const char *s, size_t len)
{
	for (int t = 0; t < SPB_STATE; t++)
		if (strlen(spb_type_names[t]) == len && memcmp(spb_type_names[t], s, len) == 0)
			return t;
	return -1;
}

int spb_topic_parse(const char *ns, size_t ns_len, const char *topic, size_t len,
		    struct spb_topic *out)
{
	if (len <= ns_len || memcmp(topic, ns, ns_len) != 0 || topic[ns_len] != '/')
		return 0;
	/* split what follows "<ns>/" into at most 5 levels (a 5th means too many) */
	const char *lv[5];
	size_t lvlen[5], n = 0;
	const char *p = topic + ns_len + 1, *end = topic + len;
	while (n < 5) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		lv[n] = p;
		lvlen[n++] = slash ? (size_t)(slash - p) : (size_t)(end - p);
		if (!slash)
			break;
		p = slash + 1;
	}
	for (size_t i = 0; i < n; i++)
		if (!spb__id_valid(lv[i], lvlen[i]))
			return -FM_EINVAL;
	memset(out, 0, sizeof *out);
	if (n == 2 && lvlen[0] == 5 && memcmp(lv[0], "STATE", 5) == 0) {
		out->type = SPB_STATE;
		out->host = lv[1];
		out->host_len = lvlen[1];
		return 1;
	}
	if (n < 3)
		return -FM_EINVAL;
	int type = spb__type_parse(lv[1], lvlen[1]);
	if (type < 0 || n != (spb_type_has_device((enum spb_type)type) ? 4u : 3u))
		return -FM_EINVAL;
	out->type = (enum spb_type)type;
	out->group = lv[0];
	out->group_len = lvlen[0];
	out->edge = lv[2];
	out->edge_len = lvlen[2];
	if (n == 4) {
		out->device = lv[3];
		out->device_len = lvlen[3];
	}
	return 1;
}

bool spb_reserved_topic(const char *topic, size_t len)
{
	return len >= 10 && memcmp(topic, "$sparkplug", 10) == 0 && (len == 10 || topic[10] == '/');
}

bool spb_certificate_original(const char *topic, size_t len, const char **orig, size_t *orig_len)
{
	if (len <= SPB_CERT_PREFIX_LEN || memcmp(topic, SPB_CERT_PREFIX, SPB_CERT_PREFIX_LEN) != 0)
		return false;
	*orig = topic + SPB_CERT_PREFIX_LEN;
	*orig_len = len - SPB_CERT_PREFIX_LEN;
	return true;
}
