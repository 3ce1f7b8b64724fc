/* An edge node's topics and payloads, through the schema protoc-c compiled
 * from sparkplug_b.proto. */
#include "edge.h"
#include "../base/err.h"
#include "sparkplug/sparkplug_b.pb-c.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef SparkplugB__Payload Payload;
typedef SparkplugB__Payload__Metric Metric;

int spb_edge_topic(char *out, size_t cap, const char *ns, const char *group, enum spb_type type, const char *edge,
		   const char *device)
{
	int n = device ? snprintf(out, cap, "%s/%s/%s/%s/%s", ns, group, spb_type_name(type), edge, device)
		       : snprintf(out, cap, "%s/%s/%s/%s", ns, group, spb_type_name(type), edge);
	return n < 0 || (size_t)n >= cap ? -FM_ELIMIT : n;
}

static bool dt_signed(uint32_t dt) { return dt >= SPB_DT_INT8 && dt <= SPB_DT_INT64; }
static bool dt_narrow_int(uint32_t dt)
{
	return (dt >= SPB_DT_INT8 && dt <= SPB_DT_INT32) || (dt >= SPB_DT_UINT8 && dt <= SPB_DT_UINT32);
}

/* Sets m's value from o. Returns 0 or -FM_EINVAL. */
static int set_value(Metric *m, const struct spb_metric_out *o)
{
	uint32_t dt = o->datatype;
	switch (o->kind) {
	case SPB_V_NULL:
		m->has_is_null = m->is_null = true;
		return 0;
	case SPB_V_BOOL:
		m->value_case = SPARKPLUG_B__PAYLOAD__METRIC__VALUE_BOOLEAN_VALUE;
		m->boolean_value = o->b;
		return 0;
	case SPB_V_STRING:
		m->value_case = SPARKPLUG_B__PAYLOAD__METRIC__VALUE_STRING_VALUE;
		m->string_value = (char *)o->s;
		return 0;
	case SPB_V_INT:
	case SPB_V_UINT: {
		/* Signed values travel as their two's complement bits [6.4.16]. */
		uint64_t bits = o->kind == SPB_V_INT ? (uint64_t)o->i : o->u;
		if (dt ? dt_narrow_int(dt) : (o->kind == SPB_V_INT ? o->i >= INT32_MIN && o->i <= INT32_MAX
								 : o->u <= UINT32_MAX)) {
			m->value_case = SPARKPLUG_B__PAYLOAD__METRIC__VALUE_INT_VALUE;
			m->int_value = (uint32_t)bits;
		} else if (!dt || dt == SPB_DT_INT64 || dt == SPB_DT_UINT64) {
			m->value_case = SPARKPLUG_B__PAYLOAD__METRIC__VALUE_LONG_VALUE;
			m->long_value = bits;
		} else {
			return -FM_EINVAL;
		}
		return 0;
	}
	case SPB_V_DOUBLE:
		if (dt == SPB_DT_FLOAT) {
			m->value_case = SPARKPLUG_B__PAYLOAD__METRIC__VALUE_FLOAT_VALUE;
			m->float_value = (float)o->d;
		} else if (!dt || dt == SPB_DT_DOUBLE) {
			m->value_case = SPARKPLUG_B__PAYLOAD__METRIC__VALUE_DOUBLE_VALUE;
			m->double_value = o->d;
		} else {
			return -FM_EINVAL;
		}
		return 0;
	}
	return -FM_EINVAL;
}

/* Packs pl and appends it to out. */
static int pack_append(struct buf *out, const Payload *pl)
{
	size_t n = sparkplug_b__payload__get_packed_size(pl);
	if (buf_reserve(out, n ? n : 1))
		return -FM_ENOMEM;
	sparkplug_b__payload__pack(pl, out->p + out->len);
	out->len += (uint32_t)n;
	return 0;
}

int spb_payload_encode(struct buf *out, uint64_t timestamp, bool has_seq, uint64_t seq,
		       const struct spb_metric_out *in, size_t n)
{
	int rc = -FM_ENOMEM;
	Metric *ms = calloc(n ? n : 1, sizeof *ms);
	Metric **mp = calloc(n ? n : 1, sizeof *mp);
	SparkplugB__Payload__PropertySet *ps = calloc(n ? n : 1, sizeof *ps);
	SparkplugB__Payload__PropertyValue *pv = calloc(n ? n : 1, sizeof *pv);
	SparkplugB__Payload__PropertyValue **pvp = calloc(n ? n : 1, sizeof *pvp);
	static char *unit_key[1] = { SPB_ENG_UNIT_PROPERTY };
	if (!ms || !mp || !ps || !pv || !pvp)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct spb_metric_out *o = &in[i];
		Metric *m = &ms[i];
		sparkplug_b__payload__metric__init(m);
		m->name = (char *)o->name;
		m->has_alias = o->has_alias;
		m->alias = o->alias;
		m->has_timestamp = true;
		m->timestamp = o->timestamp;
		m->has_datatype = o->datatype != 0;
		m->datatype = o->datatype;
		if ((rc = set_value(m, o)))
			goto out;
		if (o->eng_unit && o->eng_unit[0]) {
			sparkplug_b__payload__property_set__init(&ps[i]);
			sparkplug_b__payload__property_value__init(&pv[i]);
			pv[i].has_type = true;
			pv[i].type = SPB_DT_STRING;
			pv[i].value_case = SPARKPLUG_B__PAYLOAD__PROPERTY_VALUE__VALUE_STRING_VALUE;
			pv[i].string_value = (char *)o->eng_unit;
			pvp[i] = &pv[i];
			ps[i].n_keys = 1;
			ps[i].keys = unit_key;
			ps[i].n_values = 1;
			ps[i].values = &pvp[i];
			m->properties = &ps[i];
		}
		mp[i] = m;
	}
	Payload pl = SPARKPLUG_B__PAYLOAD__INIT;
	pl.has_timestamp = true;
	pl.timestamp = timestamp;
	pl.has_seq = has_seq;
	pl.seq = seq;
	pl.n_metrics = n;
	pl.metrics = mp;
	rc = pack_append(out, &pl);
out:
	free(ms);
	free(mp);
	free(ps);
	free(pv);
	free(pvp);
	return rc;
}

int spb_nbirth_encode(struct buf *out, uint64_t bdseq, uint64_t timestamp)
{
	struct spb_metric_out m[2] = {
		{ .name = SPB_BDSEQ_METRIC, .timestamp = timestamp, .datatype = SPB_DT_INT64, .kind = SPB_V_UINT, .u = bdseq },
		{ .name = SPB_REBIRTH_METRIC, .timestamp = timestamp, .datatype = SPB_DT_BOOLEAN, .kind = SPB_V_BOOL },
	};
	return spb_payload_encode(out, timestamp, true, 0, m, 2);
}

int spb_ndeath_encode(struct buf *out, uint64_t bdseq, uint64_t timestamp)
{
	struct spb_metric_out m = { .name = SPB_BDSEQ_METRIC, .timestamp = timestamp, .datatype = SPB_DT_INT64,
				    .kind = SPB_V_UINT, .u = bdseq };
	return spb_payload_encode(out, timestamp, false, 0, &m, 1);
}

int spb_payload_restamp(const uint8_t *p, size_t len, uint64_t seq, bool historical, struct buf *out)
{
	Payload *pl = sparkplug_b__payload__unpack(NULL, len, p);
	if (!pl)
		return -FM_EINVAL;
	pl->has_seq = true;
	pl->seq = seq;
	for (size_t i = 0; historical && i < pl->n_metrics; i++)
		pl->metrics[i]->has_is_historical = pl->metrics[i]->is_historical = true;
	uint32_t start = out->len;
	int rc = pack_append(out, pl);
	if (!rc) {
		/* protobuf-c keeps unknown fields and packs them again, but takes a
		 * field number past 2^29 - 1 truncated: packed, it can turn into a
		 * known field (seq, a metric's flag) or into bytes no decoder
		 * takes. What goes out is checked to read back as meant. */
		Payload *again = sparkplug_b__payload__unpack(NULL, out->len - start, out->p + start);
		bool ok = again && again->has_seq && again->seq == seq && again->n_metrics == pl->n_metrics;
		for (size_t i = 0; ok && historical && i < again->n_metrics; i++)
			ok = again->metrics[i]->is_historical;
		if (again)
			sparkplug_b__payload__free_unpacked(again, NULL);
		if (!ok) {
			out->len = start;
			rc = -FM_EINVAL;
		}
	}
	sparkplug_b__payload__free_unpacked(pl, NULL);
	return rc;
}

bool spb_cmd_number(const struct spb_cmd_metric *m, uint32_t dt, double *out)
{
	if (m->datatype)
		dt = m->datatype;
	switch (m->kind) {
	case SPB_V_BOOL:
		*out = m->b ? 1 : 0;
		return true;
	case SPB_V_DOUBLE:
		*out = m->d;
		return true;
	case SPB_V_UINT:
		if (dt == SPB_DT_INT8)
			*out = (int8_t)m->u;
		else if (dt == SPB_DT_INT16)
			*out = (int16_t)m->u;
		else if (dt == SPB_DT_INT32)
			*out = (int32_t)m->u;
		else if (dt_signed(dt))
			*out = (double)(int64_t)m->u;
		else
			*out = (double)m->u;
		return true;
	default:
		return false;
	}
}

int spb_cmd_each(const uint8_t *p, size_t len, int (*fn)(void *ctx, const struct spb_cmd_metric *m), void *ctx)
{
	Payload *pl = sparkplug_b__payload__unpack(NULL, len, p);
	if (!pl)
		return -FM_EINVAL;
	int rc = 0;
	for (size_t i = 0; !rc && i < pl->n_metrics; i++) {
		const Metric *m = pl->metrics[i];
		struct spb_cmd_metric c = { .name = m->name, .alias = m->alias, .has_alias = m->has_alias,
					    .datatype = m->has_datatype ? m->datatype : 0, .kind = SPB_V_NULL };
		if (!(m->has_is_null && m->is_null)) {
			switch (m->value_case) {
			case SPARKPLUG_B__PAYLOAD__METRIC__VALUE_INT_VALUE: c.kind = SPB_V_UINT; c.u = m->int_value; break;
			case SPARKPLUG_B__PAYLOAD__METRIC__VALUE_LONG_VALUE: c.kind = SPB_V_UINT; c.u = m->long_value; break;
			case SPARKPLUG_B__PAYLOAD__METRIC__VALUE_FLOAT_VALUE: c.kind = SPB_V_DOUBLE; c.d = m->float_value; break;
			case SPARKPLUG_B__PAYLOAD__METRIC__VALUE_DOUBLE_VALUE: c.kind = SPB_V_DOUBLE; c.d = m->double_value; break;
			case SPARKPLUG_B__PAYLOAD__METRIC__VALUE_BOOLEAN_VALUE: c.kind = SPB_V_BOOL; c.b = m->boolean_value; break;
			case SPARKPLUG_B__PAYLOAD__METRIC__VALUE_STRING_VALUE: c.kind = SPB_V_STRING; c.s = m->string_value; break;
			default: break;
			}
		}
		rc = fn(ctx, &c);
	}
	sparkplug_b__payload__free_unpacked(pl, NULL);
	return rc;
}

static int find_rebirth(void *ctx, const struct spb_cmd_metric *m)
{
	(void)ctx;
	return m->name && !strcmp(m->name, SPB_REBIRTH_METRIC) && m->kind == SPB_V_BOOL && m->b;
}

bool spb_ncmd_is_rebirth(const uint8_t *p, size_t len) { return spb_cmd_each(p, len, find_rebirth, NULL) == 1; }
