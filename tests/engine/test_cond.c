/*
 * tests/engine/test_cond.c: `when` conditions (engine/cond.c through engine/expr.h).
 *
 * The tokenizer gets every input from a buffer that ends right before a PROT_NONE page, so
 * a read past the end crashes: token kinds and offsets, every operator spelling, numbers,
 * both quote styles, and each lexical error with its byte offset.
 *
 * Precedence and associativity are checked on the compiled postfix code (rf__cond_dump),
 * then by evaluation. Semantics are checked exhaustively: every comparison operator on
 * every pair of a table of values covering each JSON type (numbers as integer and real,
 * equal and not, strings, arrays and objects that differ only in 1 vs 1.0), against an
 * oracle written from the rules in the file essay of engine/cond.c; the truthiness table;
 * short-circuiting (a missing path on the side not taken is not an error); string
 * escapes; exact integer/real comparison past 2^53; the nesting and length limits; syntax
 * errors with their offsets; unknown_ref, bad_scope and on_ref as for templates.
 */
#include "engine/expr.h"

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

#define DUMP_BYTES  512
#define SRC_BYTES   (RF_EXPR_BYTES_MAX + 64)
#define TOKS_MAX    64
#define REFS_MAX    8
#define DEEP_LEVELS 2100 /* past the equality depth limit */

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

/* --- env and scope -------------------------------------------------------------------------- */

struct world {
    json_t *inputs;
    json_t *out_a;
    uint32_t nrefs;
    uint32_t refs[REFS_MAX];
    struct rf_expr_env env;
    struct rf_scope sc;
};

static int node_index(void *ud, const char *id, size_t len)
{
    (void)ud;
    if (len == 1 && (id[0] == 'a' || id[0] == 'b'))
        return id[0] - 'a';
    return -1;
}

static void on_ref(void *ud, uint32_t node, const char *pointer)
{
    struct world *w = ud;

    assert_string_equal(pointer, "/nodes/1/when");
    assert_true(w->nrefs < REFS_MAX);
    w->refs[w->nrefs++] = node;
}

static const json_t *node_output(const void *ud, uint32_t node)
{
    const struct world *w = ud;

    return node == 0 ? w->out_a : NULL; /* b never has an output */
}

/* The value table: v0..v16 (see k_vals). */
static const char *const k_inputs =
    "{\"v0\": null, \"v1\": true, \"v2\": false, \"v3\": 1, \"v4\": 1.0, \"v5\": 1.5,"
    " \"v6\": 0, \"v7\": \"a\", \"v8\": \"b\", \"v9\": \"\", \"v10\": [1], \"v11\": [1.0],"
    " \"v12\": {\"k\": 1, \"j\": [2]}, \"v13\": {\"j\": [2.0], \"k\": 1.0}, \"v14\": [],"
    " \"v15\": {}, \"v16\": \"1\", \"v17\": 0.0, \"v18\": -2, \"v19\": \"ab\","
    " \"v20\": \"\\u00e9\", \"v21\": [1, 2], \"v22\": {\"k\": 2, \"j\": [2]},"
    " \"big\": 9007199254740993, \"bigr\": 9007199254740992.0, \"nl\": \"a\\nb\","
    " \"str0\": \"0\", \"strf\": \"false\", \"arr0\": [0], \"objn\": {\"k\": null}}";

enum vclass { C_NULL, C_TRUE, C_FALSE, C_NUM, C_STR, C_OTHER };

/* The oracle: each value's kind, an equality class, a number or a string to order by. */
static const struct {
    enum vclass kind;
    int eq; /* values with the same eq are == */
    double num;
    const char *str;
} k_vals[] = {
    {C_NULL, 0, 0, NULL},   {C_TRUE, 1, 0, NULL},   {C_FALSE, 2, 0, NULL},
    {C_NUM, 3, 1, NULL},    {C_NUM, 3, 1, NULL},    {C_NUM, 4, 1.5, NULL},
    {C_NUM, 5, 0, NULL},    {C_STR, 6, 0, "a"},     {C_STR, 7, 0, "b"},
    {C_STR, 8, 0, ""},      {C_OTHER, 9, 0, NULL},  {C_OTHER, 9, 0, NULL},
    {C_OTHER, 10, 0, NULL}, {C_OTHER, 10, 0, NULL}, {C_OTHER, 11, 0, NULL},
    {C_OTHER, 12, 0, NULL}, {C_STR, 13, 0, "1"},    {C_NUM, 5, 0, NULL},
    {C_NUM, 14, -2, NULL},  {C_STR, 15, 0, "ab"},   {C_STR, 16, 0, "\xc3\xa9"},
    {C_OTHER, 17, 0, NULL}, {C_OTHER, 18, 0, NULL},
};
#define NVALS (sizeof(k_vals) / sizeof(k_vals[0]))

static int world_setup(void **state)
{
    struct world *w = calloc(1, sizeof(*w));

    w->inputs = json_loads(k_inputs, 0, NULL);
    assert_non_null(w->inputs);
    w->out_a = json_loads("{\"status\": 200, \"body\": {\"n\": [1, 2]}}", 0, NULL);
    w->env =
        (struct rf_expr_env){.node_index = node_index, .on_ref = on_ref, .ud = w, .in_map = true};
    w->sc = (struct rf_scope){.inputs = w->inputs,
                              .node_output = node_output,
                              .ud = w,
                              .item = w->out_a,
                              .index = 3,
                              .exec_id = "ex1",
                              .graph = "g",
                              .version = 2};
    *state = w;
    return 0;
}

static int world_teardown(void **state)
{
    struct world *w = *state;

    json_decref(w->inputs);
    json_decref(w->out_a);
    free(w);
    guard_release();
    return 0;
}

static struct rf_cond *compile_ok(struct world *w, const char *src)
{
    struct rf_cond *c = NULL;
    rf_diag d;
    int rc;

    rf_diag_init(&d);
    rc = rf_cond_compile(src, strlen(src), "/nodes/1/when", &w->env, &d, &c);
    if (rc != 0)
        fail_msg("\"%s\": %d %s: %s", src, rc, d.count ? d.items[0].code : "",
                 d.count ? d.items[0].message : "");
    assert_non_null(c);
    rf_diag_free(&d);
    return c;
}

static bool eval(struct world *w, const char *src)
{
    struct rf_cond *c = compile_ok(w, src);
    rf_error err = {0};
    bool out = false;
    int rc = rf_cond_eval(c, &w->sc, &out, &err);

    if (rc != 0)
        fail_msg("\"%s\": eval %d %s: %s", src, rc, err.code, err.message);
    rf_cond_free(c);
    return out;
}

static void is_true(struct world *w, const char *src)
{
    if (!eval(w, src))
        fail_msg("\"%s\" is false, expected true", src);
}

static void is_false(struct world *w, const char *src)
{
    if (eval(w, src))
        fail_msg("\"%s\" is true, expected false", src);
}

static void dumps(struct world *w, const char *src, const char *want)
{
    struct rf_cond *c = compile_ok(w, src);
    char buf[DUMP_BYTES];
    size_t n = rf__cond_dump(c, buf, sizeof(buf));

    assert_int_equal(n, strlen(buf));
    if (strcmp(buf, want) != 0)
        fail_msg("\"%s\" compiles to \"%s\", expected \"%s\"", src, buf, want);
    rf_cond_free(c);
}

/* Compiling `src` fails with one diag: `code` and `message`. */
static void bad(struct world *w, const char *src, size_t len, const char *code, const char *message)
{
    struct rf_cond *c = (struct rf_cond *)&c;
    rf_diag d;
    int rc;

    rf_diag_init(&d);
    rc = rf_cond_compile(guarded(src, len), len, "/nodes/1/when", &w->env, &d, &c);
    if (rc != RF_EINVAL_GRAPH || d.count != 1 || strcmp(d.items[0].code, code) != 0 ||
        (message && strcmp(d.items[0].message, message) != 0))
        fail_msg("\"%.*s\": rc %d, %u diags, first %s: %s; expected %s: %s", (int)len, src, rc,
                 d.count, d.count ? d.items[0].code : "", d.count ? d.items[0].message : "", code,
                 message ? message : "");
    assert_null(c);
    assert_string_equal(d.items[0].pointer, "/nodes/1/when");
    rf_diag_free(&d);
}

static void syntax(struct world *w, const char *src, const char *message)
{
    bad(w, src, strlen(src), "condition_syntax", message);
}

/* --- tokenizer ------------------------------------------------------------------------------ */

static int lex(const char *s, struct rf_tok *toks, struct rf_scan_err *e)
{
    return rf__cond_lex(guarded(s, strlen(s)), strlen(s), toks, TOKS_MAX, e);
}

static void test_lex_tokens(void **state)
{
    const char *s = "inputs.x>=1&&!(nodes.a.output.y!='s')||true==false!=null<-2.5e3<=\"q\">0";
    const struct {
        uint8_t kind;
        size_t off, len;
    } want[] = {
        {RF_TOK_PATH, 0, 8}, {RF_TOK_GE, 8, 2},      {RF_TOK_NUM, 10, 1},   {RF_TOK_AND, 11, 2},
        {RF_TOK_NOT, 13, 1}, {RF_TOK_LPAREN, 14, 1}, {RF_TOK_PATH, 15, 16}, {RF_TOK_NE, 31, 2},
        {RF_TOK_STR, 34, 1}, {RF_TOK_RPAREN, 36, 1}, {RF_TOK_OR, 37, 2},    {RF_TOK_TRUE, 39, 4},
        {RF_TOK_EQ, 43, 2},  {RF_TOK_FALSE, 45, 5},  {RF_TOK_NE, 50, 2},    {RF_TOK_NULL, 52, 4},
        {RF_TOK_LT, 56, 1},  {RF_TOK_NUM, 57, 6},    {RF_TOK_LE, 63, 2},    {RF_TOK_STR, 66, 1},
        {RF_TOK_GT, 68, 1},  {RF_TOK_NUM, 69, 1},    {RF_TOK_END, 70, 0},
    };
    struct rf_tok toks[TOKS_MAX];
    struct rf_scan_err e;
    int n = lex(s, toks, &e);

    (void)state;
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    for (int i = 0; i < n; i++) {
        if (toks[i].kind != want[i].kind || toks[i].off != want[i].off ||
            toks[i].len != want[i].len)
            fail_msg("token %d: kind %d off %zu len %zu", i, toks[i].kind, toks[i].off,
                     toks[i].len);
    }
    assert_int_equal(lex("", toks, &e), 1);
    assert_int_equal(toks[0].kind, RF_TOK_END);
    assert_int_equal(lex(" \t\r\n", toks, &e), 1);
    assert_int_equal(toks[0].off, 4);
    assert_int_equal(lex("-0 0.5 1E+2 1e-2 'a\\'b' \"x\\\"\"", toks, &e), 7);
    assert_int_equal(toks[4].len, 4);
    assert_int_equal(toks[5].len, 3);
    /* cap: 2 tokens fit, the END does not */
    assert_int_equal(rf__cond_lex(guarded("1 2", 3), 3, toks, 2, &e), -1);
    assert_true(e.limit);
}

static void lex_fails(const char *s, size_t off)
{
    struct rf_tok toks[TOKS_MAX];
    struct rf_scan_err e = {0};

    if (lex(s, toks, &e) != -1 || e.off != off)
        fail_msg("\"%s\": expected an error at %zu, got %zu (%s)", s, off, e.off,
                 e.msg ? e.msg : "accepted");
    assert_false(e.limit);
}

static void test_lex_errors(void **state)
{
    (void)state;
    lex_fails("=", 0);
    lex_fails("a = b", 0); /* `a` is not a path: the path error comes first */
    lex_fails("index = 1", 6);
    lex_fails("1 & 2", 2);
    lex_fails("1 | 2", 2);
    lex_fails("1.", 2);
    lex_fails("1.x", 2);
    lex_fails("1e", 2);
    lex_fails("1e+", 3);
    lex_fails("-", 1);
    lex_fails("- 1", 1);
    lex_fails("01", 1);
    lex_fails("1a", 1);
    lex_fails("1.5.3", 3);
    lex_fails("'abc", 4);
    lex_fails("\"abc'", 5);
    lex_fails("'\\q'", 1);
    lex_fails("'\\u12'", 1);
    lex_fails("'\\udc00'", 1);
    lex_fails("{{inputs.x}}", 0);
    lex_fails("1 # 2", 2);
    lex_fails("inputs.", 7);
    lex_fails("inputs.x[", 9);
    lex_fails("nodes.a.out", 7);
    lex_fails("True", 0);
    lex_fails("'a'\\", 3);
}

/* --- precedence ------------------------------------------------------------------------------ */

static void test_precedence(void **state)
{
    struct world *w = *state;

    dumps(w, "inputs.v1 || inputs.v2 && inputs.v3",
          "inputs.v1 ||>7 inputs.v2 &&>6 inputs.v3 bool bool");
    dumps(w, "inputs.v1 && inputs.v2 || inputs.v3",
          "inputs.v1 &&>4 inputs.v2 bool ||>7 inputs.v3 bool");
    dumps(w, "1 == 2 < 3", "1 2 3 < ==");
    dumps(w, "1 < 2 == 3", "1 2 < 3 ==");
    dumps(w, "(1 == 2) < 3", "1 2 == 3 <");
    dumps(w, "!1 == 2", "1 ! 2 ==");
    dumps(w, "!(1 == 2)", "1 2 == !");
    dumps(w, "!!1", "1 ! !");
    dumps(w, "1 != 2 == 3", "1 2 != 3 ==");
    dumps(w, "1 < 2 < 3", "1 2 < 3 <");
    dumps(w, "1 <= 2 >= 3 > 4", "1 2 <= 3 >= 4 >");
    dumps(w, "1 == 2 && 3 != 4 || !5", "1 2 == &&>8 3 4 != bool ||>12 5 ! bool");
    dumps(w, "'a\"\\n' == \"\\u00e9\" && 1.5 && null && false",
          "\"a\\\"\\u000a\" \"\xc3\xa9\" == &&>6 1.5 bool &&>9 null bool &&>12 false bool");
    dumps(w, "index == execution.version", "index execution.version ==");

    /* the same, evaluated: each result differs under the other grouping */
    is_true(w, "true || false && false");
    is_false(w, "(true || false) && false");
    is_false(w, "!0 == 1");       /* (!0) == 1: true == 1; !(0 == 1) would be true */
    is_true(w, "2 > 1 == 3 > 2"); /* (2 > 1) == (3 > 2); ((2 > 1) == 3) > 2 would be false */
    is_false(w, "(1 == 2) == false == false");
}

static void test_precedence_eval(void **state)
{
    struct world *w = *state;

    /* `<` binds tighter than `==`: 1 == 2 < 3 is 1 == (2 < 3), i.e. 1 == true: false */
    is_false(w, "1 == 2 < 3 && true");
    is_true(w, "true == 2 < 3");
    is_true(w, "false == 3 < 2");
    /* left-associative: (1 < 2) < 3 compares a boolean with a number: not ordered */
    is_false(w, "1 < 2 < 3");
    is_true(w, "!(1 < 2 < 3)");
    /* && binds tighter than || */
    is_true(w, "false && false || true");
    is_false(w, "false && (false || true)");
}

/* --- semantics ------------------------------------------------------------------------------- */

static bool oracle(int op, size_t a, size_t b)
{
    const __typeof__(k_vals[0]) *x = &k_vals[a], *y = &k_vals[b];
    int c;

    if (op == 0)
        return x->eq == y->eq;
    if (op == 1)
        return x->eq != y->eq;
    if (x->kind == C_NUM && y->kind == C_NUM)
        c = (x->num > y->num) - (x->num < y->num);
    else if (x->kind == C_STR && y->kind == C_STR)
        c = strcmp(x->str, y->str);
    else
        return false;
    switch (op) {
    case 2:
        return c < 0;
    case 3:
        return c <= 0;
    case 4:
        return c > 0;
    default:
        return c >= 0;
    }
}

static void test_every_pair(void **state)
{
    struct world *w = *state;
    static const char *const ops[] = {"==", "!=", "<", "<=", ">", ">="};
    char src[64];

    for (int op = 0; op < 6; op++) {
        for (size_t a = 0; a < NVALS; a++) {
            for (size_t b = 0; b < NVALS; b++) {
                bool want = oracle(op, a, b);
                snprintf(src, sizeof(src), "inputs.v%zu %s inputs.v%zu", a, ops[op], b);
                if (eval(w, src) != want)
                    fail_msg("\"%s\" should be %s", src, want ? "true" : "false");
                snprintf(src, sizeof(src), "!(inputs.v%zu %s inputs.v%zu)", a, ops[op], b);
                if (eval(w, src) == want)
                    fail_msg("\"%s\" should be %s", src, want ? "false" : "true");
            }
        }
    }
}

static void test_literals(void **state)
{
    struct world *w = *state;

    is_true(w, "inputs.v3 == 1");
    is_true(w, "inputs.v3 == 1.0");
    is_true(w, "1 == 1.0");
    is_true(w, "1.0 == 1");
    is_true(w, "-0 == 0");
    is_true(w, "-0.0 == 0");
    is_true(w, "1e3 == 1000");
    is_true(w, "1.5e-1 == 0.15");
    is_true(w, "-1 < 0");
    is_true(w, "-2.5 < -2");
    is_false(w, "1 == '1'");
    is_false(w, "'1' == 1");
    is_false(w, "1 < '2'");
    is_false(w, "'2' > 1");
    is_false(w, "true == 1");
    is_false(w, "false == 0");
    is_false(w, "null == false");
    is_true(w, "null == null");
    is_true(w, "null == inputs.v0");
    is_false(w, "null < null");
    is_false(w, "true > false");
    is_true(w, "'a' < 'b'");
    is_true(w, "'a' < 'ab'");
    is_true(w, "'' < 'a'");
    is_true(w, "'Z' < 'a'");
    is_true(w, "'z' < '\\u00e9'");              /* bytewise UTF-8: code point order */
    is_true(w, "'\\uffff' < '\\ud83d\\ude00'"); /* U+FFFF < U+1F600 in UTF-8 too */
    is_true(w, "'it\\'s' == \"it's\"");
    is_true(w, "\"say \\\"hi\\\"\" == 'say \"hi\"'");
    is_true(w, "'\\u00e9' == '\xc3\xa9'");
    is_true(w, "'a\\nb' == inputs.nl");
    is_true(w, "'a\\/b\\\\' == \"a/b\\u005c\"");
    is_true(w, "'\\b\\f\\r\\t' == \"\\u0008\\u000c\\u000d\\u0009\"");
    is_true(w, "'\\u0000' != ''");
    is_true(w, "99999999999999999999 > 9223372036854775807"); /* past int64: a real */
    is_true(w, "9223372036854775807 > 9223372036854775806");
    is_true(w, "-9223372036854775808 < -9223372036854775807");
    /* integers against reals, exactly: 2^53 + 1 is not 2^53 */
    is_false(w, "inputs.big == inputs.bigr");
    is_true(w, "inputs.big > inputs.bigr");
    is_true(w, "inputs.bigr < inputs.big");
    is_true(w, "inputs.big != 9007199254740992.0");
    is_true(w, "inputs.big >= 9007199254740992.0");
    is_true(w, "9223372036854775807 < 9223372036854775808.0");
    is_true(w, "-9223372036854775808 == -9223372036854775808.0");
    is_true(w, "-9223372036854775808 > -9223372036854777856.0");
    is_true(w, "2 > 1.5 && 1 < 1.5 && 1 <= 1.0 && 1 >= 1.0");
    is_true(w, "1e-400 == 0"); /* underflows to 0 */
    /* structure with numbers compared by value at every depth */
    is_true(w, "inputs.v12 == inputs.v13");
    is_false(w, "inputs.v12 == inputs.v22");
    is_false(w, "inputs.v10 == inputs.v21");
    is_true(w, "inputs.objn == inputs.objn");
    is_false(w, "inputs.v10 < inputs.v21");
    /* scope values */
    is_true(w, "index == 3 && execution.version == 2.0 && execution.version >= 2");
    is_true(w, "execution.id == 'ex1' && execution.graph == \"g\"");
    is_true(w, "execution.id > 'ex0'");
    is_true(w, "nodes.a.output.status == 200 && nodes.a.output.body.n[1] == 2");
    is_true(w, "item.body == nodes.a.output.body");
}

static void test_truthiness(void **state)
{
    struct world *w = *state;
    const struct {
        const char *path;
        bool truth;
    } table[] = {
        {"inputs.v0", false},  {"inputs.v1", true},    {"inputs.v2", false},  {"inputs.v3", true},
        {"inputs.v4", true},   {"inputs.v5", true},    {"inputs.v6", false},  {"inputs.v17", false},
        {"inputs.v18", true},  {"inputs.v7", true},    {"inputs.v9", false},  {"inputs.v10", true},
        {"inputs.v14", false}, {"inputs.v15", false},  {"inputs.v12", true},  {"inputs.str0", true},
        {"inputs.strf", true}, {"inputs.arr0", true},  {"inputs.objn", true}, {"0", false},
        {"0.0", false},        {"-0.0", false},        {"1", true},           {"-1", true},
        {"''", false},         {"' '", true},          {"null", false},       {"true", true},
        {"index", true},       {"execution.id", true},
    };
    char src[64];

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (eval(w, table[i].path) != table[i].truth)
            fail_msg("\"%s\" should be %s", table[i].path, table[i].truth ? "truthy" : "falsy");
        snprintf(src, sizeof(src), "!%s", table[i].path);
        if (eval(w, src) == table[i].truth)
            fail_msg("\"%s\"", src);
        snprintf(src, sizeof(src), "!!%s == %s", table[i].path, table[i].truth ? "true" : "false");
        if (!eval(w, src))
            fail_msg("\"%s\"", src);
    }
}

static void test_logic(void **state)
{
    struct world *w = *state;
    struct rf_cond *c;
    rf_error err;
    bool out;

    /* && and || give booleans, by truthiness */
    is_true(w, "(1 && 'x') == true");
    is_true(w, "(0 || 'x') == true");
    is_true(w, "(0 || 0) == false");
    is_true(w, "('' && 1) == false");
    is_true(w, "(inputs.v10 || 0) == true");
    is_true(w, "(inputs.v3 && inputs.v7 && inputs.v12) == true");
    /* short-circuit: the side not taken is not resolved */
    is_false(w, "false && inputs.missing.deep");
    is_true(w, "true || nodes.b.output.x");
    is_true(w, "inputs.v1 || inputs.nope == 1");
    is_false(w, "inputs.v9 && nodes.b.output");
    /* the side taken is */
    c = compile_ok(w, "true && nodes.b.output.x");
    assert_int_equal(rf_cond_eval(c, &w->sc, &out, &err), RF_EINVAL_GRAPH);
    assert_string_equal(err.code, "template_error");
    assert_false(err.retryable);
    assert_string_equal(err.message, "nodes.b.output.x: the node has no output");
    rf_cond_free(c);
    c = compile_ok(w, "false || inputs.v12.k.z");
    assert_int_equal(rf_cond_eval(c, &w->sc, &out, &err), RF_EINVAL_GRAPH);
    assert_string_equal(err.message, "inputs.v12.k.z: no member \"z\" in an integer");
    rf_cond_free(c);
    c = compile_ok(w, "inputs.v10[1] == 1");
    assert_int_equal(rf_cond_eval(c, &w->sc, &out, &err), RF_EINVAL_GRAPH);
    assert_string_equal(err.message, "inputs.v10[1]: no element [1] in an array of 1");
    rf_cond_free(c);
    c = compile_ok(w, "item.x");
    w->sc.item = NULL;
    assert_int_equal(rf_cond_eval(c, &w->sc, &out, &err), RF_EINVAL_GRAPH);
    assert_string_equal(err.message, "item.x: no item in scope");
    w->sc.item = w->out_a;
    rf_cond_free(c);
    /* one compiled condition, many scopes */
    c = compile_ok(w, "index < 2");
    for (int64_t i = 0; i < 4; i++) {
        w->sc.index = i;
        assert_int_equal(rf_cond_eval(c, &w->sc, &out, &err), 0);
        assert_int_equal(out, i < 2);
    }
    rf_cond_free(c);
    rf_cond_free(NULL);
}

static void test_deep_equality(void **state)
{
    struct world *w = *state;
    json_t *x = json_integer(1), *y = json_integer(1);
    struct rf_cond *c;
    rf_error err;
    bool out;

    for (int i = 0; i < DEEP_LEVELS; i++) {
        json_t *ax = json_array(), *ay = json_array();
        json_array_append_new(ax, x);
        json_array_append_new(ay, y);
        x = ax;
        y = ay;
    }
    json_object_set_new(w->inputs, "dx", x);
    json_object_set_new(w->inputs, "dy", y);
    c = compile_ok(w, "inputs.dx == inputs.dy");
    assert_int_equal(rf_cond_eval(c, &w->sc, &out, &err), RF_EINVAL_GRAPH);
    assert_string_equal(err.code, "template_error");
    rf_cond_free(c);
    is_true(w, "inputs.dx == inputs.dx"); /* the same value: equal without walking it */
}

/* --- limits and errors ------------------------------------------------------------------------ */

static void test_limits(void **state)
{
    struct world *w = *state;
    char src[SRC_BYTES];
    int n;

    /* RF_EXPR_DEPTH_MAX nested `!` or `(` compile; one more is a limit */
    memset(src, '!', RF_EXPR_DEPTH_MAX);
    strcpy(src + RF_EXPR_DEPTH_MAX, "true");
    is_true(w, src);
    memset(src, '!', RF_EXPR_DEPTH_MAX + 1);
    strcpy(src + RF_EXPR_DEPTH_MAX + 1, "true");
    bad(w, src, strlen(src), "limit", "at byte 32: '!' and '(' nested deeper than 32");
    n = 0;
    for (int i = 0; i < RF_EXPR_DEPTH_MAX; i++)
        n += snprintf(src + n, sizeof(src) - (size_t)n, "(1 == ");
    n += snprintf(src + n, sizeof(src) - (size_t)n, "1");
    for (int i = 0; i < RF_EXPR_DEPTH_MAX; i++)
        n += snprintf(src + n, sizeof(src) - (size_t)n, ")");
    is_false(w, src); /* 1 == (1 == ...): 1 == true is false */
    memmove(src + 1, src, (size_t)n + 1);
    src[0] = '!';
    bad(w, src, strlen(src), "limit", NULL);
    memset(src, '(', RF_EXPR_DEPTH_MAX + 1);
    bad(w, src, RF_EXPR_DEPTH_MAX + 1, "limit", "at byte 32: '!' and '(' nested deeper than 32");

    /* RF_EXPR_BYTES_MAX bytes compile; one more is a limit */
    memset(src, ' ', RF_EXPR_BYTES_MAX);
    src[0] = '1';
    src[RF_EXPR_BYTES_MAX] = '\0';
    is_true(w, src);
    src[RF_EXPR_BYTES_MAX] = ' ';
    bad(w, src, RF_EXPR_BYTES_MAX + 1, "limit", "condition longer than 4096 bytes");

    /* a long flat chain needs no nesting */
    n = snprintf(src, sizeof(src), "true");
    while (n < RF_EXPR_BYTES_MAX - 20)
        n += snprintf(src + n, sizeof(src) - (size_t)n, " == true && 1 < 2");
    is_true(w, src);
    n = snprintf(src, sizeof(src), "1");
    while (n < RF_EXPR_BYTES_MAX - 20)
        n += snprintf(src + n, sizeof(src) - (size_t)n, " == 1");
    is_false(w, src); /* ((1 == 1) == 1) ...: true == 1 is false */
}

static void test_syntax_errors(void **state)
{
    struct world *w = *state;

    syntax(w, "", "at byte 0: expected a value (a literal, a path, '(' or '!'), found the end");
    syntax(w, "   ", "at byte 3: expected a value (a literal, a path, '(' or '!'), found the end");
    syntax(w, "1 ==", "at byte 4: expected a value (a literal, a path, '(' or '!'), found the end");
    syntax(w, "1 == == 2",
           "at byte 5: expected a value (a literal, a path, '(' or '!'), found '=='");
    syntax(w, "(1", "at byte 2: expected ')' or an operator, found the end");
    syntax(w, "(1 2)", "at byte 3: expected ')' or an operator, found a number");
    syntax(w, "1 2", "at byte 2: expected an operator or the end of the condition, found a number");
    syntax(w, "1 )", "at byte 2: expected an operator or the end of the condition, found ')'");
    syntax(w, ")", "at byte 0: expected a value (a literal, a path, '(' or '!'), found ')'");
    syntax(w, "()", "at byte 1: expected a value (a literal, a path, '(' or '!'), found ')'");
    syntax(w, "!", "at byte 1: expected a value (a literal, a path, '(' or '!'), found the end");
    syntax(w, "1 !", "at byte 2: expected an operator or the end of the condition, found '!'");
    syntax(w, "true false",
           "at byte 5: expected an operator or the end of the condition, found false");
    syntax(w, "inputs.x 'a'",
           "at byte 9: expected an operator or the end of the condition, found a string");
    syntax(w, "&& 1", "at byte 0: expected a value (a literal, a path, '(' or '!'), found '&&'");
    syntax(w, "1 &&& 2", "at byte 4: expected '&&'");
    syntax(w, "1 = 2", "at byte 2: expected '==' ('=' alone is not an operator)");
    syntax(w, "1e999 > 0", "at byte 0: number out of range");
    syntax(w, "-1e400 < 0", "at byte 0: number out of range");
    syntax(w, "inputs.x == 'abc", "at byte 16: unterminated string: expected the closing quote");
    syntax(w, "{{inputs.x}}", "at byte 0: conditions take paths without '{{ }}'");
    syntax(w, "inputs..x", "at byte 7: expected a field name after '.'");
    syntax(w, "nodes.a.output[1", "at byte 16: expected ']'");
    bad(w, "inputs[99999999999] == 1", 24, "limit",
        "at byte 7: array index larger than 4294967295");
    bad(w, "1 == 1\0", 7, "condition_syntax",
        "at byte 6: unexpected character: expected a "
        "value or an operator");
}

static void test_refs(void **state)
{
    struct world *w = *state;
    struct rf_cond *c = (struct rf_cond *)&c;
    rf_diag d;
    const char *src = "nodes.nope.output == 1 && item.x || nodes.b.output.y && index (";

    c = compile_ok(w, "nodes.a.output.status == 200 || nodes.b.output && nodes.a.output");
    assert_int_equal(w->nrefs, 3);
    assert_int_equal(w->refs[0], 0);
    assert_int_equal(w->refs[1], 1);
    assert_int_equal(w->refs[2], 0);
    rf_cond_free(c);

    /* every problem: two references out of scope, one unknown, then the syntax error */
    w->env.in_map = false;
    w->nrefs = 0;
    rf_diag_init(&d);
    assert_int_equal(rf_cond_compile(src, strlen(src), "/nodes/1/when", &w->env, &d, &c),
                     RF_EINVAL_GRAPH);
    assert_null(c);
    assert_int_equal(d.count, 4);
    assert_string_equal(d.items[0].code, "unknown_ref");
    assert_string_equal(d.items[0].message, "nodes.nope.output: no node \"nope\" in the graph");
    assert_string_equal(d.items[1].code, "bad_scope");
    assert_string_equal(d.items[2].code, "bad_scope");
    assert_string_equal(d.items[2].message,
                        "index: 'item' and 'index' are only in scope in a mapped node's config");
    assert_string_equal(d.items[3].code, "condition_syntax");
    assert_string_equal(d.items[3].message,
                        "at byte 62: expected an operator or the end of the condition, found '('");
    assert_int_equal(w->nrefs, 1); /* nodes.b */
    rf_diag_free(&d);
    w->env.in_map = true;

    /* a NULL diag still fails */
    assert_int_equal(rf_cond_compile("nodes.zz.output", 15, "", &w->env, NULL, &c),
                     RF_EINVAL_GRAPH);
    assert_null(c);
}

static void test_deterministic(void **state)
{
    struct world *w = *state;
    const char *src = "(inputs.v3 == 1.0 || 'x' < \"y\") && !(nodes.a.output.body.n[0] != 1)";
    struct rf_cond *a = compile_ok(w, src), *b = compile_ok(w, src);
    char da[DUMP_BYTES], db[DUMP_BYTES];

    assert_int_equal(rf__cond_dump(a, da, sizeof(da)), rf__cond_dump(b, db, sizeof(db)));
    assert_string_equal(da, db);
    /* a short buffer is NUL-terminated and the needed length reported */
    assert_int_equal(rf__cond_dump(a, db, 8), strlen(da));
    assert_int_equal(strlen(db), 7);
    assert_memory_equal(db, da, 7);
    rf_cond_free(a);
    rf_cond_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lex_tokens),
        cmocka_unit_test(test_lex_errors),
        cmocka_unit_test_setup_teardown(test_precedence, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_precedence_eval, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_every_pair, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_literals, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_truthiness, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_logic, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_deep_equality, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_limits, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_syntax_errors, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_refs, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_deterministic, world_setup, world_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    guard_release();
    return rc;
}
