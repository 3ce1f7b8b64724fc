/* The Sparkplug fleet view: every group's edge nodes and devices and every
 * host application, as the broker sees their births, deaths and STATE go
 * by. Pure and single-threaded: the broker keeps one behind a mutex and
 * feeds it each Sparkplug message it routes.
 *
 * Rules (Sparkplug 3.0, 5.x "Operational Behavior"):
 *  - NBIRTH: the node is online from then; its bdSeq and seq are remembered.
 *  - NDEATH: only when its bdSeq is the current NBIRTH's is the node (and
 *    every device of it) offline; another bdSeq is a stale death from an
 *    earlier session, counted and otherwise ignored
 *    [tck-id-message-flow-edge-node-birth-publish-will-message-payload-bdSeq].
 *  - every message of a node after its NBIRTH but NDEATH carries seq, one
 *    more than the last modulo 256; one that does not is a seq gap.
 *  - DBIRTH / DDEATH: the device is online / offline.
 *  - STATE: a host application's {"online", "timestamp"}; an older
 *    timestamp than the last one seen is stale and ignored.
 * The table holds at most `max` entries (nodes, devices and hosts): past it
 * new ones are counted, not tracked.
 */
#ifndef FM_SPARKPLUG_FLEET_H
#define FM_SPARKPLUG_FLEET_H
#include "sparkplug.h"

/* group/edge[/device], or a host id: ids hold no '/', so one string. */
#define SPB_FLEET_KEY_MAX 191

enum spb_fleet_kind { SPB_FLEET_NODE, SPB_FLEET_DEVICE, SPB_FLEET_HOST };

/* One tracked node, device or host (a value: copied out for listings). */
struct spb_fleet_entry {
	char key[SPB_FLEET_KEY_MAX + 1]; /* "group/edge", "group/edge/device" or the host id */
	uint8_t kind;                    /* enum spb_fleet_kind */
	bool online;
	bool has_bdseq;                  /* node: its NBIRTH carried bdSeq */
	bool has_seq;                    /* node: a seq to check the next against */
	uint8_t last_seq;                /* node */
	uint64_t bdseq;                  /* node: of the current NBIRTH */
	uint64_t since_ms;               /* wall ms of the last change of `online`; 0: never online */
	uint64_t last_birth_ms;          /* wall ms of the last NBIRTH / DBIRTH; host: of the last STATE */
	uint64_t last_message_ms;        /* wall ms of the last message of it */
	uint64_t state_timestamp;        /* host: the timestamp of its last STATE */
	uint32_t metrics;                /* metrics in the last birth */
	uint64_t births, deaths;         /* deaths: those that took it offline */
	uint64_t stale_deaths;           /* node: NDEATHs of another bdSeq; host: older STATEs */
	uint64_t seq_gaps;               /* node: messages whose seq was not the next */
	uint64_t messages;               /* of it (for a device: its own D* messages) */
};

/* Totals, for metrics and the alert. */
struct spb_fleet_totals {
	uint32_t entries;
	uint32_t nodes, nodes_online, devices, devices_online, hosts, hosts_online;
	uint32_t nodes_offline; /* born once and dead now (a node only heard of through a stale death is neither) */
	uint64_t seq_gaps, stale_deaths, node_deaths;
	uint64_t untracked;   /* messages of a node, device or host not tracked: the table was full */
	uint64_t malformed;   /* Sparkplug messages whose topic or payload could not be read */
};

/* What observing one message did, for the broker's log. */
enum spb_fleet_event {
	SPB_FLEET_NOTHING,
	SPB_FLEET_NODE_BIRTH,
	SPB_FLEET_NODE_DEATH,
	SPB_FLEET_STALE_DEATH,
	SPB_FLEET_SEQ_GAP,
	SPB_FLEET_FULL,       /* a new entry did not fit */
	SPB_FLEET_MALFORMED,  /* the payload could not be read: nothing changed */
};

struct spb_fleet;

/* A table of at most max entries (>= 1). NULL when out of memory. */
struct spb_fleet *spb_fleet_new(uint32_t max);
void spb_fleet_free(struct spb_fleet *f);

/* One Sparkplug message on topic t (spb_topic_parse returned 1) with
 * payload p[0..len), at wall time now_ms. Returns what it did. Out of
 * memory counts as full. */
enum spb_fleet_event spb_fleet_observe(struct spb_fleet *f, const struct spb_topic *t, const uint8_t *p,
				       size_t len, uint64_t now_ms);

/* A message under the namespace whose topic is not a Sparkplug topic. */
void spb_fleet_malformed_topic(struct spb_fleet *f);

void spb_fleet_totals(const struct spb_fleet *f, struct spb_fleet_totals *out);

/* Copies every entry, sorted by kind then key, into a new array (*out,
 * freed by the caller; NULL when there is none). Returns 0 or -FM_ENOMEM. */
int spb_fleet_list(const struct spb_fleet *f, struct spb_fleet_entry **out, uint32_t *n);

#endif
