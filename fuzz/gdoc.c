/*
 * fuzz/gdoc.c: graph documents, bytes to builder (rf_graph_parse) and bytes to plan
 * (rf_plan_from_json), against one engine created once and never started.
 *
 * Properties checked on every input (abort() when one fails):
 *   - a parse either succeeds with an empty diag, or fails with RF_EINVAL_GRAPH (or
 *     -ENOMEM) and a non-empty diag whose every item has a pointer that is empty or starts
 *     with '/', a non-empty code, and a message; pointer and message are valid UTF-8
 *     (json_string accepts them), so the HTTP layer can always serialize them;
 *   - a successful parse agrees with jansson: the bytes are a JSON object, and the builder
 *     has one node per element of `nodes`, with every edge between existing nodes;
 *   - rf_plan_from_json succeeds only where the parse did, and then the plan's node count
 *     is the document's `nodes` size; where the parse failed it fails with the very same
 *     number of problems (parsing is deterministic and compilation never runs);
 *   - everything is freed: the replay runs under ASan with leak checks.
 * The engine registers `http` and `transform` stand-ins when it lacks them, so the seeds'
 * kinds resolve and compilation goes past the kind check.
 */
#include "ringflow.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

static rf_engine *eng; /* created once, kept for the process */

static int null_run(void *ud, const rf_call *call, json_t **output, rf_error *err)
{
    (void)ud;
    (void)call;
    (void)err;
    *output = NULL;
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const extra[] = {"http", "transform"};
    rf_config cfg = {.shards = 1, .no_pin_threads = true, .log_level = RF_LOG_ERROR};

    (void)argc;
    (void)argv;
    if (rf_engine_new(&cfg, &eng) < 0)
        abort();
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
        rf_kind k = {.name = extra[i], .type = RF_KIND_SYNC, .run = null_run};
        int rc = rf_engine_register_kind(eng, &k);
        if (rc < 0 && rc != -EEXIST)
            abort();
    }
    return 0;
}

static bool utf8_ok(const char *s)
{
    json_t *j = json_string(s);

    json_decref(j);
    return j != NULL;
}

static void check_diag(const rf_diag *d)
{
    if (d->count == 0)
        abort();
    for (uint32_t i = 0; i < d->count; i++) {
        const rf_diag_item *it = &d->items[i];
        if (!it->pointer || !it->code || !it->message)
            abort();
        if (it->pointer[0] != '\0' && it->pointer[0] != '/')
            abort();
        if (it->code[0] == '\0' || !utf8_ok(it->pointer) || !utf8_ok(it->message))
            abort();
    }
}

/* Parse; returns the rc and sets *nodes to the document's `nodes` size on success. */
static int check_parse(const char *json, size_t size, size_t *nodes, uint32_t *problems)
{
    rf_graph *g = NULL;
    rf_diag d;
    json_t *doc;
    int rc;

    rf_diag_init(&d);
    rc = rf_graph_parse(eng, json, size, &d, &g);
    *problems = d.count;
    if (rc == 0) {
        doc = json_loadb(json, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        if (d.count != 0 || !g || !json_is_object(doc))
            abort();
        *nodes = json_array_size(json_object_get(doc, "nodes"));
        if (g->n != *nodes || g->doc == NULL)
            abort();
        for (uint32_t e = 0; e < g->m; e++)
            if ((g->edges[e] >> 32) >= g->n || (uint32_t)g->edges[e] >= g->n)
                abort();
        json_decref(doc);
        rf_graph_free(g);
    } else if (rc == RF_EINVAL_GRAPH) {
        check_diag(&d);
    } else if (rc != -ENOMEM) {
        abort();
    }
    rf_diag_free(&d);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    size_t nodes = 0;
    uint32_t parse_problems;
    rf_plan *p = NULL;
    rf_diag d;
    int parsed, rc;

    parsed = check_parse(json, size, &nodes, &parse_problems);
    rf_diag_init(&d);
    rc = rf_plan_from_json(eng, json, size, &d, &p);
    if (rc == 0) {
        if (parsed != 0 || d.count != 0 || rf_plan_nodes(p) != nodes)
            abort();
        rf_plan_release(p);
    } else if (rc == RF_EINVAL_GRAPH) {
        check_diag(&d);
        if (parsed == RF_EINVAL_GRAPH && d.count != parse_problems)
            abort();
    } else if (rc != -ENOMEM) {
        abort();
    }
    rf_diag_free(&d);
    return 0;
}
