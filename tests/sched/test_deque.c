/*
 * tests/sched/test_deque.c: the work-stealing deque, single-threaded and under stress.
 *
 * RF_TEST_CONCURRENT: the Makefile greps for this marker and also runs this binary under
 * ThreadSanitizer.
 *
 * The single-threaded tests check exact semantics against a reference model: pop is
 * LIFO, steal is FIFO, growth from the smallest capacity keeps every item, the bounds on
 * capacity hold. The stress tests run one owner (the main thread) and three thieves on
 * one deque and count, per item, how many times it was taken; every item must be taken
 * exactly once. Before each push the owner writes a plain (non-atomic) payload word that
 * the taker reads, so ThreadSanitizer checks that a push publishes what precedes it. The
 * first test pushes in random bursts with some popping, so the deque grows while thieves
 * steal; the second keeps the deque at one or two items, so the owner and the thieves race
 * for the last one almost every time.
 *
 * Threads never call cmocka's assertions (they longjmp); they count anomalies in atomics
 * that the main thread checks after the join. Every loop is bounded: the owner pushes a
 * fixed count, drains, then publishes `done`; a thief stops when it sees `done` and finds
 * the deque empty, which it then stays. Counts shrink fourfold under ThreadSanitizer (the
 * build defines RF_TSAN) or when the environment sets RF_TSAN.
 */
#include "engine/rf.h"

#include "sched/deque.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#define THIEVES                  3
#define STRESS_ITEMS             2000000u
#define RACE_ITEMS               500000u
#define GROW_ITEMS               100000u
#define SLOW_DIVISOR             4u
#define THIEF_SPINS_BEFORE_YIELD 64u
#define PAYLOAD(i)               (((i)*0x9e3779b97f4a7c15u) | 1u)
#define OWNER_DAWDLE_SPINS_MAX   256u

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

/* --- single-threaded --- */

/* The current array, for tests that look inside. */
static struct rf_deque_array *array_of(const struct rf_deque *q)
{
    /* relaxed: called from the owner thread or after the join; nothing races. */
    return atomic_load_explicit(&q->array, memory_order_relaxed);
}

static void test_empty(void **state)
{
    (void)state;
    RF_ALIGNED_CL struct rf_deque q;
    uint64_t x = 42;

    assert_int_equal(rf_deque_init(&q, 4), 0);
    assert_false(rf_deque_pop_owner(&q, &x));
    assert_int_equal(rf_deque_steal(&q, &x), 0);
    assert_int_equal(x, 42);
    assert_int_equal(rf_deque_size_approx(&q), 0);
    /* A failed pop must restore bottom: a push after it is still found. */
    assert_int_equal(rf_deque_push_owner(&q, 7), 0);
    assert_int_equal(rf_deque_size_approx(&q), 1);
    assert_true(rf_deque_pop_owner(&q, &x));
    assert_int_equal(x, 7);
    assert_false(rf_deque_pop_owner(&q, &x));
    assert_int_equal(rf_deque_size_approx(&q), 0);
    rf_deque_fini(&q);
}

static void test_lifo_fifo(void **state)
{
    (void)state;
    RF_ALIGNED_CL struct rf_deque q;
    uint64_t x;
    enum { N = 12 };

    assert_int_equal(rf_deque_init(&q, 4), 0);
    for (uint64_t i = 0; i < N; i++)
        assert_int_equal(rf_deque_push_owner(&q, i * 3), 0);
    assert_int_equal(rf_deque_size_approx(&q), N);
    for (uint64_t i = N; i-- > 0;) {
        assert_true(rf_deque_pop_owner(&q, &x));
        assert_int_equal(x, i * 3);
    }
    assert_false(rf_deque_pop_owner(&q, &x));

    for (uint64_t i = 0; i < N; i++)
        assert_int_equal(rf_deque_push_owner(&q, i * 5), 0);
    for (uint64_t i = 0; i < N; i++) {
        assert_int_equal(rf_deque_steal(&q, &x), 1);
        assert_int_equal(x, i * 5);
        assert_int_equal(rf_deque_size_approx(&q), N - 1 - i);
    }
    assert_int_equal(rf_deque_steal(&q, &x), 0);
    rf_deque_fini(&q);
}

static void test_mixed(void **state)
{
    (void)state;
    RF_ALIGNED_CL struct rf_deque q;
    uint64_t x;

    assert_int_equal(rf_deque_init(&q, 4), 0);
    assert_int_equal(rf_deque_push_owner(&q, 0), 0); /* tokens are opaque: 0 and ~0 too */
    assert_int_equal(rf_deque_push_owner(&q, UINT64_MAX), 0);
    assert_int_equal(rf_deque_push_owner(&q, 3), 0);
    assert_int_equal(rf_deque_steal(&q, &x), 1);
    assert_int_equal(x, 0);
    assert_true(rf_deque_pop_owner(&q, &x));
    assert_int_equal(x, 3);
    assert_int_equal(rf_deque_push_owner(&q, 4), 0);
    assert_int_equal(rf_deque_size_approx(&q), 2);
    assert_true(rf_deque_pop_owner(&q, &x));
    assert_int_equal(x, 4);
    assert_true(rf_deque_pop_owner(&q, &x)); /* the last item: the CAS path */
    assert_true(x == UINT64_MAX);
    assert_false(rf_deque_pop_owner(&q, &x));
    assert_int_equal(rf_deque_steal(&q, &x), 0);
    assert_int_equal(rf_deque_size_approx(&q), 0);
    rf_deque_fini(&q);
}

static void test_bounds(void **state)
{
    (void)state;
    RF_ALIGNED_CL struct rf_deque q;

    assert_int_equal(rf_deque_init(&q, RF_DEQUE_CAP_LOG2_MIN - 1), -EINVAL);
    assert_int_equal(rf_deque_init(&q, RF_DEQUE_CAP_LOG2_MAX + 1), -EINVAL);
    /* At the largest capacity growth must refuse. The array is only reserved (2 GiB of
     * untouched virtual memory); grow is called directly rather than filling it. */
    int rc = rf_deque_init(&q, RF_DEQUE_CAP_LOG2_MAX);
    if (rc == -ENOMEM) {
        print_message("SKIP growth bound: cannot reserve 2^%d slots\n", RF_DEQUE_CAP_LOG2_MAX);
        skip();
    }
    assert_int_equal(rc, 0);
    struct rf_deque_array *a = array_of(&q);
    assert_null(rf__deque_grow(&q, a, 0, 0));
    assert_ptr_equal(array_of(&q), a);
    assert_int_equal(rf_deque_push_owner(&q, 1), 0);
    rf_deque_fini(&q);
}

/* A reference deque for one thread: pushes at hi, pops at hi, steals at lo. */
struct model {
    uint64_t *v;
    size_t lo, hi;
};

static void grow_take(struct rf_deque *q, struct model *m, uint8_t *seen, bool steal)
{
    uint64_t x = 0;
    if (m->lo == m->hi) {
        assert_false(rf_deque_pop_owner(q, &x));
        assert_int_equal(rf_deque_steal(q, &x), 0);
        return;
    }
    if (steal) {
        assert_int_equal(rf_deque_steal(q, &x), 1);
        assert_int_equal(x, m->v[m->lo++]);
    } else {
        assert_true(rf_deque_pop_owner(q, &x));
        assert_int_equal(x, m->v[--m->hi]);
    }
    assert_true(x < GROW_ITEMS);
    seen[x]++;
}

static void test_growth(void **state)
{
    (void)state;
    RF_ALIGNED_CL struct rf_deque q;
    struct model m = {.v = calloc(GROW_ITEMS, sizeof(uint64_t))};
    uint8_t *seen = calloc(GROW_ITEMS, 1);
    uint64_t rng = 0x9e3779b97f4a7c15u;

    assert_non_null(m.v);
    assert_non_null(seen);
    assert_int_equal(rf_deque_init(&q, 4), 0);
    for (uint64_t i = 0; i < GROW_ITEMS; i++) {
        assert_int_equal(rf_deque_push_owner(&q, i), 0);
        m.v[m.hi++] = i;
        uint32_t r = rf_rand_below(&rng, 8);
        if (r < 2) /* take less than we push, so the deque grows */
            grow_take(&q, &m, seen, r == 0);
        assert_int_equal(rf_deque_size_approx(&q), m.hi - m.lo);
    }
    assert_true(array_of(&q)->mask + 1 >= GROW_ITEMS / 2);
    assert_non_null(q.retired);
    while (m.lo != m.hi)
        grow_take(&q, &m, seen, rf_rand_below(&rng, 2) == 0);
    grow_take(&q, &m, seen, false);
    for (uint64_t i = 0; i < GROW_ITEMS; i++)
        assert_int_equal(seen[i], 1);
    rf_deque_fini(&q);
    free(seen);
    free(m.v);
}

/* --- concurrent --- */

struct stress {
    RF_ALIGNED_CL struct rf_deque q;
    _Atomic uint8_t *taken; /* per item: how many times it was taken */
    uint64_t *payload;      /* plain memory the owner writes before pushing the item */
    uint64_t items;
    RF_ALIGNED_CL _Atomic uint32_t ready; /* thieves spinning, waiting for go */
    _Atomic bool go;
    RF_ALIGNED_CL _Atomic bool done;
    _Atomic uint64_t out_of_range; /* tokens never pushed: must stay 0 */
    _Atomic uint64_t bad_payload;  /* payload not visible to the taker: must stay 0 */
    _Atomic uint64_t stolen, lost_races, push_failed;
    uint64_t popped; /* owner only */
};

/* A counter or taken byte, read by the main thread after every thief was joined. */
static uint64_t joined(const _Atomic uint64_t *c)
{
    /* relaxed: pthread_join already ordered the thieves' updates before this read. */
    return atomic_load_explicit(c, memory_order_relaxed);
}

static uint8_t joined_u8(const _Atomic uint8_t *c)
{
    /* relaxed: pthread_join already ordered the thieves' updates before this read. */
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void take_item(struct stress *s, uint64_t x)
{
    if (x >= s->items) {
        /* relaxed: a counter read after join. */
        atomic_fetch_add_explicit(&s->out_of_range, 1, memory_order_relaxed);
        return;
    }
    if (s->payload[x] != PAYLOAD(x)) {
        /* relaxed: a counter read after join. */
        atomic_fetch_add_explicit(&s->bad_payload, 1, memory_order_relaxed);
    }
    /* relaxed: a counter read after join; duplicates show up as 2. */
    atomic_fetch_add_explicit(&s->taken[x], 1, memory_order_relaxed);
}

static bool owner_done(struct stress *s)
{
    /* acquire: pairs with the owner's release; after done the deque stays empty. */
    return atomic_load_explicit(&s->done, memory_order_acquire);
}

static void *thief_main(void *arg)
{
    struct stress *s = arg;
    uint64_t stolen = 0, lost = 0, idle = 0, x;

    /* relaxed: only a count; go's acquire below orders what matters. */
    atomic_fetch_add_explicit(&s->ready, 1, memory_order_relaxed);
    /* acquire: pairs with the owner's release of go; the deque was set up before. */
    while (!atomic_load_explicit(&s->go, memory_order_acquire))
        sched_yield();
    for (;;) {
        int r = rf_deque_steal(&s->q, &x);
        if (r == 1) {
            take_item(s, x);
            stolen++;
        } else if (r == -EAGAIN) {
            lost++;
        } else if (owner_done(s)) {
            break; /* steal found it empty after done: it stays empty */
        } else if (++idle % THIEF_SPINS_BEFORE_YIELD == 0) {
            sched_yield(); /* two cores, four threads: let the owner run */
        }
    }
    /* relaxed: counters read after join. */
    atomic_fetch_add_explicit(&s->stolen, stolen, memory_order_relaxed);
    /* relaxed: counters read after join. */
    atomic_fetch_add_explicit(&s->lost_races, lost, memory_order_relaxed);
    return NULL;
}

static void owner_push(struct stress *s, uint64_t item)
{
    s->payload[item] = PAYLOAD(item); /* a plain write the push must publish */
    if (rf_deque_push_owner(&s->q, item) != 0) {
        /* relaxed: a counter read after join. */
        atomic_fetch_add_explicit(&s->push_failed, 1, memory_order_relaxed);
    }
}

/* Pop up to `n` items; false once the deque was found empty. */
static bool owner_pop(struct stress *s, uint64_t n)
{
    uint64_t x;
    for (uint64_t i = 0; i < n; i++) {
        if (!rf_deque_pop_owner(&s->q, &x))
            return false;
        take_item(s, x);
        s->popped++;
    }
    return true;
}

/* Random bursts of 1..64 pushes, each followed by up to half as many pops. */
static void owner_bursts(struct stress *s)
{
    uint64_t rng = 0x2545f4914f6cdd1du, next = 0;
    while (next < s->items) {
        uint32_t burst = 1 + rf_rand_below(&rng, 64);
        for (uint32_t k = 0; k < burst && next < s->items; k++)
            owner_push(s, next++);
        owner_pop(s, rf_rand_below(&rng, burst / 2 + 1));
    }
}

/* Busy-wait a little so a thief gets a window between a push and the pop after it. */
static void owner_dawdle(uint32_t spins)
{
    for (volatile uint32_t i = 0; i < spins; i = i + 1)
        ;
}

/* Push one or two items, dawdle, then pop until empty: the last item is raced for each
 * time. */
static void owner_last_element(struct stress *s)
{
    uint64_t rng = 0x853c49e6748fea9bu, next = 0;
    /* Instrumented steals are slower: widen the window to keep the races frequent. */
    uint32_t dawdle_max = slow_build() ? OWNER_DAWDLE_SPINS_MAX * 8 : OWNER_DAWDLE_SPINS_MAX;
    while (next < s->items) {
        uint32_t burst = 1 + rf_rand_below(&rng, 2);
        for (uint32_t k = 0; k < burst && next < s->items; k++)
            owner_push(s, next++);
        owner_dawdle(rf_rand_below(&rng, dawdle_max));
        owner_pop(s, UINT64_MAX);
    }
}

/* After the join: every item taken exactly once, nothing else went wrong. */
static void check_stress(struct stress *s, const char *name, uint64_t ms)
{
    uint64_t items = s->items;
    uint64_t once = 0;
    for (uint64_t i = 0; i < items; i++) {
        uint8_t n = joined_u8(&s->taken[i]);
        if (n != 1)
            fail_msg("%s: item %" PRIu64 " taken %u times", name, i, (unsigned)n);
        once++;
    }
    print_message("%s: %" PRIu64 " items exactly once in %" PRIu64 " ms: owner popped %" PRIu64
                  ", thieves stole %" PRIu64 ", lost races %" PRIu64 ", final cap %" PRIu64 "\n",
                  name, once, ms, s->popped, joined(&s->stolen), joined(&s->lost_races),
                  array_of(&s->q)->mask + 1);
    assert_int_equal(joined(&s->out_of_range), 0);
    assert_int_equal(joined(&s->bad_payload), 0);
    assert_int_equal(joined(&s->push_failed), 0);
    assert_int_equal(s->popped + joined(&s->stolen), items);
    assert_int_equal(rf_deque_size_approx(&s->q), 0);
}

static void run_stress(const char *name, uint32_t cap_log2, uint64_t items,
                       void (*owner)(struct stress *))
{
    struct stress *s = aligned_alloc(RF_CACHELINE, sizeof(*s));
    assert_non_null(s);
    *s = (struct stress){.items = items};
    s->taken = calloc(items, sizeof(*s->taken));
    s->payload = calloc(items, sizeof(*s->payload));
    assert_non_null(s->taken);
    assert_non_null(s->payload);
    assert_int_equal(rf_deque_init(&s->q, cap_log2), 0);

    pthread_t th[THIEVES];
    for (int i = 0; i < THIEVES; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thief_main, s), 0);
    /* relaxed: a start gate only; thread creation already published the deque. */
    while (atomic_load_explicit(&s->ready, memory_order_relaxed) < THIEVES)
        sched_yield();
    /* release: thieves start stealing only once all of them are running. */
    atomic_store_explicit(&s->go, true, memory_order_release);
    uint64_t t0 = rf_now_ns();
    owner(s);
    owner_pop(s, UINT64_MAX); /* drain: afterwards the deque is empty for good */
    /* release: thieves that see done also see the deque's final, empty state. */
    atomic_store_explicit(&s->done, true, memory_order_release);
    for (int i = 0; i < THIEVES; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    uint64_t ms = (rf_now_ns() - t0) / 1000000;

    check_stress(s, name, ms);
    rf_deque_fini(&s->q);
    free(s->taken);
    free(s->payload);
    free(s);
}

static void test_stress_bursts(void **state)
{
    (void)state;
    run_stress("bursts", 6, scaled(STRESS_ITEMS), owner_bursts);
}

static void test_stress_last_element(void **state)
{
    (void)state;
    run_stress("last-element", 4, scaled(RACE_ITEMS), owner_last_element);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_lifo_fifo),
        cmocka_unit_test(test_mixed),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_stress_bursts),
        cmocka_unit_test(test_stress_last_element),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
