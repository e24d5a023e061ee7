/*
 * net/triggers.c: cron triggers (net/triggers.h has the model).
 *
 * The registry is an array of at most RF_TRIGGERS_MAX retained definitions under a spin
 * lock: PUT, DELETE and GET take it briefly, the scheduler copies the array (retaining
 * each) once per tick and works without it. A definition is immutable but for its
 * scheduling state, which only shard 0 writes: `last` (the newest slot fired, atomic
 * because GET reads it elsewhere) and `pending` (submissions waiting for the journal).
 */
#include "net/triggers.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/internal.h"
#include "net/store.h"
#include "sched/cron.h"
#include "sched/shard.h"

#define ACCOUNT       "default"
#define KEY_PREFIX    "cron:"
#define FIRE_BATCH    RF_CRON_CATCH_UP_MAX

struct rf_ctrigger {
    _Atomic uint32_t refs;
    char name[RF_TRIGGER_NAME_MAX + 1];
    char graph[65];
    uint32_t version;
    char schedule[RF_CRON_TEXT_MAX + 1];
    struct rf_cron cron;
    json_t *inputs;
    bool catch_up;
    char *doc;
    size_t doc_len;
    int64_t created_us;
    _Atomic int64_t last; /* newest slot fired (unix s); written by shard 0 and recovery */
    uint32_t pending;     /* shard 0 only: submissions not answered by the journal yet */
};

struct rf_triggers {
    rf_engine *eng;
    struct rf_store *st;
    char clock_file[256];
    struct rf_shard_service svc;
    rf_spin lock; /* the array */
    struct rf_ctrigger *v[RF_TRIGGERS_MAX];
    uint32_t n;
    _Atomic bool started; /* relaxed flag: recovery is over, fire */
    /* shard 0's */
    struct rf_shard *sh;
    rf_op tick;
    struct __kernel_timespec ts;
    bool tick_armed, quitting;
    uint32_t inflight; /* submissions of every trigger waiting for the journal */
};

int64_t rf_triggers_now(const struct rf_triggers *ts);

/* --- keys ------------------------------------------------------------------------------- */

int rf_trigger_key(const char *name, int64_t slot, char *out, size_t cap)
{
    return snprintf(out, cap, KEY_PREFIX "%s:%lld", name, (long long)slot);
}

bool rf_trigger_key_parse(const char *key, size_t len, char name[RF_TRIGGER_NAME_MAX + 1],
                          int64_t *slot)
{
    size_t pn = sizeof(KEY_PREFIX) - 1;
    const char *colon;
    int64_t v = 0;

    if (len <= pn || memcmp(key, KEY_PREFIX, pn) != 0)
        return false;
    colon = memrchr(key + pn, ':', len - pn);
    if (!colon || colon == key + pn || (size_t)(colon - key - pn) > RF_TRIGGER_NAME_MAX ||
        colon + 1 == key + len)
        return false;
    for (const char *p = colon + 1; p < key + len; p++) {
        if (*p < '0' || *p > '9' || v > INT64_MAX / 10)
            return false;
        v = v * 10 + (*p - '0');
    }
    memcpy(name, key + pn, (size_t)(colon - key - pn));
    name[colon - key - pn] = '\0';
    *slot = v;
    return true;
}

/* --- definitions ------------------------------------------------------------------------- */

bool rf_trigger_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > RF_TRIGGER_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              (i > 0 && (c == '.' || c == '_' || c == '-'))))
            return false;
    }
    return true;
}

void rf_trigger_release(struct rf_ctrigger *t)
{
    /* acq_rel: the last holder sees the others' reads done before it frees. */
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    json_decref(t->inputs);
    rf_free(t->doc);
    rf_free(t);
}

static struct rf_ctrigger *retain(struct rf_ctrigger *t)
{
    /* Relaxed: the caller holds a reference or the registry's lock. */
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

static void field(struct rf_ctrigger *t, const char *k, json_t *v, rf_diag *d, bool *seen)
{
    char ptr[80], why[RF_CRON_WHY_BYTES];

    snprintf(ptr, sizeof(ptr), "/%.64s", k);
    if (strcmp(k, "graph") == 0) {
        seen[0] = true;
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 64)
            rf_diag_add(d, ptr, "type", "graph must be a graph name");
        else
            snprintf(t->graph, sizeof(t->graph), "%s", json_string_value(v));
    } else if (strcmp(k, "version") == 0) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > UINT32_MAX)
            rf_diag_add(d, ptr, "type", "version must be a positive integer");
        else
            t->version = (uint32_t)json_integer_value(v);
    } else if (strcmp(k, "schedule") == 0) {
        seen[1] = true;
        if (!json_is_string(v))
            rf_diag_add(d, ptr, "type", "schedule must be a cron expression");
        else if (rf_cron_parse(json_string_value(v), json_string_length(v), &t->cron, why,
                               sizeof(why)) < 0)
            rf_diag_add(d, ptr, "invalid_schedule", "%s", why);
        else
            snprintf(t->schedule, sizeof(t->schedule), "%s", json_string_value(v));
    } else if (strcmp(k, "inputs") == 0) {
        if (!json_is_object(v))
            rf_diag_add(d, ptr, "type", "inputs must be an object");
        else
            t->inputs = json_incref(v);
    } else if (strcmp(k, "misfire") == 0) {
        const char *m = json_string_value(v);
        if (!m || (strcmp(m, "skip") != 0 && strcmp(m, "catch_up") != 0))
            rf_diag_add(d, ptr, "type", "misfire must be \"skip\" or \"catch_up\"");
        else
            t->catch_up = m[0] == 'c';
    } else {
        rf_diag_add(d, ptr, "unknown_field",
                    "unknown field \"%.64s\" (graph, version, schedule, inputs, misfire)", k);
    }
}

static int doc_of(struct rf_ctrigger *t)
{
    json_t *o = json_pack("{s:s, s:s, s:O, s:s}", "graph", t->graph, "schedule", t->schedule,
                          "inputs", t->inputs, "misfire", t->catch_up ? "catch_up" : "skip");
    char *text;

    if (o && t->version)
        json_object_set_new(o, "version", json_integer(t->version));
    text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!text)
        return -ENOMEM;
    t->doc_len = strlen(text);
    t->doc = rf_malloc(t->doc_len + 1);
    if (t->doc)
        memcpy(t->doc, text, t->doc_len + 1);
    free(text);
    return t->doc ? 0 : -ENOMEM;
}

int rf_trigger_build(struct rf_triggers *ts, const char *name, const json_t *doc,
                     int64_t created_us, rf_diag *d, struct rf_ctrigger **out)
{
    struct rf_ctrigger *t = rf_calloc(1, sizeof(*t));
    bool seen[2] = {false, false};
    const char *k;
    json_t *v;
    rf_plan *p;
    int rc;

    if (!t)
        return -ENOMEM;
    atomic_init(&t->refs, 1);
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->created_us = created_us;
    atomic_init(&t->last, created_us / 1000000);
    if (!json_is_object(doc)) {
        rc = rf_diag_add(d, "", "type", "a trigger is a JSON object");
        goto fail;
    }
    json_object_foreach((json_t *)doc, k, v) field(t, k, v, d, seen);
    if (!seen[0])
        rf_diag_add(d, "/graph", "required", "graph is required");
    if (!seen[1])
        rf_diag_add(d, "/schedule", "required", "schedule is required");
    if (!t->inputs && !(t->inputs = json_object())) {
        rc = -ENOMEM;
        goto fail;
    }
    if (d->count) {
        rc = RF_EINVAL_GRAPH;
        goto fail;
    }
    if (!(p = rf_graph_get(ts->eng, t->graph, t->version))) {
        rf_diag_add(d, t->version ? "/version" : "/graph", "not_found",
                    t->version ? "graph %s has no version %u" : "graph %s does not exist",
                    t->graph, t->version);
        rc = RF_ENOGRAPH;
        goto fail;
    }
    rf_plan_release(p);
    if ((rc = doc_of(t)) < 0)
        goto fail;
    *out = t;
    return 0;
fail:
    rf_trigger_release(t);
    return rc;
}

/* --- the registry ------------------------------------------------------------------------- */

static int find(struct rf_triggers *ts, const char *name)
{
    for (uint32_t i = 0; i < ts->n; i++)
        if (strcmp(ts->v[i]->name, name) == 0)
            return (int)i;
    return -1;
}

int rf_triggers_put(struct rf_triggers *ts, struct rf_ctrigger *t)
{
    struct rf_ctrigger *old = NULL;

    rf_spin_lock(&ts->lock);
    int i = find(ts, t->name);
    if (i < 0 && ts->n == RF_TRIGGERS_MAX) {
        rf_spin_unlock(&ts->lock);
        rf_trigger_release(t);
        return -ENOSPC;
    }
    if (i >= 0) {
        old = ts->v[i];
        /* Relaxed: shard 0 is the only other writer, and it re-reads `last` each tick. */
        int64_t ol = atomic_load_explicit(&old->last, memory_order_relaxed);
        if (ol > atomic_load_explicit(&t->last, memory_order_relaxed))
            atomic_store_explicit(&t->last, ol, memory_order_relaxed);
        ts->v[i] = t;
    } else {
        ts->v[ts->n++] = t;
    }
    rf_spin_unlock(&ts->lock);
    rf_trigger_release(old);
    return 0;
}

int rf_triggers_del(struct rf_triggers *ts, const char *name)
{
    struct rf_ctrigger *old = NULL;

    rf_spin_lock(&ts->lock);
    int i = find(ts, name);
    if (i >= 0) {
        old = ts->v[i];
        ts->v[i] = ts->v[--ts->n];
    }
    rf_spin_unlock(&ts->lock);
    rf_trigger_release(old);
    return old ? 0 : -ENOENT;
}

struct rf_ctrigger *rf_triggers_get(struct rf_triggers *ts, const char *name)
{
    struct rf_ctrigger *t = NULL;

    rf_spin_lock(&ts->lock);
    int i = find(ts, name);
    if (i >= 0)
        t = retain(ts->v[i]);
    rf_spin_unlock(&ts->lock);
    return t;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *rf_triggers_names(struct rf_triggers *ts)
{
    const char *names[RF_TRIGGERS_MAX];
    json_t *a = json_array();
    uint32_t n;

    rf_spin_lock(&ts->lock);
    n = ts->n;
    for (uint32_t i = 0; i < n; i++)
        names[i] = ts->v[i]->name;
    qsort(names, n, sizeof(*names), cmp_name);
    for (uint32_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(names[i]));
    rf_spin_unlock(&ts->lock);
    return a;
}

void rf_triggers_load(struct rf_triggers *ts, const char *name, const char *doc,
                      size_t doc_len, int64_t created_us)
{
    struct rf_ctrigger *t = NULL;
    rf_diag d;

    if (!doc) {
        rf_triggers_del(ts, name);
        return;
    }
    rf_diag_init(&d);
    json_t *j = json_loadb(doc, doc_len, 0, NULL);
    int rc = j ? rf_trigger_build(ts, name, j, created_us, &d, &t) : RF_EINVAL_GRAPH;
    if (rc == 0)
        rc = rf_triggers_put(ts, t);
    if (rc < 0)
        rf_log_warn("\"msg\":\"trigger not restored\",\"trigger\":\"%s\",\"why\":\"%s\"", name,
                    d.count ? d.items[0].message : rf_strerror(rc));
    json_decref(j);
    rf_diag_free(&d);
}

void rf_triggers_slot(struct rf_triggers *ts, const char *name, int64_t slot)
{
    struct rf_ctrigger *t = rf_triggers_get(ts, name);

    /* Relaxed: recovery runs before the scheduler starts. */
    if (t && slot > atomic_load_explicit(&t->last, memory_order_relaxed))
        atomic_store_explicit(&t->last, slot, memory_order_relaxed);
    rf_trigger_release(t);
}

const char *rf_trigger_doc(const struct rf_ctrigger *t, size_t *len)
{
    *len = t->doc_len;
    return t->doc;
}

/* --- the clock ------------------------------------------------------------------------------ */

int64_t rf_triggers_now(const struct rf_triggers *ts)
{
    if (ts->clock_file[0]) { /* tests: unix seconds in a file */
        FILE *f = fopen(ts->clock_file, "r");
        long long v = 0;
        bool ok = f && fscanf(f, "%lld", &v) == 1 && v > 0;
        if (f)
            fclose(f);
        if (ok)
            return (int64_t)v;
    }
    return rf_wall_us() / 1000000;
}

json_t *rf_trigger_view(struct rf_triggers *ts, const struct rf_ctrigger *t)
{
    char created[RF_TS_LEN], last[RF_TS_LEN], next[RF_TS_LEN];
    /* Relaxed: a snapshot for display. */
    int64_t l = atomic_load_explicit(&t->last, memory_order_relaxed);
    int64_t n = rf_cron_next(&t->cron, RF_MAX(l, rf_triggers_now(ts)));
    json_t *o = json_loadb(t->doc, t->doc_len, 0, NULL);

    if (!o)
        return NULL;
    json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "created_at", json_string(rf_fmt_ts(t->created_us, created)));
    json_object_set_new(o, "last_fired_slot",
                        l * 1000000 > t->created_us ? json_string(rf_fmt_ts(l * 1000000, last))
                                                    : json_null());
    json_object_set_new(o, "next_fire_at",
                        n >= 0 ? json_string(rf_fmt_ts(n * 1000000, next)) : json_null());
    json_object_set_new(o, "account", json_string(ACCOUNT));
    return o;
}

/* --- firing (shard 0) ---------------------------------------------------------------------- */

struct firing {
    struct rf_triggers *ts;
    struct rf_ctrigger *t; /* retained */
    int64_t slot;
};

static void fired(struct rf_triggers *ts, struct rf_ctrigger *t, int64_t slot)
{
    /* Relaxed: shard 0 is the writer; GET reads snapshots. */
    if (slot > atomic_load_explicit(&t->last, memory_order_relaxed))
        atomic_store_explicit(&t->last, slot, memory_order_relaxed);
    (void)ts;
}

static void fire_accepted(void *ud, struct rf_xrec *x, int res)
{
    struct firing *f = ud;

    f->t->pending--;
    f->ts->inflight--;
    if (res == 0) {
        fired(f->ts, f->t, f->slot);
        rf_xrec_release(x);
    } else {
        rf_log_warn("\"msg\":\"cron slot not fired; tried again\",\"trigger\":\"%s\","
                    "\"slot\":%lld,\"err\":\"%s\"",
                    f->t->name, (long long)f->slot, rf_strerror(res));
    }
    rf_trigger_release(f->t);
    rf_free(f);
}

/* Submit one slot. false: stop this trigger's batch (retry at the next tick). */
static bool fire(struct rf_triggers *ts, struct rf_ctrigger *t, int64_t slot)
{
    char key[RF_TRIGGER_NAME_MAX + 32];
    struct firing *f = rf_calloc(1, sizeof(*f));
    rf_plan *p = rf_graph_get(ts->eng, t->graph, t->version);
    json_t *tags = json_pack("[s+]", "cron:", t->name);
    struct rf_xrec *x;
    bool existing;
    int rc;

    if (!f || !p || !tags) {
        if (!p)
            rf_log_warn("\"msg\":\"cron trigger's graph is gone\",\"trigger\":\"%s\","
                        "\"graph\":\"%s\"",
                        t->name, t->graph);
        rf_free(f);
        rf_plan_release(p);
        json_decref(tags);
        return false;
    }
    rf_trigger_key(t->name, slot, key, sizeof(key));
    *f = (struct firing){ts, retain(t), slot};
    struct rf_store_submit s = {.plan = p,
                                .inputs = json_deep_copy(t->inputs),
                                .tags = tags,
                                .idem = key,
                                .shard = ts->sh->id,
                                .accepted = fire_accepted,
                                .accepted_ud = f};
    rc = rf_store_submit(ts->st, &s, &x, &existing);
    rf_plan_release(p);
    json_decref(tags);
    if (rc == 1) { /* waits for the journal */
        t->pending++;
        ts->inflight++;
        return true;
    }
    rf_trigger_release(f->t);
    rf_free(f);
    if (rc == 0 || rc == 2) { /* made, or found: fired either way */
        fired(ts, t, slot);
        if (rc == 0)
            rf_xrec_release(x);
        return true;
    }
    if (rc != -EINPROGRESS)
        rf_log_warn("\"msg\":\"cron slot not fired; tried again\",\"trigger\":\"%s\","
                    "\"slot\":%lld,\"err\":\"%s\"",
                    t->name, (long long)slot, rf_strerror(rc));
    return false;
}

static void run_trigger(struct rf_triggers *ts, struct rf_ctrigger *t, int64_t now)
{
    int64_t slots[FIRE_BATCH];
    bool skipped;

    if (t->pending)
        return; /* its last batch is still on its way to the journal */
    /* Relaxed: written here and by recovery, before the scheduler started. */
    int64_t last = atomic_load_explicit(&t->last, memory_order_relaxed);
    uint32_t n = rf_cron_due(&t->cron, last, now, t->catch_up, slots, FIRE_BATCH, &skipped);
    if (skipped)
        rf_log_warn("\"msg\":\"cron slots missed\",\"trigger\":\"%s\",\"misfire\":\"%s\","
                    "\"since\":%lld,\"firing\":%u",
                    t->name, t->catch_up ? "catch_up" : "skip", (long long)last, n);
    if (skipped && n == 0) /* nothing to fire: the missed ones are behind us */
        fired(ts, t, now);
    for (uint32_t i = 0; i < n; i++)
        if (!fire(ts, t, slots[i]))
            break;
}

static void tick(rf_op *op, int res, uint32_t flags);

static void tick_arm(struct rf_triggers *ts)
{
    ts->tick_armed = true;
    rf__shard_timer_arm(ts->sh, &ts->tick, &ts->ts, RF_TRIGGERS_TICK_MS, tick);
}

static void tick(rf_op *op, int res, uint32_t flags)
{
    struct rf_triggers *ts = rf_container_of(op, struct rf_triggers, tick);
    struct rf_ctrigger *v[RF_TRIGGERS_MAX];
    uint32_t n;

    (void)res;
    (void)flags;
    ts->tick_armed = false;
    if (ts->quitting)
        return;
    /* Relaxed: a flag; what recovery set is ordered by the registry's lock below. */
    if (atomic_load_explicit(&ts->started, memory_order_relaxed)) {
        rf_spin_lock(&ts->lock);
        n = ts->n;
        for (uint32_t i = 0; i < n; i++)
            v[i] = retain(ts->v[i]);
        rf_spin_unlock(&ts->lock);
        int64_t now = rf_triggers_now(ts);
        for (uint32_t i = 0; i < n; i++) {
            run_trigger(ts, v[i], now);
            rf_trigger_release(v[i]);
        }
    }
    tick_arm(ts);
}

static int svc_start(void *ud, struct rf_shard *sh)
{
    struct rf_triggers *ts = ud;

    if (sh->id == 0) {
        ts->sh = sh;
        tick_arm(ts);
    }
    return 0;
}

static void svc_quit(void *ud, struct rf_shard *sh)
{
    struct rf_triggers *ts = ud;

    if (sh->id != 0)
        return;
    ts->quitting = true;
    if (ts->tick_armed)
        rf__shard_timer_cancel(sh, &ts->tick);
}

static bool svc_busy(void *ud, struct rf_shard *sh)
{
    struct rf_triggers *ts = ud;

    return sh->id == 0 && (ts->tick_armed || ts->inflight);
}

int rf_triggers_new(rf_engine *eng, struct rf_store *st, const char *clock_file,
                    struct rf_triggers **out)
{
    struct rf_triggers *ts = rf_calloc(1, sizeof(*ts));
    int rc;

    if (!ts)
        return -ENOMEM;
    ts->eng = eng;
    ts->st = st;
    if (clock_file)
        snprintf(ts->clock_file, sizeof(ts->clock_file), "%s", clock_file);
    ts->svc = (struct rf_shard_service){
        .ud = ts, .start = svc_start, .quit = svc_quit, .busy = svc_busy};
    if ((rc = rf__engine_set_service(eng, &ts->svc)) < 0) {
        rf_free(ts);
        return rc;
    }
    *out = ts;
    return 0;
}

void rf_triggers_start(struct rf_triggers *ts)
{
    atomic_store_explicit(&ts->started, true, memory_order_relaxed); /* a flag */
}

void rf_triggers_free(struct rf_triggers *ts)
{
    if (!ts)
        return;
    for (uint32_t i = 0; i < ts->n; i++)
        rf_trigger_release(ts->v[i]);
    rf_free(ts);
}
