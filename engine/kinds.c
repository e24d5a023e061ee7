/*
 * engine/kinds.c: the registry of node kinds and the built-in kinds of this version.
 *
 * The registry is a fixed array (kinds_max entries) filled between rf_engine_new() and
 * rf_engine_start() and read-only afterwards, so shards look kinds up without any lock.
 * Plans point at registry entries directly; lookups by name happen at compile time only.
 *
 * Built-ins:
 *   noop   sync; no config (null or {}); output null.
 *   fail   sync; config {message?: string, retryable?: bool, code?: string}; always fails.
 *   delay  async; config {ms: integer 0..86,400,000}; an io_uring timeout on the running
 *          shard's ring, never a sleeping thread; output null. Cancelling it removes the
 *          timeout, so a canceled delay ends at once.
 *   transform  sync; config {output: any JSON with templates}; output: the resolved
 *          `output` (shared, not copied).
 *   graph  async; a sub-execution of a registered graph (engine/subgraph.c).
 *
 * Validation runs on the config as written, before templates resolve: a value that is a
 * template string ("{{inputs.ms}}") is accepted where a number is expected and checked
 * again, resolved, when the attempt starts.
 */
#include "engine/rf.h"

#include <errno.h>
#include <string.h>

#include "engine/internal.h"

#define RF_DELAY_MS_MAX 86400000 /* one day */

/* --- registry ------------------------------------------------------------------------- */

static bool kind_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 64 || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

const struct rf_kind_ent *rf__kind_find(const rf_engine *eng, const char *name)
{
    for (uint32_t i = 0; i < eng->nkinds; i++)
        if (strcmp(eng->kinds[i].name, name) == 0)
            return &eng->kinds[i];
    return NULL;
}

int rf_engine_register_kind(rf_engine *eng, const rf_kind *k)
{
    struct rf_kind_ent *e;

    if (!eng || !k)
        return -EINVAL;
    if (atomic_load(&eng->state) != RF_ENG_NEW)
        return RF_ESTATE;
    if (!kind_name_ok(k->name))
        return RF_EKIND;
    if (k->type == RF_KIND_SYNC    ? !k->run
        : k->type == RF_KIND_ASYNC ? !k->start || !k->cancel
                                   : true)
        return RF_EKIND;
    if (k->task_bytes > RF_TASK_BYTES_MAX)
        return RF_EKIND;
    if (rf__kind_find(eng, k->name))
        return -EEXIST;
    if (eng->nkinds >= eng->cfg.kinds_max)
        return RF_ELIMIT;
    e = &eng->kinds[eng->nkinds];
    e->k = *k;
    snprintf(e->name, sizeof(e->name), "%s", k->name);
    e->k.name = e->name;
    e->index = eng->nkinds++;
    if (k->type == RF_KIND_ASYNC && k->task_bytes > eng->task_bytes_max)
        eng->task_bytes_max = k->task_bytes;
    return 0;
}

/* --- noop ------------------------------------------------------------------------------- */

static int noop_run(void *ud, const rf_call *call, json_t **output, rf_error *err)
{
    *output = NULL;
    return 0;
}

static int noop_validate(void *ud, const json_t *config, rf_error *err)
{
    if (!config || json_is_null(config) ||
        (json_is_object(config) && json_object_size(config) == 0))
        return 0;
    return rf_error_set(err, -EINVAL, false, "invalid_config", "noop takes no config");
}

/* --- fail ------------------------------------------------------------------------------- */

static int fail_validate(void *ud, const json_t *config, rf_error *err)
{
    const char *key;
    json_t *v;

    if (!config || json_is_null(config))
        return 0;
    if (!json_is_object(config))
        return rf_error_set(err, -EINVAL, false, "invalid_config",
                            "fail: config must be an object");
    json_object_foreach((json_t *)config, key, v)
    {
        if (strcmp(key, "message") == 0 || strcmp(key, "code") == 0) {
            if (!json_is_string(v))
                return rf_error_set(err, -EINVAL, false, "invalid_config",
                                    "fail: \"%s\" must be a string", key);
        } else if (strcmp(key, "retryable") == 0) {
            if (!json_is_boolean(v))
                return rf_error_set(err, -EINVAL, false, "invalid_config",
                                    "fail: \"retryable\" must be a boolean");
        } else {
            return rf_error_set(err, -EINVAL, false, "invalid_config", "fail: unknown field \"%s\"",
                                key);
        }
    }
    return 0;
}

static int fail_run(void *ud, const rf_call *call, json_t **output, rf_error *err)
{
    const json_t *p = call->params;
    const char *msg = json_string_value(json_object_get(p, "message"));
    const char *code = json_string_value(json_object_get(p, "code"));
    bool retryable = json_is_true(json_object_get(p, "retryable"));

    return rf_error_set(err, -EIO, retryable, code ? code : "failed", "%s",
                        msg ? msg : "the fail kind always fails");
}

/* --- delay ------------------------------------------------------------------------------ */

struct delay_state {
    rf_op op;
    struct __kernel_timespec ts;
};

static bool is_template(const json_t *v)
{
    return json_is_string(v) && strstr(json_string_value(v), "{{") != NULL;
}

static int delay_validate(void *ud, const json_t *config, rf_error *err)
{
    const char *key;
    json_t *v;
    bool has_ms = false;

    if (!json_is_object(config))
        return rf_error_set(err, -EINVAL, false, "invalid_config",
                            "delay: config must be an object {\"ms\": integer}");
    json_object_foreach((json_t *)config, key, v)
    {
        if (strcmp(key, "ms") != 0)
            return rf_error_set(err, -EINVAL, false, "invalid_config",
                                "delay: unknown field \"%s\"", key);
        if (is_template(v)) {
            has_ms = true;
            continue;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > RF_DELAY_MS_MAX)
            return rf_error_set(err, -EINVAL, false, "invalid_config",
                                "delay: \"ms\" must be an integer from 0 to %d", RF_DELAY_MS_MAX);
        has_ms = true;
    }
    if (!has_ms)
        return rf_error_set(err, -EINVAL, false, "invalid_config", "delay: \"ms\" is required");
    return 0;
}

static void delay_cqe(rf_op *op, int res, uint32_t flags)
{
    rf_error err;

    if (res == -ETIME) {
        rf_task_succeed(op->task, NULL);
    } else if (res == -ECANCELED) {
        rf_error_set(&err, -ECANCELED, false, "canceled", "delay canceled");
        rf_task_fail(op->task, &err);
    } else {
        rf_error_set(&err, res, true, "io", "delay timeout: %s", rf_strerror(res));
        rf_task_fail(op->task, &err);
    }
}

static int delay_start(void *ud, rf_task *task, rf_error *err)
{
    struct delay_state *st = rf_task_data(task);
    const json_t *ms = json_object_get(rf_task_call(task)->params, "ms");
    json_int_t v = json_integer_value(ms);
    struct io_uring_sqe *sqe;

    if (!json_is_integer(ms) || v < 0 || v > RF_DELAY_MS_MAX)
        return rf_error_set(err, -EINVAL, false, "invalid_params",
                            "delay: \"ms\" must be an integer from 0 to %d", RF_DELAY_MS_MAX);
    sqe = rf_task_sqe(task, &st->op, delay_cqe);
    if (!sqe)
        return rf_error_set(err, -EBUSY, true, "overload", "delay: submission queue full");
    st->ts.tv_sec = v / 1000;
    st->ts.tv_nsec = (v % 1000) * 1000000;
    io_uring_prep_timeout(sqe, &st->ts, 0, 0);
    return 0;
}

static void delay_cancel(void *ud, rf_task *task)
{
    struct delay_state *st = rf_task_data(task);

    /* If no SQE is free the timeout simply runs out; the attempt still completes. */
    (void)rf_task_cancel_op(task, &st->op);
}

/* --- transform ---------------------------------------------------------------------------- */

static int transform_validate(void *ud, const json_t *config, rf_error *err)
{
    const char *key;
    json_t *v;

    if (!json_is_object(config) || !json_object_get(config, "output"))
        return rf_error_set(err, -EINVAL, false, "invalid_config",
                            "transform: config must be an object {\"output\": any JSON}");
    json_object_foreach((json_t *)config, key, v)
    {
        if (strcmp(key, "output") != 0)
            return rf_error_set(err, -EINVAL, false, "invalid_config",
                                "transform: unknown field \"%s\"", key);
    }
    return 0;
}

static int transform_run(void *ud, const rf_call *call, json_t **output, rf_error *err)
{
    json_t *o = json_object_get(call->params, "output");

    if (!o)
        return rf_error_set(err, -EINVAL, false, "invalid_params",
                            "transform: params have no \"output\"");
    *output = json_incref(o);
    return 0;
}

int rf__register_builtin_kinds(rf_engine *eng)
{
    static const rf_kind builtins[] = {
        {.name = "noop", .type = RF_KIND_SYNC, .run = noop_run, .validate = noop_validate},
        {.name = "fail", .type = RF_KIND_SYNC, .run = fail_run, .validate = fail_validate},
        {.name = "delay",
         .type = RF_KIND_ASYNC,
         .start = delay_start,
         .cancel = delay_cancel,
         .validate = delay_validate,
         .task_bytes = sizeof(struct delay_state)},
        {.name = "transform",
         .type = RF_KIND_SYNC,
         .run = transform_run,
         .validate = transform_validate},
    };
    for (size_t i = 0; i < RF_ARRAY_LEN(builtins); i++) {
        int rc = rf_engine_register_kind(eng, &builtins[i]);
        if (rc < 0)
            return rc;
    }
    int rc = rf__register_graph_kind(eng);
    return rc < 0 ? rc : rf__http_kind_register(eng);
}
