/* The durable store: one SQLite database (WAL) in persistence_location,
 * written by one thread in group commits, read once at start-up. */
#ifndef FM_STORE_H
#define FM_STORE_H
#include "../broker/broker.h"
#include <stddef.h>

struct store;

#define STORE_FILE "ferromq.db"

/* Opens or creates the database in dir and brings its schema up to date.
 * durability: DURABILITY_FULL (fdatasync per group) or DURABILITY_NORMAL.
 * Returns NULL with a message in err. */
struct store *store_open(const char *dir, unsigned durability, char *err, size_t errlen);
/* Loads every session, subscription, queued message, QoS 2 state and retained
 * message into b, and logs what it found. Returns 0, or -1 with err set (a
 * damaged database: start-up must stop). */
int store_recover(struct store *st, struct broker *b, char *err, size_t errlen);
/* Starts the writer thread and connects it to b. */
int store_start(struct store *st, struct broker *b);
/* Commits what is queued, stops the writer and closes the database. */
void store_close(struct store *st);
/* Bytes on disk (database and WAL). */
uint64_t store_disk_bytes(const struct store *st);

#endif
