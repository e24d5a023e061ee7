/*
 * tests/engine/test_gdoc.c: graph documents (engine/gdoc.c) and the inputs declaration
 * (engine/inputs.c).
 *
 * Every document-level problem class of docs/graphs.md has a test that checks the exact
 * JSON Pointer and code, and that the parse fails with RF_EINVAL_GRAPH leaving *out alone:
 * malformed JSON (with jansson's line and column), duplicate keys, a non-object document,
 * unknown fields at each level (escaped keys too), names, missing fields, every type error,
 * ranges, triggers, max_parallel without map, unknown and self deps, the size and depth
 * limits at their boundaries, and a document with many problems reported in one pass.
 * Every document is parsed from a buffer that ends right before a PROT_NONE page, so an
 * over-read crashes. The spec's example parses into a builder with the right nodes,
 * options and edges, and compiles.
 *
 * The inputs tests call the internal rf__inputs_decl_check/rf__inputs_resolve directly
 * (types, integer vs number, defaults, required, unknown inputs) and rf_inputs_check once
 * through a compiled plan. The last group checks problems only the plan compiler sees
 * (unknown kinds, duplicate ids, cycles, template and condition syntax, unknown
 * references) through rf_plan_from_json: those codes come from engine/plan.c and
 * engine/lang.c, and these tests pin the pointers a document user sees.
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
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/internal.h"

#define MIB          (1u << 20)
#define DEPTH_MAX    64u
#define DOC_BYTES    4096u
#define SENTINEL_PTR ((rf_graph *)(uintptr_t)0x5a5a5a5a)

/* --- helpers ------------------------------------------------------------------------------ */

static int null_run(void *ud, const rf_call *call, json_t **output, rf_error *err)
{
    (void)ud;
    (void)call;
    (void)err;
    *output = NULL;
    return 0;
}

/* An engine (not started) with `http` and `transform` kinds registered when it lacks them. */
static rf_engine *engine_with(const rf_config *cfg)
{
    static const char *const extra[] = {"http", "transform"};
    rf_config base = {.shards = 1, .no_pin_threads = true};
    rf_engine *eng = NULL;

    if (!cfg)
        cfg = &base;
    assert_int_equal(rf_engine_new(cfg, &eng), 0);
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
        rf_kind k = {.name = extra[i], .type = RF_KIND_SYNC, .run = null_run};
        int rc = rf_engine_register_kind(eng, &k);
        assert_true(rc == 0 || rc == -EEXIST);
    }
    return eng;
}

static rf_engine *engine_new(void)
{
    return engine_with(NULL);
}

/* `n` bytes of `s` copied to the end of a mapping whose next page is PROT_NONE. */
struct guarded {
    char *map;
    size_t map_len;
    char *p;
};

static struct guarded guarded_copy(const char *s, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (n + page - 1) / page;
    struct guarded g;

    g.map_len = (data_pages + 1) * page;
    g.map = mmap(NULL, g.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.map != MAP_FAILED);
    assert_int_equal(mprotect(g.map + data_pages * page, page, PROT_NONE), 0);
    g.p = g.map + data_pages * page - n;
    memcpy(g.p, s, n);
    return g;
}

static void guarded_free(struct guarded *g)
{
    munmap(g->map, g->map_len);
}

static int parse_n(rf_engine *eng, const char *s, size_t n, rf_diag *d, rf_graph **out)
{
    struct guarded g = guarded_copy(s, n);
    int rc = rf_graph_parse(eng, g.p, n, d, out);

    guarded_free(&g);
    return rc;
}

/* Every item of a diag must be printable as JSON: valid UTF-8, a pointer, a code. */
static void diag_sane(const rf_diag *d)
{
    for (uint32_t i = 0; i < d->count; i++) {
        const rf_diag_item *it = &d->items[i];
        json_t *m = json_string(it->message), *p = json_string(it->pointer);
        assert_non_null(m);
        assert_non_null(p);
        json_decref(m);
        json_decref(p);
        assert_true(it->pointer[0] == '\0' || it->pointer[0] == '/');
        assert_true(it->code[0] != '\0');
    }
}

/* Parse `json`, which must fail; the diag (initialized here) lists why. */
static void parse_fails(rf_engine *eng, const char *json, rf_diag *d)
{
    rf_graph *g = SENTINEL_PTR;

    rf_diag_init(d);
    assert_int_equal(parse_n(eng, json, strlen(json), d, &g), RF_EINVAL_GRAPH);
    assert_ptr_equal(g, SENTINEL_PTR);
    assert_true(d->count > 0);
    diag_sane(d);
}

static rf_graph *parse_ok(rf_engine *eng, const char *json)
{
    rf_graph *g = NULL;
    rf_diag d;

    rf_diag_init(&d);
    int rc = parse_n(eng, json, strlen(json), &d, &g);
    for (uint32_t i = 0; i < d.count; i++)
        print_error("unexpected %s %s: %s\n", d.items[i].pointer, d.items[i].code,
                    d.items[i].message);
    assert_int_equal(rc, 0);
    assert_int_equal(d.count, 0);
    assert_non_null(g);
    rf_diag_free(&d);
    return g;
}

static void dump(const rf_diag *d)
{
    for (uint32_t i = 0; i < d->count; i++)
        print_error("  %s %s: %s\n", d->items[i].pointer, d->items[i].code, d->items[i].message);
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
        dump(d);
    }
    assert_non_null(it);
    if (needle && !strstr(it->message, needle)) {
        print_error("message \"%s\" lacks \"%s\"\n", it->message, needle);
        fail();
    }
    return it;
}

/* The document must fail with exactly one problem: (pointer, code). */
static void expect_one(rf_engine *eng, const char *json, const char *pointer, const char *code,
                       const char *needle)
{
    rf_diag d;

    parse_fails(eng, json, &d);
    if (d.count != 1) {
        print_error("expected one item for %s\n", json);
        dump(&d);
    }
    assert_int_equal(d.count, 1);
    expect_item(&d, pointer, code, needle);
    rf_diag_free(&d);
}

static bool has_edge(const rf_graph *g, uint32_t from, uint32_t to)
{
    for (uint32_t e = 0; e < g->m; e++)
        if (g->edges[e] == ((uint64_t)from << 32 | to))
            return true;
    return false;
}

/* --- syntax and limits -------------------------------------------------------------------- */

static void test_malformed_json(void **state)
{
    rf_engine *eng = engine_new();
    const rf_diag_item *it;
    rf_diag d;

    (void)state;
    parse_fails(eng, "{\n  \"name\": \"x\",\n  \"nodes\": [,]\n}", &d);
    assert_int_equal(d.count, 1);
    it = expect_item(&d, "", "malformed_json", "unexpected token");
    assert_true(strncmp(it->message, "line 3, column 13: ", 19) == 0);
    rf_diag_free(&d);

    parse_fails(eng, "{\"name\": \"x\", \"nodes\": []} x", &d);
    it = expect_item(&d, "", "malformed_json", NULL);
    assert_true(strncmp(it->message, "line 1, column 28: ", 19) == 0);
    rf_diag_free(&d);

    parse_fails(eng, "", &d);
    expect_item(&d, "", "malformed_json", "line 1, column 0: ");
    rf_diag_free(&d);

    /* NUL in a string: named plainly, not with jansson's flag name. */
    parse_fails(eng, "{\"name\": \"x\\u0000\", \"nodes\": []}", &d);
    assert_int_equal(d.count, 1);
    expect_item(&d, "", "malformed_json", "line 1, column 18: strings may not contain \\u0000");
    rf_diag_free(&d);

    /* A byte that is not UTF-8 (jansson quotes it): the message must stay valid UTF-8. */
    parse_fails(eng, "{\"name\": \"x\xff\xfe\", \"nodes\": []}", &d);
    assert_int_equal(d.count, 1);
    expect_item(&d, "", "malformed_json", "line 1");
    rf_diag_free(&d);
    rf_engine_free(eng);
}

static void test_duplicate_key(void **state)
{
    rf_engine *eng = engine_new();

    (void)state;
    expect_one(eng, "{\"name\": \"x\", \"nodes\": [],\n \"name\": \"y\"}", "", "duplicate_key",
               "line 2, column 7: duplicate object key");
    expect_one(eng,
               "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"id\": \"b\", \"kind\": \"noop\"}]}",
               "", "duplicate_key", "line 1, column 40");
    rf_engine_free(eng);
}

static void test_not_an_object(void **state)
{
    rf_engine *eng = engine_new();

    (void)state;
    expect_one(eng, "[{\"name\": \"x\"}]", "", "type", "an array");
    expect_one(eng, "3", "", "type", "an integer");
    expect_one(eng, "null", "", "type", "null");
    expect_one(eng, "\"name\"", "", "type", "a string");
    rf_engine_free(eng);
}

/* A valid document of exactly `n` bytes (n >= 64): padded with spaces. */
static char *padded_doc(size_t n)
{
    static const char head[] = "{\"name\": \"big\", \"nodes\": []";
    char *s = malloc(n + 1);

    assert_non_null(s);
    memcpy(s, head, sizeof(head) - 1);
    memset(s + sizeof(head) - 1, ' ', n - sizeof(head));
    s[n - 1] = '}';
    s[n] = '\0';
    return s;
}

static void test_size_limit(void **state)
{
    rf_engine *eng = engine_new();
    rf_config small = {.shards = 1, .no_pin_threads = true, .doc_bytes_max = 100};
    rf_graph *g = NULL;
    char *s;
    rf_diag d;

    (void)state;
    s = padded_doc(MIB);
    assert_int_equal(parse_n(eng, s, MIB, NULL, &g), 0);
    rf_graph_free(g);
    free(s);

    s = padded_doc(MIB + 1);
    rf_diag_init(&d);
    g = SENTINEL_PTR;
    assert_int_equal(parse_n(eng, s, MIB + 1, &d, &g), RF_EINVAL_GRAPH);
    assert_ptr_equal(g, SENTINEL_PTR);
    assert_int_equal(d.count, 1);
    expect_item(&d, "", "limit", "1048577 bytes; the limit is 1048576 bytes");
    rf_diag_free(&d);
    free(s);
    rf_engine_free(eng);

    /* The configured limit. */
    eng = engine_with(&small);
    s = padded_doc(100);
    g = NULL;
    assert_int_equal(parse_n(eng, s, 100, NULL, &g), 0);
    rf_graph_free(g);
    free(s);
    s = padded_doc(101);
    rf_diag_init(&d);
    assert_int_equal(parse_n(eng, s, 101, &d, &g), RF_EINVAL_GRAPH);
    expect_item(&d, "", "limit", "the limit is 100 bytes");
    rf_diag_free(&d);
    free(s);
    rf_engine_free(eng);
}

/* {"name":"d","nodes":[],"output": followed by `arrays` nested arrays: depth arrays + 1. */
static char *nested_doc(unsigned arrays, size_t *prefix_len)
{
    static const char head[] = "{\"name\":\"d\",\"nodes\":[],\"output\":";
    size_t n = sizeof(head) - 1 + 2 * (size_t)arrays + 1;
    char *s = malloc(n + 1), *w;

    assert_non_null(s);
    memcpy(s, head, sizeof(head) - 1);
    w = s + sizeof(head) - 1;
    memset(w, '[', arrays);
    memset(w + arrays, ']', arrays);
    w[2 * arrays] = '}';
    w[2 * arrays + 1] = '\0';
    *prefix_len = sizeof(head) - 1;
    return s;
}

static void test_depth_limit(void **state)
{
    rf_engine *eng = engine_new();
    rf_config shallow = {.shards = 1, .no_pin_threads = true, .doc_depth_max = 4};
    char want[64];
    size_t head;
    rf_graph *g;
    char *s;
    rf_diag d;

    (void)state;
    s = nested_doc(DEPTH_MAX - 1, &head); /* 64 levels: allowed */
    g = parse_ok(eng, s);
    rf_graph_free(g);
    free(s);

    s = nested_doc(DEPTH_MAX, &head); /* 65 levels */
    parse_fails(eng, s, &d);
    assert_int_equal(d.count, 1);
    /* The 65th container opens at the 64th '[': byte head + 63, column head + 64. */
    snprintf(want, sizeof(want), "line 1, column %zu: JSON nested deeper than 64", head + 64);
    expect_item(&d, "", "limit", want);
    rf_diag_free(&d);
    free(s);

    /* Brackets inside strings do not count. */
    g = parse_ok(eng,
                 "{\"name\":\"d\",\"nodes\":[],\"output\":\"[[[[[[[[\\\"[[[[[[[[[[[[[[[[[[[[[[[["
                 "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}");
    rf_graph_free(g);

    /* Far deeper than jansson's own bound: still the limit, found by the scan. */
    s = nested_doc(5000, &head);
    parse_fails(eng, s, &d);
    assert_int_equal(d.count, 1);
    expect_item(&d, "", "limit", "deeper than 64");
    rf_diag_free(&d);
    free(s);
    rf_engine_free(eng);

    eng = engine_with(&shallow);
    g = parse_ok(eng,
                 "{\"name\":\"d\",\"nodes\":[{\"id\":\"a\",\"kind\":\"noop\",\"config\":{}}]}");
    rf_graph_free(g);
    expect_one(
        eng,
        "{\"name\":\"d\",\n\"nodes\":[{\"id\":\"a\",\"kind\":\"noop\",\"config\":{\"x\":[]}}]}", "",
        "limit", "line 2, column 48: JSON nested deeper than 4");
    rf_engine_free(eng);
}

/* --- fields -------------------------------------------------------------------------------- */

static void test_unknown_fields(void **state)
{
    rf_engine *eng = engine_new();
    rf_diag d;

    (void)state;
    parse_fails(eng,
                "{\"name\": \"x\", \"colour\": 1, \"a/b~c\": 2,"
                " \"inputs\": {\"n\": {\"type\": \"string\", \"colour\": 1}},"
                " \"nodes\": [{\"id\": \"a\", \"kind\": \"noop\", \"colour\": 1,"
                "   \"retry\": {\"max_attempts\": 2, \"jitter\": true},"
                "   \"cache\": {\"ttl_s\": 5, \"key\": \"k\"}}]}",
                &d);
    expect_item(&d, "/colour", "unknown_field", "\"colour\" in the document");
    expect_item(&d, "/a~1b~0c", "unknown_field", "\"a/b~c\"");
    expect_item(&d, "/inputs/n/colour", "unknown_field", NULL);
    expect_item(&d, "/nodes/0/colour", "unknown_field", "in a node");
    expect_item(&d, "/nodes/0/retry/jitter", "unknown_field", "in retry");
    expect_item(&d, "/nodes/0/cache/key", "unknown_field", "in cache");
    assert_int_equal(d.count, 6);
    rf_diag_free(&d);
    rf_engine_free(eng);
}

static void test_bad_name(void **state)
{
    rf_engine *eng = engine_new();
    char doc[256];
    rf_graph *g;
    static const char *const bad[] = {"Order", "", "-x", ".x", "a b", "caf\xc3\xa9", "a/b"};
    static const char *const good[] = {"0", "a", "order-enrich", "a.b_c-d", "9-"};
    char longest[66];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(doc, sizeof(doc), "{\"name\": \"%s\", \"nodes\": []}", bad[i]);
        expect_one(eng, doc, "/name", "bad_name", "[a-z0-9][a-z0-9._-]{0,63}");
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(doc, sizeof(doc), "{\"name\": \"%s\", \"nodes\": []}", good[i]);
        g = parse_ok(eng, doc);
        assert_string_equal(g->name, good[i]);
        rf_graph_free(g);
    }
    /* 64 characters, then 65. */
    memset(longest, 'a', 64);
    longest[64] = '\0';
    snprintf(doc, sizeof(doc), "{\"name\": \"%s\", \"nodes\": []}", longest);
    rf_graph_free(parse_ok(eng, doc));
    longest[64] = 'b';
    longest[65] = '\0';
    snprintf(doc, sizeof(doc), "{\"name\": \"%s\", \"nodes\": []}", longest);
    expect_one(eng, doc, "/name", "bad_name", NULL);
    rf_engine_free(eng);
}

static void test_missing_fields(void **state)
{
    rf_engine *eng = engine_new();
    rf_diag d;

    (void)state;
    parse_fails(eng, "{}", &d);
    expect_item(&d, "/name", "required", NULL);
    expect_item(&d, "/nodes", "required", NULL);
    assert_int_equal(d.count, 2);
    rf_diag_free(&d);

    parse_fails(
        eng,
        "{\"name\": \"x\", \"nodes\": [{}, {\"id\": \"b\", \"kind\": \"noop\", \"cache\": {}}]}",
        &d);
    expect_item(&d, "/nodes/0/id", "required", NULL);
    expect_item(&d, "/nodes/0/kind", "required", NULL);
    expect_item(&d, "/nodes/1/cache/ttl_s", "required", NULL);
    assert_int_equal(d.count, 3);
    rf_diag_free(&d);
    rf_engine_free(eng);
}

static void test_type_errors(void **state)
{
    rf_engine *eng = engine_new();
    rf_diag d;
    static const char *const ptrs[] = {
        "/name",
        "/description",
        "/inputs",
        "/nodes/0",
        "/nodes/1/id",
        "/nodes/1/kind",
        "/nodes/1/deps",
        "/nodes/1/when",
        "/nodes/1/map",
        "/nodes/1/trigger",
        "/nodes/1/timeout_ms",
        "/nodes/1/retry",
        "/nodes/1/cache",
        "/nodes/2/deps/1",
        "/nodes/2/max_parallel",
        "/nodes/2/retry/max_attempts",
        "/nodes/2/retry/backoff_ms",
        "/nodes/2/retry/max_backoff_ms",
        "/nodes/2/cache/ttl_s",
        "/nodes/2/cache/version",
        "/nodes/3/timeout_ms",
        "/nodes/3/deps/0",
    };

    (void)state;
    parse_fails(
        eng,
        "{\"name\": 3, \"description\": [], \"inputs\": [], \"nodes\": [\"a\","
        " {\"id\": 1, \"kind\": null, \"deps\": \"a\", \"when\": true, \"map\": {},"
        "  \"trigger\": 1, \"timeout_ms\": \"5\", \"retry\": [], \"cache\": 7},"
        " {\"id\": \"c\", \"kind\": \"noop\", \"deps\": [\"d\", 4], \"map\": \"{{x}}\","
        "  \"max_parallel\": \"4\","
        "  \"retry\": {\"max_attempts\": 2.0, \"backoff_ms\": true, \"max_backoff_ms\": {}},"
        "  \"cache\": {\"ttl_s\": \"60\", \"version\": 1}},"
        " {\"id\": \"d\", \"kind\": \"noop\", \"timeout_ms\": 1e3, \"deps\": [null]}]}",
        &d);
    for (size_t i = 0; i < sizeof(ptrs) / sizeof(ptrs[0]); i++)
        expect_item(&d, ptrs[i], "type", NULL);
    expect_item(&d, "/nodes/2/retry/max_attempts", "type",
                "retry.max_attempts must be an integer, not a number with a fraction or exponent");
    expect_item(&d, "/nodes/1/timeout_ms", "type", "timeout_ms must be an integer, not a string");
    expect_item(&d, "/nodes/2/cache/version", "type", "cache.version must be a string");
    expect_item(&d, "/inputs", "type", "inputs must be an object, not an array");
    if (d.count != sizeof(ptrs) / sizeof(ptrs[0]))
        dump(&d);
    assert_int_equal(d.count, sizeof(ptrs) / sizeof(ptrs[0]));
    rf_diag_free(&d);
    rf_engine_free(eng);
}

static void test_ranges(void **state)
{
    rf_engine *eng = engine_new();
    rf_graph *g;
    rf_diag d;

    (void)state;
    parse_fails(
        eng,
        "{\"name\": \"x\", \"nodes\": ["
        " {\"id\": \"a\", \"kind\": \"noop\", \"timeout_ms\": -1},"
        " {\"id\": \"b\", \"kind\": \"noop\", \"timeout_ms\": 4294967296},"
        " {\"id\": \"c\", \"kind\": \"noop\", \"map\": \"{{inputs.l}}\", \"max_parallel\": 0},"
        " {\"id\": \"d\", \"kind\": \"noop\", \"map\": \"{{inputs.l}}\", \"max_parallel\": 1025},"
        " {\"id\": \"e\", \"kind\": \"noop\", \"retry\": {\"max_attempts\": 0, \"backoff_ms\": "
        "-5}},"
        " {\"id\": \"f\", \"kind\": \"noop\", \"cache\": {\"ttl_s\": 0}},"
        " {\"id\": \"g\", \"kind\": \"noop\", \"trigger\": \"sometimes\"},"
        " {\"id\": \"h\", \"kind\": \"noop\", \"max_parallel\": 4}]}",
        &d);
    expect_item(&d, "/nodes/0/timeout_ms", "range", "between 0 and 4294967295, not -1");
    expect_item(&d, "/nodes/1/timeout_ms", "range", "not 4294967296");
    expect_item(&d, "/nodes/2/max_parallel", "range", "between 1 and 1024");
    expect_item(&d, "/nodes/3/max_parallel", "range", "not 1025");
    expect_item(&d, "/nodes/4/retry/max_attempts", "range", "between 1 and");
    expect_item(&d, "/nodes/4/retry/backoff_ms", "range", NULL);
    expect_item(&d, "/nodes/5/cache/ttl_s", "range", "between 1 and");
    expect_item(&d, "/nodes/6/trigger", "bad_trigger", "\"sometimes\"");
    expect_item(&d, "/nodes/7/max_parallel", "invalid", "mapped node");
    assert_int_equal(d.count, 9);
    rf_diag_free(&d);

    /* The bounds themselves are accepted. */
    g = parse_ok(eng,
                 "{\"name\": \"x\", \"nodes\": ["
                 " {\"id\": \"a\", \"kind\": \"noop\", \"timeout_ms\": 4294967295,"
                 "  \"trigger\": \"all_done\","
                 "  \"retry\": {\"max_attempts\": 1, \"backoff_ms\": 0, \"max_backoff_ms\": 0},"
                 "  \"cache\": {\"ttl_s\": 1}},"
                 " {\"id\": \"b\", \"kind\": \"noop\", \"map\": \"{{inputs.l}}\","
                 "  \"max_parallel\": 1024, \"trigger\": \"all_succeeded\"},"
                 " {\"id\": \"c\", \"kind\": \"noop\", \"map\": \"{{inputs.l}}\","
                 "  \"max_parallel\": 1, \"timeout_ms\": 0}]}");
    assert_int_equal(g->n, 3);
    assert_int_equal(g->nodes[0].opts.timeout_ms, UINT32_MAX);
    assert_int_equal(g->nodes[0].opts.trigger, RF_TRIGGER_ALL_DONE);
    assert_int_equal(g->nodes[0].opts.retry.max_attempts, 1);
    assert_int_equal(g->nodes[0].opts.cache.ttl_s, 1);
    assert_null(g->nodes[0].opts.cache.version);
    assert_int_equal(g->nodes[1].opts.max_parallel, 1024);
    assert_int_equal(g->nodes[1].opts.trigger, RF_TRIGGER_ALL_SUCCEEDED);
    assert_int_equal(g->nodes[2].opts.max_parallel, 1);
    rf_graph_free(g);
    rf_engine_free(eng);
}

static void test_deps(void **state)
{
    rf_engine *eng = engine_new();
    rf_graph *g;
    rf_diag d;

    (void)state;
    parse_fails(eng,
                "{\"name\": \"x\", \"nodes\": ["
                " {\"id\": \"a\", \"kind\": \"noop\"},"
                " {\"id\": \"b\", \"kind\": \"noop\", \"deps\": [\"a\"]},"
                " {\"id\": \"c\", \"kind\": \"noop\", \"deps\": [\"b\", \"c\"]},"
                " {\"id\": \"d\", \"kind\": \"noop\", \"deps\": [\"a\", \"ghost\", \"A\"]}]}",
                &d);
    expect_item(&d, "/nodes/2/deps/1", "self_dep", "\"c\" depends on itself");
    expect_item(&d, "/nodes/3/deps/1", "unknown_dep", "\"ghost\"");
    expect_item(&d, "/nodes/3/deps/2", "unknown_dep", "\"A\"");
    assert_int_equal(d.count, 3);
    rf_diag_free(&d);

    /* Repeated deps are fine; deps may name nodes later in the array; a duplicated id
     * resolves to its first node (the compiler reports the duplicate). */
    g = parse_ok(eng, "{\"name\": \"x\", \"nodes\": ["
                      " {\"id\": \"a\", \"kind\": \"noop\", \"deps\": [\"c\", \"c\"]},"
                      " {\"id\": \"b\", \"kind\": \"noop\", \"deps\": []},"
                      " {\"id\": \"c\", \"kind\": \"noop\"},"
                      " {\"id\": \"b\", \"kind\": \"noop\"},"
                      " {\"id\": \"e\", \"kind\": \"noop\", \"deps\": [\"b\"]}]}");
    assert_int_equal(g->n, 5);
    assert_true(has_edge(g, 2, 0));
    assert_true(has_edge(g, 1, 4));
    for (uint32_t e = 0; e < g->m; e++)
        assert_true(g->edges[e] == ((uint64_t)2 << 32 | 0) ||
                    g->edges[e] == ((uint64_t)1 << 32 | 4));
    rf_graph_free(g);

    /* A node naming its own id is a self dep even when another node has that id too. */
    expect_one(eng,
               "{\"name\": \"x\", \"nodes\": [{\"id\": \"b\", \"kind\": \"noop\"},"
               " {\"id\": \"b\", \"kind\": \"noop\", \"deps\": [\"b\"]}]}",
               "/nodes/1/deps/0", "self_dep", NULL);
    rf_engine_free(eng);
}

static void test_many_problems_at_once(void **state)
{
    rf_engine *eng = engine_new();
    rf_diag d;

    (void)state;
    parse_fails(
        eng,
        "{\"name\": \"Bad Name\", \"colour\": 1, \"inputs\": {\"x\": {\"type\": \"float\"}},"
        " \"nodes\": ["
        "  {\"id\": \"a\", \"kind\": \"noop\", \"deps\": [\"a\", \"ghost\"], \"timeout_ms\": -1},"
        "  {\"kind\": \"noop\", \"retry\": {\"max_attempts\": 0, \"jitter\": true}},"
        "  {\"id\": \"c\", \"kind\": \"noop\", \"trigger\": \"sometimes\", \"max_parallel\": 8,"
        "   \"cache\": {\"version\": 2}}]}",
        &d);
    expect_item(&d, "/name", "bad_name", NULL);
    expect_item(&d, "/colour", "unknown_field", NULL);
    expect_item(&d, "/inputs/x/type", "bad_type", "\"float\"");
    expect_item(&d, "/nodes/0/deps/0", "self_dep", NULL);
    expect_item(&d, "/nodes/0/deps/1", "unknown_dep", NULL);
    expect_item(&d, "/nodes/0/timeout_ms", "range", NULL);
    expect_item(&d, "/nodes/1/id", "required", NULL);
    expect_item(&d, "/nodes/1/retry/max_attempts", "range", NULL);
    expect_item(&d, "/nodes/1/retry/jitter", "unknown_field", NULL);
    expect_item(&d, "/nodes/2/trigger", "bad_trigger", NULL);
    expect_item(&d, "/nodes/2/max_parallel", "invalid", NULL);
    expect_item(&d, "/nodes/2/cache/ttl_s", "required", NULL);
    expect_item(&d, "/nodes/2/cache/version", "type", NULL);
    assert_int_equal(d.count, 13);
    rf_diag_free(&d);

    /* Without a diag the answer is the same. */
    rf_graph *g = SENTINEL_PTR;
    assert_int_equal(parse_n(eng, "{\"name\": 1}", 11, NULL, &g), RF_EINVAL_GRAPH);
    assert_ptr_equal(g, SENTINEL_PTR);
    rf_engine_free(eng);
}

/* --- valid documents ------------------------------------------------------------------------ */

static const char spec_example[] =
    "{\n"
    "  \"name\": \"order-enrich\",\n"
    "  \"description\": \"fetch an order, shape it, publish it\",\n"
    "  \"inputs\": {\n"
    "    \"order_id\": {\"type\": \"string\", \"required\": true},\n"
    "    \"limit\":    {\"type\": \"number\", \"default\": 10}\n"
    "  },\n"
    "  \"nodes\": [\n"
    "    {\"id\": \"fetch\", \"kind\": \"http\",\n"
    "     \"config\": {\"method\": \"GET\", \"url\": "
    "\"http://127.0.0.1:9000/orders/{{inputs.order_id}}\"},\n"
    "     \"timeout_ms\": 2000,\n"
    "     \"retry\": {\"max_attempts\": 3, \"backoff_ms\": 100, \"max_backoff_ms\": 5000},\n"
    "     \"cache\": {\"ttl_s\": 3600, \"version\": \"1\"}},\n"
    "    {\"id\": \"lines\", \"kind\": \"transform\", \"deps\": [\"fetch\"],\n"
    "     \"config\": {\"output\": \"{{nodes.fetch.output.body.lines}}\"}},\n"
    "    {\"id\": \"price\", \"kind\": \"transform\", \"map\": \"{{nodes.lines.output}}\", "
    "\"max_parallel\": 64,\n"
    "     \"config\": {\"output\": {\"sku\": \"{{item.sku}}\", \"cents\": \"{{item.cents}}\", "
    "\"pos\": \"{{index}}\"}}},\n"
    "    {\"id\": \"publish\", \"kind\": \"noop\", \"deps\": [\"price\"],\n"
    "     \"when\": \"nodes.fetch.output.status == 200 && inputs.limit > 0\"}\n"
    "  ],\n"
    "  \"output\": {\"order\": \"{{inputs.order_id}}\", \"priced\": \"{{nodes.price.output}}\"}\n"
    "}\n";

static void test_spec_example(void **state)
{
    rf_engine *eng = engine_new();
    rf_graph *g = parse_ok(eng, spec_example);
    const rf_node_opts *o;
    rf_plan *p = NULL;
    rf_diag d;

    (void)state;
    assert_string_equal(g->name, "order-enrich");
    assert_int_equal(g->n, 4);
    assert_string_equal(g->nodes[0].id, "fetch");
    assert_string_equal(g->nodes[0].kind, "http");
    assert_string_equal(g->nodes[3].id, "publish");
    assert_string_equal(g->nodes[3].kind, "noop");
    assert_int_equal(rf_graph_find(g, "price"), 2);
    /* Explicit deps only: the compiler adds the edges templates imply. */
    assert_int_equal(g->m, 2);
    assert_true(has_edge(g, 0, 1));
    assert_true(has_edge(g, 2, 3));
    o = &g->nodes[0].opts;
    assert_int_equal(o->timeout_ms, 2000);
    assert_int_equal(o->retry.max_attempts, 3);
    assert_int_equal(o->retry.backoff_ms, 100);
    assert_int_equal(o->retry.max_backoff_ms, 5000);
    assert_int_equal(o->cache.ttl_s, 3600);
    assert_string_equal(o->cache.version, "1");
    assert_null(o->when);
    assert_null(o->map);
    assert_string_equal(json_string_value(json_object_get(g->nodes[0].config, "method")), "GET");
    o = &g->nodes[2].opts;
    assert_string_equal(o->map, "{{nodes.lines.output}}");
    assert_int_equal(o->max_parallel, 64);
    assert_null(g->nodes[3].config);
    assert_string_equal(g->nodes[3].opts.when,
                        "nodes.fetch.output.status == 200 && inputs.limit > 0");
    assert_non_null(json_object_get(g->inputs, "order_id"));
    assert_non_null(json_object_get(g->output, "priced"));
    assert_non_null(g->doc);
    assert_string_equal(json_string_value(json_object_get(g->doc, "description")),
                        "fetch an order, shape it, publish it");

    rf_diag_init(&d);
    int rc = rf_plan_compile(eng, g, &d, &p);
    if (rc != 0)
        dump(&d);
    assert_int_equal(rc, 0);
    assert_int_equal(rf_plan_nodes(p), 4);
    assert_string_equal(rf_plan_node_kind(p, 0), "http");
    rf_plan_release(p);
    rf_diag_free(&d);
    rf_graph_free(g);
    rf_engine_free(eng);
}

static void test_minimal_documents(void **state)
{
    rf_engine *eng = engine_new();
    rf_plan *p = NULL;
    rf_graph *g;

    (void)state;
    /* An empty graph is a graph. */
    g = parse_ok(eng, "{\"name\": \"empty\", \"nodes\": []}");
    assert_int_equal(g->n, 0);
    assert_int_equal(g->m, 0);
    assert_null(g->inputs);
    assert_null(g->output);
    rf_graph_free(g);

    /* config: any JSON, kept as given; output too. */
    g = parse_ok(eng, "{\"name\": \"one\", \"description\": \"\", \"nodes\": ["
                      "{\"id\": \"a\", \"kind\": \"noop\", \"config\": null}],"
                      " \"output\": [1, \"two\"]}");
    assert_int_equal(g->n, 1);
    assert_true(json_is_null(g->nodes[0].config));
    assert_true(json_is_array(g->output));
    rf_graph_free(g);

    /* Parsing and compiling in one step. */
    const char *empty = "{\"name\": \"e\", \"nodes\": []}";
    assert_int_equal(rf_plan_from_json(eng, empty, strlen(empty), NULL, &p), 0);
    assert_int_equal(rf_plan_nodes(p), 0);
    rf_plan_release(p);
    rf_engine_free(eng);
}

static void test_bad_args(void **state)
{
    rf_engine *eng = engine_new();
    rf_graph *g = SENTINEL_PTR;
    rf_diag d;

    (void)state;
    assert_int_equal(rf_graph_parse(NULL, "{}", 2, NULL, &g), -EINVAL);
    assert_int_equal(rf_graph_parse(eng, "{}", 2, NULL, NULL), -EINVAL);
    assert_int_equal(rf_graph_parse(eng, NULL, 2, NULL, &g), -EINVAL);
    assert_ptr_equal(g, SENTINEL_PTR);
    /* NULL with no bytes is the empty document. */
    rf_diag_init(&d);
    assert_int_equal(rf_graph_parse(eng, NULL, 0, &d, &g), RF_EINVAL_GRAPH);
    expect_item(&d, "", "malformed_json", NULL);
    rf_diag_free(&d);
    /* Bytes past `len` are not read: a prefix of a longer buffer is its own document. */
    g = NULL;
    assert_int_equal(rf_graph_parse(eng, "{\"name\":\"a\",\"nodes\":[]}garbage", 23, NULL, &g), 0);
    rf_graph_free(g);
    rf_engine_free(eng);
}

/* --- inputs ----------------------------------------------------------------------------------- */

static void test_inputs_decl_errors(void **state)
{
    rf_engine *eng = engine_new();
    json_t *decl;
    rf_diag d;

    (void)state;
    parse_fails(eng,
                "{\"name\": \"x\", \"nodes\": [], \"inputs\": {"
                " \"1x\": {},"
                " \"ok\": \"string\","
                " \"t1\": {\"type\": \"float\"},"
                " \"t2\": {\"type\": 1},"
                " \"r\": {\"required\": \"yes\"},"
                " \"d1\": {\"type\": \"integer\", \"default\": 1.5},"
                " \"d2\": {\"type\": \"string\", \"default\": null},"
                " \"d3\": {\"type\": \"string\", \"required\": true, \"default\": \"x\"},"
                " \"desc\": {\"description\": 1},"
                " \"u\": {\"type\": \"any\", \"colour\": 1},"
                " \"a/b\": {}}}",
                &d);
    expect_item(&d, "/inputs/1x", "bad_name", "[A-Za-z_][A-Za-z0-9_-]{0,63}");
    expect_item(&d, "/inputs/ok", "type", "must be declared by an object, not a string");
    expect_item(&d, "/inputs/t1/type", "bad_type", "\"float\"");
    expect_item(&d, "/inputs/t2/type", "type", NULL);
    expect_item(&d, "/inputs/r/required", "type", "boolean");
    expect_item(&d, "/inputs/d1/default", "bad_default", "must be an integer, not a number");
    expect_item(&d, "/inputs/d2/default", "bad_default", "must be a string, not null");
    expect_item(&d, "/inputs/d3/default", "invalid", "required and has a default");
    expect_item(&d, "/inputs/desc/description", "type", NULL);
    expect_item(&d, "/inputs/u/colour", "unknown_field", NULL);
    expect_item(&d, "/inputs/a~1b", "bad_name", NULL);
    assert_int_equal(d.count, 11);
    rf_diag_free(&d);

    /* Directly, with no diag, and with every type and a matching default. */
    decl = json_loads("{\"s\": {\"type\": \"string\", \"default\": \"x\", \"description\": \"d\"},"
                      " \"n\": {\"type\": \"number\", \"default\": 1.5},"
                      " \"i\": {\"type\": \"integer\", \"default\": 2.0},"
                      " \"b\": {\"type\": \"boolean\", \"default\": false, \"required\": false},"
                      " \"o\": {\"type\": \"object\", \"default\": {}},"
                      " \"a\": {\"type\": \"array\", \"default\": []},"
                      " \"any\": {\"default\": null}, \"req\": {\"required\": true},"
                      " \"Z_-9\": {}}",
                      0, NULL);
    assert_non_null(decl);
    assert_int_equal(rf__inputs_decl_check(decl, "/inputs", NULL), 0);
    json_decref(decl);
    decl = json_loads("{\"s\": {\"type\": \"strin\"}}", 0, NULL);
    assert_int_equal(rf__inputs_decl_check(decl, "/inputs", NULL), RF_EINVAL_GRAPH);
    json_decref(decl);
    rf_diag_init(&d);
    assert_int_equal(rf__inputs_decl_check(NULL, "/x", &d), RF_EINVAL_GRAPH);
    expect_item(&d, "/x", "type", NULL);
    rf_diag_free(&d);
    rf_engine_free(eng);
}

static json_t *resolve_ok(const json_t *decl, const char *inputs_json)
{
    json_t *in = inputs_json ? json_loads(inputs_json, 0, NULL) : NULL, *out = NULL;
    rf_diag d;

    rf_diag_init(&d);
    int rc = rf__inputs_resolve(decl, in, &d, &out);
    if (rc != 0)
        dump(&d);
    assert_int_equal(rc, 0);
    assert_int_equal(d.count, 0);
    assert_non_null(out);
    assert_ptr_not_equal(out, in);
    json_decref(in);
    return out;
}

/* Resolve must fail with RF_EINPUTS; the diag is initialized here. */
static void resolve_fails(const json_t *decl, const char *inputs_json, rf_diag *d)
{
    json_t *in = json_loads(inputs_json, JSON_DECODE_ANY, NULL);
    json_t *out = (json_t *)(uintptr_t)0x5a5a;

    assert_non_null(in);
    rf_diag_init(d);
    assert_int_equal(rf__inputs_resolve(decl, in, d, &out), RF_EINPUTS);
    assert_ptr_equal(out, (json_t *)(uintptr_t)0x5a5a);
    assert_true(d->count > 0);
    diag_sane(d);
    json_decref(in);
}

static json_t *decl_of(const char *s)
{
    json_t *decl = json_loads(s, 0, NULL);

    assert_non_null(decl);
    assert_int_equal(rf__inputs_decl_check(decl, "/inputs", NULL), 0);
    return decl;
}

static void test_inputs_defaults_and_required(void **state)
{
    json_t *decl = decl_of("{\"order_id\": {\"type\": \"string\", \"required\": true},"
                           " \"limit\": {\"type\": \"number\", \"default\": 10},"
                           " \"tags\": {\"type\": \"array\", \"default\": [\"a\"]},"
                           " \"note\": {\"type\": \"string\"}}");
    json_t *out, *want;
    rf_diag d;

    (void)state;
    out = resolve_ok(decl, "{\"order_id\": \"o-1\"}");
    want = json_loads("{\"order_id\": \"o-1\", \"limit\": 10, \"tags\": [\"a\"]}", 0, NULL);
    assert_true(json_equal(out, want));
    /* Defaults are copies: the execution may not share the plan's values. */
    assert_ptr_not_equal(json_object_get(out, "tags"),
                         json_object_get(json_object_get(decl, "tags"), "default"));
    json_decref(want);
    json_decref(out);

    out = resolve_ok(decl, "{\"order_id\": \"o-2\", \"limit\": 0.5, \"note\": \"n\"}");
    want = json_loads("{\"order_id\": \"o-2\", \"limit\": 0.5, \"tags\": [\"a\"], \"note\": \"n\"}",
                      0, NULL);
    assert_true(json_equal(out, want));
    json_decref(want);
    json_decref(out);

    resolve_fails(decl, "{\"limit\": 3}", &d);
    assert_int_equal(d.count, 1);
    expect_item(&d, "/inputs/order_id", "required", "\"order_id\" is required");
    rf_diag_free(&d);

    /* NULL inputs are {}. */
    rf_diag_init(&d);
    out = NULL;
    assert_int_equal(rf__inputs_resolve(decl, NULL, &d, &out), RF_EINPUTS);
    assert_null(out);
    expect_item(&d, "/inputs/order_id", "required", NULL);
    rf_diag_free(&d);
    json_decref(decl);
}

struct type_case {
    const char *type;
    const char *accepts; /* a JSON array of values */
    const char *rejects;
};

static void test_inputs_each_type(void **state)
{
    static const struct type_case cases[] = {
        {"string", "[\"\", \"x\"]", "[1, 1.5, true, null, {}, []]"},
        {"number", "[0, -3, 1.5, 1e300]", "[\"1\", true, null, {}, []]"},
        {"integer", "[0, -3, 3.0, 1e3, 9007199254740992.0, -9007199254740992.0]",
         "[1.5, 9007199254740994.0, \"1\", true, null, {}, []]"},
        {"boolean", "[true, false]", "[0, 1, \"true\", null, {}, []]"},
        {"object", "[{}, {\"a\": 1}]", "[[], \"{}\", 1, null, true]"},
        {"array", "[[], [1]]", "[{}, \"[]\", 1, null, false]"},
        {"any", "[null, 1, 1.5, \"s\", true, {}, []]", "[]"},
    };
    char buf[256];

    (void)state;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        json_t *acc = json_loads(cases[c].accepts, JSON_DECODE_ANY, NULL);
        json_t *rej = json_loads(cases[c].rejects, JSON_DECODE_ANY, NULL);
        json_t *v;
        size_t i;

        snprintf(buf, sizeof(buf), "{\"v\": {\"type\": \"%s\"}}", cases[c].type);
        json_t *decl = decl_of(buf);
        assert_non_null(acc);
        assert_non_null(rej);
        json_array_foreach(acc, i, v)
        {
            json_t *in = json_pack("{s:O}", "v", v), *out = NULL;
            if (rf__inputs_resolve(decl, in, NULL, &out) != 0) {
                print_error("type %s should accept value %zu\n", cases[c].type, i);
                fail();
            }
            const json_t *got = json_object_get(out, "v");
            assert_true(json_equal(got, v) ||
                        (json_is_integer(got) && json_is_real(v) &&
                         (double)json_integer_value(got) == json_real_value(v)));
            json_decref(out);
            json_decref(in);
        }
        json_array_foreach(rej, i, v)
        {
            json_t *in = json_pack("{s:O}", "v", v), *out = NULL;
            rf_diag d;
            rf_diag_init(&d);
            if (rf__inputs_resolve(decl, in, &d, &out) != RF_EINPUTS) {
                print_error("type %s should reject value %zu\n", cases[c].type, i);
                fail();
            }
            assert_int_equal(d.count, 1);
            expect_item(&d, "/inputs/v", "type", "input \"v\" must be");
            rf_diag_free(&d);
            json_decref(in);
        }
        json_decref(decl);
        json_decref(acc);
        json_decref(rej);
    }
}

static void test_inputs_integer_vs_number(void **state)
{
    json_t *decl = decl_of("{\"i\": {\"type\": \"integer\"}, \"n\": {\"type\": \"number\"}}");
    json_t *out;
    rf_diag d;

    (void)state;
    /* A whole real becomes an integer; a number keeps its form. */
    out = resolve_ok(decl, "{\"i\": 3.0, \"n\": 3.0}");
    assert_true(json_is_integer(json_object_get(out, "i")));
    assert_int_equal(json_integer_value(json_object_get(out, "i")), 3);
    assert_true(json_is_real(json_object_get(out, "n")));
    json_decref(out);
    out = resolve_ok(decl, "{\"i\": 7, \"n\": 7}");
    assert_true(json_is_integer(json_object_get(out, "i")));
    assert_true(json_is_integer(json_object_get(out, "n")));
    json_decref(out);
    out = resolve_ok(decl, "{\"i\": 9007199254740992.0}");
    assert_int_equal(json_integer_value(json_object_get(out, "i")), 9007199254740992LL);
    json_decref(out);

    resolve_fails(decl, "{\"i\": 3.5, \"n\": \"3.5\"}", &d);
    expect_item(&d, "/inputs/i", "type", "must be an integer, not a number with a fraction");
    expect_item(&d, "/inputs/n", "type", "must be a number, not a string");
    assert_int_equal(d.count, 2);
    rf_diag_free(&d);
    resolve_fails(decl, "{\"i\": 1e16}", &d);
    expect_item(&d, "/inputs/i", "type", NULL);
    rf_diag_free(&d);
    json_decref(decl);
}

static void test_inputs_unknown_and_shape(void **state)
{
    json_t *decl = decl_of("{\"a\": {}}");
    json_t *in, *out;
    rf_diag d;

    (void)state;
    resolve_fails(decl, "{\"a\": 1, \"colour\": \"red\", \"x/y\": 2}", &d);
    expect_item(&d, "/inputs/colour", "unknown_input", "no input named \"colour\"");
    expect_item(&d, "/inputs/x~1y", "unknown_input", NULL);
    assert_int_equal(d.count, 2);
    rf_diag_free(&d);

    resolve_fails(decl, "[1]", &d);
    assert_int_equal(d.count, 1);
    expect_item(&d, "/inputs", "type", "must be an object, not an array");
    rf_diag_free(&d);
    json_decref(decl);

    /* No declaration: any object, copied. */
    in = json_loads("{\"x\": 1, \"y\": [2]}", 0, NULL);
    out = NULL;
    assert_int_equal(rf__inputs_resolve(NULL, in, NULL, &out), 0);
    assert_ptr_not_equal(out, in);
    assert_true(json_equal(out, in));
    json_decref(out);
    assert_int_equal(rf__inputs_resolve(NULL, NULL, NULL, &out), 0);
    assert_int_equal(json_object_size(out), 0);
    json_decref(out);
    rf_diag_init(&d);
    json_decref(in);
    in = json_string("x");
    assert_int_equal(rf__inputs_resolve(NULL, in, &d, &out), RF_EINPUTS);
    expect_item(&d, "/inputs", "type", NULL);
    rf_diag_free(&d);
    json_decref(in);
    assert_int_equal(rf__inputs_resolve(NULL, NULL, NULL, NULL), -EINVAL);
}

/* rf_inputs_check through a plan compiled from the spec's example. */
static void test_inputs_check_plan(void **state)
{
    rf_engine *eng = engine_new();
    rf_plan *p = NULL;
    json_t *in, *out = NULL;
    rf_diag d;

    (void)state;
    rf_diag_init(&d);
    int rc = rf_plan_from_json(eng, spec_example, strlen(spec_example), &d, &p);
    if (rc != 0)
        dump(&d);
    assert_int_equal(rc, 0);
    in = json_loads("{\"order_id\": \"o-9\"}", 0, NULL);
    assert_int_equal(rf_inputs_check(p, in, &d, &out), 0);
    assert_int_equal(json_integer_value(json_object_get(out, "limit")), 10);
    json_decref(out);
    json_decref(in);
    in = json_loads("{\"limit\": \"ten\", \"extra\": 1}", 0, NULL);
    out = NULL;
    assert_int_equal(rf_inputs_check(p, in, &d, &out), RF_EINPUTS);
    assert_null(out);
    expect_item(&d, "/inputs/order_id", "required", NULL);
    expect_item(&d, "/inputs/limit", "type", NULL);
    expect_item(&d, "/inputs/extra", "unknown_input", NULL);
    assert_int_equal(d.count, 3);
    json_decref(in);
    rf_diag_free(&d);
    rf_plan_release(p);
    rf_engine_free(eng);
}

/* --- problems the compiler finds, seen through a document ----------------------------------- */

/* rf_plan_from_json must fail and list (pointer, code). */
static void compile_expect(rf_engine *eng, const char *json, const char *pointer, const char *code)
{
    rf_plan *p = (rf_plan *)(uintptr_t)0x5a5a;
    rf_diag d;

    rf_diag_init(&d);
    assert_int_equal(rf_plan_from_json(eng, json, strlen(json), &d, &p), RF_EINVAL_GRAPH);
    assert_ptr_equal(p, (rf_plan *)(uintptr_t)0x5a5a);
    diag_sane(&d);
    expect_item(&d, pointer, code, NULL);
    rf_diag_free(&d);
}

static void test_compile_structure(void **state)
{
    rf_engine *eng = engine_new();

    (void)state;
    compile_expect(eng, "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"kind\": \"nope\"}]}",
                   "/nodes/0/kind", "unknown_kind");
    compile_expect(eng,
                   "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"kind\": \"noop\"},"
                   " {\"id\": \"a\", \"kind\": \"noop\"}]}",
                   "/nodes/1/id", "duplicate_id");
    compile_expect(
        eng,
        "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"kind\": \"noop\", \"deps\": [\"b\"]},"
        " {\"id\": \"b\", \"kind\": \"noop\", \"deps\": [\"a\"]}]}",
        "/nodes/0", "cycle");
    rf_engine_free(eng);
}

/* The graph language's own checks (engine/lang.c, engine/tmpl.c, engine/cond.c). */
static void test_compile_language(void **state)
{
    rf_engine *eng = engine_new();

    (void)state;
    compile_expect(eng,
                   "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"kind\": \"transform\","
                   " \"config\": {\"output\": {\"v\": \"{{ inputs. }}\"}}}]}",
                   "/nodes/0/config/output/v", "template_syntax");
    compile_expect(eng,
                   "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"kind\": \"noop\","
                   " \"when\": \"inputs.a ==\"}]}",
                   "/nodes/0/when", "condition_syntax");
    compile_expect(eng,
                   "{\"name\": \"x\", \"nodes\": [{\"id\": \"a\", \"kind\": \"transform\","
                   " \"config\": {\"output\": \"{{nodes.ghost.output}}\"}}]}",
                   "/nodes/0/config/output", "unknown_ref");
    rf_engine_free(eng);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_not_an_object),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_bad_name),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_deps),
        cmocka_unit_test(test_many_problems_at_once),
        cmocka_unit_test(test_spec_example),
        cmocka_unit_test(test_minimal_documents),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_inputs_decl_errors),
        cmocka_unit_test(test_inputs_defaults_and_required),
        cmocka_unit_test(test_inputs_each_type),
        cmocka_unit_test(test_inputs_integer_vs_number),
        cmocka_unit_test(test_inputs_unknown_and_shape),
        cmocka_unit_test(test_inputs_check_plan),
        cmocka_unit_test(test_compile_structure),
        cmocka_unit_test(test_compile_language),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
