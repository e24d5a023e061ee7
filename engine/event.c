/*
 * engine/event.c: the per-execution event queue, and events as the spec's JSON.
 *
 * An execution's nodes run on any shard, yet its events must reach the application in
 * `seq` order with no gap, one callback at a time. Each execution has an rf_evq: a short
 * spin lock that covers only "take the next seq, append the small record". Taking the seq
 * under the same lock as the append makes the order of the queue the order of seq, and
 * because a node emits its terminal event before it releases its successors (the join
 * counter's acq_rel), causality is preserved: a successor's node.started always gets a
 * larger seq than every dep's end.
 *
 * Delivery is combining: the thread that appends to an idle queue becomes the deliverer.
 * It swaps the pending array for its spare one, drops the lock, runs the callbacks, and
 * loops until the queue is empty; other threads just append and go on, never waiting for a
 * callback. The DONE marker, appended after the execution's final event, makes the
 * deliverer run the `done` callback and hand the execution back to its home shard; nothing
 * is appended after it, so the deliverer never touches the execution again.
 *
 * Records are small and own one JSON reference at most: the params, output or error the
 * event carries (incrementing a reference count, never copying). Executions with neither
 * an event callback nor a document never reach this file except for DONE. Each event goes
 * to the document first (RF_SUBMIT_DOCUMENT), then to the callback, so a callback that
 * reads the document sees its own event applied.
 */
#include "engine/rf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/alloc.h"
#include "engine/internal.h"
#include "engine/jcs.h"
#include "engine/xdoc.h"
#include "sched/shard.h"

static void evq_lock(struct rf_evq *q)
{
    for (;;) {
        /* Acquire: the critical section sees the previous holder's writes. */
        if (!atomic_exchange_explicit(&q->lock, 1, memory_order_acquire))
            return;
        /* Relaxed spin on a read until the holder (a few dozen instructions) is done. */
        while (atomic_load_explicit(&q->lock, memory_order_relaxed))
            __builtin_ia32_pause();
    }
}

static void evq_unlock(struct rf_evq *q)
{
    /* Release: publishes the critical section to the next holder. */
    atomic_store_explicit(&q->lock, 0, memory_order_release);
}

static int evq_reserve(struct rf_evq *q)
{
    if (q->len < q->cap)
        return 0;
    uint32_t cap = q->cap ? q->cap * 2 : 16;
    struct rf_evrec *b = rf_realloc(q->buf, cap * sizeof(*b));
    if (!b)
        return -ENOMEM;
    q->buf = b;
    q->cap = cap;
    return 0;
}

static void build_event(struct rf_exec *ex, const struct rf_evrec *r, rf_event *ev,
                        char hex[33])
{
    const rf_plan *p = ex->plan;

    memset(ev, 0, sizeof(*ev));
    ev->seq = r->seq;
    ev->ts_us = r->ts_us;
    ev->type = (rf_event_type)r->type;
    ev->exec_id = ex->id;
    ev->node = -1;
    ev->item = -1;
    ev->parent_item = -1;
    if (ex->parent) {
        ev->parent_exec_id = ex->parent->exec_id;
        ev->parent_node_id = ex->parent->node_id;
        ev->parent_item = ex->parent->item;
    }
    if (r->type >= RF_EV_NODE_STARTED && r->type <= RF_EV_NODE_CANCELED) {
        ev->node = (int32_t)r->node;
        ev->node_id = p->nodes[r->node].id;
        ev->item = r->item;
        ev->attempt = r->attempt;
        ev->retry_in_ms = r->retry_in_ms;
        if (r->type == RF_EV_NODE_STARTED)
            ev->params = r->data ? r->data : json_null();
        else if (r->type == RF_EV_NODE_SUCCEEDED || r->type == RF_EV_NODE_CACHED)
            ev->output = r->data ? r->data : json_null();
        else if (r->type == RF_EV_NODE_RETRYING || r->type == RF_EV_NODE_FAILED)
            ev->error = r->data;
        ev->cached = r->type == RF_EV_NODE_CACHED;
        if (r->has_lineage) {
            rf_hex128(r->lineage, hex);
            ev->lineage_hash = hex;
        }
    } else if (r->type == RF_EV_EXECUTION_SUCCEEDED) {
        ev->output = ex->output ? ex->output : json_null();
    } else if (r->type == RF_EV_EXECUTION_FAILED) {
        ev->error = ex->error;
    }
}

/* The last step of an execution: the done callback, the hand-back to the home shard, the
 * release of its in-flight reservation, then its waiters. In that order: DONE enters the
 * home inbox before the reservation is released, so a submission that takes the freed
 * reservation queues its SUBMIT behind the DONE that frees the slot; and a waiter woken
 * last finds the capacity already back. Our own reference keeps `ex` alive throughout. */
static void finalize(struct rf_exec *ex)
{
    rf_engine *eng = ex->eng;
    struct rf_shard *home = eng->shards[ex->home];

    if (ex->cb.done)
        ex->cb.done(ex->cb.ud, ex);
    rf_exec_retain(ex);
    /* The inbox has room: the execution's in-flight reservation guarantees it. */
    bool sent = rf__shard_send(home, ex, RF_MSG_DONE);
    RF_ASSERT(sent);
    /* Release: a submitter or stopper that sees the count drop sees the execution done. */
    atomic_fetch_sub_explicit(&home->inflight, 1, memory_order_release);
    if (atomic_load_explicit(&eng->state, memory_order_relaxed) == RF_ENG_STOPPING) {
        atomic_fetch_add_explicit(&eng->stop_word, 1, memory_order_release); /* futex word */
        rf__futex_wake_all(&eng->stop_word);
    }
    /* Release: rf_exec_wait's acquire load then sees every write of the execution; the
     * exchange tells us whether a waiter announced itself (2), so the common case makes
     * no syscall. */
    if (atomic_exchange_explicit(&ex->done, 1, memory_order_acq_rel) == 2)
        rf__futex_wake_all(&ex->done);
    rf_exec_release(ex);
}

/* Called with the lock held and `delivering` set; returns with the lock released. */
static void deliver(struct rf_exec *ex)
{
    struct rf_evq *q = &ex->evq;

    for (;;) {
        if (q->len == 0) {
            q->delivering = false;
            evq_unlock(q);
            return;
        }
        struct rf_evrec *batch = q->buf;
        uint32_t n = q->len, cap = q->cap;
        q->buf = q->spare;
        q->cap = q->spare_cap;
        q->len = 0;
        q->spare = NULL;
        q->spare_cap = 0;
        evq_unlock(q);

        for (uint32_t i = 0; i < n; i++) {
            struct rf_evrec *r = &batch[i];
            if (r->type == RF_EVREC_DONE) {
                RF_ASSERT(i == n - 1);
                rf_free(batch);
                finalize(ex);
                return;
            }
            char hex[33];
            rf_event ev;
            build_event(ex, r, &ev, hex);
            if (ex->doc)
                rf__xdoc_apply(ex->doc, &ev);
            if (ex->cb.event)
                ex->cb.event(ex->cb.ud, &ev);
            json_decref(r->data);
        }

        evq_lock(q);
        RF_DASSERT(q->spare == NULL);
        q->spare = batch;
        q->spare_cap = cap;
    }
}

static void evq_append(struct rf_exec *ex, struct rf_evrec *r)
{
    struct rf_evq *q = &ex->evq;

    evq_lock(q);
    /* A failed append would lose an event and break the gap-free contract. */
    RF_ASSERT(evq_reserve(q) == 0);
    if (r->type != RF_EVREC_DONE) {
        r->seq = ++q->seq;
        r->ts_us = rf_wall_us(); /* under the lock: ts never goes back as seq goes up */
    }
    q->buf[q->len++] = *r;
    if (q->delivering) {
        evq_unlock(q);
        return;
    }
    q->delivering = true;
    deliver(ex);
}

void rf__evq_emit(struct rf_exec *ex, uint8_t type, uint32_t node, uint32_t attempt,
                  uint32_t retry_in_ms, json_t *data)
{
    struct rf_evrec r = {
        .type = type,
        .node = node,
        .item = -1,
        .attempt = attempt,
        .retry_in_ms = retry_in_ms,
        .data = data,
    };

    RF_DASSERT(rf__events_on(ex));
    evq_append(ex, &r);
}

void rf__evq_push(struct rf_exec *ex, struct rf_evrec *r)
{
    RF_DASSERT(rf__events_on(ex));
    evq_append(ex, r);
}

void rf__evq_done(struct rf_exec *ex)
{
    struct rf_evrec r = {.type = RF_EVREC_DONE};

    if (!rf__events_on(ex)) {
        finalize(ex);
        return;
    }
    evq_append(ex, &r);
}

void rf__evq_fini(struct rf_evq *q)
{
    for (uint32_t i = 0; i < q->len; i++)
        json_decref(q->buf[i].data);
    rf_free(q->buf);
    rf_free(q->spare);
    q->buf = q->spare = NULL;
}

json_t *rf__error_json(const rf_error *err, const char *node_id)
{
    json_t *o = json_pack("{s:s, s:s}", "code", err->code[0] ? err->code : "error", "message",
                          err->message);
    if (o && node_id)
        json_object_set_new(o, "node", json_string(node_id));
    return o;
}

/* --- the spec's JSON form ------------------------------------------------------------ */

json_t *rf_event_json(const rf_event *ev)
{
    char ts[RF_TS_LEN];
    json_t *o = json_object();

    if (!o)
        return NULL;
    json_object_set_new(o, "execution_id", json_string(ev->exec_id));
    json_object_set_new(o, "seq", json_integer((json_int_t)ev->seq));
    json_object_set_new(o, "ts", json_string(rf_fmt_ts(ev->ts_us, ts)));
    json_object_set_new(o, "type", json_string(rf_event_type_name(ev->type)));
    if (ev->parent_exec_id) {
        json_t *par = json_pack("{s:s, s:s}", "execution_id", ev->parent_exec_id, "node",
                                ev->parent_node_id ? ev->parent_node_id : "");
        if (par && ev->parent_item >= 0)
            json_object_set_new(par, "item", json_integer(ev->parent_item));
        json_object_set_new(o, "parent", par);
    }
    if (ev->node_id) {
        json_object_set_new(o, "node", json_string(ev->node_id));
        if (ev->item >= 0)
            json_object_set_new(o, "item", json_integer(ev->item));
        json_object_set_new(o, "attempt", json_integer(ev->attempt));
        json_object_set_new(o, "cached", json_boolean(ev->cached));
    }
    if (ev->lineage_hash)
        json_object_set_new(o, "lineage_hash", json_string(ev->lineage_hash));
    if (ev->params)
        json_object_set(o, "params", (json_t *)ev->params);
    if (ev->output)
        json_object_set(o, "output", (json_t *)ev->output);
    if (ev->error)
        json_object_set(o, "error", (json_t *)ev->error);
    if (ev->type == RF_EV_NODE_RETRYING)
        json_object_set_new(o, "retry_in_ms", json_integer(ev->retry_in_ms));
    return o;
}

/* --- the inverse of rf_event_json: for documents rebuilt from an event log ------------- */

static int type_of(const char *name, rf_event_type *out)
{
    for (int t = RF_EV_EXECUTION_QUEUED; t <= RF_EV_EXECUTION_CANCELED; t++)
        if (strcmp(rf_event_type_name((rf_event_type)t), name) == 0) {
            *out = (rf_event_type)t;
            return 0;
        }
    return -EINVAL;
}

int rf__ts_parse(const char *s, int64_t *us)
{
    struct tm tm = {0};
    long frac = 0;
    int n = 0;

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%6ldZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &frac, &n) != 7 ||
        n != 27 || s[n] != '\0')
        return -EINVAL;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *us = (int64_t)timegm(&tm) * 1000000 + frac;
    return 0;
}

int rf__event_from_json(const json_t *o, int32_t node, rf_event *ev)
{
    const char *type = json_string_value(json_object_get(o, "type"));
    const char *ts = json_string_value(json_object_get(o, "ts"));
    json_t *item = json_object_get(o, "item"), *par = json_object_get(o, "parent");

    memset(ev, 0, sizeof(*ev));
    if (!type || !ts || type_of(type, &ev->type) < 0 || rf__ts_parse(ts, &ev->ts_us) < 0)
        return -EINVAL;
    ev->seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
    ev->exec_id = json_string_value(json_object_get(o, "execution_id"));
    ev->node = node;
    ev->node_id = json_string_value(json_object_get(o, "node"));
    ev->item = json_is_integer(item) ? json_integer_value(item) : -1;
    ev->attempt = (uint32_t)json_integer_value(json_object_get(o, "attempt"));
    ev->retry_in_ms = (uint32_t)json_integer_value(json_object_get(o, "retry_in_ms"));
    ev->cached = json_is_true(json_object_get(o, "cached"));
    ev->lineage_hash = json_string_value(json_object_get(o, "lineage_hash"));
    ev->params = json_object_get(o, "params");
    ev->output = json_object_get(o, "output");
    ev->error = json_object_get(o, "error");
    ev->parent_item = -1;
    if (par) {
        json_t *pi = json_object_get(par, "item");
        ev->parent_exec_id = json_string_value(json_object_get(par, "execution_id"));
        ev->parent_node_id = json_string_value(json_object_get(par, "node"));
        ev->parent_item = json_is_integer(pi) ? json_integer_value(pi) : -1;
    }
    return ev->exec_id && ev->seq > 0 && (node < 0) == (ev->node_id == NULL) ? 0 : -EINVAL;
}
