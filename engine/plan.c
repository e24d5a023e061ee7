/*
 * engine/plan.c: the graph builder (rf_graph) and its compilation into an immutable plan.
 *
 * A builder is a plain growable list of nodes and edges, owned by one thread. Compilation
 * checks everything at once, appending every problem to an rf_diag with a JSON Pointer
 * into the equivalent graph document ("/nodes/3/id"), and only then builds the plan:
 *
 *   - names and ids against the spec's patterns, duplicate ids (one hash pass),
 *   - kinds by name, then each kind's own validate() on the node's config,
 *   - retry and timeout settings against their limits,
 *   - edges: self edges and indices; repeated edges are merged,
 *   - cycles: Kahn's algorithm orders the nodes; if some are left, one cycle among them
 *     is walked and reported by node ids,
 *   - the node count against plan_nodes_max.
 *
 * The plan stores successors in CSR form (one uint32_t array), each node's in-degree as
 * the execution's initial join counters, the roots, and every string in one table. Its
 * hot per-node record (struct rf_pnode) is what a shard reads to run a node. Building is
 * O(nodes + edges): edges are bucketed by source with a counting sort, and duplicates
 * removed per bucket.
 */
#include "engine/rf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "engine/expr.h"
#include "engine/internal.h"

#define RF_RETRY_ATTEMPTS_MAX 100
#define RF_BACKOFF_MS_MAX     3600000u  /* one hour */
#define RF_TIMEOUT_MS_MAX     86400000u /* one day */
#define RF_GRAPH_EDGES_MAX    (1u << 30)

/* --- diagnostics ------------------------------------------------------------------------ */

void rf_diag_init(rf_diag *d)
{
    memset(d, 0, sizeof(*d));
}

void rf_diag_free(rf_diag *d)
{
    if (!d)
        return;
    for (uint32_t i = 0; i < d->count; i++) {
        free(d->items[i].pointer);
        free(d->items[i].code);
        free(d->items[i].message);
    }
    free(d->items);
    rf_diag_init(d);
}

int rf_diag_add(rf_diag *d, const char *pointer, const char *code, const char *fmt, ...)
{
    rf_diag_item *it;
    va_list ap;
    char *msg = NULL;

    if (!d)
        return 0;
    if (d->count == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 8;
        rf_diag_item *items = realloc(d->items, cap * sizeof(*items));
        if (!items)
            return -ENOMEM;
        d->items = items;
        d->cap = cap;
    }
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    it = &d->items[d->count];
    it->pointer = strdup(pointer);
    it->code = strdup(code);
    it->message = msg;
    if (!it->pointer || !it->code) {
        free(it->pointer);
        free(it->code);
        free(msg);
        return -ENOMEM;
    }
    d->count++;
    return 0;
}

/* --- builder ---------------------------------------------------------------------------- */

int rf_graph_new(const char *name, rf_graph **out)
{
    rf_graph *g = calloc(1, sizeof(*g));

    if (!g)
        return -ENOMEM;
    g->name = strdup(name ? name : "");
    if (!g->name) {
        free(g);
        return -ENOMEM;
    }
    *out = g;
    return 0;
}

static void gnode_free(struct rf_gnode *gn)
{
    free(gn->id);
    free(gn->kind);
    json_decref(gn->config);
    free((char *)gn->opts.when);
    free((char *)gn->opts.map);
    free((char *)gn->opts.cache.version);
}

/* Copy the strings of `o` into gn->opts; -ENOMEM. */
static int gnode_opts_copy(struct rf_gnode *gn, const rf_node_opts *o)
{
    gn->opts = *o;
    gn->opts.when = o->when ? strdup(o->when) : NULL;
    gn->opts.map = o->map ? strdup(o->map) : NULL;
    gn->opts.cache.version = o->cache.version ? strdup(o->cache.version) : NULL;
    if ((o->when && !gn->opts.when) || (o->map && !gn->opts.map) ||
        (o->cache.version && !gn->opts.cache.version))
        return -ENOMEM;
    return 0;
}

void rf_graph_free(rf_graph *g)
{
    if (!g)
        return;
    for (uint32_t i = 0; i < g->n; i++)
        gnode_free(&g->nodes[i]);
    free(g->nodes);
    free(g->edges);
    free(g->name);
    json_decref(g->inputs);
    json_decref(g->output);
    json_decref(g->doc);
    free(g);
}

int rf_graph_add_node(rf_graph *g, const char *id, const char *kind, json_t *config,
                      const rf_node_opts *opts)
{
    struct rf_gnode *gn;

    if (!g || !id || !kind)
        return -EINVAL;
    if (g->n == INT32_MAX)
        return RF_ELIMIT;
    if (g->n == g->cap) {
        uint32_t cap = g->cap ? g->cap * 2 : 16;
        struct rf_gnode *nodes = realloc(g->nodes, cap * sizeof(*nodes));
        if (!nodes)
            return -ENOMEM;
        g->nodes = nodes;
        g->cap = cap;
    }
    gn = &g->nodes[g->n];
    memset(gn, 0, sizeof(*gn));
    gn->id = strdup(id);
    gn->kind = strdup(kind);
    if (!gn->id || !gn->kind || (opts && gnode_opts_copy(gn, opts) < 0)) {
        gnode_free(gn);
        return -ENOMEM;
    }
    gn->config = config ? json_incref(config) : NULL;
    return (int)g->n++;
}

int rf_graph_add_edge(rf_graph *g, uint32_t from, uint32_t to)
{
    if (!g || from >= g->n || to >= g->n)
        return -EINVAL;
    if (g->m >= RF_GRAPH_EDGES_MAX)
        return RF_ELIMIT;
    if (g->m == g->mcap) {
        uint32_t cap = g->mcap ? g->mcap * 2 : 16;
        uint64_t *e = realloc(g->edges, (size_t)cap * sizeof(*e));
        if (!e)
            return -ENOMEM;
        g->edges = e;
        g->mcap = cap;
    }
    g->edges[g->m++] = (uint64_t)from << 32 | to;
    return 0;
}

int rf_graph_set_inputs(rf_graph *g, json_t *decl)
{
    if (!g)
        return -EINVAL;
    json_decref(g->inputs);
    g->inputs = decl ? json_incref(decl) : NULL;
    return 0;
}

int rf_graph_set_output(rf_graph *g, json_t *output)
{
    if (!g)
        return -EINVAL;
    json_decref(g->output);
    g->output = output ? json_incref(output) : NULL;
    return 0;
}

int rf_graph_find(const rf_graph *g, const char *id)
{
    for (uint32_t i = 0; i < g->n; i++)
        if (strcmp(g->nodes[i].id, id) == 0)
            return (int)i;
    return -ENOENT;
}

/* --- validation ------------------------------------------------------------------------- */

static bool graph_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64)
        return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool node_id_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64)
        return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Duplicate ids with an open-addressing table of node indices. */
static int check_duplicate_ids(const rf_graph *g, rf_diag *d, int *bad)
{
    uint32_t cap = rf_pow2_ceil(g->n * 2 + 2);
    uint32_t *tab = malloc(cap * sizeof(*tab));

    if (!tab)
        return -ENOMEM;
    memset(tab, 0xff, cap * sizeof(*tab));
    for (uint32_t i = 0; i < g->n; i++) {
        const char *id = g->nodes[i].id;
        uint32_t h = (uint32_t)XXH3_64bits(id, strlen(id)) & (cap - 1);
        while (tab[h] != UINT32_MAX && strcmp(g->nodes[tab[h]].id, id) != 0)
            h = (h + 1) & (cap - 1);
        if (tab[h] == UINT32_MAX) {
            tab[h] = i;
            continue;
        }
        char ptr[32];
        snprintf(ptr, sizeof(ptr), "/nodes/%u/id", i);
        rf_diag_add(d, ptr, "duplicate_id", "node id \"%s\" is already used by /nodes/%u", id,
                    tab[h]);
        *bad = 1;
    }
    free(tab);
    return 0;
}

static void check_node(rf_engine *eng, const rf_graph *g, uint32_t i, rf_diag *d, int *bad)
{
    const struct rf_gnode *gn = &g->nodes[i];
    const rf_node_opts *o = &gn->opts;
    const struct rf_kind_ent *k;
    char ptr[48];

#define NODE_PROBLEM(field, code, ...)                                                             \
    do {                                                                                           \
        snprintf(ptr, sizeof(ptr), "/nodes/%u%s", i, field);                                       \
        rf_diag_add(d, ptr, code, __VA_ARGS__);                                                    \
        *bad = 1;                                                                                  \
    } while (0)

    if (!node_id_ok(gn->id))
        NODE_PROBLEM("/id", "invalid_id",
                     "node id \"%.80s\" must match [A-Za-z_][A-Za-z0-9_-]{0,63}", gn->id);
    k = rf__kind_find(eng, gn->kind);
    if (!k) {
        NODE_PROBLEM("/kind", "unknown_kind", "no node kind named \"%.80s\" is registered",
                     gn->kind);
    } else if (k->k.validate) {
        rf_error err = {0};
        if (k->k.validate(k->k.ud, gn->config ? gn->config : json_null(), &err) < 0)
            NODE_PROBLEM("/config", err.code[0] ? err.code : "invalid_config", "%s", err.message);
    }
    if (o->trigger != RF_TRIGGER_ALL_SUCCEEDED && o->trigger != RF_TRIGGER_ALL_DONE)
        NODE_PROBLEM("/trigger", "invalid_trigger", "trigger must be all_succeeded or all_done");
    if (o->timeout_ms > RF_TIMEOUT_MS_MAX)
        NODE_PROBLEM("/timeout_ms", "limit", "timeout_ms must be at most %u", RF_TIMEOUT_MS_MAX);
    if (o->retry.max_attempts > RF_RETRY_ATTEMPTS_MAX)
        NODE_PROBLEM("/retry/max_attempts", "limit", "max_attempts must be at most %d",
                     RF_RETRY_ATTEMPTS_MAX);
    if (o->retry.backoff_ms > RF_BACKOFF_MS_MAX)
        NODE_PROBLEM("/retry/backoff_ms", "limit", "backoff_ms must be at most %u",
                     RF_BACKOFF_MS_MAX);
    if (o->retry.max_backoff_ms > RF_BACKOFF_MS_MAX)
        NODE_PROBLEM("/retry/max_backoff_ms", "limit", "max_backoff_ms must be at most %u",
                     RF_BACKOFF_MS_MAX);
#undef NODE_PROBLEM
}

/* --- CSR and cycles --------------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Bucket edges by source, drop self edges (reported) and duplicates. Fills off[n+1],
 * succ[] (allocated) and returns the edge count kept, or a negative errno. */
static int64_t build_csr(const rf_graph *g, const uint64_t *edges, uint32_t nedges, uint32_t *off,
                         uint32_t **succ_out, rf_diag *d, int *bad)
{
    uint32_t n = g->n;
    uint32_t *fill, *succ;
    uint64_t kept = 0;

    memset(off, 0, (n + 1) * sizeof(*off));
    for (uint32_t e = 0; e < nedges; e++)
        off[(edges[e] >> 32) + 1]++;
    for (uint32_t i = 0; i < n; i++)
        off[i + 1] += off[i];
    succ = malloc((nedges ? nedges : 1) * sizeof(*succ));
    fill = malloc((n ? n : 1) * sizeof(*fill));
    if (!succ || !fill) {
        free(succ);
        free(fill);
        return -ENOMEM;
    }
    memcpy(fill, off, n * sizeof(*fill));
    for (uint32_t e = 0; e < nedges; e++) {
        uint32_t from = (uint32_t)(edges[e] >> 32), to = (uint32_t)edges[e];
        succ[fill[from]++] = to;
    }
    free(fill);
    /* Per source: sort, then compact out duplicates and self edges. */
    uint32_t w = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t a = off[i], b = off[i + 1], start = w;
        if (b - a > 1)
            qsort(succ + a, b - a, sizeof(*succ), cmp_u32);
        for (uint32_t k = a; k < b; k++) {
            if (succ[k] == i) {
                char ptr[32];
                if (k > a && succ[k - 1] == i)
                    continue; /* a repeated self edge is one problem */
                snprintf(ptr, sizeof(ptr), "/nodes/%u/deps", i);
                rf_diag_add(d, ptr, "self_dependency", "node \"%.80s\" depends on itself",
                            g->nodes[i].id);
                *bad = 1;
                continue;
            }
            if (w > start && succ[w - 1] == succ[k])
                continue;
            succ[w++] = succ[k];
        }
        off[i] = start;
        kept = w;
    }
    off[n] = (uint32_t)kept;
    *succ_out = succ;
    return (int64_t)kept;
}

/* Kahn's algorithm over the CSR. Returns the number of nodes ordered (n if acyclic);
 * indeg[] is consumed. */
static uint32_t topo_count(uint32_t n, const uint32_t *off, const uint32_t *succ, uint32_t *indeg,
                           uint32_t *queue)
{
    uint32_t head = 0, tail = 0;

    for (uint32_t i = 0; i < n; i++)
        if (indeg[i] == 0)
            queue[tail++] = i;
    while (head < tail) {
        uint32_t v = queue[head++];
        for (uint32_t k = off[v]; k < off[v + 1]; k++)
            if (--indeg[succ[k]] == 0)
                queue[tail++] = succ[k];
    }
    return tail;
}

/* After Kahn, the unordered nodes (indeg > 0) are those on a cycle or downstream of one.
 * Each keeps an unordered predecessor (the edge that held its indeg above zero), so a
 * walk along such predecessors never leaves them and must repeat a node; the nodes seen
 * between two visits of it form a cycle, read backwards. (A walk along successors has no
 * such guarantee: a node downstream of a cycle may lead nowhere.) O(nodes + edges). The
 * cycle is reported from its lowest-indexed node, forwards, at most 64 ids long. */
static void report_cycle(const rf_graph *g, const uint32_t *off, const uint32_t *succ,
                         const uint32_t *indeg, uint32_t *mark, rf_diag *d)
{
    uint32_t n = g->n, v = UINT32_MAX, start, len = 0;
    uint32_t *pred = malloc((n ? n : 1) * sizeof(*pred));
    char *msg = NULL;
    size_t msg_len = 0;
    FILE *f;

    if (!pred) {
        rf_diag_add(d, "/nodes", "cycle", "the graph has a cycle");
        return;
    }
    for (uint32_t u = 0; u < n; u++)
        for (uint32_t k = off[u]; indeg[u] > 0 && k < off[u + 1]; k++)
            pred[succ[k]] = u;
    for (uint32_t i = 0; i < n && v == UINT32_MAX; i++)
        if (indeg[i] > 0)
            v = i;
    RF_ASSERT(v != UINT32_MAX);
    memset(mark, 0, n * sizeof(*mark));
    while (!mark[v]) {
        mark[v] = 1;
        v = pred[v];
    }
    /* v is on a cycle: link each node on it to its successor on it, in mark[]. */
    start = v;
    for (uint32_t u = v, p;; u = p) {
        p = pred[u];
        mark[p] = u;
        len++;
        start = p < start ? p : start;
        if (p == v)
            break;
    }
    free(pred);
    f = open_memstream(&msg, &msg_len);
    if (!f) {
        rf_diag_add(d, "/nodes", "cycle", "the graph has a cycle");
        return;
    }
    fprintf(f, "the graph has a cycle: ");
    uint32_t u = start;
    for (uint32_t i = 0; i < len && i < 64; i++, u = mark[u])
        fprintf(f, "%s -> ", g->nodes[u].id);
    if (len > 64)
        fprintf(f, "... (%u nodes)", len);
    else
        fprintf(f, "%s", g->nodes[start].id);
    fclose(f);
    char ptr[32];
    snprintf(ptr, sizeof(ptr), "/nodes/%u", start);
    rf_diag_add(d, ptr, "cycle", "%s", msg);
    free(msg);
}

/* --- the plan ----------------------------------------------------------------------------- */

static char *strtab_put(char **cur, const char *s)
{
    size_t n = strlen(s) + 1;
    char *at = *cur;
    memcpy(at, s, n);
    *cur += n;
    return at;
}

static rf_retry retry_defaults(rf_retry r)
{
    if (r.max_attempts == 0)
        r.max_attempts = 1;
    if (r.backoff_ms == 0)
        r.backoff_ms = 100;
    if (r.max_backoff_ms == 0)
        r.max_backoff_ms = 10000;
    if (r.max_backoff_ms < r.backoff_ms)
        r.max_backoff_ms = r.backoff_ms;
    return r;
}

static int plan_alloc(rf_plan *p, const rf_graph *g, size_t strbytes, uint64_t m)
{
    uint32_t n = g->n;

    p->nodes = calloc(n ? n : 1, sizeof(*p->nodes));
    p->cold = calloc(n ? n : 1, sizeof(*p->cold));
    p->join0 = calloc(n ? n : 1, sizeof(*p->join0));
    p->roots = calloc(n ? n : 1, sizeof(*p->roots));
    p->strtab = malloc(strbytes);
    if (!p->nodes || !p->cold || !p->join0 || !p->roots || !p->strtab)
        return -ENOMEM;
    /* roots[] is sized for n: nroots is only known once it is filled. */
    p->bytes = sizeof(*p) +
               n * (sizeof(*p->nodes) + sizeof(*p->cold) + sizeof(*p->join0) + sizeof(*p->roots)) +
               m * sizeof(*p->succ) + strbytes;
    return 0;
}

static void plan_free(rf_plan *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; p->nodes && i < p->n; i++)
        json_decref((json_t *)p->nodes[i].config);
    rf__pnode_x_free(p->xs, p->n);
    rf_tmpl_free(p->output);
    json_decref(p->output_static);
    json_decref(p->inputs_decl);
    json_decref(p->doc);
    for (uint32_t c = 0; p->calls && p->calls[c]; c++)
        free(p->calls[c]);
    free(p->calls);
    free(p->nodes);
    free(p->cold);
    free(p->succ);
    free(p->join0);
    free(p->roots);
    free(p->strtab);
    free(p);
}

static int plan_fill(rf_engine *eng, const rf_graph *g, rf_plan *p, uint32_t *off)
{
    size_t strbytes = strlen(g->name) + 1;
    char *cur;
    int rc;

    for (uint32_t i = 0; i < g->n; i++)
        strbytes += strlen(g->nodes[i].id) + strlen(g->nodes[i].kind) + 2;
    rc = plan_alloc(p, g, strbytes, off[g->n]);
    if (rc < 0)
        return rc;
    cur = p->strtab;
    p->name = strtab_put(&cur, g->name);
    for (uint32_t i = 0; i < g->n; i++) {
        for (uint32_t k = off[i]; k < off[i + 1]; k++)
            p->join0[p->succ[k]]++;
    }
    for (uint64_t k = 0; k < off[g->n]; k++) {
        uint32_t deps = p->join0[p->succ[k]];
        p->succ[k] |= deps == 1 ? RF_SUCC_SOLE : deps >= RF_WIDE_DEPS ? RF_SUCC_WIDE : 0;
    }
    for (uint32_t i = 0; i < g->n; i++) {
        const struct rf_gnode *gn = &g->nodes[i];
        struct rf_pnode *pn = &p->nodes[i];
        pn->kind = rf__kind_find(eng, gn->kind);
        pn->config = gn->config ? json_incref(gn->config) : json_null();
        pn->id = strtab_put(&cur, gn->id);
        pn->succ_off = off[i];
        pn->nsucc = off[i + 1] - off[i];
        pn->trigger = (uint8_t)gn->opts.trigger;
        pn->flags = (pn->nsucc == 0 ? RF_PN_SINK : 0) | (gn->opts.timeout_ms ? RF_PN_TIMEOUT : 0) |
                    (pn->kind->k.type == RF_KIND_SYNC ? RF_PN_SYNC : 0);
        if (p->xs && rf__pnode_x_used(&p->xs[i])) {
            pn->x = &p->xs[i];
            pn->flags |=
                RF_PN_LANG | (pn->x->map ? RF_PN_MAP : 0) | (pn->x->cache_ttl_s ? RF_PN_CACHE : 0);
        }
        p->cold[i].kind_name = strtab_put(&cur, gn->kind);
        p->cold[i].timeout_ms = gn->opts.timeout_ms;
        p->cold[i].retry = retry_defaults(gn->opts.retry);
        if (pn->nsucc == 0)
            p->nsinks++;
        if (p->join0[i] == 0)
            p->roots[p->nroots++] = i;
    }
    return 0;
}

/* The builder's edges followed by the implicit ones; *owned tells whether to free. */
static uint64_t *all_edges(const rf_graph *g, const struct rf_lang_build *lb, bool *owned)
{
    uint64_t *e;

    *owned = false;
    if (lb->m == 0)
        return g->edges;
    e = malloc(((size_t)g->m + lb->m) * sizeof(*e));
    if (!e)
        return NULL;
    if (g->m)
        memcpy(e, g->edges, g->m * sizeof(*e));
    memcpy(e + g->m, lb->edges, lb->m * sizeof(*e));
    *owned = true;
    return e;
}

int rf_plan_compile(rf_engine *eng, const rf_graph *g, rf_diag *diag, rf_plan **out)
{
    uint32_t *off = NULL, *succ = NULL, *indeg = NULL, *queue = NULL;
    struct rf_lang_build lb = {0};
    uint64_t *edges = NULL;
    bool edges_owned = false;
    rf_plan *p = NULL;
    int bad = 0, rc;
    int64_t m;

    if (!eng || !g || !out)
        return -EINVAL;
    if (!graph_name_ok(g->name)) {
        rf_diag_add(diag, "/name", "invalid_name",
                    "graph name \"%.80s\" must match [a-z0-9][a-z0-9._-]{0,63}", g->name);
        bad = 1;
    }
    if (g->n > eng->cfg.plan_nodes_max) {
        rf_diag_add(diag, "/nodes", "too_many_nodes", "the graph has %u nodes; the limit is %u",
                    g->n, eng->cfg.plan_nodes_max);
        return RF_EINVAL_GRAPH;
    }
    rc = check_duplicate_ids(g, diag, &bad);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < g->n; i++)
        check_node(eng, g, i, diag, &bad);
    if (g->inputs && !g->doc) { /* rf_graph_parse checked a document's already */
        rc = rf__inputs_decl_check(g->inputs, "/inputs", diag);
        if (rc == RF_EINVAL_GRAPH)
            bad = 1;
        else if (rc < 0)
            return rc;
    }
    rc = rf__lang_compile(eng, g, &lb, diag, &bad);
    if (rc < 0)
        goto out;

    rc = -ENOMEM;
    off = malloc((g->n + 1) * sizeof(*off));
    indeg = calloc(g->n + 1, sizeof(*indeg));
    queue = malloc((g->n + 1) * sizeof(*queue));
    edges = all_edges(g, &lb, &edges_owned);
    if (!off || !indeg || !queue || (!edges && g->m + lb.m))
        goto out;
    m = build_csr(g, edges, g->m + lb.m, off, &succ, diag, &bad);
    if (m < 0) {
        rc = (int)m;
        goto out;
    }
    for (uint64_t k = 0; k < (uint64_t)m; k++)
        indeg[succ[k]]++;
    if (topo_count(g->n, off, succ, indeg, queue) != g->n) {
        rf__lang_report_refs(g, &lb, indeg, diag);
        report_cycle(g, off, succ, indeg, queue, diag);
        bad = 1;
    }
    if (bad) {
        rc = RF_EINVAL_GRAPH;
        goto out;
    }
    p = calloc(1, sizeof(*p));
    if (!p)
        goto out;
    p->n = g->n;
    p->eng = eng;
    p->succ = succ;
    succ = NULL;
    atomic_init(&p->refs, 1);
    p->xs = lb.xs;
    lb.xs = NULL;
    p->output = lb.output;
    lb.output = NULL;
    if (g->output && !p->output)
        p->output_static = json_incref(g->output);
    rc = plan_fill(eng, g, p, off);
    if (rc < 0)
        goto out;
    rc = rf__lang_finish_plan(p, g);
    if (rc < 0)
        goto out;
    *out = p;
    p = NULL;
    rc = 0;
out:
    plan_free(p);
    rf__lang_build_free(&lb, g->n);
    if (edges_owned)
        free(edges);
    free(off);
    free(succ);
    free(indeg);
    free(queue);
    return rc;
}

rf_plan *rf_plan_retain(rf_plan *p)
{
    /* Relaxed: taking a reference needs no ordering, the caller already holds one. */
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void rf_plan_release(rf_plan *p)
{
    /* acq_rel: the last releaser must see every other holder's reads completed. */
    if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        plan_free(p);
}

uint32_t rf_plan_nodes(const rf_plan *p)
{
    return p->n;
}

const char *rf_plan_name(const rf_plan *p)
{
    return p->name;
}

const char *rf_plan_node_id(const rf_plan *p, uint32_t node)
{
    return node < p->n ? p->nodes[node].id : NULL;
}

const char *rf_plan_node_kind(const rf_plan *p, uint32_t node)
{
    return node < p->n ? p->cold[node].kind_name : NULL;
}

uint32_t rf_plan_version(const rf_plan *p)
{
    return p->version;
}

const char *rf_plan_hash(const rf_plan *p)
{
    return p->hash;
}

const json_t *rf_plan_document(const rf_plan *p)
{
    return p->doc;
}

int64_t rf_plan_created_us(const rf_plan *p)
{
    return p->created_us;
}

int rf_plan_from_json(rf_engine *eng, const char *json, size_t len, rf_diag *diag, rf_plan **out)
{
    rf_graph *g = NULL;
    int rc = rf_graph_parse(eng, json, len, diag, &g);

    if (rc < 0)
        return rc;
    rc = rf_plan_compile(eng, g, diag, out);
    rf_graph_free(g);
    return rc;
}

int rf_inputs_check(const rf_plan *p, const json_t *inputs, rf_diag *diag, json_t **resolved)
{
    if (!p || !resolved)
        return -EINVAL;
    return rf__inputs_resolve(p->inputs_decl, inputs, diag, resolved);
}

size_t rf_plan_bytes(const rf_plan *p)
{
    return p->bytes;
}

size_t rf_plan_exec_bytes(const rf_plan *p)
{
    return (size_t)p->n * sizeof(struct rf_nstate);
}
