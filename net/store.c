/*
 * net/store.c: execution records, their event logs and watchers (see net/store.h).
 *
 * Indexes. One bucket array, sized once for every record that can exist (in flight plus
 * executions_max finished), holds two chains per bucket: by id and by (graph, idempotency
 * key). Bucket b is guarded by stripe lock b % RF_STORE_STRIPES. A global list in creation
 * order (newest at the tail) and a FIFO of finished records are under `list_lock`.
 *
 * A record becomes visible in three steps, in this order: the idempotency chain (before the
 * submission, as a placeholder, so two requests with one key make one execution), then the
 * id chain and the list (after rf_submit returned the id). Its execution may finish before
 * it is listed (a fast graph on another shard): `finished` and `listed` meet under the list
 * lock and whichever comes second puts it on the FIFO. Eviction pops the FIFO's head past
 * executions_max and unlinks it from everything; the index's reference goes with it.
 *
 * Events are serialized once, by the thread that runs the callback, into a thread-local
 * buffer, then copied into one allocation and appended under the record's lock. Every
 * watcher not yet queued is posted to its shard under the same lock, which is what makes
 * rf_store_unwatch safe: after it took the lock, no new post can be made.
 */
#include <errno.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/jcs.h"
#include "engine/xdoc.h"
#include "net/metrics.h"
#include "net/sjournal.h"
#include "net/store_int.h"

static _Thread_local struct rf_buf ev_scratch; /* one event's JSON, per thread */

void rf_store_thread_exit(void)
{
    rf_buf_free(&ev_scratch);
}

struct rf_buf *rf__store_scratch(void)
{
    return &ev_scratch;
}

/* --- hashing and the chains ------------------------------------------------------------ */

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static uint64_t id_bucket(const struct rf_store *st, const char *id)
{
    return fnv1a(0xcbf29ce484222325ull, id) & (st->nbuckets - 1);
}

static uint64_t idem_bucket(const struct rf_store *st, const char *graph, const char *key)
{
    uint64_t h = fnv1a(0xcbf29ce484222325ull, graph);

    return fnv1a(h ^ 0xff, key) & (st->nbuckets - 1);
}

static rf_spin *stripe_of(struct rf_store *st, uint64_t b)
{
    return &st->stripes[b % RF_STORE_STRIPES].lock;
}

static bool idem_match(const struct rf_xrec *x, const char *graph, const char *key)
{
    return x->idem && strcmp(x->idem, key) == 0 && strcmp(rf_plan_name(x->plan), graph) == 0;
}

/* Unlink x from a chain threaded through the member at `off`. Under the stripe lock. */
static void chain_del(struct rf_xrec **head, struct rf_xrec *x, size_t off)
{
    for (struct rf_xrec **pp = head; *pp; pp = (struct rf_xrec **)((char *)*pp + off))
        if (*pp == x) {
            *pp = *(struct rf_xrec **)((char *)x + off);
            return;
        }
}

/* --- records ------------------------------------------------------------------------- */

struct rf_xrec *rf_xrec_retain(struct rf_xrec *x)
{
    atomic_fetch_add_explicit(&x->refs, 1, memory_order_relaxed); /* the caller holds one */
    return x;
}

void rf__xrec_free(struct rf_xrec *x)
{
    struct rf_evchunk *c = x->chunks;

    /* The first chunk is inside x's block: free the later ones only. */
    while (c && c->next) {
        struct rf_evchunk *next = c->next;
        rf_free(c);
        c = next;
    }
    if (x->ev != (struct rf_evt **)(x + 1))
        rf_free(x->ev);
    rf_free(x->idem);
    rf_free(x->fin);
    json_decref(x->tags);
    rf_exec_release(x->ex);
    rf_exec_release(x->held);
    rf_plan_release(x->plan);
    rf_free(x);
}

void rf_xrec_release(struct rf_xrec *x)
{
    /* acq_rel: the last release sees every write made under earlier references. */
    if (x && atomic_fetch_sub_explicit(&x->refs, 1, memory_order_acq_rel) == 1)
        rf__xrec_free(x);
}

/* One block: the record, its first ev[] array, node_start_us[] and the first chunk. */
struct rf_xrec *rf__xrec_new(struct rf_store *st, rf_plan *plan, const char *idem,
                             const json_t *tags)
{
    uint32_t n = rf_plan_nodes(plan);
    uint32_t evs = RF_MIN(2 * n + 3, 64u); /* queued, started, 2 per node, the end */
    uint32_t first = RF_MIN(evs * RF_EVT_GUESS_BYTES, RF_EVCHUNK_FIRST_MAX);
    size_t ev_off = sizeof(struct rf_xrec);
    size_t ns_off = ev_off + evs * sizeof(struct rf_evt *);
    size_t ch_off = RF_ALIGN_UP(ns_off + n * sizeof(int64_t), 8);
    struct rf_xrec *x = rf_malloc(ch_off + sizeof(struct rf_evchunk) + first);

    if (!x)
        return NULL;
    memset(x, 0, ch_off);
    x->st = st;
    x->account = RF_ACCOUNT_DEFAULT;
    x->plan = rf_plan_retain(plan);
    atomic_init(&x->refs, 1); /* the caller's, becomes the index's */
    atomic_init(&x->accepted, false);
    x->created_us = rf_wall_us();
    x->ev = (struct rf_evt **)((char *)x + ev_off);
    x->evcap = evs;
    x->node_start_us = (int64_t *)((char *)x + ns_off);
    x->chunks = (struct rf_evchunk *)((char *)x + ch_off);
    x->chunks->next = NULL;
    x->chunks->used = 0;
    x->chunks->cap = first;
    x->idem = idem ? rf_strdup(idem) : NULL;
    x->tags = tags ? json_incref((json_t *)tags) : NULL;
    x->graph_metric = st->m ? rf_metrics_graph(st->m, rf_plan_name(plan)) : 0;
    if (idem && !x->idem) {
        rf__xrec_free(x);
        return NULL;
    }
    return x;
}

/* Room for one event of `len` text bytes in x's chunks (callback thread only: one
 * callback at a time per execution). NULL when out of memory. */
static struct rf_evt *evt_alloc(struct rf_xrec *x, uint32_t len)
{
    struct rf_evchunk *c = x->chunks;
    uint32_t need = RF_ALIGN_UP((uint32_t)sizeof(struct rf_evt) + len + 1, 4);

    if (c->cap - c->used < need) {
        uint32_t cap = RF_MAX(RF_MAX(c->cap * 2, RF_EVCHUNK_MIN), need);
        struct rf_evchunk *nc = rf_malloc(sizeof(*nc) + cap);
        if (!nc)
            return NULL;
        nc->used = 0;
        nc->cap = cap;
        /* The newest chunk first, the record's own block stays last (see xrec_free). */
        nc->next = c;
        x->chunks = c = nc;
    }
    struct rf_evt *e = (struct rf_evt *)(c->data + c->used);
    c->used += need;
    return e;
}

/* The summary a finished execution keeps; NULL when out of memory (the execution is then
 * kept instead). */
static struct rf_xfinal *final_new(rf_exec *ex)
{
    struct rf_buf *b = &ev_scratch;
    const json_t *in = rf_exec_inputs(ex), *err = rf_exec_error(ex);
    json_t *out = rf_exec_output(ex);
    uint32_t in_len, out_len;
    struct rf_xfinal *f = NULL;

    b->len = 0;
    if ((in ? rf_json_write(in, b) : rf_buf_append(b, "{}", 2)) < 0)
        b->len = 0, rf_buf_append(b, "null", 4);
    in_len = (uint32_t)b->len;
    if (!out || rf_json_write(out, b) < 0)
        rf_buf_append(b, "null", 4);
    out_len = (uint32_t)b->len - in_len;
    if (!err || rf_json_write(err, b) < 0)
        rf_buf_append(b, "null", 4);
    if (b->len >= in_len + out_len + 4 && (f = rf_malloc(sizeof(*f) + b->len)) != NULL) {
        f->status = rf_exec_status(ex);
        f->in_len = in_len;
        f->out_len = out_len;
        f->err_len = (uint32_t)b->len - in_len - out_len;
        memcpy(f->data, b->p, b->len);
    }
    json_decref(out);
    return f;
}

static struct rf_evt **ev_grow(struct rf_xrec *x, uint32_t *cap);

int rf__xrec_event_text(struct rf_xrec *x, const char *text, uint32_t len)
{
    struct rf_evt *e = evt_alloc(x, len), **nv = NULL;
    uint32_t cap = 0;

    if (!e)
        return -ENOMEM;
    if (x->nev == x->evcap && !(nv = ev_grow(x, &cap)))
        return -ENOMEM;
    if (nv) {
        if (x->ev != (struct rf_evt **)(x + 1))
            rf_free(x->ev);
        x->ev = nv;
        x->evcap = cap;
    }
    e->len = len;
    memcpy(e->s, text, len);
    e->s[len] = '\0';
    x->ev[x->nev++] = e;
    return 0;
}

int rf__xrec_finish(struct rf_xrec *x, rf_status status, const char *in, uint32_t in_len,
                    const char *out, uint32_t out_len, const char *err, uint32_t err_len)
{
    struct rf_xfinal *f = rf_malloc(sizeof(*f) + (size_t)in_len + out_len + err_len);

    if (!f)
        return -ENOMEM;
    f->status = status;
    f->in_len = in_len;
    f->out_len = out_len;
    f->err_len = err_len;
    memcpy(f->data, in, in_len);
    memcpy(f->data + in_len, out, out_len);
    memcpy(f->data + in_len + out_len, err, err_len);
    rf_free(x->fin);
    x->fin = f;
    x->done = true;
    x->finished = true;
    return 0;
}

rf_status rf_store_status(struct rf_xrec *x)
{
    rf_status st = RF_ST_QUEUED;

    rf_spin_lock(&x->lock);
    if (x->fin)
        st = x->fin->status;
    else if (x->ex)
        st = rf_exec_status(x->ex);
    rf_spin_unlock(&x->lock);
    return st;
}

rf_exec *rf_store_exec(struct rf_xrec *x)
{
    rf_exec *ex;

    rf_spin_lock(&x->lock);
    ex = x->ex ? rf_exec_retain(x->ex) : NULL;
    rf_spin_unlock(&x->lock);
    return ex;
}

bool rf_store_result(struct rf_xrec *x, rf_status *st, struct rf_slice *output,
                     struct rf_slice *error)
{
    struct rf_xfinal *f;

    rf_spin_lock(&x->lock);
    f = x->done ? x->fin : NULL;
    rf_spin_unlock(&x->lock);
    if (!f)
        return false;
    /* fin is immutable once published and lives as long as x. */
    *st = f->status;
    *output = (struct rf_slice){f->data + f->in_len, f->out_len};
    *error = (struct rf_slice){f->data + f->in_len + f->out_len, f->err_len};
    return true;
}

/* --- the engine's callbacks --------------------------------------------------------- */

static void watchers_post(struct rf_xrec *x)
{
    for (struct rf_watch *w = x->watchers; w; w = w->wnext)
        /* acq_rel: the post's reader clears it before reading the log (see notify_post). */
        if (!atomic_exchange_explicit(&w->queued, 1, memory_order_acq_rel))
            rf__shard_post(w->sh, &w->post);
}

static void node_metrics(struct rf_xrec *x, const rf_event *ev)
{
    const rf_plan *p = x->plan;
    rf_status st;

    if (!x->st->m || ev->node < 0 || (uint32_t)ev->node >= rf_plan_nodes(p))
        return;
    switch (ev->type) {
    case RF_EV_NODE_STARTED:
        if (ev->item < 0 || x->node_start_us[ev->node] == 0)
            x->node_start_us[ev->node] = ev->ts_us;
        return;
    case RF_EV_NODE_SUCCEEDED: st = RF_ST_SUCCEEDED; break;
    case RF_EV_NODE_FAILED: st = RF_ST_FAILED; break;
    case RF_EV_NODE_CACHED: st = RF_ST_CACHED; break;
    case RF_EV_NODE_SKIPPED: st = RF_ST_SKIPPED; break;
    case RF_EV_NODE_CANCELED: st = RF_ST_CANCELED; break;
    default: return;
    }
    int64_t t0 = x->node_start_us[ev->node];
    uint64_t lat = t0 && ev->ts_us > t0 ? (uint64_t)(ev->ts_us - t0) : 0;
    rf_metrics_node(x->st->m, p->nodes[ev->node].kind->index, st, lat);
}

/* A bigger ev[] for x (callback thread): the copy is made outside the lock, the swap
 * under it. NULL when out of memory. */
static struct rf_evt **ev_grow(struct rf_xrec *x, uint32_t *cap)
{
    struct rf_evt **nv;

    *cap = x->evcap * 2;
    nv = rf_malloc(*cap * sizeof(*nv));
    if (nv) {
        rf_spin_lock(&x->lock);
        memcpy(nv, x->ev, x->nev * sizeof(*nv));
        rf_spin_unlock(&x->lock);
    }
    return nv;
}

void rf__store_on_event(void *ud, const rf_event *ev)
{
    struct rf_xrec *x = ud;
    struct rf_buf *b = &ev_scratch;
    struct rf_evt *e = NULL, **nv = NULL, **old = NULL;
    bool keep = x->nev < x->st->cfg.events_max && x->nev == ev->seq - 1;
    uint32_t cap = 0;

    /* Only this callback writes nev, ev and the chunks; readers copy under the lock. */
    b->len = 0;
    if (keep && rf_event_write(b, ev) == 0 && (e = evt_alloc(x, (uint32_t)b->len)) != NULL) {
        e->len = (uint32_t)b->len;
        memcpy(e->s, b->p, b->len);
        e->s[b->len] = '\0';
        if (x->nev == x->evcap && !(nv = ev_grow(x, &cap)))
            e = NULL;
    }
    if (ev->type == RF_EV_EXECUTION_STARTED && x->st->m)
        rf_metrics_exec_started(x->st->m, x->graph_metric);
    node_metrics(x, ev);
    rf_spin_lock(&x->lock);
    if (nv) {
        old = x->ev;
        x->ev = nv;
        x->evcap = cap;
    }
    if (e)
        x->ev[x->nev++] = e;
    else
        x->dropped++;
    watchers_post(x);
    rf_spin_unlock(&x->lock);
    if (old && old != (struct rf_evt **)(x + 1))
        rf_free(old);
    if (x->st->sj)
        rf__sjournal_touch(x->st->sj, x);
}

static void fifo_push_locked(struct rf_store *st, struct rf_xrec *x)
{
    x->in_fifo = true;
    x->fnext = NULL;
    if (st->fifo_tail)
        st->fifo_tail->fnext = x;
    else
        st->fifo_head = x;
    st->fifo_tail = x;
    st->nfinished++;
}

static void unindex(struct rf_store *st, struct rf_xrec *x)
{
    uint64_t b = id_bucket(st, x->id);

    rf_spin_lock(stripe_of(st, b));
    chain_del(&st->by_id[b], x, offsetof(struct rf_xrec, hnext));
    rf_spin_unlock(stripe_of(st, b));
    if (x->idem) {
        b = idem_bucket(st, rf_plan_name(x->plan), x->idem);
        rf_spin_lock(stripe_of(st, b));
        chain_del(&st->by_idem[b], x, offsetof(struct rf_xrec, inext));
        rf_spin_unlock(stripe_of(st, b));
    }
}

/* Pop finished records past executions_max; returns them chained through fnext. */
static struct rf_xrec *evict_locked(struct rf_store *st)
{
    struct rf_xrec *out = NULL;

    while (st->nfinished > st->cfg.executions_max) {
        struct rf_xrec *x = st->fifo_head;
        st->fifo_head = x->fnext;
        if (!st->fifo_head)
            st->fifo_tail = NULL;
        st->nfinished--;
        st->nlisted--;
        st->nevicted++;
        if (x->lprev)
            x->lprev->lnext = x->lnext;
        else
            st->oldest = x->lnext;
        if (x->lnext)
            x->lnext->lprev = x->lprev;
        else
            st->newest = x->lprev;
        x->listed = false;
        x->fnext = out;
        out = x;
    }
    return out;
}

/* Archive x's key before x leaves the index, so a repeat finds one or the other. */
static void archive_key(struct rf_store *st, struct rf_xrec *x)
{
    struct rf_idarch_hit h = {.version = rf_plan_version(x->plan),
                              .status = rf_store_status(x),
                              .created_us = x->created_us};

    memcpy(h.id, x->id, RF_ID_BYTES);
    rf_idarch_put(st->arch, rf_plan_name(x->plan), x->idem, &h);
}

static void evict_release(struct rf_store *st, struct rf_xrec *out)
{
    while (out) {
        struct rf_xrec *next = out->fnext;
        if (out->idem && st->arch)
            archive_key(st, out);
        unindex(st, out);
        rf_xrec_release(out); /* the index's reference */
        out = next;
    }
}

void rf__store_on_done(void *ud, rf_exec *ex)
{
    struct rf_xrec *x = ud;
    struct rf_store *st = x->st;
    struct rf_xrec *evicted = NULL;

    if (st->m) {
        int64_t now = rf_wall_us();
        rf_metrics_exec_finished(st->m, x->graph_metric, rf_exec_status(ex),
                                 now > x->created_us ? (uint64_t)(now - x->created_us) : 0);
    }
    struct rf_xfinal *fin = final_new(ex);
    rf_exec *retired = NULL;

    rf_spin_lock(&x->lock);
    x->done = true;
    if (fin) {
        x->fin = fin;
        retired = x->ex; /* NULL when done came before rf_store_submit stored it */
        x->ex = NULL;
    }
    watchers_post(x);
    rf_spin_unlock(&x->lock);
    /* Released while hot, on the shard that ran it: the engine frees it after this
     * callback (it holds its own reference until then). */
    rf_exec_release(retired);
    rf_spin_lock(&st->list_lock);
    x->finished = true;
    if (!st->sj)
        x->evictable = true; /* else once its SUMMARY is in the journal */
    if (x->listed && x->evictable) {
        fifo_push_locked(st, x);
        evicted = evict_locked(st);
    }
    rf_spin_unlock(&st->list_lock);
    evict_release(st, evicted);
    if (st->sj)
        rf__sjournal_touch(st->sj, x);
}

/* --- the store ----------------------------------------------------------------------- */

int rf_store_new(rf_engine *eng, const struct rf_store_config *cfg, struct rf_metrics *m,
                 struct rf_store **out)
{
    struct rf_store *st = rf_zalloc_aligned(sizeof(*st), RF_CACHELINE);
    uint64_t want;

    if (!st)
        return -ENOMEM;
    st->eng = eng;
    st->m = m;
    st->cfg = *cfg;
    if (!st->cfg.executions_max)
        st->cfg.executions_max = 100000;
    if (!st->cfg.events_max)
        st->cfg.events_max = 100000;
    want = (uint64_t)st->cfg.executions_max + st->cfg.inflight_max;
    st->nbuckets = 1024;
    while (st->nbuckets < want && st->nbuckets < (1ull << 26))
        st->nbuckets <<= 1;
    st->by_id = rf_calloc(st->nbuckets, sizeof(*st->by_id));
    st->by_idem = rf_calloc(st->nbuckets, sizeof(*st->by_idem));
    if (!st->by_id || !st->by_idem) {
        rf_store_free(st);
        return -ENOMEM;
    }
    if (st->cfg.idem_keys_max) {
        int rc = rf_idarch_new(st->cfg.idem_keys_max, st->cfg.idem_keep_ms, &st->arch);
        if (rc < 0) {
            rf_store_free(st);
            return rc;
        }
    }
    *out = st;
    return 0;
}

void rf_store_free(struct rf_store *st)
{
    if (!st)
        return;
    for (struct rf_xrec *x = st->oldest, *next; x; x = next) {
        next = x->lnext;
        rf_xrec_release(x);
    }
    rf_free(st->by_id);
    rf_free(st->by_idem);
    rf_idarch_free(st->arch);
    rf_free(st);
}

/* Find or claim the idempotency key: 0 with *found set (retained) or a placeholder x
 * linked; -EINPROGRESS when the key's placeholder has no execution yet. */
int rf__store_idem_claim(struct rf_store *st, struct rf_xrec *x, const char *key,
                         struct rf_xrec **found)
{
    const char *graph = rf_plan_name(x->plan);
    uint64_t b = idem_bucket(st, graph, key);
    int rc = 0;

    *found = NULL;
    rf_spin_lock(stripe_of(st, b));
    for (struct rf_xrec *y = st->by_idem[b]; y; y = y->inext)
        if (idem_match(y, graph, key)) {
            /* Acquire: pairs with rf_store_submit's release; y's id is complete. */
            if (!atomic_load_explicit(&y->accepted, memory_order_acquire))
                rc = -EINPROGRESS;
            else
                *found = rf_xrec_retain(y);
            goto out;
        }
    x->inext = st->by_idem[b];
    st->by_idem[b] = x;
out:
    rf_spin_unlock(stripe_of(st, b));
    return rc;
}

void rf__store_idem_unclaim(struct rf_store *st, struct rf_xrec *x)
{
    uint64_t b = idem_bucket(st, rf_plan_name(x->plan), x->idem);

    rf_spin_lock(stripe_of(st, b));
    chain_del(&st->by_idem[b], x, offsetof(struct rf_xrec, inext));
    rf_spin_unlock(stripe_of(st, b));
}

void rf__store_index_new(struct rf_store *st, struct rf_xrec *x)
{
    uint64_t b = id_bucket(st, x->id);
    struct rf_xrec *evicted = NULL;

    rf_spin_lock(stripe_of(st, b));
    x->hnext = st->by_id[b];
    st->by_id[b] = x;
    rf_spin_unlock(stripe_of(st, b));
    rf_spin_lock(&st->list_lock);
    x->lprev = st->newest;
    x->lnext = NULL;
    if (st->newest)
        st->newest->lnext = x;
    else
        st->oldest = x;
    st->newest = x;
    x->listed = true;
    st->nlisted++;
    if (x->finished && x->evictable) {
        fifo_push_locked(st, x);
        evicted = evict_locked(st);
    }
    rf_spin_unlock(&st->list_lock);
    evict_release(st, evicted);
}

void rf__store_evictable(struct rf_store *st, struct rf_xrec *x)
{
    struct rf_xrec *evicted = NULL;

    rf_spin_lock(&st->list_lock);
    x->evictable = true;
    if (x->finished && x->listed && !x->in_fifo) {
        fifo_push_locked(st, x);
        evicted = evict_locked(st);
    }
    rf_spin_unlock(&st->list_lock);
    evict_release(st, evicted);
}

int rf_store_submit(struct rf_store *st, struct rf_store_submit *s, struct rf_xrec **out,
                    bool *existing)
{
    struct rf_xrec *x, *found;
    char id[RF_ID_BYTES];
    rf_exec *ex;
    int rc;

    *existing = false;
    x = rf__xrec_new(st, s->plan, s->idem, s->tags);
    if (!x) {
        json_decref(s->inputs);
        return -ENOMEM;
    }
    if (s->idem && (rc = rf__store_idem_claim(st, x, s->idem, &found)) <= 0 && (rc < 0 || found)) {
        rf__xrec_free(x);
        json_decref(s->inputs);
        if (rc < 0)
            return rc;
        *existing = true;
        *out = found;
        return 0;
    }
    if (s->idem && st->arch &&
        rf_idarch_get(st->arch, rf_plan_name(s->plan), s->idem, rf_wall_us(), &s->hit)) {
        rf__store_idem_unclaim(st, x);
        rf__xrec_free(x);
        json_decref(s->inputs);
        return 2;
    }
    rf_callbacks cb = {.event = rf__store_on_event, .done = rf__store_on_done, .ud = x};
    rf_submit_opts o = {.callbacks = &cb,
                        .flags = RF_SUBMIT_SHARD,
                        .shard = s->shard,
                        .diag = s->diag,
                        .tags = s->tags};
    x->home = s->shard;
    if (st->sj) {
        /* Durable first: the execution is held until its ACCEPT is on disk. */
        rf__sjournal_make_id(st->sj, s->shard, id);
        o.id = id;
        o.flags |= RF_SUBMIT_HELD;
    }
    /* The extra reference is the caller's; the callbacks use the index's. */
    atomic_fetch_add_explicit(&x->refs, 1, memory_order_relaxed); /* not shared yet */
    rc = rf_submit(st->eng, s->plan, s->inputs, &o, &ex);
    s->inputs = NULL;
    if (rc < 0) {
        if (x->idem)
            rf__store_idem_unclaim(st, x);
        rf__xrec_free(x);
        return rc;
    }
    memcpy(x->id, rf_exec_id(ex), RF_EXEC_ID_LEN);
    x->created_us = ex->created_us;
    if (st->sj) {
        x->held = ex;
        x->on_accepted = s->accepted;
        x->on_accepted_ud = s->accepted_ud;
        rc = rf__sjournal_accept(st->sj, x);
        if (rc < 0) {
            rf_exec_abandon(ex);
            if (x->idem)
                rf__store_idem_unclaim(st, x);
            rf__xrec_free(x);
            return rc;
        }
        return 1;
    }
    rf_spin_lock(&x->lock);
    if (!x->fin) {
        x->ex = ex; /* ours until done */
        ex = NULL;
    }
    rf_spin_unlock(&x->lock);
    rf_exec_release(ex); /* it finished already: its summary is all we keep */
    /* Release: a thread that finds x through the idempotency chain reads a complete x. */
    atomic_store_explicit(&x->accepted, true, memory_order_release);
    rf__store_index_new(st, x);
    *out = x;
    return 0;
}

struct rf_xrec *rf_store_get(struct rf_store *st, const char *id)
{
    uint64_t b = id_bucket(st, id);
    struct rf_xrec *x;

    rf_spin_lock(stripe_of(st, b));
    for (x = st->by_id[b]; x; x = x->hnext)
        if (strcmp(x->id, id) == 0) {
            rf_xrec_retain(x);
            break;
        }
    rf_spin_unlock(stripe_of(st, b));
    return x;
}

uint32_t rf_store_events(struct rf_xrec *x, uint64_t after, const struct rf_evt **out,
                         uint32_t max, bool *done)
{
    uint32_t n = 0;

    rf_spin_lock(&x->lock);
    for (uint64_t i = after; i < x->nev && n < max; i++)
        out[n++] = x->ev[i];
    *done = x->done && after + n >= x->nev;
    rf_spin_unlock(&x->lock);
    return n;
}

bool rf_store_done(struct rf_xrec *x)
{
    bool done;

    rf_spin_lock(&x->lock);
    done = x->done;
    rf_spin_unlock(&x->lock);
    return done;
}

/* Copy the event pointers of x (held) into a new array; *n set. NULL when empty/no memory. */
static const struct rf_evt **events_all(struct rf_xrec *x, uint32_t *n)
{
    const struct rf_evt **v = NULL;

    rf_spin_lock(&x->lock);
    *n = x->nev;
    if (*n && (v = rf_malloc(*n * sizeof(*v))) != NULL)
        memcpy(v, x->ev, *n * sizeof(*v));
    rf_spin_unlock(&x->lock);
    return v;
}

/* Apply one serialized event to the document being rebuilt. */
static void doc_apply(struct rf_xdoc *d, const json_t *ids, const struct rf_evt *e)
{
    json_t *o = json_loadb(e->s, e->len, 0, NULL);
    const char *node = json_string_value(json_object_get(o, "node"));
    json_t *idx = node ? json_object_get(ids, node) : NULL;
    rf_event ev;

    if (o && (!node || idx) &&
        rf__event_from_json(o, idx ? (int32_t)json_integer_value(idx) : -1, &ev) == 0)
        rf__xdoc_apply(d, &ev);
    json_decref(o);
}

/* The execution's inputs (new reference): from the running execution, or parsed back
 * from a finished one's summary. NULL when out of memory. */
static json_t *doc_inputs(struct rf_xrec *x)
{
    json_t *in = NULL;

    rf_spin_lock(&x->lock);
    struct rf_xfinal *f = x->fin;
    rf_exec *ex = f ? NULL : x->ex ? rf_exec_retain(x->ex) : NULL;
    rf_spin_unlock(&x->lock);
    if (f)
        in = json_loadb(f->data, f->in_len, JSON_DECODE_ANY, NULL);
    else if (ex)
        in = json_incref((json_t *)rf_exec_inputs(ex));
    rf_exec_release(ex);
    return in ? in : json_object();
}

json_t *rf_store_document(struct rf_xrec *x)
{
    uint32_t n = 0, nodes = rf_plan_nodes(x->plan);
    const struct rf_evt **ev = events_all(x, &n);
    json_t *tags = x->tags ? json_incref(x->tags) : json_array(); /* the API's tags: [] */
    json_t *inputs = doc_inputs(x);
    struct rf_xdoc *d = tags && inputs ? rf__xdoc_new(x->plan, x->id, inputs, tags,
                                                      x->created_us)
                                       : NULL;
    json_t *ids = json_object(), *doc = NULL;

    json_decref(tags);
    json_decref(inputs);
    if (!d || !ids || (n && !ev))
        goto out;
    for (uint32_t i = 0; i < nodes; i++)
        json_object_set_new(ids, rf_plan_node_id(x->plan, i), json_integer(i));
    for (uint32_t i = 0; i < n; i++)
        doc_apply(d, ids, ev[i]);
    doc = rf__xdoc_snapshot(d);
    if (doc && x->dropped)
        json_object_set_new(doc, "events_dropped", json_integer(x->dropped));
out:
    json_decref(ids);
    rf__xdoc_free(d);
    rf_free(ev);
    return doc;
}

/* --- watchers ------------------------------------------------------------------------- */

static void notify_post(struct rf_post *p, struct rf_shard *sh)
{
    struct rf_watch *w = rf_container_of(p, struct rf_watch, post);

    (void)sh;
    /* seq_cst: cleared before the watcher reads the log, so an event appended after the
     * read posts again (the poster's exchange sees 0). */
    atomic_store(&w->queued, 0);
    if (w->dead) {
        w->dispose(w);
        return;
    }
    w->notify(w);
}

void rf_store_watch(struct rf_xrec *x, struct rf_watch *w)
{
    RF_ASSERT(w->sh == rf__cur_shard);
    w->x = rf_xrec_retain(x);
    w->post.fn = notify_post;
    w->dead = false;
    atomic_init(&w->queued, 0);
    rf_spin_lock(&x->lock);
    w->wprev = NULL;
    w->wnext = x->watchers;
    if (x->watchers)
        x->watchers->wprev = w;
    x->watchers = w;
    w->linked = true;
    /* Something may already be there to read: let the watcher look once. */
    atomic_store_explicit(&w->queued, 1, memory_order_relaxed); /* under the lock */
    rf__shard_post(w->sh, &w->post);
    rf_spin_unlock(&x->lock);
}

void rf_store_unwatch(struct rf_watch *w)
{
    struct rf_xrec *x = w->x;

    RF_ASSERT(w->sh == rf__cur_shard);
    if (!w->linked)
        return;
    rf_spin_lock(&x->lock);
    if (w->wprev)
        w->wprev->wnext = w->wnext;
    else
        x->watchers = w->wnext;
    if (w->wnext)
        w->wnext->wprev = w->wprev;
    w->linked = false;
    rf_spin_unlock(&x->lock);
    w->x = NULL;
    rf_xrec_release(x);
    /* seq_cst: pairs with the posters' exchange made under the lock we just released. */
    if (atomic_load(&w->queued))
        w->dead = true; /* the queued post disposes of it on this shard */
    else
        w->dispose(w);
}

/* --- listing ---------------------------------------------------------------------------- */

static bool has_tag(const struct rf_xrec *x, const char *tag)
{
    size_t i;
    json_t *t;

    if (!json_is_array(x->tags))
        return false;
    json_array_foreach(x->tags, i, t)
        if (json_is_string(t) && strcmp(json_string_value(t), tag) == 0)
            return true;
    return false;
}

static bool matches(const struct rf_xrec *x, const struct rf_store_filter *f)
{
    if (f->graph && strcmp(rf_plan_name(x->plan), f->graph) != 0)
        return false;
    if (f->status >= 0 && (int)rf_store_status((struct rf_xrec *)x) != f->status)
        return false;
    return !f->tag || has_tag(x, f->tag);
}

int rf_store_list(struct rf_store *st, const struct rf_store_filter *f,
                  void (*fn)(void *ud, struct rf_xrec *x), void *ud, char next[RF_EXEC_ID_LEN])
{
    uint32_t n = 0, scanned = 0;
    struct rf_xrec *x, *last = NULL;

    /* The cursor is the id of the last record of the previous page. While that record is
     * listed the page continues right after it: ids of one millisecond do not sort in
     * creation order, so comparing ids would repeat or skip records. A cursor whose record
     * was dropped since (past executions_max) falls back to the id order, which sorts by
     * millisecond first. */
    struct rf_xrec *at = f->after ? rf_store_get(st, f->after) : NULL;

    next[0] = '\0';
    rf_spin_lock(&st->list_lock);
    x = st->newest;
    if (at && at->listed)
        x = at->lprev;
    else if (f->after)
        while (x && strcmp(x->id, f->after) >= 0 && scanned++ < f->scan_max)
            x = x->lprev;
    for (; x && n < f->limit && scanned < f->scan_max; x = x->lprev, scanned++) {
        last = x;
        if (!matches(x, f))
            continue;
        fn(ud, x);
        n++;
    }
    if (x && last)
        memcpy(next, last->id, RF_EXEC_ID_LEN);
    rf_spin_unlock(&st->list_lock);
    rf_xrec_release(at);
    return (int)n;
}

void rf__store_open_segments(struct rf_store *st, uint64_t *mins, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        mins[i] = UINT64_MAX;
    rf_spin_lock(&st->list_lock);
    for (struct rf_xrec *x = st->oldest; x; x = x->lnext)
        if (!x->finished && x->home < n && x->accept_seg < mins[x->home])
            mins[x->home] = x->accept_seg;
    rf_spin_unlock(&st->list_lock);
}

void rf_store_stats(struct rf_store *st, struct rf_store_stats *out)
{
    rf_spin_lock(&st->list_lock);
    out->records = st->nlisted;
    out->finished = st->nfinished;
    out->evicted = st->nevicted;
    rf_spin_unlock(&st->list_lock);
    out->archived_keys = st->arch ? rf_idarch_count(st->arch) : 0;
}
