/* The pure part of Modbus collection: a tag's registers into a value and a
 * value into registers (type, byte and word order, scale and offset), the
 * JSON of a reading, the report-by-exception rule, the parsing of a write
 * request, and the plan that reads a poll group in as few requests as the
 * protocol allows. No I/O, no threads, no globals: unit-tested and fuzzed. */
#ifndef FM_COLLECT_TAG_H
#define FM_COLLECT_TAG_H
#include "../base/buf.h"
#include "../config/config.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol limits of one read request [Modbus Application Protocol V1.1b3
 * 6.1-6.4]: 125 registers, 2000 bits. */
#define TAG_MAX_READ_REGISTERS 125
#define TAG_MAX_READ_BITS 2000
/* A string tag's text, at most 125 registers of two bytes. */
#define TAG_MAX_STRING 250

enum tag_kind { TAG_V_BOOL, TAG_V_INT, TAG_V_UINT, TAG_V_FLOAT, TAG_V_STRING };

/* A decoded reading, before scaling. */
struct tag_value {
	uint8_t kind; /* enum tag_kind */
	bool b;
	int64_t i;
	uint64_t u;
	double f;
	uint16_t len;                   /* TAG_V_STRING: bytes in s */
	char s[TAG_MAX_STRING + 1];
};

/* Registers (or bits, for coils and discrete inputs) a tag spans. */
unsigned tag_width(const struct modbus_tag_conf *t);
/* True for coils and discrete inputs (read as bits). */
bool tag_area_bits(uint8_t area);

/* Decodes a register tag from its `tag_width` registers r (as read, in wire
 * order) or a bit tag from bit (0 or 1). Pure. */
void tag_decode(const struct modbus_tag_conf *t, const uint16_t *r, uint8_t bit, struct tag_value *v);

/* The engineering value of a number: raw x scale + offset. NaN for strings. */
double tag_engineering(const struct modbus_tag_conf *t, const struct tag_value *v);

/* A hash of the value as published (strings, and numbers exactly), for
 * report by exception. */
uint64_t tag_value_hash(const struct modbus_tag_conf *t, const struct tag_value *v);

enum tag_quality { TAG_GOOD, TAG_BAD };

/* Appends {"value":V,"ts":MS,"quality":"good"|"bad"[,"unit":U][,"error":E]}
 * to out. v NULL (or a number that is not finite): "value":null. err may be
 * NULL. Returns 0 or -FM_ENOMEM. */
int tag_payload(struct buf *out, const struct modbus_tag_conf *t, const struct tag_value *v, uint64_t ts_ms,
		enum tag_quality q, const char *err);
/* Appends the JSON value alone (as in "value":...), for group messages. */
int tag_json_value(struct buf *out, const struct modbus_tag_conf *t, const struct tag_value *v);

/* What a report-by-exception tag last published. */
struct tag_last {
	bool any;          /* something was published */
	uint8_t quality;   /* enum tag_quality */
	double value;      /* engineering value (numbers) */
	uint64_t hash;     /* tag_value_hash */
	uint64_t at_ms;    /* monotonic */
};

/* Should this reading be published? Always without report by exception or a
 * deadband; otherwise when nothing was published yet, the quality changed,
 * the value moved by the deadband (any change without one), or max_silence
 * has passed. Pure. */
bool tag_should_publish(const struct modbus_tag_conf *t, const struct tag_last *last, enum tag_quality q,
			double value, uint64_t hash, uint64_t now_ms);

/* Is this reading published on its own? Without tag_aggregate, as
 * tag_should_publish says. With it the reading has gone to its window first
 * (a number) or been counted there as non_numeric (quality bad, or not a
 * finite number); then a number is published as well only under report by
 * exception or a deadband, a reading without one only with
 * tag_aggregate_non_numeric pass, each as tag_should_publish says. Pure. */
bool tag_publish_reading(const struct modbus_tag_conf *t, const struct tag_last *last, enum tag_quality q,
			 double value, uint64_t hash, uint64_t now_ms);

/* Parses a write request's payload: a JSON number, true/false, or an
 * object with a "value" member holding one. Returns 0 with *value set (true
 * is 1, false 0), or -1 with *why. */
int tag_parse_write(const uint8_t *p, size_t len, double *value, const char **why);

/* Encodes engineering value `eng` for a write: range checks (tag_min,
 * tag_max, then the raw type's range after (eng - offset) / scale, rounded
 * to the nearest integer for integer types), then the registers in the tag's
 * order (regs, *n of them) or the coil state (*bit). Returns 0, or -1 with
 * *why. Pure. */
int tag_encode(const struct modbus_tag_conf *t, double eng, uint16_t regs[4], unsigned *n, uint8_t *bit,
	       const char **why);

/* ---- planning: the requests of one poll group ---- */

/* One read request: `count` registers or bits of `area` from `start`,
 * covering tags idx[first .. first + n) of the group. */
struct tag_request {
	uint8_t area;
	uint16_t start;
	uint16_t count;
	uint32_t first, n;
};

/* Plans the reads of the tags idx[0..n) (indices into tags[]), all of one
 * interval: sorts idx by area and address, then joins tags of one area into
 * one request while it stays within TAG_MAX_READ_REGISTERS (bits:
 * TAG_MAX_READ_BITS) and the gap between them is at most max_gap registers
 * (16 x max_gap bits). Writes at most n requests to req. Returns how many. */
uint32_t tag_plan(const struct modbus_tag_conf *tags, uint32_t *idx, uint32_t n, uint32_t max_gap,
		  struct tag_request *req);

#endif
