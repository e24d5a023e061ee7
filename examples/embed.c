/*
 * examples/embed.c: a complete program that embeds ringflow. Copy it and build it with
 *
 *     cc -std=c17 embed.c $(pkg-config --cflags --libs ringflow)
 *
 * It registers two kinds of its own:
 *   - "greet", synchronous: a function from params to output;
 *   - "tick", asynchronous: it arms an io_uring timeout on the running shard's ring and
 *     completes when it fires; cancelling it removes the timeout;
 * builds a small graph (a diamond with a retried flaky node and an all_done reporter),
 * compiles it, runs three executions at once from this thread, prints every event as a
 * JSON line, and then cancels a long-running execution to show cancellation.
 *
 * Exit status: 0 when every execution ended as expected.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringflow.h>

#define UNUSED __attribute__((unused))

/* --- a synchronous kind: params -> output --------------------------------------------- */

static int greet_run(void *ud UNUSED, const rf_call *call, json_t **output, rf_error *err)
{
    const char *name = json_string_value(json_object_get(call->params, "name"));

    if (!name)
        return rf_error_set(err, -EINVAL, false, "invalid_params", "greet needs a \"name\"");
    *output = json_pack("{s:s+, s:i}", "greeting", "hello, ", name, "attempt", call->attempt);
    return *output ? 0 : -ENOMEM;
}

/* A sync kind that fails its first attempt with a retryable error. */
static int flaky_run(void *ud UNUSED, const rf_call *call, json_t **output, rf_error *err)
{
    if (call->attempt < 2)
        return rf_error_set(err, -EAGAIN, true, "flaky", "attempt %u failed on purpose",
                            call->attempt);
    *output = json_string("recovered");
    return 0;
}

/* --- an asynchronous kind: its own io_uring operation ------------------------------------ */

struct tick {
    rf_op op;                    /* the timeout's completion lands here */
    struct __kernel_timespec ts; /* must live until the SQE is submitted */
    long ms;
};

static void tick_done(rf_op *op, int res, uint32_t flags UNUSED)
{
    struct tick *t = (struct tick *)op; /* op is the first member */
    rf_error err;

    if (res == -ETIME) {
        rf_task_succeed(op->task, json_pack("{s:I}", "ticked_ms", (json_int_t)t->ms));
        return;
    }
    rf_error_set(&err, res, res != -ECANCELED, res == -ECANCELED ? "canceled" : "io", "tick: %s",
                 strerror(-res));
    rf_task_fail(op->task, &err);
}

static int tick_start(void *ud UNUSED, rf_task *task, rf_error *err)
{
    struct tick *t = rf_task_data(task);
    const json_t *ms = json_object_get(rf_task_call(task)->params, "ms");
    struct io_uring_sqe *sqe;

    t->ms = json_is_integer(ms) ? (long)json_integer_value(ms) : 10;
    sqe = rf_task_sqe(task, &t->op, tick_done);
    if (!sqe)
        return rf_error_set(err, -EBUSY, true, "overload", "ring full");
    t->ts.tv_sec = t->ms / 1000;
    t->ts.tv_nsec = (t->ms % 1000) * 1000000;
    io_uring_prep_timeout(sqe, &t->ts, 0, 0);
    return 0;
}

static void tick_cancel(void *ud UNUSED, rf_task *task)
{
    struct tick *t = rf_task_data(task);
    rf_task_cancel_op(task, &t->op); /* tick_done then sees -ECANCELED and completes */
}

/* --- events and completion ------------------------------------------------------------------ */

static atomic_int finished;

static void on_event(void *ud UNUSED, const rf_event *ev)
{
    json_t *j = rf_event_json(ev);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(j);
}

static void on_done(void *ud UNUSED, rf_exec *ex)
{
    fprintf(stderr, "execution %s: %s\n", rf_exec_id(ex), rf_status_name(rf_exec_status(ex)));
    atomic_fetch_add(&finished, 1);
}

/* --- the graph ----------------------------------------------------------------------------------
 */

static int build(rf_engine *eng, rf_plan **plan, long tick_ms)
{
    rf_graph *g;
    rf_diag diag;
    rf_node_opts retry = {.retry = {.max_attempts = 3, .backoff_ms = 5, .max_backoff_ms = 20}};
    rf_node_opts report = {.trigger = RF_TRIGGER_ALL_DONE};
    int rc;

    rc = rf_graph_new("embed-demo", &g);
    if (rc < 0)
        return rc;
    json_t *cfg_greet = json_pack("{s:s}", "name", "ringflow");
    json_t *cfg_tick = json_pack("{s:i}", "ms", (int)tick_ms);
    int greet = rf_graph_add_node(g, "greet", "greet", cfg_greet, NULL);
    int tick = rf_graph_add_node(g, "tick", "tick", cfg_tick, NULL);
    int flaky = rf_graph_add_node(g, "flaky", "flaky", NULL, &retry);
    int join = rf_graph_add_node(g, "join", "noop", NULL, NULL);
    int rep = rf_graph_add_node(g, "report", "noop", NULL, &report);
    json_decref(cfg_greet);
    json_decref(cfg_tick);
    rf_graph_add_edge(g, greet, tick);
    rf_graph_add_edge(g, greet, flaky);
    rf_graph_add_edge(g, tick, join);
    rf_graph_add_edge(g, flaky, join);
    rf_graph_add_edge(g, join, rep);

    rf_diag_init(&diag);
    rc = rf_plan_compile(eng, g, &diag, plan);
    for (uint32_t i = 0; i < diag.count; i++)
        fprintf(stderr, "%s: %s: %s\n", diag.items[i].pointer, diag.items[i].code,
                diag.items[i].message);
    rf_diag_free(&diag);
    rf_graph_free(g);
    return rc;
}

int main(void)
{
    rf_config cfg = {.shards = 2, .no_pin_threads = true};
    rf_kind greet = {.name = "greet", .type = RF_KIND_SYNC, .run = greet_run};
    rf_kind flaky = {.name = "flaky", .type = RF_KIND_SYNC, .run = flaky_run};
    rf_kind tick = {.name = "tick",
                    .type = RF_KIND_ASYNC,
                    .start = tick_start,
                    .cancel = tick_cancel,
                    .task_bytes = sizeof(struct tick)};
    rf_callbacks cbs = {.event = on_event, .done = on_done};
    rf_submit_opts opts = {.callbacks = &cbs};
    rf_engine *eng;
    rf_plan *quick = NULL, *slow = NULL;
    rf_exec *ex[4] = {0};
    int rc, bad = 0;

    rc = rf_engine_new(&cfg, &eng);
    if (rc < 0) {
        fprintf(stderr, "rf_engine_new: %s\n", rf_strerror(rc));
        return 1;
    }
    if ((rc = rf_engine_register_kind(eng, &greet)) < 0 ||
        (rc = rf_engine_register_kind(eng, &flaky)) < 0 ||
        (rc = rf_engine_register_kind(eng, &tick)) < 0 || (rc = rf_engine_start(eng)) < 0 ||
        (rc = build(eng, &quick, 20)) < 0 || (rc = build(eng, &slow, 60000)) < 0) {
        fprintf(stderr, "setup: %s\n", rf_strerror(rc));
        rf_engine_free(eng);
        return 1;
    }

    for (int i = 0; i < 3; i++) {
        rc = rf_submit(eng, quick, json_pack("{s:i}", "n", i), &opts, &ex[i]);
        if (rc < 0)
            fprintf(stderr, "submit: %s\n", rf_strerror(rc)), bad = 1;
    }
    rc = rf_submit(eng, slow, NULL, &opts, &ex[3]);
    if (rc < 0)
        fprintf(stderr, "submit: %s\n", rf_strerror(rc)), bad = 1;

    for (int i = 0; i < 3; i++)
        if (ex[i] && (rf_exec_wait(ex[i], 10000) < 0 || rf_exec_status(ex[i]) != RF_ST_SUCCEEDED))
            bad = 1;
    if (ex[3]) {
        rf_exec_cancel(ex[3]); /* its 60 s tick is canceled at once */
        if (rf_exec_wait(ex[3], 5000) < 0 || rf_exec_status(ex[3]) != RF_ST_CANCELED)
            bad = 1;
    }
    for (int i = 0; i < 4; i++)
        rf_exec_release(ex[i]);
    rf_plan_release(quick);
    rf_plan_release(slow);
    rf_engine_stop(eng, 1000);
    rf_engine_free(eng);
    fprintf(stderr, "%d executions finished; %s\n", atomic_load(&finished), bad ? "FAILED" : "ok");
    return bad;
}
