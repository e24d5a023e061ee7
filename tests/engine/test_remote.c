/*
 * tests/engine/test_remote.c: the engine's use of a remote cache tier (storage/cache.h,
 * rf_rcache_ops), against a fake tier that answers from a ring timer on the asking shard,
 * as the Redis one does. What the engine must do with each answer:
 *
 *   hit          the node ends `cached` with the remote value, its kind does not run, and
 *                the value is copied into the memory cache (the next run asks nobody);
 *   miss         the node runs holding the lease, then stores its output with leased=true;
 *   failure      a leased run that fails gives the lease back (abandon), stores nothing;
 *   unavailable  the tier refuses at once: the node runs, and still stores (not leased);
 *   cancel       an execution canceled while its lookup waits ends at once, without
 *                running the node, and the late answer is dropped cleanly;
 *   map          items ask the tier too, one lookup per distinct lineage (the local flight
 *                first).
 *
 * RF_TEST_CONCURRENT: two shards, and the tier's bookkeeping is under a mutex.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "engine/internal.h"
#include "ringflow.h"
#include "sched/shard.h"

#define WAIT_MS 20000

enum mode { M_HIT, M_MISS, M_DOWN, M_SLOW };

static struct fake {
    pthread_mutex_t mu;
    enum mode mode;
    uint32_t fetches, stores, stores_leased, abandons, cancels;
    json_t *stored; /* the last value stored */
} fk = {.mu = PTHREAD_MUTEX_INITIALIZER};

static _Atomic uint32_t runs;

static void fake_answer(rf_op *op, int res, uint32_t flags)
{
    struct rf_rcache_req *req = rf_container_of(op, struct rf_rcache_req, timer);
    enum mode m;

    (void)flags;
    pthread_mutex_lock(&fk.mu);
    m = fk.mode;
    pthread_mutex_unlock(&fk.mu);
    req->state = 0;
    if (res == -ECANCELED || req->canceled)
        req->done(req, -ECANCELED, NULL);
    else if (m == M_HIT)
        req->done(req, 1, json_pack("{s:s}", "from", "remote"));
    else
        req->done(req, 0, NULL);
}

static int fake_fetch(void *ud, struct rf_rcache_req *req)
{
    enum mode m;

    (void)ud;
    pthread_mutex_lock(&fk.mu);
    m = fk.mode;
    fk.fetches++;
    pthread_mutex_unlock(&fk.mu);
    if (m == M_DOWN)
        return -ENOTCONN;
    req->canceled = false;
    req->state = 1;
    rf__shard_timer_arm(rf__cur_shard, &req->timer, &req->ts, m == M_SLOW ? 3000 : 1,
                        fake_answer);
    return -EINPROGRESS;
}

static void fake_cancel(void *ud, struct rf_rcache_req *req)
{
    (void)ud;
    pthread_mutex_lock(&fk.mu);
    fk.cancels++;
    pthread_mutex_unlock(&fk.mu);
    if (req->state && !req->canceled) {
        req->canceled = true;
        rf__shard_timer_cancel(rf__cur_shard, &req->timer);
    }
}

static void fake_store(void *ud, const uint8_t key[16], const json_t *value, uint32_t ttl_s,
                       bool leased)
{
    (void)ud;
    (void)key;
    assert_true(ttl_s > 0);
    pthread_mutex_lock(&fk.mu);
    fk.stores++;
    fk.stores_leased += leased;
    json_decref(fk.stored);
    fk.stored = json_deep_copy(value);
    pthread_mutex_unlock(&fk.mu);
}

static void fake_abandon(void *ud, const uint8_t key[16])
{
    (void)ud;
    (void)key;
    pthread_mutex_lock(&fk.mu);
    fk.abandons++;
    pthread_mutex_unlock(&fk.mu);
}

static const struct rf_rcache_ops fake_ops = {
    .fetch = fake_fetch, .cancel = fake_cancel, .store = fake_store, .abandon = fake_abandon};

static int count_run(void *ud, const rf_call *call, json_t **out, rf_error *err)
{
    (void)ud;
    atomic_fetch_add(&runs, 1);
    if (json_is_true(json_object_get(call->params, "fail")))
        return rf_error_set(err, -EIO, false, "boom", "asked to fail");
    *out = json_incref((json_t *)call->params);
    return 0;
}

static rf_engine *engine(enum mode m)
{
    static const rf_kind kind = {.name = "count", .type = RF_KIND_SYNC, .run = count_run};
    rf_config cfg = {.shards = 2, .no_pin_threads = true};
    rf_engine *eng = NULL;

    pthread_mutex_lock(&fk.mu);
    json_decref(fk.stored);
    memset(&fk.fetches, 0, offsetof(struct fake, stored) - offsetof(struct fake, fetches));
    fk.stored = NULL;
    fk.mode = m;
    pthread_mutex_unlock(&fk.mu);
    atomic_store(&runs, 0);
    assert_int_equal(rf_engine_new(&cfg, &eng), 0);
    assert_int_equal(rf_engine_register_kind(eng, &kind), 0);
    assert_int_equal(rf__engine_set_remote_cache(eng, &fake_ops, NULL), 0);
    assert_int_equal(rf_engine_start(eng), 0);
    return eng;
}

static void engine_done(rf_engine *eng)
{
    assert_int_equal(rf_engine_stop(eng, 5000), 0);
    rf_engine_free(eng);
}

static rf_plan *plan_of(rf_engine *eng, const char *doc)
{
    rf_diag d;
    rf_plan *p = NULL;

    rf_diag_init(&d);
    assert_int_equal(rf_graph_register(eng, doc, strlen(doc), &d, &p, NULL), 0);
    rf_diag_free(&d);
    return p;
}

static rf_exec *run(rf_engine *eng, rf_plan *p, const char *inputs)
{
    json_t *in = inputs ? json_loads(inputs, 0, NULL) : NULL;
    rf_exec *ex = NULL;

    assert_int_equal(rf_submit(eng, p, in, NULL, &ex), 0);
    assert_int_equal(rf_exec_wait(ex, WAIT_MS), 0);
    return ex;
}

static rf_status node0(rf_exec *ex)
{
    rf_node_info ni;

    assert_int_equal(rf_exec_node(ex, 0, &ni), 0);
    return ni.status;
}

static const char *const DOC =
    "{\"name\": \"r\", \"inputs\": {\"k\": {\"type\": \"string\", \"default\": \"a\"},"
    " \"fail\": {\"type\": \"boolean\", \"default\": false}},"
    " \"nodes\": [{\"id\": \"n\", \"kind\": \"count\", \"cache\": {\"ttl_s\": 60},"
    " \"config\": {\"k\": \"{{inputs.k}}\", \"fail\": \"{{inputs.fail}}\"}}]}";

static void test_hit(void **state)
{
    (void)state;
    rf_engine *eng = engine(M_HIT);
    rf_plan *p = plan_of(eng, DOC);
    rf_exec *a = run(eng, p, NULL);

    assert_int_equal(node0(a), RF_ST_CACHED);
    assert_int_equal(atomic_load(&runs), 0);
    json_t *out = rf_exec_output(a);
    assert_string_equal(json_string_value(json_object_get(json_object_get(out, "n"), "from")),
                        "remote");
    json_decref(out);
    /* Copied into the memory cache: the next run asks nobody. */
    rf_exec *b = run(eng, p, NULL);
    assert_int_equal(node0(b), RF_ST_CACHED);
    assert_int_equal(fk.fetches, 1);
    assert_int_equal(fk.stores, 0);
    rf_exec_release(a);
    rf_exec_release(b);
    rf_plan_release(p);
    engine_done(eng);
}

static void test_miss_runs_and_stores_leased(void **state)
{
    (void)state;
    rf_engine *eng = engine(M_MISS);
    rf_plan *p = plan_of(eng, DOC);
    rf_exec *a = run(eng, p, "{\"k\": \"x\"}");

    assert_int_equal(node0(a), RF_ST_SUCCEEDED);
    assert_int_equal(atomic_load(&runs), 1);
    assert_int_equal(fk.fetches, 1);
    assert_int_equal(fk.stores, 1);
    assert_int_equal(fk.stores_leased, 1);
    assert_int_equal(fk.abandons, 0);
    assert_string_equal(json_string_value(json_object_get(fk.stored, "k")), "x");
    rf_exec_release(a);
    rf_plan_release(p);
    engine_done(eng);
}

static void test_failure_abandons_the_lease(void **state)
{
    (void)state;
    rf_engine *eng = engine(M_MISS);
    rf_plan *p = plan_of(eng, DOC);
    rf_exec *a = run(eng, p, "{\"fail\": true}");

    assert_int_equal(rf_exec_status(a), RF_ST_FAILED);
    assert_int_equal(fk.stores, 0);
    assert_int_equal(fk.abandons, 1);
    rf_exec_release(a);
    rf_plan_release(p);
    engine_done(eng);
}

static void test_unavailable_runs(void **state)
{
    (void)state;
    rf_engine *eng = engine(M_DOWN);
    rf_plan *p = plan_of(eng, DOC);
    rf_exec *a = run(eng, p, NULL);

    assert_int_equal(node0(a), RF_ST_SUCCEEDED);
    assert_int_equal(atomic_load(&runs), 1);
    assert_int_equal(fk.stores, 1);
    assert_int_equal(fk.stores_leased, 0);
    assert_int_equal(fk.abandons, 0);
    rf_exec_release(a);
    rf_plan_release(p);
    engine_done(eng);
}

static void test_cancel_while_asking(void **state)
{
    (void)state;
    rf_engine *eng = engine(M_SLOW);
    rf_plan *p = plan_of(eng, DOC);
    rf_exec *a = NULL;

    assert_int_equal(rf_submit(eng, p, NULL, NULL, &a), 0);
    assert_int_equal(rf_exec_wait(a, 100), -ETIMEDOUT); /* parked on the tier */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rf_exec_cancel(a);
    assert_int_equal(rf_exec_wait(a, 2000), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(rf_exec_status(a), RF_ST_CANCELED);
    assert_int_equal(node0(a), RF_ST_CANCELED);
    assert_int_equal(atomic_load(&runs), 0);
    assert_true(t1.tv_sec - t0.tv_sec < 2); /* not the tier's 3 s */
    assert_true(fk.cancels >= 1);
    assert_int_equal(fk.abandons, 0);
    rf_exec_release(a);
    rf_plan_release(p);
    engine_done(eng);
}

static void test_map_items(void **state)
{
    (void)state;
    rf_engine *eng = engine(M_MISS);
    rf_plan *p = plan_of(eng, "{\"name\": \"m\", \"nodes\": [{\"id\": \"n\", \"kind\": \"count\","
                              " \"map\": \"{{inputs.xs}}\", \"max_parallel\": 4,"
                              " \"cache\": {\"ttl_s\": 60}, \"config\": {\"v\": \"{{item}}\"}}]}");
    rf_exec *a = run(eng, p, "{\"xs\": [1, 2, 2, 3, 3, 3]}");

    assert_int_equal(rf_exec_status(a), RF_ST_SUCCEEDED);
    json_t *out = rf_exec_output(a);
    json_t *arr = json_object_get(out, "n");
    assert_int_equal(json_array_size(arr), 6);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 5), "v")), 3);
    json_decref(out);
    assert_int_equal(atomic_load(&runs), 3);
    assert_int_equal(fk.fetches, 3);
    assert_int_equal(fk.stores_leased, 3);
    rf_exec_release(a);
    /* The same map again: every item from memory now. */
    a = run(eng, p, "{\"xs\": [3, 2, 1]}");
    assert_int_equal(rf_exec_status(a), RF_ST_SUCCEEDED);
    assert_int_equal(atomic_load(&runs), 3);
    assert_int_equal(fk.fetches, 3);
    rf_exec_release(a);
    rf_plan_release(p);
    engine_done(eng);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit),
        cmocka_unit_test(test_miss_runs_and_stores_leased),
        cmocka_unit_test(test_failure_abandons_the_lease),
        cmocka_unit_test(test_unavailable_runs),
        cmocka_unit_test(test_cancel_while_asking),
        cmocka_unit_test(test_map_items),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    json_decref(fk.stored);
    return rc;
}
