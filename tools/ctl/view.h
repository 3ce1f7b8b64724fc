/* How ferromq-ctl shows the API's JSON to people: aligned tables, strings
 * with control characters replaced, durations and sizes in human units. */
#ifndef FM_CTL_VIEW_H
#define FM_CTL_VIEW_H

#include "ctl/json.h"

#include <stdio.h>

enum view_list {
	VIEW_CLIENTS,       /* GET /api/clients */
	VIEW_SESSIONS,      /* GET /api/sessions */
	VIEW_SUBSCRIPTIONS, /* GET /api/subscriptions */
	VIEW_RETAINED,      /* GET /api/retained */
	VIEW_BRIDGES,       /* GET /api/bridges */
	VIEW_DEVICES,       /* GET /api/devices */
};

/* Writes the array answer d of one of the list endpoints as a table.
 * Returns 0, or -1 with *why set when d is not an array of objects or
 * memory ran out. */
int view_list(const struct json_doc *d, enum view_list which, FILE *out, const char **why);

/* Writes the /api/status answer: a block of totals, then tables of rates,
 * top queues and alerts. Returns 0, or -1 with *why set. */
int view_status(const struct json_doc *d, FILE *out, const char **why);

/* Writes the /api/sparkplug answer: a line of totals, then tables of edge
 * nodes, devices and host applications. Returns 0, or -1 with *why set. */
int view_sparkplug(const struct json_doc *d, FILE *out, const char **why);

/* Seconds as "45s", "3m07s", "2h05m" or "3d04h" into buf. */
void view_duration(double seconds, char *buf, size_t cap);

/* Bytes as "512 B", "1.5 KiB", "117.7 MiB", ... into buf. */
void view_bytes(double bytes, char *buf, size_t cap);

/* Value token v as cell text (malloc'd; NULL when out of memory): "-" for
 * null or missing (v < 0), "yes"/"no" for booleans, integers as written,
 * other numbers with one decimal, strings unescaped with control
 * characters shown as '?', containers as their JSON text. */
char *view_text(const struct json_doc *d, int v);

#endif
