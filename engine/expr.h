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

#endif /* RF_ENGINE_EXPR_H */
