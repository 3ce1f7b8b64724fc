/* cluster_continue_alone: a new configuration of one voter, appended to the
 * log of a stopped node (libraft's raft_recover). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/err.h"
#include "base/log.h"
#include "cluster/internal.h"

static void closed(struct raft *r)
{
	(void)r;
}

int cluster_continue_alone(const struct cluster_conf *conf, char *err, size_t errlen)
{
	struct stat sb;
	if (!conf->data_dir || stat(conf->data_dir, &sb) != 0) {
		snprintf(err, errlen, "cluster: %s holds no raft log: nothing to continue", conf->data_dir ? conf->data_dir : "(none)");
		return -FM_ENOENT;
	}
	uv_loop_t loop;
	struct raft_uv_transport transport = { .version = 1 };
	struct raft_io io;
	struct raft_fsm fsm = { .version = 2 };
	struct raft raft;
	int rc = 0;
	if (uv_loop_init(&loop))
		return -FM_EIO;
	int rv = raft_uv_tcp_init(&transport, &loop);
	if (rv == 0 && (rv = raft_uv_init(&io, &loop, conf->data_dir, &transport)) != 0) {
		snprintf(err, errlen, "cluster: %s: %s", conf->data_dir, io.errmsg);
		raft_uv_tcp_close(&transport);
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		return CLUSTER_ERAFT;
	}
	if (rv == 0 && (rv = raft_init(&raft, &io, &fsm, conf->node_id, conf->address)) == 0) {
		struct raft_configuration c;
		raft_configuration_init(&c);
		rv = raft_configuration_add(&c, conf->node_id, conf->address, RAFT_VOTER);
		if (rv == 0 && (rv = raft_recover(&raft, &c)) != 0)
			snprintf(err, errlen, "cluster: continuing alone: %s (%s)", raft_strerror(rv), raft_errmsg(&raft));
		raft_configuration_close(&c);
		raft_close(&raft, closed);
	} else if (rv != 0) {
		snprintf(err, errlen, "cluster: continuing alone: %s", raft_strerror(rv));
	}
	if (rv != 0)
		rc = CLUSTER_ERAFT;
	uv_run(&loop, UV_RUN_DEFAULT);
	raft_uv_close(&io);
	raft_uv_tcp_close(&transport);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	if (!rc)
		log_warn("cluster: node %" PRIu64 " is now a cluster of itself alone (operator's decision); start it, "
			 "then add the other nodes back with ferromq-ctl cluster add", conf->node_id);
	return rc;
}
