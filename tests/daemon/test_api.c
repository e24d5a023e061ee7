/*
 * tests/daemon/test_api.c: the REST API of ringflowd (spec/api.md, docs/api.md) against a
 * real daemon on a loopback port.
 *
 * One daemon serves the main group (started in the group setup, stopped in its teardown,
 * whatever the tests did); daemons with other flags are started only where the flags
 * matter: --long-poll-max 300ms with --inflight-per-shard 1 (the long-poll cap and the 429
 * back-pressure), and --long-poll-max 0. The graphs are those of tests/daemon/graphs
 * (chain3, slow, failing, wide), registered by the daemon at start-up.
 *
 * What is checked: graph registration and versions (201/200, graph_hash, ?version=,
 * 404, 422 with every problem's pointer/code/message, 400 on malformed JSON, listing with
 * cursors); submissions (the 202 body, 422 pointers into the inputs, 400 naming an unknown
 * field, 404, idempotency keys, tags); execution listing (newest first, filters, limits,
 * a cursor that continues without overlap or loss, also for executions created in the
 * same millisecond); the hydrated document; event pages (seq from 1 without gaps) and
 * long polls (woken by a new event, answered at once when done, answered empty at
 * wait_ms, capped by --long-poll-max); results; cancellation; and the robustness of long
 * polls (clients that vanish, 200 parked at once).
 *
 * Every wait has a deadline; timing assertions leave room for ASan builds (bounds of
 * about 3x the nominal time) while still telling "woken by the event" from "timed out".
 *
 * RF_TEST_CONCURRENT: also run against the TSan build of the daemon (make test-tsan).
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/support/daemon.h"

#define ID_LEN          26u   /* execution ids: 26 Crockford base32 characters */
#define TOKEN_LEN       32u   /* the token: 32 lowercase hex digits */
#define TS_LEN          27u   /* 2026-11-22T12:00:00.123456Z */
#define WAIT_MS         10000 /* the longest any single wait in this file may take */
#define PATH_BYTES      512u
#define BODY_BYTES      4096u
#define LIST_RUNS       7u    /* executions in the listing test */
#define BURST_RUNS      60u   /* pipelined submissions in the same-millisecond cursor test */
#define PAGES_MAX       200u  /* pages a cursor walk may take before it counts as a loop */
#define MANY_POLLS      200u  /* concurrent long polls */
#define VANISHING_POLLS 40u   /* long polls whose client goes away */
#define WIDE_ITEMS      5u

static struct rfd *cur; /* the daemon the running group talks to */

/* --- time and small helpers ------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static bool is_lower_hex(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool is_id(const char *s)
{
    static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";

    if (!s || strlen(s) != ID_LEN)
        return false;
    for (size_t i = 0; i < ID_LEN; i++)
        if (!strchr(b32, s[i]))
            return false;
    return true;
}

/* RFC 3339 UTC with microseconds, as the API writes every time. */
static bool is_ts(const json_t *v)
{
    const char *s = json_string_value(v);
    int y, mo, d, h, mi, se;
    long us;
    int n = 0;

    return s && strlen(s) == TS_LEN &&
           sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%6ldZ%n", &y, &mo, &d, &h, &mi, &se, &us, &n) ==
               7 &&
           n == (int)TS_LEN;
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static json_int_t jint(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* One request on a fresh connection to `cur`; asserts the status; returns the parsed
 * body (new reference; NULL only for an empty body). */
static json_t *call_on(struct rfd *d, const char *method, const char *path, const char *body,
                       int want)
{
    struct rfd_resp r;
    json_t *j;

    assert_int_equal(rfd_request(d, method, path, body, &r), 0);
    if (r.status != want)
        print_message("%s %s: want %d, got:\n%s%s\n", method, path, want, r.head, r.body);
    assert_int_equal(r.status, want);
    j = r.body_len ? rfd_json(&r) : NULL;
    if (r.body_len)
        assert_non_null(j);
    rfd_resp_free(&r);
    return j;
}

static json_t *call(const char *method, const char *path, const char *body, int want)
{
    return call_on(cur, method, path, body, want);
}

/* An error body: {"error": {"code": want, "message": non-empty, "details": [...]}}. */
static json_t *check_error(json_t *j, const char *code)
{
    json_t *e = json_object_get(j, "error");

    assert_non_null(e);
    assert_string_equal(jstr(e, "code"), code);
    assert_non_null(jstr(e, "message"));
    assert_true(strlen(jstr(e, "message")) > 0);
    assert_true(json_is_array(json_object_get(e, "details")));
    return json_object_get(e, "details");
}

static void expect_error(const char *method, const char *path, const char *body, int status,
                         const char *code)
{
    json_t *j = call(method, path, body, status);

    check_error(j, code);
    json_decref(j);
}

/* True when some entry of details has this pointer (and this code, unless NULL); every
 * entry must carry pointer, code and message. */
static bool has_detail(const json_t *details, const char *pointer, const char *code)
{
    size_t i;
    json_t *e;
    bool found = false;

    json_array_foreach(details, i, e) {
        assert_non_null(jstr(e, "pointer"));
        assert_non_null(jstr(e, "code"));
        assert_non_null(jstr(e, "message"));
        if (strcmp(jstr(e, "pointer"), pointer) == 0 && (!code || strcmp(jstr(e, "code"), code) == 0))
            found = true;
    }
    return found;
}

static void dump_details(const json_t *details)
{
    char *s = json_dumps(details, JSON_COMPACT);

    print_message("details: %s\n", s ? s : "?");
    free(s);
}

static char *submit_body(const char *graph, const char *body, int want)
{
    char path[PATH_BYTES];
    json_t *j;
    char *id;

    snprintf(path, sizeof(path), "/v1/graphs/%s/executions", graph);
    j = call("POST", path, body, want);
    assert_true(is_id(jstr(j, "id")));
    id = strdup(jstr(j, "id"));
    json_decref(j);
    return id;
}

static char *submit(const char *graph, const char *inputs)
{
    char *id = rfd_submit(cur, graph, inputs);

    assert_non_null(id);
    return id;
}

/* GET .../result with wait_ms, repeated until terminal or the deadline; the final body. */
static json_t *wait_result_on(struct rfd *d, const char *id, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    char path[PATH_BYTES];

    snprintf(path, sizeof(path), "/v1/executions/%s/result?wait_ms=1000", id);
    for (;;) {
        struct rfd_resp r;
        assert_int_equal(rfd_request(d, "GET", path, NULL, &r), 0);
        assert_true(r.status == 200 || r.status == 202);
        json_t *j = rfd_json(&r);
        int st = r.status;
        rfd_resp_free(&r);
        assert_non_null(j);
        if (st == 200)
            return j;
        json_decref(j);
        if (now_ms() > deadline)
            fail_msg("execution %s not finished after %d ms", id, timeout_ms);
    }
}

static json_t *wait_result(const char *id)
{
    return wait_result_on(cur, id, WAIT_MS);
}

static void expect_status(const char *id, const char *status)
{
    json_t *j = wait_result(id);

    assert_string_equal(jstr(j, "status"), status);
    json_decref(j);
}

/* Events of id after `after` (one page, no wait). */
static json_t *events_on(struct rfd *d, const char *id, const char *query)
{
    char path[PATH_BYTES];

    snprintf(path, sizeof(path), "/v1/executions/%s/events%s", id, query);
    return call_on(d, "GET", path, NULL, 200);
}

/* Wait (bounded) until the execution has at least n events. */
static void wait_events_on(struct rfd *d, const char *id, size_t n)
{
    int64_t deadline = now_ms() + WAIT_MS;

    for (;;) {
        json_t *j = events_on(d, id, "?limit=1000");
        size_t have = json_array_size(json_object_get(j, "events"));
        json_decref(j);
        if (have >= n)
            return;
        if (now_ms() > deadline)
            fail_msg("execution %s has %zu events, not %zu, after %d ms", id, have, n, WAIT_MS);
        sleep_ms(5);
    }
}

/* A `slow` execution whose delay node is running: its events 1..3 are execution.queued,
 * execution.started and node.started (wait). */
static char *slow_running_on(struct rfd *d, int ms)
{
    char inputs[64];
    char *id;

    snprintf(inputs, sizeof(inputs), "{\"ms\": %d}", ms);
    id = rfd_submit(d, "slow", inputs);
    assert_non_null(id);
    wait_events_on(d, id, 3);
    json_t *j = events_on(d, id, "?after=2&limit=1");
    json_t *e = json_array_get(json_object_get(j, "events"), 0);
    assert_string_equal(jstr(e, "type"), "node.started");
    assert_string_equal(jstr(e, "node"), "wait");
    json_decref(j);
    return id;
}

static void cancel_on(struct rfd *d, const char *id)
{
    char path[PATH_BYTES];

    snprintf(path, sizeof(path), "/v1/executions/%s/cancel", id);
    json_decref(call_on(d, "POST", path, NULL, 202));
}

/* --- group setup ------------------------------------------------------------------------- */

static struct rfd d_main, d_limits, d_zero;

static int start_daemon(struct rfd *d, const char *const *extra)
{
    if (rfd_start(d, RF_BUILD_DIR, extra) < 0)
        return -1;
    cur = d;
    return 0;
}

static int stop_daemon(struct rfd *d)
{
    int rc = rfd_stop(d);

    if (rc != 0)
        print_message("ringflowd exited with %d\n", rc);
    return rc == 0 ? 0 : -1;
}

static int main_setup(void **state)
{
    (void)state;
    return start_daemon(&d_main, NULL);
}

static int main_teardown(void **state)
{
    (void)state;
    return stop_daemon(&d_main);
}

static int limits_setup(void **state)
{
    static const char *const extra[] = {"--long-poll-max", "300ms", "--inflight-per-shard",
                                        "1", NULL};
    (void)state;
    return start_daemon(&d_limits, extra);
}

static int limits_teardown(void **state)
{
    (void)state;
    return stop_daemon(&d_limits);
}

static int zero_setup(void **state)
{
    static const char *const extra[] = {"--long-poll-max", "0", NULL};
    (void)state;
    return start_daemon(&d_zero, extra);
}

static int zero_teardown(void **state)
{
    (void)state;
    return stop_daemon(&d_zero);
}

/* --- graphs ------------------------------------------------------------------------------ */

#define DOC_V1 "{\"name\": \"t-put\", \"description\": \"one\", \"nodes\": [{\"id\": \"x\", \"kind\": \"noop\"}]}"
#define DOC_V1_RESPACED                                                                        \
    "{\"nodes\":[{\"kind\":\"noop\",\"id\":\"x\"}],\"description\":\"one\",\"name\":\"t-put\"}"
#define DOC_V2 "{\"name\": \"t-put\", \"description\": \"two\", \"nodes\": [{\"id\": \"x\", \"kind\": \"noop\"}]}"

static void test_graph_put_versions(void **state)
{
    char hash1[40], hash2[40];
    json_t *j;

    (void)state;
    j = call("PUT", "/v1/graphs/t-put", DOC_V1, 201);
    assert_string_equal(jstr(j, "name"), "t-put");
    assert_int_equal(jint(j, "version"), 1);
    assert_true(is_lower_hex(jstr(j, "graph_hash"), 32));
    snprintf(hash1, sizeof(hash1), "%s", jstr(j, "graph_hash"));
    json_decref(j);

    /* The same content (byte for byte, then reordered and respaced): 200, version 1. */
    j = call("PUT", "/v1/graphs/t-put", DOC_V1, 200);
    assert_int_equal(jint(j, "version"), 1);
    assert_string_equal(jstr(j, "graph_hash"), hash1);
    json_decref(j);
    j = call("PUT", "/v1/graphs/t-put", DOC_V1_RESPACED, 200);
    assert_int_equal(jint(j, "version"), 1);
    json_decref(j);

    /* Changed content: version 2 with another hash; v1's content again is still v1. */
    j = call("PUT", "/v1/graphs/t-put", DOC_V2, 201);
    assert_int_equal(jint(j, "version"), 2);
    snprintf(hash2, sizeof(hash2), "%s", jstr(j, "graph_hash"));
    assert_string_not_equal(hash1, hash2);
    json_decref(j);
    j = call("PUT", "/v1/graphs/t-put", DOC_V1, 200);
    assert_int_equal(jint(j, "version"), 1);
    json_decref(j);

    /* GET: the latest by default, ?version=N for another; the document plus version and
     * graph_hash. */
    j = call("GET", "/v1/graphs/t-put", NULL, 200);
    assert_string_equal(jstr(j, "name"), "t-put");
    assert_string_equal(jstr(j, "description"), "two");
    assert_int_equal(jint(j, "version"), 2);
    assert_string_equal(jstr(j, "graph_hash"), hash2);
    assert_int_equal(json_array_size(json_object_get(j, "nodes")), 1);
    assert_true(is_ts(json_object_get(j, "created_at")));
    json_decref(j);
    j = call("GET", "/v1/graphs/t-put?version=1", NULL, 200);
    assert_string_equal(jstr(j, "description"), "one");
    assert_int_equal(jint(j, "version"), 1);
    assert_string_equal(jstr(j, "graph_hash"), hash1);
    json_decref(j);

    expect_error("GET", "/v1/graphs/t-put?version=9", NULL, 404, "not_found");
    expect_error("GET", "/v1/graphs/t-put?version=0", NULL, 400, "bad_query");
    expect_error("GET", "/v1/graphs/t-put?version=x", NULL, 400, "bad_query");
    expect_error("GET", "/v1/graphs/no-such-graph", NULL, 404, "not_found");
    expect_error("DELETE", "/v1/graphs/t-put", NULL, 405, "method_not_allowed");
    /* A document without a name takes the URL's. */
    j = call("PUT", "/v1/graphs/t-noname", "{\"nodes\": [{\"id\": \"x\", \"kind\": \"noop\"}]}",
             201);
    assert_string_equal(jstr(j, "name"), "t-noname");
    json_decref(j);
}

static void expect_invalid(const char *name, const char *doc, const char *pointer,
                           const char *code)
{
    char path[PATH_BYTES];
    json_t *j, *details;

    snprintf(path, sizeof(path), "/v1/graphs/%s", name);
    j = call("PUT", path, doc, 422);
    details = check_error(j, "invalid_graph");
    assert_true(json_array_size(details) >= 1);
    if (!has_detail(details, pointer, code)) {
        dump_details(details);
        fail_msg("no detail %s %s", pointer, code);
    }
    json_decref(j);
    /* Nothing invalid is stored. */
    expect_error("GET", path, NULL, 404, "not_found");
}

static void test_graph_invalid(void **state)
{
    (void)state;
    expect_invalid("t-cycle",
                   "{\"name\": \"t-cycle\", \"nodes\": ["
                   "{\"id\": \"a\", \"kind\": \"noop\", \"deps\": [\"b\"]},"
                   "{\"id\": \"b\", \"kind\": \"noop\", \"deps\": [\"a\"]}]}",
                   "/nodes/0", "cycle");
    expect_invalid("t-kind", "{\"name\": \"t-kind\", \"nodes\": [{\"id\": \"a\", \"kind\": \"nope\"}]}",
                   "/nodes/0/kind", "unknown_kind");
    expect_invalid("t-dep",
                   "{\"name\": \"t-dep\", \"nodes\": ["
                   "{\"id\": \"a\", \"kind\": \"noop\"},"
                   "{\"id\": \"b\", \"kind\": \"noop\", \"deps\": [\"a\", \"zz\"]}]}",
                   "/nodes/1/deps/1", "unknown_dep");
    expect_invalid("t-mismatch", "{\"name\": \"other\", \"nodes\": [{\"id\": \"a\", \"kind\": \"noop\"}]}",
                   "/name", "name_mismatch");
    /* Several problems at once: every one is listed. */
    {
        json_t *j = call("PUT", "/v1/graphs/t-multi",
                         "{\"name\": \"t-multi\", \"bogus\": 1, \"nodes\": ["
                         "{\"id\": \"a\", \"kind\": \"noop\", \"deps\": [\"q\"]}]}",
                         422);
        json_t *details = check_error(j, "invalid_graph");
        if (!has_detail(details, "/bogus", NULL) || !has_detail(details, "/nodes/0/deps/0", "unknown_dep")) {
            dump_details(details);
            fail_msg("not every problem was listed");
        }
        json_decref(j);
    }
    expect_error("PUT", "/v1/graphs/t-bad", "{\"name\": ", 400, "malformed_json");
    expect_error("PUT", "/v1/graphs/t-bad", "[1, 2]", 400, "bad_body");
    expect_error("PUT", "/v1/graphs/t-bad", "", 400, "empty_body");
    expect_error("GET", "/v1/graphs/t-bad", NULL, 404, "not_found");
}

static void test_graph_media_type(void **state)
{
    char req[512];
    struct rfd_resp r;
    int fd;

    (void)state;
    fd = rfd_connect(cur);
    assert_true(fd >= 0);
    snprintf(req, sizeof(req),
             "PUT /v1/graphs/t-media HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
             "Content-Length: 2\r\n\r\n{}");
    assert_int_equal(rfd_send_str(fd, req), 0);
    assert_int_equal(rfd_read_resp(fd, &r, WAIT_MS, false), 0);
    assert_int_equal(r.status, 415);
    json_t *j = rfd_json(&r);
    check_error(j, "unsupported_media_type");
    json_decref(j);
    rfd_resp_free(&r);
    rfd_close(fd);
}

static void put_tiny(const char *name)
{
    char path[PATH_BYTES], doc[BODY_BYTES];

    snprintf(path, sizeof(path), "/v1/graphs/%s", name);
    snprintf(doc, sizeof(doc), "{\"name\": \"%s\", \"nodes\": [{\"id\": \"x\", \"kind\": \"noop\"}]}",
             name);
    json_decref(call("PUT", path, doc, 201));
}

static void test_graph_list(void **state)
{
    json_t *all, *arr, *e;
    size_t i, n, got = 0;
    char after[128] = "", path[PATH_BYTES];

    (void)state;
    put_tiny("lst-a");
    put_tiny("lst-b");
    put_tiny("lst-c");
    json_decref(call("PUT", "/v1/graphs/lst-b",
                     "{\"name\": \"lst-b\", \"description\": \"v2\", \"nodes\": [{\"id\": \"x\", "
                     "\"kind\": \"noop\"}]}",
                     201));

    all = call("GET", "/v1/graphs?limit=500", NULL, 200);
    arr = json_object_get(all, "graphs");
    n = json_array_size(arr);
    assert_true(n >= 8); /* chain3 failing fetch slow wide lst-a lst-b lst-c */
    assert_true(json_is_null(json_object_get(all, "next")));
    json_array_foreach(arr, i, e) {
        assert_non_null(jstr(e, "name"));
        assert_true(jint(e, "latest_version") >= 1);
        assert_true(is_ts(json_object_get(e, "created_at")));
        assert_true(is_ts(json_object_get(e, "updated_at")));
        if (i > 0) /* by name */
            assert_true(strcmp(jstr(json_array_get(arr, i - 1), "name"), jstr(e, "name")) < 0);
        if (strcmp(jstr(e, "name"), "lst-b") == 0) {
            assert_int_equal(jint(e, "latest_version"), 2);
            assert_true(strcmp(jstr(e, "created_at"), jstr(e, "updated_at")) < 0);
        }
        if (strcmp(jstr(e, "name"), "chain3") == 0) {
            assert_int_equal(jint(e, "latest_version"), 1);
            assert_string_equal(jstr(e, "created_at"), jstr(e, "updated_at"));
        }
    }

    /* Pages of 2 walk the same list, each continuing after the previous `next`. */
    for (unsigned page = 0; page < PAGES_MAX; page++) {
        snprintf(path, sizeof(path), "/v1/graphs?limit=2%s%s", after[0] ? "&after=" : "", after);
        json_t *p = call("GET", path, NULL, 200);
        json_t *pa = json_object_get(p, "graphs");
        assert_true(json_array_size(pa) >= 1 && json_array_size(pa) <= 2);
        json_array_foreach(pa, i, e) {
            assert_true(got < n);
            assert_string_equal(jstr(e, "name"), jstr(json_array_get(arr, got), "name"));
            got++;
        }
        json_t *next = json_object_get(p, "next");
        if (json_is_null(next)) {
            json_decref(p);
            break;
        }
        assert_string_equal(json_string_value(next), jstr(json_array_get(pa, 1), "name"));
        snprintf(after, sizeof(after), "%s", json_string_value(next));
        json_decref(p);
    }
    assert_int_equal(got, n);
    json_decref(all);

    e = call("GET", "/v1/graphs?after=lst-a&limit=1", NULL, 200);
    assert_string_equal(jstr(json_array_get(json_object_get(e, "graphs"), 0), "name"), "lst-b");
    assert_string_equal(jstr(e, "next"), "lst-b");
    json_decref(e);
    expect_error("GET", "/v1/graphs?limit=0", NULL, 400, "bad_query");
    expect_error("GET", "/v1/graphs?limit=501", NULL, 400, "bad_query");
    expect_error("POST", "/v1/graphs", "{}", 405, "method_not_allowed");
}

/* --- submissions ------------------------------------------------------------------------- */

static void test_submit_shape(void **state)
{
    char want[PATH_BYTES];
    struct rfd_resp r;
    json_t *j, *links;
    const char *id;

    (void)state;
    assert_int_equal(rfd_request(cur, "POST", "/v1/graphs/chain3/executions",
                                 "{\"inputs\": {\"n\": 5}}", &r),
                     0);
    assert_int_equal(r.status, 202);
    assert_non_null(rfd_header(&r, "Content-Type", want, sizeof(want)));
    assert_string_equal(want, "application/json");
    j = rfd_json(&r);
    rfd_resp_free(&r);
    assert_non_null(j);
    id = jstr(j, "id");
    assert_true(is_id(id));
    assert_string_equal(jstr(j, "graph"), "chain3");
    assert_int_equal(jint(j, "version"), 1);
    assert_string_equal(jstr(j, "status"), "queued");
    assert_true(is_lower_hex(jstr(j, "token"), TOKEN_LEN));
    links = json_object_get(j, "links");
    snprintf(want, sizeof(want), "/v1/executions/%s", id);
    assert_string_equal(jstr(links, "self"), want);
    snprintf(want, sizeof(want), "/v1/executions/%s/events", id);
    assert_string_equal(jstr(links, "events"), want);
    snprintf(want, sizeof(want), "/v1/executions/%s/result", id);
    assert_string_equal(jstr(links, "result"), want);
    snprintf(want, sizeof(want), "/v1/ws?execution_id=%s", id);
    assert_string_equal(jstr(links, "ws"), want);

    json_t *res = wait_result(id);
    assert_string_equal(jstr(res, "status"), "succeeded");
    assert_int_equal(jint(json_object_get(res, "output"), "n"), 5);
    assert_true(json_is_null(json_object_get(res, "error")));
    json_decref(res);
    json_decref(j);

    /* An empty body is {}: every input takes its default. priority is accepted. */
    char *id2 = submit_body("chain3", "{}", 202);
    res = wait_result(id2);
    assert_int_equal(jint(json_object_get(res, "output"), "n"), 1);
    json_decref(res);
    free(id2);
    id2 = submit_body("chain3", "{\"inputs\": {}, \"priority\": -100, \"version\": 1}", 202);
    expect_status(id2, "succeeded");
    free(id2);
}

static void test_submit_invalid(void **state)
{
    json_t *j, *d;

    (void)state;
    j = call("POST", "/v1/graphs/chain3/executions", "{\"inputs\": {\"n\": \"five\"}}", 422);
    d = check_error(j, "invalid_inputs");
    if (!has_detail(d, "/inputs/n", NULL)) {
        dump_details(d);
        fail_msg("no /inputs/n");
    }
    json_decref(j);
    j = call("POST", "/v1/graphs/fetch/executions", "{\"inputs\": {}}", 422);
    d = check_error(j, "invalid_inputs");
    if (!has_detail(d, "/inputs/url", NULL)) {
        dump_details(d);
        fail_msg("no /inputs/url");
    }
    json_decref(j);

    /* The envelope: an unknown field is named; wrong types are 400 with their pointer. */
    j = call("POST", "/v1/graphs/chain3/executions", "{\"inputs\": {}, \"bogus_field\": 1}", 400);
    d = check_error(j, "bad_request");
    assert_true(has_detail(d, "/bogus_field", "unknown_field"));
    assert_non_null(strstr(jstr(json_array_get(d, 0), "message"), "bogus_field"));
    json_decref(j);
    j = call("POST", "/v1/graphs/chain3/executions", "{\"inputs\": {}, \"version\": \"1\"}", 400);
    assert_true(has_detail(check_error(j, "bad_request"), "/version", NULL));
    json_decref(j);
    j = call("POST", "/v1/graphs/chain3/executions", "{\"inputs\": [1]}", 400);
    assert_true(has_detail(check_error(j, "bad_request"), "/inputs", NULL));
    json_decref(j);
    j = call("POST", "/v1/graphs/chain3/executions", "{\"inputs\": {}, \"priority\": 101}", 400);
    assert_true(has_detail(check_error(j, "bad_request"), "/priority", NULL));
    json_decref(j);
    j = call("POST", "/v1/graphs/chain3/executions", "{\"inputs\": {}, \"tags\": [\"\"]}", 400);
    assert_true(has_detail(check_error(j, "bad_request"), "/tags", NULL));
    json_decref(j);
    j = call("POST", "/v1/graphs/chain3/executions", "{\"inputs\": {}, \"idempotency_key\": 7}",
             400);
    assert_true(has_detail(check_error(j, "bad_request"), "/idempotency_key", NULL));
    json_decref(j);

    expect_error("POST", "/v1/graphs/chain3/executions", "{\"inputs\": ", 400, "malformed_json");
    expect_error("POST", "/v1/graphs/chain3/executions", "{\"inputs\": {}, \"version\": 9}", 404,
                 "not_found");
    expect_error("POST", "/v1/graphs/no-such-graph/executions", "{\"inputs\": {}}", 404,
                 "not_found");
    expect_error("GET", "/v1/graphs/chain3/executions", NULL, 405, "method_not_allowed");
}

static void test_idempotency(void **state)
{
    const char *body = "{\"inputs\": {\"n\": 3}, \"idempotency_key\": \"idem-1\"}";
    char *a, *b, *c, *e;
    json_t *j;

    (void)state;
    a = submit_body("chain3", body, 202);
    b = submit_body("chain3", body, 200);
    assert_string_equal(a, b);
    /* The key names the first execution, whatever the rest of the body says. */
    c = submit_body("chain3", "{\"inputs\": {\"n\": 4}, \"idempotency_key\": \"idem-1\"}", 200);
    assert_string_equal(a, c);
    /* Another graph with the same key, or another key: a new execution. */
    e = submit_body("slow", "{\"inputs\": {\"ms\": 1}, \"idempotency_key\": \"idem-1\"}", 202);
    assert_string_not_equal(a, e);
    free(c);
    c = submit_body("chain3", "{\"inputs\": {\"n\": 3}, \"idempotency_key\": \"idem-2\"}", 202);
    assert_string_not_equal(a, c);

    j = wait_result(a);
    assert_int_equal(jint(json_object_get(j, "output"), "n"), 3);
    json_decref(j);
    /* Still the same after it finished; the 200 body has the same shape as the 202. */
    j = call("POST", "/v1/graphs/chain3/executions", body, 200);
    assert_string_equal(jstr(j, "id"), a);
    assert_string_equal(jstr(j, "status"), "succeeded");
    assert_true(is_lower_hex(jstr(j, "token"), TOKEN_LEN));
    assert_non_null(jstr(json_object_get(j, "links"), "ws"));
    json_decref(j);
    expect_status(e, "succeeded");
    expect_status(c, "succeeded");
    free(a);
    free(b);
    free(c);
    free(e);
}

static void test_tags(void **state)
{
    char *a, *b, path[PATH_BYTES];
    json_t *j, *arr, *tags;

    (void)state;
    a = submit_body("chain3", "{\"inputs\": {}, \"tags\": [\"tg-alpha\", \"tg-both\"]}", 202);
    b = submit_body("chain3", "{\"inputs\": {}, \"tags\": [\"tg-beta\", \"tg-both\"]}", 202);
    expect_status(a, "succeeded");
    expect_status(b, "succeeded");

    j = call("GET", "/v1/executions?tag=tg-alpha", NULL, 200);
    arr = json_object_get(j, "executions");
    assert_int_equal(json_array_size(arr), 1);
    assert_string_equal(jstr(json_array_get(arr, 0), "id"), a);
    json_decref(j);
    j = call("GET", "/v1/executions?tag=tg-alpha&graph=chain3&status=succeeded", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "executions")), 1);
    json_decref(j);
    /* The document carries the tags as submitted. */
    snprintf(path, sizeof(path), "/v1/executions/%s", a);
    j = call("GET", path, NULL, 200);
    tags = json_object_get(j, "tags");
    assert_int_equal(json_array_size(tags), 2);
    assert_string_equal(json_string_value(json_array_get(tags, 0)), "tg-alpha");
    assert_string_equal(json_string_value(json_array_get(tags, 1)), "tg-both");
    json_decref(j);
    j = call("GET", "/v1/executions?tag=tg-both", NULL, 200);
    arr = json_object_get(j, "executions");
    assert_int_equal(json_array_size(arr), 2);
    assert_string_equal(jstr(json_array_get(arr, 0), "id"), b);
    assert_string_equal(jstr(json_array_get(arr, 1), "id"), a);
    tags = json_object_get(json_array_get(arr, 0), "tags");
    assert_int_equal(json_array_size(tags), 2);
    assert_string_equal(json_string_value(json_array_get(tags, 0)), "tg-beta");
    json_decref(j);
    j = call("GET", "/v1/executions?tag=tg-none", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "executions")), 0);
    assert_true(json_is_null(json_object_get(j, "next")));
    json_decref(j);
    free(a);
    free(b);
}

/* --- listing executions ------------------------------------------------------------------- */

static size_t ids_in(const json_t *page, char ids[][ID_LEN + 1], size_t have, size_t cap)
{
    size_t i;
    json_t *e;

    json_array_foreach(json_object_get(page, "executions"), i, e) {
        assert_true(have < cap);
        snprintf(ids[have++], ID_LEN + 1, "%s", jstr(e, "id"));
    }
    return have;
}

/* Walk ?<query>&limit=<limit>&after=... to the end; the ids in order. Fails when the walk
 * does not end within PAGES_MAX pages (a cursor that does not advance). */
static size_t walk(const char *query, unsigned limit, char ids[][ID_LEN + 1], size_t cap)
{
    char path[PATH_BYTES], after[ID_LEN + 1] = "";
    size_t n = 0;

    for (unsigned page = 0; page < PAGES_MAX; page++) {
        snprintf(path, sizeof(path), "/v1/executions?%s&limit=%u%s%s", query, limit,
                 after[0] ? "&after=" : "", after);
        json_t *p = call("GET", path, NULL, 200);
        size_t before = n;
        n = ids_in(p, ids, n, cap);
        assert_true(n - before <= limit);
        json_t *next = json_object_get(p, "next");
        if (json_is_null(next)) {
            json_decref(p);
            return n;
        }
        assert_true(is_id(json_string_value(next)));
        snprintf(after, sizeof(after), "%s", json_string_value(next));
        json_decref(p);
        if (n == before && n > 0)
            fail_msg("an empty page with a cursor");
        /* A cursor that repeats what came before loops forever: stop here. */
        for (size_t i = 0; i < before; i++)
            for (size_t k = before; k < n; k++)
                if (strcmp(ids[i], ids[k]) == 0)
                    fail_msg("page %u repeats %s (after=%s)", page, ids[k], after);
    }
    fail_msg("the cursor walk did not end after %u pages", PAGES_MAX);
    return n;
}

static void test_list_executions(void **state)
{
    char ids[LIST_RUNS][ID_LEN + 1], got[LIST_RUNS + 4][ID_LEN + 1];
    const char *tagged = "{\"inputs\": {}, \"tags\": [\"lx\"]}";
    size_t n;
    json_t *j, *e;

    (void)state;
    for (unsigned i = 0; i < LIST_RUNS; i++) {
        char *id = submit_body(i < 2 ? "failing" : "chain3", tagged, 202);
        snprintf(ids[i], sizeof(ids[i]), "%s", id);
        free(id);
        sleep_ms(2); /* distinct milliseconds: see test_list_cursor_same_ms for the rest */
    }
    for (unsigned i = 0; i < LIST_RUNS; i++)
        expect_status(ids[i], i < 2 ? "failed" : "succeeded");

    /* Newest first, with the summary fields. */
    j = call("GET", "/v1/executions?tag=lx", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "executions")), LIST_RUNS);
    assert_true(json_is_null(json_object_get(j, "next")));
    for (unsigned i = 0; i < LIST_RUNS; i++) {
        e = json_array_get(json_object_get(j, "executions"), i);
        assert_string_equal(jstr(e, "id"), ids[LIST_RUNS - 1 - i]);
        assert_string_equal(jstr(e, "graph"), LIST_RUNS - 1 - i < 2 ? "failing" : "chain3");
        assert_int_equal(jint(e, "version"), 1);
        assert_string_equal(jstr(e, "status"), LIST_RUNS - 1 - i < 2 ? "failed" : "succeeded");
        assert_true(is_ts(json_object_get(e, "created_at")));
        assert_string_equal(json_string_value(json_array_get(json_object_get(e, "tags"), 0)), "lx");
    }
    json_decref(j);

    /* Pages of 3: 3 + 3 + 1, each `next` the last id of its page, no overlap, no loss. */
    n = walk("tag=lx", 3, got, LIST_RUNS + 4);
    assert_int_equal(n, LIST_RUNS);
    for (unsigned i = 0; i < LIST_RUNS; i++)
        assert_string_equal(got[i], ids[LIST_RUNS - 1 - i]);
    j = call("GET", "/v1/executions?tag=lx&limit=3", NULL, 200);
    assert_string_equal(jstr(j, "next"), ids[LIST_RUNS - 3]);
    json_decref(j);

    /* Filters combine. */
    j = call("GET", "/v1/executions?tag=lx&graph=failing", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "executions")), 2);
    json_decref(j);
    j = call("GET", "/v1/executions?tag=lx&status=failed", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "executions")), 2);
    json_decref(j);
    j = call("GET", "/v1/executions?tag=lx&status=succeeded&graph=chain3", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "executions")), LIST_RUNS - 2);
    json_decref(j);
    j = call("GET", "/v1/executions?tag=lx&status=running", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "executions")), 0);
    json_decref(j);
    j = call("GET", "/v1/executions?graph=failing&limit=500", NULL, 200);
    json_array_foreach(json_object_get(j, "executions"), n, e)
        assert_string_equal(jstr(e, "graph"), "failing");
    json_decref(j);
    j = call("GET", "/v1/executions", NULL, 200);
    assert_true(json_array_size(json_object_get(j, "executions")) <= 50);
    json_decref(j);

    expect_error("GET", "/v1/executions?limit=0", NULL, 400, "bad_query");
    expect_error("GET", "/v1/executions?limit=501", NULL, 400, "bad_query");
    expect_error("GET", "/v1/executions?limit=ten", NULL, 400, "bad_query");
    expect_error("GET", "/v1/executions?status=bogus", NULL, 400, "bad_query");
    json_decref(call("GET", "/v1/executions?limit=500", NULL, 200));
    expect_error("POST", "/v1/executions", "{}", 405, "method_not_allowed");
}

/* Read `n` responses from fd (pipelined), each 202, collecting the ids. */
static void read_submissions(int fd, char ids[][ID_LEN + 1], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct rfd_resp r;
        assert_int_equal(rfd_read_resp(fd, &r, WAIT_MS, false), 0);
        assert_int_equal(r.status, 202);
        json_t *j = rfd_json(&r);
        assert_true(is_id(jstr(j, "id")));
        snprintf(ids[i], ID_LEN + 1, "%s", jstr(j, "id"));
        json_decref(j);
        rfd_resp_free(&r);
    }
}

/*
 * Many executions created within the same millisecond (pipelined submissions on one
 * connection): a cursor walk with small pages must still return each of them exactly once,
 * newest first, and end.
 */
static void test_list_cursor_same_ms(void **state)
{
    static const char body[] = "{\"inputs\": {}, \"tags\": [\"burst\"]}";
    char ids[BURST_RUNS][ID_LEN + 1], got[BURST_RUNS + 8][ID_LEN + 1], req[512];
    size_t n, len;
    char *all;
    int fd;

    (void)state;
    len = (size_t)snprintf(req, sizeof(req),
                           "POST /v1/graphs/chain3/executions HTTP/1.1\r\nHost: x\r\n"
                           "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                           strlen(body), body);
    all = malloc(len * BURST_RUNS);
    assert_non_null(all);
    for (size_t i = 0; i < BURST_RUNS; i++)
        memcpy(all + i * len, req, len);
    fd = rfd_connect(cur);
    assert_true(fd >= 0);
    assert_int_equal(rfd_send_all(fd, all, len * BURST_RUNS), 0);
    free(all);
    read_submissions(fd, ids, BURST_RUNS);
    rfd_close(fd);

    n = walk("tag=burst", 7, got, BURST_RUNS + 8);
    assert_int_equal(n, BURST_RUNS);
    for (size_t i = 0; i < BURST_RUNS; i++)
        assert_string_equal(got[i], ids[BURST_RUNS - 1 - i]);
}

/* --- the execution document ------------------------------------------------------------ */

static void check_node_run(const json_t *nd, const char *status)
{
    assert_string_equal(jstr(nd, "status"), status);
    assert_true(is_lower_hex(jstr(nd, "lineage_hash"), 32));
    assert_int_equal(jint(nd, "attempts"), 1);
    assert_true(json_is_object(json_object_get(nd, "params")));
    assert_true(json_is_boolean(json_object_get(nd, "cached")));
    assert_false(json_is_true(json_object_get(nd, "cached")));
    assert_true(is_ts(json_object_get(nd, "started_at")));
    assert_true(is_ts(json_object_get(nd, "finished_at")));
    assert_true(strcmp(jstr(nd, "started_at"), jstr(nd, "finished_at")) <= 0);
}

static json_t *get_doc(const char *id)
{
    char path[PATH_BYTES];

    snprintf(path, sizeof(path), "/v1/executions/%s", id);
    return call("GET", path, NULL, 200);
}

static void test_execution_document(void **state)
{
    static const char *const names[] = {"a", "b", "c"};
    char *id = submit("chain3", "{\"n\": 7}");
    json_t *d, *nodes, *nd;

    (void)state;
    expect_status(id, "succeeded");
    d = get_doc(id);
    assert_string_equal(jstr(d, "id"), id);
    assert_string_equal(jstr(d, "graph"), "chain3");
    assert_int_equal(jint(d, "version"), 1);
    assert_string_equal(jstr(d, "status"), "succeeded");
    assert_string_equal(jstr(d, "account"), "default");
    assert_int_equal(jint(json_object_get(d, "inputs"), "n"), 7);
    assert_int_equal(jint(json_object_get(d, "output"), "n"), 7);
    assert_true(json_is_null(json_object_get(d, "error")));
    assert_true(is_ts(json_object_get(d, "created_at")));
    assert_true(is_ts(json_object_get(d, "started_at")));
    assert_true(is_ts(json_object_get(d, "finished_at")));
    nodes = json_object_get(d, "nodes");
    assert_int_equal(json_object_size(nodes), 3);
    for (unsigned i = 0; i < 3; i++) {
        nd = json_object_get(nodes, names[i]);
        assert_non_null(nd);
        check_node_run(nd, "succeeded");
        assert_string_equal(jstr(nd, "kind"), "transform");
        assert_string_equal(jstr(json_object_get(nd, "output"), "step"), names[i]);
        assert_int_equal(jint(json_object_get(nd, "output"), "n"), 7);
        assert_true(json_is_null(json_object_get(nd, "error")));
        assert_null(json_object_get(nd, "items"));
    }
    /* tags: an array, empty when the submission had none (as in the listing). */
    char *tags = json_dumps(json_object_get(d, "tags"), JSON_ENCODE_ANY);
    bool empty_array = tags && strcmp(tags, "[]") == 0;
    json_decref(d);
    free(id);
    if (!empty_array)
        print_message("tags of an execution submitted without tags: %s, want []\n", tags);
    free(tags);
    assert_true(empty_array);
}

static void test_execution_document_mapped(void **state)
{
    char *id = submit("wide", "{\"items\": [\"p\", \"q\", \"r\", \"s\", \"t\"]}");
    json_t *d, *nd, *items, *it;
    size_t i;

    (void)state;
    expect_status(id, "succeeded");
    d = get_doc(id);
    nd = json_object_get(json_object_get(d, "nodes"), "each");
    assert_string_equal(jstr(nd, "status"), "succeeded");
    assert_int_equal(json_array_size(json_object_get(nd, "output")), WIDE_ITEMS);
    items = json_object_get(nd, "items");
    assert_int_equal(json_array_size(items), WIDE_ITEMS);
    json_array_foreach(items, i, it) {
        check_node_run(it, "succeeded");
        assert_int_equal(jint(json_object_get(it, "output"), "index"), (json_int_t)i);
        char want[2] = {(char)('p' + i), 0};
        assert_string_equal(jstr(json_object_get(it, "output"), "value"), want);
    }
    /* The execution's output is the mapped node's array. */
    assert_int_equal(json_array_size(json_object_get(json_object_get(d, "output"), "items")),
                     WIDE_ITEMS);
    json_decref(d);
    free(id);
}

static void test_execution_document_failed(void **state)
{
    char *id = submit("failing", NULL);
    json_t *d, *nd;

    (void)state;
    expect_status(id, "failed");
    d = get_doc(id);
    assert_string_equal(jstr(d, "status"), "failed");
    assert_true(json_is_object(json_object_get(d, "error")));
    nd = json_object_get(json_object_get(d, "nodes"), "boom");
    assert_string_equal(jstr(nd, "status"), "failed");
    assert_string_equal(jstr(nd, "kind"), "fail");
    assert_true(json_is_object(json_object_get(nd, "error")));
    assert_true(json_is_null(json_object_get(nd, "output")));
    json_decref(d);
    free(id);

    expect_error("GET", "/v1/executions/00000000000000000000000000", NULL, 404, "not_found");
    expect_error("GET", "/v1/executions/short", NULL, 404, "not_found");
    expect_error("GET", "/v1/executions/00000000000000000000000000/events", NULL, 404,
                 "not_found");
    expect_error("GET", "/v1/executions/00000000000000000000000000/result", NULL, 404,
                 "not_found");
    expect_error("POST", "/v1/executions/00000000000000000000000000/cancel", NULL, 404,
                 "not_found");
}

/* --- events ------------------------------------------------------------------------------- */

static void test_events_paging(void **state)
{
    char *id = submit("chain3", NULL);
    json_t *j, *ev, *e;
    size_t i, n;
    char q[64];

    (void)state;
    expect_status(id, "succeeded");
    j = events_on(cur, id, "");
    ev = json_object_get(j, "events");
    n = json_array_size(ev);
    assert_int_equal(n, 9); /* queued, started, 3 x (node.started, node.succeeded), succeeded */
    assert_true(json_is_true(json_object_get(j, "done")));
    assert_int_equal(jint(j, "next"), (json_int_t)n);
    json_array_foreach(ev, i, e) {
        assert_int_equal(jint(e, "seq"), (json_int_t)i + 1);
        assert_string_equal(jstr(e, "execution_id"), id);
        assert_true(is_ts(json_object_get(e, "ts")));
        assert_non_null(jstr(e, "type"));
    }
    assert_string_equal(jstr(json_array_get(ev, 0), "type"), "execution.queued");
    assert_string_equal(jstr(json_array_get(ev, 1), "type"), "execution.started");
    e = json_array_get(ev, 2);
    assert_string_equal(jstr(e, "type"), "node.started");
    assert_string_equal(jstr(e, "node"), "a");
    assert_int_equal(jint(e, "attempt"), 1);
    assert_true(is_lower_hex(jstr(e, "lineage_hash"), 32));
    assert_true(json_is_object(json_object_get(e, "params")));
    assert_null(json_object_get(e, "item"));
    e = json_array_get(ev, 3);
    assert_string_equal(jstr(e, "type"), "node.succeeded");
    assert_true(json_is_object(json_object_get(e, "output")));
    e = json_array_get(ev, n - 1);
    assert_string_equal(jstr(e, "type"), "execution.succeeded");
    assert_int_equal(jint(json_object_get(e, "output"), "n"), 1);
    json_decref(j);

    /* after and limit: a window, done only on the page that reaches the end. */
    j = events_on(cur, id, "?after=2&limit=3");
    ev = json_object_get(j, "events");
    assert_int_equal(json_array_size(ev), 3);
    for (i = 0; i < 3; i++)
        assert_int_equal(jint(json_array_get(ev, i), "seq"), (json_int_t)i + 3);
    assert_int_equal(jint(j, "next"), 5);
    assert_false(json_is_true(json_object_get(j, "done")));
    json_decref(j);
    snprintf(q, sizeof(q), "?after=%zu", n - 1);
    j = events_on(cur, id, q);
    assert_int_equal(json_array_size(json_object_get(j, "events")), 1);
    assert_true(json_is_true(json_object_get(j, "done")));
    json_decref(j);
    snprintf(q, sizeof(q), "?after=%zu", n);
    j = events_on(cur, id, q);
    assert_int_equal(json_array_size(json_object_get(j, "events")), 0);
    assert_true(json_is_true(json_object_get(j, "done")));
    assert_int_equal(jint(j, "next"), (json_int_t)n);
    json_decref(j);

    /* Walking with limit=2 from next to next gives every seq once. */
    json_int_t after = 0, seen = 0;
    for (unsigned k = 0; k < PAGES_MAX; k++) {
        snprintf(q, sizeof(q), "?after=%ld&limit=2", (long)after);
        j = events_on(cur, id, q);
        json_array_foreach(json_object_get(j, "events"), i, e)
            assert_int_equal(jint(e, "seq"), ++seen);
        after = jint(j, "next");
        bool done = json_is_true(json_object_get(j, "done"));
        json_decref(j);
        if (done)
            break;
    }
    assert_int_equal(seen, (json_int_t)n);

    char path[PATH_BYTES];
    const char *bad[] = {"?after=x", "?after=-1", "?limit=0", "?limit=1001", "?wait_ms=soon"};
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(path, sizeof(path), "/v1/executions/%s/events%s", id, bad[i]);
        expect_error("GET", path, NULL, 400, "bad_query");
    }
    snprintf(path, sizeof(path), "/v1/executions/%s/events", id);
    expect_error("POST", path, "{}", 405, "method_not_allowed");
    free(id);
}

/* GET a path, timing it; the body and the time taken. */
static json_t *timed_get(struct rfd *d, const char *path, int want, int64_t *ms)
{
    int64_t t0 = now_ms();
    json_t *j = call_on(d, "GET", path, NULL, want);

    *ms = now_ms() - t0;
    return j;
}

static void test_events_long_poll(void **state)
{
    char path[PATH_BYTES];
    char *id = slow_running_on(cur, 400);
    int64_t ms;
    json_t *j, *ev;

    (void)state;
    /* Woken by the next event (the delay ends after 400 ms), not by wait_ms. */
    snprintf(path, sizeof(path), "/v1/executions/%s/events?after=3&wait_ms=2000", id);
    j = timed_get(cur, path, 200, &ms);
    ev = json_object_get(j, "events");
    assert_true(json_array_size(ev) >= 1);
    assert_int_equal(jint(json_array_get(ev, 0), "seq"), 4);
    assert_string_equal(jstr(json_array_get(ev, 0), "type"), "node.succeeded");
    assert_true(ms < 1500);
    json_decref(j);

    /* Past the last event of a finished execution: at once, done. */
    expect_status(id, "succeeded");
    snprintf(path, sizeof(path), "/v1/executions/%s/events?after=7&wait_ms=5000", id);
    j = timed_get(cur, path, 200, &ms);
    assert_int_equal(json_array_size(json_object_get(j, "events")), 0);
    assert_true(json_is_true(json_object_get(j, "done")));
    assert_int_equal(jint(j, "next"), 7);
    assert_true(ms < 1000);
    json_decref(j);
    /* Events that exist already: at once, even with wait_ms. */
    snprintf(path, sizeof(path), "/v1/executions/%s/events?after=0&wait_ms=5000", id);
    j = timed_get(cur, path, 200, &ms);
    assert_int_equal(json_array_size(json_object_get(j, "events")), 7);
    assert_true(ms < 1000);
    json_decref(j);
    free(id);

    /* Nothing new on a running execution: an empty page after wait_ms. */
    id = slow_running_on(cur, 30000);
    snprintf(path, sizeof(path), "/v1/executions/%s/events?after=3&wait_ms=400", id);
    j = timed_get(cur, path, 200, &ms);
    assert_int_equal(json_array_size(json_object_get(j, "events")), 0);
    assert_false(json_is_true(json_object_get(j, "done")));
    assert_int_equal(jint(j, "next"), 3);
    assert_true(ms >= 350 && ms < 2000);
    json_decref(j);
    cancel_on(cur, id);
    expect_status(id, "canceled");
    free(id);
}

/* --- results and cancel ------------------------------------------------------------------- */

static void test_result(void **state)
{
    char path[PATH_BYTES];
    int64_t t0 = now_ms(), ms;
    char *id = submit("slow", "{\"ms\": 600}");
    json_t *j;

    (void)state;
    snprintf(path, sizeof(path), "/v1/executions/%s/result", id);
    j = call("GET", path, NULL, 202);
    assert_true(strcmp(jstr(j, "status"), "queued") == 0 || strcmp(jstr(j, "status"), "running") == 0);
    assert_int_equal(json_object_size(j), 1);
    json_decref(j);

    snprintf(path, sizeof(path), "/v1/executions/%s/result?wait_ms=5000", id);
    j = timed_get(cur, path, 200, &ms);
    assert_string_equal(jstr(j, "status"), "succeeded");
    assert_int_equal(jint(json_object_get(j, "output"), "waited_ms"), 600);
    assert_true(json_is_null(json_object_get(j, "error")));
    assert_true(now_ms() - t0 >= 550); /* it did wait for the delay */
    assert_true(ms < 4000);
    json_decref(j);
    free(id);

    /* A short wait on a running execution: 202 after about wait_ms. */
    id = submit("slow", "{\"ms\": 3000}");
    snprintf(path, sizeof(path), "/v1/executions/%s/result?wait_ms=300", id);
    j = timed_get(cur, path, 202, &ms);
    assert_true(ms >= 250 && ms < 2000);
    json_decref(j);
    cancel_on(cur, id);
    free(id);

    id = submit("failing", NULL);
    j = wait_result(id);
    assert_string_equal(jstr(j, "status"), "failed");
    assert_true(json_is_null(json_object_get(j, "output")));
    assert_true(json_is_object(json_object_get(j, "error")));
    assert_true(json_object_size(json_object_get(j, "error")) > 0);
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/executions/%s/result?wait_ms=-5", id);
    expect_error("GET", path, NULL, 400, "bad_query");
    free(id);
}

static void test_cancel(void **state)
{
    char path[PATH_BYTES], allow[64];
    char *id = slow_running_on(cur, 30000);
    struct rfd_resp r;
    int64_t t0, ms;
    json_t *j, *ev;

    (void)state;
    snprintf(path, sizeof(path), "/v1/executions/%s/cancel", id);
    t0 = now_ms();
    j = call("POST", path, NULL, 202);
    assert_string_equal(jstr(j, "id"), id);
    assert_non_null(jstr(j, "status"));
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/executions/%s/result?wait_ms=5000", id);
    j = call("GET", path, NULL, 200);
    ms = now_ms() - t0;
    assert_string_equal(jstr(j, "status"), "canceled");
    assert_true(ms < 1500); /* the 30 s delay was canceled on the ring */
    json_decref(j);

    /* Idempotent, also once terminal. */
    snprintf(path, sizeof(path), "/v1/executions/%s/cancel", id);
    j = call("POST", path, NULL, 202);
    assert_string_equal(jstr(j, "status"), "canceled");
    json_decref(j);
    assert_int_equal(rfd_request(cur, "GET", path, NULL, &r), 0);
    assert_int_equal(r.status, 405);
    assert_non_null(rfd_header(&r, "Allow", allow, sizeof(allow)));
    assert_string_equal(allow, "POST");
    rfd_resp_free(&r);

    /* The log ends with the delay node canceled and execution.canceled. */
    j = events_on(cur, id, "");
    ev = json_object_get(j, "events");
    assert_true(json_is_true(json_object_get(j, "done")));
    assert_string_equal(jstr(json_array_get(ev, json_array_size(ev) - 1), "type"),
                        "execution.canceled");
    bool node_canceled = false;
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e)
        node_canceled |= strcmp(jstr(e, "type"), "node.canceled") == 0 &&
                         strcmp(jstr(e, "node"), "wait") == 0;
    assert_true(node_canceled);
    json_decref(j);
    j = get_doc(id);
    assert_string_equal(jstr(j, "status"), "canceled");
    assert_string_equal(jstr(json_object_get(json_object_get(j, "nodes"), "wait"), "status"),
                        "canceled");
    json_decref(j);

    /* Cancel of a finished execution: 202, nothing changes. */
    free(id);
    id = submit("chain3", NULL);
    expect_status(id, "succeeded");
    snprintf(path, sizeof(path), "/v1/executions/%s/cancel", id);
    j = call("POST", path, NULL, 202);
    assert_string_equal(jstr(j, "status"), "succeeded");
    json_decref(j);
    expect_status(id, "succeeded");
    free(id);
}

/* --- long polls under stress ----------------------------------------------------------------- */

static int send_get(const char *path)
{
    char req[PATH_BYTES + 64];
    int fd = rfd_connect(cur);

    assert_true(fd >= 0);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    assert_int_equal(rfd_send_str(fd, req), 0);
    return fd;
}

static void test_long_poll_client_vanishes(void **state)
{
    char path[PATH_BYTES], path2[PATH_BYTES];
    char *id = slow_running_on(cur, 800);
    int fds[VANISHING_POLLS];

    (void)state;
    snprintf(path, sizeof(path), "/v1/executions/%s/events?after=3&wait_ms=5000", id);
    snprintf(path2, sizeof(path2), "/v1/executions/%s/result?wait_ms=5000", id);
    for (unsigned i = 0; i < VANISHING_POLLS; i++) {
        fds[i] = send_get(i % 2 ? path : path2);
        if (i % 4 == 3) /* a second request pipelined behind the parked one */
            assert_int_equal(rfd_send_str(fds[i], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        if (i % 8 == 0)
            rfd_close(fds[i]); /* gone before it was even parked, maybe */
    }
    sleep_ms(100);
    for (unsigned i = 0; i < VANISHING_POLLS; i++)
        if (i % 8 != 0)
            rfd_close(fds[i]);
    /* The daemon is fine: other requests, and the execution's end, all work. */
    json_decref(call("GET", "/healthz", NULL, 200));
    json_t *j = wait_result(id);
    assert_string_equal(jstr(j, "status"), "succeeded");
    json_decref(j);
    j = events_on(cur, id, "?after=3&wait_ms=1000");
    assert_int_equal(json_array_size(json_object_get(j, "events")), 4);
    json_decref(j);
    free(id);
}

static void test_many_long_polls(void **state)
{
    char path[PATH_BYTES];
    char *id = submit("slow", "{\"ms\": 700}");
    int fds[MANY_POLLS];
    int64_t deadline;

    (void)state;
    for (unsigned i = 0; i < MANY_POLLS; i++) {
        if (i % 2)
            snprintf(path, sizeof(path), "/v1/executions/%s/result?wait_ms=9000", id);
        else
            snprintf(path, sizeof(path), "/v1/executions/%s/events?after=6&wait_ms=9000", id);
        fds[i] = send_get(path);
    }
    deadline = now_ms() + WAIT_MS;
    for (unsigned i = 0; i < MANY_POLLS; i++) {
        struct rfd_resp r;
        int left = (int)(deadline - now_ms());
        assert_int_equal(rfd_read_resp(fds[i], &r, left > 0 ? left : 1, false), 0);
        assert_int_equal(r.status, 200);
        json_t *j = rfd_json(&r);
        if (i % 2) {
            assert_string_equal(jstr(j, "status"), "succeeded");
        } else {
            json_t *ev = json_object_get(j, "events");
            assert_int_equal(json_array_size(ev), 1);
            assert_string_equal(jstr(json_array_get(ev, 0), "type"), "execution.succeeded");
        }
        json_decref(j);
        rfd_resp_free(&r);
        rfd_close(fds[i]);
    }
    free(id);
}

/* --- the daemon with --long-poll-max 300ms --inflight-per-shard 1 ------------------------- */

static void test_long_poll_cap(void **state)
{
    char path[PATH_BYTES];
    char *id = slow_running_on(&d_limits, 30000);
    int64_t ms;
    json_t *j;

    (void)state;
    snprintf(path, sizeof(path), "/v1/executions/%s/events?after=3&wait_ms=5000", id);
    j = timed_get(&d_limits, path, 200, &ms);
    assert_int_equal(json_array_size(json_object_get(j, "events")), 0);
    assert_true(ms >= 250 && ms < 1500);
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/executions/%s/result?wait_ms=60000", id);
    j = timed_get(&d_limits, path, 202, &ms);
    assert_true(ms >= 250 && ms < 1500);
    json_decref(j);
    cancel_on(&d_limits, id);
    j = wait_result_on(&d_limits, id, WAIT_MS);
    assert_string_equal(jstr(j, "status"), "canceled");
    json_decref(j);
    free(id);
}

static void post_on(int fd, const char *body, struct rfd_resp *r)
{
    char req[BODY_BYTES];

    snprintf(req, sizeof(req),
             "POST /v1/graphs/slow/executions HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    assert_int_equal(rfd_send_str(fd, req), 0);
    assert_int_equal(rfd_read_resp(fd, r, WAIT_MS, false), 0);
}

/* One keep-alive connection lives on one shard, and its submissions run there: the
 * second one in flight on a shard limited to one is refused with 429 and Retry-After. */
static void test_overload_429(void **state)
{
    const char *body = "{\"inputs\": {\"ms\": 30000}}";
    struct rfd_resp r;
    char ra[32], id[ID_LEN + 1];
    int fd = rfd_connect(&d_limits);
    json_t *j;

    (void)state;
    assert_true(fd >= 0);
    post_on(fd, body, &r);
    assert_int_equal(r.status, 202);
    j = rfd_json(&r);
    snprintf(id, sizeof(id), "%s", jstr(j, "id"));
    json_decref(j);
    rfd_resp_free(&r);

    post_on(fd, body, &r);
    assert_int_equal(r.status, 429);
    assert_non_null(rfd_header(&r, "Retry-After", ra, sizeof(ra)));
    assert_true(atoi(ra) >= 1);
    j = rfd_json(&r);
    check_error(j, "overloaded");
    json_decref(j);
    rfd_resp_free(&r);
    /* Nothing was made of the refused one; the connection still works. */
    j = call_on(&d_limits, "GET", "/v1/executions?graph=slow&status=running", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "executions")), 1);
    json_decref(j);

    /* Capacity comes back once the first one is over. */
    cancel_on(&d_limits, id);
    j = wait_result_on(&d_limits, id, WAIT_MS);
    json_decref(j);
    int64_t deadline = now_ms() + 3000;
    for (;;) {
        post_on(fd, "{\"inputs\": {\"ms\": 1}}", &r);
        int st = r.status;
        rfd_resp_free(&r);
        if (st == 202)
            break;
        assert_int_equal(st, 429);
        assert_true(now_ms() < deadline);
        sleep_ms(20);
    }
    rfd_close(fd);
}

/* --- the daemon with --long-poll-max 0 ----------------------------------------------------- */

/* --long-poll-max accepts 0 ("0 to 1h"): then no request waits; wait_ms is capped to 0. */
static void test_long_poll_max_zero(void **state)
{
    char path[PATH_BYTES];
    char *id = slow_running_on(&d_zero, 30000);
    int64_t ms;
    json_t *j;

    (void)state;
    snprintf(path, sizeof(path), "/v1/executions/%s/events?after=3&wait_ms=2000", id);
    j = timed_get(&d_zero, path, 200, &ms);
    assert_int_equal(json_array_size(json_object_get(j, "events")), 0);
    json_decref(j);
    cancel_on(&d_zero, id);
    free(id);
    if (ms >= 1000)
        fail_msg("--long-poll-max 0 still let wait_ms=2000 wait %ld ms", (long)ms);
}

int main(void)
{
    rfd_test_filter();
    const struct CMUnitTest main_tests[] = {
        cmocka_unit_test(test_graph_put_versions),
        cmocka_unit_test(test_graph_invalid),
        cmocka_unit_test(test_graph_media_type),
        cmocka_unit_test(test_graph_list),
        cmocka_unit_test(test_submit_shape),
        cmocka_unit_test(test_submit_invalid),
        cmocka_unit_test(test_idempotency),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_list_executions),
        cmocka_unit_test(test_list_cursor_same_ms),
        cmocka_unit_test(test_execution_document),
        cmocka_unit_test(test_execution_document_mapped),
        cmocka_unit_test(test_execution_document_failed),
        cmocka_unit_test(test_events_paging),
        cmocka_unit_test(test_events_long_poll),
        cmocka_unit_test(test_result),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_long_poll_client_vanishes),
        cmocka_unit_test(test_many_long_polls),
    };
    const struct CMUnitTest limits_tests[] = {
        cmocka_unit_test(test_long_poll_cap),
        cmocka_unit_test(test_overload_429),
    };
    const struct CMUnitTest zero_tests[] = {
        cmocka_unit_test(test_long_poll_max_zero),
    };
    int failed = cmocka_run_group_tests_name("api", main_tests, main_setup, main_teardown);

    failed += cmocka_run_group_tests_name("api-limits", limits_tests, limits_setup,
                                          limits_teardown);
    failed += cmocka_run_group_tests_name("api-long-poll-max-0", zero_tests, zero_setup,
                                          zero_teardown);
    return failed || rfd_failures() ? 1 : 0;
}
