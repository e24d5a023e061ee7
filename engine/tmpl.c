/*
 * engine/tmpl.c: `{{ path }}` templates (spec/graph.md, "Templates"): the sans-I/O scanners,
 * compiled paths (shared with engine/cond.c) and the compile/eval layer of engine/expr.h.
 *
 * Scanners. rf__path_scan() reads one path and stops at the first byte that cannot
 * continue it; rf__tmpl_scan() splits a string into text runs and `{{ path }}` parts by
 * running the path scanner right after each `{{` (so a `}}` inside a quoted key does not
 * close the template). Both read only [s, s+len), allocate nothing and report -1 with a
 * byte offset and a static message. Decisions the spec leaves open:
 *   - whitespace (space, tab, CR, LF) is allowed around the path inside `{{ }}`, not in it;
 *   - every `{{` opens a template: there is no escape for a literal `{{`; a lone `}}` is
 *     text; `{{}}` and `{{ }}` are errors;
 *   - `inputs` and `item` alone name the whole value; `index` and `execution.*` take no
 *     steps; a step is `.name` with name [A-Za-z0-9_-]+, `[n]` with decimal n <= 2^32-1,
 *     or `["key"]` for any other member name, the key written as a JSON string (escapes
 *     \" \\ \/ \b \f \n \r \t \uXXXX, plus \' as in conditions);
 *   - limits: RF_PATH_SEGS_MAX steps, RF_EXPR_BYTES_MAX bytes per `{{ ... }}`,
 *     RF_TMPL_PARTS_MAX parts per string (diag code "limit").
 *
 * Compile. rf_tmpl_compile() walks a value and keeps one reference to it (json_incref);
 * subtrees without templates are not copied: evaluation increfs them into the result, so
 * {"a": {"b": 1}, "url": "x/{{inputs.id}}"} evaluates to a new object whose "a" is the
 * original {"b": 1}. Object keys and text runs point into that value, which must not be
 * modified while the compiled form lives (plans are immutable). Paths are compiled once,
 * node ids resolved to plan indices, so evaluation never parses.
 *
 * Eval. A string that is exactly one template yields the value itself (incref: the node's
 * output is shared, never copied). A mixed string is assembled in a 512-byte stack buffer,
 * then the heap (at most RF_TMPL_STRING_BYTES_MAX): strings go in raw, integers and
 * literals as JSON, reals in the shortest of 15/16/17 significant digits that reads back
 * the same ("0.1", where jansson's default would write 0.10000000000000001; integral reals
 * keep ".0"), objects and arrays through json_dumpb(JSON_COMPACT | JSON_ENCODE_ANY) (so
 * reals nested in them carry jansson's 17 digits). Evaluation only reads the compiled form
 * and increfs shared values (jansson's refcounts are atomic here), so one compiled
 * template may be evaluated on any number of threads at once.
 */
#include "engine/rf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/expr.h"
#include "engine/jcs.h"

#define RF_TMPL_STACK_BYTES 512 /* a mixed string's buffer before the heap */
#define RF_NUM_BYTES_MAX    40  /* a formatted integer or real */

/* --- scanning helpers ------------------------------------------------------------------- */

static inline bool is_field_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static inline bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int scan_fail(struct rf_scan_err *e, size_t off, const char *msg, bool limit)
{
    e->off = off;
    e->msg = msg;
    e->limit = limit;
    return -1;
}

static bool word_is(const char *s, size_t n, const char *word)
{
    return n == strlen(word) && memcmp(s, word, n) == 0;
}

static size_t field_run(const char *s, size_t len, size_t i)
{
    while (i < len && is_field_char((unsigned char)s[i]))
        i++;
    return i;
}

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at s[0..4) when `avail` >= 4; -1 otherwise. */
static long hex4(const char *s, size_t avail)
{
    long u = 0;

    if (avail < 4)
        return -1;
    for (int k = 0; k < 4; k++) {
        int h = hex_val((unsigned char)s[k]);
        if (h < 0)
            return -1;
        u = u << 4 | h;
    }
    return u;
}

/* --- strings ---------------------------------------------------------------------------- */

/* A \u escape at s[i] (s[i] == '\\', s[i+1] == 'u'): its length (6 or 12) or -1. */
static long scan_u_escape(const char *s, size_t len, size_t i, struct rf_scan_err *e)
{
    long u = hex4(s + i + 2, len - i - 2), lo;

    if (u < 0)
        return scan_fail(e, i, "expected 4 hex digits after \\u", false);
    if (u >= 0xDC00 && u <= 0xDFFF)
        return scan_fail(e, i, "\\u escape is a lone low surrogate", false);
    if (u < 0xD800 || u > 0xDBFF)
        return 6;
    if (len - i < 12 || s[i + 6] != '\\' || s[i + 7] != 'u')
        return scan_fail(e, i, "\\u high surrogate without a low surrogate after it", false);
    lo = hex4(s + i + 8, len - i - 8);
    if (lo < 0xDC00 || lo > 0xDFFF)
        return scan_fail(e, i, "\\u high surrogate without a low surrogate after it", false);
    return 12;
}

long rf__str_scan(const char *s, size_t len, char quote, struct rf_scan_err *e)
{
    size_t i = 0;

    while (i < len) {
        long k;

        if (s[i] == quote)
            return (long)i;
        if (s[i] != '\\') {
            i++;
            continue;
        }
        if (i + 1 >= len)
            break;
        switch (s[i + 1]) {
        case '"':
        case '\'':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            i += 2;
            break;
        case 'u':
            k = scan_u_escape(s, len, i, e);
            if (k < 0)
                return -1;
            i += (size_t)k;
            break;
        default:
            return scan_fail(e, i,
                             "unknown escape (expected \\\" \\' \\\\ \\/ \\b \\f \\n \\r "
                             "\\t or \\uXXXX)",
                             false);
        }
    }
    return scan_fail(e, len, "unterminated string: expected the closing quote", false);
}

static size_t utf8_put(char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static char unescape_char(char c)
{
    switch (c) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return c; /* " ' \ / */
    }
}

size_t rf__str_unescape(const char *s, size_t len, char *out)
{
    size_t i = 0, o = 0;

    while (i < len) {
        unsigned long cp;

        if (s[i] != '\\') {
            out[o++] = s[i++];
            continue;
        }
        RF_DASSERT(i + 1 < len);
        if (s[i + 1] != 'u') {
            out[o++] = unescape_char(s[i + 1]);
            i += 2;
            continue;
        }
        cp = (unsigned long)hex4(s + i + 2, len - i - 2);
        i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned long lo = (unsigned long)hex4(s + i + 2, len - i - 2);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
        }
        o += utf8_put(out + o, cp);
    }
    return o;
}

/* --- paths ------------------------------------------------------------------------------ */

static int add_seg(struct rf_path *p, struct rf_path_seg seg, size_t at, struct rf_scan_err *e)
{
    if (p->nsegs == RF_PATH_SEGS_MAX)
        return scan_fail(e, at, "more than RF_PATH_SEGS_MAX (32) steps in one path", true);
    p->segs[p->nsegs++] = seg;
    return 0;
}

/* `[` at s[i]: a `[n]` or `["key"]` step. Returns the index past `]` or -1. */
static long scan_bracket(const char *s, size_t len, size_t i, struct rf_path *p,
                         struct rf_scan_err *e)
{
    struct rf_path_seg seg = {.kind = RF_SEG_INDEX};
    size_t j = i + 1;

    if (j < len && s[j] == '"') {
        long b = rf__str_scan(s + j + 1, len - j - 1, '"', e);
        if (b < 0) {
            e->off += j + 1;
            return -1;
        }
        seg = (struct rf_path_seg){.kind = RF_SEG_QUOTED, .off = j + 1, .len = (size_t)b};
        j += (size_t)b + 2;
    } else {
        uint64_t v = 0;
        for (; j < len && s[j] >= '0' && s[j] <= '9'; j++) {
            v = v * 10 + (uint64_t)(s[j] - '0');
            if (v > RF_PATH_INDEX_MAX)
                return scan_fail(e, i + 1, "array index larger than 4294967295", true);
        }
        if (j == i + 1)
            return scan_fail(e, j, "expected an array index or a quoted key after '['", false);
        seg.index = (uint32_t)v;
    }
    if (j >= len || s[j] != ']')
        return scan_fail(e, j, "expected ']'", false);
    if (add_seg(p, seg, i, e) < 0)
        return -1;
    return (long)(j + 1);
}

/* The `.name` and `[...]` steps from s[i]; returns where they end or -1. */
static int scan_steps(const char *s, size_t len, size_t i, struct rf_path *p, struct rf_scan_err *e)
{
    while (i < len) {
        if (s[i] == '.') {
            size_t j = field_run(s, len, i + 1);
            if (j == i + 1)
                return scan_fail(e, i + 1, "expected a field name after '.'", false);
            struct rf_path_seg seg = {.kind = RF_SEG_FIELD, .off = i + 1, .len = j - i - 1};
            if (add_seg(p, seg, i, e) < 0)
                return -1;
            i = j;
        } else if (s[i] == '[') {
            long j = scan_bracket(s, len, i, p, e);
            if (j < 0)
                return -1;
            i = (size_t)j;
        } else {
            break;
        }
    }
    if (i > INT32_MAX)
        return scan_fail(e, 0, "path longer than 2^31 bytes", true);
    return (int)i;
}

/* `index` and `execution.*` end where their word does. */
static int scan_leaf(const char *s, size_t len, size_t i, struct rf_scan_err *e)
{
    if (i < len && (s[i] == '.' || s[i] == '['))
        return scan_fail(e, i, "'index' and 'execution.*' take no further steps", false);
    return (int)i;
}

static int scan_node(const char *s, size_t len, size_t i, struct rf_path *p, struct rf_scan_err *e)
{
    size_t j;

    if (i >= len || s[i] != '.')
        return scan_fail(e, i, "expected '.' and a node id after 'nodes'", false);
    j = field_run(s, len, i + 1);
    if (j == i + 1 || (s[i + 1] >= '0' && s[i + 1] <= '9') || s[i + 1] == '-')
        return scan_fail(e, i + 1, "expected a node id ([A-Za-z_][A-Za-z0-9_-]*)", false);
    if (j - i - 1 > RF_NODE_ID_BYTES_MAX)
        return scan_fail(e, i + 1, "node id longer than 64 bytes", false);
    p->root = RF_ROOT_NODE;
    p->id_off = i + 1;
    p->id_len = j - i - 1;
    if (j >= len || s[j] != '.' || !word_is(s + j + 1, field_run(s, len, j + 1) - j - 1, "output"))
        return scan_fail(e, j, "expected '.output' after the node id", false);
    return scan_steps(s, len, j + 7, p, e);
}

static int scan_exec(const char *s, size_t len, size_t i, struct rf_path *p, struct rf_scan_err *e)
{
    size_t j;

    if (i >= len || s[i] != '.')
        return scan_fail(e, i, "expected '.id', '.graph' or '.version' after 'execution'", false);
    j = field_run(s, len, i + 1);
    if (word_is(s + i + 1, j - i - 1, "id"))
        p->root = RF_ROOT_EXEC_ID;
    else if (word_is(s + i + 1, j - i - 1, "graph"))
        p->root = RF_ROOT_EXEC_GRAPH;
    else if (word_is(s + i + 1, j - i - 1, "version"))
        p->root = RF_ROOT_EXEC_VERSION;
    else
        return scan_fail(e, i + 1, "expected 'id', 'graph' or 'version' after 'execution.'", false);
    return scan_leaf(s, len, j, e);
}

int rf__path_scan(const char *s, size_t len, struct rf_path *p, struct rf_scan_err *e)
{
    size_t w = field_run(s, len, 0);

    p->nsegs = 0;
    p->id_off = p->id_len = 0;
    if (word_is(s, w, "inputs") || word_is(s, w, "item")) {
        p->root = w == 6 ? RF_ROOT_INPUTS : RF_ROOT_ITEM;
        return scan_steps(s, len, w, p, e);
    }
    if (word_is(s, w, "index")) {
        p->root = RF_ROOT_INDEX;
        return scan_leaf(s, len, w, e);
    }
    if (word_is(s, w, "nodes"))
        return scan_node(s, len, w, p, e);
    if (word_is(s, w, "execution"))
        return scan_exec(s, len, w, p, e);
    if (word_is(s, w, "body") || word_is(s, w, "query")) {
        p->root = s[0] == 'b' ? RF_ROOT_BODY : RF_ROOT_QUERY;
        return scan_steps(s, len, w, p, e);
    }
    if (word_is(s, w, "headers")) {
        p->root = RF_ROOT_HEADERS;
        return scan_steps(s, len, w, p, e);
    }
    return scan_fail(e, 0,
                     "expected a path: inputs, nodes.<id>.output, item, index or "
                     "execution.* (body, headers, query in a webhook's inputs)",
                     false);
}

/* --- template strings ------------------------------------------------------------------- */

static int add_part(struct rf_tmpl_part *parts, size_t cap, size_t *n, struct rf_tmpl_part part,
                    struct rf_scan_err *e)
{
    if (*n == cap)
        return scan_fail(e, part.off,
                         "more than RF_TMPL_PARTS_MAX (64) text runs and "
                         "templates in one string",
                         true);
    parts[(*n)++] = part;
    return 0;
}

static size_t skip_space(const char *s, size_t len, size_t i)
{
    while (i < len && is_space((unsigned char)s[i]))
        i++;
    return i;
}

static bool close_at(const char *s, size_t len, size_t i)
{
    return i + 1 < len && s[i] == '}' && s[i + 1] == '}';
}

/* The template opened by `{{` at s[open]; returns the index past its `}}` or -1. */
static long scan_one(const char *s, size_t len, size_t open, struct rf_tmpl_part *part,
                     struct rf_scan_err *e)
{
    struct rf_path p;
    size_t i = skip_space(s, len, open + 2);
    int k;

    if (i >= len)
        return scan_fail(e, open, "unterminated '{{': expected a path and '}}'", false);
    if (close_at(s, len, i))
        return scan_fail(e, i, "empty template: expected a path before '}}'", false);
    k = rf__path_scan(s + i, len - i, &p, e);
    if (k < 0) {
        e->off += i;
        return -1;
    }
    *part = (struct rf_tmpl_part){.off = i, .len = (size_t)k, .is_path = true};
    i = skip_space(s, len, i + (size_t)k);
    if (i >= len)
        return scan_fail(e, open, "unterminated '{{': expected '}}'", false);
    if (!close_at(s, len, i))
        return scan_fail(e, i, "expected '}}' after the path", false);
    if (i + 2 - open > RF_EXPR_BYTES_MAX)
        return scan_fail(e, open, "template longer than RF_EXPR_BYTES_MAX (4096) bytes", true);
    return (long)(i + 2);
}

int rf__tmpl_scan(const char *s, size_t len, struct rf_tmpl_part *parts, size_t cap,
                  struct rf_scan_err *e)
{
    size_t i = 0, text = 0, n = 0;

    while (len - i >= 2) {
        const char *q = memchr(s + i, '{', len - i - 1);
        struct rf_tmpl_part part;
        long end;

        if (!q)
            break;
        i = (size_t)(q - s);
        if (s[i + 1] != '{') {
            i++;
            continue;
        }
        if (i > text &&
            add_part(parts, cap, &n, (struct rf_tmpl_part){text, i - text, false}, e) < 0)
            return -1;
        end = scan_one(s, len, i, &part, e);
        if (end < 0 || add_part(parts, cap, &n, part, e) < 0)
            return -1;
        i = text = (size_t)end;
    }
    if (len > text &&
        add_part(parts, cap, &n, (struct rf_tmpl_part){text, len - text, false}, e) < 0)
        return -1;
    RF_ASSERT(n <= INT32_MAX);
    return (int)n;
}

/* --- compiled paths --------------------------------------------------------------------- */

struct rf_cseg {
    const char *key; /* NUL-terminated, in the path's block; NULL for an index */
    uint32_t klen;
    uint32_t index;
};

struct rf_cpath {
    uint8_t root; /* enum rf_path_root */
    uint32_t node;
    uint32_t nsegs;
    const char *text; /* the path as written, NUL-terminated, in this block */
    struct rf_cseg segs[];
};

static int check_ref(const char *s, size_t len, const struct rf_path *p,
                     const struct rf_expr_env *env, const char *pointer, rf_diag *diag,
                     uint32_t *node)
{
    int idx, rc;

    bool req = p->root == RF_ROOT_BODY || p->root == RF_ROOT_HEADERS || p->root == RF_ROOT_QUERY;
    if (req != env->request) {
        rc = rf_diag_add(diag, pointer, "bad_scope",
                         env->request ? "%.*s: a webhook's inputs read body, headers and query"
                                      : "%.*s: body, headers and query are only in scope in a "
                                        "webhook's inputs",
                         (int)len, s);
        return rc < 0 ? rc : RF_EINVAL_GRAPH;
    }
    if ((p->root == RF_ROOT_ITEM || p->root == RF_ROOT_INDEX) && !env->in_map) {
        rc = rf_diag_add(diag, pointer, "bad_scope",
                         "%.*s: 'item' and 'index' are only in scope in a mapped node's config",
                         (int)len, s);
        return rc < 0 ? rc : RF_EINVAL_GRAPH;
    }
    if (p->root != RF_ROOT_NODE)
        return 0;
    idx = env->node_index ? env->node_index(env->ud, s + p->id_off, p->id_len) : -1;
    if (idx < 0) {
        rc = rf_diag_add(diag, pointer, "unknown_ref", "%.*s: no node \"%.*s\" in the graph",
                         (int)len, s, (int)p->id_len, s + p->id_off);
        return rc < 0 ? rc : RF_EINVAL_GRAPH;
    }
    *node = (uint32_t)idx;
    if (env->on_ref)
        env->on_ref(env->ud, *node, pointer);
    return 0;
}

int rf__cpath_compile(const char *s, size_t len, const struct rf_path *p,
                      const struct rf_expr_env *env, const char *pointer, rf_diag *diag,
                      struct rf_cpath **out)
{
    size_t size = sizeof(struct rf_cpath) + p->nsegs * sizeof(struct rf_cseg) + len + 1;
    struct rf_cpath *cp;
    uint32_t node = 0;
    char *w;
    int rc;

    *out = NULL;
    rc = check_ref(s, len, p, env, pointer, diag, &node);
    if (rc < 0)
        return rc;
    for (uint32_t k = 0; k < p->nsegs; k++)
        size += p->segs[k].kind == RF_SEG_INDEX ? 0 : p->segs[k].len + 1;
    cp = rf_malloc(size);
    if (!cp)
        return -ENOMEM;
    *cp = (struct rf_cpath){.root = p->root, .node = node, .nsegs = p->nsegs};
    w = (char *)&cp->segs[p->nsegs];
    memcpy(w, s, len);
    w[len] = '\0';
    cp->text = w;
    w += len + 1;
    for (uint32_t k = 0; k < p->nsegs; k++) {
        const struct rf_path_seg *sg = &p->segs[k];
        struct rf_cseg *cs = &cp->segs[k];
        size_t n = 0;
        *cs = (struct rf_cseg){.index = sg->index};
        if (sg->kind == RF_SEG_INDEX)
            continue;
        if (sg->kind == RF_SEG_FIELD)
            memcpy(w, s + sg->off, n = sg->len);
        else
            n = rf__str_unescape(s + sg->off, sg->len, w);
        w[n] = '\0';
        cs->key = w;
        cs->klen = (uint32_t)n;
        w += n + 1;
    }
    *out = cp;
    return 0;
}

static const char *type_name(const json_t *v)
{
    static const char *const names[] = {"an object", "an array",  "a string",  "an integer",
                                        "a real",    "a boolean", "a boolean", "null"};
    return names[json_typeof(v)];
}

static int step_fail(const struct rf_cpath *p, const struct rf_cseg *cs, const json_t *v,
                     rf_error *err)
{
    if (cs->key && !json_is_object(v))
        return rf_error_set(err, RF_EINVAL_GRAPH, false, "template_error",
                            "%s: no member \"%.*s\" in %s", p->text, (int)cs->klen, cs->key,
                            type_name(v));
    if (cs->key)
        return rf_error_set(err, RF_EINVAL_GRAPH, false, "template_error", "%s: no member \"%.*s\"",
                            p->text, (int)cs->klen, cs->key);
    if (!json_is_array(v))
        return rf_error_set(err, RF_EINVAL_GRAPH, false, "template_error",
                            "%s: no element [%u] in %s", p->text, cs->index, type_name(v));
    return rf_error_set(err, RF_EINVAL_GRAPH, false, "template_error",
                        "%s: no element [%u] in an array of %zu", p->text, cs->index,
                        json_array_size(v));
}

static int root_fail(const struct rf_cpath *p, const char *why, rf_error *err)
{
    return rf_error_set(err, RF_EINVAL_GRAPH, false, "template_error", "%s: %s", p->text, why);
}

/* The value a scalar root names, or the JSON value a root with steps starts from. */
static int resolve_root(const struct rf_cpath *p, const struct rf_scope *sc, struct rf_xval *v,
                        rf_error *err)
{
    *v = (struct rf_xval){0};
    switch (p->root) {
    case RF_ROOT_INPUTS:
        v->json = sc->inputs;
        return v->json ? 0 : root_fail(p, "the execution has no inputs", err);
    case RF_ROOT_NODE:
        v->json = sc->node_output ? sc->node_output(sc->ud, p->node) : NULL;
        return v->json ? 0 : root_fail(p, "the node has no output", err);
    case RF_ROOT_ITEM:
        v->json = sc->item;
        return v->json ? 0 : root_fail(p, "no item in scope", err);
    case RF_ROOT_BODY:
        v->json = sc->body;
        return v->json ? 0 : root_fail(p, "the delivery has no JSON body", err);
    case RF_ROOT_HEADERS:
        v->json = sc->headers;
        return v->json ? 0 : root_fail(p, "no headers", err);
    case RF_ROOT_QUERY:
        v->json = sc->query;
        return v->json ? 0 : root_fail(p, "no query", err);
    case RF_ROOT_INDEX:
    case RF_ROOT_EXEC_VERSION:
        v->is_int = true;
        v->i = p->root == RF_ROOT_INDEX ? sc->index : (int64_t)sc->version;
        return 0;
    default:
        v->str = p->root == RF_ROOT_EXEC_ID ? sc->exec_id : sc->graph;
        if (!v->str)
            return root_fail(p, "not set in this execution", err);
        v->len = strlen(v->str);
        return 0;
    }
}

int rf__cpath_resolve(const struct rf_cpath *p, const struct rf_scope *sc, struct rf_xval *v,
                      rf_error *err)
{
    const json_t *j;
    int rc = resolve_root(p, sc, v, err);

    if (rc < 0 || !v->json)
        return rc;
    j = v->json;
    for (uint32_t k = 0; k < p->nsegs; k++) {
        const struct rf_cseg *cs = &p->segs[k];
        const json_t *next = NULL;
        if (cs->key)
            next = json_is_object(j) ? json_object_getn(j, cs->key, cs->klen) : NULL;
        else if (json_is_array(j))
            next = json_array_get(j, cs->index);
        if (!next)
            return step_fail(p, cs, j, err);
        j = next;
    }
    v->json = j;
    return 0;
}

bool rf__cpath_uses_item(const struct rf_cpath *p)
{
    return p->root == RF_ROOT_ITEM || p->root == RF_ROOT_INDEX;
}

const char *rf__cpath_text(const struct rf_cpath *p)
{
    return p->text;
}

void rf__cpath_free(struct rf_cpath *p)
{
    rf_free(p);
}

/* --- compiled templates ----------------------------------------------------------------- */

enum tkind { TK_PATH, TK_CONCAT, TK_OBJECT, TK_ARRAY };

/* TK_CONCAT: a text run (path NULL) or a path. */
struct tpiece {
    const char *text; /* into the compiled value */
    size_t len;
    struct rf_cpath *path;
};

/* TK_OBJECT / TK_ARRAY: one member or element, static (dyn NULL) or compiled. */
struct tslot {
    const char *key; /* TK_OBJECT: into the compiled value */
    size_t klen;
    json_t *stat; /* borrowed from the compiled value */
    struct tnode *dyn;
};

struct tnode {
    uint8_t kind; /* enum tkind */
    uint32_t n;
    struct rf_cpath *path; /* TK_PATH */
    union {
        struct tpiece pieces[1]; /* TK_CONCAT: n of them */
        struct tslot slots[1];   /* TK_OBJECT, TK_ARRAY: n of them */
    };
};

struct rf_tmpl {
    json_t *src; /* one reference to the compiled value: keys, texts, static parts */
    struct tnode *root;
    bool uses_item;
};

static void node_free(struct tnode *t)
{
    if (!t)
        return;
    rf__cpath_free(t->path);
    for (uint32_t i = 0; i < t->n; i++) {
        if (t->kind == TK_CONCAT)
            rf__cpath_free(t->pieces[i].path);
        else if (t->kind != TK_PATH)
            node_free(t->slots[i].dyn);
    }
    rf_free(t);
}

static struct tnode *node_new(enum tkind kind, size_t n)
{
    size_t each = kind == TK_CONCAT ? sizeof(struct tpiece) : sizeof(struct tslot);
    struct tnode *t;

    if (n > UINT32_MAX)
        return NULL;
    t = rf_calloc(1, offsetof(struct tnode, slots) + (n ? n : 1) * each);
    if (t) {
        t->kind = (uint8_t)kind;
        t->n = kind == TK_PATH ? 0 : (uint32_t)n;
    }
    return t;
}

/* --- compile ---------------------------------------------------------------------------- */

struct cctx {
    const struct rf_expr_env *env;
    rf_diag *diag;
    char *ptr; /* JSON Pointer of the value being walked */
    size_t plen, pcap;
    unsigned depth;
    bool failed;
    bool uses_item;
};

/* Append "/" and `key` escaped (~ -> ~0, / -> ~1) to the pointer. 0 or -ENOMEM. */
static int ptr_push(struct cctx *c, const char *key, size_t klen)
{
    size_t need = c->plen + 2 + 2 * klen;

    if (need > c->pcap) {
        size_t cap = RF_MAX(need, c->pcap * 2);
        char *p = rf_realloc(c->ptr, cap);
        if (!p)
            return -ENOMEM;
        c->ptr = p;
        c->pcap = cap;
    }
    c->ptr[c->plen++] = '/';
    for (size_t i = 0; i < klen; i++) {
        if (key[i] == '~' || key[i] == '/') {
            c->ptr[c->plen++] = '~';
            c->ptr[c->plen++] = key[i] == '~' ? '0' : '1';
        } else {
            c->ptr[c->plen++] = key[i];
        }
    }
    c->ptr[c->plen] = '\0';
    return 0;
}

static int diag_scan(struct cctx *c, const struct rf_scan_err *e)
{
    c->failed = true;
    return rf_diag_add(c->diag, c->ptr, e->limit ? "limit" : "template_syntax", "at byte %zu: %s",
                       e->off, e->msg);
}

/* Compile each path part into pieces[k].path; reference problems are diagnosed, all of
 * them. 0 or -ENOMEM. */
static int compile_paths(struct cctx *c, const char *s, const struct rf_tmpl_part *parts, int n,
                         struct tpiece *pieces)
{
    for (int k = 0; k < n; k++) {
        const struct rf_tmpl_part *pt = &parts[k];
        struct rf_scan_err e;
        struct rf_path p;
        int rc;

        pieces[k] = (struct tpiece){.text = s + pt->off, .len = pt->len};
        if (!pt->is_path)
            continue;
        rc = rf__path_scan(s + pt->off, pt->len, &p, &e);
        RF_ASSERT(rc == (int)pt->len);
        rc = rf__cpath_compile(s + pt->off, pt->len, &p, c->env, c->ptr, c->diag, &pieces[k].path);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0)
            c->failed = true;
        else if (rf__cpath_uses_item(pieces[k].path))
            c->uses_item = true;
    }
    return 0;
}

static int compile_string(struct cctx *c, const char *s, size_t len, struct tnode **out)
{
    struct rf_tmpl_part parts[RF_TMPL_PARTS_MAX];
    struct rf_scan_err e;
    struct tnode *t;
    int n = rf__tmpl_scan(s, len, parts, RF_TMPL_PARTS_MAX, &e), paths = 0, rc;

    if (n < 0)
        return diag_scan(c, &e);
    for (int k = 0; k < n; k++)
        paths += parts[k].is_path;
    if (paths == 0)
        return 0;
    t = node_new(TK_CONCAT, (size_t)n);
    if (!t)
        return -ENOMEM;
    rc = compile_paths(c, s, parts, n, t->pieces);
    if (rc == 0 && n == 1) { /* exactly one template: the value with its type */
        t->kind = TK_PATH;
        t->path = t->pieces[0].path;
        t->n = 0;
    }
    if (rc < 0) {
        node_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static int walk(struct cctx *c, json_t *v, struct tnode **out);

/* One member or element: walk it with the pointer extended by `key`. */
static int walk_slot(struct cctx *c, struct tslot *slot, const char *key, size_t klen, json_t *v,
                     bool *any)
{
    size_t mark = c->plen;
    int rc = ptr_push(c, key, klen);

    if (rc == 0)
        rc = walk(c, v, &slot->dyn);
    c->plen = mark;
    c->ptr[mark] = '\0';
    slot->stat = v;
    *any |= slot->dyn != NULL;
    return rc;
}

static int walk_container(struct cctx *c, json_t *v, struct tnode **out)
{
    bool obj = json_is_object(v), any = false;
    size_t n = obj ? json_object_size(v) : json_array_size(v), i = 0;
    struct tnode *t = node_new(obj ? TK_OBJECT : TK_ARRAY, n);
    char idx[24];
    int rc = 0;

    if (!t)
        return -ENOMEM;
    if (obj) {
        const char *key;
        size_t klen;
        json_t *m;
        json_object_keylen_foreach(v, key, klen, m)
        {
            t->slots[i] = (struct tslot){.key = key, .klen = klen};
            rc = rc < 0 ? rc : walk_slot(c, &t->slots[i], key, klen, m, &any);
            i++;
        }
    } else {
        for (; i < n && rc == 0; i++)
            rc = walk_slot(c, &t->slots[i], idx, (size_t)snprintf(idx, sizeof(idx), "%zu", i),
                           json_array_get(v, i), &any);
    }
    if (rc < 0 || !any) {
        node_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static int walk(struct cctx *c, json_t *v, struct tnode **out)
{
    int rc;

    *out = NULL;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return compile_string(c, json_string_value(v), json_string_length(v), out);
    case JSON_OBJECT:
    case JSON_ARRAY:
        if (c->depth == RF_TMPL_JSON_DEPTH_MAX) {
            c->failed = true;
            return rf_diag_add(c->diag, c->ptr, "limit", "nested deeper than %u levels",
                               RF_TMPL_JSON_DEPTH_MAX);
        }
        c->depth++;
        rc = walk_container(c, v, out);
        c->depth--;
        return rc;
    default:
        return 0;
    }
}

int rf_tmpl_compile(const json_t *value, const char *pointer, const struct rf_expr_env *env,
                    rf_diag *diag, struct rf_tmpl **out)
{
    struct cctx c = {.env = env, .diag = diag};
    struct tnode *root = NULL;
    struct rf_tmpl *t = NULL;
    int rc;

    *out = NULL;
    if (!value)
        return 0;
    c.plen = strlen(pointer ? pointer : "");
    c.pcap = c.plen + 64;
    c.ptr = rf_malloc(c.pcap);
    if (!c.ptr)
        return -ENOMEM;
    memcpy(c.ptr, pointer ? pointer : "", c.plen + 1);
    rc = walk(&c, (json_t *)value, &root); /* only refcounts are written, never content */
    if (rc == 0 && c.failed)
        rc = RF_EINVAL_GRAPH;
    if (rc < 0 || !root)
        goto out;
    t = rf_malloc(sizeof(*t));
    if (!t) {
        rc = -ENOMEM;
        goto out;
    }
    *t = (struct rf_tmpl){
        .src = json_incref((json_t *)value), .root = root, .uses_item = c.uses_item};
    root = NULL;
    *out = t;
out:
    node_free(root);
    rf_free(c.ptr);
    return rc;
}

bool rf_tmpl_uses_item(const struct rf_tmpl *t)
{
    return t && t->uses_item;
}

void rf_tmpl_free(struct rf_tmpl *t)
{
    if (!t)
        return;
    node_free(t->root);
    json_decref(t->src);
    rf_free(t);
}

/* --- evaluation ------------------------------------------------------------------------- */

static int nomem(rf_error *err)
{
    return rf_error_set(err, -ENOMEM, true, "out_of_memory",
                        "out of memory evaluating a "
                        "template");
}

/* A mixed string under construction: the caller's stack buffer, then the heap. */
struct sbuf {
    char *p;
    size_t n, cap;
    bool heap;
};

static int sbuf_reserve(struct sbuf *b, size_t more)
{
    size_t cap;
    char *p;

    if (more <= b->cap - b->n)
        return 0;
    if (more > RF_TMPL_STRING_BYTES_MAX - b->n)
        return -E2BIG;
    cap = RF_MIN(RF_MAX(b->cap * 2, b->n + more), (size_t)RF_TMPL_STRING_BYTES_MAX);
    p = b->heap ? rf_realloc(b->p, cap) : rf_malloc(cap);
    if (!p)
        return -ENOMEM;
    if (!b->heap)
        memcpy(p, b->p, b->n);
    b->p = p;
    b->cap = cap;
    b->heap = true;
    return 0;
}

static int sbuf_put(struct sbuf *b, const char *s, size_t n)
{
    int rc = sbuf_reserve(b, n);

    if (rc == 0 && n) {
        memcpy(b->p + b->n, s, n);
        b->n += n;
    }
    return rc;
}

/* Shortest of 15, 16, 17 significant digits that reads back as `d`; ".0" when it looks
 * like an integer (as jansson writes reals). Returns the length. */
static size_t fmt_real(double d, char *buf, size_t cap)
{
    int n = 0;

    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (!strpbrk(buf, ".eEn") && (size_t)n + 2 < cap) {
        memcpy(buf + n, ".0", 3);
        n += 2;
    }
    return (size_t)n;
}

/* Objects and arrays as compact JSON, written straight into the buffer. */
static int put_dump(struct sbuf *b, const json_t *v)
{
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    size_t need = json_dumpb(v, b->p + b->n, b->cap - b->n, flags);
    int rc;

    if (need == 0)
        return -EINVAL;
    if (need > b->cap - b->n) {
        rc = sbuf_reserve(b, need);
        if (rc < 0)
            return rc;
        if (json_dumpb(v, b->p + b->n, b->cap - b->n, flags) != need)
            return -EINVAL;
    }
    b->n += need;
    return 0;
}

static int put_value(struct sbuf *b, const struct rf_xval *x)
{
    const json_t *v = x->json;
    char num[RF_NUM_BYTES_MAX];

    _Static_assert(RF_NUM_BYTES_MAX >= RF_INT_TEXT_BYTES, "num holds an integer");
    if (!v && x->is_int)
        return sbuf_put(b, num, (size_t)rf_i64_text(x->i, num));
    if (!v)
        return sbuf_put(b, x->str, x->len);
    switch (json_typeof(v)) {
    case JSON_STRING:
        return sbuf_put(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return sbuf_put(b, num, (size_t)rf_i64_text((int64_t)json_integer_value(v), num));
    case JSON_REAL:
        return sbuf_put(b, num, fmt_real(json_real_value(v), num, sizeof(num)));
    case JSON_TRUE:
        return sbuf_put(b, "true", 4);
    case JSON_FALSE:
        return sbuf_put(b, "false", 5);
    case JSON_NULL:
        return sbuf_put(b, "null", 4);
    default:
        return put_dump(b, v);
    }
}

static int concat_fail(int rc, const char *what, rf_error *err)
{
    if (rc == -ENOMEM)
        return nomem(err);
    if (rc == -E2BIG)
        return rf_error_set(err, RF_EINVAL_GRAPH, false, "template_error",
                            "%s: the string would be longer than %u bytes", what,
                            RF_TMPL_STRING_BYTES_MAX);
    return rf_error_set(err, RF_EINVAL_GRAPH, false, "template_error",
                        "%s: the value cannot be written as JSON", what);
}

static int eval_concat(const struct tnode *t, const struct rf_scope *sc, json_t **out,
                       rf_error *err)
{
    char stack[RF_TMPL_STACK_BYTES];
    struct sbuf b = {.p = stack, .cap = sizeof(stack)};
    const char *what = "a template string";
    int rc = 0;

    for (uint32_t i = 0; i < t->n && rc == 0; i++) {
        const struct tpiece *pc = &t->pieces[i];
        struct rf_xval x;
        if (!pc->path) {
            rc = sbuf_put(&b, pc->text, pc->len);
            continue;
        }
        what = rf__cpath_text(pc->path);
        rc = rf__cpath_resolve(pc->path, sc, &x, err);
        if (rc < 0)
            goto out;
        rc = put_value(&b, &x);
    }
    if (rc < 0) {
        rc = concat_fail(rc, what, err);
        goto out;
    }
    *out = json_stringn_nocheck(b.p, b.n); /* UTF-8 runs and values joined at ASCII */
    if (!*out)
        rc = nomem(err);
out:
    if (b.heap)
        rf_free(b.p);
    return rc;
}

static int eval_node(const struct tnode *t, const struct rf_scope *sc, json_t **out, rf_error *err);

static int eval_container(const struct tnode *t, const struct rf_scope *sc, json_t **out,
                          rf_error *err)
{
    json_t *c = t->kind == TK_OBJECT ? json_object() : json_array();

    if (!c)
        return nomem(err);
    for (uint32_t i = 0; i < t->n; i++) {
        const struct tslot *s = &t->slots[i];
        json_t *v = NULL;
        int rc = 0;
        if (s->dyn)
            rc = eval_node(s->dyn, sc, &v, err);
        else
            v = json_incref(s->stat); /* shared with the compiled value */
        if (rc < 0) {
            json_decref(c);
            return rc;
        }
        /* both steal `v`, even when they fail */
        rc = t->kind == TK_OBJECT ? json_object_setn_new_nocheck(c, s->key, s->klen, v)
                                  : json_array_append_new(c, v);
        if (rc < 0) {
            json_decref(c);
            return nomem(err);
        }
    }
    *out = c;
    return 0;
}

static int eval_path(const struct rf_cpath *p, const struct rf_scope *sc, json_t **out,
                     rf_error *err)
{
    struct rf_xval x;
    int rc = rf__cpath_resolve(p, sc, &x, err);

    if (rc < 0)
        return rc;
    if (x.json)
        *out = json_incref((json_t *)x.json); /* shared, never copied */
    else if (x.is_int)
        *out = json_integer(x.i);
    else
        *out = json_stringn(x.str, x.len);
    return *out ? 0 : nomem(err);
}

static int eval_node(const struct tnode *t, const struct rf_scope *sc, json_t **out, rf_error *err)
{
    switch (t->kind) {
    case TK_PATH:
        return eval_path(t->path, sc, out, err);
    case TK_CONCAT:
        return eval_concat(t, sc, out, err);
    default:
        return eval_container(t, sc, out, err);
    }
}

int rf_tmpl_eval(const struct rf_tmpl *t, const struct rf_scope *sc, json_t **out, rf_error *err)
{
    RF_ASSERT(t != NULL);
    *out = NULL;
    return eval_node(t->root, sc, out, err);
}
