/*
 * engine/lrun.c: running nodes that use the graph language: `when`, templated params,
 * the result cache with single flight, and mapped nodes.
 *
 * A node whose plan entry has RF_PN_LANG goes through rf__node_begin() instead of straight
 * to its first attempt. Its run moves through phases kept in the execution's per-node
 * rf_naux (allocated on first need, so plain graphs never pay for it):
 *
 *   NEW     evaluate `when` (false -> skipped), resolve the params (a template that does
 *           not resolve fails the node with template_error, never retried), compute the
 *           lineage hash when the node is cached or someone watches the events;
 *   PARAMS  look the cache up: a hit ends the node `cached` with the stored output. A
 *           miss joins the single flight of the lineage hash: the first run leads and
 *           runs; the others park a task until the leader lands, then come back here and
 *           find its output in the cache (or, if it failed, one of them leads anew);
 *   RUN     attempts, retries and timeouts, as for any node (engine/exec.c). When a cached
 *           node ends, its output is stored (succeeded runs only) and its flight lands.
 *
 * A mapped node resolves its `map` to an array and runs its kind once per item on
 * `nlanes` = min(max_parallel, items) lanes. A lane is a token in the deques (so lanes run
 * on any shard and are stolen like nodes) that claims the next item with one relaxed
 * fetch_add, runs it through the same phases (item and index in the template scope), and
 * comes back for the next. Items keep 16 bytes of state each; their outputs are gathered
 * in order when the last lane retires, and the node ends once, then. A failed item stops
 * new claims (the node fails naming the first failed item, the unclaimed items are
 * skipped); cancellation stops them too. A lane in a retry back-off or a flight is a task
 * like any other, so cancellation reaches it.
 *
 * Memory: a run of a mapped node over k items costs sizeof(struct rf_mapst) + 16 k bytes
 * plus one rf_lane per lane, beside the items and outputs themselves; nothing scales with
 * the graph's size.
 */
#include "engine/rf.h"

#include <errno.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/expr.h"
#include "engine/internal.h"
#include "engine/jcs.h"
#include "sched/shard.h"
#include "storage/cache.h"

static bool want_lineage(const struct rf_exec *ex, const struct rf_pnode *pn)
{
    return (pn->flags & RF_PN_CACHE) || rf__events_on(ex);
}

static int lineage_of(struct rf_shard *sh, const rf_plan *p, uint32_t i, const json_t *params,
                      uint8_t out[16])
{
    const struct rf_pnode_x *x = p->nodes[i].x;

    return rf_lineage(p->cold[i].kind_name, x && x->cache_version ? x->cache_version : "",
                      params ? params : p->nodes[i].config, &sh->jcs, out);
}

/* --- the cache and single flight ---------------------------------------------------------- */

/* 1 hit (*out owned), 0 miss. A backend error counts as a miss: the node runs. */
static int cache_lookup(struct rf_shard *sh, const uint8_t key[16], json_t **out)
{
    struct rf_cache_req req = {0};
    int rc;

    memcpy(req.key, key, 16);
    rc = rf_cache_get(sh->eng->cache, &req, out);
    /* The memory backend answers at once; a network backend's pending lookups arrive with
     * the storage issue's Redis backend, through req.done on this shard. */
    RF_ASSERT(rc != -EINPROGRESS);
    return rc == 1;
}

static void flight_woken(struct rf_task *t)
{
    struct rf_shard *sh = t->sh;
    uint64_t tok = t->tok;

    rf__task_unlink(t);
    rf__task_put(sh, t);
    /* Back through the checks: a cancellation wins, else the cache is looked up again. */
    rf__shard_push(sh, tok);
}

/* 1: lead the flight (run). 0: parked behind it (return no token). */
static int flight_enter(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, uint32_t lane,
                        uint64_t tok, const uint8_t key[16])
{
    struct rf_task *t = rf__task_get(sh);
    int rc;

    if (!t)
        return 1; /* no memory to wait: run, without leading (nobody waits for us) */
    t->ex = ex;
    t->node = i;
    t->lane = lane;
    t->tok = tok;
    t->state = RF_TASK_FLIGHT;
    t->woken = flight_woken;
    memcpy(t->key, key, 16);
    rf__task_link(sh, t);
    rc = rf_flight_join(sh->eng->flight, key, &t->fw);
    if (rc == 0) {
        /* Relaxed: a statistic. */
        atomic_fetch_add_explicit(&sh->eng->flights_joined, 1, memory_order_relaxed);
        return 0;
    }
    rf__task_unlink(t);
    rf__task_put(sh, t);
    return rc == 1 ? 2 : 1; /* 2: we lead and must land */
}

static void flight_land(struct rf_shard *sh, const uint8_t key[16])
{
    struct rf_flight_waiter *w = rf_flight_land(sh->eng->flight, key);

    while (w) {
        struct rf_flight_waiter *next = w->next; /* read before the owner may reuse it */
        rf__shard_task_wake(rf_container_of(w, struct rf_task, fw));
        w = next;
    }
}

void rf__flight_task_cancel(struct rf_shard *sh, struct rf_task *t)
{
    if (rf_flight_leave(sh->eng->flight, t->key, &t->fw) == 0)
        flight_woken(t); /* out of the queue: resume now, the run sees the cancellation */
    /* else the flight landed and the wake is on its way: flight_woken resumes it. */
}

/* After a cached run: store a success (memory, and the remote tier, which gives its lease
 * back), give the lease back after anything else, land the flight it led. */
static void cache_after(struct rf_shard *sh, const rf_plan *p, uint32_t i, const uint8_t *key,
                        bool *leader, bool *rlease, rf_status st, json_t *out)
{
    const struct rf_engine *eng = sh->eng;

    if (!key)
        return;
    if (st == RF_ST_SUCCEEDED) {
        uint32_t ttl = p->nodes[i].x->cache_ttl_s;
        rf_cache_put(eng->cache, key, out ? out : json_null(), ttl);
        if (eng->remote)
            eng->remote->store(eng->remote_ud, key, out ? out : json_null(), ttl, *rlease);
    } else if (*rlease) {
        eng->remote->abandon(eng->remote_ud, key);
    }
    *rlease = false;
    if (*leader) {
        *leader = false;
        flight_land(sh, key);
    }
}

void rf__cache_after_node(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, rf_status st)
{
    /* Acquire: pairs with the CAS that published the array. */
    struct rf_naux *aux = atomic_load_explicit(&ex->aux, memory_order_acquire);

    if (!aux || (ex->plan->nodes[i].flags & RF_PN_MAP))
        return; /* never began (skipped, canceled early), or its items did the caching */
    cache_after(sh, ex->plan, i, rf__run_lineage(ex, i, RF_NO_LANE), &aux[i].leader,
                &aux[i].rlease, st, ex->ns[i].output);
}

/* --- the remote tier ------------------------------------------------------------------------ */

#define RF_LEASE_MS_DEFAULT 30000u  /* a node without a timeout */
#define RF_LEASE_MS_MIN     1000u
#define RF_LEASE_MS_MAX     600000u

/* How long the remote lease of node i lasts: every attempt's timeout, and a second. */
static uint32_t lease_ms(const rf_plan *p, uint32_t i)
{
    uint64_t t = p->cold[i].timeout_ms;
    uint32_t n = p->cold[i].retry.max_attempts ? p->cold[i].retry.max_attempts : 1;

    if (!t)
        return RF_LEASE_MS_DEFAULT;
    t = t * n + 1000;
    return (uint32_t)RF_MAX(RF_LEASE_MS_MIN, RF_MIN(t, RF_LEASE_MS_MAX));
}

/* The remote tier answered, on this shard: hand the answer to the node (or lane) and run
 * its token again. A hit is copied into the memory cache first, for this process's other
 * runs of the lineage (the flight's waiters look there when it lands). */
static void remote_done(struct rf_rcache_req *req, int res, json_t *value)
{
    struct rf_task *t = rf_container_of(req, struct rf_task, rreq);
    struct rf_shard *sh = t->sh;
    struct rf_exec *ex = t->ex;
    uint32_t i = t->node, lane = t->lane;
    uint64_t tok = t->tok;
    struct rf_naux *a = &rf__aux_get(ex)[i];

    rf__task_unlink(t);
    rf__task_put(sh, t);
    if (res == 1)
        rf_cache_put(sh->eng->cache, req->key, value, ex->plan->nodes[i].x->cache_ttl_s);
    if (lane == RF_NO_LANE) {
        a->rres = (int8_t)(res > 0 ? 1 : res == 0 ? 0 : -1);
        a->rvalue = value;
        a->phase = RF_PHASE_FETCH;
    } else {
        struct rf_lane *ln = &a->map->lanes[lane];
        ln->rres = (int8_t)(res > 0 ? 1 : res == 0 ? 0 : -1);
        ln->rvalue = value;
        ln->phase = RF_PHASE_FETCH;
    }
    rf__shard_push(sh, tok);
}

/* Ask the remote tier (the flight's leader only). true: parked until it answers. */
static bool remote_fetch(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, uint32_t lane,
                         uint64_t tok, const uint8_t key[16])
{
    const struct rf_engine *eng = sh->eng;
    struct rf_task *t;

    if (!eng->remote || !(t = rf__task_get(sh)))
        return false; /* no tier, or no memory to wait: run */
    t->ex = ex;
    t->node = i;
    t->lane = lane;
    t->tok = tok;
    t->state = RF_TASK_REMOTE;
    memcpy(t->key, key, 16);
    t->rreq.done = remote_done;
    memcpy(t->rreq.key, key, 16);
    t->rreq.lease_ms = lease_ms(ex->plan, i);
    rf__task_link(sh, t);
    if (eng->remote->fetch(eng->remote_ud, &t->rreq) == -EINPROGRESS)
        return true;
    rf__task_unlink(t);
    rf__task_put(sh, t);
    return false; /* the tier is unavailable: run without it */
}

void rf__remote_task_cancel(struct rf_shard *sh, struct rf_task *t)
{
    sh->eng->remote->cancel(sh->eng->remote_ud, &t->rreq); /* its answer comes soon */
}

/* --- plain nodes ------------------------------------------------------------------------ */

static uint64_t map_begin(struct rf_shard *sh, struct rf_exec *ex, uint32_t i,
                          const struct rf_scope *sc);

/* The remote tier's answer for node i: a hit ends it `cached`; otherwise it runs, holding
 * the lease when the answer was a miss. */
static uint64_t node_fetched(struct rf_shard *sh, struct rf_exec *ex, uint32_t i,
                             struct rf_naux *a, bool *go)
{
    json_t *hit = a->rvalue;

    a->rvalue = NULL;
    a->phase = RF_PHASE_RUN;
    if (a->rres == 1) {
        ex->ns[i].output = hit;
        atomic_store_explicit(&ex->has_outputs, 1, memory_order_relaxed); /* free scans */
        *go = false;
        return rf__node_finish(sh, ex, i, RF_ST_CACHED);
    }
    a->rlease = a->rres == 0;
    *go = true;
    return RF_TOK_NONE;
}

/* The cache phase of a node: a hit ends it, a flight or the remote tier parks it.
 * RF_TOK_NONE + *parked, or a token to return, or RF_TOK_NONE with *go set to run. */
static uint64_t node_cache(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, struct rf_naux *a,
                           bool *go)
{
    const uint8_t *key = rf__run_lineage(ex, i, RF_NO_LANE);
    json_t *hit = NULL;

    *go = true;
    if (!key)
        return RF_TOK_NONE;
    if (a->phase == RF_PHASE_FETCH)
        return node_fetched(sh, ex, i, a, go);
    if (cache_lookup(sh, key, &hit)) {
        ex->ns[i].output = hit;
        atomic_store_explicit(&ex->has_outputs, 1, memory_order_relaxed); /* free scans */
        a->phase = RF_PHASE_RUN;
        *go = false;
        return rf__node_finish(sh, ex, i, RF_ST_CACHED);
    }
    switch (flight_enter(sh, ex, i, RF_NO_LANE, rf_tok(ex->slot, i), key)) {
    case 0:
        *go = false; /* parked: the leader's landing brings us back */
        return RF_TOK_NONE;
    case 2:
        a->leader = true;
        break;
    }
    if (remote_fetch(sh, ex, i, RF_NO_LANE, rf_tok(ex->slot, i), key))
        *go = false; /* its answer brings us back in RF_PHASE_FETCH */
    return RF_TOK_NONE;
}

static uint64_t node_new(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, struct rf_naux *a,
                         bool *go)
{
    const struct rf_pnode *pn = &ex->plan->nodes[i];
    const struct rf_pnode_x *x = pn->x;
    rf_error err = {0};
    struct rf_scope sc;
    bool ok = true;

    *go = false;
    rf__scope_fill(&sc, ex, NULL, 0);
    if (x->when && rf_cond_eval(x->when, &sc, &ok, &err) < 0)
        return rf__node_fail_now(sh, ex, i, &err);
    if (!ok)
        return rf__node_finish(sh, ex, i, RF_ST_SKIPPED);
    if (pn->flags & RF_PN_MAP)
        return map_begin(sh, ex, i, &sc);
    if (x->params && rf_tmpl_eval(x->params, &sc, &a->params, &err) < 0)
        return rf__node_fail_now(sh, ex, i, &err);
    if (!ex->plan->cold[i].lineage_static && want_lineage(ex, pn) &&
        lineage_of(sh, ex->plan, i, a->params, a->lineage) == 0)
        a->has_lineage = true;
    a->phase = RF_PHASE_PARAMS;
    *go = true;
    return RF_TOK_NONE;
}

uint64_t rf__node_begin(struct rf_shard *sh, struct rf_exec *ex, uint32_t i)
{
    struct rf_naux *a = &rf__aux_get(ex)[i];
    uint64_t next;
    bool go;

    if (a->phase == RF_PHASE_NEW) {
        next = node_new(sh, ex, i, a, &go);
        if (!go)
            return next;
    }
    if (a->phase == RF_PHASE_PARAMS || a->phase == RF_PHASE_FETCH) {
        if (ex->plan->nodes[i].flags & RF_PN_CACHE) {
            next = node_cache(sh, ex, i, a, &go);
            if (!go)
                return next;
        }
        a->phase = RF_PHASE_RUN;
    }
    return rf__attempt_start(sh, ex, i, RF_NO_LANE);
}

/* --- mapped nodes ------------------------------------------------------------------------- */

void rf__map_free(struct rf_mapst *ms)
{
    if (!ms)
        return;
    for (uint32_t k = 0; ms->items && k < ms->n; k++)
        json_decref(ms->items[k].val);
    for (uint32_t l = 0; l < ms->nlanes; l++) {
        json_decref(ms->lanes[l].params);
        rf_cache_value_release(ms->lanes[l].rvalue);
    }
    json_decref(ms->arr);
    rf_free(ms->items);
    rf_free(ms);
}

static struct rf_mapst *map_alloc(json_t *arr, uint32_t n, uint32_t lanes)
{
    struct rf_mapst *ms = rf_calloc(1, sizeof(*ms) + lanes * sizeof(ms->lanes[0]));

    if (!ms)
        return NULL;
    ms->items = rf_calloc(n, sizeof(*ms->items));
    if (!ms->items) {
        rf_free(ms);
        return NULL;
    }
    ms->arr = arr;
    ms->n = n;
    ms->nlanes = lanes;
    atomic_init(&ms->next, 0);
    atomic_init(&ms->lanes_live, lanes);
    atomic_init(&ms->stop, 0);
    atomic_init(&ms->failed_item, -1);
    for (uint32_t l = 0; l < lanes; l++)
        ms->lanes[l].item = UINT32_MAX;
    return ms;
}

static uint64_t map_begin(struct rf_shard *sh, struct rf_exec *ex, uint32_t i,
                          const struct rf_scope *sc)
{
    const struct rf_pnode_x *x = ex->plan->nodes[i].x;
    struct rf_naux *a = &rf__aux_get(ex)[i];
    uint32_t max = sh->eng->cfg.map_items_max, n, lanes;
    rf_error err = {0};
    json_t *arr = NULL;

    if (rf_tmpl_eval(x->map, sc, &arr, &err) < 0)
        return rf__node_fail_now(sh, ex, i, &err);
    if (!json_is_array(arr) || json_array_size(arr) > max) {
        if (!json_is_array(arr))
            rf_error_set(&err, -EINVAL, false, "template_error",
                         "map resolved to a non-array value, not an array");
        else
            rf_error_set(&err, RF_ELIMIT, false, "limit", "map: %zu items, the limit is %u",
                         json_array_size(arr), max);
        json_decref(arr);
        return rf__node_fail_now(sh, ex, i, &err);
    }
    n = (uint32_t)json_array_size(arr);
    a->phase = RF_PHASE_RUN;
    atomic_store_explicit(&ex->ns[i].attempts, 1, memory_order_relaxed);           /* owner */
    atomic_store_explicit(&ex->ns[i].status, RF_ST_RUNNING, memory_order_relaxed); /* snapshot */
    if (rf__events_on(ex))
        rf__evq_emit(ex, RF_EV_NODE_STARTED, i, 1, 0, NULL);
    if (n == 0) {
        json_decref(arr);
        ex->ns[i].output = json_array();
        atomic_store_explicit(&ex->has_outputs, 1, memory_order_relaxed); /* free scans */
        return rf__node_finish(sh, ex, i, RF_ST_SUCCEEDED);
    }
    lanes = RF_MIN(x->max_parallel, n);
    a->map = map_alloc(arr, n, lanes);
    if (!a->map) {
        json_decref(arr);
        rf_error_set(&err, -ENOMEM, false, "internal", "map: no memory for %u items", n);
        return rf__node_fail_now(sh, ex, i, &err);
    }
    /* The lanes' tokens publish a->map to whichever shard runs them (deque release). */
    for (uint32_t l = 1; l < lanes; l++)
        rf__shard_push(sh, rf_tok_run(ex->slot, i, l));
    if (lanes > 1)
        rf__shard_wake_sibling(sh);
    return rf_tok_run(ex->slot, i, 0);
}

uint64_t rf__item_finish(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, uint32_t lane,
                         rf_status st, json_t *val)
{
    struct rf_mapst *ms = rf__aux_get(ex)[i].map;
    struct rf_lane *ln = &ms->lanes[lane];
    struct rf_item *it = &ms->items[ln->item];

    if (st == RF_ST_SUCCEEDED || st == RF_ST_CACHED) {
        json_decref(it->val); /* an earlier attempt's error */
        it->val = val ? val : json_null();
    }
    if (ex->plan->nodes[i].flags & RF_PN_CACHE)
        cache_after(sh, ex->plan, i, rf__run_lineage(ex, i, lane), &ln->leader, &ln->rlease, st,
                    it->val);
    rf_cache_value_release(ln->rvalue); /* a remote hit that a cancellation overtook */
    ln->rvalue = NULL;
    it->status = (uint8_t)st; /* read by map_finish after the lanes' acq_rel retire */
    if (rf__events_on(ex))
        rf__run_emit(ex, i, lane, rf__ev_of_status(st), 0,
                     st == RF_ST_CANCELED || st == RF_ST_SKIPPED ? NULL : json_incref(it->val));
    if (st == RF_ST_FAILED) {
        int32_t none = -1;
        /* Relaxed: the lanes' retire orders it before map_finish reads it. */
        atomic_compare_exchange_strong_explicit(&ms->failed_item, &none, (int32_t)ln->item,
                                                memory_order_relaxed, memory_order_relaxed);
    }
    if (st == RF_ST_FAILED || st == RF_ST_CANCELED)
        atomic_store_explicit(&ms->stop, 1, memory_order_relaxed); /* a hint to claimers */
    json_decref(ln->params);
    ln->params = NULL;
    ln->has_lineage = false;
    ln->item = UINT32_MAX;
    return rf_tok_run(ex->slot, i, lane);
}

static uint64_t map_finish(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, struct rf_mapst *ms)
{
    int32_t fi = atomic_load_explicit(&ms->failed_item, memory_order_relaxed);
    bool canceled = false;
    json_t *out;

    if (fi >= 0) {
        const json_t *e = ms->items[fi].val;
        const char *code = json_string_value(json_object_get(e, "code"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        rf_error err;
        rf_error_set(&err, -EIO, false, code ? code : "item_failed", "item %d failed: %s", fi,
                     msg ? msg : "");
        return rf__node_fail_now(sh, ex, i, &err);
    }
    for (uint32_t k = 0; k < ms->n && !canceled; k++)
        canceled = ms->items[k].status == RF_ST_CANCELED;
    if (canceled)
        return rf__node_finish(sh, ex, i, RF_ST_CANCELED);
    out = json_array();
    for (uint32_t k = 0; out && k < ms->n; k++)
        if (json_array_append(out, ms->items[k].val) < 0) {
            json_decref(out);
            out = NULL;
        }
    if (!out) {
        rf_error err;
        rf_error_set(&err, -ENOMEM, false, "internal", "no memory for the map's output");
        return rf__node_fail_now(sh, ex, i, &err);
    }
    ex->ns[i].output = out;
    atomic_store_explicit(&ex->has_outputs, 1, memory_order_relaxed); /* free scans */
    return rf__node_finish(sh, ex, i, RF_ST_SUCCEEDED);
}

/* The lane has no item left to run. Unclaimed items are skipped (or canceled) when the run
 * stops early; the last lane out ends the node. */
static uint64_t lane_retire(struct rf_shard *sh, struct rf_exec *ex, uint32_t i,
                            struct rf_mapst *ms, bool drain)
{
    if (drain) {
        /* Relaxed exchange: claimers after it see next >= n; items below what it returns
         * were claimed by fetch_adds before it, the rest are ours alone. */
        uint32_t k = atomic_exchange_explicit(&ms->next, ms->n, memory_order_relaxed);
        /* Relaxed: the bit was set before the token reached us. */
        uint8_t st = (atomic_load_explicit(&ex->ctl, memory_order_relaxed) & RF_CTL_CANCEL)
                         ? RF_ST_CANCELED
                         : RF_ST_SKIPPED;
        for (uint32_t j = k; j < ms->n; j++)
            ms->items[j].status = st;
    }
    /* acq_rel: the last lane sees every item's state written by the others. */
    if (atomic_fetch_sub_explicit(&ms->lanes_live, 1, memory_order_acq_rel) != 1)
        return RF_TOK_NONE;
    return map_finish(sh, ex, i, ms);
}

/* Resolve an item's params and lineage. false when the item ended (template error). */
static bool item_new(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, struct rf_mapst *ms,
                     struct rf_lane *ln, uint64_t *next, uint32_t lane)
{
    const struct rf_pnode *pn = &ex->plan->nodes[i];
    struct rf_item *it = &ms->items[ln->item];
    rf_error err = {0};
    struct rf_scope sc;

    rf__scope_fill(&sc, ex, json_array_get(ms->arr, ln->item), ln->item);
    if (pn->x->params && rf_tmpl_eval(pn->x->params, &sc, &ln->params, &err) < 0) {
        it->val = rf__error_json(&err, pn->id);
        *next = rf__item_finish(sh, ex, i, lane, RF_ST_FAILED, NULL);
        return false;
    }
    if (want_lineage(ex, pn) && (pn->x->params || !ex->plan->cold[i].lineage_static) &&
        lineage_of(sh, ex->plan, i, ln->params, ln->lineage) == 0)
        ln->has_lineage = true;
    ln->phase = RF_PHASE_PARAMS;
    return true;
}

static uint64_t item_step(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, struct rf_mapst *ms,
                          uint32_t lane)
{
    struct rf_lane *ln = &ms->lanes[lane];
    uint64_t next = RF_TOK_NONE;
    json_t *hit = NULL;

    if (ln->phase == RF_PHASE_NEW && !item_new(sh, ex, i, ms, ln, &next, lane))
        return next;
    if (ln->phase == RF_PHASE_FETCH) { /* the remote tier answered */
        hit = ln->rvalue;
        ln->rvalue = NULL;
        ln->phase = RF_PHASE_RUN;
        if (ln->rres == 1)
            return rf__item_finish(sh, ex, i, lane, RF_ST_CACHED, hit);
        ln->rlease = ln->rres == 0;
    }
    if (ln->phase == RF_PHASE_PARAMS) {
        const uint8_t *key = rf__run_lineage(ex, i, lane);
        ln->phase = RF_PHASE_RUN;
        if ((ex->plan->nodes[i].flags & RF_PN_CACHE) && key) {
            if (cache_lookup(sh, key, &hit))
                return rf__item_finish(sh, ex, i, lane, RF_ST_CACHED, hit);
            switch (flight_enter(sh, ex, i, lane, rf_tok_run(ex->slot, i, lane), key)) {
            case 0:
                ln->phase = RF_PHASE_PARAMS; /* parked: look again when woken */
                return RF_TOK_NONE;
            case 2:
                ln->leader = true;
                break;
            }
            if (remote_fetch(sh, ex, i, lane, rf_tok_run(ex->slot, i, lane), key))
                return RF_TOK_NONE; /* its answer brings the lane back in RF_PHASE_FETCH */
        }
    }
    return rf__attempt_start(sh, ex, i, lane);
}

uint64_t rf__lane_run(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, uint32_t lane)
{
    struct rf_mapst *ms = rf__aux_get(ex)[i].map;
    struct rf_lane *ln = &ms->lanes[lane];
    /* Relaxed: as in rf__run_token, cancellation is best effort here. */
    uint32_t ctl = atomic_load_explicit(&ex->ctl, memory_order_relaxed);

    if (ln->item == UINT32_MAX) {
        /* Relaxed: stop is a hint; the exchange in lane_retire settles who drains what. */
        if ((ctl & RF_CTL_CANCEL) || atomic_load_explicit(&ms->stop, memory_order_relaxed))
            return lane_retire(sh, ex, i, ms, true);
        /* Relaxed: items are claimed, nothing is published through the counter. */
        uint32_t it = atomic_fetch_add_explicit(&ms->next, 1, memory_order_relaxed);
        if (it >= ms->n)
            return lane_retire(sh, ex, i, ms, false);
        ln->item = it;
        ln->phase = RF_PHASE_NEW;
    } else if (ctl & RF_CTL_CANCEL) {
        return rf__item_finish(sh, ex, i, lane, RF_ST_CANCELED, NULL);
    }
    return item_step(sh, ex, i, ms, lane);
}
