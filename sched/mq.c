/*
 * sched/mq.c: set-up and tear-down of the bounded MPSC queue (sched/mq.h). The push and pop
 * are inline in the header; this file only owns the slot array.
 */
#include "engine/rf.h"

#include <errno.h>
#include <stdlib.h>

#include "sched/mq.h"

int rf_mq_init(struct rf_mq *q, uint32_t capacity)
{
    uint32_t cap = rf_pow2_ceil(RF_MAX(capacity, 4u));

    q->slots = calloc(cap, sizeof(*q->slots));
    if (!q->slots)
        return -ENOMEM;
    q->capacity = cap;
    ck_ring_init(&q->ring, cap);
    return 0;
}

void rf_mq_fini(struct rf_mq *q)
{
    free(q->slots);
    q->slots = NULL;
}
