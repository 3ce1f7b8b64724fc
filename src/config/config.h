/* Broker configuration: one declarative option table (config.c), a line
 * parser that reports `file:line: message`, and the parsed values. */
#ifndef FM_CONFIG_H
#define FM_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_LISTENERS 16

enum queue_overflow { QUEUE_DROP_OLDEST, QUEUE_REJECT_NEW };
enum durability { DURABILITY_FULL, DURABILITY_NORMAL };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

enum listener_protocol { PROTO_MQTT, PROTO_WEBSOCKETS };
enum tls_min_version { TLS_MIN_12, TLS_MIN_13 };
enum identity_source { IDENTITY_CN, IDENTITY_SAN_DNS, IDENTITY_SAN_URI, IDENTITY_SAN_EMAIL };

/* A file named in the configuration, with the line that named it (for
 * start-up and reload errors, which come after parsing). */
struct conf_file {
	char path[512];
	uint32_t line; /* 0: not set */
};

/* One listener and the options written after its `listener` line. TLS is on
 * when certfile is set. */
struct listener_conf {
	uint16_t port;
	char address[64];
	uint32_t line;            /* of the `listener` line; 0 for the default listener */
	uint32_t protocol;        /* enum listener_protocol */
	struct conf_file cafile, capath, certfile, keyfile, crlfile;
	char ciphers[256];        /* TLS 1.2 cipher list; empty: OpenSSL's default */
	char ciphers_tls13[256];  /* TLS 1.3 cipher suites; empty: OpenSSL's default */
	uint32_t tls_version;     /* enum tls_min_version: the lowest accepted */
	bool require_certificate;
	bool use_identity_as_username;
	uint32_t identity_source; /* enum identity_source */
	uint32_t max_connections; /* 0: unlimited */
	char client_id_pattern[256]; /* the client ids a username may use (auth_clientid_allowed); empty: any */
};

/* True when the listener speaks TLS. */
#define LISTENER_TLS(l) ((l)->certfile.path[0] != 0)

#define CONFIG_MAX_BRIDGES 4
#define CONFIG_MAX_BRIDGE_ADDRESSES 8
#define CONFIG_MAX_BRIDGE_TOPICS 16

enum bridge_direction { BRIDGE_OUT = 1, BRIDGE_IN = 2, BRIDGE_BOTH = 3 };
enum bridge_protocol { BRIDGE_MQTTV311, BRIDGE_MQTTV50 };

/* Statistics a window's summary can carry (bits of agg_conf.stats): the
 * numbers' count, minimum, maximum, mean, first and last, and the window's
 * start and end times. */
enum agg_stat { AGG_COUNT, AGG_MIN, AGG_MAX, AGG_MEAN, AGG_FIRST, AGG_LAST, AGG_START, AGG_END, AGG__COUNT };
#define AGG_ALL ((1u << AGG__COUNT) - 1)
enum agg_empty { AGG_EMPTY_SKIP, AGG_EMPTY_COUNT };     /* a window without readings: nothing, or count 0 */
enum agg_non_numeric { AGG_NN_PASS, AGG_NN_DROP };      /* a payload without a number: forwarded as is, or not */

/* Aggregation: one summary per window of window_s seconds aligned to the
 * wall clock instead of every reading. Plain values, so a bridge topic line
 * or a collector's tag can carry one; the topic suffix of a summary is kept
 * by each (a tag's is shorter: every struct config holds 10,240 tags). */
struct agg_conf {
	uint32_t window_s;    /* 0: off */
	uint32_t stats;       /* 1u << enum agg_stat; config_finish sets AGG_ALL when none is named */
	uint32_t empty;       /* enum agg_empty */
	uint32_t non_numeric; /* enum agg_non_numeric */
};

/* One `topic PATTERN out|in|both QOS LOCAL_PREFIX REMOTE_PREFIX` line of a
 * bridge and the data reduction options written after it. */
struct bridge_topic {
	char pattern[256];
	char local_prefix[128], remote_prefix[128];
	uint8_t direction; /* enum bridge_direction */
	uint8_t qos;       /* of the remote subscription (in); out is always sent at QoS 1 */
	bool report_by_exception;
	bool has_deadband;
	double deadband;
	char deadband_field[256]; /* JSON field holding the number; empty: the payload is the number */
	uint32_t min_interval;   /* seconds; 0: off */
	struct agg_conf agg;
	char agg_suffix[64];     /* appended to the topic of a summary; empty: the reading's topic */
	uint32_t line;
};

struct bridge_address {
	char host[128];
	uint16_t port;
};

/* One `connection NAME` section. */
struct bridge_conf {
	char name[64];
	uint32_t line;
	struct bridge_address addresses[CONFIG_MAX_BRIDGE_ADDRESSES];
	unsigned n_addresses;
	struct bridge_topic topics[CONFIG_MAX_BRIDGE_TOPICS];
	unsigned n_topics;
	char remote_clientid[256], remote_username[256], remote_password[256];
	uint32_t protocol_version; /* enum bridge_protocol */
	struct conf_file cafile, certfile, keyfile;
	bool cleansession;
	uint32_t keepalive_interval;
	struct { uint32_t min, max; } restart_timeout; /* seconds */
	uint64_t max_spool_bytes;  /* 0: only the disk limits it */
	uint32_t spool_overflow;   /* enum queue_overflow */
	uint32_t max_msgs_per_sec; /* 0: unlimited */
	uint64_t max_bytes_per_sec;
	/* This link is the session of the Sparkplug edge node (sparkplug_group_id,
	 * sparkplug_edge_node_id): its will is the NDEATH, births go first. */
	bool sparkplug;
	uint32_t sparkplug_line; /* of its bridge_sparkplug line */
	uint32_t cleansession_line; /* of its cleansession line; 0: the default */
};

#define CONFIG_MAX_DEVICES 128
/* Of all devices together: 100 devices of 100 tags, the benchmark's plant,
 * and room; struct config holds them (136 bytes each). */
#define CONFIG_MAX_TAGS 10240

/* Modbus data areas (tables), with their function codes in collect/. */
enum modbus_area { MODBUS_COIL, MODBUS_DISCRETE_INPUT, MODBUS_INPUT_REGISTER, MODBUS_HOLDING_REGISTER };
enum modbus_type {
	MODBUS_BOOL,    /* a coil or discrete input */
	MODBUS_BIT,     /* one bit of a register */
	MODBUS_INT16, MODBUS_UINT16, MODBUS_INT32, MODBUS_UINT32, MODBUS_INT64, MODBUS_UINT64,
	MODBUS_FLOAT32, MODBUS_FLOAT64,
	MODBUS_STRING,  /* `count` registers, two characters each */
};
/* Byte and word order of a value, named by where the big-endian bytes
 * a,b,c,d land: abcd big endian (Modbus's own), badc bytes swapped in each
 * register, cdab registers swapped (low word first), dcba little endian. */
enum modbus_order { MODBUS_ABCD, MODBUS_BADC, MODBUS_CDAB, MODBUS_DCBA };
/* What a device publishes: JSON per tag, or Sparkplug B as a device of the
 * broker's edge node. */
enum modbus_format { MODBUS_FORMAT_JSON, MODBUS_FORMAT_SPARKPLUG };

/* One `modbus_tag NAME AREA ADDRESS TYPE [ORDER]` line and the tag_*
 * options after it. */
struct modbus_tag_conf {
	double scale, offset;      /* published value = raw x scale + offset */
	double deadband;           /* with has_deadband: a change this large is published */
	double write_min, write_max; /* range a write may set (engineering units); NaN: the type's */
	uint32_t interval_ms;      /* 0: the device's modbus_poll_interval */
	uint32_t max_silence;      /* seconds; by exception, published anyway after this long; 0: never */
	uint32_t line;
	uint16_t address;
	uint8_t area;              /* enum modbus_area */
	uint8_t type;              /* enum modbus_type */
	uint8_t order;             /* enum modbus_order */
	uint8_t bit;               /* MODBUS_BIT: 0..15 */
	uint8_t count;             /* MODBUS_STRING: registers */
	bool report_by_exception, has_deadband, writable;
	struct agg_conf agg;       /* tag_aggregate*: one summary per window instead of every poll */
	/* Kept short: every struct config holds CONFIG_MAX_TAGS of these. */
	char name[32];
	char unit[8];
	char agg_suffix[16];       /* "/LEVEL..." after PREFIX/NAME for summaries; empty: PREFIX/NAME */
};

/* One `modbus_device NAME` section; its tags are tags[first_tag ..
 * first_tag + n_tags) of the configuration. */
struct modbus_device_conf {
	char name[64];
	char host[128];
	char topic_prefix[128];    /* empty: modbus/NAME */
	char username[64];         /* the ACL's user for its readings; empty: anonymous */
	uint16_t port;
	bool group_messages;       /* also one message per poll group */
	uint32_t line;
	uint32_t unit_id;          /* 0..255 */
	uint32_t timeout_ms;       /* a request's response timeout */
	uint32_t poll_interval_ms; /* of tags without tag_interval */
	uint32_t offline_after;    /* failed requests in a row before offline */
	uint32_t max_gap;          /* registers read over to join two requests */
	uint32_t format;           /* enum modbus_format */
	struct { uint32_t min, max; } restart_timeout; /* ms */
	uint32_t first_tag, n_tags;
};

/* Other nodes a cluster node lists: a cluster has at most 16 nodes
 * (CLUSTER_MAX_NODES of src/cluster, which config cannot include). */
#define CONFIG_MAX_CLUSTER_PEERS 15
/* Node ids fit a signed 64-bit integer, so SQLite can store one. */
#define CONFIG_CLUSTER_ID_MAX INT64_MAX

struct config {
	struct listener_conf listeners[CONFIG_MAX_LISTENERS];
	unsigned n_listeners;
	bool allow_anonymous;
	uint32_t workers;
	uint32_t max_keepalive;
	uint32_t max_packet_size;
	uint32_t max_connect_packet_size; /* before CONNECT is accepted */
	uint32_t max_queued_messages;
	uint64_t max_queued_bytes;
	uint64_t max_queued_bytes_total; /* 0: half of the free disk (see queue_limits.c) */
	uint32_t queue_overflow;
	uint32_t max_inflight_messages;
	uint32_t receive_maximum;
	uint32_t max_topic_alias;
	uint32_t message_expiry_default;
	uint32_t persistent_client_expiration;
	bool will_on_shutdown;
	uint32_t connect_timeout;
	bool retain_available;
	/* Sparkplug B (issue 17): births copied under $sparkplug/certificates/,
	 * the fleet view; the namespace every Sparkplug topic starts with. */
	bool sparkplug_aware;
	bool sparkplug_ndeath_timestamp; /* NDEATH's timestamp set when routed */
	char sparkplug_namespace[64];
	uint32_t sparkplug_fleet_max;    /* nodes, devices and hosts the fleet view tracks */
#define SPARKPLUG_FLEET_MAX_DEFAULT 10000
#define SPARKPLUG_FLEET_MAX_TEXT "10000" /* the same, for the option table */
	uint32_t sparkplug_line;         /* of the last sparkplug_ndeath_timestamp or _fleet_max line */
	uint64_t max_output_buffer;
	uint32_t output_stall_timeout;  /* seconds above max_output_buffer before a disconnect; 0: never */
	uint32_t max_topic_length;      /* bytes of a topic name or filter */
	uint32_t max_topic_levels;      /* levels of a topic name or filter */
	uint32_t max_subscriptions_per_client; /* 0: unlimited */
	struct rate_conf {
		uint32_t msgs;  /* PUBLISH packets per second; 0: unlimited */
		uint64_t bytes; /* PUBLISH bytes per second; 0: unlimited */
	} max_publish_rate;
	uint32_t publish_rate_timeout;  /* seconds over the rate before a disconnect; 0: never */
	uint32_t tcp_keepalive;         /* seconds of idle before TCP probes; 0: off */
	uint32_t tcp_user_timeout;      /* TCP_USER_TIMEOUT in ms; 0: the kernel's */
	bool persistence;
	uint32_t durability;
	char persistence_location[512];
	char password_file[512];
	char acl_file[512];
	/* Logging: set by log_dest / log_type lines. */
	bool log_stderr, log_syslog;
	char log_file[512];
	unsigned log_mask;
	uint32_t log_format;            /* enum log_format */
	/* Operations: $SYS, the HTTP API, alerts. */
	uint32_t sys_interval;          /* seconds between $SYS updates; 0: off */
	uint16_t http_port;             /* 0: no HTTP listener */
	char http_address[64];
	uint32_t http_line;             /* of the http_listener line */
	struct conf_file http_token_file;
	/* Users of password_file granted the HTTP API (auth_name_listed); the
	 * others get 403. */
	char http_admin_users[256], http_readonly_users[256];
	uint64_t memory_limit;          /* bytes; 0: the memory alert is off */
	uint32_t alert_clients_drop_percent, alert_clients_drop_window;
	uint32_t alert_rate_drop_percent, alert_rate_window, alert_rate_baseline;
	uint32_t alert_memory_percent;
	uint32_t alert_subscriptions_growth_percent, alert_subscriptions_window;
	uint32_t alert_clients_drop_min, alert_queue_share_percent, alert_clear_after;
	/* The broker's Sparkplug edge node (its Modbus devices with
	 * modbus_format sparkplug); empty: none. */
	char sparkplug_group_id[64], sparkplug_edge_node_id[64];
	char sparkplug_primary_host_id[64]; /* empty: births at once */
	uint32_t sparkplug_primary_host_line;
	struct bridge_conf bridges[CONFIG_MAX_BRIDGES];
	unsigned n_bridges;
	struct modbus_device_conf devices[CONFIG_MAX_DEVICES];
	unsigned n_devices;
	struct modbus_tag_conf tags[CONFIG_MAX_TAGS];
	unsigned n_tags;
	/* Cluster (issue 14): cluster_node_id 0 = a single node. */
	uint64_t cluster_node_id;
	char cluster_address[272];      /* "ADDRESS:PORT" of cluster_listener, "" when none */
	struct config_cluster_peer {
		uint64_t id;
		char address[272];      /* its cluster_listener */
		char mqtt_address[272]; /* where its clients connect (Server Reference), "" when not given */
	} cluster_peers[CONFIG_MAX_CLUSTER_PEERS];
	unsigned n_cluster_peers;
	bool cluster_witness;
	bool cluster_join;
	unsigned cluster_election_timeout_ms, cluster_heartbeat_ms; /* defaults 500, 50 */
	/* The lines of the cluster options (0: not in the file), for config_finish's errors. */
	struct {
		uint32_t node_id, listener, role, election_timeout, heartbeat, join;
		uint32_t peers[CONFIG_MAX_CLUSTER_PEERS];
	} cluster_line;
	/* Which repeatable options were given, so the first line replaces the default. */
	bool seen_listener, seen_log_dest, seen_log_type;
	bool default_listener_changed; /* per-listener options before any listener line */
	/* Where listener and file lines come from, for errors found after parsing. */
	char source[512];
	const char *loading; /* the file being read, during config_load only */
	uint32_t cur_line;
};

/* Fills c with every option's default. */
void config_defaults(struct config *c);
/* Applies one line (comments and blank lines are fine). Returns 0, or -1 with
 * a message in err (without the file:line prefix). Pure: no I/O. */
int config_apply_line(struct config *c, const char *line, char *err, size_t errlen);
/* Reads a file. Returns 0, or -1 with "file:line: message" in err. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);
/* Checks values that depend on each other after all lines are read; errors
 * name the file and line of the option at fault. No file is opened. */
int config_finish(struct config *c, char *err, size_t errlen);
/* Writes every option with its argument form and help text (for --help). */
void config_print_help(void *file);

#endif
