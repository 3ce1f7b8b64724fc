/* What a Sparkplug B edge node writes and reads (Sparkplug 3.0 chapters 6
 * and 7): its topics, the payloads of its births, deaths and data, the
 * restamping of a spooled message with the seq of the moment it is sent,
 * and the metrics of an NCMD or DCMD. Pure: no I/O, no global; the payloads
 * go through the schema compiled from sparkplug_b.proto. */
#ifndef FM_SPARKPLUG_EDGE_H
#define FM_SPARKPLUG_EDGE_H
#include "../base/buf.h"
#include "sparkplug.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Payload metric datatypes [Sparkplug 3.0 6.4.16, DataType]. */
enum spb_datatype {
	SPB_DT_INT8 = 1, SPB_DT_INT16 = 2, SPB_DT_INT32 = 3, SPB_DT_INT64 = 4,
	SPB_DT_UINT8 = 5, SPB_DT_UINT16 = 6, SPB_DT_UINT32 = 7, SPB_DT_UINT64 = 8,
	SPB_DT_FLOAT = 9, SPB_DT_DOUBLE = 10, SPB_DT_BOOLEAN = 11, SPB_DT_STRING = 12,
};

/* The metric every NBIRTH carries so a host can ask for the births again
 * [tck-id-operational-behavior-edge-node-birth-sequence-rebirth...]. */
#define SPB_REBIRTH_METRIC "Node Control/Rebirth"
#define SPB_BDSEQ_METRIC "bdSeq"
/* The property that carries a metric's engineering unit (Ignition's key). */
#define SPB_ENG_UNIT_PROPERTY "engUnit"

/* Writes NS/GROUP/TYPE/EDGE[/DEVICE] to out (NUL-terminated). Returns its
 * length, or -FM_ELIMIT when cap is too small. device is NULL for the
 * edge node's own types. */
int spb_edge_topic(char *out, size_t cap, const char *ns, const char *group, enum spb_type type, const char *edge,
		   const char *device);

enum spb_value_kind { SPB_V_NULL, SPB_V_BOOL, SPB_V_INT, SPB_V_UINT, SPB_V_DOUBLE, SPB_V_STRING };

/* One metric to encode. */
struct spb_metric_out {
	const char *name;     /* NULL: by alias only (DATA messages after a birth) */
	uint64_t alias;
	bool has_alias;
	uint64_t timestamp;   /* ms since 1970 */
	uint32_t datatype;    /* enum spb_datatype; 0: left out (DATA messages) */
	uint8_t kind;         /* enum spb_value_kind; SPB_V_NULL sends is_null */
	bool b;
	int64_t i;            /* SPB_V_INT */
	uint64_t u;           /* SPB_V_UINT */
	double d;             /* SPB_V_DOUBLE: a Float metric is sent as float_value */
	const char *s;        /* SPB_V_STRING */
	const char *eng_unit; /* NULL or "": no properties */
};

/* Appends a Payload {timestamp, metrics, seq when has_seq} to out. The
 * value field follows the datatype (Int8..Int32 and UInt8..UInt32:
 * int_value, 64-bit: long_value, Float: float_value, Double:
 * double_value); without a datatype, kind decides. Returns 0, -FM_EINVAL
 * (a value the datatype cannot hold) or -FM_ENOMEM. */
int spb_payload_encode(struct buf *out, uint64_t timestamp, bool has_seq, uint64_t seq,
		       const struct spb_metric_out *m, size_t n);

/* An NBIRTH's own metrics (bdSeq as Int64 [tck-id-payloads-nbirth-bdseq],
 * Node Control/Rebirth false) with seq 0; an NDEATH holds bdSeq only
 * [tck-id-payloads-ndeath-bdseq]. Return 0 or -FM_ENOMEM. */
int spb_nbirth_encode(struct buf *out, uint64_t bdseq, uint64_t timestamp);
int spb_ndeath_encode(struct buf *out, uint64_t bdseq, uint64_t timestamp);

/* Rewrites payload p with Payload.seq = seq and, when historical, every
 * metric's is_historical set [tck-id-payloads-metric-historical...]; the
 * rest is kept (unknown fields too). Appends it to out. Returns 0,
 * -FM_EINVAL (p is not a Payload, or one whose rewrite would not read back
 * with that seq and those flags; out is left as it was) or -FM_ENOMEM. */
int spb_payload_restamp(const uint8_t *p, size_t len, uint64_t seq, bool historical, struct buf *out);

/* One metric of a command (NCMD, DCMD), as received. */
struct spb_cmd_metric {
	const char *name;   /* NULL: none (by alias) */
	uint64_t alias;
	bool has_alias;
	uint32_t datatype;  /* 0: not given */
	uint8_t kind;       /* enum spb_value_kind: SPB_V_UINT for int_value and long_value (raw bits),
			     * SPB_V_DOUBLE for float and double, SPB_V_BOOL, SPB_V_STRING, SPB_V_NULL */
	bool b;
	uint64_t u;
	double d;
	const char *s;
};

/* The number a command metric holds, read as datatype dt (the receiver's
 * own type of the metric when the command gave none): raw int_value and
 * long_value bits are sign-extended for Int8..Int64. Booleans are 1 or 0.
 * Returns false for a string or a null. */
bool spb_cmd_number(const struct spb_cmd_metric *m, uint32_t dt, double *out);

/* Calls fn for every metric of command payload p, in order, until fn
 * returns non-zero. Returns 0, fn's non-zero value, -FM_EINVAL (not a
 * Payload) or -FM_ENOMEM. */
int spb_cmd_each(const uint8_t *p, size_t len, int (*fn)(void *ctx, const struct spb_cmd_metric *m), void *ctx);

/* True when NCMD payload p asks for a rebirth: a metric named
 * Node Control/Rebirth holding true [tck-id-operational-behavior-edge-node-
 * ncmd-rebirth...]. */
bool spb_ncmd_is_rebirth(const uint8_t *p, size_t len);

#endif
