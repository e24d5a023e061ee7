/*
 * engine/xdoc.c: the hydrated execution document (spec/api.md, GET /v1/executions/{id}),
 * kept up to date in place from the execution's events.
 *
 * The document is one jansson object built at submission with every node present and
 * pending. Beside it sits a direct array of per-node records, indexed by the plan's node
 * index, that point at each node's object inside the document: applying an event is an
 * index into that array and a handful of field replacements, O(1) apart from the JSON
 * values it stores (timestamps, and references to the event's params, output and error,
 * which are shared, never copied, and never mutated). Status strings are interned once per
 * process and shared by reference.
 *
 * Per node: the status follows the node's events (node.cached shows "cached" and
 * cached: true); `attempts` follows ev->attempt when the event carries one (> 0), so a
 * skip or cancel without an attempt never erases the count; `error` is the last failed
 * attempt's and stays after a later success (as rf_node_info's); `started_at` is the first
 * node.started; `finished_at` the terminal event's time.
 *
 * Mapped nodes: an event with ev->item >= 0 updates items[item] (the array appears with
 * the first item event and grows with pending entries up to the item), never the node's
 * own fields, except that the node shows "running" (and gets its started_at) from its
 * first item event until its own terminal event, even if the engine sent no node.started
 * for it first. An item event that arrives after the node's own terminal event updates the
 * item only: a node, once terminal, changes only through its own events.
 *
 * The first event carrying ev->parent_exec_id records `parent` once. Execution events set
 * the execution's status, started_at, output, error and finished_at. `version` is null for
 * a plan that was never registered (rf_plan_version() == 0).
 *
 * Concurrency: one thread applies at a time (the execution's event deliverer); any thread
 * may snapshot. Both take a test-and-test-and-set spin lock; a snapshot holds it for one
 * json_deep_copy, an apply for a few field stores.
 */
#include "engine/rf.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/xdoc.h"

#define RF_XDOC_STATUSES (RF_ST_CACHED + 1)

struct xnode {
    json_t *obj;    /* the node's object inside the document (borrowed from it) */
    json_t *items;  /* its `items` array once an item event came (borrowed), else NULL */
    uint8_t status; /* rf_status the document shows for the node */
};

struct rf_xdoc {
    _Atomic uint32_t lock; /* 0 free, 1 held */
    json_t *doc;           /* owned */
    json_t *nodes;         /* doc.nodes, borrowed from doc */
    bool has_parent;
    uint32_t n;
    struct xnode node[]; /* n entries, by plan node index */
};

/* --- interned status strings, shared by every document of the process ------------------ */

static json_t *status_str[RF_XDOC_STATUSES];
static pthread_once_t status_once = PTHREAD_ONCE_INIT;

static void status_init(void)
{
    for (int i = 0; i < RF_XDOC_STATUSES; i++) {
        status_str[i] = json_string(rf_status_name((rf_status)i));
        RF_ASSERT(status_str[i] != NULL); /* a few bytes at first use */
    }
}

/* A reference to the interned string of `st`: its count never drops to zero. */
static json_t *status_json(rf_status st)
{
    RF_DASSERT((unsigned)st < RF_XDOC_STATUSES);
    return json_incref(status_str[st]);
}

/* --- building ---------------------------------------------------------------------------- */

/* A pending run: the per-run fields of a node or an item; with `kind` for a node. New
 * reference, NULL on allocation failure. */
static json_t *run_new(const char *kind)
{
    json_t *o = json_object();

    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "status", status_json(RF_ST_PENDING));
    if (kind)
        bad |= json_object_set_new(o, "kind", json_string(kind));
    bad |= json_object_set_new(o, "lineage_hash", json_null());
    bad |= json_object_set_new(o, "attempts", json_integer(0));
    bad |= json_object_set_new(o, "params", json_null());
    bad |= json_object_set_new(o, "output", json_null());
    bad |= json_object_set_new(o, "error", json_null());
    bad |= json_object_set_new(o, "cached", json_false());
    bad |= json_object_set_new(o, "started_at", json_null());
    bad |= json_object_set_new(o, "finished_at", json_null());
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *ts_json(int64_t us)
{
    char buf[RF_TS_LEN];

    return json_string(rf_fmt_ts(us, buf));
}

static json_t *doc_new(const rf_plan *p, const char *exec_id, const json_t *inputs,
                       const json_t *tags, int64_t created_us)
{
    uint32_t version = rf_plan_version(p);
    json_t *o = json_object();

    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "id", json_string(exec_id));
    bad |= json_object_set_new(o, "graph", json_string(rf_plan_name(p)));
    bad |= json_object_set_new(o, "version", version ? json_integer(version) : json_null());
    bad |= json_object_set_new(o, "status", status_json(RF_ST_QUEUED));
    bad |= json_object_set_new(o, "inputs", inputs ? json_incref((json_t *)inputs) : json_object());
    bad |= json_object_set_new(o, "output", json_null());
    bad |= json_object_set_new(o, "error", json_null());
    bad |= json_object_set_new(o, "tags", tags ? json_incref((json_t *)tags) : json_object());
    bad |= json_object_set_new(o, "created_at", ts_json(created_us));
    bad |= json_object_set_new(o, "started_at", json_null());
    bad |= json_object_set_new(o, "finished_at", json_null());
    bad |= json_object_set_new(o, "nodes", json_object());
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

struct rf_xdoc *rf__xdoc_new(const rf_plan *p, const char *exec_id, const json_t *inputs,
                             const json_t *tags, int64_t created_us)
{
    uint32_t n = rf_plan_nodes(p);
    struct rf_xdoc *d;

    pthread_once(&status_once, status_init);
    d = rf_calloc(1, sizeof(*d) + (size_t)n * sizeof(d->node[0]));
    if (!d)
        return NULL;
    d->n = n;
    d->doc = doc_new(p, exec_id, inputs, tags, created_us);
    if (!d->doc)
        goto err;
    d->nodes = json_object_get(d->doc, "nodes");
    for (uint32_t i = 0; i < n; i++) {
        const char *id = rf_plan_node_id(p, i);
        json_t *obj = run_new(rf_plan_node_kind(p, i));
        /* Ids are unique in a compiled plan: a duplicate would free a borrowed object. */
        RF_ASSERT(json_object_get(d->nodes, id) == NULL);
        if (!obj || json_object_set_new(d->nodes, id, obj) < 0)
            goto err;
        d->node[i].obj = obj;
        d->node[i].status = RF_ST_PENDING;
    }
    atomic_init(&d->lock, 0);
    return d;
err:
    json_decref(d->doc);
    rf_free(d);
    return NULL;
}

void rf__xdoc_free(struct rf_xdoc *d)
{
    if (!d)
        return;
    json_decref(d->doc);
    rf_free(d);
}

/* --- applying events --------------------------------------------------------------------- */

/* The status an event puts its subject in. */
static rf_status event_status(rf_event_type t)
{
    switch (t) {
    case RF_EV_EXECUTION_QUEUED:
        return RF_ST_QUEUED;
    case RF_EV_EXECUTION_STARTED:
    case RF_EV_NODE_STARTED:
        return RF_ST_RUNNING;
    case RF_EV_NODE_RETRYING:
        return RF_ST_RETRYING;
    case RF_EV_NODE_SUCCEEDED:
    case RF_EV_EXECUTION_SUCCEEDED:
        return RF_ST_SUCCEEDED;
    case RF_EV_NODE_CACHED:
        return RF_ST_CACHED;
    case RF_EV_NODE_FAILED:
    case RF_EV_EXECUTION_FAILED:
        return RF_ST_FAILED;
    case RF_EV_NODE_SKIPPED:
        return RF_ST_SKIPPED;
    case RF_EV_NODE_CANCELED:
    case RF_EV_EXECUTION_CANCELED:
        return RF_ST_CANCELED;
    }
    RF_ASSERT(!"unknown event type");
    return RF_ST_PENDING;
}

/* Store a borrowed value under `key` (a reference is taken); NULL stores nothing. */
static void set_ref(json_t *o, const char *key, const json_t *v)
{
    if (v)
        json_object_set(o, key, (json_t *)v);
}

static void set_time_once(json_t *o, const char *key, int64_t us)
{
    if (json_is_null(json_object_get(o, key)))
        json_object_set_new(o, key, ts_json(us));
}

/* Apply a node or item event to its run object (a node's or an item's). */
static void run_apply(json_t *run, const rf_event *ev)
{
    rf_status st = event_status(ev->type);

    json_object_set_new(run, "status", status_json(st));
    if (ev->attempt > 0)
        json_object_set_new(run, "attempts", json_integer(ev->attempt));
    if (ev->lineage_hash)
        json_object_set_new(run, "lineage_hash", json_string(ev->lineage_hash));
    switch (ev->type) {
    case RF_EV_NODE_STARTED:
        set_ref(run, "params", ev->params);
        set_time_once(run, "started_at", ev->ts_us);
        return;
    case RF_EV_NODE_RETRYING:
        set_ref(run, "error", ev->error);
        return;
    case RF_EV_NODE_CACHED:
        json_object_set_new(run, "cached", json_true());
        /* fall through */
    case RF_EV_NODE_SUCCEEDED:
        json_object_set(run, "output", ev->output ? (json_t *)ev->output : json_null());
        break;
    case RF_EV_NODE_FAILED:
    case RF_EV_NODE_SKIPPED:
    case RF_EV_NODE_CANCELED:
        set_ref(run, "error", ev->error);
        break;
    default:
        RF_ASSERT(!"not a node event");
    }
    json_object_set_new(run, "finished_at", ts_json(ev->ts_us));
}

static void apply_node(struct rf_xdoc *d, struct xnode *xn, const rf_event *ev)
{
    run_apply(xn->obj, ev);
    xn->status = (uint8_t)event_status(ev->type);
}

/* The item's entry, growing `items` with pending entries up to it; NULL when out of
 * memory (the event is then not shown). */
static json_t *item_entry(struct xnode *xn, size_t item)
{
    if (!xn->items) {
        json_t *a = json_array();
        if (!a || json_object_set_new(xn->obj, "items", a) < 0)
            return NULL;
        xn->items = a;
    }
    while (json_array_size(xn->items) <= item) {
        if (json_array_append_new(xn->items, run_new(NULL)) < 0)
            return NULL;
    }
    return json_array_get(xn->items, item);
}

static void apply_item(struct rf_xdoc *d, struct xnode *xn, const rf_event *ev)
{
    /* The engine bounds map width by map_items_max <= RF_MAP_ITEMS_LIMIT. */
    RF_ASSERT(ev->item < (int64_t)RF_MAP_ITEMS_LIMIT);
    json_t *run = item_entry(xn, (size_t)ev->item);

    if (run)
        run_apply(run, ev);
    if (rf_status_terminal((rf_status)xn->status))
        return; /* a terminal node changes only through its own events */
    if (xn->status != RF_ST_RUNNING) {
        json_object_set_new(xn->obj, "status", status_json(RF_ST_RUNNING));
        xn->status = RF_ST_RUNNING;
    }
    set_time_once(xn->obj, "started_at", ev->ts_us);
}

static void apply_exec(struct rf_xdoc *d, const rf_event *ev)
{
    json_t *o = d->doc;

    json_object_set_new(o, "status", status_json(event_status(ev->type)));
    switch (ev->type) {
    case RF_EV_EXECUTION_QUEUED:
        return;
    case RF_EV_EXECUTION_STARTED:
        set_time_once(o, "started_at", ev->ts_us);
        return;
    case RF_EV_EXECUTION_SUCCEEDED:
        json_object_set(o, "output", ev->output ? (json_t *)ev->output : json_null());
        break;
    case RF_EV_EXECUTION_FAILED:
    case RF_EV_EXECUTION_CANCELED:
        set_ref(o, "error", ev->error);
        break;
    default:
        RF_ASSERT(!"not an execution event");
    }
    json_object_set_new(o, "finished_at", ts_json(ev->ts_us));
}

static void set_parent(struct rf_xdoc *d, const rf_event *ev)
{
    json_t *p = json_object();

    if (!p)
        return;
    json_object_set_new(p, "execution_id", json_string(ev->parent_exec_id));
    json_object_set_new(p, "node",
                        ev->parent_node_id ? json_string(ev->parent_node_id) : json_null());
    if (ev->parent_item >= 0)
        json_object_set_new(p, "item", json_integer(ev->parent_item));
    if (json_object_set_new(d->doc, "parent", p) == 0)
        d->has_parent = true;
}

void rf__xdoc_apply(struct rf_xdoc *d, const rf_event *ev)
{
    rf_spin_lock(&d->lock);
    if (ev->parent_exec_id && !d->has_parent)
        set_parent(d, ev);
    if (ev->node < 0) {
        apply_exec(d, ev);
    } else {
        RF_ASSERT((uint32_t)ev->node < d->n);
        struct xnode *xn = &d->node[ev->node];
        if (ev->item >= 0)
            apply_item(d, xn, ev);
        else
            apply_node(d, xn, ev);
    }
    rf_spin_unlock(&d->lock);
}

json_t *rf__xdoc_snapshot(struct rf_xdoc *d)
{
    json_t *copy;

    rf_spin_lock(&d->lock);
    copy = json_deep_copy(d->doc);
    rf_spin_unlock(&d->lock);
    return copy;
}
