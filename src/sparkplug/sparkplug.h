/* Sparkplug B (Eclipse Sparkplug 3.0.0): topic parsing and the payload
 * helpers the broker needs on its hot path (pure: no allocation, no global).
 *
 * The full payload schema is src/sparkplug/sparkplug_b.proto, compiled by
 * protoc-c at build time; include "sparkplug/sparkplug_b.pb-c.h" and use
 * sparkplug_b__payload__unpack/pack for a whole message. The scanner here
 * reads only what routing and the fleet view need, without allocating.
 *
 * The namespace (spBv1.0 in 3.0, spCv1.0 in a draft of the next version) is
 * always a parameter: nothing in ferromq spells it but the configuration's
 * default (sparkplug_namespace).
 */
#ifndef FM_SPARKPLUG_H
#define FM_SPARKPLUG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a Sparkplug aware server keeps the births it saw
 * ([tck-id-conformance-mqtt-aware-nbirth-mqtt-topic]): this prefix, then the
 * birth's own topic. */
#define SPB_CERT_PREFIX "$sparkplug/certificates/"
#define SPB_CERT_PREFIX_LEN (sizeof SPB_CERT_PREFIX - 1)

/* True for "$sparkplug" and every topic (or filter) under "$sparkplug/":
 * the aware broker's own tree. */
bool spb_reserved_topic(const char *topic, size_t len);

/* When topic (or a filter) lies under $sparkplug/certificates/: true, with
 * *orig and *orig_len the birth topic (or filter) after the prefix. */
bool spb_certificate_original(const char *topic, size_t len, const char **orig, size_t *orig_len);

/* [tck-id-topics-...] message types, in the order of the specification's
 * topic table; SPB_STATE is a host application's <namespace>/STATE/<host>. */
enum spb_type {
	SPB_NBIRTH,
	SPB_NDEATH,
	SPB_DBIRTH,
	SPB_DDEATH,
	SPB_NDATA,
	SPB_DDATA,
	SPB_NCMD,
	SPB_DCMD,
	SPB_STATE,
	SPB_TYPE_COUNT
};

/* "NBIRTH" ... "STATE". */
const char *spb_type_name(enum spb_type type);

/* True for the types whose topic names a device (DBIRTH, DDEATH, DDATA, DCMD). */
bool spb_type_has_device(enum spb_type type);

/* A parsed topic: pointers into the caller's topic, not NUL-terminated. */
struct spb_topic {
	enum spb_type type;
	const char *group;   /* edge-node types; NULL for STATE */
	size_t group_len;
	const char *edge;    /* edge-node id; NULL for STATE */
	size_t edge_len;
	const char *device;  /* device types only, else NULL */
	size_t device_len;
	const char *host;    /* STATE only: the host application id */
	size_t host_len;
};

/* Parses topic (len bytes) as a Sparkplug topic of namespace ns:
 *   <ns>/<group>/<N-type>/<edge>
 *   <ns>/<group>/<D-type>/<edge>/<device>
 *   <ns>/STATE/<host>
 * Returns 1 and fills out when it is one; 0 when the topic is not under
 * <ns>/ at all (not Sparkplug: route it as any other); -FM_EINVAL when it
 * is under <ns>/ but is not a well-formed Sparkplug topic (unknown type, a
 * missing or extra level, an empty id, or an id holding '+' or '#'). The
 * topic is assumed to be a valid MQTT topic name already. */
int spb_topic_parse(const char *ns, size_t ns_len, const char *topic, size_t len,
		    struct spb_topic *out);

/* A namespace may be used when it is one non-empty topic level without
 * wildcards and does not start with '$'. */
bool spb_namespace_valid(const char *ns, size_t len);

/* What spb_payload_scan reads from a Payload message. */
struct spb_payload_info {
	bool has_timestamp;
	bool has_seq;
	bool has_bdseq;
	uint64_t timestamp;   /* Payload.timestamp, ms since the epoch */
	uint64_t seq;         /* Payload.seq (0..255 when well behaved) */
	uint64_t bdseq;       /* the first metric named "bdSeq" with an integer value */
	uint32_t metrics;     /* number of Payload.metrics entries */
};

/* Reads a Sparkplug B Payload's timestamp, seq, metric count and bdSeq
 * metric (the value of the first metric named "bdSeq" holding int_value or
 * long_value) in one pass, without allocating. Repeated scalar fields take
 * the last value, as protobuf does. Checks the protobuf framing of the
 * payload and of every metric (wire types, lengths, varints, known fields'
 * wire types); it does not look inside a metric's nested messages, so a
 * payload it accepts may still fail a full unpack. Returns 0, or
 * -FM_EINVAL when the bytes are not such a message. */
int spb_payload_scan(const uint8_t *p, size_t len, struct spb_payload_info *out);

/* The largest output of spb_payload_set_timestamp for an input of len bytes. */
#define SPB_SET_TIMESTAMP_MAX(len) ((len) + 11)

/* Writes payload p (len bytes) to out with its Payload.timestamp set to ts:
 * the timestamp goes first, any timestamp field of p is left out, the other
 * fields follow unchanged and in order. out must not overlap p. Returns the
 * output length (<= SPB_SET_TIMESTAMP_MAX(len)), -FM_EINVAL when p is not
 * a payload spb_payload_scan accepts, or -FM_ELIMIT when cap is too small. */
long spb_payload_set_timestamp(const uint8_t *p, size_t len, uint64_t ts, uint8_t *out,
			       size_t cap);

/* A host application's STATE payload: {"online": bool, "timestamp": ms}. */
struct spb_state {
	bool online;
	uint64_t timestamp;
};

/* Parses a STATE payload: one JSON object holding "online" (true/false) and
 * "timestamp" (a non-negative integer); other members are skipped (strings,
 * numbers, true/false/null only). Returns 0, or -FM_EINVAL. */
int spb_state_parse(const char *p, size_t len, struct spb_state *out);

#endif
