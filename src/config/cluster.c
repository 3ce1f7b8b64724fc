/* The cluster options (issue 14): the cluster_listener and cluster_peer
 * lines, where each option was written, and the checks that need them all
 * (config_finish). The option table itself is in config.c. */
#include "config/internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/address.h"
#include "base/err.h"

_Static_assert(sizeof ((struct config *)0)->cluster_address == ADDRESS_MAX, "an address as base/address.h sizes it");

static int fail_at(const struct config *c, uint32_t line, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* "file:line: message", as the other options' errors after parsing. */
static int fail_at(const struct config *c, uint32_t line, char *err, size_t errlen, const char *fmt, ...)
{
	int n = snprintf(err, errlen, "%s:%u: ", c->source[0] ? c->source : "(configuration)", line);
	if (n >= 0 && (size_t)n < errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int config__parse_id(const char *text, uint64_t *id)
{
	uint64_t v = 0;
	if (*text == '\0')
		return -1;
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		unsigned d = (unsigned)(*p - '0');
		if (v > ((uint64_t)CONFIG_CLUSTER_ID_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*id = v;
	return 0;
}

/* Whether a host is 0.0.0.0 in any of the forms inet_aton reads ("0",
 * "0.0", ...): bound, it means every interface; told to another node, none. */
static bool host_unspecified(const char *host, size_t len)
{
	return len && strspn(host, "0.") >= len;
}

int config__cluster_listener(struct config *c, char *args, char *err, size_t errlen)
{
	char *save = NULL, why[160];
	char *port_text = strtok_r(args, " \t", &save), *host = strtok_r(NULL, " \t", &save);
	uint16_t port;
	if (!port_text || strtok_r(NULL, " \t", &save))
		return fm_fail(err, errlen, "cluster_listener: expected PORT [ADDRESS]");
	if (address_port_parse(port_text, &port))
		return fm_fail(err, errlen, "cluster_listener: port must be 1..65535, not '%s'", port_text);
	if (!host)
		host = "127.0.0.1";
	if (address_host_check(host, why, sizeof why))
		return fm_fail(err, errlen, "cluster_listener: %s", why);
	if (host_unspecified(host, strlen(host)))
		return fm_fail(err, errlen, "cluster_listener: ADDRESS is also told to the other nodes, and %s reaches "
			    "none of them: give this machine's address on the network they share", host);
	if (c->cluster_line.listener)
		return fm_fail(err, errlen, "cluster_listener: one per node, and line %u has it", c->cluster_line.listener);
	snprintf(c->cluster_address, sizeof c->cluster_address, "%s:%u", host, port);
	return 0;
}

int config__cluster_peer(struct config *c, char *args, char *err, size_t errlen)
{
	char *save = NULL, why[ADDRESS_MAX + 80];
	char *id_text = strtok_r(args, " \t", &save), *address = strtok_r(NULL, " \t", &save);
	char *mqtt = address ? strtok_r(NULL, " \t", &save) : NULL;
	uint64_t id;
	if (!id_text || !address || strtok_r(NULL, " \t", &save))
		return fm_fail(err, errlen, "cluster_peer: expected N HOST:PORT [MQTT_HOST:PORT] (another node's "
			    "cluster_node_id, its cluster_listener, and where its clients connect)");
	if (config__parse_id(id_text, &id) || id == 0)
		return fm_fail(err, errlen, "cluster_peer: N is a node id in 1..%" PRId64 ", not '%s'",
			    (int64_t)CONFIG_CLUSTER_ID_MAX, id_text);
	if (address_check(address, why, sizeof why))
		return fm_fail(err, errlen, "cluster_peer %" PRIu64 ": %s", id, why);
	if (host_unspecified(address, strcspn(address, ":")))
		return fm_fail(err, errlen, "cluster_peer %" PRIu64 ": %s reaches no node: give the address of its "
			    "cluster_listener", id, address);
	if (mqtt && address_check(mqtt, why, sizeof why))
		return fm_fail(err, errlen, "cluster_peer %" PRIu64 ": its MQTT address: %s", id, why);
	if (c->n_cluster_peers == CONFIG_MAX_CLUSTER_PEERS)
		return fm_fail(err, errlen, "cluster_peer: at most %d other nodes (a cluster has at most %d)",
			    CONFIG_MAX_CLUSTER_PEERS, CONFIG_MAX_CLUSTER_PEERS + 1);
	for (unsigned i = 0; i < c->n_cluster_peers; i++) {
		const struct config_cluster_peer *p = &c->cluster_peers[i];
		if (p->id == id)
			return fm_fail(err, errlen, "cluster_peer %" PRIu64 ": listed twice (first on line %u)", id,
				    c->cluster_line.peers[i]);
		if (!strcasecmp(p->address, address))
			return fm_fail(err, errlen, "cluster_peer %" PRIu64 ": %s is the address of node %" PRIu64
				    " too (line %u)", id, address, p->id, c->cluster_line.peers[i]);
	}
	struct config_cluster_peer *p = &c->cluster_peers[c->n_cluster_peers++];
	p->id = id;
	snprintf(p->address, sizeof p->address, "%s", address);
	snprintf(p->mqtt_address, sizeof p->mqtt_address, "%s", mqtt ? mqtt : "");
	return 0;
}

void config__cluster_line(struct config *c, const char *name, uint32_t line)
{
	if (!strcmp(name, "cluster_node_id"))
		c->cluster_line.node_id = line;
	else if (!strcmp(name, "cluster_listener"))
		c->cluster_line.listener = line;
	else if (!strcmp(name, "cluster_role"))
		c->cluster_line.role = line;
	else if (!strcmp(name, "cluster_election_timeout"))
		c->cluster_line.election_timeout = line;
	else if (!strcmp(name, "cluster_heartbeat"))
		c->cluster_line.heartbeat = line;
	else if (!strcmp(name, "cluster_join"))
		c->cluster_line.join = line;
	else if (!strcmp(name, "cluster_peer") && c->n_cluster_peers)
		c->cluster_line.peers[c->n_cluster_peers - 1] = line;
}

/* Without cluster_node_id: the first cluster option in the file, which
 * would do nothing. */
static int finish_no_cluster(const struct config *c, char *err, size_t errlen)
{
	const struct { const char *name; uint32_t line; } set[] = {
		{ "cluster_listener", c->cluster_line.listener },
		{ "cluster_peer", c->n_cluster_peers ? c->cluster_line.peers[0] : 0 },
		{ "cluster_role", c->cluster_line.role },
		{ "cluster_election_timeout", c->cluster_line.election_timeout },
		{ "cluster_heartbeat", c->cluster_line.heartbeat },
		{ "cluster_join", c->cluster_line.join },
	};
	size_t first = sizeof set / sizeof set[0];
	for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
		if (set[i].line && (first == sizeof set / sizeof set[0] || set[i].line < set[first].line))
			first = i;
	if (first == sizeof set / sizeof set[0])
		return 0;
	return fail_at(c, set[first].line, err, errlen, "%s needs cluster_node_id (1 or more; without it, or with "
		       "0, this broker runs on its own)", set[first].name);
}

/* Whether a listener on listen_host and one on host would share a port:
 * the same host, or either on every address. */
static bool hosts_overlap(const char *listen_host, const char *host)
{
	return !strcasecmp(listen_host, host) || !strcmp(listen_host, "0.0.0.0") || !strcmp(listen_host, "::") ||
	       host_unspecified(listen_host, strlen(listen_host));
}

/* A witness runs no MQTT side: what would configure one is refused. Its
 * http_listener serves the cluster's part of the HTTP API. */
static int finish_witness(const struct config *c, char *err, size_t errlen)
{
	uint32_t role = c->cluster_line.role;
	if (c->seen_listener)
		return fail_at(c, c->listeners[0].line, err, errlen, "listener: a witness (cluster_role witness, line "
			       "%u) has no MQTT listeners", role);
	if (c->n_bridges)
		return fail_at(c, c->bridges[0].line, err, errlen, "connection %s: a witness (cluster_role witness, "
			       "line %u) runs no bridges", c->bridges[0].name, role);
	if (c->n_devices)
		return fail_at(c, c->devices[0].line, err, errlen, "modbus_device %s: a witness (cluster_role "
			       "witness, line %u) polls no devices", c->devices[0].name, role);
	return 0;
}

/* cluster_listener must not take the port of an MQTT listener (a broker's)
 * or of the HTTP listener. */
static int finish_ports(const struct config *c, char *err, size_t errlen)
{
	char host[ADDRESS_HOST_MAX + 1];
	uint16_t port;
	if (address_split(c->cluster_address, host, sizeof host, &port, NULL, 0))
		return fail_at(c, c->cluster_line.listener, err, errlen, "cluster_listener: '%s' is not ADDRESS:PORT",
			       c->cluster_address);
	for (unsigned i = 0; !c->cluster_witness && i < c->n_listeners; i++) {
		const struct listener_conf *l = &c->listeners[i];
		if (l->port != port || !hosts_overlap(l->address, host))
			continue;
		if (l->line)
			return fail_at(c, c->cluster_line.listener, err, errlen, "cluster_listener %s: the port of the "
				       "MQTT listener on line %u", c->cluster_address, l->line);
		return fail_at(c, c->cluster_line.listener, err, errlen, "cluster_listener %s: the port of the "
			       "default MQTT listener (%u %s)", c->cluster_address, l->port, l->address);
	}
	if (c->http_port == port && hosts_overlap(c->http_address, host))
		return fail_at(c, c->cluster_line.listener, err, errlen, "cluster_listener %s: the port of the "
			       "http_listener on line %u", c->cluster_address, c->http_line);
	return 0;
}

int config__cluster_finish(const struct config *c, char *err, size_t errlen)
{
	if (!c->cluster_node_id)
		return finish_no_cluster(c, err, errlen);
	uint64_t id = c->cluster_node_id;
	uint32_t id_line = c->cluster_line.node_id ? c->cluster_line.node_id : 1;
	if (!c->cluster_address[0])
		return fail_at(c, id_line, err, errlen, "cluster_node_id %" PRIu64 " needs cluster_listener PORT "
			       "[ADDRESS]: where the other nodes reach this one", id);
	if (!c->persistence)
		return fail_at(c, id_line, err, errlen, c->cluster_witness
			       ? "cluster_node_id: a witness keeps the raft log in persistence_location/raft: not with "
				 "persistence false"
			       : "cluster_node_id: a cluster broker's state is the replicated log and the store in "
				 "persistence_location: not with persistence false");
	if (c->cluster_join && c->n_cluster_peers)
		return fail_at(c, c->cluster_line.peers[0], err, errlen, "cluster_peer: with cluster_join true (line "
			       "%u) the node learns the cluster from the leader that adds it (ferromq-ctl cluster "
			       "add): no cluster_peer lines", c->cluster_line.join);
	if (!c->cluster_join && !c->n_cluster_peers)
		return fail_at(c, id_line, err, errlen, "cluster_node_id %" PRIu64 " needs a cluster_peer line for "
			       "each other node, or cluster_join true to wait to be added by the leader (a single "
			       "broker needs no cluster options)", id);
	for (unsigned i = 0; i < c->n_cluster_peers; i++) {
		const struct config_cluster_peer *p = &c->cluster_peers[i];
		if (p->id == id)
			return fail_at(c, c->cluster_line.peers[i], err, errlen, "cluster_peer %" PRIu64 ": this "
				       "node's own cluster_node_id (line %u): list the other nodes only", id, id_line);
		if (!strcasecmp(p->address, c->cluster_address))
			return fail_at(c, c->cluster_line.peers[i], err, errlen, "cluster_peer %" PRIu64 ": %s is "
				       "this node's own cluster_listener (line %u)", p->id, p->address,
				       c->cluster_line.listener);
	}
	if ((uint64_t)c->cluster_heartbeat_ms * 3 > c->cluster_election_timeout_ms)
		return fail_at(c, c->cluster_line.heartbeat ? c->cluster_line.heartbeat
			       : c->cluster_line.election_timeout ? c->cluster_line.election_timeout : id_line,
			       err, errlen, "cluster_heartbeat %u ms is more than a third of cluster_election_timeout "
			       "%u ms: a follower must be able to miss two heartbeats in a row without starting an "
			       "election", c->cluster_heartbeat_ms, c->cluster_election_timeout_ms);
	if (c->cluster_witness && finish_witness(c, err, errlen))
		return -1;
	return finish_ports(c, err, errlen);
}
