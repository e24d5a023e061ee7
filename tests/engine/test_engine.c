/*
 * tests/engine/test_engine.c: the engine through its public header only.
 * RF_TEST_CONCURRENT: runs under ThreadSanitizer too (every test uses two shards).
 *
 * What it pins down:
 *   - DAG shapes (random DAGs, chains, fan-outs) run every node exactly once and only
 *     after all of its deps ended, on 1 and 2 shards, with MSG_RING and eventfd wakeups;
 *   - events: seq from 1 without gaps, per execution, in an order consistent with the
 *     DAG, done callback after the last event and never a callback after it;
 *   - the state machine: retries with back-off inside the full-jitter bounds, a per-attempt
 *     timeout that cancels the attempt's I/O, fail fast, all_done triggers, skip
 *     propagation, cancellation of a running delay (it stops at once);
 *   - custom sync and async kinds; back-pressure (RF_EOVERLOAD); submit before start and
 *     after stop; engine stop with work in flight (executions end canceled, no leak).
 * Every wait is bounded: rf_exec_wait with a timeout, failing the test if it expires.
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

#include "ringflow.h"

#define WAIT_MS 20000

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static rf_engine *engine(uint32_t shards, bool no_msg_ring, uint32_t inflight, const rf_kind *extra,
                         size_t nextra)
{
    rf_config cfg = {.shards = shards,
                     .no_pin_threads = true,
                     .no_msg_ring = no_msg_ring,
                     .inflight_per_shard_max = inflight,
                     .plan_nodes_max = 1 << 20};
    rf_engine *eng = NULL;

    assert_int_equal(rf_engine_new(&cfg, &eng), 0);
    for (size_t i = 0; i < nextra; i++)
        assert_int_equal(rf_engine_register_kind(eng, &extra[i]), 0);
    assert_int_equal(rf_engine_start(eng), 0);
    return eng;
}

static void engine_done(rf_engine *eng)
{
    assert_int_equal(rf_engine_stop(eng, 5000), 0);
    rf_engine_free(eng);
}

static rf_plan *compile(rf_engine *eng, rf_graph *g)
{
    rf_plan *p = NULL;
    rf_diag d;

    rf_diag_init(&d);
    int rc = rf_plan_compile(eng, g, &d, &p);
    for (uint32_t i = 0; i < d.count; i++)
        print_error("%s %s %s\n", d.items[i].pointer, d.items[i].code, d.items[i].message);
    rf_diag_free(&d);
    assert_int_equal(rc, 0);
    rf_graph_free(g);
    return p;
}

/* --- an event recorder ---------------------------------------------------------------- */

#define REC_MAX 4096

struct rec {
    _Atomic int n;
    _Atomic int after_done; /* callbacks seen after done: must stay 0 */
    _Atomic int done;
    _Atomic int in_cb; /* concurrent callbacks for one execution: must stay 0 */
    _Atomic int overlap;
    rf_event_type type[REC_MAX];
    int32_t node[REC_MAX];
    uint64_t seq[REC_MAX];
    uint32_t attempt[REC_MAX];
    uint32_t retry_in_ms[REC_MAX];
    char code[REC_MAX][24];
};

static void rec_event(void *ud, const rf_event *ev)
{
    struct rec *r = ud;
    if (atomic_fetch_add(&r->in_cb, 1) != 0)
        atomic_fetch_add(&r->overlap, 1);
    if (atomic_load(&r->done))
        atomic_fetch_add(&r->after_done, 1);
    int i = atomic_load(&r->n);
    if (i < REC_MAX) {
        r->type[i] = ev->type;
        r->node[i] = ev->node;
        r->seq[i] = ev->seq;
        r->attempt[i] = ev->attempt;
        r->retry_in_ms[i] = ev->retry_in_ms;
        const char *c = json_string_value(json_object_get(ev->error, "code"));
        snprintf(r->code[i], sizeof(r->code[i]), "%s", c ? c : "");
        /* The JSON form must build for every event. */
        json_t *j = rf_event_json(ev);
        assert_non_null(j);
        json_decref(j);
        atomic_store(&r->n, i + 1);
    }
    atomic_fetch_sub(&r->in_cb, 1);
}

static void rec_done(void *ud, rf_exec *ex)
{
    struct rec *r = ud;
    assert_true(rf_status_terminal(rf_exec_status(ex)));
    atomic_store(&r->done, 1);
}

static rf_exec *submit_rec(rf_engine *eng, rf_plan *p, struct rec *r)
{
    rf_callbacks cb = {.event = rec_event, .done = rec_done, .ud = r};
    rf_submit_opts o = {.callbacks = &cb};
    rf_exec *ex = NULL;

    memset(r, 0, sizeof(*r));
    assert_int_equal(rf_submit(eng, p, NULL, &o, &ex), 0);
    return ex;
}

static void wait_ok(rf_exec *ex)
{
    assert_int_equal(rf_exec_wait(ex, WAIT_MS), 0);
}

/* seq 1..n without gaps; execution.queued first, execution.<end> last. */
static void check_seq(struct rec *r)
{
    int n = atomic_load(&r->n);
    assert_true(n >= 3);
    for (int i = 0; i < n; i++)
        assert_int_equal(r->seq[i], (uint64_t)i + 1);
    assert_int_equal(r->type[0], RF_EV_EXECUTION_QUEUED);
    assert_int_equal(r->type[1], RF_EV_EXECUTION_STARTED);
    assert_true(r->type[n - 1] >= RF_EV_EXECUTION_SUCCEEDED);
    assert_int_equal(atomic_load(&r->after_done), 0);
    assert_int_equal(atomic_load(&r->overlap), 0);
    assert_int_equal(atomic_load(&r->done), 1);
}

static int find_event(struct rec *r, rf_event_type t, int32_t node, int from)
{
    for (int i = from; i < atomic_load(&r->n); i++)
        if (r->type[i] == t && r->node[i] == node)
            return i;
    return -1;
}

/* --- an order-checking sync kind ------------------------------------------------------- */

/* Each node i sets done[i]; before that it checks done[d] for every dep d. The DAG under
 * test is in `order_dag` (one at a time). */
struct order_dag {
    uint32_t n;
    uint32_t *dep_off, *deps; /* CSR of deps */
    _Atomic uint32_t *runs;
    _Atomic uint32_t violations;
};
static struct order_dag *cur_dag;

static int order_run(void *ud, const rf_call *call, json_t **out, rf_error *err)
{
    struct order_dag *d = cur_dag;
    uint32_t i = (uint32_t)strtoul(call->node_id + 1, NULL, 10);

    for (uint32_t k = d->dep_off[i]; k < d->dep_off[i + 1]; k++)
        if (atomic_load(&d->runs[d->deps[k]]) == 0)
            atomic_fetch_add(&d->violations, 1);
    atomic_fetch_add(&d->runs[i], 1);
    *out = NULL;
    return 0;
}

static const rf_kind order_kind = {.name = "order", .type = RF_KIND_SYNC, .run = order_run};

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* A random DAG: each node i > 0 gets up to `maxdeps` deps among earlier nodes. */
static void run_random_dag(rf_engine *eng, uint32_t n, uint32_t maxdeps)
{
    struct order_dag d = {.n = n};
    rf_graph *g;
    char id[16];

    d.dep_off = calloc(n + 1, sizeof(uint32_t));
    d.deps = calloc((size_t)n * maxdeps + 1, sizeof(uint32_t));
    d.runs = calloc(n, sizeof(*d.runs));
    assert_int_equal(rf_graph_new("random", &g), 0);
    for (uint32_t i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "n%u", i);
        assert_int_equal(rf_graph_add_node(g, id, "order", NULL, NULL), (int)i);
    }
    for (uint32_t i = 0; i < n; i++) {
        d.dep_off[i + 1] = d.dep_off[i];
        uint32_t k = i ? rnd(maxdeps + 1) : 0;
        for (uint32_t j = 0; j < k; j++) {
            uint32_t dep = rnd(i);
            d.deps[d.dep_off[i + 1]++] = dep; /* repeats are merged by the plan */
            assert_int_equal(rf_graph_add_edge(g, dep, i), 0);
        }
    }
    rf_plan *p = compile(eng, g);
    cur_dag = &d;
    struct rec *r = calloc(1, sizeof(*r));
    rf_exec *ex = submit_rec(eng, p, r);
    wait_ok(ex);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(atomic_load(&d.runs[i]), 1);
    assert_int_equal(atomic_load(&d.violations), 0);
    check_seq(r);
    /* Causality in the event log: every node.started follows its deps' node.succeeded. */
    for (uint32_t i = 0; i < n && atomic_load(&r->n) < REC_MAX; i++) {
        int s = find_event(r, RF_EV_NODE_STARTED, (int32_t)i, 0);
        assert_true(s >= 0);
        for (uint32_t k = d.dep_off[i]; k < d.dep_off[i + 1]; k++) {
            int e = find_event(r, RF_EV_NODE_SUCCEEDED, (int32_t)d.deps[k], 0);
            assert_true(e >= 0 && e < s);
        }
    }
    rf_exec_release(ex);
    rf_plan_release(p);
    free(r);
    free(d.dep_off);
    free(d.deps);
    free(d.runs);
    cur_dag = NULL;
}

static void test_random_dags(void **state)
{
    for (int mode = 0; mode < 3; mode++) {
        /* 1 shard; 2 shards with MSG_RING; 2 shards with eventfd wakeups. */
        rf_engine *eng = engine(mode ? 2 : 1, mode == 2, 0, &order_kind, 1);
        for (int k = 0; k < 6; k++)
            run_random_dag(eng, 50 + rnd(400), 1 + rnd(5));
        engine_done(eng);
    }
}

/* Many executions at once, chains and fan-outs without events, on 2 shards. */
static void test_many_executions(void **state)
{
    rf_engine *eng = engine(2, false, 0, NULL, 0);
    rf_graph *g;
    enum { N = 200, EXECS = 64 };
    char id[16];

    assert_int_equal(rf_graph_new("fan", &g), 0);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "n%d", i);
        rf_graph_add_node(g, id, "noop", NULL, NULL);
    }
    for (int i = 1; i < N - 1; i++) {
        rf_graph_add_edge(g, 0, (uint32_t)i);
        rf_graph_add_edge(g, (uint32_t)i, N - 1);
    }
    rf_plan *p = compile(eng, g);
    rf_exec *ex[EXECS];
    for (int i = 0; i < EXECS; i++)
        assert_int_equal(rf_submit(eng, p, NULL, NULL, &ex[i]), 0);
    for (int i = 0; i < EXECS; i++) {
        wait_ok(ex[i]);
        assert_int_equal(rf_exec_status(ex[i]), RF_ST_SUCCEEDED);
        rf_node_info ni;
        assert_int_equal(rf_exec_node(ex[i], N - 1, &ni), 0);
        assert_int_equal(ni.status, RF_ST_SUCCEEDED);
        assert_int_equal(ni.attempts, 1);
        rf_exec_release(ex[i]);
    }
    rf_plan_release(p);
    engine_done(eng);
}

/* --- retries and back-off --------------------------------------------------------------- */

static _Atomic int flaky_calls;

static int flaky_run(void *ud, const rf_call *call, json_t **out, rf_error *err)
{
    int fail_until = (int)json_integer_value(json_object_get(call->params, "fail_until"));

    atomic_fetch_add(&flaky_calls, 1);
    if ((int)call->attempt < fail_until)
        return rf_error_set(err, -EAGAIN, true, "flaky", "attempt %u", call->attempt);
    *out = json_integer(call->attempt);
    return 0;
}

static const rf_kind flaky_kind = {.name = "flaky", .type = RF_KIND_SYNC, .run = flaky_run};

static rf_plan *one_node(rf_engine *eng, const char *kind, json_t *cfg, const rf_node_opts *o)
{
    rf_graph *g;
    assert_int_equal(rf_graph_new("one", &g), 0);
    assert_int_equal(rf_graph_add_node(g, "a", kind, cfg, o), 0);
    json_decref(cfg);
    return compile(eng, g);
}

static void test_retry_backoff(void **state)
{
    rf_engine *eng = engine(2, false, 0, &flaky_kind, 1);
    rf_node_opts o = {.retry = {.max_attempts = 5, .backoff_ms = 4, .max_backoff_ms = 10}};
    struct rec *r = calloc(1, sizeof(*r));

    /* Succeeds on the 4th attempt: 3 retrying events with delays in [0, min(10, 4*2^k)]. */
    rf_plan *p = one_node(eng, "flaky", json_pack("{s:i}", "fail_until", 4), &o);
    rf_exec *ex = submit_rec(eng, p, r);
    wait_ok(ex);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    check_seq(r);
    int retries = 0;
    for (int i = 0; i < atomic_load(&r->n); i++) {
        if (r->type[i] != RF_EV_NODE_RETRYING)
            continue;
        uint32_t k = r->attempt[i];
        uint32_t cap = 4u << (k - 1);
        assert_true(r->retry_in_ms[i] <= (cap < 10 ? cap : 10));
        assert_string_equal(r->code[i], "flaky");
        retries++;
    }
    assert_int_equal(retries, 3);
    rf_node_info ni;
    assert_int_equal(rf_exec_node(ex, 0, &ni), 0);
    assert_int_equal(ni.attempts, 4);
    assert_int_equal(json_integer_value(ni.output), 4);
    rf_exec_release(ex);
    rf_plan_release(p);

    /* Never succeeds within max_attempts: node and execution fail with the last error. */
    p = one_node(eng, "flaky", json_pack("{s:i}", "fail_until", 100), &o);
    ex = submit_rec(eng, p, r);
    wait_ok(ex);
    assert_int_equal(rf_exec_status(ex), RF_ST_FAILED);
    assert_int_equal(rf_exec_node(ex, 0, &ni), 0);
    assert_int_equal(ni.status, RF_ST_FAILED);
    assert_int_equal(ni.attempts, 5);
    assert_string_equal(json_string_value(json_object_get(ni.error, "code")), "flaky");
    assert_non_null(rf_exec_error(ex));
    assert_string_equal(json_string_value(json_object_get(rf_exec_error(ex), "node")), "a");
    check_seq(r);
    assert_int_equal(r->type[atomic_load(&r->n) - 1], RF_EV_EXECUTION_FAILED);
    rf_exec_release(ex);
    rf_plan_release(p);

    /* A non-retryable failure is not retried. */
    o.retry.max_attempts = 5;
    p = one_node(eng, "fail", json_pack("{s:s}", "message", "boom"), &o);
    ex = submit_rec(eng, p, r);
    wait_ok(ex);
    assert_int_equal(rf_exec_node(ex, 0, &ni), 0);
    assert_int_equal(ni.attempts, 1);
    assert_int_equal(rf_exec_status(ex), RF_ST_FAILED);
    rf_exec_release(ex);
    rf_plan_release(p);
    free(r);
    engine_done(eng);
}

/* --- timeouts and cancellation ----------------------------------------------------------- */

/* An async kind that never completes on its own: only cancel ends it. */
struct hang {
    rf_op op;
    struct __kernel_timespec ts;
};
static _Atomic int hang_cancels;

static void hang_cqe(rf_op *op, int res, uint32_t flags)
{
    rf_error err;
    rf_error_set(&err, res, false, res == -ECANCELED ? "canceled" : "io", "hang ended: %d", res);
    rf_task_fail(op->task, &err);
}

static int hang_start(void *ud, rf_task *t, rf_error *err)
{
    struct hang *h = rf_task_data(t);
    struct io_uring_sqe *sqe = rf_task_sqe(t, &h->op, hang_cqe);
    if (!sqe)
        return rf_error_set(err, -EBUSY, true, "overload", "ring full");
    h->ts.tv_sec = 3600;
    io_uring_prep_timeout(sqe, &h->ts, 0, 0);
    return 0;
}

static void hang_cancel(void *ud, rf_task *t)
{
    struct hang *h = rf_task_data(t);
    atomic_fetch_add(&hang_cancels, 1);
    assert_int_equal(rf_task_cancel_op(t, &h->op), 0);
}

static const rf_kind hang_kind = {.name = "hang",
                                  .type = RF_KIND_ASYNC,
                                  .start = hang_start,
                                  .cancel = hang_cancel,
                                  .task_bytes = sizeof(struct hang)};

static void test_timeout(void **state)
{
    rf_engine *eng = engine(2, false, 0, &hang_kind, 1);
    rf_node_opts o = {.timeout_ms = 30, .retry = {.max_attempts = 2, .backoff_ms = 1}};
    struct rec *r = calloc(1, sizeof(*r));
    rf_node_info ni;

    atomic_store(&hang_cancels, 0);
    rf_plan *p = one_node(eng, "hang", NULL, &o);
    uint64_t t0 = now_ms();
    rf_exec *ex = submit_rec(eng, p, r);
    wait_ok(ex);
    uint64_t took = now_ms() - t0;
    assert_int_equal(rf_exec_status(ex), RF_ST_FAILED);
    assert_int_equal(rf_exec_node(ex, 0, &ni), 0);
    assert_int_equal(ni.attempts, 2); /* a timeout is retryable */
    assert_string_equal(json_string_value(json_object_get(ni.error, "code")), "timeout");
    assert_int_equal(atomic_load(&hang_cancels), 2); /* each attempt's I/O was canceled */
    assert_true(took >= 60 && took < 5000);
    check_seq(r);
    rf_exec_release(ex);
    rf_plan_release(p);

    /* A timed-out delay is canceled too (the built-in async kind). */
    o.retry.max_attempts = 1;
    p = one_node(eng, "delay", json_pack("{s:i}", "ms", 60000), &o);
    t0 = now_ms();
    ex = submit_rec(eng, p, r);
    wait_ok(ex);
    assert_true(now_ms() - t0 < 5000);
    assert_int_equal(rf_exec_status(ex), RF_ST_FAILED);
    rf_exec_release(ex);
    rf_plan_release(p);
    free(r);
    engine_done(eng);
}

static void test_cancel_delay(void **state)
{
    rf_engine *eng = engine(2, false, 0, NULL, 0);
    struct rec *r = calloc(1, sizeof(*r));
    rf_graph *g;

    /* a (delay 60 s) -> b; c independent delay; cancel while both delays run. */
    assert_int_equal(rf_graph_new("cancel", &g), 0);
    json_t *long_delay = json_pack("{s:i}", "ms", 60000);
    rf_graph_add_node(g, "a", "delay", long_delay, NULL);
    rf_graph_add_node(g, "b", "noop", NULL, NULL);
    rf_graph_add_node(g, "c", "delay", long_delay, NULL);
    json_decref(long_delay);
    rf_graph_add_edge(g, 0, 1);
    rf_plan *p = compile(eng, g);
    rf_exec *ex = submit_rec(eng, p, r);
    /* Bounded wait until both delays started. */
    uint64_t t0 = now_ms();
    rf_node_info a, c;
    do {
        rf_exec_node(ex, 0, &a);
        rf_exec_node(ex, 2, &c);
    } while ((a.status != RF_ST_RUNNING || c.status != RF_ST_RUNNING) && now_ms() - t0 < 5000);
    assert_int_equal(a.status, RF_ST_RUNNING);
    t0 = now_ms();
    assert_int_equal(rf_exec_cancel(ex), 0);
    assert_int_equal(rf_exec_cancel(ex), 0); /* idempotent */
    wait_ok(ex);
    assert_true(now_ms() - t0 < 2000); /* "at once": not after the 60 s delay */
    assert_int_equal(rf_exec_status(ex), RF_ST_CANCELED);
    for (uint32_t i = 0; i < 3; i++) {
        rf_node_info ni;
        rf_exec_node(ex, i, &ni);
        assert_int_equal(ni.status, RF_ST_CANCELED);
    }
    check_seq(r);
    assert_int_equal(r->type[atomic_load(&r->n) - 1], RF_EV_EXECUTION_CANCELED);
    assert_int_equal(rf_exec_cancel(ex), 0); /* after the end: still fine */
    rf_exec_release(ex);
    rf_plan_release(p);
    free(r);
    engine_done(eng);
}

/* --- triggers, fail fast, skip propagation ------------------------------------------------ */

static void test_triggers(void **state)
{
    rf_engine *eng = engine(2, false, 0, NULL, 0);
    struct rec *r = calloc(1, sizeof(*r));
    rf_node_opts all_done = {.trigger = RF_TRIGGER_ALL_DONE};
    rf_graph *g;

    /* gate (delay 30) -> bad (fail) -> skip1 (all_succeeded) -> skip2; bad -> report
     * (all_done); slow (delay 200) -> late (noop). slow is a root, running long before bad
     * fails; late has not started when bad fails -> skipped (fail fast). */
    assert_int_equal(rf_graph_new("triggers", &g), 0);
    json_t *d30 = json_pack("{s:i}", "ms", 30), *d200 = json_pack("{s:i}", "ms", 200);
    rf_graph_add_node(g, "gate", "delay", d30, NULL);        /* 0 */
    rf_graph_add_node(g, "bad", "fail", NULL, NULL);         /* 1 */
    rf_graph_add_node(g, "skip1", "noop", NULL, NULL);       /* 2 */
    rf_graph_add_node(g, "skip2", "noop", NULL, NULL);       /* 3 */
    rf_graph_add_node(g, "report", "noop", NULL, &all_done); /* 4 */
    rf_graph_add_node(g, "slow", "delay", d200, NULL);       /* 5 */
    rf_graph_add_node(g, "late", "noop", NULL, NULL);        /* 6 */
    json_decref(d30);
    json_decref(d200);
    rf_graph_add_edge(g, 0, 1);
    rf_graph_add_edge(g, 1, 2);
    rf_graph_add_edge(g, 2, 3);
    rf_graph_add_edge(g, 1, 4);
    rf_graph_add_edge(g, 5, 6);
    rf_plan *p = compile(eng, g);
    rf_exec *ex = submit_rec(eng, p, r);
    wait_ok(ex);
    rf_status want[] = {RF_ST_SUCCEEDED, RF_ST_FAILED,    RF_ST_SKIPPED, RF_ST_SKIPPED,
                        RF_ST_SUCCEEDED, RF_ST_SUCCEEDED, RF_ST_SKIPPED};
    for (uint32_t i = 0; i < 7; i++) {
        rf_node_info ni;
        rf_exec_node(ex, i, &ni);
        assert_int_equal(ni.status, want[i]);
    }
    assert_int_equal(rf_exec_status(ex), RF_ST_FAILED);
    check_seq(r);
    /* A failed execution has no output, only its error. */
    assert_null(rf_exec_output(ex));
    assert_non_null(rf_exec_error(ex));
    rf_exec_release(ex);
    rf_plan_release(p);
    free(r);
    engine_done(eng);
}

/* --- custom kinds, back-pressure, lifecycle ------------------------------------------------- */

static int double_run(void *ud, const rf_call *call, json_t **out, rf_error *err)
{
    json_int_t v = json_integer_value(json_object_get(call->params, "v"));
    *out = json_integer(v * 2 + (json_int_t)(intptr_t)ud);
    return 0;
}

static void test_custom_kinds_and_backpressure(void **state)
{
    rf_kind kinds[] = {
        {.name = "double", .type = RF_KIND_SYNC, .run = double_run, .ud = (void *)(intptr_t)1},
        hang_kind,
    };
    rf_engine *eng = engine(2, false, 2, kinds, 2); /* 2 in flight per shard */
    rf_exec *ex[5] = {0};
    rf_node_info ni;

    rf_plan *dp = one_node(eng, "double", json_pack("{s:i}", "v", 20), NULL);
    assert_int_equal(rf_submit(eng, dp, NULL, NULL, &ex[0]), 0);
    wait_ok(ex[0]);
    assert_int_equal(rf_exec_node(ex[0], 0, &ni), 0);
    assert_int_equal(json_integer_value(ni.output), 41);
    json_t *out = rf_exec_output(ex[0]);
    assert_int_equal(json_integer_value(json_object_get(out, "a")), 41);
    json_decref(out);
    assert_int_equal(strlen(rf_exec_id(ex[0])), 26);
    rf_exec_release(ex[0]);

    /* Four hanging executions fill both shards; the fifth is refused, not queued. */
    rf_plan *hp = one_node(eng, "hang", NULL, NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rf_submit(eng, hp, NULL, NULL, &ex[i]), 0);
    assert_int_equal(rf_submit(eng, hp, NULL, NULL, &ex[4]), RF_EOVERLOAD);
    for (int i = 0; i < 4; i++) {
        rf_exec_cancel(ex[i]);
        wait_ok(ex[i]);
        assert_int_equal(rf_exec_status(ex[i]), RF_ST_CANCELED);
        rf_exec_release(ex[i]);
    }
    /* Room again. */
    assert_int_equal(rf_submit(eng, dp, NULL, NULL, &ex[0]), 0);
    wait_ok(ex[0]);
    rf_exec_release(ex[0]);
    rf_plan_release(dp);
    rf_plan_release(hp);
    engine_done(eng);
}

static void test_lifecycle(void **state)
{
    rf_config cfg = {.shards = 2, .no_pin_threads = true};
    rf_engine *eng;
    rf_exec *ex = NULL;

    assert_int_equal(rf_engine_new(&cfg, &eng), 0);
    assert_int_equal(rf_engine_shards(eng), 2);
    rf_plan *p = one_node(eng, "noop", NULL, NULL);
    assert_int_equal(rf_submit(eng, p, NULL, NULL, &ex), RF_ESTATE);
    assert_int_equal(rf_engine_start(eng), 0);
    assert_int_equal(rf_engine_start(eng), RF_ESTATE);
    assert_int_equal(rf_submit(eng, p, json_object(), NULL, &ex), 0);
    wait_ok(ex);
    rf_exec_release(ex);
    assert_int_equal(rf_engine_stop(eng, 1000), 0);
    assert_int_equal(rf_submit(eng, p, NULL, NULL, &ex), -ESHUTDOWN);
    assert_int_equal(rf_engine_stop(eng, 1000), 0); /* idempotent */
    rf_engine_free(eng);
    rf_plan_release(p); /* a plan may outlive its engine */

    /* A config out of range is refused. */
    rf_config bad = {.shards = 5000};
    assert_int_equal(rf_engine_new(&bad, &eng), -EINVAL);
}

/* Stop with executions in flight: drain 0 cancels them, their callbacks still run before
 * stop returns, nothing leaks (ASan checks). */
static _Atomic int stop_done;
static void count_done(void *ud, rf_exec *ex)
{
    atomic_fetch_add(&stop_done, 1);
}

static void test_stop_in_flight(void **state)
{
    rf_engine *eng = engine(2, false, 0, &hang_kind, 1);
    rf_callbacks cb = {.done = count_done};
    rf_submit_opts o = {.callbacks = &cb};
    rf_exec *ex[20];
    rf_graph *g;

    assert_int_equal(rf_graph_new("inflight", &g), 0);
    json_t *d = json_pack("{s:i}", "ms", 60000);
    rf_graph_add_node(g, "d", "delay", d, NULL);
    rf_graph_add_node(g, "h", "hang", NULL, NULL);
    rf_graph_add_node(g, "after", "noop", NULL, NULL);
    json_decref(d);
    rf_graph_add_edge(g, 0, 2);
    rf_graph_add_edge(g, 1, 2);
    rf_plan *p = compile(eng, g);
    atomic_store(&stop_done, 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(rf_submit(eng, p, NULL, &o, &ex[i]), 0);
    uint64_t t0 = now_ms();
    assert_int_equal(rf_engine_stop(eng, 0), 0);
    assert_true(now_ms() - t0 < 5000);
    assert_int_equal(atomic_load(&stop_done), 20); /* every done callback ran before */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(rf_exec_status(ex[i]), RF_ST_CANCELED);
        rf_exec_release(ex[i]);
    }
    rf_plan_release(p);
    rf_engine_free(eng);
}

/* Submissions from several application threads at once. */
struct sub_arg {
    rf_engine *eng;
    rf_plan *plan;
    int ok;
};

static void *submitter(void *a)
{
    struct sub_arg *s = a;
    for (int i = 0; i < 200; i++) {
        rf_exec *ex;
        int rc = rf_submit(s->eng, s->plan, NULL, NULL, &ex);
        if (rc == RF_EOVERLOAD) {
            i--;
            continue;
        }
        if (rc == 0 && rf_exec_wait(ex, WAIT_MS) == 0 && rf_exec_status(ex) == RF_ST_SUCCEEDED)
            s->ok++;
        if (rc == 0)
            rf_exec_release(ex);
    }
    return NULL;
}

static void test_threads_submit(void **state)
{
    rf_engine *eng = engine(2, false, 8, NULL, 0);
    rf_graph *g;
    pthread_t t[3];
    struct sub_arg a[3];

    assert_int_equal(rf_graph_new("threads", &g), 0);
    rf_graph_add_node(g, "a", "noop", NULL, NULL);
    rf_graph_add_node(g, "b", "noop", NULL, NULL);
    rf_graph_add_node(g, "c", "noop", NULL, NULL);
    rf_graph_add_edge(g, 0, 1);
    rf_graph_add_edge(g, 0, 2);
    rf_plan *p = compile(eng, g);
    for (int i = 0; i < 3; i++) {
        a[i] = (struct sub_arg){.eng = eng, .plan = p};
        pthread_create(&t[i], NULL, submitter, &a[i]);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].ok, 200);
    }
    rf_plan_release(p);
    engine_done(eng);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_dags),
        cmocka_unit_test(test_many_executions),
        cmocka_unit_test(test_retry_backoff),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_cancel_delay),
        cmocka_unit_test(test_triggers),
        cmocka_unit_test(test_custom_kinds_and_backpressure),
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_stop_in_flight),
        cmocka_unit_test(test_threads_submit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
