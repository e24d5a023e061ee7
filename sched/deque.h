/*
 * sched/deque.h: the Chase-Lev work-stealing deque each shard keeps its ready nodes in.
 *
 * Items are uint64_t tokens the deque never interprets. One thread, the owner (the shard
 * that holds the deque), pushes and pops at the bottom, LIFO, so the node it just made
 * ready runs next while its data is still in cache. Any number of thieves (other shard
 * threads with nothing to do) take from the top, FIFO, so they get the oldest work. The
 * names carry the contract: only the owner may call the `_owner` functions, any thread
 * may call rf_deque_steal() and rf_deque_size_approx(); init and fini run with no
 * concurrent users at all.
 *
 * The algorithm and its memory orders are those of Le, Pop, Cohen and Zappa Nardelli,
 * "Correct and Efficient Work-Stealing for Weak Memory Models" (PPoPP 2013), figure 1,
 * with one deliberate change: push publishes `bottom` with a release store where the
 * paper has a release fence and a relaxed store. top and bottom are signed 64-bit
 * indices that only grow (2^63 pushes never happen), so `top <= bottom` comparisons need
 * no wrap-around care and a slot is `index & mask`. The owner's pop briefly lowers
 * bottom, then a seq_cst fence orders that against the thieves' read of bottom; the last
 * item is settled by a CAS on top, which owner and thieves race for.
 *
 * The circular array grows (owner only, in push when full) by doubling: the live items
 * are copied and the new array is published with a release store. A thief that loaded
 * the old array pointer may still read from it, and the owner cannot know when it has
 * stopped, so old arrays go on a retired list and are freed only by rf_deque_fini().
 * They sum to less than the current array, so at most twice the peak capacity is held.
 * The capacity is bounded by RF_DEQUE_CAP_LOG2_MAX; a push beyond it returns -ENOMEM,
 * which the scheduler treats as overload.
 *
 * struct rf_deque is caller-allocated and cache-line aligned (embed it, or allocate with
 * aligned_alloc(RF_CACHELINE, ...)): the thieves' CAS target `top` and the owner's
 * `bottom` live on separate lines so they do not false-share.
 */
#ifndef RF_SCHED_DEQUE_H
#define RF_SCHED_DEQUE_H

#include "engine/rf.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Smallest and largest capacity, as log2 of the slot count. 2^28 slots are 2 GiB. */
#define RF_DEQUE_CAP_LOG2_MIN 4
#define RF_DEQUE_CAP_LOG2_MAX 28

/* One circular array. Immutable after publication except for its slots; never freed
 * before rf_deque_fini(). */
struct rf_deque_array {
    struct rf_deque_array *retired_next; /* owner only: the next older retired array */
    uint64_t mask;                       /* slot count - 1; the count is a power of two */
    _Atomic uint64_t slot[];             /* accessed relaxed; bottom/top order them */
};

struct rf_deque {
    /* Thieves' line: CASed by every steal and by the owner's pop of the last item. */
    RF_ALIGNED_CL _Atomic int64_t top;
    /* Owner's line: written by the owner only, read by thieves. */
    RF_ALIGNED_CL _Atomic int64_t bottom;
    _Atomic(struct rf_deque_array *) array;
    struct rf_deque_array *retired; /* owner only: arrays replaced by growth */
};

/* Make `q` empty with 2^cap_log2 slots. 0, -EINVAL if cap_log2 is outside
 * [RF_DEQUE_CAP_LOG2_MIN, RF_DEQUE_CAP_LOG2_MAX], -ENOMEM. No concurrent users. */
int rf_deque_init(struct rf_deque *q, uint32_t cap_log2);

/* Free the current and every retired array. Items still inside are dropped. No
 * concurrent users: every thief must have stopped. */
void rf_deque_fini(struct rf_deque *q);

/* Internal: double the array (owner only, called by push when full). Returns the new,
 * published array, or NULL (nothing changed) at the bound or when allocation fails. */
struct rf_deque_array *rf__deque_grow(struct rf_deque *q, struct rf_deque_array *a, int64_t t,
                                      int64_t b);

/* Owner only. Push `item` at the bottom. 0, or -ENOMEM if the deque was full and could
 * not grow; then the item was not pushed. */
static inline int rf_deque_push_owner(struct rf_deque *q, uint64_t item)
{
    /* relaxed: only this thread writes bottom. */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    /* acquire: pairs with thieves' CAS on top, so their slot reads finish before we
     * reuse the slot (Le et al.). */
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    /* relaxed: only this thread writes array. */
    struct rf_deque_array *a = atomic_load_explicit(&q->array, memory_order_relaxed);
    uint64_t mask = a->mask;

    RF_DASSERT(b >= t);
    if (rf_unlikely((uint64_t)(b - t) > mask)) {
        a = rf__deque_grow(q, a, t, b);
        if (a == NULL)
            return -ENOMEM;
        mask = a->mask;
    }
    /* relaxed: the release store of bottom below publishes the slot. */
    atomic_store_explicit(&a->slot[(uint64_t)b & mask], item, memory_order_relaxed);
    /* release: publishes the slot (and whatever the token refers to) to thieves that
     * acquire bottom. Le et al. use fence(release) + relaxed store; a release store is
     * the same on x86 and ThreadSanitizer sees it, while it ignores standalone fences. */
    atomic_store_explicit(&q->bottom, b + 1, memory_order_release);
    return 0;
}

/* Owner only. Pop the newest item into *item; false if the deque was empty or a thief
 * took the last item first. */
static inline bool rf_deque_pop_owner(struct rf_deque *q, uint64_t *item)
{
    /* relaxed: only this thread writes bottom. */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed) - 1;
    /* relaxed: only this thread writes array. */
    struct rf_deque_array *a = atomic_load_explicit(&q->array, memory_order_relaxed);
    /* relaxed: the seq_cst fence below orders it before our read of top. */
    atomic_store_explicit(&q->bottom, b, memory_order_relaxed);
    /* seq_cst: store bottom / load top must not reorder (store-load), or a thief and we
     * could both take the same item; pairs with the fence in steal. */
    atomic_thread_fence(memory_order_seq_cst);
    /* relaxed: ordered by the fence above. */
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);

    if (t > b) {
        /* relaxed: empty; restore bottom, no slot to publish. */
        atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
        return false;
    }
    /* relaxed: we wrote this slot ourselves. */
    uint64_t x = atomic_load_explicit(&a->slot[(uint64_t)b & a->mask], memory_order_relaxed);
    if (t == b) {
        /* seq_cst: the last item; race thieves for it on top as Le et al. do. relaxed on
         * failure: we only learn that a thief won. */
        bool won = atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1, memory_order_seq_cst,
                                                           memory_order_relaxed);
        /* relaxed: the deque is now empty (top == b + 1); nothing to publish. */
        atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
        if (!won)
            return false;
    }
    *item = x;
    return true;
}

/* Any thread. Steal the oldest item into *item: 1 taken, 0 empty, -EAGAIN lost a race to
 * another thief or the owner (the deque may still hold items; the caller may retry). */
static inline int rf_deque_steal(struct rf_deque *q, uint64_t *item)
{
    /* acquire: as in Le et al.; pairs with other thieves' CAS on top. */
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    /* seq_cst: load top / load bottom must not reorder against the owner's pop, which
     * lowers bottom then reads top; pairs with the fence in pop. */
    atomic_thread_fence(memory_order_seq_cst);
    /* acquire: pairs with push's release store, so the slot write is visible. */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_acquire);

    if (t >= b)
        return 0;
    /* acquire (consume in Le et al.; compilers implement consume as acquire): pairs with
     * grow's release store, so the copied slots and the mask are visible. */
    struct rf_deque_array *a = atomic_load_explicit(&q->array, memory_order_acquire);
    /* relaxed: ordered by the acquire loads of bottom and array above. */
    uint64_t x = atomic_load_explicit(&a->slot[(uint64_t)t & a->mask], memory_order_relaxed);
    /* seq_cst: claims slot t against the owner's pop and other thieves (Le et al.).
     * relaxed on failure: we return without using anything read. */
    if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return -EAGAIN;
    *item = x;
    return 1;
}

/* Any thread. How many items the deque holds, as a racy snapshot; never negative. */
static inline size_t rf_deque_size_approx(const struct rf_deque *q)
{
    /* relaxed: a snapshot; no data is read through it. */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    /* relaxed: a snapshot; a pop or steal in flight may make top pass bottom. */
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    return b > t ? (size_t)(b - t) : 0;
}

#endif /* RF_SCHED_DEQUE_H */
