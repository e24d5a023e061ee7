/*
 * sched/mq.h: a bounded multi-producer, single-consumer queue of pointers, for messages
 * into a shard (a submission from an application thread, an execution finished on another
 * shard). It is Concurrency Kit's ck_ring used in its MPSC mode: producers on any thread
 * claim a slot with one CAS; the owning shard dequeues without any atomic read-modify-write.
 *
 * Bounded by construction: the capacity is fixed at init (a power of two; ck_ring keeps one
 * slot empty, so a ring of 2^k slots holds 2^k - 1 messages). A full queue makes
 * rf_mq_push_mpsc() return false, and the caller turns that into back-pressure: nothing is
 * dropped silently. The engine sizes each inbox so that a reserved in-flight slot always
 * has room for its messages, so on the submission path "full" never happens.
 *
 * Payload ordering: ck_ring's enqueue publishes the slot with a store fence before the
 * producer index moves, and the dequeue reads the slot after loading that index, so
 * everything the producer wrote before pushing is visible to the consumer after popping.
 * ThreadSanitizer cannot see ck's inline-assembly atomics; the release/acquire annotations
 * below tell it about that edge (scripts/tsan.supp silences ck's own index accesses only).
 */
#ifndef RF_SCHED_MQ_H
#define RF_SCHED_MQ_H

#include <stdbool.h>
#include <stdint.h>

#include <ck_ring.h>

#include "engine/rf.h"

struct rf_mq {
    struct ck_ring ring;          /* ck's indices: producer and consumer on own lines */
    struct ck_ring_buffer *slots; /* capacity entries, owned */
    uint32_t capacity;            /* power of two */
};

/* Capacity rounded up to a power of two (>= 4). -ENOMEM. The owner thread only. */
int rf_mq_init(struct rf_mq *q, uint32_t capacity);
void rf_mq_fini(struct rf_mq *q);

/* Any thread. `msg` must not be NULL. False when full. */
static inline bool rf_mq_push_mpsc(struct rf_mq *q, void *msg)
{
    RF_TSAN_RELEASE(q); /* ck_ring's fence orders the payload; tell TSan */
    return ck_ring_enqueue_mpsc(&q->ring, q->slots, msg);
}

/* The consumer (owning shard) only. False when empty. */
static inline bool rf_mq_pop_sc(struct rf_mq *q, void **msg)
{
    bool ok = ck_ring_dequeue_mpsc(&q->ring, q->slots, msg);
    if (ok)
        RF_TSAN_ACQUIRE(q); /* pairs with RF_TSAN_RELEASE in the push */
    return ok;
}

/* Messages queued now; racy snapshot, any thread. */
static inline uint32_t rf_mq_size(const struct rf_mq *q)
{
    return ck_ring_size(&q->ring);
}

#endif /* RF_SCHED_MQ_H */
