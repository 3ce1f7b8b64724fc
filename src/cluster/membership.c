/* Membership changes and leadership transfer, on the leader, one at a time. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "cluster/internal.h"

static void change_finish(struct cluster_node *n, int err)
{
	cluster_change_cb cb = n->change_cb;
	void *arg = n->change_arg;
	n->change_step = CHANGE_NONE;
	n->change_cb = NULL;
	if (cb)
		cb(arg, err);
}

static int map_raft(int rv)
{
	return rv == RAFT_NOTLEADER ? CLUSTER_ENOTLEADER : rv == RAFT_SHUTDOWN ? CLUSTER_ESHUTDOWN : CLUSTER_ERAFT;
}

/* raft_add makes a spare; raft_assign(VOTER) first catches the new node up
 * (catch-up rounds), then appends the configuration that counts its vote. */
static void change_done(struct raft_change *req, int status)
{
	struct cluster_node *n = req->data;
	if (status != 0) {
		log_warn("cluster: changing node %" PRIu64 ": %s", n->change_id, raft_strerror(status));
		change_finish(n, map_raft(status));
		return;
	}
	if (n->change_step == CHANGE_ADD) {
		n->change_step = CHANGE_ASSIGN;
		int rv = raft_assign(&n->raft, &n->change, n->change_id, RAFT_VOTER, change_done);
		if (rv != 0) {
			log_warn("cluster: making node %" PRIu64 " a voter: %s", n->change_id, raft_strerror(rv));
			change_finish(n, map_raft(rv));
		}
		return;
	}
	log_notice("cluster: node %" PRIu64 " %s", n->change_id,
		   n->change_step == CHANGE_REMOVE ? "removed" : "added as a voter");
	change_finish(n, 0);
}

static int change_begin(struct cluster_node *n, uint64_t id, cluster_change_cb cb, void *arg)
{
	if (atomic_load(&n->stopping))
		return CLUSTER_ESHUTDOWN;
	if (n->change_step != CHANGE_NONE)
		return CLUSTER_EBUSY;
	if (raft_state(&n->raft) != RAFT_LEADER)
		return CLUSTER_ENOTLEADER;
	n->change_id = id;
	n->change_cb = cb;
	n->change_arg = arg;
	return 0;
}

int cluster_add(struct cluster_node *n, uint64_t id, const char *address, cluster_change_cb cb, void *arg)
{
	char why[160];
	if (id == 0 || cluster_address_check(address, why, sizeof why))
		return -FM_EINVAL;
	int rc = change_begin(n, id, cb, arg);
	if (rc)
		return rc;
	n->change_step = CHANGE_ADD;
	int rv = raft_add(&n->raft, &n->change, id, address, change_done);
	if (rv != 0) {
		n->change_step = CHANGE_NONE;
		log_warn("cluster: adding node %" PRIu64 " at %s: %s", id, address, raft_strerror(rv));
		return rv == RAFT_DUPLICATEID || rv == RAFT_DUPLICATEADDRESS ? -FM_EEXIST : map_raft(rv);
	}
	return 0;
}

int cluster_remove(struct cluster_node *n, uint64_t id, cluster_change_cb cb, void *arg)
{
	int rc = change_begin(n, id, cb, arg);
	if (rc)
		return rc;
	n->change_step = CHANGE_REMOVE;
	int rv = raft_remove(&n->raft, &n->change, id, change_done);
	if (rv != 0) {
		n->change_step = CHANGE_NONE;
		log_warn("cluster: removing node %" PRIu64 ": %s", id, raft_strerror(rv));
		return rv == RAFT_BADID ? -FM_ENOENT : map_raft(rv);
	}
	return 0;
}

static void transfer_done(struct raft_transfer *req)
{
	struct cluster_node *n = req->data;
	raft_id lid = 0;
	const char *laddr = NULL;
	raft_leader(&n->raft, &lid, &laddr);
	bool ok = n->transfer_target ? lid == n->transfer_target : lid != 0 && lid != n->conf.node_id;
	cluster_change_cb cb = n->transfer_cb;
	n->transfer_busy = false;
	n->transfer_cb = NULL;
	if (cb)
		cb(n->transfer_arg, ok ? 0 : CLUSTER_ERAFT);
}

int cluster_transfer(struct cluster_node *n, uint64_t id, cluster_change_cb cb, void *arg)
{
	if (atomic_load(&n->stopping))
		return CLUSTER_ESHUTDOWN;
	if (n->transfer_busy)
		return CLUSTER_EBUSY;
	if (raft_state(&n->raft) != RAFT_LEADER)
		return CLUSTER_ENOTLEADER;
	n->transfer_busy = true;
	n->transfer_target = id;
	n->transfer_cb = cb;
	n->transfer_arg = arg;
	int rv = raft_transfer(&n->raft, &n->transfer, id, transfer_done);
	if (rv != 0) {
		n->transfer_busy = false;
		n->transfer_cb = NULL;
		log_warn("cluster: transferring leadership to %" PRIu64 ": %s", id, raft_strerror(rv));
		return rv == RAFT_BADID || rv == RAFT_NOTFOUND ? -FM_ENOENT : map_raft(rv);
	}
	return 0;
}

/* --- operators' requests, from any thread --- */

static void request_done(void *arg, int err)
{
	struct cluster_node *n = arg;
	static const char *const what[] = { "", "adding node", "removing node", "transferring leadership to" };
	if (err)
		log_warn("cluster: %s %" PRIu64 " failed: %s", what[n->change_kind], n->change_id_asked,
			 cluster_strerror(err));
	else if (n->change_kind == CLUSTER_CHANGE_TRANSFER)
		log_notice("cluster: leadership transferred");
	/* Done before the status says so: whoever sees it over may ask again. */
	atomic_store(&n->request_busy, false);
	pthread_mutex_lock(&n->lock);
	n->change_pending = false;
	n->change_err = err;
	pthread_mutex_unlock(&n->lock);
}

int cluster_request(struct cluster_node *n, enum cluster_change kind, uint64_t id, const char *address)
{
	char why[160];
	if (kind < CLUSTER_CHANGE_ADD || kind > CLUSTER_CHANGE_TRANSFER || (kind != CLUSTER_CHANGE_TRANSFER && id == 0) ||
	    (kind == CLUSTER_CHANGE_ADD && (!address || cluster_address_check(address, why, sizeof why))))
		return -FM_EINVAL;
	if (atomic_load(&n->stopping))
		return CLUSTER_ESHUTDOWN;
	if (!atomic_load(&n->leader))
		return CLUSTER_ENOTLEADER;
	bool idle = false;
	if (!atomic_compare_exchange_strong(&n->request_busy, &idle, true))
		return CLUSTER_EBUSY;
	pthread_mutex_lock(&n->lock);
	n->request_kind = kind;
	n->request_id = id;
	snprintf(n->request_address, sizeof n->request_address, "%s", address ? address : "");
	n->change_kind = kind;
	n->change_id_asked = id;
	n->change_pending = true;
	n->change_err = 0;
	pthread_mutex_unlock(&n->lock);
	uv_async_send(&n->wake);
	return 0;
}

void cluster__run_request(struct cluster_node *n)
{
	pthread_mutex_lock(&n->lock);
	int kind = n->request_kind;
	uint64_t id = n->request_id;
	char address[CLUSTER_ADDRESS_MAX];
	memcpy(address, n->request_address, sizeof address);
	n->request_kind = 0;
	pthread_mutex_unlock(&n->lock);
	if (!kind)
		return;
	int rc = kind == CLUSTER_CHANGE_ADD      ? cluster_add(n, id, address, request_done, n)
		 : kind == CLUSTER_CHANGE_REMOVE ? cluster_remove(n, id, request_done, n)
						 : cluster_transfer(n, id, request_done, n);
	if (rc)
		request_done(n, rc);
}

/* --- barrier --- */

static void barrier_done(struct raft_barrier *req, int status)
{
	struct cluster_node *n = req->data;
	cluster_change_cb cb = n->barrier_cb;
	n->barrier_cb = NULL;
	if (cb)
		cb(n->barrier_arg, status == 0 ? 0 : map_raft(status));
}

int cluster_barrier(struct cluster_node *n, cluster_change_cb cb, void *arg)
{
	if (atomic_load(&n->stopping))
		return CLUSTER_ESHUTDOWN;
	if (n->barrier_cb)
		return CLUSTER_EBUSY;
	n->barrier_cb = cb;
	n->barrier_arg = arg;
	n->barrier.data = n;
	int rv = raft_barrier(&n->raft, &n->barrier, barrier_done);
	if (rv != 0) {
		n->barrier_cb = NULL;
		return map_raft(rv);
	}
	return 0;
}
