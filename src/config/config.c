/* The option table and its parser. Every option is declared once here: name,
 * type, bounds, default and help. Names follow mosquitto.conf where the
 * meaning is the same. */
#include "config.h"
#include "config/internal.h"
#include "../base/log.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum opt_type {
	OPT_BOOL, OPT_U32, OPT_SIZE, OPT_ENUM, OPT_PATH, OPT_LISTENER, OPT_LOG_DEST, OPT_LOG_TYPE,
	OPT_FILE,   /* struct conf_file: a path and the line that set it */
	OPT_STRING, /* char[256] */
	OPT_LIMIT,  /* uint32_t; -1 and 0 both mean unlimited */
	OPT_RATE,   /* struct rate_conf: N [BYTES] */
	OPT_HTTP_LISTENER,
	OPT_CONNECTION,    /* starts a bridge section */
	OPT_ADDRESS,       /* HOST[:PORT] ..., a bridge's failover list */
	OPT_BRIDGE_TOPIC,  /* PATTERN [DIR [QOS [LOCAL_PREFIX [REMOTE_PREFIX]]]] */
	OPT_RESTART,       /* MIN [MAX] seconds */
	OPT_NUMBER,        /* double */
	OPT_DEVICE,        /* starts a Modbus device section */
	OPT_DEVICE_ADDRESS, /* HOST[:PORT] of a Modbus device */
	OPT_TAG,           /* NAME AREA ADDRESS TYPE [ORDER] */
	OPT_DOUBLE,        /* double; min 1: not negative */
	OPT_FLAGS,         /* uint32_t: a comma-separated list of choices, bit i for choices[i] */
	OPT_SPARKPLUG_ID,  /* char[max]: one Sparkplug topic level (a group or edge node id) */
	OPT_ID,            /* uint64_t: a node id, min..max (no size suffix) */
	OPT_ENUM_BOOL,     /* bool: one of two choices, the second true */
	OPT_CLUSTER_LISTENER, /* PORT [ADDRESS] into cluster_address (cluster.c) */
	OPT_CLUSTER_PEER,  /* N HOST:PORT, repeatable (cluster.c) */
};

/* Where an option's value goes: the configuration, the listener above it,
 * the bridge (`connection`) above it, or that bridge's last `topic` line,
 * the Modbus device (`modbus_device`) above it, or that device's last tag. */
enum opt_scope { SCOPE_GLOBAL, SCOPE_LISTENER, SCOPE_BRIDGE, SCOPE_BRIDGE_TOPIC, SCOPE_DEVICE, SCOPE_DEVICE_TAG };

struct option {
	const char *name;
	enum opt_type type;
	size_t offset;
	uint64_t min, max;
	const char *def;        /* default, parsed like a config value; NULL: none */
	const char *const *choices; /* OPT_ENUM: names, index = value */
	const char *args;
	const char *help;
	uint8_t scope; /* enum opt_scope: offset is into that struct */
};

#define OFF(f) offsetof(struct config, f)
#define LOFF(f) offsetof(struct listener_conf, f)
/* A per-listener option: applies to the listener declared above it. */
#define LOPT(name, type, field, min, max, def, choices, args, help) \
	{ name, type, LOFF(field), min, max, def, choices, args, help, SCOPE_LISTENER }
#define BOFF(f) offsetof(struct bridge_conf, f)
#define TOFF(f) offsetof(struct bridge_topic, f)
/* A bridge option: applies to the `connection` section it is in. */
#define BOPT(name, type, field, min, max, def, choices, args, help) \
	{ name, type, BOFF(field), min, max, def, choices, args, help, SCOPE_BRIDGE }
/* A data reduction option: applies to the bridge `topic` line above it. */
#define TOPT(name, type, field, min, max, def, choices, args, help) \
	{ name, type, TOFF(field), min, max, def, choices, args, help, SCOPE_BRIDGE_TOPIC }
#define DOFF(f) offsetof(struct modbus_device_conf, f)
#define GOFF(f) offsetof(struct modbus_tag_conf, f)
/* A Modbus device option: applies to the `modbus_device` section it is in. */
#define DOPT(name, type, field, min, max, def, choices, args, help) \
	{ name, type, DOFF(field), min, max, def, choices, args, help, SCOPE_DEVICE }
/* A tag option: applies to the `modbus_tag` line above it. */
#define GOPT(name, type, field, min, max, def, choices, args, help) \
	{ name, type, GOFF(field), min, max, def, choices, args, help, SCOPE_DEVICE_TAG }
static const char *const overflow_names[] = { "drop_oldest", "reject_new", NULL };
static const char *const durability_names[] = { "full", "normal", NULL };
static const char *const protocol_names[] = { "mqtt", "websockets", NULL };
static const char *const tls_version_names[] = { "tlsv1.2", "tlsv1.3", NULL };
static const char *const identity_names[] = { "cn", "san_dns", "san_uri", "san_email", NULL };
static const char *const log_format_names[] = { "text", "json", NULL };
static const char *const bridge_protocol_names[] = { "mqttv311", "mqttv50", NULL };
static const char *const agg_stat_names[] = { "count", "min", "max", "mean", "first", "last", "start", "end", NULL };
static const char *const agg_empty_names[] = { "skip", "count", NULL };
static const char *const agg_non_numeric_names[] = { "pass", "drop", NULL };
static const char *const modbus_format_names[] = { "json", "sparkplug", NULL };
static const char *const cluster_role_names[] = { "broker", "witness", NULL };

static const struct option options[] = {
	{ "listener", OPT_LISTENER, 0, 1, 65535, NULL, NULL, "PORT [ADDRESS]",
	  "Listen for MQTT on PORT (TCP), on ADDRESS or 127.0.0.1. Repeatable; the per-listener options "
	  "below apply to the listener line above them. Default: 1883 127.0.0.1.", false },
	LOPT("protocol", OPT_ENUM, protocol, 0, 1, "mqtt", protocol_names, "mqtt|websockets",
	     "Per listener: MQTT directly over TCP/TLS, or MQTT over WebSocket (subprotocol mqtt or mqttv3.1)."),
	LOPT("certfile", OPT_FILE, certfile, 0, 0, NULL, NULL, "PATH",
	     "Per listener: PEM certificate (chain) of the server; setting it turns TLS on (needs keyfile)."),
	LOPT("keyfile", OPT_FILE, keyfile, 0, 0, NULL, NULL, "PATH",
	     "Per listener: PEM private key of certfile."),
	LOPT("cafile", OPT_FILE, cafile, 0, 0, NULL, NULL, "PATH",
	     "Per listener: PEM CA certificates trusted for client certificates."),
	LOPT("capath", OPT_FILE, capath, 0, 0, NULL, NULL, "DIR",
	     "Per listener: directory of hashed CA certificates (c_rehash) trusted for client certificates."),
	LOPT("crlfile", OPT_FILE, crlfile, 0, 0, NULL, NULL, "PATH",
	     "Per listener: PEM certificate revocation list; revoked client certificates are refused."),
	LOPT("ciphers", OPT_STRING, ciphers, 0, 0, NULL, NULL, "LIST",
	     "Per listener: OpenSSL cipher list for TLS 1.2. Default: OpenSSL's."),
	LOPT("ciphers_tls1.3", OPT_STRING, ciphers_tls13, 0, 0, NULL, NULL, "LIST",
	     "Per listener: OpenSSL cipher suites for TLS 1.3. Default: OpenSSL's."),
	LOPT("tls_version", OPT_ENUM, tls_version, 0, 1, "tlsv1.2", tls_version_names, "tlsv1.2|tlsv1.3",
	     "Per listener: the lowest TLS version accepted."),
	LOPT("require_certificate", OPT_BOOL, require_certificate, 0, 1, "false", NULL, "true|false",
	     "Per listener: refuse clients without a valid certificate (needs cafile or capath)."),
	LOPT("use_identity_as_username", OPT_BOOL, use_identity_as_username, 0, 1, "false", NULL, "true|false",
	     "Per listener: the client certificate's identity (identity_source) is the username; "
	     "clients without a certificate are refused."),
	LOPT("identity_source", OPT_ENUM, identity_source, 0, 3, "cn", identity_names, "cn|san_dns|san_uri|san_email",
	     "Per listener: where the identity comes from: the subject's CN, or the first SAN of that type."),
	LOPT("max_connections", OPT_LIMIT, max_connections, 0, UINT32_MAX, "-1", NULL, "N",
	     "Per listener: connections open at once; more are closed at once. -1 or 0 = no limit of its own; "
	     "all listeners together stay below the open file limit (logged at start)."),
	LOPT("client_id_pattern", OPT_STRING, client_id_pattern, 0, 0, NULL, NULL, "PATTERN",
	     "Per listener: the client id must match PATTERN, where %u is the username (the certificate "
	     "identity with use_identity_as_username) and a final * any characters: %u, %u-*, plant1/%u. "
	     "With * the username must not contain the character after %u. Others (anonymous clients "
	     "too) get CONNACK 0x85 (v3: 2). Default: any id."),
	{ "allow_anonymous", OPT_BOOL, OFF(allow_anonymous), 0, 1, "true", NULL, "true|false",
	  "Accept clients that send no username.", false },
	{ "password_file", OPT_PATH, OFF(password_file), 0, 0, NULL, NULL, "PATH",
	  "Mosquitto-format password file (made with ferromq-passwd or mosquitto_passwd); a client with a "
	  "username must give its password. Reloaded on SIGHUP.", false },
	{ "acl_file", OPT_PATH, OFF(acl_file), 0, 0, NULL, NULL, "PATH",
	  "Mosquitto-format ACL file (user, topic, pattern with %c and %u); with it, what no rule allows is "
	  "denied. Reloaded on SIGHUP (new connections get the new rules).", false },
	{ "workers", OPT_U32, OFF(workers), 0, 256, "0", NULL, "N",
	  "Network worker threads; 0 means one per CPU core.", false },
	{ "max_keepalive", OPT_U32, OFF(max_keepalive), 0, 65535, "65535", NULL, "SECONDS",
	  "Largest keep-alive a client may use; larger requests (and 0) are capped and v5 clients told via Server Keep Alive.", false },
	{ "max_packet_size", OPT_SIZE, OFF(max_packet_size), 0, 268435460, "0", NULL, "BYTES",
	  "Largest packet accepted from a client (checked before the body is read); 0 = the protocol's limit.", false },
	{ "max_connect_packet_size", OPT_SIZE, OFF(max_connect_packet_size), 128, 268435460, "64k", NULL, "BYTES",
	  "Largest packet accepted before a connection's CONNECT is accepted (the CONNECT itself, will "
	  "included): a larger one closes the connection before its body is read, so a peer that has not "
	  "logged in cannot make the broker hold more. Applies with max_packet_size, whichever is smaller.", false },
	{ "max_queued_messages", OPT_U32, OFF(max_queued_messages), 0, UINT32_MAX, "1000000", NULL, "N",
	  "Messages queued per session beyond the in-flight window (an hour at 100 msg/s is 360,000; an "
	  "offline session keeps ~60 bytes of memory per message, the body is on disk); 0 = no limit.", false },
	{ "max_queued_bytes", OPT_SIZE, OFF(max_queued_bytes), 0, UINT64_MAX, "1G", NULL, "BYTES",
	  "Payload bytes queued per session; 0 = no limit. Accepts k, M, G suffixes.", false },
	{ "max_queued_bytes_total", OPT_SIZE, OFF(max_queued_bytes_total), 0, UINT64_MAX, "0", NULL, "BYTES",
	  "Budget of every session's queue together: past it, queues holding more than an equal share of it "
	  "are full (queue_overflow applies) until they drain, so one forgotten session cannot fill the disk. "
	  "0 = half of the free space of persistence_location plus what the queues hold (memory only: a "
	  "quarter of the machine's memory), measured every second.", false },
	{ "queue_overflow", OPT_ENUM, OFF(queue_overflow), 0, 1, "drop_oldest", overflow_names,
	  "drop_oldest|reject_new",
	  "What a full session queue does: drop its oldest message, or refuse the new one (v5 QoS 1/2 publishers get 0x97).", false },
	{ "max_inflight_messages", OPT_U32, OFF(max_inflight_messages), 0, 65535, "1000", NULL, "N",
	  "Most unacknowledged outgoing QoS 1/2 messages per client (also capped by the client's Receive "
	  "Maximum); 0 = 65535. The window adapts below it: it starts at 32, widens with each acknowledgement "
	  "while messages wait, and halves when output piles up unread (max_output_buffer).", false },
	{ "receive_maximum", OPT_U32, OFF(receive_maximum), 1, 65535, "65535", NULL, "N",
	  "Unacknowledged incoming QoS 1/2 publishes allowed per client (v5 Receive Maximum).", false },
	{ "max_topic_alias", OPT_U32, OFF(max_topic_alias), 0, 65535, "10", NULL, "N",
	  "Topic aliases a v5 client may use towards the broker.", false },
	{ "message_expiry_default", OPT_U32, OFF(message_expiry_default), 0, UINT32_MAX, "0", NULL, "SECONDS",
	  "Expiry for messages that carry none (v3 messages included); 0 = never.", false },
	{ "persistent_client_expiration", OPT_U32, OFF(persistent_client_expiration), 0, UINT32_MAX, "0", NULL,
	  "SECONDS", "Expiry of offline v3 persistent sessions; 0 = never.", false },
	{ "will_on_shutdown", OPT_BOOL, OFF(will_on_shutdown), 0, 1, "false", NULL, "true|false",
	  "Publish the wills of connected clients when the broker shuts down cleanly.", false },
	{ "connect_timeout", OPT_U32, OFF(connect_timeout), 1, 3600, "10", NULL, "SECONDS",
	  "Close a connection that has not sent CONNECT (nor finished its TLS or WebSocket handshake) within this time.", false },
	{ "retain_available", OPT_BOOL, OFF(retain_available), 0, 1, "true", NULL, "true|false",
	  "Accept retained messages.", false },
	{ "sparkplug_aware", OPT_BOOL, OFF(sparkplug_aware), 0, 1, "false", NULL, "true|false",
	  "Sparkplug B aware broker: the latest NBIRTH and DBIRTH of every edge node and device are kept, "
	  "retained and in the store, on $sparkplug/certificates/NAMESPACE/GROUP/NBIRTH/EDGE and "
	  ".../DBIRTH/EDGE/DEVICE (a subscriber gets one only when the ACL lets it read the birth's own "
	  "topic); clients may not publish under $sparkplug/ (v5: 0x87).", false },
	{ "sparkplug_namespace", OPT_STRING, OFF(sparkplug_namespace), 0, 64, "spBv1.0", NULL, "NAMESPACE",
	  "First topic level of Sparkplug messages (spBv1.0 in Sparkplug 3.0): one level, no wildcards, not "
	  "starting with $.", false },
	{ "sparkplug_ndeath_timestamp", OPT_BOOL, OFF(sparkplug_ndeath_timestamp), 0, 1, "false", NULL,
	  "true|false",
	  "With sparkplug_aware: an NDEATH's payload timestamp is replaced by the time the broker routes it "
	  "to subscribers (Sparkplug 3.0 allows this; the edge node's will was written long before).", false },
	{ "sparkplug_fleet_max", OPT_U32, OFF(sparkplug_fleet_max), 1, 10000000, SPARKPLUG_FLEET_MAX_TEXT, NULL, "N",
	  "With sparkplug_aware: edge nodes, devices and host applications the fleet view tracks (a few "
	  "hundred bytes each); messages of more are routed but not tracked, counted, and logged once a minute.", false },
	{ "max_output_buffer", OPT_SIZE, OFF(max_output_buffer), 4096, UINT64_MAX, "4M", NULL, "BYTES",
	  "Bytes waiting to be written to one client before its deliveries pause (they stay queued).", false },
	{ "output_stall_timeout", OPT_U32, OFF(output_stall_timeout), 0, 86400, "60", NULL, "SECONDS",
	  "Disconnect a client whose pending output stays above max_output_buffer this long (it does not "
	  "read); one whose output exceeds 4 x max_output_buffer is disconnected at once. 0 = only the latter.", false },
	{ "max_topic_length", OPT_U32, OFF(max_topic_length), 1, 65535, "65535", NULL, "BYTES",
	  "Longest topic name (PUBLISH: v5 DISCONNECT 0x90, v3 close) or filter (SUBSCRIBE: SUBACK 0x8F, v3 0x80).", false },
	{ "max_topic_levels", OPT_U32, OFF(max_topic_levels), 1, 65535, "128", NULL, "N",
	  "Most '/'-separated levels in a topic name or filter; refused like max_topic_length.", false },
	{ "max_subscriptions_per_client", OPT_U32, OFF(max_subscriptions_per_client), 0, UINT32_MAX, "10000", NULL, "N",
	  "Subscriptions one session may hold; each filter beyond gets SUBACK 0x97 (v3 0x80); replacing one "
	  "is always allowed, a restored session keeps what it had. 0 = unlimited.", false },
	{ "max_publish_rate", OPT_RATE, OFF(max_publish_rate), 0, UINT32_MAX, "0", NULL, "MSGS_PER_S [BYTES_PER_S]",
	  "PUBLISH packets (and bytes, k/M/G suffixes) per second accepted from one connection; a faster client "
	  "is not read from until it is back under the rate. 0 = unlimited.", false },
	{ "publish_rate_timeout", OPT_U32, OFF(publish_rate_timeout), 0, 86400, "10", NULL, "SECONDS",
	  "A client held back by max_publish_rate without a pause this long is disconnected (v5: 0x96). 0 = never.", false },
	{ "tcp_keepalive", OPT_U32, OFF(tcp_keepalive), 0, 86400, "60", NULL, "SECONDS",
	  "TCP keep-alive probes after this much idle time on every client connection, against half-open "
	  "connections. 0 = off.", false },
	{ "tcp_user_timeout", OPT_U32, OFF(tcp_user_timeout), 0, INT32_MAX, "0", NULL, "MS",
	  "TCP_USER_TIMEOUT of client connections: data left unacknowledged this long closes the connection. "
	  "0 = the kernel's default.", false },
	{ "persistence", OPT_BOOL, OFF(persistence), 0, 1, "true", NULL, "true|false",
	  "Keep sessions, queues and retained messages in persistence_location.", false },
	{ "durability", OPT_ENUM, OFF(durability), 0, 1, "full", durability_names, "full|normal",
	  "full: every group commit is fdatasync'ed before its acknowledgements (survives power loss); "
	  "normal: written to the WAL without fsync (survives a crash of the broker, not of the machine).", false },
	{ "persistence_location", OPT_PATH, OFF(persistence_location), 0, 0, "./data", NULL, "DIR",
	  "Directory of the durable store; locked (DIR/ferromq.lock) while the broker runs, so a second "
	  "ferromq on it refuses to start.", false },
	{ "log_dest", OPT_LOG_DEST, 0, 0, 0, NULL, NULL, "stderr|syslog|file PATH|none",
	  "Where logs go. Repeatable. Default: stderr.", false },
	{ "log_type", OPT_LOG_TYPE, 0, 0, 0, NULL, NULL, "error|warning|notice|information|debug|all|none",
	  "Which levels are logged. Repeatable. Default: error, warning, notice, information.", false },
	{ "log_format", OPT_ENUM, OFF(log_format), 0, 1, "text", log_format_names, "text|json",
	  "text: one line 'TIME LEVEL: message'; json: one object per line with time, level, msg and, on "
	  "connect and disconnect lines, client_id, address, identity, username, protocol, reason_code.", false },
	{ "sys_interval", OPT_U32, OFF(sys_interval), 0, 86400, "10", NULL, "SECONDS",
	  "Seconds between updates of the retained $SYS/broker/... topics (a value is published again only "
	  "when it changed). 0 = off (alerts are still published when they change).", false },
	{ "http_listener", OPT_HTTP_LISTENER, 0, 1, 65535, NULL, NULL, "PORT [ADDRESS]",
	  "Serve the HTTP API, Prometheus /metrics, /healthz, /readyz and the dashboard on PORT, on ADDRESS "
	  "or 127.0.0.1 (on a cluster witness: /healthz, /readyz, /metrics and /api/cluster). Needs "
	  "http_token_file or password_file. Default: off.", false },
	{ "http_token_file", OPT_FILE, OFF(http_token_file), 0, 0, NULL, NULL, "PATH",
	  "Bearer token of the HTTP API (first line); the token may read and change everything. Created "
	  "with a random token, mode 0600, when missing. Reloaded on SIGHUP.", false },
	{ "http_admin_users", OPT_STRING, OFF(http_admin_users), 0, 0, NULL, NULL, "USER...",
	  "Users of password_file who may use the whole HTTP API with Basic: read, kick, delete sessions, "
	  "reload. Other users of password_file (device logins) get 403. Reloaded on SIGHUP. Default: none.", false },
	{ "http_readonly_users", OPT_STRING, OFF(http_readonly_users), 0, 0, NULL, NULL, "USER...",
	  "Users of password_file who may read the HTTP API (GET and HEAD: status, lists, metrics, the "
	  "dashboard) but change nothing (403). Reloaded on SIGHUP. Default: none.", false },
	{ "memory_limit", OPT_SIZE, OFF(memory_limit), 0, UINT64_MAX, "0", NULL, "BYTES",
	  "Heap size the memory alert measures against (k, M, G suffixes). 0 = the memory alert is off.", false },
	{ "alert_clients_drop_percent", OPT_U32, OFF(alert_clients_drop_percent), 1, 100, "10", NULL, "PERCENT",
	  "Alert clients_drop fires when connected clients fall more than this below their median over the "
	  "window.", false },
	{ "alert_clients_drop_window", OPT_U32, OFF(alert_clients_drop_window), 1, 3600, "300", NULL, "SECONDS",
	  "The window of clients_drop.", false },
	{ "alert_clients_drop_min", OPT_U32, OFF(alert_clients_drop_min), 1, UINT32_MAX, "5", NULL, "N",
	  "clients_drop stays quiet while the median is under this many clients (with one client, every exit "
	  "would be a 100 % drop).", false },
	{ "alert_rate_drop_percent", OPT_U32, OFF(alert_rate_drop_percent), 1, 100, "50", NULL, "PERCENT",
	  "Alert message_rate_drop fires when the received rate over alert_rate_window is this much below its "
	  "average over alert_rate_baseline (quiet while that average is under 1 message/s).", false },
	{ "alert_rate_window", OPT_U32, OFF(alert_rate_window), 1, 3600, "60", NULL, "SECONDS",
	  "The recent window of message_rate_drop.", false },
	{ "alert_rate_baseline", OPT_U32, OFF(alert_rate_baseline), 1, 3600, "900", NULL, "SECONDS",
	  "The rolling average of message_rate_drop.", false },
	{ "alert_memory_percent", OPT_U32, OFF(alert_memory_percent), 1, 100, "80", NULL, "PERCENT",
	  "Alert memory fires when the heap is above this share of memory_limit.", false },
	{ "alert_subscriptions_growth_percent", OPT_U32, OFF(alert_subscriptions_growth_percent), 1, 100000, "50",
	  NULL, "PERCENT",
	  "Alert subscription_leak fires when subscriptions grow more than this (and by 10 or more) within "
	  "alert_subscriptions_window while connected clients grow 5 % or less.", false },
	{ "alert_subscriptions_window", OPT_U32, OFF(alert_subscriptions_window), 1, 3600, "600", NULL, "SECONDS",
	  "The window of subscription_leak.", false },
	{ "alert_queue_share_percent", OPT_U32, OFF(alert_queue_share_percent), 1, 100, "80", NULL, "PERCENT",
	  "Alert queue_share fires when a session's queue holds more than this share of max_queued_messages or "
	  "max_queued_bytes, before anything is dropped or refused.", false },
	{ "alert_clear_after", OPT_U32, OFF(alert_clear_after), 0, 3600, "60", NULL, "SECONDS",
	  "An alert clears only after its condition has been false this long; 0 = at once.", false },
	{ "sparkplug_group_id", OPT_SPARKPLUG_ID, OFF(sparkplug_group_id), 0, 64, NULL, NULL, "ID",
	  "The Sparkplug B group of the broker's own edge node (Modbus devices with modbus_format sparkplug): "
	  "at most 63 characters, no / + # or control characters.", false },
	{ "sparkplug_edge_node_id", OPT_SPARKPLUG_ID, OFF(sparkplug_edge_node_id), 0, 64, NULL, NULL, "ID",
	  "The Sparkplug B edge node id of the broker's own edge node, like sparkplug_group_id. Its session "
	  "is the bridge with bridge_sparkplug true.", false },
	{ "sparkplug_primary_host_id", OPT_SPARKPLUG_ID, OFF(sparkplug_primary_host_id), 0, 64, NULL, NULL, "ID",
	  "The host application the edge node waits for: its session subscribes to NAMESPACE/STATE/ID and sends "
	  "its births, then its data, only once that host's STATE says online; a newer STATE saying offline "
	  "closes the session (the remote publishes the NDEATH will) and it connects again. Needs a bridge with "
	  "bridge_sparkplug true. Default: none (births at once).", false },
	{ "cluster_node_id", OPT_ID, OFF(cluster_node_id), 0, CONFIG_CLUSTER_ID_MAX, NULL, NULL, "N",
	  "High availability: this node's id in its cluster (1..2^63-1, unique there, never given to another "
	  "machine). The replicated state and the raft log are kept in persistence_location (the log in "
	  "persistence_location/raft), so persistence must be true. Needs cluster_listener, and a cluster_peer "
	  "line per other node or cluster_join true. Default: none (0): no cluster, the broker runs on its own.",
	  false },
	{ "cluster_listener", OPT_CLUSTER_LISTENER, 0, 1, 65535, NULL, NULL, "PORT [ADDRESS]",
	  "Cluster: listen for the other nodes (raft) on PORT at ADDRESS, a host name or an IPv4 address "
	  "(default 127.0.0.1). ADDRESS:PORT is also what this node tells the others, so it must be one they "
	  "reach (not 0.0.0.0); not the port of an MQTT or HTTP listener.", false },
	{ "cluster_peer", OPT_CLUSTER_PEER, 0, 0, 0, NULL, NULL, "N HOST:PORT [MQTT_HOST:PORT]",
	  "Cluster: another node, its cluster_node_id and its cluster_listener's address. Repeatable: one "
	  "line per other node, at most 15. Read at the first start only: then the raft log holds the "
	  "membership, which ferromq-ctl cluster add|remove changes. MQTT_HOST:PORT is where that node's "
	  "clients connect, sent as the Server Reference while it leads (default: its HOST with this "
	  "node's first listener port).", false },
	{ "cluster_role", OPT_ENUM_BOOL, OFF(cluster_witness), 0, 1, "broker", cluster_role_names,
	  "broker|witness",
	  "Cluster: broker serves MQTT while it is the leader; witness only stores the raft log (in "
	  "persistence_location/raft) and votes, with no MQTT listener, bridge or Modbus device (its "
	  "http_listener serves the cluster's part of the HTTP API), so two brokers and a witness survive "
	  "the loss of any one machine.", false },
	{ "cluster_election_timeout", OPT_U32, OFF(cluster_election_timeout_ms), 100, 60000, "500", NULL, "MS",
	  "Cluster: a follower that hears no leader this long (plus a random part, up to as much again) "
	  "starts an election; fail-over takes about this long plus one election. Shorter fails over sooner "
	  "but risks needless elections on a loaded machine or network.", false },
	{ "cluster_heartbeat", OPT_U32, OFF(cluster_heartbeat_ms), 10, 20000, "50", NULL, "MS",
	  "Cluster: the leader's heartbeat interval; at most a third of cluster_election_timeout, so that a "
	  "follower can miss two heartbeats in a row without starting an election.", false },
	{ "cluster_join", OPT_BOOL, OFF(cluster_join), 0, 1, "false", NULL, "true|false",
	  "Cluster: true: the node starts with an empty log, without cluster_peer lines, and waits until "
	  "the leader adds it (ferromq-ctl cluster add): to grow a cluster or replace a dead node. false: at "
	  "its first start it forms the cluster with its cluster_peer lines.", false },
	{ "connection", OPT_CONNECTION, 0, 0, 0, NULL, NULL, "NAME",
	  "Starts a bridge to a remote broker; the bridge options below apply to the connection line above "
	  "them. Messages it sends wait in a spool in the store until the remote's PUBACK.", SCOPE_BRIDGE },
	{ "address", OPT_ADDRESS, 0, 0, 0, NULL, NULL, "HOST[:PORT] [HOST[:PORT] ...]",
	  "Bridge: the remote broker (port 1883 when omitted); with several, each reconnection tries the next.",
	  SCOPE_BRIDGE },
	{ "topic", OPT_BRIDGE_TOPIC, 0, 0, 0, NULL, NULL, "PATTERN [out|in|both [QOS [LOCAL_PREFIX [REMOTE_PREFIX]]]]",
	  "Bridge: local topics LOCAL_PREFIX+PATTERN go out as REMOTE_PREFIX+PATTERN (out), remote ones come in "
	  "the other way (in), or both; \"\" is an empty prefix. Out is sent at QoS 1; in subscribes at QOS "
	  "(at most 1). Repeatable; the first line that matches a message decides. Default: out 0 \"\" \"\".",
	  SCOPE_BRIDGE },
	BOPT("remote_clientid", OPT_STRING, remote_clientid, 0, 0, NULL, NULL, "ID",
	     "Bridge: client id at the remote. Default: HOSTNAME.NAME."),
	BOPT("remote_username", OPT_STRING, remote_username, 0, 0, NULL, NULL, "NAME", "Bridge: username at the remote."),
	BOPT("remote_password", OPT_STRING, remote_password, 0, 0, NULL, NULL, "PASSWORD",
	     "Bridge: password at the remote."),
	BOPT("bridge_protocol_version", OPT_ENUM, protocol_version, 0, 1, "mqttv311", bridge_protocol_names,
	     "mqttv311|mqttv50",
	     "Bridge: MQTT version spoken to the remote. With mqttv50 the remote subscriptions use No Local, so "
	     "what we send never comes back; with mqttv311 a message arriving on a topic this bridge also sends "
	     "out is taken for our own echo and not published (use separate prefixes for in and out)."),
	BOPT("bridge_cafile", OPT_FILE, cafile, 0, 0, NULL, NULL, "PATH",
	     "Bridge: PEM CA certificates the remote's certificate must chain to; setting it turns TLS on. "
	     "The certificate must name the address's host."),
	BOPT("bridge_certfile", OPT_FILE, certfile, 0, 0, NULL, NULL, "PATH",
	     "Bridge: PEM client certificate presented to the remote (needs bridge_keyfile and bridge_cafile)."),
	BOPT("bridge_keyfile", OPT_FILE, keyfile, 0, 0, NULL, NULL, "PATH", "Bridge: PEM private key of bridge_certfile."),
	BOPT("cleansession", OPT_BOOL, cleansession, 0, 1, "false", NULL, "true|false",
	     "Bridge: false keeps our session at the remote across reconnections (v5: session expiry never), so "
	     "commands sent while the link was down are delivered when it is back."),
	BOPT("keepalive_interval", OPT_U32, keepalive_interval, 0, 65535, "60", NULL, "SECONDS",
	     "Bridge: MQTT keep-alive towards the remote; a PINGREQ after this much silence, the connection is "
	     "dropped after 1.5 x with nothing from the remote. 0 = off."),
	{ "restart_timeout", OPT_RESTART, BOFF(restart_timeout), 1, 86400, "5 30", NULL, "MIN [MAX]",
	  "Bridge: seconds before reconnecting: MIN after the first failure, doubling up to MAX, each with "
	  "random jitter (half to all of it).", SCOPE_BRIDGE },
	BOPT("bridge_max_spool_bytes", OPT_SIZE, max_spool_bytes, 0, UINT64_MAX, "0", NULL, "BYTES",
	     "Bridge: payload bytes the spool holds while the remote is unreachable (k, M, G suffixes). "
	     "Size it as messages/s x average payload x longest outage in seconds. 0 = only the disk limits it."),
	BOPT("bridge_spool_overflow", OPT_ENUM, spool_overflow, 0, 1, "drop_oldest", overflow_names,
	     "drop_oldest|reject_new",
	     "Bridge: what a full spool does: drop its oldest message, or refuse the new one (v5 QoS 1/2 "
	     "publishers get 0x97 when no other subscriber took it)."),
	BOPT("bridge_max_msgs_per_sec", OPT_U32, max_msgs_per_sec, 0, UINT32_MAX, "0", NULL, "N",
	     "Bridge: messages sent to the remote per second (token bucket); the rest waits in the spool, "
	     "never dropped for the rate. 0 = unlimited."),
	BOPT("bridge_max_bytes_per_sec", OPT_SIZE, max_bytes_per_sec, 0, UINT64_MAX, "0", NULL, "BYTES",
	     "Bridge: payload bytes sent to the remote per second (k, M, G suffixes), like "
	     "bridge_max_msgs_per_sec. 0 = unlimited."),
	BOPT("bridge_sparkplug", OPT_BOOL, sparkplug, 0, 1, "false", NULL, "true|false",
	     "Bridge: this link is the session of the broker's Sparkplug edge node (sparkplug_group_id, "
	     "sparkplug_edge_node_id): its CONNECT carries the NDEATH will with the next bdSeq (kept in "
	     "persistence_location), every connection starts with the NBIRTH and the DBIRTH of each online "
	     "device, seq is set as each message is sent, what was spooled before the births goes out marked "
	     "historical, NCMD Node Control/Rebirth sends the births again and DCMD writes writable tags. "
	     "The edge node's own topics go out unchanged; topic lines are optional. Its session is always "
	     "clean (v5: Clean Start, no session expiry), so a command sent while it was away is not carried "
	     "out late. At most one bridge."),
	TOPT("report_by_exception", OPT_BOOL, report_by_exception, 0, 1, "false", NULL, "true|false",
	     "Bridge topic line above: forward a message only when its payload differs from the last one "
	     "forwarded on the same topic."),
	TOPT("deadband", OPT_NUMBER, deadband, 0, 0, NULL, NULL, "VALUE",
	     "Bridge topic line above: forward a numeric value only when it differs by VALUE or more from the "
	     "last one forwarded on the same topic (payloads without a number always pass)."),
	TOPT("deadband_field", OPT_STRING, deadband_field, 0, 0, NULL, NULL, "NAME",
	     "Bridge topic line above: the deadband reads this top-level member of a JSON object payload "
	     "instead of a plain-number payload."),
	TOPT("min_interval", OPT_U32, min_interval, 0, 86400, "0", NULL, "SECONDS",
	     "Bridge topic line above: forward at most one message per topic every SECONDS; the latest value "
	     "held back is forwarded when the interval ends (held in memory only). 0 = off."),
	TOPT("aggregate", OPT_U32, agg.window_s, 1, 86400, NULL, NULL, "SECONDS",
	     "Bridge topic line above: instead of every message, send one JSON summary per topic per window "
	     "of SECONDS aligned to the clock (a 60 s window ends on the minute) of the numbers read from "
	     "the payload, or from the JSON member deadband_field names. Summaries go through the spool at "
	     "QoS 1; a window's partial statistics are in memory only (a stop or a crash loses the open "
	     "window; the readings themselves are stored as any message). Not with report_by_exception, "
	     "deadband or min_interval on the same line. Default: off."),
	TOPT("aggregate_stats", OPT_FLAGS, agg.stats, 0, 0, NULL, agg_stat_names,
	     "count,min,max,mean,first,last,start,end",
	     "Bridge topic line above: the members of a summary: the numbers' count, min, max, mean, first "
	     "and last, the window's start and end (milliseconds since 1970). Default: all of them."),
	TOPT("aggregate_empty", OPT_ENUM, agg.empty, 0, 1, NULL, agg_empty_names, "skip|count",
	     "Bridge topic line above: a window without a message sends nothing (skip) or a summary with a "
	     "count of 0 (count) for every topic aggregated since the start. Default: skip."),
	TOPT("aggregate_non_numeric", OPT_ENUM, agg.non_numeric, 0, 1, NULL, agg_non_numeric_names, "pass|drop",
	     "Bridge topic line above: a message without a number is counted in its window's summary "
	     "(non_numeric) and forwarded as it is (pass) or not (drop). Default: pass."),
	TOPT("aggregate_suffix", OPT_STRING, agg_suffix, 0, 64, NULL, NULL, "SUFFIX",
	     "Bridge topic line above: a summary goes on the reading's remote topic followed by SUFFIX "
	     "(e.g. /1m), without '+' or '#'. Default: on the remote topic itself."),
	{ "modbus_device", OPT_DEVICE, 0, 0, 0, NULL, NULL, "NAME",
	  "Starts a Modbus TCP device the broker polls itself; the modbus_* options below apply to the "
	  "modbus_device line above them, the tag_* options to the modbus_tag line above them. Each reading "
	  "is published at QoS 1 through the same path as a client's (ACL, subscribers, retained, bridges, "
	  "store), as JSON {\"value\",\"ts\",\"quality\"} on PREFIX/TAG.", SCOPE_DEVICE },
	{ "modbus_address", OPT_DEVICE_ADDRESS, 0, 0, 0, NULL, NULL, "HOST[:PORT]",
	  "Modbus device: its address (port 502 when omitted).", SCOPE_DEVICE },
	DOPT("modbus_unit_id", OPT_U32, unit_id, 0, 255, "1", NULL, "N",
	     "Modbus device: the unit (slave) id of its requests; 255 or 1 for most TCP devices, the serial "
	     "address behind a gateway."),
	DOPT("modbus_timeout", OPT_U32, timeout_ms, 10, 60000, "1000", NULL, "MILLISECONDS",
	     "Modbus device: how long a connection attempt or a request waits for the device's answer."),
	DOPT("modbus_poll_interval", OPT_U32, poll_interval_ms, 10, 86400000, "1000", NULL, "MILLISECONDS",
	     "Modbus device: poll interval of its tags without tag_interval. Polls keep to the clock: a poll "
	     "that cannot start on time is counted late and skipped, never queued up."),
	DOPT("modbus_offline_after", OPT_U32, offline_after, 1, 1000, "3", NULL, "N",
	     "Modbus device: failed requests in a row (no answer, connection lost) after which it is marked "
	     "offline: its status says so and its tags are published with quality bad."),
	{ "modbus_restart_timeout", OPT_RESTART, DOFF(restart_timeout), 10, 3600000, "1000 30000", NULL,
	  "MIN [MAX]",
	  "Modbus device: while it is offline, milliseconds between connection attempts: MIN after it went "
	  "offline, doubling up to MAX.", SCOPE_DEVICE },
	DOPT("modbus_topic_prefix", OPT_STRING, topic_prefix, 0, 128, NULL, NULL, "PREFIX",
	     "Modbus device: its topics: PREFIX/TAG for readings, PREFIX/TAG/set for writes, PREFIX/status "
	     "(retained: online or offline, since when, the last error). Default: modbus/NAME."),
	DOPT("modbus_username", OPT_STRING, username, 0, 64, NULL, NULL, "NAME",
	     "Modbus device: the user whose ACL rules (acl_file) its readings and status pass, with client id "
	     "modbus/NAME for %c. Default: anonymous."),
	DOPT("modbus_max_gap", OPT_U32, max_gap, 0, 120, "16", NULL, "REGISTERS",
	     "Modbus device: tags of one area and interval are read together, at most 125 registers or 2000 "
	     "bits a request; a gap of up to this many registers (16 x as many bits) is read over rather than "
	     "sent as a second request."),
	DOPT("modbus_format", OPT_ENUM, format, 0, 1, "json", modbus_format_names, "json|sparkplug",
	     "Modbus device: json publishes each tag on PREFIX/TAG; sparkplug makes the device a Sparkplug B "
	     "device NAME of the broker's edge node: a DBIRTH with every tag as a metric (name, alias, "
	     "datatype, tag_unit as the engUnit property) when it comes online, DDATA by exception with "
	     "aliases, DDEATH when it goes offline, on NAMESPACE/GROUP/TYPE/EDGE/NAME (spBv1.0). Needs "
	     "sparkplug_group_id, sparkplug_edge_node_id and a bridge with bridge_sparkplug true. Writes: a "
	     "DCMD naming a writable tag, or PREFIX/TAG/set as with json."),
	DOPT("modbus_group_messages", OPT_BOOL, group_messages, 0, 1, "false", NULL, "true|false",
	     "Modbus device: also publish every poll as one message on PREFIX/poll/INTERVAL_MS, a JSON object "
	     "of every tag read."),
	{ "modbus_tag", OPT_TAG, 0, 0, 0, NULL, NULL, "NAME AREA ADDRESS TYPE [ORDER]",
	  "Modbus device: a value to poll. AREA coil|discrete_input|input_register|holding_register; "
	  "ADDRESS 0..65535 (protocol address, not 40001-style); TYPE bool (coils, discrete inputs), "
	  "bit:N (bit N of a register), int16, uint16, int32, uint32, int64, uint64, float32, float64, "
	  "string:N (N registers); ORDER abcd (big endian, default), badc (bytes swapped), cdab (words "
	  "swapped), dcba (little endian). NAME: at most 31 characters; at most 10240 tags in all.", SCOPE_DEVICE },
	GOPT("tag_scale", OPT_DOUBLE, scale, 0, 0, "1", NULL, "X",
	     "Tag above: the published value is raw x X + tag_offset (numbers only)."),
	GOPT("tag_offset", OPT_DOUBLE, offset, 0, 0, "0", NULL, "X", "Tag above: added after tag_scale."),
	GOPT("tag_unit", OPT_STRING, unit, 0, 8, NULL, NULL, "TEXT",
	     "Tag above: unit of the value, published as \"unit\" (at most 7 characters)."),
	GOPT("tag_interval", OPT_U32, interval_ms, 10, 86400000, NULL, NULL, "MILLISECONDS",
	     "Tag above: its poll interval; tags of one interval are polled together. Default: "
	     "modbus_poll_interval."),
	GOPT("tag_report_by_exception", OPT_BOOL, report_by_exception, 0, 1, "false", NULL, "true|false",
	     "Tag above: publish a reading only when its value or quality changed since the last one "
	     "published."),
	GOPT("tag_deadband", OPT_DOUBLE, deadband, 1, 0, NULL, NULL, "X",
	     "Tag above: publish a number only when it moved X or more (after scaling) from the last one "
	     "published, or its quality changed."),
	GOPT("tag_max_silence", OPT_U32, max_silence, 0, 86400, "0", NULL, "SECONDS",
	     "Tag above: with report by exception or a deadband, publish the value anyway after this long "
	     "without one. 0 = never."),
	GOPT("tag_aggregate", OPT_U32, agg.window_s, 1, 86400, NULL, NULL, "SECONDS",
	     "Tag above: instead of every poll, publish one JSON summary per window of SECONDS aligned to the "
	     "clock (a 60 s window ends on the minute) on PREFIX/NAME, the same as a bridge's aggregate: "
	     "poll fast, publish the window. Every poll goes to the window first; report by exception and "
	     "the deadband then decide which readings are published as well. A window's partial statistics "
	     "are in memory only (a stop or a crash loses the open window). Not for string tags, nor with "
	     "modbus_format sparkplug. Default: off."),
	GOPT("tag_aggregate_stats", OPT_FLAGS, agg.stats, 0, 0, NULL, agg_stat_names,
	     "count,min,max,mean,first,last,start,end",
	     "Tag above: the members of a summary, as aggregate_stats. Default: all of them."),
	GOPT("tag_aggregate_empty", OPT_ENUM, agg.empty, 0, 1, NULL, agg_empty_names, "skip|count",
	     "Tag above: a window without a reading (the device offline) publishes nothing (skip) or a "
	     "summary with a count of 0 (count). Default: skip."),
	GOPT("tag_aggregate_non_numeric", OPT_ENUM, agg.non_numeric, 0, 1, NULL, agg_non_numeric_names, "pass|drop",
	     "Tag above: a reading without a number (quality bad) is counted in its window's summary "
	     "(non_numeric) and published as it is (pass) or not (drop). Default: pass."),
	GOPT("tag_aggregate_suffix", OPT_STRING, agg_suffix, 0, 16, NULL, NULL, "/LEVEL",
	     "Tag above: summaries go on PREFIX/NAME followed by this (e.g. /1m: at most 15 characters, "
	     "starting with /, without + # or empty levels, not /set). Default: on PREFIX/NAME itself."),
	GOPT("tag_writable", OPT_BOOL, writable, 0, 1, "false", NULL, "true|false",
	     "Tag above (coil or holding register): a publish to PREFIX/TAG/set (a JSON number, true/false "
	     "or {\"value\": ...}; the ACL decides who may) writes it; the result goes to the v5 Response "
	     "Topic with the Correlation Data, or to PREFIX/TAG/set/result. Every write is logged."),
	GOPT("tag_min", OPT_DOUBLE, write_min, 0, 0, NULL, NULL, "X",
	     "Tag above: the lowest value a write may set (engineering units). Default: the type's range."),
	GOPT("tag_max", OPT_DOUBLE, write_max, 0, 0, NULL, NULL, "X",
	     "Tag above: the highest value a write may set (engineering units). Default: the type's range."),
};
#define N_OPTIONS (sizeof options / sizeof options[0])

static const struct option *find_option(const char *name, size_t len)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (strlen(options[i].name) == len && !memcmp(options[i].name, name, len))
			return &options[i];
	return NULL;
}

/* Parses an unsigned integer with an optional k/M/G (x1024) suffix. */
static int parse_u64(const char *s, bool suffix, uint64_t *out)
{
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	uint64_t mult = 1;
	if (suffix && *end) {
		switch (*end) {
		case 'k': case 'K': mult = 1024; break;
		case 'm': case 'M': mult = 1024 * 1024; break;
		case 'g': case 'G': mult = 1024 * 1024 * 1024; break;
		default: return -1;
		}
		end++;
	}
	if (*end || (v && mult > UINT64_MAX / v))
		return -1;
	*out = (uint64_t)v * mult;
	return 0;
}

/* Notes the file of a line whose line number is kept. */
static void note_source(struct config *c)
{
	if (c->loading)
		snprintf(c->source, sizeof c->source, "%s", c->loading);
}

/* "PORT [ADDRESS]" of a listener line `name`; the address defaults to
 * loopback and must fit addr_size. */
static int parse_port_address(const char *name, char *args, uint16_t *port, const char **addr, size_t addr_size,
			      char *err, size_t errlen)
{
	char *save = NULL;
	char *p_text = strtok_r(args, " \t", &save);
	char *a_text = strtok_r(NULL, " \t", &save);
	uint64_t p;
	if (!p_text || parse_u64(p_text, false, &p) || p < 1 || p > 65535) {
		snprintf(err, errlen, "%s: port must be 1..65535", name);
		return -1;
	}
	if (strtok_r(NULL, " \t", &save)) {
		snprintf(err, errlen, "%s: expected PORT [ADDRESS]", name);
		return -1;
	}
	if (a_text && strlen(a_text) >= addr_size) {
		snprintf(err, errlen, "%s: address too long", name);
		return -1;
	}
	*port = (uint16_t)p;
	*addr = a_text ? a_text : "127.0.0.1";
	return 0;
}

static int set_listener(struct config *c, char *args, char *err, size_t errlen)
{
	uint16_t port;
	const char *addr;
	if (parse_port_address("listener", args, &port, &addr, sizeof c->listeners[0].address, err, errlen))
		return -1;
	if (!c->seen_listener) {
		if (c->default_listener_changed) {
			snprintf(err, errlen, "listener: the per-listener options above apply to the default "
					      "listener, which this line replaces; move them below it");
			return -1;
		}
		c->n_listeners = 0;
		c->seen_listener = true;
	}
	if (c->n_listeners == CONFIG_MAX_LISTENERS) {
		snprintf(err, errlen, "listener: at most %d listeners", CONFIG_MAX_LISTENERS);
		return -1;
	}
	struct listener_conf *l = &c->listeners[c->n_listeners];
	memset(l, 0, sizeof *l);
	note_source(c);
	l->port = port;
	l->line = c->cur_line;
	snprintf(l->address, sizeof l->address, "%s", addr);
	c->n_listeners++;
	return 0;
}

static int set_http_listener(struct config *c, char *args, char *err, size_t errlen)
{
	uint16_t port;
	const char *addr;
	if (parse_port_address("http_listener", args, &port, &addr, sizeof c->http_address, err, errlen))
		return -1;
	note_source(c);
	c->http_port = port;
	c->http_line = c->cur_line ? c->cur_line : 1;
	snprintf(c->http_address, sizeof c->http_address, "%s", addr);
	return 0;
}

static int set_log_dest(struct config *c, char *args, char *err, size_t errlen)
{
	if (!c->seen_log_dest) {
		c->log_stderr = c->log_syslog = false;
		c->log_file[0] = 0;
		c->seen_log_dest = true;
	}
	if (!strcmp(args, "stderr") || !strcmp(args, "stdout")) {
		c->log_stderr = true;
	} else if (!strcmp(args, "syslog")) {
		c->log_syslog = true;
	} else if (!strcmp(args, "none")) {
	} else if (!strncmp(args, "file", 4) && (args[4] == ' ' || args[4] == '\t')) {
		const char *path = args + 5;
		while (*path == ' ' || *path == '\t')
			path++;
		if (!*path || strlen(path) >= sizeof c->log_file) {
			snprintf(err, errlen, "log_dest file: missing or too long path");
			return -1;
		}
		snprintf(c->log_file, sizeof c->log_file, "%s", path);
	} else {
		snprintf(err, errlen, "log_dest: expected stderr, syslog, file PATH or none, not '%s'", args);
		return -1;
	}
	return 0;
}

static int set_log_type(struct config *c, const char *args, char *err, size_t errlen)
{
	static const struct { const char *name; unsigned mask; } types[] = {
		{ "error", 1u << LVL_ERR }, { "warning", 1u << LVL_WARN },
		{ "notice", 1u << LVL_NOTICE }, { "information", 1u << LVL_INFO },
		{ "debug", 1u << LVL_DEBUG }, { "all", 0x1F }, { "none", 0 },
		/* mosquitto's subscribe/unsubscribe/websockets types log at debug here */
		{ "subscribe", 1u << LVL_DEBUG }, { "unsubscribe", 1u << LVL_DEBUG },
	};
	if (!c->seen_log_type) {
		c->log_mask = 0;
		c->seen_log_type = true;
	}
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		if (!strcmp(args, types[i].name)) {
			c->log_mask |= types[i].mask;
			return 0;
		}
	}
	snprintf(err, errlen, "log_type: unknown type '%s'", args);
	return -1;
}

/* Per-listener options go to the last listener, or to the default one
 * before any listener line; bridge options to the last connection, data
 * reduction options to its last topic line (set_value checks they exist). */
static char *option_field(struct config *c, const struct option *o)
{
	struct bridge_conf *br = c->n_bridges ? &c->bridges[c->n_bridges - 1] : NULL;
	switch (o->scope) {
	case SCOPE_LISTENER:
		if (!c->seen_listener)
			c->default_listener_changed = true;
		return (char *)&c->listeners[c->seen_listener ? c->n_listeners - 1 : 0] + o->offset;
	case SCOPE_BRIDGE:
		return (char *)br + o->offset;
	case SCOPE_BRIDGE_TOPIC:
		return (char *)&br->topics[br->n_topics - 1] + o->offset;
	case SCOPE_DEVICE:
		return (char *)&c->devices[c->n_devices - 1] + o->offset;
	case SCOPE_DEVICE_TAG:
		return (char *)&c->tags[c->n_tags - 1] + o->offset;
	}
	return (char *)c + o->offset;
}

static int set_value(struct config *c, const struct option *o, char *val, char *err, size_t errlen);

/* The defaults of a new section's options (a bridge, a device). */
static void set_section_defaults(struct config *c, int scope, char *err, size_t errlen)
{
	for (size_t i = 0; i < N_OPTIONS; i++) {
		char def[64];
		if (options[i].scope != scope || !options[i].def)
			continue;
		snprintf(def, sizeof def, "%s", options[i].def);
		set_value(c, &options[i], def, err, errlen);
	}
}

/* Splits a (in place) into HOST and PORT: HOST[:PORT], [IPV6][:PORT].
 * *port is NULL without one. Returns 0, or -1 for a bracket left open. */
static int split_host_port(char *a, char **host, char **port)
{
	*host = a;
	*port = NULL;
	if (*a == '[') {
		char *close = strchr(a, ']');
		if (!close || (close[1] && close[1] != ':'))
			return -1;
		*close = 0;
		*host = a + 1;
		*port = close[1] ? close + 2 : NULL;
	} else if ((*port = strchr(a, ':'))) {
		*(*port)++ = 0;
	}
	return 0;
}

/* Whether host fits in cap bytes and port (if any) is in 1..65535; *p gets
 * it (left as the caller's default without one). */
static bool host_port_valid(const char *host, size_t cap, const char *port, uint64_t *p)
{
	return *host && strlen(host) < cap && (!port || (!parse_u64(port, false, p) && *p && *p <= 65535));
}

static int set_connection(struct config *c, const char *name, char *err, size_t errlen)
{
	if (c->n_bridges == CONFIG_MAX_BRIDGES) {
		snprintf(err, errlen, "connection: at most %d bridges", CONFIG_MAX_BRIDGES);
		return -1;
	}
	size_t len = strlen(name);
	if (len >= sizeof c->bridges[0].name || strcspn(name, " \t/+#") != len) {
		snprintf(err, errlen, "connection: the name must be one word of at most %zu characters without / + #",
			 sizeof c->bridges[0].name - 1);
		return -1;
	}
	for (unsigned i = 0; i < c->n_bridges; i++)
		if (!strcmp(c->bridges[i].name, name)) {
			snprintf(err, errlen, "connection: '%s' is declared twice (first on line %u)", name,
				 c->bridges[i].line);
			return -1;
		}
	struct bridge_conf *br = &c->bridges[c->n_bridges++];
	memset(br, 0, sizeof *br);
	snprintf(br->name, sizeof br->name, "%s", name);
	br->line = c->cur_line ? c->cur_line : 1;
	note_source(c);
	set_section_defaults(c, SCOPE_BRIDGE, err, errlen);
	br->sparkplug_line = br->cleansession_line = 0; /* defaults, not lines of the file */
	return 0;
}

static int set_address(struct bridge_conf *br, char *args, char *err, size_t errlen)
{
	char *save = NULL;
	br->n_addresses = 0;
	for (char *a = strtok_r(args, " \t", &save); a; a = strtok_r(NULL, " \t", &save)) {
		if (br->n_addresses == CONFIG_MAX_BRIDGE_ADDRESSES) {
			snprintf(err, errlen, "address: at most %d addresses", CONFIG_MAX_BRIDGE_ADDRESSES);
			return -1;
		}
		struct bridge_address *ad = &br->addresses[br->n_addresses];
		char *host, *port;
		if (split_host_port(a, &host, &port)) {
			snprintf(err, errlen, "address: '%s' is not HOST[:PORT] ([IPV6]:PORT for IPv6)", a);
			return -1;
		}
		uint64_t p = 1883;
		if (!host_port_valid(host, sizeof ad->host, port, &p)) {
			snprintf(err, errlen, "address: '%s%s%s' is not HOST[:PORT] with a port in 1..65535", host,
				 port ? ":" : "", port ? port : "");
			return -1;
		}
		snprintf(ad->host, sizeof ad->host, "%s", host);
		ad->port = (uint16_t)p;
		br->n_addresses++;
	}
	return 0;
}

/* Control characters have no place in a topic level. */
static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20)
			return true;
	return false;
}

static int set_device(struct config *c, const char *name, char *err, size_t errlen)
{
	if (c->n_devices == CONFIG_MAX_DEVICES) {
		snprintf(err, errlen, "modbus_device: at most %d devices", CONFIG_MAX_DEVICES);
		return -1;
	}
	/* It names metrics labels, the ACL's client id and the default prefix. */
	size_t len = strlen(name);
	if (!len || len >= sizeof c->devices[0].name ||
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != len) {
		snprintf(err, errlen, "modbus_device: the name must be at most %zu letters, digits, - _ or .",
			 sizeof c->devices[0].name - 1);
		return -1;
	}
	for (unsigned i = 0; i < c->n_devices; i++)
		if (!strcmp(c->devices[i].name, name)) {
			snprintf(err, errlen, "modbus_device: '%s' is declared twice (first on line %u)", name,
				 c->devices[i].line);
			return -1;
		}
	struct modbus_device_conf *d = &c->devices[c->n_devices++];
	memset(d, 0, sizeof *d);
	snprintf(d->name, sizeof d->name, "%s", name);
	d->line = c->cur_line ? c->cur_line : 1;
	d->port = 502;
	d->first_tag = c->n_tags;
	note_source(c);
	set_section_defaults(c, SCOPE_DEVICE, err, errlen);
	return 0;
}

static int set_device_address(struct modbus_device_conf *d, char *a, char *err, size_t errlen)
{
	char *host, *port;
	uint64_t p = 502;
	if (split_host_port(a, &host, &port) || strpbrk(host, " \t") || !host_port_valid(host, sizeof d->host, port, &p))
		goto bad;
	snprintf(d->host, sizeof d->host, "%s", host);
	d->port = (uint16_t)p;
	return 0;
bad:
	snprintf(err, errlen, "modbus_address: expected HOST[:PORT] ([IPV6]:PORT for IPv6) with a port in 1..65535");
	return -1;
}

/* Registers (or bits) a tag of type t spans. */
static unsigned tag_width(uint8_t type, uint8_t count)
{
	switch (type) {
	case MODBUS_INT32: case MODBUS_UINT32: case MODBUS_FLOAT32: return 2;
	case MODBUS_INT64: case MODBUS_UINT64: case MODBUS_FLOAT64: return 4;
	case MODBUS_STRING: return count;
	default: return 1;
	}
}

static int set_tag(struct config *c, char *args, char *err, size_t errlen)
{
	static const char *const areas[] = { "coil", "discrete_input", "input_register", "holding_register", NULL };
	static const char *const types[] = { "bool", "bit", "int16", "uint16", "int32", "uint32", "int64",
					     "uint64", "float32", "float64", "string", NULL };
	static const char *const orders[] = { "abcd", "badc", "cdab", "dcba", NULL };
	struct modbus_device_conf *d = &c->devices[c->n_devices - 1];
	if (c->n_tags == CONFIG_MAX_TAGS) {
		snprintf(err, errlen, "modbus_tag: at most %d tags in all", CONFIG_MAX_TAGS);
		return -1;
	}
	char *save = NULL, *f[6];
	unsigned n = 0;
	for (char *a = strtok_r(args, " \t", &save); a && n < 6; a = strtok_r(NULL, " \t", &save))
		f[n++] = a;
	struct modbus_tag_conf t = { .scale = 1, .write_min = NAN, .write_max = NAN,
				     .line = c->cur_line ? c->cur_line : 1 };
	const char *why = NULL;
	uint64_t v = 0;
	if (n < 4 || n > 5) {
		why = "expected NAME AREA ADDRESS TYPE [ORDER]";
		goto out;
	}
	size_t len = strlen(f[0]);
	if (len >= sizeof t.name || strpbrk(f[0], "/+#\x7f") || has_control(f[0]) || !strcmp(f[0], "status") ||
	    !strcmp(f[0], "poll")) {
		why = "NAME must be one topic level of at most 31 characters without / + #, and not status or poll";
		goto out;
	}
	for (uint32_t i = d->first_tag; i < d->first_tag + d->n_tags; i++)
		if (!strcmp(c->tags[i].name, f[0])) {
			snprintf(err, errlen, "modbus_tag: '%s' is declared twice in this device (first on line %u)",
				 f[0], c->tags[i].line);
			return -1;
		}
	snprintf(t.name, sizeof t.name, "%s", f[0]);
	for (t.area = 0; areas[t.area] && strcmp(areas[t.area], f[1]); t.area++)
		;
	if (!areas[t.area]) {
		why = "AREA must be coil, discrete_input, input_register or holding_register";
		goto out;
	}
	if (parse_u64(f[2], false, &v) || v > 65535) {
		why = "ADDRESS must be a number in 0..65535";
		goto out;
	}
	t.address = (uint16_t)v;
	char *param = strchr(f[3], ':');
	if (param)
		*param++ = 0;
	for (t.type = 0; types[t.type] && strcmp(types[t.type], f[3]); t.type++)
		;
	if (!types[t.type] || (param != NULL) != (t.type == MODBUS_BIT || t.type == MODBUS_STRING)) {
		why = "TYPE must be bool, bit:N, int16, uint16, int32, uint32, int64, uint64, float32, float64 or string:N";
		goto out;
	}
	if (t.type == MODBUS_BIT && (parse_u64(param, false, &v) || v > 15)) {
		why = "bit:N needs N in 0..15";
		goto out;
	}
	if (t.type == MODBUS_STRING && (parse_u64(param, false, &v) || v < 1 || v > 125)) {
		why = "string:N needs N registers in 1..125";
		goto out;
	}
	if (t.type == MODBUS_BIT)
		t.bit = (uint8_t)v;
	if (t.type == MODBUS_STRING)
		t.count = (uint8_t)v;
	bool bits = t.area == MODBUS_COIL || t.area == MODBUS_DISCRETE_INPUT;
	if (bits != (t.type == MODBUS_BOOL)) {
		why = "coils and discrete inputs are of TYPE bool, registers of any other TYPE";
		goto out;
	}
	if (t.address + tag_width(t.type, t.count) - 1 > 65535) {
		why = "the value runs past address 65535";
		goto out;
	}
	if (n == 5) {
		for (t.order = 0; orders[t.order] && strcmp(orders[t.order], f[4]); t.order++)
			;
		if (!orders[t.order] || bits) {
			why = "ORDER must be abcd, badc, cdab or dcba, and only for registers";
			goto out;
		}
	}
	c->tags[c->n_tags++] = t;
	d->n_tags++;
	for (size_t i = 0; i < N_OPTIONS; i++) {
		char def[64];
		if (options[i].scope != SCOPE_DEVICE_TAG || !options[i].def)
			continue;
		snprintf(def, sizeof def, "%s", options[i].def);
		set_value(c, &options[i], def, err, errlen);
	}
	return 0;
out:
	snprintf(err, errlen, "modbus_tag: %s", why);
	return -1;
}

/* A topic filter: '#' only as the last level, '+' and '#' alone in theirs. */
static bool filter_ok(const char *f)
{
	if (!*f)
		return false;
	for (const char *p = f; *p; p++) {
		bool start = p == f || p[-1] == '/', end = p[1] == 0 || p[1] == '/';
		if ((*p == '+' && (!start || !end)) || (*p == '#' && (!start || p[1])))
			return false;
	}
	return true;
}

/* "" is the empty prefix (mosquitto's form). */
static const char *prefix_arg(const char *a) { return a && !strcmp(a, "\"\"") ? "" : a ? a : ""; }

static int set_bridge_topic(struct bridge_conf *br, char *args, uint32_t line, char *err, size_t errlen)
{
	static const char *const dirs[] = { "out", "in", "both" };
	static const uint8_t dir_values[] = { BRIDGE_OUT, BRIDGE_IN, BRIDGE_BOTH };
	if (br->n_topics == CONFIG_MAX_BRIDGE_TOPICS) {
		snprintf(err, errlen, "topic: at most %d topic lines per connection", CONFIG_MAX_BRIDGE_TOPICS);
		return -1;
	}
	char *save = NULL;
	char *f[6];
	unsigned n = 0;
	for (char *a = strtok_r(args, " \t", &save); a && n < 6; a = strtok_r(NULL, " \t", &save))
		f[n++] = a;
	struct bridge_topic t = { .direction = BRIDGE_OUT, .line = line };
	const char *lp = prefix_arg(n > 3 ? f[3] : NULL), *rp = prefix_arg(n > 4 ? f[4] : NULL);
	const char *why = NULL;
	if (n > 5)
		why = "too many fields (expected PATTERN [out|in|both [QOS [LOCAL_PREFIX [REMOTE_PREFIX]]]])";
	else if (!filter_ok(f[0]) || strlen(f[0]) >= sizeof t.pattern)
		why = "PATTERN must be a topic filter ('+' and '#' alone in their level, '#' last)";
	else if (strlen(lp) >= sizeof t.local_prefix || strlen(rp) >= sizeof t.remote_prefix ||
		 strpbrk(lp, "+#") || strpbrk(rp, "+#"))
		why = "the prefixes must be topic names of at most 127 characters, without '+' or '#'";
	if (!why && n > 1) {
		unsigned d = 0;
		while (d < 3 && strcmp(f[1], dirs[d]))
			d++;
		if (d == 3)
			why = "the direction must be out, in or both";
		else
			t.direction = dir_values[d];
	}
	if (!why && n > 2) {
		if (strlen(f[2]) != 1 || f[2][0] < '0' || f[2][0] > '2')
			why = "QOS must be 0, 1 or 2";
		else
			t.qos = (uint8_t)(f[2][0] - '0');
	}
	if (why) {
		snprintf(err, errlen, "topic: %s", why);
		return -1;
	}
	snprintf(t.pattern, sizeof t.pattern, "%s", f[0]);
	snprintf(t.local_prefix, sizeof t.local_prefix, "%s", lp);
	snprintf(t.remote_prefix, sizeof t.remote_prefix, "%s", rp);
	br->topics[br->n_topics++] = t;
	return 0;
}

static int set_value(struct config *c, const struct option *o, char *val, char *err, size_t errlen)
{
	if (o->type == OPT_CONNECTION)
		return set_connection(c, val, err, errlen);
	if (o->type == OPT_DEVICE)
		return set_device(c, val, err, errlen);
	if ((o->scope == SCOPE_DEVICE || o->scope == SCOPE_DEVICE_TAG) && !c->n_devices) {
		snprintf(err, errlen, "%s: Modbus device option without a `modbus_device NAME` line above it", o->name);
		return -1;
	}
	if (o->scope == SCOPE_DEVICE_TAG && !c->devices[c->n_devices - 1].n_tags) {
		snprintf(err, errlen, "%s: applies to the `modbus_tag` line above it, and this device has none", o->name);
		return -1;
	}
	if ((o->scope == SCOPE_BRIDGE || o->scope == SCOPE_BRIDGE_TOPIC) && !c->n_bridges) {
		snprintf(err, errlen, "%s: bridge option without a `connection NAME` line above it", o->name);
		return -1;
	}
	if (o->scope == SCOPE_BRIDGE_TOPIC && !c->bridges[c->n_bridges - 1].n_topics) {
		snprintf(err, errlen, "%s: applies to the bridge `topic` line above it, and there is none", o->name);
		return -1;
	}
	char *field = option_field(c, o);
	uint64_t v = 0;
	switch (o->type) {
	case OPT_BOOL:
		if (!strcmp(val, "true"))
			*(bool *)field = true;
		else if (!strcmp(val, "false"))
			*(bool *)field = false;
		else
			goto bad;
		if (o->scope == SCOPE_BRIDGE && o->offset == BOFF(sparkplug))
			c->bridges[c->n_bridges - 1].sparkplug_line = c->cur_line ? c->cur_line : 1;
		if (o->scope == SCOPE_BRIDGE && o->offset == BOFF(cleansession) && c->cur_line)
			c->bridges[c->n_bridges - 1].cleansession_line = c->cur_line;
		return 0;
	case OPT_U32:
	case OPT_SIZE:
		if (parse_u64(val, o->type == OPT_SIZE, &v) || v < o->min || v > o->max)
			goto range;
		if ((o->scope == SCOPE_GLOBAL && (o->offset == OFF(max_queued_bytes) || o->offset == OFF(max_queued_bytes_total) ||
						  o->offset == OFF(max_output_buffer) ||
						  o->offset == OFF(memory_limit))) ||
		    (o->scope == SCOPE_BRIDGE && (o->offset == BOFF(max_spool_bytes) || o->offset == BOFF(max_bytes_per_sec))))
			*(uint64_t *)field = v;
		else
			*(uint32_t *)field = (uint32_t)v;
		return 0;
	case OPT_ENUM:
		for (uint32_t i = 0; o->choices[i]; i++) {
			if (!strcmp(val, o->choices[i])) {
				*(uint32_t *)field = i;
				return 0;
			}
		}
		goto bad;
	case OPT_PATH:
		if (!*val || strlen(val) >= 512)
			goto bad;
		snprintf(field, 512, "%s", val);
		return 0;
	case OPT_FILE: {
		struct conf_file *f = (struct conf_file *)field;
		if (strlen(val) >= sizeof f->path)
			goto bad;
		snprintf(f->path, sizeof f->path, "%s", val);
		f->line = c->cur_line ? c->cur_line : 1;
		note_source(c);
		return 0;
	}
	case OPT_STRING: {
		size_t cap = o->max ? (size_t)o->max : 256;
		if (strlen(val) >= cap)
			goto bad;
		snprintf(field, cap, "%s", val);
		return 0;
	}
	case OPT_DOUBLE: {
		char *end;
		errno = 0;
		double d = strtod(val, &end);
		if (errno || *end || !isfinite(d) || fabs(d) > 1e300 || (o->min && d < 0))
			goto bad;
		*(double *)field = d;
		if (o->scope == SCOPE_DEVICE_TAG && o->offset == GOFF(deadband))
			((struct modbus_tag_conf *)(field - GOFF(deadband)))->has_deadband = true;
		return 0;
	}
	case OPT_FLAGS: {
		uint32_t bits = 0;
		char *save = NULL, list[1024]; /* val stays whole for the error message */
		snprintf(list, sizeof list, "%s", val);
		for (char *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
			uint32_t i = 0;
			while (o->choices[i] && strcmp(a, o->choices[i]))
				i++;
			if (!o->choices[i])
				goto bad;
			bits |= 1u << i;
		}
		if (!bits)
			goto bad;
		*(uint32_t *)field = bits;
		return 0;
	}
	case OPT_SPARKPLUG_ID:
		/* A topic level of its own [Sparkplug 3.0 tck-id-topic-structure-namespace-valid-group-id]. */
		if (!*val || strlen(val) >= o->max || strpbrk(val, "/+#\x7f") || has_control(val))
			goto bad;
		snprintf(field, o->max, "%s", val);
		if (o->offset == OFF(sparkplug_primary_host_id)) {
			c->sparkplug_primary_host_line = c->cur_line ? c->cur_line : 1;
			note_source(c);
		}
		return 0;
	case OPT_ID:
		if (config__parse_id(val, &v) || v < o->min || v > o->max)
			goto range;
		*(uint64_t *)field = v;
		return 0;
	case OPT_ENUM_BOOL:
		if (strcmp(val, o->choices[0]) && strcmp(val, o->choices[1]))
			goto bad;
		*(bool *)field = !strcmp(val, o->choices[1]);
		return 0;
	case OPT_CLUSTER_LISTENER: return config__cluster_listener(c, val, err, errlen);
	case OPT_CLUSTER_PEER: return config__cluster_peer(c, val, err, errlen);
	case OPT_LIMIT:
		if (!strcmp(val, "-1"))
			v = 0;
		else if (parse_u64(val, false, &v) || v > o->max)
			goto range;
		*(uint32_t *)field = (uint32_t)v;
		return 0;
	case OPT_RATE: {
		struct rate_conf *r = (struct rate_conf *)field;
		char msgs[64];
		if (strlen(val) >= sizeof msgs)
			goto bad;
		snprintf(msgs, sizeof msgs, "%s", val); /* val stays whole for the error message */
		char *bytes = msgs + strcspn(msgs, " \t");
		if (*bytes) {
			*bytes++ = 0;
			bytes += strspn(bytes, " \t");
		}
		uint64_t b = 0;
		if (parse_u64(msgs, false, &v) || v > o->max || (*bytes && parse_u64(bytes, true, &b)) ||
		    b > (1ull << 40))
			goto bad;
		r->msgs = (uint32_t)v;
		r->bytes = b;
		return 0;
	}
	case OPT_NUMBER: {
		struct bridge_topic *t = (struct bridge_topic *)(field - TOFF(deadband));
		char *end;
		errno = 0;
		double d = strtod(val, &end);
		if (errno || *end || !(d >= 0) || d > 1e300)
			goto bad;
		t->deadband = d;
		t->has_deadband = true;
		return 0;
	}
	case OPT_RESTART: {
		/* Both restart_timeout fields are { uint32_t min, max; }. */
		uint32_t *range = (uint32_t *)field;
		char *save = NULL, *lo = strtok_r(val, " \t", &save), *hi = strtok_r(NULL, " \t", &save);
		uint64_t a, b;
		if (!lo || parse_u64(lo, false, &a) || a < o->min || a > o->max || strtok_r(NULL, " \t", &save) ||
		    (hi && (parse_u64(hi, false, &b) || b < a || b > o->max))) {
			snprintf(err, errlen, "%s: expected MIN [MAX], %s in %llu..%llu with MIN <= MAX", o->name,
				 o->scope == SCOPE_DEVICE ? "milliseconds" : "seconds", (unsigned long long)o->min,
				 (unsigned long long)o->max);
			return -1;
		}
		range[0] = (uint32_t)a;
		range[1] = (uint32_t)(hi ? b : a);
		return 0;
	}
	case OPT_DEVICE_ADDRESS: return set_device_address(&c->devices[c->n_devices - 1], val, err, errlen);
	case OPT_TAG: return set_tag(c, val, err, errlen);
	case OPT_DEVICE: return set_device(c, val, err, errlen);
	case OPT_ADDRESS: return set_address(&c->bridges[c->n_bridges - 1], val, err, errlen);
	case OPT_BRIDGE_TOPIC:
		return set_bridge_topic(&c->bridges[c->n_bridges - 1], val, c->cur_line ? c->cur_line : 1, err, errlen);
	case OPT_CONNECTION: return set_connection(c, val, err, errlen);
	case OPT_LISTENER: return set_listener(c, val, err, errlen);
	case OPT_HTTP_LISTENER: return set_http_listener(c, val, err, errlen);
	case OPT_LOG_DEST: return set_log_dest(c, val, err, errlen);
	case OPT_LOG_TYPE: return set_log_type(c, val, err, errlen);
	}
bad:
	snprintf(err, errlen, "%s: invalid value '%s' (expected %s)", o->name, val, o->args);
	return -1;
range:
	snprintf(err, errlen, "%s: '%s' is not a number in %llu..%llu", o->name, val,
		 (unsigned long long)o->min, (unsigned long long)o->max);
	return -1;
}

void config_defaults(struct config *c)
{
	char err[256];
	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < N_OPTIONS; i++) {
		/* Per-listener defaults are all zero: a cleared listener_conf;
		 * bridge defaults are set by each connection line. */
		if (!options[i].def || options[i].scope != SCOPE_GLOBAL)
			continue;
		char val[64];
		snprintf(val, sizeof val, "%s", options[i].def);
		set_value(c, &options[i], val, err, sizeof err);
	}
	c->n_listeners = 1;
	c->listeners[0].port = 1883;
	snprintf(c->listeners[0].address, sizeof c->listeners[0].address, "127.0.0.1");
	c->log_stderr = true;
	c->log_mask = (1u << LVL_ERR) | (1u << LVL_WARN) | (1u << LVL_NOTICE) | (1u << LVL_INFO);
}

/* The rule of spb_namespace_valid (src/sparkplug, which config may not use):
 * a namespace is one non-empty topic level, no wildcard, not a $ topic. */
static bool sparkplug_namespace_ok(const char *ns)
{
	return ns[0] && ns[0] != '$' && !strpbrk(ns, "/+#");
}

int config_apply_line(struct config *c, const char *line, char *err, size_t errlen)
{
	char buf[1024];
	size_t len = strlen(line);
	while (len && isspace((unsigned char)line[len - 1]))
		len--;
	while (len && isspace((unsigned char)*line)) {
		line++;
		len--;
	}
	if (len == 0 || *line == '#')
		return 0;
	if (len >= sizeof buf) {
		snprintf(err, errlen, "line too long");
		return -1;
	}
	memcpy(buf, line, len);
	buf[len] = 0;
	size_t klen = strcspn(buf, " \t");
	const struct option *o = find_option(buf, klen);
	if (!o) {
		snprintf(err, errlen, "unknown option '%.*s'", (int)klen, buf);
		return -1;
	}
	char *val = buf + klen;
	while (*val == ' ' || *val == '\t')
		val++;
	if (!*val) {
		snprintf(err, errlen, "%s: missing value (expected %s)", o->name, o->args);
		return -1;
	}
	if (set_value(c, o, val, err, errlen))
		return -1;
	if (o->scope == SCOPE_GLOBAL &&
	    (o->offset == OFF(sparkplug_ndeath_timestamp) || o->offset == OFF(sparkplug_fleet_max)))
		c->sparkplug_line = c->cur_line;
	if (o->scope == SCOPE_GLOBAL && !strncmp(o->name, "cluster_", 8)) {
		note_source(c);
		config__cluster_line(c, o->name, c->cur_line ? c->cur_line : 1);
	}
	if (o->offset == OFF(sparkplug_namespace) && o->scope == SCOPE_GLOBAL &&
	    !sparkplug_namespace_ok(c->sparkplug_namespace)) {
		snprintf(err, errlen, "sparkplug_namespace: '%s' is not one topic level without + # / or a "
			 "leading $", c->sparkplug_namespace);
		return -1;
	}
	return 0;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	c->loading = path;
	char line[1024], msg[512];
	unsigned lineno = 0;
	int rc = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		c->cur_line = lineno;
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, errlen, "%s:%u: line too long", path, lineno);
			rc = -1;
			break;
		}
		if (config_apply_line(c, line, msg, sizeof msg)) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno, msg);
			rc = -1;
			break;
		}
	}
	fclose(f);
	c->cur_line = 0;
	c->loading = NULL;
	return rc;
}

/* Checks the TLS and protocol options of one listener. */
static int finish_listener(const struct config *c, const struct listener_conf *l, char *err, size_t errlen)
{
	const char *src = c->source[0] ? c->source : "(configuration)";
	const char *msg = NULL;
	uint32_t line = l->line;
	bool tls = LISTENER_TLS(l);
	if (tls && !l->keyfile.line) {
		msg = "certfile without keyfile";
		line = l->certfile.line;
	} else if (l->keyfile.line && !tls) {
		msg = "keyfile without certfile";
		line = l->keyfile.line;
	} else if (!tls && (l->cafile.line || l->capath.line || l->crlfile.line || l->ciphers[0] ||
			    l->ciphers_tls13[0] || l->require_certificate || l->use_identity_as_username)) {
		msg = "TLS options need certfile and keyfile on this listener";
	} else if ((l->require_certificate || l->use_identity_as_username || l->crlfile.line) &&
		   !l->cafile.line && !l->capath.line) {
		msg = "require_certificate, use_identity_as_username and crlfile need cafile or capath";
	}
	if (!msg)
		return 0;
	snprintf(err, errlen, "%s:%u: listener %u: %s", src, line, l->port, msg);
	return -1;
}

/* The aggregation options of a bridge topic line (tag false) or of a tag
 * (tag true), after the line's own checks: the choices need the window, and
 * a window without a choice of statistics gets all of them. Returns NULL or
 * what is wrong. */
static const char *finish_agg(struct agg_conf *a, const char *suffix, bool tag)
{
	if (!a->window_s && (a->stats || a->empty || a->non_numeric || suffix[0]))
		return tag ? "tag_aggregate_stats, tag_aggregate_empty, tag_aggregate_non_numeric and "
			     "tag_aggregate_suffix need tag_aggregate"
			   : "aggregate_stats, aggregate_empty, aggregate_non_numeric and aggregate_suffix need "
			     "aggregate";
	if (a->window_s && !a->stats)
		a->stats = AGG_ALL;
	return NULL;
}

/* Whether s is a tag's summary suffix: one or more levels below the tag's
 * topic, so it cannot name another tag, the status or a write. */
static bool tag_suffix_ok(const char *s)
{
	size_t n = strlen(s);
	return !n || (s[0] == '/' && s[n - 1] != '/' && !strstr(s, "//") && !strpbrk(s, "+#\x7f") &&
		      !has_control(s) && strcmp(s, "/set") && strncmp(s, "/set/", 5));
}

/* Checks one bridge section as a whole. */
static int finish_bridge(const struct config *c, struct bridge_conf *br, char *err, size_t errlen)
{
	const char *src = c->source[0] ? c->source : "(configuration)";
	const char *msg = NULL;
	uint32_t line = br->line;
	if (!br->n_addresses) {
		msg = "needs an address line";
	} else if (br->sparkplug && (!c->sparkplug_group_id[0] || !c->sparkplug_edge_node_id[0])) {
		msg = "bridge_sparkplug needs sparkplug_group_id and sparkplug_edge_node_id";
		line = br->sparkplug_line;
	} else if (br->sparkplug && br->cleansession_line && !br->cleansession) {
		msg = "cleansession false: the Sparkplug edge node's session is always clean (commands are not kept "
		      "for it while it is away)";
		line = br->cleansession_line;
	} else if (!br->n_topics && !br->sparkplug) {
		msg = "needs at least one topic line";
	} else if (br->certfile.line && !br->keyfile.line) {
		msg = "bridge_certfile without bridge_keyfile";
		line = br->certfile.line;
	} else if (br->keyfile.line && !br->certfile.line) {
		msg = "bridge_keyfile without bridge_certfile";
		line = br->keyfile.line;
	} else if (br->certfile.line && !br->cafile.line) {
		msg = "bridge_certfile needs bridge_cafile (TLS is on only with a CA to check the remote)";
		line = br->certfile.line;
	}
	for (unsigned i = 0; !msg && i < br->n_topics; i++) {
		struct bridge_topic *t = &br->topics[i];
		const struct agg_conf *a = &t->agg;
		if (t->deadband_field[0] && !t->has_deadband && !a->window_s)
			msg = "deadband_field without deadband or aggregate";
		else if ((t->report_by_exception || t->has_deadband || t->min_interval || a->window_s) &&
			 !(t->direction & BRIDGE_OUT))
			msg = "report_by_exception, deadband, min_interval and aggregate apply to out and both topic "
			      "lines only";
		else if (a->window_s && (t->report_by_exception || t->has_deadband || t->min_interval))
			msg = "aggregate summarises every message: not with report_by_exception, deadband or "
			      "min_interval on the same topic line";
		else if (strpbrk(t->agg_suffix, "+#"))
			msg = "aggregate_suffix must not contain '+' or '#'";
		else
			msg = finish_agg(&t->agg, t->agg_suffix, false);
		if (msg)
			line = t->line;
	}
	if (!msg)
		return 0;
	snprintf(err, errlen, "%s:%u: connection %s: %s", src, line, br->name, msg);
	return -1;
}

/* Checks one Modbus device section as a whole; sets its default prefix. */
static int finish_device(struct config *c, struct modbus_device_conf *d, char *err, size_t errlen)
{
	const char *src = c->source[0] ? c->source : "(configuration)";
	const char *msg = NULL;
	uint32_t line = d->line;
	if (!d->topic_prefix[0])
		snprintf(d->topic_prefix, sizeof d->topic_prefix, "modbus/%.56s", d->name);
	const char *p = d->topic_prefix;
	size_t plen = strlen(p);
	if (!d->host[0])
		msg = "needs a modbus_address line";
	else if (!d->n_tags)
		msg = "needs at least one modbus_tag line";
	else if (strpbrk(p, "+#\x7f") || has_control(p) || *p == '$' || *p == '/' || p[plen - 1] == '/' ||
		 strstr(p, "//"))
		msg = "modbus_topic_prefix must be a topic name without + # and empty levels, not under $";
	for (const struct modbus_device_conf *o = c->devices; !msg && o < d; o++)
		if (!strcmp(o->topic_prefix, p))
			msg = "modbus_topic_prefix is that of an earlier device";
	for (uint32_t i = d->first_tag; !msg && i < d->first_tag + d->n_tags; i++) {
		const struct modbus_tag_conf *t = &c->tags[i];
		line = t->line;
		if (t->scale == 0)
			msg = "tag_scale must not be 0";
		else if (t->writable && t->area != MODBUS_COIL && t->area != MODBUS_HOLDING_REGISTER)
			msg = "tag_writable: only coils and holding registers can be written";
		else if (t->writable && (t->type == MODBUS_BIT || t->type == MODBUS_STRING))
			msg = "tag_writable: bit:N and string tags cannot be written (write a coil or the whole register)";
		else if (t->write_min > t->write_max)
			msg = "tag_min is above tag_max";
		else if (t->type == MODBUS_STRING && (t->has_deadband || t->scale != 1 || t->offset != 0))
			msg = "a string tag takes no tag_scale, tag_offset or tag_deadband";
		else if (t->type == MODBUS_STRING && t->agg.window_s)
			msg = "tag_aggregate summarises numbers: not for a string tag";
		else if (t->agg.window_s && d->format == MODBUS_FORMAT_SPARKPLUG)
			msg = "tag_aggregate publishes JSON summaries on the tag's topic: not with modbus_format sparkplug";
		else if (!tag_suffix_ok(t->agg_suffix))
			msg = "tag_aggregate_suffix must start with / and hold topic levels without + # or empty "
			      "ones, not /set";
		else
			msg = finish_agg(&c->tags[i].agg, t->agg_suffix, true);
	}
	if (!msg && d->format == MODBUS_FORMAT_SPARKPLUG) {
		bool session = false;
		for (unsigned i = 0; i < c->n_bridges; i++)
			session |= c->bridges[i].sparkplug;
		line = d->line;
		if (!c->sparkplug_group_id[0] || !c->sparkplug_edge_node_id[0])
			msg = "modbus_format sparkplug needs sparkplug_group_id and sparkplug_edge_node_id";
		else if (!session)
			msg = "modbus_format sparkplug needs a bridge with bridge_sparkplug true (the edge node's session)";
		else if (d->group_messages)
			msg = "modbus_group_messages is for modbus_format json (a DDATA already carries a poll's changes)";
	}
	if (!msg)
		return 0;
	snprintf(err, errlen, "%s:%u: modbus_device %s: %s", src, line, d->name, msg);
	return -1;
}

int config_finish(struct config *c, char *err, size_t errlen)
{
	for (unsigned i = 0; i < c->n_devices; i++)
		if (finish_device(c, &c->devices[i], err, errlen))
			return -1;
	for (unsigned i = 0; i < c->n_bridges; i++)
		if (finish_bridge(c, &c->bridges[i], err, errlen))
			return -1;
	bool session = false;
	for (unsigned i = 0; i < c->n_bridges; i++)
		session |= c->bridges[i].sparkplug;
	if (c->sparkplug_primary_host_id[0] && !session) {
		snprintf(err, errlen, "%s:%u: sparkplug_primary_host_id needs a bridge with bridge_sparkplug true",
			 c->source[0] ? c->source : "(configuration)", c->sparkplug_primary_host_line);
		return -1;
	}
	for (unsigned i = 0; i < c->n_bridges; i++)
		for (unsigned j = 0; c->bridges[i].sparkplug && j < i; j++)
			if (c->bridges[j].sparkplug) {
				snprintf(err, errlen, "%s:%u: connection %s: bridge_sparkplug: the edge node has one "
					 "session, and connection %s (line %u) is it", c->source[0] ? c->source :
					 "(configuration)", c->bridges[i].sparkplug_line, c->bridges[i].name,
					 c->bridges[j].name, c->bridges[j].line);
				return -1;
			}
	for (unsigned i = 0; i < c->n_listeners; i++)
		for (unsigned j = i + 1; j < c->n_listeners; j++)
			if (c->listeners[i].port == c->listeners[j].port &&
			    !strcmp(c->listeners[i].address, c->listeners[j].address)) {
				snprintf(err, errlen, "listener %u %s is declared twice",
					 c->listeners[i].port, c->listeners[i].address);
				return -1;
			}
	for (unsigned i = 0; i < c->n_listeners; i++)
		if (finish_listener(c, &c->listeners[i], err, errlen))
			return -1;
	/* They would do nothing (their defaults, as the example file sets them, are fine). */
	if (!c->sparkplug_aware && (c->sparkplug_ndeath_timestamp || c->sparkplug_fleet_max != SPARKPLUG_FLEET_MAX_DEFAULT)) {
		snprintf(err, errlen, "%s:%u: sparkplug_ndeath_timestamp true and sparkplug_fleet_max need sparkplug_aware true",
			 c->source[0] ? c->source : "(configuration)", c->sparkplug_line);
		return -1;
	}
	if (c->http_port && !c->http_token_file.line && !c->password_file[0]) {
		snprintf(err, errlen, "%s:%u: http_listener needs http_token_file or password_file for its users",
			 c->source[0] ? c->source : "(configuration)", c->http_line);
		return -1;
	}
	for (unsigned i = 0; c->http_port && i < c->n_listeners; i++)
		if (c->listeners[i].port == c->http_port) {
			snprintf(err, errlen, "%s:%u: http_listener %u: the port of an MQTT listener",
				 c->source[0] ? c->source : "(configuration)", c->http_line, c->http_port);
			return -1;
		}
	if (config__cluster_finish(c, err, errlen))
		return -1;
	if (c->max_inflight_messages == 0)
		c->max_inflight_messages = 65535;
	return 0;
}

void config_print_help(void *file)
{
	FILE *f = file;
	for (size_t i = 0; i < N_OPTIONS; i++) {
		if (i && options[i].scope != options[i - 1].scope && options[i].scope != SCOPE_BRIDGE_TOPIC &&
		    options[i].scope != SCOPE_DEVICE_TAG)
			fputc('\n', f);
		fprintf(f, "  %s %s\n      %s", options[i].name, options[i].args, options[i].help);
		if (options[i].def)
			fprintf(f, " Default: %s.", options[i].def);
		fputc('\n', f);
	}
}
