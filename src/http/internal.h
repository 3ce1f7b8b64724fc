/* Declarations shared by the HTTP server's files. */
#ifndef FM_HTTP_INTERNAL_H
#define FM_HTTP_INTERNAL_H
#include "http.h"
#include "json.h"
#include "../base/http_request.h"

struct hconn;

struct http_server {
	struct ops *ops;        /* the broker's service; NULL on a witness, which runs no broker */
	struct ops_node *node;  /* credentials, readiness of a witness, the cluster node */
	const struct config *cfg;
	uv_loop_t *loop;
	uv_tcp_t listener;
	uv_timer_t sweep; /* closes idle connections */
	bool started, stopping;
	bool handed_over;       /* the listener went to the next server (http_server_hand_over) */
	bool full_logged;       /* MAX_CONNS reached, said once until below */
	struct hconn *conns;
	unsigned n_conns;       /* in conns */
};

struct http_response {
	int status;
	const char *type;          /* Content-Type */
	struct buf body;           /* owned */
	const uint8_t *fixed;      /* a body not owned (an embedded asset), or NULL */
	size_t fixed_len;
	char headers[512];         /* extra header lines, each ending in CRLF */
	bool api;                  /* Cache-Control: no-store */
};

/* One embedded dashboard file (assets.c is generated at build time). */
struct http_asset {
	const char *name;
	const char *type;
	const unsigned char *data;
	size_t len;
};
extern const struct http_asset http_assets[];
extern const unsigned http_n_assets;

/* api.c: answers req into res. Returns 0, or 1 when the answer comes later
 * through http_reply (the connection then reads nothing more until it). */
int api_dispatch(struct http_server *s, struct hconn *c, const struct http_request *req, struct http_response *res);
/* Fills res with a JSON error {"error": why}. */
void api_error(struct http_response *res, int status, const char *why);

/* server.c: sends res (freeing its body) on c, which may have gone away
 * while the answer was being prepared (then it is only freed). */
void http_reply(struct hconn *c, struct http_response *res);
/* The server c belongs to. */
struct http_server *hconn_server(const struct hconn *c);
/* The client's address, for log lines. */
const char *hconn_peer(const struct hconn *c);

#endif
