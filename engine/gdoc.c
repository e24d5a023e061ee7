/*
 * engine/gdoc.c: graph documents (../shared/spec/graph.md) into graph builders.
 *
 * rf_graph_parse() takes the bytes of a document and either returns a builder holding
 * exactly what the document says, or lists every document-level problem at once, each
 * with a JSON Pointer into the document, a stable code and a message, and builds nothing.
 * It runs in three steps:
 *
 *   1. limits and syntax: the size limit, a nesting-depth scan over the raw bytes (a pure
 *      function: no allocation, no recursion, so a hostile "[[[[..." costs one pass and
 *      never reaches the parser's recursion), then jansson with duplicate keys refused;
 *      any problem here stops the check, since there is no tree to look at;
 *   2. shape: the top-level fields, the `inputs` declaration (engine/inputs.c), and each
 *      node's fields, types, ranges and deps; every problem is reported, none stops the
 *      walk. Deps are resolved through a hash of the node ids (first occurrence wins, so
 *      a duplicated id, which the compiler reports, does not confuse the resolution);
 *   3. building, only when step 2 found nothing: rf_graph_new, one rf_graph_add_node per
 *      node in document order (node index == position in `nodes`, so the compiler's
 *      pointers "/nodes/3/kind" land in the document), one edge per dep, the `inputs` and
 *      `output` values, and a reference to the whole document in g->doc.
 *
 * What is left to rf_plan_compile(): id syntax and duplicates, kinds and their configs,
 * `when`, `map`, templates, references and cycles, engine limits (node count, retry and
 * timeout bounds). Those problems carry the same pointers, so a caller that parses and
 * compiles (rf_plan_from_json) shows one consistent list.
 *
 * The builder's option strings (when, map, cache.version) point into the document, which
 * the builder keeps alive through g->doc. Any thread; nothing global is touched.
 */
#include "engine/rf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "engine/alloc.h"
#include "engine/internal.h"

#define RF_DOC_BYTES_DEFAULT (1u << 20) /* rf_config.doc_bytes_max when 0 */
#define RF_DOC_DEPTH_DEFAULT 64u        /* rf_config.doc_depth_max when 0 */
#define RF_GRAPH_NAME_MAX    64         /* characters of a graph name */
#define RF_SHOWN_BYTES       80         /* bytes of a document string quoted in a message */
#define RF_MSG_BYTES         512        /* one diagnostic message */
#define RF_PTR_BYTES         64         /* "/nodes/<u32>/retry/max_backoff_ms" and the like */

/* --- reporting -------------------------------------------------------------------------- */

struct gctx {
    rf_diag *diag;     /* may be NULL: problems are still counted */
    uint32_t problems; /* items reported */
    int err;           /* -ENOMEM once something could not be recorded or allocated */
};

static void vproblem(struct gctx *c, const char *ptr, const char *code, const char *fmt, va_list ap)
{
    char msg[RF_MSG_BYTES];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    c->problems++;
    if (!ptr || rf_diag_add(c->diag, ptr, code, "%s", msg) < 0)
        c->err = -ENOMEM;
}

static void problem(struct gctx *c, const char *ptr, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void problem(struct gctx *c, const char *ptr, const char *code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vproblem(c, ptr, code, fmt, ap);
    va_end(ap);
}

/* A problem at `base`/`key`, the key escaped (keys come from the document). */
static void problem_at(struct gctx *c, const char *base, const char *key, const char *code,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void problem_at(struct gctx *c, const char *base, const char *key, const char *code,
                       const char *fmt, ...)
{
    char *ptr = rf__ptr_child(base, key);
    va_list ap;

    va_start(ap, fmt);
    vproblem(c, ptr, code, fmt, ap);
    va_end(ap);
    rf_free(ptr);
}

/* Format a pointer made of fixed field names into buf[RF_PTR_BYTES]; they always fit. */
static const char *ptr_fmt(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static const char *ptr_fmt(char *buf, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, RF_PTR_BYTES, fmt, ap);
    va_end(ap);
    RF_ASSERT(n >= 0 && n < RF_PTR_BYTES);
    return buf;
}

static int shown(const char *s)
{
    return rf__utf8_shown(s, RF_SHOWN_BYTES);
}

static const char *json_phrase(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction or exponent";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

/* --- step 1: bytes ---------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char b = s[0];
    size_t len = b < 0x80                 ? 1
                 : b >= 0xc2 && b <= 0xdf ? 2
                 : b >= 0xe0 && b <= 0xef ? 3
                 : b >= 0xf0 && b <= 0xf4 ? 4
                                          : 0;
    unsigned char lo = 0x80, hi = 0xbf;

    if (len == 0 || len > n)
        return 0;
    if (b == 0xe0)
        lo = 0xa0;
    else if (b == 0xed)
        hi = 0x9f;
    else if (b == 0xf0)
        lo = 0x90;
    else if (b == 0xf4)
        hi = 0x8f;
    if (len > 1 && (s[1] < lo || s[1] > hi))
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* Copy jansson's error text with every byte that is not valid UTF-8 replaced by '?':
 * its "near '...'" quotes raw input, which may be anything. */
static void utf8_clean(char *dst, size_t cap, const char *src)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t n = strlen(src), w = 0;

    for (size_t i = 0; i < n && w + 1 < cap;) {
        size_t len = utf8_seq(s + i, n - i);
        if (len == 0) {
            dst[w++] = '?';
            i++;
        } else if (w + len < cap) {
            memcpy(dst + w, s + i, len);
            w += len;
            i += len;
        } else {
            break;
        }
    }
    dst[w] = '\0';
}

/* Sans-I/O depth scan: the offset of the first '[' or '{' (outside strings) that opens
 * container number depth_max + 1, or -1 when the nesting stays within depth_max. Exact for
 * valid JSON; for invalid JSON either answer leads to a rejection. */
static ptrdiff_t depth_scan(const char *p, size_t n, uint32_t depth_max)
{
    uint32_t depth = 0;
    bool in_str = false, esc = false;

    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (in_str) {
            if (esc)
                esc = false;
            else if (ch == '\\')
                esc = true;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '[' || ch == '{') {
            if (++depth > depth_max)
                return (ptrdiff_t)i;
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            depth--;
        }
    }
    return -1;
}

/* 1-based line and column (in characters, as jansson counts them) of byte `at`. */
static void line_col(const char *p, size_t at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < at; i++) {
        if (p[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)p[i] & 0xc0) != 0x80) {
            (*col)++;
        }
    }
}

/* Limits, syntax, and an object at the top. *doc stays NULL when a problem was reported. */
static void doc_load(const rf_engine *eng, const char *json, size_t len, struct gctx *c,
                     json_t **doc)
{
    uint32_t bytes_max = eng->cfg.doc_bytes_max ? eng->cfg.doc_bytes_max : RF_DOC_BYTES_DEFAULT;
    uint32_t depth_max = eng->cfg.doc_depth_max ? eng->cfg.doc_depth_max : RF_DOC_DEPTH_DEFAULT;
    char text[JSON_ERROR_TEXT_LENGTH];
    json_error_t jerr;
    ptrdiff_t deep;
    json_t *v;
    int line, col;

    if (len > bytes_max) {
        problem(c, "", "limit", "the document is %zu bytes; the limit is %u bytes", len, bytes_max);
        return;
    }
    deep = depth_scan(json, len, depth_max);
    if (deep >= 0) {
        line_col(json, (size_t)deep, &line, &col);
        problem(c, "", "limit", "line %d, column %d: JSON nested deeper than %u levels", line, col,
                depth_max);
        return;
    }
    v = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!v) {
        enum json_error_code code = json_error_code(&jerr);
        if (code == json_error_out_of_memory) {
            c->err = -ENOMEM;
            return;
        }
        if (code == json_error_null_character)
            snprintf(text, sizeof(text), "strings may not contain \\u0000");
        else
            utf8_clean(text, sizeof(text), jerr.text);
        problem(c, "",
                code == json_error_duplicate_key    ? "duplicate_key"
                : code == json_error_stack_overflow ? "limit"
                                                    : "malformed_json",
                "line %d, column %d: %s", jerr.line, jerr.column, text);
        return;
    }
    if (!json_is_object(v)) {
        problem(c, "", "type", "a graph document must be a JSON object, not %s", json_phrase(v));
        json_decref(v);
        return;
    }
    *doc = v;
}

/* --- step 2: shape ---------------------------------------------------------------------- */

static const char *const top_fields[] = {"name", "description", "inputs", "nodes", "output"};
static const char *const node_fields[] = {"id",         "kind",    "deps", "config",
                                          "when",       "trigger", "map",  "max_parallel",
                                          "timeout_ms", "retry",   "cache"};
static const char *const retry_fields[] = {"max_attempts", "backoff_ms", "max_backoff_ms"};
static const char *const cache_fields[] = {"ttl_s", "version"};

/* Report every member of `obj` not in known[]; `what` names the object for the message. */
static void check_fields(struct gctx *c, const json_t *obj, const char *base,
                         const char *const *known, size_t nknown, const char *what)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < nknown && !ok; i++)
            ok = strcmp(key, known[i]) == 0;
        if (!ok)
            problem_at(c, base, key, "unknown_field", "unknown field \"%.*s\" in %s", shown(key),
                       key, what);
    }
}

/* obj[key] as an integer in [min, max]: 1 and *out when present and valid, 0 when absent,
 * -1 when reported. `name` is how messages call the field. */
static int get_u32(struct gctx *c, const json_t *obj, const char *key, const char *base,
                   const char *name, uint32_t min, uint32_t max, uint32_t *out)
{
    const json_t *v = json_object_get(obj, key);
    char ptr[RF_PTR_BYTES];
    json_int_t x;

    if (!v)
        return 0;
    ptr_fmt(ptr, "%s/%s", base, key);
    if (!json_is_integer(v)) {
        problem(c, ptr, "type", "%s must be an integer, not %s", name, json_phrase(v));
        return -1;
    }
    x = json_integer_value(v);
    if (x < (json_int_t)min || x > (json_int_t)max) {
        problem(c, ptr, "range", "%s must be between %u and %u, not %lld", name, min, max,
                (long long)x);
        return -1;
    }
    *out = (uint32_t)x;
    return 1;
}

/* obj[key] as a string: 1 and *out, 0 when absent, -1 when reported. */
static int get_str(struct gctx *c, const json_t *obj, const char *key, const char *base,
                   const char *name, const char **out)
{
    const json_t *v = json_object_get(obj, key);
    char ptr[RF_PTR_BYTES];

    if (!v)
        return 0;
    if (!json_is_string(v)) {
        ptr_fmt(ptr, "%s/%s", base, key);
        problem(c, ptr, "type", "%s must be a string, not %s", name, json_phrase(v));
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

static bool graph_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > RF_GRAPH_NAME_MAX)
        return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return false;
    for (size_t i = 1; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
              ch == '-'))
            return false;
    }
    return true;
}

/* Ids of the nodes by position: open addressing over `nodes` indices, first one wins. */
struct idtab {
    uint32_t *slot; /* UINT32_MAX = empty */
    uint32_t mask;
    const json_t *nodes;
};

static const char *node_id(const json_t *nodes, uint32_t i)
{
    return json_string_value(json_object_get(json_array_get(nodes, i), "id"));
}

static int idtab_find(const struct idtab *t, const char *id)
{
    uint32_t h = (uint32_t)XXH3_64bits(id, strlen(id)) & t->mask;

    for (; t->slot[h] != UINT32_MAX; h = (h + 1) & t->mask)
        if (strcmp(node_id(t->nodes, t->slot[h]), id) == 0)
            return (int)t->slot[h];
    return -1;
}

static int idtab_build(struct idtab *t, const json_t *nodes)
{
    uint32_t n = (uint32_t)json_array_size(nodes);

    t->nodes = nodes;
    t->mask = rf_pow2_ceil(2 * n + 2) - 1;
    t->slot = rf_malloc(((size_t)t->mask + 1) * sizeof(*t->slot));
    if (!t->slot)
        return -ENOMEM;
    memset(t->slot, 0xff, ((size_t)t->mask + 1) * sizeof(*t->slot));
    for (uint32_t i = 0; i < n; i++) {
        const char *id = node_id(nodes, i);
        if (!id || idtab_find(t, id) >= 0)
            continue;
        uint32_t h = (uint32_t)XXH3_64bits(id, strlen(id)) & t->mask;
        while (t->slot[h] != UINT32_MAX)
            h = (h + 1) & t->mask;
        t->slot[h] = i;
    }
    return 0;
}

static void check_deps(struct gctx *c, const json_t *node, const char *base, const struct idtab *t)
{
    const json_t *deps = json_object_get(node, "deps");
    const char *self = json_string_value(json_object_get(node, "id"));
    char ptr[RF_PTR_BYTES];
    size_t j;
    json_t *d;

    if (!deps)
        return;
    ptr_fmt(ptr, "%s/deps", base);
    if (!json_is_array(deps)) {
        problem(c, ptr, "type", "deps must be an array of node ids, not %s", json_phrase(deps));
        return;
    }
    json_array_foreach(deps, j, d)
    {
        const char *dep = json_string_value(d);
        ptr_fmt(ptr, "%s/deps/%zu", base, j);
        if (!dep)
            problem(c, ptr, "type", "a dep must be a node id (a string), not %s", json_phrase(d));
        else if (self && strcmp(dep, self) == 0)
            problem(c, ptr, "self_dep", "node \"%.*s\" depends on itself", shown(dep), dep);
        else if (idtab_find(t, dep) < 0)
            problem(c, ptr, "unknown_dep", "no node of this graph has the id \"%.*s\"", shown(dep),
                    dep);
    }
}

static void check_retry(struct gctx *c, const json_t *node, const char *base, rf_node_opts *o)
{
    const json_t *retry = json_object_get(node, "retry");
    char ptr[RF_PTR_BYTES];

    if (!retry)
        return;
    ptr_fmt(ptr, "%s/retry", base);
    if (!json_is_object(retry)) {
        problem(c, ptr, "type", "retry must be an object, not %s", json_phrase(retry));
        return;
    }
    check_fields(c, retry, ptr, retry_fields, RF_ARRAY_LEN(retry_fields), "retry");
    get_u32(c, retry, "max_attempts", ptr, "retry.max_attempts", 1, UINT32_MAX,
            &o->retry.max_attempts);
    get_u32(c, retry, "backoff_ms", ptr, "retry.backoff_ms", 0, UINT32_MAX, &o->retry.backoff_ms);
    get_u32(c, retry, "max_backoff_ms", ptr, "retry.max_backoff_ms", 0, UINT32_MAX,
            &o->retry.max_backoff_ms);
}

static void check_cache(struct gctx *c, const json_t *node, const char *base, rf_node_opts *o)
{
    const json_t *cache = json_object_get(node, "cache");
    char ptr[RF_PTR_BYTES], tptr[RF_PTR_BYTES];

    if (!cache)
        return;
    ptr_fmt(ptr, "%s/cache", base);
    if (!json_is_object(cache)) {
        problem(c, ptr, "type", "cache must be an object, not %s", json_phrase(cache));
        return;
    }
    check_fields(c, cache, ptr, cache_fields, RF_ARRAY_LEN(cache_fields), "cache");
    if (get_u32(c, cache, "ttl_s", ptr, "cache.ttl_s", 1, UINT32_MAX, &o->cache.ttl_s) == 0) {
        ptr_fmt(tptr, "%s/ttl_s", ptr);
        problem(c, tptr, "required", "cache.ttl_s is required when cache is present");
    }
    get_str(c, cache, "version", ptr, "cache.version", &o->cache.version);
}

/* when, map, trigger, max_parallel, timeout_ms. */
static void check_run_opts(struct gctx *c, const json_t *node, const char *base, rf_node_opts *o)
{
    const char *trigger = NULL;
    char ptr[RF_PTR_BYTES];

    get_str(c, node, "when", base, "when", &o->when);
    get_str(c, node, "map", base, "map", &o->map);
    if (get_str(c, node, "trigger", base, "trigger", &trigger) > 0) {
        if (strcmp(trigger, "all_succeeded") == 0) {
            o->trigger = RF_TRIGGER_ALL_SUCCEEDED;
        } else if (strcmp(trigger, "all_done") == 0) {
            o->trigger = RF_TRIGGER_ALL_DONE;
        } else {
            ptr_fmt(ptr, "%s/trigger", base);
            problem(c, ptr, "bad_trigger", "trigger \"%.*s\" is not one of all_succeeded, all_done",
                    shown(trigger), trigger);
        }
    }
    if (get_u32(c, node, "max_parallel", base, "max_parallel", 1, RF_MAX_PARALLEL_MAX,
                &o->max_parallel) > 0 &&
        !json_object_get(node, "map")) {
        ptr_fmt(ptr, "%s/max_parallel", base);
        problem(c, ptr, "invalid", "max_parallel only applies to a mapped node (one with map)");
    }
    get_u32(c, node, "timeout_ms", base, "timeout_ms", 0, UINT32_MAX, &o->timeout_ms);
}

/* Node i: every field; `o` receives its options. */
static void check_node(struct gctx *c, const json_t *nodes, uint32_t i, const struct idtab *t,
                       rf_node_opts *o)
{
    const json_t *node = json_array_get(nodes, i);
    char base[RF_PTR_BYTES], ptr[RF_PTR_BYTES];
    const char *s;

    ptr_fmt(base, "/nodes/%u", i);
    if (!json_is_object(node)) {
        problem(c, base, "type", "a node must be an object, not %s", json_phrase(node));
        return;
    }
    check_fields(c, node, base, node_fields, RF_ARRAY_LEN(node_fields), "a node");
    if (get_str(c, node, "id", base, "id", &s) == 0) {
        ptr_fmt(ptr, "%s/id", base);
        problem(c, ptr, "required", "a node needs an id");
    }
    if (get_str(c, node, "kind", base, "kind", &s) == 0) {
        ptr_fmt(ptr, "%s/kind", base);
        problem(c, ptr, "required", "a node needs a kind");
    }
    check_deps(c, node, base, t);
    check_run_opts(c, node, base, o);
    check_retry(c, node, base, o);
    check_cache(c, node, base, o);
}

/* name, description, inputs; the nodes array is checked by the caller. */
static void check_top(struct gctx *c, const json_t *doc)
{
    const char *name = NULL, *desc;
    const json_t *inputs = json_object_get(doc, "inputs");
    int rc;

    check_fields(c, doc, "", top_fields, RF_ARRAY_LEN(top_fields), "the document");
    if (get_str(c, doc, "name", "", "name", &name) == 0)
        problem(c, "/name", "required", "a graph needs a name");
    else if (name && !graph_name_ok(name))
        problem(c, "/name", "bad_name", "graph name \"%.*s\" must match [a-z0-9][a-z0-9._-]{0,63}",
                shown(name), name);
    get_str(c, doc, "description", "", "description", &desc);
    if (inputs) {
        rc = rf__inputs_decl_check(inputs, "/inputs", c->diag);
        if (rc == RF_EINVAL_GRAPH)
            c->problems++;
        else if (rc < 0)
            c->err = rc;
    }
}

/* Steps 2: every problem of the parsed document; fills the id table and node options. */
static void check_doc(struct gctx *c, const json_t *doc, struct idtab *t, rf_node_opts **opts)
{
    const json_t *nodes = json_object_get(doc, "nodes");
    uint32_t n;

    check_top(c, doc);
    if (!nodes) {
        problem(c, "/nodes", "required", "a graph needs a nodes array (it may be empty)");
        return;
    }
    if (!json_is_array(nodes)) {
        problem(c, "/nodes", "type", "nodes must be an array, not %s", json_phrase(nodes));
        return;
    }
    n = (uint32_t)json_array_size(nodes);
    *opts = rf_calloc(n ? n : 1, sizeof(**opts));
    if (!*opts || idtab_build(t, nodes) < 0) {
        c->err = -ENOMEM;
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        check_node(c, nodes, i, t, &(*opts)[i]);
}

/* --- step 3: the builder ---------------------------------------------------------------- */

static int build_nodes(rf_graph *g, const json_t *nodes, const struct idtab *t,
                       const rf_node_opts *opts)
{
    uint32_t n = (uint32_t)json_array_size(nodes);
    size_t j;
    json_t *d;
    int rc;

    for (uint32_t i = 0; i < n; i++) {
        json_t *node = json_array_get(nodes, i);
        rc = rf_graph_add_node(g, node_id(nodes, i),
                               json_string_value(json_object_get(node, "kind")),
                               json_object_get(node, "config"), &opts[i]);
        if (rc < 0)
            return rc;
        RF_ASSERT((uint32_t)rc == i);
    }
    for (uint32_t i = 0; i < n; i++) {
        json_array_foreach(json_object_get(json_array_get(nodes, i), "deps"), j, d)
        {
            int from = idtab_find(t, json_string_value(d));
            RF_ASSERT(from >= 0);
            rc = rf_graph_add_edge(g, (uint32_t)from, i);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int build(json_t *doc, const struct idtab *t, const rf_node_opts *opts, rf_graph **out)
{
    json_t *inputs = json_object_get(doc, "inputs"), *output = json_object_get(doc, "output");
    rf_graph *g = NULL;
    int rc;

    rc = rf_graph_new(json_string_value(json_object_get(doc, "name")), &g);
    if (rc < 0)
        return rc;
    rc = build_nodes(g, json_object_get(doc, "nodes"), t, opts);
    if (rc == 0 && inputs)
        rc = rf_graph_set_inputs(g, inputs);
    if (rc == 0 && output)
        rc = rf_graph_set_output(g, output);
    if (rc < 0) {
        rf_graph_free(g);
        return rc;
    }
    g->doc = json_incref(doc);
    *out = g;
    return 0;
}

int rf_graph_parse(rf_engine *eng, const char *json, size_t len, rf_diag *diag, rf_graph **out)
{
    struct gctx c = {.diag = diag};
    struct idtab t = {0};
    rf_node_opts *opts = NULL;
    json_t *doc = NULL;
    int rc;

    if (!eng || !out || (!json && len))
        return -EINVAL;
    doc_load(eng, json ? json : "", len, &c, &doc);
    if (doc)
        check_doc(&c, doc, &t, &opts);
    if (c.err)
        rc = c.err;
    else if (c.problems)
        rc = RF_EINVAL_GRAPH;
    else
        rc = build(doc, &t, opts, out);
    rf_free(t.slot);
    rf_free(opts);
    json_decref(doc);
    return rc;
}
