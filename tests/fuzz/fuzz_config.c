/* libFuzzer target for src/config's line parser. The input, NUL-terminated,
 * is applied as one line to a default config; then each of its '\n'-separated
 * lines is applied in turn to another, as config_load would, followed by
 * config_finish. Nothing may crash, a failure must leave a message, and the
 * values must stay within the option table's bounds (cluster addresses as
 * base/address.c accepts them, peers unique); a finished cluster node keeps
 * config_finish's promises. Aborts otherwise.
 */
#include "config/config.h"
#include "base/address.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHECK(x) do { if (!(x)) abort(); } while (0)

/* Invariants of a config every accepted line must keep. */
static void check_config(const struct config *c)
{
	CHECK(c->n_listeners >= 1 && c->n_listeners <= CONFIG_MAX_LISTENERS);
	for (unsigned i = 0; i < c->n_listeners; i++) {
		CHECK(c->listeners[i].port >= 1);
		CHECK(memchr(c->listeners[i].address, 0, sizeof c->listeners[i].address));
	}
	CHECK(c->workers <= 256);
	CHECK(c->max_keepalive <= 65535);
	CHECK(c->max_packet_size <= 268435460);
	CHECK(c->queue_overflow <= QUEUE_REJECT_NEW);
	CHECK(c->durability <= DURABILITY_NORMAL);
	CHECK(c->max_inflight_messages <= 65535);
	CHECK(c->receive_maximum >= 1 && c->receive_maximum <= 65535);
	CHECK(c->max_topic_alias <= 65535);
	CHECK(c->connect_timeout >= 1 && c->connect_timeout <= 3600);
	CHECK(c->max_output_buffer >= 4096);
	CHECK(c->persistence_location[0] && memchr(c->persistence_location, 0, sizeof c->persistence_location));
	CHECK(memchr(c->log_file, 0, sizeof c->log_file));
	CHECK(c->log_mask <= 0x1F);
	CHECK(c->n_bridges <= CONFIG_MAX_BRIDGES);
	for (unsigned i = 0; i < c->n_bridges; i++) {
		const struct bridge_conf *b = &c->bridges[i];
		CHECK(b->name[0] && memchr(b->name, 0, sizeof b->name));
		CHECK(b->n_addresses <= CONFIG_MAX_BRIDGE_ADDRESSES && b->n_topics <= CONFIG_MAX_BRIDGE_TOPICS);
		for (unsigned k = 0; k < b->n_addresses; k++)
			CHECK(b->addresses[k].port >= 1 && b->addresses[k].host[0]);
		for (unsigned k = 0; k < b->n_topics; k++) {
			const struct bridge_topic *t = &b->topics[k];
			CHECK(t->pattern[0] && t->direction >= BRIDGE_OUT && t->direction <= BRIDGE_BOTH && t->qos <= 2);
			CHECK(!t->has_deadband || t->deadband >= 0);
		}
		CHECK(b->restart_timeout.min >= 1 && b->restart_timeout.min <= b->restart_timeout.max);
		CHECK(b->protocol_version <= BRIDGE_MQTTV50 && b->spool_overflow <= QUEUE_REJECT_NEW);
	}
	CHECK(c->cluster_node_id <= CONFIG_CLUSTER_ID_MAX);
	CHECK(!c->cluster_address[0] || address_check(c->cluster_address, NULL, 0) == 0);
	CHECK(c->n_cluster_peers <= CONFIG_MAX_CLUSTER_PEERS);
	for (unsigned i = 0; i < c->n_cluster_peers; i++) {
		const struct config_cluster_peer *p = &c->cluster_peers[i];
		CHECK(p->id >= 1 && p->id <= CONFIG_CLUSTER_ID_MAX && address_check(p->address, NULL, 0) == 0);
		for (unsigned k = 0; k < i; k++)
			CHECK(c->cluster_peers[k].id != p->id && strcasecmp(c->cluster_peers[k].address, p->address));
	}
	CHECK(c->cluster_election_timeout_ms >= 100 && c->cluster_election_timeout_ms <= 60000);
	CHECK(c->cluster_heartbeat_ms >= 10 && c->cluster_heartbeat_ms <= 20000);
}

/* What config_finish promises of a cluster node it accepts. */
static void check_cluster(const struct config *c)
{
	if (!c->cluster_node_id)
		return;
	CHECK(c->cluster_address[0] && c->persistence);
	CHECK(c->cluster_join ? c->n_cluster_peers == 0 : c->n_cluster_peers >= 1);
	CHECK(c->cluster_heartbeat_ms * 3 <= c->cluster_election_timeout_ms);
	for (unsigned i = 0; i < c->n_cluster_peers; i++)
		CHECK(c->cluster_peers[i].id != c->cluster_node_id &&
		      strcasecmp(c->cluster_peers[i].address, c->cluster_address));
	CHECK(!c->cluster_witness || (!c->seen_listener && !c->n_bridges && !c->n_devices));
}

/* Applies one line; a failure must say why in a terminated message. */
static int apply(struct config *c, const char *line)
{
	char err[256];
	memset(err, 0, sizeof err);
	int rc = config_apply_line(c, line, err, sizeof err);
	CHECK(rc == 0 || rc == -1);
	if (rc)
		CHECK(err[0] && memchr(err, 0, sizeof err));
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	CHECK(text);
	memcpy(text, data, size);
	text[size] = 0;

	struct config c;
	config_defaults(&c);
	if (apply(&c, text) == 0)
		check_config(&c);

	/* line by line, stopping at the first error as config_load does */
	config_defaults(&c);
	char *save = NULL;
	bool ok = true;
	for (char *line = strtok_r(text, "\n", &save); line && ok; line = strtok_r(NULL, "\n", &save)) {
		ok = apply(&c, line) == 0;
		if (ok)
			check_config(&c);
	}
	if (ok) {
		char err[256] = "";
		int rc = config_finish(&c, err, sizeof err);
		CHECK(rc == 0 || (rc == -1 && err[0]));
		if (rc == 0) {
			CHECK(c.max_inflight_messages >= 1);
			check_cluster(&c);
		}
	}
	free(text);
	return 0;
}
