/* Transactions and records (store_txn.c). */
#ifndef FM_BROKER_STORE_TXN_H
#define FM_BROKER_STORE_TXN_H
#include "store_port.h"

struct store_txn *broker__txn_new(int worker);
/* Appends a record; returns it zeroed but for `type`, or NULL when out of memory. */
struct store_op *broker__txn_add(struct store_txn *t, uint8_t type);
/* Appends a callback; returns 0 or -FM_ENOMEM. */
int broker__txn_add_cb(struct store_txn *t, const struct store_cb *cb);
/* Appends a read (taking ld); returns 0 or -FM_ENOMEM (ld is then not taken). */
int broker__txn_add_load(struct store_txn *t, struct store_load *ld);
void broker__txn_free(struct store_txn *t);

#endif
