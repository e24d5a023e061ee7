/*
 * tests/engine/test_xdoc.c: the hydrated execution document (engine/xdoc.c), fed synthetic
 * event sequences, without running anything.
 * RF_TEST_CONCURRENT: runs under ThreadSanitizer too (one test snapshots while another
 * thread applies).
 *
 * Plans are compiled from builder graphs on an engine that is never started, so the node
 * indices, ids and kinds are the real ones. Every test checks the document field by field
 * against what the events said: the execution's and each node's status, attempts, params,
 * output, error, lineage hash, cached flag and times (exact RFC 3339 strings for known
 * microsecond timestamps); items of a mapped node growing with pending entries up to the
 * highest item seen, the node shown running from its first item event until its own
 * terminal event and never changed by an item event after it; a parent link recorded once;
 * and snapshots that are deep copies (mutating one, or applying more events, changes
 * nothing already taken). The concurrent test checks that every snapshot taken while
 * another thread applies is a whole document in a state the events went through.
 */
#include "engine/xdoc.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* 2026-11-22T12:00:00Z in microseconds since the epoch. */
#define T0_US          1795348800000000LL
#define CONC_ITEMS     2000
#define CONC_SNAPSHOTS 200

/* --- fixtures ----------------------------------------------------------------------------- */

struct fx {
    rf_engine *eng;
    rf_plan *plan;
    struct rf_xdoc *d;
    uint64_t seq;
};

/* A plan of nodes "a" (noop) -> "b" (delay) -> "c" (fail), and "m" (noop, independent). */
static rf_plan *plan_abc(rf_engine *eng)
{
    rf_graph *g = NULL;
    rf_plan *p = NULL;
    json_t *delay_cfg = json_pack("{s:i}", "ms", 5);

    assert_int_equal(rf_graph_new("xdoc-test", &g), 0);
    assert_int_equal(rf_graph_add_node(g, "a", "noop", NULL, NULL), 0);
    assert_int_equal(rf_graph_add_node(g, "b", "delay", delay_cfg, NULL), 1);
    assert_int_equal(rf_graph_add_node(g, "c", "fail", NULL, NULL), 2);
    assert_int_equal(rf_graph_add_node(g, "m", "noop", NULL, NULL), 3);
    assert_int_equal(rf_graph_add_edge(g, 0, 1), 0);
    assert_int_equal(rf_graph_add_edge(g, 1, 2), 0);
    assert_int_equal(rf_plan_compile(eng, g, NULL, &p), 0);
    json_decref(delay_cfg);
    rf_graph_free(g);
    return p;
}

static int setup(void **state)
{
    rf_config cfg = {.shards = 1, .no_pin_threads = true};
    struct fx *f = calloc(1, sizeof(*f));
    json_t *inputs = json_pack("{s:s, s:i}", "who", "world", "n", 3);
    json_t *tags = json_pack("{s:s}", "team", "core");

    assert_non_null(f);
    assert_int_equal(rf_engine_new(&cfg, &f->eng), 0);
    f->plan = plan_abc(f->eng);
    f->d = rf__xdoc_new(f->plan, "01testexec", inputs, tags, T0_US);
    assert_non_null(f->d);
    json_decref(inputs); /* the document took its own references */
    json_decref(tags);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    rf__xdoc_free(f->d);
    rf_plan_release(f->plan);
    rf_engine_free(f->eng);
    free(f);
    return 0;
}

/* Apply one event; seq counts up by itself, ts is T0 plus `dt_us`. */
static void apply(struct fx *f, rf_event ev, int64_t dt_us)
{
    ev.seq = ++f->seq;
    ev.ts_us = T0_US + dt_us;
    ev.exec_id = "01testexec";
    if (ev.node >= 0 && !ev.node_id)
        ev.node_id = rf_plan_node_id(f->plan, (uint32_t)ev.node);
    rf__xdoc_apply(f->d, &ev);
}

static rf_event exec_ev(rf_event_type t)
{
    return (rf_event){.type = t, .node = -1, .item = -1, .parent_item = -1};
}

static rf_event node_ev(rf_event_type t, int32_t node, uint32_t attempt)
{
    return (rf_event){.type = t, .node = node, .item = -1, .attempt = attempt, .parent_item = -1};
}

static rf_event item_ev(rf_event_type t, int32_t node, int64_t item, uint32_t attempt)
{
    rf_event ev = node_ev(t, node, attempt);

    ev.item = item;
    return ev;
}

static json_t *snap(struct fx *f)
{
    json_t *s = rf__xdoc_snapshot(f->d);

    assert_non_null(s);
    return s;
}

static json_t *node_of(json_t *doc, const char *id)
{
    json_t *n = json_object_get(json_object_get(doc, "nodes"), id);

    assert_non_null(n);
    return n;
}

static void assert_str_field(json_t *o, const char *key, const char *want)
{
    const char *got = json_string_value(json_object_get(o, key));

    if (!got || strcmp(got, want) != 0)
        fail_msg("%s: want \"%s\", got %s", key, want, got ? got : "(not a string)");
}

static void assert_null_field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    assert_non_null(v); /* present */
    assert_true(json_is_null(v));
}

static void assert_int_field(json_t *o, const char *key, json_int_t want)
{
    json_t *v = json_object_get(o, key);

    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), want);
}

/* `key` equals the JSON text `want`. */
static void assert_json_field(json_t *o, const char *key, const char *want_text)
{
    json_t *want = json_loads(want_text, JSON_DECODE_ANY, NULL);
    json_t *got = json_object_get(o, key);

    assert_non_null(want);
    if (!json_equal(want, got)) {
        char *s = got ? json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        fail_msg("%s: want %s, got %s", key, want_text, s ? s : "(absent)");
    }
    json_decref(want);
}

/* The per-run fields every node and item entry carries. */
static void assert_run_shape(json_t *run)
{
    static const char *const keys[] = {"status", "lineage_hash", "attempts",
                                       "params", "output",       "error",
                                       "cached", "started_at",   "finished_at"};

    assert_true(json_is_object(run));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!json_object_get(run, keys[i]))
            fail_msg("run entry lacks \"%s\"", keys[i]);
}

/* --- tests --------------------------------------------------------------------------------- */

static void test_new_document(void **state)
{
    struct fx *f = *state;
    json_t *s = snap(f);

    assert_str_field(s, "id", "01testexec");
    assert_str_field(s, "graph", "xdoc-test");
    assert_null_field(s, "version"); /* a plan never registered */
    assert_str_field(s, "status", "queued");
    assert_json_field(s, "inputs", "{\"who\": \"world\", \"n\": 3}");
    assert_json_field(s, "tags", "{\"team\": \"core\"}");
    assert_str_field(s, "created_at", "2026-11-22T12:00:00.000000Z");
    assert_null_field(s, "started_at");
    assert_null_field(s, "finished_at");
    assert_null_field(s, "output");
    assert_null_field(s, "error");
    assert_null(json_object_get(s, "parent"));
    assert_int_equal(json_object_size(json_object_get(s, "nodes")), 4);

    static const char *const ids[] = {"a", "b", "c", "m"};
    static const char *const kinds[] = {"noop", "delay", "fail", "noop"};
    for (int i = 0; i < 4; i++) {
        json_t *n = node_of(s, ids[i]);
        assert_run_shape(n);
        assert_str_field(n, "status", "pending");
        assert_str_field(n, "kind", kinds[i]);
        assert_int_field(n, "attempts", 0);
        assert_true(json_is_false(json_object_get(n, "cached")));
        assert_null(json_object_get(n, "items"));
    }
    json_decref(s);
}

static void test_null_inputs_and_tags(void **state)
{
    struct fx *f = *state;
    struct rf_xdoc *d = rf__xdoc_new(f->plan, "x", NULL, NULL, T0_US + 1);
    json_t *s;

    assert_non_null(d);
    s = rf__xdoc_snapshot(d);
    assert_non_null(s);
    assert_json_field(s, "inputs", "{}");
    assert_json_field(s, "tags", "{}");
    assert_str_field(s, "created_at", "2026-11-22T12:00:00.000001Z");
    json_decref(s);
    rf__xdoc_free(d);
    rf__xdoc_free(NULL);
}

/* queued, started, a runs, b runs (1 s), c's first attempt fails retryably: checked on the
 * way. Leaves c retrying. */
static void lifecycle_until_retrying(struct fx *f)
{
    json_t *params = json_pack("{s:i}", "ms", 5);
    json_t *err1 = json_pack("{s:s, s:s}", "code", "io", "message", "first");
    rf_event ev;

    apply(f, exec_ev(RF_EV_EXECUTION_QUEUED), 0);
    apply(f, exec_ev(RF_EV_EXECUTION_STARTED), 10);
    ev = node_ev(RF_EV_NODE_STARTED, 0, 1);
    ev.params = json_null();
    apply(f, ev, 20);

    json_t *s = snap(f);
    assert_str_field(s, "status", "running");
    assert_str_field(s, "started_at", "2026-11-22T12:00:00.000010Z");
    assert_str_field(node_of(s, "a"), "status", "running");
    assert_int_field(node_of(s, "a"), "attempts", 1);
    assert_str_field(node_of(s, "a"), "started_at", "2026-11-22T12:00:00.000020Z");
    assert_null_field(node_of(s, "a"), "finished_at");
    json_decref(s);

    ev = node_ev(RF_EV_NODE_SUCCEEDED, 0, 1);
    ev.output = json_null();
    ev.lineage_hash = "0123456789abcdef0123456789abcdef";
    apply(f, ev, 30);
    ev = node_ev(RF_EV_NODE_STARTED, 1, 1);
    ev.params = params;
    apply(f, ev, 40);
    ev = node_ev(RF_EV_NODE_SUCCEEDED, 1, 1);
    ev.output = json_null();
    apply(f, ev, 1000050);
    apply(f, node_ev(RF_EV_NODE_STARTED, 2, 1), 1000060);
    ev = node_ev(RF_EV_NODE_RETRYING, 2, 1);
    ev.error = err1;
    ev.retry_in_ms = 50;
    apply(f, ev, 1000070);
    json_decref(params);
    json_decref(err1);
}

static void test_lifecycle_running(void **state)
{
    struct fx *f = *state;

    lifecycle_until_retrying(f);
    json_t *s = snap(f);
    assert_str_field(node_of(s, "a"), "status", "succeeded");
    assert_str_field(node_of(s, "a"), "lineage_hash", "0123456789abcdef0123456789abcdef");
    assert_str_field(node_of(s, "a"), "finished_at", "2026-11-22T12:00:00.000030Z");
    assert_json_field(node_of(s, "b"), "params", "{\"ms\": 5}");
    assert_str_field(node_of(s, "b"), "finished_at", "2026-11-22T12:00:01.000050Z");
    assert_str_field(node_of(s, "c"), "status", "retrying");
    assert_json_field(node_of(s, "c"), "error", "{\"code\": \"io\", \"message\": \"first\"}");
    assert_null_field(node_of(s, "c"), "finished_at");
    assert_null_field(s, "finished_at");
    json_decref(s);

    apply(f, node_ev(RF_EV_NODE_STARTED, 2, 2), 2000000);
    s = snap(f);
    assert_str_field(node_of(s, "c"), "status", "running");
    assert_int_field(node_of(s, "c"), "attempts", 2);
    /* started_at is the first attempt's */
    assert_str_field(node_of(s, "c"), "started_at", "2026-11-22T12:00:01.000060Z");
    json_decref(s);
}

static void test_lifecycle_failed(void **state)
{
    struct fx *f = *state;
    json_t *err2 = json_pack("{s:s, s:s, s:s}", "code", "failed", "message", "last", "node", "c");
    rf_event ev;

    lifecycle_until_retrying(f);
    apply(f, node_ev(RF_EV_NODE_STARTED, 2, 2), 2000000);
    ev = node_ev(RF_EV_NODE_FAILED, 2, 2);
    ev.error = err2;
    apply(f, ev, 2000100);
    apply(f, node_ev(RF_EV_NODE_SKIPPED, 3, 0), 2000110);
    ev = exec_ev(RF_EV_EXECUTION_FAILED);
    ev.error = err2;
    apply(f, ev, 2000120);

    json_t *s = snap(f);
    assert_str_field(s, "status", "failed");
    assert_json_field(s, "error", "{\"code\": \"failed\", \"message\": \"last\", \"node\": \"c\"}");
    assert_null_field(s, "output");
    assert_str_field(s, "finished_at", "2026-11-22T12:00:02.000120Z");
    assert_str_field(node_of(s, "c"), "status", "failed");
    assert_int_field(node_of(s, "c"), "attempts", 2);
    assert_json_field(node_of(s, "c"), "error",
                      "{\"code\": \"failed\", \"message\": \"last\", \"node\": \"c\"}");
    assert_str_field(node_of(s, "c"), "finished_at", "2026-11-22T12:00:02.000100Z");
    assert_str_field(node_of(s, "m"), "status", "skipped");
    assert_int_field(node_of(s, "m"), "attempts", 0);
    assert_null_field(node_of(s, "m"), "started_at");
    assert_str_field(node_of(s, "m"), "finished_at", "2026-11-22T12:00:02.000110Z");
    json_decref(s);
    json_decref(err2);
}

static void test_succeeded_output_and_cached(void **state)
{
    struct fx *f = *state;
    json_t *out = json_pack("{s:[i,i]}", "xs", 1, 2);
    json_t *result = json_pack("{s:s}", "c", "done");
    rf_event ev;

    apply(f, exec_ev(RF_EV_EXECUTION_STARTED), 0);
    apply(f, node_ev(RF_EV_NODE_STARTED, 0, 1), 1);
    ev = node_ev(RF_EV_NODE_CACHED, 0, 1);
    ev.cached = true;
    ev.output = out;
    ev.lineage_hash = "ffffffffffffffffffffffffffffffff";
    apply(f, ev, 2);
    /* A retried node that finally succeeds keeps its last failure's error. */
    apply(f, node_ev(RF_EV_NODE_STARTED, 3, 1), 3);
    ev = node_ev(RF_EV_NODE_RETRYING, 3, 1);
    ev.error = result; /* any object */
    apply(f, ev, 4);
    apply(f, node_ev(RF_EV_NODE_STARTED, 3, 2), 5);
    ev = node_ev(RF_EV_NODE_SUCCEEDED, 3, 2);
    ev.output = NULL; /* JSON null */
    apply(f, ev, 6);
    ev = exec_ev(RF_EV_EXECUTION_SUCCEEDED);
    ev.output = result;
    apply(f, ev, 7);

    json_t *s = snap(f);
    json_t *a = node_of(s, "a");
    assert_str_field(a, "status", "cached");
    assert_true(json_is_true(json_object_get(a, "cached")));
    assert_json_field(a, "output", "{\"xs\": [1, 2]}");
    assert_str_field(a, "lineage_hash", "ffffffffffffffffffffffffffffffff");
    assert_str_field(a, "finished_at", "2026-11-22T12:00:00.000002Z");
    json_t *m = node_of(s, "m");
    assert_str_field(m, "status", "succeeded");
    assert_true(json_is_false(json_object_get(m, "cached")));
    assert_int_field(m, "attempts", 2);
    assert_null_field(m, "output");
    assert_json_field(m, "error", "{\"c\": \"done\"}");
    assert_str_field(s, "status", "succeeded");
    assert_json_field(s, "output", "{\"c\": \"done\"}");
    assert_null_field(s, "error");
    json_decref(s);
    json_decref(out);
    json_decref(result);
}

static void test_canceled_keeps_attempts(void **state)
{
    struct fx *f = *state;

    apply(f, exec_ev(RF_EV_EXECUTION_STARTED), 0);
    apply(f, node_ev(RF_EV_NODE_STARTED, 1, 1), 1);
    apply(f, node_ev(RF_EV_NODE_CANCELED, 1, 0), 2);
    apply(f, node_ev(RF_EV_NODE_CANCELED, 2, 0), 3);
    apply(f, exec_ev(RF_EV_EXECUTION_CANCELED), 4);

    json_t *s = snap(f);
    assert_str_field(s, "status", "canceled");
    assert_str_field(s, "finished_at", "2026-11-22T12:00:00.000004Z");
    assert_null_field(s, "output");
    assert_str_field(node_of(s, "b"), "status", "canceled");
    assert_int_field(node_of(s, "b"), "attempts", 1);
    assert_str_field(node_of(s, "b"), "started_at", "2026-11-22T12:00:00.000001Z");
    assert_str_field(node_of(s, "b"), "finished_at", "2026-11-22T12:00:00.000002Z");
    assert_str_field(node_of(s, "c"), "status", "canceled");
    assert_int_field(node_of(s, "c"), "attempts", 0);
    json_decref(s);
}

static json_t *items_of(json_t *doc, const char *id, size_t want_len)
{
    json_t *items = json_object_get(node_of(doc, id), "items");

    assert_true(json_is_array(items));
    assert_int_equal(json_array_size(items), want_len);
    for (size_t i = 0; i < want_len; i++)
        assert_run_shape(json_array_get(items, i));
    return items;
}

static void test_items(void **state)
{
    struct fx *f = *state;
    json_t *p2 = json_pack("{s:i}", "item", 2);
    json_t *o2 = json_pack("{s:i}", "pos", 2);
    json_t *err = json_pack("{s:s, s:s}", "code", "io", "message", "item 1 failed");
    rf_event ev;

    apply(f, node_ev(RF_EV_NODE_STARTED, 0, 1), 0);
    ev = item_ev(RF_EV_NODE_STARTED, 0, 2, 1);
    ev.params = p2;
    ev.lineage_hash = "22222222222222222222222222222222";
    apply(f, ev, 1);

    json_t *s = snap(f);
    json_t *items = items_of(s, "a", 3);
    assert_str_field(json_array_get(items, 0), "status", "pending");
    assert_str_field(json_array_get(items, 1), "status", "pending");
    assert_str_field(json_array_get(items, 2), "status", "running");
    assert_json_field(json_array_get(items, 2), "params", "{\"item\": 2}");
    assert_str_field(json_array_get(items, 2), "lineage_hash", "22222222222222222222222222222222");
    assert_str_field(node_of(s, "a"), "status", "running");
    assert_null_field(node_of(s, "a"), "params"); /* the item's params are the item's */
    json_decref(s);

    ev = item_ev(RF_EV_NODE_SUCCEEDED, 0, 2, 1);
    ev.output = o2;
    apply(f, ev, 2);
    apply(f, item_ev(RF_EV_NODE_STARTED, 0, 1, 1), 3);
    apply(f, item_ev(RF_EV_NODE_RETRYING, 0, 1, 1), 4);
    apply(f, item_ev(RF_EV_NODE_STARTED, 0, 1, 2), 5);
    ev = item_ev(RF_EV_NODE_FAILED, 0, 1, 2);
    ev.error = err;
    apply(f, ev, 6);
    apply(f, item_ev(RF_EV_NODE_STARTED, 0, 4, 1), 7);

    s = snap(f);
    items = items_of(s, "a", 5);
    assert_str_field(json_array_get(items, 2), "status", "succeeded");
    assert_json_field(json_array_get(items, 2), "output", "{\"pos\": 2}");
    assert_str_field(json_array_get(items, 2), "finished_at", "2026-11-22T12:00:00.000002Z");
    assert_str_field(json_array_get(items, 1), "status", "failed");
    assert_int_field(json_array_get(items, 1), "attempts", 2);
    assert_json_field(json_array_get(items, 1), "error",
                      "{\"code\": \"io\", \"message\": \"item 1 failed\"}");
    assert_str_field(json_array_get(items, 1), "started_at", "2026-11-22T12:00:00.000003Z");
    assert_str_field(json_array_get(items, 3), "status", "pending");
    assert_str_field(json_array_get(items, 4), "status", "running");
    /* the node itself: running, one attempt, its own started_at */
    assert_str_field(node_of(s, "a"), "status", "running");
    assert_int_field(node_of(s, "a"), "attempts", 1);
    assert_str_field(node_of(s, "a"), "started_at", "2026-11-22T12:00:00.000000Z");
    assert_null_field(node_of(s, "a"), "error");
    json_decref(s);

    ev = node_ev(RF_EV_NODE_FAILED, 0, 1);
    ev.error = err;
    apply(f, ev, 8);
    apply(f, item_ev(RF_EV_NODE_CANCELED, 0, 4, 0), 9); /* after the node's own end */

    s = snap(f);
    items = items_of(s, "a", 5);
    assert_str_field(node_of(s, "a"), "status", "failed");
    assert_str_field(node_of(s, "a"), "finished_at", "2026-11-22T12:00:00.000008Z");
    assert_str_field(json_array_get(items, 4), "status", "canceled");
    assert_int_field(json_array_get(items, 4), "attempts", 1);
    json_decref(s);
    json_decref(p2);
    json_decref(o2);
    json_decref(err);
}

/* Item events with no node.started before them: the node still shows running. */
static void test_items_before_node_started(void **state)
{
    struct fx *f = *state;
    json_t *out = json_pack("[i]", 7);
    rf_event ev;

    apply(f, item_ev(RF_EV_NODE_STARTED, 3, 0, 1), 100);
    json_t *s = snap(f);
    assert_str_field(node_of(s, "m"), "status", "running");
    assert_str_field(node_of(s, "m"), "started_at", "2026-11-22T12:00:00.000100Z");
    assert_int_field(node_of(s, "m"), "attempts", 0);
    items_of(s, "m", 1);
    json_decref(s);

    apply(f, item_ev(RF_EV_NODE_SUCCEEDED, 3, 0, 1), 101);
    ev = node_ev(RF_EV_NODE_SUCCEEDED, 3, 1);
    ev.output = out;
    apply(f, ev, 102);
    s = snap(f);
    assert_str_field(node_of(s, "m"), "status", "succeeded");
    assert_json_field(node_of(s, "m"), "output", "[7]");
    assert_str_field(json_array_get(items_of(s, "m", 1), 0), "status", "succeeded");
    json_decref(s);
    json_decref(out);
}

static void test_parent_recorded_once(void **state)
{
    struct fx *f = *state;
    rf_event ev = exec_ev(RF_EV_EXECUTION_QUEUED);

    ev.parent_exec_id = "01parent";
    ev.parent_node_id = "sub";
    ev.parent_item = 4;
    apply(f, ev, 0);
    ev = exec_ev(RF_EV_EXECUTION_STARTED);
    ev.parent_exec_id = "01other";
    ev.parent_node_id = "elsewhere";
    apply(f, ev, 1);

    json_t *s = snap(f);
    assert_json_field(s, "parent",
                      "{\"execution_id\": \"01parent\", \"node\": \"sub\", \"item\": 4}");
    json_decref(s);

    /* Without an item, `item` is absent. */
    struct rf_xdoc *d = rf__xdoc_new(f->plan, "01child", NULL, NULL, T0_US);
    assert_non_null(d);
    ev = exec_ev(RF_EV_EXECUTION_QUEUED);
    ev.exec_id = "01child";
    ev.seq = 1;
    ev.parent_exec_id = "01parent";
    ev.parent_node_id = "sub";
    rf__xdoc_apply(d, &ev);
    s = rf__xdoc_snapshot(d);
    assert_json_field(s, "parent", "{\"execution_id\": \"01parent\", \"node\": \"sub\"}");
    json_decref(s);
    rf__xdoc_free(d);
}

static void test_snapshot_is_a_deep_copy(void **state)
{
    struct fx *f = *state;
    json_t *out = json_pack("{s:[i]}", "v", 1);
    rf_event ev;

    apply(f, node_ev(RF_EV_NODE_STARTED, 0, 1), 0);
    ev = node_ev(RF_EV_NODE_SUCCEEDED, 0, 1);
    ev.output = out;
    apply(f, ev, 1);
    apply(f, item_ev(RF_EV_NODE_STARTED, 3, 0, 1), 2);

    json_t *s1 = snap(f);
    json_t *before = snap(f);
    /* Mutate everything reachable in s1: top level, a node, a stored output, an item. */
    json_object_set_new(s1, "status", json_string("tampered"));
    json_object_del(json_object_get(s1, "nodes"), "b");
    json_object_set_new(node_of(s1, "a"), "attempts", json_integer(99));
    json_array_append_new(json_object_get(json_object_get(node_of(s1, "a"), "output"), "v"),
                          json_integer(2));
    json_object_set_new(json_array_get(items_of(s1, "m", 1), 0), "status", json_string("x"));
    json_array_clear(json_object_get(node_of(s1, "m"), "items"));

    json_t *s2 = snap(f);
    assert_true(json_equal(s2, before));
    assert_json_field(out, "v", "[1]"); /* the event's value was not touched either */

    /* Applying more events does not change a snapshot already taken. */
    apply(f, exec_ev(RF_EV_EXECUTION_STARTED), 3);
    apply(f, item_ev(RF_EV_NODE_STARTED, 3, 5, 1), 4);
    assert_true(json_equal(s2, before));
    json_t *s3 = snap(f);
    assert_false(json_equal(s3, before));
    items_of(s3, "m", 6);
    items_of(s2, "m", 1);
    json_decref(s1);
    json_decref(s2);
    json_decref(s3);
    json_decref(before);
    json_decref(out);
}

/* --- concurrent snapshots ------------------------------------------------------------------- */

struct conc {
    struct fx *f;
    atomic_bool done;
};

static void *applier(void *arg)
{
    struct conc *c = arg;

    for (int64_t i = 0; i < CONC_ITEMS; i++) {
        apply(c->f, item_ev(RF_EV_NODE_STARTED, 3, i, 1), 2 * i);
        apply(c->f, item_ev(RF_EV_NODE_SUCCEEDED, 3, i, 1), 2 * i + 1);
    }
    atomic_store(&c->done, true);
    return NULL;
}

/* Every snapshot: items 0..k-2 succeeded, the last one running or succeeded, and k never
 * goes down between snapshots. */
static size_t check_conc_snapshot(json_t *s, size_t last_len)
{
    json_t *items = json_object_get(node_of(s, "m"), "items");
    size_t len = json_array_size(items);

    assert_true(len >= last_len);
    for (size_t i = 0; i + 1 < len; i++)
        assert_str_field(json_array_get(items, i), "status", "succeeded");
    if (len) {
        const char *st =
            json_string_value(json_object_get(json_array_get(items, len - 1), "status"));
        assert_non_null(st);
        assert_true(strcmp(st, "running") == 0 || strcmp(st, "succeeded") == 0);
        assert_str_field(node_of(s, "m"), "status", "running");
    }
    return len;
}

static void test_concurrent_snapshots(void **state)
{
    struct conc c = {.f = *state};
    pthread_t t;
    size_t len = 0;
    int taken = 0;

    assert_int_equal(pthread_create(&t, NULL, applier, &c), 0);
    while (taken < CONC_SNAPSHOTS || !atomic_load(&c.done)) {
        json_t *s = snap(c.f);
        len = check_conc_snapshot(s, len);
        json_decref(s);
        taken++;
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    json_t *s = snap(c.f);
    assert_int_equal(check_conc_snapshot(s, len), CONC_ITEMS);
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_document, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_inputs_and_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifecycle_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifecycle_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_succeeded_output_and_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canceled_keeps_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_items, setup, teardown),
        cmocka_unit_test_setup_teardown(test_items_before_node_started, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parent_recorded_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_is_a_deep_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_snapshots, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
