/*
 * engine/lang.c: compiling the graph language (../shared/spec/graph.md) into a plan.
 *
 * rf_plan_compile() (engine/plan.c) checks the graph's shape; this file adds what the
 * language brings, for every node:
 *
 *   - its config's templates, compiled once (engine/tmpl.c) with `item`/`index` in scope
 *     only for mapped nodes; a config without templates stays a plain JSON value that
 *     every run shares, and its lineage hash is computed here, once;
 *   - its `when` condition (engine/cond.c) and its `map` template;
 *   - its cache block and max_parallel, against their limits.
 *
 * Every `nodes.X` reference a template or condition makes adds the edge X -> node (the
 * spec's implicit deps), recorded with the JSON Pointer of the reference so that a
 * reference to a node downstream (which makes a cycle) is reported where it was written.
 * A node referring to itself is reported at once and adds no edge. The graph's `output`
 * template may name any node and adds no edge: it is resolved after every node ended.
 *
 * The compiled pieces hang off the plan (plan->xs, one rf_pnode_x per node, and
 * rf_pnode.x pointing into it for the nodes that use the language), so a node with none
 * of this costs the shard nothing more than one NULL test.
 */
#include "engine/rf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "engine/alloc.h"
#include "engine/expr.h"
#include "engine/internal.h"
#include "engine/jcs.h"

#define RF_POINTER_MAX 64

/* --- node ids by name ------------------------------------------------------------------- */

struct idtab {
    const rf_graph *g;
    uint32_t *slots; /* node index or UINT32_MAX; the first node of a duplicated id wins */
    uint32_t cap;
};

static int idtab_init(struct idtab *t, const rf_graph *g)
{
    t->g = g;
    t->cap = rf_pow2_ceil(g->n * 2 + 2);
    t->slots = malloc(t->cap * sizeof(*t->slots));
    if (!t->slots)
        return -ENOMEM;
    memset(t->slots, 0xff, t->cap * sizeof(*t->slots));
    for (uint32_t i = 0; i < g->n; i++) {
        const char *id = g->nodes[i].id;
        size_t len = strlen(id);
        uint32_t h = (uint32_t)XXH3_64bits(id, len) & (t->cap - 1);
        while (t->slots[h] != UINT32_MAX && strcmp(g->nodes[t->slots[h]].id, id) != 0)
            h = (h + 1) & (t->cap - 1);
        if (t->slots[h] == UINT32_MAX)
            t->slots[h] = i;
    }
    return 0;
}

static int idtab_find(void *ud, const char *id, size_t len)
{
    struct idtab *t = ud;
    uint32_t h = (uint32_t)XXH3_64bits(id, len) & (t->cap - 1);

    while (t->slots[h] != UINT32_MAX) {
        const char *s = t->g->nodes[t->slots[h]].id;
        if (strlen(s) == len && memcmp(s, id, len) == 0)
            return (int)t->slots[h];
        h = (h + 1) & (t->cap - 1);
    }
    return -1;
}

/* --- references become edges ------------------------------------------------------------- */

struct refctx {
    struct idtab *ids;
    struct rf_lang_build *lb;
    rf_diag *diag;
    int *bad;
    int err;       /* -ENOMEM seen while recording */
    uint32_t node; /* the node being compiled, or UINT32_MAX for the graph's output */
};

static int node_index_cb(void *ud, const char *id, size_t len)
{
    return idtab_find(((struct refctx *)ud)->ids, id, len);
}

static void on_ref_cb(void *ud, uint32_t from, const char *pointer)
{
    struct refctx *c = ud;
    struct rf_lang_build *lb = c->lb;

    if (c->node == UINT32_MAX)
        return; /* the graph's output: resolved after the end, no edge */
    if (from == c->node) {
        rf_diag_add(c->diag, pointer, "not_ancestor",
                    "node \"%.80s\" refers to its own output, which does not exist yet",
                    c->ids->g->nodes[from].id);
        *c->bad = 1;
        return;
    }
    if (lb->m == lb->mcap) {
        uint32_t cap = lb->mcap ? lb->mcap * 2 : 16;
        uint64_t *e = realloc(lb->edges, cap * sizeof(*e));
        char **p = e ? realloc(lb->edge_ptrs, cap * sizeof(*p)) : NULL;
        if (e)
            lb->edges = e;
        if (!p) {
            c->err = -ENOMEM;
            return;
        }
        lb->edge_ptrs = p;
        lb->mcap = cap;
    }
    lb->edge_ptrs[lb->m] = strdup(pointer);
    if (!lb->edge_ptrs[lb->m]) {
        c->err = -ENOMEM;
        return;
    }
    lb->edges[lb->m++] = (uint64_t)from << 32 | c->node;
}

/* --- one node ----------------------------------------------------------------------------- */

static bool node_uses_lang(const struct rf_pnode_x *x)
{
    return x->params || x->when || x->map || x->cache_ttl_s;
}

static int compile_map(const struct rf_gnode *gn, uint32_t i, struct rf_expr_env *env,
                       struct rf_pnode_x *x, rf_diag *diag, int *bad)
{
    char ptr[RF_POINTER_MAX];
    json_t *m;
    int rc;

    snprintf(ptr, sizeof(ptr), "/nodes/%u/map", i);
    m = json_string(gn->opts.map);
    if (!m) {
        rf_diag_add(diag, ptr, "invalid_map", "map must be a UTF-8 string holding a template");
        *bad = 1;
        return 0;
    }
    env->in_map = false;
    rc = rf_tmpl_compile(m, ptr, env, diag, &x->map);
    if (rc == 0 && !x->map) {
        rf_diag_add(diag, ptr, "invalid_map",
                    "map must be a template that resolves to an array, e.g. "
                    "\"{{nodes.list.output}}\"");
        *bad = 1;
    }
    json_decref(m);
    if (rc == RF_EINVAL_GRAPH) {
        *bad = 1;
        rc = 0;
    }
    x->max_parallel = gn->opts.max_parallel ? gn->opts.max_parallel : 64;
    if (x->max_parallel > RF_MAX_PARALLEL_MAX) {
        snprintf(ptr, sizeof(ptr), "/nodes/%u/max_parallel", i);
        rf_diag_add(diag, ptr, "limit", "max_parallel must be at most %u", RF_MAX_PARALLEL_MAX);
        *bad = 1;
    }
    return rc;
}

static int compile_node(const rf_graph *g, uint32_t i, struct refctx *rc_ctx,
                        struct rf_expr_env *env, struct rf_pnode_x *x)
{
    const struct rf_gnode *gn = &g->nodes[i];
    char ptr[RF_POINTER_MAX];
    int rc = 0;

    rc_ctx->node = i;
    if (gn->opts.when) {
        snprintf(ptr, sizeof(ptr), "/nodes/%u/when", i);
        env->in_map = false;
        rc =
            rf_cond_compile(gn->opts.when, strlen(gn->opts.when), ptr, env, rc_ctx->diag, &x->when);
        if (rc == RF_EINVAL_GRAPH)
            *rc_ctx->bad = 1;
        else if (rc < 0)
            return rc;
    }
    if (gn->opts.map) {
        rc = compile_map(gn, i, env, x, rc_ctx->diag, rc_ctx->bad);
        if (rc < 0)
            return rc;
    }
    if (gn->config) {
        snprintf(ptr, sizeof(ptr), "/nodes/%u/config", i);
        env->in_map = gn->opts.map != NULL;
        rc = rf_tmpl_compile(gn->config, ptr, env, rc_ctx->diag, &x->params);
        if (rc == RF_EINVAL_GRAPH)
            *rc_ctx->bad = 1;
        else if (rc < 0)
            return rc;
    }
    if (gn->opts.cache.ttl_s) {
        x->cache_ttl_s = gn->opts.cache.ttl_s;
        x->cache_version = strdup(gn->opts.cache.version ? gn->opts.cache.version : "");
        if (!x->cache_version)
            return -ENOMEM;
    }
    return rc_ctx->err;
}

int rf__lang_compile(rf_engine *eng, const rf_graph *g, struct rf_lang_build *lb, rf_diag *diag,
                     int *bad)
{
    struct idtab ids;
    struct refctx ctx = {.ids = &ids, .lb = lb, .diag = diag, .bad = bad};
    struct rf_expr_env env = {.node_index = node_index_cb, .on_ref = on_ref_cb, .ud = &ctx};
    int rc;

    (void)eng;
    memset(lb, 0, sizeof(*lb));
    rc = idtab_init(&ids, g);
    if (rc < 0)
        return rc;
    lb->xs = calloc(g->n ? g->n : 1, sizeof(*lb->xs));
    if (!lb->xs) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < g->n; i++) {
        rc = compile_node(g, i, &ctx, &env, &lb->xs[i]);
        if (rc < 0)
            goto out;
    }
    if (g->output) {
        ctx.node = UINT32_MAX;
        env.in_map = false;
        rc = rf_tmpl_compile(g->output, "/output", &env, diag, &lb->output);
        if (rc == RF_EINVAL_GRAPH)
            *bad = 1;
        else if (rc < 0)
            goto out;
    }
    rc = ctx.err;
out:
    free(ids.slots);
    return rc < 0 && rc != RF_EINVAL_GRAPH ? rc : 0;
}

void rf__lang_report_refs(const rf_graph *g, const struct rf_lang_build *lb, const uint32_t *indeg,
                          rf_diag *diag)
{
    for (uint32_t e = 0; e < lb->m; e++) {
        uint32_t from = (uint32_t)(lb->edges[e] >> 32), to = (uint32_t)lb->edges[e];
        if (indeg[from] == 0 || indeg[to] == 0)
            continue; /* ordered by Kahn: not on or behind a cycle */
        rf_diag_add(diag, lb->edge_ptrs[e], "not_ancestor",
                    "node \"%.80s\" refers to \"%.80s\", which is not upstream of it (the "
                    "reference closes a cycle)",
                    g->nodes[to].id, g->nodes[from].id);
    }
}

void rf__pnode_x_free(struct rf_pnode_x *xs, uint32_t n)
{
    if (!xs)
        return;
    for (uint32_t i = 0; i < n; i++) {
        rf_tmpl_free(xs[i].params);
        rf_cond_free(xs[i].when);
        rf_tmpl_free(xs[i].map);
        free((char *)xs[i].cache_version);
    }
    free(xs);
}

void rf__lang_build_free(struct rf_lang_build *lb, uint32_t n)
{
    rf__pnode_x_free(lb->xs, n);
    for (uint32_t e = 0; e < lb->m; e++)
        free(lb->edge_ptrs[e]);
    free(lb->edges);
    free(lb->edge_ptrs);
    rf_tmpl_free(lb->output);
    memset(lb, 0, sizeof(*lb));
}

/* --- finishing the plan ---------------------------------------------------------------------- */

/* `graph` nodes whose config names a literal graph: the registry checks recursion. */
static int collect_calls(rf_plan *p)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < p->n; i++)
        if (strcmp(p->cold[i].kind_name, "graph") == 0 &&
            json_is_string(json_object_get(p->nodes[i].config, "name")))
            n++;
    p->calls = calloc(n + 1, sizeof(*p->calls));
    if (!p->calls)
        return -ENOMEM;
    for (uint32_t i = 0; i < p->n; i++) {
        const json_t *c = p->nodes[i].config;
        const char *name = json_string_value(json_object_get(c, "name"));
        if (strcmp(p->cold[i].kind_name, "graph") != 0 || !name)
            continue;
        p->calls[p->ncalls] = strdup(name);
        if (!p->calls[p->ncalls++])
            return -ENOMEM;
    }
    return 0;
}

int rf__lang_finish_plan(rf_plan *p, const rf_graph *g)
{
    struct rf_buf scratch = {0};
    int rc = 0;

    for (uint32_t i = 0; i < p->n && rc == 0; i++) {
        const struct rf_pnode_x *x = p->nodes[i].x;
        if (x && (x->params || x->map))
            continue; /* params differ per run: hashed when the node runs */
        rc = rf_lineage(p->cold[i].kind_name, x && x->cache_version ? x->cache_version : "",
                        p->nodes[i].config, &scratch, p->cold[i].lineage);
        if (rc == 0)
            p->cold[i].lineage_static = true;
        else if (rc != -ENOMEM)
            rc = 0; /* a config JCS refuses (too deep): no static hash, runs hash it */
    }
    rf_buf_free(&scratch);
    if (rc < 0)
        return rc;
    if (g->inputs)
        p->inputs_decl = json_incref(g->inputs);
    if (g->doc)
        p->doc = json_incref(g->doc);
    return collect_calls(p);
}

bool rf__pnode_x_used(const struct rf_pnode_x *x)
{
    return node_uses_lang(x);
}
