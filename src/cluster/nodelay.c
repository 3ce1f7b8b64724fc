/* TCP_NODELAY on raft's connections. libraft's TCP transport never sets it
 * (checked on 0.22.1: no uv_tcp_nodelay in libraft.so), so a small
 * AppendEntries waits for Nagle's timer behind the previous one's ACK. We
 * wrap the transport's listen and connect and set it on every stream they
 * hand raft. */
#include <stddef.h>
#include <stdlib.h>

#include "cluster/internal.h"

/* raft_uv_init takes the transport's data field for itself (0.22.1: a
 * pointer we stored there was overwritten), so the node is found from the
 * transport embedded in it. */
static struct cluster_node *node_of(struct raft_uv_transport *t)
{
	return (struct cluster_node *)((char *)t - offsetof(struct cluster_node, transport));
}

static void set_nodelay(struct uv_stream_s *s)
{
	if (s && s->type == UV_TCP)
		uv_tcp_nodelay((uv_tcp_t *)s, 1);
}

static void nodelay_accept(struct raft_uv_transport *t, raft_id id, const char *address,
			   struct uv_stream_s *stream)
{
	struct cluster_node *n = node_of(t);
	set_nodelay(stream);
	n->accept_cb(t, id, address, stream);
}

static int nodelay_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	struct cluster_node *n = node_of(t);
	n->accept_cb = cb;
	return n->tcp_listen(t, nodelay_accept);
}

/* Our own request stands in for raft's until the connection is made; raft's
 * request (orig) gets the stream. */
struct nodelay_connect {
	struct raft_uv_connect req;
	struct raft_uv_connect *orig;
};

static void nodelay_connected(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
	struct nodelay_connect *w = req->data;
	struct raft_uv_connect *orig = w->orig;
	free(w);
	if (status == 0)
		set_nodelay(stream);
	orig->cb(orig, stream, status);
}

static int nodelay_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
			   const char *address, raft_uv_connect_cb cb)
{
	struct cluster_node *n = node_of(t);
	struct nodelay_connect *w = calloc(1, sizeof *w);
	if (!w)
		return RAFT_NOMEM;
	req->cb = cb;
	w->orig = req;
	w->req.data = w;
	int rv = n->tcp_connect(t, &w->req, id, address, nodelay_connected);
	if (rv != 0)
		free(w);
	return rv;
}

void cluster__nodelay_wrap(struct cluster_node *n)
{
	n->tcp_listen = n->transport.listen;
	n->tcp_connect = n->transport.connect;
	n->transport.listen = nodelay_listen;
	n->transport.connect = nodelay_connect;
}
