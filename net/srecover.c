/*
 * net/srecover.c: reading the journals back at start-up, and applying what they say
 * (net/sjournal.h has the design; net/sjournal.c writes what this reads).
 *
 * Reading (rf__sj_recover_read, on the main thread before the engine starts): every
 * shard's graph journal first, then every shard's execution journal, in journal order
 * (storage/jread.h). GRAPH records are kept, sorted by when they were made. ACCEPT opens
 * an execution in a table of unfinished ones, EVENTS add to it, SUMMARY closes it and goes
 * to a ring of the newest finished ones: memory is bounded by the unfinished executions and
 * executions_max summaries, whatever the journal's size.
 *
 * Applying (once the engine runs): the graphs are registered (in passes, so callees come
 * before callers), the newest finished executions come back into memory, and every
 * unfinished one resumes on the shard its id names (modulo the shard count): its recorded
 * node outcomes come from its node events, its event log continues where it stopped, and
 * it writes its ACCEPT and events again in its new home's journal, so every execution's
 * history is whole in one journal. Start-up is ready only once every resumption is done.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/internal.h"
#include "net/sjournal_int.h"

/* --- recovery: reading ------------------------------------------------------------------- */

char *rf__sj_dup_slice(struct rf_xslice s)
{
    char *p = rf_malloc((size_t)s.n + 1);

    if (p) {
        memcpy(p, s.p, s.n);
        p[s.n] = '\0';
    }
    return p;
}

static uint32_t id_hash(const char *id, uint32_t nbuckets)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (const char *s = id; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return (uint32_t)(h & (nbuckets - 1));
}

static struct rexec **rexec_slot(struct recovery *rc, const char *id)
{
    struct rexec **pp = &rc->table[id_hash(id, rc->nbuckets)];

    while (*pp && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

static void rexec_free(struct rexec *e)
{
    for (uint32_t k = 0; k < e->nev; k++)
        rf_free(e->ev[k]);
    rf_free(e->ev);
    rf_free(e->evlen);
    rf_free(e->graph);
    rf_free(e->idem);
    rf_free(e->tags);
    rf_free(e->inputs);
    rf_free(e);
}

/* Drop e from the creation-order list (it finished). */
static void order_del(struct recovery *rc, struct rexec *e)
{
    struct rexec **pp = &rc->first, *prev = NULL;

    while (*pp && *pp != e) {
        prev = *pp;
        pp = &(*pp)->onext;
    }
    if (*pp) {
        *pp = e->onext;
        if (rc->last == e)
            rc->last = prev;
    }
}

static int on_graph(struct recovery *rc, const struct rf_jrec *rec)
{
    struct rf_xgraph g;

    if (rf_xgraph_read(rec, &g) < 0)
        return -EBADMSG;
    if (rc->ngraphs == rc->gcap) {
        uint32_t cap = rc->gcap ? rc->gcap * 2 : 32;
        struct rgraph *v = rf_realloc(rc->graphs, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        rc->graphs = v;
        rc->gcap = cap;
    }
    struct rgraph *e = &rc->graphs[rc->ngraphs];
    e->name = rf__sj_dup_slice(g.name);
    e->doc = rf__sj_dup_slice(g.doc);
    e->doc_len = g.doc.n;
    e->version = g.version;
    e->created_us = g.created_us;
    if (!e->name || !e->doc)
        return -ENOMEM;
    rc->ngraphs++;
    return 0;
}

static int on_def(struct recovery *rc, const struct rf_jrec *rec)
{
    struct rf_xdef d;

    if (rf_xdef_read(rec, &d) < 0)
        return -EBADMSG;
    if (rc->ndefs == rc->dcap) {
        uint32_t cap = rc->dcap ? rc->dcap * 2 : 16;
        struct rdef *v = rf_realloc(rc->defs, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        rc->defs = v;
        rc->dcap = cap;
    }
    struct rdef *e = &rc->defs[rc->ndefs];
    e->kind = d.kind;
    e->name = rf__sj_dup_slice(d.name);
    e->doc = rf__sj_dup_slice(d.doc);
    e->doc_len = d.doc.n;
    e->created_us = d.created_us;
    e->order = rc->ndefs;
    if (!e->name || !e->doc)
        return -ENOMEM;
    rc->ndefs++;
    return 0;
}

static int cmp_def(const void *a, const void *b)
{
    const struct rdef *x = a, *y = b;

    if (x->created_us != y->created_us)
        return x->created_us < y->created_us ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

void rf_sjournal_defs(struct rf_sjournal *sj, rf_sjournal_def_fn fn, void *ud)
{
    struct recovery *rc = sj->rec;

    if (!rc || !rc->ndefs)
        return;
    qsort(rc->defs, rc->ndefs, sizeof(*rc->defs), cmp_def);
    for (uint32_t k = 0; k < rc->ndefs; k++) {
        const struct rdef *e = &rc->defs[k];
        fn(ud, e->kind, e->name, e->doc_len ? e->doc : NULL, e->doc_len, e->created_us);
    }
}

/* A cron trigger's slot seen in an idempotency key: keep each trigger's newest. */
static void note_slot(struct recovery *rc, struct rf_xslice idem)
{
    char name[RF_TRIGGER_NAME_MAX + 1];
    int64_t slot;

    if (!rf_trigger_key_parse(idem.p, idem.n, name, &slot))
        return;
    for (uint32_t i = 0; i < rc->nslots; i++)
        if (strcmp(rc->slots[i].name, name) == 0) {
            if (slot > rc->slots[i].slot)
                rc->slots[i].slot = slot;
            return;
        }
    if (!rc->slots && !(rc->slots = rf_calloc(RF_TRIGGERS_MAX, sizeof(*rc->slots))))
        return;
    if (rc->nslots == RF_TRIGGERS_MAX)
        return;
    snprintf(rc->slots[rc->nslots].name, sizeof(rc->slots[0].name), "%s", name);
    rc->slots[rc->nslots++].slot = slot;
}

void rf_sjournal_cron_slots(struct rf_sjournal *sj, rf_sjournal_slot_fn fn, void *ud)
{
    struct recovery *rc = sj->rec;

    for (uint32_t i = 0; rc && i < rc->nslots; i++)
        fn(ud, rc->slots[i].name, rc->slots[i].slot);
}

static int on_accept(struct recovery *rc, const struct rf_jrec *rec)
{
    struct rf_xaccept a;
    char id[RF_ID_BYTES];

    if (rf_xaccept_read(rec, &a) < 0)
        return -EBADMSG;
    if (a.idem.n)
        note_slot(rc, a.idem);
    memcpy(id, a.id.p, a.id.n);
    id[a.id.n] = '\0';
    struct rexec **pp = rexec_slot(rc, id);
    if (*pp)
        return 0; /* written again by a resumption: the first one stands */
    struct rexec *e = rf_calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    memcpy(e->id, id, sizeof(id));
    e->graph = rf__sj_dup_slice(a.graph);
    e->idem = a.idem.n ? rf__sj_dup_slice(a.idem) : NULL;
    e->tags = a.tags.n ? rf__sj_dup_slice(a.tags) : NULL;
    e->tags_len = a.tags.n;
    e->inputs = rf__sj_dup_slice(a.inputs);
    e->inputs_len = a.inputs.n;
    e->version = a.version;
    e->created_us = a.created_us;
    if (!e->graph || !e->inputs || (a.idem.n && !e->idem) || (a.tags.n && !e->tags)) {
        rexec_free(e);
        return -ENOMEM;
    }
    *pp = e;
    if (rc->last)
        rc->last->onext = e;
    else
        rc->first = e;
    rc->last = e;
    rc->nopen++;
    return 0;
}

static int on_events(struct recovery *rc, const struct rf_jrec *rec)
{
    struct rf_xevents ev;
    char id[RF_ID_BYTES];
    struct rf_xslice t;
    uint32_t cur = 0;
    uint64_t seq;

    if (rf_xevents_read(rec, &ev) < 0)
        return -EBADMSG;
    memcpy(id, ev.id.p, ev.id.n);
    id[ev.id.n] = '\0';
    struct rexec *e = *rexec_slot(rc, id);
    if (!e)
        return 0; /* its ACCEPT is gone (retention) or it finished: nothing to resume */
    seq = ev.first_seq;
    while (rf_xevents_next(ev.events, ev.events_bytes, &cur, &t)) {
        if (seq++ != (uint64_t)e->nev + 1)
            continue; /* already had it (a resumption wrote its log again) */
        if (e->nev == e->evcap) {
            uint32_t cap = e->evcap ? e->evcap * 2 : 16;
            char **v = rf_realloc(e->ev, cap * sizeof(*v));
            uint32_t *l = v ? rf_realloc(e->evlen, cap * sizeof(*l)) : NULL;
            if (v)
                e->ev = v;
            if (!v || !l)
                return -ENOMEM;
            e->evlen = l;
            e->evcap = cap;
        }
        if (!(e->ev[e->nev] = rf__sj_dup_slice(t)))
            return -ENOMEM;
        e->evlen[e->nev++] = t.n;
    }
    return 0;
}

/* Every finished execution's key goes to the archive; the newest also come back into
 * memory with theirs, and the memory index is asked first. */
static void archive_key(struct rf_idarch *arch, const struct rf_xsummary *s)
{
    char graph[RF_NAME_BYTES_MAX + 1], key[RF_IDEM_KEY_BYTES_MAX + 1];
    struct rf_idarch_hit h = {.version = s->a.version,
                              .status = (rf_status)s->status,
                              .created_us = s->a.created_us};

    if (s->a.graph.n > RF_NAME_BYTES_MAX || s->a.idem.n > RF_IDEM_KEY_BYTES_MAX ||
        s->a.id.n >= RF_ID_BYTES)
        return; /* not one the API could have accepted */
    memcpy(graph, s->a.graph.p, s->a.graph.n);
    graph[s->a.graph.n] = '\0';
    memcpy(key, s->a.idem.p, s->a.idem.n);
    key[s->a.idem.n] = '\0';
    memcpy(h.id, s->a.id.p, s->a.id.n);
    h.id[s->a.id.n] = '\0';
    rf_idarch_put(arch, graph, key, &h);
}

static int on_summary(struct recovery *rc, const struct rf_jrec *rec)
{
    struct rf_xsummary s;
    char id[RF_ID_BYTES];

    if (rf_xsummary_read(rec, &s) < 0)
        return -EBADMSG;
    if (s.a.idem.n)
        note_slot(rc, s.a.idem);
    memcpy(id, s.a.id.p, s.a.id.n);
    id[s.a.id.n] = '\0';
    struct rexec **pp = rexec_slot(rc, id);
    if (*pp) {
        struct rexec *e = *pp;
        *pp = e->hnext;
        order_del(rc, e);
        rexec_free(e);
        rc->nopen--;
    }
    rc->done_total++;
    if (rc->arch && s.a.idem.n)
        archive_key(rc->arch, &s);
    if (!rc->ring_cap)
        return 0;
    struct rsum *slot = &rc->ring[(rc->ring_head + rc->ring_n) % rc->ring_cap];
    if (rc->ring_n == rc->ring_cap) {
        slot = &rc->ring[rc->ring_head];
        rc->ring_head = (rc->ring_head + 1) % rc->ring_cap;
        rf_free(slot->payload);
    } else {
        rc->ring_n++;
    }
    slot->payload = rf_malloc(rec->len);
    if (!slot->payload)
        return -ENOMEM;
    memcpy(slot->payload, rec->payload, rec->len);
    slot->len = rec->len;
    return 0;
}

static int on_record(void *ud, uint64_t segment, uint64_t offset, const struct rf_jrec *rec)
{
    struct recovery *rc = ud;

    (void)segment;
    (void)offset;
    switch (rec->type) {
    case RF_JREC_GRAPH: return on_graph(rc, rec);
    case RF_JREC_DEF: return on_def(rc, rec);
    case RF_JREC_ACCEPT: return on_accept(rc, rec);
    case RF_JREC_EVENTS: return on_events(rc, rec);
    case RF_JREC_SUMMARY: return on_summary(rc, rec);
    default: return 0;
    }
}

static int read_dirs(struct rf_sjournal *sj, struct recovery *rc, const char *dir);

/* Graph versions in the order they were made (versions of a name in version order). */
static int cmp_graph(const void *a, const void *b)
{
    const struct rgraph *x = a, *y = b;

    if (x->created_us != y->created_us)
        return x->created_us < y->created_us ? -1 : 1;
    return x->version < y->version ? -1 : x->version > y->version;
}

int rf__sj_recover_read(struct rf_sjournal *sj, uint32_t ring_cap)
{
    struct recovery *rc = rf_calloc(1, sizeof(*rc));
    int64_t t0 = rf_wall_us();
    int rc_ = 0;

    if (!rc)
        return -ENOMEM;
    sj->rec = rc;
    rc->nbuckets = 1u << 16;
    rc->table = rf_calloc(rc->nbuckets, sizeof(*rc->table));
    rc->arch = sj->st->arch;
    rc->ring_cap = ring_cap;
    rc->ring = ring_cap ? rf_calloc(ring_cap, sizeof(*rc->ring)) : NULL;
    if (!rc->table || (ring_cap && !rc->ring))
        return -ENOMEM;
    char gdir[PATH_MAX];
    snprintf(gdir, sizeof(gdir), "%s/graphs", sj->dir);
    if ((rc_ = read_dirs(sj, rc, gdir)) < 0)
        return rc_;
    if (rc->ngraphs)
        qsort(rc->graphs, rc->ngraphs, sizeof(*rc->graphs), cmp_graph);
    rc_ = read_dirs(sj, rc, sj->dir);
    rc->rep.read_us = rf_wall_us() - t0;
    return rc_;
}

/* Read every shard journal directly under `dir`. */
static int read_dirs(struct rf_sjournal *sj, struct recovery *rc, const char *dir)
{
    uint32_t dirs[SHARD_DIRS_MAX], ndirs;
    int rc_;

    if ((rc_ = rf__sj_shard_dirs(dir, dirs, &ndirs)) < 0)
        return rc_;
    for (uint32_t i = 0; i < ndirs; i++) {
        char path[PATH_MAX];
        struct rf_jread_report rep;
        snprintf(path, sizeof(path), "%s/%u", dir, dirs[i]);
        rc_ = rf_jread_dir(path, sj->cfg.repair, on_record, rc, &rep);
        rc->rep.records += rep.records;
        rc->rep.bytes += rep.bytes;
        rc->rep.segments += rep.segments;
        rc->rep.torn_shards += rep.torn;
        rc->rep.repaired_shards += rep.repaired;
        if (rc_ == -EBADMSG) {
            rf_log_error("\"msg\":\"journal corrupted: refusing to start (run with "
                         "--repair-journal to cut it there and move later segments aside)\","
                         "\"dir\":\"%s\",\"segment\":%llu,\"offset\":%llu,\"why\":\"%s\"",
                         path, (unsigned long long)rep.bad_segment,
                         (unsigned long long)rep.bad_offset, rep.why);
            return rc_;
        }
        if (rc_ < 0) {
            rf_log_error("\"msg\":\"cannot read the journal\",\"dir\":\"%s\",\"err\":\"%s\"",
                         path, strerror(-rc_));
            return rc_;
        }
    }
    return 0;
}

void rf__sj_recovery_free(struct recovery *rc)
{
    if (!rc)
        return;
    for (uint32_t i = 0; i < rc->ngraphs; i++) {
        rf_free(rc->graphs[i].name);
        rf_free(rc->graphs[i].doc);
    }
    rf_free(rc->graphs);
    for (uint32_t i = 0; i < rc->ndefs; i++) {
        rf_free(rc->defs[i].name);
        rf_free(rc->defs[i].doc);
    }
    rf_free(rc->defs);
    rf_free(rc->slots);
    for (struct rexec *e = rc->first, *next; e; e = next) {
        next = e->onext;
        rexec_free(e);
    }
    rf_free(rc->table);
    for (uint32_t k = 0; k < rc->ring_n; k++)
        rf_free(rc->ring[(rc->ring_head + k) % rc->ring_cap].payload);
    rf_free(rc->ring);
    rf_free(rc);
}

/* --- recovery: applying ------------------------------------------------------------------ */

/* A record for a finished execution from its SUMMARY, or NULL (no such graph version any
 * more, or no memory). One reference; not indexed. */
struct rf_xrec *rf__sj_summary_record(struct rf_sjournal *sj, const struct rf_xsummary *s)
{
    char graph[RF_NAME_BYTES_MAX + 1], *idem = NULL;
    json_t *tags = NULL;
    struct rf_xrec *x = NULL;
    uint32_t shard, cur = 0;
    uint64_t seg;
    struct rf_xslice t;

    if (s->a.graph.n > RF_NAME_BYTES_MAX)
        return NULL;
    memcpy(graph, s->a.graph.p, s->a.graph.n);
    graph[s->a.graph.n] = '\0';
    rf_plan *p = rf_graph_get(sj->eng, graph, s->a.version);
    if (!p)
        return NULL;
    if (s->a.tags.n)
        tags = json_loadb(s->a.tags.p, s->a.tags.n, 0, NULL);
    if (s->a.idem.n)
        idem = rf__sj_dup_slice(s->a.idem);
    x = rf__xrec_new(sj->st, p, idem, tags);
    rf_plan_release(p);
    json_decref(tags);
    rf_free(idem);
    if (!x)
        return NULL;
    memcpy(x->id, s->a.id.p, RF_ID_BYTES - 1);
    x->id[RF_ID_BYTES - 1] = '\0';
    x->created_us = s->a.created_us;
    x->home = rf__sj_id_where(x->id, &shard, &seg) ? shard % sj->n : 0;
    while (rf_xevents_next(s->events, s->events_bytes, &cur, &t))
        if (rf__xrec_event_text(x, t.p, t.n) < 0)
            goto fail;
    if (rf__xrec_finish(x, (rf_status)s->status, s->a.inputs.p, s->a.inputs.n, s->output.p,
                        s->output.n, s->error.p, s->error.n) < 0)
        goto fail;
    atomic_store_explicit(&x->accepted, true, memory_order_relaxed); /* not shared yet */
    x->evictable = true;
    x->summarized = true;
    x->journaled = x->nev;
    return x;
fail:
    rf__xrec_free(x);
    return NULL;
}

/* Index a record rebuilt from the journal (its idempotency key too). */
void rf__sj_publish(struct rf_sjournal *sj, struct rf_xrec *x)
{
    struct rf_xrec *found = NULL;

    if (x->idem && rf__store_idem_claim(sj->st, x, x->idem, &found) == 0 && found) {
        /* The key is held by a newer record already: keep that one for it. */
        rf_xrec_release(found);
        rf_free(x->idem);
        x->idem = NULL;
    }
    rf__store_index_new(sj->st, x);
}

static int graphs_apply(struct rf_sjournal *sj, struct recovery *rc)
{
    uint8_t *state = rf_calloc(rc->ngraphs ? rc->ngraphs : 1, 1); /* 0 todo, 1 done, 2 bad */
    bool progress = true;
    uint64_t done = 0;

    if (!state)
        return -ENOMEM;
    /* Passes, so that a graph that calls another comes after it. */
    while (progress) {
        progress = false;
        for (uint32_t i = 0; i < rc->ngraphs; i++) {
            struct rgraph *g = &rc->graphs[i];
            rf_diag diag;
            rf_plan *p = NULL;
            bool created;
            if (state[i])
                continue;
            rf_diag_init(&diag);
            int rc_ = rf__graph_register_at(sj->eng, g->doc, g->doc_len, g->created_us, &diag,
                                           &p, &created);
            bool later = false;
            for (uint32_t k = 0; k < diag.count; k++)
                later |= strcmp(diag.items[k].code, "unknown_graph") == 0;
            rf_diag_free(&diag);
            if (rc_ == 0) {
                if (rf_plan_version(p) != g->version)
                    rf_log_warn("\"msg\":\"recovered graph has another version number\","
                                "\"graph\":\"%s\",\"journal\":%u,\"now\":%u",
                                g->name, g->version, rf_plan_version(p));
                rf_plan_release(p);
                state[i] = 1;
                done++;
                progress = true;
            } else if (!later) {
                rf_log_error("\"msg\":\"a journaled graph no longer compiles\",\"graph\":\"%s\","
                             "\"version\":%u,\"err\":\"%s\"",
                             g->name, g->version, rf_strerror(rc_));
                state[i] = 2;
            }
        }
    }
    rf_free(state);
    rc->rep.graphs = done;
    return 0;
}

static int cmp_sum(const void *a, const void *b)
{
    const struct rsum *x = a, *y = b;
    /* The id sits after its 4-byte length: ids sort by creation time. */
    return memcmp(x->payload + 4, y->payload + 4, RF_ID_BYTES - 1);
}

static void finished_apply(struct rf_sjournal *sj, struct recovery *rc)
{
    struct rsum *v = rf_malloc((rc->ring_n ? rc->ring_n : 1) * sizeof(*v));

    if (!v)
        return;
    for (uint32_t k = 0; k < rc->ring_n; k++)
        v[k] = rc->ring[(rc->ring_head + k) % rc->ring_cap];
    if (rc->ring_n)
        qsort(v, rc->ring_n, sizeof(*v), cmp_sum);
    for (uint32_t k = 0; k < rc->ring_n; k++) {
        struct rf_jrec rec = {.type = RF_JREC_SUMMARY, .payload = v[k].payload, .len = v[k].len};
        struct rf_xsummary s;
        struct rf_xrec *x;
        if (rf_xsummary_read(&rec, &s) == 0 && (x = rf__sj_summary_record(sj, &s)) != NULL) {
            rf_xrec_retain(x);
            rf__sj_publish(sj, x);
            rf__sj_republish(sj, x);
            rf_xrec_release(x);
            rc->rep.executions_done++;
        }
    }
    rf_free(v);
}

/* --- resuming ------------------------------------------------------------------------------ */

struct resume_job {
    struct rf_post post;
    struct rf_sjournal *sj;
    struct rf_xrec *x;
    rf_plan *plan;
    json_t *inputs;
    rf_resume res;
    rf_resume_node *nodes;
    json_t **held;            /* parsed events whose outputs the nodes borrow */
    uint32_t nheld;
};

static void job_free(struct resume_job *j)
{
    for (uint32_t k = 0; k < j->nheld; k++)
        json_decref(j->held[k]);
    rf_free(j->held);
    rf_free(j->nodes);
    json_decref(j->inputs);
    rf_plan_release(j->plan);
    rf_free(j);
}

static rf_status status_of_event(const char *type)
{
    if (strcmp(type, "node.succeeded") == 0)
        return RF_ST_SUCCEEDED;
    if (strcmp(type, "node.cached") == 0)
        return RF_ST_CACHED;
    if (strcmp(type, "node.failed") == 0)
        return RF_ST_FAILED;
    if (strcmp(type, "node.skipped") == 0)
        return RF_ST_SKIPPED;
    if (strcmp(type, "node.canceled") == 0)
        return RF_ST_CANCELED;
    return RF_ST_QUEUED; /* not a terminal node event */
}

/* The recorded outcome of each node from the journaled events. */
static int resume_nodes(struct resume_job *j, const struct rexec *e)
{
    uint32_t n = rf_plan_nodes(j->plan);

    j->nodes = rf_calloc(n ? n : 1, sizeof(*j->nodes));
    j->held = rf_calloc(e->nev ? e->nev : 1, sizeof(*j->held));
    if (!j->nodes || !j->held)
        return -ENOMEM;
    for (uint32_t k = 0; k < e->nev; k++) {
        json_t *ev = json_loadb(e->ev[k], e->evlen[k], 0, NULL);
        const char *type = json_string_value(json_object_get(ev, "type"));
        const char *node = json_string_value(json_object_get(ev, "node"));
        rf_status st = type ? status_of_event(type) : RF_ST_QUEUED;
        if (type && strcmp(type, "execution.started") == 0)
            j->res.started_us = e->created_us;
        if (!ev || !node || st == RF_ST_QUEUED || json_object_get(ev, "item")) {
            json_decref(ev);
            continue;
        }
        for (uint32_t i = 0; i < n; i++) {
            if (strcmp(rf_plan_node_id(j->plan, i), node) != 0)
                continue;
            rf_resume_node *rn = &j->nodes[j->res.n++];
            rn->node = i;
            rn->status = st;
            rn->attempts = (uint32_t)json_integer_value(json_object_get(ev, "attempt"));
            rn->output = json_object_get(ev, "output");
            rn->error = json_object_get(ev, "error");
            break;
        }
        j->held[j->nheld++] = ev;
        if (j->res.n == n)
            break;
    }
    j->res.nodes = j->nodes;
    j->res.events = e->nev;
    return 0;
}

/* On the home shard: journal the execution again there, then resume it. */
static void resume_on_shard(struct rf_post *p, struct rf_shard *sh)
{
    struct resume_job *j = rf_container_of(p, struct resume_job, post);
    struct rf_sjournal *sj = j->sj;
    struct sj_shard *ss = sj->sh[sh->id];
    struct rf_xrec *x = j->x;
    rf_callbacks cb = {.event = rf__store_on_event, .done = rf__store_on_done, .ud = x};
    rf_submit_opts o = {.callbacks = &cb, .flags = RF_SUBMIT_SHARD, .shard = sh->id,
                        .tags = x->tags, .id = x->id, .created_us = x->created_us,
                        .resume = &j->res};
    rf_exec *ex = NULL;
    int rc;

    x->accept_seg = rf_journal_segment(ss->j);
    if (rf__sj_append_accept(ss, x, j->inputs, NULL) == 0 && x->nev)
        rf__sj_append_events(ss, x, 0, x->nev);
    x->journaled = x->nev;
    rc = rf_submit(sj->eng, j->plan, json_incref(j->inputs), &o, &ex);
    if (rc < 0) {
        rf_log_error("\"msg\":\"cannot resume an execution\",\"execution_id\":\"%s\","
                     "\"err\":\"%s\"",
                     x->id, rf_strerror(rc));
        rf__xrec_free(x);
        job_free(j);
        atomic_fetch_sub_explicit(&sj->resuming, 1, memory_order_release); /* as below */
        return;
    }
    rf_spin_lock(&x->lock);
    if (!x->fin)
        x->ex = rf_exec_retain(ex);
    rf_spin_unlock(&x->lock);
    rf_exec_release(ex);
    rf__sj_publish(sj, x);
    job_free(j);
    /* Release: the applying thread then sees the record published. */
    atomic_fetch_sub_explicit(&sj->resuming, 1, memory_order_release);
}

static int unfinished_apply(struct rf_sjournal *sj, struct recovery *rc)
{
    for (struct rexec *e = rc->first; e; e = e->onext) {
        struct resume_job *j = rf_calloc(1, sizeof(*j));
        json_t *tags = e->tags ? json_loadb(e->tags, e->tags_len, 0, NULL) : NULL;
        uint32_t shard;
        uint64_t seg;
        if (!j)
            return -ENOMEM;
        j->sj = sj;
        j->plan = rf_graph_get(sj->eng, e->graph, e->version);
        j->inputs = json_loadb(e->inputs, e->inputs_len, 0, NULL);
        if (!j->plan || !j->inputs || resume_nodes(j, e) < 0) {
            rf_log_error("\"msg\":\"cannot resume an execution: its graph version or inputs "
                         "are gone\",\"execution_id\":\"%s\",\"graph\":\"%s\",\"version\":%u",
                         e->id, e->graph, e->version);
            json_decref(tags);
            job_free(j);
            continue;
        }
        j->x = rf__xrec_new(sj->st, j->plan, e->idem, tags);
        json_decref(tags);
        if (!j->x) {
            job_free(j);
            return -ENOMEM;
        }
        memcpy(j->x->id, e->id, RF_ID_BYTES);
        j->x->created_us = e->created_us;
        j->x->home = rf__sj_id_where(e->id, &shard, &seg) ? shard % sj->n : 0;
        atomic_store_explicit(&j->x->accepted, true, memory_order_relaxed); /* not shared */
        for (uint32_t k = 0; k < e->nev; k++)
            if (rf__xrec_event_text(j->x, e->ev[k], e->evlen[k]) < 0) {
                rf__xrec_free(j->x);
                job_free(j);
                return -ENOMEM;
            }
        j->post.fn = resume_on_shard;
        atomic_fetch_add_explicit(&sj->resuming, 1, memory_order_relaxed); /* before the post */
        rf__shard_post(rf__engine_shard(sj->eng, j->x->home), &j->post);
        rc->rep.executions_resumed++;
    }
    /* Acquire: every resumed record is published before start-up says it is ready. */
    while (atomic_load_explicit(&sj->resuming, memory_order_acquire))
        usleep(1000);
    return 0;
}

int rf_sjournal_apply_graphs(struct rf_sjournal *sj)
{
    if (!sj->rec || sj->rec->graphs_applied)
        return -EALREADY;
    sj->rec->graphs_applied = true;
    return graphs_apply(sj, sj->rec);
}

int rf_sjournal_apply(struct rf_sjournal *sj, struct rf_sjournal_report *rep)
{
    struct recovery *rc = sj->rec;
    int64_t t0 = rf_wall_us();
    int r;

    if (!rc || atomic_exchange(&sj->applied, 1))
        return -EALREADY;
    if (!rc->graphs_applied && (r = rf_sjournal_apply_graphs(sj)) < 0)
        return r;
    finished_apply(sj, rc);
    r = unfinished_apply(sj, rc);
    rc->rep.apply_us = rf_wall_us() - t0;
    if (rep)
        *rep = rc->rep;
    pthread_mutex_lock(&sj->mu);
    if (!sj->reader_started && pthread_create(&sj->reader, NULL, rf__sj_reader_main, sj) == 0)
        sj->reader_started = true;
    pthread_mutex_unlock(&sj->mu);
    rf_log_info("\"msg\":\"recovered\",\"graphs\":%llu,\"finished_in_memory\":%llu,"
                "\"finished_total\":%llu,\"resumed\":%llu,\"records\":%llu,\"bytes\":%llu,"
                "\"segments\":%llu,\"torn_tails\":%llu,\"read_ms\":%lld,\"apply_ms\":%lld",
                (unsigned long long)rc->rep.graphs, (unsigned long long)rc->rep.executions_done,
                (unsigned long long)rc->done_total,
                (unsigned long long)rc->rep.executions_resumed,
                (unsigned long long)rc->rep.records, (unsigned long long)rc->rep.bytes,
                (unsigned long long)rc->rep.segments, (unsigned long long)rc->rep.torn_shards,
                (long long)(rc->rep.read_us / 1000), (long long)(rc->rep.apply_us / 1000));
    /* The unfinished ones now belong to their records; the rest is not needed any more. */
    rf__sj_recovery_free(rc);
    sj->rec = NULL;
    return r;
}

