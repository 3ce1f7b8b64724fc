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

/* Writes the /api/cluster answer: this node's state, term, leader and
 * indexes, the last membership change, then a table of the peers with
 * their match index and lag; "cluster: off" for {"cluster":false}.
 * Returns 0, or -1 with *why set. */
int view_cluster(const struct json_doc *d, FILE *out, const char **why);

/* Where a membership change stands in an /api/cluster answer d. */
enum view_change {
	VIEW_CHANGE_PENDING, /* still running */
	VIEW_CHANGE_DONE,    /* finished without error */
	VIEW_CHANGE_FAILED,  /* finished with an error (*error: its text) */
	VIEW_CHANGE_OTHER,   /* the node's last change is another one */
	VIEW_CHANGE_BAD,     /* d is not a cluster node's status */
};
/* The state of the change kind ("add", "remove", "transfer") of node id
 * (transfer: any id when id is 0) in d. *error is the change's error text
 * (malloc'd, the caller frees it) for FAILED, else NULL. */
enum view_change view_cluster_change(const struct json_doc *d, const char *kind, long long id, char **error);

/* The JSON text of the "change" member of an /api/cluster answer d
 * (malloc'd), or NULL when it has none or memory ran out. */
char *view_cluster_change_json(const struct json_doc *d);

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
