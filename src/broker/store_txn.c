#include "store_port.h"
#include <stdlib.h>
#include <string.h>

struct store_txn *store_txn_new(int worker)
{
	struct store_txn *t = calloc(1, sizeof *t);
	if (t)
		t->worker = worker;
	return t;
}

struct store_op *store_txn_add(struct store_txn *t, uint8_t type)
{
	if (t->n_ops == t->cap_ops) {
		uint32_t cap = t->cap_ops ? t->cap_ops * 2 : 4;
		struct store_op *n = realloc(t->ops, sizeof *n * cap);
		if (!n)
			return NULL;
		t->ops = n;
		t->cap_ops = cap;
	}
	struct store_op *op = &t->ops[t->n_ops++];
	memset(op, 0, sizeof *op);
	op->type = type;
	return op;
}

int store_txn_add_cb(struct store_txn *t, const struct store_cb *cb)
{
	if (t->n_cbs == t->cap_cbs) {
		uint32_t cap = t->cap_cbs ? t->cap_cbs * 2 : 8;
		struct store_cb *n = realloc(t->cbs, sizeof *n * cap);
		if (!n)
			return -1;
		t->cbs = n;
		t->cap_cbs = cap;
	}
	t->cbs[t->n_cbs++] = *cb;
	return 0;
}

void store_txn_free(struct store_txn *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->n_ops; i++) {
		struct store_op *op = &t->ops[i];
		msg_unref(op->msg);
		free(op->text);
		if (op->n_sub_ids > 1)
			free(op->sub_ids);
	}
	free(t->ops);
	free(t->cbs);
	free(t);
}
