/*
 * fuzz/tmpl.c: libFuzzer target for templates (engine/tmpl.c).
 *
 * The input bytes are one string value. They go through the sans-I/O scanner as they are,
 * then through rf_tmpl_compile() as a JSON string (json_stringn_nocheck: any bytes, as a
 * kind could build) with a fixed env knowing nodes "a", "b" and "c", inside a mapped node
 * (so `item` and `index` are in scope), and the compiled form is evaluated against a fixed
 * scope, then against a scope with no item and no node outputs (every root that can fail,
 * fails). Properties, each an RF_ASSERT:
 *   - the scanner's parts lie inside the input, in order, and every path part is exactly
 *     what rf__path_scan() accepts, text runs hold no `{{`; errors point inside the input;
 *   - scanner and compiler agree: compile succeeds iff the scan did and every node named
 *     is a, b or c; a failed scan gives one diag, "limit" exactly when the scan said so;
 *     no template compiles to NULL, any template to a compiled form;
 *   - evaluation never crashes, returns 0 with a value or RF_EINVAL_GRAPH with
 *     "template_error"; a mixed string yields a string, valid UTF-8 when the input was;
 *   - wrapped in an object next to a static member, the member is shared, not copied.
 */
#include "engine/rf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const k_nodes[] = {"a", "b", "c"};

static json_t *g_inputs, *g_item, *g_out[3];

static int node_index(void *ud, const char *id, size_t len)
{
    (void)ud;
    for (int i = 0; i < 3; i++)
        if (len == 1 && id[0] == k_nodes[i][0])
            return i;
    return -1;
}

static void on_ref(void *ud, uint32_t node, const char *pointer)
{
    (void)ud;
    RF_ASSERT(node < 3);
    RF_ASSERT(pointer != NULL);
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
    g_inputs = json_loads("{\"id\": \"o-1\", \"n\": 10, \"r\": 0.5, \"t\": true, \"z\": null,"
                          " \"arr\": [1, \"two\", {\"k\": [3]}], \"obj\": {\"a\": {\"b\": \"c\"},"
                          " \"k y\": 1, \"\\u00e9\": 2, \"}}\": 3}, \"\": 0, \"big\": 1e300}",
                          0, NULL);
    g_item = json_loads("{\"sku\": \"x\", \"n\": [1, 2]}", 0, NULL);
    g_out[0] = json_loads("{\"status\": 200, \"body\": {\"lines\": [1, 2]}}", 0, NULL);
    g_out[1] = json_string("str");
    RF_ASSERT(g_inputs && g_item && g_out[0] && g_out[1]);
}

/* Check the scan; returns whether every node named is known, and counts the paths. */
static bool check_parts(const char *s, size_t size, const struct rf_tmpl_part *parts, int n,
                        int *paths)
{
    size_t end = 0;
    bool known = true;

    for (int k = 0; k < n; k++) {
        struct rf_path p;
        struct rf_scan_err e;
        RF_ASSERT(parts[k].off >= end);
        RF_ASSERT(parts[k].len > 0);
        RF_ASSERT(parts[k].off + parts[k].len <= size);
        RF_ASSERT(parts[k].is_path || k > 0 || parts[k].off == 0);
        end = parts[k].off + parts[k].len;
        if (!parts[k].is_path) { /* every `{{` opens a template */
            RF_ASSERT(!memmem(s + parts[k].off, parts[k].len, "{{", 2));
            continue;
        }
        (*paths)++;
        RF_ASSERT(rf__path_scan(s + parts[k].off, parts[k].len, &p, &e) == (int)parts[k].len);
        if (p.root == RF_ROOT_NODE)
            known &= node_index(NULL, s + parts[k].off + p.id_off, p.id_len) >= 0;
    }
    RF_ASSERT(n == 0 || end == size || parts[n - 1].is_path);
    return known;
}

static void check_eval(const struct rf_tmpl *t, const struct rf_scope *sc, bool single, bool utf8)
{
    json_t *out = NULL;
    rf_error err;
    int rc = rf_tmpl_eval(t, sc, &out, &err);

    if (rc != 0) {
        RF_ASSERT(rc == RF_EINVAL_GRAPH);
        RF_ASSERT(out == NULL);
        RF_ASSERT(strcmp(err.code, "template_error") == 0);
        RF_ASSERT(!err.retryable);
        return;
    }
    RF_ASSERT(out != NULL);
    if (!single) {
        RF_ASSERT(json_is_string(out));
        if (utf8) { /* the checking constructor validates UTF-8 */
            json_t *copy = json_stringn(json_string_value(out), json_string_length(out));
            RF_ASSERT(copy != NULL);
            json_decref(copy);
        }
    }
    json_decref(out);
}

static void check_wrapped(json_t *str, const struct rf_expr_env *env, const struct rf_scope *sc)
{
    json_t *obj = json_object(), *stat = json_integer(7), *out = NULL;
    struct rf_tmpl *t = NULL;
    rf_error err;

    json_object_set(obj, "s", stat);
    json_object_set(obj, "t", str);
    RF_ASSERT(rf_tmpl_compile(obj, "", env, NULL, &t) == 0 && t != NULL);
    if (rf_tmpl_eval(t, sc, &out, &err) == 0) {
        RF_ASSERT(json_object_get(out, "s") == stat);
        json_decref(out);
    }
    rf_tmpl_free(t);
    json_decref(obj);
    json_decref(stat);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct rf_tmpl_part parts[RF_TMPL_PARTS_MAX];
    struct rf_scan_err e = {0};
    struct rf_expr_env env = {.node_index = node_index, .on_ref = on_ref, .in_map = true};
    struct rf_tmpl *t = NULL;
    rf_diag diag;
    json_t *str;
    int n, rc, paths = 0;
    bool known = false;

    init();
    n = rf__tmpl_scan(s, size, parts, RF_TMPL_PARTS_MAX, &e);
    RF_ASSERT(n >= -1 && n <= RF_TMPL_PARTS_MAX);
    if (n >= 0)
        known = check_parts(s, size, parts, n, &paths);
    else
        RF_ASSERT(e.off <= size && e.msg != NULL);

    str = json_stringn_nocheck(s, size);
    RF_ASSERT(str != NULL);
    rf_diag_init(&diag);
    rc = rf_tmpl_compile(str, "/f", &env, &diag, &t);
    RF_ASSERT((rc == 0) == (n >= 0 && known));
    if (rc == 0) {
        RF_ASSERT((t != NULL) == (paths > 0));
        RF_ASSERT(diag.count == 0);
    } else {
        RF_ASSERT(rc == RF_EINVAL_GRAPH && diag.count > 0 && t == NULL);
        if (n < 0)
            RF_ASSERT(diag.count == 1 &&
                      strcmp(diag.items[0].code, e.limit ? "limit" : "template_syntax") == 0);
    }
    rf_diag_free(&diag);
    if (t) {
        struct rf_scope sc = {.inputs = g_inputs,
                              .node_output = node_output,
                              .item = g_item,
                              .index = 5,
                              .exec_id = "e",
                              .graph = "g",
                              .version = 3};
        struct rf_scope bare = {.index = -1};
        json_t *checked = json_stringn(s, size); /* NULL unless valid UTF-8 */
        bool utf8 = checked != NULL;

        json_decref(checked);
        check_eval(t, &sc, n == 1, utf8);
        check_eval(t, &bare, n == 1, utf8);
        check_wrapped(str, &env, &sc);
        rf_tmpl_free(t);
    }
    json_decref(str);
    return 0;
}
