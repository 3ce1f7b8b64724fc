#include "store_txn.h"
#include "../session/session.h"
#include "../base/err.h"
#include "../base/vec.h"
#include <stdlib.h>
#include <string.h>

struct store_txn *broker__txn_new(int worker)
{
	struct store_txn *t = calloc(1, sizeof *t);
	if (t)
		t->worker = worker;
	return t;
}

struct store_op *broker__txn_add(struct store_txn *t, uint8_t type)
{
	if (vec_grow(&t->ops, &t->cap_ops, t->n_ops, sizeof *t->ops, 4))
		return NULL;
	struct store_op *op = &t->ops[t->n_ops++];
	memset(op, 0, sizeof *op);
	op->type = type;
	return op;
}

int broker__txn_add_cb(struct store_txn *t, const struct store_cb *cb)
{
	if (vec_grow(&t->cbs, &t->cap_cbs, t->n_cbs, sizeof *t->cbs, 8))
		return -FM_ENOMEM;
	t->cbs[t->n_cbs++] = *cb;
	return 0;
}

int broker__txn_add_load(struct store_txn *t, struct store_load *ld)
{
	if (vec_grow(&t->loads, &t->cap_loads, t->n_loads, sizeof *t->loads, 4))
		return -FM_ENOMEM;
	t->loads[t->n_loads++] = ld;
	return 0;
}

void broker__txn_free(struct store_txn *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->n_ops; i++) {
		struct store_op *op = &t->ops[i];
		msg_unref(op->msg);
		session_unref(op->session);
		free(op->text);
		free(op->will_user);
		if (op->n_sub_ids > 1)
			free(op->sub_ids);
	}
	for (uint32_t i = 0; i < t->n_loads; i++) {
		struct store_load *ld = t->loads[i];
		for (uint32_t k = 0; k < ld->n; k++)
			msg_unref(ld->items[k].msg);
		session_unref(ld->session);
		free(ld);
	}
	free(t->loads);
	free(t->ops);
	free(t->cbs);
	free(t);
}
