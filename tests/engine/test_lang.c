/*
 * tests/engine/test_lang.c: the graph language running on the engine, through the public
 * header only (plus engine/jcs.h to recompute lineage hashes independently of the engine).
 * RF_TEST_CONCURRENT: runs under ThreadSanitizer too (two shards everywhere).
 *
 * What it pins down:
 *   - templates end to end (typed values, mixed strings, node outputs, execution fields),
 *     the `output` template and its default (sinks by id);
 *   - `when` (false skips, the skip propagates to all_succeeded successors, all_done runs),
 *     a template that does not resolve fails the node with template_error, not retried;
 *   - map: item outputs in order, empty arrays, a non-array, a failing item, max_parallel
 *     respected under an async kind, a large map (1,000,000 items in release builds);
 *   - the cache: a hit emits node.cached with the output and the kind does not run; the
 *     lineage hash in events equals one computed from the params; single flight across
 *     executions and across the items of one map;
 *   - sub-graphs: the child's output, events carrying the parent link, recursion refused;
 *   - the registry: identical documents keep their version, changes make version n+1;
 *   - inputs: defaults, RF_EINPUTS with pointers; the hydrated document.
 * Every wait is bounded.
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

#include <cmocka.h>

#include "engine/jcs.h"
#include "ringflow.h"

#define WAIT_MS 60000

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LARGE_MAP_ITEMS 100000
#else
#define LARGE_MAP_ITEMS 1000000
#endif

/* --- kinds the tests count runs of ------------------------------------------------------ */

static _Atomic uint32_t count_runs;
static _Atomic uint32_t slow_runs, slow_now, slow_peak;

/* sync: output = params; fails when params.fail is true */
static int count_run(void *ud, const rf_call *call, json_t **out, rf_error *err)
{
    atomic_fetch_add(&count_runs, 1);
    if (json_is_true(json_object_get(call->params, "fail")))
        return rf_error_set(err, -EIO, false, "boom", "item asked to fail");
    *out = json_incref((json_t *)call->params);
    return 0;
}

struct slow_state {
    rf_op op;
    struct __kernel_timespec ts;
    json_t *value;
};

static void slow_cqe(rf_op *op, int res, uint32_t flags)
{
    struct slow_state *st = (struct slow_state *)op;
    rf_error err;

    atomic_fetch_sub(&slow_now, 1);
    if (res == -ETIME) {
        rf_task_succeed(op->task, st->value);
        return;
    }
    json_decref(st->value);
    rf_error_set(&err, -ECANCELED, false, "canceled", "slow canceled");
    rf_task_fail(op->task, &err);
}

/* async: waits params.ms then outputs params.value */
static int slow_start(void *ud, rf_task *task, rf_error *err)
{
    struct slow_state *st = rf_task_data(task);
    const json_t *p = rf_task_call(task)->params;
    json_int_t ms = json_integer_value(json_object_get(p, "ms"));
    struct io_uring_sqe *sqe = rf_task_sqe(task, &st->op, slow_cqe);
    uint32_t now;

    if (!sqe)
        return rf_error_set(err, -EBUSY, true, "overload", "no sqe");
    atomic_fetch_add(&slow_runs, 1);
    now = atomic_fetch_add(&slow_now, 1) + 1;
    uint32_t peak = atomic_load(&slow_peak);
    while (now > peak && !atomic_compare_exchange_weak(&slow_peak, &peak, now))
        ;
    st->value = json_incref(json_object_get(p, "value"));
    st->ts.tv_sec = ms / 1000;
    st->ts.tv_nsec = (ms % 1000) * 1000000;
    io_uring_prep_timeout(sqe, &st->ts, 0, 0);
    return 0;
}

static void slow_cancel(void *ud, rf_task *task)
{
    struct slow_state *st = rf_task_data(task);
    rf_task_cancel_op(task, &st->op);
}

static rf_engine *engine(void)
{
    static const rf_kind kinds[] = {
        {.name = "count", .type = RF_KIND_SYNC, .run = count_run},
        {.name = "slow",
         .type = RF_KIND_ASYNC,
         .start = slow_start,
         .cancel = slow_cancel,
         .task_bytes = sizeof(struct slow_state)},
    };
    rf_config cfg = {.shards = 2, .no_pin_threads = true, .map_items_max = 1u << 21};
    rf_engine *eng = NULL;

    assert_int_equal(rf_engine_new(&cfg, &eng), 0);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(rf_engine_register_kind(eng, &kinds[i]), 0);
    assert_int_equal(rf_engine_start(eng), 0);
    atomic_store(&count_runs, 0);
    atomic_store(&slow_runs, 0);
    atomic_store(&slow_peak, 0);
    return eng;
}

static void engine_done(rf_engine *eng)
{
    assert_int_equal(rf_engine_stop(eng, 5000), 0);
    rf_engine_free(eng);
}

static void print_diag(const rf_diag *d)
{
    for (uint32_t i = 0; i < d->count; i++)
        print_error("  %s %s %s\n", d->items[i].pointer, d->items[i].code, d->items[i].message);
}

static rf_plan *plan_of(rf_engine *eng, const char *doc)
{
    rf_plan *p = NULL;
    rf_diag d;

    rf_diag_init(&d);
    int rc = rf_plan_from_json(eng, doc, strlen(doc), &d, &p);
    print_diag(&d);
    rf_diag_free(&d);
    assert_int_equal(rc, 0);
    return p;
}

/* Compile expecting failure; true when some problem has `code`. */
static bool rejects_with(rf_engine *eng, const char *doc, const char *code)
{
    rf_plan *p = NULL;
    rf_diag d;
    bool found = false;

    rf_diag_init(&d);
    int rc = rf_plan_from_json(eng, doc, strlen(doc), &d, &p);
    for (uint32_t i = 0; i < d.count; i++)
        found |= strcmp(d.items[i].code, code) == 0;
    if (!found)
        print_diag(&d);
    rf_diag_free(&d);
    rf_plan_release(p);
    return rc == RF_EINVAL_GRAPH && found;
}

/* --- an event recorder ------------------------------------------------------------------ */

struct rec {
    pthread_mutex_t mu;
    json_t *events; /* array of rf_event_json */
};

static void rec_event(void *ud, const rf_event *ev)
{
    struct rec *r = ud;
    pthread_mutex_lock(&r->mu);
    json_array_append_new(r->events, rf_event_json(ev));
    pthread_mutex_unlock(&r->mu);
}

static struct rec *rec_new(void)
{
    struct rec *r = calloc(1, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    r->events = json_array();
    return r;
}

static void rec_free(struct rec *r)
{
    json_decref(r->events);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Events of execution `id` of type `type` (and node, if not NULL). */
static size_t rec_count(struct rec *r, const char *id, const char *type, const char *node)
{
    size_t n = 0, i;
    json_t *e;

    json_array_foreach(r->events, i, e)
    {
        const char *t = json_string_value(json_object_get(e, "type"));
        const char *x = json_string_value(json_object_get(e, "execution_id"));
        const char *nd = json_string_value(json_object_get(e, "node"));
        if ((!id || strcmp(x, id) == 0) && strcmp(t, type) == 0 &&
            (!node || (nd && strcmp(nd, node) == 0)))
            n++;
    }
    return n;
}

static json_t *rec_find(struct rec *r, const char *type, const char *node)
{
    size_t i;
    json_t *e;

    json_array_foreach(r->events, i, e)
    {
        const char *nd = json_string_value(json_object_get(e, "node"));
        if (strcmp(json_string_value(json_object_get(e, "type")), type) == 0 &&
            (!node || (nd && strcmp(nd, node) == 0)))
            return e;
    }
    return NULL;
}

static rf_exec *run(rf_engine *eng, rf_plan *p, const char *inputs, struct rec *r, uint32_t flags)
{
    rf_callbacks cb = {.event = r ? rec_event : NULL, .ud = r};
    rf_submit_opts o = {.callbacks = &cb, .flags = flags};
    json_t *in = inputs ? json_loads(inputs, 0, NULL) : NULL;
    rf_exec *ex = NULL;

    assert_int_equal(rf_submit(eng, p, in, &o, &ex), 0);
    assert_int_equal(rf_exec_wait(ex, WAIT_MS), 0);
    return ex;
}

static void assert_json_eq(const json_t *got, const char *want)
{
    json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
    assert_non_null(w);
    if (!json_equal(got, w)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
        print_error("got  %s\nwant %s\n", g ? g : "(null)", want);
        free(g);
        fail();
    }
    json_decref(w);
}

static void node_status(rf_exec *ex, const char *id, rf_status want)
{
    rf_plan *p = rf_exec_plan(ex);
    for (uint32_t i = 0; i < rf_plan_nodes(p); i++) {
        if (strcmp(rf_plan_node_id(p, i), id) != 0)
            continue;
        rf_node_info ni;
        assert_int_equal(rf_exec_node(ex, i, &ni), 0);
        if (ni.status != want)
            print_error("node %s: %s, want %s\n", id, rf_status_name(ni.status),
                        rf_status_name(want));
        assert_int_equal(ni.status, want);
        return;
    }
    fail_msg("no node %s", id);
}

/* --- templates and output ------------------------------------------------------------------ */

static void test_templates(void **state)
{
    rf_engine *eng = engine();
    rf_plan *p = plan_of(eng, "{\"name\": \"t\", \"inputs\": {\"who\": {\"type\": \"string\"},"
                              " \"n\": {\"type\": \"integer\", \"default\": 3}},"
                              "\"nodes\": ["
                              " {\"id\": \"a\", \"kind\": \"transform\", \"config\": {\"output\":"
                              "   {\"greet\": \"hi {{inputs.who}}\", \"n\": \"{{inputs.n}}\","
                              "    \"list\": [1, \"{{ inputs.n }}\", {\"k\": \"x\"}]}}},"
                              " {\"id\": \"b\", \"kind\": \"transform\", \"config\": {\"output\":"
                              "   {\"second\": \"{{nodes.a.output.list[1]}}\","
                              "    \"mixed\": \"{{nodes.a.output.n}}/{{nodes.a.output.list}}\","
                              "    \"graph\": \"{{execution.graph}}\"}}}],"
                              "\"output\": {\"b\": \"{{nodes.b.output}}\", \"who\": "
                              "\"{{inputs.who}}\"}}");
    rf_exec *ex = run(eng, p, "{\"who\": \"ada\"}", NULL, 0);

    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    json_t *out = rf_exec_output(ex);
    assert_json_eq(out, "{\"b\": {\"second\": 3, \"mixed\": \"3/[1,3,{\\\"k\\\":\\\"x\\\"}]\","
                        " \"graph\": \"t\"}, \"who\": \"ada\"}");
    json_decref(out);
    rf_exec_release(ex);

    /* Default output: sinks by id. */
    rf_plan *q = plan_of(eng, "{\"name\": \"d\", \"nodes\": ["
                              "{\"id\": \"x\", \"kind\": \"transform\", \"config\": {\"output\": 1}},"
                              "{\"id\": \"y\", \"kind\": \"transform\", \"config\": {\"output\": 2}}]}");
    ex = run(eng, q, NULL, NULL, 0);
    out = rf_exec_output(ex);
    assert_json_eq(out, "{\"x\": 1, \"y\": 2}");
    json_decref(out);
    rf_exec_release(ex);
    rf_plan_release(q);
    rf_plan_release(p);
    engine_done(eng);
}

static void test_template_error(void **state)
{
    rf_engine *eng = engine();
    struct rec *r = rec_new();
    rf_plan *p = plan_of(eng, "{\"name\": \"e\", \"nodes\": ["
                              "{\"id\": \"a\", \"kind\": \"transform\", \"config\": {\"output\": {}}},"
                              "{\"id\": \"b\", \"kind\": \"count\", \"retry\": {\"max_attempts\": 5},"
                              " \"config\": {\"x\": \"{{nodes.a.output.missing}}\"}}]}");
    rf_exec *ex = run(eng, p, NULL, r, 0);

    assert_int_equal(rf_exec_status(ex), RF_ST_FAILED);
    node_status(ex, "b", RF_ST_FAILED);
    assert_int_equal(atomic_load(&count_runs), 0);
    json_t *f = rec_find(r, "node.failed", "b");
    assert_non_null(f);
    assert_string_equal(json_string_value(json_object_get(json_object_get(f, "error"), "code")),
                        "template_error");
    assert_int_equal(rec_count(r, NULL, "node.retrying", NULL), 0);
    rf_exec_release(ex);
    rf_plan_release(p);
    rec_free(r);
    engine_done(eng);
}

/* --- when and triggers ------------------------------------------------------------------- */

static void test_when(void **state)
{
    rf_engine *eng = engine();
    rf_plan *p = plan_of(eng, "{\"name\": \"w\", \"inputs\": {\"go\": {\"type\": \"boolean\"}},"
                              "\"nodes\": ["
                              "{\"id\": \"a\", \"kind\": \"transform\", \"config\": {\"output\":"
                              " {\"status\": 200}}},"
                              "{\"id\": \"yes\", \"kind\": \"noop\","
                              " \"when\": \"nodes.a.output.status == 200 && inputs.go\"},"
                              "{\"id\": \"no\", \"kind\": \"noop\","
                              " \"when\": \"nodes.a.output.status != 200 || !inputs.go\"},"
                              "{\"id\": \"after_no\", \"kind\": \"noop\", \"deps\": [\"no\"]},"
                              "{\"id\": \"cleanup\", \"kind\": \"noop\", \"deps\": [\"no\"],"
                              " \"trigger\": \"all_done\"}]}");
    rf_exec *ex = run(eng, p, "{\"go\": true}", NULL, 0);

    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    node_status(ex, "yes", RF_ST_SUCCEEDED);
    node_status(ex, "no", RF_ST_SKIPPED);
    node_status(ex, "after_no", RF_ST_SKIPPED);
    node_status(ex, "cleanup", RF_ST_SUCCEEDED);
    rf_exec_release(ex);

    ex = run(eng, p, "{\"go\": false}", NULL, 0);
    node_status(ex, "yes", RF_ST_SKIPPED);
    node_status(ex, "no", RF_ST_SUCCEEDED);
    node_status(ex, "after_no", RF_ST_SUCCEEDED);
    rf_exec_release(ex);
    rf_plan_release(p);
    engine_done(eng);
}

/* --- map ----------------------------------------------------------------------------------- */

static void test_map(void **state)
{
    rf_engine *eng = engine();
    struct rec *r = rec_new();
    rf_plan *p = plan_of(eng, "{\"name\": \"m\", \"inputs\": {\"xs\": {\"type\": \"array\"}},"
                              "\"nodes\": [{\"id\": \"sq\", \"kind\": \"transform\","
                              " \"map\": \"{{inputs.xs}}\", \"max_parallel\": 2,"
                              " \"config\": {\"output\": {\"v\": \"{{item}}\", \"i\": \"{{index}}\"}}}]}");
    rf_exec *ex = run(eng, p, "{\"xs\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", r, 0);

    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    json_t *out = rf_exec_output(ex);
    assert_json_eq(out, "{\"sq\": [{\"v\":\"a\",\"i\":0},{\"v\":\"b\",\"i\":1},{\"v\":\"c\",\"i\":2},"
                        "{\"v\":\"d\",\"i\":3},{\"v\":\"e\",\"i\":4}]}");
    json_decref(out);
    /* One node.started for the node, one per item, and the items carry their index. */
    assert_int_equal(rec_count(r, NULL, "node.started", "sq"), 6);
    assert_int_equal(rec_count(r, NULL, "node.succeeded", "sq"), 6);
    rf_exec_release(ex);

    ex = run(eng, p, "{\"xs\": []}", NULL, 0);
    out = rf_exec_output(ex);
    assert_json_eq(out, "{\"sq\": []}");
    json_decref(out);
    rf_exec_release(ex);
    rf_plan_release(p);

    /* A map that is not an array fails the node. */
    p = plan_of(eng, "{\"name\": \"m2\", \"nodes\": [{\"id\": \"sq\", \"kind\": \"noop\","
                     " \"map\": \"{{execution.graph}}\"}]}");
    ex = run(eng, p, NULL, NULL, 0);
    assert_int_equal(rf_exec_status(ex), RF_ST_FAILED);
    rf_exec_release(ex);
    rf_plan_release(p);

    /* A failing item fails the node, naming the item; the successor is skipped. */
    p = plan_of(eng, "{\"name\": \"m3\", \"inputs\": {\"xs\": {\"type\": \"array\"}},"
                     "\"nodes\": [{\"id\": \"c\", \"kind\": \"count\", \"map\": \"{{inputs.xs}}\","
                     " \"max_parallel\": 1, \"config\": {\"fail\": \"{{item}}\"}},"
                     "{\"id\": \"after\", \"kind\": \"noop\", \"deps\": [\"c\"]}]}");
    ex = run(eng, p, "{\"xs\": [false, false, true, false, false]}", NULL, 0);
    assert_int_equal(rf_exec_status(ex), RF_ST_FAILED);
    node_status(ex, "c", RF_ST_FAILED);
    node_status(ex, "after", RF_ST_SKIPPED);
    const char *msg = json_string_value(json_object_get(rf_exec_error(ex), "message"));
    assert_non_null(strstr(msg, "item 2"));
    /* max_parallel 1: the items after the failure never ran. */
    assert_int_equal(atomic_load(&count_runs), 3);
    rf_exec_release(ex);
    rf_plan_release(p);
    rec_free(r);
    engine_done(eng);
}

static void test_map_parallel(void **state)
{
    rf_engine *eng = engine();
    rf_plan *p = plan_of(eng, "{\"name\": \"mp\", \"inputs\": {\"xs\": {\"type\": \"array\"}},"
                              "\"nodes\": [{\"id\": \"s\", \"kind\": \"slow\", \"map\": "
                              "\"{{inputs.xs}}\", \"max_parallel\": 3,"
                              " \"config\": {\"ms\": 20, \"value\": \"{{item}}\"}}]}");
    rf_exec *ex = run(eng, p, "{\"xs\": [1,2,3,4,5,6,7,8,9,10,11,12]}", NULL, 0);

    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    json_t *out = rf_exec_output(ex);
    assert_json_eq(out, "{\"s\": [1,2,3,4,5,6,7,8,9,10,11,12]}");
    json_decref(out);
    assert_int_equal(atomic_load(&slow_runs), 12);
    assert_true(atomic_load(&slow_peak) <= 3);
    assert_true(atomic_load(&slow_peak) >= 2); /* they did overlap */
    rf_exec_release(ex);
    rf_plan_release(p);
    engine_done(eng);
}

static void test_map_large(void **state)
{
    rf_engine *eng = engine();
    rf_plan *p = plan_of(eng, "{\"name\": \"ml\", \"nodes\": [{\"id\": \"m\", \"kind\": "
                              "\"transform\", \"map\": \"{{inputs.xs}}\", \"max_parallel\": 64,"
                              " \"config\": {\"output\": \"{{item}}\"}}]}");
    json_t *xs = json_array(), *in = json_object();
    rf_submit_opts o = {0};
    rf_exec *ex = NULL;

    for (int i = 0; i < LARGE_MAP_ITEMS; i++)
        json_array_append_new(xs, json_integer(i));
    json_object_set_new(in, "xs", xs);
    assert_int_equal(rf_submit(eng, p, in, &o, &ex), 0);
    assert_int_equal(rf_exec_wait(ex, 120000), 0);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    json_t *out = rf_exec_output(ex), *arr = json_object_get(out, "m");
    assert_int_equal(json_array_size(arr), LARGE_MAP_ITEMS);
    for (int i = 0; i < LARGE_MAP_ITEMS; i += LARGE_MAP_ITEMS / 97)
        assert_int_equal(json_integer_value(json_array_get(arr, i)), i);
    json_decref(out);
    rf_exec_release(ex);
    rf_plan_release(p);
    engine_done(eng);
}

/* --- cache and single flight ------------------------------------------------------------------ */

static void test_cache_hit(void **state)
{
    rf_engine *eng = engine();
    struct rec *r = rec_new();
    rf_plan *p = plan_of(eng, "{\"name\": \"c\", \"inputs\": {\"k\": {\"type\": \"string\"}},"
                              "\"nodes\": [{\"id\": \"n\", \"kind\": \"count\","
                              " \"cache\": {\"ttl_s\": 60, \"version\": \"v1\"},"
                              " \"config\": {\"key\": \"{{inputs.k}}\", \"z\": 1.5}}]}");
    rf_exec *a = run(eng, p, "{\"k\": \"x\"}", r, 0);
    rf_exec *b = run(eng, p, "{\"k\": \"x\"}", r, 0);
    rf_exec *c = run(eng, p, "{\"k\": \"y\"}", r, 0);

    assert_int_equal(atomic_load(&count_runs), 2); /* x once, y once */
    assert_int_equal(rec_count(r, rf_exec_id(b), "node.cached", "n"), 1);
    assert_int_equal(rec_count(r, rf_exec_id(b), "node.started", "n"), 0);
    json_t *out = rf_exec_output(b);
    assert_json_eq(out, "{\"n\": {\"key\": \"x\", \"z\": 1.5}}");
    json_decref(out);
    node_status(b, "n", RF_ST_CACHED);

    /* The event's lineage hash is the spec's, recomputed here from the params. */
    json_t *started = rec_find(r, "node.started", "n");
    const char *lh = json_string_value(json_object_get(started, "lineage_hash"));
    assert_non_null(lh);
    uint8_t h[16];
    char hex[33];
    struct rf_buf buf = {0};
    assert_int_equal(rf_lineage("count", "v1", json_object_get(started, "params"), &buf, h), 0);
    rf_buf_free(&buf);
    rf_hex128(h, hex);
    assert_string_equal(lh, hex);

    rf_cache_counters cc;
    rf_engine_cache_stats(eng, &cc);
    assert_true(cc.hits >= 1);
    assert_true(cc.puts >= 2);
    rf_exec_release(a);
    rf_exec_release(b);
    rf_exec_release(c);
    rf_plan_release(p);
    rec_free(r);
    engine_done(eng);
}

static void test_single_flight(void **state)
{
    enum { N = 8 };
    rf_engine *eng = engine();
    struct rec *r = rec_new();
    rf_plan *p = plan_of(eng, "{\"name\": \"sf\", \"nodes\": [{\"id\": \"s\", \"kind\": \"slow\","
                              " \"cache\": {\"ttl_s\": 60}, \"config\": {\"ms\": 150, \"value\": 7}}]}");
    rf_callbacks cb = {.event = rec_event, .ud = r};
    rf_submit_opts o = {.callbacks = &cb};
    rf_exec *ex[N];

    for (int i = 0; i < N; i++)
        assert_int_equal(rf_submit(eng, p, NULL, &o, &ex[i]), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(rf_exec_wait(ex[i], WAIT_MS), 0);
        assert_int_equal(rf_exec_status(ex[i]), RF_ST_SUCCEEDED);
        json_t *out = rf_exec_output(ex[i]);
        assert_json_eq(out, "{\"s\": 7}");
        json_decref(out);
        rf_exec_release(ex[i]);
    }
    assert_int_equal(atomic_load(&slow_runs), 1);
    assert_int_equal(rec_count(r, NULL, "node.cached", "s"), N - 1);
    rf_cache_counters cc;
    rf_engine_cache_stats(eng, &cc);
    assert_true(cc.flights_joined >= 1);
    rf_plan_release(p);

    /* Within one map: equal items run once. */
    atomic_store(&slow_runs, 0);
    p = plan_of(eng, "{\"name\": \"sfm\", \"nodes\": [{\"id\": \"s\", \"kind\": \"slow\","
                     " \"map\": \"{{inputs.xs}}\", \"max_parallel\": 8, \"cache\": {\"ttl_s\": 60},"
                     " \"config\": {\"ms\": 100, \"value\": \"{{item}}\"}}]}");
    rf_exec *m = run(eng, p, "{\"xs\": [5, 5, 5, 5, 6, 6]}", NULL, 0);
    assert_int_equal(rf_exec_status(m), RF_ST_SUCCEEDED);
    json_t *out = rf_exec_output(m);
    assert_json_eq(out, "{\"s\": [5, 5, 5, 5, 6, 6]}");
    json_decref(out);
    assert_int_equal(atomic_load(&slow_runs), 2);
    rf_exec_release(m);
    rf_plan_release(p);
    rec_free(r);
    engine_done(eng);
}

static void test_cancel_flight_waiter(void **state)
{
    rf_engine *eng = engine();
    rf_plan *p = plan_of(eng, "{\"name\": \"cw\", \"nodes\": [{\"id\": \"s\", \"kind\": \"slow\","
                              " \"cache\": {\"ttl_s\": 60}, \"config\": {\"ms\": 1500, \"value\": 1}}]}");
    rf_exec *lead = NULL, *wait = NULL;

    assert_int_equal(rf_submit(eng, p, NULL, NULL, &lead), 0);
    assert_int_equal(rf_submit(eng, p, NULL, NULL, &wait), 0);
    assert_int_equal(rf_exec_wait(wait, 200), -ETIMEDOUT);
    rf_exec_cancel(wait);
    /* The waiter leaves the flight at once; it does not wait for the leader. */
    assert_int_equal(rf_exec_wait(wait, 1000), 0);
    assert_int_equal(rf_exec_status(wait), RF_ST_CANCELED);
    assert_int_equal(rf_exec_wait(lead, WAIT_MS), 0);
    assert_int_equal(rf_exec_status(lead), RF_ST_SUCCEEDED);
    rf_exec_release(lead);
    rf_exec_release(wait);
    rf_plan_release(p);
    engine_done(eng);
}

/* --- sub-graphs and the registry ------------------------------------------------------------ */

static int reg(rf_engine *eng, const char *doc, rf_plan **out, bool *created, const char *code)
{
    rf_diag d;
    bool found = code == NULL;

    rf_diag_init(&d);
    int rc = rf_graph_register(eng, doc, strlen(doc), &d, out, created);
    for (uint32_t i = 0; i < d.count; i++)
        found |= code && strcmp(d.items[i].code, code) == 0;
    if (!found || (rc < 0 && !code))
        print_diag(&d);
    rf_diag_free(&d);
    assert_true(found);
    return rc;
}

static void test_registry(void **state)
{
    rf_engine *eng = engine();
    const char *v1 = "{\"name\": \"g\", \"nodes\": [{\"id\": \"a\", \"kind\": \"noop\"}]}";
    const char *v1b = "{ \"nodes\": [{\"kind\": \"noop\", \"id\": \"a\"}], \"name\": \"g\" }";
    const char *v2 = "{\"name\": \"g\", \"description\": \"x\", \"nodes\": [{\"id\": \"a\","
                     " \"kind\": \"noop\"}]}";
    rf_plan *p = NULL;
    bool created = false;

    assert_int_equal(reg(eng, v1, &p, &created, NULL), 0);
    assert_true(created);
    assert_int_equal(rf_plan_version(p), 1);
    assert_int_equal(strlen(rf_plan_hash(p)), 32);
    rf_plan_release(p);
    /* The same content, written differently: the same version. */
    assert_int_equal(reg(eng, v1b, &p, &created, NULL), 0);
    assert_false(created);
    assert_int_equal(rf_plan_version(p), 1);
    rf_plan_release(p);
    assert_int_equal(reg(eng, v2, &p, &created, NULL), 0);
    assert_true(created);
    assert_int_equal(rf_plan_version(p), 2);
    rf_plan_release(p);
    p = rf_graph_get(eng, "g", 0);
    assert_int_equal(rf_plan_version(p), 2);
    rf_plan_release(p);
    p = rf_graph_get(eng, "g", 1);
    assert_int_equal(rf_plan_version(p), 1);
    rf_plan_release(p);
    assert_null(rf_graph_get(eng, "g", 3));
    assert_null(rf_graph_get(eng, "nope", 0));
    engine_done(eng);
}

static void test_subgraph(void **state)
{
    rf_engine *eng = engine();
    struct rec *r = rec_new();
    rf_plan *p = NULL;

    assert_int_equal(reg(eng, "{\"name\": \"child\", \"inputs\": {\"x\": {\"type\": \"integer\","
                              " \"required\": true}}, \"nodes\": [{\"id\": \"c\", \"kind\": "
                              "\"transform\", \"config\": {\"output\": {\"twice\": [\"{{inputs.x}}\","
                              " \"{{inputs.x}}\"]}}}], \"output\": \"{{nodes.c.output}}\"}",
                         NULL, NULL, NULL),
                     0);
    assert_int_equal(reg(eng, "{\"name\": \"parent\", \"nodes\": [{\"id\": \"call\", \"kind\": "
                              "\"graph\", \"config\": {\"name\": \"child\", \"inputs\": {\"x\": "
                              "\"{{inputs.v}}\"}}}]}",
                         &p, NULL, NULL),
                     0);
    rf_exec *ex = run(eng, p, "{\"v\": 21}", r, 0);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    json_t *out = rf_exec_output(ex);
    assert_json_eq(out, "{\"call\": {\"twice\": [21, 21]}}");
    json_decref(out);
    /* The child's events reached the parent's callback, with the parent link. */
    json_t *ce = rec_find(r, "node.succeeded", "c");
    assert_non_null(ce);
    json_t *par = json_object_get(ce, "parent");
    assert_string_equal(json_string_value(json_object_get(par, "execution_id")), rf_exec_id(ex));
    assert_string_equal(json_string_value(json_object_get(par, "node")), "call");
    rf_exec_release(ex);

    /* Bad inputs for the child fail the node, not retried. */
    ex = run(eng, p, "{\"v\": \"nope\"}", NULL, 0);
    assert_int_equal(rf_exec_status(ex), RF_ST_FAILED);
    rf_exec_release(ex);
    rf_plan_release(p);

    /* No graph may call itself through any path. */
    assert_int_equal(reg(eng, "{\"name\": \"self\", \"nodes\": [{\"id\": \"s\", \"kind\": "
                              "\"graph\", \"config\": {\"name\": \"self\"}}]}",
                         NULL, NULL, "recursive_graph"),
                     RF_EINVAL_GRAPH);
    assert_int_equal(reg(eng, "{\"name\": \"b\", \"nodes\": [{\"id\": \"n\", \"kind\": \"noop\"}]}",
                         NULL, NULL, NULL),
                     0);
    assert_int_equal(reg(eng, "{\"name\": \"a\", \"nodes\": [{\"id\": \"n\", \"kind\": \"graph\","
                              " \"config\": {\"name\": \"b\"}}]}",
                         NULL, NULL, NULL),
                     0);
    assert_int_equal(reg(eng, "{\"name\": \"b\", \"nodes\": [{\"id\": \"n\", \"kind\": \"graph\","
                              " \"config\": {\"name\": \"a\"}}]}",
                         NULL, NULL, "recursive_graph"),
                     RF_EINVAL_GRAPH);
    assert_int_equal(reg(eng, "{\"name\": \"u\", \"nodes\": [{\"id\": \"n\", \"kind\": \"graph\","
                              " \"config\": {\"name\": \"missing\"}}]}",
                         NULL, NULL, "unknown_graph"),
                     RF_EINVAL_GRAPH);
    rec_free(r);
    engine_done(eng);
}

/* --- validation through compile ------------------------------------------------------------- */

static void test_compile_errors(void **state)
{
    rf_engine *eng = engine();

    assert_true(rejects_with(eng, "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"kind\": \"noop\","
                                  " \"when\": \"inputs.a ==\"}]}",
                             "condition_syntax"));
    assert_true(rejects_with(eng, "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"kind\": "
                                  "\"transform\", \"config\": {\"output\": \"{{inputs.a\"}}]}",
                             "template_syntax"));
    assert_true(rejects_with(eng, "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"kind\": "
                                  "\"transform\", \"config\": {\"output\": \"{{nodes.zz.output}}\"}}]}",
                             "unknown_ref"));
    assert_true(rejects_with(eng, "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"kind\": "
                                  "\"transform\", \"config\": {\"output\": \"{{item}}\"}}]}",
                             "bad_scope"));
    /* a references b's output while b depends on a: not an ancestor, a cycle. */
    assert_true(rejects_with(eng, "{\"name\": \"x\", \"nodes\": ["
                                  "{\"id\": \"a\", \"kind\": \"transform\", \"config\": {\"output\":"
                                  " \"{{nodes.b.output}}\"}},"
                                  "{\"id\": \"b\", \"kind\": \"noop\", \"deps\": [\"a\"]}]}",
                             "not_ancestor"));
    assert_true(rejects_with(eng, "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"kind\": "
                                  "\"transform\", \"config\": {\"output\": \"{{nodes.a.output}}\"}}]}",
                             "not_ancestor"));
    assert_true(rejects_with(eng, "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"kind\": \"noop\","
                                  " \"map\": \"static\"}]}",
                             "invalid_map"));
    assert_true(rejects_with(eng, "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"kind\": \"noop\","
                                  " \"map\": \"{{inputs.x}}\", \"max_parallel\": 5000}]}",
                             "range") ||
                rejects_with(eng, "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"kind\": \"noop\","
                                  " \"map\": \"{{inputs.x}}\", \"max_parallel\": 5000}]}",
                             "limit"));
    assert_true(rejects_with(eng, "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"kind\": "
                                  "\"transform\", \"config\": {}}]}",
                             "invalid_config"));
    engine_done(eng);
}

/* --- inputs and the document ----------------------------------------------------------------- */

static void test_inputs(void **state)
{
    rf_engine *eng = engine();
    rf_plan *p = plan_of(eng, "{\"name\": \"i\", \"inputs\": {\"id\": {\"type\": \"string\","
                              " \"required\": true}, \"limit\": {\"type\": \"number\", \"default\": 10}},"
                              " \"nodes\": [{\"id\": \"o\", \"kind\": \"transform\","
                              " \"config\": {\"output\": \"{{inputs.limit}}\"}}]}");
    rf_diag d;
    rf_submit_opts o = {.diag = &d};
    rf_exec *ex = NULL;

    rf_diag_init(&d);
    assert_int_equal(rf_submit(eng, p, json_loads("{\"limit\": \"x\"}", 0, NULL), &o, &ex),
                     RF_EINPUTS);
    assert_true(d.count >= 2); /* id missing, limit of the wrong type */
    bool saw_id = false, saw_limit = false;
    for (uint32_t i = 0; i < d.count; i++) {
        saw_id |= strcmp(d.items[i].pointer, "/inputs/id") == 0;
        saw_limit |= strcmp(d.items[i].pointer, "/inputs/limit") == 0;
    }
    assert_true(saw_id && saw_limit);
    rf_diag_free(&d);

    ex = run(eng, p, "{\"id\": \"z\"}", NULL, 0);
    json_t *out = rf_exec_output(ex);
    assert_json_eq(out, "{\"o\": 10}");
    json_decref(out);
    rf_exec_release(ex);
    rf_plan_release(p);
    engine_done(eng);
}

static void test_document(void **state)
{
    rf_engine *eng = engine();
    rf_plan *p = plan_of(eng, "{\"name\": \"doc\", \"nodes\": ["
                              "{\"id\": \"a\", \"kind\": \"transform\", \"config\": {\"output\":"
                              " \"{{inputs.q}}\"}},"
                              "{\"id\": \"m\", \"kind\": \"transform\", \"map\": \"{{inputs.xs}}\","
                              " \"config\": {\"output\": \"{{item}}\"}},"
                              "{\"id\": \"s\", \"kind\": \"noop\", \"when\": \"false\"}]}");
    rf_exec *ex = run(eng, p, "{\"q\": \"hello\", \"xs\": [1, 2]}", NULL, RF_SUBMIT_DOCUMENT);
    json_t *doc = rf_exec_document(ex);

    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "succeeded");
    json_t *nodes = json_object_get(doc, "nodes");
    json_t *a = json_object_get(nodes, "a");
    assert_string_equal(json_string_value(json_object_get(a, "status")), "succeeded");
    assert_json_eq(json_object_get(a, "params"), "{\"output\": \"hello\"}");
    assert_json_eq(json_object_get(a, "output"), "\"hello\"");
    assert_int_equal(strlen(json_string_value(json_object_get(a, "lineage_hash"))), 32);
    json_t *m = json_object_get(nodes, "m");
    assert_int_equal(json_array_size(json_object_get(m, "items")), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(nodes, "s"), "status")),
                        "skipped");
    json_decref(doc);
    rf_exec_release(ex);
    ex = run(eng, p, "{\"q\": 1, \"xs\": []}", NULL, 0);
    assert_null(rf_exec_document(ex)); /* not asked for */
    rf_exec_release(ex);
    rf_plan_release(p);
    engine_done(eng);
}

/* --- ids, held submissions, resumed executions (the journal's needs) ------------------------- */

static void test_ids(void **state)
{
    uint8_t tail[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0xff}, back[10];
    char id[RF_ID_BYTES], id2[RF_ID_BYTES];
    uint64_t ms;

    (void)state;
    rf_exec_id_make(1765060000123456, tail, id);
    assert_int_equal(strlen(id), 26);
    assert_true(rf_exec_id_parse(id, &ms, back));
    assert_true(ms == 1765060000123ull);
    assert_memory_equal(back, tail, 10);
    /* Later times sort later. */
    rf_exec_id_make(1765060000124000, NULL, id2);
    assert_true(strcmp(id, id2) < 0);
    assert_false(rf_exec_id_parse("01m96rkh8e9fbq2fkc82rhw48", NULL, NULL)); /* 25 */
    assert_false(rf_exec_id_parse("01m96rkh8e9fbq2fkc82rhw48u", NULL, NULL)); /* u */
    assert_false(rf_exec_id_parse("81m96rkh8e9fbq2fkc82rhw48q", NULL, NULL)); /* > 128 bits */
    assert_false(rf_exec_id_parse("01M96RKH8E9FBQ2FKC82RHW48Q", NULL, NULL));
}

static void test_held(void **state)
{
    rf_engine *eng = engine();
    rf_plan *p = plan_of(eng, "{\"name\": \"h\", \"nodes\": [{\"id\": \"a\", \"kind\": \"count\","
                              " \"config\": {\"v\": 1}}]}");
    struct rec *r = rec_new();
    rf_callbacks cb = {.event = rec_event, .ud = r};
    char id[RF_ID_BYTES];
    rf_exec *ex = NULL, *ex2 = NULL;

    (void)state;
    atomic_store(&count_runs, 0);
    rf_exec_id_make(1765060000000000, NULL, id);
    rf_submit_opts o = {.callbacks = &cb, .flags = RF_SUBMIT_HELD, .id = id,
                        .created_us = 1765060000000000};
    assert_int_equal(rf_submit(eng, p, NULL, &o, &ex), 0);
    assert_string_equal(rf_exec_id(ex), id);
    /* Held: nothing runs, nothing is said. */
    assert_int_equal(rf_exec_wait(ex, 100), -ETIMEDOUT);
    assert_int_equal(atomic_load(&count_runs), 0);
    assert_int_equal(json_array_size(r->events), 0);
    assert_int_equal(rf_exec_start(ex), 0);
    assert_int_equal(rf_exec_start(ex), -EINVAL);
    assert_int_equal(rf_exec_wait(ex, WAIT_MS), 0);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    assert_int_equal(atomic_load(&count_runs), 1);
    /* Abandoned: no run, no event, canceled, its reservation back (the engine stops). */
    o.id = NULL;
    assert_int_equal(rf_submit(eng, p, NULL, &o, &ex2), 0);
    size_t events = json_array_size(r->events);
    assert_int_equal(rf_exec_abandon(ex2), 0);
    assert_int_equal(rf_exec_abandon(ex2), -EINVAL);
    assert_int_equal(rf_exec_start(ex2), -EINVAL);
    assert_int_equal(rf_exec_wait(ex2, WAIT_MS), 0);
    assert_int_equal(rf_exec_status(ex2), RF_ST_CANCELED);
    assert_int_equal(json_array_size(r->events), events);
    assert_int_equal(atomic_load(&count_runs), 1);
    /* A bad id is refused. */
    o.id = "not-an-id";
    assert_int_equal(rf_submit(eng, p, NULL, &o, &ex2 /* untouched */), -EINVAL);
    rf_exec_release(ex);
    rf_exec_release(ex2);
    rf_plan_release(p);
    rec_free(r);
    engine_done(eng);
}

/* a -> b -> c with a recorded as succeeded (and 4 events said): a does not run again, b and c
 * see its recorded output, events go on at seq 5, and no queued or started is repeated. */
static void test_resume(void **state)
{
    rf_engine *eng = engine();
    rf_plan *p = plan_of(eng, "{\"name\": \"r\", \"nodes\": ["
                              " {\"id\": \"a\", \"kind\": \"count\", \"config\": {\"v\": 1}},"
                              " {\"id\": \"b\", \"kind\": \"count\", \"deps\": [\"a\"],"
                              "  \"config\": {\"from_a\": \"{{nodes.a.output.v}}\"}},"
                              " {\"id\": \"c\", \"kind\": \"count\", \"deps\": [\"b\"],"
                              "  \"config\": {\"from_b\": \"{{nodes.b.output.from_a}}\"}}],"
                              " \"output\": {\"c\": \"{{nodes.c.output}}\"}}");
    struct rec *r = rec_new();
    rf_callbacks cb = {.event = rec_event, .ud = r};
    json_t *a_out = json_pack("{s:i}", "v", 42);
    rf_resume_node done = {.node = 0, .status = RF_ST_SUCCEEDED, .attempts = 1, .output = a_out};
    rf_resume res = {.nodes = &done, .n = 1, .events = 4, .started_us = 1765060000000000};
    char id[RF_ID_BYTES];
    rf_exec *ex = NULL;

    (void)state;
    atomic_store(&count_runs, 0);
    rf_exec_id_make(1765060000000000, NULL, id);
    rf_submit_opts o = {.callbacks = &cb, .id = id, .created_us = 1765060000000000,
                        .resume = &res};
    assert_int_equal(rf_submit(eng, p, NULL, &o, &ex), 0);
    assert_int_equal(rf_exec_wait(ex, WAIT_MS), 0);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    assert_int_equal(atomic_load(&count_runs), 2); /* b and c only */
    json_t *out = rf_exec_output(ex);
    assert_json_eq(out, "{\"c\": {\"from_b\": 42}}");
    json_decref(out);
    assert_int_equal(rec_count(r, id, "execution.queued", NULL), 0);
    assert_int_equal(rec_count(r, id, "execution.started", NULL), 0);
    assert_int_equal(rec_count(r, id, "node.started", "a"), 0);
    assert_int_equal(rec_count(r, id, "node.succeeded", "a"), 0);
    assert_int_equal(rec_count(r, id, "node.succeeded", "b"), 1);
    json_t *first = json_array_get(r->events, 0);
    assert_int_equal(json_integer_value(json_object_get(first, "seq")), 5);
    size_t n = json_array_size(r->events);
    json_t *last = json_array_get(r->events, n - 1);
    assert_int_equal(json_integer_value(json_object_get(last, "seq")), 4 + (json_int_t)n);
    node_status(ex, "a", RF_ST_SUCCEEDED);
    /* A recorded failure fails the execution without running anything. */
    rf_exec_release(ex);
    json_t *err = json_pack("{s:s, s:s, s:s}", "code", "boom", "message", "it broke", "node", "a");
    done = (rf_resume_node){.node = 0, .status = RF_ST_FAILED, .attempts = 3, .error = err};
    res.events = 5;
    o.id = NULL;
    assert_int_equal(rf_submit(eng, p, NULL, &o, &ex), 0);
    assert_int_equal(rf_exec_wait(ex, WAIT_MS), 0);
    assert_int_equal(rf_exec_status(ex), RF_ST_FAILED);
    assert_int_equal(atomic_load(&count_runs), 2);
    assert_string_equal(json_string_value(json_object_get(rf_exec_error(ex), "message")),
                        "it broke");
    /* A node index out of range or a status that is not terminal is refused. */
    rf_exec_release(ex);
    done = (rf_resume_node){.node = 9, .status = RF_ST_SUCCEEDED};
    assert_int_equal(rf_submit(eng, p, NULL, &o, &ex), -EINVAL);
    done = (rf_resume_node){.node = 0, .status = RF_ST_RUNNING};
    assert_int_equal(rf_submit(eng, p, NULL, &o, &ex), -EINVAL);
    json_decref(a_out);
    json_decref(err);
    rf_plan_release(p);
    rec_free(r);
    engine_done(eng);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_template_error),
        cmocka_unit_test(test_when),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_map_parallel),
        cmocka_unit_test(test_map_large),
        cmocka_unit_test(test_cache_hit),
        cmocka_unit_test(test_single_flight),
        cmocka_unit_test(test_cancel_flight_waiter),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_subgraph),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_inputs),
        cmocka_unit_test(test_document),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_held),
        cmocka_unit_test(test_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
