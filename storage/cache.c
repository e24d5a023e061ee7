/*
 * storage/cache.c: the in-memory result cache and single flight (interface: cache.h).
 *
 * Both structures are split into stripes, a power of two of them, each on its own cache
 * lines with its own test-and-test-and-set spin lock. A key is a lineage hash (16 bytes,
 * already XXH3 output), but callers and tests may hand in any bytes, so key_mix() folds
 * them through a 64-bit finalizer: the low bits pick the stripe, the high 32 the bucket.
 * A lock is held only for pointer work on one stripe: costing a value, allocating an
 * entry, reading the clock and dropping evicted values (the last reference frees a whole
 * tree) all happen outside it. Values are shared across threads, so references are taken
 * and dropped with explicitly ordered atomics (value_retain, rf_cache_value_release), not
 * jansson's inline helpers, whose plain read and release-only decrement are not enough
 * for a free on one thread after reads on another.
 *
 * Memory backend. A stripe owns a chained hash table sized once for its share of
 * entries_max (load factor <= 1, never resized), an intrusive doubly linked LRU ring
 * through a sentinel (most recent at the head), its shares of entries_max and bytes_max
 * (the remainders spread so the shares add up to the bounds exactly) and its counters,
 * plain fields under the lock except `errors`, which failed puts bump without the lock.
 * Invariants under the lock: entries <= entries_max, bytes <= bytes_max, every entry is in
 * both the table and the ring, bytes is the sum of the entries' costs. A put costs the
 * value first (refusing with -E2BIG what alone exceeds the stripe's byte share), links the
 * new entry at the head, then evicts from the tail until within bounds (the new entry,
 * fitting alone, is never its own victim) and reaps a few expired entries at the tail. An
 * entry found expired, by a get or at the tail, is removed and counted as an expiration,
 * not an eviction. A get allocates nothing: a hit moves the entry to the head and takes a
 * reference to its value under the lock (the value stays alive however soon it is
 * evicted).
 *
 * Single flight. A stripe holds the flights in the air: a record per key with its waiter
 * queue (head and tail, FIFO), in a chained table that doubles as it fills, and a bounded
 * free list of records so a steady state allocates nothing. join either appends to the
 * queue or starts the flight (allocating outside the lock when the free list is empty,
 * then looking again); land unhooks the record and hands the queue back; leave unlinks a
 * waiter still queued. The number of flights in the air is a relaxed per-stripe counter
 * that rf_flight_count() adds up.
 */
#include "engine/rf.h"

#include "storage/cache.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "engine/alloc.h"

#define MC_BYTES_DEFAULT   (64ull << 20)
#define MC_ENTRIES_DEFAULT 65536u
#define STRIPES_DEFAULT    64u
#define MC_REAP_PER_PUT    4u    /* expired entries a put may drop from its stripe's tail */
#define FL_BUCKETS_INIT    16u
#define FL_BUCKETS_MAX     (1u << 16) /* per stripe; chains lengthen past it */
#define FL_FREE_MAX        64u        /* spare flight records kept per stripe */

/* --- shared pieces ------------------------------------------------------------------ */

/* 64 well-mixed bits from 16 key bytes (murmur3's finalizer over both halves). */
static uint64_t key_mix(const uint8_t key[16])
{
    uint64_t lo, hi, h;

    memcpy(&lo, key, sizeof(lo));
    memcpy(&hi, key + 8, sizeof(hi));
    h = lo ^ (hi * 0x9e3779b97f4a7c15ull);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static uint32_t bucket_of(uint64_t h, uint32_t bmask)
{
    return (uint32_t)(h >> 32) & bmask;
}

static bool stripes_valid(uint32_t n)
{
    return n > 0 && (n & (n - 1)) == 0 && n <= RF_MEMCACHE_STRIPES_MAX;
}

/* --- the byte cost of a value ------------------------------------------------------- */

static int cost_walk(json_t *v, uint32_t depth, uint64_t limit, uint64_t *acc);

static int cost_members(json_t *v, uint32_t depth, uint64_t limit, uint64_t *acc)
{
    int rc = 0;

    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        *acc += (uint64_t)n * RF_MEMCACHE_SLOT_COST;
        for (size_t i = 0; i < n && rc == 0 && *acc <= limit; i++)
            rc = cost_walk(json_array_get(v, i), depth + 1, limit, acc);
        return rc;
    }
    for (void *it = json_object_iter(v); it && rc == 0 && *acc <= limit;
         it = json_object_iter_next(v, it)) {
        *acc += RF_MEMCACHE_MEMBER_COST + json_object_iter_key_len(it) + 1;
        rc = cost_walk(json_object_iter_value(it), depth + 1, limit, acc);
    }
    return rc;
}

static int cost_walk(json_t *v, uint32_t depth, uint64_t limit, uint64_t *acc)
{
    if (depth > RF_MEMCACHE_DEPTH_MAX)
        return -E2BIG;
    switch (json_typeof(v)) {
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL:
        break; /* singletons: no memory of their own */
    case JSON_STRING:
        *acc += RF_MEMCACHE_VALUE_COST + json_string_length(v) + 1;
        break;
    case JSON_ARRAY:
    case JSON_OBJECT: {
        *acc += RF_MEMCACHE_VALUE_COST;
        int rc = cost_members(v, depth, limit, acc);
        if (rc)
            return rc;
        break;
    }
    default:
        *acc += RF_MEMCACHE_VALUE_COST;
        break;
    }
    return *acc > limit ? -E2BIG : 0;
}

/* --- the memory backend --------------------------------------------------------------- */

struct mc_link {
    struct mc_link *next, *prev;
};

struct mc_entry {
    struct mc_entry *hnext;   /* bucket chain; the free batch once unlinked */
    struct mc_entry **hpprev; /* the pointer that points here */
    struct mc_link lru;       /* the stripe's ring, most recent after the sentinel */
    json_t *value;            /* one reference, owned */
    uint64_t expires_ms;
    uint64_t cost;
    uint8_t key[16];
};

struct mc_stripe {
    _Atomic uint32_t lock;
    uint32_t bmask;
    struct mc_entry **buckets;
    struct mc_link lru; /* sentinel: next = most recent, prev = least */
    uint64_t entries, bytes;
    uint64_t entries_max, bytes_max; /* this stripe's shares */
    uint64_t hits, misses, puts, evictions, expirations;
    _Atomic uint64_t errors; /* relaxed: a count read only by stats() */
} RF_ALIGNED_CL;

struct memcache {
    struct rf_cache base; /* first: the ops cast back */
    uint32_t smask;
    uint64_t entries_max, bytes_max;
    uint64_t (*now_ms)(void *ud);
    void *now_ud;
    struct mc_stripe *stripes;
};

int rf_memcache_cost(const json_t *v, uint64_t limit_bytes, uint64_t *out)
{
    uint64_t acc = sizeof(struct mc_entry);

    if (acc > limit_bytes)
        return -E2BIG;
    /* The walk only reads; jansson's iterators want a non-const pointer. */
    int rc = cost_walk((json_t *)v, 0, limit_bytes, &acc);
    if (rc)
        return rc;
    *out = acc;
    return 0;
}

/* json_incref, with the singleton check as an atomic load: json_incref reads the count
 * with a plain load, which races with other holders' decrements. */
static json_t *value_retain(json_t *v)
{
    /* Relaxed: only the static singletons hold (size_t)-1, and theirs never changes. */
    if (__atomic_load_n(&v->refcount, __ATOMIC_RELAXED) != (size_t)-1)
        /* Relaxed: the caller holds a reference already; taking another orders nothing. */
        __atomic_add_fetch(&v->refcount, 1, __ATOMIC_RELAXED);
    return v;
}

static uint64_t mc_now(const struct memcache *mc)
{
    if (mc->now_ms)
        return mc->now_ms(mc->now_ud);
    return rf_now_ns() / 1000000u;
}

static struct mc_entry *mc_find(const struct mc_stripe *s, uint64_t h, const uint8_t key[16])
{
    struct mc_entry *e = s->buckets[bucket_of(h, s->bmask)];

    while (e && memcmp(e->key, key, sizeof(e->key)) != 0)
        e = e->hnext;
    return e;
}

static void lru_unlink(struct mc_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
}

static void lru_push_head(struct mc_stripe *s, struct mc_link *l)
{
    l->prev = &s->lru;
    l->next = s->lru.next;
    s->lru.next->prev = l;
    s->lru.next = l;
}

static void mc_link_entry(struct mc_stripe *s, uint64_t h, struct mc_entry *e)
{
    struct mc_entry **slot = &s->buckets[bucket_of(h, s->bmask)];

    e->hnext = *slot;
    e->hpprev = slot;
    if (*slot)
        (*slot)->hpprev = &e->hnext;
    *slot = e;
    lru_push_head(s, &e->lru);
    s->entries++;
    s->bytes += e->cost;
}

/* Take `e` out of the table and the ring and push it on the `dead` batch (freed after the
 * lock is dropped). */
static void mc_unlink_entry(struct mc_stripe *s, struct mc_entry *e, struct mc_entry **dead)
{
    RF_DASSERT(s->entries > 0);
    RF_DASSERT(s->bytes >= e->cost);
    *e->hpprev = e->hnext;
    if (e->hnext)
        e->hnext->hpprev = e->hpprev;
    lru_unlink(&e->lru);
    s->entries--;
    s->bytes -= e->cost;
    e->hnext = *dead;
    *dead = e;
}

static void mc_free_batch(struct mc_entry *e)
{
    while (e) {
        struct mc_entry *next = e->hnext;
        rf_cache_value_release(e->value); /* readers on other threads may hold it */
        rf_free(e);
        e = next;
    }
}

static struct mc_entry *mc_tail(struct mc_stripe *s)
{
    if (s->lru.prev == &s->lru)
        return NULL;
    return rf_container_of(s->lru.prev, struct mc_entry, lru);
}

/* Evict from the tail until the stripe is within its bounds, then drop up to
 * MC_REAP_PER_PUT expired entries left at the tail. `keep` (just linked at the head and
 * fitting alone) is never a victim. */
static void mc_trim(struct mc_stripe *s, const struct mc_entry *keep, uint64_t now,
                    struct mc_entry **dead)
{
    while (s->entries > s->entries_max || s->bytes > s->bytes_max) {
        struct mc_entry *v = mc_tail(s);
        RF_ASSERT(v != NULL);
        RF_ASSERT(v != keep);
        if (now >= v->expires_ms)
            s->expirations++;
        else
            s->evictions++;
        mc_unlink_entry(s, v, dead);
    }
    for (uint32_t i = 0; i < MC_REAP_PER_PUT; i++) {
        struct mc_entry *v = mc_tail(s);
        if (!v || v == keep || now < v->expires_ms)
            break;
        s->expirations++;
        mc_unlink_entry(s, v, dead);
    }
}

static struct mc_stripe *mc_stripe_of(struct memcache *mc, uint64_t h)
{
    return &mc->stripes[h & mc->smask];
}

static int mc_get(struct rf_cache *c, struct rf_cache_req *req, json_t **value)
{
    struct memcache *mc = (struct memcache *)c;
    uint64_t h = key_mix(req->key), now = mc_now(mc);
    struct mc_stripe *s = mc_stripe_of(mc, h);
    struct mc_entry *dead = NULL, *e;
    json_t *v = NULL;

    rf_spin_lock(&s->lock);
    e = mc_find(s, h, req->key);
    if (e && now >= e->expires_ms) {
        s->expirations++;
        mc_unlink_entry(s, e, &dead);
        e = NULL;
    }
    if (e) {
        lru_unlink(&e->lru);
        lru_push_head(s, &e->lru);
        v = value_retain(e->value); /* under the lock: the entry's reference keeps it alive */
        s->hits++;
    } else {
        s->misses++;
    }
    rf_spin_unlock(&s->lock);
    mc_free_batch(dead);
    if (!v)
        return 0;
    *value = v;
    return 1;
}

static int mc_put(struct rf_cache *c, const uint8_t key[16], json_t *value, uint32_t ttl_s)
{
    struct memcache *mc = (struct memcache *)c;
    uint64_t h = key_mix(key), cost = 0, now;
    struct mc_stripe *s = mc_stripe_of(mc, h);
    struct mc_entry *dead = NULL, *e, *old;
    int rc = -EINVAL;

    if (!value || ttl_s == 0)
        goto err;
    rc = rf_memcache_cost(value, s->bytes_max, &cost);
    if (rc)
        goto err;
    e = rf_malloc(sizeof(*e));
    rc = -ENOMEM;
    if (!e)
        goto err;
    now = mc_now(mc);
    memcpy(e->key, key, sizeof(e->key));
    e->value = value_retain(value);
    e->cost = cost;
    e->expires_ms = now + (uint64_t)ttl_s * 1000u;

    rf_spin_lock(&s->lock);
    old = mc_find(s, h, key);
    if (old)
        mc_unlink_entry(s, old, &dead); /* replaced: neither an eviction nor an expiration */
    mc_link_entry(s, h, e);
    s->puts++;
    mc_trim(s, e, now, &dead);
    rf_spin_unlock(&s->lock);
    mc_free_batch(dead);
    return 0;
err:
    /* Relaxed: a statistic; stats() takes no ordering from it. */
    atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
    return rc;
}

static void mc_del(struct rf_cache *c, const uint8_t key[16])
{
    struct memcache *mc = (struct memcache *)c;
    uint64_t h = key_mix(key);
    struct mc_stripe *s = mc_stripe_of(mc, h);
    struct mc_entry *dead = NULL, *e;

    rf_spin_lock(&s->lock);
    e = mc_find(s, h, key);
    if (e)
        mc_unlink_entry(s, e, &dead);
    rf_spin_unlock(&s->lock);
    mc_free_batch(dead);
}

static void mc_stats(struct rf_cache *c, struct rf_cache_stats *out)
{
    struct memcache *mc = (struct memcache *)c;

    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i <= mc->smask; i++) {
        struct mc_stripe *s = &mc->stripes[i];
        rf_spin_lock(&s->lock);
        out->hits += s->hits;
        out->misses += s->misses;
        out->puts += s->puts;
        out->evictions += s->evictions;
        out->expirations += s->expirations;
        out->entries += s->entries;
        out->bytes += s->bytes;
        rf_spin_unlock(&s->lock);
        /* Relaxed: a statistic, as it was counted. */
        out->errors += atomic_load_explicit(&s->errors, memory_order_relaxed);
    }
    out->entries_max = mc->entries_max;
    out->bytes_max = mc->bytes_max;
}

static void mc_free(struct rf_cache *c)
{
    struct memcache *mc = (struct memcache *)c;

    if (!mc)
        return;
    for (uint32_t i = 0; mc->stripes && i <= mc->smask; i++) {
        struct mc_stripe *s = &mc->stripes[i];
        struct mc_entry *dead = NULL, *e;
        while ((e = mc_tail(s)) != NULL)
            mc_unlink_entry(s, e, &dead);
        mc_free_batch(dead);
        rf_free(s->buckets);
    }
    rf_free(mc->stripes);
    rf_free(mc);
}

static const struct rf_cache_ops mc_ops = {
    .name = "memory",
    .get = mc_get,
    .put = mc_put,
    .del = mc_del,
    .stats = mc_stats,
    .free = mc_free,
};

/* Shares of `total` over `n` stripes that add up to it: the remainder goes one each to
 * the first stripes. */
static uint64_t share_of(uint64_t total, uint32_t n, uint32_t i)
{
    return total / n + (i < total % n ? 1 : 0);
}

static int mc_stripes_init(struct memcache *mc, uint32_t n)
{
    mc->stripes = rf_zalloc_aligned((size_t)n * sizeof(*mc->stripes), RF_CACHELINE);
    if (!mc->stripes)
        return -ENOMEM;
    mc->smask = n - 1;
    for (uint32_t i = 0; i < n; i++) {
        struct mc_stripe *s = &mc->stripes[i];
        s->entries_max = share_of(mc->entries_max, n, i);
        s->bytes_max = share_of(mc->bytes_max, n, i);
        s->lru.next = s->lru.prev = &s->lru; /* empty: mc_free can run from here on */
        atomic_init(&s->lock, 0);
        atomic_init(&s->errors, 0);
    }
    for (uint32_t i = 0; i < n; i++) {
        struct mc_stripe *s = &mc->stripes[i];
        RF_ASSERT(s->entries_max >= 1);
        uint32_t nb = rf_pow2_ceil((uint32_t)s->entries_max);
        s->buckets = rf_calloc(nb, sizeof(*s->buckets));
        if (!s->buckets)
            return -ENOMEM; /* the caller frees the stripes built so far */
        s->bmask = nb - 1;
    }
    return 0;
}

int rf_memcache_new(const struct rf_memcache_config *cfg, struct rf_cache **out)
{
    struct rf_memcache_config d = cfg ? *cfg : (struct rf_memcache_config){0};
    struct memcache *mc;
    int rc;

    d.bytes_max = d.bytes_max ? d.bytes_max : MC_BYTES_DEFAULT;
    d.entries_max = d.entries_max ? d.entries_max : MC_ENTRIES_DEFAULT;
    d.stripes = d.stripes ? d.stripes : STRIPES_DEFAULT;
    if (!stripes_valid(d.stripes) || d.entries_max > RF_MEMCACHE_ENTRIES_LIMIT)
        return -EINVAL;
    while (d.stripes > d.entries_max)
        d.stripes >>= 1; /* every stripe holds at least one entry */

    mc = rf_calloc(1, sizeof(*mc));
    if (!mc)
        return -ENOMEM;
    mc->base.ops = &mc_ops;
    mc->entries_max = d.entries_max;
    mc->bytes_max = d.bytes_max;
    mc->now_ms = d.now_ms;
    mc->now_ud = d.now_ud;
    rc = mc_stripes_init(mc, d.stripes);
    if (rc)
        goto err_free;
    *out = &mc->base;
    return 0;
err_free:
    mc_free(&mc->base);
    return rc;
}

/* --- single flight ---------------------------------------------------------------------- */

struct fl_rec {
    struct fl_rec *next; /* bucket chain, or the stripe's free list */
    struct rf_flight_waiter *head, *tail;
    uint8_t key[16];
};

struct fl_stripe {
    _Atomic uint32_t lock;
    uint32_t bmask;
    _Atomic uint32_t n; /* flights in the air: written under the lock, read relaxed */
    uint32_t nfree;
    struct fl_rec **buckets;
    struct fl_rec *free; /* spare records, at most FL_FREE_MAX */
} RF_ALIGNED_CL;

struct rf_flight {
    uint32_t smask;
    struct fl_stripe *stripes;
};

/* The link that points at the record of `key`, or at the NULL that ends its chain. */
static struct fl_rec **fl_findp(struct fl_stripe *s, uint64_t h, const uint8_t key[16])
{
    struct fl_rec **pp = &s->buckets[bucket_of(h, s->bmask)];

    while (*pp && memcmp((*pp)->key, key, sizeof((*pp)->key)) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Double the table when chains average more than two records. Called with the lock held;
 * rare (each doubling), and a failed allocation only leaves the chains longer. */
static void fl_maybe_grow(struct fl_stripe *s, uint32_t n)
{
    uint32_t nb = s->bmask + 1, nb2 = nb * 2;

    if (n <= 2 * nb || nb2 > FL_BUCKETS_MAX)
        return;
    struct fl_rec **b = rf_calloc(nb2, sizeof(*b));
    if (!b)
        return;
    for (uint32_t i = 0; i < nb; i++) {
        struct fl_rec *r = s->buckets[i];
        while (r) {
            struct fl_rec *next = r->next;
            uint32_t j = bucket_of(key_mix(r->key), nb2 - 1);
            r->next = b[j];
            b[j] = r;
            r = next;
        }
    }
    rf_free(s->buckets);
    s->buckets = b;
    s->bmask = nb2 - 1;
}

static struct fl_stripe *fl_stripe_of(struct rf_flight *f, uint64_t h)
{
    return &f->stripes[h & f->smask];
}

/* Keep `r` as a spare if there is room; otherwise return it for the caller to free after
 * dropping the lock. */
static struct fl_rec *fl_spare_put(struct fl_stripe *s, struct fl_rec *r)
{
    if (!r || s->nfree >= FL_FREE_MAX)
        return r;
    r->next = s->free;
    s->free = r;
    s->nfree++;
    return NULL;
}

static struct fl_rec *fl_spare_take(struct fl_stripe *s)
{
    struct fl_rec *r = s->free;

    if (r) {
        s->free = r->next;
        s->nfree--;
    }
    return r;
}

int rf_flight_join(struct rf_flight *f, const uint8_t key[16], struct rf_flight_waiter *w)
{
    uint64_t h = key_mix(key);
    struct fl_stripe *s = fl_stripe_of(f, h);
    struct fl_rec *r = NULL, **pp;

    w->next = NULL;
    rf_spin_lock(&s->lock);
    for (;;) {
        pp = fl_findp(s, h, key);
        if (*pp) {
            struct fl_rec *fl = *pp;
            if (fl->tail)
                fl->tail->next = w;
            else
                fl->head = w;
            fl->tail = w;
            r = fl_spare_put(s, r);
            rf_spin_unlock(&s->lock);
            rf_free(r);
            return 0;
        }
        if (!r)
            r = fl_spare_take(s);
        if (r)
            break;
        /* No spare: allocate outside the lock, then look again (a flight may have begun). */
        rf_spin_unlock(&s->lock);
        r = rf_malloc(sizeof(*r));
        if (!r)
            return -ENOMEM;
        rf_spin_lock(&s->lock);
    }
    memcpy(r->key, key, sizeof(r->key));
    r->head = r->tail = NULL;
    r->next = NULL;
    *pp = r;
    uint32_t n = atomic_load_explicit(&s->n, memory_order_relaxed) + 1;
    /* Relaxed: written only under the lock; readers want a snapshot. */
    atomic_store_explicit(&s->n, n, memory_order_relaxed);
    fl_maybe_grow(s, n);
    rf_spin_unlock(&s->lock);
    return 1;
}

struct rf_flight_waiter *rf_flight_land(struct rf_flight *f, const uint8_t key[16])
{
    uint64_t h = key_mix(key);
    struct fl_stripe *s = fl_stripe_of(f, h);
    struct rf_flight_waiter *ws;
    struct fl_rec *r, **pp;

    rf_spin_lock(&s->lock);
    pp = fl_findp(s, h, key);
    r = *pp;
    RF_ASSERT(r != NULL); /* only the leader lands, once */
    *pp = r->next;
    ws = r->head;
    uint32_t n = atomic_load_explicit(&s->n, memory_order_relaxed);
    RF_ASSERT(n > 0);
    /* Relaxed: written only under the lock; readers want a snapshot. */
    atomic_store_explicit(&s->n, n - 1, memory_order_relaxed);
    r = fl_spare_put(s, r);
    rf_spin_unlock(&s->lock);
    rf_free(r);
    return ws;
}

int rf_flight_leave(struct rf_flight *f, const uint8_t key[16], struct rf_flight_waiter *w)
{
    uint64_t h = key_mix(key);
    struct fl_stripe *s = fl_stripe_of(f, h);
    struct rf_flight_waiter *prev = NULL;
    struct fl_rec *r;
    int rc = -ENOENT;

    rf_spin_lock(&s->lock);
    r = *fl_findp(s, h, key);
    for (struct rf_flight_waiter *x = r ? r->head : NULL; x; prev = x, x = x->next) {
        if (x != w)
            continue;
        if (prev)
            prev->next = x->next;
        else
            r->head = x->next;
        if (r->tail == x)
            r->tail = prev;
        rc = 0;
        break;
    }
    rf_spin_unlock(&s->lock);
    return rc;
}

uint64_t rf_flight_count(struct rf_flight *f)
{
    uint64_t n = 0;

    for (uint32_t i = 0; i <= f->smask; i++)
        /* Relaxed: a snapshot for tests and metrics. */
        n += atomic_load_explicit(&f->stripes[i].n, memory_order_relaxed);
    return n;
}

void rf_flight_free(struct rf_flight *f)
{
    if (!f)
        return;
    for (uint32_t i = 0; f->stripes && i <= f->smask; i++) {
        struct fl_stripe *s = &f->stripes[i];
        /* Relaxed: the caller guarantees no other thread uses the flight any more. */
        RF_ASSERT(atomic_load_explicit(&s->n, memory_order_relaxed) == 0);
        struct fl_rec *r;
        while ((r = fl_spare_take(s)) != NULL)
            rf_free(r);
        rf_free(s->buckets);
    }
    rf_free(f->stripes);
    rf_free(f);
}

int rf_flight_new(uint32_t stripes, struct rf_flight **out)
{
    struct rf_flight *f;

    stripes = stripes ? stripes : STRIPES_DEFAULT;
    if (!stripes_valid(stripes) || stripes > RF_FLIGHT_STRIPES_MAX)
        return -EINVAL;
    f = rf_calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->smask = stripes - 1;
    f->stripes = rf_zalloc_aligned((size_t)stripes * sizeof(*f->stripes), RF_CACHELINE);
    if (!f->stripes)
        goto err_free;
    for (uint32_t i = 0; i < stripes; i++) {
        struct fl_stripe *s = &f->stripes[i];
        s->buckets = rf_calloc(FL_BUCKETS_INIT, sizeof(*s->buckets));
        if (!s->buckets)
            goto err_free;
        s->bmask = FL_BUCKETS_INIT - 1;
        atomic_init(&s->lock, 0);
        atomic_init(&s->n, 0);
    }
    *out = f;
    return 0;
err_free:
    rf_flight_free(f);
    return -ENOMEM;
}
