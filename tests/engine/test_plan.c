/*
 * tests/engine/test_plan.c: the graph builder, the kind registry and plan compilation,
 * through the public header only.
 *
 * A valid graph must compile into a plan whose accessors give back what was built; an
 * invalid one must fail with RF_EINVAL_GRAPH, leave *out alone, and list every problem in
 * one pass, each with the JSON Pointer and stable code the graph document would get (ids,
 * names, duplicates, kinds, kind configs, retry/timeout limits, self edges, cycles, the
 * node limit). Cycles are checked by parsing the reported cycle and verifying that every
 * step is an edge of the graph and the walk closes, including graphs where nodes
 * downstream of the cycle come first in index order (a naive successor walk dead-ends
 * there) and a 200,000-node ring. Kind registration is checked for each rejection it
 * promises, custom validate() callbacks for the code they set, and the built-in kinds for
 * their config rules. No engine is started except to check that registration closes then.
 */
#include "ringflow.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define LARGE_NODES   200000u
#define SMALL_MAX     100u
#define NSTATE_BYTES  16u
#define CYCLE_IDS_MAX 80u
#define ID_BYTES      32u

/* --- helpers ------------------------------------------------------------------------------ */

static rf_engine *engine_new(uint32_t plan_nodes_max)
{
    rf_config cfg = {.shards = 1, .no_pin_threads = true, .plan_nodes_max = plan_nodes_max};
    rf_engine *eng = NULL;

    assert_int_equal(rf_engine_new(&cfg, &eng), 0);
    assert_non_null(eng);
    return eng;
}

static int add_node(rf_graph *g, const char *id, const char *kind, const char *config_json)
{
    json_t *cfg = NULL;
    int idx;

    if (config_json) {
        cfg = json_loads(config_json, JSON_DECODE_ANY, NULL);
        assert_non_null(cfg);
    }
    idx = rf_graph_add_node(g, id, kind, cfg, NULL);
    json_decref(cfg); /* the graph took its own reference */
    assert_true(idx >= 0);
    return idx;
}

static int add_noop_opts(rf_graph *g, const char *id, const rf_node_opts *opts)
{
    int idx = rf_graph_add_node(g, id, "noop", NULL, opts);

    assert_true(idx >= 0);
    return idx;
}

static void add_edge(rf_graph *g, const char *from, const char *to)
{
    int f = rf_graph_find(g, from), t = rf_graph_find(g, to);

    assert_true(f >= 0);
    assert_true(t >= 0);
    assert_int_equal(rf_graph_add_edge(g, (uint32_t)f, (uint32_t)t), 0);
}

/* A graph of noop nodes named by `ids` with edges "from>to". */
static rf_graph *graph_of(const char *const *ids, size_t n, const char *const *edges, size_t m)
{
    rf_graph *g = NULL;

    assert_int_equal(rf_graph_new("g", &g), 0);
    for (size_t i = 0; i < n; i++)
        add_node(g, ids[i], "noop", NULL);
    for (size_t e = 0; e < m; e++) {
        char from[ID_BYTES], to[ID_BYTES];
        const char *gt = strchr(edges[e], '>');
        assert_non_null(gt);
        snprintf(from, sizeof(from), "%.*s", (int)(gt - edges[e]), edges[e]);
        snprintf(to, sizeof(to), "%s", gt + 1);
        add_edge(g, from, to);
    }
    return g;
}

static const rf_diag_item *diag_find(const rf_diag *d, const char *pointer, const char *code)
{
    for (uint32_t i = 0; i < d->count; i++)
        if (strcmp(d->items[i].pointer, pointer) == 0 && strcmp(d->items[i].code, code) == 0)
            return &d->items[i];
    return NULL;
}

/* Assert an item (pointer, code) exists and its message contains `needle` (if any). */
static const rf_diag_item *expect_item(const rf_diag *d, const char *pointer, const char *code,
                                       const char *needle)
{
    const rf_diag_item *it = diag_find(d, pointer, code);

    if (!it) {
        print_error("missing diag item %s %s; have:\n", pointer, code);
        for (uint32_t i = 0; i < d->count; i++)
            print_error("  %s %s: %s\n", d->items[i].pointer, d->items[i].code,
                        d->items[i].message);
    }
    assert_non_null(it);
    assert_non_null(it->message);
    if (needle && !strstr(it->message, needle)) {
        print_error("message \"%s\" lacks \"%s\"\n", it->message, needle);
        fail();
    }
    return it;
}

static uint32_t count_code(const rf_diag *d, const char *code)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < d->count; i++)
        n += strcmp(d->items[i].code, code) == 0;
    return n;
}

/* Compile a graph that must fail; *out must stay untouched. */
static void compile_fails(rf_engine *eng, const rf_graph *g, rf_diag *d)
{
    rf_plan *sentinel = (rf_plan *)(uintptr_t)0x5a5a5a5a;
    rf_plan *p = sentinel;

    assert_int_equal(rf_plan_compile(eng, g, d, &p), RF_EINVAL_GRAPH);
    assert_ptr_equal(p, sentinel);
}

static bool has_edge(const char *from, const char *to, const char *const *edges, size_t m)
{
    char want[2 * ID_BYTES + 2];

    snprintf(want, sizeof(want), "%.31s>%.31s", from, to);
    for (size_t e = 0; e < m; e++)
        if (strcmp(edges[e], want) == 0)
            return true;
    return false;
}

/* The graph must fail with exactly one "cycle" item whose message lists a closed walk
 * "x -> y -> ... -> x" along real edges with no node repeated before it closes, and whose
 * pointer names the first node of the walk. Returns the number of distinct nodes. */
static size_t expect_cycle(rf_engine *eng, const rf_graph *g, const char *const *edges, size_t m)
{
    rf_diag d;
    const rf_diag_item *it = NULL;
    char ids[CYCLE_IDS_MAX][ID_BYTES];
    size_t k = 0;
    char ptr[ID_BYTES];

    rf_diag_init(&d);
    compile_fails(eng, g, &d);
    assert_int_equal(count_code(&d, "cycle"), 1);
    for (uint32_t i = 0; i < d.count; i++)
        if (strcmp(d.items[i].code, "cycle") == 0)
            it = &d.items[i];
    const char *s = strstr(it->message, ": ");
    assert_non_null(s);
    s += 2;
    for (;;) {
        const char *arrow = strstr(s, " -> ");
        size_t len = arrow ? (size_t)(arrow - s) : strlen(s);
        assert_true(k < CYCLE_IDS_MAX);
        assert_true(len < ID_BYTES);
        memcpy(ids[k], s, len);
        ids[k][len] = '\0';
        k++;
        if (!arrow)
            break;
        s = arrow + 4;
    }
    if (k < 3 || strcmp(ids[0], ids[k - 1]) != 0) {
        print_error("cycle message does not close: \"%s\"\n", it->message);
        fail();
    }
    for (size_t i = 0; i + 1 < k; i++) {
        if (!has_edge(ids[i], ids[i + 1], edges, m)) {
            print_error("\"%s\": %s -> %s is not an edge\n", it->message, ids[i], ids[i + 1]);
            fail();
        }
        for (size_t j = i + 1; j + 1 < k; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
    snprintf(ptr, sizeof(ptr), "/nodes/%d", rf_graph_find(g, ids[0]));
    assert_string_equal(it->pointer, ptr);
    rf_diag_free(&d);
    return k - 1;
}

/* --- 1. a valid diamond ------------------------------------------------------------------ */

static void test_diamond_compiles(void **state)
{
    rf_engine *eng = engine_new(0);
    rf_graph *g = NULL;
    rf_plan *p = NULL;
    rf_diag d;

    rf_diag_init(&d);
    assert_int_equal(rf_graph_new("shop.orders-v2", &g), 0);
    assert_int_equal(add_node(g, "top", "noop", NULL), 0);
    assert_int_equal(add_node(g, "left", "delay", "{\"ms\": 5}"), 1);
    assert_int_equal(add_node(g, "right", "fail", "{\"message\": \"no\"}"), 2);
    assert_int_equal(add_node(g, "bottom", "noop", "{}"), 3);
    add_edge(g, "top", "left");
    add_edge(g, "top", "right");
    add_edge(g, "left", "bottom");
    add_edge(g, "right", "bottom");

    assert_int_equal(rf_plan_compile(eng, g, &d, &p), 0);
    assert_int_equal(d.count, 0);
    assert_non_null(p);
    rf_graph_free(g); /* the plan owns copies of everything */

    assert_int_equal(rf_plan_nodes(p), 4);
    assert_string_equal(rf_plan_name(p), "shop.orders-v2");
    const char *ids[] = {"top", "left", "right", "bottom"};
    const char *kinds[] = {"noop", "delay", "fail", "noop"};
    for (uint32_t i = 0; i < 4; i++) {
        assert_string_equal(rf_plan_node_id(p, i), ids[i]);
        assert_string_equal(rf_plan_node_kind(p, i), kinds[i]);
    }
    assert_null(rf_plan_node_id(p, 4));
    assert_null(rf_plan_node_kind(p, 4));
    assert_true(rf_plan_bytes(p) > 0);
    assert_int_equal(rf_plan_exec_bytes(p), NSTATE_BYTES * 4);

    assert_ptr_equal(rf_plan_retain(p), p);
    rf_plan_release(p);
    assert_string_equal(rf_plan_node_id(p, 3), "bottom"); /* still held once */
    rf_plan_release(p);
    rf_plan_release(NULL);
    rf_diag_free(&d);
    rf_engine_free(eng);
}

/* --- 2. every problem at once ------------------------------------------------------------- */

static void test_every_problem_listed(void **state)
{
    rf_engine *eng = engine_new(0);
    rf_graph *g = NULL;
    rf_node_opts retry = {.retry = {.max_attempts = 101}};
    rf_node_opts timeout = {.timeout_ms = 86400001u};
    rf_node_opts trigger = {.trigger = (rf_trigger)7};
    char long_id[66];
    rf_diag d;

    memset(long_id, 'x', 65);
    long_id[65] = '\0';
    rf_diag_init(&d);
    assert_int_equal(rf_graph_new("Bad Name", &g), 0);
    /* Index: what is wrong with it. */
    add_node(g, "ok", "noop", NULL);            /* 0: nothing */
    add_node(g, "9bad", "noop", NULL);          /* 1: invalid_id */
    add_node(g, "ok", "noop", NULL);            /* 2: duplicate_id */
    add_node(g, "n3", "no_such_kind", NULL);    /* 3: unknown_kind */
    add_node(g, "n4", "delay", "{\"ms\": -1}"); /* 4: invalid_config */
    add_noop_opts(g, "n5", &retry);             /* 5: limit */
    add_node(g, "n6", "noop", NULL);            /* 6: self_dependency */
    add_node(g, "has space", "noop", NULL);     /* 7: invalid_id */
    add_node(g, long_id, "noop", NULL);         /* 8: invalid_id, 65 chars */
    add_node(g, "c9", "noop", NULL);            /* 9, 10: a 2-cycle */
    add_node(g, "c10", "noop", NULL);
    add_noop_opts(g, "n11", &timeout); /* 11: limit */
    add_noop_opts(g, "n12", &trigger); /* 12: invalid_trigger */
    add_edge(g, "n6", "n6");
    add_edge(g, "c9", "c10");
    add_edge(g, "c10", "c9");
    add_edge(g, "ok", "n3");

    compile_fails(eng, g, &d);
    expect_item(&d, "/name", "invalid_name", "Bad Name");
    expect_item(&d, "/nodes/1/id", "invalid_id", "9bad");
    expect_item(&d, "/nodes/2/id", "duplicate_id", "\"ok\"");
    expect_item(&d, "/nodes/3/kind", "unknown_kind", "no_such_kind");
    expect_item(&d, "/nodes/4/config", "invalid_config", "delay");
    expect_item(&d, "/nodes/5/retry/max_attempts", "limit", "100");
    expect_item(&d, "/nodes/6/deps", "self_dependency", "n6");
    expect_item(&d, "/nodes/7/id", "invalid_id", "has space");
    expect_item(&d, "/nodes/8/id", "invalid_id", long_id);
    expect_item(&d, "/nodes/11/timeout_ms", "limit", NULL);
    expect_item(&d, "/nodes/12/trigger", "invalid_trigger", NULL);
    assert_int_equal(count_code(&d, "cycle"), 1);
    assert_int_equal(d.count, 12); /* nothing spurious, nothing twice */

    /* Without a diag the answer is the same. */
    compile_fails(eng, g, NULL);
    rf_diag_free(&d);
    rf_graph_free(g);
    rf_engine_free(eng);
}

static void test_ids_at_their_limits(void **state)
{
    rf_engine *eng = engine_new(0);
    rf_graph *g = NULL;
    rf_plan *p = NULL;
    char id64[65], name64[65], name65[66];

    memset(id64, 'Z', 64);
    id64[0] = '_';
    id64[64] = '\0';
    memset(name64, 'n', 64);
    name64[64] = '\0';
    memset(name65, 'n', 65);
    name65[65] = '\0';
    assert_int_equal(rf_graph_new(name64, &g), 0);
    add_node(g, id64, "noop", NULL);
    add_node(g, "a-1_B", "noop", NULL);
    assert_int_equal(rf_plan_compile(eng, g, NULL, &p), 0);
    assert_string_equal(rf_plan_node_id(p, 0), id64);
    rf_plan_release(p);
    rf_graph_free(g);

    const char *bad_names[] = {"", name65, "-x", "x/y", "Upper"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        rf_diag d;
        rf_diag_init(&d);
        assert_int_equal(rf_graph_new(bad_names[i], &g), 0);
        add_node(g, "a", "noop", NULL);
        compile_fails(eng, g, &d);
        assert_int_equal(d.count, 1);
        expect_item(&d, "/name", "invalid_name", NULL);
        rf_diag_free(&d);
        rf_graph_free(g);
    }
    const char *bad_ids[] = {"", "-a", "a.b", "a/b", "é"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        rf_diag d;
        rf_diag_init(&d);
        assert_int_equal(rf_graph_new("g", &g), 0);
        add_node(g, bad_ids[i], "noop", NULL);
        compile_fails(eng, g, &d);
        assert_int_equal(d.count, 1);
        expect_item(&d, "/nodes/0/id", "invalid_id", NULL);
        rf_diag_free(&d);
        rf_graph_free(g);
    }
    rf_engine_free(eng);
}

/* --- 3. cycles ---------------------------------------------------------------------------- */

static void test_cycle_with_tails(void **state)
{
    rf_engine *eng = engine_new(0);
    const char *ids[] = {"a", "b", "c", "d", "e"};
    const char *edges[] = {"a>b", "b>c", "c>a", "c>d", "e>a"};
    rf_graph *g = graph_of(ids, 5, edges, 5);
    rf_diag d;

    assert_int_equal(expect_cycle(eng, g, edges, 5), 3);
    rf_diag_init(&d);
    compile_fails(eng, g, &d);
    const rf_diag_item *it = d.items;
    assert_int_equal(d.count, 1);
    assert_string_equal(it->code, "cycle");
    assert_true(strstr(it->message, "a -> b -> c -> a") ||
                strstr(it->message, "b -> c -> a -> b") || strstr(it->message, "c -> a -> b -> c"));
    assert_null(strstr(it->message, "d ->"));
    assert_null(strstr(it->message, "-> d"));
    assert_null(strstr(it->message, "e ->"));
    rf_diag_free(&d);
    rf_graph_free(g);
    rf_engine_free(eng);
}

static void test_two_cycle(void **state)
{
    rf_engine *eng = engine_new(0);
    const char *ids[] = {"x", "y", "z"};
    const char *edges[] = {"z>x", "x>y", "y>x"};
    rf_graph *g = graph_of(ids, 3, edges, 3);

    assert_int_equal(expect_cycle(eng, g, edges, 3), 2);
    rf_graph_free(g);
    rf_engine_free(eng);
}

/* Nodes downstream of the cycle come first in index order, and the cycle's nodes list
 * them first among their successors: a walk along successors from them dead-ends. */
static void test_cycle_behind_downstream_nodes(void **state)
{
    rf_engine *eng = engine_new(0);
    const char *ids1[] = {"d", "a", "b"};
    const char *edges1[] = {"a>b", "b>a", "a>d"};
    rf_graph *g = graph_of(ids1, 3, edges1, 3);

    assert_int_equal(expect_cycle(eng, g, edges1, 3), 2);
    rf_graph_free(g);

    const char *ids2[] = {"t0", "t1", "t2", "t3", "p", "q", "r"};
    const char *edges2[] = {"p>t0", "t0>t1", "q>t2", "r>t3", "t2>t3", "p>q", "q>r", "r>p"};
    g = graph_of(ids2, 7, edges2, 8);
    assert_int_equal(expect_cycle(eng, g, edges2, 8), 3);
    rf_graph_free(g);

    /* Two cycles, the second downstream of the first; either may be named. */
    const char *ids3[] = {"sink", "x", "y", "a", "b"};
    const char *edges3[] = {"x>sink", "x>y", "y>x", "a>b", "b>a", "b>x"};
    g = graph_of(ids3, 5, edges3, 6);
    assert_int_equal(expect_cycle(eng, g, edges3, 6), 2);
    rf_graph_free(g);
    rf_engine_free(eng);
}

/* Many dead ends downstream of a cycle: the report must stay linear and still be right. */
static void test_cycle_behind_many_leaves(void **state)
{
    enum { LEAVES = 50000 };
    rf_engine *eng = engine_new(LEAVES + 2);
    const char *edges[] = {"ca>cb", "cb>ca"};
    rf_graph *g = NULL;
    char id[ID_BYTES];

    assert_int_equal(rf_graph_new("g", &g), 0);
    for (uint32_t i = 0; i < LEAVES; i++) {
        snprintf(id, sizeof(id), "leaf%u", i);
        add_node(g, id, "noop", NULL);
    }
    add_node(g, "ca", "noop", NULL);
    add_node(g, "cb", "noop", NULL);
    for (uint32_t i = 0; i < LEAVES; i++)
        assert_int_equal(rf_graph_add_edge(g, LEAVES + (i & 1), i), 0);
    add_edge(g, "ca", "cb");
    add_edge(g, "cb", "ca");
    assert_int_equal(expect_cycle(eng, g, edges, 2), 2);
    rf_graph_free(g);
    rf_engine_free(eng);
}

/* A cycle through every node of a large graph: reported, message bounded. */
static void test_large_ring(void **state)
{
    rf_engine *eng = engine_new(LARGE_NODES);
    rf_graph *g = NULL;
    rf_diag d;
    char id[ID_BYTES];

    rf_diag_init(&d);
    assert_int_equal(rf_graph_new("ring", &g), 0);
    for (uint32_t i = 0; i < LARGE_NODES; i++) {
        snprintf(id, sizeof(id), "n%u", i);
        add_node(g, id, "noop", NULL);
        if (i > 0)
            assert_int_equal(rf_graph_add_edge(g, i - 1, i), 0);
    }
    assert_int_equal(rf_graph_add_edge(g, LARGE_NODES - 1, 0), 0);
    compile_fails(eng, g, &d);
    assert_int_equal(d.count, 1);
    expect_item(&d, "/nodes/0", "cycle", "n0 -> n1 -> n2");
    assert_true(strlen(d.items[0].message) < 4096);
    rf_diag_free(&d);
    rf_graph_free(g);
    rf_engine_free(eng);
}

/* --- 4. repeated edges -------------------------------------------------------------------- */

static void test_repeated_edges_merged(void **state)
{
    rf_engine *eng = engine_new(0);
    const char *ids[] = {"a", "b"};
    const char *once[] = {"a>b"};
    const char *thrice[] = {"a>b", "a>b", "a>b"};
    rf_graph *g1 = graph_of(ids, 2, once, 1);
    rf_graph *g3 = graph_of(ids, 2, thrice, 3);
    rf_plan *p1 = NULL, *p3 = NULL;

    assert_int_equal(rf_plan_compile(eng, g1, NULL, &p1), 0);
    assert_int_equal(rf_plan_compile(eng, g3, NULL, &p3), 0);
    assert_int_equal(rf_plan_nodes(p3), 2);
    assert_int_equal(rf_plan_exec_bytes(p3), NSTATE_BYTES * 2);
    /* One successor stored, not three: the plans are the same size. */
    assert_int_equal(rf_plan_bytes(p3), rf_plan_bytes(p1));
    rf_plan_release(p1);
    rf_plan_release(p3);
    rf_graph_free(g1);
    rf_graph_free(g3);

    /* A repeated self edge is still one problem. */
    const char *self[] = {"a>a", "a>a", "a>b"};
    rf_diag d;
    rf_diag_init(&d);
    g1 = graph_of(ids, 2, self, 3);
    compile_fails(eng, g1, &d);
    expect_item(&d, "/nodes/0/deps", "self_dependency", "\"a\"");
    assert_int_equal(d.count, 1);
    rf_diag_free(&d);
    rf_graph_free(g1);
    rf_engine_free(eng);
}

/* --- 5. limits and the builder ------------------------------------------------------------ */

static void test_too_many_nodes(void **state)
{
    rf_engine *eng = engine_new(SMALL_MAX);
    rf_graph *g = NULL;
    rf_plan *p = NULL;
    rf_diag d;
    char id[ID_BYTES];

    rf_diag_init(&d);
    assert_int_equal(rf_graph_new("big", &g), 0);
    for (uint32_t i = 0; i < SMALL_MAX; i++) {
        snprintf(id, sizeof(id), "n%u", i);
        add_node(g, id, "noop", NULL);
    }
    assert_int_equal(rf_plan_compile(eng, g, NULL, &p), 0); /* exactly at the limit */
    rf_plan_release(p);
    add_node(g, "one_more", "noop", NULL);
    compile_fails(eng, g, &d);
    expect_item(&d, "/nodes", "too_many_nodes", "101");
    rf_diag_free(&d);
    rf_graph_free(g);
    rf_engine_free(eng);
}

static void test_builder(void **state)
{
    rf_graph *g = NULL;
    json_t *cfg = json_pack("{s:i}", "ms", 1);

    assert_int_equal(rf_graph_new("g", &g), 0);
    assert_int_equal(rf_graph_add_node(g, "a", "delay", cfg, NULL), 0);
    assert_int_equal(cfg->refcount, 2); /* the graph holds a reference */
    assert_int_equal(rf_graph_add_node(g, "b", "noop", NULL, NULL), 1);
    assert_int_equal(rf_graph_add_node(g, NULL, "noop", NULL, NULL), -EINVAL);
    assert_int_equal(rf_graph_add_node(g, "c", NULL, NULL, NULL), -EINVAL);

    assert_int_equal(rf_graph_add_edge(g, 0, 1), 0);
    assert_int_equal(rf_graph_add_edge(g, 0, 2), -EINVAL);
    assert_int_equal(rf_graph_add_edge(g, 2, 0), -EINVAL);
    assert_int_equal(rf_graph_add_edge(g, UINT32_MAX, 0), -EINVAL);
    assert_int_equal(rf_graph_add_edge(NULL, 0, 1), -EINVAL);

    assert_int_equal(rf_graph_find(g, "a"), 0);
    assert_int_equal(rf_graph_find(g, "b"), 1);
    assert_int_equal(rf_graph_find(g, "c"), -ENOENT);
    assert_int_equal(rf_graph_find(g, ""), -ENOENT);
    rf_graph_free(g);
    assert_int_equal(cfg->refcount, 1);
    json_decref(cfg);
    rf_graph_free(NULL);
}

static void test_compile_bad_args(void **state)
{
    rf_engine *eng = engine_new(0);
    rf_graph *g = NULL;
    rf_plan *p = NULL;

    assert_int_equal(rf_graph_new("g", &g), 0);
    assert_int_equal(rf_plan_compile(NULL, g, NULL, &p), -EINVAL);
    assert_int_equal(rf_plan_compile(eng, NULL, NULL, &p), -EINVAL);
    assert_int_equal(rf_plan_compile(eng, g, NULL, NULL), -EINVAL);
    assert_null(p);
    rf_graph_free(g);
    rf_engine_free(eng);
}

/* --- 6. kinds ----------------------------------------------------------------------------- */

static int dummy_run(void *ud, const rf_call *call, json_t **output, rf_error *err)
{
    *output = NULL;
    return 0;
}

static int dummy_start(void *ud, rf_task *task, rf_error *err)
{
    return rf_error_set(err, -ENOTSUP, false, "unsupported", "never started in this test");
}

static void dummy_cancel(void *ud, rf_task *task)
{
}

/* Accepts {"size": n} with n <= 10; otherwise fails with code "size_too_big". */
static int sized_validate(void *ud, const json_t *config, rf_error *err)
{
    json_int_t n = json_integer_value(json_object_get(config, "size"));

    (*(int *)ud)++;
    if (n > 10)
        return rf_error_set(err, -EINVAL, false, "size_too_big", "size %lld is over 10",
                            (long long)n);
    return 0;
}

/* Rejects everything without filling *err. */
static int mute_validate(void *ud, const json_t *config, rf_error *err)
{
    return -EINVAL;
}

static void test_register_rejects(void **state)
{
    rf_engine *eng = engine_new(0);
    char name63[64];
    rf_kind k = {.name = "custom", .type = RF_KIND_SYNC, .run = dummy_run};

    memset(name63, 'k', 63);
    name63[63] = '\0';
    assert_int_equal(rf_engine_register_kind(eng, &k), 0);
    assert_int_equal(rf_engine_register_kind(eng, &k), -EEXIST);
    k.name = "noop";
    assert_int_equal(rf_engine_register_kind(eng, &k), -EEXIST);
    k.name = name63;
    assert_int_equal(rf_engine_register_kind(eng, &k), 0);

    const char *bad[] = {"", "Upper", "1abc", "a b", "_x", "a/b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        k.name = bad[i];
        assert_int_equal(rf_engine_register_kind(eng, &k), RF_EKIND);
    }
    k.name = NULL;
    assert_int_equal(rf_engine_register_kind(eng, &k), RF_EKIND);

    rf_kind no_run = {.name = "no_run", .type = RF_KIND_SYNC};
    assert_int_equal(rf_engine_register_kind(eng, &no_run), RF_EKIND);
    rf_kind no_cancel = {.name = "no_cancel", .type = RF_KIND_ASYNC, .start = dummy_start};
    assert_int_equal(rf_engine_register_kind(eng, &no_cancel), RF_EKIND);
    rf_kind no_start = {.name = "no_start", .type = RF_KIND_ASYNC, .cancel = dummy_cancel};
    assert_int_equal(rf_engine_register_kind(eng, &no_start), RF_EKIND);
    rf_kind no_type = {.name = "no_type", .run = dummy_run};
    assert_int_equal(rf_engine_register_kind(eng, &no_type), RF_EKIND);
    rf_kind fat = {.name = "fat",
                   .type = RF_KIND_ASYNC,
                   .start = dummy_start,
                   .cancel = dummy_cancel,
                   .task_bytes = RF_TASK_BYTES_MAX + 1};
    assert_int_equal(rf_engine_register_kind(eng, &fat), RF_EKIND);
    fat.task_bytes = RF_TASK_BYTES_MAX;
    assert_int_equal(rf_engine_register_kind(eng, &fat), 0);
    assert_int_equal(rf_engine_register_kind(eng, NULL), -EINVAL);
    assert_int_equal(rf_engine_register_kind(NULL, &k), -EINVAL);
    rf_engine_free(eng);
}

static void test_kinds_max(void **state)
{
    /* The six built-ins (noop, fail, delay, transform, graph, http) take six of seven. */
    rf_config cfg = {.shards = 1, .no_pin_threads = true, .kinds_max = 7};
    rf_kind k = {.name = "k1", .type = RF_KIND_SYNC, .run = dummy_run};
    rf_engine *eng = NULL;

    assert_int_equal(rf_engine_new(&cfg, &eng), 0);
    assert_int_equal(rf_engine_register_kind(eng, &k), 0);
    k.name = "k2";
    assert_int_equal(rf_engine_register_kind(eng, &k), RF_ELIMIT);
    rf_engine_free(eng);
}

static void test_custom_validate(void **state)
{
    rf_engine *eng = engine_new(0);
    int calls = 0;
    rf_kind sized = {.name = "sized",
                     .type = RF_KIND_SYNC,
                     .run = dummy_run,
                     .validate = sized_validate,
                     .ud = &calls};
    rf_kind mute = {
        .name = "mute", .type = RF_KIND_SYNC, .run = dummy_run, .validate = mute_validate};
    rf_graph *g = NULL;
    rf_plan *p = NULL;
    rf_diag d;

    assert_int_equal(rf_engine_register_kind(eng, &sized), 0);
    assert_int_equal(rf_engine_register_kind(eng, &mute), 0);
    rf_diag_init(&d);
    assert_int_equal(rf_graph_new("g", &g), 0);
    add_node(g, "small", "sized", "{\"size\": 3}");
    add_node(g, "large", "sized", "{\"size\": 11}");
    add_node(g, "none", "sized", NULL);
    add_node(g, "quiet", "mute", NULL);
    compile_fails(eng, g, &d);
    assert_int_equal(calls, 3);
    expect_item(&d, "/nodes/1/config", "size_too_big", "size 11 is over 10");
    expect_item(&d, "/nodes/3/config", "invalid_config", NULL);
    assert_int_equal(d.count, 2);
    rf_diag_free(&d);
    rf_graph_free(g);

    assert_int_equal(rf_graph_new("g", &g), 0);
    add_node(g, "small", "sized", "{\"size\": 10}");
    assert_int_equal(rf_plan_compile(eng, g, NULL, &p), 0);
    assert_string_equal(rf_plan_node_kind(p, 0), "sized");
    rf_plan_release(p);
    rf_graph_free(g);
    rf_engine_free(eng);
}

static void test_register_after_start(void **state)
{
    rf_engine *eng = engine_new(0);
    rf_kind k = {.name = "late", .type = RF_KIND_SYNC, .run = dummy_run};
    int rc = rf_engine_start(eng);

    if (rc == RF_EIOURING || rc == -ENOSYS || rc == -EPERM) {
        rf_engine_free(eng);
        skip(); /* reported as SKIPPED, not passed */
    }
    assert_int_equal(rc, 0);
    assert_int_equal(rf_engine_register_kind(eng, &k), RF_ESTATE);
    assert_int_equal(rf_engine_stop(eng, 0), 0);
    assert_int_equal(rf_engine_register_kind(eng, &k), RF_ESTATE);
    rf_engine_free(eng);
}

/* --- 7. built-in kinds' configs --------------------------------------------------------- */

/* Compile one node of `kind` with `config`; returns 0 or the diag code (static copy). */
static const char *config_verdict(rf_engine *eng, const char *kind, const char *config)
{
    static char code[64];
    rf_graph *g = NULL;
    rf_plan *p = NULL;
    rf_diag d;
    int rc;

    rf_diag_init(&d);
    assert_int_equal(rf_graph_new("g", &g), 0);
    add_node(g, "n", kind, config);
    rc = rf_plan_compile(eng, g, &d, &p);
    rf_graph_free(g);
    if (rc == 0) {
        assert_int_equal(d.count, 0);
        rf_plan_release(p);
        return NULL;
    }
    assert_int_equal(rc, RF_EINVAL_GRAPH);
    assert_int_equal(d.count, 1);
    assert_string_equal(d.items[0].pointer, "/nodes/0/config");
    snprintf(code, sizeof(code), "%s", d.items[0].code);
    rf_diag_free(&d);
    return code;
}

static void test_builtin_configs(void **state)
{
    rf_engine *eng = engine_new(0);
    struct {
        const char *kind, *config;
        bool ok;
    } cases[] = {
        {"fail", NULL, true},
        {"fail", "null", true},
        {"fail", "{}", true},
        {"fail", "{\"retryable\": true, \"message\": \"x\"}", true},
        {"fail", "{\"code\": \"boom\", \"retryable\": false}", true},
        {"fail", "{\"message\": 5}", false},
        {"fail", "{\"code\": null}", false},
        {"fail", "{\"retryable\": \"yes\"}", false},
        {"fail", "{\"other\": 1}", false},
        {"fail", "[]", false},
        {"noop", NULL, true},
        {"noop", "null", true},
        {"noop", "{}", true},
        {"noop", "{\"a\": 1}", false},
        {"noop", "1", false},
        {"delay", "{\"ms\": 0}", true},
        {"delay", "{\"ms\": 86400000}", true},
        {"delay", "{\"ms\": 86400001}", false},
        {"delay", "{\"ms\": -1}", false},
        {"delay", "{\"ms\": 1.5}", false},
        {"delay", "{\"ms\": \"5\"}", false},
        {"delay", "{}", false},
        {"delay", "{\"ms\": 1, \"x\": 2}", false},
        {"delay", NULL, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *code = config_verdict(eng, cases[i].kind, cases[i].config);
        if (cases[i].ok != (code == NULL)) {
            print_error("%s %s: expected %s, got %s\n", cases[i].kind,
                        cases[i].config ? cases[i].config : "(none)",
                        cases[i].ok ? "accepted" : "rejected", code ? code : "accepted");
            fail();
        }
        if (code)
            assert_string_equal(code, "invalid_config");
    }
    rf_engine_free(eng);
}

/* --- 8. a large plan ---------------------------------------------------------------------- */

static void test_large_chain(void **state)
{
    rf_engine *eng = engine_new(LARGE_NODES);
    rf_graph *g = NULL;
    rf_plan *p = NULL;
    char id[ID_BYTES];

    assert_int_equal(rf_graph_new("chain", &g), 0);
    for (uint32_t i = 0; i < LARGE_NODES; i++) {
        snprintf(id, sizeof(id), "n%u", i);
        assert_int_equal(rf_graph_add_node(g, id, "noop", NULL, NULL), (int)i);
        if (i > 0)
            assert_int_equal(rf_graph_add_edge(g, i - 1, i), 0);
    }
    assert_int_equal(rf_plan_compile(eng, g, NULL, &p), 0);
    rf_graph_free(g);
    assert_int_equal(rf_plan_nodes(p), LARGE_NODES);
    assert_string_equal(rf_plan_node_id(p, 0), "n0");
    assert_string_equal(rf_plan_node_id(p, LARGE_NODES - 1), "n199999");
    assert_int_equal(rf_plan_exec_bytes(p), (size_t)NSTATE_BYTES * LARGE_NODES);
    assert_true(rf_plan_bytes(p) > (size_t)LARGE_NODES * NSTATE_BYTES);
    rf_plan_release(p);
    rf_engine_free(eng);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diamond_compiles),
        cmocka_unit_test(test_every_problem_listed),
        cmocka_unit_test(test_ids_at_their_limits),
        cmocka_unit_test(test_cycle_with_tails),
        cmocka_unit_test(test_two_cycle),
        cmocka_unit_test(test_cycle_behind_downstream_nodes),
        cmocka_unit_test(test_cycle_behind_many_leaves),
        cmocka_unit_test(test_large_ring),
        cmocka_unit_test(test_repeated_edges_merged),
        cmocka_unit_test(test_too_many_nodes),
        cmocka_unit_test(test_builder),
        cmocka_unit_test(test_compile_bad_args),
        cmocka_unit_test(test_register_rejects),
        cmocka_unit_test(test_kinds_max),
        cmocka_unit_test(test_custom_validate),
        cmocka_unit_test(test_register_after_start),
        cmocka_unit_test(test_builtin_configs),
        cmocka_unit_test(test_large_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
