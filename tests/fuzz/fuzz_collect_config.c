/* libFuzzer target for the modbus_device sections of src/config: the input's
 * lines are applied after "modbus_device f" and "modbus_address h", as
 * config_load would, then config_finish. Nothing may crash, a failure must
 * leave a message, and what was accepted must hold: every device's tags
 * contiguous and within the table, each tag within the address space, of a
 * type its area can hold, named without / + #; a finished device has an
 * address, tags and a valid prefix, and its aggregated tags valid
 * aggregation options. Aborts otherwise. */
#include "config/config.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static struct config cfg; /* 1.6 MB: not on the stack */

static unsigned width(const struct modbus_tag_conf *t)
{
	switch (t->type) {
	case MODBUS_INT32: case MODBUS_UINT32: case MODBUS_FLOAT32: return 2;
	case MODBUS_INT64: case MODBUS_UINT64: case MODBUS_FLOAT64: return 4;
	case MODBUS_STRING: return t->count;
	default: return 1;
	}
}

static void check_devices(const struct config *c, bool finished)
{
	CHECK(c->n_devices <= CONFIG_MAX_DEVICES && c->n_tags <= CONFIG_MAX_TAGS);
	uint32_t next = 0;
	for (unsigned i = 0; i < c->n_devices; i++) {
		const struct modbus_device_conf *d = &c->devices[i];
		CHECK(d->name[0] && memchr(d->name, 0, sizeof d->name) && !strpbrk(d->name, "/+# \t\"\\"));
		CHECK(d->first_tag == next && d->first_tag + d->n_tags <= c->n_tags);
		next += d->n_tags;
		CHECK(d->unit_id <= 255 && d->timeout_ms >= 10 && d->offline_after >= 1 && d->max_gap <= 120);
		CHECK(d->restart_timeout.min >= 10 && d->restart_timeout.min <= d->restart_timeout.max);
		CHECK(memchr(d->host, 0, sizeof d->host) && memchr(d->topic_prefix, 0, sizeof d->topic_prefix));
		if (finished)
			CHECK(d->host[0] && d->n_tags && d->topic_prefix[0] && !strpbrk(d->topic_prefix, "+#") &&
			      d->topic_prefix[0] != '$');
		for (uint32_t k = d->first_tag; k < d->first_tag + d->n_tags; k++) {
			const struct modbus_tag_conf *t = &c->tags[k];
			CHECK(t->name[0] && memchr(t->name, 0, sizeof t->name) && !strpbrk(t->name, "/+#\x7f"));
			for (const char *p = t->name; *p; p++)
				CHECK((unsigned char)*p >= 0x20);
			CHECK(memchr(t->unit, 0, sizeof t->unit));
			CHECK(t->area <= MODBUS_HOLDING_REGISTER && t->type <= MODBUS_STRING && t->order <= MODBUS_DCBA);
			bool bits = t->area == MODBUS_COIL || t->area == MODBUS_DISCRETE_INPUT;
			CHECK(bits == (t->type == MODBUS_BOOL));
			CHECK(t->address + width(t) <= 65536 && t->bit <= 15);
			CHECK(t->type != MODBUS_STRING || (t->count >= 1 && t->count <= 125));
			CHECK(isfinite(t->scale) && isfinite(t->offset) && (!t->has_deadband || t->deadband >= 0));
			CHECK(t->agg.window_s <= 86400 && t->agg.stats <= AGG_ALL && t->agg.empty <= AGG_EMPTY_COUNT &&
			      t->agg.non_numeric <= AGG_NN_DROP && memchr(t->agg_suffix, 0, sizeof t->agg_suffix));
			if (finished) {
				CHECK(t->scale != 0);
				CHECK(!t->writable || t->area == MODBUS_COIL || t->area == MODBUS_HOLDING_REGISTER);
				/* Aggregation: its options only with a window, which has statistics; a
				 * suffix is levels below the tag's topic, never its set topic. */
				const char *sfx = t->agg_suffix;
				if (!t->agg.window_s)
					CHECK(!t->agg.stats && !t->agg.empty && !t->agg.non_numeric && !sfx[0]);
				else
					CHECK(t->agg.stats && t->type != MODBUS_STRING && d->format != MODBUS_FORMAT_SPARKPLUG);
				CHECK(!sfx[0] || (sfx[0] == '/' && !strpbrk(sfx, "+#") && !strstr(sfx, "//") &&
						  sfx[strlen(sfx) - 1] != '/' && strcmp(sfx, "/set") && strncmp(sfx, "/set/", 5)));
			}
		}
	}
	CHECK(next == c->n_tags);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	CHECK(text);
	memcpy(text, data, size);
	text[size] = 0;
	char err[512];
	config_defaults(&cfg);
	CHECK(config_apply_line(&cfg, "modbus_device f", err, sizeof err) == 0);
	CHECK(config_apply_line(&cfg, "modbus_address h", err, sizeof err) == 0);
	char *save = NULL;
	bool ok = true;
	for (char *line = strtok_r(text, "\n", &save); line && ok; line = strtok_r(NULL, "\n", &save)) {
		memset(err, 0, sizeof err);
		int rc = config_apply_line(&cfg, line, err, sizeof err);
		CHECK(rc == 0 || (rc == -1 && err[0] && memchr(err, 0, sizeof err)));
		ok = rc == 0;
		check_devices(&cfg, false);
	}
	if (ok) {
		memset(err, 0, sizeof err);
		int rc = config_finish(&cfg, err, sizeof err);
		CHECK(rc == 0 || (rc == -1 && err[0]));
		if (rc == 0)
			check_devices(&cfg, true);
	}
	free(text);
	return 0;
}
