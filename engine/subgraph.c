/*
 * engine/subgraph.c: the `graph` node kind, a sub-execution of a registered graph.
 *
 * Config: {name: literal graph name, version?: integer >= 1 (default: the latest when the
 * node runs), inputs?: object (templates allowed)}. The name must be literal so that
 * registration can prove no graph calls itself through any path (engine/registry.c); at
 * run time the nesting depth is still bounded by graph_depth_max as a second line.
 *
 * An attempt submits the child with rf__submit(): its inputs are checked against the
 * child's declaration (a mismatch fails the node, not retryable), its events go to the
 * parent's event callback carrying the parent link ({execution_id, node, item}), and its
 * `done` wakes the task on the shard that owns it (rf__shard_task_wake), where the attempt
 * completes with the child's output, or fails with the child's error. Cancelling the
 * attempt (the parent canceled, the attempt's timeout) cancels the child, whose end then
 * completes the attempt as canceled. The child holds one in-flight reservation like any
 * execution: when every shard is at its bound the attempt fails as retryable overload.
 */
#include "engine/rf.h"

#include <errno.h>
#include <string.h>

#include "engine/internal.h"
#include "sched/shard.h"

struct sub_state {
    rf_exec *child; /* owned reference while the child runs */
};

static int graph_validate(void *ud, const json_t *config, rf_error *err)
{
    const char *key;
    json_t *v;

    if (!json_is_object(config) || !json_is_string(json_object_get(config, "name")))
        return rf_error_set(err, -EINVAL, false, "invalid_config",
                            "graph: config must be an object with a literal \"name\"");
    json_object_foreach((json_t *)config, key, v)
    {
        if (strcmp(key, "name") == 0) {
            if (strstr(json_string_value(v), "{{"))
                return rf_error_set(err, -EINVAL, false, "invalid_config",
                                    "graph: \"name\" must be a literal graph name, not a template");
        } else if (strcmp(key, "version") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > UINT32_MAX)
                return rf_error_set(err, -EINVAL, false, "invalid_config",
                                    "graph: \"version\" must be an integer >= 1");
        } else if (strcmp(key, "inputs") == 0) {
            if (!json_is_object(v) && !json_is_string(v))
                return rf_error_set(err, -EINVAL, false, "invalid_config",
                                    "graph: \"inputs\" must be an object or a template");
        } else {
            return rf_error_set(err, -EINVAL, false, "invalid_config",
                                "graph: unknown field \"%s\"", key);
        }
    }
    return 0;
}

/* The child's events, forwarded to the parent's callback (the rf_event carries the link). */
static void child_event(void *ud, const rf_event *ev)
{
    struct rf_task *t = ud;
    const struct rf_exec *parent = t->ex;

    if (parent->cb.event)
        parent->cb.event(parent->cb.ud, ev);
}

/* On the owner shard: complete the attempt from the child's end. */
static void child_woken(struct rf_task *t)
{
    struct sub_state *st = rf_task_data(t);
    rf_exec *child = st->child;
    rf_status s = rf_exec_status(child);
    rf_error err;

    st->child = NULL;
    if (s == RF_ST_SUCCEEDED) {
        json_t *out = rf_exec_output(child);
        rf_exec_release(child);
        rf_task_succeed(t, out);
        return;
    }
    if (s == RF_ST_CANCELED) {
        rf_error_set(&err, -ECANCELED, false, "canceled", "sub-execution %s was canceled",
                     rf_exec_id(child));
    } else {
        const json_t *e = rf_exec_error(child);
        const char *msg = json_string_value(json_object_get(e, "message"));
        rf_error_set(&err, -EIO, false, "subgraph_failed", "sub-execution %s failed: %s",
                     rf_exec_id(child), msg ? msg : "unknown error");
    }
    rf_exec_release(child);
    rf_task_fail(t, &err);
}

static void child_done(void *ud, rf_exec *ex)
{
    struct rf_task *t = ud;

    (void)ex;
    t->woken = child_woken;
    rf__shard_task_wake(t);
}

static void parent_link(const struct rf_task *t, struct rf_parent *par)
{
    const struct rf_exec *ex = t->ex;

    memset(par, 0, sizeof(*par));
    memcpy(par->exec_id, ex->id, RF_EXEC_ID_LEN);
    strncpy(par->node_id, ex->plan->nodes[t->node].id, sizeof(par->node_id) - 1);
    par->item = -1;
    if (t->lane != RF_NO_LANE) {
        /* Acquire: pairs with the CAS that published the array (we own the lane). */
        struct rf_naux *aux = atomic_load_explicit(&((struct rf_exec *)ex)->aux,
                                                   memory_order_acquire);
        par->item = aux[t->node].map->lanes[t->lane].item;
    }
    par->depth = ex->parent ? ex->parent->depth + 1 : 1;
}

static int submit_error(int rc, const rf_diag *d, const char *name, rf_error *err)
{
    if (rc == RF_EINPUTS)
        return rf_error_set(err, rc, false, "invalid_inputs", "graph %s: %s%s%s", name,
                            d->count ? d->items[0].pointer : "",
                            d->count ? ": " : "inputs do not match its declaration",
                            d->count ? d->items[0].message : "");
    if (rc == RF_EOVERLOAD)
        return rf_error_set(err, rc, true, "overload", "graph %s: every shard is at its bound",
                            name);
    return rf_error_set(err, rc, rc == -ENOMEM, "subgraph_error", "graph %s: %s", name,
                        rf_strerror(rc));
}

static int graph_start(void *ud, rf_task *task, rf_error *err)
{
    struct rf_task *t = task;
    struct sub_state *st = rf_task_data(task);
    const json_t *params = rf_task_call(task)->params;
    const char *name = json_string_value(json_object_get(params, "name"));
    json_int_t ver = json_integer_value(json_object_get(params, "version"));
    json_t *inputs = json_object_get(params, "inputs");
    rf_engine *eng = t->ex->eng;
    struct rf_parent par;
    rf_callbacks cb = {.event = t->ex->cb.event ? child_event : NULL, .done = child_done, .ud = t};
    rf_submit_opts o = {.callbacks = &cb};
    rf_diag d;
    rf_plan *p;
    int rc;

    parent_link(t, &par);
    if (par.depth > eng->cfg.graph_depth_max)
        return rf_error_set(err, RF_ELIMIT, false, "graph_depth",
                            "graph %s: sub-graphs nest deeper than %u", name ? name : "?",
                            eng->cfg.graph_depth_max);
    p = name ? rf_graph_get(eng, name, (uint32_t)(ver > 0 ? ver : 0)) : NULL;
    if (!p)
        return rf_error_set(err, RF_ENOGRAPH, false, "unknown_graph",
                            "graph %s (version %lld) is not registered", name ? name : "?",
                            (long long)ver);
    if (t->ex->flags & RF_SUBMIT_DOCUMENT)
        o.flags |= RF_SUBMIT_DOCUMENT;
    rf_diag_init(&d);
    o.diag = &d;
    rc = rf__submit(eng, p, inputs ? json_incref(inputs) : NULL, &o, &par, &st->child);
    rf_plan_release(p);
    if (rc < 0) {
        st->child = NULL;
        rc = submit_error(rc, &d, name, err);
    }
    rf_diag_free(&d);
    return rc;
}

static void graph_cancel(void *ud, rf_task *task)
{
    struct sub_state *st = rf_task_data(task);

    if (st->child)
        rf_exec_cancel(st->child); /* its end completes the attempt as canceled */
}

int rf__register_graph_kind(rf_engine *eng)
{
    static const rf_kind k = {
        .name = "graph",
        .type = RF_KIND_ASYNC,
        .start = graph_start,
        .cancel = graph_cancel,
        .validate = graph_validate,
        .task_bytes = sizeof(struct sub_state),
    };
    return rf_engine_register_kind(eng, &k);
}
