/*
 * fuzz/cond.c: libFuzzer target for `when` conditions (engine/cond.c).
 *
 * The input bytes are a condition source. The sans-I/O tokenizer runs on them as they
 * are; then rf_cond_compile() compiles them twice with a fixed env (nodes "a", "b", "c",
 * inside a mapped node) and once outside a mapped node, and every compiled form is
 * evaluated against a fixed scope whose inputs hold each JSON type, and against a bare
 * scope where every root fails. Properties, each an RF_ASSERT:
 *   - tokens lie inside the input, in order, and end with one END at the input's end; a
 *     tokenizer error points inside the input;
 *   - the tokenizer and the compiler agree: a source the tokenizer refuses does not
 *     compile, and its single diag carries the tokenizer's offset and message, with code
 *     "limit" exactly when the tokenizer reported a limit;
 *   - compiling the same source twice gives the same result: same return code, same
 *     diags (pointer, code, message), same code (rf__cond_dump), same evaluation (return
 *     code, truth value, error code and message);
 *   - scope only removes: what compiles outside a mapped node compiles inside one, and
 *     evaluates the same;
 *   - evaluation returns 0 or RF_EINVAL_GRAPH with "template_error", never retryable.
 */
#include "engine/rf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *g_inputs, *g_item, *g_out[3];
static struct rf_tok g_toks[RF_EXPR_BYTES_MAX + 1];

static int node_index(void *ud, const char *id, size_t len)
{
    (void)ud;
    return len == 1 && id[0] >= 'a' && id[0] <= 'c' ? id[0] - 'a' : -1;
}

static const json_t *node_output(const void *ud, uint32_t node)
{
    (void)ud;
    RF_ASSERT(node < 3);
    return g_out[node]; /* "c" has none */
}

static void init(void)
{
    if (g_inputs)
        return;
    g_inputs = json_loads("{\"s\": \"a\", \"e\": \"\", \"i\": 1, \"f\": 1.0, \"h\": 1.5, \"z\": 0,"
                          " \"t\": true, \"n\": null, \"a\": [1, [2.0]], \"o\": {\"k\": 1},"
                          " \"o2\": {\"k\": 1.0}, \"big\": 9007199254740993}",
                          0, NULL);
    g_item = json_loads("{\"sku\": \"x\", \"n\": [1, 2]}", 0, NULL);
    g_out[0] = json_loads("{\"status\": 200, \"body\": {\"ok\": true}}", 0, NULL);
    g_out[1] = json_string("b");
    RF_ASSERT(g_inputs && g_item && g_out[0] && g_out[1]);
}

static void check_lex(size_t size, int n, const struct rf_scan_err *e)
{
    size_t end = 0;

    if (n < 0) {
        RF_ASSERT(e->off <= size && e->msg != NULL);
        return;
    }
    RF_ASSERT(n >= 1 && (size_t)n <= size + 1);
    for (int k = 0; k < n; k++) {
        RF_ASSERT(g_toks[k].off >= end && g_toks[k].off + g_toks[k].len <= size);
        RF_ASSERT((g_toks[k].kind == RF_TOK_END) == (k == n - 1));
        end = g_toks[k].off + g_toks[k].len;
    }
    RF_ASSERT(g_toks[n - 1].off == size);
}

struct result {
    int rc;
    bool truth;
    rf_error err;
};

static struct result run(const struct rf_cond *c, const struct rf_scope *sc)
{
    struct result r = {0};

    r.rc = rf_cond_eval(c, sc, &r.truth, &r.err);
    if (r.rc != 0) {
        RF_ASSERT(r.rc == RF_EINVAL_GRAPH);
        RF_ASSERT(strcmp(r.err.code, "template_error") == 0 && !r.err.retryable);
        r.truth = false;
    }
    return r;
}

static void same_result(const struct result *a, const struct result *b)
{
    RF_ASSERT(a->rc == b->rc && a->truth == b->truth);
    if (a->rc != 0)
        RF_ASSERT(strcmp(a->err.code, b->err.code) == 0 &&
                  strcmp(a->err.message, b->err.message) == 0);
}

static void same_diags(const rf_diag *a, const rf_diag *b)
{
    RF_ASSERT(a->count == b->count);
    for (uint32_t i = 0; i < a->count; i++) {
        RF_ASSERT(strcmp(a->items[i].pointer, b->items[i].pointer) == 0);
        RF_ASSERT(strcmp(a->items[i].code, b->items[i].code) == 0);
        RF_ASSERT(strcmp(a->items[i].message, b->items[i].message) == 0);
    }
}

static void same_code(const struct rf_cond *a, const struct rf_cond *b)
{
    size_t na = rf__cond_dump(a, NULL, 0), nb = rf__cond_dump(b, NULL, 0);
    char *da = malloc(na + 1), *db = malloc(nb + 1);

    RF_ASSERT(na == nb && da && db);
    RF_ASSERT(rf__cond_dump(a, da, na + 1) == na && rf__cond_dump(b, db, nb + 1) == nb);
    RF_ASSERT(strlen(da) == na && memcmp(da, db, na + 1) == 0);
    free(da);
    free(db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct rf_expr_env env = {.node_index = node_index, .in_map = true};
    struct rf_scope sc = {.inputs = g_inputs,
                          .node_output = node_output,
                          .item = g_item,
                          .index = 2,
                          .exec_id = "e",
                          .graph = "g",
                          .version = 1};
    struct rf_scope bare = {.index = 0};
    struct rf_cond *c1 = NULL, *c2 = NULL, *c3 = NULL;
    struct rf_scan_err e = {0};
    rf_diag d1, d2, d3;
    int n = -1, rc1, rc2, rc3;

    init();
    sc.inputs = g_inputs; /* made by init() on the first call */
    sc.item = g_item;
    if (size <= RF_EXPR_BYTES_MAX) {
        n = rf__cond_lex(s, size, g_toks, size + 1, &e);
        check_lex(size, n, &e);
    }
    rf_diag_init(&d1);
    rf_diag_init(&d2);
    rf_diag_init(&d3);
    rc1 = rf_cond_compile(s, size, "/w", &env, &d1, &c1);
    rc2 = rf_cond_compile(s, size, "/w", &env, &d2, &c2);
    env.in_map = false;
    rc3 = rf_cond_compile(s, size, "/w", &env, &d3, &c3);
    RF_ASSERT(rc1 == rc2 && (rc1 == 0) == (c1 != NULL) && (rc2 == 0) == (c2 != NULL));
    RF_ASSERT(rc1 == 0 || (rc1 == RF_EINVAL_GRAPH && d1.count > 0));
    RF_ASSERT(rc1 != 0 || size <= RF_EXPR_BYTES_MAX);
    same_diags(&d1, &d2);
    if (size <= RF_EXPR_BYTES_MAX && n < 0) {
        char want[RF_ERROR_MESSAGE_MAX];
        snprintf(want, sizeof(want), "at byte %zu: %s", e.off, e.msg);
        RF_ASSERT(rc1 == RF_EINVAL_GRAPH && d1.count == 1);
        RF_ASSERT(strcmp(d1.items[0].code, e.limit ? "limit" : "condition_syntax") == 0);
        RF_ASSERT(strcmp(d1.items[0].message, want) == 0);
    }
    RF_ASSERT(rc3 != 0 || rc1 == 0);
    if (c1) {
        same_code(c1, c2);
        struct result a = run(c1, &sc), b = run(c2, &sc);
        same_result(&a, &b);
        a = run(c1, &bare);
        b = run(c2, &bare);
        same_result(&a, &b);
    }
    if (c3) {
        same_code(c1, c3);
        struct result a = run(c1, &sc), b = run(c3, &sc);
        same_result(&a, &b);
    }
    rf_cond_free(c1);
    rf_cond_free(c2);
    rf_cond_free(c3);
    rf_diag_free(&d1);
    rf_diag_free(&d2);
    rf_diag_free(&d3);
    return 0;
}
