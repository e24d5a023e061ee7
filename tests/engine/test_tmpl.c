/*
 * tests/engine/test_tmpl.c: `{{ path }}` templates (engine/tmpl.c through engine/expr.h).
 *
 * The sans-I/O scanners are fed every input from a buffer that ends right before a
 * PROT_NONE page, so a read past the end crashes the test instead of passing silently:
 * text and template splitting, whitespace, every path form, quoted keys and their escapes,
 * and each syntax error with its byte offset, plus the limits (steps, parts, bytes, index).
 *
 * The compile/eval layer is checked for what the engine relies on: a string that is one
 * template yields the referenced value itself (pointer identity, so no copy), mixed
 * strings write every JSON type, nested configs share their static parts with the
 * compiled value (pointer identity and reference counts), every way a path can fail gives
 * "template_error" with the path named, and compile reports every problem (syntax,
 * unknown_ref, bad_scope, limit) with the JSON Pointer of the string, calling on_ref once
 * per node reference. One compiled template is evaluated on several threads at once, as
 * shards do (RF_TEST_CONCURRENT: this test also runs under TSan).
 */
#include "engine/expr.h"

#include <errno.h>
#include <pthread.h>
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

#define REFS_MAX      16
#define POINTER_BYTES 128
#define BIG_BYTES     (9u << 20) /* two of these overflow RF_TMPL_STRING_BYTES_MAX */
#define THREADS       4
#define THREAD_EVALS  2000

/* --- guard page ----------------------------------------------------------------------------- */

static void *g_map;
static size_t g_map_len;

static void guard_release(void)
{
    if (g_map)
        munmap(g_map, g_map_len);
    g_map = NULL;
}

/* A copy of s[0..len) whose last byte sits right before a PROT_NONE page. Valid until the
 * next call. */
static const char *guarded(const char *s, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (len + page - 1) / page * page;
    char *base;

    guard_release();
    if (body == 0)
        body = page;
    g_map_len = body + page;
    g_map = mmap(NULL, g_map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g_map != MAP_FAILED);
    base = g_map;
    assert_int_equal(mprotect(base + body, page, PROT_NONE), 0);
    memcpy(base + body - len, s, len);
    return base + body - len;
}

static int scan(const char *s, struct rf_tmpl_part *parts, size_t cap, struct rf_scan_err *e)
{
    return rf__tmpl_scan(guarded(s, strlen(s)), strlen(s), parts, cap, e);
}

/* Scanning `s` fails at byte `off`, a limit or not. */
static void scan_fails(const char *s, size_t off, bool limit)
{
    struct rf_tmpl_part parts[RF_TMPL_PARTS_MAX];
    struct rf_scan_err e = {0};

    if (scan(s, parts, RF_TMPL_PARTS_MAX, &e) != -1 || e.off != off || e.limit != limit)
        fail_msg("\"%s\": expected an error at %zu (limit %d), got off %zu limit %d (%s)", s, off,
                 limit, e.off, e.limit, e.msg ? e.msg : "accepted");
    assert_non_null(e.msg);
}

/* Scanning `s` gives one template, whose path is `path`. */
static void scan_one_path(const char *s, const char *path)
{
    struct rf_tmpl_part parts[RF_TMPL_PARTS_MAX];
    struct rf_scan_err e = {0};
    int n = scan(s, parts, RF_TMPL_PARTS_MAX, &e);

    if (n != 1)
        fail_msg("\"%s\": %d parts (%s at %zu)", s, n, e.msg ? e.msg : "", e.off);
    assert_true(parts[0].is_path);
    assert_int_equal(parts[0].len, strlen(path));
    assert_memory_equal(s + parts[0].off, path, strlen(path));
}

/* --- test env and scope --------------------------------------------------------------------- */

static const char *const k_nodes[] = {"fetch", "lines", "a", "b"};

struct refs {
    uint32_t n;
    uint32_t node[REFS_MAX];
    char pointer[REFS_MAX][POINTER_BYTES];
};

static int node_index(void *ud, const char *id, size_t len)
{
    (void)ud;
    for (size_t i = 0; i < sizeof(k_nodes) / sizeof(k_nodes[0]); i++)
        if (strlen(k_nodes[i]) == len && memcmp(k_nodes[i], id, len) == 0)
            return (int)i;
    return -1;
}

static void on_ref(void *ud, uint32_t node, const char *pointer)
{
    struct refs *r = ud;

    assert_true(r->n < REFS_MAX);
    r->node[r->n] = node;
    snprintf(r->pointer[r->n], POINTER_BYTES, "%s", pointer);
    r->n++;
}

struct world {
    json_t *inputs;
    json_t *outputs[4]; /* by node index; "lines" (1) has none */
    json_t *item;
    struct rf_scope sc;
    struct refs refs;
    struct rf_expr_env env;
};

static const json_t *node_output(const void *ud, uint32_t node)
{
    const struct world *w = ud;

    return node < 4 ? w->outputs[node] : NULL;
}

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);

    if (!v)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    return v;
}

static int world_setup(void **state)
{
    struct world *w = calloc(1, sizeof(*w));

    w->inputs = parse("{\"id\": \"o-1\", \"limit\": 10, \"price\": 0.1, \"two\": 2.0,"
                      " \"huge\": 1e300, \"flag\": true, \"off\": false, \"none\": null,"
                      " \"empty\": \"\", \"tags\": [\"x\", \"y\"], \"obj\": {\"k\": 1},"
                      " \"reals\": [0.5], \"weird key\": 5, \"a\\\"b\": 6, \"\\u00e9\": 7,"
                      " \"}}\": 8, \"utf\": \"\\u00e9\\u20ac\"}");
    json_object_setn_new(w->inputs, "a\0b", 3, json_integer(9));
    w->outputs[0] = parse("{\"status\": 200, \"body\": {\"items\": [{\"sku\": \"s1\"}]}}");
    w->outputs[2] = parse("[1, 2, 3]");
    w->outputs[3] = parse("\"b-out\"");
    w->item = parse("{\"sku\": \"s9\", \"cents\": 250}");
    w->sc = (struct rf_scope){.inputs = w->inputs,
                              .node_output = node_output,
                              .ud = w,
                              .item = w->item,
                              .index = 3,
                              .exec_id = "ex1",
                              .graph = "g1",
                              .version = 7};
    w->env = (struct rf_expr_env){
        .node_index = node_index, .on_ref = on_ref, .ud = &w->refs, .in_map = true};
    *state = w;
    return 0;
}

static int world_teardown(void **state)
{
    struct world *w = *state;

    json_decref(w->inputs);
    for (int i = 0; i < 4; i++)
        json_decref(w->outputs[i]);
    json_decref(w->item);
    free(w);
    guard_release();
    return 0;
}

/* Compile `text` (JSON) at "/cfg" and expect success with a compiled form. */
static struct rf_tmpl *compile_ok(struct world *w, json_t *cfg)
{
    rf_diag d;
    struct rf_tmpl *t = NULL;
    int rc;

    rf_diag_init(&d);
    rc = rf_tmpl_compile(cfg, "/cfg", &w->env, &d, &t);
    if (rc != 0)
        fail_msg("compile: %d, %s: %s", rc, d.count ? d.items[0].code : "",
                 d.count ? d.items[0].message : "");
    assert_int_equal(d.count, 0);
    assert_non_null(t);
    rf_diag_free(&d);
    return t;
}

/* Evaluate the one-string config `s` and return the result (owned). */
static json_t *eval_str(struct world *w, const char *s)
{
    json_t *cfg = json_string(s), *out = NULL;
    struct rf_tmpl *t = compile_ok(w, cfg);
    rf_error err = {0};
    int rc = rf_tmpl_eval(t, &w->sc, &out, &err);

    if (rc != 0)
        fail_msg("eval \"%s\": %d %s: %s", s, rc, err.code, err.message);
    rf_tmpl_free(t);
    json_decref(cfg);
    return out;
}

static void want_string(struct world *w, const char *s, const char *want)
{
    json_t *out = eval_str(w, s);

    assert_true(json_is_string(out));
    assert_string_equal(json_string_value(out), want);
    json_decref(out);
}

/* Evaluating `s` fails with template_error and exactly `message`. */
static void want_missing(struct world *w, const char *s, const char *message)
{
    json_t *cfg = json_pack("{s:[i,s]}", "x", 1, s), *out = NULL;
    struct rf_tmpl *t = compile_ok(w, cfg);
    rf_error err = {0};

    err.retryable = true;
    assert_int_equal(rf_tmpl_eval(t, &w->sc, &out, &err), RF_EINVAL_GRAPH);
    assert_null(out);
    assert_string_equal(err.code, "template_error");
    assert_false(err.retryable);
    assert_string_equal(err.message, message);
    rf_tmpl_free(t);
    json_decref(cfg);
}

/* --- scanner ------------------------------------------------------------------------------- */

static void test_scan_text(void **state)
{
    struct rf_tmpl_part parts[RF_TMPL_PARTS_MAX];
    struct rf_scan_err e;
    const char *texts[] = {"hello", "}} lone", "a { b", "{", "x{", "{ {", "}", "{}{}", "{ }"};

    (void)state;
    assert_int_equal(scan("", parts, RF_TMPL_PARTS_MAX, &e), 0);
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        assert_int_equal(scan(texts[i], parts, RF_TMPL_PARTS_MAX, &e), 1);
        assert_false(parts[0].is_path);
        assert_int_equal(parts[0].off, 0);
        assert_int_equal(parts[0].len, strlen(texts[i]));
    }
}

static void test_scan_mixed(void **state)
{
    struct rf_tmpl_part parts[RF_TMPL_PARTS_MAX];
    struct rf_scan_err e;
    const char *s = "a{{inputs.x}}b{{ index }}{{item}}}";

    (void)state;
    assert_int_equal(scan(s, parts, RF_TMPL_PARTS_MAX, &e), 6);
    const struct {
        size_t off, len;
        bool path;
    } want[] = {{0, 1, false}, {3, 8, true},  {13, 1, false},
                {17, 5, true}, {27, 4, true}, {33, 1, false}};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(parts[i].off, want[i].off);
        assert_int_equal(parts[i].len, want[i].len);
        assert_int_equal(parts[i].is_path, want[i].path);
    }
}

static void test_scan_whitespace(void **state)
{
    (void)state;
    scan_one_path("{{ \t\n inputs.x \r\n}}", "inputs.x");
    scan_one_path("{{inputs.x}}", "inputs.x");
    scan_one_path("{{inputs}}", "inputs");
    scan_one_path("{{ item }}", "item");
    scan_one_path("{{item[0].a-b_c.9}}", "item[0].a-b_c.9");
    scan_one_path("{{ nodes.fetch.output }}", "nodes.fetch.output");
    scan_one_path("{{nodes._x-1.output.body[2]}}", "nodes._x-1.output.body[2]");
    scan_one_path("{{execution.id}}", "execution.id");
    scan_one_path("{{execution.graph}}", "execution.graph");
    scan_one_path("{{ execution.version }}", "execution.version");
    scan_one_path("{{inputs[\"a b\"]}}", "inputs[\"a b\"]");
    scan_one_path("{{ inputs[\"}}\"] }}", "inputs[\"}}\"]");
    scan_one_path("{{inputs[\"a\\\"b\\u00e9\\ud83d\\ude00\"]}}",
                  "inputs[\"a\\\"b\\u00e9\\ud83d\\ude00\"]");
    scan_one_path("{{inputs[4294967295]}}", "inputs[4294967295]");
    scan_one_path("{{inputs[007]}}", "inputs[007]");
    scan_fails("{{ inputs . x }}", 10, false); /* no whitespace inside a path */
}

static void test_scan_errors(void **state)
{
    (void)state;
    scan_fails("ab{{inputs.x", 2, false);
    scan_fails("{{", 0, false);
    scan_fails("x{{  ", 1, false);
    scan_fails("{{}}", 2, false);
    scan_fails("{{   }}", 5, false);
    scan_fails("{{ inputs. }}", 10, false);
    scan_fails("{{inputs.}}", 9, false);
    scan_fails("{{inputs[}}", 9, false);
    scan_fails("{{inputs[", 9, false);
    scan_fails("{{inputs[1}}", 10, false);
    scan_fails("{{inputs[1", 10, false);
    scan_fails("{{inputs[-1]}}", 9, false);
    scan_fails("{{inputs[ 1]}}", 9, false);
    scan_fails("{{ inputs.x y }}", 12, false);
    scan_fails("{{inputs.x}", 10, false);
    scan_fails("{{inputs.x", 0, false);
    scan_fails("{{inputs.x  ", 0, false);
    scan_fails("{{ inputz }}", 3, false);
    scan_fails("{{ Inputs }}", 3, false);
    scan_fails("{{{inputs.x}}}", 2, false);
    scan_fails("{{ 'inputs' }}", 3, false);
    scan_fails("{{nodes}}", 7, false);
    scan_fails("{{nodes.}}", 8, false);
    scan_fails("{{nodes.1a.output}}", 8, false);
    scan_fails("{{nodes.-a.output}}", 8, false);
    scan_fails("{{nodes.a}}", 9, false);
    scan_fails("{{nodes.a.outputs}}", 9, false);
    scan_fails("{{nodes.a.out}}", 9, false);
    scan_fails("{{nodes.a[0]}}", 9, false);
    scan_fails("{{ index.x }}", 8, false);
    scan_fails("{{index[0]}}", 7, false);
    scan_fails("{{execution}}", 11, false);
    scan_fails("{{execution.}}", 12, false);
    scan_fails("{{execution.foo}}", 12, false);
    scan_fails("{{execution.id.x}}", 14, false);
    scan_fails("{{inputs[\"abc]}}", 16, false);     /* the string never closes */
    scan_fails("{{inputs[\"abc\"}}", 14, false);    /* no ']' */
    scan_fails("{{inputs[\"a\\x\"]}}", 11, false);  /* unknown escape */
    scan_fails("{{inputs[\"\\u12\"]}}", 10, false); /* short \u */
    scan_fails("{{inputs[\"\\ud800\"]}}", 10, false);
    scan_fails("{{inputs[\"\\ud800\\u0041\"]}}", 10, false);
    scan_fails("{{inputs[\"\\udc00\"]}}", 10, false);
    scan_fails("{{inputs[\"\\", 11, false);
    scan_fails("{{inputs['a']}}", 9, false); /* keys take double quotes */
}

static void test_scan_limits(void **state)
{
    struct rf_tmpl_part parts[RF_TMPL_PARTS_MAX];
    struct rf_scan_err e;
    char buf[RF_EXPR_BYTES_MAX + 64];
    size_t n;

    (void)state;
    scan_fails("{{inputs[4294967296]}}", 9, true);
    scan_fails("{{inputs[99999999999999999999999]}}", 9, true);

    /* 32 steps pass, the 33rd is a limit at its own offset */
    n = (size_t)snprintf(buf, sizeof(buf), "{{inputs");
    for (int i = 0; i < RF_PATH_SEGS_MAX; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "[%d]", i % 10);
    snprintf(buf + n, sizeof(buf) - n, "}}");
    assert_int_equal(scan(buf, parts, RF_TMPL_PARTS_MAX, &e), 1);
    snprintf(buf + n, sizeof(buf) - n, ".x}}");
    scan_fails(buf, n, true);

    /* 64 parts pass, 65 do not; a smaller caller array is a limit too */
    n = 0;
    for (int i = 0; i < RF_TMPL_PARTS_MAX; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{{index}}");
    assert_int_equal(scan(buf, parts, RF_TMPL_PARTS_MAX, &e), RF_TMPL_PARTS_MAX);
    snprintf(buf + n, sizeof(buf) - n, "x");
    scan_fails(buf, n, true);
    assert_int_equal(scan("a{{index}}b", parts, 2, &e), -1);
    assert_true(e.limit);
    assert_int_equal(e.off, 10);

    /* one template of exactly RF_EXPR_BYTES_MAX bytes passes; one more byte is a limit */
    memcpy(buf, "{{inputs.", 9);
    memset(buf + 9, 'a', RF_EXPR_BYTES_MAX - 11);
    memcpy(buf + RF_EXPR_BYTES_MAX - 2, "}}", 3);
    assert_int_equal(scan(buf, parts, RF_TMPL_PARTS_MAX, &e), 1);
    memcpy(buf + 9, " ", 1); /* no field name after '.' */
    scan_fails(buf, 9, false);
    memcpy(buf + 9, "a", 1);
    memcpy(buf + RF_EXPR_BYTES_MAX - 2, "a}}", 4);
    scan_fails(buf, 0, true);
}

static void test_path_scan(void **state)
{
    const char *s = "inputs.a[3][\"k\\\"\"].b-c_d rest";
    struct rf_path p;
    struct rf_scan_err e;
    const char *g;

    (void)state;
    g = guarded(s, strlen(s));
    assert_int_equal(rf__path_scan(g, strlen(s), &p, &e), 24);
    assert_int_equal(p.root, RF_ROOT_INPUTS);
    assert_int_equal(p.nsegs, 4);
    assert_int_equal(p.segs[0].kind, RF_SEG_FIELD);
    assert_int_equal(p.segs[0].off, 7);
    assert_int_equal(p.segs[0].len, 1);
    assert_int_equal(p.segs[1].kind, RF_SEG_INDEX);
    assert_int_equal(p.segs[1].index, 3);
    assert_int_equal(p.segs[2].kind, RF_SEG_QUOTED);
    assert_int_equal(p.segs[2].off, 13);
    assert_int_equal(p.segs[2].len, 3);
    assert_int_equal(p.segs[3].kind, RF_SEG_FIELD);
    assert_int_equal(p.segs[3].len, 5);

    g = guarded("nodes.fetch.output", 18);
    assert_int_equal(rf__path_scan(g, 18, &p, &e), 18);
    assert_int_equal(p.root, RF_ROOT_NODE);
    assert_int_equal(p.id_off, 6);
    assert_int_equal(p.id_len, 5);
    assert_int_equal(p.nsegs, 0);

    /* a 64-byte node id passes, 65 bytes do not */
    char id[128];
    snprintf(id, sizeof(id), "nodes.%0*d.output", 64, 0);
    id[6] = 'x';
    g = guarded(id, strlen(id));
    assert_int_equal(rf__path_scan(g, strlen(id), &p, &e), (int)strlen(id));
    snprintf(id, sizeof(id), "nodes.x%0*d.output", 64, 0);
    g = guarded(id, strlen(id));
    assert_int_equal(rf__path_scan(g, strlen(id), &p, &e), -1);
    assert_int_equal(e.off, 6);

    g = guarded("", 0);
    assert_int_equal(rf__path_scan(g, 0, &p, &e), -1);
    assert_int_equal(e.off, 0);
    g = guarded("index", 5);
    assert_int_equal(rf__path_scan(g, 5, &p, &e), 5);
    assert_int_equal(p.root, RF_ROOT_INDEX);
    g = guarded("item", 4);
    assert_int_equal(rf__path_scan(g, 4, &p, &e), 4);
    assert_int_equal(p.root, RF_ROOT_ITEM);
}

static void test_unescape(void **state)
{
    const char *s = "a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\'\\u0041\\u00e9\\u20ac\\ud83d\\ude00";
    const char want[] = "a\"b\\c/\b\f\n\r\t'A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    struct rf_scan_err e;
    char out[64];
    const char *g = guarded(s, strlen(s));

    (void)state;
    assert_int_equal(rf__str_scan(g, strlen(s), '"', &e), -1); /* no closing quote */
    assert_int_equal(e.off, strlen(s));
    assert_int_equal(rf__str_unescape(g, strlen(s), out), sizeof(want) - 1);
    assert_memory_equal(out, want, sizeof(want) - 1);
    g = guarded("ab\"", 3);
    assert_int_equal(rf__str_scan(g, 3, '"', &e), 2);
    g = guarded("a\"b'", 4);
    assert_int_equal(rf__str_scan(g, 4, '\'', &e), 3);
    g = guarded("\\u0000", 6);
    assert_int_equal(rf__str_unescape(g, 6, out), 1);
    assert_int_equal(out[0], 0);
}

/* --- compile and eval ---------------------------------------------------------------------- */

static void test_typed_single(void **state)
{
    struct world *w = *state;
    json_t *out;

    out = eval_str(w, "{{inputs.limit}}");
    assert_ptr_equal(out, json_object_get(w->inputs, "limit")); /* shared, not copied */
    json_decref(out);
    out = eval_str(w, "{{ inputs.obj }}");
    assert_ptr_equal(out, json_object_get(w->inputs, "obj"));
    json_decref(out);
    out = eval_str(w, "{{inputs}}");
    assert_ptr_equal(out, w->inputs);
    json_decref(out);
    out = eval_str(w, "{{inputs.none}}");
    assert_true(json_is_null(out));
    json_decref(out);
    out = eval_str(w, "{{inputs.flag}}");
    assert_true(json_is_true(out));
    json_decref(out);
    out = eval_str(w, "{{nodes.fetch.output.body.items[0].sku}}");
    assert_string_equal(json_string_value(out), "s1");
    json_decref(out);
    out = eval_str(w, "{{nodes.a.output[2]}}");
    assert_int_equal(json_integer_value(out), 3);
    json_decref(out);
    out = eval_str(w, "{{item.cents}}");
    assert_int_equal(json_integer_value(out), 250);
    json_decref(out);
    out = eval_str(w, "{{index}}");
    assert_true(json_is_integer(out));
    assert_int_equal(json_integer_value(out), 3);
    json_decref(out);
    out = eval_str(w, "{{execution.version}}");
    assert_true(json_is_integer(out));
    assert_int_equal(json_integer_value(out), 7);
    json_decref(out);
    out = eval_str(w, "{{execution.id}}");
    assert_string_equal(json_string_value(out), "ex1");
    json_decref(out);
    out = eval_str(w, "{{execution.graph}}");
    assert_string_equal(json_string_value(out), "g1");
    json_decref(out);
}

static void test_quoted_keys(void **state)
{
    struct world *w = *state;
    const struct {
        const char *s;
        int want;
    } cases[] = {
        {"{{inputs[\"weird key\"]}}", 5}, {"{{inputs[\"a\\\"b\"]}}", 6},
        {"{{inputs[\"\\u00e9\"]}}", 7},   {"{{inputs[\"\xc3\xa9\"]}}", 7},
        {"{{inputs[\"}}\"]}}", 8},        {"{{inputs[\"a\\u0000b\"]}}", 9},
        {"{{inputs[\"limit\"]}}", 10},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *out = eval_str(w, cases[i].s);
        if (json_integer_value(out) != cases[i].want)
            fail_msg("%s", cases[i].s);
        json_decref(out);
    }
    want_missing(w, "{{inputs[\"a\"]}}", "inputs[\"a\"]: no member \"a\"");
}

static void test_mixed_types(void **state)
{
    struct world *w = *state;

    want_string(w,
                "s={{inputs.id}} i={{inputs.limit}} r={{inputs.price}} t={{inputs.flag}} "
                "f={{inputs.off}} n={{inputs.none}} e=[{{inputs.empty}}] a={{inputs.tags}} "
                "o={{inputs.obj}} x={{index}} v={{execution.version}} g={{execution.graph}} "
                "id={{execution.id}} two={{inputs.two}} huge={{inputs.huge}} "
                "nested={{inputs.reals}} u={{inputs.utf}} b={{nodes.b.output}}",
                "s=o-1 i=10 r=0.1 t=true f=false n=null e=[] a=[\"x\",\"y\"] o={\"k\":1} "
                "x=3 v=7 g=g1 id=ex1 two=2.0 huge=1e+300 nested=[0.5] u=\xc3\xa9\xe2\x82\xac "
                "b=b-out");
    want_string(w, " {{inputs.id}}", " o-1"); /* text around one template: a string */
    want_string(w, "{{inputs.limit}}{{inputs.limit}}", "1010");
    want_string(w, "{{inputs.empty}}{{inputs.empty}}", "");
    want_string(w, "}}{{inputs.id}}}}", "}}o-1}}");
}

static void test_mixed_heap(void **state)
{
    struct world *w = *state;
    size_t len = 3000;
    char *big = malloc(len + 1), *s = malloc(2 * len + 64), *want = malloc(4 * len + 64);
    json_t *out;

    memset(big, 'z', len);
    big[len] = '\0';
    json_object_set_new(w->inputs, "big", json_string(big));
    snprintf(s, 2 * len + 64, "%s<{{inputs.big}}>{{inputs.big}}", big);
    snprintf(want, 4 * len + 64, "%s<%s>%s", big, big, big);
    out = eval_str(w, s);
    assert_int_equal(json_string_length(out), 3 * len + 2);
    assert_string_equal(json_string_value(out), want);
    json_decref(out);

    /* an array dumped across the stack buffer's end */
    json_t *arr = json_array();
    for (int i = 0; i < 200; i++)
        json_array_append_new(arr, json_integer(123456789));
    json_object_set_new(w->inputs, "arr", arr);
    out = eval_str(w, "[{{inputs.id}}]{{inputs.arr}}");
    assert_int_equal(json_string_length(out), 5 + 2 + 200 * 9 + 199);
    json_decref(out);
    free(big);
    free(s);
    free(want);
}

static void test_too_long(void **state)
{
    struct world *w = *state;
    char *big = malloc(BIG_BYTES + 1);

    memset(big, 'q', BIG_BYTES);
    big[BIG_BYTES] = '\0';
    json_object_set_new(w->inputs, "big9", json_string(big));
    free(big);
    want_missing(w, "{{inputs.big9}}{{inputs.big9}}",
                 "inputs.big9: the string would be longer than 16777216 bytes");
    json_object_del(w->inputs, "big9");
}

static void test_nested_sharing(void **state)
{
    struct world *w = *state;
    json_t *cfg = parse("{\"a\": {\"b\": 1}, \"url\": \"x/{{inputs.id}}\", \"n\": 5,"
                        " \"list\": [1, \"{{inputs.limit}}\", {\"s\": 2}, {\"t\": \"{{index}}\"}],"
                        " \"{{inputs.id}}\": \"key not templated\"}");
    struct rf_tmpl *t = compile_ok(w, cfg);
    json_t *out = NULL, *list, *cl = json_object_get(cfg, "list");
    rf_error err;
    size_t rc_a = json_object_get(cfg, "a")->refcount;
    const char *key;
    int i = 0;

    assert_true(rf_tmpl_uses_item(t));
    assert_int_equal(rf_tmpl_eval(t, &w->sc, &out, &err), 0);
    assert_ptr_not_equal(out, cfg);
    assert_ptr_equal(json_object_get(out, "a"), json_object_get(cfg, "a"));
    assert_int_equal(json_object_get(cfg, "a")->refcount, rc_a + 1);
    assert_ptr_equal(json_object_get(out, "n"), json_object_get(cfg, "n"));
    assert_ptr_equal(json_object_get(out, "{{inputs.id}}"), json_object_get(cfg, "{{inputs.id}}"));
    assert_string_equal(json_string_value(json_object_get(out, "url")), "x/o-1");
    list = json_object_get(out, "list");
    assert_ptr_not_equal(list, cl);
    assert_int_equal(json_array_size(list), 4);
    assert_ptr_equal(json_array_get(list, 0), json_array_get(cl, 0));
    assert_ptr_equal(json_array_get(list, 1), json_object_get(w->inputs, "limit"));
    assert_ptr_equal(json_array_get(list, 2), json_array_get(cl, 2));
    assert_ptr_not_equal(json_array_get(list, 3), json_array_get(cl, 3));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 3), "t")), 3);
    const char *order[] = {"a", "url", "n", "list", "{{inputs.id}}"};
    json_t *v;
    json_object_foreach(out, key, v)
    {
        assert_string_equal(key, order[i]);
        i++;
    }
    json_decref(out);
    assert_int_equal(json_object_get(cfg, "a")->refcount, rc_a);

    /* the compiled form holds its own reference: the config may be dropped by the caller */
    json_decref(cfg);
    assert_int_equal(rf_tmpl_eval(t, &w->sc, &out, &err), 0);
    assert_string_equal(json_string_value(json_object_get(out, "url")), "x/o-1");
    json_decref(out);
    rf_tmpl_free(t);
}

static void test_no_template(void **state)
{
    struct world *w = *state;
    const char *docs[] = {"{\"a\": {\"b\": [1, \"x\"]}, \"{{inputs.x}}\": 1}",
                          "\"plain\"",
                          "[]",
                          "{}",
                          "42",
                          "null",
                          "\"a } b { c }}\""};
    struct rf_tmpl *t = (struct rf_tmpl *)&t;
    rf_diag d;

    rf_diag_init(&d);
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        json_t *v = parse(docs[i]);
        assert_int_equal(rf_tmpl_compile(v, "/cfg", &w->env, &d, &t), 0);
        assert_null(t);
        json_decref(v);
    }
    assert_int_equal(rf_tmpl_compile(NULL, "/cfg", &w->env, &d, &t), 0);
    assert_null(t);
    assert_int_equal(d.count, 0);
    assert_false(rf_tmpl_uses_item(NULL));
    rf_tmpl_free(NULL);
    assert_int_equal(w->refs.n, 0);
}

static void test_missing(void **state)
{
    struct world *w = *state;
    json_t *inputs = w->inputs, *item = w->item;

    want_missing(w, "{{nodes.fetch.output.body.lines}}",
                 "nodes.fetch.output.body.lines: no member \"lines\"");
    want_missing(w, "x {{nodes.fetch.output.body.lines}}",
                 "nodes.fetch.output.body.lines: no member \"lines\"");
    want_missing(w, "{{inputs.id.x}}", "inputs.id.x: no member \"x\" in a string");
    want_missing(w, "{{inputs.tags.x}}", "inputs.tags.x: no member \"x\" in an array");
    want_missing(w, "{{inputs.none[\"k\"]}}", "inputs.none[\"k\"]: no member \"k\" in null");
    want_missing(w, "{{inputs.obj[0]}}", "inputs.obj[0]: no element [0] in an object");
    want_missing(w, "{{inputs.limit[0]}}", "inputs.limit[0]: no element [0] in an integer");
    want_missing(w, "{{inputs.tags[2]}}", "inputs.tags[2]: no element [2] in an array of 2");
    want_missing(w, "{{inputs.tags[4294967295]}}",
                 "inputs.tags[4294967295]: no element [4294967295] in an array of 2");
    want_missing(w, "{{nodes.lines.output}}", "nodes.lines.output: the node has no output");
    want_missing(w, "a{{inputs.id}}b{{nodes.lines.output.x}}",
                 "nodes.lines.output.x: the node has no output");
    w->sc.item = NULL;
    want_missing(w, "{{item.sku}}", "item.sku: no item in scope");
    w->sc.item = item;
    w->sc.inputs = NULL;
    want_missing(w, "{{inputs}}", "inputs: the execution has no inputs");
    w->sc.inputs = inputs;
    w->sc.exec_id = NULL;
    want_missing(w, "{{execution.id}}", "execution.id: not set in this execution");
    w->sc.exec_id = "ex1";
    w->sc.graph = NULL;
    want_missing(w, "<{{execution.graph}}>", "execution.graph: not set in this execution");
    w->sc.graph = "g1";
    w->sc.node_output = NULL;
    want_missing(w, "{{nodes.fetch.output}}", "nodes.fetch.output: the node has no output");
    w->sc.node_output = node_output;
}

static void test_diagnostics(void **state)
{
    struct world *w = *state;
    json_t *cfg = parse("{\"ok\": \"{{inputs.x}}\", \"a/b\": \"{{nodes.nope.output}}\","
                        " \"m~n\": [\"x\", \"{{item.sku}} {{ index }}\"],"
                        " \"syn\": \"abc {{inputs. }}\", \"deep\": {\"k\": \"{{ }}\"},"
                        " \"lim\": \"{{inputs[5000000000]}}\"}");
    struct rf_tmpl *t = (struct rf_tmpl *)&t;
    rf_diag d;
    const struct {
        const char *pointer, *code, *message;
    } want[] = {
        {"/nodes/2/config/a~1b", "unknown_ref", "nodes.nope.output: no node \"nope\" in the graph"},
        {"/nodes/2/config/m~0n/1", "bad_scope",
         "item.sku: 'item' and 'index' are only in scope in a mapped node's config"},
        {"/nodes/2/config/m~0n/1", "bad_scope",
         "index: 'item' and 'index' are only in scope in a mapped node's config"},
        {"/nodes/2/config/syn", "template_syntax", "at byte 13: expected a field name after '.'"},
        {"/nodes/2/config/deep/k", "template_syntax",
         "at byte 3: empty template: expected a path before '}}'"},
        {"/nodes/2/config/lim", "limit", "at byte 9: array index larger than 4294967295"},
    };

    w->env.in_map = false;
    rf_diag_init(&d);
    assert_int_equal(rf_tmpl_compile(cfg, "/nodes/2/config", &w->env, &d, &t), RF_EINVAL_GRAPH);
    assert_null(t);
    assert_int_equal(d.count, sizeof(want) / sizeof(want[0]));
    for (uint32_t i = 0; i < d.count; i++) {
        assert_string_equal(d.items[i].pointer, want[i].pointer);
        assert_string_equal(d.items[i].code, want[i].code);
        assert_string_equal(d.items[i].message, want[i].message);
    }
    rf_diag_free(&d);
    json_decref(cfg);
    w->env.in_map = true;

    /* a NULL diag still fails */
    cfg = json_string("{{nodes.nope.output}}");
    assert_int_equal(rf_tmpl_compile(cfg, "", &w->env, NULL, &t), RF_EINVAL_GRAPH);
    assert_null(t);
    json_decref(cfg);
}

static void test_on_ref(void **state)
{
    struct world *w = *state;
    json_t *cfg = parse("{\"u\": \"{{nodes.fetch.output.x}}/{{nodes.b.output}}\","
                        " \"l\": [\"{{nodes.fetch.output}}\"], \"i\": \"{{inputs.x}}\"}");
    struct rf_tmpl *t = compile_ok(w, cfg);

    assert_false(rf_tmpl_uses_item(t));
    assert_int_equal(w->refs.n, 3);
    assert_int_equal(w->refs.node[0], 0);
    assert_string_equal(w->refs.pointer[0], "/cfg/u");
    assert_int_equal(w->refs.node[1], 3);
    assert_string_equal(w->refs.pointer[1], "/cfg/u");
    assert_int_equal(w->refs.node[2], 0);
    assert_string_equal(w->refs.pointer[2], "/cfg/l/0");
    rf_tmpl_free(t);

    /* no callback, no node_index: every node reference is unknown */
    w->env.on_ref = NULL;
    t = compile_ok(w, cfg);
    rf_tmpl_free(t);
    w->env.node_index = NULL;
    rf_diag d;
    rf_diag_init(&d);
    assert_int_equal(rf_tmpl_compile(cfg, "/cfg", &w->env, &d, &t), RF_EINVAL_GRAPH);
    assert_int_equal(d.count, 3);
    assert_string_equal(d.items[0].code, "unknown_ref");
    rf_diag_free(&d);
    w->env.node_index = node_index;
    w->env.on_ref = on_ref;
    json_decref(cfg);
}

static void test_compile_limits(void **state)
{
    struct world *w = *state;
    json_t *root = json_string("{{inputs.id}}"), *v;
    struct rf_tmpl *t = NULL;
    rf_diag d;
    int depth;

    /* RF_TMPL_JSON_DEPTH_MAX containers compile; one more is a limit */
    for (depth = 0; depth < RF_TMPL_JSON_DEPTH_MAX; depth++) {
        v = json_array();
        json_array_append_new(v, root);
        root = v;
    }
    t = compile_ok(w, root);
    rf_tmpl_free(t);
    v = json_array();
    json_array_append_new(v, root);
    root = v;
    rf_diag_init(&d);
    assert_int_equal(rf_tmpl_compile(root, "", &w->env, &d, &t), RF_EINVAL_GRAPH);
    assert_int_equal(d.count, 1);
    assert_string_equal(d.items[0].code, "limit");
    rf_diag_free(&d);
    json_decref(root);

    /* 65 parts in one string */
    char buf[RF_TMPL_PARTS_MAX * 10 + 8];
    size_t n = 0;
    for (int i = 0; i <= RF_TMPL_PARTS_MAX; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{{index}}");
    v = json_string(buf);
    rf_diag_init(&d);
    assert_int_equal(rf_tmpl_compile(v, "/x", &w->env, &d, &t), RF_EINVAL_GRAPH);
    assert_string_equal(d.items[0].code, "limit");
    assert_string_equal(d.items[0].pointer, "/x");
    rf_diag_free(&d);
    json_decref(v);
}

static void test_eval_errors_free_partial(void **state)
{
    struct world *w = *state;
    json_t *cfg = parse("{\"a\": \"{{inputs.id}}\", \"b\": [\"{{index}}\", {\"c\": "
                        "\"{{inputs.nope}}\"}], \"d\": \"{{inputs.limit}}\"}");
    struct rf_tmpl *t = compile_ok(w, cfg);
    json_t *out = (json_t *)&out;
    rf_error err;

    assert_int_equal(rf_tmpl_eval(t, &w->sc, &out, &err), RF_EINVAL_GRAPH);
    assert_null(out);
    assert_string_equal(err.message, "inputs.nope: no member \"nope\"");
    rf_tmpl_free(t);
    json_decref(cfg);
}

struct shared_eval {
    const struct rf_tmpl *t;
    const struct rf_scope *sc;
    const json_t *stat; /* the static member every result shares */
    int failures;
};

static void *eval_thread(void *arg)
{
    struct shared_eval *se = arg;

    for (int i = 0; i < THREAD_EVALS; i++) {
        json_t *out = NULL;
        rf_error err;
        if (rf_tmpl_eval(se->t, se->sc, &out, &err) != 0 || json_object_get(out, "a") != se->stat ||
            strcmp(json_string_value(json_object_get(out, "s")), "o-1 {\"k\":1} [\"x\",\"y\"]") !=
                0)
            se->failures++;
        json_decref(out);
    }
    return NULL;
}

static void test_concurrent_eval(void **state)
{
    struct world *w = *state;
    json_t *cfg =
        parse("{\"a\": {\"b\": [1, 2]}, \"s\": \"{{inputs.id}} {{inputs.obj}} "
              "{{inputs.tags}}\", \"o\": \"{{nodes.fetch.output}}\", \"i\": \"{{item}}\"}");
    struct rf_tmpl *t = compile_ok(w, cfg);
    struct shared_eval se[THREADS];
    pthread_t th[THREADS];
    size_t rc_a = json_object_get(cfg, "a")->refcount;

    for (int i = 0; i < THREADS; i++) {
        se[i] = (struct shared_eval){t, &w->sc, json_object_get(cfg, "a"), 0};
        assert_int_equal(pthread_create(&th[i], NULL, eval_thread, &se[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(se[i].failures, 0);
    }
    assert_int_equal(json_object_get(cfg, "a")->refcount, rc_a); /* every reference returned */
    rf_tmpl_free(t);
    json_decref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_text),
        cmocka_unit_test(test_scan_mixed),
        cmocka_unit_test(test_scan_whitespace),
        cmocka_unit_test(test_scan_errors),
        cmocka_unit_test(test_scan_limits),
        cmocka_unit_test(test_path_scan),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test_setup_teardown(test_typed_single, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_quoted_keys, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_mixed_types, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_mixed_heap, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_too_long, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_nested_sharing, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_no_template, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_missing, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_diagnostics, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_on_ref, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_compile_limits, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_eval_errors_free_partial, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_eval, world_setup, world_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    guard_release();
    return rc;
}
