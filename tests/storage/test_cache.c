/*
 * tests/storage/test_cache.c: the in-memory result cache and single flight.
 *
 * RF_TEST_CONCURRENT: the Makefile greps for this marker and also runs this binary under
 * ThreadSanitizer.
 *
 * Single-threaded tests pin the memory backend's contract with a fake clock: hit and miss,
 * replace, per-entry TTL (an entry is gone exactly at put time + ttl), least-recently-used
 * eviction order under the entry bound and under the byte bound (one stripe, so the order
 * is exact; byte sizes come from rf_memcache_cost, whose formula is checked on its own),
 * -E2BIG for a value too large or too deep, every counter, del, config validation, and
 * many sequential keys spreading over stripes. Single flight is checked for leader and
 * waiter roles, join order at land, leave before and after land, re-join after land, and
 * a thousand flights in one stripe (its table grows).
 *
 * Two stress tests run four threads for a fixed number of operations each. The cache one
 * hammers get/put/del on overlapping keys of a small cache under a shared clock that every
 * operation moves (so entries also expire mid-run), storing values that encode their key;
 * every hit must decode to the key asked for, and the bounds must hold whenever sampled.
 * The flight one joins, leaves and lands on a few keys: a per-key atomic counter proves
 * one leader at a time, and every queued waiter must end exactly once, handed back by a
 * land or removed by its own leave, never both. Threads never call cmocka's assertions
 * (they longjmp); they count anomalies that the main thread checks after the join. Counts
 * shrink fourfold under ThreadSanitizer (or when the environment sets RF_TSAN).
 */
#include "engine/rf.h"

#include "storage/cache.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define THREADS         4u
#define CACHE_OPS       200000u /* per thread */
#define FLIGHT_OPS      200000u /* per thread */
#define SLOW_DIVISOR    4u
#define HAMMER_KEYS     512u
#define HAMMER_ENTRIES  128u
#define HAMMER_BYTES    (48u * 1024u)
#define HAMMER_PAD_UNIT 40u /* a value for key i pads (i % 7) * this many bytes */
#define HAMMER_TTL_S    2u  /* 1 or 2 s: a few hundred operations of the shared clock */
#define HAMMER_TICK_MS  5u  /* the shared clock moves this much per operation */
#define FLIGHT_KEYS     16u
#define WAITERS_PER_THR 8u
#define SPREAD_KEYS     256u
#define MANY_FLIGHTS    1000u

static bool slow_build(void)
{
#ifdef RF_TSAN
    return true;
#else
    return getenv("RF_TSAN") != NULL;
#endif
}

static uint32_t scaled(uint32_t n)
{
    return slow_build() ? n / SLOW_DIVISOR : n;
}

/* --- helpers ------------------------------------------------------------------------------ */

struct fake_clock {
    uint64_t ms;
};

static uint64_t fake_now(void *ud)
{
    return ((struct fake_clock *)ud)->ms;
}

/* Sequential, not random, keys: the cache must spread them itself. */
static void key_of(uint32_t i, uint8_t key[16])
{
    memset(key, 0, 16);
    memcpy(key, &i, sizeof(i));
}

static struct rf_cache *cache_new(uint64_t entries_max, uint64_t bytes_max, uint32_t stripes,
                                  struct fake_clock *clk)
{
    struct rf_memcache_config cfg = {
        .entries_max = entries_max,
        .bytes_max = bytes_max,
        .stripes = stripes,
        .now_ms = clk ? fake_now : NULL,
        .now_ud = clk,
    };
    struct rf_cache *c = NULL;

    assert_int_equal(rf_memcache_new(&cfg, &c), 0);
    assert_non_null(c);
    assert_non_null(c->ops->name);
    return c;
}

static int get_key(struct rf_cache *c, uint32_t i, json_t **v)
{
    struct rf_cache_req req = {0};

    key_of(i, req.key);
    return rf_cache_get(c, &req, v);
}

static int put_key(struct rf_cache *c, uint32_t i, json_t *v, uint32_t ttl_s)
{
    uint8_t key[16];

    key_of(i, key);
    return rf_cache_put(c, key, v, ttl_s);
}

static void del_key(struct rf_cache *c, uint32_t i)
{
    uint8_t key[16];

    key_of(i, key);
    c->ops->del(c, key);
}

/* A hit on key i whose value is the integer `want`. */
static void expect_int(struct rf_cache *c, uint32_t i, json_int_t want)
{
    json_t *v = NULL;

    assert_int_equal(get_key(c, i, &v), 1);
    assert_non_null(v);
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), want);
    json_decref(v);
}

static void expect_miss(struct rf_cache *c, uint32_t i)
{
    json_t *v = (json_t *)(uintptr_t)0x1; /* a miss leaves it alone */

    assert_int_equal(get_key(c, i, &v), 0);
    assert_true(v == (json_t *)(uintptr_t)0x1);
}

static struct rf_cache_stats stats_of(struct rf_cache *c)
{
    struct rf_cache_stats st;

    c->ops->stats(c, &st);
    return st;
}

static uint64_t cost_of(const json_t *v)
{
    uint64_t cost = 0;

    assert_int_equal(rf_memcache_cost(v, UINT64_MAX, &cost), 0);
    return cost;
}

/* A string of n 'x'. */
static json_t *str_of(size_t n)
{
    char *s = malloc(n + 1);

    assert_non_null(s);
    memset(s, 'x', n);
    s[n] = '\0';
    json_t *v = json_string(s);
    free(s);
    assert_non_null(v);
    return v;
}

/* --- the memory backend, one thread ------------------------------------------------------- */

static void test_hit_miss(void **state)
{
    (void)state;
    struct fake_clock clk = {.ms = 1000};
    struct rf_cache *c = cache_new(0, 0, 0, &clk);
    json_t *v = json_integer(7), *got = NULL;

    expect_miss(c, 1);
    assert_int_equal(put_key(c, 1, v, 60), 0);
    assert_int_equal(v->refcount, 2); /* the cache took its own reference */
    assert_int_equal(get_key(c, 1, &got), 1);
    assert_ptr_equal(got, v); /* shared, not copied */
    assert_int_equal(v->refcount, 3);
    json_decref(got);
    expect_miss(c, 2);

    struct rf_cache_stats st = stats_of(c);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.puts, 1);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, cost_of(v));
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.expirations, 0);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.entries_max, 65536);
    assert_int_equal(st.bytes_max, 64ull << 20);

    c->ops->free(c);
    assert_int_equal(v->refcount, 1); /* free released the cache's reference */
    json_decref(v);
}

static void test_replace(void **state)
{
    (void)state;
    struct fake_clock clk = {.ms = 0};
    struct rf_cache *c = cache_new(16, 0, 1, &clk);
    json_t *v1 = json_integer(1), *v2 = str_of(300);
    json_t *got = NULL;

    assert_int_equal(put_key(c, 5, v1, 10), 0);
    assert_int_equal(put_key(c, 5, v2, 10), 0);
    assert_int_equal(v1->refcount, 1); /* the replaced value was released */
    assert_int_equal(get_key(c, 5, &got), 1);
    assert_ptr_equal(got, v2);
    json_decref(got);

    struct rf_cache_stats st = stats_of(c);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, cost_of(v2));
    assert_int_equal(st.puts, 2);
    assert_int_equal(st.evictions, 0);

    /* A replace also renews the TTL. */
    clk.ms = 9000;
    assert_int_equal(put_key(c, 5, v1, 10), 0);
    clk.ms = 15000;
    expect_int(c, 5, 1);
    c->ops->free(c);
    json_decref(v1);
    json_decref(v2);
}

static void test_ttl(void **state)
{
    (void)state;
    struct fake_clock clk = {.ms = 5000};
    struct rf_cache *c = cache_new(16, 0, 1, &clk);
    json_t *a = json_integer(10), *b = json_integer(20);

    assert_int_equal(put_key(c, 1, a, 10), 0); /* until 15000 */
    assert_int_equal(put_key(c, 2, b, 30), 0); /* until 35000 */
    clk.ms = 14999;
    expect_int(c, 1, 10);
    clk.ms = 15000;
    expect_miss(c, 1);
    expect_int(c, 2, 20);

    struct rf_cache_stats st = stats_of(c);
    assert_int_equal(st.expirations, 1);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, cost_of(b));
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.hits, 2);
    assert_int_equal(a->refcount, 1); /* the expired entry's reference was dropped */

    clk.ms = 35000;
    expect_miss(c, 2);
    st = stats_of(c);
    assert_int_equal(st.expirations, 2);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);

    /* Expired entries at the LRU tail are dropped by a later put, as expirations. */
    assert_int_equal(put_key(c, 3, a, 1), 0);
    assert_int_equal(put_key(c, 4, a, 1), 0);
    clk.ms += 1000;
    assert_int_equal(put_key(c, 5, b, 100), 0);
    st = stats_of(c);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.expirations, 4);
    assert_int_equal(st.evictions, 0);
    expect_int(c, 5, 20);

    /* A zero TTL or a NULL value is refused. */
    assert_int_equal(put_key(c, 6, a, 0), -EINVAL);
    assert_int_equal(put_key(c, 6, NULL, 5), -EINVAL);
    assert_int_equal(stats_of(c).errors, 2);
    c->ops->free(c);

    /* At the entry bound, an expired entry pushed out of the tail is an expiration. */
    c = cache_new(2, 0, 1, &clk);
    assert_int_equal(put_key(c, 1, a, 1), 0);
    assert_int_equal(put_key(c, 2, b, 100), 0);
    clk.ms += 1000;
    assert_int_equal(put_key(c, 3, b, 100), 0);
    st = stats_of(c);
    assert_int_equal(st.expirations, 1);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.entries, 2);
    expect_int(c, 2, 20);
    expect_int(c, 3, 20);
    c->ops->free(c);
    json_decref(a);
    json_decref(b);
}

static void test_lru_entries(void **state)
{
    (void)state;
    struct fake_clock clk = {.ms = 0};
    struct rf_cache *c = cache_new(3, 0, 1, &clk);
    json_t *v[7];

    for (uint32_t i = 0; i < 7; i++)
        v[i] = json_integer(i);
    for (uint32_t i = 1; i <= 3; i++)
        assert_int_equal(put_key(c, i, v[i], 60), 0);
    expect_int(c, 1, 1);                          /* 1 is now the most recent: order 1 3 2 */
    assert_int_equal(put_key(c, 4, v[4], 60), 0); /* evicts 2 */
    expect_miss(c, 2);
    assert_int_equal(put_key(c, 5, v[5], 60), 0); /* evicts 3 */
    expect_miss(c, 3);
    expect_int(c, 1, 1);
    assert_int_equal(put_key(c, 6, v[6], 60), 0); /* evicts 4 (1 was touched again) */
    expect_miss(c, 4);
    expect_int(c, 1, 1);
    expect_int(c, 5, 5);
    expect_int(c, 6, 6);

    struct rf_cache_stats st = stats_of(c);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.evictions, 3);
    assert_int_equal(st.entries_max, 3);
    for (uint32_t i = 2; i <= 4; i++)
        assert_int_equal(v[i]->refcount, 1); /* evicted values were released */
    c->ops->free(c);
    for (uint32_t i = 0; i < 7; i++)
        json_decref(v[i]);
}

static void test_lru_bytes(void **state)
{
    (void)state;
    struct fake_clock clk = {.ms = 0};
    json_t *small[5], *big = str_of(400);
    for (uint32_t i = 0; i < 5; i++)
        small[i] = str_of(100); /* same length: same cost */
    uint64_t cs = cost_of(small[0]), cb = cost_of(big);
    assert_true(cb > cs * 2); /* the big one displaces at least two */
    assert_true(cb <= cs * 3);
    struct rf_cache *c = cache_new(100, cs * 3 + cs / 2, 1, &clk);

    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(put_key(c, i, small[i], 60), 0);
    assert_int_equal(stats_of(c).bytes, cs * 3);
    json_t *got = NULL;
    assert_int_equal(get_key(c, 0, &got), 1); /* order 0 2 1 */
    json_decref(got);
    assert_int_equal(put_key(c, 3, small[3], 60), 0); /* evicts 1 */
    expect_miss(c, 1);
    assert_int_equal(stats_of(c).evictions, 1);

    /* The big value needs room for itself: 2 then 0 go (order was 3 0 2). */
    assert_int_equal(get_key(c, 3, &got), 1);
    json_decref(got);
    assert_int_equal(put_key(c, 4, big, 60), 0);
    expect_miss(c, 2);
    expect_miss(c, 0);
    assert_int_equal(get_key(c, 3, &got), 1);
    json_decref(got);
    assert_int_equal(get_key(c, 4, &got), 1);
    assert_ptr_equal(got, big);
    json_decref(got);

    struct rf_cache_stats st = stats_of(c);
    assert_int_equal(st.evictions, 3);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.bytes, cs + cb);
    assert_true(st.bytes <= st.bytes_max);
    c->ops->free(c);
    for (uint32_t i = 0; i < 5; i++) {
        assert_int_equal(small[i]->refcount, 1);
        json_decref(small[i]);
    }
    json_decref(big);
}

static void test_cost(void **state)
{
    (void)state;
    uint64_t base = cost_of(json_null()), got = 0;
    json_t *v = json_pack("{s:s, s:[i, n]}", "a", "xy", "bc", 5);

    assert_non_null(v);
    assert_true(base > 0); /* the entry's own struct */
    assert_int_equal(cost_of(json_true()), base);
    /* object + member "a" + "xy" + member "bc" + array + 2 slots + integer + null */
    uint64_t want = base + RF_MEMCACHE_VALUE_COST + (RF_MEMCACHE_MEMBER_COST + 2) +
                    (RF_MEMCACHE_VALUE_COST + 3) + (RF_MEMCACHE_MEMBER_COST + 3) +
                    RF_MEMCACHE_VALUE_COST + 2 * RF_MEMCACHE_SLOT_COST + RF_MEMCACHE_VALUE_COST;
    assert_int_equal(cost_of(v), want);
    assert_int_equal(rf_memcache_cost(v, want, &got), 0);
    assert_int_equal(got, want);
    got = 99;
    assert_int_equal(rf_memcache_cost(v, want - 1, &got), -E2BIG);
    assert_int_equal(got, 99); /* untouched on failure */
    assert_int_equal(rf_memcache_cost(json_null(), base - 1, &got), -E2BIG);
    json_decref(v);

    /* Nesting: exactly RF_MEMCACHE_DEPTH_MAX levels below the root pass, one more fails. */
    json_t *deep = json_array();
    for (uint32_t i = 0; i < RF_MEMCACHE_DEPTH_MAX; i++) {
        json_t *outer = json_array();
        assert_non_null(outer);
        assert_int_equal(json_array_append_new(outer, deep), 0);
        deep = outer;
    }
    assert_int_equal(rf_memcache_cost(deep, UINT64_MAX, &got), 0);
    json_t *deeper = json_array();
    assert_int_equal(json_array_append_new(deeper, deep), 0);
    assert_int_equal(rf_memcache_cost(deeper, UINT64_MAX, &got), -E2BIG);
    json_decref(deeper);
}

static void test_e2big(void **state)
{
    (void)state;
    struct fake_clock clk = {.ms = 0};
    struct rf_cache *c = cache_new(64, 4096, 4, &clk); /* 1 KiB per stripe */
    json_t *big = str_of(2000), *wide = json_array(), *ok = str_of(100);

    assert_int_equal(put_key(c, 1, ok, 60), 0);
    assert_int_equal(put_key(c, 2, big, 60), -E2BIG);
    /* A long array: the walk stops as soon as the estimate passes the share. */
    for (uint32_t i = 0; i < 100000; i++)
        assert_int_equal(json_array_append_new(wide, json_integer(i)), 0);
    assert_int_equal(put_key(c, 3, wide, 60), -E2BIG);
    /* Too big to replace an entry with: the old one stays. */
    assert_int_equal(put_key(c, 1, big, 60), -E2BIG);
    json_t *got = NULL;
    assert_int_equal(get_key(c, 1, &got), 1);
    assert_ptr_equal(got, ok);
    json_decref(got);

    struct rf_cache_stats st = stats_of(c);
    assert_int_equal(st.errors, 3);
    assert_int_equal(st.puts, 1);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, cost_of(ok));
    assert_int_equal(big->refcount, 1);
    assert_int_equal(wide->refcount, 1);
    c->ops->free(c);
    json_decref(big);
    json_decref(wide);
    json_decref(ok);
}

static void test_del_stats(void **state)
{
    (void)state;
    struct fake_clock clk = {.ms = 0};
    struct rf_cache *c = cache_new(0, 0, 8, &clk);
    json_t *a = json_integer(1), *b = str_of(50);

    assert_int_equal(put_key(c, 1, a, 60), 0);
    assert_int_equal(put_key(c, 2, b, 60), 0);
    assert_int_equal(stats_of(c).bytes, cost_of(a) + cost_of(b));
    del_key(c, 2);
    assert_int_equal(b->refcount, 1);
    del_key(c, 2); /* absent: nothing happens */
    del_key(c, 3);
    expect_miss(c, 2);
    expect_int(c, 1, 1);

    struct rf_cache_stats st = stats_of(c);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, cost_of(a));
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.puts, 2);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.expirations, 0);
    del_key(c, 1);
    st = stats_of(c);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    /* A re-put after del is a plain insert. */
    assert_int_equal(put_key(c, 1, a, 60), 0);
    expect_int(c, 1, 1);
    c->ops->free(c);
    json_decref(a);
    json_decref(b);
}

static void test_config(void **state)
{
    (void)state;
    struct rf_cache *c = NULL;
    struct rf_memcache_config cfg = {.stripes = 3};

    assert_int_equal(rf_memcache_new(&cfg, &c), -EINVAL);
    cfg.stripes = RF_MEMCACHE_STRIPES_MAX * 2;
    assert_int_equal(rf_memcache_new(&cfg, &c), -EINVAL);
    cfg.stripes = 0;
    cfg.entries_max = RF_MEMCACHE_ENTRIES_LIMIT + 1;
    assert_int_equal(rf_memcache_new(&cfg, &c), -EINVAL);
    assert_null(c);

    /* NULL config: the defaults, real clock. */
    assert_int_equal(rf_memcache_new(NULL, &c), 0);
    json_t *v = json_integer(3);
    assert_int_equal(put_key(c, 9, v, 1), 0);
    expect_int(c, 9, 3);
    c->ops->free(c);

    /* Fewer entries than stripes: the bound still holds exactly. */
    struct fake_clock clk = {.ms = 0};
    c = cache_new(2, 0, 64, &clk);
    for (uint32_t i = 0; i < 50; i++)
        assert_int_equal(put_key(c, i, v, 60), 0);
    struct rf_cache_stats st = stats_of(c);
    assert_int_equal(st.entries_max, 2);
    assert_true(st.entries >= 1);
    assert_true(st.entries <= 2);
    assert_int_equal(st.evictions, 50 - st.entries);
    c->ops->free(c);
    json_decref(v);
}

static void test_many_keys(void **state)
{
    (void)state;
    struct fake_clock clk = {.ms = 0};
    /* 64 stripes of 16 entries: 256 sequential keys fit only if they spread. */
    struct rf_cache *c = cache_new(1024, 0, 64, &clk);

    for (uint32_t i = 0; i < SPREAD_KEYS; i++) {
        json_t *v = json_integer(i * 3);
        assert_int_equal(put_key(c, i, v, 60), 0);
        json_decref(v);
    }
    for (uint32_t i = 0; i < SPREAD_KEYS; i++)
        expect_int(c, i, i * 3);
    struct rf_cache_stats st = stats_of(c);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.entries, SPREAD_KEYS);

    /* Overfill: each stripe fills to its share, none beyond. */
    for (uint32_t i = SPREAD_KEYS; i < 16 * 1024; i++) {
        json_t *v = json_integer(i * 3);
        assert_int_equal(put_key(c, i, v, 60), 0);
        json_decref(v);
    }
    st = stats_of(c);
    assert_int_equal(st.entries, 1024);
    assert_int_equal(st.puts, 16 * 1024);
    assert_int_equal(st.evictions, 16 * 1024 - 1024);
    uint32_t hits = 0;
    for (uint32_t i = 0; i < 16 * 1024; i++) {
        json_t *v = NULL;
        if (get_key(c, i, &v) == 1) {
            assert_int_equal(json_integer_value(v), i * 3);
            json_decref(v);
            hits++;
        }
    }
    assert_int_equal(hits, 1024);
    c->ops->free(c);
}

/* --- single flight, one thread -------------------------------------------------------------- */

static void key_str(const char *s, uint8_t key[16])
{
    memset(key, 0, 16);
    memcpy(key, s, strlen(s) < 16 ? strlen(s) : 16);
}

static void test_flight_basic(void **state)
{
    (void)state;
    struct rf_flight *f = NULL;
    struct rf_flight_waiter w[5];
    uint8_t a[16], b[16];

    key_str("alpha", a);
    key_str("beta", b);
    assert_int_equal(rf_flight_new(0, &f), 0);
    assert_int_equal(rf_flight_count(f), 0);
    assert_int_equal(rf_flight_join(f, a, &w[0]), 1);
    assert_int_equal(rf_flight_join(f, a, &w[1]), 0);
    assert_int_equal(rf_flight_join(f, a, &w[2]), 0);
    assert_int_equal(rf_flight_join(f, b, &w[3]), 1);
    assert_int_equal(rf_flight_join(f, a, &w[4]), 0);
    assert_int_equal(rf_flight_count(f), 2);

    struct rf_flight_waiter *ws = rf_flight_land(f, a);
    assert_ptr_equal(ws, &w[1]);
    assert_ptr_equal(ws->next, &w[2]);
    assert_ptr_equal(ws->next->next, &w[4]);
    assert_null(ws->next->next->next);
    assert_int_equal(rf_flight_count(f), 1);
    assert_null(rf_flight_land(f, b)); /* no waiters */
    assert_int_equal(rf_flight_count(f), 0);

    /* Re-join after land: a new flight, a new leader. */
    assert_int_equal(rf_flight_join(f, a, &w[1]), 1);
    assert_int_equal(rf_flight_join(f, a, &w[2]), 0);
    assert_int_equal(rf_flight_count(f), 1);
    ws = rf_flight_land(f, a);
    assert_ptr_equal(ws, &w[2]);
    assert_null(ws->next);
    assert_int_equal(rf_flight_count(f), 0);
    rf_flight_free(f);

    assert_int_equal(rf_flight_new(3, &f), -EINVAL);
    assert_int_equal(rf_flight_new(RF_FLIGHT_STRIPES_MAX * 2, &f), -EINVAL);
}

static void test_flight_leave(void **state)
{
    (void)state;
    struct rf_flight *f = NULL;
    struct rf_flight_waiter w[6];
    uint8_t a[16], b[16];

    key_str("alpha", a);
    key_str("beta", b);
    assert_int_equal(rf_flight_new(1, &f), 0);               /* one stripe: a and b share it */
    assert_int_equal(rf_flight_leave(f, a, &w[1]), -ENOENT); /* no flight */
    assert_int_equal(rf_flight_join(f, a, &w[0]), 1);
    assert_int_equal(rf_flight_join(f, b, &w[5]), 1);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(rf_flight_join(f, a, &w[i]), 0);
    assert_int_equal(rf_flight_leave(f, b, &w[2]), -ENOENT); /* another key's flight */
    assert_int_equal(rf_flight_leave(f, a, &w[0]), -ENOENT); /* the leader is no waiter */
    assert_int_equal(rf_flight_leave(f, a, &w[2]), 0);       /* middle */
    assert_int_equal(rf_flight_leave(f, a, &w[2]), -ENOENT); /* already gone */
    assert_int_equal(rf_flight_leave(f, a, &w[3]), 0);       /* tail */
    assert_int_equal(rf_flight_join(f, a, &w[4]), 0);        /* appends after the new tail */
    assert_int_equal(rf_flight_leave(f, a, &w[1]), 0);       /* head */
    assert_int_equal(rf_flight_join(f, a, &w[2]), 0);

    struct rf_flight_waiter *ws = rf_flight_land(f, a);
    assert_ptr_equal(ws, &w[4]);
    assert_ptr_equal(ws->next, &w[2]);
    assert_null(ws->next->next);
    /* After land the waiters were handed over: leave says so. */
    assert_int_equal(rf_flight_leave(f, a, &w[4]), -ENOENT);
    assert_int_equal(rf_flight_leave(f, a, &w[2]), -ENOENT);

    /* Every waiter leaves: the leader lands to an empty queue. */
    assert_int_equal(rf_flight_join(f, a, &w[0]), 1);
    assert_int_equal(rf_flight_join(f, a, &w[1]), 0);
    assert_int_equal(rf_flight_leave(f, a, &w[1]), 0);
    assert_null(rf_flight_land(f, a));
    assert_null(rf_flight_land(f, b));
    assert_int_equal(rf_flight_count(f), 0);
    rf_flight_free(f);
}

static void test_flight_many(void **state)
{
    (void)state;
    struct rf_flight *f = NULL;
    struct rf_flight_waiter *w = calloc(MANY_FLIGHTS, sizeof(*w));
    uint8_t key[16];

    assert_non_null(w);
    assert_int_equal(rf_flight_new(1, &f), 0); /* one stripe: its table must grow */
    for (uint32_t i = 0; i < MANY_FLIGHTS; i++) {
        key_of(i, key);
        assert_int_equal(rf_flight_join(f, key, &w[i]), 1);
    }
    assert_int_equal(rf_flight_count(f), MANY_FLIGHTS);
    for (uint32_t i = 0; i < MANY_FLIGHTS; i++) {
        key_of(i, key);
        assert_int_equal(rf_flight_join(f, key, &w[(i + 1) % MANY_FLIGHTS]), 0);
    }
    for (uint32_t i = 0; i < MANY_FLIGHTS; i++) {
        key_of(i, key);
        struct rf_flight_waiter *ws = rf_flight_land(f, key);
        assert_ptr_equal(ws, &w[(i + 1) % MANY_FLIGHTS]);
        assert_null(ws->next);
    }
    assert_int_equal(rf_flight_count(f), 0);
    rf_flight_free(f);
    free(w);
}

/* --- the memory backend, four threads ------------------------------------------------------- */

struct hammer {
    struct rf_cache *c;
    json_t *shared[HAMMER_KEYS]; /* one prebuilt value per key, shared by every thread */
    _Atomic uint64_t clock_ms;   /* moved by every operation */
    _Atomic uint64_t anomalies;
    _Atomic uint64_t gets, hits, puts, errors;
};

struct hammer_arg {
    struct hammer *h;
    uint32_t id;
};

static uint64_t hammer_now(void *ud)
{
    /* Relaxed: a counter used as a clock; the cache orders nothing by it. */
    return atomic_fetch_add_explicit(&((struct hammer *)ud)->clock_ms, HAMMER_TICK_MS,
                                     memory_order_relaxed);
}

static json_t *hammer_value(uint32_t k)
{
    size_t pad = (k % 7) * HAMMER_PAD_UNIT;
    char buf[7 * HAMMER_PAD_UNIT + 1];

    memset(buf, 'a' + (char)(k % 26), pad);
    buf[pad] = '\0';
    return json_pack("{s:I, s:s}", "k", (json_int_t)k, "pad", buf);
}

/* Does `v` encode key k? Reads the whole value (ThreadSanitizer checks its publication). */
static bool hammer_check(const json_t *v, uint32_t k)
{
    const json_t *jk = json_object_get(v, "k"), *jp = json_object_get(v, "pad");

    if (!json_is_integer(jk) || json_integer_value(jk) != (json_int_t)k || !json_is_string(jp))
        return false;
    const char *p = json_string_value(jp);
    size_t n = json_string_length(jp);
    if (n != (k % 7) * HAMMER_PAD_UNIT)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] != 'a' + (char)(k % 26))
            return false;
    return true;
}

static void hammer_bounds(struct hammer *h)
{
    struct rf_cache_stats st;

    h->c->ops->stats(h->c, &st);
    if (st.entries > st.entries_max || st.bytes > st.bytes_max)
        atomic_fetch_add(&h->anomalies, 1);
}

static void hammer_op(struct hammer *h, uint64_t *rng, uint64_t *cnt)
{
    uint32_t k = rf_rand_below(rng, HAMMER_KEYS), op = rf_rand_below(rng, 100);
    json_t *v = NULL;

    if (op < 60) {
        int rc = get_key(h->c, k, &v);
        cnt[0]++;
        if (rc == 1) {
            cnt[1]++;
            if (!hammer_check(v, k))
                atomic_fetch_add(&h->anomalies, 1);
            rf_cache_value_release(v);
        } else if (rc != 0) {
            atomic_fetch_add(&h->anomalies, 1);
        }
    } else if (op < 95) {
        bool fresh = op & 1; /* half the puts store a value only this thread has seen */
        v = fresh ? hammer_value(k) : h->shared[k];
        if (put_key(h->c, k, v, 1 + rf_rand_below(rng, HAMMER_TTL_S)) == 0)
            cnt[2]++;
        else
            cnt[3]++;
        if (fresh)
            rf_cache_value_release(v); /* the cache may have handed it to readers */
    } else {
        del_key(h->c, k);
    }
}

static void *hammer_main(void *arg)
{
    struct hammer_arg *a = arg;
    struct hammer *h = a->h;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (a->id + 1), cnt[4] = {0};
    uint32_t ops = scaled(CACHE_OPS);

    for (uint32_t i = 0; i < ops; i++) {
        hammer_op(h, &rng, cnt);
        if (a->id == 0 && i % 1024 == 0)
            hammer_bounds(h);
    }
    atomic_fetch_add(&h->gets, cnt[0]);
    atomic_fetch_add(&h->hits, cnt[1]);
    atomic_fetch_add(&h->puts, cnt[2]);
    atomic_fetch_add(&h->errors, cnt[3]);
    return NULL;
}

static void test_cache_hammer(void **state)
{
    (void)state;
    static struct hammer h; /* large: off the stack */
    struct rf_memcache_config cfg = {
        .entries_max = HAMMER_ENTRIES,
        .bytes_max = HAMMER_BYTES,
        .stripes = 8,
        .now_ms = hammer_now,
        .now_ud = &h,
    };
    pthread_t th[THREADS];
    struct hammer_arg args[THREADS];

    memset(&h, 0, sizeof(h));
    for (uint32_t k = 0; k < HAMMER_KEYS; k++)
        assert_non_null(h.shared[k] = hammer_value(k));
    assert_int_equal(rf_memcache_new(&cfg, &h.c), 0);
    for (uint32_t i = 0; i < THREADS; i++) {
        args[i] = (struct hammer_arg){.h = &h, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &args[i]), 0);
    }
    for (uint32_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);

    struct rf_cache_stats st = stats_of(h.c);
    print_message("cache: %lu hits, %lu misses, %lu puts, %lu evictions, %lu expirations\n",
                  (unsigned long)st.hits, (unsigned long)st.misses, (unsigned long)st.puts,
                  (unsigned long)st.evictions, (unsigned long)st.expirations);
    assert_int_equal(atomic_load(&h.anomalies), 0);
    assert_int_equal(atomic_load(&h.errors), 0);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.hits, atomic_load(&h.hits));
    assert_int_equal(st.hits + st.misses, atomic_load(&h.gets));
    assert_int_equal(st.puts, atomic_load(&h.puts));
    assert_true(st.hits > 0);
    assert_true(st.evictions > 0);
    assert_true(st.expirations > 0);
    assert_true(st.entries <= HAMMER_ENTRIES);
    assert_true(st.bytes <= HAMMER_BYTES);
    /* Whatever is left still decodes to its key. */
    uint64_t left = 0;
    for (uint32_t k = 0; k < HAMMER_KEYS; k++) {
        json_t *v = NULL;
        if (get_key(h.c, k, &v) == 1) {
            assert_true(hammer_check(v, k));
            json_decref(v);
            left++;
        }
    }
    assert_true(left <= HAMMER_ENTRIES);
    h.c->ops->free(h.c);
    for (uint32_t k = 0; k < HAMMER_KEYS; k++) {
        assert_int_equal(h.shared[k]->refcount, 1); /* the cache holds nothing any more */
        json_decref(h.shared[k]);
    }
}

/* --- single flight, four threads ------------------------------------------------------------ */

struct fwaiter {
    struct rf_flight_waiter w;
    _Atomic uint32_t handed; /* set by the lander that handed it back */
    uint32_t key;            /* owner thread only */
    bool queued;             /* owner thread only */
};

struct fhammer {
    struct rf_flight *f;
    _Atomic uint32_t leaders[FLIGHT_KEYS];
    _Atomic uint64_t anomalies;
    _Atomic uint64_t led, queued, handed, left, resumed;
};

struct fhammer_arg {
    struct fhammer *h;
    uint32_t id;
    struct fwaiter w[WAITERS_PER_THR];
};

static void fh_lead(struct fhammer *h, uint32_t k, const uint8_t key[16], uint64_t *rng)
{
    /* acq_rel: one RMW order per key; the count must be 0 when a leader arrives. */
    if (atomic_fetch_add_explicit(&h->leaders[k], 1, memory_order_acq_rel) != 0)
        atomic_fetch_add(&h->anomalies, 1);
    for (uint32_t i = rf_rand_below(rng, 64); i > 0; i--)
        __builtin_ia32_pause(); /* the "run": others may queue meanwhile */
    /* Before land: once landed, a new leader may arrive at once. */
    atomic_fetch_sub_explicit(&h->leaders[k], 1, memory_order_acq_rel);
    struct rf_flight_waiter *ws = rf_flight_land(h->f, key);
    uint64_t n = 0;
    while (ws) {
        struct rf_flight_waiter *next = ws->next; /* read before the owner may reuse it */
        struct fwaiter *fw = rf_container_of(ws, struct fwaiter, w);
        /* Release: the owner's acquire load sees the hand-back complete. */
        if (atomic_exchange_explicit(&fw->handed, 1, memory_order_acq_rel) != 0)
            atomic_fetch_add(&h->anomalies, 1);
        ws = next;
        n++;
    }
    atomic_fetch_add(&h->handed, n);
    atomic_fetch_add(&h->led, 1);
}

/* Take back a waiter that was handed over (spinning until the lander marks it). */
static void fh_reclaim(struct fhammer *h, struct fwaiter *fw)
{
    /* Acquire: pairs with the lander's exchange. */
    while (!atomic_load_explicit(&fw->handed, memory_order_acquire))
        sched_yield();
    atomic_store_explicit(&fw->handed, 0, memory_order_relaxed); /* owner only from here */
    fw->queued = false;
    atomic_fetch_add(&h->resumed, 1);
}

/* Give up waiting: removed from the queue, or too late and handed back. */
static void fh_leave(struct fhammer *h, struct fwaiter *fw)
{
    uint8_t key[16];

    key_of(fw->key, key);
    int rc = rf_flight_leave(h->f, key, &fw->w);
    if (rc == 0) {
        /* Acquire: had a lander handed it too, we would see its mark. */
        if (atomic_load_explicit(&fw->handed, memory_order_acquire))
            atomic_fetch_add(&h->anomalies, 1);
        fw->queued = false;
        atomic_fetch_add(&h->left, 1);
    } else if (rc == -ENOENT) {
        fh_reclaim(h, fw); /* landed: the lander hands it back */
    } else {
        atomic_fetch_add(&h->anomalies, 1);
    }
}

static void fh_step(struct fhammer *h, struct fhammer_arg *a, uint64_t *rng)
{
    struct fwaiter *fw = &a->w[rf_rand_below(rng, WAITERS_PER_THR)];
    uint8_t key[16];

    if (!fw->queued) {
        uint32_t k = rf_rand_below(rng, FLIGHT_KEYS);
        key_of(k, key);
        int rc = rf_flight_join(h->f, key, &fw->w);
        if (rc == 1) {
            fh_lead(h, k, key, rng);
        } else if (rc == 0) {
            fw->queued = true;
            fw->key = k;
            atomic_fetch_add(&h->queued, 1);
            if (rf_rand_below(rng, 4) == 0)
                fh_leave(h, fw); /* at once: the leader is most likely still running */
        } else {
            atomic_fetch_add(&h->anomalies, 1);
        }
        return;
    }
    /* Acquire: pairs with the lander's exchange. */
    if (atomic_load_explicit(&fw->handed, memory_order_acquire)) {
        fh_reclaim(h, fw);
        return;
    }
    if (rf_rand_below(rng, 2) == 0)
        return; /* keep waiting */
    fh_leave(h, fw);
}

static void *fhammer_main(void *arg)
{
    struct fhammer_arg *a = arg;
    uint64_t rng = 0xd1b54a32d192ed03ull * (a->id + 1);
    uint32_t ops = scaled(FLIGHT_OPS);

    for (uint32_t i = 0; i < ops; i++)
        fh_step(a->h, a, &rng);
    /* Every leader lands within its step: whatever is still queued will be handed back. */
    for (uint32_t i = 0; i < WAITERS_PER_THR; i++)
        if (a->w[i].queued)
            fh_reclaim(a->h, &a->w[i]);
    return NULL;
}

static void test_flight_hammer(void **state)
{
    (void)state;
    static struct fhammer h;
    static struct fhammer_arg args[THREADS];
    pthread_t th[THREADS];

    memset(&h, 0, sizeof(h));
    memset(args, 0, sizeof(args));
    assert_int_equal(rf_flight_new(4, &h.f), 0);
    for (uint32_t i = 0; i < THREADS; i++) {
        args[i].h = &h;
        args[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, fhammer_main, &args[i]), 0);
    }
    for (uint32_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);

    assert_int_equal(atomic_load(&h.anomalies), 0);
    assert_int_equal(rf_flight_count(h.f), 0);
    uint64_t queued = atomic_load(&h.queued), handed = atomic_load(&h.handed);
    uint64_t left = atomic_load(&h.left), resumed = atomic_load(&h.resumed);
    print_message("flights: %lu led, %lu queued, %lu handed back, %lu left\n",
                  (unsigned long)atomic_load(&h.led), (unsigned long)queued, (unsigned long)handed,
                  (unsigned long)left);
    assert_int_equal(queued, handed + left); /* each waiter ended exactly once */
    assert_int_equal(resumed, handed);
    assert_true(handed > 0);
    assert_true(left > 0);
    for (uint32_t k = 0; k < FLIGHT_KEYS; k++)
        assert_int_equal(atomic_load(&h.leaders[k]), 0);
    rf_flight_free(h.f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_miss),      cmocka_unit_test(test_replace),
        cmocka_unit_test(test_ttl),           cmocka_unit_test(test_lru_entries),
        cmocka_unit_test(test_lru_bytes),     cmocka_unit_test(test_cost),
        cmocka_unit_test(test_e2big),         cmocka_unit_test(test_del_stats),
        cmocka_unit_test(test_config),        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_flight_basic),  cmocka_unit_test(test_flight_leave),
        cmocka_unit_test(test_flight_many),   cmocka_unit_test(test_cache_hammer),
        cmocka_unit_test(test_flight_hammer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
