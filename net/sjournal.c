/*
 * net/sjournal.c: the store made durable (see net/sjournal.h for the design).
 *
 * Per shard: its journal writer, and the list of records with journal work (events not
 * yet written, a SUMMARY due), kept by the home shard and fed from other shards through
 * a post (rf__sjournal_touch). The shard service runs, once per loop iteration: the list,
 * then the journal's flush, so a record's events and the batch that carries them leave
 * in the same iteration.
 *
 * Recovery, at start-up on the main thread: every shard directory under <dir> is read in
 * journal order (storage/jread.h). GRAPH records are kept (every version, in order);
 * ACCEPT opens an execution in a table of unfinished ones, EVENTS add to it, SUMMARY
 * closes it and goes to a ring of the newest finished ones (the only finished executions
 * that come back into memory: older ones are read from disk when asked for). Memory is
 * bounded by the unfinished executions and executions_max summaries, whatever the size of
 * the journal. rf_sjournal_apply, once the engine runs, registers the graphs (callees
 * before callers, by retrying), loads the finished ones, and resumes every unfinished
 * execution on the shard its id names (modulo the shard count): its recorded node
 * outcomes come from its node events, its event log continues where it stopped. A
 * resumed execution writes its ACCEPT and events again in its new home's journal, so
 * every execution's history is whole in one journal.
 *
 * Old executions: a reader thread takes lookups (the record is not in memory any more),
 * scans the home shard's segments from the one the id names until it finds the SUMMARY,
 * and posts the rebuilt record back to the asking shard. Blocking reads happen on that
 * thread only, never on a shard.
 */
#include "net/sjournal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/internal.h"
#include "engine/jcs.h"
#include "net/store_int.h"
#include "storage/xrec.h"

#define SHARD_DIRS_MAX   1024u
#define LOOKUPS_MAX      4096u /* queued lookups; more get -EBUSY */
#define RF_NAME_BYTES_MAX 64u   /* a graph name: [a-z0-9][a-z0-9._-]{0,63} */
#define GRAPH_SEGMENT_BYTES (1ull << 20) /* graph journals are small and never expire */
#define RETENTION_CHECK_MS 60000u        /* the reader thread looks for expired segments */

struct sj_shard {
    struct rf_sjournal *sj;
    struct rf_journal *j;     /* executions: subject to retention */
    struct rf_journal *gj;    /* graph versions: kept for good */
    uint32_t id;
    struct rf_xrec *pending;  /* records with journal work (through jnext), owner only */
    struct rf_evt **evs;      /* scratch: event pointers of one record */
    uint32_t evcap;
    uint64_t seg_seen;        /* the journal's segment when last looked at */
} RF_ALIGNED_CL;

/* --- recovery state --------------------------------------------------------------------- */

struct rgraph {
    char *name, *doc;
    size_t doc_len;
    uint32_t version;
    int64_t created_us;
};

struct rexec {
    char id[RF_ID_BYTES];
    char *graph, *idem, *tags, *inputs;
    size_t tags_len, inputs_len;
    uint32_t version;
    int64_t created_us;
    char **ev;              /* event texts, seq 1.. */
    uint32_t *evlen;
    uint32_t nev, evcap;
    struct rexec *hnext;    /* hash chain */
    struct rexec *onext;    /* creation order */
};

struct rsum {
    uint8_t *payload;       /* a SUMMARY's payload, copied */
    uint32_t len;
};

struct recovery {
    struct rgraph *graphs;
    uint32_t ngraphs, gcap;
    struct rexec **table;   /* unfinished, by id */
    uint32_t nbuckets;
    struct rexec *first, *last; /* unfinished in creation order (for resuming) */
    uint64_t nopen;
    struct rsum *ring;      /* the newest finished */
    uint32_t ring_cap, ring_n, ring_head;
    uint64_t done_total;
    bool graphs_applied;
    struct rf_sjournal_report rep;
};

struct rf_sjournal {
    struct rf_store *st;
    rf_engine *eng;
    struct rf_sjournal_config cfg;
    char dir[PATH_MAX - 256]; /* room left for /<shard>/<segment> */
    uint32_t n;
    struct sj_shard **sh;
    struct rf_shard_service svc;
    struct recovery *rec;
    _Atomic uint32_t applied;
    _Atomic uint32_t resuming; /* resume jobs posted and not finished (apply waits) */

    /* the reader of old executions */
    pthread_t reader;
    bool reader_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rf_sjlookup *queue, **qtail;
    uint32_t queued;
    bool stop;
};

static struct rf_xrec *summary_record(struct rf_sjournal *sj, const struct rf_xsummary *s);
static void *reader_main(void *arg);

/* --- ids ------------------------------------------------------------------------------- */

void rf__sjournal_make_id(struct rf_sjournal *sj, uint32_t shard, char out[RF_ID_BYTES])
{
    static _Thread_local uint64_t rng;
    uint8_t tail[10];
    uint64_t seg = rf_journal_segment(sj->sh[shard]->j);

    if (rng == 0) {
        if (getrandom(&rng, sizeof(rng), 0) != sizeof(rng))
            rng = rf_now_ns();
        rng |= 1;
    }
    uint32_t r = (uint32_t)(rf_rand_next(&rng) >> 32);
    tail[0] = (uint8_t)(shard >> 8);
    tail[1] = (uint8_t)shard;
    for (int k = 0; k < 4; k++) {
        tail[2 + k] = (uint8_t)(seg >> (24 - 8 * k));
        tail[6 + k] = (uint8_t)(r >> (24 - 8 * k));
    }
    rf_exec_id_make(rf_wall_us(), tail, out);
}

/* The home shard and segment an id names; false for an id that is not one. */
static bool id_where(const char *id, uint32_t *shard, uint64_t *seg)
{
    uint8_t tail[10];

    if (!rf_exec_id_parse(id, NULL, tail))
        return false;
    *shard = (uint32_t)tail[0] << 8 | tail[1];
    *seg = (uint64_t)tail[2] << 24 | (uint64_t)tail[3] << 16 | (uint64_t)tail[4] << 8 | tail[5];
    return true;
}

/* --- appending --------------------------------------------------------------------------- */

static struct sj_shard *my_shard(struct rf_sjournal *sj)
{
    RF_ASSERT(rf__cur_shard != NULL);
    return sj->sh[rf__cur_shard->id];
}

/* JSON text of v into b (appended); "null" when v is NULL or not JSON. */
static void json_text(struct rf_buf *b, const json_t *v)
{
    if (!v || rf_json_write(v, b) < 0)
        rf_buf_append(b, "null", 4);
}

static void accept_done(struct rf_jwait *w, int res)
{
    struct rf_xrec *x = rf_container_of(w, struct rf_xrec, jw);
    struct rf_store *st = x->st;
    rf_exec *ex = x->held;

    x->held = NULL;
    if (res < 0) {
        rf_exec_abandon(ex);
        rf_exec_release(ex);
        if (x->idem)
            rf__store_idem_unclaim(st, x);
        x->on_accepted(x->on_accepted_ud, x, res);
        rf__xrec_free(x);
        return;
    }
    rf_spin_lock(&x->lock);
    x->ex = ex; /* the store's reference from now on */
    rf_spin_unlock(&x->lock);
    /* Release: a thread that finds x through the idempotency chain reads a complete x. */
    atomic_store_explicit(&x->accepted, true, memory_order_release);
    rf_xrec_retain(x); /* the caller's, handed to on_accepted; x's own becomes the index's */
    rf__store_index_new(st, x);
    rf_exec_start(ex);
    x->on_accepted(x->on_accepted_ud, x, 0);
    rf_xrec_release(x); /* the reference rf_store_submit took for its caller */
}

/* Write an ACCEPT for x (its execution `ex`) on the calling shard. */
static int append_accept(struct sj_shard *ss, struct rf_xrec *x, const json_t *inputs,
                         struct rf_jwait *w)
{
    struct rf_buf *b = rf__store_scratch();
    const char *graph = rf_plan_name(x->plan);
    struct rf_xaccept a = {0};
    size_t tags_len;
    int err = 0;

    b->len = 0;
    if (x->tags)
        json_text(b, x->tags);
    tags_len = b->len;
    json_text(b, inputs);
    a.id = (struct rf_xslice){x->id, RF_ID_BYTES - 1};
    a.graph = (struct rf_xslice){graph, (uint32_t)strlen(graph)};
    a.version = rf_plan_version(x->plan);
    a.created_us = x->created_us;
    a.idem = (struct rf_xslice){x->idem ? x->idem : "", x->idem ? (uint32_t)strlen(x->idem) : 0};
    a.tags = (struct rf_xslice){b->p, (uint32_t)tags_len};
    a.inputs = (struct rf_xslice){b->p + tags_len, (uint32_t)(b->len - tags_len)};
    size_t size = rf_xaccept_size(&a);
    if (size > RF_JREC_PAYLOAD_MAX)
        return -E2BIG;
    uint8_t *p = rf_journal_reserve(ss->j, (uint32_t)size, &err);
    if (!p)
        return err;
    rf_xaccept_write(p, &a);
    rf_journal_commit(ss->j, RF_JREC_ACCEPT, (uint32_t)size, w);
    return 0;
}

int rf__sjournal_accept(struct rf_sjournal *sj, struct rf_xrec *x)
{
    struct sj_shard *ss = my_shard(sj);

    RF_ASSERT(x->home == ss->id);
    x->accept_seg = rf_journal_segment(ss->j); /* this segment or, after a rotation, the next */
    x->jw.done = accept_done;
    return append_accept(ss, x, rf_exec_inputs(x->held), &x->jw);
}

/* --- records with journal work --------------------------------------------------------------- */

static void list_add(struct sj_shard *ss, struct rf_xrec *x)
{
    if (x->jlisted)
        return;
    x->jlisted = true;
    x->jnext = ss->pending;
    ss->pending = rf_xrec_retain(x);
}

static void jpost_fn(struct rf_post *p, struct rf_shard *sh)
{
    struct rf_xrec *x = rf_container_of(p, struct rf_xrec, jpost);
    struct rf_sjournal *sj = x->st->sj;

    /* seq_cst: cleared before the flush reads the record, so a later touch posts again. */
    atomic_store(&x->jqueued, 0);
    list_add(sj->sh[sh->id], x);
    rf_xrec_release(x); /* the post's */
}

void rf__sjournal_touch(struct rf_sjournal *sj, struct rf_xrec *x)
{
    if (rf__cur_shard && rf__cur_shard->id == x->home) {
        list_add(sj->sh[x->home], x);
        return;
    }
    /* acq_rel: one poster wins until the home shard cleared it (jpost_fn). */
    if (atomic_exchange_explicit(&x->jqueued, 1, memory_order_acq_rel))
        return;
    rf_xrec_retain(x);
    x->jpost.fn = jpost_fn;
    rf__shard_post(rf__engine_shard(sj->eng, x->home), &x->jpost);
}

static struct rf_xslice ev_at(void *ud, uint32_t k)
{
    struct rf_evt **evs = ud;

    return (struct rf_xslice){evs[k]->s, evs[k]->len};
}

static void summary_done(struct rf_jwait *w, int res)
{
    struct rf_xrec *x = rf_container_of(w, struct rf_xrec, jw);

    if (res == 0)
        rf__store_evictable(x->st, x);
    rf_xrec_release(x); /* the waiter's */
}

/* Copy the event pointers [from, n) of x; the scratch array grows as needed. */
static struct rf_evt **events_of(struct sj_shard *ss, struct rf_xrec *x, uint32_t from,
                                 uint32_t n)
{
    if (n - from > ss->evcap) {
        uint32_t cap = RF_MAX(n - from, ss->evcap * 2);
        struct rf_evt **v = rf_realloc(ss->evs, cap * sizeof(*v));
        if (!v)
            return NULL;
        ss->evs = v;
        ss->evcap = cap;
    }
    rf_spin_lock(&x->lock);
    memcpy(ss->evs, x->ev + from, (n - from) * sizeof(*ss->evs));
    rf_spin_unlock(&x->lock);
    return ss->evs;
}

static int append_summary(struct sj_shard *ss, struct rf_xrec *x, uint32_t n)
{
    struct rf_buf *b = rf__store_scratch();
    const struct rf_xfinal *f = x->fin;
    const char *graph = rf_plan_name(x->plan);
    struct rf_xsummary s = {0};
    struct rf_evt **evs = n ? events_of(ss, x, 0, n) : NULL;
    int err = 0;

    if (n && !evs)
        return -ENOMEM;
    b->len = 0;
    if (x->tags)
        json_text(b, x->tags);
    s.a.id = (struct rf_xslice){x->id, RF_ID_BYTES - 1};
    s.a.graph = (struct rf_xslice){graph, (uint32_t)strlen(graph)};
    s.a.version = rf_plan_version(x->plan);
    s.a.created_us = x->created_us;
    s.a.idem = (struct rf_xslice){x->idem ? x->idem : "", x->idem ? (uint32_t)strlen(x->idem) : 0};
    s.a.tags = (struct rf_xslice){b->p, (uint32_t)b->len};
    s.a.inputs = (struct rf_xslice){f->data, f->in_len};
    s.status = (uint8_t)f->status;
    s.output = (struct rf_xslice){f->data + f->in_len, f->out_len};
    s.error = (struct rf_xslice){f->data + f->in_len + f->out_len, f->err_len};
    size_t size = rf_xsummary_size(&s, n, ev_at, evs);
    if (size > RF_JREC_PAYLOAD_MAX)
        return -E2BIG;
    uint8_t *p = rf_journal_reserve(ss->j, (uint32_t)size, &err);
    if (!p)
        return err;
    rf_xsummary_write(p, &s, n, ev_at, evs);
    x->jw.done = summary_done;
    rf_journal_commit(ss->j, RF_JREC_SUMMARY, (uint32_t)size, &x->jw);
    rf_xrec_retain(x); /* the waiter's */
    return 0;
}

static int append_events(struct sj_shard *ss, struct rf_xrec *x, uint32_t from, uint32_t n)
{
    struct rf_evt **evs = events_of(ss, x, from, n);
    struct rf_xslice id = {x->id, RF_ID_BYTES - 1};
    int err = 0;

    if (!evs)
        return -ENOMEM;
    size_t size = rf_xevents_size(id, n - from, ev_at, evs);
    if (size > RF_JREC_PAYLOAD_MAX)
        return -E2BIG;
    uint8_t *p = rf_journal_reserve(ss->j, (uint32_t)size, &err);
    if (!p)
        return err;
    rf_xevents_write(p, id, (uint64_t)from + 1, n - from, ev_at, evs);
    rf_journal_commit(ss->j, RF_JREC_EVENTS, (uint32_t)size, NULL);
    return 0;
}

/* Write what is new for x. 0 done with it (for now), -EAGAIN/-ENOSPC/-ENOMEM keep it. */
static int record_work(struct sj_shard *ss, struct rf_xrec *x)
{
    uint32_t n;
    bool done;
    int rc = 0;

    rf_spin_lock(&x->lock);
    n = x->nev;
    done = x->done && x->fin;
    rf_spin_unlock(&x->lock);
    if (done && !x->summarized) {
        rc = append_summary(ss, x, n);
        if (rc == 0) {
            x->summarized = true;
            x->journaled = n;
        }
    } else if (!done && n > x->journaled) {
        rc = append_events(ss, x, x->journaled, n);
        if (rc == 0)
            x->journaled = n;
    }
    if (rc == -E2BIG) {
        /* A record this large cannot be written: its execution stays in memory only. */
        rf_log_warn("\"msg\":\"journal: a record over the payload limit was not written\","
                    "\"execution_id\":\"%s\"",
                    x->id);
        x->summarized = true;
        rc = 0;
    }
    return rc == -EIO || rc == -ESHUTDOWN ? 0 : rc;
}

static void pending_run(struct sj_shard *ss)
{
    struct rf_xrec *x = ss->pending, *keep = NULL;

    ss->pending = NULL;
    while (x) {
        struct rf_xrec *next = x->jnext;
        if (record_work(ss, x) < 0) {
            x->jnext = keep; /* try again at the next flush */
            keep = x;
        } else {
            x->jlisted = false;
            rf_xrec_release(x); /* the list's */
        }
        x = next;
    }
    ss->pending = keep;
}

/* --- the shard service ------------------------------------------------------------------- */

static int svc_start(void *ud, struct rf_shard *sh)
{
    struct rf_sjournal *sj = ud;

    rf_journal_attach(sj->sh[sh->id]->j, sh);
    rf_journal_attach(sj->sh[sh->id]->gj, sh);
    return 0;
}

static void svc_flush(void *ud, struct rf_shard *sh)
{
    struct sj_shard *ss = ((struct rf_sjournal *)ud)->sh[sh->id];

    if (ss->pending)
        pending_run(ss);
    rf_journal_flush(ss->j);
    rf_journal_flush(ss->gj);
}

static void svc_quit(void *ud, struct rf_shard *sh)
{
    struct sj_shard *ss = ((struct rf_sjournal *)ud)->sh[sh->id];

    rf_journal_quit(ss->j);
    rf_journal_quit(ss->gj);
}

static bool svc_busy(void *ud, struct rf_shard *sh)
{
    struct sj_shard *ss = ((struct rf_sjournal *)ud)->sh[sh->id];
    struct rf_journal_stats js;

    rf_journal_stats(ss->j, &js);
    if (ss->pending && (rf_journal_error(ss->j) || js.no_space)) {
        /* Stopping with a journal that cannot take them: their ACCEPTs are written, so the
         * next start resumes these executions (at least once, as documented). */
        /* Nothing more will be written: let the records go. */
        while (ss->pending) {
            struct rf_xrec *x = ss->pending;
            ss->pending = x->jnext;
            x->jlisted = false;
            rf_xrec_release(x);
        }
    }
    return ss->pending || rf_journal_busy(ss->j) || rf_journal_busy(ss->gj);
}

static void svc_stop(void *ud, struct rf_shard *sh)
{
    struct sj_shard *ss = ((struct rf_sjournal *)ud)->sh[sh->id];

    while (ss->pending) { /* a failed journal: see svc_busy */
        struct rf_xrec *x = ss->pending;
        ss->pending = x->jnext;
        x->jlisted = false;
        rf_xrec_release(x);
    }
}

/* --- graphs ------------------------------------------------------------------------------ */

int rf_sjournal_graph(struct rf_sjournal *sj, const rf_plan *p, struct rf_jwait *done)
{
    struct sj_shard *ss = my_shard(sj);
    struct rf_buf *b = rf__store_scratch();
    const char *name = rf_plan_name(p);
    struct rf_xgraph g;
    int err = 0;

    b->len = 0;
    json_text(b, rf_plan_document(p));
    g.name = (struct rf_xslice){name, (uint32_t)strlen(name)};
    g.version = rf_plan_version(p);
    g.created_us = rf_plan_created_us(p);
    g.doc = (struct rf_xslice){b->p, (uint32_t)b->len};
    size_t size = rf_xgraph_size(&g);
    if (size > RF_JREC_PAYLOAD_MAX)
        return -E2BIG;
    uint8_t *dst = rf_journal_reserve(ss->gj, (uint32_t)size, &err);
    if (!dst)
        return err;
    rf_xgraph_write(dst, &g);
    rf_journal_commit(ss->gj, RF_JREC_GRAPH, (uint32_t)size, done);
    return 0;
}

/* --- recovery: reading ------------------------------------------------------------------- */

static char *dup_slice(struct rf_xslice s)
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
    e->name = dup_slice(g.name);
    e->doc = dup_slice(g.doc);
    e->doc_len = g.doc.n;
    e->version = g.version;
    e->created_us = g.created_us;
    if (!e->name || !e->doc)
        return -ENOMEM;
    rc->ngraphs++;
    return 0;
}

static int on_accept(struct recovery *rc, const struct rf_jrec *rec)
{
    struct rf_xaccept a;
    char id[RF_ID_BYTES];

    if (rf_xaccept_read(rec, &a) < 0)
        return -EBADMSG;
    memcpy(id, a.id.p, a.id.n);
    id[a.id.n] = '\0';
    struct rexec **pp = rexec_slot(rc, id);
    if (*pp)
        return 0; /* written again by a resumption: the first one stands */
    struct rexec *e = rf_calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    memcpy(e->id, id, sizeof(id));
    e->graph = dup_slice(a.graph);
    e->idem = a.idem.n ? dup_slice(a.idem) : NULL;
    e->tags = a.tags.n ? dup_slice(a.tags) : NULL;
    e->tags_len = a.tags.n;
    e->inputs = dup_slice(a.inputs);
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
        if (!(e->ev[e->nev] = dup_slice(t)))
            return -ENOMEM;
        e->evlen[e->nev++] = t.n;
    }
    return 0;
}

static int on_summary(struct recovery *rc, const struct rf_jrec *rec)
{
    struct rf_xsummary s;
    char id[RF_ID_BYTES];

    if (rf_xsummary_read(rec, &s) < 0)
        return -EBADMSG;
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
    case RF_JREC_ACCEPT: return on_accept(rc, rec);
    case RF_JREC_EVENTS: return on_events(rc, rec);
    case RF_JREC_SUMMARY: return on_summary(rc, rec);
    default: return 0;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The shard directories present under dir (their numbers, sorted). */
static int shard_dirs(const char *dir, uint32_t *out, uint32_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    *n = 0;
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    while ((e = readdir(d)) && *n < SHARD_DIRS_MAX) {
        char *end;
        unsigned long v = strtoul(e->d_name, &end, 10);
        if (end != e->d_name && *end == '\0' && v < SHARD_DIRS_MAX)
            out[(*n)++] = (uint32_t)v;
    }
    closedir(d);
    if (*n)
        qsort(out, *n, sizeof(*out), cmp_u32);
    return 0;
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

static int recover_read(struct rf_sjournal *sj, uint32_t ring_cap)
{
    struct recovery *rc = rf_calloc(1, sizeof(*rc));
    int64_t t0 = rf_wall_us();
    int rc_ = 0;

    if (!rc)
        return -ENOMEM;
    sj->rec = rc;
    rc->nbuckets = 1u << 16;
    rc->table = rf_calloc(rc->nbuckets, sizeof(*rc->table));
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

    if ((rc_ = shard_dirs(dir, dirs, &ndirs)) < 0)
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

/* --- opening and closing ----------------------------------------------------------------- */

int rf_sjournal_open(struct rf_store *st, rf_engine *eng, const struct rf_sjournal_config *cfg,
                     struct rf_sjournal **out)
{
    struct rf_sjournal *sj = rf_calloc(1, sizeof(*sj));
    int rc;

    if (!sj)
        return -ENOMEM;
    sj->st = st;
    sj->eng = eng;
    sj->cfg = *cfg;
    if (snprintf(sj->dir, sizeof(sj->dir), "%s", cfg->dir) >= (int)sizeof(sj->dir)) {
        rf_free(sj);
        return -ENAMETOOLONG;
    }
    sj->cfg.dir = sj->dir;
    sj->n = rf_engine_shards(eng);
    pthread_mutex_init(&sj->mu, NULL);
    pthread_cond_init(&sj->cv, NULL);
    sj->qtail = &sj->queue;
    if ((rc = recover_read(sj, st->cfg.executions_max)) < 0)
        goto err;
    sj->sh = rf_calloc(sj->n, sizeof(*sj->sh));
    if (!sj->sh) {
        rc = -ENOMEM;
        goto err;
    }
    for (uint32_t i = 0; i < sj->n; i++) {
        char path[PATH_MAX];
        struct rf_journal_config jc = {.dir = path, .shard = i,
                                       .segment_bytes = cfg->segment_bytes, .sync = cfg->sync,
                                       .faults = cfg->faults};
        snprintf(path, sizeof(path), "%s/%u", sj->dir, i);
        sj->sh[i] = rf_zalloc_aligned(sizeof(*sj->sh[i]), RF_CACHELINE);
        if (!sj->sh[i]) {
            rc = -ENOMEM;
            goto err;
        }
        sj->sh[i]->sj = sj;
        sj->sh[i]->id = i;
        if ((rc = rf_journal_open(&jc, &sj->sh[i]->j)) < 0) {
            rf_log_error("\"msg\":\"cannot open the journal\",\"dir\":\"%s\",\"err\":\"%s\"",
                         path, strerror(-rc));
            goto err;
        }
        snprintf(path, sizeof(path), "%s/graphs/%u", sj->dir, i);
        jc.segment_bytes = GRAPH_SEGMENT_BYTES;
        jc.faults = NULL;
        if ((rc = rf_journal_open(&jc, &sj->sh[i]->gj)) < 0) {
            rf_log_error("\"msg\":\"cannot open the journal\",\"dir\":\"%s\",\"err\":\"%s\"",
                         path, strerror(-rc));
            goto err;
        }
    }
    sj->svc = (struct rf_shard_service){.ud = sj, .start = svc_start, .flush = svc_flush,
                                        .quit = svc_quit, .busy = svc_busy, .stop = svc_stop};
    if ((rc = rf__engine_set_service(eng, &sj->svc)) < 0)
        goto err;
    st->sj = sj;
    *out = sj;
    return 0;
err:
    rf_sjournal_free(sj);
    return rc;
}

static void recovery_free(struct recovery *rc)
{
    if (!rc)
        return;
    for (uint32_t i = 0; i < rc->ngraphs; i++) {
        rf_free(rc->graphs[i].name);
        rf_free(rc->graphs[i].doc);
    }
    rf_free(rc->graphs);
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

void rf_sjournal_free(struct rf_sjournal *sj)
{
    if (!sj)
        return;
    if (sj->reader_started) {
        pthread_mutex_lock(&sj->mu);
        sj->stop = true;
        pthread_cond_signal(&sj->cv);
        pthread_mutex_unlock(&sj->mu);
        pthread_join(sj->reader, NULL);
    }
    if (sj->st)
        sj->st->sj = NULL;
    for (uint32_t i = 0; sj->sh && i < sj->n; i++) {
        if (!sj->sh[i])
            continue;
        rf_journal_close(sj->sh[i]->j);
        rf_journal_close(sj->sh[i]->gj);
        rf_free(sj->sh[i]->evs);
        rf_free(sj->sh[i]);
    }
    rf_free(sj->sh);
    recovery_free(sj->rec);
    pthread_mutex_destroy(&sj->mu);
    pthread_cond_destroy(&sj->cv);
    rf_free(sj);
}

int rf_sjournal_failed(const struct rf_sjournal *sj)
{
    for (uint32_t i = 0; i < sj->n; i++) {
        int e = rf_journal_error(sj->sh[i]->j);
        if (e)
            return e;
    }
    return 0;
}

bool rf_sjournal_no_space(const struct rf_sjournal *sj)
{
    for (uint32_t i = 0; i < sj->n; i++) {
        struct rf_journal_stats s;
        rf_journal_stats(sj->sh[i]->j, &s);
        if (s.no_space)
            return true;
    }
    return false;
}

/* --- recovery: applying ------------------------------------------------------------------ */

/* A record for a finished execution from its SUMMARY, or NULL (no such graph version any
 * more, or no memory). One reference; not indexed. */
static struct rf_xrec *summary_record(struct rf_sjournal *sj, const struct rf_xsummary *s)
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
        idem = dup_slice(s->a.idem);
    x = rf__xrec_new(sj->st, p, idem, tags);
    rf_plan_release(p);
    json_decref(tags);
    rf_free(idem);
    if (!x)
        return NULL;
    memcpy(x->id, s->a.id.p, RF_ID_BYTES - 1);
    x->id[RF_ID_BYTES - 1] = '\0';
    x->created_us = s->a.created_us;
    x->home = id_where(x->id, &shard, &seg) ? shard % sj->n : 0;
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
static void publish(struct rf_sjournal *sj, struct rf_xrec *x)
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
        if (rf_xsummary_read(&rec, &s) == 0 && (x = summary_record(sj, &s)) != NULL) {
            publish(sj, x);
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
    if (append_accept(ss, x, j->inputs, NULL) == 0 && x->nev)
        append_events(ss, x, 0, x->nev);
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
    publish(sj, x);
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
        j->x->home = id_where(e->id, &shard, &seg) ? shard % sj->n : 0;
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

/* --- journaling a graph from a thread that is not a shard (start-up) ------------------- */

struct gsync {
    struct rf_post post;
    struct rf_jwait w;
    struct rf_sjournal *sj;
    const rf_plan *p;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int res;
};

static void gsync_done(struct rf_jwait *w, int res)
{
    struct gsync *g = rf_container_of(w, struct gsync, w);

    pthread_mutex_lock(&g->mu);
    g->res = res;
    g->done = true;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gsync_on_shard(struct rf_post *p, struct rf_shard *sh)
{
    struct gsync *g = rf_container_of(p, struct gsync, post);
    int rc;

    (void)sh;
    g->w.done = gsync_done;
    rc = rf_sjournal_graph(g->sj, g->p, &g->w);
    if (rc < 0)
        gsync_done(&g->w, rc);
}

int rf_sjournal_graph_wait(struct rf_sjournal *sj, const rf_plan *p, uint32_t timeout_ms)
{
    struct gsync g = {.sj = sj, .p = p};
    struct timespec dl;
    int rc = 0;

    pthread_mutex_init(&g.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g.cv, &ca);
    pthread_condattr_destroy(&ca);
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    g.post.fn = gsync_on_shard;
    rf__shard_post(rf__engine_shard(sj->eng, 0), &g.post);
    pthread_mutex_lock(&g.mu);
    while (!g.done && rc == 0)
        rc = pthread_cond_timedwait(&g.cv, &g.mu, &dl);
    /* A timeout leaves the post and waiter pointing at this frame: wait them out. */
    while (!g.done)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
    return g.res;
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
    if (!sj->reader_started && pthread_create(&sj->reader, NULL, reader_main, sj) == 0)
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
    recovery_free(rc);
    sj->rec = NULL;
    return r;
}

/* --- old executions: the reader thread ---------------------------------------------------- */

/* Scan shard `shard`'s segments from `seg` on for the SUMMARY of `id`. */
static struct rf_xrec *find_summary(struct rf_sjournal *sj, uint32_t shard, uint64_t seg,
                                    const char *id)
{
    char path[PATH_MAX], name[RF_JOURNAL_NAME_BYTES];
    struct rf_xrec *found = NULL;

    for (uint64_t no = seg; !found; no++) {
        rf_journal_segment_name(no, name);
        snprintf(path, sizeof(path), "%s/%u/%s", sj->dir, shard, name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0)
            break; /* past the last segment (or deleted by retention) */
        if (fstat(fd, &st) < 0 || st.st_size == 0) {
            close(fd);
            continue;
        }
        const uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (m == MAP_FAILED)
            break;
        size_t off = 0, size = (size_t)st.st_size;
        while (off < size && !found) {
            struct rf_jrec rec;
            struct rf_xsummary s;
            int rc = rf_jrec_decode(m + off, size - off, &rec);
            if (rc <= 0)
                break; /* the end of what is written */
            off += (size_t)rc;
            if (rec.type != RF_JREC_SUMMARY || rec.len < 4 + RF_ID_BYTES - 1 ||
                memcmp(rec.payload + 4, id, RF_ID_BYTES - 1) != 0)
                continue;
            if (rf_xsummary_read(&rec, &s) == 0)
                found = summary_record(sj, &s);
        }
        munmap((void *)m, size);
    }
    return found;
}

static void lookup_back(struct rf_post *p, struct rf_shard *sh)
{
    struct rf_sjlookup *l = rf_container_of(p, struct rf_sjlookup, post);

    (void)sh;
    l->done(l, l->found);
}

static int cmp_seg(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Delete the oldest segments of one shard's journal while they are past the retention
 * window and below `keep` (the first segment that must stay). */
static void retention_dir(struct rf_sjournal *sj, const char *dir, uint64_t keep, int64_t now_s)
{
    uint64_t segs[4096];
    size_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    int dfd;

    if (!d)
        return;
    while ((e = readdir(d)) && n < sizeof(segs) / sizeof(*segs)) {
        char *end;
        unsigned long long no = strtoull(e->d_name, &end, 10);
        if (end != e->d_name && strcmp(end, ".seg") == 0)
            segs[n++] = no;
    }
    dfd = dirfd(d);
    if (n)
        qsort(segs, n, sizeof(*segs), cmp_seg);
    for (size_t i = 0; i < n && segs[i] < keep; i++) {
        char name[RF_JOURNAL_NAME_BYTES];
        struct stat st;
        rf_journal_segment_name(segs[i], name);
        if (fstatat(dfd, name, &st, 0) < 0 ||
            now_s - (int64_t)st.st_mtime < (int64_t)(sj->cfg.retention_ms / 1000))
            break; /* the later ones are newer still */
        if (unlinkat(dfd, name, 0) == 0)
            rf_log_info("\"msg\":\"journal segment past retention deleted\",\"dir\":\"%s\","
                        "\"segment\":%llu",
                        dir, (unsigned long long)segs[i]);
    }
    closedir(d);
}

/* Segments past --retention go, except those that still hold what an unfinished
 * execution needs, and the segment each shard writes now (and its spare). */
static void retention_run(struct rf_sjournal *sj)
{
    uint64_t mins[SHARD_DIRS_MAX];
    uint32_t dirs[SHARD_DIRS_MAX], ndirs;
    int64_t now_s = rf_wall_us() / 1000000;

    if (!sj->cfg.retention_ms || shard_dirs(sj->dir, dirs, &ndirs) < 0)
        return;
    rf__store_open_segments(sj->st, mins, sj->n);
    for (uint32_t i = 0; i < ndirs; i++) {
        char path[PATH_MAX];
        uint64_t keep = UINT64_MAX; /* a directory no shard writes any more */
        if (dirs[i] < sj->n) {
            struct rf_journal_stats js;
            rf_journal_stats(sj->sh[dirs[i]]->j, &js);
            keep = RF_MIN(js.segment_no, mins[dirs[i]]);
        }
        snprintf(path, sizeof(path), "%s/%u", sj->dir, dirs[i]);
        retention_dir(sj, path, keep, now_s);
    }
}

static void *reader_main(void *arg)
{
    struct rf_sjournal *sj = arg;
    int64_t next_retention = 0;

    pthread_setname_np(pthread_self(), "rf-journal-rd");
    for (;;) {
        pthread_mutex_lock(&sj->mu);
        while (!sj->queue && !sj->stop) {
            int64_t now = rf_wall_us() / 1000;
            if (now >= next_retention) {
                pthread_mutex_unlock(&sj->mu);
                retention_run(sj);
                /* Often enough for short windows (tests), at most once a minute. */
                next_retention = now + (int64_t)RF_MAX(200u, RF_MIN(RETENTION_CHECK_MS,
                                                                 sj->cfg.retention_ms / 4));
                pthread_mutex_lock(&sj->mu);
                continue;
            }
            struct timespec dl = {.tv_sec = next_retention / 1000,
                                  .tv_nsec = (long)(next_retention % 1000) * 1000000L};
            pthread_cond_timedwait(&sj->cv, &sj->mu, &dl);
        }
        struct rf_sjlookup *l = sj->queue;
        if (l) {
            sj->queue = l->next;
            if (!sj->queue)
                sj->qtail = &sj->queue;
            sj->queued--;
        }
        bool stop = sj->stop && !l;
        pthread_mutex_unlock(&sj->mu);
        if (stop)
            break;
        if (!l)
            continue;
        uint32_t shard;
        uint64_t seg;
        l->found = NULL;
        if (id_where(l->id, &shard, &seg)) {
            /* Back in memory first, unless someone else brought it back meanwhile. */
            struct rf_xrec *x = rf_store_get(sj->st, l->id);
            if (!x && (x = find_summary(sj, shard, seg, l->id)) != NULL) {
                rf_xrec_retain(x); /* for the caller */
                publish(sj, x);
            }
            l->found = x;
        }
        l->post.fn = lookup_back;
        rf__shard_post(l->sh, &l->post);
    }
    return NULL;
}

int rf_sjournal_lookup(struct rf_sjournal *sj, struct rf_sjlookup *l)
{
    uint32_t shard;
    uint64_t seg;
    int rc = 0;

    if (!id_where(l->id, &shard, &seg))
        return -ENOENT;
    l->sh = rf__cur_shard;
    RF_ASSERT(l->sh != NULL);
    pthread_mutex_lock(&sj->mu);
    if (!sj->reader_started) {
        if (pthread_create(&sj->reader, NULL, reader_main, sj) != 0)
            rc = -EAGAIN;
        else
            sj->reader_started = true;
    }
    if (rc == 0 && sj->queued >= LOOKUPS_MAX)
        rc = -EBUSY;
    if (rc == 0) {
        l->next = NULL;
        *sj->qtail = l;
        sj->qtail = &l->next;
        sj->queued++;
        pthread_cond_signal(&sj->cv);
    }
    pthread_mutex_unlock(&sj->mu);
    return rc;
}
