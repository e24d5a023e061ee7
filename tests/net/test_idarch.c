/*
 * tests/net/test_idarch.c: the idempotency archive (net/idarch.c).
 *
 * The archive is a FIFO ring indexed by a linear-probing table with backward-shift
 * deletion, so the tests that matter are the ones that exercise deletion: the ring wraps
 * many times over a small capacity (clusters form and are cut in every shape) and after
 * each step every key the ring still holds must be found with its own entry and every key
 * it dropped must be missed. Also: the graph and key both belong to the identity, an
 * update keeps one entry, and keep_ms makes old keys misses.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "net/idarch.h"

static struct rf_idarch_hit entry(uint32_t k, int64_t created_us)
{
    struct rf_idarch_hit h = {.version = k + 1, .status = RF_ST_SUCCEEDED,
                              .created_us = created_us};

    snprintf(h.id, sizeof(h.id), "ID%024u", k);
    return h;
}

static void key_of(uint32_t k, char *buf, size_t n)
{
    snprintf(buf, n, "key-%u", k);
}

static void test_limits(void **state)
{
    struct rf_idarch *a = NULL;

    (void)state;
    assert_int_equal(rf_idarch_new(0, 0, &a), -EINVAL);
    assert_int_equal(rf_idarch_new(RF_IDARCH_KEYS_MAX_LIMIT + 1, 0, &a), -EINVAL);
    assert_null(a);
    rf_idarch_free(NULL);
}

static void test_put_get_update(void **state)
{
    struct rf_idarch *a;
    struct rf_idarch_hit h = entry(7, 1000), got;

    (void)state;
    assert_int_equal(rf_idarch_new(4, 0, &a), 0);
    assert_false(rf_idarch_get(a, "g", "k", 2000, &got));
    rf_idarch_put(a, "g", "k", &h);
    assert_true(rf_idarch_get(a, "g", "k", 2000, &got));
    assert_string_equal(got.id, h.id);
    assert_int_equal(got.version, 8);
    assert_int_equal(got.status, RF_ST_SUCCEEDED);
    assert_int_equal(got.created_us, 1000);
    /* the graph is part of the identity, and the separator keeps ("ab","c") != ("a","bc") */
    assert_false(rf_idarch_get(a, "h", "k", 2000, &got));
    rf_idarch_put(a, "ab", "c", &h);
    assert_false(rf_idarch_get(a, "a", "bc", 2000, &got));
    /* an update keeps one entry */
    h.status = RF_ST_FAILED;
    rf_idarch_put(a, "g", "k", &h);
    assert_int_equal(rf_idarch_count(a), 2);
    assert_true(rf_idarch_get(a, "g", "k", 2000, &got));
    assert_int_equal(got.status, RF_ST_FAILED);
    rf_idarch_free(a);
}

static void test_keep_ms(void **state)
{
    struct rf_idarch *a;
    struct rf_idarch_hit h = entry(1, 1000000), got;

    (void)state;
    assert_int_equal(rf_idarch_new(8, 5000, &a), 0); /* 5 s */
    rf_idarch_put(a, "g", "k", &h);
    assert_true(rf_idarch_get(a, "g", "k", 1000000 + 5000000, &got));
    assert_false(rf_idarch_get(a, "g", "k", 1000000 + 5000001, &got));
    rf_idarch_free(a);
}

/* Wrap a ring of `cap` many times; after every put, the last cap keys are found with
 * their entries and the one that fell out is not. */
static void wrap(uint32_t cap, uint32_t total)
{
    struct rf_idarch *a;
    struct rf_idarch_hit got;
    char key[32];

    assert_int_equal(rf_idarch_new(cap, 0, &a), 0);
    for (uint32_t k = 0; k < total; k++) {
        struct rf_idarch_hit h = entry(k, k);
        key_of(k, key, sizeof(key));
        rf_idarch_put(a, "graph", key, &h);
        uint32_t lo = k + 1 > cap ? k + 1 - cap : 0;
        if (lo) {
            key_of(lo - 1, key, sizeof(key));
            assert_false(rf_idarch_get(a, "graph", key, 0, &got));
        }
        for (uint32_t j = lo; j <= k; j++) {
            struct rf_idarch_hit want = entry(j, j);
            key_of(j, key, sizeof(key));
            assert_true(rf_idarch_get(a, "graph", key, 0, &got));
            assert_string_equal(got.id, want.id);
            assert_int_equal(got.version, want.version);
        }
        assert_int_equal(rf_idarch_count(a), k + 1 < cap ? k + 1 : cap);
    }
    rf_idarch_free(a);
}

static void test_wraps(void **state)
{
    (void)state;
    wrap(1, 50);
    wrap(3, 500);  /* table of 8: long clusters, wrapping past the end */
    wrap(17, 3000);
    wrap(64, 5000);
}

/* Many keys: nothing is lost before the ring is full. */
static void test_many(void **state)
{
    enum { N = 200000 };
    struct rf_idarch *a;
    struct rf_idarch_hit got;
    char key[32];

    (void)state;
    assert_int_equal(rf_idarch_new(N, 0, &a), 0);
    for (uint32_t k = 0; k < N; k++) {
        struct rf_idarch_hit h = entry(k, k);
        key_of(k, key, sizeof(key));
        rf_idarch_put(a, "g", key, &h);
    }
    for (uint32_t k = 0; k < N; k++) {
        key_of(k, key, sizeof(key));
        assert_true(rf_idarch_get(a, "g", key, 0, &got));
        assert_int_equal(got.created_us, k);
    }
    key_of(N, key, sizeof(key));
    assert_false(rf_idarch_get(a, "g", key, 0, &got));
    rf_idarch_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_put_get_update),
        cmocka_unit_test(test_keep_ms),
        cmocka_unit_test(test_wraps),
        cmocka_unit_test(test_many),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
