/*
 * sched/deque.c: the cold half of the work-stealing deque: setup, teardown and growth.
 *
 * The hot operations (push, pop, steal) are static inline in deque.h so the scheduler's
 * per-node path makes no call. What is here runs rarely: rf_deque_init() and
 * rf_deque_fini() with no concurrent users, and rf__deque_grow() on the owner thread when
 * a push finds the array full.
 *
 * Growth follows Le et al. (PPoPP 2013): allocate twice the slots, copy the live range
 * [top, bottom) slot by slot, publish the new array with a release store. Thieves keep
 * stealing during the copy; that is fine, because a thief that loaded the old array reads
 * slots the owner will never write again, and the CAS on top decides who owns an index no
 * matter which array its value was read from. The old array is therefore retired, not
 * freed: a thief may be between its load of the array pointer and its slot read for an
 * unbounded time. Retired arrays are freed by rf_deque_fini(); since each is half the
 * size of its successor, they never add up to more than the current one.
 *
 * Arrays are cache-line aligned so slot 0 does not share a line with a neighbour's data.
 */
#include "engine/rf.h"

#include "sched/deque.h"

#include <stdatomic.h>
#include <stdlib.h>

_Static_assert(ATOMIC_LONG_LOCK_FREE == 2, "int64_t/uint64_t atomics must be lock-free");
_Static_assert(ATOMIC_POINTER_LOCK_FREE == 2, "pointer atomics must be lock-free");
_Static_assert(offsetof(struct rf_deque, bottom) - offsetof(struct rf_deque, top) >= RF_CACHELINE,
               "top and bottom must be on separate cache lines");

/* An uninitialized array of 2^cap_log2 slots, or NULL. */
static struct rf_deque_array *rf_deque_array_new(uint32_t cap_log2)
{
    RF_ASSERT(cap_log2 <= RF_DEQUE_CAP_LOG2_MAX);
    size_t slots = (size_t)1 << cap_log2;
    size_t bytes = sizeof(struct rf_deque_array) + slots * sizeof(_Atomic uint64_t);
    bytes = (bytes + RF_CACHELINE - 1) & ~(size_t)(RF_CACHELINE - 1);

    struct rf_deque_array *a = aligned_alloc(RF_CACHELINE, bytes);
    if (a == NULL)
        return NULL;
    a->retired_next = NULL;
    a->mask = slots - 1;
    return a;
}

int rf_deque_init(struct rf_deque *q, uint32_t cap_log2)
{
    RF_ASSERT(q != NULL);
    RF_ASSERT(((uintptr_t)q & (RF_CACHELINE - 1)) == 0);
    if (cap_log2 < RF_DEQUE_CAP_LOG2_MIN || cap_log2 > RF_DEQUE_CAP_LOG2_MAX)
        return -EINVAL;

    struct rf_deque_array *a = rf_deque_array_new(cap_log2);
    if (a == NULL)
        return -ENOMEM;
    /* Not yet shared: whatever hands q to other threads (thread creation, a release
     * store) orders these initializations before their first use. */
    atomic_init(&q->top, 0);
    atomic_init(&q->bottom, 0);
    atomic_init(&q->array, a);
    q->retired = NULL;
    return 0;
}

void rf_deque_fini(struct rf_deque *q)
{
    RF_ASSERT(q != NULL);
    /* relaxed: no concurrent users by contract; the caller's join ordered them. */
    struct rf_deque_array *a = atomic_load_explicit(&q->array, memory_order_relaxed);
    free(a);
    while (q->retired != NULL) {
        struct rf_deque_array *next = q->retired->retired_next;
        free(q->retired);
        q->retired = next;
    }
    /* relaxed: not shared any more; NULL makes a use after fini crash at once. */
    atomic_store_explicit(&q->array, NULL, memory_order_relaxed);
}

/* Copy the live indices [t, b) from `from` to `to`; the index keeps its meaning, only
 * the slot it maps to changes. */
static void rf_deque_copy(struct rf_deque_array *to, const struct rf_deque_array *from, int64_t t,
                          int64_t b)
{
    for (int64_t i = t; i < b; i++) {
        /* relaxed: the owner wrote these slots itself. */
        uint64_t x =
            atomic_load_explicit(&from->slot[(uint64_t)i & from->mask], memory_order_relaxed);
        /* relaxed: `to` is unpublished; grow's release store publishes it. */
        atomic_store_explicit(&to->slot[(uint64_t)i & to->mask], x, memory_order_relaxed);
    }
}

struct rf_deque_array *rf__deque_grow(struct rf_deque *q, struct rf_deque_array *a, int64_t t,
                                      int64_t b)
{
    RF_ASSERT(b >= t);
    RF_ASSERT((uint64_t)(b - t) <= a->mask + 1);
    uint32_t cap_log2 = (uint32_t)__builtin_ctzll(a->mask + 1);
    if (cap_log2 >= RF_DEQUE_CAP_LOG2_MAX)
        return NULL;

    struct rf_deque_array *n = rf_deque_array_new(cap_log2 + 1);
    if (n == NULL)
        return NULL;
    rf_deque_copy(n, a, t, b);
    a->retired_next = q->retired;
    q->retired = a;
    /* release: thieves that acquire the pointer see the copied slots and the mask. */
    atomic_store_explicit(&q->array, n, memory_order_release);
    return n;
}
