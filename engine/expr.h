/*
 * engine/expr.h: templates and conditions (../shared/spec/graph.md, "Templates" and
 * "Conditions"), compiled once when a plan is compiled, evaluated each time a node runs.
 *
 * Two layers:
 *   - a sans-I/O core (engine/tmpl.c, engine/cond.c): pure functions over bytes that
 *     tokenize and parse `{{ path }}` strings and `when` expressions into caller-provided
 *     arrays, allocating nothing, reporting the byte offset and a message on error. The
 *     fuzz targets (fuzz/tmpl.c, fuzz/cond.c) drive this layer and the compile layer;
 *   - a compile/eval layer: rf_tmpl_compile() walks a JSON value (a node's config, its
 *     `map`, the graph's `output`), parses every string holding `{{`, resolves node ids
 *     to plan indices, and builds a tree that evaluates without re-parsing. Values with
 *     no template compile to NULL: the caller uses the JSON as it is, with no copy.
 *
 * Paths: `inputs<p>`, `nodes.<id>.output<p>`, `item<p>`, `index`, `execution.id`,
 * `execution.graph`, `execution.version`, where <p> is a chain of `.field` and `[n]`.
 * A webhook's `inputs` template (net/hooks.c) is compiled in request mode instead, where
 * the only paths are `body<p>`, `headers<p>` and `query<p>` (the delivery's parsed body,
 * its header fields and its query parameters, names in lowercase).
 * A template whose whole string is one `{{ path }}` yields the value with its JSON type;
 * a string mixing text and templates yields a string (strings inserted raw, other values
 * as compact JSON). A path that does not resolve is an evaluation error with code
 * "template_error", not retryable.
 */
#ifndef RF_ENGINE_EXPR_H
#define RF_ENGINE_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ringflow.h"

/* Limits of one template string / condition. */
#define RF_EXPR_BYTES_MAX    4096 /* a `when` expression, or one `{{ ... }}` */
#define RF_EXPR_DEPTH_MAX    32   /* parentheses and `!` nesting in a condition */
#define RF_PATH_SEGS_MAX     32   /* `.field` / `[n]` steps in one path */
#define RF_TMPL_PARTS_MAX    64   /* text runs and templates in one string */

/* What compilation needs from the graph being compiled. Borrowed during the call. */
struct rf_expr_env {
    /* Plan index of node `id` (`len` bytes, not NUL-terminated), or -1 if unknown. */
    int (*node_index)(void *ud, const char *id, size_t len);
    /* Called once per `nodes.X` reference, with X's index and the JSON Pointer of the
     * string that holds it (the plan compiler adds the implicit edge X -> this node and
     * checks that X may be referenced). May be NULL. */
    void (*on_ref)(void *ud, uint32_t node, const char *pointer);
    void *ud;
    bool in_map; /* `item` and `index` are in scope (a mapped node's config) */
    bool request; /* a webhook's inputs: `body`, `headers`, `query` and nothing else */
};

/* What evaluation reads. Borrowed during the call. */
struct rf_scope {
    const json_t *inputs;
    /* The output of node `node`: NULL when the node has none (then the reference does not
     * resolve). */
    const json_t *(*node_output)(const void *ud, uint32_t node);
    const void *ud;
    const json_t *item; /* NULL outside a mapped node */
    int64_t index;      /* the item's index */
    const char *exec_id;
    const char *graph;
    uint32_t version;
    /* request mode: the delivery's parts (NULL when it has none) */
    const json_t *body, *headers, *query;
};

/* --- templates -------------------------------------------------------------------------- */

struct rf_tmpl;

/* Compile every template in `value` (borrowed; the compiled form keeps references to the
 * static parts it reuses). `pointer` is the JSON Pointer of `value` in the document
 * ("/nodes/2/config"); problems are appended to `diag` with the pointer of the offending
 * string, codes "template_syntax", "unknown_ref" (a node that does not exist),
 * "bad_scope" (`item`/`index` outside a mapped node), "limit". Returns 0 with *out NULL
 * when `value` holds no template, 0 with *out owned by the caller, RF_EINVAL_GRAPH when
 * something did not compile (diag lists all of it), -ENOMEM. */
int rf_tmpl_compile(const json_t *value, const char *pointer, const struct rf_expr_env *env,
                    rf_diag *diag, struct rf_tmpl **out);

/* Evaluate into a new JSON value owned by the caller. A path that does not resolve gives
 * RF_EINVAL_GRAPH with *err {code "template_error", retryable false, a message naming the
 * path}; -ENOMEM with err filled. */
int rf_tmpl_eval(const struct rf_tmpl *t, const struct rf_scope *sc, json_t **out, rf_error *err);

/* Does the compiled template read `item` or `index`? (Its result then differs per item.) */
bool rf_tmpl_uses_item(const struct rf_tmpl *t);

void rf_tmpl_free(struct rf_tmpl *t); /* NULL is a no-op */

/* --- conditions ------------------------------------------------------------------------- */

struct rf_cond;

/* Compile the `when` expression `src` (`len` bytes, borrowed). Problems go to `diag` at
 * `pointer` with code "condition_syntax" (message with the byte offset), "unknown_ref",
 * "bad_scope" or "limit". 0 and *out owned by the caller, RF_EINVAL_GRAPH, -ENOMEM. */
int rf_cond_compile(const char *src, size_t len, const char *pointer,
                    const struct rf_expr_env *env, rf_diag *diag, struct rf_cond **out);

/* Evaluate to a truth value (spec truthiness). A path that does not resolve gives
 * RF_EINVAL_GRAPH with *err {code "template_error", retryable false}. */
int rf_cond_eval(const struct rf_cond *c, const struct rf_scope *sc, bool *out, rf_error *err);

void rf_cond_free(struct rf_cond *c); /* NULL is a no-op */

/* --- sans-I/O layer (internal; engine/tmpl.c, engine/cond.c, their tests and fuzzers) ---
 *
 * Pure functions over a byte buffer `s` of `len` bytes (not NUL-terminated, never read past
 * `len`), writing into caller-provided structs and arrays, allocating nothing. Offsets are
 * from `s`. On error they return -1 and fill *e. */

#define RF_PATH_INDEX_MAX    UINT32_MAX /* largest `[n]` */
#define RF_NODE_ID_BYTES_MAX 64         /* `nodes.<id>`: [A-Za-z_][A-Za-z0-9_-]{0,63} */

struct rf_scan_err {
    size_t off;      /* byte offset of the problem */
    const char *msg; /* static string: what was expected or what is wrong */
    bool limit;      /* a limit (RF_*_MAX) was exceeded: diag code "limit", not syntax */
};

enum rf_path_root {
    RF_ROOT_INPUTS,
    RF_ROOT_NODE, /* nodes.<id>.output */
    RF_ROOT_ITEM,
    RF_ROOT_INDEX,
    RF_ROOT_EXEC_ID,
    RF_ROOT_EXEC_GRAPH,
    RF_ROOT_EXEC_VERSION,
    RF_ROOT_BODY, /* request mode (a webhook's inputs) */
    RF_ROOT_HEADERS,
    RF_ROOT_QUERY,
};

enum rf_seg_kind {
    RF_SEG_FIELD,  /* .name: off/len is the name */
    RF_SEG_QUOTED, /* ["key"]: off/len is the text between the quotes, still escaped */
    RF_SEG_INDEX,  /* [n] */
};

struct rf_path_seg {
    uint8_t kind;   /* enum rf_seg_kind */
    uint32_t index; /* RF_SEG_INDEX */
    size_t off, len;
};

struct rf_path {
    uint8_t root;          /* enum rf_path_root */
    size_t id_off, id_len; /* RF_ROOT_NODE: the node id */
    uint32_t nsegs;
    struct rf_path_seg segs[RF_PATH_SEGS_MAX];
};

/* Scan one path at the start of `s`, stopping at the first byte that cannot continue it
 * (the caller checks what follows). Returns the bytes consumed (> 0) or -1. */
int rf__path_scan(const char *s, size_t len, struct rf_path *p, struct rf_scan_err *e);

/* Scan a string body that starts right after an opening `quote` (`"` or `'`), up to the
 * closing quote. Escapes: \" \' \\ \/ \b \f \n \r \t \uXXXX (UTF-16, surrogate pairs
 * joined, lone surrogates refused); raw bytes other than the quote and backslash are taken
 * as they are. Returns the body's length (the closing quote is at s[ret]) or -1. */
long rf__str_scan(const char *s, size_t len, char quote, struct rf_scan_err *e);

/* Decode a body rf__str_scan() accepted into `out` (room for `len` bytes: decoding never
 * grows). Returns the decoded length. */
size_t rf__str_unescape(const char *s, size_t len, char *out);

/* One piece of a template string: a text run, or the path of a `{{ path }}` (whitespace
 * around it trimmed; rf__path_scan() accepts exactly those bytes). */
struct rf_tmpl_part {
    size_t off, len;
    bool is_path;
};

/* Split a string value into text runs and templates, in order, into parts[0..cap). An
 * empty string has 0 parts. Returns the count or -1 (syntax; or e->limit: more than `cap`
 * parts, or one `{{ ... }}` longer than RF_EXPR_BYTES_MAX). */
int rf__tmpl_scan(const char *s, size_t len, struct rf_tmpl_part *parts, size_t cap,
                  struct rf_scan_err *e);

enum rf_tok_kind {
    RF_TOK_END,
    RF_TOK_LPAREN,
    RF_TOK_RPAREN,
    RF_TOK_NOT,
    RF_TOK_AND,
    RF_TOK_OR,
    RF_TOK_EQ,
    RF_TOK_NE,
    RF_TOK_LT,
    RF_TOK_LE,
    RF_TOK_GT,
    RF_TOK_GE,
    RF_TOK_NUM, /* JSON number syntax; off/len is the number */
    RF_TOK_STR, /* off/len is the body between the quotes, still escaped */
    RF_TOK_TRUE,
    RF_TOK_FALSE,
    RF_TOK_NULL,
    RF_TOK_PATH, /* off/len is the path; rf__path_scan() accepts exactly those bytes */
};

struct rf_tok {
    uint8_t kind; /* enum rf_tok_kind */
    size_t off, len;
};

/* Tokenize a `when` expression into toks[0..cap), ending with one RF_TOK_END (at `len`).
 * `len + 1` tokens always suffice. Returns the count (END included) or -1. */
int rf__cond_lex(const char *s, size_t len, struct rf_tok *toks, size_t cap, struct rf_scan_err *e);

/* The compiled condition in postfix form, one instruction per word: literals as JSON,
 * paths as written, operators, `&&>N` / `||>N` (short-circuit jump to instruction N) and
 * `bool`. For tests (precedence) and the fuzzer (determinism). Writes at most `cap` bytes
 * with a NUL; returns the length it needed, like snprintf. */
size_t rf__cond_dump(const struct rf_cond *c, char *buf, size_t cap);

/* --- compiled paths (internal; shared by templates and conditions, engine/tmpl.c) ------ */

#define RF_TMPL_JSON_DEPTH_MAX   2048        /* nesting of a compiled value (jansson's own) */
#define RF_TMPL_STRING_BYTES_MAX (16u << 20) /* a mixed string's result */

struct rf_cpath;

/* What a path resolved to: a borrowed JSON value (valid while the scope's values are), or,
 * when `json` is NULL, an integer (`index`, `execution.version`) or a string borrowed from
 * the scope (`execution.id`, `execution.graph`). */
struct rf_xval {
    const json_t *json;
    bool is_int;
    int64_t i;
    const char *str;
    size_t len;
};

/* Compile the path `p` scanned from `s` (`len` bytes, exactly the path; borrowed: the
 * compiled path keeps a copy): check its scope against env->in_map, resolve a node id
 * through env->node_index and report it to env->on_ref. Problems go to `diag` at
 * `pointer` ("bad_scope", "unknown_ref"). 0 with *out owned by the caller,
 * RF_EINVAL_GRAPH, -ENOMEM. */
int rf__cpath_compile(const char *s, size_t len, const struct rf_path *p,
                      const struct rf_expr_env *env, const char *pointer, rf_diag *diag,
                      struct rf_cpath **out);
/* Resolve against `sc` (borrowed). 0, or RF_EINVAL_GRAPH with *err "template_error"
 * naming the path and the step that failed. Allocates nothing. */
int rf__cpath_resolve(const struct rf_cpath *p, const struct rf_scope *sc, struct rf_xval *v,
                      rf_error *err);
bool rf__cpath_uses_item(const struct rf_cpath *p);
const char *rf__cpath_text(const struct rf_cpath *p); /* the path as written, NUL-ended */
void rf__cpath_free(struct rf_cpath *p);              /* NULL is a no-op */

#endif /* RF_ENGINE_EXPR_H */
