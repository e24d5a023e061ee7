/*
 * storage/cache.h: the result cache behind nodes with a `cache` block, and single flight.
 *
 * A cache maps a lineage hash (16 bytes, engine/jcs.h) to a node's output (a JSON value)
 * for a time to live. The engine talks to it through one interface, struct rf_cache_ops,
 * so backends plug in: the in-memory backend here (the default, one per engine, shared by
 * every shard), and Redis with the storage issue. Lookups may complete at once (memory)
 * or later on the same shard (a network backend): rf_cache_get returns 1/0 for an
 * immediate hit/miss or -EINPROGRESS, and then calls req->done exactly once, on the shard
 * thread that asked, from that shard's ring.
 *
 * The memory backend is bounded by bytes and entries (both configurable), gives each entry
 * its own TTL and evicts least-recently-used entries first. It is split into stripes
 * (a power of two, at least 4 per shard), each with its own spin lock, hash table, LRU list
 * and share of the bounds, so shards never contend on one global lock; eviction is LRU
 * within a stripe, which approximates a global LRU as well as the hash spreads keys.
 * Values are shared, not copied: jansson's reference counts are atomic and cached values
 * are never modified (the engine hands them out read-only). The byte cost of an entry is
 * an estimate of the value's memory (strings, containers, a fixed cost per value) plus the
 * entry itself.
 *
 * Single flight (struct rf_flight): when several runs with the same lineage hash are in
 * flight at once, the first to join leads and runs the node; the others wait on an
 * intrusive waiter and are handed back when the leader lands, to look the cache up again
 * (a hit) or, if the leader failed, to run themselves (the first of them leading anew).
 */
#ifndef RF_STORAGE_CACHE_H
#define RF_STORAGE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <linux/time_types.h>

#include "ringflow.h" /* rf_op */

struct rf_cache;

/* An asynchronous lookup; caller-owned, valid until `done` ran. */
struct rf_cache_req {
    void (*done)(struct rf_cache_req *req, int res, json_t *value); /* res 1 hit (value a
                                                  new reference owned by the callee), 0 miss,
                                                  negative error (treated as a miss) */
    void *ud;
    uint8_t key[16];
};

struct rf_cache_stats {
    uint64_t hits, misses, puts, evictions, expirations, errors;
    uint64_t entries, bytes;         /* now */
    uint64_t entries_max, bytes_max; /* bounds */
};

struct rf_cache_ops {
    const char *name;
    /* 1 hit (*value a new reference owned by the caller), 0 miss, -EINPROGRESS (req->done
     * will be called later on this shard; *value untouched), other negative = error. */
    int (*get)(struct rf_cache *c, struct rf_cache_req *req, json_t **value);
    /* Store `value` (borrowed: the backend takes its own reference or serializes it) for
     * ttl_s seconds (> 0). 0, or a negative errno (the value did not fit: -E2BIG). */
    int (*put)(struct rf_cache *c, const uint8_t key[16], json_t *value, uint32_t ttl_s);
    /* Forget `key` if present. */
    void (*del)(struct rf_cache *c, const uint8_t key[16]);
    void (*stats)(struct rf_cache *c, struct rf_cache_stats *out);
    void (*free)(struct rf_cache *c);
};

struct rf_cache {
    const struct rf_cache_ops *ops;
};

static inline int rf_cache_get(struct rf_cache *c, struct rf_cache_req *req, json_t **value)
{
    return c->ops->get(c, req, value);
}
static inline int rf_cache_put(struct rf_cache *c, const uint8_t key[16], json_t *value,
                               uint32_t ttl_s)
{
    return c->ops->put(c, key, value, ttl_s);
}

/* Drop a reference (owned by the caller) to a value that other threads may hold too: every
 * value a get returned or a put was given. jansson's json_decref decrements with release
 * order only, so the thread whose decrement frees the value is not ordered after the other
 * holders' reads of it (ThreadSanitizer reports the free as a race, rightly under the C
 * memory model); this decrement is acq_rel. NULL and jansson's static singletons are
 * ignored, as json_decref does. */
static inline void rf_cache_value_release(json_t *v)
{
    /* Relaxed: only the static singletons hold (size_t)-1, and theirs never changes. */
    if (!v || __atomic_load_n(&v->refcount, __ATOMIC_RELAXED) == (size_t)-1)
        return;
    /* acq_rel: release our reads to the freer; acquire everyone's before freeing. */
    if (__atomic_sub_fetch(&v->refcount, 1, __ATOMIC_ACQ_REL) == 0)
        json_delete(v);
}

/* --- the remote tier ---------------------------------------------------------------------
 *
 * A cache shared by several processes (Redis, net/rcache.c), asked after the memory cache
 * misses and only by the local leader of the lineage's single flight, so one process sends
 * one lookup per lineage however many of its runs want it. It is asynchronous and it also
 * does single flight across processes: a lookup that misses takes the lineage's lease, and
 * a lookup that finds the lease taken waits for the holder's result (or for the lease to
 * end) before it answers. The answer is the caller's to act on:
 *
 *   1          a hit: `value` (owned by the callee) is the output;
 *   0          a miss, and the caller holds the lease: run, then store (success) or
 *              abandon (anything else), which gives the lease back;
 *   negative   the tier is unavailable (down, slow, full, -ECANCELED after a cancel):
 *              run without it; storing afterwards is still fine.
 *
 * The memory tier stays authoritative for the process: a remote hit is copied into it. */
struct rf_rcache_req {
    /* the caller's */
    void (*done)(struct rf_rcache_req *req, int res, json_t *value); /* on the asking shard */
    uint8_t key[16];
    uint32_t lease_ms; /* how long the lease lasts if this lookup takes it */
    /* the backend's, while the lookup runs */
    void *bud;
    rf_op timer;
    struct __kernel_timespec ts;
    uint64_t deadline_ms;
    uint32_t wait_ms;
    uint8_t state;
    bool canceled;
};

struct rf_rcache_ops {
    /* Start a lookup on the calling shard (req caller-owned until done). -EINPROGRESS:
     * req->done will be called later on this shard, never from inside fetch. Another
     * negative value: the tier is unavailable now, done is never called. */
    int (*fetch)(void *ud, struct rf_rcache_req *req);
    /* The caller gives up (its execution was canceled): done comes soon, maybe with
     * -ECANCELED. */
    void (*cancel)(void *ud, struct rf_rcache_req *req);
    /* A run of `key` succeeded with `value` (borrowed): keep it ttl_s seconds; leased: give
     * the lease back. Fire and forget. */
    void (*store)(void *ud, const uint8_t key[16], const json_t *value, uint32_t ttl_s,
                  bool leased);
    /* A leased run did not succeed: give the lease back. Fire and forget. */
    void (*abandon)(void *ud, const uint8_t key[16]);
};

/* --- the memory backend --------------------------------------------------------------- */

struct rf_memcache_config {
    uint64_t bytes_max;   /* 0 = 64 MiB */
    uint64_t entries_max; /* 0 = 65,536 */
    uint32_t stripes;     /* power of two; 0 = 64 */
    /* Milliseconds of a monotonic clock, for TTLs; NULL = CLOCK_MONOTONIC. Tests move it. */
    uint64_t (*now_ms)(void *ud);
    void *now_ud;
};

/* A new memory cache (cfg copied, NULL for defaults) owned by the caller; free it with
 * c->ops->free(c). -ENOMEM, -EINVAL. Any thread; the cache is safe for any number of
 * threads at once. */
int rf_memcache_new(const struct rf_memcache_config *cfg, struct rf_cache **out);

/* Limits of the memory backend. A config past them is refused (-EINVAL); a value nested
 * deeper than RF_MEMCACHE_DEPTH_MAX is not cached (-E2BIG). When entries_max is below the
 * stripe count, the cache uses fewer stripes (the largest power of two <= entries_max) so
 * that every stripe holds at least one entry. */
#define RF_MEMCACHE_STRIPES_MAX   4096u
#define RF_MEMCACHE_ENTRIES_LIMIT (1ull << 26)
#define RF_MEMCACHE_DEPTH_MAX     128u

/* The estimate behind the byte bound: RF_MEMCACHE_VALUE_COST per allocated JSON value
 * (true, false and null are shared singletons and cost nothing), a string's length plus
 * one, RF_MEMCACHE_MEMBER_COST plus the key's length plus one per object member,
 * RF_MEMCACHE_SLOT_COST per array element, and the entry's own struct. */
#define RF_MEMCACHE_VALUE_COST  48u
#define RF_MEMCACHE_MEMBER_COST 40u
#define RF_MEMCACHE_SLOT_COST   8u

/* The byte cost of caching `v` (borrowed, only read) in one entry. 0 and *out, or -E2BIG
 * when the estimate passes limit_bytes or `v` nests deeper than RF_MEMCACHE_DEPTH_MAX; the
 * walk stops there, so it visits at most limit_bytes / RF_MEMCACHE_SLOT_COST values. Any
 * thread. */
int rf_memcache_cost(const json_t *v, uint64_t limit_bytes, uint64_t *out);

/* --- single flight ---------------------------------------------------------------------- */

/* A waiter, embedded in whatever waits (the engine's rf_task). */
struct rf_flight_waiter {
    struct rf_flight_waiter *next; /* owned by the flight while queued */
};

struct rf_flight;

/* At most this many stripes (more is -EINVAL). */
#define RF_FLIGHT_STRIPES_MAX 4096u

/* stripes: power of two, 0 = 64. Owned by the caller. */
int rf_flight_new(uint32_t stripes, struct rf_flight **out);
void rf_flight_free(struct rf_flight *f); /* no flight may be in the air */

/* Join the flight of `key`. 1: there was none, the caller leads and must call
 * rf_flight_land() once its run is over (success or not). 0: a flight is in the air, `w`
 * is queued behind it. -ENOMEM: no memory to start a flight (run without one). Any
 * thread. */
int rf_flight_join(struct rf_flight *f, const uint8_t key[16], struct rf_flight_waiter *w);

/* The leader of `key` is done: the flight ends and its waiters (linked through `next`, in
 * join order, possibly none) are handed to the caller, who must resume each. Any thread. */
struct rf_flight_waiter *rf_flight_land(struct rf_flight *f, const uint8_t key[16]);

/* A waiter gives up (its execution was canceled): 0 when `w` was removed from the queue,
 * -ENOENT when the flight already landed and handed `w` over (it will be resumed). */
int rf_flight_leave(struct rf_flight *f, const uint8_t key[16], struct rf_flight_waiter *w);

/* Flights in the air now (tests, metrics). */
uint64_t rf_flight_count(struct rf_flight *f);

#endif /* RF_STORAGE_CACHE_H */
