/*
 * engine/exec.c: executions and the node state machine.
 *
 * A node moves pending -> ready -> running -> succeeded | failed | canceled | skipped, with
 * retrying between attempts. The join counter of each node counts its deps not yet
 * terminal; the shard whose decrement takes it to zero owns the node and either runs it
 * at once (the first successor made ready: no deque round trip) or pushes its token on its
 * own deque, where a sibling may steal it. What happens when the node is popped:
 *
 *   - the execution is being canceled            -> canceled, nothing runs;
 *   - trigger all_succeeded and a dep did not succeed, or another node already failed
 *     for good (fail fast, like Argo's failFast) -> skipped;
 *   - otherwise an attempt runs: a sync kind inline, an async kind as a task that waits
 *     on the shard's ring. A failed attempt whose error is retryable, with attempts left,
 *     waits out a back-off (full jitter: uniform in [0, min(max, base * 2^(k-1))]) on a
 *     ring timeout and runs again; otherwise the node fails.
 *
 * trigger all_done runs once every dep is terminal, whatever happened, even while the
 * execution fails; only cancellation stops it. Every terminal transition releases the
 * successors, so every node of an execution becomes terminal exactly once, and the
 * execution completes when its last sink does (a node is terminal only after all of its
 * deps, so all sinks terminal means all nodes terminal). That completion happens exactly
 * once: sinks_left is decremented once per sink.
 *
 * Lifetimes: rf_submit() allocates the execution with two references (the caller's and
 * the engine's). The engine's is dropped by the home shard when the DONE message arrives,
 * which is sent after the last callback ran. A node's token lives in a deque only while
 * the node is not terminal, so no token ever outlives its execution. After the last
 * decrement of a successor's join counter, a shard must not touch the execution again
 * unless it still holds a node of it (another shard may complete and free it).
 */
#include "engine/rf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "engine/alloc.h"
#include "engine/internal.h"
#include "engine/xdoc.h"
#include "sched/shard.h"

static inline void set_status(struct rf_exec *ex, uint32_t i, rf_status st)
{
    /* Release: a reader that acquires a terminal status sees the output and error. */
    atomic_store_explicit(&ex->ns[i].status, (uint8_t)st, memory_order_release);
}

/* --- completion ------------------------------------------------------------------------- */

static const json_t *scope_output(const void *ud, uint32_t node)
{
    const struct rf_exec *ex = ud;
    /* Acquire: a terminal status makes the output safe to read (the nodes a template names
     * are upstream, so terminal already; the acquire is for the graph's output too). */
    uint8_t st = atomic_load_explicit(&ex->ns[node].status, memory_order_acquire);

    if (st != RF_ST_SUCCEEDED && st != RF_ST_CACHED)
        return NULL;
    return ex->ns[node].output ? ex->ns[node].output : json_null();
}

void rf__scope_fill(struct rf_scope *sc, const struct rf_exec *ex, const json_t *item,
                    int64_t index)
{
    sc->inputs = ex->inputs;
    sc->node_output = scope_output;
    sc->ud = ex;
    sc->item = item;
    sc->index = index;
    sc->exec_id = ex->id;
    sc->graph = ex->plan->name;
    sc->version = ex->plan->version;
}

/* The graph's `output` reads nodes that may have been skipped: those give null. */
static const json_t *output_scope_output(const void *ud, uint32_t node)
{
    const json_t *o = scope_output(ud, node);
    return o ? o : json_null();
}

/* The execution's output: the `output` template, or the sinks' outputs by id. 0, or a
 * template error in *err. */
static int exec_output(struct rf_exec *ex, rf_error *err)
{
    const rf_plan *p = ex->plan;
    struct rf_scope sc;
    json_t *o;

    if (p->output) {
        rf__scope_fill(&sc, ex, NULL, 0);
        sc.node_output = output_scope_output;
        return rf_tmpl_eval(p->output, &sc, &ex->output, err);
    }
    if (p->output_static) {
        ex->output = json_incref(p->output_static);
        return 0;
    }
    o = json_object();
    for (uint32_t i = 0; o && i < p->n; i++) {
        if (!(p->nodes[i].flags & RF_PN_SINK))
            continue;
        json_t *v = ex->ns[i].output;
        json_object_set(o, p->nodes[i].id, v ? v : json_null());
    }
    ex->output = o;
    return o ? 0 : rf_error_set(err, -ENOMEM, false, "internal", "no memory for the output");
}

static void exec_complete(struct rf_exec *ex)
{
    /* Acquire: the bits were set by shards whose ends we follow through sinks_left. */
    uint32_t ctl = atomic_load_explicit(&ex->ctl, memory_order_acquire);
    rf_status st = RF_ST_SUCCEEDED;
    uint8_t ev = RF_EV_EXECUTION_SUCCEEDED;
    rf_error oerr = {0};

    if (ctl & RF_CTL_NODE_CANCELED) {
        st = RF_ST_CANCELED;
        ev = RF_EV_EXECUTION_CANCELED;
    } else if (ctl & RF_CTL_FAILED) {
        int32_t f = atomic_load_explicit(&ex->first_failed, memory_order_relaxed);
        json_t **errs = atomic_load_explicit(&ex->errs, memory_order_acquire);
        json_t *ne = errs && f >= 0 ? errs[f] : NULL;
        const char *msg = json_string_value(json_object_get(ne, "message"));
        st = RF_ST_FAILED;
        ev = RF_EV_EXECUTION_FAILED;
        ex->error = json_pack("{s:s, s:s, s:O?}", "code", "node_failed", "message",
                              msg ? msg : "a node failed", "node", json_object_get(ne, "node"));
    } else if (exec_output(ex, &oerr) < 0) {
        st = RF_ST_FAILED;
        ev = RF_EV_EXECUTION_FAILED;
        ex->error = json_pack("{s:s, s:s}", "code", "output_error", "message", oerr.message);
    }
    ex->finished_us = rf_wall_us();
    atomic_store_explicit(&ex->status, (uint8_t)st, memory_order_release); /* publish */
    if (rf__events_on(ex))
        rf__evq_emit(ex, ev, 0, 0, 0, NULL);
    rf__evq_done(ex);
}

static const uint8_t *node_lineage(struct rf_exec *ex, uint32_t i)
{
    struct rf_naux *a;

    if (ex->plan->cold[i].lineage_static)
        return ex->plan->cold[i].lineage;
    /* Acquire: pairs with the CAS that published the array. */
    a = atomic_load_explicit(&ex->aux, memory_order_acquire);
    return a && a[i].has_lineage ? a[i].lineage : NULL;
}

static void node_event(struct rf_exec *ex, uint32_t i, rf_status st)
{
    struct rf_evrec r = {.type = rf__ev_of_status(st), .node = i, .item = -1};
    const uint8_t *lin = node_lineage(ex, i);

    if (st == RF_ST_FAILED) {
        json_t **errs = atomic_load_explicit(&ex->errs, memory_order_acquire);
        r.data = errs ? json_incref(errs[i]) : NULL;
    } else if (st == RF_ST_SUCCEEDED || st == RF_ST_CACHED) {
        r.data = json_incref(ex->ns[i].output ? ex->ns[i].output : json_null());
    }
    if (lin && st != RF_ST_SKIPPED) {
        memcpy(r.lineage, lin, 16);
        r.has_lineage = true;
    }
    r.attempt = atomic_load_explicit(&ex->ns[i].attempts, memory_order_relaxed);
    rf__evq_push(ex, &r);
}

/* The node's terminal transition: event, outcome bits, successors, maybe the end of the
 * execution. Returns the token of one successor made ready (to run next), or none. */
uint64_t rf__node_finish(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, rf_status st)
{
    const rf_plan *p = ex->plan;
    const struct rf_pnode *pn = &p->nodes[i];
    bool bad = st != RF_ST_SUCCEEDED && st != RF_ST_CACHED;
    bool sink = pn->flags & RF_PN_SINK;
    uint32_t slot = ex->slot, pushed = 0;
    uint64_t next = RF_TOK_NONE;

    bool replayed = rf_unlikely(ex->replay != NULL) && ex->replay[i];

    if (rf_unlikely(pn->flags & RF_PN_CACHE) && !replayed)
        rf__cache_after_node(sh, ex, i, st);
    set_status(ex, i, st);
    if (st == RF_ST_FAILED) {
        int32_t none = -1;
        /* Relaxed CAS: only the index is recorded; exec_complete orders through ctl. */
        atomic_compare_exchange_strong_explicit(&ex->first_failed, &none, (int32_t)i,
                                                memory_order_relaxed, memory_order_relaxed);
        /* Release: nodes that load ctl afterwards stop starting (fail fast). */
        atomic_fetch_or_explicit(&ex->ctl, RF_CTL_FAILED, memory_order_release);
    } else if (st == RF_ST_CANCELED) {
        atomic_fetch_or_explicit(&ex->ctl, RF_CTL_NODE_CANCELED, memory_order_release);
    }
    if (rf__events_on(ex) && !replayed) /* a recorded node's event is in its journal */
        node_event(ex, i, st);

    const uint32_t *succ = p->succ + pn->succ_off;
    for (uint32_t k = 0, n = pn->nsucc; k < n; k++) {
        uint32_t e = succ[k], s = e & RF_SUCC_IDX;
        struct rf_nstate *sn = &ex->ns[s];
        if (bad) /* relaxed: ordered before our release decrement (or push) below */
            atomic_fetch_or_explicit(&sn->flags, RF_NS_DEP_BAD, memory_order_relaxed);
        if (rf_unlikely(e & RF_SUCC_WIDE)) {
            if (sh->pend_n && sh->pend_ex == ex && sh->pend_node == s) {
                sh->pend_n++; /* `s` waits for the flush, so `ex` stays alive */
                continue;
            }
            rf__shard_flush_pending(sh);
            sh->pend_ex = ex;
            sh->pend_node = s;
            sh->pend_n = 1;
            continue;
        }
        /* acq_rel: the one reaching zero sees every dep's writes (outputs, flags). A sole
         * dep needs no counter: finishing it is the hand-over. */
        if (!(e & RF_SUCC_SOLE) &&
            atomic_fetch_sub_explicit(&sn->join, 1, memory_order_acq_rel) != 1)
            continue;
        atomic_store_explicit(&sn->status, RF_ST_READY, memory_order_relaxed); /* snapshot */
        if (next == RF_TOK_NONE) {
            next = rf_tok(slot, s);
        } else {
            rf__shard_push(sh, rf_tok(slot, s));
            pushed++;
        }
    }
    /* From here on `ex` and `p` may be gone unless `next` holds a node of it. */
    if (pushed)
        rf__shard_wake_sibling(sh);
    /* acq_rel: the last sink sees every node's end before it completes the execution. */
    if (sink && atomic_fetch_sub_explicit(&ex->sinks_left, 1, memory_order_acq_rel) == 1)
        exec_complete(ex);
    return next;
}

/* --- errors ------------------------------------------------------------------------------- */

static json_t **errs_get(struct rf_exec *ex)
{
    /* Acquire: pairs with the CAS below so the array's zeroed contents are seen. */
    json_t **errs = atomic_load_explicit(&ex->errs, memory_order_acquire);
    json_t **fresh, **expect = NULL;

    if (errs)
        return errs;
    fresh = rf_calloc(ex->plan->n, sizeof(*fresh));
    RF_ASSERT(fresh != NULL);
    /* acq_rel: publish our array, or acquire the winner's. */
    if (atomic_compare_exchange_strong_explicit(&ex->errs, &expect, fresh, memory_order_acq_rel,
                                                memory_order_acquire))
        return fresh;
    rf_free(fresh);
    return expect;
}

struct rf_naux *rf__aux_get(struct rf_exec *ex)
{
    /* Acquire: pairs with the CAS below so the array's zeroed contents are seen. */
    struct rf_naux *a = atomic_load_explicit(&ex->aux, memory_order_acquire);
    struct rf_naux *fresh, *expect = NULL;

    if (a)
        return a;
    fresh = rf_calloc(ex->plan->n, sizeof(*fresh));
    RF_ASSERT(fresh != NULL);
    /* acq_rel: publish our array, or acquire the winner's. */
    if (atomic_compare_exchange_strong_explicit(&ex->aux, &expect, fresh, memory_order_acq_rel,
                                                memory_order_acquire))
        return fresh;
    rf_free(fresh);
    return expect;
}

static void store_error(struct rf_exec *ex, uint32_t i, rf_error *err)
{
    json_t **errs = errs_get(ex);
    json_t *old = errs[i];

    errs[i] = rf__error_json(err, ex->plan->nodes[i].id);
    json_decref(old);
}

/* A failure before any attempt (a template or condition that does not resolve). */
uint64_t rf__node_fail_now(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, rf_error *err)
{
    store_error(ex, i, err);
    return rf__node_finish(sh, ex, i, RF_ST_FAILED);
}

static void error_default(rf_error *err, int rc)
{
    if (err->code[0] == '\0')
        rf_error_set(err, rc, false, "kind_error", "%s", rf_strerror(rc));
}

/* --- runs: a node, or one item of a mapped node (lane != RF_NO_LANE) --------------------- */

static inline struct rf_lane *lane_of(struct rf_exec *ex, uint32_t i, uint32_t lane)
{
    /* Relaxed: the lane's token carried the map state to us (deque release/acquire). */
    return &atomic_load_explicit(&ex->aux, memory_order_relaxed)[i].map->lanes[lane];
}

static inline struct rf_mapst *map_of(struct rf_exec *ex, uint32_t i)
{
    return atomic_load_explicit(&ex->aux, memory_order_relaxed)[i].map; /* as above */
}

static const json_t *run_params(struct rf_exec *ex, uint32_t i, uint32_t lane)
{
    const json_t *p = NULL;

    if (lane != RF_NO_LANE)
        p = lane_of(ex, i, lane)->params;
    else if (ex->plan->nodes[i].flags & RF_PN_LANG)
        p = atomic_load_explicit(&ex->aux, memory_order_relaxed)[i].params; /* owner */
    return p ? p : ex->plan->nodes[i].config;
}

const uint8_t *rf__run_lineage(struct rf_exec *ex, uint32_t i, uint32_t lane)
{
    if (lane != RF_NO_LANE) {
        struct rf_lane *ln = lane_of(ex, i, lane);
        if (ln->has_lineage)
            return ln->lineage;
        return ex->plan->cold[i].lineage_static ? ex->plan->cold[i].lineage : NULL;
    }
    return node_lineage(ex, i);
}

static uint32_t run_attempts(struct rf_exec *ex, uint32_t i, uint32_t lane)
{
    if (lane == RF_NO_LANE)
        return atomic_load_explicit(&ex->ns[i].attempts, memory_order_relaxed); /* owner */
    return map_of(ex, i)->items[lane_of(ex, i, lane)->item].attempts;
}

void rf__run_emit(struct rf_exec *ex, uint32_t i, uint32_t lane, uint8_t type, uint32_t retry_in_ms,
                  json_t *data)
{
    struct rf_evrec r = {.type = type, .node = i, .item = -1, .data = data};
    const uint8_t *lin = rf__run_lineage(ex, i, lane);

    if (lane != RF_NO_LANE)
        r.item = (int32_t)lane_of(ex, i, lane)->item;
    r.attempt = run_attempts(ex, i, lane);
    r.retry_in_ms = retry_in_ms;
    if (lin) {
        memcpy(r.lineage, lin, 16);
        r.has_lineage = true;
    }
    rf__evq_push(ex, &r);
}

static uint64_t run_succeeded(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, uint32_t lane,
                              json_t *out)
{
    if (lane != RF_NO_LANE)
        return rf__item_finish(sh, ex, i, lane, RF_ST_SUCCEEDED, out);
    if (out) {
        ex->ns[i].output = out;
        /* Relaxed: only tells rf__exec_free to scan; it runs after everything. */
        atomic_store_explicit(&ex->has_outputs, 1, memory_order_relaxed);
    }
    return rf__node_finish(sh, ex, i, RF_ST_SUCCEEDED);
}

/* A run ends badly (failed or canceled); the error was stored. */
static uint64_t run_ended(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, uint32_t lane,
                          rf_status st)
{
    if (lane != RF_NO_LANE)
        return rf__item_finish(sh, ex, i, lane, st, NULL);
    return rf__node_finish(sh, ex, i, st);
}

/* Keep the attempt's error: the node's, or the item's. Returns it (borrowed). */
static json_t *run_store_error(struct rf_exec *ex, uint32_t i, uint32_t lane, rf_error *err)
{
    if (lane == RF_NO_LANE) {
        store_error(ex, i, err);
        return errs_get(ex)[i];
    }
    struct rf_item *it = &map_of(ex, i)->items[lane_of(ex, i, lane)->item];
    json_decref(it->val);
    it->val = rf__error_json(err, ex->plan->nodes[i].id);
    return it->val;
}

/* --- retry back-off ------------------------------------------------------------------------ */

static uint32_t backoff_ms(struct rf_shard *sh, const rf_retry *r, uint32_t failed_attempts)
{
    uint64_t cap = r->backoff_ms;
    uint32_t shift = failed_attempts > 1 ? failed_attempts - 1 : 0;

    cap = shift >= 32 ? r->max_backoff_ms : RF_MIN(cap << shift, (uint64_t)r->max_backoff_ms);
    /* Full jitter: uniform in [0, cap]. */
    return rf_rand_below(&sh->rng, (uint32_t)cap + 1);
}

void rf__task_link(struct rf_shard *sh, struct rf_task *t)
{
    t->next = sh->waiting.next;
    t->prev = &sh->waiting;
    sh->waiting.next->prev = t;
    sh->waiting.next = t;
}

void rf__task_unlink(struct rf_task *t)
{
    t->prev->next = t->next;
    t->next->prev = t->prev;
    t->next = t->prev = NULL;
}

static uint64_t backoff_start(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, uint32_t lane,
                              uint32_t delay)
{
    struct rf_task *t;

    t = delay ? rf__task_get(sh) : NULL;
    if (!t) /* no delay, or no memory for a timer: retry now rather than never */
        return rf_tok_run(ex->slot, i, lane);
    t->ex = ex;
    t->node = i;
    t->lane = lane;
    t->tok = rf_tok_run(ex->slot, i, lane);
    t->state = RF_TASK_BACKOFF;
    t->timer_armed = true;
    rf__task_link(sh, t);
    rf__shard_timer_arm(sh, &t->timer, &t->ts, delay, rf__task_timer_cqe);
    return RF_TOK_NONE;
}

/* An attempt failed: retry after a back-off, or end the run. */
static uint64_t attempt_failed(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, uint32_t lane,
                               rf_error *err)
{
    const struct rf_pnode_cold *c = &ex->plan->cold[i];
    uint32_t att = run_attempts(ex, i, lane);
    /* Relaxed: a late view of the cancel bit only costs one more back-off. */
    uint32_t ctl = atomic_load_explicit(&ex->ctl, memory_order_relaxed);
    json_t *ej = run_store_error(ex, i, lane, err);

    if (ctl & RF_CTL_CANCEL)
        return run_ended(sh, ex, i, lane, RF_ST_CANCELED);
    if (!err->retryable || att >= c->retry.max_attempts)
        return run_ended(sh, ex, i, lane, RF_ST_FAILED);
    uint32_t delay = backoff_ms(sh, &c->retry, att);
    if (lane == RF_NO_LANE)
        set_status(ex, i, RF_ST_RETRYING);
    if (rf__events_on(ex))
        rf__run_emit(ex, i, lane, RF_EV_NODE_RETRYING, delay, json_incref(ej));
    return backoff_start(sh, ex, i, lane, delay);
}

/* --- running an attempt ------------------------------------------------------------------- */

static void call_fill(rf_call *call, struct rf_shard *sh, struct rf_exec *ex, uint32_t i,
                      uint32_t lane, uint32_t attempt)
{
    call->params = run_params(ex, i, lane);
    call->node_id = ex->plan->nodes[i].id;
    call->exec_id = ex->id;
    call->attempt = attempt;
    call->shard = sh->id;
}

static uint64_t run_sync(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, uint32_t lane,
                         uint32_t attempt)
{
    const struct rf_pnode *pn = &ex->plan->nodes[i];
    rf_error err;
    json_t *out = NULL;
    uint64_t t0 = 0;
    rf_call call;
    int rc;

    call_fill(&call, sh, ex, i, lane, attempt);
    err.code[0] = '\0';
    if (pn->flags & RF_PN_TIMEOUT)
        t0 = rf_now_ns();
    rc = pn->kind->k.run(pn->kind->k.ud, &call, &out, &err);
    if (rf_unlikely(t0) && rf_now_ns() - t0 > (uint64_t)ex->plan->cold[i].timeout_ms * 1000000u) {
        json_decref(out);
        out = NULL;
        rc = rf_error_set(&err, -ETIMEDOUT, true, "timeout", "attempt %u ran past %u ms", attempt,
                          ex->plan->cold[i].timeout_ms);
    }
    if (rf_likely(rc == 0))
        return run_succeeded(sh, ex, i, lane, out);
    json_decref(out);
    error_default(&err, rc);
    return attempt_failed(sh, ex, i, lane, &err);
}

static uint64_t run_async(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, uint32_t lane,
                          uint32_t attempt)
{
    const struct rf_pnode *pn = &ex->plan->nodes[i];
    struct rf_task *t = rf__task_get(sh);
    rf_error err;
    int rc;

    if (!t) {
        rf_error_set(&err, -ENOMEM, true, "overload", "no memory for a task");
        return attempt_failed(sh, ex, i, lane, &err);
    }
    t->ex = ex;
    t->node = i;
    t->lane = lane;
    t->state = RF_TASK_ATTEMPT;
    call_fill(&t->call, sh, ex, i, lane, attempt);
    rf__task_link(sh, t);
    if (pn->flags & RF_PN_TIMEOUT) {
        t->timer_armed = true;
        rf__shard_timer_arm(sh, &t->timer, &t->ts, ex->plan->cold[i].timeout_ms,
                            rf__task_timer_cqe);
    }
    err.code[0] = '\0';
    rc = pn->kind->k.start(pn->kind->k.ud, t, &err);
    if (rc < 0) {
        RF_ASSERT(!t->completed); /* a kind that fails its start must not also complete */
        error_default(&err, rc);
        rf_task_fail(t, &err);
    }
    return RF_TOK_NONE;
}

uint64_t rf__attempt_start(struct rf_shard *sh, struct rf_exec *ex, uint32_t i, uint32_t lane)
{
    uint32_t attempt;

    if (lane == RF_NO_LANE) {
        struct rf_nstate *ns = &ex->ns[i];
        /* Relaxed: only this shard writes attempts while it owns the node. */
        attempt = atomic_load_explicit(&ns->attempts, memory_order_relaxed) + 1u;
        atomic_store_explicit(&ns->attempts, (uint16_t)attempt, memory_order_relaxed);
        atomic_store_explicit(&ns->status, RF_ST_RUNNING, memory_order_relaxed); /* snapshot */
    } else {
        struct rf_item *it = &map_of(ex, i)->items[lane_of(ex, i, lane)->item];
        attempt = ++it->attempts;
    }
    if (rf__events_on(ex))
        rf__run_emit(ex, i, lane, RF_EV_NODE_STARTED, 0,
                     json_incref((json_t *)run_params(ex, i, lane)));
    if (ex->plan->nodes[i].flags & RF_PN_SYNC)
        return run_sync(sh, ex, i, lane, attempt);
    return run_async(sh, ex, i, lane, attempt);
}

uint64_t rf__run_token(struct rf_shard *sh, uint64_t tok)
{
    struct rf_exec *ex = sh->eng->ex_table[rf_tok_slot(tok)];
    uint64_t nf = tok & ((1ull << RF_TOK_NODE_BITS) - 1); /* rf_tok_node drops the lane */
    uint32_t i = (uint32_t)(nf & RF_TOK_IDX_MASK);
    const struct rf_pnode *pn = &ex->plan->nodes[i];
    /* Relaxed: cancel and fail-fast are best effort at this point; a node that misses
     * the bit by a hair runs, which is what would have happened a moment earlier. */
    uint32_t ctl = atomic_load_explicit(&ex->ctl, memory_order_relaxed);

    RF_DASSERT(i < ex->plan->n);
    if (rf_unlikely(nf & RF_TOK_LANE))
        return rf__lane_run(sh, ex, i, (uint32_t)((nf & ~RF_TOK_LANE) >> RF_TOK_LANE_SHIFT));
    if (rf_unlikely(ex->replay != NULL) && ex->replay[i])
        return rf__node_finish(sh, ex, i, (rf_status)(ex->replay[i] - 1)); /* recorded */
    if (rf_unlikely(ctl & RF_CTL_CANCEL))
        return rf__node_finish(sh, ex, i, RF_ST_CANCELED);
    if (pn->trigger == RF_TRIGGER_ALL_SUCCEEDED) {
        /* Relaxed: our acq_rel join decrement (or the deque) already ordered the flag. */
        uint8_t f = atomic_load_explicit(&ex->ns[i].flags, memory_order_relaxed);
        if (rf_unlikely((f & RF_NS_DEP_BAD) || (ctl & RF_CTL_FAILED)))
            return rf__node_finish(sh, ex, i, RF_ST_SKIPPED);
    }
    if (pn->flags & RF_PN_LANG)
        return rf__node_begin(sh, ex, i);
    return rf__attempt_start(sh, ex, i, RF_NO_LANE);
}

/* --- tasks: async attempts and back-offs --------------------------------------------------- */

/* Both the kind and the timer are done with the task: settle the attempt. */
static void task_settle(struct rf_task *t)
{
    struct rf_shard *sh = t->sh;
    struct rf_exec *ex = t->ex;
    uint32_t i = t->node, lane = t->lane;
    uint64_t next;

    rf__task_unlink(t);
    if (t->timed_out) {
        json_decref(t->output);
        t->output = NULL;
        t->result = rf_error_set(&t->err, -ETIMEDOUT, true, "timeout", "attempt %u ran past %u ms",
                                 t->call.attempt, ex->plan->cold[i].timeout_ms);
    }
    if (t->result == 0) {
        json_t *out = t->output;
        rf__task_put(sh, t);
        next = run_succeeded(sh, ex, i, lane, out);
    } else {
        rf_error err = t->err;
        rf__task_put(sh, t);
        next = attempt_failed(sh, ex, i, lane, &err);
    }
    if (next != RF_TOK_NONE)
        rf__shard_push(sh, next);
}

static void task_try_settle(struct rf_task *t)
{
    if (t->timer_armed) {
        if (!t->timer_removing) {
            t->timer_removing = true;
            rf__shard_timer_cancel(t->sh, &t->timer);
        }
        return; /* the timer's CQE settles it */
    }
    task_settle(t);
}

static void backoff_over(struct rf_task *t, int res)
{
    struct rf_shard *sh = t->sh;
    struct rf_exec *ex = t->ex;
    uint32_t i = t->node, lane = t->lane;
    uint64_t tok = t->tok;

    rf__task_unlink(t);
    rf__task_put(sh, t);
    /* Fired: run again (through the checks, so a cancel that raced still wins).
     * Removed: the execution is being canceled. */
    if (res == -ETIME) {
        rf__shard_push(sh, tok);
        return;
    }
    uint64_t next = run_ended(sh, ex, i, lane, RF_ST_CANCELED);
    if (next != RF_TOK_NONE)
        rf__shard_push(sh, next);
}

void rf__task_timer_cqe(rf_op *op, int res, uint32_t flags)
{
    struct rf_task *t = rf_container_of(op, struct rf_task, timer);

    (void)flags;
    t->timer_armed = false;
    if (t->state == RF_TASK_BACKOFF) {
        backoff_over(t, res);
        return;
    }
    if (t->completed) {
        task_settle(t);
        return;
    }
    if (res == -ETIME) {
        t->timed_out = true;
        if (!t->cancel_sent) {
            const struct rf_kind_ent *k = t->ex->plan->nodes[t->node].kind;
            t->cancel_sent = true;
            k->k.cancel(k->k.ud, t);
        }
    }
}

void rf__tasks_cancel_scan(struct rf_shard *sh)
{
    struct rf_task *t = sh->waiting.next;

    while (t != &sh->waiting) {
        struct rf_task *next = t->next;
        /* Relaxed: the epoch's acquire load ordered the bit for us. */
        uint32_t ctl = atomic_load_explicit(&t->ex->ctl, memory_order_relaxed);
        if ((ctl & RF_CTL_CANCEL) && !t->cancel_sent && !t->completed) {
            t->cancel_sent = true;
            if (t->state == RF_TASK_ATTEMPT) {
                const struct rf_kind_ent *k = t->ex->plan->nodes[t->node].kind;
                k->k.cancel(k->k.ud, t); /* may complete t, which unlinks only t */
            } else if (t->state == RF_TASK_FLIGHT) {
                rf__flight_task_cancel(sh, t); /* may settle t, which unlinks only t */
            } else if (t->state == RF_TASK_REMOTE) {
                rf__remote_task_cancel(sh, t); /* its answer comes soon; t stays linked */
            } else if (t->timer_armed && !t->timer_removing) {
                t->timer_removing = true;
                rf__shard_timer_cancel(sh, &t->timer);
            }
        }
        t = next;
    }
}

/* --- the async-kind API ------------------------------------------------------------------- */

const rf_call *rf_task_call(const rf_task *task)
{
    return &task->call;
}

void *rf_task_data(rf_task *task)
{
    return task->data;
}

struct io_uring *rf_task_ring(rf_task *task)
{
    return &task->sh->ring;
}

struct io_uring_sqe *rf_task_sqe(rf_task *task, rf_op *op, rf_op_fn cb)
{
    struct io_uring_sqe *sqe;

    RF_ASSERT(rf__cur_shard == task->sh);
    sqe = rf__shard_sqe(task->sh);
    if (!sqe)
        return NULL;
    op->cb = cb;
    op->task = task;
    io_uring_sqe_set_data(sqe, op);
    return sqe;
}

int rf_task_cancel_op(rf_task *task, rf_op *op)
{
    struct io_uring_sqe *sqe;

    RF_ASSERT(rf__cur_shard == task->sh);
    sqe = rf__shard_sqe(task->sh);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_cancel(sqe, op, 0);
    io_uring_sqe_set_data64(sqe, RF_UD_IGNORE);
    return 0;
}

void rf_task_succeed(rf_task *t, json_t *output)
{
    RF_ASSERT(rf__cur_shard == t->sh);
    RF_ASSERT(t->state == RF_TASK_ATTEMPT);
    RF_ASSERT(!t->completed);
    t->completed = true;
    t->result = 0;
    t->output = output;
    task_try_settle(t);
}

void rf_task_fail(rf_task *t, const rf_error *err)
{
    RF_ASSERT(rf__cur_shard == t->sh);
    RF_ASSERT(t->state == RF_TASK_ATTEMPT);
    RF_ASSERT(!t->completed);
    t->completed = true;
    t->result = -1;
    t->err = *err;
    if (t->err.code[0] == '\0')
        rf_error_set(&t->err, -EIO, false, "kind_error", "the kind failed without a reason");
    task_try_settle(t);
}

/* --- the home shard's side ------------------------------------------------------------------ */

void rf__exec_start(struct rf_shard *sh, struct rf_exec *ex)
{
    rf_engine *eng = sh->eng;
    const rf_plan *p = ex->plan;

    RF_ASSERT(sh->nfree_slots > 0); /* reserved by rf_submit through `inflight` */
    ex->slot = sh->slot_base + sh->free_slots[--sh->nfree_slots];
    eng->ex_table[ex->slot] = ex;
    ex->hnext = sh->home.hnext;
    ex->hprev = &sh->home;
    sh->home.hnext->hprev = ex;
    sh->home.hnext = ex;
    if (!ex->started_us)
        ex->started_us = rf_wall_us();
    atomic_store_explicit(&ex->status, RF_ST_RUNNING, memory_order_release); /* snapshot */
    if (sh->canceled_all)
        rf_exec_cancel(ex);
    if (rf__events_on(ex)) {
        /* A resumed execution emitted these already (its events 1 and 2). */
        if (ex->events_before < 1)
            rf__evq_emit(ex, RF_EV_EXECUTION_QUEUED, 0, 0, 0, NULL);
        if (ex->events_before < 2)
            rf__evq_emit(ex, RF_EV_EXECUTION_STARTED, 0, 0, 0, NULL);
    }
    if (p->n == 0) {
        exec_complete(ex);
        return;
    }
    for (uint32_t r = 0; r < p->nroots; r++) {
        atomic_store_explicit(&ex->ns[p->roots[r]].status, RF_ST_READY, memory_order_relaxed);
        rf__shard_push(sh, rf_tok(ex->slot, p->roots[r]));
    }
    if (p->nroots > 1)
        rf__shard_wake_sibling(sh);
}

void rf__exec_done_home(struct rf_shard *sh, struct rf_exec *ex)
{
    rf_engine *eng = sh->eng;

    ex->hprev->hnext = ex->hnext;
    ex->hnext->hprev = ex->hprev;
    eng->ex_table[ex->slot] = NULL;
    sh->free_slots[sh->nfree_slots++] = ex->slot - sh->slot_base;
    /* The in-flight reservation was released by finalize (engine/event.c). */
    rf_exec_release(ex);
}

void rf__exec_cancel_home_all(struct rf_shard *sh)
{
    for (struct rf_exec *ex = sh->home.hnext; ex != &sh->home; ex = ex->hnext)
        rf_exec_cancel(ex);
}

/* --- the public side -------------------------------------------------------------------------- */

static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";

/* ULID-style: 48 bits of milliseconds then 80 bits (random unless given), Crockford
 * base32, most significant first. Sorts by creation time; unique without coordination. */
void rf_exec_id_make(int64_t created_us, const uint8_t *tail, char out[RF_ID_BYTES])
{
    static _Thread_local uint64_t rng;
    uint8_t b[16];
    uint64_t ms = (uint64_t)(created_us / 1000);

    for (int k = 0; k < 6; k++)
        b[k] = (uint8_t)(ms >> (40 - 8 * k));
    if (tail) {
        memcpy(b + 6, tail, 10);
    } else {
        if (rng == 0) {
            if (getrandom(&rng, sizeof(rng), 0) != sizeof(rng))
                rng = rf_now_ns() ^ (uint64_t)(uintptr_t)&rng;
            rng |= 1;
        }
        uint64_t r1 = rf_rand_next(&rng), r2 = rf_rand_next(&rng);
        memcpy(b + 6, &r1, 8);
        memcpy(b + 14, &r2, 2);
    }
    /* 128 bits -> 26 characters, 5 bits each (2 leading pad bits). */
    for (int c = 0; c < 26; c++) {
        int bit = c * 5 - 2;
        uint32_t v = 0;
        for (int k = 0; k < 5; k++, bit++) {
            v <<= 1;
            if (bit >= 0)
                v |= (b[bit / 8] >> (7 - bit % 8)) & 1;
        }
        out[c] = b32[v];
    }
    out[26] = '\0';
}

bool rf_exec_id_parse(const char *id, uint64_t *ms, uint8_t tail[10])
{
    uint8_t b[16] = {0};

    if (!id || strlen(id) != 26)
        return false;
    for (int c = 0; c < 26; c++) {
        const char *at = memchr(b32, id[c], 32);
        if (!at || !id[c] || (c == 0 && at - b32 > 7))
            return false;
        uint32_t v = (uint32_t)(at - b32);
        for (int k = 4; k >= 0; k--) {
            int bit = c * 5 - 2 + (4 - k);
            if (bit >= 0 && ((v >> k) & 1))
                b[bit / 8] |= (uint8_t)(0x80u >> (bit % 8));
        }
    }
    if (ms) {
        *ms = 0;
        for (int k = 0; k < 6; k++)
            *ms = *ms << 8 | b[k];
    }
    if (tail)
        memcpy(tail, b + 6, 10);
    return true;
}

static struct rf_shard *reserve_shard(rf_engine *eng, const rf_submit_opts *o)
{
    uint32_t n = eng->nshards, max = eng->cfg.inflight_per_shard_max;
    uint32_t first, tries = n;

    if (o && (o->flags & RF_SUBMIT_SHARD)) {
        first = o->shard;
        tries = 1;
    } else {
        /* Relaxed: round robin only spreads load. */
        first = atomic_fetch_add_explicit(&eng->rr, 1, memory_order_relaxed) % n;
    }
    for (uint32_t k = 0; k < tries; k++) {
        struct rf_shard *sh = eng->shards[(first + k) % n];
        /* seq_cst: acquires finalize's release (the DONE that frees a slot is then already
         * in the inbox, ahead of our SUBMIT) and is the Dekker half against
         * rf_engine_stop's STOPPING store followed by its reads of the counts. */
        if (atomic_fetch_add_explicit(&sh->inflight, 1, memory_order_seq_cst) < max)
            return sh;
        atomic_fetch_sub_explicit(&sh->inflight, 1, memory_order_relaxed);
    }
    return NULL;
}

static struct rf_exec *exec_alloc(rf_engine *eng, rf_plan *plan, json_t *inputs,
                                  const rf_submit_opts *o, const struct rf_parent *parent)
{
    size_t size = sizeof(struct rf_exec) + (size_t)plan->n * sizeof(struct rf_nstate);
    struct rf_exec *ex = rf_zalloc_aligned(size, RF_CACHELINE);

    if (!ex)
        return NULL;
    if (parent) {
        ex->parent = rf_malloc(sizeof(*ex->parent));
        if (!ex->parent) {
            rf_free(ex);
            return NULL; /* the caller still owns `inputs` */
        }
        *ex->parent = *parent;
    }
    ex->eng = eng;
    ex->plan = rf_plan_retain(plan);
    ex->inputs = inputs ? inputs : json_object();
    if (o && o->callbacks)
        ex->cb = *o->callbacks;
    ex->flags = o ? o->flags : 0;
    ex->tags = o && o->tags ? json_incref((json_t *)o->tags) : NULL;
    ex->created_us = o && o->id && o->created_us ? o->created_us : rf_wall_us();
    if (o && o->id)
        memcpy(ex->id, o->id, RF_EXEC_ID_LEN);
    else
        rf_exec_id_make(ex->created_us, NULL, ex->id);
    if ((ex->flags & RF_SUBMIT_DOCUMENT) &&
        !(ex->doc = rf__xdoc_new(plan, ex->id, ex->inputs, ex->tags, ex->created_us))) {
        if (!inputs)
            json_decref(ex->inputs); /* the empty object made above */
        rf_plan_release(ex->plan);
        json_decref(ex->tags);
        rf_free(ex->parent);
        rf_free(ex);
        return NULL; /* the caller still owns `inputs` */
    }
    atomic_init(&ex->refs, 2);
    atomic_init(&ex->first_failed, -1);
    atomic_init(&ex->sinks_left, plan->n ? plan->nsinks : 1);
    atomic_init(&ex->status, RF_ST_QUEUED);
    for (uint32_t i = 0; i < plan->n; i++)
        atomic_init(&ex->ns[i].join, plan->join0[i]);
    return ex;
}

/* Install what an earlier life of the execution recorded (rf_resume). */
static int resume_setup(struct rf_exec *ex, const rf_resume *r)
{
    const rf_plan *p = ex->plan;

    ex->replay = rf_calloc(p->n ? p->n : 1, 1);
    if (!ex->replay)
        return -ENOMEM;
    for (uint32_t k = 0; k < r->n; k++) {
        const rf_resume_node *rn = &r->nodes[k];
        if (rn->node >= p->n || !rf_status_terminal(rn->status))
            return -EINVAL;
        uint32_t i = rn->node;
        ex->replay[i] = (uint8_t)(rn->status + 1);
        atomic_store_explicit(&ex->ns[i].attempts, (uint16_t)RF_MIN(rn->attempts, 0xffffu),
                              memory_order_relaxed); /* not shared yet */
        if ((rn->status == RF_ST_SUCCEEDED || rn->status == RF_ST_CACHED) && rn->output) {
            json_decref(ex->ns[i].output);
            ex->ns[i].output = json_incref((json_t *)rn->output);
            atomic_store_explicit(&ex->has_outputs, 1, memory_order_relaxed); /* free scans */
        } else if (rn->status == RF_ST_FAILED && rn->error) {
            json_t **errs = errs_get(ex);
            json_decref(errs[i]);
            errs[i] = json_incref((json_t *)rn->error);
        }
    }
    ex->events_before = r->events;
    ex->evq.seq = r->events;
    ex->started_us = r->started_us;
    return 0;
}

int rf_submit(rf_engine *eng, rf_plan *plan, json_t *inputs, const rf_submit_opts *opts,
              rf_exec **out)
{
    return rf__submit(eng, plan, inputs, opts, NULL, out);
}

int rf__submit(rf_engine *eng, rf_plan *plan, json_t *inputs, const rf_submit_opts *opts,
               const struct rf_parent *parent, rf_exec **out)
{
    struct rf_shard *sh;
    struct rf_exec *ex;
    json_t *resolved = NULL;
    int rc;

    if (!eng || !plan || !out || plan->eng != eng ||
        (opts && (opts->flags & RF_SUBMIT_SHARD) && opts->shard >= eng->nshards) ||
        (opts && opts->id && !rf_exec_id_parse(opts->id, NULL, NULL))) {
        json_decref(inputs);
        return -EINVAL;
    }
    /* seq_cst: pairs with rf_engine_stop's state store (see the re-check below). */
    uint32_t st = atomic_load(&eng->state);
    if (st != RF_ENG_RUNNING) {
        json_decref(inputs);
        return st == RF_ENG_NEW ? RF_ESTATE : -ESHUTDOWN;
    }
    if (plan->inputs_decl || (inputs && !json_is_object(inputs))) {
        rc = rf__inputs_resolve(plan->inputs_decl, inputs, opts ? opts->diag : NULL, &resolved);
        json_decref(inputs);
        if (rc < 0)
            return rc;
        inputs = resolved;
    }
    sh = reserve_shard(eng, opts);
    if (!sh) {
        json_decref(inputs);
        return RF_EOVERLOAD;
    }
    /* Dekker with the stopper: it stores STOPPING then reads the in-flight counts; we
     * reserved, then read the state. One of us sees the other. */
    if (atomic_load(&eng->state) != RF_ENG_RUNNING) {
        atomic_fetch_sub_explicit(&sh->inflight, 1, memory_order_relaxed); /* undo */
        json_decref(inputs);
        return -ESHUTDOWN;
    }
    ex = exec_alloc(eng, plan, inputs, opts, parent);
    if (!ex) {
        atomic_fetch_sub_explicit(&sh->inflight, 1, memory_order_relaxed); /* undo */
        json_decref(inputs);
        return -ENOMEM;
    }
    ex->home = sh->id;
    if (opts && opts->resume && (rc = resume_setup(ex, opts->resume)) < 0) {
        atomic_fetch_sub_explicit(&sh->inflight, 1, memory_order_relaxed); /* undo */
        atomic_store_explicit(&ex->refs, 1, memory_order_relaxed); /* nobody else has it */
        rf_exec_release(ex);
        return rc;
    }
    if (opts && (opts->flags & RF_SUBMIT_HELD)) {
        atomic_store_explicit(&ex->held, 1, memory_order_relaxed); /* not shared yet */
        *out = ex;
        return 0;
    }
    bool sent = rf__shard_send(sh, ex, RF_MSG_SUBMIT);
    RF_ASSERT(sent); /* the inbox holds two messages per reserved execution */
    *out = ex;
    return 0;
}

int rf_exec_start(rf_exec *ex)
{
    uint8_t held = 1;

    if (!ex)
        return -EINVAL;
    /* acq_rel: one of start and abandon wins; the winner's writes reach the shard. */
    if (!atomic_compare_exchange_strong_explicit(&ex->held, &held, 0, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return -EINVAL;
    bool sent = rf__shard_send(ex->eng->shards[ex->home], ex, RF_MSG_SUBMIT);
    RF_ASSERT(sent); /* the reservation still holds its inbox room */
    return 0;
}

int rf_exec_abandon(rf_exec *ex)
{
    uint8_t held = 1;
    rf_engine *eng;

    if (!ex)
        return -EINVAL;
    /* acq_rel: as in rf_exec_start. */
    if (!atomic_compare_exchange_strong_explicit(&ex->held, &held, 2, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return -EINVAL;
    eng = ex->eng;
    atomic_store_explicit(&ex->status, RF_ST_CANCELED, memory_order_release); /* publish */
    /* Release: as finalize's (engine/event.c): the stopper sees the execution gone. */
    atomic_fetch_sub_explicit(&eng->shards[ex->home]->inflight, 1, memory_order_release);
    if (atomic_load_explicit(&eng->state, memory_order_relaxed) == RF_ENG_STOPPING) {
        atomic_fetch_add_explicit(&eng->stop_word, 1, memory_order_release); /* futex word */
        rf__futex_wake_all(&eng->stop_word);
    }
    /* Release: rf_exec_wait sees the final status. */
    if (atomic_exchange_explicit(&ex->done, 1, memory_order_acq_rel) == 2)
        rf__futex_wake_all(&ex->done);
    rf_exec_release(ex); /* the engine's own reference: it never reached a shard */
    return 0;
}

int rf_exec_cancel(rf_exec *ex)
{
    rf_engine *eng;

    if (!ex)
        return -EINVAL;
    /* Release: the shards that acquire a bumped epoch see the bit. */
    if (atomic_fetch_or_explicit(&ex->ctl, RF_CTL_CANCEL, memory_order_release) & RF_CTL_CANCEL)
        return 0;
    if (rf_status_terminal(atomic_load_explicit(&ex->status, memory_order_acquire)))
        return 0;
    eng = ex->eng;
    for (uint32_t s = 0; s < eng->nshards; s++) {
        /* Release: orders the cancel bit before the epoch a shard acquires. */
        atomic_fetch_add_explicit(&eng->shards[s]->cancel_epoch, 1, memory_order_release);
        if (eng->shards[s] != rf__cur_shard)
            rf__shard_wake(eng->shards[s]);
    }
    return 0;
}

rf_exec *rf_exec_retain(rf_exec *ex)
{
    atomic_fetch_add_explicit(&ex->refs, 1, memory_order_relaxed); /* caller holds one */
    return ex;
}

void rf__exec_free(struct rf_exec *ex)
{
    const rf_plan *p = ex->plan;
    json_t **errs = atomic_load_explicit(&ex->errs, memory_order_acquire);

    if (atomic_load_explicit(&ex->has_outputs, memory_order_relaxed))
        for (uint32_t i = 0; i < p->n; i++)
            json_decref(ex->ns[i].output);
    if (errs) {
        for (uint32_t i = 0; i < p->n; i++)
            json_decref(errs[i]);
        rf_free(errs);
    }
    struct rf_naux *aux = atomic_load_explicit(&ex->aux, memory_order_acquire);
    if (aux) {
        for (uint32_t i = 0; i < p->n; i++) {
            json_decref(aux[i].params);
            rf_cache_value_release(aux[i].rvalue); /* a remote hit a cancellation overtook */
            rf__map_free(aux[i].map);
        }
        rf_free(aux);
    }
    json_decref(ex->inputs);
    json_decref(ex->error);
    json_decref(ex->output);
    json_decref(ex->tags);
    rf__xdoc_free(ex->doc);
    rf_free(ex->parent);
    rf_free(ex->replay);
    rf__evq_fini(&ex->evq);
    rf_plan_release(ex->plan);
    rf_free(ex);
}

void rf_exec_release(rf_exec *ex)
{
    /* acq_rel: the last holder sees every write made under the other references. */
    if (ex && atomic_fetch_sub_explicit(&ex->refs, 1, memory_order_acq_rel) == 1)
        rf__exec_free(ex);
}

const char *rf_exec_id(const rf_exec *ex)
{
    return ex->id;
}

rf_plan *rf_exec_plan(const rf_exec *ex)
{
    return ex->plan;
}

rf_status rf_exec_status(const rf_exec *ex)
{
    return (rf_status)atomic_load_explicit(&ex->status, memory_order_acquire); /* snapshot */
}

uint32_t rf_exec_shard(const rf_exec *ex)
{
    return ex->home;
}

const json_t *rf_exec_inputs(const rf_exec *ex)
{
    return ex->inputs;
}

int rf_exec_node(const rf_exec *ex, uint32_t node, rf_node_info *out)
{
    const struct rf_nstate *ns;
    json_t **errs;

    if (!ex || !out || node >= ex->plan->n)
        return -EINVAL;
    ns = &ex->ns[node];
    memset(out, 0, sizeof(*out));
    /* Acquire: a terminal status makes output and error safe to read. */
    out->status = (rf_status)atomic_load_explicit(&ns->status, memory_order_acquire);
    out->attempts = atomic_load_explicit(&ns->attempts, memory_order_relaxed);
    if (!rf_status_terminal(out->status))
        return 0;
    if (out->status == RF_ST_SUCCEEDED || out->status == RF_ST_CACHED)
        out->output = ns->output ? ns->output : json_null();
    errs = atomic_load_explicit(&ex->errs, memory_order_acquire);
    if (errs)
        out->error = errs[node];
    return 0;
}

const json_t *rf_exec_error(const rf_exec *ex)
{
    if (!rf_status_terminal(rf_exec_status(ex)))
        return NULL;
    return ex->error;
}

json_t *rf_exec_output(const rf_exec *ex)
{
    /* The acquire load of a terminal status makes ex->output readable. */
    if (rf_exec_status(ex) != RF_ST_SUCCEEDED || !ex->output)
        return NULL;
    return json_incref(ex->output);
}

json_t *rf_exec_document(const rf_exec *ex)
{
    return ex && ex->doc ? rf__xdoc_snapshot(ex->doc) : NULL;
}

int rf_exec_wait(rf_exec *ex, uint32_t timeout_ms)
{
    uint64_t deadline = rf_now_ns() + (uint64_t)timeout_ms * 1000000u;
    uint32_t expect = 0;

    for (;;) {
        /* Acquire: pairs with finalize's exchange; the execution is then settled. */
        uint32_t d = atomic_load_explicit(&ex->done, memory_order_acquire);
        if (d == 1)
            return 0;
        uint64_t now = rf_now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        /* Announce a waiter so finalize makes the wake syscall. */
        expect = 0;
        atomic_compare_exchange_strong_explicit(&ex->done, &expect, 2, memory_order_acq_rel,
                                                memory_order_acquire);
        uint64_t left_ms = (deadline - now + 999999) / 1000000;
        rf__futex_wait(&ex->done, 2, (uint32_t)RF_MIN(left_ms, 100u));
    }
}
