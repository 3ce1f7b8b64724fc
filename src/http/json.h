/* A small JSON writer into a buffer: commas and escaping are its job. */
#ifndef FM_HTTP_JSON_H
#define FM_HTTP_JSON_H
#include "../base/buf.h"
#include <stdbool.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 8

struct jw {
	struct buf out;
	bool oom;            /* an append failed: the text is incomplete */
	unsigned depth;
	bool has_items[JSON_MAX_DEPTH];
	bool after_key;
};

void jw_obj(struct jw *j);
void jw_obj_end(struct jw *j);
void jw_arr(struct jw *j);
void jw_arr_end(struct jw *j);
void jw_key(struct jw *j, const char *key);
void jw_str(struct jw *j, const char *s);   /* NULL: null */
void jw_strn(struct jw *j, const char *s, size_t n);
void jw_u64(struct jw *j, uint64_t v);
void jw_num(struct jw *j, double v);
void jw_bool(struct jw *j, bool v);
void jw_null(struct jw *j);

#endif
