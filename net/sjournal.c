/*
 * net/sjournal.c: the store made durable: writing (see net/sjournal.h for the design;
 * net/srecover.c reads it all back at start-up).
 *
 * Per shard: its execution journal and its graph journal, and the list of records with
 * journal work (events not yet written, a SUMMARY due), kept by the home shard and fed
 * from other shards through a post (rf__sjournal_touch). The shard service runs, once per
 * loop iteration: the list, then the journals' flushes, so a record's events and the batch
 * that carries them leave in the same iteration.
 *
 * A reader thread does what would block a shard: it finds old executions (it scans the
 * home shard's segments from the one the id names until it finds the SUMMARY, and posts
 * the rebuilt record back to the asking shard), and it deletes segments past the
 * retention window, keeping every segment an unfinished execution still needs.
 */
#include "net/sjournal_int.h"

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
bool rf__sj_id_where(const char *id, uint32_t *shard, uint64_t *seg)
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
int rf__sj_append_accept(struct sj_shard *ss, struct rf_xrec *x, const json_t *inputs,
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
    return rf__sj_append_accept(ss, x, rf_exec_inputs(x->held), &x->jw);
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

int rf__sj_append_events(struct sj_shard *ss, struct rf_xrec *x, uint32_t from, uint32_t n)
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

/* --- the publisher ------------------------------------------------------------------------ */

int rf_sjournal_set_publisher(struct rf_sjournal *sj, rf_sjournal_publish_fn fn, void *ud)
{
    if (sj->npub == 2)
        return -ENOSPC;
    sj->publish[sj->npub] = fn;
    sj->publish_ud[sj->npub++] = ud;
    return 0;
}

static void pubbatch_done(struct rf_jwait *w, int res)
{
    struct pubbatch *pb = rf_container_of(w, struct pubbatch, w);

    for (uint32_t k = 0; k < pb->n; k++) {
        for (uint32_t i = 0; res == 0 && i < pb->sj->npub; i++) /* else the journal failed */
            pb->sj->publish[i](pb->sj->publish_ud[i], pb->items[k].x, pb->items[k].nev, false);
        rf_xrec_release(pb->items[k].x);
    }
    rf_free(pb);
}

static void republish_fn(struct rf_post *p, struct rf_shard *sh)
{
    struct rf_xrec *x = rf_container_of(p, struct rf_xrec, jpost);
    struct rf_sjournal *sj = x->st->sj;
    uint32_t n;

    (void)sh;
    /* seq_cst: as in jpost_fn. */
    atomic_store(&x->jqueued, 0);
    rf_spin_lock(&x->lock);
    n = x->nev;
    rf_spin_unlock(&x->lock);
    for (uint32_t i = 0; i < sj->npub; i++)
        sj->publish[i](sj->publish_ud[i], x, n, true);
    rf_xrec_release(x); /* the post's */
}

void rf__sj_republish(struct rf_sjournal *sj, struct rf_xrec *x)
{
    /* acq_rel: as in rf__sjournal_touch; a finished record is never touched again. */
    if (!sj->npub || atomic_exchange_explicit(&x->jqueued, 1, memory_order_acq_rel))
        return;
    rf_xrec_retain(x);
    x->jpost.fn = republish_fn;
    rf__shard_post(rf__engine_shard(sj->eng, x->home), &x->jpost);
}

/* x's events [0, nev) are in this iteration's batch. No memory: they are published with
 * the record's next batch, or not at all (live events elsewhere are best effort). */
static void pub_note(struct sj_shard *ss, struct rf_xrec *x, uint32_t nev)
{
    struct pubbatch *pb = ss->pb;

    if (!ss->sj->npub)
        return;
    if (!pb || pb->n == pb->cap) {
        uint32_t cap = pb ? pb->cap * 2 : 16;
        struct pubbatch *np = rf_realloc(pb, sizeof(*pb) + cap * sizeof(pb->items[0]));
        if (!np)
            return;
        if (!pb) {
            np->n = 0;
            np->sj = ss->sj;
            np->w.done = pubbatch_done;
        }
        np->cap = cap;
        ss->pb = pb = np;
    }
    pb->items[pb->n++] = (struct pubitem){rf_xrec_retain(x), nev};
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
            pub_note(ss, x, n);
        }
    } else if (!done && n > x->journaled) {
        rc = rf__sj_append_events(ss, x, x->journaled, n);
        if (rc == 0) {
            x->journaled = n;
            pub_note(ss, x, n);
        }
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
    if (ss->pb) {
        struct pubbatch *pb = ss->pb;
        ss->pb = NULL;
        rf_journal_notify(ss->j, &pb->w);
    }
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

int rf_sjournal_def(struct rf_sjournal *sj, uint8_t kind, const char *name, const char *doc,
                    size_t doc_len, int64_t created_us, struct rf_jwait *done)
{
    struct sj_shard *ss = my_shard(sj);
    struct rf_xdef d = {.kind = kind,
                        .name = {name, (uint32_t)strlen(name)},
                        .doc = {doc ? doc : "", (uint32_t)doc_len},
                        .created_us = created_us};
    size_t size = rf_xdef_size(&d);
    int err = 0;

    if (size > RF_JREC_PAYLOAD_MAX)
        return -E2BIG;
    uint8_t *dst = rf_journal_reserve(ss->gj, (uint32_t)size, &err);
    if (!dst)
        return err;
    rf_xdef_write(dst, &d);
    rf_journal_commit(ss->gj, RF_JREC_DEF, (uint32_t)size, done);
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The shard directories present under dir (their numbers, sorted). */
int rf__sj_shard_dirs(const char *dir, uint32_t *out, uint32_t *n)
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
    if ((rc = rf__sj_recover_read(sj, st->cfg.executions_max)) < 0)
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
    rf__sj_recovery_free(sj->rec);
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
                found = rf__sj_summary_record(sj, &s);
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

    if (!sj->cfg.retention_ms || rf__sj_shard_dirs(sj->dir, dirs, &ndirs) < 0)
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

void *rf__sj_reader_main(void *arg)
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
        if (rf__sj_id_where(l->id, &shard, &seg)) {
            /* Back in memory first, unless someone else brought it back meanwhile. */
            struct rf_xrec *x = rf_store_get(sj->st, l->id);
            if (!x && (x = find_summary(sj, shard, seg, l->id)) != NULL) {
                rf_xrec_retain(x); /* for the caller */
                rf__sj_publish(sj, x);
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

    if (!rf__sj_id_where(l->id, &shard, &seg))
        return -ENOENT;
    l->sh = rf__cur_shard;
    RF_ASSERT(l->sh != NULL);
    pthread_mutex_lock(&sj->mu);
    if (!sj->reader_started) {
        if (pthread_create(&sj->reader, NULL, rf__sj_reader_main, sj) != 0)
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

